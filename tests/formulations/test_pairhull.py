"""The block-hull bound (issue 14, the hard regime): valid against brute force at the root and
at random nodes for any admissible decomposition, the diagonal shift's bound when the blocks
are single features, tighter with the SDP's decomposition, and bnb stays exact with it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxcompress.errors import InvalidInputError
from proxcompress.formulations import pairhull, random_instance
from proxcompress.formulations.bnb import build_engine, solve_bnb
from proxcompress.formulations.brute import solve_brute
from proxcompress.formulations.pairhull import (
    block_hull,
    chain_blocks,
    mix_safe,
    overlap_hull,
    overlap_root_bound,
    sdp_decomposition,
)

FREE, IN, OUT = 0, 1, 2


def completions(problem, status: np.ndarray) -> float:
    """Brute force over the node's completions, without the box (the hull drops it too, so
    this is the stronger check): the ridge least-squares value of every allowed support."""
    X = problem.X[:, np.argsort(problem.groups, kind="stable")]
    y = problem.Y[:, 0]
    ridge, b = problem.lam * problem.alpha, problem.lam * (1 - problem.alpha)
    best = np.inf
    for r in range(problem.d + 1):
        for S in itertools.combinations(range(problem.d), r):
            if any(status[i] == OUT for i in S) or any(
                    status[i] == IN and i not in S for i in range(problem.d)):
                continue
            cols = list(S)
            if cols:
                w = np.linalg.solve(X[:, cols].T @ X[:, cols] + 2 * ridge * np.eye(r),
                                    X[:, cols].T @ y)
                value = 0.5 * np.sum((y - X[:, cols] @ w) ** 2) + ridge * w @ w + b * r
            else:
                value = 0.5 * y @ y
            best = min(best, value)
    return best


def assert_valid(problem, hull, result, status: np.ndarray, best: float) -> None:
    """The node's bound is below ``best`` (its best completion), and both children's bounds
    of every free feature below theirs (brute force)."""
    assert result.bound <= best + 1e-8 * max(abs(best), 1.0)
    d_in, d_out = hull.children(result, status)
    for i in np.flatnonzero(status == FREE):
        for fixed, child in ((IN, d_in[i]), (OUT, d_out[i])):
            kid = status.copy()
            kid[i] = fixed
            best_kid = completions(problem, kid)
            assert child <= best_kid + 1e-8 * max(abs(best_kid), 1.0)


def random_decomposition(problem, blocks, rng) -> np.ndarray:
    """An admissible ``Q``: random PSD blocks scaled to keep ``G - blkdiag(Q)`` definite."""
    X = problem.X[:, np.argsort(problem.groups, kind="stable")]
    G = X.T @ X
    R = np.zeros_like(G)
    for B in blocks:
        L = rng.standard_normal((len(B), len(B)))
        R[np.ix_(B, B)] = L @ L.T
    vals, vecs = np.linalg.eigh(G)
    root_inv = (vecs / np.sqrt(vals)) @ vecs.T
    top = np.linalg.eigvalsh(root_inv @ R @ root_inv)[-1]
    return rng.uniform(0.0, 0.95) / top * R


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    d=st.integers(3, 7),
    size=st.integers(1, 3),
    rho=st.sampled_from([0.0, 0.8, 0.95]),
    alpha=st.sampled_from([0.05, 0.5]),
    seed=st.integers(0, 10_000),
)
def test_hull_bound_is_valid_at_every_node(d, size, rho, alpha, seed) -> None:
    problem = random_instance(40, d, 1, d, seed, rho=rho, snr=0.5, alpha=alpha)
    rng = np.random.default_rng(seed)
    blocks = chain_blocks(d, size)
    hull = block_hull(problem, random_decomposition(problem, blocks, rng), blocks)
    for trial in range(6):
        status = (np.zeros(d, dtype=np.int8) if trial == 0
                  else rng.choice([FREE, FREE, IN, OUT], size=d).astype(np.int8))
        result = hull.bound(status, iters=300)
        best = completions(problem, status)
        assert_valid(problem, hull, result, status, best)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    d=st.integers(3, 7),
    size=st.integers(1, 3),
    rho=st.sampled_from([0.0, 0.8, 0.95]),
    scale=st.sampled_from([0.0, 0.1, 10.0, 1e4]),
    iters=st.integers(1, 40),
    check_every=st.integers(1, 10),
    stall=st.sampled_from([0.0, 0.05, 0.5]),
    seed=st.integers(0, 10_000),
)
def test_warm_started_node_bound_is_valid_from_any_point(d, size, rho, scale, iters,
                                                         check_every, stall, seed) -> None:
    """The tree's node bound: sweeps from an arbitrary point (a parent's, or anything: wrong
    signs, supports the node forbids, huge values), stopped early by the cutoff, the stall
    rule or the sweep budget, is below every completion of the node, and so are its
    children's bounds."""
    problem = random_instance(40, d, 1, d, seed, rho=rho, snr=0.5, alpha=0.05)
    rng = np.random.default_rng(seed)
    blocks = chain_blocks(d, size)
    hull = block_hull(problem, mix_safe(problem.X.T @ problem.X, random_decomposition(
        problem, blocks, rng), 0.01), blocks)
    for _ in range(3):
        status = rng.choice([FREE, FREE, IN, OUT], size=d).astype(np.int8)
        start = scale * rng.standard_normal(hull.zero_point().shape)
        best = completions(problem, status)
        cutoff = best * rng.choice([0.999, 1.0, 1.001]) if rng.random() < 0.7 else np.inf
        result = hull.bound(status, start, iters, cutoff, check_every, stall)
        assert_valid(problem, hull, result, status, best)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([1e-3, 1.0, 30.0]),
       fixed=st.sampled_from([FREE, OUT]))
