"""Every formulation on rank-deficient data, against brute force (issue 13: centred data with
p >= n, duplicate, zero and constant columns are ordinary data, not errors).

The cases are generated: a kind of degeneracy, sizes, groups, outputs and a budget. With
duplicate columns several supports share the optimum, so the supports are compared through
their exact objectives, not as sets.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxcompress.formulations import LayerPruningProblem, Solution, solve, solve_support
from proxcompress.formulations.bnb import solve_bnb
from proxcompress.formulations.instances import sparse_regression_instance
from proxcompress.formulations.perspective import solve_perspective
from proxcompress.formulations.shifts import SHIFTS, factor_shifted

KINDS = ("square-centred", "wide-centred", "duplicate", "zero", "constant", "centred-constant")


def degenerate_instance(
    kind: str, seed: int, n: int, d: int, m: int = 1, per_group: int = 1,
    k: int | None = None, lam: float = 0.02, alpha: float = 0.5, M: float = 1.0,
) -> LayerPruningProblem:
    """Unit-norm features with the degeneracy ``kind`` built in:

    - ``square-centred``: n = d, centred columns (rank d - 1: the issue's recipe);
    - ``wide-centred``: n < d, centred;
    - ``duplicate``: column 1 repeats column 0, column 3 is -2 x column 2;
    - ``zero``: column 2 is zero; ``constant``: column 0 is all ones (not centred);
    - ``centred-constant``: a constant column centred (so zero) among centred columns.
    """
    rng = np.random.default_rng(seed)
    rows = {"square-centred": d, "wide-centred": max(2, d // 2)}.get(kind, n)
    X = rng.standard_normal((rows, d))
    if kind in ("square-centred", "wide-centred", "centred-constant"):
        X -= X.mean(axis=0)
    if kind == "duplicate":
        X[:, 1] = X[:, 0]
        X[:, 3] = -2.0 * X[:, 2]
    elif kind == "zero":
        X[:, 2] = 0.0
    elif kind == "constant":
        X[:, 0] = 1.0
    elif kind == "centred-constant":
        X[:, 0] = 0.0  # a constant column, centred
    norms = np.linalg.norm(X, axis=0)
    X /= np.where(norms > 0, norms, 1.0)
    w = np.zeros((d, m))
    w[rng.choice(d, size=min(3, d), replace=False)] = rng.choice([-1.0, 1.0], size=(min(3, d), m))
    Y = X @ w + 0.05 * rng.standard_normal((rows, m))
    groups = np.arange(d) // per_group
    return LayerPruningProblem(X=X, Y=Y, groups=groups, lam=lam, alpha=alpha, M=M, k=k)


def _assert_matches(problem: LayerPruningProblem, ref: Solution, sol: Solution) -> None:
    assert sol.status == "optimal", sol.formulation
    assert sol.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-9), sol.formulation
    # the support reported really has that value (ties between duplicates are fine)
    assert solve_support(problem, sol.support)[1] == pytest.approx(sol.objective, rel=1e-9)
    assert sol.bound <= ref.objective * (1 + 1e-8) + 1e-12
    assert sol.bound <= sol.objective
    assert len(sol.support) <= problem.budget


CASES: list[dict[str, Any]] = [
    dict(kind=kind, seed=seed, n=30, d=10, **extra)
    for seed, (kind, extra) in enumerate(
        [
            ("square-centred", {}),
            ("wide-centred", {"m": 2}),
            ("duplicate", {"k": 3}),
            ("zero", {"per_group": 2}),
            ("constant", {"m": 2, "k": 2}),
            ("centred-constant", {"alpha": 0.2}),
        ]
    )
]

SOLVERS = {
    "bigm": lambda p: solve(p, "bigm"),
    "perspective": lambda p: solve(p, "perspective"),
    "perspective-scip": lambda p: solve_perspective(p, solver="SCIP"),
    "cuts": lambda p: solve(p, "cuts"),
    "bnb": lambda p: solve(p, "bnb"),
}


@functools.cache
def _case(index: int) -> tuple[LayerPruningProblem, Solution]:
    problem = degenerate_instance(**CASES[index])
    return problem, solve(problem, "brute")


@pytest.mark.parametrize("name", list(SOLVERS))
@pytest.mark.parametrize("index", range(len(CASES)), ids=[c["kind"] for c in CASES])
def test_every_formulation_on_degenerate_data(index: int, name: str) -> None:
    problem, ref = _case(index)
    _assert_matches(problem, ref, SOLVERS[name](problem))


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    seed=st.integers(0, 2**16),
    d=st.integers(5, 11),
    m=st.integers(1, 2),
    per_group=st.sampled_from([1, 1, 2]),
    budget=st.sampled_from([None, 2, 4]),
    alpha=st.sampled_from([0.05, 0.5, 0.9]),
    shift=st.sampled_from([0.0, 0.95, 1.0]),
)
def test_bnb_on_degenerate_data(kind, seed, d, m, per_group, budget, alpha, shift):
    """bnb, with any share of the diagonal shift, against brute force on generated degenerate
    instances."""
    problem = degenerate_instance(kind, seed, n=3 * d, d=d, m=m, per_group=per_group, k=budget,
                                  alpha=alpha)
    _assert_matches(problem, solve(problem, "brute"), solve_bnb(problem, diagonal_shift=shift))


def test_issue_instance_solves():
    """The reported crash: n = p = 300 centred unit-norm columns, y from 10 of them at SNR 10,
    lam 0.02, alpha 0.5, M 1 (LinAlgError before). Here at n = p = 40 (which failed the same
    way) so that the check stays short; the shift must be zero since X^T X is singular."""
    problem = sparse_regression_instance(40, 40, seed=0)
    gram = problem.X.T @ problem.X
    for kind, shift in SHIFTS.items():
        assert not np.any(factor_shifted(gram, shift(gram, 0.95).delta)[0] > 0), kind
    solution = solve_bnb(problem)
    assert solution.status == "optimal"
    assert solution.bound <= solution.objective


@pytest.mark.slow
def test_issue_instance_full_size():
    """The issue's instance at its size (n = p = 300): solved to optimality."""
    problem = sparse_regression_instance(300, 300, seed=0)
    solution = solve_bnb(problem)
    assert solution.status == "optimal"
    assert solution.gap <= 1e-9


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 40), d=st.integers(1, 40),
       copies=st.integers(0, 3), scale=st.sampled_from([1e-150, 1e-8, 1.0, 1e8, 1e150]),
       kind=st.sampled_from(sorted(SHIFTS)), uneven=st.booleans())
def test_shifts_are_safe(seed, n, d, copies, scale, kind, uneven):
    """Every shift kind leaves X^T X - Diag(delta) positive semi-definite for any data
    (centred, wide, duplicated columns, extreme and uneven scales), and the factor returned is
    that matrix's."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X -= X.mean(axis=0)
    X = np.hstack([X] + [X[:, :1]] * copies) * scale
    if uneven:
        X *= np.geomspace(1e-3, 1e3, X.shape[1])
    gram = X.T @ X
    delta, upper = factor_shifted(gram, *SHIFTS[kind](gram, 0.95))
    assert np.all(delta >= 0.0)
    if np.any(delta > 0):
        assert upper is not None
        shifted = gram - np.diag(delta)
        assert np.allclose(upper.T @ upper, shifted, rtol=1e-8, atol=1e-10 * abs(gram).max())
        assert np.linalg.eigvalsh(shifted)[0] >= -1e-9 * abs(gram).max()
    if n <= gram.shape[0] or copies:
        assert not np.any(delta > 0)
