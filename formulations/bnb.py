"""``bnb``: a branch-and-bound of our own on the perspective relaxation (the fast exact path).

In the spirit of L0BnB (Hazimeh, Mazumder, Saab, 2022) for sparse regression, specialised to
the structured, multi-output problem of :mod:`~proxcompress.formulations.problem`. Every node
fixes some groups *in* (``z_g = 1``) or *out* (``z_g = 0``) and relaxes the rest to
``z_g in [0, 1]`` with the perspective of the ridge term,

.. math::

    h_g(W_g) = \\min_{z \\in [\\|W_g\\|_\\infty / M,\\, 1]}\\;
        \\frac{\\sum_{i \\in g} a_i \\|W_i\\|^2}{z} + \\lambda(1-\\alpha) z ,

the Structured Perspective Regularizer of Cacciola, Frangioni, Li and Lodi (arXiv:2206.14056)
times ``lam`` when ``a_i = lam alpha``: the tightest convex relaxation of one group's term.

**Diagonal shift** (:mod:`~proxcompress.formulations.shifts`). A per-feature ``delta >= 0`` with
``X^T X - Diag(delta) >= 0`` (certified) moves ``delta_i / 2 ||W_i||^2`` from the loss into the
ridge, ``a_i = lam alpha + delta_i / 2``, which tightens the perspective. The loss becomes
``1/2 ||C - A W||^2 + c_0`` with ``A^T A = X^T X - Diag(delta)`` (a Cholesky factor), ``A^T C =
X^T Y``; without a shift ``A`` is the triangular factor of a thin QR of ``X`` (``n > d``) or
``X`` itself (``n <= d``), so a node costs ``O(min(n, d))`` per feature update, never ``O(d^2)``
memory for wide data. ``shift="auto"`` computes the scalar (``lambda_min``) and Jacobi
(correlation ``lambda_min`` times each feature's variance) shifts and keeps the one whose root
bound is larger.

**Node relaxation.** ``min_W 1/2 ||C - AW||^2 + sum_g h_g(W_g)`` by cyclic block
proximal-gradient coordinate descent (Numba) on an *active set* (groups in or non-zero),
warm-started from the parent. After every few sweeps the full gradient ``A^T R`` is formed; a
free group at zero is added to the active set exactly when its conjugate slope below is
positive (the prox of ``h_g`` keeps it at zero otherwise). The prox is exact up to a 1-D root:
with ``W = z u``, ``|u| <= M``, the inner minimiser is ``u_i(z) = clip(V_i / (z + 2 t a_i),
-M, M)`` and the outer derivative in ``z`` (envelope theorem)

.. math::

    g'(z) = \\sum_{i, j} \\big[(z u_{ij} - V_{ij}) u_{ij} / t + a_i u_{ij}^2\\big]
        + \\lambda(1-\\alpha)

is non-decreasing, so ``z`` is found by bisection (``z = 0`` when ``g'(0) >= 0``).

**Valid bounds from any iterate (Fenchel duality).** For any residual ``U`` (we use ``s (C -
AW)`` with the best scaling ``s``),

.. math::

    D(U) = \\langle U, C\\rangle - \\tfrac12\\|U\\|^2 - h^*(A^\\top U) + c_0

is a lower bound of every integer point below the node. The conjugate is closed form: with
``psi(v; a) = max_{|u| <= M} v u - a u^2`` and ``phi_g(V) = sum_{i in g, j} psi(V_ij; a_i)``, a
free group contributes ``max(0, phi_g - lam (1 - alpha))`` (its conjugate is linear in ``z``), a
group fixed in ``phi_g - lam (1 - alpha)`` and a group fixed out 0; with a budget
``sum z <= k`` only the largest ``k - #in`` positive free terms count. The node relaxation
never has to be solved exactly for the bound to be correct: pruning uses ``D``, never the
primal value. The same dual point bounds both children of every free group (reduced-cost
fixing) in ``O(G log G)``.

**Budget ``k``.** The relaxation carries a price ``nu`` on ``sum z``, set after every pass to
the LP-dual price of the budget at the current dual point (the ``(k+1)``-th largest slope);
the bound stays the exact budgeted dual above.

**Search.** Best-first on the bound; strong branching (valid child bounds) in the top levels,
most-fractional branching below; incumbents from every node's support polished exactly by
:class:`~proxcompress.formulations.restricted.SupportSolver`, and at the root the heuristics of
:mod:`~proxcompress.formulations.heuristics` (given warm starts, the relaxation's SPR support,
an L0 path, swap local search). Nodes are stored compactly (their fixings and the non-zero rows
of the warm start), so wide instances (``d = 10^4``) fit.

``nodes`` counts the branch-and-bound nodes whose relaxation was solved.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import qr, solve_triangular
from threadpoolctl import threadpool_limits

from proxcompress.errors import InvalidInputError
from proxcompress.formulations.blocks import apply_block, gradient_step
from proxcompress.formulations.heuristics import Incumbent, l0_path, swap_search
from proxcompress.formulations.limits import Clock
from proxcompress.formulations.pairhull import (
    HULL_ROOT_ITERS,
    OVERLAP_SWEEPS,
    BlockHull,
    OverlapHull,
    overlap_hull,
)
from proxcompress.formulations.problem import LayerPruningProblem
from proxcompress.formulations.restricted import SupportSolver
from proxcompress.formulations.shifts import SHIFTS, factor_shifted, safe_lambda_min, sdp_shift
from proxcompress.formulations.solution import Solution, Status, polish, relative_gap
from proxcompress.formulations.subsets import SubsetSearch
from proxcompress.numba_cache import njit

FREE, IN, OUT = 0, 1, 2
FloatArray = NDArray[np.float64]

#: relative optimality tolerance of the search (bound and incumbent agree to this)
GAP_TOL = 1e-9
#: share of the certified shift moved into the perspective term (below 1 keeps it definite)
DIAGONAL_SHIFT = 0.95
#: shift kinds tried by ``shift="auto"`` (the one with the larger root bound is kept)
AUTO_SHIFTS = ("scalar", "jacobi")
#: Frank-Wolfe refinement of the shift (:func:`refine_shift`): rounds, the share of the SDP
#: boundary the linear step aims at, step lengths tried, the relative gain that continues,
#: and the root gap above which ``solve_bnb`` runs it
FW_ROUNDS = 8
FW_LMO_SHARE = 0.98
FW_STEPS = (1.0, 0.5, 0.25, 0.1)
FW_MIN_GAIN = 1e-5
FW_START_GAP = 1e-4
#: root gap (after the heuristics) above which a budgeted instance is searched by subsets
#: (:mod:`~proxcompress.formulations.subsets`) instead of the perspective tree
SUBSET_GAP = 0.05
#: BLAS threads of the subset search (its products are a few hundred rows: a second thread
#: doubles its CPU time and does not shorten it, docs/decisions.md, issue 14, sixteenth stop)
SUBSET_BLAS_THREADS = 1
#: ``hull="auto"``: the overlapping pairs' hull (:func:`~proxcompress.formulations.pairhull.
#: overlap_hull`, pairs at most :data:`AUTO_HULL_REACH` apart) is built when the root gap after
#: the heuristics and the shift's refinement exceeds :data:`AUTO_HULL_GAP`, on single-feature
#: groups, one output, no budget and at most :data:`AUTO_HULL_MAX_FEATURES` features (its SDP
#: costs 5-12 CPU s at 100 features). Refined root gaps measured (docs/benchmarks.md, issue
#: 14, ninth stop): 3.6-4.5% on the hard regime (AR(1) 0.8, SNR 0.5, alpha 0.05), at most
#: 2.52% on every other row of the alpha sweep and the 10-200-group tables
#: and on a well-conditioned Gram matrix: the Jacobi-scaled smallest eigenvalue at least
#: :data:`AUTO_HULL_MIN_EIGEN` (rank-deficient data, n = p = 40: the hull made bnb ten times
#: slower, 28 CPU s and 17 026 nodes against 2.9 s and 2 630; the hard regime's is 0.053)
AUTO_HULL_GAP = 0.03
AUTO_HULL_REACH = 2
AUTO_HULL_MAX_FEATURES = 128
AUTO_HULL_MIN_EIGEN = 1e-3
#: reliability branching: candidates looked at, strong branchings per node at most, passes
#: per strong child, observations that make a pseudocost reliable, and how many candidates in
#: a row may fail to beat the best before the look stops
MAX_CANDIDATES = 12
MAX_STRONG = 6
STRONG_PASSES = 4
RELIABILITY = 4
LOOKAHEAD = 4
#: a node relaxation stops once its duality gap is below this share of the gap to the cutoff
NODE_GAP = 0.1
#: node shift (:meth:`_Engine.at_node`): share of the groups fixed out from which a node gets
#: its own shift, and the share of the extra certified room it takes
NODE_SHIFT_OUT = 0.1
NODE_SHIFT_SHARE = 0.95
NODE_SHIFT_STEP = 3
#: kept features above which a node keeps the root's shift (the eigendecomposition costs
#: O(rows^3): ~0.6 ms at 90 rows, ~10 ms at 300, against ~1-2 ms per node)
NODE_SHIFT_MAX_ROWS = 300
#: memory of the node engines kept for reuse (nodes with the same groups out share one)
NODE_ENGINE_BYTES = 64 * 2**20
#: coordinate-descent sweeps over the active set between two full-gradient passes
SWEEPS_PER_PASS = 4
#: pass budgets: the root (solved tightly) and every other node
ROOT_PASSES = 3000
NODE_PASSES = 500
#: passes run between two reads of the clock
PASS_CHUNK = 8
#: a node's relaxation is rounded into a candidate incumbent above this depth, and every
#: ``ROUNDING_EVERY``-th node below it (each rounding costs one exact support solve)
ROUNDING_DEPTH = 8
ROUNDING_EVERY = 10


#: golden-section steps of the dual scaling (any ``s`` gives a valid bound; 30 steps locate
#: the best to about 1e-6)
GOLDEN_STEPS = 30


# ----------------------------------------------------------------------------- kernels
@njit(cache=True)
def _psi(v: float, a: float, M: float) -> float:
    """``max_{|u| <= M} v u - a u^2``."""
    if a > 0.0:
        c = v / (2.0 * a)
        if c > M:
            c = M
        elif c < -M:
            c = -M
    elif v > 0.0:
        c = M
    elif v < 0.0:
        c = -M
    else:
        c = 0.0
    return v * c - a * c * c


@njit(cache=True)
def _u_of_z(v: float, z: float, two_ta: float, M: float) -> float:
    den = z + two_ta
    if den <= 0.0:
        if v > 0.0:
            return M
        if v < 0.0:
            return -M
        return 0.0
    u = v / den
    if u > M:
        return M
    if u < -M:
        return -M
    return u


@njit(cache=True)
def _dz(V: FloatArray, arow: FloatArray, z: float, t: float, price: float, M: float) -> float:
    """Derivative in z of the partially minimised prox objective (module docstring)."""
    total = price
    for i in range(V.shape[0]):
        two_ta = 2.0 * t * arow[i]
        for j in range(V.shape[1]):
            u = _u_of_z(V[i, j], z, two_ta, M)
            total += (z * u - V[i, j]) * u / t + arow[i] * u * u
    return total


@njit(cache=True)
def _free_prox(V: FloatArray, arow: FloatArray, t: float, price: float, M: float) -> float:
    """Overwrite ``V`` with ``prox_{t h}(V)`` for a free group; returns its ``z``.

    The root of the non-decreasing ``g'(z)`` is bracketed in ``[0, 1]`` and found by the
    Illinois variant of false position (superlinear; bisection steps when it stalls)."""
    f_lo = _dz(V, arow, 0.0, t, price, M)
    if f_lo >= 0.0:
        z = 0.0
    else:
        f_hi = _dz(V, arow, 1.0, t, price, M)
        if f_hi <= 0.0:
            z = 1.0
        else:
            lo, hi = 0.0, 1.0
            side = 0
            z = 0.5
            for it in range(100):
                if it % 8 == 7:
                    z = 0.5 * (lo + hi)  # a bisection step now and then: guaranteed progress
                else:
                    z = hi - f_hi * (hi - lo) / (f_hi - f_lo)
                    if not lo < z < hi:
                        z = 0.5 * (lo + hi)
                f_z = _dz(V, arow, z, t, price, M)
                if f_z > 0.0:
                    hi, f_hi = z, f_z
                    if side == 1:
                        f_lo *= 0.5
                    side = 1
                elif f_z < 0.0:
                    lo, f_lo = z, f_z
                    if side == -1:
                        f_hi *= 0.5
                    side = -1
                else:
                    break
                if hi - lo <= 1e-14 * hi:
                    z = 0.5 * (lo + hi)
                    break
    for i in range(V.shape[0]):
        two_ta = 2.0 * t * arow[i]
        for j in range(V.shape[1]):
            V[i, j] = z * _u_of_z(V[i, j], z, two_ta, M) if z > 0.0 else 0.0
    return z


@njit(cache=True)
def _cd(
    AT: FloatArray,
    R: FloatArray,
    W: FloatArray,
    lip: FloatArray,
    starts: NDArray[np.int64],
    status: NDArray[np.int8],
    groups: NDArray[np.int64],
    a: FloatArray,
    price: float,
    M: float,
    n_sweeps: int,
) -> None:
    """``n_sweeps`` cyclic block prox-gradient sweeps over ``groups``, keeping ``R = C - A W``.

    ``AT`` is ``A^T`` (feature rows); the gradient of the loss for row ``i`` is
    ``-AT[i] @ R``, and a change ``delta`` of row ``i`` costs ``R -= outer(AT[i], delta)``.
    """
    m = W.shape[1]
    for _ in range(n_sweeps):
        for g in groups:
            s = starts[g]
            e = starts[g + 1]
            if status[g] == OUT or lip[g] <= 0.0:
                V = np.zeros((e - s, m))
            else:
                t = 1.0 / lip[g]
                V = gradient_step(AT, R, W, s, e, t)
                if status[g] == IN:
                    for i in range(e - s):
                        scale = 1.0 / (1.0 + 2.0 * t * a[s + i])
                        for j in range(m):
                            u = V[i, j] * scale
                            V[i, j] = M if u > M else (-M if u < -M else u)
                else:
                    _free_prox(V, a[s:e], t, price, M)
            apply_block(AT, R, W, V, s, e)


@njit(cache=True)
def _group_slope(
    V: FloatArray, s: float, lo: int, hi: int, a: FloatArray, b: float, M: float
) -> float:
    """``phi_g(s V_g) - lam (1 - alpha)`` for the group on rows ``lo:hi``."""
    total = -b
    for i in range(lo, hi):
        for j in range(V.shape[1]):
            total += _psi(s * V[i, j], a[i], M)
    return total


@njit(cache=True)
def _slopes(
    V: FloatArray, s: float, starts: NDArray[np.int64], a: FloatArray, b: float, M: float
) -> FloatArray:
    """``phi_g(s V_g) - lam (1 - alpha)`` for every group: the slope of the conjugate in ``z_g``."""
    n_groups = starts.shape[0] - 1
    out = np.empty(n_groups)
    for g in range(n_groups):
        out[g] = _group_slope(V, s, starts[g], starts[g + 1], a, b, M)
    return out


@njit(cache=True)
def _conjugate(slopes: FloatArray, status: NDArray[np.int8], k_left: int) -> float:
    """``h^*``: slopes of groups in, plus the ``k_left`` largest positive slopes of free groups."""
    total = 0.0
    n_free = 0
    for g in range(slopes.shape[0]):
        if status[g] == IN:
            total += slopes[g]
        elif status[g] == FREE and slopes[g] > 0.0:
            n_free += 1
    if n_free == 0 or k_left <= 0:
        return total
    free = np.empty(n_free)
    n_free = 0
    for g in range(slopes.shape[0]):
        if status[g] == FREE and slopes[g] > 0.0:
            free[n_free] = slopes[g]
            n_free += 1
    if n_free > k_left:
        free = np.sort(free)[n_free - k_left :]
    return total + free.sum()


@njit(cache=True)
def _best_dual(
    V: FloatArray,
    uy: float,
    uu: float,
    starts: NDArray[np.int64],
    status: NDArray[np.int8],
    k_left: int,
    a: FloatArray,
    b: float,
    M: float,
) -> tuple[float, float]:
    """Maximise the concave ``D(sU) = s uy - s^2 uu / 2 - h^*(s V)`` over ``s`` in [0, 2]
    (golden section); returns ``(D, s)`` without the constant ``c_0``. Any ``s`` is valid.

    ``psi(s v)`` is non-decreasing in ``s >= 0`` (convex, least at 0), so a free group whose
    slope is not positive at ``s = 2`` has none on all of ``[0, 2]`` and never enters
    ``h^*``: the search runs over the groups in and the other free ones only (at ``d = 10^4``
    single-feature groups a few dozen)."""
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    lo, hi = 0.0, 2.0

    n_groups = starts.shape[0] - 1
    n_free = 0
    for g in range(n_groups):
        if status[g] == FREE:
            n_free += 1
    unbudgeted = k_left >= n_free
    keep = np.zeros(n_groups, dtype=np.bool_)
    for g in range(n_groups):
        keep[g] = status[g] == IN or (
            status[g] == FREE and _group_slope(V, 2.0, starts[g], starts[g + 1], a, b, M) > 0.0
        )
    ids = np.flatnonzero(keep)
    sub_status = status[ids]

    def value(s: float) -> float:
        sub = np.empty(ids.shape[0])
        for c in range(ids.shape[0]):
            sub[c] = _group_slope(V, s, starts[ids[c]], starts[ids[c] + 1], a, b, M)
        if unbudgeted:  # every positive free slope counts: no sort
            conj = 0.0
            for c in range(ids.shape[0]):
                if sub_status[c] == IN or sub[c] > 0.0:
                    conj += sub[c]
        else:
            conj = _conjugate(sub, sub_status, k_left)
        return s * uy - 0.5 * s * s * uu - conj

    x1 = hi - ratio * (hi - lo)
    x2 = lo + ratio * (hi - lo)
    f1 = value(x1)
    f2 = value(x2)
    for _ in range(GOLDEN_STEPS):
        if f1 < f2:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + ratio * (hi - lo)
            f2 = value(x2)
        else:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - ratio * (hi - lo)
            f1 = value(x1)
    f_one = value(1.0)
    if f_one >= f1 and f_one >= f2:
        return f_one, 1.0
    if f1 >= f2:
        return f1, x1
    return f2, x2


@njit(cache=True)
def _children(
    slopes: FloatArray, base: float, status: NDArray[np.int8], k_left: int
) -> tuple[FloatArray, FloatArray]:
    """Dual bounds of the children ``g in`` and ``g out`` of every free group from one dual point
    (``base - h^*_child``, ``base = s uy - s^2 uu / 2 + c_0``), in ``O(G log G)``: the budgeted
    conjugate changes only through the rank of ``g`` among the positive free slopes."""
    n_groups = slopes.shape[0]
    d_in = np.full(n_groups, -np.inf)
    d_out = np.full(n_groups, -np.inf)
    in_sum = 0.0
    n_pos = 0
    for g in range(n_groups):
        if status[g] == IN:
            in_sum += slopes[g]
        elif status[g] == FREE and slopes[g] > 0.0:
            n_pos += 1
    ids = np.empty(n_pos, dtype=np.int64)
    vals = np.empty(n_pos)
    c = 0
    for g in range(n_groups):
        if status[g] == FREE and slopes[g] > 0.0:
            ids[c] = g
            vals[c] = slopes[g]
            c += 1
    order = np.argsort(-vals)
    vals = vals[order]
    ids = ids[order]
    prefix = np.zeros(n_pos + 1)
    for i in range(n_pos):
        prefix[i + 1] = prefix[i] + vals[i]
    rank = np.full(n_groups, -1, dtype=np.int64)
    for i in range(n_pos):
        rank[ids[i]] = i
    kk = min(max(k_left, 0), n_pos)
    conj = in_sum + prefix[kk]
    for g in range(n_groups):
        if status[g] != FREE:
            continue
        rg = rank[g]
        # child: g out, same budget
        if 0 <= rg < kk:
            nxt = vals[kk] if kk < n_pos else 0.0
            d_out[g] = base - (conj - slopes[g] + nxt)
        else:
            d_out[g] = base - conj
        # child: g in, one slot less
        if k_left < 1:
            d_in[g] = np.inf
            continue
        k2 = k_left - 1
        if rg < 0:
            top = prefix[min(k2, n_pos)]
        elif rg < k2:
            top = prefix[min(k2 + 1, n_pos)] - slopes[g]
        else:
            top = prefix[min(k2, n_pos)]
        d_in[g] = base - (in_sum + slopes[g] + top)
    return d_in, d_out


@njit(cache=True)
def _residual_into(C: FloatArray, AT: FloatArray, W: FloatArray, R: FloatArray) -> None:
    """``R = C - A W`` from ``AT = A^T`` (single-threaded loops over the non-zero rows of
    ``W``: a multithreaded BLAS call for a matrix-vector product this size costs more than it
    saves, and spins on a busy machine)."""
    d, r = AT.shape
    m = W.shape[1]
    R[:, :] = C
    for i in range(d):
        live = False
        for j in range(m):
            if W[i, j] != 0.0:
                live = True
                break
        if not live:
            continue
        for k in range(r):
            coef = AT[i, k]
            for j in range(m):
                R[k, j] -= coef * W[i, j]


@njit(cache=True)
def _gradient(AT: FloatArray, R: FloatArray) -> FloatArray:
    """``A^T R`` (single-threaded loops)."""
    d, r = AT.shape
    m = R.shape[1]
    V = np.zeros((d, m))
    if m == 1:
        col = R[:, 0].copy()
        for i in range(d):
            total = 0.0
            for k in range(r):
                total += AT[i, k] * col[k]
            V[i, 0] = total
        return V
    for i in range(d):
        for k in range(r):
            coef = AT[i, k]
            for j in range(m):
                V[i, j] += coef * R[k, j]
    return V


@njit(cache=True)
def _node_gradient(
    AT: FloatArray, R: FloatArray, starts: NDArray[np.int64], status: NDArray[np.int8]
) -> FloatArray:
    """``A^T R`` on the rows of the groups not fixed out (zero on the others: a group out has
    no slope in ``h^*`` and never enters the active set). Below a node whose bound is within
    ``lam (1 - alpha)`` of the incumbent, reduced-cost fixing has put most of a wide
    instance's single-feature groups out, and the node's gradient (the memory-bound ``O(d r)``
    step: 80 MB of ``A`` at ``d = 10^4``, ``n = 10^3``) shrinks with them."""
    r = AT.shape[1]
    m = R.shape[1]
    V = np.zeros((AT.shape[0], m))
    for g in range(starts.shape[0] - 1):
        if status[g] == OUT:
            continue
        for i in range(starts[g], starts[g + 1]):
            if m == 1:
                total = 0.0
                for k in range(r):
                    total += AT[i, k] * R[k, 0]
                V[i, 0] = total
                continue
            for k in range(r):
                coef = AT[i, k]
                for j in range(m):
                    V[i, j] += coef * R[k, j]
    return V


@njit(cache=True)
def _z_of(
    W: FloatArray, status: NDArray[np.int8], starts: NDArray[np.int64], a: FloatArray,
    price: float, M: float,
) -> FloatArray:
    """The cheapest ``z`` for ``W``: 1 for groups in, 0 out, the perspective minimiser
    ``clip(max(sqrt(Q_g / price), max|W_g| / M), 0, 1)`` when free."""
    n_groups = starts.shape[0] - 1
    z = np.zeros(n_groups)
    for g in range(n_groups):
        if status[g] == IN:
            z[g] = 1.0
            continue
        if status[g] == OUT:
            continue
        quad = 0.0
        top = 0.0
        for i in range(starts[g], starts[g + 1]):
            for j in range(W.shape[1]):
                quad += a[i] * W[i, j] * W[i, j]
                if abs(W[i, j]) > top:
                    top = abs(W[i, j])
        if price > 0.0:
            ideal = np.sqrt(quad / price)
        else:
            ideal = 1.0 if quad > 0.0 else 0.0
        value = max(ideal, top / M)
        z[g] = min(value, 1.0)
    return z


@njit(cache=True)
def _primal(
    W: FloatArray, uu: float, z: FloatArray, status: NDArray[np.int8],
    starts: NDArray[np.int64], a: FloatArray, b: float, nu: float, c0: float,
) -> float:
    """``1/2 ||R||^2 + c0 + sum_g [Q_g / z_g + price_g z_g]`` (``price = b + nu`` when free)."""
    total = 0.5 * uu + c0
    for g in range(starts.shape[0] - 1):
        if z[g] <= 0.0:
            continue
        quad = 0.0
        for i in range(starts[g], starts[g + 1]):
            for j in range(W.shape[1]):
                quad += a[i] * W[i, j] * W[i, j]
        price = b if status[g] == IN else b + nu
        total += quad / z[g] + price * z[g]
    return total


@njit(cache=True)
def _passes(
    AT: FloatArray, C: FloatArray, R: FloatArray, W: FloatArray,
    lip: FloatArray, starts: NDArray[np.int64], status: NDArray[np.int8],
    active: NDArray[np.bool_], a: FloatArray, b: float, M: float, c0: float, k_left: int,
    budgeted: bool, nu: float, cutoff: float, tol: float, node_gap: float, max_passes: int,
    sweeps: int, best: float, best_V: FloatArray, best_scal: FloatArray,
) -> tuple[bool, float, float, int]:
    """Up to ``max_passes`` passes of the node relaxation (module docstring): coordinate
    descent on the active set, residual refresh, scaled dual bound, screening of free groups at
    zero, budget price. ``best``, ``best_V`` and ``best_scal = (s, <U, C>, ||U||^2)`` carry the
    best dual point across calls. Returns ``(done, best, nu, passes)``."""
    n_groups = starts.shape[0] - 1
    for done_passes in range(max_passes):
        count = 0
        for g in range(n_groups):
            if active[g]:
                count += 1
        groups = np.empty(count, dtype=np.int64)
        c = 0
        for g in range(n_groups):
            if active[g]:
                groups[c] = g
                c += 1
        if count:
            _cd(AT, R, W, lip, starts, status, groups, a, b + nu, M, sweeps)
        _residual_into(C, AT, W, R)  # refresh against drift
        V = _node_gradient(AT, R, starts, status)
        uy = np.sum(R * C)
        uu = np.sum(R * R)
        value, s = _best_dual(V, uy, uu, starts, status, k_left, a, b, M)
        value += c0
        if value > best:
            best = value
            best_V[:] = V
            best_scal[0] = s
            best_scal[1] = uy
            best_scal[2] = uu
        slopes = _slopes(V, 1.0, starts, a, b, M)
        if budgeted:
            n_pos = 0
            for g in range(n_groups):
                if status[g] == FREE and slopes[g] > 0.0:
                    n_pos += 1
            if n_pos > k_left:
                pos = np.empty(n_pos)
                c = 0
                for g in range(n_groups):
                    if status[g] == FREE and slopes[g] > 0.0:
                        pos[c] = slopes[g]
                        c += 1
                pos = np.sort(pos)
                nu = pos[n_pos - 1 - k_left]
            else:
                nu = 0.0
        n_viol = 0
        for g in range(n_groups):
            if status[g] != FREE or active[g] or slopes[g] <= nu:
                continue
            zero = True
            for i in range(starts[g], starts[g + 1]):
                for j in range(W.shape[1]):
                    if W[i, j] != 0.0:
                        zero = False
            if zero:
                active[g] = True
                n_viol += 1
        z = _z_of(W, status, starts, a, b + nu, M)
        primal = _primal(W, uu, z, status, starts, a, b, nu, c0)
        if budgeted:
            primal -= nu * k_left
        if best >= cutoff:
            return True, best, nu, done_passes + 1
        slack = node_gap * (cutoff - best) if np.isfinite(cutoff) else 0.0
        if n_viol == 0 and primal - best <= max(tol, slack):
            return True, best, nu, done_passes + 1
    return False, best, nu, max_passes


# ----------------------------------------------------------------------------- engine
@dataclass
class _Relaxed:
    bound: float
    W: FloatArray
    z: FloatArray
    status: NDArray[np.int8]
    d_in: FloatArray
    d_out: FloatArray
    nu: float
    passes: int


class _Engine:
    """The instance in group-contiguous, factored form plus the relaxation and bound machinery.

    ``W`` arrays handled here are in the engine's feature order (``self.order``).
    """

    def __init__(
        self, problem: LayerPruningProblem, diagonal_shift: float = DIAGONAL_SHIFT,
        shift: str = "scalar", delta: FloatArray | None = None, gram: FloatArray | None = None,
    ) -> None:
        p = problem
        self.p = p
        self.order = np.argsort(p.groups, kind="stable")
        X = p.X[:, self.order]
        n, d = X.shape
        sizes = np.bincount(p.groups, minlength=p.n_groups)
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.rows_of_group = np.repeat(np.arange(p.n_groups), sizes)
        self.b = p.lam * (1.0 - p.alpha)
        self.M = p.M
        self.yy = float(np.sum(p.Y**2))
        self.shift = "none" if delta is None else "given"
        # the Gram matrix (engine order) when a shift is worth looking for: with n <= d it is
        # singular or nearly so (a square Gaussian matrix has lambda_min ~ 1/n), so not
        self.gram = (gram if gram is not None else X.T @ X) if n > d else None
        margin = None
        if delta is None:
            delta = np.zeros(d)
            if diagonal_shift > 0 and self.gram is not None:
                if shift not in SHIFTS:
                    raise InvalidInputError(
                        "shift", f"= {shift!r}; accepted: auto, {', '.join(SHIFTS)}, none"
                    )
                delta, margin = SHIFTS[shift](self.gram, diagonal_shift)
                self.shift = shift
        upper = None
        if np.any(delta > 0) and self.gram is not None:
            delta, upper = factor_shifted(self.gram, delta, margin)
        if upper is None:
            delta = np.zeros(d)
            self.shift = "none"
        self.delta = delta
        xty = X.T @ p.Y
        self.xty = xty
        if upper is not None:
            A = upper
            C = solve_triangular(upper, xty, trans="T", lower=False, check_finite=False)
            self.c0 = 0.5 * (self.yy - float(np.sum(C**2)))
        elif n > d:
            Q, A = qr(X, mode="economic")
            C = Q.T @ p.Y
            self.c0 = 0.5 * float(np.sum((p.Y - Q @ C) ** 2))
        else:
            A, C, self.c0 = X, p.Y, 0.0
        self.AT = np.ascontiguousarray(A.T)
        self.C = np.ascontiguousarray(C, dtype=np.float64)
        self.a = p.lam * p.alpha + 0.5 * delta
        self.all_groups = np.arange(p.n_groups, dtype=np.int64)
        self.out_count = 0  # groups out of a node engine (:meth:`at_node`)
        self.lip = self._lipschitz(self.all_groups)

    def _lipschitz(self, groups: NDArray[np.int64]) -> FloatArray:
        """Block Lipschitz constants ``||A_g||_2^2`` of ``groups`` (0 for the others)."""
        lip = np.zeros(self.p.n_groups)
        col_sq = np.sum(self.AT**2, axis=1)
        for g in groups:
            s, e = self.starts[g], self.starts[g + 1]
            if e - s == 1:
                lip[g] = col_sq[s]
            else:
                block = self.AT[s:e]
                lip[g] = float(np.linalg.eigvalsh(block @ block.T)[-1])
        return lip

    def at_node(self, status: NDArray[np.int8]) -> _Engine:
        """The engine of a node whose groups ``OUT`` are gone for good: the principal
        submatrix ``G_JJ - Diag(delta_J)`` of the kept rows ``J`` has a smallest eigenvalue at
        least that of the whole shifted matrix (Cauchy interlacing), so the node's features
        take ``NODE_SHIFT_SHARE`` of that room as a further scalar shift (certified and
        factored like the root's: ``A_J^T A_J = G_JJ - Diag(delta'_J)``, ``A_J^T C = X_J^T
        Y``). Every completion of the node lives on ``J``, so the node's relaxation stays a
        valid bound, and a tighter one: on correlated features (AR(1) 0.8) a third of the
        groups out nearly doubles the extra room. ``self`` when there is no Gram matrix
        (``n <= d``), a budget (the larger shift makes ``c_0`` very negative and the
        budget-price iteration of :meth:`relax` can settle on a weak price), too few groups
        out, more than :data:`NODE_SHIFT_MAX_ROWS` features kept, or no room."""
        n_out = int(np.sum(status == OUT))
        if (self.gram is None or self.p.budget < self.p.n_groups
                or n_out < max(1.0, NODE_SHIFT_OUT * self.p.n_groups)):
            return self
        rows = np.flatnonzero(status[self.rows_of_group] != OUT)
        if rows.size == 0 or rows.size > NODE_SHIFT_MAX_ROWS:
            return self
        gram = self.gram[np.ix_(rows, rows)]
        shifted = gram - np.diag(self.delta[rows])
        low = safe_lambda_min(shifted)
        if not low > 0:
            return self
        extra = NODE_SHIFT_SHARE * low
        top = float(np.max(np.diag(shifted))) - extra
        margin = (1.0 - NODE_SHIFT_SHARE) * low / top if top > 0 else None
        delta_rows, upper = factor_shifted(gram, self.delta[rows] + extra, margin)
        if upper is None:
            return self
        node = copy.copy(self)
        node.delta = self.delta.copy()
        node.delta[rows] = delta_rows
        node.AT = np.zeros((self.p.d, rows.size))
        node.AT[rows] = upper.T
        C = solve_triangular(upper, self.xty[rows], trans="T", lower=False, check_finite=False)
        node.C = np.ascontiguousarray(C, dtype=np.float64)
        node.c0 = 0.5 * (self.yy - float(np.sum(C**2)))
        node.a = self.p.lam * self.p.alpha + 0.5 * node.delta
        node.lip = node._lipschitz(np.flatnonzero(status != OUT))
        node.shift = "node"
        node.out_count = n_out
        return node

    # --------------------------------------------------------------- helpers
    def from_problem_order(self, W: FloatArray) -> FloatArray:
        """``W`` (problem order) in the engine's feature order."""
        return np.ascontiguousarray(W[self.order])

    def _gsum(self, values: FloatArray) -> FloatArray:
        return np.add.reduceat(values, self.starts[:-1])

    def residual(self, W: FloatArray) -> FloatArray:
        """``C - A W``."""
        R = np.empty_like(self.C)
        _residual_into(self.C, self.AT, np.ascontiguousarray(W), R)
        return R

    def gradient(self, R: FloatArray) -> FloatArray:
        """``A^T R``: minus the gradient of the loss."""
        return _gradient(self.AT, np.ascontiguousarray(R))

    # ------------------------------------------------------------ relaxation
    def relax(
        self,
        status: NDArray[np.int8],
        W0: FloatArray,
        k_left: int,
        cutoff: float,
        tol: float,
        max_passes: int = NODE_PASSES,
        deadline: float = np.inf,
        nu: float = 0.0,
    ) -> _Relaxed:
        """Solve the node relaxation from ``W0``. Stops once the bound exceeds ``cutoff``, the
        duality gap is below ``tol`` (or a small share of the distance to the cutoff), after
        ``max_passes`` passes or at ``deadline`` (a ``time.perf_counter()`` value). The returned
        bound is valid however early the solve stops."""
        status = status.copy()
        if k_left <= 0:
            status[status == FREE] = OUT
        W = np.array(W0, dtype=np.float64, order="C", copy=True)
        W[status[self.rows_of_group] == OUT] = 0.0
        R = self.residual(W)
        n_free = int(np.sum(status == FREE))
        budgeted = k_left < n_free
        if not budgeted:
            nu = 0.0
        active = (status == IN) | (self._gsum(np.abs(W).sum(axis=1)) > 0)
        best = -np.inf
        best_V = np.zeros_like(W)
        best_scal = np.array([1.0, 0.0, 0.0])
        passes = 0
        while passes < max_passes:
            chunk = min(PASS_CHUNK, max_passes - passes)
            done, best, nu, ran = _passes(
                self.AT, self.C, R, W, self.lip, self.starts, status, active, self.a,
                self.b, self.M, self.c0, k_left, budgeted, nu, cutoff, tol, NODE_GAP, chunk,
                SWEEPS_PER_PASS, best, best_V, best_scal,
            )
            passes += ran
            if done or time.perf_counter() >= deadline:
                break
        z = _z_of(W, status, self.starts, self.a, self.b + nu, self.M)
        s, uy, uu = best_scal
        slopes = _slopes(best_V, s, self.starts, self.a, self.b, self.M)
        base = s * uy - 0.5 * s * s * uu + self.c0
        d_in, d_out = _children(slopes, base, status, k_left)
        return _Relaxed(best, W, z, status, d_in, d_out, nu, passes)

    def root(
        self, budget: int, tol: float, deadline: float = np.inf, W0: FloatArray | None = None
    ) -> _Relaxed:
        """The root relaxation solved tightly (``ROOT_PASSES``), from ``W0`` (default 0)."""
        status = np.zeros(self.p.n_groups, dtype=np.int8)
        if W0 is None:
            W0 = np.zeros((self.p.d, self.p.m))
        return self.relax(status, W0, budget, np.inf, tol, ROOT_PASSES, deadline)


