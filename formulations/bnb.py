"""``bnb``: a branch-and-bound of our own on the perspective relaxation (the fast exact path).

In the spirit of L0BnB (Hazimeh, Mazumder, Saab, 2022) for sparse regression, specialised to
the structured problem of :mod:`~proxcompress.formulations.problem`. Every node fixes some groups
*in* (``z_g = 1``) or *out* (``z_g = 0``) and relaxes the rest to ``z_g in [0, 1]`` with the
perspective of the ridge term,

.. math::

    h_g(W_g) = \\min_{z \\in [\\|W_g\\|_\\infty / M,\\, 1]}\\;
        \\lambda\\alpha \\frac{\\|W_g\\|_F^2}{z} + \\lambda(1-\\alpha) z ,

which is the Structured Perspective Regularizer of Cacciola, Frangioni, Li and Lodi
(arXiv:2206.14056) times ``lam``: the tightest convex relaxation of one group's term.

**Node relaxation.** ``min_W 1/2 ||Y - XW||^2 + sum_g h_g(W_g)`` is solved by cyclic block
proximal-gradient coordinate descent (Numba, warm-started from the parent). The prox of ``h_g`` is
exact up to a 1-D root: with ``W = z u``, ``|u| <= M``, the inner minimiser is
``u(z) = clip(V / (z + 2 t lam alpha), -M, M)`` and the outer derivative in ``z`` (envelope theorem)

.. math::

    g'(z) = \\sum_i \\big[(z u_i - V_i) u_i / t + \\lambda\\alpha u_i^2\\big] + \\lambda(1-\\alpha)

is non-decreasing, so ``z`` is found by bisection (``z = 0`` when ``g'(0) >= 0``: whole-group
zeros come out exactly).

**Valid bounds from any iterate (Fenchel duality).** For any residual ``U`` (we use ``s (Y - XW)``
with the best scaling ``s``),

.. math::

    D(U) = \\langle U, Y\\rangle - \\tfrac12\\|U\\|^2 - h^*(X^\\top U)

is a lower bound of the node relaxation, hence of every integer point below the node. The
conjugate is closed form: with ``c_i = clip(v_i / (2 lam alpha), -M, M)`` and
``phi_g(v) = sum_i (v_i c_i - lam alpha c_i^2)``, a free group contributes
``max(0, phi_g - lam (1 - alpha))`` (its conjugate is linear in ``z``), a group fixed in contributes
``phi_g - lam (1 - alpha)`` and a group fixed out 0; with a budget ``sum z <= k`` only the largest
``k - #in`` positive free terms count. So the solver never has to be solved exactly for the bound
to be correct: pruning uses ``D``, never the primal value.

**Search.** Best-first on the parent bound; branch on the most fractional ``z_g``; incumbents
from every node's support polished exactly by
:class:`~proxcompress.formulations.restricted.SupportSolver` plus a swap local search at the root.
A budget ``k`` is handled in the relaxation by a Lagrange price on ``sum z`` (bisection), the
bound staying the exact budgeted dual above.

``nodes`` counts the branch-and-bound nodes whose relaxation was solved.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from proxcompress.formulations.problem import LayerPruningProblem
from proxcompress.formulations.restricted import SupportSolver
from proxcompress.formulations.solution import Solution, Status, polish, relative_gap

FREE, IN, OUT = 0, 1, 2

# relative optimality tolerance of the search (bound and incumbent agree to this)
GAP_TOL = 1e-9
# share of lambda_min(X^T X) moved into the perspective term (below 1 keeps X'^T X' definite)
DIAGONAL_SHIFT = 0.95
# strong branching: candidates tried per node and sweeps per child relaxation
STRONG_CANDIDATES = 5
STRONG_SWEEPS = 30
STRONG_DEPTH = 3
# a node relaxation stops once its duality gap is below this share of the gap to the cutoff
NODE_GAP = 0.1


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
def _dz(V: NDArray[np.float64], z: float, t: float, a: float, b: float, M: float) -> float:
    """Derivative in z of the partially minimised prox objective (see module docstring)."""
    two_ta = 2.0 * t * a
    total = b
    for i in range(V.shape[0]):
        for j in range(V.shape[1]):
            u = _u_of_z(V[i, j], z, two_ta, M)
            total += (z * u - V[i, j]) * u / t + a * u * u
    return total


@njit(cache=True)
def _free_prox(V: NDArray[np.float64], t: float, a: float, b: float, M: float) -> float:
    """Overwrite ``V`` with prox_{t h}(V) for a free group; returns its ``z``."""
    if _dz(V, 0.0, t, a, b, M) >= 0.0:
        z = 0.0
    elif _dz(V, 1.0, t, a, b, M) <= 0.0:
        z = 1.0
    else:
        lo, hi = 0.0, 1.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid <= lo or mid >= hi:
                break
            if _dz(V, mid, t, a, b, M) > 0.0:
                hi = mid
            else:
                lo = mid
        z = 0.5 * (lo + hi)
    two_ta = 2.0 * t * a
    for i in range(V.shape[0]):
        for j in range(V.shape[1]):
            V[i, j] = z * _u_of_z(V[i, j], z, two_ta, M) if z > 0.0 else 0.0
    return z


@njit(cache=True)
def _sweeps(
    gram: NDArray[np.float64],
    xty: NDArray[np.float64],
    W: NDArray[np.float64],
    q: NDArray[np.float64],
    lip: NDArray[np.float64],
    starts: NDArray[np.int64],
    status: NDArray[np.int8],
    a: float,
    b: float,
    M: float,
    n_sweeps: int,
    active_only: bool,
) -> None:
    """``n_sweeps`` cyclic block prox-gradient passes in Gram form, keeping ``q = X^T X W``.

    The gradient of the loss for block ``g`` is ``q_g - (X^T Y)_g``; a change ``delta`` of row
    ``i`` costs one column of the Gram matrix. ``active_only`` skips free groups at zero.
    """
    m = W.shape[1]
    d = W.shape[0]
    n_groups = starts.shape[0] - 1
    for _ in range(n_sweeps):
        for g in range(n_groups):
            s = starts[g]
            e = starts[g + 1]
            zero = True
            for i in range(s, e):
                for j in range(m):
                    if W[i, j] != 0.0:
                        zero = False
            if active_only and zero and status[g] == FREE:
                continue
            V = np.zeros((e - s, m))
            if status[g] != OUT and lip[g] > 0.0:
                t = 1.0 / lip[g]
                for i in range(s, e):
                    for j in range(m):
                        V[i - s, j] = W[i, j] + t * (xty[i, j] - q[i, j])
                if status[g] == IN:
                    scale = 1.0 / (1.0 + 2.0 * t * a)
                    for i in range(e - s):
                        for j in range(m):
                            u = V[i, j] * scale
                            V[i, j] = M if u > M else (-M if u < -M else u)
                else:
                    _free_prox(V, t, a, b, M)
            for i in range(s, e):
                for j in range(m):
                    delta = V[i - s, j] - W[i, j]
                    if delta != 0.0:
                        for r in range(d):
                            q[r, j] += gram[r, i] * delta
                        W[i, j] = V[i - s, j]


@njit(cache=True)
def _group_phi(
    V: NDArray[np.float64], s: float, starts: NDArray[np.int64], a: float, b: float, M: float
) -> NDArray[np.float64]:
    """``phi_g(s V_g) - lam (1 - alpha)`` for every group: the slope of the conjugate in ``z_g``."""
    n_groups = starts.shape[0] - 1
    out = np.empty(n_groups)
    for g in range(n_groups):
        total = -b
        for i in range(starts[g], starts[g + 1]):
            for j in range(V.shape[1]):
                v = s * V[i, j]
                if a > 0.0:
                    c = v / (2.0 * a)
                    c = M if c > M else (-M if c < -M else c)
                else:
                    c = M if v > 0.0 else (-M if v < 0.0 else 0.0)
                total += v * c - a * c * c
        out[g] = total
    return out


@njit(cache=True)
def _conjugate(slopes: NDArray[np.float64], status: NDArray[np.int8], k_left: int) -> float:
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
def _dual_at(
    V: NDArray[np.float64],
    s: float,
    uy: float,
    uu: float,
    starts: NDArray[np.int64],
    status: NDArray[np.int8],
    k_left: int,
    a: float,
    b: float,
    M: float,
) -> float:
    """``D(sU)`` for the residual ``U`` with ``<U, Y> = uy``, ``||U||^2 = uu``, ``X^T U = V``."""
    return s * uy - 0.5 * s * s * uu - _conjugate(_group_phi(V, s, starts, a, b, M), status, k_left)


@njit(cache=True)
def _best_dual(
    V: NDArray[np.float64],
    uy: float,
    uu: float,
    starts: NDArray[np.int64],
    status: NDArray[np.int8],
    k_left: int,
    a: float,
    b: float,
    M: float,
) -> tuple[float, float]:
    """Maximise the concave ``D(sU) = s uy - s^2 uu / 2 - h^*(s V)`` over ``s`` in [0, 2]
    (golden section); returns ``(D, s)``. Any ``s`` gives a valid bound."""
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    lo, hi = 0.0, 2.0
    x1 = hi - ratio * (hi - lo)
    x2 = lo + ratio * (hi - lo)
    f1 = _dual_at(V, x1, uy, uu, starts, status, k_left, a, b, M)
    f2 = _dual_at(V, x2, uy, uu, starts, status, k_left, a, b, M)
    for _ in range(40):
        if f1 < f2:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + ratio * (hi - lo)
            f2 = _dual_at(V, x2, uy, uu, starts, status, k_left, a, b, M)
        else:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - ratio * (hi - lo)
            f1 = _dual_at(V, x1, uy, uu, starts, status, k_left, a, b, M)
    f_one = _dual_at(V, 1.0, uy, uu, starts, status, k_left, a, b, M)
    if f_one >= f1 and f_one >= f2:
        return f_one, 1.0
    if f1 >= f2:
        return f1, x1
    return f2, x2


@njit(cache=True)
def _child_duals(
    slopes: NDArray[np.float64],
    base: float,
    status: NDArray[np.int8],
    k_left: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Dual bounds of the children ``g in`` and ``g out`` of every free group, from the same
    dual point: ``base - h^*_child`` where ``base = s uy - s^2 uu / 2``."""
    n_groups = slopes.shape[0]
    d_in = np.full(n_groups, -np.inf)
    d_out = np.full(n_groups, -np.inf)
    child = status.copy()
    for g in range(n_groups):
        if status[g] != FREE:
            continue
        child[g] = IN
        d_in[g] = base - _conjugate(slopes, child, k_left - 1) if k_left >= 1 else np.inf
        child[g] = OUT
        d_out[g] = base - _conjugate(slopes, child, k_left)
        child[g] = FREE
    return d_in, d_out


