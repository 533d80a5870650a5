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



@njit(parallel=True, cache=True, nogil=True)
def float_conv3x3_sign(x, wt, bias, padding, out, zero):  # type: ignore[no-untyped-def]
    """:func:`float_conv_sign` for one input channel, a 3 x 3 kernel, stride and dilation 1
    (a first layer on grey images): the output pixels of a row are the vector lanes. Per task
    (n, oy) the three input rows are copied once, zero-padded to a whole number of 16-lane
    vectors; per output channel each pixel's sum ``bias + taps`` is one expression in the taps'
    order (i, j), the same float operations as :func:`float_conv_sign` (the same signs), so
    the partial sums stay in registers (a tap loop would store and reload them per tap);
    then bit ``o`` of each pixel's word. Same arguments as :func:`float_conv_sign` (no
    stride, dilation) and the same results."""
    n_img, _, height, width = x.shape
    n_out = wt.shape[3]
    ho, wo = out.shape[1], out.shape[2]
    n_words = out.shape[3]
    py, px = padding
    lanes = (wo + 15) // 16 * 16
    for task in prange(n_img * ho):
        n, oy = task // ho, task % ho
        rows = np.zeros((3, lanes + 2), np.float32)
        for i in range(3):
            iy = oy - py + i
            if 0 <= iy < height:
                for b in range(max(0, px), min(lanes + 2, width + px)):
                    rows[i, b] = x[n, 0, iy, b - px]
        r0, r1, r2 = rows[0], rows[1], rows[2]
        acc = np.empty(lanes, np.float32)
        words = np.zeros((n_words, lanes), np.uint64)
        hit = False
        for o in range(n_out):
            bo = bias[o]
            w00, w01, w02 = wt[0, 0, 0, o], wt[0, 1, 0, o], wt[0, 2, 0, o]
            w10, w11, w12 = wt[1, 0, 0, o], wt[1, 1, 0, o], wt[1, 2, 0, o]
            w20, w21, w22 = wt[2, 0, 0, o], wt[2, 1, 0, o], wt[2, 2, 0, o]
            for ox in range(lanes):
                acc[ox] = ((((((((bo + w00 * r0[ox]) + w01 * r0[ox + 1]) + w02 * r0[ox + 2])
                              + w10 * r1[ox]) + w11 * r1[ox + 1]) + w12 * r1[ox + 2])
                            + w20 * r2[ox]) + w21 * r2[ox + 1]) + w22 * r2[ox + 2]
            q, bit = o // 64, np.uint64(o % 64)
            for ox in range(lanes):
                words[q, ox] |= np.uint64(acc[ox] < 0) << bit
            for ox in range(wo):
                hit |= acc[ox] == 0
        zero[task] = hit
        for ox in range(wo):
            for q in range(n_words):
                out[n, oy, ox, q] = words[q, ox]