def test_skipped_blocks_are_those_the_prox_keeps_at_zero(seed, scale, fixed) -> None:
    """The sweeps skip a block at zero exactly when its exact prox would return zero."""
    problem = random_instance(40, 4, 1, 4, seed, rho=0.8, snr=0.5, alpha=0.05)
    rng = np.random.default_rng(seed)
    blocks = [[0, 1], [2, 3]]
    hull = block_hull(problem, mix_safe(problem.X.T @ problem.X, random_decomposition(
        problem, blocks, rng), 0.01), blocks)
    status = np.zeros(4, dtype=np.int8)
    status[0] = fixed
    g = scale * rng.standard_normal(4)
    t = 1.0 / hull.blip[0]
    Vin = np.zeros_like(hull.zero_point())
    first, last = hull.bstart[0], hull.bstart[1]
    for c in range(first, last):
        Vin[c, : hull.size[c]] = -t * g[hull.idx[c, : hull.size[c]]]
    Xn = np.zeros_like(Vin)
    lam = np.zeros(Vin.shape[0])
    pairhull._block_prox(Vin, Xn, lam, first, last, hull.idx, hull.size, hull.ev, hull.vec, t,
                         hull.b, status)
    stays = pairhull._stays_zero(g, first, last, hull.idx, hull.size, hull.pinv, hull.b, status)
    moved = np.abs(Xn[first:last]).max()
    assert stays == (moved <= 1e-12 * max(1.0, scale)), (stays, moved)


def test_dual_scaling_is_the_best_on_a_grid() -> None:
    """The golden-section scaling of the bound is at least as good as a fine grid of ``s``
    (the bound is concave in ``s``), a twin of the old bounded Brent search."""
    problem = random_instance(60, 8, 1, 8, 3, rho=0.8, snr=0.5, alpha=0.05)
    blocks = chain_blocks(8, 2)
    hull = block_hull(problem, sdp_decomposition(problem, blocks), blocks)
    rng = np.random.default_rng(3)
    status = np.array([FREE, IN, OUT, FREE, FREE, FREE, OUT, FREE], dtype=np.int8)
    w = rng.standard_normal(8) * 0.3
    value, s = pairhull._dual(w, hull.H, hull.xty, hull.cc, hull.yy, hull.bstart, hull.idx,
                              hull.size, hull.pinv, hull.b, status)
    Hw = hull.H @ w
    grid = [pairhull._dual_value(x, hull.xty - Hw, hull.cc, float(w @ hull.xty),
                                 float(w @ Hw), hull.yy, hull.bstart, hull.idx, hull.size,
                                 hull.pinv, hull.b, status) for x in np.linspace(0, 2, 2001)]
    assert value >= max(grid) - 1e-9 * abs(value)
    assert 0.0 <= s <= 2.0


