"""The exact formulations (bigm, perspective with ECOS_BB and SCIP, cuts) against brute force."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from proxcompress.errors import InvalidInputError
from proxcompress.formulations import LayerPruningProblem, Solution, random_instance, solve
from proxcompress.formulations.bigm import solve_bigm
from proxcompress.formulations.brute import solve_brute
from proxcompress.formulations.cuts import solve_cuts
from proxcompress.formulations.perspective import solve_perspective

REL_TOL = 1e-6  # objectives agree with brute force to this relative tolerance

SOLVERS: dict[str, Callable[..., Solution]] = {
    "bigm": solve_bigm,
    "perspective": solve_perspective,
    "perspective-scip": functools.partial(solve_perspective, solver="SCIP"),
    "cuts": solve_cuts,
}

# Random instances: sizes, correlation (rho 0 / 0.8), signal strength, alpha, budget k set/unset,
# one with n < d (rank-deficient X). Up to 16 groups; brute force enumerates them all.
GRID: list[dict[str, Any]] = [
    dict(n=60, d=8, m=1, n_groups=4, seed=0),
    dict(n=40, d=12, m=3, n_groups=6, seed=1, rho=0.8, alpha=0.5),
    dict(n=100, d=10, m=2, n_groups=10, seed=2, snr=0.5, k=3),
    dict(n=30, d=24, m=1, n_groups=8, seed=3, rho=0.8, snr=1.0, alpha=0.1),
    dict(n=20, d=30, m=2, n_groups=10, seed=4, k=2),
    dict(n=150, d=32, m=1, n_groups=16, seed=6, rho=0.8, k=4),
    dict(n=200, d=16, m=1, n_groups=16, seed=5, rho=0.8, snr=0.5, alpha=0.8),
]
SLOW_GRID: list[dict[str, Any]] = [
    dict(n=80, d=16, m=2, n_groups=16, seed=7, snr=2.0, alpha=0.3),
    dict(n=300, d=32, m=1, n_groups=16, seed=8, rho=0.8, snr=0.5, alpha=0.05),
    dict(n=50, d=40, m=3, n_groups=14, seed=9, rho=0.8, k=5),
    dict(n=400, d=16, m=1, n_groups=16, seed=10, snr=8.0, alpha=0.9),
    dict(n=120, d=24, m=2, n_groups=12, seed=11, rho=0.8, snr=0.3),
    dict(n=60, d=15, m=1, n_groups=15, seed=12, k=0),
]


@functools.cache
def _instance(key: str) -> tuple[LayerPruningProblem, Solution]:
    params = dict(eval(key))  # noqa: S307 - keys are repr()s of the dicts above
    problem = random_instance(**params)
    return problem, solve_brute(problem)


def _case(params: dict[str, Any]) -> tuple[LayerPruningProblem, Solution]:
    return _instance(repr(sorted(params.items())))


def _check_valid(problem: LayerPruningProblem, sol: Solution, name: str) -> None:
    """Invariants every Solution must satisfy, optimal or not."""
    assert sol.W.shape == (problem.d, problem.m)
    assert list(sol.support) == sorted(set(sol.support))
    assert len(sol.support) <= problem.budget
    assert np.isclose(problem.objective(sol.W, sol.support), sol.objective, rtol=1e-9, atol=0)
    assert sol.bound <= sol.objective
    assert sol.gap >= 0.0
    assert sol.seconds > 0.0 and sol.nodes >= 0
    assert sol.formulation == name.split("-")[0]


def _check_against_brute(params: dict[str, Any], name: str) -> None:
    problem, ref = _case(params)
    sol = SOLVERS[name](problem)
    _check_valid(problem, sol, name)
    assert sol.status == "optimal"
    assert sol.support == ref.support
    assert abs(sol.objective - ref.objective) <= REL_TOL * abs(ref.objective)
    # The bound is a lower bound of the true optimum (up to the solvers' tolerances).
    assert sol.bound <= ref.objective * (1 + 1e-8)
    assert sol.gap <= REL_TOL


@pytest.mark.parametrize("name", list(SOLVERS))
@pytest.mark.parametrize("params", GRID, ids=lambda p: f"G{p['n_groups']}-s{p['seed']}")
def test_agrees_with_brute(params: dict[str, Any], name: str) -> None:
    _check_against_brute(params, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SOLVERS))
@pytest.mark.parametrize("params", SLOW_GRID, ids=lambda p: f"G{p['n_groups']}-s{p['seed']}")
def test_agrees_with_brute_more(params: dict[str, Any], name: str) -> None:
    _check_against_brute(params, name)


@pytest.mark.parametrize("name", ["bigm", "perspective", "cuts"])
def test_registry_dispatches(name: str) -> None:
    problem, ref = _case(GRID[0])
    sol = solve(problem, name)
    assert sol.formulation == name
    assert sol.support == ref.support


HARD = dict(n=500, d=30, m=1, n_groups=30, seed=0, rho=0.8, snr=0.5)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_tiny_time_limit(name: str) -> None:
    """A 30-group weak-signal instance under a 0.05 s limit: either the limit is reported with a
    valid solution and bound, or the solver finished (tests/formulations/test_time_limits.py
    checks the wall time itself)."""
    problem = random_instance(**HARD)
    sol = SOLVERS[name](problem, time_limit=0.05)
    _check_valid(problem, sol, name)
    assert sol.status in ("time_limit", "optimal")
    if sol.status == "optimal":
        assert sol.gap <= REL_TOL
    assert sol.seconds < 10.0


@pytest.mark.slow
def test_formulations_agree_on_30_groups() -> None:
    """Beyond brute force: the exact formulations agree with each other (and their bounds)."""
    for params in (dict(HARD), dict(HARD, rho=0.0, snr=4.0), dict(HARD, k=3)):
        problem = random_instance(**params)
        sols = {name: solver(problem) for name, solver in SOLVERS.items()}
        best = min(s.objective for s in sols.values())
        for name, sol in sols.items():
            _check_valid(problem, sol, name)
            assert sol.status == "optimal", name
            assert abs(sol.objective - best) <= REL_TOL * abs(best), name
            assert sol.bound <= best * (1 + 1e-8), name
        assert len({s.support for s in sols.values()}) == 1


def test_unknown_solver_rejected() -> None:
    problem, _ = _case(GRID[0])
    with pytest.raises(InvalidInputError, match="solver"):
        solve_perspective(problem, solver="GUROBI")  # type: ignore[arg-type]
