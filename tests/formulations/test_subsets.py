"""The subset search of bnb (budgeted, weak-relaxation instances) against brute force, and the
validity of its bounds when it stops early."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import proxcompress.formulations.bnb as bnb
import proxcompress.formulations.subsets as subsets
from proxcompress.formulations import LayerPruningProblem, random_instance, solve
from proxcompress.formulations.heuristics import Incumbent
from proxcompress.formulations.restricted import SupportSolver


@pytest.fixture(scope="module")
def monkeypatch_module():
    """A monkeypatch that Hypothesis' repeated examples may share (undone after the module)."""
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def redundant_instance(seed: int, groups: int, per_group: int, m: int, k: int,
                       tight_box: bool) -> LayerPruningProblem:
    """Channel-like data: correlated, non-centred features, outputs an exact linear map of
    them (as recorded activations), a tiny ridge and count price (the budget decides)."""
    rng = np.random.default_rng(seed)
    n, d = 6 * groups * per_group, groups * per_group
    base = rng.standard_normal((n, 3))
    X = np.abs(base @ rng.standard_normal((3, d)) + 0.7 * rng.standard_normal((n, d)))
    W = rng.standard_normal((d, m))
    scale = float(np.mean(np.sum(X**2, axis=0)))
    M = (0.5 if tight_box else 4.0) * float(np.abs(np.linalg.lstsq(X, X @ W, rcond=None)[0]).max())
    return LayerPruningProblem(X=X, Y=X @ W, groups=np.arange(d) // per_group,
                               lam=2e-4 * scale, alpha=0.5, M=M, k=k)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), groups=st.integers(4, 10), per_group=st.integers(1, 3),
       m=st.integers(1, 3), share=st.floats(0.2, 0.8), tight_box=st.booleans(),
       root_steps=st.sampled_from([0, 50]), steps=st.sampled_from([0, 2, 6]))