def test_single_feature_blocks_give_the_diagonal_shift() -> None:
    """Blocks of one feature and ``Q = Diag(delta)``: bnb's own root bound (a twin)."""
    problem = random_instance(500, 30, 1, 30, 0, rho=0.8, snr=0.5, alpha=0.05)
    engine, root = build_engine(problem)
    blocks = chain_blocks(30, 1)
    hull = block_hull(problem, np.diag(engine.delta), blocks, engine.order)
    assert np.abs(root.W).max() < problem.M  # the box is not active: the two agree
    value = hull.bound(np.zeros(30, dtype=np.int8), iters=3000).bound
    assert value == pytest.approx(root.bound, rel=1e-7)


@pytest.mark.parametrize("solver", ["SCS", "CLARABEL"])
def test_sdp_decomposition_tightens_and_stays_valid(solver) -> None:
    """The hard regime in small: pairs of neighbours with the SDP's decomposition close part
    of the diagonal shift's root gap, and stay below the optimum (with either solver: SCS's
    inaccurate ``Q`` is certified by the share given back)."""
    problem = random_instance(40, 8, 1, 8, 1, rho=0.8, snr=0.5, alpha=0.05)
    blocks = chain_blocks(8, 2)
    hull = block_hull(problem, sdp_decomposition(problem, blocks, solver), blocks)
    optimum = solve_brute(problem).objective
    value = hull.bound(np.zeros(8, dtype=np.int8), iters=3000).bound
    shifted = build_engine(problem)[1].bound
    assert shifted + 0.1 * (optimum - shifted) < value <= optimum * (1 + 1e-9)


def test_sdp_decomposition_solvers_agree_and_bad_arguments_are_refused() -> None:
    """The joint dual's ``Q`` by SCS and by CLARABEL give the same root bound (a twin), and a
    bad solver or blocks are refused before any work."""
    problem = random_instance(60, 10, 1, 10, 4, rho=0.8, snr=0.5, alpha=0.05)
    blocks = chain_blocks(10, 2)
    roots = [block_hull(problem, sdp_decomposition(problem, blocks, solver), blocks).bound(
        np.zeros(10, dtype=np.int8), iters=3000).bound for solver in ("SCS", "CLARABEL")]
    assert roots[0] == pytest.approx(roots[1], rel=1e-3)
    with pytest.raises(InvalidInputError, match="solver"):
        sdp_decomposition(problem, blocks, "MOSEK")
    with pytest.raises(InvalidInputError, match="blocks"):
        sdp_decomposition(problem, [[0, 1], [1, 2]])


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), rho=st.sampled_from([0.0, 0.8, 0.95]),
       alpha=st.sampled_from([0.05, 0.5]))
