"""The one result type every formulation returns, and the common ending that produces it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from proxcompress.errors import SolverError
from proxcompress.formulations.problem import LayerPruningProblem
from proxcompress.formulations.restricted import SupportSolver

Status = Literal["optimal", "time_limit", "infeasible"]


def relative_gap(objective: float, bound: float) -> float:
    """``(objective - bound) / max(|objective|, 1e-10)``, clipped at 0; ``inf`` without a bound."""
    if not np.isfinite(objective) or not np.isfinite(bound):
        return float("inf")
    return max(0.0, (objective - bound) / max(abs(objective), 1e-10))


@dataclass(frozen=True)
class Solution:
    """Result of one formulation on one :class:`LayerPruningProblem`.

    Attributes:
        formulation: name of the formulation that produced it (``bigm``, ``perspective``, ...).
        support: sorted ids of the kept groups (``z_g = 1``).
        W: weights, shape ``(d, m)``, zero outside the support.
        objective: MIP objective of ``(W, support)`` evaluated by the problem itself.
        bound: best proven lower bound on the optimum.
        gap: relative gap ``(objective - bound) / |objective|``.
        status: ``optimal`` (gap closed to tolerance), ``time_limit`` or ``infeasible``.
        seconds: wall time.
        nodes: branch-and-bound nodes (or cutting-plane iterations for ``cuts``, supports for
            ``brute``).
    """

    formulation: str
    support: tuple[int, ...]
    W: NDArray[np.float64]
    objective: float
    bound: float
    gap: float
    status: Status
    seconds: float
    nodes: int

    def to_json(self) -> dict[str, Any]:
        """The JSON record of ``proxcompress solve --json``."""
        return {
            "formulation": self.formulation,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "status": self.status,
            "support": [int(g) for g in self.support],
            "W": np.asarray(self.W).tolist(),
            "seconds": self.seconds,
            "nodes": int(self.nodes),
        }


def remaining(start: float, time_limit: float | None) -> float | None:
    """Seconds left of ``time_limit`` since ``start`` (``None``: no limit); at least 1 ms."""
    if time_limit is None:
        return None
    return max(1e-3, time_limit - (time.perf_counter() - start))


def polish(
    problem: LayerPruningProblem,
    formulation: str,
    z: NDArray[np.float64],
    bound: float,
    status: Status,
    start: float,
    nodes: int,
    solver: SupportSolver | None = None,
) -> Solution:
    """The common ending of every formulation: keep the groups with ``z_g > 0.5``, re-solve that
    support exactly (:class:`SupportSolver`), clip the solver's bound to ``[0, objective]`` (0:
    every term of the objective is non-negative; a missing or infinite bound becomes 0)."""
    support = tuple(int(g) for g in np.flatnonzero(np.asarray(z) > 0.5))
    if len(support) > problem.budget:
        raise SolverError(
            f"{formulation}: the solver kept {len(support)} groups, above the budget "
            f"k = {problem.budget}"
        )
    W, objective = (solver or SupportSolver(problem)).solve(support)
    # every term of the objective is non-negative, so 0 is a bound whatever the solver said
    bound = float(bound) if np.isfinite(bound) else 0.0
    bound = min(max(bound, 0.0), objective)
    return Solution(
        formulation=formulation, support=support, W=W, objective=objective, bound=bound,
        gap=relative_gap(objective, bound), status=status,
        seconds=time.perf_counter() - start, nodes=int(nodes),
    )
