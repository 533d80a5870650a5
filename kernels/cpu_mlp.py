"""Numba kernels of a binary MLP (issue 17): the certified integer first layer of
:mod:`.first_layer` (grid codes, the ``vpdpbusd`` int8 GEMM written as LLVM IR, the certified
signs) and the fused tail of :mod:`.binary_head`. Imported on first use, so that importing
``proxcompress.kernels`` loads no numba."""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .first_layer import COLS, LANES, ROWS
from .numba_cache import key_on_package
from .simd import _I32, _I64, _Loop, _splat, _wide

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
def tile(typingctx, p, q, acc, order, i, j):  # type: ignore[no-untyped-def]
    """``acc[r, j + 16 c + l] = sum_g dot4(p[m, g], q[g, j + 16 c + l])`` with
    ``m = order[i + r]`` for a ``ROWS x COLS`` tile: ``p`` (rows, G) int32 words of 4 u8
    pixels, ``q`` (G, C) int32 words of 4 s8 weights, ``acc`` the tile's own (ROWS, >= 64)
    block (its row ``r`` is the tile's row ``r``: a caller holds it in L1 and consumes it at
    once); a word group where every row's pixels are 0 is skipped (``order`` groups rows of
    similar support: fewer groups to do)."""
    sig = types.void(p, q, acc, order, i, j)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        _wide(builder)
        p_arr, q_arr, a_arr, o_arr = (context.make_array(t)(context, builder, v)
                                      for t, v in zip(signature.args[:4], args[:4], strict=True))
        i_val, j_val = (context.cast(builder, v, t, types.int64)
                        for t, v in zip(signature.args[4:], args[4:], strict=True))
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
            row = builder.mul(ir.Constant(_I64, r), lda)
            for c in range(COLS):
                at = builder.add(builder.add(row, j_val), ir.Constant(_I64, c * LANES))
                ptr = builder.bitcast(builder.gep(a_arr.data, [at]), _V32.as_pointer())
                builder.store(sums[r * COLS + c], ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def limit_words(typingctx, acc, lo, hi, at):  # type: ignore[no-untyped-def]
    """``(neg, open)``: the bit words (bit ``j`` for entry ``at + j``) of ``acc < lo`` and of
    ``lo <= acc <= hi`` over 64 consecutive int32 entries of the three arrays (each holding
    ``at + 64`` of them): compares of <64 x i32> vectors whose <64 x i1> results are the
    words (mask registers with AVX-512), where a scalar loop shifts each bit into place."""
    sig = types.UniTuple(types.uint64, 2)(acc, lo, hi, at)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        _wide(builder)
        vec = ir.VectorType(_I32, 64)
        at_val = context.cast(builder, args[3], signature.args[3], types.int64)
        loaded = []
        for t, v in zip(signature.args[:3], args[:3], strict=True):
            data = context.make_array(t)(context, builder, v).data
            ptr = builder.bitcast(builder.gep(data, [at_val]), vec.as_pointer())
            loaded.append(builder.load(ptr, align=4))
        a, low, high = loaded
        neg = builder.icmp_signed("<", a, low)
        out = builder.or_(neg, builder.icmp_signed(">", a, high))
        words = [builder.bitcast(m, _I64) for m in (neg, builder.not_(out))]
        return context.make_tuple(builder, signature.return_type, words)

    return sig, codegen


@numba.njit(cache=True, fastmath={"reassoc"})
def _norms(row):  # type: ignore[no-untyped-def]
    """``(sum p, sum p**2)`` of a row of u8 codes, in float64: integers below 2**53 at every
    partial sum, so the reassociated (vector-lane) sums are exact."""
    s1 = 0.0
    s2 = 0.0
    for c in range(row.shape[0]):
        v = np.float64(row[c])
        s1 += v
        s2 += v * v
    return s1, s2


@numba.njit(parallel=True, cache=True)
def grid_codes(x, inv_scale, scale, offset, top, tol, fix, codes, words, key, l1, l2, err):  # type: ignore[no-untyped-def]
    """Grid codes ``p`` of ``x`` (N, K) into ``codes`` (rows >= N, 4 G >= K, zero padding;
    ``words`` its (rows, G) int32 view) and per row its :func:`_support_key` into ``key``,
    ``||p||_1``, ``||p||_2`` and an upper bound of its largest exact distance
    ``|x - (a p + o)|`` (the computed one in units of ``tol / 2**20``, rounded up, plus ``fix``:
    ``first_layer._codes_error``). Returns false when some
    value is off the grid: farther than ``tol`` from ``a p + o``, or ``p`` outside
    ``0 .. top``. In float32 (the scalars are float32): the distance it computes is within
    ``first_layer._codes_error`` of the exact one. The loop keeps 32-bit lanes (16 per zmm):
    the code as float32, the flags as booleans, the distance's maximum in int32 (numba widens
    int32 arithmetic to int64, which halves the lanes: 0.13 -> 0.085 ms at batch 256); the
    norms in a second pass (:func:`_norms`)."""
    n, k = x.shape
    lo, hi, half3 = np.float32(-1.0), top + np.float32(1.0), np.float32(1.5)
    one, zero = np.float32(1.0), np.float32(0.0)
    cap, units = tol + tol, np.float32(2.0**20) / tol
    bad = 0
    for r in prange(n):
        off = False
        most = np.int32(0)
        for c in range(k):
            v = x[r, c]
            t = (v - offset) * inv_scale
            t = t if t > lo else lo  # also catches NaN: never on the grid below
            t = t if t < hi else hi
            qi = np.int32(t + half3)  # round to nearest, plus 1 (t + 1.5 > 0: truncation floors)
            q = np.float32(qi) - one
            d = abs(v - (scale * q + offset))
            off |= (d > tol) | (q < zero) | (q > top)
            dq = np.int32((d if d < cap else cap) * units)  # <= 2**21 (NaN: cap)
            most = max(most, dq)
            codes[r, c] = np.uint8(qi - np.int32(1))
        s1, s2 = _norms(codes[r, :k])
        l1[r] = s1
        l2[r] = math.sqrt(s2)
        err[r] = (most + 1) * (np.float64(tol) / 2.0**20) * (1 + 2.0**-20) + fix
        key[r] = _support_key(words[r])
        bad += off
    return bad == 0


@numba.njit(cache=True)
def _support_key(row):  # type: ignore[no-untyped-def]
    """The sort key of a row of (G,) int32 groups of 4 pixels: the span from its first to its
    last non-zero group, then the count of non-zero groups. Rows sorted by it share zero
    groups, which a tile skips only when all its rows have them (on Fashion-MNIST a tile of 4
    then does 71% of the groups, 89% unsorted)."""
    g = row.shape[0]
    count = 0
    for c in range(g):
        count += row[c] != 0
    first = 0
    while first < g and row[first] == 0:
        first += 1
    last = g - 1
    while last > first and row[last] == 0:
        last -= 1
    return (last - first) * (g + 1) + count


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


@numba.njit(cache=True)
def level1_limits(tab, a, l1_rows, l2_rows, err_rows, slack, lo, hi):  # type: ignore[no-untyped-def]
    """Per channel ``c``, integer limits of the level-1 test for a whole batch: with ``v`` the
    row's int32 product ``p . q1_c`` and ``y = tab[0, c] v + tab[1, c]`` (``tab[0] > 0``: the
    layer stores ``q1`` negated when ``a < 0``), ``v < lo[c]`` certifies ``y < 0`` and
    ``v > hi[c]`` certifies ``y > 0`` for every row of the batch (``l1``, ``l2``, ``er``: the
    largest of its rows' ``||p||_1``, ``||p||_2``, distance bounds): the per-row bound of
    :func:`_row_signs` is non-decreasing in the three, its ``|s1|`` at most
    ``tab[0] 127 ||p||_1`` (``|q1| <= 127``), and the bound here is that one at the batch's
    largest values times ``1 + 2**-40``. With ``L = (-tab[1] - bound) / tab[0]`` computed in
    float64 (within 1 of the real quotient for ``|L| < 2**50``), ``lo = floor(L) - 1``: a
    ``v < lo`` is at most ``L_real - 1``, so ``y <= -bound - tab[0] < 0``; ``hi`` likewise.
    A channel where that does not hold (a non-finite or huge quotient) gets limits no int32
    passes: every entry goes to the per-row test. Limits are clamped to int32 (still sound:
    ``|v| <= 127 * 255 * K`` is far inside). Padding channels (past ``tab``'s, up to
    ``lo``'s length) get ``lo = 0 > hi = -1``: their zero products are neither negative nor
    open."""
    l1, l2, er = l1_rows.max(), l2_rows.max(), err_rows.max()
    aa = abs(a)
    small, large = -(2.0**31), 2.0**31 - 1
    lo[tab.shape[1]:] = 0
    hi[tab.shape[1]:] = -1
    for c in range(tab.shape[1]):
        s = tab[0, c]
        b = tab[1, c]
        bound = (aa * min(l1 * tab[2, c], l2 * tab[3, c]) + tab[7, c] * er
                 + slack * (s * 127.0 * l1 + tab[9, c] + aa * l1 * tab[8, c])) * (1 + 2.0**-40)
        low = (-b - bound) / s
        high = (-b + bound) / s
        ok = (s > 0) & (abs(low) < 2.0**50) & (abs(high) < 2.0**50)  # false for NaN and inf
        low = math.floor(low) - 1.0 if ok else small  # selects: the loop vectorises
        high = math.ceil(high) + 1.0 if ok else large
        lo[c] = np.int32(min(max(low, small), large))
        hi[c] = np.int32(min(max(high, small), large))


@numba.njit(cache=True)
def _row_signs(r, acc, lo, hi, codes, x, l1, l2, err, a, w, q2, bias, tab, slack, words, flags,
               stats):  # type: ignore[no-untyped-def]
    """The certified signs of row ``r`` of ``y = x w^T + bias`` into packed ``words[r]`` (bit
    set = negative) from its int32 level-1 products ``acc`` (C_pad,), by the three levels of
    the module docstring. First the batch's integer limits (:func:`level1_limits`, by
    :func:`limit_words`) decide nearly every entry with two integer comparisons; the others
    take the row's own level-1 bound, and those within it levels 2 and 3. ``tab`` per channel
    (rows): ``|a| s1`` (``q1`` negated when ``a < 0``), ``o sum(w) + b``, ``max|r1|``,
    ``||r1||_2``, ``a s2``, ``max|r2|``, ``||r2||_2``, ``||w||_1``, ``max|w|``,
    ``|o| ||w||_1 + |b|`` (the scale of ``o sum(w) + b``'s rounding); ``slack`` the relative
    slack of the float64 evaluation. ``stats[r]``: entries that needed level 2, level 3, and
    undecided ones (any undecided entry: the caller runs the float path). ``flags``: scratch
    (W,), the entries the limits left open."""
    aa = abs(a)
    l1r, er = l1[r], err[r]
    close = 0
    for wd in range(words.shape[1]):
        bits, near = limit_words(acc, lo, hi, 64 * wd)
        words[r, wd] = bits
        flags[wd] = near
        close += near != 0
    count = stats[r]
    count[:] = 0
    if close:  # the entries the limits left open: the row's own bound, then levels 2 and 3
        for wd in range(words.shape[1]):
            near = flags[wd]
            while near:
                j = 0
                while not (near >> np.uint64(j)) & np.uint64(1):
                    j += 1
                near &= ~(np.uint64(1) << np.uint64(j))
                c = 64 * wd + j
                s1 = tab[0, c] * acc[c]
                y = s1 + tab[1, c]
                base = tab[7, c] * er + slack * (abs(s1) + tab[9, c] + aa * l1r * tab[8, c])
                if abs(y) <= aa * min(l1r * tab[2, c], l2[r] * tab[3, c]) + base:
                    y = _decide(r, c, y, base, codes, x, l1, l2, a, w, q2, bias, tab, count)
                bit = np.uint64(1) << np.uint64(j)
                words[r, wd] = (words[r, wd] | bit) if y < 0 else (words[r, wd] & ~bit)


@numba.njit(parallel=True, cache=True)
def certified_signs(p, q, order, n, lo, hi, codes, x, l1, l2, err, a, w, q2, bias, tab, slack,
                    words, stats):  # type: ignore[no-untyped-def]
    """The certified signs of ``y = x w^T + bias`` (N rows) into packed ``words``: per tile of
    ``ROWS`` rows (``order``'s, padding rows last), the int8 products ``p . q`` of every
    column tile (:func:`tile`) into the tile's own (ROWS, C_pad) int32 block, then each row's
    signs (:func:`_row_signs`) while the block is in L1. One parallel task per row tile: no
    int32 (N, C_pad) intermediate, one parallel launch for the layer."""
    row_tiles = p.shape[0] // ROWS
    c_pad = q.shape[1]
    for t in prange(row_tiles):
        acc = np.empty((ROWS, c_pad), np.int32)
        flags = np.empty(words.shape[1], np.uint64)
        for j in range(0, c_pad, COLS * LANES):
            tile(p, q, acc, order, t * ROWS, j)
        for i in range(ROWS):
            r = order[t * ROWS + i]
            if r < n:
                _row_signs(r, acc[i], lo, hi, codes, x, l1, l2, err, a, w, q2, bias, tab, slack,
                           words, flags, stats)


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _dot4x2(h, w0, w1):  # type: ignore[no-untyped-def]
    """float64 dot products of the 4 rows of ``h`` with ``w0`` and with ``w1``, reassociated
    (vector lanes; deterministic for a given build). Eight independent sums share each load of
    ``h`` and of the weights: one dot product at a time is bound by loads (the head's weights,
    40 KB in float64, do not stay in a 32 KB L1). A fused multiply-add rounds as a multiply
    then an add here: the products of float32 values are exact in float64."""
    s0 = s1 = s2 = s3 = t0 = t1 = t2 = t3 = 0.0
    for j in range(w0.shape[0]):
        a = w0[j]
        b = w1[j]
        h0 = h[0, j]
        h1 = h[1, j]
        h2 = h[2, j]
        h3 = h[3, j]
        s0 += h0 * a
        s1 += h1 * a
        s2 += h2 * a
        s3 += h3 * a
        t0 += h0 * b
        t1 += h1 * b
        t2 += h2 * b
        t3 += h3 * b
    return (s0, s1, s2, s3, t0, t1, t2, t3)


@numba.njit(parallel=True, cache=True)
def head_tail(acc, scale, bias, lo, hi, wh, bh, out):  # type: ignore[no-untyped-def]
    """``out[r] = clip(float32(acc[r]) * scale + bias, lo, hi) @ wh.T + bh`` (float32
    activations in NumPy's order, float64 dot products plus ``bh``, rounded once to float32),
    by blocks of 4 rows and 2 outputs
    (:func:`_dot4x2`; padding rows are zeros, an odd last output pairs with itself)."""
    n, k = acc.shape
    o = wh.shape[0]
    for b in prange((n + 3) // 4):
        h = np.zeros((4, k), np.float64)
        r0 = 4 * b
        m = min(n - r0, 4)
        for i in range(m):
            for j in range(k):
                v = np.float32(acc[r0 + i, j]) * scale[j] + bias[j]
                v = v if v > lo else lo  # np.clip: maximum then minimum
                v = v if v < hi else hi
                h[i, j] = v
        for c in range(0, o, 2):
            c1 = min(c + 1, o - 1)
            s = _dot4x2(h, wh[c], wh[c1])
            for i in range(m):
                out[r0 + i, c] = np.float32(s[i] + bh[c])
                out[r0 + i, c1] = np.float32(s[4 + i] + bh[c1])


key_on_package(globals())  # cached kernels recompile when any kernels source changes
