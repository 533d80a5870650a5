"""Subset search: the exact search of ``bnb`` for budgeted instances whose relaxation is weak.

When a budget ``k`` binds and the ridge is small next to the loss (the case of channel
selection on recorded activations: ``lam`` a tiny share of the feature scale, ``k`` half the
channels), every convex relaxation of the indicators is nearly the unpruned fit: the perspective
term costs almost nothing at fractional ``z``, and no diagonal shift helps when channels are
nearly redundant. The difficulty is then combinatorial, and the bound that works is the one of
*leaps and bounds* (Furnival and Wilson, Technometrics 16, 1974): dropping groups never lowers
the loss.

**Search.** Depth-first over the groups in a fixed order (cheapest to remove first); at each
node every group before the position is decided (*in* or *out*), the universe ``U`` is every
group not out, ``I`` the groups in. Its completions ``S`` satisfy ``I <= S <= U``,
``|S| <= k``. With ``f(S) = min_W 1/2 ||Y - X_S W||^2 + lam alpha ||W||^2`` (no box: a
relaxation),

.. math::

    f(S) + \\lambda(1-\\alpha)|S| \\;\\ge\\; f(U) + L_r(U) + \\lambda(1-\\alpha)|I|,

where ``r = |U| - k`` groups must still go and ``L_r`` bounds the cost of removing ``r`` of the
undecided groups (:func:`_removal_bound`): ``f`` is monotone, so a removal set costs at least
what its costliest member costs alone (the ``r``-th smallest single cost), and any dual
point ``Z`` of ``W_D^T H_DD^{-1} W_D / 2`` bounds it through the signed pairwise couplings of
the groups under ``Z``, using that exactly ``r`` go. The dual point is not tied to the groups'
own directions: it is improved by ascent steps on the bound at the root and carried down the
search (each node starts from the better of its parent's point and the groups' own directions,
and runs up to :data:`NODE_STEPS` steps, stopping once it is pruned). On the CNN's second
layer at the root: 147 for the single costs, 1 731 with the groups' own directions, 2 058 after
the root's ascent, against a best removal cost of 2 940. ``f(U)``, the fit and
the removal costs come from the inverse ``H = (X_U^T X_U + 2 lam alpha I)^{-1}``, which a
removal downdates in ``O(|U|^2 n_g)`` (``c_g = W_g^T H_gg^{-1} W_g / 2``); it is recomputed from
scratch every :data:`REFRESH` removals. Leaves (every group decided) are scored exactly with the
box by :class:`~proxcompress.formulations.restricted.SupportSolver`. A node is pruned when its
bound reaches the incumbent less a relative margin of ``1e-9`` (round-off in the downdates).

Where the search is unfinished after :data:`ROOT_SHOR_AFTER` of its time, the root's removal
cost is bounded once more by :func:`shor_removal_bound` (the Shor relaxation of the Boolean
quadratic, by its eigenvalue dual), which every open and later node inherits; after
:data:`OPEN_SHOR_AFTER` of its time, each open node on the stack gets its own Shor bound
(:meth:`SubsetSearch.strengthen_open`: the node's removal quadratic over its undecided groups
is again a Boolean quadratic with a cardinality row, and the root's multipliers restricted to
it are a valid warm start): the certificate where the search does not finish. Shor bounds at
the nodes during the search (:data:`NODE_SHOR_GAP`) are opt-in: they prune most of the nodes
they are tried on but each costs the time of tens of row-wise nodes (docs/decisions.md).

The search is resumable: it runs :data:`CHUNK` nodes per call, so the clock is read between
calls, and on the limit the open nodes' smallest bound is the certificate.
"""

from __future__ import annotations

import heapq
import time
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from proxcompress.formulations.heuristics import Incumbent
from proxcompress.formulations.problem import LayerPruningProblem
from proxcompress.numba_cache import njit

FloatArray = NDArray[np.float64]

#: most nodes per call of the compiled search (the clock is read between calls)
CHUNK = 2000
#: seconds a call of the compiled search may take at the measured node rate
SLICE = 0.1
#: removals between two recomputations of the inverse from scratch
REFRESH = 8
#: relative margin of the pruning test (round-off of the downdated inverse)
MARGIN = 1e-9
#: ascent steps on the removal bound's dual point at the root, and at every node
ROOT_STEPS = 50
NODE_STEPS = 8
#: golden-section steps of the scale of the dual point
GOLDEN = 25

NEW, OUT_NEXT, IN_NEXT, DONE, SHOR_WAIT = 0, 1, 2, 3, 4


@njit(cache=True)
def _inverse_state(
    gram: FloatArray, xty: FloatArray, yy: float, alive: NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray, float]:
    """``H = (gram_UU)^{-1}`` embedded in ``d x d`` (zero outside ``U``), the fit ``W = H B`` and
    ``f(U) = (yy - <B_U, W_U>) / 2``."""
    d = gram.shape[0]
    m = xty.shape[1]
    idx = np.flatnonzero(alive)
    H = np.zeros((d, d))
    W = np.zeros((d, m))
    if idx.size == 0:
        return H, W, 0.5 * yy
    sub = np.empty((idx.size, idx.size))
    rhs = np.empty((idx.size, m))
    for a in range(idx.size):
        rhs[a] = xty[idx[a]]
        for c in range(idx.size):
            sub[a, c] = gram[idx[a], idx[c]]
    inv = np.linalg.inv(sub)
    fit_rows = inv @ rhs  # one matrix product (the refresh runs every REFRESH removals)
    fit = 0.0
    for a in range(idx.size):
        W[idx[a]] = fit_rows[a]
        for j in range(m):
            fit += rhs[a, j] * fit_rows[a, j]
        for c in range(idx.size):
            H[idx[a], idx[c]] = inv[a, c]
    return H, W, 0.5 * (yy - fit)


@njit(cache=True)
def _removal_cost(H: FloatArray, W: FloatArray, s: int, e: int) -> float:
    """``W_g^T H_gg^{-1} W_g / 2``: what removing the group with rows ``s:e`` costs."""
    block = H[s:e, s:e].copy()
    rhs = W[s:e].copy()
    sol = np.linalg.solve(block, rhs)
    total = 0.0
    for i in range(e - s):
        for j in range(W.shape[1]):
            total += rhs[i, j] * sol[i, j]
    return 0.5 * total


@njit(cache=True)
def _gather(
    H: FloatArray, W: FloatArray, starts: NDArray[np.int64], undecided: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.int64], FloatArray, FloatArray]:
    """The rows of the ``undecided`` groups (in their order), each row's position in
    ``undecided``, and ``H`` and ``W`` restricted to those rows."""
    count = undecided.shape[0]
    total = 0
    for q in range(count):
        total += starts[undecided[q] + 1] - starts[undecided[q]]
    rows = np.empty(total, dtype=np.int64)
    owner = np.empty(total, dtype=np.int64)
    at = 0
    for q in range(count):
        for i in range(starts[undecided[q]], starts[undecided[q] + 1]):
            rows[at] = i
            owner[at] = q
            at += 1
    Hd = np.empty((total, total))
    Wd = np.empty((total, W.shape[1]))
    for a in range(total):
        Wd[a] = W[rows[a]]
        for c in range(total):
            Hd[a, c] = H[rows[a], rows[c]]
    return rows, owner, Hd, Wd


@njit(cache=True)
def _single_costs(
    H: FloatArray, W: FloatArray, starts: NDArray[np.int64], undecided: NDArray[np.int64],
) -> tuple[FloatArray, FloatArray]:
    """Each undecided group's removal cost ``e_g`` and its own dual direction
    ``y_g = H_gg^{-1} W_g`` (rows of the whole space, zero elsewhere)."""
    e = np.empty(undecided.shape[0])
    Y = np.zeros(W.shape)
    for q in range(undecided.shape[0]):
        g = undecided[q]
        s, t = starts[g], starts[g + 1]
        y = np.linalg.solve(H[s:t, s:t].copy(), W[s:t].copy())
        Y[s:t] = y
        e[q] = 0.5 * np.sum(W[s:t] * y)
    return e, Y


