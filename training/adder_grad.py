"""Numba kernels for the backward pass of the L1 (AdderNet) distance ``-||x_m - w_n||_1``.

Its gradients have no GEMM form: each needs every ``(m, n, k)`` triple. Computed in torch they
materialize ``(rows x outputs x fan-in)`` temporaries block by block (about 0.6 s a step for the
CNN's two adder convs on one core, measured); these kernels stream over ``k`` instead, in
parallel over the rows (or outputs) they write, with no temporaries.

* :func:`input_grad_clipped`: AdderNet's full-precision input gradient
  ``gx[m, k] = sum_n g[m, n] clip(w[n, k] - x[m, k], -1, 1)`` (Chen et al., CVPR 2020, eq. (5)).
* :func:`sign_grads`: the exact gradients of ``-||x - w||_1``,
  ``gx[m, k] = -sum_n g[m, n] sign(x[m, k] - w[n, k])`` and
  ``gw[n, k] = sum_m g[m, n] sign(x[m, k] - w[n, k])`` (``sign(0) = 0``).

Inputs are float32 arrays (made C-contiguous). The torch twin, used on other devices and
dtypes and tested against these, is ``_l1_grads_torch`` in
:mod:`proxcompress.training.euclid`.
"""

from __future__ import annotations

import numba
import numpy as np

from proxcompress.numba_cache import njit


@njit(parallel=True, cache=True, fastmath=False)
def _input_grad_clipped(g: np.ndarray, x: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    m, k = x.shape
    n = w.shape[0]
    for i in numba.prange(m):
        row = out[i]
        for j in range(k):
            row[j] = 0.0
        xi = x[i]
        for o in range(n):
            gi = g[i, o]
            if gi == 0.0:
                continue
            wo = w[o]
            for j in range(k):
                d = wo[j] - xi[j]
                d = min(max(d, -1.0), 1.0)
                row[j] += gi * d


@njit(parallel=True, cache=True, fastmath=False)
def _sign_input_grad(g: np.ndarray, x: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    m, k = x.shape
    n = w.shape[0]
    for i in numba.prange(m):
        row = out[i]
        for j in range(k):
            row[j] = 0.0
        xi = x[i]
        for o in range(n):
            gi = g[i, o]
            wo = w[o]
            for j in range(k):
                d = xi[j] - wo[j]
                s = (d > 0.0) - (d < 0.0)
                row[j] -= gi * s


def _prepare(g: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    arrays = tuple(np.ascontiguousarray(a, dtype=np.float32) for a in (g, x, w))
    g, x, w = arrays
    if x.ndim != 2 or w.ndim != 2 or g.ndim != 2 or x.shape[1] != w.shape[1] \
            or g.shape != (x.shape[0], w.shape[0]):
        raise ValueError(f"shapes g {g.shape}, x {x.shape}, w {w.shape}: need g (M, N), "
                         "x (M, K), w (N, K)")
    return arrays


def input_grad_clipped(g: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``sum_n g[m, n] clip(w[n] - x[m], -1, 1)``: ``(M, K)`` float32."""
    g, x, w = _prepare(g, x, w)
    out = np.empty_like(x)
    _input_grad_clipped(g, x, w, out)
    return out


def sign_grads(g: np.ndarray, x: np.ndarray, w: np.ndarray, need_x: bool = True,
               need_w: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Exact ``(gx, gw)`` of ``sum_{m,n} g[m, n] (-||x_m - w_n||_1)`` (``None`` where not
    needed)."""
    g, x, w = _prepare(g, x, w)
    gx = gw = None
    if need_x:
        gx = np.empty_like(x)
        _sign_input_grad(g, x, w, gx)
    if need_w:  # gw[n] = -sum_m g[m, n] sign(w[n] - x[m]): the same kernel, roles swapped
        gw = np.empty_like(w)
        _sign_input_grad(np.ascontiguousarray(g.T), w, x, gw)
    return gx, gw


__all__ = ["input_grad_clipped", "sign_grads"]
