"""Block-hull node bounds: the exact convex hull of small blocks of neighbouring features.

For single-feature groups and one output, split the Gram matrix ``G = X^T X`` as ``G = H +
blkdiag(Q_B)`` over disjoint blocks ``B`` of at most :data:`MAX_BLOCK` neighbouring features,
with ``H`` positive definite (certified) and ``P_B = Q_B + 2 lam alpha I`` positive definite.
The objective is then

.. math::

    \\tfrac12 w^\\top H w - \\langle X^\\top y, w\\rangle + \\tfrac12\\|y\\|^2
        + \\sum_B \\Big[\\tfrac12 w_B^\\top P_B w_B + \\lambda(1-\\alpha) |z_B|\\Big],

and each block's bracket, a function of ``w_B`` with its indicators ``z_B in {0, 1}^B``
(``w_i = 0`` where ``z_i = 0``), has an exact convex hull: the disjunction over the supports
``S`` of the block (Ceria and Soares, *Convex programming for disjunctive convex
optimization*, 1999), ``sum_S [ x_S^T P_SS x_S / (2 l_S) + lam (1 - alpha) |S| l_S ]`` with
``w_B = sum_S x_S``, ``sum_S l_S <= 1``. With ``Q_B = Diag(delta_B)`` this is the diagonal
shift of :mod:`~proxcompress.formulations.bnb`; a full block ``Q_B`` moves the correlation of
neighbours into the hull as well (the 2 x 2 case is the pair convexification of Atamtürk and
Gómez and of Anstreicher and Burer, *Quadratic optimization with switching variables: the
convex hull for n = 2*, 2021).

**Bound.** Any ``w`` gives a valid lower bound on every integer point of a node (its fixings
restrict the supports ``S`` a block may use): with ``v = s (X^T y - H w)``,

.. math::

    D = s (c - \\langle w, X^\\top y\\rangle) - \\tfrac{s^2}{2}\\big(c - 2\\langle w,
        X^\\top y\\rangle + w^\\top H w\\big) - \\sum_B h_B^*(v_B) + \\tfrac12(\\|y\\|^2 - c),

``c = (X^T y)^T H^{-1} X^T y``, the Fenchel dual of the factored loss (``U = s (C - A w)``,
``A^T A = H``) and ``h_B^*(v) = max(0, max_S v_S^T P_SS^{-1} v_S / 2 - lam (1 - alpha) |S|)``
(the conjugate of the block's term without the box ``|w_i| <= M``, which only makes it larger:
still a valid bound). ``s`` is chosen by a golden-section search. The relaxation itself is
solved by cyclic block proximal-gradient sweeps on the disaggregated ``x_S`` (a block's own
Lipschitz constant; faster than FISTA with the global one: 13 747 against 13 587 after 30 steps
at a sampled node of the hard regime), with Nesterov momentum over whole sweeps, a gradient
restart and a monotone safeguard (:func:`_accelerated`; plain sweeps converge like ``O(1/k)``);
blocks the prox keeps at zero are skipped. The prox of the hull term is exact: per support a
one-dimensional root for ``l_S`` (the perspective of a quadratic, in the eigenbasis of
``P_SS``), and a false-position search for the price of ``sum_S l_S <= 1``.

**Decomposition.** The bound is only as good as ``Q``. :func:`block_hull` takes it from the
caller; :func:`sdp_decomposition` computes the best one for given blocks from the joint dual
over ``(Q, v)`` (SCS: seconds at 100 features; see ``docs/decisions.md``, issue 14), an SDP
assembled for SCS's own API (:func:`_joint_dual_data`; the CVXPY model is its twin,
``backend="cvxpy"``, whose compilation cost about as much as SCS's solve).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from proxcompress.errors import InvalidInputError
from proxcompress.formulations.problem import LayerPruningProblem
from proxcompress.formulations.shifts import safe_lambda_min
from proxcompress.numba_cache import njit

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: largest block (2^size - 1 supports per block)
MAX_BLOCK = 4
#: certified room kept in ``H`` and in every ``P_SS`` (share of the Jacobi-scaled spectrum)
MARGIN = 1e-7
FREE, IN, OUT = 0, 1, 2
#: sweeps of the root's hull relaxation in ``solve_bnb``
HULL_ROOT_ITERS = 1500
#: golden-section steps of the dual scaling ``s`` (any ``s`` is valid)
GOLDEN_STEPS = 40
#: node bounds in the tree: sweeps between two reads of the bound, and the stall share
HULL_CHECK_EVERY = 10
HULL_STALL = 0.05


# ----------------------------------------------------------------------------- kernels
@njit(cache=True)
def _support_z(vp: FloatArray, ev: FloatArray, r: int, t: float, price: float) -> float:
    """The ``l_S`` of one support in the prox: the root in ``[0, 1]`` of the decreasing
    ``phi(z) = sum_i ev_i vp_i^2 / (2 (z + t ev_i)^2) = price`` (0 or 1 at the ends)."""
    f0 = 0.0
    for i in range(r):
        f0 += 0.5 * vp[i] ** 2 / (t * t * ev[i])
    if f0 <= price:
        return 0.0
    f1 = 0.0
    for i in range(r):
        f1 += 0.5 * ev[i] * vp[i] ** 2 / (1.0 + t * ev[i]) ** 2
    if f1 >= price:
        return 1.0
    lo, hi, z = 0.0, 1.0, 0.0
    for _ in range(80):
        f = 0.0
        df = 0.0
        for i in range(r):
            den = z + t * ev[i]
            f += 0.5 * ev[i] * vp[i] ** 2 / den**2
            df -= ev[i] * vp[i] ** 2 / den**3
        if f > price:
            lo = z
        else:
            hi = z
        zn = z - (f - price) / df if df < 0.0 else 0.5 * (lo + hi)
        if not lo < zn < hi:
            zn = 0.5 * (lo + hi)
        if abs(zn - z) <= 1e-14 or hi - lo <= 1e-14:
            return zn
        z = zn
    return z


@njit(cache=True)
def _allowed(c: int, first: int, last: int, idx: IntArray, size: IntArray,
             status: NDArray[np.int8]) -> bool:
    """Support ``c`` is compatible with the fixings: no feature out, every feature in of its
    block (supports ``first:last``) included."""
    for i in range(size[c]):
        if status[idx[c, i]] == OUT:
            return False
    for c2 in range(first, last):
        for i in range(size[c2]):
            f = idx[c2, i]
            if status[f] == IN:
                found = False
                for j in range(size[c]):
                    if idx[c, j] == f:
                        found = True
                if not found:
                    return False
    return True


@njit(cache=True)
def _block_has_in(first: int, last: int, idx: IntArray, size: IntArray,
                  status: NDArray[np.int8]) -> bool:
    for c in range(first, last):
        for i in range(size[c]):
            if status[idx[c, i]] == IN:
                return True
    return False


@njit(cache=True)
def _block_prox(Vin: FloatArray, Xout: FloatArray, lam_out: FloatArray, first: int, last: int,
                idx: IntArray, size: IntArray, ev: FloatArray, vec: FloatArray, t: float,
                b: float, status: NDArray[np.int8]) -> None:
    """The exact prox of one block's hull term at the disaggregated point ``Vin``."""
    K = Vin.shape[1]
    n = last - first
    vp = np.zeros((n, K))
    ok = np.zeros(n, dtype=np.bool_)
    for c in range(first, last):
        ok[c - first] = _allowed(c, first, last, idx, size, status)
        for i in range(size[c]):
            acc = 0.0
            for j in range(size[c]):
                acc += vec[c, j, i] * Vin[c, j]
            vp[c - first, i] = acc
    must = _block_has_in(first, last, idx, size, status)

    def total(tau: float) -> float:
        acc = 0.0
        for c in range(first, last):
            if ok[c - first]:
                acc += _support_z(vp[c - first], ev[c], size[c], t, b * size[c] + tau)
        return acc

    tau = 0.0
    any_ok = False
    for c in range(n):
        any_ok = any_ok or ok[c]
    if any_ok and (must or total(0.0) > 1.0):
        # the price of sum_S l_S <= 1: the root of the non-increasing total(tau) - 1,
        # bracketed, then Illinois false position with a bisection step now and then (the
        # feasible end ``hi`` is kept)
        lo, hi = 0.0, 1.0
        f_lo = total(lo) - 1.0
        if f_lo < 0.0:  # a block with a feature in: the price may be negative
            hi, lo = lo, -1.0
            f_lo = total(lo) - 1.0
            while f_lo < 0.0 and lo > -1e30:
                hi, lo = lo, 2.0 * lo
                f_lo = total(lo) - 1.0
        f_hi = total(hi) - 1.0
        while f_hi > 0.0 and hi < 1e30:
            lo, f_lo = hi, f_hi
            hi *= 2.0
            f_hi = total(hi) - 1.0
        side = 0
        for it in range(100):
            if hi - lo <= 1e-12 * max(1.0, abs(hi)) or f_hi == 0.0:
                break
            if it % 6 == 5 or f_lo == f_hi:
                mid = 0.5 * (lo + hi)
            else:
                mid = hi - f_hi * (hi - lo) / (f_hi - f_lo)
                if not lo < mid < hi:
                    mid = 0.5 * (lo + hi)
            f_mid = total(mid) - 1.0
            if f_mid > 0.0:
                lo, f_lo = mid, f_mid
                if side == -1:
                    f_hi *= 0.5
                side = -1
            else:
                hi, f_hi = mid, f_mid
                if side == 1:
                    f_lo *= 0.5
                side = 1
        tau = hi
    for c in range(first, last):
        for i in range(K):
            Xout[c, i] = 0.0
        lam_out[c] = 0.0
        if not ok[c - first]:
            continue
        z = _support_z(vp[c - first], ev[c], size[c], t, b * size[c] + tau)
        lam_out[c] = z
        if z <= 0.0:
            continue
        for j in range(size[c]):
            acc = 0.0
            for i in range(size[c]):
                acc += vec[c, j, i] * vp[c - first, i] * z / (z + t * ev[c, i])
            Xout[c, j] = acc