def _root_tol(problem: LayerPruningProblem) -> float:
    return 1e-10 * max(0.5 * float(np.sum(problem.Y**2)), 1e-10)


def build_engine(
    problem: LayerPruningProblem, diagonal_shift: float = DIAGONAL_SHIFT, shift: str = "auto",
    deadline: float = np.inf,
) -> tuple[_Engine, _Relaxed]:
    """The engine with the chosen shift and its root relaxation. ``shift="auto"`` builds one
    engine per kind of :data:`AUTO_SHIFTS` (when ``X^T X`` is worth shifting at all, ``n > d``
    and ``lambda_min > 0``) and keeps the larger root bound."""
    kinds: tuple[str, ...]
    if shift == "auto":
        kinds = AUTO_SHIFTS
        n, d = problem.X.shape
        if diagonal_shift <= 0 or n <= d:
            kinds = ("none",)
    elif shift == "none":
        kinds = ("none",)
    else:
        if shift not in SHIFTS:
            raise InvalidInputError(
                "shift", f"= {shift!r}; accepted: auto, {', '.join(SHIFTS)}, none"
            )
        kinds = (shift,)
    tol = _root_tol(problem)
    best: tuple[_Engine, _Relaxed] | None = None
    diag = np.einsum("ij,ij->j", problem.X, problem.X)
    if shift == "auto" and np.ptp(diag) <= 1e-12 * max(float(diag.max(initial=0.0)), 1e-300):
        kinds = kinds[:1]  # equal feature scales: the Jacobi shift is the scalar one
    for kind in kinds:
        share = 0.0 if kind == "none" else diagonal_shift
        engine = _Engine(problem, share, kind if kind != "none" else "scalar")
        root = engine.root(problem.budget, tol, deadline)
        if best is None or root.bound > best[1].bound:
            best = (engine, root)
        if engine.shift == "none" or time.perf_counter() >= deadline:
            break  # nothing to shift (singular Gram matrix), or out of time
    assert best is not None
    return best