@njit(cache=True)
def _block_starts(owner: NDArray[np.int64], count: int) -> NDArray[np.int64]:
    """Where each group's rows start in the gathered rows (``owner`` is non-decreasing: the
    groups' rows are contiguous, :func:`_gather`), and their end at ``[count]``."""
    starts = np.zeros(count + 1, dtype=np.int64)
    for i in range(owner.shape[0]):
        starts[owner[i] + 1] = i + 1
    return starts


@njit(cache=True)
def _pieces(
    Hd: FloatArray, Wd: FloatArray, Zd: FloatArray, owner: NDArray[np.int64], count: int,
) -> tuple[FloatArray, FloatArray]:
    """``a_g = <W_g, Z_g>`` and ``Q_gh = <Z_g, H_gh Z_h>`` (block sums of ``H .* Z Z^T``; ``Q``
    is symmetric, so each pair's block is summed once)."""
    K = Zd @ Zd.T
    bs = _block_starts(owner, count)
    Q = np.empty((count, count))
    a = np.zeros(count)
    for i in range(Hd.shape[0]):
        a[owner[i]] += np.dot(Wd[i], Zd[i])
    for qa in range(count):
        for qb in range(qa, count):
            total = 0.0
            for i in range(bs[qa], bs[qa + 1]):
                for j in range(bs[qb], bs[qb + 1]):
                    total += Hd[i, j] * K[i, j]
            Q[qa, qb] = total
            Q[qb, qa] = total
    return a, Q


@njit(cache=True)
def _row_totals(Q: FloatArray, r: int) -> tuple[FloatArray, FloatArray]:
    """Per group: ``q_gg`` plus its ``r - 1`` largest couplings with their signs (``beta``), and
    the same with the couplings clipped at zero."""
    count = Q.shape[0]
    beta = np.empty(count)
    clipped = np.empty(count)
    off = np.empty(count - 1)
    for q in range(count):
        c = 0
        for q2 in range(count):
            if q2 != q:
                off[c] = Q[q, q2]
                c += 1
        off.sort()
        beta[q] = Q[q, q]
        clipped[q] = Q[q, q]
        for c in range(count - r, count - 1):
            beta[q] += off[c]
            clipped[q] += max(off[c], 0.0)
    return beta, clipped


@njit(cache=True)
def _partners(Q: FloatArray, r: int) -> NDArray[np.int64]:
    """The ``r - 1`` partners with the largest couplings of each group (``count x (r - 1)``),
    those of :func:`_row_totals`."""
    count = Q.shape[0]
    partners = np.zeros((count, r - 1), dtype=np.int64)
    off = np.empty(count)
    for q in range(count):
        for q2 in range(count):
            off[q2] = Q[q, q2] if q2 != q else -np.inf
        partners[q] = np.argsort(-off)[: r - 1]
    return partners


@njit(cache=True)
def _scaled_dual(a: FloatArray, beta: FloatArray, r: int, s: float) -> float:
    """``sum of the r smallest (s a_g - s^2 beta_g / 2)``: the dual point ``s Z`` of
    :func:`_removal_bound` with each row's couplings replaced by its ``r - 1`` largest."""
    return np.sort(s * a - 0.5 * s * s * beta)[:r].sum()


@njit(cache=True)
def _dual_bound(a: FloatArray, Q: FloatArray, r: int) -> tuple[float, float]:
    """The best ``_scaled_dual`` over ``s`` (golden section on ``[0, 3]``, and the clipped ratio
    ``s = A / B`` of the first version of the bound) and the ``s`` that gives it."""
    beta, clipped = _row_totals(Q, r)
    best, best_s = 0.0, 0.0
    top_a = np.sort(a)[:r].sum()
    top_b = np.sort(clipped)[::-1][:r].sum()
    if top_b > 0.0 and top_a > 0.0:
        value = _scaled_dual(a, beta, r, top_a / top_b)
        if value > best:
            best, best_s = value, top_a / top_b
    # concave in s where every row total is positive; any s is valid, so a non-concave case
    # only loses tightness
    lo, hi = 0.0, 3.0
    ratio = 0.5 * (np.sqrt(5.0) - 1.0)
    x1 = hi - ratio * (hi - lo)
    x2 = lo + ratio * (hi - lo)
    f1 = _scaled_dual(a, beta, r, x1)
    f2 = _scaled_dual(a, beta, r, x2)
    for _ in range(GOLDEN):
        if f1 < f2:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + ratio * (hi - lo)
            f2 = _scaled_dual(a, beta, r, x2)
        else:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - ratio * (hi - lo)
            f1 = _scaled_dual(a, beta, r, x1)
    for s, value in ((x1, f1), (x2, f2), (1.0, _scaled_dual(a, beta, r, 1.0))):
        if value > best:
            best, best_s = value, s
    return best, best_s


@njit(cache=True)
def _ascent_step(
    Hd: FloatArray, Wd: FloatArray, Zd: FloatArray, owner: NDArray[np.int64], a: FloatArray,
    Q: FloatArray, r: int,
) -> FloatArray:
    """The next dual point: with the removal set ``R`` (the ``r`` smallest rows) and the partners
    of the bound at ``Zd`` fixed, the bound is the concave quadratic ``<W .* 1_R, Z> - Z^T M Z
    / 2`` (``M`` = ``H`` masked to the chosen pairs, symmetrised); one exact line search along
    its gradient."""
    count = Q.shape[0]
    beta, _ = _row_totals(Q, r)
    partners = _partners(Q, r)
    chosen = np.argsort(a - 0.5 * beta)[:r]
    select = np.zeros((count, count))
    for q in chosen:
        select[q, q] = 1.0
        for c in range(partners.shape[1]):
            select[q, partners[q, c]] = 1.0
    # M in single precision: the step only proposes the next point, whose bound is then
    # evaluated in double precision (:func:`_pieces`), so any point is valid; the two products
    # are the step's largest cost (docs/decisions.md, issue 14, sixteenth stop)
    n = Hd.shape[0]
    bs = _block_starts(owner, count)
    M = np.zeros((n, n), dtype=np.float32)
    for qa in range(count):
        for qb in range(count):
            weight = 0.5 * (select[qa, qb] + select[qb, qa])
            if weight > 0.0:
                for i in range(bs[qa], bs[qa + 1]):
                    for j in range(bs[qb], bs[qb + 1]):
                        M[i, j] = weight * Hd[i, j]
    grad = -(M @ Zd.astype(np.float32)).astype(np.float64)
    for i in range(n):
        if select[owner[i], owner[i]] > 0.0:
            grad[i] += Wd[i]
    slope = np.sum(grad * grad)
    curve = np.sum(grad * (M @ grad.astype(np.float32)).astype(np.float64))
    if slope <= 0.0:
        return Zd
    step = slope / curve if curve > 1e-12 * slope else 1.0
    return Zd + step * grad


