"""numba kernels of :mod:`.packed`: per-channel thresholds to packed sign words, max-pooling of
packed words, and the direct binary conv with the threshold epilogue (packed in, packed out)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .cpu import conv_pixel


@njit(inline="always")
def _pack_row(acc, t, flip, out_row):  # type: ignore[no-untyped-def]
    """``out_row[q]``: bits ``(acc[c] < t[c]) ^ flip[c]`` of channels ``64 q .. 64 q + 63``."""
    n_ch = acc.shape[0]
    for q in range(out_row.shape[0]):
        word = np.uint64(0)
        for c in range(64 * q, min(n_ch, 64 * q + 64)):
            bit = (acc[c] < t[c]) != flip[c]
            word |= np.uint64(bit) << np.uint64(c - 64 * q)
        out_row[q] = word


@njit(parallel=True, cache=True, nogil=True)
def threshold_pack_rows(acc, t, flip, out):  # type: ignore[no-untyped-def]
    """Rows of int32 ``acc`` (R, C) to packed words (R, ceil(C / 64))."""
    for r in prange(acc.shape[0]):
        _pack_row(acc[r], t, flip, out[r])


@njit(parallel=True, cache=True, nogil=True)
def max_pool_words(words, kernel, stride, out):  # type: ignore[no-untyped-def]
    """AND of each ``kernel x kernel`` window of (N, H, W, Q) words (the max of +-1 values)."""
    n_img, ho, wo, n_words = out.shape
    for task in prange(n_img * ho):
        n, oy = task // ho, task % ho
        for ox in range(wo):
            for q in range(n_words):
                acc = ~np.uint64(0)
                for i in range(kernel):
                    for j in range(kernel):
                        acc &= words[n, oy * stride + i, ox * stride + j, q]
                out[n, oy, ox, q] = acc


@njit(parallel=True, cache=True, nogil=True)
def binary_conv_threshold(xw, wt, n_ch, stride, padding, dilation, pad_sum, t, flip,
                          out):  # type: ignore[no-untyped-def]
    """``cpu.binary_conv_direct`` whose epilogue thresholds each output pixel's channels and
    writes packed NHWC words ``out`` (N, Ho, Wo, ceil(O / 64)); rows (n, oy) are the tasks."""
    ho, wo = out.shape[1], out.shape[2]
    for task in prange(xw.shape[0] * ho):
        n, oy = task // ho, task % ho
        acc = np.empty(wt.shape[3], np.int64)
        for ox in range(wo):
            conv_pixel(xw, wt, n_ch, stride, padding, dilation, pad_sum, n, oy, ox, acc)
            _pack_row(acc, t, flip, out[n, oy, ox])


@njit(parallel=True, cache=True, nogil=True)
def float_conv_sign(x, wt, bias, stride, padding, dilation, out, zero):  # type: ignore[no-untyped-def]
    """A float32 direct conv (NCHW ``x``, weights ``wt`` as (kh, kw, C, O), zero padding)
    plus ``bias``, whose epilogue packs the signs of the outputs into NHWC words ``out`` (N, Ho,
    Wo, ceil(O / 64)); ``zero[task]`` is set where an output is exactly 0 (the caller then
    runs the float layer instead). The O outputs of a pixel are the vector lanes; rows (n, oy)
    are the tasks. No float output array is written."""
    n_img, n_ch, height, width = x.shape
    kh, kw, _, n_out = wt.shape
    ho, wo = out.shape[1], out.shape[2]
    for task in prange(n_img * ho):
        n, oy = task // ho, task % ho
        acc = np.empty(n_out, np.float32)
        zero[task] = 0
        for ox in range(wo):
            acc[:] = bias
            for i in range(kh):
                iy = oy * stride[0] - padding[0] + i * dilation[0]
                if iy < 0 or iy >= height:
                    continue
                for j in range(kw):
                    ix = ox * stride[1] - padding[1] + j * dilation[1]
                    if ix < 0 or ix >= width:
                        continue
                    for c in range(n_ch):
                        v = x[n, c, iy, ix]
                        for o in range(n_out):
                            acc[o] += v * wt[i, j, c, o]
            for q in range(out.shape[3]):
                word = np.uint64(0)
                for o in range(64 * q, min(n_out, 64 * q + 64)):
                    if acc[o] == 0:
                        zero[task] = 1
                    word |= np.uint64(acc[o] < 0) << np.uint64(o - 64 * q)
                out[n, oy, ox, q] = word
