"""The root bounds of ``benchmarks/mip_pruning.py --piece cnn-relax`` against brute force:
never above the budgeted optimum (Hypothesis over small grouped, multi-output instances), and
the exact-inner removal bound never below the Shor-free family's own point value."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from mip_bench import mip_pruning

from proxcompress.formulations import LayerPruningProblem, solve

BENCH = mip_pruning("mip_pruning_relax")


def _instance(seed: int, groups: int, size: int, m: int, k: int, rho: float,
              lam: float) -> LayerPruningProblem:
    """Correlated grouped features (nearly redundant channels when ``rho`` is near 1)."""
    rng = np.random.default_rng(seed)
    d = groups * size
    base = rng.standard_normal((40, d))
    shared = rng.standard_normal((40, 1))
    X = np.sqrt(1 - rho) * base + np.sqrt(rho) * shared * rng.uniform(0.5, 1.5, d)
    Y = X @ rng.standard_normal((d, m)) + 0.3 * rng.standard_normal((40, m))
    return LayerPruningProblem(X=X, Y=Y, groups=np.repeat(np.arange(groups), size), lam=lam,
                               alpha=0.5, M=1e6, k=k)


def _pieces(p: LayerPruningProblem):
    starts = np.concatenate([[0], np.cumsum(np.bincount(p.groups))]).astype(np.int64)
    ridge = 2.0 * p.lam * p.alpha
    gram0 = p.X.T @ p.X
    xty = p.X.T @ p.Y
    return starts, ridge, gram0, xty, float(np.sum(p.Y**2))


def _free_optimum(p: LayerPruningProblem) -> float:
    """The budgeted optimum without the box, by enumeration (supports of exactly ``k``
    groups: the loss is monotone and the price tiny next to it is still counted)."""
    starts, ridge, gram0, xty, yy = _pieces(p)
    best = np.inf
    price = p.lam * (1 - p.alpha)
    for size in range(p.k + 1):
        for S in itertools.combinations(range(p.n_groups), size):
            rows = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in S]
                                  ).astype(np.int64) if S else np.zeros(0, np.int64)
            A = gram0[np.ix_(rows, rows)] + ridge * np.eye(rows.size)
            fit = float(np.sum(xty[rows] * np.linalg.solve(A, xty[rows]))) if S else 0.0
            best = min(best, 0.5 * (yy - fit) + price * size)
    return best


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), groups=st.integers(3, 6), size=st.integers(1, 3),
       m=st.integers(1, 3), rho=st.sampled_from([0.0, 0.5, 0.95]),
       lam=st.sampled_from([1e-3, 0.1, 3.0]), data=st.data())
def test_perspective_budget_bound_never_above_the_optimum(seed, groups, size, m, rho, lam,
                                                          data) -> None:
    k = data.draw(st.integers(1, groups - 1))
    p = _instance(seed, groups, size, m, k, rho, lam)
    starts, ridge, gram0, xty, yy = _pieces(p)
    free = _free_optimum(p)
    exact = solve(p, "brute").objective  # with the box (never below the free optimum)
    assert free <= exact + 1e-7 * max(abs(exact), 1.0)
    price = p.lam * (1 - p.alpha)
    for shift in (np.zeros_like(gram0), BENCH.block_jacobi_shift(gram0, starts)):
        bound, z = BENCH.perspective_budget_bound(gram0, ridge, xty, yy, starts, k, price,
                                                  shift, iters=60)
        assert bound <= free + 1e-7 * max(abs(free), 1.0)
        assert np.all(z >= 0) and np.all(z <= 1) and abs(z.sum() - k) < 1e-6
    assert np.linalg.eigvalsh(gram0 - BENCH.block_jacobi_shift(gram0, starts))[0] >= (
        -1e-9 * np.abs(gram0).max())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), groups=st.integers(3, 6), size=st.integers(1, 3),
       m=st.integers(1, 3), rho=st.sampled_from([0.0, 0.5, 0.95]),
       lam=st.sampled_from([1e-3, 0.1, 3.0]), data=st.data())
def test_enumerated_removal_bound_never_above_the_best_removal(seed, groups, size, m, rho,
                                                               lam, data) -> None:
    """At the full universe, ``f(U) + bound`` never exceeds the best ``k``-support's
    objective (box left out), at any starting point and after the Frank-Wolfe iterations;
    the returned upper end is at least the lower end."""
    k = data.draw(st.integers(1, groups - 1))
    p = _instance(seed, groups, size, m, k, rho, lam)
    starts, ridge, gram0, xty, yy = _pieces(p)
    gram = gram0 + ridge * np.eye(p.d)
    H = np.linalg.inv(gram)
    W = H @ xty
    fit = 0.5 * (yy - float(np.sum(xty * W)))
    free = _free_optimum(p)
    r = p.n_groups - k
    Z0 = np.random.default_rng(seed).standard_normal(W.shape)
    found = BENCH.enumerated_removal_bound(H, W, starts, r, Z0, iters=20)
    tol = 1e-7 * max(abs(free), 1.0)
    assert fit + found["at_z0"] <= free + tol
    assert fit + found["best"] <= free + tol
    assert found["best"] >= found["at_z0"]
    assert found["upper"] >= found["best"] - tol