@njit(cache=True)
def _ascend(
    Hd: FloatArray, Wd: FloatArray, Zd: FloatArray, owner: NDArray[np.int64], a: FloatArray,
    Q: FloatArray, r: int, steps: int, target: float,
) -> tuple[float, FloatArray, FloatArray, FloatArray]:
    """The dual bound at ``Zd`` and after up to ``steps`` ascent steps (an improving step is
    kept, scaled by its best ``s``; a failing one is retried at a quarter of its length once;
    stops once the bound reaches ``target``); ``a`` and ``Q`` are those of ``Zd``. Returns the
    bound, the dual point and its ``a`` and ``Q``."""
    count = Q.shape[0]
    best, s = _dual_bound(a, Q, r)
    if s > 0.0 and s != 1.0:
        Zd = s * Zd
        a = s * a
        Q = (s * s) * Q
    for _ in range(steps):
        if best >= target:
            break
        trial = _ascent_step(Hd, Wd, Zd, owner, a, Q, r)
        kept = False
        for _retry in range(2):
            ta, tQ = _pieces(Hd, Wd, trial, owner, count)
            value, ts = _dual_bound(ta, tQ, r)
            if value > best:
                best = value
                Zd = ts * trial
                a = ts * ta
                Q = (ts * ts) * tQ
                kept = True
                break
            trial = Zd + 0.25 * (trial - Zd)
        if not kept:
            break
    return best, Zd, a, Q


@njit(cache=True)
def _removal_bound(
    H: FloatArray, W: FloatArray, starts: NDArray[np.int64], undecided: NDArray[np.int64],
    r: int, Z: FloatArray, steps: int, target: float,
) -> float:
    """A lower bound on the cost of removing ``r`` of the ``undecided`` groups from ``U``; the
    dual point ``Z`` (rows of the undecided groups) is improved in place by up to ``steps``
    ascent steps, stopping once the bound reaches ``target``.

    Any removal set ``D`` costs ``W_D^T (H_DD)^{-1} W_D / 2 = max_Z <W_D, Z_D> - <Z_D, H_DD
    Z_D> / 2``, so for ANY fixed ``Z``, with ``a_g = <W_g, Z_g>`` and ``q_gh = <Z_g, H_gh Z_h>``,
    ``cost(D) >= sum_{g in D} (a_g - 1/2 sum_{h in D} q_gh)``. The loss is monotone, so a
    completion removing more than ``r`` costs at least one removing exactly ``r``: ``|D| = r``,
    and each row ``g`` has exactly ``r - 1`` partners in ``D``, so its couplings sum to at most
    its ``r - 1`` largest ``q_gh`` *with their signs* (channels whose coefficients compensate
    each other have negative couplings, the super-additive case); hence ``cost(D) >= sum of the
    r smallest (a_g - beta_g / 2)``, ``beta_g = q_gg + (r - 1 largest q_gh)``, at every scale
    ``s Z`` (golden section over ``s``). Also, ``cost(D)`` is at least the cost of removing any
    one member: the ``r``-th smallest single cost ``e_g``. The larger of the two.

    ``Z`` starts at the groups' own directions ``y_g = H_gg^{-1} W_g`` (root) or the parent's
    point (children); with per-group directions the bound is capped near 65% of the optimum on
    the CNN's second layer (the exact ``min_D max_s`` of that family), so ``Z`` is moved by
    ascent steps on the bound itself (:func:`_ascent_step`): on that layer's root 1 731 ->
    2 058 after 50 steps (best removal cost 2 940). Every iterate is a valid bound.
    """
    G = starts.shape[0] - 1
    e_cache = np.zeros(G)
    a_cache = np.zeros(G)
    Q_cache = np.zeros((G, G))
    return _node_bound(H, W, starts, undecided, r, Z, steps, target, e_cache, a_cache, Q_cache,
                       False)


#: Adam iterations, step and smoothing of the eigenvalue dual of :func:`shor_removal_bound`
SHOR_ITERS = 3000
SHOR_LR = 1.0
#: the soft-min temperature starts at this share of ``max |Q|`` and shrinks by ``SHOR_COOL``
#: every ``SHOR_EVERY`` iterations
SHOR_TAU = 0.01
SHOR_COOL = 0.7
SHOR_EVERY = 200
#: the step rule of :func:`shor_bound`: ``"scaled"`` (the default since issue 14's eleventh
#: stop) steps the multipliers by ``lr * SHOR_MULT_SHARE * max |Q|`` (they are in the units of
#: ``Q``; Adam's steps are absolute) and the dual point ``Z`` by ``lr``, cooling the soft-min
#: every ``SHOR_SCALED_EVERY`` iterations; ``"adam"`` steps every variable by ``lr`` and cools
#: every ``SHOR_EVERY`` (the rule before). On the CNN's 16-of-32 roots, 1 000 iterations of
#: ``"scaled"`` pass 3 000 of ``"adam"`` (docs/benchmarks.md)
SHOR_RULE = "scaled"
SHOR_RULES = ("scaled", "adam")
SHOR_MULT_SHARE = 0.003
SHOR_SCALED_EVERY = 100
#: the step rule of the certificate tree's Shor bounds (:meth:`SubsetSearch.certificate_tree`):
#: ``"adam"``, since on the CNN's 32-of-64 layer (where the tree runs) the search with
#: ``"scaled"`` there ended 0.2-1.1 points of gap behind in a same-run A/B, and the ``"scaled"``
#: root bound stops rising after ~1 000 iterations while ``"adam"``'s still rises at 3 000
TREE_SHOR_RULE = "adam"
#: the search's certificate: once ``ROOT_SHOR_AFTER`` of its time is spent unfinished, and the
#: row-wise root gap against the incumbent exceeds ``ROOT_SHOR_GAP``, at most
#: ``ROOT_SHOR_ITERS`` Shor iterations at the root within ``ROOT_SHOR_SHARE`` of the time left
ROOT_SHOR_ITERS = 1000
ROOT_SHOR_GAP = 0.2
ROOT_SHOR_AFTER = 0.5
ROOT_SHOR_SHARE = 0.5
#: the open nodes' own Shor bounds (:meth:`SubsetSearch.strengthen_open`), once the root's is
#: known and ``OPEN_SHOR_AFTER`` of the search's time is spent unfinished (and its progress
#: says it would not finish in time): at most
#: ``NODE_SHOR_ITERS`` iterations each, from the root's multipliers restricted to the
#: node, at step ``NODE_SHOR_LR`` and starting temperature ``NODE_SHOR_TAU``, within
#: ``OPEN_SHOR_SHARE`` of the time left
NODE_SHOR_ITERS = 150
NODE_SHOR_LR = 0.5
NODE_SHOR_TAU = 0.001
OPEN_SHOR_SHARE = 1.0
OPEN_SHOR_AFTER = 0.8
#: a node's rounds stop once one raises its own bound by at most this share
OPEN_SHOR_STALL = 1e-4
#: the open phase runs only where the search's progress is below this share of its time spent
#: (:meth:`SubsetSearch.progress` lags the nodes done: 0.56 at 81% of a 16-of-32 search's
#: nodes; a 32-of-64 search's is below 1e-6 after 5 000 nodes)
OPEN_SHOR_PACE = 0.5
#: the certificate tree (:meth:`SubsetSearch.certificate_tree`): where the search is unfinished
#: after ``TREE_AFTER`` of its time and its progress is below ``TREE_PACE`` (hopeless at its
#: pace: a 32-of-64 search's is below 1e-6, a 16-of-32 search finishing late is past 0.2 there),
#: a best-first tree of Shor bounds takes the rest of the time; its root gets at most
#: ``TREE_ROOT_ITERS`` iterations (the root's Shor bound of the CNN's third layer stops rising
#: after about 1 500), every other node ``TREE_NODE_ITERS`` from its parent's multipliers (on
#: that layer, by CPU time, 60 beat 150 and 300: gap 9.72% after 13.0 s, 10.79% after 12.6 s,
#: 10.73% after 20.5 s)
TREE_AFTER = 0.5
TREE_PACE = 0.01
TREE_ROOT_ITERS = 1500
TREE_NODE_ITERS = 60
#: Shor bounds during the search (once the root's is known): at every node whose row-wise
#: bound covers at least ``1 - NODE_SHOR_GAP`` of its room to the incumbent without pruning it
#: (negative: never)
NODE_SHOR_GAP = -1.0