def test_overlapping_pairs_bound_is_valid_and_tighter(seed, rho, alpha) -> None:
    """The hull of overlapping pairs with per-block indicator copies: below the box-free
    brute-force optimum (so below the problem's), and at least the disjoint pairs' SDP value
    (every neighbouring pair contains them), growing with the reach."""
    problem = random_instance(40, 7, 1, 7, seed, rho=rho, snr=0.5, alpha=alpha)
    optimum = completions(problem, np.zeros(7, dtype=np.int8))
    disjoint = pairhull.joint_dual_bound(problem, chain_blocks(7, 2), "CLARABEL")
    near = overlap_root_bound(problem, 1, "CLARABEL")
    far = overlap_root_bound(problem, 2, "CLARABEL")
    tol = 1e-6 * max(abs(optimum), 1.0)
    assert disjoint - tol <= near <= far + tol
    assert far <= optimum + tol
    with pytest.raises(InvalidInputError, match="reach"):
        overlap_root_bound(problem, 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bnb_with_the_hull_is_exact(seed) -> None:
    problem = random_instance(60, 9, 1, 9, seed, rho=0.8, snr=0.5, alpha=0.05)
    blocks = chain_blocks(9, 2)
    G = problem.X.T @ problem.X
    hull = block_hull(problem, mix_safe(G, random_decomposition(
        problem, blocks, np.random.default_rng(seed)), 0.01), blocks)
    solution = solve_bnb(problem, hull=hull, hull_iters=50)
    assert solution.status == "optimal"
    assert solution.objective == pytest.approx(solve_brute(problem).objective, rel=1e-9)


def test_bnb_refuses_a_hull_it_cannot_use_before_any_work() -> None:
    """A hull of another problem (or in another feature order) would give invalid bounds, and
    hull_iters = 0 would silently ignore it: each is refused naming the argument."""
    problem = random_instance(60, 9, 1, 9, 0, rho=0.8, snr=0.5, alpha=0.05)
    other = random_instance(60, 9, 1, 9, 1, rho=0.8, snr=0.5, alpha=0.05)
    blocks = chain_blocks(9, 2)

    def hull_of(p, order=None):
        G = p.X.T @ p.X
        return block_hull(p, mix_safe(G, random_decomposition(
            p, blocks, np.random.default_rng(0)), 0.01), blocks, order)

    mine = hull_of(problem)
    assert mine.fits(problem, np.arange(9))
    cases = [(hull_of(other), {"hull_iters": 5}, "hull"),
             (hull_of(problem, np.arange(9)[::-1].copy()), {"hull_iters": 5}, "hull"),
             (mine, {}, "hull_iters"), (mine, {"hull_iters": True}, "hull_iters"),
             (mine, {"hull_iters": 5, "hull_depth": -1}, "hull_depth")]
    for hull, kwargs, field in cases:
        with pytest.raises(InvalidInputError) as info:
            solve_bnb(problem, hull=hull, **kwargs)
        assert info.value.field == field, (field, str(info.value))


@pytest.mark.parametrize(
    ("params", "Q", "blocks", "name"),
    [
        (dict(n=30, d=6, m=2, n_groups=6, seed=0), "zero", [[0, 1]], "problem"),
        (dict(n=30, d=6, m=1, n_groups=3, seed=0), "zero", [[0, 1]], "problem"),
        (dict(n=30, d=6, m=1, n_groups=6, seed=0, k=2), "zero", [[0, 1]], "problem"),
        (dict(n=30, d=6, m=1, n_groups=6, seed=0), "zero", [[0, 1], [1, 2]], "blocks"),
        (dict(n=30, d=6, m=1, n_groups=6, seed=0), "zero", [[0, 1, 2, 3, 4]], "blocks"),
        (dict(n=30, d=6, m=1, n_groups=6, seed=0), "outside", [[0, 1]], "Q"),
        (dict(n=30, d=6, m=1, n_groups=6, seed=0), "huge", [[0, 1]], "Q"),
        (dict(n=30, d=6, m=1, n_groups=6, seed=0), "shape", [[0, 1]], "Q"),
        (dict(n=30, d=6, m=1, n_groups=6, seed=0), "nan", [[0, 1]], "Q"),
    ],
)
def test_block_hull_refuses(params, Q, blocks, name) -> None:
    d = params["d"]
    matrix = {"zero": np.zeros((d, d)), "outside": np.eye(d), "shape": np.zeros((d, d + 1)),
              "huge": np.pad(1e6 * np.ones((2, 2)), ((0, d - 2), (0, d - 2))),
              "nan": np.full((d, d), np.nan)}[Q]
    with pytest.raises(InvalidInputError, match=name):
        block_hull(random_instance(**params), matrix, blocks)


def test_chain_blocks_refuses() -> None:
    with pytest.raises(InvalidInputError, match="size"):
        chain_blocks(6, 5)
    assert chain_blocks(5, 2) == [[0, 1], [2, 3], [4]]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), rho=st.sampled_from([0.0, 0.8, 0.95]),
       alpha=st.sampled_from([0.05, 0.5]), reach=st.sampled_from([1, 2, 3]),
       statuses=st.lists(st.sampled_from([FREE, FREE, IN, OUT]), min_size=7, max_size=7),
       sweeps=st.sampled_from([0, 1, 5, 300]), noise=st.sampled_from([0.0, 1.0]))
