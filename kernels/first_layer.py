"""A float first layer whose output only feeds a sign, on 8-bit inputs: certified integer signs.

A network's first float layer ``y = x W^T + b`` that heads a packed chain (its output reaches the
next binary layer only through ``sign``, BatchNorm folded into ``W, b``) needs the sign of each
``y_nc``, not its value. When the inputs lie on an affine 8-bit grid (``x = a p + o + e`` with
integer pixels ``p`` in ``0 .. levels - 1``, ``e`` float rounding of the data pipeline: the
export's ``input_grid``, checked on every batch), then with the weights split as
``w = s1 q1 + s2 q2 + r2`` (per output channel, ``q1, q2`` int8)::

    y = a s1 (p . q1) + (o sum(w) + b) + [a s2 (p . q2)] + a (p . r2) + e . w

``p . q1`` runs exactly in int32 on ``vpdpbusd`` (AVX-512 VNNI: 64 u8 x s8 products per
instruction, 4 times the float32 FMA's 16 lanes), and the terms left out are bounded per entry:
``|a (p . r1)| <= |a| min(||p||_1 max|r1_c|, ||p||_2 ||r1_c||_2)`` and
``|e . w| <= max|e_n| ||w_c||_1``, plus a relative slack (``max(2**-40, 8 (K + 1) 2**-53)``)
for the float64 evaluation. An entry whose estimate is farther from 0 than its bound has the
sign of the exact real ``x . w_c + b_c``. The others add the second int8 level ``p . q2``
(bound 127 times smaller), and the few still undecided are recomputed in float64 (products of
float32 numbers are exact there; the sum's rounding bounded by ``(K + 1) 2**-53 sum|x w|``).
A first layer with binary weights (``w = scale_c * (+-1)``: ``q1 = +-127``, ``r1`` only
rounding) leaves just the ``e . w`` term: on Fashion-MNIST 3 of 131,072 entries of a batch of
256 go past level 1; float weights would send about 10% to level 2. An entry within even the
float64 bound of 0 has no certified sign: the batch then
runs the float path (as an output exactly 0 does there: ``sign(0) = 0``).

Preconditions (else the caller's float path runs, chosen per batch): an ``input_grid`` in the
manifest, numba's compile target with AVX-512 VNNI (:func:`available`), a 2-d float32 input on
the grid within ``GRID_TOLERANCE`` grid steps. The bounds hold for ``|a (p . r1)|`` at level 1
(``r1 = s2 q2 + r2``) and ``|a (p . r2)|`` at level 2.

:func:`reference_signs` is the NumPy twin (float64, exact products) the tests compare with.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from proxcompress.errors import InvalidInputError

from ._checks import words_for

#: largest deviation from the grid, in grid steps ``|a|``, that a batch may show and still take
#: the integer path. Float32 resolves a step of 256 levels into about 2**16 ulps, so a data
#: pipeline's rounding (Fashion-MNIST's: 1.2e-5 steps) and ``cpu_mlp.grid_codes``' own
#: float32 rounding (a few ulps) stay far below it; it enters every bound as ``max|e_n| ||w_c||_1``
GRID_TOLERANCE = 1e-3
#: relative slack added to every bound for the float64 evaluation of the estimate (at least;
#: ``8 (K + 1) 2**-53`` for long rows)
SLACK = 2.0**-40
#: rows of the input (samples) and 16-channel column vectors per micro-kernel tile
ROWS, COLS = 4, 4
LANES = 16  # int32 lanes per zmm
#: operations per input value of ``cpu_mlp.grid_codes`` in ``cpu.launch``'s unit (a float
#: multiply-add): its serial / parallel threshold
GRID_WORK = 8
#: the LLVM features the integer path needs
REQUIRES = ("avx512f", "avx512bw", "avx512vnni")


@dataclass(frozen=True)
class Grid:
    """Inputs ``x = scale * p + offset`` with integer ``p`` in ``0 .. levels - 1``."""

    scale: float
    offset: float
    levels: int

    def to_json(self) -> dict[str, Any]:
        return {"scale": self.scale, "offset": self.offset, "levels": self.levels}


def _finite(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise InvalidInputError(f"input_grid.{name}", f"= {v!r} must be a finite number")
    return float(v)


def parse_grid(raw: Any) -> Grid | None:
    """The manifest's ``input_grid`` (``None`` when absent), checked.

    Raises:
        InvalidInputError: not a mapping of a finite non-zero ``scale``, a finite ``offset`` and
            an integer ``levels`` in 2 .. 256.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidInputError("input_grid", f"= {raw!r} must be a mapping with scale, "
                                "offset, levels")
    levels = raw.get("levels")
    scale, offset = (_finite(raw.get(name), name) for name in ("scale", "offset"))
    if scale == 0:
        raise InvalidInputError("input_grid.scale", "= 0 must be non-zero")
    if isinstance(levels, bool) or not isinstance(levels, int) or not 2 <= levels <= 256:
        raise InvalidInputError("input_grid.levels", f"= {levels!r} must be an integer in "
                                "2 .. 256")
    return Grid(scale, offset, int(levels))