@njit(cache=True)
def _w_of(X: FloatArray, idx: IntArray, size: IntArray, d: int) -> FloatArray:
    w = np.zeros(d)
    for c in range(X.shape[0]):
        for i in range(size[c]):
            w[idx[c, i]] += X[c, i]
    return w


@njit(cache=True)
def _block_conjugate(v: FloatArray, first: int, last: int, idx: IntArray, size: IntArray,
                     pinv: FloatArray, b: float, status: NDArray[np.int8]) -> float:
    """``h_B^*(v_B)`` of one block under the fixings (``-inf``: no support allowed)."""
    best = -np.inf if _block_has_in(first, last, idx, size, status) else 0.0
    for c in range(first, last):
        if not _allowed(c, first, last, idx, size, status):
            continue
        val = -b * size[c]
        for i in range(size[c]):
            for j in range(size[c]):
                val += 0.5 * v[idx[c, i]] * pinv[c, i, j] * v[idx[c, j]]
        if val > best:
            best = val
    return best


@njit(cache=True)
def _conjugates(v: FloatArray, bstart: IntArray, idx: IntArray, size: IntArray,
                pinv: FloatArray, b: float, status: NDArray[np.int8]) -> FloatArray:
    """``h_B^*(v_B)`` of every block under the fixings (``-inf`` where no support is
    allowed: the node is infeasible)."""
    n_blocks = bstart.shape[0] - 1
    out = np.empty(n_blocks)
    for bl in range(n_blocks):
        out[bl] = _block_conjugate(v, bstart[bl], bstart[bl + 1], idx, size, pinv, b, status)
    return out


@njit(cache=True)
def _children(v: FloatArray, bound: float, bstart: IntArray, idx: IntArray, size: IntArray,
              pinv: FloatArray, b: float, status: NDArray[np.int8],
              block_of: IntArray) -> tuple[FloatArray, FloatArray]:
    """Bounds of the children ``i in`` / ``i out`` of every free feature from the dual point
    ``v`` of ``bound``: only the feature's block conjugate changes."""
    d = status.shape[0]
    d_in = np.full(d, -np.inf)
    d_out = np.full(d, -np.inf)
    trial = status.copy()
    for i in range(d):
        if status[i] != FREE:
            continue
        bl = block_of[i]
        first, last = bstart[bl], bstart[bl + 1]
        node = _block_conjugate(v, first, last, idx, size, pinv, b, status)
        trial[i] = IN
        d_in[i] = bound - (_block_conjugate(v, first, last, idx, size, pinv, b, trial) - node)
        trial[i] = OUT
        d_out[i] = bound - (_block_conjugate(v, first, last, idx, size, pinv, b, trial) - node)
        trial[i] = FREE
    return d_in, d_out


def _dual(w: FloatArray, H: FloatArray, xty: FloatArray, cc: float, yy: float,
          bstart: IntArray, idx: IntArray, size: IntArray, pinv: FloatArray, b: float,
          status: NDArray[np.int8]) -> tuple[float, float]:
    """The bound ``D`` at ``w`` maximised over the scaling ``s`` (:func:`_dual_kernel`)."""
    return _dual_kernel(w, H @ w, xty, cc, yy, bstart, idx, size, pinv, b, status)


@njit(cache=True)
def _stays_zero(g: FloatArray, first: int, last: int, idx: IntArray, size: IntArray,
                pinv: FloatArray, b: float, status: NDArray[np.int8]) -> bool:
    """Whether the prox of a block at zero with no feature in keeps it at zero: exactly when
    every allowed support ``S`` has ``g_S^T P_SS^{-1} g_S <= 2 lam (1 - alpha) |S|`` (``g`` the
    loss gradient; the prox's ``l_S`` is 0 for each, so no price is needed)."""
    for c in range(first, last):
        if not _allowed(c, first, last, idx, size, status):
            continue
        val = 0.0
        for i in range(size[c]):
            for j in range(size[c]):
                val += g[idx[c, i]] * pinv[c, i, j] * g[idx[c, j]]
        if val > 2.0 * b * size[c]:
            return False
    return True


@njit(cache=True)
def _sweeps(H: FloatArray, X: FloatArray, g: FloatArray, idx: IntArray, size: IntArray,
            ev: FloatArray, vec: FloatArray, pinv: FloatArray, bstart: IntArray,
            blip: FloatArray, b: float, status: NDArray[np.int8], sweeps: int,
            lam_out: FloatArray) -> None:
    """``sweeps`` cyclic block proximal-gradient sweeps (a block's own Lipschitz constant
    ``blip``, its prox exact) on ``X`` in place, keeping the loss gradient ``g = H w - X^T y``
    up to date. A block at zero whose prox keeps it at zero (:func:`_stays_zero`) is skipped:
    the same iterates at a fraction of the cost (most blocks of a sparse solution)."""
    nc, K = X.shape
    d = H.shape[0]
    w = _w_of(X, idx, size, d)
    Vin = np.zeros_like(X)
    Xn = np.zeros_like(X)
    old = np.zeros(d)
    for _ in range(sweeps):
        for bl in range(bstart.shape[0] - 1):
            first, last = bstart[bl], bstart[bl + 1]
            feats = idx[last - 1, : size[last - 1]]  # the block's full support lists them all
            zero = True
            for f in feats:
                if w[f] != 0.0:
                    zero = False
            if zero:
                for c in range(first, last):
                    for i in range(size[c]):
                        if X[c, i] != 0.0:
                            zero = False
            if (zero and not _block_has_in(first, last, idx, size, status)
                    and _stays_zero(g, first, last, idx, size, pinv, b, status)):
                for c in range(first, last):
                    lam_out[c] = 0.0
                continue
            t = 1.0 / blip[bl]
            for c in range(first, last):
                for i in range(size[c]):
                    f = idx[c, i]
                    Vin[c, i] = X[c, i] - t * g[f]
            _block_prox(Vin, Xn, lam_out, first, last, idx, size, ev, vec, t, b, status)
            for f in feats:
                old[f] = w[f]
                w[f] = 0.0
            for c in range(first, last):
                for i in range(size[c]):
                    X[c, i] = Xn[c, i]
                    w[idx[c, i]] += Xn[c, i]
            for f in feats:
                delta = w[f] - old[f]
                if delta != 0.0:
                    for j in range(d):
                        g[j] += H[j, f] * delta


@njit(cache=True)
def _primal_value(X: FloatArray, lam: FloatArray, g: FloatArray, xty: FloatArray,
                  idx: IntArray, size: IntArray, ev: FloatArray, vec: FloatArray,
                  b: float) -> float:
    """The relaxation's objective at ``X`` with the supports' weights ``lam`` (from the
    sweep's prox) and the loss gradient ``g = H w - X^T y`` (without the constant ``1/2
    ||y||^2``): ``1/2 w^T g - 1/2 w^T X^T y`` plus every support's perspective term."""
    w = _w_of(X, idx, size, xty.shape[0])
    total = 0.0
    for i in range(w.shape[0]):
        total += 0.5 * w[i] * (g[i] - xty[i])
    for c in range(X.shape[0]):
        quad = 0.0
        for i in range(size[c]):
            proj = 0.0
            for j in range(size[c]):
                proj += vec[c, j, i] * X[c, j]
            quad += ev[c, i] * proj * proj
        if lam[c] > 0.0:
            total += 0.5 * quad / lam[c] + b * size[c] * lam[c]
        elif quad > 0.0:
            return np.inf
    return total


@njit(cache=True)
def _accelerated(H: FloatArray, xty: FloatArray, X: FloatArray, gX: FloatArray, Y: FloatArray,
                 gY: FloatArray, theta: float, fX: float, idx: IntArray, size: IntArray,
                 ev: FloatArray, vec: FloatArray, pinv: FloatArray, bstart: IntArray,
                 blip: FloatArray, b: float, status: NDArray[np.int8], sweeps: int,
                 lam_out: FloatArray) -> tuple[float, float]:
    """``sweeps`` sweeps with Nesterov momentum over whole sweeps: each sweep starts from the
    extrapolated ``Y``; the momentum is dropped when the step turns against the previous one
    (the gradient restart of O'Donoghue and Candès, 2015), and a sweep that raises the
    objective ``fX`` is replaced by a plain sweep from ``X`` (monotone: cyclic Gauss-Seidel
    with momentum can diverge, as on seed 2 of the hard regime). ``X`` (the iterates, whose
    bounds are read), ``Y`` and their loss gradients ``gX``, ``gY`` (affine in the point:
    extrapolated alike) are updated in place; returns ``(theta, fX)`` for the next call.
    Plain sweeps converge like ``O(1 / k)`` here (the disaggregated hull is not strongly
    convex): after one fixing below a converged parent, 80 sweeps leave 4-131 of the bound
    against 0.1-7 with momentum (seed 0 of the hard regime)."""
    for _ in range(sweeps):
        Xn = Y.copy()
        gn = gY.copy()
        _sweeps(H, Xn, gn, idx, size, ev, vec, pinv, bstart, blip, b, status, 1, lam_out)
        fn = _primal_value(Xn, lam_out, gn, xty, idx, size, ev, vec, b)
        turn = 0.0
        for c in range(X.shape[0]):
            for i in range(X.shape[1]):
                turn += (Y[c, i] - Xn[c, i]) * (Xn[c, i] - X[c, i])
        if not fn <= fX:  # no descent from the extrapolated point: a plain sweep instead
            Xn = X.copy()
            gn = gX.copy()
            _sweeps(H, Xn, gn, idx, size, ev, vec, pinv, bstart, blip, b, status, 1,
                    lam_out)
            fn = _primal_value(Xn, lam_out, gn, xty, idx, size, ev, vec, b)
            turn = 1.0
        if turn > 0.0:
            theta = 1.0
            beta = 0.0
        else:
            nxt = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * theta * theta))
            beta = (theta - 1.0) / nxt
            theta = nxt
        fX = fn
        for c in range(X.shape[0]):
            for i in range(X.shape[1]):
                Y[c, i] = Xn[c, i] + beta * (Xn[c, i] - X[c, i])
                X[c, i] = Xn[c, i]
        for j in range(gX.shape[0]):
            gY[j] = gn[j] + beta * (gn[j] - gX[j])
            gX[j] = gn[j]
    return theta, fX