def test_overlapping_pairs_node_bound_is_valid(seed, rho, alpha, reach, statuses, sweeps,
                                               noise) -> None:
    """The overlapping pairs' node bound (the root SDP's split of the Gram matrix and the
    shares fixed, the dual split solved per node) below the node's box-free brute-force
    optimum, and both children's bounds of every free feature below theirs, after any number
    of sweeps from the SDP's split or a perturbed one; the sweeps never lower the bound."""
    problem = random_instance(40, 7, 1, 7, seed, rho=rho, snr=0.5, alpha=alpha)
    hull = overlap_hull(problem, reach, "CLARABEL")
    status = np.array(statuses, dtype=np.int8)
    rng = np.random.default_rng(seed)
    start = hull.root_V + noise * rng.standard_normal(hull.root_V.shape) * np.abs(
        hull.root_V).max()
    before = hull.bound(status, start, iters=0).bound
    result = hull.bound(status, start, iters=sweeps)
    assert result.bound >= before
    assert_valid(problem, hull, result, status, completions(problem, status))


def test_overlapping_pairs_root_bound_is_the_sdps() -> None:
    """At the root, the sweeps from the SDP's split reach the SDP's value (less what the
    certification's mix costs), above the disjoint pairs' hull."""
    problem = random_instance(60, 9, 1, 9, 3, rho=0.8, snr=0.5, alpha=0.05)
    hull = overlap_hull(problem, 2, "CLARABEL")
    root = hull.bound(np.zeros(9, dtype=np.int8), iters=2000).bound
    sdp = overlap_root_bound(problem, 2, "CLARABEL")
    disjoint = pairhull.joint_dual_bound(problem, chain_blocks(9, 2), "CLARABEL")
    assert root <= sdp + 1e-6 * abs(sdp)
    assert root >= sdp - 0.02 * (sdp - disjoint) - 1e-9 * abs(sdp)
    assert root > disjoint


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bnb_with_the_overlapping_pairs_is_exact(seed) -> None:
    problem = random_instance(60, 9, 1, 9, seed, rho=0.8, snr=0.5, alpha=0.05)
    hull = overlap_hull(problem, 2, "CLARABEL")
    exact = solve_brute(problem)
    found = solve_bnb(problem, hull=hull, hull_iters=3)
    assert found.status == "optimal"
    assert found.objective == pytest.approx(exact.objective, rel=1e-9)
    assert found.bound <= exact.objective * (1 + 1e-9)


def test_overlap_hull_refuses_before_any_work() -> None:
    problem = random_instance(40, 6, 1, 6, 0, alpha=0.05)
    with pytest.raises(InvalidInputError, match="reach"):
        overlap_hull(problem, 0)
    with pytest.raises(InvalidInputError, match="solver"):
        overlap_hull(problem, 1, "MOSEK")
    with pytest.raises(InvalidInputError, match="problem"):
        overlap_hull(random_instance(40, 1, 1, 1, 0, alpha=0.05))
    with pytest.raises(InvalidInputError, match="problem"):
        overlap_hull(random_instance(40, 6, 1, 3, 0, alpha=0.05))
    hull = overlap_hull(problem, 1, "CLARABEL")
    with pytest.raises(InvalidInputError, match="X0"):
        hull.bound(np.zeros(6, dtype=np.int8), np.zeros((2, 2)))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), rho=st.sampled_from([0.0, 0.8, 0.95]),
       noise=st.sampled_from([1e-4, 1e-2, 0.3, 3.0]),
       statuses=st.lists(st.sampled_from([FREE, FREE, IN, OUT]), min_size=7, max_size=7))
