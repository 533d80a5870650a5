"""Exact structured pruning of one layer as a mixed-integer program.

One problem (:class:`LayerPruningProblem`), several formulations, one result type
(:class:`Solution`):

=============== ============================================================ ===============
name            formulation                                                  solver
=============== ============================================================ ===============
``bigm``        big-M MIQP, epigraph + residual variables (Pyomo)            SCIP via ``.nl``
``perspective`` perspective reformulation, rotated cones (CVXPY)              ECOS_BB or SCIP
``cuts``        perspective cuts: outer approximation, a sequence of MILPs  HiGHS (Pyomo)
``bnb``         own branch-and-bound on the perspective relaxation           this package
``brute``       enumeration of supports (reference, ``G <= 20``)             this package
=============== ============================================================ ===============

Also: :func:`relaxation` (continuous relaxations and root gaps), :mod:`.spr` (the Structured
Perspective Regularizer closed form) and :mod:`.prox` (ProxConnect proximal problems).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from proxcompress.checks import check_arguments
from proxcompress.errors import InvalidInputError
from proxcompress.formulations import instances as _instances
from proxcompress.formulations import restricted as _restricted
from proxcompress.formulations.problem import LayerPruningProblem
from proxcompress.formulations.solution import Solution

# the package's entry points check their arguments' types (proxcompress.checks)
random_instance = check_arguments(_instances.random_instance)
solve_support = check_arguments(_restricted.solve_support)

# name -> (module, function); modules are imported on first use so that importing this package
# never loads Pyomo or CVXPY.
_FORMULATIONS: dict[str, tuple[str, str]] = {
    "bigm": ("proxcompress.formulations.bigm", "solve_bigm"),
    "perspective": ("proxcompress.formulations.perspective", "solve_perspective"),
    "cuts": ("proxcompress.formulations.cuts", "solve_cuts"),
    "bnb": ("proxcompress.formulations.bnb", "solve_bnb"),
    "brute": ("proxcompress.formulations.brute", "solve_brute"),
}

FORMULATIONS: tuple[str, ...] = tuple(_FORMULATIONS)


@check_arguments
def get_formulation(name: str) -> Callable[..., Solution]:
    """The solve function registered under ``name`` (one of :data:`FORMULATIONS`)."""
    if name not in _FORMULATIONS:
        raise InvalidInputError(
            "formulation", f"{name!r} is unknown; accepted: {', '.join(FORMULATIONS)}"
        )
    module, function = _FORMULATIONS[name]
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


@check_arguments
def solve(
    problem: LayerPruningProblem,
    formulation: str = "bnb",
    time_limit: float | None = None,
    warm_start: Sequence[Sequence[int]] = (),
) -> Solution:
    """Solve ``problem`` with the named formulation.

    Args:
        problem: the instance.
        formulation: one of :data:`FORMULATIONS`.
        time_limit: wall-clock limit in seconds (``None``: no limit). The formulation returns
            within ``time_limit + limits.ALLOWANCE`` (0.5 s) with the best solution and a valid
            bound, and ``status == "time_limit"`` unless it proved optimality
            (:mod:`~proxcompress.formulations.limits`, docs/formulations.md "Time limits").
        warm_start: supports (lists of group ids) offered to ``bnb`` as first incumbents and
            local-search starts; only ``bnb`` takes them.

    Raises:
        InvalidInputError: naming the argument: ``problem`` not a :class:`LayerPruningProblem`,
            an unknown ``formulation``, a ``time_limit`` that is not a number > 0, or warm
            starts for a formulation other than ``bnb`` (or naming groups outside the instance
            / above the budget).
    """
    if time_limit is not None and not time_limit > 0:
        raise InvalidInputError("time_limit", f"= {time_limit} must be > 0 seconds")
    solver = get_formulation(formulation)
    if warm_start:
        if formulation != "bnb":
            raise InvalidInputError(
                "warm_start", f"only the 'bnb' formulation takes warm starts, not {formulation!r}"
            )
        return solver(problem, time_limit=time_limit, warm_start=warm_start)
    return solver(problem, time_limit=time_limit)


__all__ = [
    "FORMULATIONS",
    "LayerPruningProblem",
    "Solution",
    "get_formulation",
    "random_instance",
    "solve",
    "solve_support",
]
