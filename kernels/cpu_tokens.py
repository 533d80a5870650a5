"""Numba kernels of the token ops (:mod:`.transformer`) on the ``numba`` backend: one pass per
op instead of NumPy's several, and two fused groups (:mod:`.transformer` finds them at load):

``react_linear``
    BinaryViT's ReAct linear ``rprelu(bn(binary_linear(sign(move(x)))) + shortcut(x))`` per
    token row: the signs of ``x * scale + bias`` are compared into 0/1 bytes (a loop that
    vectorises) and packed eight at a time by one multiply into sign and non-zero words;
    each output is the exact integer ``sign(x) . s`` (``popcount(nz) - 2 popcount((neg ^ w) &
    nz)``: inputs equal to 0 count 0, as ``sign(0) = 0`` in torch), then
    the folded BatchNorm, the shortcut (identity, channel repeat or channel-group mean of
    ``x``) and RPReLU, written once.

``binary_attention``
    ``P V`` with ``P = alpha round(clip(softmax(sign(q) sign(k)^T s) / alpha, 0, 1))``: the
    scores are integers (XNOR-popcount on packed signs), so ``exp`` of a score minus the row's
    maximum comes from a table built at load with NumPy's own float32 arithmetic; the
    probabilities are never stored.

Elementwise float work follows the NumPy twin's operation order (no fast-math), so results
equal it up to the summation order of the reductions.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .cpu import _popcount
from .numba_cache import key_on_package

#: shortcut kinds of :func:`react_linear`
SHORTCUT_IDENTITY, SHORTCUT_REPEAT, SHORTCUT_GROUP_MEAN = 0, 1, 2
#: rows per parallel task (its scratch is allocated once per task)
CHUNK = 64


@njit(inline="always")
def _pack_signs(x, start, length, neg, nz):  # type: ignore[no-untyped-def]
    """Sign bits of ``x[start:start + length]`` into ``neg`` (x < 0) and ``nz`` (x != 0)."""
    for w in range(neg.shape[0]):  # in registers, branch-free (random signs mispredict)
        a, b = np.uint64(0), np.uint64(0)
        for i in range(w * 64, min(length, w * 64 + 64)):
            v = x[start + i]
            shift = np.uint64(i - w * 64)
            a |= np.uint64(v < 0) << shift
            b |= np.uint64(v != 0) << shift
        neg[w], nz[w] = a, b


#: multipliers of the attention memo's hash of a query's two sign words (odd 64-bit constants)
_HASH_A, _HASH_B = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)
#: a byte of 0/1 flags per bit, times this, keeps flag ``i`` at bit ``56 + i``
_GATHER = np.uint64(0x0102040810204080)


@njit(inline="always")
def _pack_flags(flags, words):  # type: ignore[no-untyped-def]
    """``words[w]`` bit ``i``: byte ``64 w + i`` of ``flags`` (0/1 bytes, as uint64 words)."""
    groups = flags.shape[0]
    for w in range(words.shape[0]):
        a = np.uint64(0)
        for g in range(w * 8, min(groups, w * 8 + 8)):
            a |= ((flags[g] * _GATHER) >> np.uint64(56)) << np.uint64(8 * (g - w * 8))
        words[w] = a


@njit(inline="always")
def _dots(neg, nz, words, acc):  # type: ignore[no-untyped-def]
    """``acc[j] = sign(x) . s_j`` for the packed signs ``neg``, ``nz`` of one row and the
    weight rows ``words[j]`` (bit set: -1); a loop over ``j`` that vectorises (``vpopcntq``)."""
    n_out, n_words = words.shape
    if n_words == 1:
        m, ng = nz[0], neg[0]
        base = np.int64(_popcount(m))
        for j in range(n_out):
            acc[j] = base - 2 * np.int64(_popcount((ng ^ words[j, 0]) & m))
        return
    for j in range(n_out):
        a = np.int64(0)
        for w in range(n_words):
            m = nz[w]
            a += np.int64(_popcount(m)) - 2 * np.int64(_popcount((neg[w] ^ words[j, w]) & m))
        acc[j] = a


@njit(parallel=True, cache=True, nogil=True)
def react_linear(x, in_scale, in_bias, words, out_scale, out_bias, kind, groups, shift_in,
                 slope, shift_out, post_scale, post_bias, residual,
                 out):  # type: ignore[no-untyped-def]
    """``out[r]`` for the rows ``x[r]`` (module docstring); ``kind``: a ``SHORTCUT_*``,
    ``groups``: its group count (mean), unused otherwise. The epilogue: a per-channel
    ``post_scale`` / ``post_bias`` (LayerScale, the q/k/v shift; empty: none, else ones or
    zeros for a missing one) and a ``residual`` added last (rows of ``n_out``; no rows:
    none), in the twin's order: ``residual + (y * post_scale + post_bias)``."""
    rows, k = x.shape
    n_out, n_words = words.shape
    inv = np.float32(groups)
    post = post_scale.shape[0] > 0
    add = residual.shape[0] > 0
    for chunk in prange((rows + CHUNK - 1) // CHUNK):
        neg = np.empty(n_words, np.uint64)  # scratch per chunk of rows, not per row
        nz = np.empty(n_words, np.uint64)
        moved = np.empty(k, np.float32)
        flag_groups = (k + 7) // 8
        fneg = np.zeros(flag_groups * 8, np.uint8)  # 0/1 flags, padded to whole uint64 groups
        fnz = np.zeros(flag_groups * 8, np.uint8)
        fneg64, fnz64 = fneg.view(np.uint64), fnz.view(np.uint64)
        acc = np.empty(n_out, np.int64)
        sc = np.empty(n_out, np.float32)
        for r in range(chunk * CHUNK, min(rows, (chunk + 1) * CHUNK)):
            xr, orow = x[r], out[r]  # one-dimensional row views: loops that vectorise
            for i in range(k):
                moved[i] = xr[i] * in_scale[i] + in_bias[i]
            for i in range(k):  # compares that vectorise, packed by multiplies
                fneg[i] = moved[i] < 0
                fnz[i] = moved[i] != 0
            _pack_flags(fneg64, neg)
            _pack_flags(fnz64, nz)
            _dots(neg, nz, words, acc)
            if kind == SHORTCUT_IDENTITY:
                for j in range(n_out):
                    sc[j] = xr[j]
            elif kind == SHORTCUT_REPEAT:  # no modulo in the loop: it would not vectorise
                for t in range(n_out // k):
                    for j in range(k):
                        sc[t * k + j] = xr[j]
            else:
                for j in range(n_out):
                    sc[j] = xr[j]
                for g in range(1, groups):
                    for j in range(n_out):
                        sc[j] = sc[j] + xr[j + g * n_out]
                for j in range(n_out):
                    sc[j] = sc[j] / inv
            for j in range(n_out):
                y = (np.float32(acc[j]) * out_scale[j] + out_bias[j]) + sc[j]
                orow[j] = _rprelu(y, shift_in[j], slope[j], shift_out[j])
            if post:
                for j in range(n_out):
                    orow[j] = orow[j] * post_scale[j] + post_bias[j]
            if add:
                res = residual[r]
                for j in range(n_out):
                    orow[j] = res[j] + orow[j]


@njit(inline="always")
def _scores(qneg, qnz, kneg, knz, score):  # type: ignore[no-untyped-def]
    """``score[j] = sign(q) . sign(k_j)`` (exact integers) of one head: ``kneg``, ``knz``
    ``(S, W)`` words; a loop over ``j`` that vectorises when ``W == 1``."""
    s, n_words = kneg.shape
    if n_words == 1:
        qn, qz = qneg[0], qnz[0]
        for j in range(s):
            m = qz & knz[j, 0]
            score[j] = np.int64(_popcount(m)) - 2 * np.int64(_popcount((qn ^ kneg[j, 0]) & m))
        return
    for j in range(s):
        d = np.int64(0)
        for w in range(n_words):
            m = qnz[w] & knz[j, w]
            d += np.int64(_popcount(m)) - 2 * np.int64(_popcount((qneg[w] ^ kneg[j, w]) & m))
        score[j] = d


@njit(inline="always")
def _pairwise_total(e, score, offset):  # type: ignore[no-untyped-def]
    """``sum_j e[score[j] + offset]`` in float32 in NumPy's order for a row of at most 128
    values (``pairwise_sum``: eight running sums, combined as a tree, then the tail; longer
    rows: eight running sums over the whole row). Eight independent chains instead of one
    dependent one, and the twin's rounding."""
    n = score.shape[0]
    if n < 8:
        total = np.float32(0)
        for j in range(n):
            total += e[score[j] + offset]
        return total
    r0, r1, r2, r3 = (e[score[0] + offset], e[score[1] + offset], e[score[2] + offset],
                      e[score[3] + offset])
    r4, r5, r6, r7 = (e[score[4] + offset], e[score[5] + offset], e[score[6] + offset],
                      e[score[7] + offset])
    end = n - n % 8
    for j in range(8, end, 8):
        r0 += e[score[j] + offset]
        r1 += e[score[j + 1] + offset]
        r2 += e[score[j + 2] + offset]
        r3 += e[score[j + 3] + offset]
        r4 += e[score[j + 4] + offset]
        r5 += e[score[j + 5] + offset]
        r6 += e[score[j + 6] + offset]
        r7 += e[score[j + 7] + offset]
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for j in range(end, n):
        total += e[score[j] + offset]
    return total


@njit(inline="always")
def _attend_row(q, kneg, knz, vpos, vneg, heads, table, alpha, scale, i, row, qneg, qnz, score,
                sel, out, fneg, fnz, fneg64, fnz64, memo_gen, memo_key,
                memo_val):  # type: ignore[no-untyped-def]
    """One query token, every head: its integer scores, the softmax denominator, then the sum
    of the values whose quantized probability is ``alpha`` (not 0). That test,
    ``(e / total) / alpha > 1/2`` in float32, is monotone in the score (the score scale is
    positive: the fusion checks it), so the lowest kept score is estimated by counting the
    table entries at most ``total alpha / 2`` (no branches) and settled by the twin's own
    float operations on the estimate and its neighbours (the estimate is off by at most the
    rounding of the product, so the loops run once or not at all).

    A head's output is a function of the image and the query's packed signs only: with one
    word of signs (``memo_gen`` not empty) it is memoised per image and head in an
    open-addressing table (``memo_gen[h, slot] == i + 1``: slot filled for image ``i``; key
    ``(neg, nz)`` in ``memo_key``, the head's ``dh`` outputs in ``memo_val``), so a repeated
    sign pattern (most of BinaryViT's first-stage queries) copies instead of recomputing."""
    s = kneg.shape[2]
    dh = q.shape[2] // heads
    half = np.float32(0.5)
    qrow, orow = q[i, row], out[i, row]  # one-dimensional views: loops that vectorise
    for h in range(heads):
        for c in range(dh):
            val = qrow[h * dh + c]
            fneg[c] = val < 0
            fnz[c] = val != 0
        _pack_flags(fneg64, qneg)
        _pack_flags(fnz64, qnz)
        slot = -1
        if memo_gen.shape[1] > 0:
            a, z = qneg[0], qnz[0]
            mask = memo_gen.shape[1] - 1
            slot = np.int64(((a * _HASH_A) ^ (z * _HASH_B)) >> np.uint64(40)) & mask
            stamp = np.int64(i) + 1
            while memo_gen[h, slot] == stamp and (memo_key[h, slot, 0] != a or
                                                  memo_key[h, slot, 1] != z):
                slot = (slot + 1) & mask
            if memo_gen[h, slot] == stamp:  # seen in this image: the stored outputs
                for ch in range(dh):
                    orow[h * dh + ch] = memo_val[h, slot, ch]
                continue
            memo_gen[h, slot] = stamp
            memo_key[h, slot, 0], memo_key[h, slot, 1] = a, z
        _scores(qneg, qnz, kneg[i, h], knz[i, h], score)
        top = -dh
        for j in range(s):
            top = max(top, score[j])
        e = table[top + dh]
        total = _pairwise_total(e, score, dh)
        # the lowest score still kept: estimated by a branch-free count of the scores whose
        # e is at most (total alpha) / 2, then the exact (monotone) test on its neighbours
        bound = total * alpha * half
        cut = -dh
        for d in range(top + dh + 1):
            cut += np.int64(e[d] <= bound)
        while cut > -dh and (e[cut - 1 + dh] / total) / alpha > half:
            cut -= 1
        while cut <= top and not (e[cut + dh] / total) / alpha > half:
            cut += 1
        for w in range(sel.shape[0]):  # the kept keys, packed, in registers:
            a = np.uint64(0)  # round(clip(p / alpha, 0, 1)) == 1
            for j in range(w * 64, min(s, w * 64 + 64)):
                a |= np.uint64(score[j] >= cut) << np.uint64(j - w * 64)
            sel[w] = a
        for ch in range(dh):  # sum of the kept values' signs: two popcounts per word
            count = np.int64(0)
            for w in range(sel.shape[0]):
                count += np.int64(_popcount(sel[w] & vpos[i, h, ch, w])) - \
                    np.int64(_popcount(sel[w] & vneg[i, h, ch, w]))
            orow[h * dh + ch] = np.float32(count) * scale
            if slot >= 0:
                memo_val[h, slot, ch] = orow[h * dh + ch]


@njit(inline="always")
def _epilogue_row(q, k, v, i, row, bn_scale, bn_bias, res_kind, res_factor, grid_w, shift_in,
                  slope, shift_out, out):  # type: ignore[no-untyped-def]
    """:func:`binary_attention`'s epilogue on ``out[i, row]``: each element in the twin's
    order, on one-dimensional row views (loops that vectorise)."""
    o = out[i, row]
    c = o.shape[0]
    if bn_scale.shape[0] > 0:
        for ch in range(c):
            o[ch] = o[ch] * bn_scale[ch] + bn_bias[ch]
    for r in range(res_kind.shape[0]):
        f = res_factor[r]
        srow = row if f == 1 else (row // grid_w // f) * (grid_w // f) + (row % grid_w) // f
        src = q[i, srow] if res_kind[r] == 0 else (k[i, srow] if res_kind[r] == 1 else
                                                   v[i, srow])
        for ch in range(c):
            o[ch] = o[ch] + src[ch]
    if shift_in.shape[0] > 0:
        for ch in range(c):
            o[ch] = _rprelu(o[ch], shift_in[ch], slope[ch], shift_out[ch])


@njit(parallel=True, cache=True, nogil=True)
def binary_attention(q, k, v, heads, table, alpha, v_scale, bn_scale, bn_bias, res_kind,
                     res_factor, grid_w, shift_in, slope, shift_out,
                     out):  # type: ignore[no-untyped-def]
    """``out (N, T, C)``: heads merged; ``q (N, T, C)``, ``k, v (N, S, C)`` before their
    signs; ``table[m, d]``: ``exp(s(d) - s(m))`` for integer scores ``d <= m`` offset by the
    head width (``s``: the twin's float32 score).

    The epilogue, on each row while it is in cache, in the twin's order: a channels-last
    BatchNorm ``y * bn_scale + bn_bias`` (empty: none), then the residuals ``res_kind[r]``
    (0, 1, 2: ``q``, ``k``, ``v`` as given, before their signs) added one after the other,
    each nearest-upsampled by ``res_factor[r]`` from its grid to the queries' (``grid_w``
    tokens a row; factor 1: the same token), then RPReLU (``shift_in`` empty: none)."""
    n, t, c = q.shape
    s = k.shape[1]
    dh = c // heads
    n_words = (dh + 63) // 64
    kneg = np.empty((n, heads, s, n_words), np.uint64)
    knz = np.empty((n, heads, s, n_words), np.uint64)
    key_words = (s + 63) // 64
    vpos = np.empty((n, heads, dh, key_words), np.uint64)  # per value channel: keys with +1
    vneg = np.empty((n, heads, dh, key_words), np.uint64)  # and with -1, as key bitmasks
    for b in prange(n * s):
        i, j = b // s, b % s
        for h in range(heads):
            _pack_signs(k[i, j], h * dh, dh, kneg[i, h, j], knz[i, h, j])
    for b in prange(n * heads):
        i, h = b // heads, b % heads
        p = np.empty(dh, np.uint64)
        m = np.empty(dh, np.uint64)
        for w in range(key_words):
            p[:] = 0
            m[:] = 0
            for j in range(w * 64, min(s, w * 64 + 64)):  # a key's channels as the lanes
                vrow = v[i, j, h * dh:(h + 1) * dh]
                bit = np.uint64(j - w * 64)
                for ch in range(dh):
                    p[ch] |= np.uint64(vrow[ch] > 0) << bit
                    m[ch] |= np.uint64(vrow[ch] < 0) << bit
            for ch in range(dh):
                vpos[i, h, ch, w], vneg[i, h, ch, w] = p[ch], m[ch]
    scale = alpha * v_scale
    epilogue = bn_scale.shape[0] > 0 or res_kind.shape[0] > 0 or shift_in.shape[0] > 0
    tasks = n * t
    rows = t * max(1, CHUNK // t) if t > 0 else CHUNK  # whole images per task: the memo's
    slots = 1  # reuse spans an image; a table of at least twice an image's rows never fills
    while slots < 2 * t:
        slots *= 2
    memo_slots = slots if n_words == 1 else 0
    for chunk in prange((tasks + rows - 1) // rows):
        qneg = np.empty(n_words, np.uint64)
        qnz = np.empty(n_words, np.uint64)
        score = np.empty(s, np.int64)
        sel = np.empty(key_words, np.uint64)
        fneg = np.zeros((dh + 7) // 8 * 8, np.uint8)
        fnz = np.zeros((dh + 7) // 8 * 8, np.uint8)
        fneg64, fnz64 = fneg.view(np.uint64), fnz.view(np.uint64)
        memo_gen = np.zeros((heads, memo_slots), np.int64)
        memo_key = np.empty((heads, memo_slots, 2), np.uint64)
        memo_val = np.empty((heads, memo_slots, dh), np.float32)
        for b in range(chunk * rows, min(tasks, (chunk + 1) * rows)):
            _attend_row(q, kneg, knz, vpos, vneg, heads, table, alpha, scale, b // t, b % t,
                        qneg, qnz, score, sel, out, fneg, fnz, fneg64, fnz64, memo_gen,
                        memo_key, memo_val)
            if epilogue:
                _epilogue_row(q, k, v, b // t, b % t, bn_scale, bn_bias, res_kind, res_factor,
                              grid_w, shift_in, slope, shift_out, out)


@njit(inline="always")
def _term(x, r, i, mean, centred):  # type: ignore[no-untyped-def]
    """``x[r, i]``, or ``(x[r, i] - mean)^2`` (``centred``)."""
    v = x[r, i]
    if centred:
        d = v - mean
        return d * d
    return v


@njit(inline="always")
def _pairwise_block(x, r, lo, n, mean, centred):  # type: ignore[no-untyped-def]
    """:func:`_pairwise_row` of ``n <= 128`` values from ``lo``."""
    if n < 8:
        total = np.float32(0)
        for i in range(n):
            total += _term(x, r, lo + i, mean, centred)
        return total
    r0 = _term(x, r, lo, mean, centred)
    r1 = _term(x, r, lo + 1, mean, centred)
    r2 = _term(x, r, lo + 2, mean, centred)
    r3 = _term(x, r, lo + 3, mean, centred)
    r4 = _term(x, r, lo + 4, mean, centred)
    r5 = _term(x, r, lo + 5, mean, centred)
    r6 = _term(x, r, lo + 6, mean, centred)
    r7 = _term(x, r, lo + 7, mean, centred)
    end = n - n % 8
    for i in range(lo + 8, lo + end, 8):
        r0 += _term(x, r, i, mean, centred)
        r1 += _term(x, r, i + 1, mean, centred)
        r2 += _term(x, r, i + 2, mean, centred)
        r3 += _term(x, r, i + 3, mean, centred)
        r4 += _term(x, r, i + 4, mean, centred)
        r5 += _term(x, r, i + 5, mean, centred)
        r6 += _term(x, r, i + 6, mean, centred)
        r7 += _term(x, r, i + 7, mean, centred)
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(lo + end, lo + n):
        total += _term(x, r, i, mean, centred)
    return total


@njit(inline="always")
def _pairwise_row(x, r, n, mean, centred):  # type: ignore[no-untyped-def]
    """``sum_{i < n} _term(x, r, i)`` in float32: for ``n <= 128`` NumPy's ``pairwise_sum``
    order (fewer than 8 values one after the other, else eight running sums combined as a
    tree, then the tail), so bitwise NumPy's ``sum`` / ``mean`` over a contiguous last axis;
    longer rows as 128-value blocks in that order, added one after the other (NumPy halves
    them recursively instead: a recursive jitted function cannot be cached). Its dependent
    chain is ``n / 8`` additions long instead of ``n``."""
    total = _pairwise_block(x, r, 0, min(n, 128), mean, centred)
    for lo in range(128, n, 128):
        total += _pairwise_block(x, r, lo, min(128, n - lo), mean, centred)
    return total


@njit(parallel=True, cache=True, nogil=True)
def layernorm(x, weight, bias, eps, out):  # type: ignore[no-untyped-def]
    """Rows of ``x (R, C)`` normalised (biased variance), times ``weight`` plus ``bias``: the
    NumPy twin's operations, its means summed in NumPy's pairwise order
    (:func:`_pairwise_row`), so bit for bit the twin's result up to 128 channels."""
    rows, c = x.shape
    inv = np.float32(c)
    zero = np.float32(0)
    for r in prange(rows):
        mean = _pairwise_row(x, r, c, zero, False) / inv
        var = _pairwise_row(x, r, c, mean, True) / inv
        std = np.sqrt(var + eps)
        for i in range(c):
            out[r, i] = (x[r, i] - mean) / std * weight[i] + bias[i]


@njit(parallel=True, cache=True, nogil=True)
def token_avgpool(x, grid_h, grid_w, kh, kw, sh, sw, ph, pw, out):  # type: ignore[no-untyped-def]
    """Average pooling of tokens ``x (N, H W, C)`` on their grid, zero padding counted, into
    ``out (N, Ho Wo, C)``; taps summed in the twin's order."""
    n, _, c = x.shape
    ho, wo = (grid_h + 2 * ph - kh) // sh + 1, (grid_w + 2 * pw - kw) // sw + 1
    count = np.float32(kh * kw)
    for b in prange(n * ho):
        i, oy = b // ho, b % ho
        for ox in range(wo):
            o = oy * wo + ox
            for ch in range(c):
                out[i, o, ch] = 0
            for a in range(kh):
                iy = oy * sh - ph + a
                if iy < 0 or iy >= grid_h:
                    continue
                for e in range(kw):
                    ix = ox * sw - pw + e
                    if ix < 0 or ix >= grid_w:
                        continue
                    src = iy * grid_w + ix
                    for ch in range(c):
                        out[i, o, ch] += x[i, src, ch]
            for ch in range(c):
                out[i, o, ch] = out[i, o, ch] / count


@njit(parallel=True, cache=True, nogil=True)
def token_multipool(x, base, grid_h, grid_w, kh, kw, ph, pw, scale, bias,
                    out):  # type: ignore[no-untyped-def]
    """BinaryViT's multi-pooling with its residual in one pass: ``out = base + (((t_0 + t_1) +
    t_2) + ...)``, ``t_p = avgpool_p(x) * scale[p] + bias[p]`` (stride 1, zero padding
    counted, ``kh[p] = 2 ph[p] + 1`` so the grid is kept) on tokens ``x, base (N, H W, C)``;
    every float operation in the twin's order (taps, division, scale, bias, additions).

    One image per task, one output row at a time: a tap adds a whole shifted input row to the
    row's ``W C`` sums (a contiguous loop that vectorises, the row's outputs independent lanes
    instead of one dependent chain per output), each output's taps still in the twin's
    row-major order; taps outside the grid are the twin's padding zeros and are skipped (the
    sums start at +0, so adding +0 changes none of them)."""
    n, t, c = x.shape
    pools = kh.shape[0]
    row = grid_w * c
    xf = x.reshape(n, t * c)
    bf = base.reshape(n, t * c)
    of = out.reshape(n, t * c)
    scale_row = np.empty((pools, row), np.float32)  # per channel, tiled over a grid row
    bias_row = np.empty((pools, row), np.float32)
    for p in range(pools):
        for ox in range(grid_w):
            scale_row[p, ox * c:(ox + 1) * c] = scale[p]
            bias_row[p, ox * c:(ox + 1) * c] = bias[p]
    for i in prange(n):
        term = np.empty(row, np.float32)
        total = np.empty(row, np.float32)
        for oy in range(grid_h):
            for p in range(pools):
                term[:] = 0
                for a in range(kh[p]):
                    iy = oy - ph[p] + a
                    if iy < 0 or iy >= grid_h:
                        continue
                    src = xf[i, iy * row:(iy + 1) * row]
                    for e in range(kw[p]):
                        shift = (e - pw[p]) * c  # input column = output column + e - pw
                        lo = max(0, -shift)
                        hi = min(row, row - shift)
                        acc, add = term[lo:hi], src[lo + shift:hi + shift]
                        for k in range(hi - lo):  # views from 0: no index checks, vectorises
                            acc[k] += add[k]
                count = np.float32(kh[p] * kw[p])
                sr, br = scale_row[p], bias_row[p]
                if p == 0:
                    for k in range(row):
                        total[k] = term[k] / count * sr[k] + br[k]
                else:
                    for k in range(row):
                        total[k] = total[k] + (term[k] / count * sr[k] + br[k])
            dst, res = of[i, oy * row:(oy + 1) * row], bf[i, oy * row:(oy + 1) * row]
            for k in range(row):
                dst[k] = res[k] + total[k]


#: the work :func:`.cpu.launch` is told for one element of a memory pass (a load, a store and
#: the index arithmetic, a few operations): a batch-256 layer's tokens (10^5 - 10^6 values)
#: split over the threads, a single image's stay serial
MOVE_WORK = 8


@njit(parallel=True, cache=True, nogil=True)
def swap_last(x, out):  # type: ignore[no-untyped-def]
    """``out[i, b, a] = x[i, a, b]``: ``(N, C, H W) <-> (N, H W, C)`` (``to_tokens``,
    ``to_map``), one image per task."""
    n, a_len, b_len = x.shape
    for i in prange(n):
        for a in range(a_len):
            for b in range(b_len):
                out[i, b, a] = x[i, a, b]


@njit(parallel=True, cache=True, nogil=True)
def add_table(x, table, out):  # type: ignore[no-untyped-def]
    """``out[i] = x[i] + table`` (position embeddings), one image per task."""
    n, t, c = x.shape
    for i in prange(n):
        for k in range(t):
            for ch in range(c):
                out[i, k, ch] = x[i, k, ch] + table[k, ch]


@njit(parallel=True, cache=True, nogil=True)
def token_mean(x, out):  # type: ignore[no-untyped-def]
    """``out[i] = mean_t x[i, t]`` for tokens ``x (N, T, C)``: NumPy's order for a reduction
    over a middle axis (from +0, the tokens added one after the other per channel; ``mean``
    starts from the identity, so all -0 gives +0), divided by ``T``; one image per task."""
    n, t, c = x.shape
    inv = np.float32(t)
    for i in prange(n):
        for ch in range(c):
            out[i, ch] = 0
        for k in range(t):
            for ch in range(c):
                out[i, ch] += x[i, k, ch]
        for ch in range(c):
            out[i, ch] = out[i, ch] / inv


@njit(parallel=True, cache=True, nogil=True)
def channel_affine(x, scale, bias, out):  # type: ignore[no-untyped-def]
    """``x (A, C, B)`` times ``scale[c]`` plus ``bias[c]`` (pass ones / zeros for a missing
    one: exact); ``B == 1`` (channels last) runs rows of ``C`` contiguous channels."""
    a, c, b = x.shape
    if b == 1:
        x2, o2 = x.reshape(a, c), out.reshape(a, c)
        for i in prange(a):
            for ch in range(c):
                o2[i, ch] = x2[i, ch] * scale[ch] + bias[ch]
        return
    for i in prange(a):
        for ch in range(c):
            s, t = scale[ch], bias[ch]
            for j in range(b):
                out[i, ch, j] = x[i, ch, j] * s + t


@njit(inline="always")
def _rprelu(x, shift_in, slope, shift_out):  # type: ignore[no-untyped-def]
    """``max(y, 0) - slope max(-y, 0) + shift_out``, ``y = x + shift_in`` (the twin's order)."""
    zero = np.float32(0)
    y = x + shift_in
    pos = y if y > zero else zero
    negative = -y if -y > zero else zero
    return (pos - negative * slope) + shift_out


@njit(parallel=True, cache=True, nogil=True)
def rprelu(x, shift_in, slope, shift_out, out):  # type: ignore[no-untyped-def]
    """RPReLU on ``x (A, C, B)``, channel ``c`` on the middle axis (``B == 1``: channels last,
    rows of ``C`` contiguous channels)."""
    a, c, b = x.shape
    if b == 1:
        x2, o2 = x.reshape(a, c), out.reshape(a, c)
        for i in prange(a):
            for ch in range(c):
                o2[i, ch] = _rprelu(x2[i, ch], shift_in[ch], slope[ch], shift_out[ch])
        return
    for i in prange(a):
        for ch in range(c):
            si, sl, so = shift_in[ch], slope[ch], shift_out[ch]
            for j in range(b):
                out[i, ch, j] = _rprelu(x[i, ch, j], si, sl, so)


__all__ = ["SHORTCUT_GROUP_MEAN", "SHORTCUT_IDENTITY", "SHORTCUT_REPEAT", "binary_attention",
           "channel_affine", "layernorm", "react_linear", "rprelu", "token_avgpool",
           "token_multipool"]


key_on_package(globals())  # cached kernels recompile when any kernels source changes