def test_fitted_split_of_a_nearly_feasible_sdp_is_certified_and_valid(seed, rho, noise,
                                                                       statuses) -> None:
    """A solver's split perturbed off feasibility (pairs with negative eigenvalues, ``H`` not
    definite): the split chosen (fitted, :func:`pairhull._fitted_split`, or mixed) is
    certified, and the node bound and its children's from it are below brute force, at the
    SDP's dual split and after sweeps."""
    problem = random_instance(40, 7, 1, 7, seed, rho=rho, snr=0.5, alpha=0.05)
    pairs = [[i, j] for i in range(7) for j in range(i + 1, min(i + 3, 7))]
    _, _, parts = pairhull._joint_dual(problem, pairs, "CLARABEL")
    rng = np.random.default_rng(seed)
    for part in parts:
        E = rng.standard_normal((2, 2))
        part.P = part.P + noise * np.abs(part.P).max() * (E + E.T)
    order = np.argsort(problem.groups, kind="stable").astype(np.int64)
    hull = pairhull.OverlapHull(problem, order, pairs, parts)
    assert np.linalg.eigvalsh(hull.H)[0] > 0
    status = np.array(statuses, dtype=np.int8)
    for sweeps in (0, 20):
        result = hull.bound(status, iters=sweeps)
        assert_valid(problem, hull, result, status, completions(problem, status))


def test_fitted_split_keeps_a_feasible_split_and_repairs_a_loose_one() -> None:
    """The fitted split is certified; a loose SDP split (SCS at 1e-2) is fitted or mixed,
    whichever bounds the root higher at the SDP's dual split, so never below the mix alone
    (the only repair before), and below brute force."""
    problem = random_instance(60, 9, 1, 9, 3, rho=0.8, snr=0.5, alpha=0.05)
    pairs = [[i, j] for i in range(9) for j in range(i + 1, min(i + 3, 9))]
    order = np.argsort(problem.groups, kind="stable").astype(np.int64)
    _, _, parts = pairhull._joint_dual(problem, pairs, "CLARABEL")
    G = problem.X.T @ problem.X + 2 * problem.lam * problem.alpha * np.eye(9)
    scale = np.sqrt(np.diag(problem.X.T @ problem.X))
    fitted, t = pairhull._fitted_split(G, np.array(pairs), [p.P for p in parts], scale)
    assert 0.0 <= t <= 1.0 and all(pairhull._pair_certified(P) for P in fitted)
    loose = pairhull._joint_dual(problem, pairs, "SCS", 1e-2)[2]
    hull = pairhull.OverlapHull(problem, order, pairs, loose)
    saved = pairhull._fitted_split
    try:
        pairhull._fitted_split = lambda total, pairs, Ps, scale: (
            [np.zeros((2, 2)) for _ in Ps], 1.0)  # never certified: the mix alone
        mixed = pairhull.OverlapHull(problem, order, pairs, loose)
    finally:
        pairhull._fitted_split = saved
    root = np.zeros(9, dtype=np.int8)
    assert mixed.share not in (0.0, None)
    assert hull.bound(root, iters=0).bound >= mixed.bound(root, iters=0).bound
    best = completions(problem, root)
    for sweeps in (0, 500):
        assert hull.bound(root, iters=sweeps).bound <= best + 1e-8 * abs(best)


def test_a_hull_builder_is_called_only_above_its_root_gap() -> None:
    """``solve_bnb(hull=builder)``: above ``hull_gap`` the builder runs once and the search
    stays exact (brute force); with a ``hull_gap`` no root reaches it is never called and
    the search is bnb's without a hull (same nodes and bound); a builder's ``None`` is no
    hull."""
    problem = random_instance(60, 9, 1, 9, 1, rho=0.8, snr=0.5, alpha=0.05)
    exact = solve_brute(problem)
    calls = []

    def build():
        calls.append(1)
        return overlap_hull(problem, 2, "CLARABEL")

    found = solve_bnb(problem, hull=build, hull_iters=3, hull_gap=0.0)
    assert calls == [1] and found.status == "optimal"
    assert found.objective == pytest.approx(exact.objective, rel=1e-9)
    alone = solve_bnb(problem, hull=None)
    for builder in (build, lambda: None):
        skipped = solve_bnb(problem, hull=builder, hull_iters=3, hull_gap=1e9)
        assert (skipped.nodes, skipped.bound) == (alone.nodes, alone.bound)
    assert calls == [1]
    nothing = solve_bnb(problem, hull=lambda: None, hull_iters=3, hull_gap=0.0)
    assert (nothing.nodes, nothing.bound) == (alone.nodes, alone.bound)