@njit(cache=True, fastmath=True)
def _shor_pieces(
    Hd: FloatArray, Wd: FloatArray, Zd: FloatArray, owner: NDArray[np.int64], count: int,
) -> tuple[FloatArray, FloatArray]:
    """:func:`_pieces` as single-threaded loops (a multithreaded BLAS product this small spins
    on a shared machine: 15x slower measured), each row's inner products with every row first
    (contiguous, vectorised: the sums reassociated, round-off of the same order), then summed by
    group (the rows of a group are consecutive)."""
    n, m = Zd.shape
    Q = np.zeros((count, count))
    a = np.zeros(count)
    ZT = np.ascontiguousarray(Zd.T)
    inner = np.empty(n)
    for i in range(n):
        oi = owner[i]
        for j in range(m):
            a[oi] += Wd[i, j] * Zd[i, j]
        inner[:] = 0.0
        for j in range(m):
            z = Zd[i, j]
            for c in range(n):
                inner[c] += z * ZT[j, c]
        c = 0
        while c < n:
            h = owner[c]
            total = 0.0
            while c < n and owner[c] == h:
                total += Hd[i, c] * inner[c]
                c += 1
            Q[oi, h] += total
    return a, Q


@njit(cache=True, fastmath=True)
def _shor_gradient(
    Hd: FloatArray, Wd: FloatArray, Zd: FloatArray, owner: NDArray[np.int64], x: FloatArray,
    X: FloatArray,
) -> FloatArray:
    """``x~ .* W - (H .* X~) Z``, the gradient in ``Z`` (``X~`` is ``X`` expanded to rows), a row
    of ``H .* X~`` at a time against the columns of ``Z`` (contiguous, vectorised)."""
    n, m = Zd.shape
    grad = np.empty((n, m))
    ZT = np.ascontiguousarray(Zd.T)
    row = np.empty(n)
    for i in range(n):
        oi = owner[i]
        for c in range(n):
            row[c] = Hd[i, c] * X[oi, owner[c]]
        for j in range(m):
            total = 0.0
            for c in range(n):
                total += row[c] * ZT[j, c]
            grad[i, j] = x[oi] * Wd[i, j] - total
    return grad


def _shor_value(
    a: FloatArray, Q: FloatArray, r: int, mult: list[FloatArray], tau: float,
) -> tuple[float, float, FloatArray]:
    """The Lagrangian dual of the Shor relaxation at the multipliers ``mult`` (``mu0, delta,
    rho, sigma, eta, kappa, theta``; the last three nonnegative with a zero diagonal): the
    exact value ``const + (1 + r) lambda_min(C)``, its soft-min smoothing at temperature
    ``tau`` (a lower bound of it) and the smoothed value's gradient in ``C`` (``(1 + r)`` times
    the soft-min's weighted projector: the primal moment matrix estimate)."""
    mu0, delta, rho, sigma, eta, kappa, theta = mult
    G = a.shape[0]
    pair = theta + theta.T
    cx = a - delta - r * rho + sigma[0] - kappa.sum(1) + pair.sum(1)
    C = np.empty((G + 1, G + 1))
    C[0, 0] = mu0[0]
    C[0, 1:] = C[1:, 0] = 0.5 * cx
    C[1:, 1:] = (-0.5 * Q + 0.5 * (rho[:, None] + rho[None, :])
                 + 0.5 * (kappa + kappa.T - eta - eta.T - pair))
    C[1:, 1:][np.diag_indices(G)] += delta
    const = -mu0[0] - sigma[0] * r - theta.sum()
    lam, V = np.linalg.eigh(C)
    # round-off of the eigenvalue (and of C itself) may not raise the bound
    exact = const + (1 + r) * (lam[0] - 1e-12 * (G + 1) * np.abs(C).max())
    if tau <= 0.0:
        return exact, exact, (1 + r) * np.outer(V[:, 0], V[:, 0])
    shifted = -(lam - lam[0]) / tau
    weights = np.exp(shifted)
    total = weights.sum()
    smooth = const + (1 + r) * (lam[0] - tau * np.log(total))
    return exact, smooth, (1 + r) * (V * (weights / total)) @ V.T


class ShorBound(NamedTuple):
    """What :func:`shor_bound` returns: the bound, the best dual point (rows of the whole space,
    zero outside the undecided groups) and the multipliers that gave it (by position in the
    undecided groups: ``mu0, delta, rho, sigma, eta, kappa, theta``)."""

    value: float
    Z: FloatArray
    mult: list[FloatArray]


def zero_multipliers(count: int) -> list[FloatArray]:
    """The Shor dual's multipliers at zero for ``count`` undecided groups."""
    return [np.zeros(1), np.zeros(count), np.zeros(count), np.zeros(1),
            np.zeros((count, count)), np.zeros((count, count)), np.zeros((count, count))]


def restrict_multipliers(mult: list[FloatArray], keep: NDArray[np.int64]) -> list[FloatArray]:
    """Multipliers of a problem over some groups restricted to the groups at positions ``keep``
    (a node's undecided groups): any multipliers give a valid bound, so those of an ancestor are
    a warm start for its descendants (copies)."""
    mu0, delta, rho, sigma, eta, kappa, theta = mult
    block = np.ix_(keep, keep)
    return [mu0.copy(), delta[keep].copy(), rho[keep].copy(), sigma.copy(),
            eta[block].copy(), kappa[block].copy(), theta[block].copy()]


def shor_bound(
    H: FloatArray, W: FloatArray, starts: NDArray[np.int64], undecided: NDArray[np.int64],
    r: int, Z: FloatArray, iters: int = SHOR_ITERS, lr: float = SHOR_LR,
    deadline: float = np.inf, mult: list[FloatArray] | None = None, target: float = np.inf,
    tau: float = SHOR_TAU, rule: str | None = None,
) -> ShorBound:
    """:func:`shor_removal_bound` from given multipliers ``mult`` (zero when ``None``; a node
    starts from its ancestor's, :func:`restrict_multipliers`), stopping early once the bound
    reaches ``target`` (the node is pruned) or at ``deadline``; ``tau`` is the soft-min's
    starting temperature as a share of ``max |Q|``; ``rule`` the step rule (``None``:
    :data:`SHOR_RULE`; one of :data:`SHOR_RULES`). Every rule evaluates the same dual at its
    iterates, so every returned value is a valid bound. Returns the multipliers as well."""
    rule = SHOR_RULE if rule is None else rule
    if rule not in SHOR_RULES:
        raise ValueError(f"rule: {rule!r}; accepted: one of {', '.join(SHOR_RULES)}")
    rows, owner, Hd, Wd = _gather(H, W, starts, undecided)
    G = undecided.shape[0]
    Zd = np.ascontiguousarray(Z[rows])
    mult = zero_multipliers(G) if mult is None else [v.copy() for v in mult]
    params = [Zd, *mult]
    first = [np.zeros_like(v) for v in params]
    second = [np.zeros_like(v) for v in params]
    a, Q = _shor_pieces(Hd, Wd, Zd, owner, G)
    scale = max(float(np.abs(Q).max()), 1e-300)
    tau = tau * scale
    steps = [lr] * len(params)
    every = SHOR_EVERY
    if rule == "scaled":
        steps[1:] = [lr * SHOR_MULT_SHARE * scale] * len(mult)
        every = SHOR_SCALED_EVERY
    best, best_Z, best_mult = -np.inf, Zd.copy(), [v.copy() for v in mult]
    off = 1.0 - np.eye(G)
    for it in range(iters + 1):
        a, Q = _shor_pieces(Hd, Wd, Zd, owner, G)
        exact, _, Mh = _shor_value(a, Q, r, mult, tau if it < iters else 0.0)
        if exact > best:
            best, best_Z, best_mult = exact, Zd.copy(), [v.copy() for v in mult]
        if (it == iters or best >= target
                or (it % 20 == 19 and time.perf_counter() >= deadline)):
            break
        x, X = Mh[0, 1:], Mh[1:, 1:]
        grads = [_shor_gradient(Hd, Wd, Zd, owner, np.ascontiguousarray(x),
                                np.ascontiguousarray(X)),
                 np.array([Mh[0, 0] - 1.0]), np.diag(X) - x, X.sum(1) - r * x,
                 np.array([x.sum() - r]), -X * off, (X - x[:, None]) * off,
                 (x[:, None] + x[None, :] - 1.0 - X) * off]
        for v, grad, m1, m2, step in zip(params, grads, first, second, steps, strict=True):
            m1 *= 0.9
            m1 += 0.1 * grad
            m2 *= 0.999
            m2 += 0.001 * grad * grad
            v += step * (m1 / (1 - 0.9 ** (it + 1))) / (
                np.sqrt(m2 / (1 - 0.999 ** (it + 1))) + 1e-8)
        for v in mult[4:]:
            np.maximum(v, 0.0, out=v)
            v *= off
        if (it + 1) % every == 0:
            tau *= SHOR_COOL
    out = np.zeros_like(W)
    out[rows] = best_Z
    return ShorBound(max(best, 0.0), out, best_mult)


