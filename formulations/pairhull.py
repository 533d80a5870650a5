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
still a valid bound). ``s`` is chosen by a bounded scalar search. The relaxation itself is solved by
cyclic block proximal-gradient sweeps on the disaggregated ``x_S`` (a block's own Lipschitz
constant; faster than FISTA with the global one: 13 747 against 13 587 after 30 steps at a
sampled node of the hard regime); the prox of the hull term is exact: per support a
one-dimensional root for ``l_S`` (the perspective of a quadratic, in the eigenbasis of
``P_SS``), and a bisection on the price of ``sum_S l_S <= 1``.

**Decomposition.** The bound is only as good as ``Q``. :func:`block_hull` takes it from the
caller; :func:`sdp_decomposition` computes the best one for given blocks from the lifted SDP
(CLARABEL: minutes at 100 features, the measured target; no cheap optimiser of ``Q`` is
known to match it, see ``docs/decisions.md``, issue 14).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.optimize import minimize_scalar

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
        lo, hi = -1.0, 1.0
        while total(lo) < 1.0 and lo > -1e30:
            lo *= 2.0
        while total(hi) > 1.0 and hi < 1e30:
            hi *= 2.0
        for _ in range(60):
            tau = 0.5 * (lo + hi)
            if total(tau) > 1.0:
                lo = tau
            else:
                hi = tau
            if hi - lo <= 1e-12 * max(1.0, abs(hi)):
                break
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
def _conjugates(v: FloatArray, bstart: IntArray, idx: IntArray, size: IntArray,
                pinv: FloatArray, b: float, status: NDArray[np.int8]) -> FloatArray:
    """``h_B^*(v_B)`` of every block under the fixings (``-inf`` where no support is
    allowed: the node is infeasible)."""
    n_blocks = bstart.shape[0] - 1
    out = np.empty(n_blocks)
    for bl in range(n_blocks):
        first, last = bstart[bl], bstart[bl + 1]
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
        out[bl] = best
    return out


def _dual(w: FloatArray, H: FloatArray, xty: FloatArray, cc: float, yy: float,
          bstart: IntArray, idx: IntArray, size: IntArray, pinv: FloatArray, b: float,
          status: NDArray[np.int8]) -> tuple[float, float]:
    """The best bound ``D`` over the scaling ``s`` in [0, 2] (bounded Brent; ``s = 1`` tried
    too: any ``s`` is valid) and that ``s``."""
    wx = float(w @ xty)
    Hw = H @ w
    wHw = float(w @ Hw)
    g = xty - Hw

    def value(s: float) -> float:
        conj = float(_conjugates(s * g, bstart, idx, size, pinv, b, status).sum())
        return (s * (cc - wx) - 0.5 * s * s * (cc - 2.0 * wx + wHw) - conj
                + 0.5 * yy - 0.5 * cc)

    found = minimize_scalar(lambda s: -value(s), bounds=(0.0, 2.0), method="bounded",
                            options={"xatol": 1e-7})
    candidates = [(value(1.0), 1.0), (value(float(found.x)), float(found.x))]
    return max(candidates)


@njit(cache=True)
def _sweeps(H: FloatArray, xty: FloatArray, X: FloatArray, idx: IntArray, size: IntArray,
            ev: FloatArray, vec: FloatArray, bstart: IntArray, blip: FloatArray, b: float,
            status: NDArray[np.int8], sweeps: int, lam_out: FloatArray) -> FloatArray:
    """``sweeps`` cyclic block proximal-gradient sweeps (a block's own Lipschitz constant
    ``blip``, its prox exact), keeping ``H w`` up to date."""
    nc, K = X.shape
    d = H.shape[0]
    w = _w_of(X, idx, size, d)
    Hw = H @ w
    Vin = np.zeros_like(X)
    Xn = np.zeros_like(X)
    old = np.zeros(d)
    for _ in range(sweeps):
        for bl in range(bstart.shape[0] - 1):
            first, last = bstart[bl], bstart[bl + 1]
            t = 1.0 / blip[bl]
            for c in range(first, last):
                for i in range(size[c]):
                    f = idx[c, i]
                    Vin[c, i] = X[c, i] - t * (Hw[f] - xty[f])
            _block_prox(Vin, Xn, lam_out, first, last, idx, size, ev, vec, t, b, status)
            feats = idx[last - 1, : size[last - 1]]  # the block's full support lists them all
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
                        Hw[j] += H[j, f] * delta
    return X


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

    def zero_point(self) -> FloatArray:
        return np.zeros((self.idx.shape[0], self.idx.shape[1]))

    def fits(self, problem: LayerPruningProblem, order: IntArray) -> bool:
        """Whether this hull relaxes ``problem`` with its features in ``order`` (a hull of
        another problem, or in another order, would give bounds that are not valid)."""
        a, b = self.source, problem
        return (a is b or (np.array_equal(a.X, b.X) and np.array_equal(a.Y, b.Y)
                           and np.array_equal(a.groups, b.groups) and a.lam == b.lam
                           and a.alpha == b.alpha)) and np.array_equal(self.order, order)

    def bound(self, status: NDArray[np.int8], X0: FloatArray | None = None, iters: int = 200,
              cutoff: float = np.inf, check_every: int = 25) -> HullResult:
        """The node bound (``status`` per feature in the hull's order): sweeps from ``X0``
        (supports the fixings forbid are zeroed), stopped after ``iters`` or once the bound
        reaches ``cutoff``. Valid however early it stops."""
        status = np.ascontiguousarray(status, dtype=np.int8)
        X = self.zero_point() if X0 is None else np.array(X0, dtype=np.float64, copy=True)
        for c in range(X.shape[0]):
            r = int(self.size[c])
            if np.any(status[self.idx[c, :r]] == OUT):
                X[c] = 0.0
        lam = np.zeros(X.shape[0])
        best = -np.inf
        best_w = np.zeros(self.d)
        best_s = 0.0
        done = 0
        while done < iters:
            step = min(check_every, iters - done)
            X = _sweeps(self.H, self.xty, X, self.idx, self.size, self.ev, self.vec,
                        self.bstart, self.blip, self.b, status, step, lam)
            done += step
            w = _w_of(X, self.idx, self.size, self.d)
            value, s = _dual(w, self.H, self.xty, self.cc, self.yy, self.bstart, self.idx,
                             self.size, self.pinv, self.b, status)
            if value > best:
                best, best_w, best_s = value, w, s
            if best >= cutoff:
                break
        return HullResult(best, X, best_w, best_s)

    def children(self, result: HullResult, status: NDArray[np.int8]) -> tuple[FloatArray,
                                                                              FloatArray]:
        """Bounds of the children ``i in`` and ``i out`` of every free feature from the same
        dual point (only the feature's block conjugate changes); ``-inf`` for the others."""
        status = np.ascontiguousarray(status, dtype=np.int8)
        v = result.s * (self.xty - self.H @ result.w)
        node = _conjugates(v, self.bstart, self.idx, self.size, self.pinv, self.b, status)
        d_in = np.full(self.d, -np.inf)
        d_out = np.full(self.d, -np.inf)
        block_of = np.empty(self.d, dtype=np.int64)
        for bl, B in enumerate(self.blocks):
            block_of[B] = bl
        trial = status.copy()
        for i in np.flatnonzero(status == FREE):
            bl = block_of[i]
            for fixed, out in ((IN, d_in), (OUT, d_out)):
                trial[i] = fixed
                conj = _conjugates(v, self.bstart, self.idx, self.size, self.pinv, self.b,
                                   trial)[bl]
                out[i] = result.bound - (conj - node[bl])
            trial[i] = FREE
        return d_in, d_out


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
    seen = np.zeros(d, dtype=bool)
    mask = np.zeros((d, d), dtype=bool)
    for B in blocks:
        if not 1 <= len(B) <= MAX_BLOCK or any(not 0 <= i < d for i in B) or np.any(seen[B]):
            raise InvalidInputError("blocks", f"{B}: blocks are disjoint, of 1 to {MAX_BLOCK} "
                                              f"features in [0, {d})")
        seen[B] = True
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