def test_auto_hull_applies_only_to_single_feature_groups_without_budget() -> None:
    """``hull=\"auto\"`` only where the overlapping pairs apply, up to the size cap, on a
    well-conditioned Gram matrix."""
    from proxcompress.formulations import bnb

    assert bnb._auto_hull(random_instance(40, 6, 1, 6, 0, alpha=0.05)) is not None
    for problem in (random_instance(40, 6, 1, 3, 0, alpha=0.05),  # grouped
                    random_instance(40, 6, 2, 6, 0, alpha=0.05),  # two outputs
                    random_instance(40, 6, 1, 6, 0, alpha=0.05, k=3),  # a budget
                    random_instance(40, 1, 1, 1, 0, alpha=0.05)):  # one feature
        assert bnb._auto_hull(problem) is None
    big = bnb.AUTO_HULL_MAX_FEATURES + 1
    assert bnb._auto_hull(random_instance(2 * big, big, 1, big, 0, alpha=0.05)) is None
    from proxcompress.formulations.instances import sparse_regression_instance

    # rank-deficient (centred, n = p): X^T X singular, the hull is not built
    assert bnb._auto_hull(sparse_regression_instance(40, 40, seed=0)) is None


@pytest.mark.parametrize(("kwargs", "name"), [
    (dict(hull="overlap"), "hull"), (dict(hull=3), "hull"),
    (dict(hull=lambda: None, hull_iters=3, hull_gap=-0.1), "hull_gap"),
    (dict(hull=lambda: None, hull_iters=3, hull_gap=float("nan")), "hull_gap"),
    (dict(hull=lambda: None, hull_iters=0), "hull_iters"),
])
def test_bad_hull_arguments_are_refused_before_any_work(kwargs, name) -> None:
    with pytest.raises(InvalidInputError, match=name):
        solve_bnb(random_instance(40, 6, 1, 6, 0, alpha=0.05), **kwargs)


# --------------------------------------------------------- the joint dual SDP: direct and CVXPY
def blocks_of(kind: str, d: int) -> list[list[int]]:
    """Block structures of the joint dual: overlapping pairs (reach 1-3), disjoint chains of 1
    to 4 features, and disjoint pairs that leave the last features in no block."""
    if kind.startswith("reach"):
        reach = int(kind[-1])
        return [[i, j] for i in range(d) for j in range(i + 1, min(i + reach + 1, d))]
    if kind.startswith("chain"):
        return chain_blocks(d, int(kind[-1]))
    return [[i, i + 1] for i in range(0, d - 2, 2)]  # "partial": the last one or two alone


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), d=st.integers(4, 7), rho=st.sampled_from([0.0, 0.8, 0.95]),
       alpha=st.sampled_from([0.05, 0.5]),
       kind=st.sampled_from(["reach1", "reach2", "reach3", "chain1", "chain3", "chain4",
                             "partial"]))