def shor_removal_bound(
    H: FloatArray, W: FloatArray, starts: NDArray[np.int64], undecided: NDArray[np.int64],
    r: int, Z: FloatArray, iters: int = SHOR_ITERS, lr: float = SHOR_LR,
    deadline: float = np.inf,
) -> tuple[float, FloatArray]:
    """A lower bound on the cost of removing ``r`` of the ``undecided`` groups (the quantity of
    :func:`_removal_bound`) from the Shor relaxation of the Boolean quadratic, optimised
    jointly over the dual point and the relaxation's multipliers; returns the bound and the
    best dual point (rows of the whole space, zero outside the undecided groups).

    For any dual point ``Z``, ``cost(D) >= a^T x - x^T Q x / 2`` with ``x`` the indicator of
    ``D`` (``a_g = <W_g, Z_g>``, ``q_gh = <Z_g, H_gh Z_h>``, as in :func:`_removal_bound`). Lift
    ``M = [[1, x^T], [x, X]] >= 0`` with ``tr M = 1 + r`` and dualise ``M_00 = 1``,
    ``diag X = x``, ``X 1 = r x``, ``1^T x = r``, ``0 <= X_gh``, ``X_gh <= x_g`` and ``X_gh >=
    x_g + x_h - 1``: for any multipliers (signed ones nonnegative) the minimum of the
    Lagrangian over that spectraplex is ``const + (1 + r) lambda_min(C)``, a lower bound at
    every iterate. Unlike the row-wise bound, the value is jointly concave in ``Z`` and the
    multipliers (``<Q(Z), X>`` is convex in ``Z`` for ``X >= 0``), so the ascent (Adam on a
    soft-min smoothing, which is itself a lower bound; the exact value is kept) has no local
    optima to stall in. Measured at the root of the results CNN's third layer (32 of 64,
    seed 0): 1 666 for the row-wise bound after its 50 ascent steps; this one 2 200 after
    3 000 iterations at step 0.2, 2 144 after 600 at step 1.0 (docs/decisions.md); the step
    rule is :data:`SHOR_RULE` (since the eleventh stop the multipliers step in the units of
    ``Q``: on the CNN's 16-of-32 roots 1 000 iterations pass 3 000 of the rule before). Stops
    early at ``deadline`` (the clock is read every 20 iterations).
    """
    found = shor_bound(H, W, starts, undecided, r, Z, iters, lr, deadline)
    return found.value, found.Z


@njit(cache=True)
def _node_bound(
    H: FloatArray, W: FloatArray, starts: NDArray[np.int64], undecided: NDArray[np.int64],
    r: int, Z: FloatArray, steps: int, target: float, e_cache: FloatArray, a_cache: FloatArray,
    Q_cache: FloatArray, cached: bool,
) -> float:
    """:func:`_removal_bound` with the level's cache (by group id) of the single costs and of
    ``a`` and ``Q`` at the level's dual point ``Z``: an in-child (same universe, fewer
    undecided groups) starts from its parent's pieces instead of recomputing them and the
    groups' own directions."""
    count = undecided.shape[0]
    if cached:
        e = np.empty(count)
        a = np.empty(count)
        Q = np.empty((count, count))
        for q in range(count):
            e[q] = e_cache[undecided[q]]
            a[q] = a_cache[undecided[q]]
            for c in range(count):
                Q[q, c] = Q_cache[undecided[q], undecided[c]]
        single = np.sort(e)[r - 1]
        if r == 1:
            return max(single, 0.0)
        best, _ = _dual_bound(a, Q, r)
        if best >= target or steps == 0:
            return max(single, best, 0.0)
        rows, owner, Hd, Wd = _gather(H, W, starts, undecided)
        Zd = np.empty((rows.shape[0], W.shape[1]))
        for i in range(rows.shape[0]):
            Zd[i] = Z[rows[i]]
    else:
        e, Y = _single_costs(H, W, starts, undecided)
        for q in range(count):
            e_cache[undecided[q]] = e[q]
        single = np.sort(e)[r - 1]
        if r == 1:
            return max(single, 0.0)  # exact: the cheapest single removal
        rows, owner, Hd, Wd = _gather(H, W, starts, undecided)
        Zd = np.empty((rows.shape[0], W.shape[1]))
        Yd = np.empty((rows.shape[0], W.shape[1]))
        for i in range(rows.shape[0]):
            Zd[i] = Z[rows[i]]
            Yd[i] = Y[rows[i]]
        # the inherited point or the groups' own directions at this universe, whichever is
        # better, then the ascent (unless the node is already pruned)
        a, Q = _pieces(Hd, Wd, Zd, owner, count)
        best, Zd, a, Q = _ascend(Hd, Wd, Zd, owner, a, Q, r, 0, target)
        ya, yQ = _pieces(Hd, Wd, Yd, owner, count)
        fresh, Yd, ya, yQ = _ascend(Hd, Wd, Yd, owner, ya, yQ, r, 0, target)
        if fresh > best:
            best, Zd, a, Q = fresh, Yd, ya, yQ
    if best < target and steps > 0:
        best, Zd, a, Q = _ascend(Hd, Wd, Zd, owner, a, Q, r, steps, target)
    for i in range(rows.shape[0]):
        Z[rows[i]] = Zd[i]
    for q in range(count):
        a_cache[undecided[q]] = a[q]
        for c in range(count):
            Q_cache[undecided[q], undecided[c]] = Q[q, c]
    return max(single, best, 0.0)


@njit(cache=True)
def _remove(
    H: FloatArray, W: FloatArray, alive: NDArray[np.bool_], s: int, e: int,
    H_out: FloatArray, W_out: FloatArray,
) -> float:
    """Downdate ``(H, W)`` by removing rows ``s:e`` into ``(H_out, W_out)``; returns the cost."""
    block = H[s:e, s:e].copy()
    inv_block = np.linalg.inv(block)
    n_g = e - s
    m = W.shape[1]
    # coupling = H_{:,g} inv_block (zero outside U, as H is), then the rank-n_g downdates as
    # matrix products over the whole space (rows and columns outside U stay zero)
    coupling = np.ascontiguousarray(H[:, s:e]) @ inv_block
    H_out[:, :] = H - coupling @ np.ascontiguousarray(H[s:e, :])
    W_out[:, :] = W - coupling @ np.ascontiguousarray(W[s:e, :])
    H_out[s:e, :] = 0.0
    H_out[:, s:e] = 0.0
    W_out[s:e, :] = 0.0
    cost = 0.0
    for q in range(n_g):
        for j in range(m):
            inner = 0.0
            for c in range(n_g):
                inner += inv_block[q, c] * W[s + c, j]
            cost += W[s + q, j] * inner
    return 0.5 * cost


