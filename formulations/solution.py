"""The one result type every formulation returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

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