def test_subset_search_matches_brute(seed, groups, per_group, m, share, tight_box, root_steps,
                                     steps, monkeypatch_module):
    """Equal to brute force with any number of ascent steps at the root and per node."""
    monkeypatch_module.setattr(subsets, "ROOT_STEPS", root_steps)
    monkeypatch_module.setattr(subsets, "NODE_STEPS", steps)
    k = max(1, min(groups - 1, round(share * groups)))
    problem = redundant_instance(seed, groups, per_group, m, k, tight_box)
    brute = solve(problem, "brute")
    incumbent = Incumbent(problem, SupportSolver(problem))
    search = subsets.SubsetSearch(problem, incumbent)
    assert search.run(np.inf)
    assert incumbent.value == pytest.approx(brute.objective, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_bnb_uses_it_and_agrees(seed, monkeypatch):
    """Through bnb (forced into subset mode), optimal and equal to brute force."""
    problem = redundant_instance(seed, 9, 2, 2, 4, tight_box=seed % 2 == 0)
    monkeypatch.setattr(bnb, "SUBSET_GAP", -1.0)
    solution = bnb.solve_bnb(problem)
    brute = solve(problem, "brute")
    assert solution.status == "optimal"
    assert solution.objective == pytest.approx(brute.objective, rel=1e-9)
    assert solution.bound <= brute.objective * (1 + 1e-9)


def test_subset_search_runs_on_one_blas_thread(monkeypatch):
    """bnb's subset mode limits every BLAS library to ``SUBSET_BLAS_THREADS`` (one) while the
    search runs, and restores the caller's threads afterwards (the caller asks for two, so the
    limit is seen whatever the environment's thread variables say; a library built for one
    thread, such as the OpenBLAS some SCS wheels bundle, stays at one and is still checked)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> dict[str, int]:
        return {info["filepath"]: info["num_threads"] for info in threadpool_info()
                if info["user_api"] == "blas"}

    seen: list[dict[str, int]] = []
    original = subsets.SubsetSearch.run

    def run(self, deadline):
        seen.append(blas_threads())
        return original(self, deadline)

    monkeypatch.setattr(subsets.SubsetSearch, "run", run)
    monkeypatch.setattr(bnb, "SUBSET_GAP", -1.0)
    problem = redundant_instance(0, 9, 2, 2, 4, tight_box=False)
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        assert before and max(before.values()) == 2 and set(before.values()) <= {1, 2}
        assert bnb.solve_bnb(problem).status == "optimal"
        after = blas_threads()
    assert seen and all(threads == {path: 1 for path in before} for threads in seen)
    assert after == before


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), chunk=st.integers(1, 40), stops=st.integers(1, 6))
def test_open_bound_is_valid_at_any_stop(seed, chunk, stops):
    """Stopped after any number of nodes, the smallest open bound (and the incumbent) bracket
    the optimum."""
    problem = redundant_instance(seed, 10, 2, 2, 5, tight_box=seed % 3 == 0)
    optimum = solve(problem, "brute").objective
    incumbent = Incumbent(problem, SupportSolver(problem))
    search = subsets.SubsetSearch(problem, incumbent)
    for _ in range(stops):
        finished = _run_chunk(search, chunk)
        assert min(incumbent.value, search.open_bound()) <= optimum * (1 + 1e-9)
        assert incumbent.value >= optimum * (1 - 1e-12)
        if finished:
            assert incumbent.value == pytest.approx(optimum, rel=1e-9)
            break


def _run_chunk(search: subsets.SubsetSearch, nodes: int) -> bool:
    """Run the compiled search for at most ``nodes`` nodes (a promising leaf is scored, then
    the search resumes within the same budget); True when it is done."""
    while search.level >= 0 and nodes > 0:
        nodes -= search.advance(nodes)
    return search.level < 0


def test_not_used_where_the_relaxation_is_strong():
    """A budgeted planted instance whose perspective bound is tight is solved by the tree."""
    problem = random_instance(200, 20, 1, 20, seed=1, k=5)
    assert subsets.SubsetSearch.applicable(problem)
    solution = bnb.solve_bnb(problem)
    assert solution.status == "optimal"
    assert solution.objective == pytest.approx(solve(problem, "brute").objective, rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), groups=st.integers(3, 9), per_group=st.integers(1, 3),
       m=st.integers(1, 3), drop=st.integers(0, 2), share=st.floats(0.1, 0.9))
def test_removal_bound_below_every_removal_set(seed, groups, per_group, m, drop, share):
    """The removal bound at any universe (some groups already out) never passes the cheapest
    removal of r undecided groups, computed by brute force from the inverse of the universe's
    Gram matrix (also with anti-correlated channels, where the couplings are negative)."""
    H, W, starts, undecided, cheapest, rng = _removal_setup(seed, groups, per_group, m, drop,
                                                            share)
    directions = subsets._single_costs(H, W, starts, undecided)[1]
    for r, best in cheapest.items():
        # the groups' own directions, after ascent steps, and an arbitrary dual point
        points = [(directions.copy(), 0), (directions.copy(), 4),
                  (rng.standard_normal(W.shape) * float(np.abs(directions).max()), 2)]
        bounds = [subsets._removal_bound(H, W, starts, undecided, r, Z, steps, np.inf)
                  for Z, steps in points]
        assert max(bounds) <= best * (1 + 1e-9) + 1e-9
        assert bounds[1] >= bounds[0] * (1 - 1e-12)  # the ascent keeps only improving points


def _removal_setup(seed: int, groups: int, per_group: int, m: int, drop: int, share: float):
    """A universe (some groups out) of a channel-like instance (anti-correlated channel pairs on
    odd seeds), its inverse and fit, the undecided groups, and every removal set's exact cost
    by the number removed (brute force)."""
    from itertools import combinations

    problem = redundant_instance(seed, groups, per_group, m, 1, tight_box=False)
    rng = np.random.default_rng(seed)
    if seed % 2:
        problem.X[:, per_group:2 * per_group] = (-problem.X[:, :per_group]
                                                 + 0.05 * rng.standard_normal((problem.n,
                                                                               per_group)))
    search = subsets.SubsetSearch(problem, Incumbent(problem, SupportSolver(problem)))
    starts = search.starts
    out = rng.choice(groups, size=min(drop, groups - 2), replace=False)
    alive = np.ones(problem.d, dtype=np.bool_)
    for g in out:
        alive[starts[g]:starts[g + 1]] = False
    H, W, _ = subsets._inverse_state(search.gram, search.xty, search.yy, alive)
    live = np.array([g for g in range(groups) if g not in set(out)], dtype=np.int64)
    undecided = rng.permutation(live)[: max(2, round(share * live.size))].astype(np.int64)
    cheapest = {}
    for r in range(1, undecided.size + 1):
        best = np.inf
        for removal in combinations(undecided.tolist(), r):
            rows = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in removal])
            block = H[np.ix_(rows, rows)]
            best = min(best, 0.5 * float(np.sum(W[rows] * np.linalg.solve(block, W[rows]))))
        cheapest[r] = best
    return H, W, starts, undecided, cheapest, rng


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), groups=st.integers(3, 8), per_group=st.integers(1, 3),
       m=st.integers(1, 3), drop=st.integers(0, 2), share=st.floats(0.1, 0.9),
       iters=st.sampled_from([0, 1, 40]))
def test_shor_removal_bound_below_every_removal_set(seed, groups, per_group, m, drop, share,
                                                    iters):
    """The Shor relaxation's eigenvalue dual never passes the cheapest removal of r undecided
    groups (brute force), from the groups' own directions or an arbitrary dual point, at the
    start (zero multipliers) and after ascent iterations; the returned point is zero outside
    the undecided groups' rows."""
    H, W, starts, undecided, cheapest, rng = _removal_setup(seed, groups, per_group, m, drop,
                                                            share)
    directions = subsets._single_costs(H, W, starts, undecided)[1]
    for r, best in cheapest.items():
        for Z in (directions, rng.standard_normal(W.shape) * float(np.abs(directions).max())):
            bound, point = subsets.shor_removal_bound(H, W, starts, undecided, r, Z.copy(),
                                                      iters)
            assert 0.0 <= bound <= best * (1 + 1e-9) + 1e-9
            rows = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in undecided])
            outside = np.setdiff1d(np.arange(W.shape[0]), rows)
            assert not point[outside].any()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), groups=st.integers(3, 8), per_group=st.integers(1, 3),
       m=st.integers(1, 3), drop=st.integers(0, 2), share=st.floats(0.1, 0.9),
       iters=st.sampled_from([0, 1, 40, 300]), warm=st.booleans(),
       rule=st.sampled_from(subsets.SHOR_RULES))