@njit(cache=True)
def _margin(value: float) -> float:
    return MARGIN * max(abs(value), 1e-10)


@njit(cache=True)
def _search(
    gram: FloatArray, xty: FloatArray, yy: float, starts: NDArray[np.int64],
    order: NDArray[np.int64], price: float, k: int, incumbent: float, max_nodes: int,
    H_stack: FloatArray, W_stack: FloatArray, alive_stack: NDArray[np.bool_],
    f_stack: FloatArray, bound_stack: FloatArray, pos_stack: NDArray[np.int64],
    nin_stack: NDArray[np.int64], state_stack: NDArray[np.int64], since_stack: NDArray[np.int64],
    level: int, leaf: NDArray[np.bool_], Z_stack: FloatArray, steps: int, e_stack: FloatArray,
    a_stack: FloatArray, Q_stack: FloatArray, cached: NDArray[np.bool_], shor_gap: float,
) -> tuple[int, int, int, float]:
    """Run the depth-first search from the stacked state for at most ``max_nodes`` nodes.

    Returns ``(level, nodes, event, value)``: ``event`` 0 = paused (node budget), 1 = finished,
    2 = a leaf whose no-box value ``value`` beats the incumbent (its groups in ``leaf``; the
    caller scores it exactly and resumes), 3 = a node at ``level`` (state ``SHOR_WAIT``) whose
    bound covers at least ``1 - shor_gap`` of its room to the incumbent without pruning it
    (``shor_gap < 0``: never): the caller may raise ``bound_stack[level]`` and resumes.
    """
    n_groups = order.shape[0]
    nodes = 0
    while level >= 0:
        state = state_stack[level]
        if state == NEW:
            if nodes >= max_nodes:
                return level, nodes, 0, 0.0
            nodes += 1
            alive = alive_stack[level]
            pos = pos_stack[level]
            nin = nin_stack[level]
            n_alive = 0
            for g in range(n_groups):
                if alive[starts[g]]:
                    n_alive += 1
            r = n_alive - k
            base = f_stack[level] + price * nin
            bound = base
            room = incumbent - _margin(incumbent) - base
            if r > n_groups - pos:
                level -= 1  # not enough undecided groups left to remove
                continue
            if r > 0:
                # the dual point of the level (inherited from the parent, improved here)
                bound += _node_bound(H_stack[level], W_stack[level], starts, order[pos:], r,
                                     Z_stack[level], steps, room, e_stack[level],
                                     a_stack[level], Q_stack[level], cached[level])
                cached[level] = True
            # the inherited bound (the parent's, or the root's Shor bound) holds for this
            # node's completions too
            bound = max(bound, bound_stack[level])
            bound_stack[level] = bound
            if bound >= incumbent - _margin(incumbent):
                level -= 1
                continue
            if r >= 2 and 0.0 <= shor_gap and bound - base >= (1.0 - shor_gap) * room:
                state_stack[level] = SHOR_WAIT
                return level, nodes, 3, bound
            if pos == n_groups:
                value = f_stack[level] + price * n_alive
                level -= 1
                if value < incumbent:
                    for g in range(n_groups):
                        leaf[g] = alive[starts[g]]
                    return level, nodes, 2, value
                continue
            state_stack[level] = OUT_NEXT
        elif state == SHOR_WAIT:
            # resumed after the caller's bound (r >= 2: undecided groups are left)
            if bound_stack[level] >= incumbent - _margin(incumbent):
                level -= 1
            else:
                state_stack[level] = OUT_NEXT
        elif state == OUT_NEXT:
            state_stack[level] = IN_NEXT
            g = order[pos_stack[level]]
            child = level + 1
            alive_stack[child, :] = alive_stack[level]
            for i in range(starts[g], starts[g + 1]):
                alive_stack[child, i] = False
            if since_stack[level] + 1 >= REFRESH:
                H, W, f = _inverse_state(gram, xty, yy, alive_stack[child])
                H_stack[child] = H
                W_stack[child] = W
                f_stack[child] = f
                since_stack[child] = 0
            else:
                cost = _remove(H_stack[level], W_stack[level], alive_stack[level], starts[g],
                               starts[g + 1], H_stack[child], W_stack[child])
                f_stack[child] = f_stack[level] + cost
                since_stack[child] = since_stack[level] + 1
            pos_stack[child] = pos_stack[level] + 1
            nin_stack[child] = nin_stack[level]
            bound_stack[child] = bound_stack[level]  # valid until the child's own is computed
            state_stack[child] = NEW
            Z_stack[child] = Z_stack[level]
            cached[child] = False
            level = child
        elif state == IN_NEXT:
            # the in-child replaces its parent (same universe, same inverse)
            if nin_stack[level] + 1 <= k:
                pos_stack[level] += 1
                nin_stack[level] += 1
                state_stack[level] = NEW
            else:
                level -= 1
        else:
            level -= 1
    return level, nodes, 1, 0.0