def refine_shift(
    engine: _Engine, root: _Relaxed, deadline: float = np.inf, rounds: int = FW_ROUNDS
) -> tuple[_Engine, _Relaxed]:
    """Raise the root bound over the shifts themselves: Frank-Wolfe on the concave function
    ``v(delta)`` (the root relaxation's value; a minimum of functions affine in ``delta``) over
    ``{delta >= 0 : X^T X - Diag(delta) >= 0}``.

    By Danskin, ``dv / d delta_i = ||W_i||^2 (1 / z_g - 1) / 2`` at the relaxation's solution;
    the linear step is the weighted SDP of :func:`~proxcompress.formulations.shifts.sdp_shift`
    (at :data:`FW_LMO_SHARE` of the boundary), the step length a short line search on ``v``
    itself. Every candidate is certified by ``factor_shifted`` and its bound is a true root
    bound, so the result is never worse than the start. This approaches the optimal
    perspective relaxation (the SDP relaxation of Dong, Chen and Linderoth, *A semidefinite
    program relaxation of the perspective reformulation*, 2015) without a conic solver.
    """
    gram = engine.gram
    if gram is None or not np.any(engine.delta > 0):
        return engine, root
    p = engine.p
    tol = _root_tol(p)
    for _ in range(rounds):
        if time.perf_counter() >= deadline:
            break
        zr = root.z[engine.rows_of_group]
        safe = np.where(zr > 0, zr, 1.0)
        grad = np.where(zr > 0, 0.5 * np.sum(root.W**2, axis=1) * (1.0 / safe - 1.0), 0.0)
        if not np.any(grad > 0):
            break
        target = sdp_shift(gram, FW_LMO_SHARE, weights=grad).delta
        best: tuple[_Engine, _Relaxed] | None = None
        for gamma in FW_STEPS:
            cand = engine.delta + gamma * (target - engine.delta)
            certified, upper = factor_shifted(gram, cand)
            if upper is None or not np.array_equal(certified, cand):
                continue
            trial = _Engine(p, delta=cand, gram=gram)
            trial_root = trial.root(p.budget, tol, deadline, root.W)
            if trial_root.bound > (best[1].bound if best else root.bound):
                best = (trial, trial_root)
            elif best is not None:
                break  # concave along the segment: past the best step
        gain = -np.inf if best is None else best[1].bound - root.bound
        if best is None or gain <= FW_MIN_GAIN * max(abs(root.bound), 1e-10):
            if best is not None:
                engine, root = best
            break
        engine, root = best
    engine.shift = "refined"
    return engine, root


