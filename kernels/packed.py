"""Binary activations that stay packed between binary layers: BatchNorm + sign as one per-channel
integer threshold, pooling on packed bits, and the direct binary conv that reads packed NHWC
words and writes them.

A binary layer's integer accumulator ``acc`` (``k - 2 popcount``) is followed, in a trained
network, by a per-channel affine map (the layer's scale and bias, then BatchNorm, folded into
``alpha * acc + beta``), a monotone activation (hardtanh, identity) and the next layer's sign.
For integer ``acc`` the sign of ``alpha * acc + beta`` is a comparison with one integer per
channel: ``negative == (acc < t) ^ flip`` (:func:`sign_thresholds`), so the next layer's packed
bit is one compare, never a float. Max-pooling commutes with a monotone non-decreasing map such
as sign, and the max of +-1 values is -1 only where all are -1: the pooled bit is the AND of the
window's bits (:func:`max_pool_packed`).

Every function has a NumPy twin (``backend="numpy"``) and a numba backend, equal bit for bit.
Packed activations are NHWC words: bit ``c % 64`` of word ``[n, h, w, c // 64]`` is channel
``c`` (set = -1), padding bits 0 -- the layout of ``cpu.pack_channels``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numba import get_num_threads, parallel_chunksize

from proxcompress.errors import InvalidInputError

from ._checks import check_array
from .formats import pack_negative_mask

__all__ = ["sign_thresholds", "threshold_pack", "max_pool_packed", "binary_conv2d_packed"]

PackedBackend = Literal["numpy", "numba"]
_I32 = np.iinfo(np.int32)


def sign_thresholds(alpha: Any, beta: Any) -> tuple[np.ndarray, np.ndarray]:
    """Integer thresholds ``t`` (int32) and flips (bool) with, for every int32 ``acc``,
    ``(alpha * acc + beta < 0) == ((acc < t) ^ flip)`` per channel, in exact real arithmetic
    of the float64 values of ``alpha`` and ``beta`` (a float32 evaluation can differ where
    ``alpha * acc + beta`` rounds across 0).

    ``alpha > 0``: ``t = ceil(-beta / alpha)``, no flip; ``alpha < 0``: negative where ``acc >
    -beta / alpha``, i.e. not ``acc < floor(-beta / alpha) + 1``; ``alpha == 0``: the sign of
    ``beta`` for every ``acc``.
    """
    a = np.asarray(alpha, np.float64)
    b = np.asarray(beta, np.float64)
    if a.ndim != 1 or b.shape != a.shape:
        raise InvalidInputError("beta", f"shape {b.shape} must equal alpha's 1-D {a.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InvalidInputError("alpha", "alpha and beta must be finite")
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(a != 0, -b / np.where(a != 0, a, 1.0), 0.0)
    t = np.where(a > 0, np.ceil(r), np.floor(r) + 1)
    t = np.clip(t, _I32.min, _I32.max)
    # the division rounds: move each t to the exact boundary (at most a step either way)
    for _ in range(2):
        neg_at_t = a * t + b < 0  # must be False (a > 0) / True (a < 0) at t
        neg_below = a * (t - 1) + b < 0  # must be True (a > 0) / False (a < 0) below t
        t = np.where((a > 0) & neg_at_t, t + 1, t)
        t = np.where((a > 0) & ~neg_below & ~neg_at_t, t - 1, t)
        t = np.where((a < 0) & ~neg_at_t, t + 1, t)
        t = np.where((a < 0) & neg_below, t - 1, t)
        t = np.clip(t, _I32.min, _I32.max)
    flip = a < 0
    const = a == 0  # negative everywhere iff beta < 0: t = max int, flip where beta >= 0
    t = np.where(const, _I32.max, t)
    flip = np.where(const, b >= 0, flip)
    return t.astype(np.int32), flip.astype(bool)


def _check_thresholds(t: Any, flip: Any, n: int) -> None:
    check_array("t", t, ndim=1, dtype=np.int32)
    check_array("flip", flip, ndim=1, dtype=np.bool_)
    if t.shape != (n,) or flip.shape != (n,):
        raise InvalidInputError("t", f"t and flip need shape ({n},), got {t.shape}, "
                                f"{flip.shape}")


def threshold_pack(acc: Any, t: Any, flip: Any, backend: PackedBackend = "numba") -> np.ndarray:
    """Packed signs of the thresholded int32 ``acc`` (..., C): bit ``(acc < t) ^ flip`` per
    channel (last axis), uint64 words (..., ceil(C / 64)), padding bits 0."""
    check_array("acc", acc, dtype=np.int32, contiguous=backend == "numba")
    if acc.ndim < 1:
        raise InvalidInputError("acc", "must have at least one dimension")
    _check_thresholds(t, flip, acc.shape[-1])
    if backend == "numpy":
        return pack_negative_mask((acc < t) ^ flip)
    if backend != "numba":
        raise InvalidInputError("backend", f"{backend!r} is not one of ('numpy', 'numba')")
    from . import cpu, cpu_packed

    flat = acc.reshape(-1, acc.shape[-1])
    out = np.empty((flat.shape[0], -(-acc.shape[-1] // 64)), np.uint64)
    cpu.launch(cpu_packed.threshold_pack_rows, flat.size, None, flat, t, flip, out)
    return out.reshape(*acc.shape[:-1], out.shape[1])


def max_pool_packed(words: Any, kernel: int, stride: int | None = None,
                    backend: PackedBackend = "numba") -> np.ndarray:
    """Max-pooling of packed +-1 activations (N, H, W, Q) words, no padding: the AND of the
    window's words (-1 only where every value is -1). Output (N, Ho, Wo, Q) with ``Ho = (H -
    kernel) // stride + 1``."""
    check_array("words", words, ndim=4, dtype=np.uint64, contiguous=backend == "numba")
    stride = kernel if stride is None else stride
    for field, v in (("kernel", kernel), ("stride", stride)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise InvalidInputError(field, f"= {v!r}: expected an int >= 1")
    n, h, w, q = words.shape
    if kernel > min(h, w):
        raise InvalidInputError("kernel", f"= {kernel} exceeds the input's {h} x {w}")
    ho, wo = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    if backend == "numpy":
        out = np.full((n, ho, wo, q), np.uint64(2**64 - 1))
        for i in range(kernel):
            for j in range(kernel):
                out &= words[:, i:i + stride * (ho - 1) + 1:stride,
                             j:j + stride * (wo - 1) + 1:stride]
        return out
    if backend != "numba":
        raise InvalidInputError("backend", f"{backend!r} is not one of ('numpy', 'numba')")
    return pool_words(words, kernel, stride)


def pool_words(words: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """:func:`max_pool_packed` on the numba backend without its argument checks: for packed
    words a model's own steps wrote (contiguous uint64 (N, H, W, Q), ``kernel`` no larger
    than the image). Serial below ``cpu.SERIAL_WORK``."""
    from . import cpu, cpu_packed

    n, h, w, q = words.shape
    out = np.empty((n, (h - kernel) // stride + 1, (w - kernel) // stride + 1, q), np.uint64)
    cpu.launch(cpu_packed.max_pool_words, out.size * kernel * kernel, None, words, kernel,
               stride, out)
    return out


def binary_conv2d_packed(words: Any, w_taps: Any, n_ch: int, stride: tuple[int, int],
                         padding: tuple[int, int], dilation: tuple[int, int], pad_sum: Any,
                         t: Any, flip: Any, backend: PackedBackend = "numba") -> np.ndarray:
    """Direct binary conv of packed NHWC input ``words`` (N, H, W, Q) with the per-tap weight
    words ``w_taps`` (kh, kw, Q, O) and the padding term ``pad_sum`` (kh, kw, O) of
    ``cpu.binary_conv_direct``, thresholded per output channel and packed: (N, Ho, Wo,
    ceil(O / 64)) words of ``(acc < t) ^ flip``. No float and no unpacked activation exists."""
    check_array("words", words, ndim=4, dtype=np.uint64, contiguous=True)
    check_array("w_taps", w_taps, ndim=4, dtype=np.uint64, contiguous=True)
    if w_taps.shape[2] != words.shape[3]:
        raise InvalidInputError("w_taps", f"has {w_taps.shape[2]} words per tap, the input "
                                f"{words.shape[3]}")
    n_out = w_taps.shape[3]
    _check_thresholds(t, flip, n_out)
    n, h, w, _ = words.shape
    kh, kw = w_taps.shape[:2]
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if min(ho, wo) < 1:
        raise InvalidInputError("w_taps", f"kernel ({kh}, {kw}) does not fit the input")
    from . import cpu

    if backend == "numpy":
        acc = np.empty((n, n_out, ho, wo), np.int32)
        cpu.binary_conv_direct(words, w_taps, n_ch, stride, padding, dilation, pad_sum, acc)
        return threshold_pack(np.ascontiguousarray(acc.transpose(0, 2, 3, 1)), t, flip,
                              backend="numpy")
    if backend != "numba":
        raise InvalidInputError("backend", f"{backend!r} is not one of ('numpy', 'numba')")
    from . import cpu_packed

    out = np.empty((n, ho, wo, -(-n_out // 64)), np.uint64)
    if not _TAP_ROWS:  # the previous kernel (one word run per tap), for same-run ablations
        with parallel_chunksize(cpu._chunked(n * ho)):
            cpu_packed.binary_conv_threshold(words, w_taps, n_ch, stride, padding, dilation,
                                             pad_sum, t, flip, out)
        return out
    RowConv(w_taps, n_ch, stride, padding, dilation, pad_sum).threshold(words, t, flip, out)
    return out


#: private switch: ``False`` runs the previous per-tap kernels (benchmark ablations only)
_TAP_ROWS = True
_NO_SCALE = np.zeros(1, np.float32)  # the int32 finish reads no scale


def row_weights(w_taps: np.ndarray, n_ch: int) -> np.ndarray:
    """Per-tap weight words (kh, kw, Q, O) to per-row words (kh, Qr, O): bit ``j * n_ch + c``
    of row ``i`` is channel ``c``'s bit at tap ``(i, j)``, Qr = ceil(kw n_ch / 64), padding
    bits 0."""
    kh, kw, q, n_out = w_taps.shape
    shifts = np.arange(64, dtype=np.uint64)
    bits = (w_taps[..., None, :] >> shifts[:, None]) & np.uint64(1)  # (kh, kw, Q, 64, O)
    bits = bits.reshape(kh, kw, q * 64, n_out)[:, :, :n_ch]  # (kh, kw, C, O)
    rows = bits.transpose(0, 3, 1, 2).reshape(kh, n_out, kw * n_ch) != 0
    return np.ascontiguousarray(pack_negative_mask(rows).transpose(0, 2, 1))


class RowConv:
    """The direct binary conv of :func:`binary_conv2d_packed` with the taps of each kernel row
    packed into one run of words (``cpu_packed.binary_conv_rows``): a row of ``kw`` taps of
    ``n_ch`` channels takes ``ceil(kw n_ch / 64)`` words instead of ``kw ceil(n_ch / 64)``
    (16 channels, 3 taps: one word instead of three), and the output pixels of a row are the
    vector lanes. Bit for bit the accumulators of ``cpu.binary_conv_direct``. The border
    terms depend on the input width: computed once per width."""

    def __init__(self, w_taps: np.ndarray, n_ch: int, stride: tuple[int, int],
                 padding: tuple[int, int], dilation: tuple[int, int], pad_sum: Any) -> None:
        self.wr = row_weights(w_taps, n_ch)
        self.kh, self.kw = w_taps.shape[:2]
        self.n_ch, self.stride, self.padding, self.dilation = n_ch, stride, padding, dilation
        self.pad_sum = np.ascontiguousarray(pad_sum, dtype=np.int64)
        self._terms: dict[tuple[int, int], tuple[np.ndarray, int, int, int]] = {}

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        from .conv import conv_output_size

        return conv_output_size((h, w), (self.kh, self.kw), self.stride, self.padding,
                                self.dilation)

    def work(self, words: np.ndarray) -> int:
        """Word operations of one call on ``words`` (``cpu.launch``'s ``work``)."""
        ho, wo = self.out_size(*words.shape[1:3])
        return words.shape[0] * ho * wo * self.wr.shape[2] * self.kh * self.wr.shape[1]

    def _plan(self, words: np.ndarray) -> tuple[np.ndarray, int, int, int, int]:
        """The base terms of ``words``' size, the output size ``(ho, wo)`` (both cached per
        input size), the output rows per task (a whole image when the call runs serially) and
        the call's :meth:`work`."""
        from . import cpu, cpu_packed

        h, width = words.shape[1:3]
        cached = self._terms.get((h, width))
        if cached is None:
            ho, wo = self.out_size(h, width)
            rin, rout = cpu_packed.row_window_terms(self.wr, self.n_ch, width, wo,
                                                    self.stride[1], self.padding[1],
                                                    self.dilation[1], self.kw, self.pad_sum, wo)
            base = cpu_packed.row_conv_base(rin, rout, self.wr, h, ho, wo, self.stride[0],
                                            self.padding[0], self.dilation[0])
            cached = self._terms[(h, width)] = (base, ho, wo, self.work(words[:1]))
        base, ho, wo, per_image = cached
        work = per_image * words.shape[0]
        if work < cpu.SERIAL_WORK:
            return base, ho, wo, ho, work
        # one image per task; with few images, blocks of rows so every thread gets two
        parts = -(-2 * get_num_threads() // words.shape[0])
        rows = max(1, -(-ho // parts), -(-32 // wo)) if parts > 1 else ho
        return base, ho, wo, min(rows, ho), work

    def acc(self, words: np.ndarray) -> np.ndarray:
        """int32 accumulators (N, O, Ho, Wo) of packed NHWC ``words``."""
        from . import cpu, cpu_packed

        n = words.shape[0]
        base, ho, wo, rows, work = self._plan(words)
        out = np.empty((n, self.wr.shape[2], ho, wo), np.int32)
        cpu.launch(cpu_packed.binary_conv_rows, work, n * -(-ho // rows), words, self.wr,
                   self.n_ch, self.stride, self.padding, self.dilation, self.kw, base, rows,
                   _NO_SCALE, _NO_SCALE, 0, out)
        return out

    def affine(self, words: np.ndarray, scale: np.ndarray, bias: np.ndarray | None
               ) -> np.ndarray:
        """float32 (N, O, Ho, Wo): ``float32(acc) * scale`` (``+ bias``), per output channel."""
        from . import cpu, cpu_packed

        n = words.shape[0]
        base, ho, wo, rows, work = self._plan(words)
        out = np.empty((n, self.wr.shape[2], ho, wo), np.float32)
        b = scale if bias is None else bias
        cpu.launch(cpu_packed.binary_conv_rows, work, n * -(-ho // rows), words, self.wr,
                   self.n_ch, self.stride, self.padding, self.dilation, self.kw, base, rows,
                   scale, b, 1 if bias is None else 2, out)
        return out

    @staticmethod
    def int_pool(scale: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        """The channels :meth:`affine_pool` pools as accumulators, before the (monotone)
        affine map: finite ``scale`` and ``bias``, ``|scale| >= 2^-100``."""
        b = scale if bias is None else bias
        return np.isfinite(scale) & np.isfinite(b) & (np.abs(scale) >= 2.0**-100)

    def affine_pool(self, words: np.ndarray, scale: np.ndarray, bias: np.ndarray | None,
                    lo: float, hi: float, pool: int, int_pool: np.ndarray | None = None
                    ) -> np.ndarray:
        """:meth:`affine`, clipped to ``[lo, hi]`` and max-pooled ``pool x pool`` with stride
        ``pool`` (no padding) in the epilogue: float32 (N, O, Ho // pool, Wo // pool).
        ``int_pool``: :meth:`int_pool` of ``scale`` and ``bias`` (computed when ``None``)."""
        from . import cpu, cpu_packed

        if not (lo < 0 < hi):
            raise InvalidInputError("lo", f"clip bounds ({lo}, {hi}) must satisfy lo < 0 < hi")
        base, ho, wo, _, work = self._plan(words)
        out = np.empty((words.shape[0], self.wr.shape[2], ho // pool, wo // pool), np.float32)
        b = scale if bias is None else bias
        if int_pool is None:
            int_pool = self.int_pool(scale, bias)
        cpu.launch(cpu_packed.binary_conv_rows_pool, work, None, words, self.wr, self.n_ch,
                   self.stride, self.padding, self.dilation, self.kw, base, ho, wo, scale, b,
                   bias is not None, np.float32(lo), np.float32(hi), pool, int_pool, out)
        return out

    def threshold(self, words: np.ndarray, t: np.ndarray, flip: np.ndarray,
                  out: np.ndarray | None = None) -> np.ndarray:
        """Packed NHWC words (N, Ho, Wo, ceil(O / 64)) of ``(acc < t) ^ flip``."""
        from . import cpu, cpu_packed

        n = words.shape[0]
        base, ho, wo, rows, work = self._plan(words)
        if out is None:
            out = np.empty((n, ho, wo, -(-self.wr.shape[2] // 64)), np.uint64)
        cpu.launch(cpu_packed.binary_conv_rows_threshold, work, n * -(-ho // rows), words,
                   self.wr, self.n_ch, self.stride, self.padding, self.dilation, self.kw, base,
                   rows, t, flip, out)
        return out
