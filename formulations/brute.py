"""``brute``: enumeration of every support, the reference for the tests.

Each of the ``sum_{j <= k} C(G, j)`` supports is solved exactly by
:class:`~proxcompress.formulations.restricted.SupportSolver`; the best one is optimal by
exhaustion, so ``bound == objective``. Refuses ``G > 20`` groups.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from proxcompress.errors import InvalidInputError
from proxcompress.formulations.problem import LayerPruningProblem
from proxcompress.formulations.restricted import SupportSolver
from proxcompress.formulations.solution import Solution, polish

MAX_GROUPS = 20


def solve_brute(problem: LayerPruningProblem, time_limit: float | None = None) -> Solution:
    """Enumerate all supports within the budget and return the best (ties: fewest groups,
    then lexicographically smallest). ``time_limit`` is ignored: enumeration always finishes.

    Raises:
        InvalidInputError: if the instance has more than 20 groups.
    """
    del time_limit
    if problem.n_groups > MAX_GROUPS:
        raise InvalidInputError(
            "groups",
            f"brute force enumerates 2^G supports; G = {problem.n_groups} exceeds the limit "
            f"{MAX_GROUPS}. Use the 'bnb' formulation instead",
        )
    start = time.perf_counter()
    solver = SupportSolver(problem)
    best_support: tuple[int, ...] = ()
    best_value = solver.solve(best_support)[1]
    count = 0
    for size in range(problem.budget + 1):
        for support in itertools.combinations(range(problem.n_groups), size):
            value = solver.solve(support)[1]
            count += 1
            if value < best_value - 1e-12 * max(1.0, abs(best_value)):
                best_support, best_value = support, value
    z = np.isin(np.arange(problem.n_groups), best_support).astype(float)
    return polish(problem, "brute", z, best_value, "optimal", start, count, solver)
