"""numba kernels of :mod:`.intmul`: integer, multiplication-free (shift) and distance GEMMs on
int8 inputs with int32 accumulators. Each parallel task is one row of ``x`` against four rows
of weights; the ``k`` loop is vectorised by LLVM (16 int32 lanes with AVX-512: ``vpsllvd``
shifts, no multiply in the shift kernel)."""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from .numba_cache import key_on_package


@intrinsic
def _shl32(typingctx, x, n):  # type: ignore[no-untyped-def]
    """``x << n`` on int32 (``0 <= n < 32``): numba would shift in int64, which LLVM cannot
    narrow (a 64-bit shift by 32..63 differs), and the loop would run on 8 lanes, not 16."""
    if not (isinstance(x, types.Integer) and isinstance(n, types.Integer)):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        i32 = ir.IntType(32)
        a = context.cast(builder, args[0], signature.args[0], types.int32)
        b = context.cast(builder, args[1], signature.args[1], types.int32)
        return builder.shl(builder.trunc(a, i32) if a.type != i32 else a,
                           builder.trunc(b, i32) if b.type != i32 else b)

    return types.int32(x, n), codegen


@njit(inline="always")
def _shift_term(xv, sh, neg, nz):  # type: ignore[no-untyped-def]
    """``sign * (x << sh)``: shift, conditional negation by the mask ``neg`` (0 or -1), then
    the zero mask ``nz`` (-1 keeps, 0 zeroes). numba types integer arithmetic as int64; the
    sums are truncated to int32 every step (:func:`_add32`), which lets LLVM narrow the whole
    chain to 32-bit lanes (exact: every partial sum fits, by the callers' bound checks)."""
    return ((_shl32(xv, sh) ^ neg) - neg) & nz


@njit(inline="always")
def _add32(acc, term):  # type: ignore[no-untyped-def]
    return np.int32(acc + term)


@njit(parallel=True, cache=True, nogil=True)
def shift_gemm_int(x, sh, neg, nz, out):  # type: ignore[no-untyped-def]
    """``out[m, n] = sum_k ((x << sh) ^ neg) - neg) & nz`` (int8 inputs, int32 sums)."""
    m_rows, k_cols = x.shape
    n_rows = sh.shape[0]
    n4 = (n_rows + 3) // 4
    for t in prange(m_rows * n4):
        m, j = t // n4, (t % n4) * 4
        if j + 4 <= n_rows:
            a0 = a1 = a2 = a3 = np.int32(0)
            for k in range(k_cols):
                xv = np.int32(x[m, k])
                a0 = _add32(a0, _shift_term(xv, sh[j, k], neg[j, k], nz[j, k]))
                a1 = _add32(a1, _shift_term(xv, sh[j + 1, k], neg[j + 1, k], nz[j + 1, k]))
                a2 = _add32(a2, _shift_term(xv, sh[j + 2, k], neg[j + 2, k], nz[j + 2, k]))
                a3 = _add32(a3, _shift_term(xv, sh[j + 3, k], neg[j + 3, k], nz[j + 3, k]))
            out[m, j], out[m, j + 1], out[m, j + 2], out[m, j + 3] = a0, a1, a2, a3
        else:
            for n in range(j, n_rows):
                acc = np.int32(0)
                for k in range(k_cols):
                    acc = _add32(acc, _shift_term(np.int32(x[m, k]), sh[n, k], neg[n, k], nz[n, k]))
                out[m, n] = acc


@njit(parallel=True, cache=True, nogil=True)
def distance_gemm_int(x, w, squared, out):  # type: ignore[no-untyped-def]
    """``out[m, n] = -sum_k d**2`` (``squared``) or ``-sum_k |d|``, ``d = x[m, k] - w[n, k]``
    (int8 inputs, int32 sums); ``squared`` is loop-invariant (LLVM unswitches it)."""
    for m in prange(x.shape[0]):
        for n in range(w.shape[0]):
            acc = np.int32(0)
            for k in range(x.shape[1]):
                d = np.int32(x[m, k]) - np.int32(w[n, k])
                acc = _add32(acc, d * d if squared else abs(d))
            out[m, n] = -acc


key_on_package(globals())  # cached kernels recompile when any kernels source changes