@dataclass
class _Node:
    bound: float
    depth: int
    status: NDArray[np.int8]
    W: NDArray[np.float64]


@dataclass
class _Relaxed:
    bound: float
    W: NDArray[np.float64]
    z: NDArray[np.float64]
    status: NDArray[np.int8]
    d_in: NDArray[np.float64]
    d_out: NDArray[np.float64]


def safe_shift(
    gram: NDArray[np.float64], share: float
) -> tuple[float, tuple[NDArray[np.float64], bool] | None]:
    """The diagonal shift ``delta = share * L`` for a *safe* lower bound ``L`` on
    ``lambda_min(gram)``, with the Cholesky factor of ``gram - delta I`` (``None`` when 0).

    The computed smallest eigenvalue is lowered by ``16 d eps lambda_max`` (the backward error
    of the symmetric eigensolver and of forming the Gram matrix), so centred data, ``p >= n``,
    duplicate, zero or constant columns give ``delta = 0`` instead of a round-off value; the
    factorisation is attempted and ``delta`` halved (three times, then 0) if it still fails, so
    no factorisation ever assumes a definiteness that is not there.
    """
    if share <= 0:
        return 0.0, None
    eig = np.linalg.eigvalsh(gram)
    d = gram.shape[0]
    lower = float(eig[0]) - 16.0 * d * np.finfo(float).eps * max(float(eig[-1]), 0.0)
    delta = share * lower
    for _ in range(4):
        if delta <= 0:
            break
        try:
            return delta, cho_factor(gram - delta * np.eye(d))
        except LinAlgError:
            delta *= 0.5
    return 0.0, None