@njit(cache=True)
def _dual_value(s: float, gvec: FloatArray, cc: float, wx: float, wHw: float, yy: float,
                bstart: IntArray, idx: IntArray, size: IntArray, pinv: FloatArray, b: float,
                status: NDArray[np.int8]) -> float:
    conj = _conjugates(s * gvec, bstart, idx, size, pinv, b, status).sum()
    return (s * (cc - wx) - 0.5 * s * s * (cc - 2.0 * wx + wHw) - conj
            + 0.5 * yy - 0.5 * cc)


@njit(cache=True)
def _dual_kernel(w: FloatArray, Hw: FloatArray, xty: FloatArray, cc: float, yy: float,
                 bstart: IntArray, idx: IntArray, size: IntArray, pinv: FloatArray, b: float,
                 status: NDArray[np.int8]) -> tuple[float, float]:
    """The best bound ``D`` over the scaling ``s`` in [0, 2] (golden section on the concave
    ``D(s)``, ``s = 1`` tried too: any ``s`` is valid) and that ``s``."""
    wx = 0.0
    wHw = 0.0
    for i in range(w.shape[0]):
        wx += w[i] * xty[i]
        wHw += w[i] * Hw[i]
    gvec = xty - Hw
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    lo, hi = 0.0, 2.0
    x1 = hi - ratio * (hi - lo)
    x2 = lo + ratio * (hi - lo)
    f1 = _dual_value(x1, gvec, cc, wx, wHw, yy, bstart, idx, size, pinv, b, status)
    f2 = _dual_value(x2, gvec, cc, wx, wHw, yy, bstart, idx, size, pinv, b, status)
    for _ in range(GOLDEN_STEPS):
        if f1 < f2:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + ratio * (hi - lo)
            f2 = _dual_value(x2, gvec, cc, wx, wHw, yy, bstart, idx, size, pinv, b, status)
        else:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - ratio * (hi - lo)
            f1 = _dual_value(x1, gvec, cc, wx, wHw, yy, bstart, idx, size, pinv, b, status)
    best, s = (f1, x1) if f1 >= f2 else (f2, x2)
    f_one = _dual_value(1.0, gvec, cc, wx, wHw, yy, bstart, idx, size, pinv, b, status)
    if f_one >= best:
        return f_one, 1.0
    return best, s


# ----------------------------------------------------------------------------- the bound
@dataclass
class HullResult:
    """A node's hull bound, the disaggregated point it came from (a warm start for the
    children) and the relaxed ``w`` (features in the hull's order)."""

    bound: float
    X: FloatArray
    w: FloatArray
    s: float


class BlockHull:
    """The block-hull relaxation of ``problem`` for a decomposition ``Q`` (build it with
    :func:`block_hull`). Features are in the order of ``order`` (the engine's)."""

    def __init__(self, problem: LayerPruningProblem, order: IntArray,
                 blocks: list[list[int]], Q: FloatArray) -> None:
        p = problem
        X = p.X[:, order]
        self.order = order
        self.source = problem  # what :meth:`fits` compares a solver's problem with
        self.G = X.T @ X
        self.xty = X.T @ p.Y[:, 0]
        self.yy = float(p.Y[:, 0] @ p.Y[:, 0])
        self.b = p.lam * (1.0 - p.alpha)
        ridge = p.lam * p.alpha
        d = p.d
        self.H = self.G - Q
        scale = np.sqrt(np.maximum(np.diag(self.G), 1e-300))
        scaled = self.H / np.outer(scale, scale)
        if not safe_lambda_min(scaled) >= MARGIN:
            raise InvalidInputError("Q", "leaves X^T X - blkdiag(Q) without a certified "
                                         "positive margin")
        try:
            factor = cho_factor(self.H, lower=False, check_finite=False)
        except LinAlgError as exc:
            raise InvalidInputError("Q", "leaves X^T X - blkdiag(Q) not factorable") from exc
        self.cc = float(self.xty @ cho_solve(factor, self.xty))
        K = max(len(B) for B in blocks)
        idx, size, ev, vec, pinv, first = [], [], [], [], [], [0]
        for B in blocks:
            for r in range(1, len(B) + 1):
                for S in itertools.combinations(B, r):
                    rows = list(S)
                    P = Q[np.ix_(rows, rows)] + 2.0 * ridge * np.eye(r)
                    vals, vecs = np.linalg.eigh(P)
                    if not vals[0] > MARGIN * max(float(vals[-1]), 1e-300):
                        raise InvalidInputError(
                            "Q", f"block {B}: Q_B + 2 lam alpha I is not positive definite")
                    row = np.zeros(K, dtype=np.int64)
                    row[:r] = rows
                    idx.append(row)
                    size.append(r)
                    e = np.ones(K)
                    e[:r] = vals
                    ev.append(e)
                    full = np.zeros((K, K))
                    full[:r, :r] = vecs
                    vec.append(full)
                    inv = np.zeros((K, K))
                    inv[:r, :r] = (vecs / vals) @ vecs.T
                    pinv.append(inv)
            first.append(len(size))
        self.idx = np.array(idx, dtype=np.int64)
        self.size = np.array(size, dtype=np.int64)
        self.ev = np.array(ev)
        self.vec = np.array(vec)
        self.pinv = np.array(pinv)
        self.bstart = np.array(first, dtype=np.int64)
        self.blocks = blocks
        self.blip = np.array([float(np.linalg.eigvalsh(self.H[np.ix_(B, B)])[-1])
                              * 2 ** (len(B) - 1) * (1.0 + 1e-9) for B in blocks])
        self.d = d
        #: how :func:`~proxcompress.formulations.bnb.solve_bnb` reads node bounds (sweeps
        #: between reads, the stall share of :meth:`bound`)
        self.check_every = HULL_CHECK_EVERY
        self.stall = HULL_STALL
        #: sweeps with momentum (:func:`_accelerated`) or plain ones
        self.momentum = True
        self.stats: dict[str, float] = {"calls": 0, "sweeps": 0, "seconds": 0.0}
        self.block_of = np.empty(d, dtype=np.int64)
        for bl, B in enumerate(blocks):
            self.block_of[B] = bl

    def zero_point(self) -> FloatArray:
        return np.zeros((self.idx.shape[0], self.idx.shape[1]))

    def fits(self, problem: LayerPruningProblem, order: IntArray) -> bool:
        """Whether this hull relaxes ``problem`` with its features in ``order`` (a hull of
        another problem, or in another order, would give bounds that are not valid)."""
        return _fits(self.source, self.order, problem, order)

    def bound(self, status: NDArray[np.int8], X0: FloatArray | None = None, iters: int = 200,
              cutoff: float = np.inf, check_every: int = 25, stall: float = 0.0
              ) -> HullResult:
        """The node bound (``status`` per feature in the hull's order): sweeps from ``X0`` (any
        point of :meth:`zero_point`'s shape, e.g. the parent's; supports the fixings forbid
        are zeroed), the bound read every ``check_every`` sweeps, stopped after ``iters``, once
        it reaches ``cutoff`` (the node is pruned), or once a read raises it by less than
        ``stall`` times what is left to the cutoff (it will not get there soon). Valid however
        early it stops: every read is a dual bound. :attr:`stats` counts calls, sweeps and
        seconds.

        Raises:
            InvalidInputError: ``X0`` of the wrong shape or not finite.
        """
        start = time.perf_counter()
        status = np.ascontiguousarray(status, dtype=np.int8)
        if X0 is None:
            X = self.zero_point()
        else:
            X = np.array(X0, dtype=np.float64, copy=True)
            if X.shape != self.idx.shape or not np.all(np.isfinite(X)):
                raise InvalidInputError("X0", f"must be a finite array of shape {self.idx.shape}")
        for c in range(X.shape[0]):
            r = int(self.size[c])
            if np.any(status[self.idx[c, :r]] == OUT):
                X[c] = 0.0
        lam = np.zeros(X.shape[0])
        best = -np.inf
        best_w = np.zeros(self.d)
        best_s = 0.0
        done = 0
        Y = X.copy()
        theta, fX = 1.0, np.inf
        while done < iters:
            step = min(check_every, iters - done)
            # the gradients afresh at every read (no drift from the running updates)
            gX = self.H @ _w_of(X, self.idx, self.size, self.d) - self.xty
            if self.momentum:
                gY = self.H @ _w_of(Y, self.idx, self.size, self.d) - self.xty
                theta, fX = _accelerated(self.H, self.xty, X, gX, Y, gY, theta, fX,
                                         self.idx, self.size, self.ev, self.vec, self.pinv,
                                         self.bstart, self.blip, self.b, status, step, lam)
            else:
                _sweeps(self.H, X, gX, self.idx, self.size, self.ev, self.vec, self.pinv,
                        self.bstart, self.blip, self.b, status, step, lam)
            done += step
            w = _w_of(X, self.idx, self.size, self.d)
            value, s = _dual(w, self.H, self.xty, self.cc, self.yy, self.bstart, self.idx,
                             self.size, self.pinv, self.b, status)
            gain = value - best
            if value > best:
                best, best_w, best_s = value, w, s
            if _stops(best, gain, cutoff, stall):
                break
        _count(self.stats, done, start)
        return HullResult(best, X, best_w, best_s)

    def children(self, result: HullResult, status: NDArray[np.int8]) -> tuple[FloatArray,
                                                                              FloatArray]:
        """Bounds of the children ``i in`` and ``i out`` of every free feature from the same
        dual point (only the feature's block conjugate changes); ``-inf`` for the others."""
        status = np.ascontiguousarray(status, dtype=np.int8)
        v = result.s * (self.xty - self.H @ result.w)
        return _children(v, result.bound, self.bstart, self.idx, self.size, self.pinv,
                         self.b, status, self.block_of)