def test_every_shor_step_rule_stays_below_every_removal_set(seed, groups, per_group, m, drop,
                                                            share, iters, warm, rule):
    """Every step rule of :func:`subsets.shor_bound` evaluates the same dual: its bound never
    passes the cheapest removal of r undecided groups (brute force), from zero multipliers or
    warm-started from another run's (as a node starts from its ancestor's), and the returned
    multipliers give a valid bound again."""
    H, W, starts, undecided, cheapest, _ = _removal_setup(seed, groups, per_group, m, drop,
                                                          share)
    directions = subsets._single_costs(H, W, starts, undecided)[1]
    for r, best in cheapest.items():
        mult = (subsets.shor_bound(H, W, starts, undecided, r, directions.copy(), 20,
                                   rule="adam").mult if warm else None)
        found = subsets.shor_bound(H, W, starts, undecided, r, directions.copy(), iters,
                                   mult=mult, rule=rule)
        assert 0.0 <= found.value <= best * (1 + 1e-9) + 1e-9
        again = subsets.shor_bound(H, W, starts, undecided, r, found.Z, 0, mult=found.mult,
                                   rule=rule)
        assert again.value == pytest.approx(found.value, rel=1e-9, abs=1e-9)


def test_an_unknown_shor_step_rule_is_refused():
    H, W, starts, undecided, _, _ = _removal_setup(0, 4, 1, 1, 0, 1.0)
    with pytest.raises(ValueError, match="rule: 'newton'; accepted: one of scaled, adam"):
        subsets.shor_bound(H, W, starts, undecided, 2, W.copy(), 5, rule="newton")


