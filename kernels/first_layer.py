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

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from proxcompress.errors import InvalidInputError

from ._checks import words_for
from .simd import _I32, _I64, _Loop, _splat, _wide, target_features

#: largest deviation from the grid, in grid steps ``|a|``, that a batch may show and still take
#: the integer path. Float32 resolves a step of 256 levels into about 2**16 ulps, so a data
#: pipeline's rounding (Fashion-MNIST's: 1.2e-5 steps) and ``_codes``' own float32 rounding
#: (a few ulps) stay far below it; it enters every bound as ``max|e_n| ||w_c||_1``
GRID_TOLERANCE = 1e-3
#: relative slack added to every bound for the float64 evaluation of the estimate (at least;
#: ``8 (K + 1) 2**-53`` for long rows)
SLACK = 2.0**-40
#: rows of the input (samples) and 16-channel column vectors per micro-kernel tile
ROWS, COLS = 4, 4
LANES = 16  # int32 lanes per zmm
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
    _, enabled = target_features()
    return all(f in enabled for f in REQUIRES)


# ------------------------------------------------------------------ the int8 GEMM micro-kernel
_I8 = ir.IntType(8)
_V32 = ir.VectorType(_I32, LANES)
_V8 = ir.VectorType(_I8, 4 * LANES)


def _vpdpbusd(builder: Any, acc: Any, u8: Any, s8: Any) -> Any:
    """``acc + sum of 4 adjacent u8 x s8 products`` per int32 lane (``vpdpbusd zmm``). LLVM
    21+ types the byte operands as <64 x i8>, earlier versions as <16 x i32>."""
    import llvmlite.binding as ll

    name = "llvm.x86.avx512.vpdpbusd.512"
    byte_ty = _V8 if ll.llvm_version_info[0] >= 21 else _V32
    fn = builder.module.globals.get(name)
    if fn is None:
        fn = ir.Function(builder.module, ir.FunctionType(_V32, [_V32, byte_ty, byte_ty]),
                         name=name)
    return builder.call(fn, [acc, builder.bitcast(u8, byte_ty), builder.bitcast(s8, byte_ty)])


