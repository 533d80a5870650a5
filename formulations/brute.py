"""``brute``: enumeration of every support, the reference for the tests.

Each of the ``N = sum_{j <= k} C(G, j)`` supports is solved exactly by
:class:`~proxcompress.formulations.restricted.SupportSolver`; the best one is optimal by
exhaustion, so ``bound == objective``. Instances with ``N >`` :data:`MAX_SUPPORTS` (``2^20``, the
count at ``G = 20`` without a budget) are refused before any work, naming ``groups`` (or ``k``
when a smaller budget would make the enumeration possible).

**Exhaustion bound.** Supports are enumerated by size. Let ``R`` be the optimum of the ridge
(box-constrained) regression on all groups without the count term: restricting the weights to
fewer groups never lowers ``loss + ridge`` below ``R``, so every support of ``s`` groups or more
costs at least ``R + lam (1 - alpha) s``. The enumeration stops (optimal) once that floor
reaches the best value found. When the clock stops it during size ``s``, every support not yet
visited keeps at least ``s`` groups, and the bound reported is ``min(best, R + lam (1 - alpha)
s)`` with status ``time_limit`` (``optimal`` if that bound already closes the gap).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from proxcompress.errors import InvalidInputError
from proxcompress.formulations.limits import Clock
from proxcompress.formulations.problem import LayerPruningProblem
from proxcompress.formulations.restricted import SupportSolver
from proxcompress.formulations.solution import Solution, Status, polish

MAX_SUPPORTS = 2**20
#: the clock is read after this many supports
CHECK_EVERY = 64


def support_count(problem: LayerPruningProblem) -> int:
    """``sum_{j <= k} C(G, j)``: the number of supports brute force enumerates."""
    return sum(math.comb(problem.n_groups, j) for j in range(problem.budget + 1))


def enumerable(problem: LayerPruningProblem) -> bool:
    """Whether :func:`solve_brute` accepts ``problem`` (at most :data:`MAX_SUPPORTS` supports)."""
    return support_count(problem) <= MAX_SUPPORTS


def solve_brute(problem: LayerPruningProblem, time_limit: float | None = None) -> Solution:
    """Enumerate all supports within the budget and return the best (ties: fewest groups,
    then lexicographically smallest).

    With ``time_limit`` the enumeration stops when the clock runs out and returns the best
    support seen with the exhaustion bound (module docstring) and status ``time_limit``.

    Raises:
        InvalidInputError: if there are more than :data:`MAX_SUPPORTS` supports to enumerate.
    """
    count = support_count(problem)
    if count > MAX_SUPPORTS:
        field = "groups"
        hint = "Use the 'bnb' formulation instead"
        if problem.k is not None:
            field = "k"
            hint += " or a smaller budget k"
        raise InvalidInputError(
            field,
            f"brute force would enumerate {count:.3g} supports (G = {problem.n_groups}, "
            f"budget {problem.budget}); the limit is {MAX_SUPPORTS} (2^20, e.g. G <= 20). {hint}",
        )
    clock = Clock(time_limit)
    solver = SupportSolver(problem)
    # the ridge optimum on all groups without the count term: the floor of every support
    price = problem.lam * (1.0 - problem.alpha)
    everything = tuple(range(problem.n_groups))
    floor = solver.solve(everything)[1] - price * problem.n_groups
    best_support: tuple[int, ...] = ()
    best_value = solver.solve(best_support)[1]
    visited = 1
    status: Status = "optimal"
    bound = best_value
    for size in range(1, problem.budget + 1):
        if floor + price * size >= best_value + 1e-9 * max(1.0, abs(best_value)):
            # no support of `size` groups or more can beat the best (a margin for round-off)
            bound = best_value
            break
        for support in itertools.combinations(range(problem.n_groups), size):
            if visited % CHECK_EVERY == 0 and clock.expired():
                status = "time_limit"
                break
            value = solver.solve(support)[1]
            visited += 1
            if value < best_value - 1e-12 * max(1.0, abs(best_value)):
                best_support, best_value = support, value
        if status == "time_limit":
            # every support not visited keeps at least `size` groups
            bound = min(best_value, floor + price * size)
            break
    else:
        bound = best_value
    z = np.isin(np.arange(problem.n_groups), best_support).astype(float)
    return polish(problem, "brute", z, bound, status, clock.start, visited, solver)