@pytest.mark.parametrize("seed", [1, 3, 5])
def test_scaled_shor_rule_against_the_rule_before(seed):
    """At equal iterations the default step rule is within 2% of the rule before on small
    anti-correlated instances (measured on the CNN's roots: 0.04 points below to 15 points
    above, docs/benchmarks.md), and never above the brute-force minimum."""
    H, W, starts, undecided, cheapest, _ = _removal_setup(seed, 8, 2, 2, 0, 1.0)
    r = undecided.size // 2
    Z = subsets._single_costs(H, W, starts, undecided)[1]
    values = {rule: subsets.shor_bound(H, W, starts, undecided, r, Z.copy(), 1000,
                                       rule=rule).value for rule in subsets.SHOR_RULES}
    assert values["scaled"] >= 0.98 * values["adam"]
    assert max(values.values()) <= cheapest[r] * (1 + 1e-9)


@pytest.mark.parametrize("seed", [1, 3])
def test_shor_removal_bound_tighter_than_the_row_wise_bound(seed):
    """With anti-correlated channels (the super-additive removals the row-wise bound misses),
    the Shor dual after its ascent passes the row-wise bound after its own ascent from the same
    point, and stays below the brute-force minimum."""
    H, W, starts, undecided, cheapest, _ = _removal_setup(seed, 8, 2, 2, 0, 1.0)
    r = undecided.size // 2
    Z = subsets._single_costs(H, W, starts, undecided)[1]
    row_wise = subsets._removal_bound(H, W, starts, undecided, r, Z, 50, np.inf)
    shor, _ = subsets.shor_removal_bound(H, W, starts, undecided, r, Z, 1500)
    assert row_wise < shor <= cheapest[r] * (1 + 1e-9)


def _after_root_shor(seed: int, groups: int, share: float, before: int):
    """A channel-like instance with half-ish the groups kept, its brute-force optimum, and a
    search stopped after ``before`` nodes with the root's Shor bound raised into its open
    nodes; also whether the search is done."""
    k = max(1, min(groups - 2, round(share * groups)))
    problem = redundant_instance(seed, groups, 2, 2, k, tight_box=seed % 3 == 0)
    optimum = solve(problem, "brute").objective
    incumbent = Incumbent(problem, SupportSolver(problem))
    search = subsets.SubsetSearch(problem, incumbent)
    finished = _run_chunk(search, before)
    search.strengthen_root(np.inf)
    return problem, optimum, incumbent, search, finished


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), groups=st.integers(4, 9), share=st.floats(0.3, 0.7),
       before=st.integers(0, 30), chunk=st.integers(1, 40))
def test_root_shor_bound_keeps_the_search_exact(seed, groups, share, before, chunk,
                                                monkeypatch_module):
    """The root's Shor bound, raised into the open nodes after any number of nodes (and
    inherited by the later ones), keeps every open bound below the brute-force optimum and the
    search's answer equal to it; through ``run`` with a finite deadline as well."""
    monkeypatch_module.setattr(subsets, "ROOT_SHOR_GAP", -1.0)
    monkeypatch_module.setattr(subsets, "ROOT_SHOR_ITERS", 60)
    monkeypatch_module.setattr(subsets, "ROOT_SHOR_AFTER", 0.0)
    problem, optimum, incumbent, search, finished = _after_root_shor(seed, groups, share, before)
    assert search.shor_tried
    while not finished:
        assert search.open_bound() <= optimum * (1 + 1e-9) + 1e-12
        finished = _run_chunk(search, chunk)
    assert incumbent.value == pytest.approx(optimum, rel=1e-9)
    again = Incumbent(problem, SupportSolver(problem))
    assert subsets.SubsetSearch(problem, again).run(time.perf_counter() + 600.0)
    assert again.value == pytest.approx(optimum, rel=1e-9)