def root_bound(
    problem: LayerPruningProblem, diagonal_shift: float = DIAGONAL_SHIFT, shift: str = "auto"
) -> float:
    """The root lower bound of :func:`solve_bnb`: the perspective relaxation after the diagonal
    shift, solved to a relative duality gap of 1e-10 (``diagonal_shift=0`` gives the plain
    perspective / SPR relaxation)."""
    return build_engine(problem, diagonal_shift, shift)[1].bound


# ----------------------------------------------------------------------------- search
@dataclass
class _Node:
    bound: float
    depth: int
    fixed: tuple[tuple[int, int], ...]
    rows: NDArray[np.int64]
    values: FloatArray
    nu: float
    branch: tuple[int, int, float, float]  # (group, direction, parent bound, unit) or g = -1
    engine: bytes = b""  # the groups out of the node engine its parent used (root: b"")
    hull_X: FloatArray | None = None  # the parent's block-hull point (a warm start)


def _pack(W: FloatArray) -> tuple[NDArray[np.int64], FloatArray]:
    rows = np.flatnonzero(np.any(W != 0.0, axis=1))
    return rows, W[rows].copy()


class _Pseudocosts:
    """Per-group average bound gain per unit of fractionality, for each branch direction
    (``IN``: ``1 - z_g``, ``OUT``: ``z_g``), learned from strong branching and from solved
    children (Benichou et al. 1971; reliability branching, Achterberg, Koch, Martin 2005)."""

    def __init__(self, n_groups: int) -> None:
        self.total = np.zeros((3, n_groups))
        self.count = np.zeros((3, n_groups))

    def update(self, g: int, direction: int, gain: float, unit: float) -> None:
        if unit > 1e-9 and np.isfinite(gain):
            self.total[direction, g] += max(gain, 0.0) / unit
            self.count[direction, g] += 1

    def estimate(self, groups: NDArray[np.int64], direction: int) -> FloatArray:
        seen = self.count[direction] > 0
        mean = (self.total[direction, seen].sum() / self.count[direction, seen].sum()
                if np.any(seen) else 1.0)
        counts = self.count[direction, groups]
        return np.where(counts > 0, self.total[direction, groups] / np.maximum(counts, 1), mean)

    def reliable(self, g: int) -> bool:
        return bool(min(self.count[IN, g], self.count[OUT, g]) >= RELIABILITY)


