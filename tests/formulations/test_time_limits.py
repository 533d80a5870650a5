"""Time limits of every formulation (issue 13): a solve under ``time_limit = T`` returns within
``T + ALLOWANCE`` seconds (the documented bound of :mod:`proxcompress.formulations.limits`)
with a valid solution and bound, and its status says whether the limit stopped it.

These assert an upper bound on time that the code promises (a correctness property of the
limit), not a speed. The cases are generated: for each formulation, limits drawn in
[0.2, 1] s on instances that no formulation proves within a second (weak signal, correlated
features; brute force with a million supports). The one-time costs of the first solve in a
process (imports, Pyomo's plugins, loading bnb's compiled kernels) are paid by a warm-up
before the clock, as documented.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable

import numpy as np
import pytest

from proxcompress.cli import main
from proxcompress.formulations import LayerPruningProblem, Solution, random_instance, solve
from proxcompress.formulations.instances import sparse_regression_instance
from proxcompress.formulations.limits import ALLOWANCE
from proxcompress.formulations.perspective import solve_perspective

RUNNERS: dict[str, Callable[[LayerPruningProblem, float | None], Solution]] = {
    "bnb": lambda p, t: solve(p, "bnb", time_limit=t),
    "brute": lambda p, t: solve(p, "brute", time_limit=t),
    "bigm": lambda p, t: solve(p, "bigm", time_limit=t),
    "perspective": lambda p, t: solve(p, "perspective", time_limit=t),
    "perspective-scip": lambda p, t: solve_perspective(p, t, solver="SCIP"),
    "cuts": lambda p, t: solve(p, "cuts", time_limit=t),
}


@functools.cache
def hard_instance(name: str, seed: int) -> LayerPruningProblem:
    """An instance ``name`` cannot prove optimal within a second."""
    if name == "brute":  # 2^20 supports, most groups worth keeping (so none can be skipped)
        return random_instance(200, 20, 1, 20, seed, snr=20.0, active=0.9, alpha=0.5)
    if name == "bnb":  # equicorrelated, weak signal, p > n
        return sparse_regression_instance(150, 300, seed, rho=0.5, snr=1.0, planted=20)
    return random_instance(400, 60, 1, 60, seed, rho=0.8, snr=0.5, alpha=0.05)


def generated_cases(count: int, seed: int) -> list[tuple[str, int, float]]:
    """``count`` (formulation, instance seed, limit) triples per formulation."""
    rng = np.random.default_rng(seed)
    return [
        (name, int(rng.integers(0, 1000)), round(float(rng.uniform(0.2, 1.0)), 2))
        for name in RUNNERS
        for _ in range(count)
    ]


@pytest.fixture(scope="module", autouse=True)
def warm_up() -> None:
    """Imports, plugin loading and JIT: once per process, before any clock (documented)."""
    tiny = random_instance(40, 4, 1, 4, seed=0)
    for runner in RUNNERS.values():
        runner(tiny, None)


def _slowdown() -> float:
    """How much slower than its own CPU time this process runs right now (>= 1): wall time over
    thread CPU time of a short fixed loop. 1 on an idle machine; larger when other processes
    share the cores, which stretches the wall time between two clock checks of any solver."""
    start_wall, start_cpu = time.perf_counter(), time.thread_time()
    acc = 0
    for i in range(300_000):
        acc ^= i * i
    wall, cpu = time.perf_counter() - start_wall, time.thread_time() - start_cpu
    return max(1.0, wall / max(cpu, 1e-6))


def _check(name: str, seed: int, limit: float) -> None:
    problem = hard_instance(name, seed)
    # One retry: a case fails only if it overshoots twice in a row; the allowance is scaled by
    # the measured slowdown of a shared machine (another process taking the cores mid-solve
    # stretches the wall time between clock checks), so on an idle machine the documented
    # ALLOWANCE is what is asserted, and an overshoot of the code itself still fails.
    for _attempt in range(2):
        allowance = ALLOWANCE * _slowdown()
        start = time.perf_counter()
        solution = RUNNERS[name](problem, limit)
        wall = time.perf_counter() - start
        allowance = max(allowance, ALLOWANCE * _slowdown())
        if wall <= limit + allowance:
            break
    assert wall <= limit + allowance, f"{name}: {wall:.3f} s at a {limit} s limit, twice"
    assert solution.seconds <= wall
    # the limit stopped it, and the status says so; the solution and bound stay valid
    assert solution.status == "time_limit", name
    assert wall >= 0.9 * limit
    assert solution.bound <= solution.objective
    assert solution.objective == pytest.approx(
        problem.objective(solution.W, solution.support), rel=1e-9
    )
    assert len(solution.support) <= problem.budget


@pytest.mark.parametrize(("name", "seed", "limit"), generated_cases(1, seed=13))
def test_limit_is_kept(name: str, seed: int, limit: float) -> None:
    _check(name, seed, limit)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "seed", "limit"), generated_cases(3, seed=14))
def test_limit_is_kept_more(name: str, seed: int, limit: float) -> None:
    _check(name, seed, limit)


def test_limit_that_is_not_reached_changes_nothing() -> None:
    """An easy instance under a limit is proved optimal, as without one."""
    problem = random_instance(100, 8, 1, 8, seed=3)
    for name, runner in RUNNERS.items():
        free, limited = runner(problem, None), runner(problem, 30.0)
        assert limited.status == free.status == "optimal", name
        assert limited.support == free.support, name


def test_guard_survives_killed_children() -> None:
    """Children killed at the deadline (in the middle of Pyomo, SCIP or HiGHS) leave nothing
    behind: later guarded and in-process solves of the same process still finish (a killed
    child once held Pyomo's process-shared output lock; HiGHS's thread scheduler does not
    survive fork)."""
    hard = hard_instance("cuts", 7)
    for limit in (0.2, 0.35, 0.5):
        for name in ("cuts", "bigm", "perspective"):
            assert RUNNERS[name](hard, limit).status == "time_limit"
    easy = random_instance(100, 8, 1, 8, seed=3)
    for name in ("cuts", "bigm", "perspective", "perspective-scip"):
        start = time.perf_counter()
        assert RUNNERS[name](easy, 20.0).status == "optimal", name
        assert RUNNERS[name](easy, None).status == "optimal", name
        assert time.perf_counter() - start < 10.0, name


def test_cli_exit_code_three_on_the_limit(tmp_path) -> None:
    """``solve`` exits 3 when the limit stops the solver (here ECOS_BB, which has no limit of
    its own and is stopped by the guard), reporting the solution and bound it has."""
    path = tmp_path / "hard.npz"
    hard_instance("perspective", 0).to_npz(path)
    out = tmp_path / "sol.json"
    start = time.perf_counter()
    code = main(["solve", str(path), "--formulation", "perspective", "--time-limit", "0.3",
                 "--json", str(out)])
    wall = time.perf_counter() - start
    assert code == 3
    record = json.loads(out.read_text())
    assert record["status"] == "time_limit"
    assert record["bound"] <= record["objective"]
    assert wall <= 0.3 + ALLOWANCE + 0.5  # + loading the instance and writing the JSON
