"""numba kernels of :mod:`.packed`: per-channel thresholds to packed sign words, max-pooling of
packed words, and the direct binary conv with the threshold epilogue (packed in, packed out)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .cpu import _popcount, conv_pixel
from .numba_cache import key_on_package


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
def float_conv3x3_sign(x, wt, bias, padding, rows, pool, out, zero):  # type: ignore[no-untyped-def]
    """:func:`float_conv_sign` for one input channel, a 3 x 3 kernel, stride and dilation 1
    (a first layer on grey images): output pixels are the vector lanes. A task is a block of
    ``rows`` output rows of one image (a whole image at a large batch): its input rows are
    copied once into a flat zero-padded scratch of rows ``Wo + 2`` long, so output (r, c) of
    the block is lane ``r (Wo + 2) + c`` and tap (i, j) reads lane ``+ i (Wo + 2) + j``; per
    channel one loop runs over the whole block's lanes (the 2 lanes past ``Wo`` per row are
    computed and never read), so the loop's fixed cost is paid once per block and channel,
    not per row. Each pixel's sum ``bias + taps`` is one expression in the taps' order (i, j),
    the same float operations as :func:`float_conv_sign` (the same signs); its sign goes
    straight into bit ``o % 32`` of a 32-bit half word per lane (half the vector width of
    64-bit words; the halves are joined in the epilogue) and an exact 0 into a per-lane
    count. With ``pool`` > 1 the epilogue max-pools the signs (``pool`` x ``pool`` windows,
    stride ``pool``, no padding: the AND of the window's words, as :func:`max_pool_words`)
    and ``out`` is the pooled (N, Ho // pool, Wo // pool, Q): the conv's words are never
    stored; ``rows`` must then be a multiple of ``pool`` (a window's rows in one task).
    ``zero`` flags every conv row (N * Ho), pooled away or not. Otherwise the same arguments
    as :func:`float_conv_sign` (no stride, dilation; ``rows`` >= 1) and, for ``pool = 1``,
    the same results."""
    n_img, _, height, width = x.shape
    n_out = wt.shape[3]
    py, px = padding
    ho, wo = height + 2 * py - 2, width + 2 * px - 2
    n_words = out.shape[3]
    span = wo + 2  # a padded input row; output (r, c) is lane r * span + c of its block
    blocks = (ho + rows - 1) // rows
    for task in prange(n_img * blocks):
        n, oy0 = task // blocks, task % blocks * rows
        oy1 = min(ho, oy0 + rows)
        lanes = (oy1 - oy0) * span
        # rows + 2 input rows, zero-padded, and one more row: the lanes of the columns past
        # wo (computed, never read) reach 2 elements beyond the last row
        img = np.zeros((oy1 - oy0 + 3) * span, np.float32)
        for r in range(oy1 - oy0 + 2):
            iy = oy0 + r - py
            if 0 <= iy < height:
                for c in range(max(0, px), min(span, width + px)):
                    img[r * span + c] = x[n, 0, iy, c - px]
        r0, r1, r2 = img[:lanes + 2], img[span:span + lanes + 2], img[2 * span:2 * span + lanes + 2]
        halves = np.zeros((2 * n_words, lanes), np.uint32)
        zeros = np.zeros(lanes, np.int32)
        for o in range(n_out):
            bo = bias[o]
            w00, w01, w02 = wt[0, 0, 0, o], wt[0, 1, 0, o], wt[0, 2, 0, o]
            w10, w11, w12 = wt[1, 0, 0, o], wt[1, 1, 0, o], wt[1, 2, 0, o]
            w20, w21, w22 = wt[2, 0, 0, o], wt[2, 1, 0, o], wt[2, 2, 0, o]
            half, bit = halves[o // 32], np.uint32(o % 32)
            for p in range(lanes):
                s = ((((((((bo + w00 * r0[p]) + w01 * r0[p + 1]) + w02 * r0[p + 2])
                         + w10 * r1[p]) + w11 * r1[p + 1]) + w12 * r1[p + 2])
                      + w20 * r2[p]) + w21 * r2[p + 1]) + w22 * r2[p + 2]
                half[p] |= np.uint32(s < 0) << bit
                zeros[p] += np.int32(s == 0)
        total = 0  # exact zeros in the block's lanes, past-wo columns included
        for p in range(lanes):
            total += zeros[p]
        for oy in range(oy0, oy1):
            base, count = (oy - oy0) * span, 0
            if total != 0:
                for ox in range(wo):
                    count += zeros[base + ox]
            zero[n * ho + oy] = count != 0
        # rows oy0 .. oy1 hold whole windows (oy0 and rows are multiples of pool), but for
        # the rows past the last whole window, which are pooled away; per word: the 64-bit
        # words of the block's lanes, their AND over a window's rows, then over its columns
        words = np.empty(lanes, np.uint64)
        band = np.empty(span, np.uint64)
        cols = out.shape[2]
        for q in range(n_words):
            lo, hi = halves[2 * q], halves[2 * q + 1]
            for p in range(lanes):
                words[p] = np.uint64(lo[p]) | np.uint64(hi[p]) << np.uint64(32)
            for row in range(oy0 // pool, oy1 // pool):
                base = (row * pool - oy0) * span
                for c in range(cols * pool):
                    band[c] = words[base + c]
                for i in range(1, pool):
                    for c in range(cols * pool):
                        band[c] &= words[base + i * span + c]
                for col in range(cols):
                    word = band[col * pool]
                    for j in range(1, pool):
                        word &= band[col * pool + j]
                    out[n, row, col, q] = word


# ------------------------------------------- tap-packed direct binary conv (pixels as lanes)
@njit(cache=True, nogil=True)
def row_window_terms(wr, n_ch, width, wo, stride_x, pad_x, dil_x, kw, pad_sum, lanes):  # type: ignore[no-untyped-def]
    """Per kernel row ``i``, output channel ``o`` and output column ``ox`` (``lanes`` >= Wo
    columns), what :func:`binary_conv_rows` adds to ``n_ch * inside - 2 popcount`` of a row's
    window words: ``rin[i, o, ox]`` when input row ``i`` lies in the image (``n_ch`` per
    horizontal tap inside, twice the popcount of the weight bits of the taps in the padding --
    the window holds 0 there, so ``x ^ w`` counts them -- and ``pad_sum`` of those taps),
    ``rout[i, o]`` when it lies in the padding (``pad_sum`` of its taps). Column lanes past
    ``wo`` get 0."""
    kh, qr, n_out = wr.shape
    rin = np.zeros((kh, n_out, lanes), np.int64)
    rout = np.zeros((kh, n_out), np.int64)
    mask = np.zeros(qr, np.uint64)
    for ox in range(wo):
        mask[:] = 0
        inside = 0
        for j in range(kw):
            ix = ox * stride_x - pad_x + j * dil_x
            if 0 <= ix < width:
                inside += 1
                for c in range(n_ch):
                    bit = j * n_ch + c
                    mask[bit >> 6] |= np.uint64(1) << np.uint64(bit & 63)
        for i in range(kh):
            for o in range(n_out):
                pc = 0
                for q in range(qr):
                    pc += _popcount(wr[i, q, o] & ~mask[q])
                extra = 0
                for j in range(kw):
                    ix = ox * stride_x - pad_x + j * dil_x
                    if ix < 0 or ix >= width:
                        extra += pad_sum[i, j, o]
                rin[i, o, ox] = n_ch * inside + 2 * np.int64(pc) + extra
    for i in range(kh):
        for o in range(n_out):
            s = 0
            for j in range(kw):
                s += pad_sum[i, j, o]
            rout[i, o] = s
    return rin, rout


@njit(cache=True, nogil=True)
def row_conv_base(rin, rout, wr, height, ho, wo, stride_y, pad_y, dil_y):  # type: ignore[no-untyped-def]
    """``base[o, oy * wo + ox]``: what an output pixel's accumulator is before the popcounts
    of :func:`binary_conv_rows` are subtracted (twice): ``rin`` for its kernel rows in the
    image, ``rout`` plus twice the popcount of the row's weight words for those in the
    padding (their window words are 0, so ``x ^ w`` counts every weight bit)."""
    kh, qr, n_out = wr.shape
    base = np.zeros((n_out, ho * wo), np.int64)
    for oy in range(ho):
        for i in range(kh):
            iy = oy * stride_y - pad_y + i * dil_y
            for o in range(n_out):
                if 0 <= iy < height:
                    for ox in range(wo):
                        base[o, oy * wo + ox] += rin[i, o, ox]
                else:
                    pc = 0
                    for q in range(qr):
                        pc += _popcount(wr[i, q, o])
                    for ox in range(wo):
                        base[o, oy * wo + ox] += rout[i, o] + 2 * np.int64(pc)
    return base


@njit(inline="always")
def _block_windows(xw, n_ch, stride, padding, dilation, kh, kw, qr, n, oy0, rows, wo, win):  # type: ignore[no-untyped-def]
    """Window words ``win`` (K >= kh * Qr, lanes) of output rows ``oy0 .. oy0 + rows - 1`` of
    image ``n``: word ``i * Qr + d`` of lane ``r * wo + ox`` holds bits ``64 d ..`` of the
    row window ``j * n_ch + c`` (channel ``c`` at tap ``(i, j)``), 0 in the padding, in
    lanes past the block and in words past ``kh * Qr``. Each input row's windows are built
    once (shifts and ORs along the row) and copied to the lanes of every output row that
    reads it."""
    height, width, q_in = xw.shape[1], xw.shape[2], xw.shape[3]
    win[:] = 0
    iy0 = oy0 * stride[0] - padding[0]
    span = (rows - 1) * stride[0] + (kh - 1) * dilation[0] + 1
    built = np.zeros((span, qr, wo), np.uint64)
    for t in range(span):
        iy = iy0 + t
        if iy < 0 or iy >= height:
            continue
        for j in range(kw):
            shift = j * dilation[1] - padding[1]
            # output columns whose tap j lies in the image: 0 <= ox * sx + shift < width
            lo = 0
            while lo < wo and lo * stride[1] + shift < 0:
                lo += 1
            hi = lo
            while hi < wo and hi * stride[1] + shift < width:
                hi += 1
            for qi in range(q_in):
                off = j * n_ch + 64 * qi
                d, s = off >> 6, np.uint64(off & 63)
                dst = built[t, d]
                if stride[1] == 1:
                    for ox in range(lo, hi):
                        dst[ox] |= xw[n, iy, ox + shift, qi] << s
                else:
                    for ox in range(lo, hi):
                        dst[ox] |= xw[n, iy, ox * stride[1] + shift, qi] << s
                if s != 0 and d + 1 < qr:
                    dst2 = built[t, d + 1]
                    back = np.uint64(64) - s
                    for ox in range(lo, hi):
                        dst2[ox] |= xw[n, iy, ox * stride[1] + shift, qi] >> back
    for r in range(rows):
        for i in range(kh):
            t = r * stride[0] + i * dilation[0]
            iy = iy0 + t
            if iy < 0 or iy >= height:
                continue
            for d in range(qr):
                src = built[t, d]
                dst = win[i * qr + d]
                for ox in range(wo):
                    dst[r * wo + ox] = src[ox]


@njit(cache=True, nogil=True)
def triple_words(wr):  # type: ignore[no-untyped-def]
    """The row weight words (kh, Qr, O) as (K, O) with K = kh * Qr rounded up to a multiple
    of 3, the extra words 0 (a 0 window word XOR a 0 weight word counts nothing)."""
    kh, qr, n_out = wr.shape
    wk = np.zeros(((kh * qr + 2) // 3 * 3, n_out), np.uint64)
    wk[:kh * qr] = wr.reshape(kh * qr, n_out)
    return wk


@njit(inline="always")
def _block_acc(wk, win, base, o, first, count, acc):  # type: ignore[no-untyped-def]
    """``acc[l]`` = output channel ``o``'s accumulator of lane ``l``: ``base[o, first + l]``
    minus twice the popcounts of the window words XOR the weight words (``count`` lanes
    valid). Three words per pass over the lanes (``wk`` from :func:`triple_words`), the
    first pass writing ``acc``, the last one subtracting from the base: for up to three
    words (16 channels, 3 x 3) one pass in all."""
    lanes = acc.shape[0]
    passes = wk.shape[0] // 3
    for p in range(passes):
        k = 3 * p
        w0, w1, w2 = wk[k, o], wk[k + 1, o], wk[k + 2, o]
        r0, r1, r2 = win[k], win[k + 1], win[k + 2]
        if p == 0 and p == passes - 1:
            for lane in range(count):
                acc[lane] = base[o, first + lane] - 2 * np.int64(
                    _popcount(r0[lane] ^ w0) + _popcount(r1[lane] ^ w1)
                    + _popcount(r2[lane] ^ w2))
        elif p == 0:
            for lane in range(lanes):
                acc[lane] = np.int64(_popcount(r0[lane] ^ w0) + _popcount(r1[lane] ^ w1)
                                     + _popcount(r2[lane] ^ w2))
        elif p == passes - 1:
            for lane in range(count):
                acc[lane] = base[o, first + lane] - 2 * (acc[lane] + np.int64(
                    _popcount(r0[lane] ^ w0) + _popcount(r1[lane] ^ w1)
                    + _popcount(r2[lane] ^ w2)))
        else:
            for lane in range(lanes):
                acc[lane] += np.int64(_popcount(r0[lane] ^ w0) + _popcount(r1[lane] ^ w1)
                                      + _popcount(r2[lane] ^ w2))


@njit(inline="always")
def _rows_task(xw, n_ch, stride, padding, dilation, kh, kw, wk, qr, rows, ho, wo, blocks,
               lanes, task):  # type: ignore[no-untyped-def]
    """Task ``task`` of the tap-row kernels: its image, first output pixel and pixel count,
    and its window words (:func:`_block_windows`) with an accumulator row."""
    n, oy0 = task // blocks, task % blocks * rows
    nr = min(rows, ho - oy0)
    win = np.empty((wk.shape[0], lanes), np.uint64)
    acc = np.empty(lanes, np.int64)
    _block_windows(xw, n_ch, stride, padding, dilation, kh, kw, qr, n, oy0, nr, wo, win)
    return n, oy0 * wo, nr * wo, win, acc


@njit(parallel=True, cache=True, nogil=True)
def binary_conv_rows(xw, wr, n_ch, stride, padding, dilation, kw, base, rows, scale, bias,
                     finish, out):  # type: ignore[no-untyped-def]
    """``cpu.binary_conv_direct`` with the taps of a kernel row packed into one run of
    words: ``wr`` (kh, Qr, O), bit ``j * n_ch + c`` of row ``i`` the weight sign of input
    channel ``c`` at tap ``(i, j)`` (Qr = ceil(kw n_ch / 64)); ``base`` from
    :func:`row_conv_base`. A task is a block of ``rows`` output rows of one image; its output
    pixels are the vector lanes (a channel's weight word is one broadcast over them).
    ``finish`` 0: int32 accumulators into ``out`` (N, O, Ho, Wo); 1: float32 ``float32(acc) *
    scale[o]``, 2: that ``+ bias[o]`` -- the float32 operations of the model's float finish,
    in its order (no int32 array is written)."""
    n_img, n_out, ho, wo = out.shape
    kh, qr, _ = wr.shape
    wk = triple_words(wr)
    blocks = (ho + rows - 1) // rows
    lanes = (rows * wo + 7) // 8 * 8
    flat = out.reshape(n_img, n_out, ho * wo)
    for task in prange(n_img * blocks):
        n, first, count, win, acc = _rows_task(xw, n_ch, stride, padding, dilation, kh, kw, wk,
                                               qr, rows, ho, wo, blocks, lanes, task)
        for o in range(n_out):
            _block_acc(wk, win, base, o, first, count, acc)
            if finish == 0:
                for lane in range(count):
                    flat[n, o, first + lane] = acc[lane]
            elif finish == 1:
                so = scale[o]
                for lane in range(count):
                    flat[n, o, first + lane] = np.float32(acc[lane]) * so
            else:
                so, bo = scale[o], bias[o]
                for lane in range(count):
                    flat[n, o, first + lane] = np.float32(acc[lane]) * so + bo


@njit(parallel=True, cache=True, nogil=True)
def binary_conv_rows_pool(xw, wr, n_ch, stride, padding, dilation, kw, base, ho, wo, scale,
                          bias, has_bias, lo, hi, pool, int_pool, out):  # type: ignore[no-untyped-def]
    """:func:`binary_conv_rows`'s float finish (output ``ho x wo``), then ``clip(lo, hi)`` (a
    hardtanh, ``lo < 0 < hi`` or infinite) and a ``pool x pool`` max-pooling with stride
    ``pool``, no padding, in the epilogue: float32 ``out`` (N, O, Hp, Wp); the conv's float
    map is never written. Where ``int_pool[o]`` (``scale[o]``, ``bias[o]`` finite, ``|scale[o]|
    >= 2^-100``) the window's accumulators are pooled first -- their max for ``scale > 0``,
    min for ``scale < 0`` -- and only the pooled one goes through the affine map and the
    clip: both are monotone (float rounding is), so this is the max of the clipped values,
    and with no underflow to zero no two accumulators map to zeros of different signs: bit
    for bit the unfused steps. Other channels run those steps as they are (``np.clip``; then
    ``np.maximum`` tap by tap: ``a`` where ``a >= b`` or ``a`` is NaN, else ``b``). One image
    per task."""
    n_img, n_out, hp, wp = out.shape
    kh, qr, _ = wr.shape
    wk = triple_words(wr)
    lanes = (ho * wo + 7) // 8 * 8
    for n in prange(n_img):
        win = np.empty((wk.shape[0], lanes), np.uint64)
        acc = np.empty(lanes, np.int64)
        y = np.empty(lanes, np.float32)
        _block_windows(xw, n_ch, stride, padding, dilation, kh, kw, qr, n, 0, ho, wo, win)
        for o in range(n_out):
            _block_acc(wk, win, base, o, 0, ho * wo, acc)
            so, bo = scale[o], bias[o]
            if int_pool[o]:
                sign = 1 if so > 0 else -1  # the min for a negative scale: max of -acc
                for py in range(hp):
                    for px in range(wp):
                        m = sign * acc[py * pool * wo + px * pool]
                        for i in range(pool):
                            for j in range(pool):
                                a = sign * acc[(py * pool + i) * wo + px * pool + j]
                                m = a if a > m else m  # a select, no branch
                        v = np.float32(sign * m) * so
                        if has_bias:
                            v = v + bo
                        out[n, o, py, px] = min(max(v, lo), hi)  # finite v: np.clip
                continue
            for lane in range(ho * wo):
                v = np.float32(acc[lane]) * so
                if has_bias:
                    v = v + bo
                # np.clip: max(v, lo) then min(., hi), a NaN kept
                if not (v >= lo or v != v):
                    v = lo
                if not (v <= hi or v != v):
                    v = hi
                y[lane] = v
            for py in range(hp):
                for px in range(wp):
                    m = y[py * pool * wo + px * pool]
                    for i in range(pool):
                        for j in range(pool):
                            if i + j > 0:
                                b = y[(py * pool + i) * wo + px * pool + j]
                                if not (m >= b or m != m):
                                    m = b
                    out[n, o, py, px] = m


@njit(parallel=True, cache=True, nogil=True)
def binary_conv_rows_threshold(xw, wr, n_ch, stride, padding, dilation, kw, base, rows, t,
                               flip, out):  # type: ignore[no-untyped-def]
    """:func:`binary_conv_rows` whose epilogue writes packed NHWC words ``out`` (N, Ho, Wo,
    ceil(O / 64)) of ``(acc < t) ^ flip`` (the bits of :func:`binary_conv_threshold`)."""
    n_img, ho, wo, n_words = out.shape
    kh, qr, n_out = wr.shape
    wk = triple_words(wr)
    blocks = (ho + rows - 1) // rows
    lanes = (rows * wo + 7) // 8 * 8
    flat = out.reshape(n_img, ho * wo, n_words)
    for task in prange(n_img * blocks):
        n, first, count, win, acc = _rows_task(xw, n_ch, stride, padding, dilation, kh, kw, wk,
                                               qr, rows, ho, wo, blocks, lanes, task)
        words = np.zeros((n_words, lanes), np.uint64)
        for o in range(n_out):
            _block_acc(wk, win, base, o, first, count, acc)
            q, bit, to, fo = o // 64, np.uint64(o % 64), t[o], flip[o]
            for lane in range(lanes):
                words[q, lane] |= np.uint64((acc[lane] < to) != fo) << bit
        for lane in range(count):
            for q in range(n_words):
                flat[n, first + lane, q] = words[q, lane]


key_on_package(globals())  # cached kernels recompile when any kernels source changes