def _branch(
    engine: _Engine,
    relaxed: _Relaxed,
    status: NDArray[np.int8],
    free: NDArray[np.int64],
    bound: float,
    cutoff: float,
    budget: int,
    tol: float,
    deadline: float,
    costs: _Pseudocosts,
) -> list[tuple[NDArray[np.int8], float, FloatArray, float, tuple[int, int, float, float]]] | None:
    """Reliability branching with *valid* child bounds.

    Candidates (fractional free groups) are ranked by the product of their pseudocost gain
    estimates; for up to :data:`MAX_STRONG` of them whose pseudocosts are not yet reliable, both
    children (group in / group out) are relaxed for a few passes from the parent's solution
    (strong branching), which also teaches the pseudocosts. Since every dual point gives a valid
    bound, a child whose bound reaches ``cutoff`` is pruned for good, which fixes the group the
    other way in the whole subtree. Returns the children to push (with what each branched on,
    for the pseudocosts), or ``None`` when the node is pruned.
    """
    z = relaxed.z
    eps = 1e-6 * max(abs(bound), 1e-10)
    unit_in, unit_out = 1.0 - z[free], z[free]
    prior = (np.maximum(costs.estimate(free, IN) * unit_in, eps)
             * np.maximum(costs.estimate(free, OUT) * unit_out, eps))
    order = np.argsort(-prior, kind="stable")
    Kid = tuple[NDArray[np.int8], float, FloatArray, float, tuple[int, int, float, float]]
    best: list[Kid] = []
    best_score = -np.inf
    status = status.copy()
    fixed_bound = -np.inf  # bound of the node once the fixings found here are applied
    strong_done = stale = 0
    for rank in order[:MAX_CANDIDATES]:
        g = int(free[rank])
        if status[g] != FREE:
            continue
        units = {IN: float(unit_in[rank]), OUT: float(unit_out[rank])}
        strong = (not costs.reliable(g) and strong_done < MAX_STRONG
                  and time.perf_counter() < deadline)
        strong_done += strong
        kids: list[Kid] = []
        for fixed, parent_dual in ((IN, relaxed.d_in[g]), (OUT, relaxed.d_out[g])):
            child_status = status.copy()
            child_status[g] = fixed
            n_in = int(np.sum(child_status == IN))
            tag = (g, fixed, bound, units[fixed])
            if n_in > budget:
                kids.append((child_status, np.inf, relaxed.W, relaxed.nu, tag))
                continue
            if not strong:
                kids.append((child_status, max(bound, float(parent_dual)), relaxed.W,
                             relaxed.nu, tag))
                continue
            trial = engine.relax(
                child_status, relaxed.W, budget - n_in, cutoff, tol, STRONG_PASSES, deadline,
                relaxed.nu,
            )
            child_bound = max(bound, float(parent_dual), trial.bound)
            costs.update(g, fixed, child_bound - bound, units[fixed])
            kids.append((trial.status, child_bound, trial.W, trial.nu, tag))
        alive = [kid for kid in kids if kid[1] < cutoff]
        if not alive:
            return None
        if len(alive) == 1:
            # the other child is pruned: g is fixed for the whole subtree
            status[g] = alive[0][0][g]
            fixed_bound = max(fixed_bound, alive[0][1])
            continue
        if strong:
            score = max(kids[0][1] - bound, eps) * max(kids[1][1] - bound, eps)
        else:
            score = float(prior[rank])
        if score > best_score:
            best, best_score, stale = kids, score, 0
        else:
            stale += 1
            if stale >= LOOKAHEAD:
                break
    if fixed_bound > -np.inf or not best:
        # fixings found: the node is solved again with them (and branched then)
        return [(status, max(bound, fixed_bound), relaxed.W, relaxed.nu, (-1, FREE, bound, 0.0))]
    return best