def _stops(best: float, gain: float, cutoff: float, stall: float) -> bool:
    """A node solve's stop rule: the bound reaches the cutoff (pruned), or its last read
    raised it by less than ``stall`` times what is left to the cutoff."""
    return bool(best >= cutoff or (np.isfinite(cutoff) and np.isfinite(gain)
                                   and gain < stall * (cutoff - best)))


def _count(stats: dict[str, float], sweeps: int, start: float) -> None:
    """One node solve in a hull's :attr:`stats` (calls, sweeps, seconds since ``start``)."""
    stats["calls"] += 1
    stats["sweeps"] += sweeps
    stats["seconds"] += time.perf_counter() - start


def _fits(source: LayerPruningProblem, own: IntArray, problem: LayerPruningProblem,
          order: IntArray) -> bool:
    """Whether a hull built for ``source`` in the feature order ``own`` relaxes ``problem``
    in ``order``."""
    a, b = source, problem
    return (a is b or (np.array_equal(a.X, b.X) and np.array_equal(a.Y, b.Y)
                       and np.array_equal(a.groups, b.groups) and a.lam == b.lam
                       and a.alpha == b.alpha)) and np.array_equal(own, order)


def chain_blocks(d: int, size: int = 2) -> list[list[int]]:
    """Disjoint blocks of ``size`` consecutive features (the neighbours of an AR(1) chain)."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not (
            1 <= size <= MAX_BLOCK):
        raise InvalidInputError("size", f"= {size!r}; accepted: an integer in [1, {MAX_BLOCK}]")
    return [list(range(s, min(s + size, d))) for s in range(0, d, size)]


def _check(problem: LayerPruningProblem) -> None:
    if problem.m != 1:
        raise InvalidInputError("problem", f"has m = {problem.m} outputs; accepted: m = 1")
    if problem.n_groups != problem.d:
        raise InvalidInputError("problem", "has a group of several features; accepted: one "
                                           "feature per group")
    if problem.budget < problem.n_groups:
        raise InvalidInputError("problem", "has a budget k; accepted: no budget")


def _check_blocks(d: int, blocks: list[list[int]]) -> NDArray[np.bool_]:
    """Disjoint blocks of 1 to :data:`MAX_BLOCK` features in ``[0, d)``; returns which
    features they cover."""
    seen = np.zeros(d, dtype=bool)
    for B in blocks:
        if not 1 <= len(B) <= MAX_BLOCK or any(not 0 <= i < d for i in B) or np.any(seen[B]):
            raise InvalidInputError("blocks", f"{B}: blocks are disjoint, of 1 to {MAX_BLOCK} "
                                              f"features in [0, {d})")
        seen[B] = True
    return seen


def block_hull(problem: LayerPruningProblem, Q: FloatArray, blocks: list[list[int]],
               order: IntArray | None = None) -> BlockHull:
    """The block-hull relaxation for the decomposition ``Q`` (``d x d``, zero outside the
    blocks; features in ``order``, default the group order).

    Raises:
        InvalidInputError: several outputs, a group of several features, a budget, a block
            larger than :data:`MAX_BLOCK` or overlapping another, ``Q`` of the wrong shape,
            non-zero outside the blocks, or leaving ``H`` / a ``P_B`` without certified
            room.
    """
    _check(problem)
    d = problem.d
    if order is None:
        order = np.argsort(problem.groups, kind="stable")
    Q = np.asarray(Q, dtype=np.float64)
    if Q.shape != (d, d) or not np.all(np.isfinite(Q)):
        raise InvalidInputError("Q", f"must be a finite {d} x {d} matrix")
    seen = _check_blocks(d, blocks)
    mask = np.zeros((d, d), dtype=bool)
    for B in blocks:
        mask[np.ix_(B, B)] = True
    if np.any(Q[~mask] != 0.0):
        raise InvalidInputError("Q", "is non-zero outside the blocks")
    Q = 0.5 * (Q + Q.T)
    full = [[int(i) for i in B] for B in blocks] + [[int(i)] for i in np.flatnonzero(~seen)]
    return BlockHull(problem, np.asarray(order, dtype=np.int64), full, Q)


def mix_safe(G: FloatArray, Q: FloatArray, share: float) -> FloatArray:
    """``(1 - share) Q + share Diag(lambda_min(G) / 2)``: an SDP's decomposition sits on the
    boundary (``H`` or a ``P_B`` singular); the convex combination with a strictly feasible
    scalar shift gives both certified room and costs ``share`` of the gain at most."""
    low = max(safe_lambda_min(G), 0.0)
    return (1.0 - share) * Q + share * np.diag(np.full(G.shape[0], 0.5 * low))


@dataclass
class JointBlock:
    """One block of the joint dual SDP's solution: ``P_B`` (the block's share of ``X^T X + 2
    lam alpha I``), its dual ``v^B`` and its features' shares of ``lam (1 - alpha)``."""

    P: FloatArray
    v: FloatArray
    share: FloatArray


#: conic solvers of :func:`sdp_decomposition` (SCS, first order: seconds at 100 features;
#: CLARABEL, interior point: ~15x slower, the same ``Q`` to 3e-3 of its largest entry)
SDP_SOLVERS = ("SCS", "CLARABEL")
#: how the joint dual SDP reaches its solver: ``direct`` (SCS's own API with the conic data
#: assembled here, :func:`_joint_dual_scs`; SCS only) or ``cvxpy`` (the modelling twin, any of
#: :data:`SDP_SOLVERS`); ``auto``: ``direct`` for SCS, else ``cvxpy``
SDP_BACKENDS = ("auto", "direct", "cvxpy")
#: SCS's accuracy (1e-3 leaves ``Q`` infeasible enough to need a large share back)
SDP_EPS = 1e-4
#: shares of the way back to a scalar shift tried, in order, until the hull is certified
SDP_SHARES = (1e-2, 3e-2, 0.1, 0.3, 1.0)


@dataclass
class _JointLayout:
    """The joint dual SDP's data (:func:`_joint_dual`): ``everything`` are the blocks followed
    by a single-feature block for every feature in none; ``slots[k]`` numbers block ``k``'s
    own entries ``(i, j)``, ``i <= j``, of its ``P`` among the ``count`` entries of ``q``;
    ``gram`` is ``X^T X + 2 lam alpha I`` and ``xty`` ``X^T y`` (group order)."""

    everything: list[list[int]]
    slots: list[dict[tuple[int, int], int]]
    count: int
    n_blocks: int
    gram: FloatArray
    xty: FloatArray
    yy: float
    ridge: float
    b: float


def _joint_layout(problem: LayerPruningProblem, blocks: list[list[int]]) -> _JointLayout:
    """The joint dual's data for ``blocks`` (checked by the caller)."""
    p = problem
    d = p.d
    order = np.argsort(p.groups, kind="stable")
    X = p.X[:, order]
    y = p.Y[:, 0]
    ridge = p.lam * p.alpha
    covered = {int(i) for B in blocks for i in B}
    everything = [list(map(int, B)) for B in blocks] + [[i] for i in range(d)
                                                        if i not in covered]
    slots: list[dict[tuple[int, int], int]] = []
    count = 0
    for B in everything:
        slot = {}
        for a, i in enumerate(B):
            for j in B[a:]:
                slot[(min(i, j), max(i, j))] = count
                count += 1
        slots.append(slot)
    return _JointLayout(everything, slots, count, len(blocks),
                        X.T @ X + 2.0 * ridge * np.eye(d), X.T @ y, float(y @ y), ridge,
                        p.lam * (1.0 - p.alpha))


def _svec_index(n: int, i: int, j: int) -> int:
    """Position of the entry ``(i, j)``, ``i >= j``, of an ``n``-square symmetric matrix in
    SCS's vectorisation (the lower triangle column by column)."""
    return j * n - j * (j - 1) // 2 + (i - j)


