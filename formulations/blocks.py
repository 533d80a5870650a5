"""Block coordinate primitives shared by ``bnb``'s node solver and the L0 path heuristic.

The loss is ``1/2 ||C - AW||^2`` kept through its residual ``R = C - A W``; ``AT = A^T`` holds
one feature per row, so a block's gradient and a block's update each cost one pass over its
rows of ``AT``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from proxcompress.numba_cache import njit

FloatArray = NDArray[np.float64]


@njit(cache=True)
def gradient_step(
    AT: FloatArray, R: FloatArray, W: FloatArray, s: int, e: int, t: float
) -> FloatArray:
    """``W_g - t grad_g = W_g + t A_g^T R`` for the rows ``s:e`` of block ``g``."""
    m = W.shape[1]
    V = np.zeros((e - s, m))
    for i in range(s, e):
        for k in range(AT.shape[1]):
            coef = AT[i, k]
            if coef != 0.0:
                for j in range(m):
                    V[i - s, j] += coef * R[k, j]
        for j in range(m):
            V[i - s, j] = W[i, j] + t * V[i - s, j]
    return V


@njit(cache=True)
def apply_block(AT: FloatArray, R: FloatArray, W: FloatArray, V: FloatArray, s: int,
                e: int) -> None:
    """Set rows ``s:e`` of ``W`` to ``V``, keeping ``R = C - A W`` (changed rows only)."""
    m = W.shape[1]
    for i in range(s, e):
        changed = False
        for j in range(m):
            if V[i - s, j] != W[i, j]:
                changed = True
        if changed:
            for k in range(AT.shape[1]):
                coef = AT[i, k]
                if coef != 0.0:
                    for j in range(m):
                        R[k, j] -= coef * (V[i - s, j] - W[i, j])
            for j in range(m):
                W[i, j] = V[i - s, j]