def available() -> bool:
    """Whether numba's compile target has the features of the integer path."""
    from .simd import target_features

    _, enabled = target_features()
    return all(f in enabled for f in REQUIRES)


def _codes_error(grid: Grid, tol: float) -> float:
    """How far ``cpu_mlp.grid_codes``' float32 distance ``|x - (a32 p + o32)|`` can lie from
    the exact ``|x - (a p + o)|``: the grid's own float32 rounding (``|a - a32| p + |o - o32|``) and
    three roundings of at most ``2**-24`` of magnitudes below ``|a| top + |o| + tol``;
    doubled."""
    top = grid.levels - 1
    a32, o32 = float(np.float32(grid.scale)), float(np.float32(grid.offset))
    own = abs(grid.scale - a32) * top + abs(grid.offset - o32)
    return 2.0 * (own + 3 * 2.0**-24 * (abs(grid.scale) * top + abs(grid.offset) + 2 * tol))


class GridSignLayer:
    """The certified sign path of one float linear layer (weights ``w`` (C, K) float32, bias
    ``b``) for inputs on ``grid``; call it on a 2-d float32 batch: packed sign words
    (N, ceil(C / 64)) uint64 (bit set = negative), or ``None`` where a precondition fails
    (off-grid input, an undecidable sign). ``last`` holds the last call's counts."""

    def __init__(self, w: np.ndarray, b: np.ndarray | None, grid: Grid) -> None:
        self.grid = grid
        c_out, k = w.shape
        self.k, self.c_out = k, c_out
        self.w = np.ascontiguousarray(w, dtype=np.float32)
        self.bias = (np.zeros(c_out, np.float32) if b is None
                     else np.ascontiguousarray(b, dtype=np.float32))
        w64 = self.w.astype(np.float64)
        self.groups = -(-k // 4)
        self.c_pad = -(-c_out // (COLS * LANES)) * COLS * LANES
        q1, s1, r1 = _split(w64)
        q2, s2, r2 = _split(r1)
        eps = 2.0**-50 * np.abs(w64).max(axis=1)  # rounding of w - s q in float64
        a, o = grid.scale, grid.offset
        # level 1 runs on |a| s1 and q1 negated when a < 0 (the same products, exactly): its
        # integer limits (cpu_mlp.level1_limits) then read "v < lo" as negative
        flip = -1 if a < 0 else 1
        self.tab = np.stack([
            abs(a) * s1, o * w64.sum(axis=1) + self.bias.astype(np.float64),
            np.abs(r1).max(axis=1) + eps, np.sqrt((r1 * r1).sum(axis=1)) * (1 + 1e-12)
            + eps * math.sqrt(k),
            a * s2, np.abs(r2).max(axis=1) + 2 * eps, np.sqrt((r2 * r2).sum(axis=1))
            * (1 + 1e-12) + 2 * eps * math.sqrt(k),
            np.abs(w64).sum(axis=1) * (1 + 1e-12), np.abs(w64).max(axis=1),
            abs(o) * np.abs(w64).sum(axis=1) + np.abs(self.bias.astype(np.float64))])
        # float64 sums of k terms round by at most k 2**-53 of their magnitude
        self.slack = max(SLACK, 8.0 * (k + 1) * 2.0**-53)
        # level 1 weights: (G, C_pad) int32 words of 4 consecutive k for one channel
        qp = np.zeros((self.c_pad, 4 * self.groups), np.int8)
        qp[:c_out, :k] = q1 * np.int8(flip)
        self.q1 = np.ascontiguousarray(qp.reshape(self.c_pad, self.groups, 4)
                                       .transpose(1, 0, 2)).view(np.int32)[..., 0]
        self.q1 = np.ascontiguousarray(self.q1)
        q2p = np.zeros((c_out, 4 * self.groups), np.int8)
        q2p[:, :k] = q2
        self.q2 = q2p
        self.last: dict[str, int] = {}
        self._local = threading.local()
        tol = GRID_TOLERANCE * abs(a)
        f32 = np.float32
        #: ``cpu_mlp.grid_codes``' scalars; the last turns its computed distances into bounds
        #: of the exact ones
        self._grid_args = (f32(1.0 / a), f32(a), f32(o), f32(grid.levels - 1), f32(tol),
                           _codes_error(grid, tol))

    def _scratch(self, rows: int) -> np.ndarray:
        """The codes of a batch of ``rows`` (padded) rows, kept per thread between calls: fresh
        arrays this large come from ``mmap`` under glibc's default allocator and fault their
        pages in on every call. The codes' bytes past ``K`` stay zero (``grid_codes`` writes
        below ``K``); the caller zeroes the rows past its batch."""
        held = getattr(self._local, "scratch", None)
        if held is None or held.shape[0] != rows:
            held = np.zeros((rows, 4 * self.groups), np.uint8)
            self._local.scratch = held
        return held

    def __call__(self, x: np.ndarray) -> np.ndarray | None:
        from . import cpu, cpu_mlp

        n = x.shape[0]
        rows = -(-n // ROWS) * ROWS
        codes = self._scratch(rows)
        codes[n:] = 0  # a smaller batch than the last of the same padded size
        p32 = codes.view(np.int32)
        l1, l2, err = np.empty(n), np.empty(n), np.empty(n)
        key = np.full(rows, (self.groups + 1) ** 2, np.int64)  # padding rows sort last
        a = self.grid.scale
        args = (*self._grid_args, codes, p32, key, l1, l2, err)
        # the first row alone first: an input off the grid (noise) costs one row, not a batch
        if not (cpu.launch(cpu_mlp.grid_codes, 0, None, x[:1], *args)
                and cpu.launch(cpu_mlp.grid_codes, GRID_WORK * x.size, n, x, *args)):
            self.last = {"off_grid": 1}
            return None
        order = np.argsort(key, kind="stable")  # rows of similar support share a tile
        lo, hi = np.empty(self.c_pad, np.int32), np.empty(self.c_pad, np.int32)
        cpu_mlp.level1_limits(self.tab, a, l1, l2, err, self.slack, lo, hi)
        words = np.empty((n, words_for(self.c_out)), np.uint64)
        stats = np.empty((n, 3), np.int64)
        work = n * self.k * self.c_out if rows > ROWS else 0  # one tile: serial
        cpu.launch(cpu_mlp.certified_signs, work, rows // ROWS, p32,
                   self.q1, order, n, lo, hi, codes, x, l1, l2, err, a, self.w, self.q2,
                   self.bias, self.tab, self.slack, words, stats)
        total = stats.sum(axis=0)
        self.last = {"entries": n * self.c_out, "level2": int(total[0]),
                     "level3": int(total[1]), "undecided": int(total[2])}
        return None if total[2] else words


def _split(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``w = s q + r`` per row: ``q`` int8 in -127 .. 127, ``s = max|w| / 127`` (1 for a zero
    row), ``r`` the float64 residual."""
    s = np.abs(w).max(axis=1) / 127.0
    s = np.where(s > 0, s, 1.0)
    q = np.clip(np.rint(w / s[:, None]), -127, 127)
    return q.astype(np.int8), s, w - s[:, None] * q


def reference_signs(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """NumPy twin: ``x w^T + b < 0`` in float64 with exact products (float32 x float32) and
    ``math.fsum`` for each entry (the sum correctly rounded, so its sign is exact)."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    bias = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
    out = np.empty((x.shape[0], w.shape[0]), bool)
    for n in range(x.shape[0]):
        prods = x64[n][None, :] * w64
        for c in range(w.shape[0]):
            out[n, c] = math.fsum([*prods[c], bias[c]]) < 0
    return out


#: ops this path runs, each with how its dense float32 weights (C, K) and bias are read
SIGN_OPS = ("linear", "binary_linear")


def dense_weights(node: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``(W, b)`` of a ``linear`` node, or of a ``binary_linear`` node with float inputs
    (``W = scale_o * s_ok``: a float32 times +-1, exact)."""
    from .formats import unpack_signs

    if node.op == "linear":
        w = node.tensor("weight", np.float32, ndim=2)
    else:
        words = node.tensor("words", np.uint64, ndim=2)
        scale = node.tensor("scale", np.float32, (words.shape[0],))
        w = scale[:, None] * unpack_signs(words, node.attr("k", int)).astype(np.float32)
    return w, node.optional_tensor("bias", np.float32, (w.shape[0],))


def grid_sign_producer(node: Any, grid: Grid, fallback: Callable[[Any], Any],
                       wrap: Callable[[np.ndarray], Any]) -> Callable[[Any], Any]:
    """The producer function of a float ``linear`` node heading a packed chain: the certified
    integer path where its preconditions hold (``wrap`` makes the packed value), else
    ``fallback`` (the float path), chosen per batch."""
    w, b = dense_weights(node)
    layer = GridSignLayer(w, b, grid)

    def run(x: Any) -> Any:
        if x.ndim == 2 and x.shape[1] == layer.k and x.dtype == np.float32:
            words = layer(np.ascontiguousarray(x))
            if words is not None:
                return wrap(words)
        return fallback(x)

    run.layer = layer  # type: ignore[attr-defined]
    return run