def _joint_dual_data(lay: _JointLayout) -> tuple[dict[str, Any], dict[str, Any], int, int,
                                                  IntArray]:
    """:func:`_joint_dual`'s SDP assembled directly in SCS's form ``min c^T x`` s.t. ``A x + s
    = b``, ``s`` in (zero cone) x (nonnegative orthant) x (PSD cones), each PSD cone's slack
    the scaled lower-triangular vectorisation (off-diagonal entries times sqrt(2)) of its
    matrix: the same program as the CVXPY twin (:func:`_joint_dual_model`), without its
    compilation. Unknowns ``x = (q, t, tau, v, share)``. Returns SCS's data and cone, where the
    duals ``v`` and the shares start in ``x``, and each block's first entry among them."""
    import scipy.sparse as sp

    d = lay.gram.shape[0]
    sizes = np.array([len(B) for B in lay.everything], dtype=np.int64)
    nb = len(sizes)
    first = np.concatenate([[0], np.cumsum(sizes)])  # of each block's v and shares
    it = lay.count
    itau = it + 1
    iv = itau + nb
    ish = iv + int(first[-1])
    n = ish + int(first[-1])
    root2 = np.sqrt(2.0)
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    rhs: list[float] = []

    def put(col: int, value: float, row: int) -> None:
        rows.append(row)
        cols.append(col)
        vals.append(value)

    # zero cone: a feature in no block keeps P = 2 lam alpha; every feature's shares sum to b
    for k in range(lay.n_blocks, nb):
        i = lay.everything[k][0]
        put(lay.slots[k][(i, i)], 1.0, len(rhs))
        rhs.append(2.0 * lay.ridge)
    owners: dict[int, list[int]] = {}
    for k, B in enumerate(lay.everything):
        for a, i in enumerate(B):
            owners.setdefault(i, []).append(ish + int(first[k]) + a)
    for i in sorted(owners):
        row = len(rhs)
        for col in owners[i]:
            put(col, 1.0, row)
        rhs.append(lay.b)
    zero = len(rhs)
    # nonnegative orthant: tau >= 0, shares >= 0 (the slack is -A x)
    for col in itertools.chain(range(itau, itau + nb), range(ish, n)):
        put(col, -1.0, len(rhs))
        rhs.append(0.0)
    nonneg = len(rhs) - zero
    # the (d + 1)-square LMI [[G' - sum_B E_B P_B E_B^T, u], [u^T, t]], u = X^T y - sum_B v^B;
    # slack s = b - A x = svec(matrix): constants into b, the linear part's negative into A
    m = d + 1
    start = len(rhs)
    r, c = np.triu_indices(m)  # (c, r): the lower triangle column by column
    weight = np.where(r == c, 1.0, root2)
    const = np.zeros((m, m))
    const[:d, :d] = lay.gram
    const[d, :d] = lay.xty
    rhs.extend((weight * const[c, r]).tolist())
    for k, (B, slot) in enumerate(zip(lay.everything, lay.slots, strict=True)):
        for (i, j), col in slot.items():  # -P_B's entry at (j, i), j >= i
            put(col, root2 if i != j else 1.0, start + _svec_index(m, j, i))
        for a, i in enumerate(B):  # -v^B_i in u_i at (d, i)
            put(iv + int(first[k]) + a, root2, start + _svec_index(m, d, i))
    put(it, -1.0, start + _svec_index(m, d, d))
    psd = [m]
    # per block and support S: [[P_SS, v_S], [v_S^T, 2 (tau_B + sum_S share)]] >= 0
    for k, (B, slot) in enumerate(zip(lay.everything, lay.slots, strict=True)):
        for size in range(1, len(B) + 1):
            for S in itertools.combinations(range(len(B)), size):
                start = len(rhs)
                m = size + 1
                rhs.extend([0.0] * (m * (m + 1) // 2))
                for jj, bj in enumerate(S):
                    for ii in range(jj, size):
                        key = (min(B[S[ii]], B[bj]), max(B[S[ii]], B[bj]))
                        put(slot[key], -(root2 if ii != jj else 1.0),
                            start + _svec_index(m, ii, jj))
                    put(iv + int(first[k]) + bj, -root2, start + _svec_index(m, size, jj))
                    put(ish + int(first[k]) + bj, -2.0, start + _svec_index(m, size, size))
                put(itau + k, -2.0, start + _svec_index(m, size, size))
                psd.append(m)
    A = sp.csc_matrix((vals, (rows, cols)), shape=(len(rhs), n))
    cost = np.zeros(n)
    cost[it] = 0.5
    cost[itau:itau + nb] = 1.0
    return ({"A": A, "b": np.asarray(rhs), "c": cost}, {"z": zero, "l": nonneg, "s": psd}, iv,
            ish, first)


def _joint_dual_scs(lay: _JointLayout, eps: float, stats: dict[str, Any] | None = None
                    ) -> tuple[float, FloatArray, list[FloatArray], list[FloatArray]]:
    """:func:`_joint_dual`'s SDP by SCS's own API (:func:`_joint_dual_data`) at accuracy
    ``eps`` (absolute and relative, as CVXPY passes it). Returns the value, ``q`` and every
    block's ``v`` and shares; ``stats`` (if given) receives SCS's iterations, its setup and
    solve milliseconds and ``A``'s shape."""
    import scs

    from proxcompress.errors import SolverError

    data, cone, iv, ish, first = _joint_dual_data(lay)
    solution = scs.SCS(data, cone, eps_abs=eps, eps_rel=eps, verbose=False).solve()
    info = solution["info"]
    if stats is not None:
        stats.update(iterations=int(info["iter"]), setup_ms=float(info["setup_time"]),
                     solve_ms=float(info["solve_time"]), rows=data["A"].shape[0],
                     columns=data["A"].shape[1])
    status = info["status_val"]
    if status not in (1, 2):  # solved, solved inaccurately
        raise SolverError(f"block-hull SDP: SCS ends {info['status']}")
    nb = len(first) - 1
    x = solution["x"]
    duals = [x[iv + first[k]: iv + first[k + 1]] for k in range(nb)]
    shares = [x[ish + first[k]: ish + first[k + 1]] for k in range(nb)]
    return 0.5 * lay.yy - float(solution["info"]["pobj"]), x[:lay.count], duals, shares


def _joint_dual_model(lay: _JointLayout) -> tuple[Any, Any, list[Any], list[Any]]:
    """:func:`_joint_dual`'s SDP as a CVXPY model (the twin of :func:`_joint_dual_scs`):
    the model, ``q`` and every block's dual and shares (CVXPY variables)."""
    import cvxpy as cp
    import scipy.sparse as sp

    d = lay.gram.shape[0]
    rows, cols = [], []
    for B, slot in zip(lay.everything, lay.slots, strict=True):
        for i in B:
            for j in B:
                rows.append(i * d + j)
                cols.append(slot[(min(i, j), max(i, j))])
    spread = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(d * d, lay.count))
    q = cp.Variable(lay.count)
    t = cp.Variable()
    tau = cp.Variable(len(lay.everything), nonneg=True)
    duals = [cp.Variable(len(B)) for B in lay.everything]
    shares = [cp.Variable(len(B), nonneg=True) for B in lay.everything]
    total = sum(sp.csr_matrix((np.ones(len(B)), (B, range(len(B)))), shape=(d, len(B))) @ v
                for B, v in zip(lay.everything, duals, strict=True))
    u = cp.reshape(lay.xty - total, (d, 1), order="C")
    H = lay.gram - cp.reshape(spread @ q, (d, d), order="C")
    constraints = [cp.bmat([[H, u], [u.T, cp.reshape(t, (1, 1), order="C")]]) >> 0]
    owners: dict[int, list[Any]] = {}
    for k, (B, slot, v, share) in enumerate(zip(lay.everything, lay.slots, duals, shares,
                                                strict=True)):
        if k >= lay.n_blocks:  # a feature in no block: P = 2 lam alpha, its whole cost
            constraints += [q[slot[(B[0], B[0])]] == 2.0 * lay.ridge, share[0] == lay.b]
        for a, i in enumerate(B):
            owners.setdefault(i, []).append(share[a])
        for r in range(1, len(B) + 1):
            for S in itertools.combinations(range(len(B)), r):
                P = cp.bmat([[q[slot[(min(B[i], B[j]), max(B[i], B[j]))]] for j in S]
                             for i in S])
                vs = cp.reshape(v[list(S)], (r, 1), order="C")
                corner = cp.reshape(2.0 * (tau[k] + cp.sum(share[list(S)])), (1, 1),
                                    order="C")
                constraints.append(cp.bmat([[P, vs], [vs.T, corner]]) >> 0)
    constraints += [cp.sum(cp.hstack(parts)) == lay.b for parts in owners.values()]
    model = cp.Problem(cp.Maximize(0.5 * lay.yy - 0.5 * t - cp.sum(tau)), constraints)
    return model, q, duals, shares


def _joint_dual(problem: LayerPruningProblem, blocks: list[list[int]],
                solver: str, eps: float = SDP_EPS, backend: str = "auto"
                ) -> tuple[float, FloatArray, list[JointBlock]]:
    """The joint dual SDP of the hull relaxation over the decomposition (module docstring of
    :func:`sdp_decomposition`), for blocks that may overlap: with ``G' = X^T X + 2 lam alpha
    I = H + sum_B E_B P_B E_B^T``, each block has its own dual ``v^B`` (their sum enters the
    loss's term) and its own share ``beta_{B,i} >= 0`` of every feature's ``lam (1 - alpha)``
    (the shares of a feature sum to it): every block's term is convexified with its own copies
    of the indicators, a valid relaxation because the copies agree at integer points. A
    feature in no block keeps ``P = 2 lam alpha`` (no shift). Returns the SDP's value, the
    ``P_B`` (as a ``d x d`` matrix; on disjoint blocks) and each of ``blocks``' ``P_B``, dual
    ``v^B`` and shares (:class:`JointBlock`, as the solver left them); ``eps``: SCS's
    accuracy; ``backend``: one of :data:`SDP_BACKENDS` (the same program either way)."""
    from proxcompress.errors import SolverError

    _check(problem)
    if solver not in SDP_SOLVERS:
        raise InvalidInputError("solver", f"= {solver!r}; accepted: {', '.join(SDP_SOLVERS)}")
    _check_backend(backend, solver)
    d = problem.d
    for B in blocks:
        if not 1 <= len(B) <= MAX_BLOCK or len(set(B)) != len(B) or any(
                not 0 <= i < d for i in B):
            raise InvalidInputError("blocks", f"{B}: blocks hold 1 to {MAX_BLOCK} distinct "
                                              f"features in [0, {d})")
    lay = _joint_layout(problem, blocks)
    if backend == "direct" or (backend == "auto" and solver == "SCS"):
        value, q, duals, shares = _joint_dual_scs(lay, eps)
    else:
        import cvxpy as cp

        model, qv, dv, sv = _joint_dual_model(lay)
        options = {"eps": eps} if solver == "SCS" else {}
        try:
            model.solve(solver=solver, **options)
        except cp.error.SolverError as exc:
            raise SolverError(f"block-hull SDP: {solver} failed ({exc})") from None
        if model.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or qv.value is None:
            raise SolverError(f"block-hull SDP: {solver} ends {model.status}")
        value, q = float(model.value), np.asarray(qv.value, dtype=np.float64)
        duals = [np.asarray(v.value, dtype=np.float64).reshape(-1) for v in dv]
        shares = [np.asarray(s.value, dtype=np.float64).reshape(-1) for s in sv]
    P_all = np.zeros((d, d))
    parts = []
    for B, slot, v, share in zip(lay.everything[: lay.n_blocks], lay.slots, duals, shares,
                                 strict=False):
        for (i, j), k in slot.items():
            P_all[i, j] = P_all[j, i] = float(q[k])
        P = np.array([[float(q[slot[(min(i, j), max(i, j))]]) for j in B] for i in B])
        parts.append(JointBlock(P, np.array(v, dtype=np.float64).reshape(-1),
                                np.array(share, dtype=np.float64).reshape(-1)))
    return value, P_all, parts


def _check_backend(backend: object, solver: str) -> None:
    """``backend`` one of :data:`SDP_BACKENDS`; ``direct`` is SCS's own API only."""
    if not isinstance(backend, str) or backend not in SDP_BACKENDS:
        raise InvalidInputError("backend", f"= {backend!r}; accepted: "
                                           f"{', '.join(SDP_BACKENDS)}")
    if backend == "direct" and solver != "SCS":
        raise InvalidInputError("backend", f"= 'direct' with solver {solver!r}; accepted: "
                                           "'direct' with SCS only, 'auto' or 'cvxpy'")


def sdp_decomposition(problem: LayerPruningProblem, blocks: list[list[int]],
                      solver: str = "SCS", backend: str = "auto") -> FloatArray:
    """The decomposition ``Q`` that makes the block hull tightest at the root, from the
    joint dual of the hull relaxation over ``(Q, v)``: with ``H = G - blkdiag(Q)`` and ``P_S =
    Q_SS + 2 lam alpha I``,

    .. math::

        \\max_{Q, v, \\tau \\ge 0}\\; \\tfrac12\\|y\\|^2 - \\tfrac12 (X^\\top y - v)^\\top
            H^{-1} (X^\\top y - v) - \\sum_B \\tau_B, \\quad
        \\tau_B \\ge \\tfrac12 v_S^\\top P_S^{-1} v_S - \\lambda(1-\\alpha)|S|
            \\;\\forall S \\subseteq B,

    an SDP by Schur complements (the matrix-fractional terms are jointly convex; built by
    :func:`_joint_dual`): one ``(d + 1)``-square LMI in ``Q`` and ``v`` plus one small LMI per
    support (the lifted SDP of the sixth stop had a ``(d + 1)``-square matrix *variable* and
    per-support moment matrices: the same ``Q`` in 35 s with CLARABEL against 169 s; ~2.5 s
    with SCS). The solver's ``Q`` is only nearly feasible: the first share of
    :data:`SDP_SHARES` of the way back to a scalar shift (:func:`mix_safe`) that certifies
    ``H`` and every ``P_S`` is returned, so any accuracy gives a valid bound.

    Raises:
        InvalidInputError: as :func:`block_hull`; an unknown ``solver`` or ``backend``
            (:data:`SDP_BACKENDS`; ``direct`` with SCS only).
        SolverError: the solver fails, or no share certifies (``X^T X`` singular).
    """
    _check(problem)
    _check_blocks(problem.d, blocks)
    p = problem
    order = np.argsort(p.groups, kind="stable")
    X = p.X[:, order]
    G = X.T @ X
    _, P_all, _ = _joint_dual(p, blocks, solver, backend=backend)
    Q = np.zeros((p.d, p.d))
    for B in blocks:
        Q[np.ix_(B, B)] = P_all[np.ix_(B, B)] - 2.0 * p.lam * p.alpha * np.eye(len(B))
    from proxcompress.errors import SolverError

    for share in SDP_SHARES:
        mixed = mix_safe(G, Q, share)
        try:
            block_hull(p, mixed, blocks, order)
        except InvalidInputError:
            continue
        return mixed
    raise SolverError("block-hull SDP: no share of a scalar shift certifies the hull "
                      "(X^T X singular?)")


def joint_dual_bound(problem: LayerPruningProblem, blocks: list[list[int]],
                     solver: str = "SCS", backend: str = "auto") -> float:
    """The root bound of the hull of ``blocks`` (which may overlap) with the best
    decomposition: the optimum of :func:`_joint_dual` (up to the solver's accuracy).

    Raises:
        InvalidInputError: as :func:`block_hull` (blocks may overlap); an unknown ``solver``
            or ``backend`` (as :func:`sdp_decomposition`).
        SolverError: the solver fails.
    """
    return _joint_dual(problem, blocks, solver, backend=backend)[0]


def overlap_root_bound(problem: LayerPruningProblem, reach: int = 2,
                       solver: str = "SCS", backend: str = "auto") -> float:
    """The root bound of the hull of *overlapping* pairs: every pair of features at most
    ``reach`` apart (in the group order) is a block with its own copies of the indicators
    (:func:`_joint_dual`; the decomposition and the shares of ``lam (1 - alpha)`` optimised in
    the SDP). A measurement of what overlapping pairs would give a node bound (no node solver
    uses them yet): on the hard regime's seed 0, 13 537 for disjoint pairs, 13 663 for every
    neighbouring pair, 13 708 at reach 2 (bnb's refined root 13 350, incumbent 13 973). The
    value is the SDP's optimum up to the solver's accuracy.

    Raises:
        InvalidInputError: as :func:`block_hull`; ``reach`` not in [1, 99]; an unknown
            ``solver`` or ``backend`` (as :func:`sdp_decomposition`).
        SolverError: the solver fails.
    """
    if isinstance(reach, bool) or not isinstance(reach, int | np.integer) or not (
            1 <= reach <= 99):
        raise InvalidInputError("reach", f"= {reach!r}; accepted: an integer in [1, 99]")
    d = problem.d
    blocks = [[i, j] for i in range(d) for j in range(i + 1, min(i + reach + 1, d))]
    return joint_dual_bound(problem, blocks or [[0]], solver, backend)


# ----------------------------------------------------------------------------- overlapping pairs
#: SCS's accuracy for :func:`overlap_hull` (1e-3 is certified through the fitted split but
#: loses 0.3-0.7% of the hard regime's root gap for 1-5 CPU s: docs/decisions.md, ninth stop)
OVERLAP_SDP_EPS = 1e-4
#: sweeps of the overlapping-pair node solve at the root (warm from the SDP's split)
OVERLAP_ROOT_SWEEPS = 1500
#: node sweeps of the overlapping pairs in ``solve_bnb`` (the benchmark's setting), between reads
OVERLAP_SWEEPS = 10
OVERLAP_CHECK_EVERY = 5
#: root-finding steps of a pair's two-piece optimum (false position, Illinois)
PAIR_STEPS = 40


@njit(cache=True)
def _piece(A: FloatArray, beta: FloatArray, k: int, p: int, v0: float, v1: float) -> float:
    """Support ``p`` of pair ``k``'s conjugate at ``(v0, v1)``: ``v_S^T P_SS^{-1} v_S / 2 -
    beta_S`` (``A`` holds ``P_SS^{-1}`` padded with zeros; support 0 is the empty one)."""
    return (0.5 * (A[k, p, 0] * v0 * v0 + 2.0 * A[k, p, 1] * v0 * v1 + A[k, p, 2] * v1 * v1)
            - beta[k, p])


@njit(cache=True)
def _pair_objective(K00: float, K01: float, K11: float, c0: float, c1: float, A: FloatArray,
                    beta: FloatArray, allowed: NDArray[np.bool_], k: int, v0: float,
                    v1: float) -> float:
    """``v^T K v / 2 - c^T v + h_k^*(v)`` (the node's conjugate: its allowed supports)."""
    top = -np.inf
    for p in range(4):
        if allowed[k, p]:
            top = max(top, _piece(A, beta, k, p, v0, v1))
    return 0.5 * (K00 * v0 * v0 + 2.0 * K01 * v0 * v1 + K11 * v1 * v1) - c0 * v0 - c1 * v1 + top


@njit(cache=True)
def _candidate(K00: float, K01: float, K11: float, c0: float, c1: float, A: FloatArray,
               beta: FloatArray, allowed: NDArray[np.bool_], k: int, p: int, v0: float,
               v1: float, slack: float) -> tuple[float, bool]:
    """The pair objective at ``(v0, v1)`` and whether piece ``p`` is the maximum there (up
    to ``slack`` relative): then a point optimal for piece ``p`` (or a mixture holding it) is
    optimal for the maximum."""
    f = _pair_objective(K00, K01, K11, c0, c1, A, beta, allowed, k, v0, v1)
    smooth = 0.5 * (K00 * v0 * v0 + 2.0 * K01 * v0 * v1 + K11 * v1 * v1) - (c0 * v0 + c1 * v1)
    return f, bool(_piece(A, beta, k, p, v0, v1) >= f - smooth - slack * (1.0 + abs(f)))


@njit(cache=True)
def _mixed_solve(K00: float, K01: float, K11: float, A: FloatArray, k: int, p: int, q: int,
                 mu: float, c0: float, c1: float) -> tuple[float, float]:
    """The minimiser of ``v^T (K + mu A_p + (1 - mu) A_q) v / 2 - c^T v`` (2 x 2)."""
    a = K00 + mu * A[k, p, 0] + (1.0 - mu) * A[k, q, 0]
    b = K01 + mu * A[k, p, 1] + (1.0 - mu) * A[k, q, 1]
    c = K11 + mu * A[k, p, 2] + (1.0 - mu) * A[k, q, 2]
    det = a * c - b * b
    return (c * c0 - b * c1) / det, (a * c1 - b * c0) / det


@njit(cache=True)
def _overlap_sweeps(Hinv: FloatArray, pairs: IntArray, A: FloatArray, beta: FloatArray,
                    allowed: NDArray[np.bool_], V: FloatArray, w: FloatArray,
                    sweeps: int) -> None:
    """Block-coordinate ascent on the dual of the overlapping pairs: pair ``k``'s ``v^k``
    maximises ``-(x - v)^T H^{-1} (x - v) / 2 - h_k^*(v^k)`` with the others fixed, i.e.
    minimises the 2-D ``v^T K v / 2 - c^T v + max_p piece_p(v)`` (``K = (H^{-1})_kk``, ``c =
    w_k + K v^k``, ``w = H^{-1} (x - v)`` kept up to date). That is a minimum of a maximum of
    strictly convex quadratics: tried are each piece's own minimiser (optimal where that
    piece is the maximum there) and, for two pieces, the point where they are equal on the
    path of minimisers of their mixtures (the root of the mixture dual's derivative, by false
    position); the best point found is kept when it improves (in the rare case that three
    pieces meet at the optimum the step is inexact; any ``V`` gives a valid bound)."""
    n_pairs = pairs.shape[0]
    d = w.shape[0]
    for _ in range(sweeps):
        for k in range(n_pairs):
            i = pairs[k, 0]
            j = pairs[k, 1]
            K00 = Hinv[i, i]
            K01 = Hinv[i, j]
            K11 = Hinv[j, j]
            o0 = V[k, 0]
            o1 = V[k, 1]
            c0 = w[i] + K00 * o0 + K01 * o1
            c1 = w[j] + K01 * o0 + K11 * o1
            best = _pair_objective(K00, K01, K11, c0, c1, A, beta, allowed, k, o0, o1)
            b0, b1 = o0, o1
            done = False
            for p in range(4):
                if not allowed[k, p]:
                    continue
                v0, v1 = _mixed_solve(K00, K01, K11, A, k, p, p, 1.0, c0, c1)
                f, top = _candidate(K00, K01, K11, c0, c1, A, beta, allowed, k, p, v0, v1,
                                    1e-12)
                if f < best:
                    best, b0, b1 = f, v0, v1
                if top:
                    done = True  # piece p is the maximum at its own minimiser: optimal
                    break
            for p in range(4):
                if done:
                    break
                if not allowed[k, p]:
                    continue
                for q in range(p + 1, 4):
                    if not allowed[k, q]:
                        continue
                    # the mixture dual's derivative in mu, decreasing: piece p less piece q
                    v0, v1 = _mixed_solve(K00, K01, K11, A, k, p, q, 0.0, c0, c1)
                    h_lo = _piece(A, beta, k, p, v0, v1) - _piece(A, beta, k, q, v0, v1)
                    v0, v1 = _mixed_solve(K00, K01, K11, A, k, p, q, 1.0, c0, c1)
                    h_hi = _piece(A, beta, k, p, v0, v1) - _piece(A, beta, k, q, v0, v1)
                    if not (h_lo > 0.0 > h_hi):
                        continue  # the pair's optimum is a single piece's, tried above
                    lo, hi, side, mu = 0.0, 1.0, 0, 0.5
                    for _step in range(PAIR_STEPS):
                        mu = (lo * h_hi - hi * h_lo) / (h_hi - h_lo)
                        v0, v1 = _mixed_solve(K00, K01, K11, A, k, p, q, mu, c0, c1)
                        h = _piece(A, beta, k, p, v0, v1) - _piece(A, beta, k, q, v0, v1)
                        if h > 0.0:
                            lo, h_lo = mu, h
                            if side == 1:
                                h_hi *= 0.5
                            side = 1
                        else:
                            hi, h_hi = mu, h
                            if side == -1:
                                h_lo *= 0.5
                            side = -1
                        if hi - lo < 1e-12:
                            break
                    f, top = _candidate(K00, K01, K11, c0, c1, A, beta, allowed, k, p, v0,
                                        v1, 1e-9)
                    if f < best:
                        best, b0, b1 = f, v0, v1
                    if top:
                        done = True  # p and q are the maximum at the pair's optimum
                        break
            d0 = b0 - o0
            d1 = b1 - o1
            if d0 != 0.0 or d1 != 0.0:
                for t in range(d):
                    w[t] -= Hinv[i, t] * d0 + Hinv[j, t] * d1
                V[k, 0] = b0
                V[k, 1] = b1


class OverlapHull:
    """The hull of *overlapping* pairs as a node bound (build it with :func:`overlap_hull`):
    every pair of features at most ``reach`` apart is a block with its own copies of the
    indicators, with the decomposition ``X^T X + 2 lam alpha I = H + sum_k E_k P_k E_k^T`` and
    the shares ``beta`` of ``lam (1 - alpha)`` fixed at the root SDP's (certified), and only
    the split of the dual ``v = sum_k v^k`` among the pairs solved per node (block-coordinate
    ascent, :func:`_overlap_sweeps`, warm-started at the parent's split). For any split,

    .. math::

        D = \\tfrac12\\|y\\|^2 - \\tfrac12 (X^\\top y - v)^\\top H^{-1} (X^\\top y - v)
            - \\sum_k h_k^*(v^k),

    ``h_k^*(v) = max_S v_S^T P_{k,SS}^{-1} v_S / 2 - beta_{k,S}`` over the supports ``S`` the
    node's fixings allow (the empty one gives 0), is a lower bound on the node (weak duality of
    the relaxation whose pair terms are the exact hulls of ``w_k^T P_k w_k / 2 + beta_k^T
    z_k``; the copies agree at integer points, where the terms sum to the objective's). The
    interface is :class:`BlockHull`'s (``bound``, ``children``, ``fits``), so
    :func:`~proxcompress.formulations.bnb.solve_bnb` takes either."""

    def __init__(self, problem: LayerPruningProblem, order: IntArray, pairs: list[list[int]],
                 parts: list[JointBlock]) -> None:
        p = problem
        d = p.d
        X = p.X[:, order]
        self.order = order
        self.source = problem
        self.xty = X.T @ p.Y[:, 0]
        self.yy = float(p.Y[:, 0] @ p.Y[:, 0])
        G = X.T @ X
        ridge = p.lam * p.alpha
        b = p.lam * (1.0 - p.alpha)
        self.pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        count = np.bincount(self.pairs.ravel(), minlength=d).astype(np.float64)
        if np.any(count == 0):
            raise InvalidInputError("pairs", "must cover every feature")
        # the solver's split is only nearly feasible: the SDP's own split when certified,
        # else the one with the larger root bound at the SDP's dual split of the fitted split
        # (every pair raised to its margin, then all scaled down together until H has its
        # margin, :func:`_fitted_split`) and the SDP's split mixed with a strictly feasible
        # one (each feature's 2 lam alpha + lambda_min(G) / 2 in equal parts, so H = G -
        # lambda_min(G) / 2 I) by the first share of SDP_SHARES that certifies
        safe = (2.0 * ridge + 0.5 * max(safe_lambda_min(G), 0.0)) / count
        scale = np.sqrt(np.maximum(np.diag(G), 1e-300))
        raw = [0.5 * (part.P + part.P.T) for part in parts]
        fitted, self.scaled_down = _fitted_split(G + 2.0 * ridge * np.eye(d), self.pairs, raw,
                                                 scale)
        shares = np.array([part.share for part in parts], dtype=np.float64).reshape(-1, 2)
        total = np.zeros(d)
        np.add.at(total, self.pairs.ravel(), shares.ravel())
        self.shares = shares + ((b - total) / count)[self.pairs]  # each feature's sum to b
        self.root_V = np.array([part.v for part in parts], dtype=np.float64).reshape(-1, 2)
        self.d = d
        certified = []  # (share, Ps, H): the SDP's own split, else the fitted and first mix
        for share in (0.0, None, *SDP_SHARES):
            Ps = fitted if share is None else [
                (1.0 - share) * P + share * np.diag(safe[B])
                for B, P in zip(self.pairs, raw, strict=True)]
            H = G + 2.0 * ridge * np.eye(d)
            for B, P in zip(self.pairs, Ps, strict=True):
                H[np.ix_(B, B)] -= P
            if safe_lambda_min(H / np.outer(scale, scale)) >= MARGIN and all(
                    _pair_certified(P) for P in Ps):
                certified.append((share, Ps, H))
                if share is not None:  # the SDP's own split, or the first certified mix
                    break
        if not certified:  # pragma: no cover - share 1 is the scalar shift, certified unless
            # G is singular
            raise InvalidInputError("problem", "no split of X^T X is certified (singular?)")
        every = np.ones((self.pairs.shape[0], 4), dtype=np.bool_)
        best = -np.inf
        for share, Ps, H in certified:  # the larger root bound at the SDP's dual split
            self._set_split(Ps, H)
            value = self.value(self.root_V, every)
            if value > best:
                best, chosen = value, (share, Ps, H)
        self.share = chosen[0]  # None: the fitted split
        self._set_split(chosen[1], chosen[2])
        self.check_every = OVERLAP_CHECK_EVERY
        self.stall = HULL_STALL
        self.stats: dict[str, float] = {"calls": 0, "sweeps": 0, "seconds": 0.0}

    def _set_split(self, Ps: list[FloatArray], H: FloatArray) -> None:
        """Take the certified split ``Ps`` (per pair) with ``H``: its factor, inverse and the
        pairs' support inverses and costs."""
        self.H = H
        try:
            self.factor = cho_factor(H, lower=False, check_finite=False)
        except LinAlgError as exc:  # pragma: no cover - certified by the caller
            raise InvalidInputError("problem", "H is not factorable") from exc
        self.Hinv = np.ascontiguousarray(cho_solve(self.factor, np.eye(self.d)))
        n = self.pairs.shape[0]
        shares = self.shares
        self.A = np.zeros((n, 4, 3))  # supports: {}, {first}, {second}, both
        self.beta = np.zeros((n, 4))
        for k, P in enumerate(Ps):
            det = P[0, 0] * P[1, 1] - P[0, 1] ** 2
            self.A[k, 1, 0] = 1.0 / P[0, 0]
            self.A[k, 2, 2] = 1.0 / P[1, 1]
            self.A[k, 3] = (P[1, 1] / det, -P[0, 1] / det, P[0, 0] / det)
            self.beta[k] = (0.0, shares[k, 0], shares[k, 1], shares[k, 0] + shares[k, 1])

    def zero_point(self) -> FloatArray:
        return np.zeros_like(self.root_V)

    def fits(self, problem: LayerPruningProblem, order: IntArray) -> bool:
        """As :meth:`BlockHull.fits`."""
        return _fits(self.source, self.order, problem, order)

    def allowed(self, status: NDArray[np.int8]) -> NDArray[np.bool_]:
        """Per pair, the supports ({}, {first}, {second}, both) the fixings allow."""
        first = status[self.pairs[:, 0]]
        second = status[self.pairs[:, 1]]
        return np.stack([(first != IN) & (second != IN), (first != OUT) & (second != IN),
                         (first != IN) & (second != OUT), (first != OUT) & (second != OUT)],
                        axis=1)

    def pieces(self, V: FloatArray) -> FloatArray:
        """Every pair's four support terms at the split ``V``."""
        a = self.A
        v0 = V[:, 0][:, None]
        v1 = V[:, 1][:, None]
        return (0.5 * (a[:, :, 0] * v0 * v0 + 2.0 * a[:, :, 1] * v0 * v1 + a[:, :, 2] * v1 * v1)
                - self.beta)

    def value(self, V: FloatArray, allowed: NDArray[np.bool_]) -> float:
        """The bound ``D`` at the split ``V`` (exact: a Cholesky solve, not the sweeps'
        running ``w``)."""
        v = np.zeros(self.d)
        np.add.at(v, self.pairs.ravel(), V.ravel())
        u = self.xty - v
        conj = np.where(allowed, self.pieces(V), -np.inf).max(axis=1)
        return float(0.5 * self.yy - 0.5 * u @ cho_solve(self.factor, u) - conj.sum())

    def bound(self, status: NDArray[np.int8], X0: FloatArray | None = None,
              iters: int = OVERLAP_SWEEPS, cutoff: float = np.inf,
              check_every: int = OVERLAP_CHECK_EVERY, stall: float = 0.0) -> HullResult:
        """The node bound (``status`` per feature in the hull's order) from the split ``X0``
        (the parent's; the root SDP's when ``None``) after at most ``iters`` sweeps, read every
        ``check_every``, stopped as :meth:`BlockHull.bound` (cutoff, stall). Valid however early
        it stops. The result's ``X`` is the best split (the children's warm start).

        Raises:
            InvalidInputError: ``X0`` of the wrong shape or not finite.
        """
        start = time.perf_counter()
        status = np.ascontiguousarray(status, dtype=np.int8)
        V = np.array(self.root_V if X0 is None else X0, dtype=np.float64, copy=True)
        if V.shape != self.root_V.shape or not np.all(np.isfinite(V)):
            raise InvalidInputError("X0", f"must be a finite array of shape {self.root_V.shape}")
        allowed = self.allowed(status)
        best = self.value(V, allowed)
        best_V = V.copy()
        done = 0
        while done < iters:
            step = min(check_every, iters - done)
            v = np.zeros(self.d)
            np.add.at(v, self.pairs.ravel(), V.ravel())
            w = self.Hinv @ (self.xty - v)  # afresh at every read (no drift)
            _overlap_sweeps(self.Hinv, self.pairs, self.A, self.beta, allowed, V, w, step)
            done += step
            value = self.value(V, allowed)
            gain = value - best
            if value > best:
                best, best_V = value, V.copy()
            if _stops(best, gain, cutoff, stall):
                break
        _count(self.stats, done, start)
        v = np.zeros(self.d)
        np.add.at(v, self.pairs.ravel(), best_V.ravel())
        return HullResult(best, best_V, v, 1.0)

    def children(self, result: HullResult, status: NDArray[np.int8]) -> tuple[FloatArray,
                                                                              FloatArray]:
        """Bounds of the children ``i in`` and ``i out`` of every free feature from the same
        split (only the conjugates of the pairs holding ``i`` change); ``-inf`` for the
        others."""
        status = np.ascontiguousarray(status, dtype=np.int8)
        pieces = self.pieces(result.X)
        conj = np.where(self.allowed(status), pieces, -np.inf).max(axis=1)
        free = status == FREE
        bounds = []
        for fixed in (IN, OUT):
            rise = np.zeros(self.d)
            for pos in (0, 1):
                trial = np.stack([status[self.pairs[:, 0]], status[self.pairs[:, 1]]], axis=1)
                trial[:, pos] = fixed
                first, second = trial[:, 0], trial[:, 1]
                ok = np.stack([(first != IN) & (second != IN), (first != OUT) & (second != IN),
                               (first != IN) & (second != OUT),
                               (first != OUT) & (second != OUT)], axis=1)
                drop = conj - np.where(ok, pieces, -np.inf).max(axis=1)
                feats = self.pairs[:, pos]
                np.add.at(rise, feats, np.where(free[feats], drop, 0.0))
            out = np.full(self.d, -np.inf)
            out[free] = result.bound + rise[free]
            bounds.append(out)
        return bounds[0], bounds[1]


#: relative margin each pair's ``P`` is raised to by :func:`_fitted_split` (10x the check's)
FIT_MARGIN = 10 * MARGIN
#: bisection steps of :func:`_fitted_split`'s common scale
FIT_STEPS = 30


def _fitted_split(total: FloatArray, pairs: IntArray, Ps: list[FloatArray],
                  scale: FloatArray) -> tuple[list[FloatArray], float]:
    """A split of ``total = X^T X + 2 lam alpha I`` near a solver's nearly feasible ``Ps``:
    each pair's ``P`` raised along the identity to the relative margin :data:`FIT_MARGIN` of
    its largest eigenvalue (the pairs' check, :func:`_pair_certified`), then all of them
    scaled by the same ``1 - t``, ``t`` the smallest in [0, 1] (bisection) that leaves ``H =
    total - sum_k E_k (1 - t) P_k E_k^T`` twice :data:`MARGIN` in the Jacobi-scaled spectrum.
    Scaling keeps each pair's relative margin and, unlike mixing with a scalar shift, the
    pairs' shape (the hard regime's seed 0 at SCS accuracy 1e-3: root bound 13 608 against
    13 401 mixed). Returns the ``P_k`` and ``t``; the caller still certifies them (``t = 1``
    leaves every ``P`` zero, which fails the pairs' check: the caller then mixes)."""
    raised = []
    for B, P in zip(pairs, Ps, strict=True):
        vals = np.linalg.eigvalsh(P)
        top = max(float(vals[-1]), 1e-9 * float(np.max(np.diag(total)[B])))
        # raised by r, the eigenvalues are vals + r: r = (m top - low) / (1 - m) leaves the
        # smallest at m times the largest
        if vals[0] < FIT_MARGIN * top:
            P = P + (FIT_MARGIN * top - vals[0]) / (1.0 - FIT_MARGIN) * np.eye(2)
        raised.append(P)
    jacobi = np.outer(scale, scale)

    def margin(t: float) -> float:
        H = total.copy()
        for B, P in zip(pairs, raised, strict=True):
            H[np.ix_(B, B)] -= (1.0 - t) * P
        return safe_lambda_min(H / jacobi)

    t = 0.0
    if margin(0.0) < 2.0 * MARGIN:
        lo, hi = 0.0, 1.0
        for _ in range(FIT_STEPS):
            mid = 0.5 * (lo + hi)
            if margin(mid) >= 2.0 * MARGIN:
                hi = mid
            else:
                lo = mid
        t = hi
    return [(1.0 - t) * P for P in raised], t


def _pair_certified(P: FloatArray) -> bool:
    """Every support's ``P_SS`` of a pair positive definite with :data:`MARGIN`."""
    vals = np.linalg.eigvalsh(P)
    return bool(vals[0] > MARGIN * max(float(vals[-1]), 1e-300)
                and min(P[0, 0], P[1, 1]) > MARGIN * max(float(vals[-1]), 1e-300))


def overlap_hull(problem: LayerPruningProblem, reach: int = 2, solver: str = "SCS",
                 backend: str = "auto") -> OverlapHull:
    """The node bound of the hull of overlapping pairs (every pair at most ``reach`` apart in
    the group order, :class:`OverlapHull`) from the joint dual SDP of
    :func:`overlap_root_bound` (SCS: 4-7 CPU seconds at 100 features, reach 2, by the direct
    assembly; 9-12 through CVXPY).

    Raises:
        InvalidInputError: as :func:`block_hull`; fewer than 2 features; ``reach`` not in
            [1, 99]; an unknown ``solver`` or ``backend`` (as :func:`sdp_decomposition`).
        SolverError: the solver fails.
    """
    _check(problem)
    if isinstance(reach, bool) or not isinstance(reach, int | np.integer) or not (
            1 <= reach <= 99):
        raise InvalidInputError("reach", f"= {reach!r}; accepted: an integer in [1, 99]")
    d = problem.d
    if d < 2:
        raise InvalidInputError("problem", f"has {d} feature; overlapping pairs need >= 2")
    if solver not in SDP_SOLVERS:
        raise InvalidInputError("solver", f"= {solver!r}; accepted: {', '.join(SDP_SOLVERS)}")
    _check_backend(backend, solver)
    pairs = [[i, j] for i in range(d) for j in range(i + 1, min(i + reach + 1, d))]
    _, _, parts = _joint_dual(problem, pairs, solver, OVERLAP_SDP_EPS, backend)
    order = np.argsort(problem.groups, kind="stable")
    return OverlapHull(problem, np.asarray(order, dtype=np.int64), pairs, parts)