class _Engine:
    """The instance in group-contiguous Gram form plus the relaxation and bound machinery.

    Everything after set-up costs O(d^2 m) at most, independent of the sample count n. Loss
    values use ``||Y - XW||^2 = ||Y||^2 - 2 <W, X^T Y> + <W, X^T X W>``.
    """

    def __init__(self, problem: LayerPruningProblem, diagonal_shift: float) -> None:
        self.p = problem
        order = np.argsort(problem.groups, kind="stable")
        X = problem.X[:, order]
        gram = X.T @ X
        self.xty = np.ascontiguousarray(X.T @ problem.Y)
        yy = float(np.sum(problem.Y**2))
        # Diagonal shift (Frangioni and Gentile 2007): X^T X - delta I stays positive definite,
        # so delta/2 ||W||^2 can move from the loss into the ridge term, whose perspective is
        # then tighter. The shifted loss is written as a least-squares loss 1/2 ||Y' - X'W||^2
        # (X'^T X' = X^T X - delta I, X'^T Y' = X^T Y) plus the constant ``offset``.
        delta, factor = safe_shift(gram, diagonal_shift)
        self.yy = yy
        if delta > 0:
            gram = gram - delta * np.eye(gram.shape[0])
            self.yy = float(np.sum(self.xty * cho_solve(factor, self.xty)))
        self.offset = 0.5 * (yy - self.yy)
        self.gram = np.ascontiguousarray(gram)
        sizes = np.bincount(problem.groups, minlength=problem.n_groups)
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.lip = np.array(
            [
                np.linalg.eigvalsh(self.gram[s:e, s:e])[-1]
                for s, e in itertools.pairwise(self.starts)
            ]
        )
        self.a = problem.lam * problem.alpha + 0.5 * delta
        self.b = problem.lam * (1.0 - problem.alpha)
        self.M = problem.M
        self.rows_of_group = np.repeat(np.arange(problem.n_groups), sizes)

    def _gsum(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.add.reduceat(values, self.starts[:-1])

    def z_of(
        self, W: NDArray[np.float64], status: NDArray[np.int8], nu: float
    ) -> NDArray[np.float64]:
        """The cheapest ``z`` for ``W``: 1 for groups in, 0 out, the SPR minimiser when free."""
        norm2 = np.sqrt(self._gsum(np.sum(W**2, axis=1)))
        lo = np.maximum.reduceat(np.abs(W).max(axis=1), self.starts[:-1]) / self.M
        price = self.b + nu
        ideal = np.sqrt(self.a / price) * norm2 if price > 0 else np.where(norm2 > 0, 1.0, 0.0)
        z = np.clip(np.maximum(ideal, lo), 0.0, 1.0)
        z[status == IN] = 1.0
        z[status == OUT] = 0.0
        return z

    def _loss_terms(self, W: NDArray[np.float64], q: NDArray[np.float64]) -> tuple[float, float]:
        """``(<U, Y'>, ||U||^2)`` for the residual ``U = Y' - X'W`` of the shifted loss."""
        wy = float(np.sum(W * self.xty))
        return self.yy - wy, self.yy - 2.0 * wy + float(np.sum(W * q))

    def primal(
        self, W: NDArray[np.float64], q: NDArray[np.float64], status: NDArray[np.int8], nu: float
    ) -> float:
        """Lagrangian node objective ``1/2||R||^2 + sum_g [a ||W_g||^2 / z_g + (b + nu) z_g]``."""
        z = self.z_of(W, status, nu)
        sq = self._gsum(np.sum(W**2, axis=1))
        price = np.where(status == IN, self.b, self.b + nu)
        safe = np.where(z > 0, z, 1.0)
        ridge = np.where(z > 0, self.a * sq / safe, 0.0)
        loss = 0.5 * self._loss_terms(W, q)[1] + self.offset
        return float(loss + np.sum(ridge + price * z))

    def relax(
        self,
        status: NDArray[np.int8],
        W0: NDArray[np.float64],
        k_left: int,
        cutoff: float,
        tol: float,
        max_sweeps: int = 20000,
        deadline: float = np.inf,
    ) -> _Relaxed:
        """Solve the node relaxation from ``W0``; stops once the bound exceeds ``cutoff``, the
        duality gap is below ``tol`` or after about ``max_sweeps`` sweeps. The returned bound is
        always valid, however early the solve stops (also at ``deadline``, a
        ``time.perf_counter()`` value)."""
        if k_left == 0:
            status = np.where(status == FREE, OUT, status).astype(np.int8)
        W = W0.copy()
        W[status[self.rows_of_group] == OUT] = 0.0
        q = self.gram @ W
        nu = 0.0
        bound, s = self._run(W, q, status, nu, k_left, cutoff, tol, max_sweeps, deadline)
        z = self.z_of(W, status, nu)
        if np.sum(z[status == FREE]) > k_left + 1e-9 and bound < cutoff:
            # Budget active: the Lagrange price nu of sum z <= k_left, by bisection.
            lo, hi = 0.0, max(self.b, 1.0)
            while hi < 1e12 and time.perf_counter() < deadline:
                self._run(W, q, status, hi, k_left, cutoff, tol, max_sweeps, deadline)
                if np.sum(self.z_of(W, status, hi)[status == FREE]) <= k_left:
                    break
                lo, hi = hi, hi * 4.0
            for _ in range(30):
                nu = 0.5 * (lo + hi)
                run_bound, run_s = self._run(
                    W, q, status, nu, k_left, cutoff, tol, max_sweeps, deadline
                )
                if run_bound > bound:
                    bound, s = run_bound, run_s
                if bound >= cutoff or time.perf_counter() >= deadline:
                    break
                if np.sum(self.z_of(W, status, nu)[status == FREE]) > k_left:
                    lo = nu
                else:
                    hi = nu
            z = self.z_of(W, status, nu)
        uy, uu = self._loss_terms(W, q)
        slopes = _group_phi(self.xty - q, s, self.starts, self.a, self.b, self.M)
        base = s * uy - 0.5 * s * s * uu + self.offset
        d_in, d_out = _child_duals(slopes, base, status, k_left)
        return _Relaxed(bound=bound, W=W, z=z, status=status, d_in=d_in, d_out=d_out)

    def _run(
        self,
        W: NDArray[np.float64],
        q: NDArray[np.float64],
        status: NDArray[np.int8],
        nu: float,
        k_left: int,
        cutoff: float,
        tol: float,
        max_sweeps: int,
        deadline: float,
    ) -> tuple[float, float]:
        bound, best_s = -np.inf, 1.0
        sweeps, batch = 0, 4
        args = (self.lip, self.starts, status, self.a, self.b + nu, self.M)
        while sweeps < max_sweeps:
            _sweeps(self.gram, self.xty, W, q, *args, batch, True)
            _sweeps(self.gram, self.xty, W, q, *args, 1, False)
            sweeps += batch + 1
            q[:] = self.gram @ W  # refresh against drift
            uy, uu = self._loss_terms(W, q)
            value, s = _best_dual(
                self.xty - q, uy, uu, self.starts, status, k_left, self.a, self.b, self.M
            )
            value += self.offset
            if value > bound:
                bound, best_s = value, s
            primal = self.primal(W, q, status, nu) - nu * k_left
            # Good enough: the gap is tiny, or small next to the distance to the cutoff (the
            # bound then decides nothing more; children resume from this W).
            slack = NODE_GAP * (cutoff - bound) if np.isfinite(cutoff) else 0.0
            if bound >= cutoff or primal - bound <= max(tol, slack):
                break
            if time.perf_counter() >= deadline:
                break
            batch = min(2 * batch, 64)
        return bound, best_s


def _strong_branch(
    engine: _Engine,
    relaxed: _Relaxed,
    status: NDArray[np.int8],
    ranked: NDArray[np.int64],
    bound: float,
    cutoff: float,
    budget: int,
    tol: float,
    strong: bool,
    deadline: float,
) -> list[tuple[NDArray[np.int8], float, NDArray[np.float64]]] | None:
    """Strong branching with *valid* child bounds.

    The most fractional free groups (at most :data:`STRONG_CANDIDATES`) are tried: each child
    (group in / group out) is relaxed for a few sweeps from the parent's solution. Since every
    dual point gives a valid bound, a child whose bound reaches ``cutoff`` is pruned for good, which
    fixes the group the other way in the whole subtree. The candidate with the largest smaller
    child bound is branched on. Returns the children to push, or ``None`` when the node is pruned.
    """
    best: list[tuple[NDArray[np.int8], float, NDArray[np.float64]]] = []
    best_score = -np.inf
    status = status.copy()
    fixed_bound = -np.inf  # bound of the node once the fixings found here are applied
    for g in ranked[: STRONG_CANDIDATES if strong else 1]:
        g = int(g)
        if status[g] != FREE:
            continue
        kids = []
        for fixed, parent_dual in ((IN, relaxed.d_in[g]), (OUT, relaxed.d_out[g])):
            child_status = status.copy()
            child_status[g] = fixed
            n_in = int(np.sum(child_status == IN))
            if n_in > budget:
                kids.append((child_status, np.inf, relaxed.W))
                continue
            if not strong:
                kids.append((child_status, max(bound, float(parent_dual)), relaxed.W))
                continue
            trial = engine.relax(
                child_status, relaxed.W, budget - n_in, cutoff, tol, max_sweeps=STRONG_SWEEPS,
                deadline=deadline,
            )
            kids.append((trial.status, max(bound, float(parent_dual), trial.bound), trial.W))
        alive = [kid for kid in kids if kid[1] < cutoff]
        if not alive:
            return None
        if len(alive) == 1:
            # the other child is pruned: g is fixed for the whole subtree
            status[g] = alive[0][0][g]
            fixed_bound = max(fixed_bound, alive[0][1])
            continue
        score = min(kid[1] for kid in kids)
        if score > best_score:
            best, best_score = kids, score
    if fixed_bound > -np.inf or not best:
        # fixings found: the node is solved again with them (and branched then)
        return [(status, max(bound, fixed_bound), relaxed.W)]
    return best


def _local_search(
    solver: SupportSolver, support: tuple[int, ...], value: float, budget: int, deadline: float
) -> tuple[tuple[int, ...], float]:
    """First-improvement drop / add / swap moves on the support until no move helps."""
    n_groups = solver.problem.n_groups
    current, best = set(support), value
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        outside = [g for g in range(n_groups) if g not in current]
        moves: list[tuple[set[int], set[int]]] = [({g}, set()) for g in current]
        if len(current) < budget:
            moves += [(set(), {g}) for g in outside]
        moves += [({g}, {h}) for g in current for h in outside]
        for drop, add in moves:
            if time.perf_counter() >= deadline:
                break
            candidate = tuple(sorted((current - drop) | add))
            _, cand_value = solver.solve(candidate)
            if cand_value < best - 1e-12 * max(1.0, abs(best)):
                current, best, improved = set(candidate), cand_value, True
                break
    return tuple(sorted(current)), best


def root_bound(problem: LayerPruningProblem, diagonal_shift: float = DIAGONAL_SHIFT) -> float:
    """The root lower bound of :func:`solve_bnb`: the perspective relaxation after the diagonal
    shift, solved to a relative duality gap of 1e-10 (``diagonal_shift=0`` gives the plain
    perspective / SPR relaxation)."""
    engine = _Engine(problem, diagonal_shift)
    status = np.zeros(problem.n_groups, dtype=np.int8)
    W0 = np.zeros((problem.d, problem.m))
    scale = 0.5 * float(np.sum(problem.Y**2))
    relaxed = engine.relax(status, W0, problem.budget, np.inf, 1e-10 * max(scale, 1e-10))
    return relaxed.bound


def solve_bnb(
    problem: LayerPruningProblem,
    time_limit: float | None = None,
    gap_tol: float = GAP_TOL,
    diagonal_shift: float = DIAGONAL_SHIFT,
) -> Solution:
    """Solve ``problem`` to proven optimality by branch-and-bound on the perspective relaxation.

    Args:
        problem: the instance.
        time_limit: seconds; on the limit the incumbent and the best bound are returned with
            status ``time_limit``.
        gap_tol: relative gap at which the search stops as ``optimal``.
        diagonal_shift: fraction of ``lambda_min(X^T X)`` moved from the loss into the perspective
            term (0 disables; the relaxation is then exactly the SPR / perspective relaxation).
    """
    start = time.perf_counter()
    deadline = start + (time_limit if time_limit is not None else np.inf)
    p = problem
    engine = _Engine(p, diagonal_shift)
    solver = SupportSolver(p)
    budget = p.budget
    seen: dict[tuple[int, ...], float] = {}

    def evaluate(support: tuple[int, ...]) -> float:
        if support not in seen:
            seen[support] = solver.solve(support)[1]
        return seen[support]

    best_support: tuple[int, ...] = ()
    best_value = evaluate(best_support)

    def offer(z: NDArray[np.float64]) -> None:
        nonlocal best_support, best_value
        ranked = np.argsort(-z, kind="stable")
        for threshold in (0.0, 0.5):
            kept = [int(g) for g in ranked[:budget] if z[g] > threshold]
            support = tuple(sorted(kept))
            value = evaluate(support)
            if value < best_value:
                best_support, best_value = support, value

    def tol_abs() -> float:
        return gap_tol * max(abs(best_value), 1e-10)

    root_status = np.zeros(p.n_groups, dtype=np.int8)
    W0 = np.zeros((p.d, p.m))
    counter = itertools.count()
    heap: list[tuple[float, int, int, _Node]] = []
    heapq.heappush(heap, (-np.inf, 0, next(counter), _Node(-np.inf, 0, root_status, W0)))
    nodes = 0
    while heap:
        if time.perf_counter() > deadline:
            break
        parent_bound, _, _, node = heapq.heappop(heap)
        if parent_bound >= best_value - tol_abs():
            continue
        k_left = budget - int(np.sum(node.status == IN))
        relaxed = engine.relax(
            node.status, node.W, k_left, cutoff=best_value - tol_abs(), tol=0.1 * tol_abs(),
            deadline=deadline,
        )
        nodes += 1
        offer(relaxed.z)
        if nodes == 1:
            best_support, best_value = _local_search(
                solver, best_support, best_value, budget, deadline
            )
        bound = max(relaxed.bound, parent_bound)
        cutoff = best_value - tol_abs()
        if bound >= cutoff:
            continue
        # Reduced-cost fixing: a child whose dual bound already reaches the cutoff is pruned,
        # so its sibling's fixing holds for the whole subtree.
        status = relaxed.status.copy()
        status[relaxed.d_in >= cutoff] = OUT
        status[relaxed.d_out >= cutoff] = IN
        if np.sum(status == IN) > budget:
            continue
        free = np.flatnonzero(status == FREE)
        frac = np.minimum(relaxed.z[free], 1.0 - relaxed.z[free])
        if free.size == 0 or frac.max() <= 1e-9:
            if not np.array_equal(status, relaxed.status):
                # fixings changed the node: solve it again as a child
                again = _Node(bound, node.depth, status, relaxed.W)
                heapq.heappush(heap, (bound, -node.depth, next(counter), again))
            continue  # else integral: its support was offered; nothing below this node
        ranked = free[np.argsort(-frac)][: int(np.sum(frac > 1e-9))]
        children = _strong_branch(
            engine,
            relaxed,
            status,
            ranked,
            bound,
            cutoff,
            budget,
            tol_abs(),
            strong=node.depth < STRONG_DEPTH,
            deadline=deadline,
        )
        if children is None:
            continue  # every child of some candidate is pruned: so is this node
        for child_status, child_bound, child_W in children:
            child = _Node(child_bound, node.depth + 1, child_status, child_W)
            heapq.heappush(heap, (child_bound, -child.depth, next(counter), child))
    lower = min([best_value, *(entry[0] for entry in heap)])
    outcome: Status = "optimal" if relative_gap(best_value, lower) <= gap_tol else "time_limit"
    z = np.isin(np.arange(p.n_groups), best_support).astype(float)
    return polish(p, "bnb", z, lower, outcome, start, nodes, solver)


def _load_kernels() -> None:
    """Compile (first run) or load from Numba's on-disk cache every kernel, by solving a tiny
    instance: this happens once, at import, so that no timed solve pays it (0.5-1 s warm,
    tens of seconds on the very first run)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 3))
    tiny = LayerPruningProblem(X=X, Y=X @ np.ones(3), groups=np.arange(3), lam=0.1, alpha=0.5,
                               M=2.0, k=2)
    solve_bnb(tiny)


_load_kernels()