def _best_completion(search: subsets.SubsetSearch, level: int) -> float:
    """Brute force over the completions of the open node at ``level`` (its decided groups'
    in / out fixed, every subset of its undecided ones, at most ``k`` in all): the smallest
    no-box objective ``f(S) + lam (1 - alpha) |S|`` (below the exact objective, which adds the
    box); ``inf`` when there is none."""
    from itertools import combinations

    node = search.pending(level)
    pos = int(search.pos[level]) + (1 if search.state[level] == subsets.IN_NEXT else 0)
    alive = search.alive[level][search.starts[:-1]]
    fixed = [int(g) for g in search.order[:pos] if alive[g]]
    if node is not None:
        assert node == (pos, len(fixed))
    undecided = [int(g) for g in search.order[pos:]]
    best = np.inf
    for size in range(0, search.p.budget - len(fixed) + 1):
        for extra in combinations(undecided, size):
            chosen = fixed + list(extra)
            rows = np.concatenate([np.arange(search.starts[g], search.starts[g + 1])
                                   for g in chosen]) if chosen else np.zeros(0, dtype=np.int64)
            fit = float(search.xty[rows].ravel() @ np.linalg.solve(
                search.gram[np.ix_(rows, rows)], search.xty[rows]).ravel()) if chosen else 0.0
            best = min(best, 0.5 * (search.yy - fit) + search.price * len(chosen))
    return best


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), groups=st.integers(4, 8), share=st.floats(0.3, 0.7),
       before=st.integers(0, 30), chunk=st.integers(1, 40), iters=st.sampled_from([1, 40]),
       node_gap=st.sampled_from([-1.0, 0.3, 1.0]))
def test_open_nodes_shor_bounds_are_valid(seed, groups, share, before, chunk, iters, node_gap,
                                          monkeypatch_module):
    """Each open node's own Shor bound (from the root's multipliers restricted to it, raised
    into its stack level after any number of nodes, and during the search at the nodes within
    ``NODE_SHOR_GAP`` of pruning) stays below the brute-force best of that node's completions
    (restricted node problems: some groups fixed in, some out, a smaller cardinality); a level
    whose node has no completion is closed; and the search finishes with the brute-force
    optimum, also through ``run`` with the open phase from the start."""
    monkeypatch_module.setattr(subsets, "ROOT_SHOR_GAP", -1.0)
    monkeypatch_module.setattr(subsets, "ROOT_SHOR_ITERS", 60)
    monkeypatch_module.setattr(subsets, "NODE_SHOR_ITERS", iters)
    monkeypatch_module.setattr(subsets, "NODE_SHOR_GAP", node_gap)
    _, optimum, incumbent, search, finished = _after_root_shor(seed, groups, share, before)
    search.strengthen_open(np.inf)
    while True:
        for level in range(search.level + 1):
            if search.state[level] != subsets.DONE:
                best = _best_completion(search, level)
                assert search.bound[level] <= best * (1 + 1e-9) + 1e-9 or not np.isfinite(best)
                if search.pending(level) is None:
                    assert not np.isfinite(best)
        if finished:
            break
        # open nodes may all be worse than an incumbent that is already optimal
        assert min(incumbent.value, search.open_bound()) <= optimum * (1 + 1e-9) + 1e-12
        finished = _run_chunk(search, chunk)
    assert incumbent.value == pytest.approx(optimum, rel=1e-9)
    if node_gap < 0:
        assert search.shor_events == 0
    # through run: the root's Shor bound and the open phase at once (whatever the progress)
    monkeypatch_module.setattr(subsets, "ROOT_SHOR_AFTER", 0.0)
    monkeypatch_module.setattr(subsets, "OPEN_SHOR_AFTER", 0.0)
    monkeypatch_module.setattr(subsets, "OPEN_SHOR_PACE", np.inf)
    again = Incumbent(search.p, SupportSolver(search.p))
    searched = subsets.SubsetSearch(search.p, again)
    assert searched.run(time.perf_counter() + 600.0)
    assert searched.open_tried
    assert again.value == pytest.approx(optimum, rel=1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), sizes=st.lists(st.integers(1, 4), min_size=1, max_size=7),
       m=st.integers(1, 4))
