"""The SignSwish quantizer pass of a training step in one numba loop (issue 17, part 4).

BNN+, BNN++ and ``bnn++-prox`` need, per latent weight, ``alpha F(x)`` and the slope
``alpha SS_beta'(x)`` from ``u = beta x`` (or ``beta P(x)``) and ``s = sigma(u)``. torch runs
that as eight whole-tensor passes (``training.fused``'s eager body); here, after torch has
computed ``u`` and ``s`` (torch's vectorised sigmoid: the same ``s`` the reference uses), one
parallel pass over the rows writes both outputs:

.. math::

    q = \\mathrm{fma}(-s, s, s), \\quad t = \\mathrm{fma}(-2u, s, u + 2), \\quad
    \\text{slope} = (q t)\\,(2 \\beta \\alpha), \\quad
    \\text{out} = \\alpha \\operatorname{sign}(x) \\;\\text{or}\\;
    \\alpha\\, \\mathrm{fma}(2u, q, 2s - 1),

the operations of the reference (``torch.addcmul``'s vector kernels contract
``self + value * t1 * t2`` into one fused multiply-add, ``(value t1) t2 + self``), so the
results are bitwise those of the eager torch body on CPUs where torch's kernels use FMA (every
x86 CPU with AVX2 or AVX-512; tests/kernels/test_signswish.py checks it on the machine it runs
on). The loop is plain arithmetic on the CPU numba compiles for: no tuning to one CPU.

Importing this module imports numba (``training.fused`` imports it on first use); the
loops compile on first call and are cached (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _fma(typingctx, a, b, c):  # type: ignore[no-untyped-def]
    """``llvm.fma``: one rounding of ``a b + c`` (vfmadd after vectorisation)."""
    if not (a == b == c and isinstance(a, types.Float)):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.fma(*args)

    return a(a, a, a), codegen


@njit(cache=True, nogil=True, inline="always")
def _q_slope(uv, sv, c, two):  # type: ignore[no-untyped-def]
    """``q = fma(-s, s, s)`` and the slope ``(q fma(-2u, s, u + 2)) c``."""
    q = _fma(-sv, sv, sv)
    return q, (q * _fma(-(uv + uv), sv, uv + two)) * c


@njit(cache=True, nogil=True, boundscheck=False)
def _signswish(x, u, s, alpha, two_beta, sign_forward, out, slope):  # type: ignore[no-untyped-def]
    """``slope = (q t)(2 beta alpha)``; ``out = alpha sign(x)`` (BNN+) or
    ``alpha fma(2u, q, 2s - 1)`` (BNN++; the branch is loop-invariant: as fast as two loops)."""
    rows, cols = x.shape
    zero = x.dtype.type(0.0)
    one = x.dtype.type(1.0)
    two = one + one
    for j in range(rows):
        a = alpha[j, 0]
        c = a * two_beta
        for i in range(cols):
            uv = u[j, i]
            sv = s[j, i]
            q, slope[j, i] = _q_slope(uv, sv, c, two)
            if sign_forward:
                xv = x[j, i]
                out[j, i] = (one if xv > zero else (-one if xv < zero else zero)) * a
            else:
                out[j, i] = _fma(uv + uv, q, (sv + sv) - one) * a


def signswish_pass(x: np.ndarray, u: np.ndarray, s: np.ndarray, alpha: np.ndarray,
                   beta: float, sign_forward: bool, out: np.ndarray, slope: np.ndarray) -> None:
    """Write ``out`` and ``slope`` (see the module doc) from C-contiguous 2-D ``x``, ``u``,
    ``s`` of one float dtype and ``alpha`` of shape ``(rows, 1)``.

    One thread: numba's parallel loops run on a second OpenMP runtime beside torch's, whose
    idle threads spin on a 2-core machine; the pass is one memory-bound sweep (about 0.1 ns
    an element), cheaper serial than the contention."""
    _signswish(x, u, s, alpha, x.dtype.type(2.0 * beta), sign_forward, out, slope)


__all__ = ["signswish_pass"]