def solve_bnb(
    problem: LayerPruningProblem,
    time_limit: float | None = None,
    gap_tol: float = GAP_TOL,
    diagonal_shift: float = DIAGONAL_SHIFT,
    shift: str = "auto",
    warm_start: Sequence[Sequence[int]] = (),
    local_search: bool = True,
    hull: (BlockHull | OverlapHull | Callable[[], BlockHull | OverlapHull | None] | str
           | None) = "auto",
    hull_iters: int = 0,
    hull_depth: int = 10**9,
    hull_gap: float = 0.0,
) -> Solution:
    """Solve ``problem`` to proven optimality by branch-and-bound on the perspective relaxation.

    Args:
        problem: the instance.
        time_limit: seconds; on the limit the incumbent and the best bound are returned with
            status ``time_limit`` (:mod:`~proxcompress.formulations.limits`).
        gap_tol: relative gap at which the search stops as ``optimal``.
        diagonal_shift: share of the certified diagonal shift moved from the loss into the
            perspective term (0 disables; the relaxation is then exactly the SPR / perspective
            relaxation).
        shift: ``auto`` (the larger root bound of ``scalar`` and ``jacobi``, refined by
            :func:`refine_shift` when the root gap after the heuristics exceeds
            :data:`FW_START_GAP`), one of :data:`~proxcompress.formulations.shifts.SHIFTS`, or
            ``none``.
        warm_start: supports (lists of group ids) offered as first incumbents; each is also the
            start of a swap local search. Groups beyond the budget are refused.
        local_search: run the L0 path and swap local search at the root.
        hull: a block-hull relaxation of ``problem``
            (:func:`~proxcompress.formulations.pairhull.block_hull`, or the overlapping pairs'
            :func:`~proxcompress.formulations.pairhull.overlap_hull`) whose bound is taken
            at every node the perspective relaxation does not prune (with its children's
            reduced-cost bounds), from at most ``hull_iters`` sweeps with momentum
            warm-started at the parent's point (stopped early when the bound reaches the
            incumbent or stalls: :meth:`~proxcompress.formulations.pairhull.BlockHull.bound`),
            at nodes down to depth ``hull_depth`` (their descendants inherit the bound).
            Or a function without arguments that builds one (e.g. ``lambda:
            overlap_hull(problem)``; ``None`` from it: no hull): called, inside the time
            limit, only when the root gap after the heuristics and the shift's refinement
            exceeds ``hull_gap`` (an easy instance does not pay the hull's SDP). ``"auto"``
            (the default): the overlapping pairs' hull by that rule where it applies
            (:data:`AUTO_HULL_GAP`; ``hull_iters`` and ``hull_gap`` are then its own, and a
            failed SDP leaves the search without it); ``None``: no hull.
        hull_gap: the relative root gap above which a hull builder is called (ignored for a
            built hull).

    Raises:
        InvalidInputError: a warm start names an unknown group or exceeds the budget; an
            unknown ``shift``; a ``hull`` of another problem, ``hull_iters < 1`` or
            ``hull_depth < 0`` with a hull.
    """
    clock = Clock(time_limit)
    deadline = clock.deadline
    p = problem
    budget = p.budget
    starts_given = [_check_support(p, support, index) for index, support in
                    enumerate(warm_start)]
    solver = SupportSolver(p)
    incumbent = Incumbent(p, solver)
    for support in starts_given:
        incumbent.offer(support)
    if isinstance(hull, str):
        if hull != "auto":
            raise InvalidInputError("hull", f"= {hull!r}; accepted: 'auto', None, a hull or a "
                                    "function that builds one")
        hull, hull_iters, hull_gap = _auto_hull(p, solver.gram), OVERLAP_SWEEPS, AUTO_HULL_GAP
    built = hull if isinstance(hull, BlockHull | OverlapHull) else None
    if built is not None:  # the engine orders features so (_Engine.order)
        _check_hull(built, p, np.argsort(p.groups, kind="stable"), hull_iters, hull_depth)
    elif hull is not None:  # a builder: its arguments now, the hull once the root asks for it
        if not callable(hull):
            raise InvalidInputError("hull", f"= {type(hull).__name__}; accepted: a BlockHull, "
                                    "an OverlapHull or a function that builds one")
        _check_hull_arguments(hull_iters, hull_depth, hull_gap)
    engine, root = build_engine(p, diagonal_shift, shift, deadline)

    def tol_abs() -> float:
        return gap_tol * max(abs(incumbent.value), 1e-10)

    def offer_relaxed(relaxed: _Relaxed, thresholds: tuple[float, ...] = (0.5,)) -> None:
        """The relaxation's support rounded (``z > threshold``, the largest ``z`` within the
        budget): the SPR warm start at the root, a cheap rounding at every node."""
        z = relaxed.z
        top = np.argsort(-z, kind="stable")[:budget]
        for threshold in thresholds:
            incumbent.offer(tuple(np.sort(top[z[top] > threshold]).tolist()))

    offer_relaxed(root, (0.0, 0.5))
    if local_search and not clock.expired():
        l0_path(engine, incumbent, budget, deadline)
        seeds = [incumbent.support, *starts_given]
        for seed in seeds:
            if clock.expired():
                break
            swap_search(engine, incumbent, seed, budget, deadline)
    if (SubsetSearch.applicable(p) and not clock.expired()
            and relative_gap(incumbent.value, root.bound) > SUBSET_GAP):
        return _subset_mode(p, incumbent, root.bound, clock, gap_tol, solver)
    if shift == "auto" and relative_gap(incumbent.value, root.bound) > FW_START_GAP:
        engine, root = refine_shift(engine, root, deadline)
        offer_relaxed(root, (0.0, 0.5))
    hull_root: FloatArray | None = None
    if (hull is not None and built is None and not clock.expired()
            and relative_gap(incumbent.value, root.bound) > hull_gap):
        assert callable(hull)
        built = hull()
        if built is not None:
            _check_hull(built, p, np.argsort(p.groups, kind="stable"), hull_iters, hull_depth)
    if built is not None and not clock.expired():
        root, hull_root = _with_hull(built, engine, root, HULL_ROOT_ITERS, None, np.inf)
    nodes = 1
    counter = itertools.count()
    heap: list[tuple[float, int, int, _Node]] = []

    costs = _Pseudocosts(p.n_groups)
    node_engines: dict[bytes, _Engine] = {}  # by the set of groups out, least recent first
    no_branch = (-1, FREE, 0.0, 0.0)

    def push(bound: float, depth: int, status: NDArray[np.int8],
             warm: tuple[NDArray[np.int64], FloatArray], nu: float,
             branch: tuple[int, int, float, float] = no_branch, engine_key: bytes = b"",
             hull_X: FloatArray | None = None) -> None:
        nonfree = np.flatnonzero(status != FREE)
        fixed = tuple(zip(nonfree.tolist(), status[nonfree].tolist(), strict=True))
        node = _Node(bound, depth, fixed, warm[0], warm[1], nu, branch, engine_key, hull_X)
        heapq.heappush(heap, (bound, -depth, next(counter), node))

    def expand(relaxed: _Relaxed, parent_bound: float, depth: int, engine: _Engine,
               engine_key: bytes = b"", hull_X: FloatArray | None = None) -> None:
        bound = max(relaxed.bound, parent_bound)
        cutoff = incumbent.value - tol_abs()
        if bound >= cutoff:
            return
        # Reduced-cost fixing: a child whose dual bound already reaches the cutoff is pruned,
        # so its sibling's fixing holds for the whole subtree.
        status = relaxed.status.copy()
        status[(status == FREE) & (relaxed.d_in >= cutoff)] = OUT
        status[(status == FREE) & (relaxed.d_out >= cutoff)] = IN
        if np.sum(status == IN) > budget:
            return
        free = np.flatnonzero(status == FREE)
        frac = np.minimum(relaxed.z[free], 1.0 - relaxed.z[free])
        candidates = free[frac > 1e-9]
        if candidates.size == 0:
            if not np.array_equal(status, relaxed.status):
                push(bound, depth, status, _pack(relaxed.W), relaxed.nu, no_branch,
                     engine_key, hull_X)  # again, fixed
                return
            # integral z: its support is the node's optimum only if the relaxation was solved
            # to the bound (it may have stopped early, and the rounding is not offered at
            # every node): offer it, and branch on the free groups unless that prunes
            offer_relaxed(relaxed)
            if free.size == 0 or bound >= incumbent.value - tol_abs():
                return
            candidates = free
        children = _branch(engine, relaxed, status, candidates, bound, cutoff, budget,
                           tol_abs(), deadline, costs)
        packed: dict[int, tuple[NDArray[np.int64], FloatArray]] = {}  # siblings share W
        for child_status, child_bound, child_W, child_nu, tag in children or ():
            if id(child_W) not in packed:
                packed[id(child_W)] = _pack(child_W)
            push(child_bound, depth + 1, child_status, packed[id(child_W)], child_nu, tag,
                 engine_key, hull_X)

    expand(root, -np.inf, 0, engine, b"", hull_root)
    while heap and not clock.expired():
        parent_bound, _, _, node = heapq.heappop(heap)
        if parent_bound >= incumbent.value - tol_abs():
            continue
        status = np.zeros(p.n_groups, dtype=np.int8)
        for g, value in node.fixed:
            status[g] = value
        W0 = np.zeros((p.d, p.m))
        W0[node.rows] = node.values
        k_left = budget - int(np.sum(status == IN))
        # the node engine: the node's own when cached, else its parent's while the node has
        # fewer than NODE_SHIFT_STEP more groups out (valid: the parent's rows contain the
        # node's), else a new one
        key = (status == OUT).tobytes()
        n_out = int(np.sum(status == OUT))
        node_engine = node_engines.pop(key, None)
        if node_engine is None:
            parent = node_engines.get(node.engine, engine)
            node_engine = (parent if n_out < parent.out_count + NODE_SHIFT_STEP
                           else engine.at_node(status))
            key = node.engine if node_engine is parent else key
            node_engines.pop(key, None)
        if node_engine is not engine:
            node_engines[key] = node_engine  # most recent last
        engine_key = key if node_engine is not engine else b""
        while node_engines and len(node_engines) * node_engine.AT.nbytes > NODE_ENGINE_BYTES:
            node_engines.pop(next(iter(node_engines)))
        relaxed = node_engine.relax(
            status, W0, k_left, cutoff=incumbent.value - tol_abs(), tol=0.1 * tol_abs(),
            deadline=deadline, nu=node.nu,
        )
        hull_X = None
        if (hull_root is not None and node.depth <= hull_depth
                and relaxed.bound < incumbent.value - tol_abs()):
            relaxed, hull_X = _with_hull(
                built, engine, relaxed, hull_iters,
                node.hull_X if node.hull_X is not None else hull_root,
                incumbent.value - tol_abs())
        nodes += 1
        g, direction, branched_from, unit = node.branch
        if g >= 0:
            costs.update(g, direction, relaxed.bound - branched_from, unit)
        if node.depth < ROUNDING_DEPTH or nodes % ROUNDING_EVERY == 0:
            before = incumbent.value
            offer_relaxed(relaxed)
            if local_search and incumbent.value < before:
                # a new incumbent from the tree: polish it by swaps at once (the tree's
                # roundings find better supports late on correlated features)
                swap_search(engine, incumbent, incumbent.support, budget, deadline)
        expand(relaxed, parent_bound, node.depth, node_engine, engine_key, hull_X)
    # every open node's bound is at least the root's; an empty heap means everything was pruned
    lower = min(incumbent.value, min((entry[0] for entry in heap), default=np.inf))
    outcome: Status = "optimal" if relative_gap(incumbent.value, lower) <= gap_tol else (
        "time_limit")
    z = np.isin(np.arange(p.n_groups), incumbent.support).astype(float)
    return polish(p, "bnb", z, lower, outcome, clock.start, nodes, solver)