def test_shor_products_match_numpy(seed, sizes, m):
    """The Shor ascent's compiled products (vectorised, sums reassociated) against their NumPy
    twins: ``a_g = <W_g, Z_g>``, ``Q`` the block sums of ``H .* Z Z^T`` and the gradient
    ``x~ .* W - (H .* X~) Z``, with groups of unequal sizes."""
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(len(sizes)), sizes).astype(np.int64)
    n, count = owner.size, len(sizes)
    A = rng.standard_normal((n, n))
    H, W, Z = A @ A.T, rng.standard_normal((n, m)), rng.standard_normal((n, m))
    x, X = rng.random(count), rng.random((count, count))
    a, Q = subsets._shor_pieces(H, W, Z, owner, count)
    onehot = np.eye(count)[owner]
    np.testing.assert_allclose(a, onehot.T @ np.sum(W * Z, axis=1), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(Q, onehot.T @ (H * (Z @ Z.T)) @ onehot, rtol=1e-10, atol=1e-10)
    grad = subsets._shor_gradient(H, W, Z, owner, x, X)
    twin = x[owner][:, None] * W - (H * X[np.ix_(owner, owner)]) @ Z
    np.testing.assert_allclose(grad, twin, rtol=1e-10, atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), sizes=st.lists(st.integers(1, 4), min_size=2, max_size=7),
       m=st.integers(1, 4), data=st.data())
def test_node_products_match_numpy(seed, sizes, m, data):
    """The row-wise bound's compiled pieces against their NumPy twins, with groups of unequal
    sizes: ``a``, ``Q`` (each pair's block summed once), and the ascent step, whose products run
    in single precision (a proposal only: its bound is evaluated in double), against the
    double-precision step to single precision."""
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(len(sizes)), sizes).astype(np.int64)
    n, count = owner.size, len(sizes)
    A = rng.standard_normal((n, n))
    H, W, Z = A @ A.T + n * np.eye(n), rng.standard_normal((n, m)), rng.standard_normal((n, m))
    a, Q = subsets._pieces(H, W, Z, owner, count)
    onehot = np.eye(count)[owner]
    np.testing.assert_allclose(a, onehot.T @ np.sum(W * Z, axis=1), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(Q, onehot.T @ (H * (Z @ Z.T)) @ onehot, rtol=1e-10, atol=1e-10)
    assert np.array_equal(Q, Q.T)
    r = data.draw(st.integers(2, count))
    step = subsets._ascent_step(H, W, Z, owner, a, Q, r)
    beta, _ = subsets._row_totals(Q, r)
    partners = subsets._partners(Q, r)
    select = np.zeros((count, count))
    for q in np.argsort(a - 0.5 * beta, kind="stable")[:r]:
        select[q, q] = 1.0
        select[q, partners[q]] = 1.0
    M = 0.5 * H * (select + select.T)[np.ix_(owner, owner)]
    grad = np.diag(select)[owner][:, None] * W - M @ Z
    slope, curve = float(np.sum(grad * grad)), float(np.sum(grad * (M @ grad)))
    twin = Z + (slope / curve if curve > 1e-12 * slope else 1.0) * grad if slope > 0 else Z
    scale = float(np.abs(twin).max() + np.abs(Z).max())
    np.testing.assert_allclose(step, twin, rtol=0, atol=1e-4 * scale)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), groups=st.integers(2, 8), per_group=st.integers(1, 3),
       m=st.integers(1, 3))
def test_inverse_state_matches_numpy(seed, groups, per_group, m):
    """The refresh of the search's inverse against NumPy: ``H`` the inverse of the universe's
    Gram block (zero elsewhere), ``W = H B`` and ``f(U)`` the ridge fit's half residual."""
    problem = redundant_instance(seed, groups, per_group, m, 1, tight_box=False)
    search = subsets.SubsetSearch(problem, Incumbent(problem, SupportSolver(problem)))
    rng = np.random.default_rng(seed)
    alive = np.repeat(rng.random(groups) < 0.7, per_group)
    H, W, f = subsets._inverse_state(search.gram, search.xty, search.yy, alive)
    rows = np.flatnonzero(alive)
    inverse = np.linalg.inv(search.gram[np.ix_(rows, rows)]) if rows.size else np.zeros((0, 0))
    twin = np.zeros_like(H)
    twin[np.ix_(rows, rows)] = inverse
    np.testing.assert_allclose(H, twin, rtol=1e-9, atol=1e-12 * max(np.abs(twin).max(), 1.0))
    fit = np.zeros_like(W)
    fit[rows] = inverse @ search.xty[rows]
    np.testing.assert_allclose(W, fit, rtol=1e-9, atol=1e-12 * max(np.abs(fit).max(), 1.0))
    value = 0.5 * (search.yy - float(np.sum(search.xty[rows] * fit[rows])))
    assert f == pytest.approx(value, rel=1e-9, abs=1e-9 * search.yy)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), groups=st.integers(3, 9), chunk=st.integers(1, 12))