class SubsetSearch:
    """The resumable search of the module docstring over one instance."""

    def __init__(self, problem: LayerPruningProblem, incumbent: Incumbent) -> None:
        p = problem
        self.p = p
        self.incumbent = incumbent
        order_rows = np.argsort(p.groups, kind="stable")
        self.row_order = order_rows
        X = p.X[:, order_rows]
        sizes = np.bincount(p.groups, minlength=p.n_groups)
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        ridge = 2.0 * p.lam * p.alpha
        self.gram = np.ascontiguousarray(X.T @ X + ridge * np.eye(p.d))
        self.xty = np.ascontiguousarray(X.T @ p.Y)
        self.yy = float(np.sum(p.Y**2))
        self.price = p.lam * (1.0 - p.alpha)
        d, G = p.d, p.n_groups
        depth = G + 2
        self.H = np.zeros((depth, d, d))
        self.W = np.zeros((depth, d, p.m))
        self.alive = np.ones((depth, d), dtype=np.bool_)
        self.f = np.zeros(depth)
        self.bound = np.full(depth, -np.inf)
        self.pos = np.zeros(depth, dtype=np.int64)
        self.nin = np.zeros(depth, dtype=np.int64)
        self.state = np.full(depth, DONE, dtype=np.int64)
        self.since = np.zeros(depth, dtype=np.int64)
        H, W, f = _inverse_state(self.gram, self.xty, self.yy, self.alive[0])
        self.H[0], self.W[0], self.f[0] = H, W, f
        # cheapest to remove first: good leaves early, and out-children first
        costs = np.array([_removal_cost(H, W, s, e) for s, e in
                          zip(self.starts[:-1], self.starts[1:], strict=True)])
        self.order = np.argsort(costs, kind="stable").astype(np.int64)
        self.state[0] = NEW
        self.level = 0
        self.nodes = 0
        self.leaf = np.zeros(G, dtype=np.bool_)
        # per level: the dual point of the removal bound, from the groups' own directions
        # improved by ROOT_STEPS ascent steps at the root, then inherited and improved by
        # NODE_STEPS steps per node
        self.Z = np.zeros((depth, d, p.m))
        # per level, by group id: the single costs and the bound's pieces at the level's point,
        # which its in-children (same universe) start from
        self.e_cache = np.zeros((depth, G))
        self.a_cache = np.zeros((depth, G))
        self.Q_cache = np.zeros((depth, G, G))
        self.cached = np.zeros(depth, dtype=np.bool_)
        self.steps = NODE_STEPS
        every = np.arange(G, dtype=np.int64)
        self.Z[0] = _single_costs(H, W, self.starts, every)[1]
        r = G - p.budget
        self.root_removal = 0.0
        if r > 1:
            self.root_removal = _removal_bound(H, W, self.starts, every, r, self.Z[0],
                                               ROOT_STEPS, np.inf)
        self.shor_tried = False
        self.root_Z = self.Z[0].copy()
        self.root_shor: ShorBound | None = None
        # Shor bounds computed at open nodes (any route), asked for by the compiled search,
        # and those that pruned the node
        self.node_shor_calls = 0
        self.shor_events = 0
        self.shor_prunes = 0
        self.open_tried = False
        # the certificate tree's open nodes (a heap by bound; None: not started) and the
        # Shor bounds it computed
        self.tree: list[tuple[float, int, frozenset[int], frozenset[int], ShorBound | None,
                              NDArray[np.int64], FloatArray | None]] | None = None
        self.tree_evals = 0
        self.tree_pushes = 0

    def strengthen_root(self, deadline: float) -> None:
        """Where the row-wise root bound leaves a gap above :data:`ROOT_SHOR_GAP`: the root's
        bound from :func:`shor_removal_bound` (at most :data:`ROOT_SHOR_ITERS` iterations
        within :data:`ROOT_SHOR_SHARE` of the time left) raises the bound of every open node
        (each is the root's descendant) and is inherited by every later node: the search's
        certificate where it does not finish (the nodes it visits are the same unless the
        raised bounds reach the incumbent). Once per search."""
        if self.shor_tried:
            return
        self.shor_tried = True
        p = self.p
        r = p.n_groups - p.budget
        best = self.incumbent.value
        root = self.f[0] + self.root_removal
        if r <= 1 or not np.isfinite(best) or (best - root) <= ROOT_SHOR_GAP * abs(best):
            return
        now = time.perf_counter()
        stop = now + ROOT_SHOR_SHARE * (deadline - now) if np.isfinite(deadline) else np.inf
        every = np.arange(p.n_groups, dtype=np.int64)
        self.root_shor = shor_bound(self.H[0], self.W[0], self.starts, every, r, self.root_Z,
                                    ROOT_SHOR_ITERS, deadline=stop)
        for level in range(self.level + 1):
            if self.state[level] != DONE:
                self.bound[level] = max(self.bound[level], self.f[0] + self.root_shor.value)

    def pending(self, level: int) -> tuple[int, int] | None:
        """The open node that ``level`` of the stack stands for, as ``(pos, nin)`` (the groups
        ``order[:pos]`` decided, ``nin`` of them in, the universe ``alive[level]``): a node not
        yet expanded is itself; an expanded one (its out-child deeper on the stack) stands for
        its in-child, the only part of it left. ``None`` when that node has no completion."""
        state = self.state[level]
        if state == DONE:
            return None
        pos, nin = int(self.pos[level]), int(self.nin[level])
        if state == IN_NEXT:
            pos, nin = pos + 1, nin + 1  # NEW and SHOR_WAIT: the node itself
        elif state == OUT_NEXT:
            return None  # never left between calls of the compiled search
        alive = int(self.alive[level][self.starts[:-1]].sum())
        if nin > self.p.budget or alive - self.p.budget > self.p.n_groups - pos:
            return None
        return pos, nin

    def progress(self) -> float:
        """The share of the search done, by the weight ``2^-depth`` of the binary tree over the
        groups: one less the weights of the open nodes the stack stands for (a rough estimate:
        it ignores pruning and the budget)."""
        left = 0.0
        for level in range(self.level + 1):
            if self.state[level] != DONE:
                left += 0.5 ** (int(self.pos[level]) + (self.state[level] == IN_NEXT))
        return 1.0 - left

    def strengthen_open(self, deadline: float) -> None:
        """After :meth:`strengthen_root`: the open node of smallest bound on the stack bounded
        by its own :func:`shor_bound` (the first time from the root's multipliers and dual
        point restricted to its undecided groups, then from where its last round stopped; at
        most :data:`NODE_SHOR_ITERS` iterations a round, stopping once it is pruned), again and
        again until ``deadline`` or until that node's own bound stops rising; a level's raised
        bound is inherited by the node it stands for and its descendants (the certificate where
        the search does not finish: the search's depth-first stack keeps its shallow levels
        open to the end, so the smallest of them is the certificate)."""
        if self.root_shor is None:
            return
        rounds: dict[int, ShorBound] = {}
        final: set[int] = set()
        while time.perf_counter() < deadline:
            open_levels = [level for level in range(self.level + 1)
                           if self.state[level] != DONE]
            if not open_levels:
                return
            level = min(open_levels, key=lambda at: float(self.bound[at]))
            if level in final:
                return
            last = rounds.get(level)
            found = self._raise_by_shor(level, deadline, last)
            if found is None or (last is not None and found.value - last.value
                                 <= OPEN_SHOR_STALL * max(abs(last.value), 1e-12)):
                final.add(level)
            if found is not None:
                rounds[level] = found

    def _raise_by_shor(self, level: int, deadline: float,
                       start: ShorBound | None = None) -> ShorBound | None:
        """Raise the bound of the open node ``level`` stands for (:meth:`pending`) to its own
        :func:`shor_bound` (from ``start``, an earlier round on the same node, or else the
        root's multipliers and dual point restricted to it; at most :data:`NODE_SHOR_ITERS`
        iterations, stopping once it is pruned) and return that round; ``inf`` where it has no
        completion and the exact bound where at most one group must still go (``None``)."""
        root = self.root_shor
        assert root is not None
        node = self.pending(level)
        if node is None:
            self.bound[level] = np.inf
            return None
        pos, nin = node
        self.node_shor_calls += 1
        base = float(self.f[level]) + self.price * nin
        undecided = self.order[pos:]
        r = int(self.alive[level][self.starts[:-1]].sum()) - self.p.budget
        found = None
        if r <= 0:
            value = base
        elif r == 1:  # exact: the cheapest single removal
            value = base + _removal_bound(self.H[level], self.W[level], self.starts,
                                          undecided, 1, self.root_Z.copy(), 0, np.inf)
        else:
            room = self.incumbent.value - _margin(self.incumbent.value) - base
            Z, mult = ((root.Z, restrict_multipliers(root.mult, undecided)) if start is None
                       else (start.Z, start.mult))
            found = shor_bound(self.H[level], self.W[level], self.starts, undecided, r, Z,
                               NODE_SHOR_ITERS, NODE_SHOR_LR, deadline, mult, room,
                               NODE_SHOR_TAU)
            value = base + found.value
        self.bound[level] = max(self.bound[level], value)
        return found

    def _tree_node(
        self, out: frozenset[int], inn: frozenset[int], Z: FloatArray,
        mult: list[FloatArray] | None, iters: int, deadline: float,
    ) -> tuple[float, ShorBound | None, NDArray[np.int64], FloatArray | None]:
        """The bound of the node of the certificate tree with the groups ``out`` removed and
        ``inn`` kept (its Shor bound from ``mult``, the root's from zero multipliers when
        ``None``), the Shor round, its undecided groups and the relaxation's removal estimate
        ``x`` of each (``None`` where no Shor bound applies: at most one removal due, or none
        possible; a node with every group decided is scored exactly and offered)."""
        p = self.p
        alive = np.ones(p.d, dtype=np.bool_)
        for g in out:
            alive[self.starts[g]:self.starts[g + 1]] = False
        undecided = np.array([g for g in range(p.n_groups) if g not in out and g not in inn],
                             dtype=np.int64)
        r = p.n_groups - len(out) - p.budget
        if r > undecided.size or len(inn) > p.budget:
            return np.inf, None, undecided, None
        if undecided.size == 0:  # the one completion: the kept groups
            return self.incumbent.offer(tuple(sorted(inn))), None, undecided, None
        H, W, f = _inverse_state(self.gram, self.xty, self.yy, alive)
        base = f + self.price * len(inn)
        if r <= 0:
            return base, None, undecided, None
        if r == 1:  # exact (no box): the cheapest single removal
            return base + _removal_bound(H, W, self.starts, undecided, 1, Z.copy(), 0,
                                         np.inf), None, undecided, None
        room = self.incumbent.value - _margin(self.incumbent.value) - base
        if mult is None:
            found = shor_bound(H, W, self.starts, undecided, r, Z, iters, SHOR_LR, deadline,
                               None, room, SHOR_TAU, TREE_SHOR_RULE)
        else:
            found = shor_bound(H, W, self.starts, undecided, r, Z, iters, NODE_SHOR_LR,
                               deadline, mult, room, NODE_SHOR_TAU, TREE_SHOR_RULE)
        self.tree_evals += 1
        # the soft-min's moment estimate at the round's point: which groups the relaxation
        # removes
        rows, owner, Hd, Wd = _gather(H, W, self.starts, undecided)
        a, Q = _shor_pieces(Hd, Wd, np.ascontiguousarray(found.Z[rows]), owner,
                            undecided.size)
        tau = NODE_SHOR_TAU * max(float(np.abs(Q).max()), 1e-300)
        moments = _shor_value(a, Q, r, found.mult, tau)[2]
        x = moments[0, 1:] / max(float(moments[0, 0]), 1e-300)
        return base + found.value, found, undecided, x

    def certificate_tree(self, deadline: float, expansions: int | None = None) -> bool:
        """A best-first tree of Shor bounds over the whole instance, until ``deadline`` or until
        every node is closed (``True``: the incumbent is optimal): the certificate where the
        depth-first search is hopeless (32 of 64 channels: its shallow levels stay open, and
        their bounds rise only with depth when the groups are decided in its fixed order).
        Each expansion branches on the undecided group the parent's relaxation most surely
        removes (the largest moment estimate ``x_g``): both children (``g`` out: the universe
        shrinks, the inverse is recomputed; ``g`` in) get their own :func:`shor_bound`
        (:data:`TREE_NODE_ITERS` iterations, stopping once pruned) from the parent's
        multipliers and dual point restricted to them, and inherit the parent's bound (their
        completions are the parent's). Where no Shor bound applies (at most one removal due) a
        node branches on its first undecided group. The open nodes' smallest bound is a lower
        bound of the optimum by itself (the tree partitions every support), so
        :meth:`open_bound` takes the larger of it and the depth-first search's. Resumable; at
        most ``expansions`` expansions per call when given."""
        if self.tree is None:
            every = frozenset[int]()
            value, found, undecided, x = self._tree_node(every, every, self.root_Z.copy(), None,
                                                         TREE_ROOT_ITERS, deadline)
            self.tree = [(value, 0, every, every, found, undecided, x)]
        done = 0
        while self.tree and time.perf_counter() < deadline:
            if expansions is not None and done >= expansions:
                break
            done += 1
            value, tie, out, inn, found, undecided, x = heapq.heappop(self.tree)
            if value >= self.incumbent.value - _margin(self.incumbent.value):
                continue  # closed (the incumbent may have improved since)
            if undecided.size == 0:
                continue  # scored exactly: its value is no better than the incumbent
            q = int(np.argmax(x)) if x is not None else 0
            g = int(undecided[q])
            keep = np.flatnonzero(undecided != g).astype(np.int64)
            Z = found.Z if found is not None else self.root_Z
            for child_out, child_in in ((out | {g}, inn), (out, inn | {g})):
                mult = (restrict_multipliers(found.mult, keep) if found is not None
                        else None)
                child, child_found, child_undecided, child_x = self._tree_node(
                    child_out, child_in, Z, mult,
                    TREE_NODE_ITERS if mult is not None else TREE_ROOT_ITERS, deadline)
                child = max(child, value)
                if child < self.incumbent.value - _margin(self.incumbent.value):
                    self.tree_pushes += 1
                    heapq.heappush(self.tree, (child, self.tree_pushes, child_out, child_in,
                                               child_found, child_undecided, child_x))
        return not self.tree

    def tree_bound(self) -> float:
        """The certificate tree's bound: the smaller of its open nodes' smallest bound and the
        incumbent's value (a node closed against the incumbent may hold the optimum: then the
        incumbent is one); ``-inf`` before it started."""
        if self.tree is None:
            return -np.inf
        return min(min((item[0] for item in self.tree), default=np.inf), self.incumbent.value)

    @staticmethod
    def applicable(problem: LayerPruningProblem) -> bool:
        """A binding budget, a ridge (so every ``X_U^T X_U + 2 lam alpha I`` is invertible) and a
        size whose ``d x d`` inverses (one per level) fit comfortably in memory."""
        p = problem
        return (p.k is not None and p.k < p.n_groups and p.lam * p.alpha > 0
                and p.d <= 2000 and p.d * p.d * (p.n_groups + 2) * 8 <= 2**30)

    def open_bound(self) -> float:
        """The smallest bound of the open nodes on the stack (a node not yet bounded carries its
        parent's bound, valid for it; an in-child replaces its parent and inherits its bound),
        or the certificate tree's bound (:meth:`tree_bound`) where that is larger."""
        stack = min((float(self.bound[level]) for level in range(self.level + 1)
                     if self.state[level] != DONE), default=np.inf)
        return max(stack, self.tree_bound())

    def run(self, deadline: float) -> bool:
        """Search until done (``True``) or ``deadline`` (``False``).

        Each call of the compiled search runs at most :data:`CHUNK` nodes and at most what
        :data:`SLICE` seconds allow at the node rate measured so far (a node of a wide layer
        under load costs milliseconds: 2 000 of them overran a 60 s limit by 6 s)."""
        start = time.perf_counter()
        chunk = 16
        while self.level >= 0:
            now = time.perf_counter()
            if now >= deadline:
                return False
            if (self.tree is None and now >= start + TREE_AFTER * (deadline - start)
                    and self.progress() < TREE_PACE):
                # hopeless at its pace: the certificate tree takes the rest of the time
                return self.certificate_tree(deadline)
            if not self.shor_tried and now >= start + ROOT_SHOR_AFTER * (deadline - start):
                self.strengthen_root(deadline)
                now = time.perf_counter()
            if (self.shor_tried and not self.open_tried
                    and now >= start + OPEN_SHOR_AFTER * (deadline - start)):
                self.open_tried = True
                # only where the search, at its pace so far, would not finish in time (the
                # estimate lags: OPEN_SHOR_PACE)
                if self.progress() * (deadline - start) < OPEN_SHOR_PACE * (now - start):
                    self.strengthen_open(now + OPEN_SHOR_SHARE * (deadline - now))
            nodes = self.advance(chunk)
            spent = time.perf_counter() - now
            if nodes > 0:
                per_node = spent / nodes
                room = min(SLICE, max(deadline - time.perf_counter(), 0.0))
                chunk = int(min(CHUNK, max(1.0, room / max(per_node, 1e-9))))
        return True

    def advance(self, max_nodes: int) -> int:
        """Run the compiled search for at most ``max_nodes`` nodes (a leaf that beats the
        incumbent is scored exactly before returning); returns the nodes run."""
        level, nodes, event, _ = _search(
            self.gram, self.xty, self.yy, self.starts, self.order, self.price, self.p.budget,
            self.incumbent.value, max_nodes, self.H, self.W, self.alive, self.f, self.bound,
            self.pos, self.nin, self.state, self.since, self.level, self.leaf, self.Z,
            self.steps, self.e_cache, self.a_cache, self.Q_cache, self.cached,
            NODE_SHOR_GAP if self.root_shor is not None else -1.0,
        )
        self.level = level
        self.nodes += nodes
        if event == 3:
            self._raise_by_shor(level, np.inf)
            self.shor_events += 1
            value = self.incumbent.value
            self.shor_prunes += int(self.bound[level] >= value - _margin(value))
        if event == 2:
            self.incumbent.offer(tuple(int(g) for g in np.flatnonzero(self.leaf)))
        return nodes