def _auto_hull(problem: LayerPruningProblem, gram: FloatArray | None = None,
               backend: str = "auto") -> Callable[[], OverlapHull | None] | None:
    """``hull="auto"``'s builder (:data:`AUTO_HULL_GAP`), or ``None`` where the overlapping
    pairs do not apply or the Gram matrix (``gram``, ``X^T X`` if already at hand) is
    ill-conditioned (:data:`AUTO_HULL_MIN_EIGEN`); ``backend``: the root SDP's
    (:data:`~proxcompress.formulations.pairhull.SDP_BACKENDS`)."""
    from proxcompress.errors import SolverError

    p = problem
    if not (p.m == 1 and p.n_groups == p.d and p.budget >= p.n_groups
            and 2 <= p.d <= AUTO_HULL_MAX_FEATURES):
        return None
    G = gram if gram is not None else p.X.T @ p.X
    scale = np.sqrt(np.maximum(np.diag(G), 1e-300))
    if not safe_lambda_min(G / np.outer(scale, scale)) >= AUTO_HULL_MIN_EIGEN:
        return None

    def build() -> OverlapHull | None:
        try:
            return overlap_hull(p, AUTO_HULL_REACH, backend=backend)
        except (SolverError, InvalidInputError):  # the SDP failed, or no split certified
            return None

    return build


