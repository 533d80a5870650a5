"""``perspective``: the perspective reformulation as a mixed-integer conic program (CVXPY).

The ridge term of a kept group is replaced by its perspective (Cacciola, Frangioni, Li, Lodi,
arXiv:2206.14056, the perspective reformulation behind SPR; Frangioni and Gentile, *Perspective
cuts for a class of convex 0-1 mixed integer programs*, Math. Program. 106, 2006):

.. math::

    \\min\\; \\tfrac12 \\|R W - C\\|_F^2 + c_0
        + \\lambda\\alpha \\textstyle\\sum_g s_g + \\lambda(1-\\alpha)\\sum_g z_g
    \\quad\\text{s.t.}\\quad s_g z_g \\ge \\|W_g\\|_F^2,\\; s_g, z_g \\ge 0,

    |W_{ij}| \\le M z_g \\;(i \\in g),\\; z_g \\in \\{0,1\\},\\; \\textstyle\\sum_g z_g \\le k,

with the thin-QR loss compression ``X = QR``, ``C = Q^T Y`` of
:func:`~proxcompress.formulations.loss.compressed_loss`. ``s_g z_g >= ||W_g||^2`` is a rotated
second-order cone (``cp.quad_over_lin(W_g, z_g) <= s_g``). On ``z_g in {0, 1}`` it equals the
big-M model (``z_g = 0`` forces ``W_g = 0``; ``z_g = 1`` gives ``s_g >= ||W_g||^2``), but its
continuous relaxation is the convex hull of each group's term and is never weaker.

:func:`build_conic_model` builds both the big-M and the perspective model, integer or relaxed; the
relaxations of :mod:`proxcompress.formulations.relaxations` use it too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import cvxpy as cp
import numpy as np

from proxcompress.errors import InvalidInputError, SolverError
from proxcompress.formulations.bigm import SCIP_ABSGAP, SCIP_GAP
from proxcompress.formulations.limits import Clock, run_guarded
from proxcompress.formulations.loss import CompressedLoss, compressed_loss
from proxcompress.formulations.problem import LayerPruningProblem
from proxcompress.formulations.solution import Solution, Status, polish

Kind = Literal["bigm", "perspective"]
MixedIntegerSolver = Literal["ECOS_BB", "SCIP"]

#: ECOS_BB stops when ``U - L <= ECOS_BB_ABS_GAP`` or ``|U/L - 1| <= ECOS_BB_REL_GAP`` (its own
#: defaults are 1e-6 and 1e-3, far too loose to pick the right support), or when the tree is empty.
ECOS_BB_ABS_GAP = 1e-7
ECOS_BB_REL_GAP = 1e-9
#: ECOS_BB's branch-and-bound iteration cap (its default is 1000).
ECOS_BB_MAX_NODES = 100_000


@dataclass
class ConicModel:
    """A CVXPY model of the problem: ``problem`` minimizes ``objective - const``; ``W``, ``z``
    are the weights and indicators."""

    problem: cp.Problem
    W: cp.Variable
    z: cp.Variable
    const: float


def build_conic_model(
    problem: LayerPruningProblem,
    kind: Kind,
    relax: bool,
    loss: CompressedLoss | None = None,
) -> ConicModel:
    """The big-M (``kind="bigm"``) or perspective (``kind="perspective"``) model in CVXPY.

    ``relax=True`` replaces ``z_g in {0, 1}`` by ``0 <= z_g <= 1`` (continuous relaxation).
    The big-M ridge term is ``lam alpha ||W||_F^2``; the perspective one is
    ``lam alpha sum_g s_g`` with ``s_g z_g >= ||W_g||_F^2`` (rotated cone).

    Raises:
        InvalidInputError: unknown ``kind``.
    """
    if kind not in ("bigm", "perspective"):
        raise InvalidInputError("kind", f"= {kind!r}; accepted: 'bigm', 'perspective'")
    p = problem
    loss = loss if loss is not None else compressed_loss(p)
    W = cp.Variable((p.d, p.m), name="W")
    z = cp.Variable(p.n_groups, name="z", boolean=not relax)
    indicator = np.zeros((p.d, p.n_groups))
    indicator[np.arange(p.d), p.groups] = 1.0
    row_z = indicator @ z  # z_{g(i)} for every row i
    constraints: list[Any] = []
    for j in range(p.m):
        constraints += [W[:, j] <= p.M * row_z, -W[:, j] <= p.M * row_z]
    if relax:
        constraints += [z >= 0, z <= 1]
    if p.k is not None and p.k < p.n_groups:
        constraints.append(cp.sum(z) <= p.k)
    fit = 0.5 * cp.sum_squares(loss.R @ W - loss.C)
    if kind == "bigm":
        ridge = cp.sum_squares(W)
    else:
        s = cp.Variable(p.n_groups, name="s", nonneg=True)
        for g, rows in enumerate(p.group_rows):
            constraints.append(cp.quad_over_lin(W[rows, :], z[g]) <= s[g])
        ridge = cp.sum(s)
    objective = fit + p.lam * p.alpha * ridge + p.lam * (1.0 - p.alpha) * cp.sum(z)
    return ConicModel(cp.Problem(cp.Minimize(objective), constraints), W, z, loss.const)


def solve_perspective(
    problem: LayerPruningProblem,
    time_limit: float | None = None,
    solver: MixedIntegerSolver = "ECOS_BB",
) -> Solution:
    """Solve ``problem`` as the mixed-integer perspective (rotated-cone) program.

    Solvers and what ``bound``, ``nodes`` and ``status`` mean:

    - ``"ECOS_BB"`` (default; the fastest on small instances, ``docs/design.md``; CVXPY only uses
      it when asked by name): ECOS's own depth-first branch and bound, run with absolute gap
      ``1e-7`` and relative gap ``1e-9`` (its defaults, ``1e-6`` and ``1e-3``, are too loose to
      pick the right support), and a cap of 100 000 branch-and-bound iterations. It does not
      expose its lower bound:
      when it reports optimality it claims ``optimum >= U - max(1e-7, 1e-9 |U|)`` for its
      incumbent value ``U`` (each node relaxation being solved to ECOS's ~1e-8 accuracy), and
      that claim is the ``bound`` reported. ``nodes`` is ECOS_BB's iteration count
      (``mi_iter``: nodes explored). If the cap is hit, ``status`` is ``time_limit`` and
      ``bound`` is ``-inf``.
    - ``"SCIP"``: SCIP through CVXPY (cones become quadratic constraints), with
      ``limits/gap = 1e-9``, ``limits/absgap = 1e-9`` and ``limits/time`` from ``time_limit``.
      ``bound`` is SCIP's dual bound carried over to CVXPY's objective
      (``objective(x) - (P - D)`` with SCIP's primal ``P`` and dual ``D``, conservative because
      CVXPY drops constants before SCIP sees the model) and ``nodes`` is ``SCIP.getNNodes()``.
      On the time limit without any SCIP solution the empty support is returned (bound 0).

    **Time limit** (:mod:`~proxcompress.formulations.limits`): model building and the solver run
    in a guard process killed at the deadline (plus 0.15 s). ECOS_BB has no time limit of its own
    and keeps its incumbent to itself, so when the limit stops it the result is the empty
    support with the trivial bound 0 and status ``time_limit``; SCIP gets the time left after
    building the model and normally stops itself with its incumbent and dual bound.

    In both cases the final ``W`` and objective come from re-solving the solver's support exactly,
    and the bound is clipped at that objective.

    Raises:
        InvalidInputError: unknown ``solver``.
        SolverError: the solver failed, found the problem infeasible or returned no solution.
    """
    if solver not in ("ECOS_BB", "SCIP"):
        raise InvalidInputError("solver", f"= {solver!r}; accepted: 'ECOS_BB', 'SCIP'")
    clock = Clock(time_limit)
    result = run_guarded(lambda: _solve_mixed_integer(problem, solver, clock), clock)
    if result is None:  # the guard stopped the solver at the deadline: nothing came back
        empty = np.zeros(problem.n_groups)
        return polish(problem, "perspective", empty, 0.0, "time_limit", clock.start, 0)
    return polish(
        problem, "perspective", np.asarray(result["z"]), result["bound"], result["status"],
        clock.start, result["nodes"],
    )


def _solve_mixed_integer(
    problem: LayerPruningProblem, solver: MixedIntegerSolver, clock: Clock
) -> dict[str, Any]:
    """Build and solve the model (in the guard's child process under a time limit); returns
    ``z``, the bound (in the problem's objective), the status and the node count."""
    model = build_conic_model(problem, "perspective", relax=False)
    if solver == "ECOS_BB":
        options: dict[str, Any] = dict(
            mi_abs_eps=ECOS_BB_ABS_GAP, mi_rel_eps=ECOS_BB_REL_GAP, mi_max_iters=ECOS_BB_MAX_NODES
        )
    else:
        params: dict[str, float] = {"limits/gap": SCIP_GAP, "limits/absgap": SCIP_ABSGAP}
        left = clock.left()
        if left is not None:
            params["limits/time"] = left
        options = dict(scip_params=params)
    try:
        with warnings.catch_warnings():
            # "Solution may be inaccurate": SCIP's time limit / ECOS_BB's cap, handled below.
            warnings.simplefilter("ignore", UserWarning)
            model.problem.solve(solver=solver, **options)
    except cp.error.SolverError as exc:
        out_of_time = clock.time_limit is not None and clock.elapsed() >= 0.9 * clock.time_limit
        if solver == "SCIP" and out_of_time:  # CVXPY reports "no solution yet" as a failure
            return {"z": [0.0] * problem.n_groups, "bound": 0.0, "status": "time_limit",
                    "nodes": 0}
        raise SolverError(f"perspective: {solver} failed: {exc}") from exc
    cvx_status = model.problem.status
    if model.z.value is None or model.W.value is None:
        raise SolverError(f"perspective: {solver} returned no solution (status {cvx_status!r})")
    value = float(model.problem.objective.value)  # evaluated at the solution, without c_0
    status: Status
    if solver == "SCIP":
        scip = model.problem.solver_stats.extra_stats["model"]
        scip_status = scip.getStatus()
        nodes = int(scip.getNNodes())
        if scip_status in ("optimal", "gaplimit"):
            status = "optimal"
        elif scip_status == "timelimit":
            status = "time_limit"
        else:
            raise SolverError(f"perspective: SCIP ended with status {scip_status!r}")
        bound = value - (scip.getSolObjVal(scip.getBestSol()) - scip.getDualbound())
    else:
        nodes = int(model.problem.solver_stats.extra_stats["info"].get("mi_iter", 0))
        if cvx_status == cp.OPTIMAL:
            status = "optimal"
            bound = value - max(ECOS_BB_ABS_GAP, ECOS_BB_REL_GAP * abs(value))
        elif cvx_status == cp.OPTIMAL_INACCURATE:  # ECOS_BB: iteration cap hit, incumbent kept
            status, bound = "time_limit", -np.inf
        else:
            raise SolverError(f"perspective: ECOS_BB ended with status {cvx_status!r}")
    return {
        "z": np.asarray(model.z.value, dtype=float).ravel().tolist(),
        "bound": float(bound + model.const),
        "status": status,
        "nodes": nodes,
    }