def test_direct_scs_sdp_is_the_cvxpy_twins_program(seed, d, rho, alpha, kind) -> None:
    """The joint dual SDP assembled for SCS's own API (``backend="direct"``) is the CVXPY
    model's program: the same optimum as the CVXPY twin solved by CLARABEL (interior point,
    accurate) and by SCS at the accuracy the tree uses, both below the box-free brute-force
    optimum; its solution's decomposition is symmetric where the blocks are."""
    problem = random_instance(40, d, 1, d, seed, rho=rho, snr=0.5, alpha=alpha)
    blocks = blocks_of(kind, d)
    optimum = completions(problem, np.zeros(d, dtype=np.int8))
    direct, P, parts = pairhull._joint_dual(problem, blocks, "SCS", 1e-6, "direct")
    twin = pairhull._joint_dual(problem, blocks, "CLARABEL", backend="cvxpy")[0]
    assert direct == pytest.approx(twin, rel=1e-4, abs=1e-6)
    loose = pairhull._joint_dual(problem, blocks, "SCS", pairhull.OVERLAP_SDP_EPS, "direct")[0]
    loose_twin = pairhull._joint_dual(problem, blocks, "SCS", pairhull.OVERLAP_SDP_EPS,
                                      "cvxpy")[0]
    assert loose == pytest.approx(loose_twin, rel=1e-3, abs=1e-5)
    tol = 1e-6 * max(abs(optimum), 1.0)
    assert twin <= optimum + tol and direct <= optimum + tol
    assert np.allclose(P, P.T)
    assert [part.P.shape for part in parts] == [(len(B), len(B)) for B in blocks]
    assert all(np.all(part.share >= -1e-6 * problem.lam) for part in parts)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), rho=st.sampled_from([0.0, 0.8, 0.95]),
       alpha=st.sampled_from([0.05, 0.5]), reach=st.sampled_from([1, 2, 3]),
       statuses=st.lists(st.sampled_from([FREE, FREE, IN, OUT]), min_size=7, max_size=7))
def test_direct_scs_certificate_is_as_valid_as_the_twins(seed, rho, alpha, reach,
                                                         statuses) -> None:
    """The overlapping pairs' node bound from the direct SDP's split (certified by
    :class:`OverlapHull` whatever SCS's accuracy) is valid against brute force at the root and
    at a random node, with its children, and its root bound equals the CVXPY twin's."""
    problem = random_instance(40, 7, 1, 7, seed, rho=rho, snr=0.5, alpha=alpha)
    direct = overlap_hull(problem, reach, "SCS", "direct")
    twin = overlap_hull(problem, reach, "SCS", "cvxpy")
    root = np.zeros(7, dtype=np.int8)
    best = completions(problem, root)
    roots = [hull.bound(root, iters=500).bound for hull in (direct, twin)]
    assert roots[0] == pytest.approx(roots[1], rel=1e-3, abs=1e-5)
    assert max(roots) <= best + 1e-8 * max(abs(best), 1.0)
    status = np.array(statuses, dtype=np.int8)
    for sweeps in (0, 30):
        result = direct.bound(status, iters=sweeps)
        assert_valid(problem, direct, result, status, completions(problem, status))


@pytest.mark.parametrize("seed", [0, 1])
def test_bnb_with_the_direct_sdp_is_exact(seed) -> None:
    problem = random_instance(60, 9, 1, 9, seed, rho=0.8, snr=0.5, alpha=0.05)
    found = solve_bnb(problem, hull=overlap_hull(problem, 2, "SCS", "direct"), hull_iters=3)
    exact = solve_brute(problem)
    assert found.status == "optimal"
    assert found.objective == pytest.approx(exact.objective, rel=1e-9)
    assert found.bound <= exact.objective * (1 + 1e-9)


def test_svec_index_is_scs_lower_triangle_by_columns() -> None:
    """SCS's vectorisation of an ``n``-square symmetric matrix: the lower triangle column by
    column, every position once."""
    for n in (1, 2, 3, 5):
        seen = [pairhull._svec_index(n, i, j) for j in range(n) for i in range(j, n)]
        assert seen == list(range(n * (n + 1) // 2))


def test_bad_sdp_backend_is_refused_before_any_work() -> None:
    problem = random_instance(40, 6, 1, 6, 0, alpha=0.05)
    for call in (lambda: overlap_hull(problem, 1, "SCS", "numpy"),
                 lambda: overlap_hull(problem, 1, "CLARABEL", "direct"),
                 lambda: overlap_root_bound(problem, 1, "SCS", "Direct"),
                 lambda: sdp_decomposition(problem, chain_blocks(6, 2), "SCS", None),
                 lambda: pairhull.joint_dual_bound(problem, chain_blocks(6, 2), "CLARABEL",
                                                   "direct")):
        with pytest.raises(InvalidInputError, match="backend"):
            call()