def _check_hull_arguments(iters: object, depth: object, gap: object = 0.0) -> None:
    """At least one sweep per node (0 would silently ignore the hull), a depth >= 0, a
    finite root gap >= 0 for a builder."""
    for name, value, low in (("hull_iters", iters, 1), ("hull_depth", depth, 0)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
            raise InvalidInputError(name, f"= {value!r}; accepted: an integer >= {low} when a "
                                    "hull is given")
    if not (isinstance(gap, int | float) and not isinstance(gap, bool) and np.isfinite(gap)
            and gap >= 0):
        raise InvalidInputError("hull_gap", f"= {gap!r}; accepted: a finite number >= 0")


def _check_hull(hull: BlockHull | OverlapHull, problem: LayerPruningProblem,
                order: NDArray[np.int64],
                iters: object, depth: object) -> None:
    """The hull arguments of :func:`solve_bnb`, before any search: a hull of this problem in
    the engine's feature order (another one's bounds would not be valid) and
    :func:`_check_hull_arguments`."""
    _check_hull_arguments(iters, depth)
    if not isinstance(hull, BlockHull | OverlapHull):
        raise InvalidInputError("hull", f"= {type(hull).__name__}; accepted: a BlockHull or an "
                                "OverlapHull (the builder returned another object)")
    if not hull.fits(problem, order):
        raise InvalidInputError("hull", "was built for another problem or feature order; "
                                "build it with block_hull(problem, ...) of this problem")


def _with_hull(hull: BlockHull | OverlapHull | None, engine: _Engine, relaxed: _Relaxed,
               iters: int,
               X0: FloatArray | None, cutoff: float) -> tuple[_Relaxed, FloatArray]:
    """``relaxed`` with the block hull's bound and children bounds where they are larger
    (both are valid: the larger is), and the hull's point for the children."""
    assert hull is not None
    status = relaxed.status[engine.rows_of_group]
    result = hull.bound(status, X0, iters, cutoff, hull.check_every, hull.stall)
    d_in, d_out = hull.children(result, status)
    groups = engine.rows_of_group
    out = copy.copy(relaxed)
    out.bound = max(relaxed.bound, result.bound)
    out.d_in = relaxed.d_in.copy()
    out.d_out = relaxed.d_out.copy()
    np.maximum.at(out.d_in, groups, d_in)
    np.maximum.at(out.d_out, groups, d_out)
    return out, result.X


def _subset_mode(
    problem: LayerPruningProblem, incumbent: Incumbent, root_bound: float, clock: Clock,
    gap_tol: float, solver: SupportSolver,
) -> Solution:
    """The budgeted, weak-relaxation case: the subset search of
    :mod:`~proxcompress.formulations.subsets` instead of the perspective tree; the bound on the
    limit is the larger of the root relaxation's and the open nodes' smallest. The search runs
    with one BLAS thread (:data:`SUBSET_BLAS_THREADS`): its products are small, and a second
    thread doubles its CPU time without shortening it (docs/decisions.md, issue 14, sixteenth
    stop)."""
    search = SubsetSearch(problem, incumbent)
    with threadpool_limits(limits=SUBSET_BLAS_THREADS, user_api="blas"):
        finished = search.run(clock.deadline)
    lower = incumbent.value if finished else max(root_bound, min(incumbent.value,
                                                                 search.open_bound()))
    outcome: Status = "optimal" if relative_gap(incumbent.value, lower) <= gap_tol else (
        "time_limit")
    z = np.isin(np.arange(problem.n_groups), incumbent.support).astype(float)
    return polish(problem, "bnb", z, lower, outcome, clock.start, 1 + search.nodes, solver)


def _check_support(problem: LayerPruningProblem, support: Sequence[int],
                   index: int) -> tuple[int, ...]:
    try:
        groups = tuple(sorted({int(g) for g in support}))
    except (TypeError, ValueError):
        raise InvalidInputError(
            "warm_start", f"entry {index} must be a list of group ids, got {support!r}"
        ) from None
    if any(not 0 <= g < problem.n_groups for g in groups):
        raise InvalidInputError(
            "warm_start", f"entry {index} names a group outside 0..{problem.n_groups - 1}"
        )
    if len(groups) > problem.budget:
        raise InvalidInputError(
            "warm_start",
            f"entry {index} keeps {len(groups)} groups, above the budget k = {problem.budget}",
        )
    return groups


def _load_kernels() -> None:
    """Compile (first run) or load from Numba's on-disk cache every kernel, by running each
    path once on tiny instances (the tree with and without a budget, the subset search, the
    SDP shift): this happens once, at import, so that no timed solve pays it (0.3-0.5 s warm,
    about ten seconds on the very first run)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 4))
    for k, groups in ((2, np.arange(4)), (None, np.array([0, 0, 1, 1]))):
        tiny = LayerPruningProblem(X=X, Y=X @ np.ones(4), groups=groups, lam=0.1, alpha=0.5,
                                   M=2.0, k=k)
        solve_bnb(tiny)
        if k is not None:
            SubsetSearch(tiny, Incumbent(tiny, SupportSolver(tiny))).run(np.inf)
    sdp_shift(X.T @ X, 0.5, weights=np.ones(4))


_load_kernels()