def test_progress_rises_to_one(seed, groups, chunk):
    """The search's progress estimate (one less the tree weights ``2^-depth`` of the open nodes)
    starts at 0, never falls as nodes are searched, stays in ``[0, 1]`` and is 1 when done."""
    problem = redundant_instance(seed, groups, 2, 2, max(1, groups // 2), tight_box=False)
    search = subsets.SubsetSearch(problem, Incumbent(problem, SupportSolver(problem)))
    assert search.progress() == 0.0
    last, finished = 0.0, False
    while not finished:
        finished = _run_chunk(search, chunk)
        now = search.progress()
        assert last - 1e-12 <= now <= 1.0
        last = now
    assert last == 1.0


def _tree_instance(seed: int, groups: int, share: float) -> LayerPruningProblem:
    """A channel-like instance with anti-correlated channel pairs on odd seeds (the
    super-additive removals)."""
    k = max(1, min(groups - 1, round(share * groups)))
    problem = redundant_instance(seed, groups, 2, 2, k, tight_box=seed % 3 == 0)
    if seed % 2:
        rng = np.random.default_rng(seed)
        problem.X[:, 2:4] = -problem.X[:, :2] + 0.05 * rng.standard_normal((problem.n, 2))
    return problem


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), groups=st.integers(4, 8), share=st.floats(0.2, 0.8),
       expansions=st.integers(0, 6), iters=st.sampled_from([0, 5, 60]))
def test_certificate_tree_is_valid_and_exact(seed, groups, share, expansions, iters,
                                             monkeypatch_module):
    """The certificate tree's bound never passes the brute-force optimum after any number of
    expansions (any number of Shor iterations per node, none included), and run to the end it
    closes every node with the optimum as its incumbent."""
    monkeypatch_module.setattr(subsets, "TREE_ROOT_ITERS", iters)
    monkeypatch_module.setattr(subsets, "TREE_NODE_ITERS", iters)
    problem = _tree_instance(seed, groups, share)
    optimum = solve(problem, "brute").objective
    incumbent = Incumbent(problem, SupportSolver(problem))
    search = subsets.SubsetSearch(problem, incumbent)
    assert search.tree_bound() == -np.inf
    search.certificate_tree(np.inf, expansions)
    assert search.tree_bound() <= optimum * (1 + 1e-9) + 1e-12
    assert search.open_bound() <= optimum * (1 + 1e-9) + 1e-12
    assert incumbent.value >= optimum * (1 - 1e-12)
    assert search.certificate_tree(np.inf)
    assert incumbent.value == pytest.approx(optimum, rel=1e-9)
    assert search.tree_bound() == incumbent.value


@pytest.mark.parametrize("seed", range(4))
def test_bnb_with_the_certificate_tree_agrees(seed, monkeypatch):
    """Through bnb with the tree taking over at once (every search counted hopeless): optimal,
    equal to brute force, the bound below it."""
    problem = _tree_instance(seed, 8, 0.5)
    monkeypatch.setattr(bnb, "SUBSET_GAP", -1.0)
    monkeypatch.setattr(subsets, "TREE_AFTER", 0.0)
    monkeypatch.setattr(subsets, "TREE_PACE", 2.0)
    monkeypatch.setattr(subsets, "TREE_NODE_ITERS", 20)
    solution = bnb.solve_bnb(problem, time_limit=600.0)
    brute = solve(problem, "brute")
    assert solution.status == "optimal"
    assert solution.objective == pytest.approx(brute.objective, rel=1e-9)
    assert solution.bound <= brute.objective * (1 + 1e-9)