def sdp_decomposition(problem: LayerPruningProblem, blocks: list[list[int]],
                      margin: float = 1e-2) -> FloatArray:
    """The decomposition ``Q`` that makes the block hull tightest at the root, read off the
    dual of its lifted SDP (``[[1, w^T], [w, B]] >= 0`` with every block's moments
    ``(w_B, B_BB)`` in the hull of its supports, without the box, as the hull bound;
    CLARABEL): dual feasibility makes every ``P_B`` positive semi-definite. A share
    ``margin`` of the way is given back to a scalar shift (:func:`mix_safe`) so that ``H``
    and every ``P_B`` keep certified room. Minutes at 100 features: a measurement, not a
    node-time tool.

    Raises:
        InvalidInputError: as :func:`block_hull`.
        SolverError: CLARABEL does not reach optimality.
    """
    import cvxpy as cp

    from proxcompress.errors import SolverError

    _check(problem)
    p = problem
    order = np.argsort(p.groups, kind="stable")
    X = p.X[:, order]
    y = p.Y[:, 0]
    d = p.d
    G = X.T @ X
    xty = X.T @ y
    ridge = p.lam * p.alpha
    b = p.lam * (1.0 - p.alpha)
    lifted = cp.Variable((d + 1, d + 1), PSD=True)
    w, B = lifted[0, 1:], lifted[1:, 1:]
    objective = 0.5 * float(y @ y) - xty @ w + 0.5 * cp.trace(G @ B) + ridge * cp.trace(B)
    constraints = [lifted[0, 0] == 1]
    links = []
    for blk in blocks:
        n = len(blk)
        weights, moments, firsts = [], 0, 0
        for r in range(1, n + 1):
            for S in itertools.combinations(range(n), r):
                cols = list(S)
                lam_s = cp.Variable(nonneg=True)
                x = cp.Variable(r)
                M2 = cp.Variable((r, r), symmetric=True)
                weights.append(lam_s)
                objective += b * r * lam_s
                constraints += [cp.bmat([[cp.reshape(lam_s, (1, 1), order="C"),
                                          cp.reshape(x, (1, r), order="C")],
                                         [cp.reshape(x, (r, 1), order="C"), M2]]) >> 0]
                E = np.zeros((n, r))
                E[cols, range(r)] = 1.0
                moments = moments + E @ M2 @ E.T
                firsts = firsts + E @ x
        link = B[np.ix_(blk, blk)] == moments
        links.append((blk, link))
        constraints += [cp.sum(cp.hstack(weights)) <= 1, w[blk] == firsts, link]
    model = cp.Problem(cp.Minimize(objective), constraints)
    model.solve(solver="CLARABEL")
    if model.status != cp.OPTIMAL:
        raise SolverError(f"block-hull SDP: CLARABEL ends {model.status}")
    Q = np.zeros((d, d))
    for blk, link in links:
        # the multiplier of B_BB = sum_S M_S is -P_B / 2 (P_B = Q_B + 2 ridge I)
        P = -np.asarray(link.dual_value) - np.asarray(link.dual_value).T
        Q[np.ix_(blk, blk)] = P - 2.0 * ridge * np.eye(len(blk))
    return mix_safe(G, Q, margin)