@intrinsic
def _tile(typingctx, p, q, acc, order, i, j):  # type: ignore[no-untyped-def]
    """``acc[m, j + 16 c + l] = sum_g dot4(p[m, g], q[g, j + 16 c + l])`` with
    ``m = order[i + r]`` for a ``ROWS x COLS`` tile: ``p`` (rows, G) int32 words of 4 u8
    pixels, ``q`` (G, C) int32 words of 4 s8 weights; a word group where every row's pixels
    are 0 is skipped (``order`` groups rows of similar support: fewer groups to do)."""
    sig = types.void(p, q, acc, order, i, j)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        _wide(builder)
        p_arr = context.make_array(signature.args[0])(context, builder, args[0])
        q_arr = context.make_array(signature.args[1])(context, builder, args[1])
        a_arr = context.make_array(signature.args[2])(context, builder, args[2])
        o_arr = context.make_array(signature.args[3])(context, builder, args[3])
        i_val = context.cast(builder, args[4], signature.args[4], types.int64)
        j_val = context.cast(builder, args[5], signature.args[5], types.int64)
        groups = cgutils.unpack_tuple(builder, p_arr.shape)[1]
        ldq = cgutils.unpack_tuple(builder, q_arr.shape)[1]
        lda = cgutils.unpack_tuple(builder, a_arr.shape)[1]
        picked = [builder.load(builder.gep(o_arr.data, [builder.add(i_val, ir.Constant(_I64, r))]))
                  for r in range(ROWS)]
        rows = [builder.mul(m, groups) for m in picked]
        zero = ir.Constant(_V32, None)
        loop = _Loop(builder, ir.Constant(_I64, 0), groups, [zero] * (ROWS * COLS), "g")
        words = [builder.load(builder.gep(p_arr.data, [builder.add(rows[r], loop.idx)]),
                              align=4) for r in range(ROWS)]
        any_word = words[0]
        for w in words[1:]:
            any_word = builder.or_(any_word, w)
        body = builder.block
        work = builder.append_basic_block("g.work")
        join = builder.append_basic_block("g.join")
        builder.cbranch(builder.icmp_unsigned("!=", any_word, ir.Constant(_I32, 0)), work, join)
        builder.position_at_end(work)
        base = builder.add(builder.mul(loop.idx, ldq), j_val)
        wv = []
        for c in range(COLS):
            ptr = builder.gep(q_arr.data, [builder.add(base, ir.Constant(_I64, c * LANES))])
            wv.append(builder.load(builder.bitcast(ptr, _V32.as_pointer()), align=4))
        new = []
        for r in range(ROWS):
            pv = _splat(builder, words[r], LANES)
            for c in range(COLS):
                new.append(_vpdpbusd(builder, loop.vals[r * COLS + c], pv, wv[c]))
        builder.branch(join)
        builder.position_at_end(join)
        merged = []
        for k, v in enumerate(new):
            phi = builder.phi(_V32)
            phi.add_incoming(loop.vals[k], body)
            phi.add_incoming(v, work)
            merged.append(phi)
        sums = loop.close(1, merged)
        for r in range(ROWS):
            row = builder.mul(picked[r], lda)
            for c in range(COLS):
                at = builder.add(builder.add(row, j_val), ir.Constant(_I64, c * LANES))
                ptr = builder.bitcast(builder.gep(a_arr.data, [at]), _V32.as_pointer())
                builder.store(sums[r * COLS + c], ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(parallel=True, cache=True)
def _int_gemm(p, q, acc, order):  # type: ignore[no-untyped-def]
    """``acc = p . q`` (int32) over tiles of the rows ``order`` lists, rows and columns padded
    to the tile."""
    row_tiles = p.shape[0] // ROWS
    col_tiles = q.shape[1] // (COLS * LANES)
    for t in prange(row_tiles * col_tiles):
        _tile(p, q, acc, order, (t // col_tiles) * ROWS, (t % col_tiles) * COLS * LANES)


@numba.njit(parallel=True, cache=True)
def _codes(x, inv_scale, scale, offset, top, tol, codes, l1, l2, err):  # type: ignore[no-untyped-def]
    """Grid codes ``p`` of ``x`` (N, K) into ``codes`` (rows >= N, 4 G >= K, zero padding) and
    per row ``||p||_1``, ``||p||_2`` and an upper bound of its largest computed distance
    ``|x - (a p + o)|`` (in units of ``tol / 2**20``, rounded up). Returns false when some
    value is off the grid: farther than ``tol`` from ``a p + o``, or ``p`` outside
    ``0 .. top``. In float32 (16 lanes; the scalars are float32): the distance it computes is
    within :func:`_codes_error` of the exact one. (Branch-free, integer reductions: the loop
    vectorises.)"""
    n, k = x.shape
    lo, hi, half3 = np.float32(-1.0), top + np.float32(1.0), np.float32(1.5)
    cap, units = tol + tol, np.float32(2.0**20) / tol
    bad = 0
    for r in prange(n):
        s1 = 0
        s2 = 0
        off = 0
        most = 0
        for c in range(k):
            v = x[r, c]
            t = (v - offset) * inv_scale
            t = t if t > lo else lo  # also catches NaN: never on the grid below
            t = t if t < hi else hi
            q = np.int32(t + half3) - 1  # round to nearest (t + 1.5 > 0: truncation floors)
            d = abs(v - (scale * np.float32(q) + offset))
            off += (d > tol) | (q < 0) | (q > top)
            dq = np.int32((d if d < cap else cap) * units)  # <= 2**21 (NaN: cap)
            most = most if most > dq else dq
            codes[r, c] = np.uint8(q)
            s1 += q
            s2 += q * q
        l1[r] = s1
        l2[r] = math.sqrt(s2)
        err[r] = (most + 1) * (np.float64(tol) / 2.0**20) * (1 + 2.0**-20)
        bad += off
    return bad == 0


def _codes_error(grid: Grid, tol: float) -> float:
    """How far ``_codes``' float32 distance ``|x - (a32 p + o32)|`` can lie from the exact
    ``|x - (a p + o)|``: the grid's own float32 rounding (``|a - a32| p + |o - o32|``) and
    three roundings of at most ``2**-24`` of magnitudes below ``|a| top + |o| + tol``;
    doubled."""
    top = grid.levels - 1
    a32, o32 = float(np.float32(grid.scale)), float(np.float32(grid.offset))
    own = abs(grid.scale - a32) * top + abs(grid.offset - o32)
    return 2.0 * (own + 3 * 2.0**-24 * (abs(grid.scale) * top + abs(grid.offset) + 2 * tol))


@numba.njit(cache=True)
def _support_order(words, n):  # type: ignore[no-untyped-def]
    """The rows of ``words`` (rows, G) int32 groups of 4 pixels sorted by their support: the
    span from the first to the last non-zero group, then the count of non-zero groups (rows
    with similar keys share zero groups, which a tile skips only when all its rows have them;
    on Fashion-MNIST a tile of 4 then does 71% of the groups, 89% unsorted); padding rows
    (from ``n``) last."""
    rows, g = words.shape
    key = np.empty(rows, np.int64)
    for r in range(rows):
        count = 0
        for c in range(g):
            count += words[r, c] != 0
        first = 0
        while first < g and words[r, first] == 0:
            first += 1
        last = g - 1
        while last > first and words[r, last] == 0:
            last -= 1
        key[r] = (last - first) * (g + 1) + count if r < n else (g + 1) ** 2
    return np.argsort(key, kind="mergesort")


@numba.njit(cache=True)
def _dot_u8_s8(p, q):  # type: ignore[no-untyped-def]
    s = np.int32(0)
    for k in range(p.shape[0]):
        s += np.int32(p[k]) * np.int32(q[k])
    return s


@numba.njit(cache=True)
def _decide(r, c, y, base, codes, x, l1, l2, a, w, q2, bias, tab, count):  # type: ignore[no-untyped-def]
    """Levels 2 and 3 of entry ``(r, c)`` whose level-1 estimate ``y`` is within its bound:
    the final estimate (its sign certified unless ``count[2]`` was incremented)."""
    aa = abs(a)
    if tab[2, c] > 2.0 * tab[5, c]:  # level 2 narrows the bound (not so for binary weights)
        count[0] += 1
        y += tab[4, c] * _dot_u8_s8(codes[r], q2[c])
        if abs(y) > aa * min(l1[r] * tab[5, c], l2[r] * tab[6, c]) + base:
            return y
    count[1] += 1
    y = np.float64(bias[c])
    mag = abs(y)
    for kk in range(x.shape[1]):
        t = np.float64(x[r, kk]) * np.float64(w[c, kk])  # exact: float32 x float32
        y += t
        mag += abs(t)
    if abs(y) <= (x.shape[1] + 1) * 2.0**-53 * mag * 1.01:
        count[2] += 1
    return y


@numba.njit(parallel=True, cache=True)
def _signs(acc, codes, x, l1, l2, err, a, w, q2, bias, tab, slack, words, flags, stats):  # type: ignore[no-untyped-def]
    """The certified signs of ``y = x w^T + bias`` into packed ``words`` (bit set = negative),
    by the three levels of the module docstring. ``tab`` per channel (rows): ``a s1``,
    ``o sum(w) + b``, ``max|r1|``, ``||r1||_2``, ``a s2``, ``max|r2|``, ``||r2||_2``,
    ``||w||_1``, ``max|w|``, ``|o| ||w||_1 + |b|`` (the scale of ``o sum(w) + b``'s
    rounding); ``slack`` the relative slack of the float64 evaluation. ``stats[n]``: entries
    of row ``n`` that needed level 2, level 3, and undecided ones (any undecided entry: the
    caller runs the float path). ``flags``: scratch like ``words``, the entries within their
    level-1 bound."""
    n, c_out = x.shape[0], w.shape[0]
    aa = abs(a)
    for r in prange(n):
        l1r, l2r, er = l1[r], l2[r], err[r]
        close = 0
        for wd in range(words.shape[1]):
            bits = np.uint64(0)
            near = np.uint64(0)
            for j in range(min(64, c_out - 64 * wd)):
                c = 64 * wd + j
                s1 = tab[0, c] * acc[r, c]
                y = s1 + tab[1, c]
                bound = (aa * min(l1r * tab[2, c], l2r * tab[3, c]) + tab[7, c] * er
                         + slack * (abs(s1) + tab[9, c] + aa * l1r * tab[8, c]))
                near |= np.uint64(abs(y) <= bound) << np.uint64(j)
                bits |= np.uint64(y < 0) << np.uint64(j)
            words[r, wd] = bits
            flags[r, wd] = near
            close += near != 0
        count = np.zeros(3, np.int64)
        if close:  # the few entries within their bound: again, through levels 2 and 3
            for wd in range(words.shape[1]):
                near = flags[r, wd]
                while near:
                    j = 0
                    while not (near >> np.uint64(j)) & np.uint64(1):
                        j += 1
                    near &= ~(np.uint64(1) << np.uint64(j))
                    c = 64 * wd + j
                    s1 = tab[0, c] * acc[r, c]
                    base = tab[7, c] * er + slack * (abs(s1) + tab[9, c] + aa * l1r * tab[8, c])
                    y = _decide(r, c, s1 + tab[1, c], base, codes, x, l1, l2, a, w, q2, bias,
                                tab, count)
                    bit = np.uint64(1) << np.uint64(j)
                    words[r, wd] = (words[r, wd] | bit) if y < 0 else (words[r, wd] & ~bit)
        stats[r, 0] = count[0]
        stats[r, 1] = count[1]
        stats[r, 2] = count[2]


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
        self.tab = np.stack([
            a * s1, o * w64.sum(axis=1) + self.bias.astype(np.float64),
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
        qp[:c_out, :k] = q1
        self.q1 = np.ascontiguousarray(qp.reshape(self.c_pad, self.groups, 4)
                                       .transpose(1, 0, 2)).view(np.int32)[..., 0]
        self.q1 = np.ascontiguousarray(self.q1)
        q2p = np.zeros((c_out, 4 * self.groups), np.int8)
        q2p[:, :k] = q2
        self.q2 = q2p
        self.last: dict[str, int] = {}
        self._local = threading.local()

    def _scratch(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The codes and accumulators of a batch of ``rows`` (padded) rows, kept per thread
        between calls: fresh arrays this large come from ``mmap`` under glibc's default
        allocator and fault their pages in on every call. The codes' bytes past ``K`` stay
        zero (``_codes`` writes below ``K``); the caller zeroes the rows past its batch."""
        held = getattr(self._local, "scratch", None)
        if held is None or held[0].shape[0] != rows:
            held = (np.zeros((rows, 4 * self.groups), np.uint8),
                    np.empty((rows, self.c_pad), np.int32))
            self._local.scratch = held
        return held

    def __call__(self, x: np.ndarray) -> np.ndarray | None:
        n = x.shape[0]
        rows = -(-n // ROWS) * ROWS
        codes, acc = self._scratch(rows)
        codes[n:] = 0  # a smaller batch than the last of the same padded size
        l1, l2, err = np.empty(n), np.empty(n), np.empty(n)
        g = self.grid
        a = g.scale
        tol = GRID_TOLERANCE * abs(a)
        f32 = np.float32
        args = (f32(1.0 / a), f32(a), f32(g.offset), f32(g.levels - 1), f32(tol))
        # the first row alone first: an input off the grid (noise) costs one row, not a batch
        if not (_codes(x[:1], *args, codes, l1, l2, err)
                and _codes(x, *args, codes, l1, l2, err)):
            self.last = {"off_grid": 1}
            return None
        err += _codes_error(g, tol)  # computed distances -> exact ones
        p32 = codes.view(np.int32)
        _int_gemm(p32, self.q1, acc, _support_order(p32, n))
        words = np.empty((n, words_for(self.c_out)), np.uint64)
        stats = np.empty((n, 3), np.int64)
        _signs(acc, codes, x, l1, l2, err, a, self.w, self.q2, self.bias, self.tab,
               self.slack, words, np.empty_like(words), stats)
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
