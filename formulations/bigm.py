"""``bigm``: the big-M MIQP of the SPR paper, modelled in Pyomo and solved by SCIP.

The model (Cacciola, Frangioni, Li, Lodi, *Structured Pruning of Neural Networks for Constraints
Learning*, arXiv:2206.14056, the big-M MIP of one layer), with the loss written through compressed
residuals and an epigraph:

.. math::

    \\min\\; t + \\lambda\\alpha \\textstyle\\sum_g s_g + \\lambda(1-\\alpha)\\sum_g z_g + c_0
    \\quad\\text{s.t.}\\quad
    r = R W - C,\\quad t \\ge \\tfrac12 \\|r\\|_F^2,\\quad s_g \\ge \\|W_g\\|_F^2,

    |W_{ij}| \\le M z_g \\;(i \\in g),\\; z_g \\in \\{0,1\\},\\; \\textstyle\\sum_g z_g \\le k,

where ``X = Q R`` is the thin QR factorization, ``C = Q^T Y`` and
``c_0 = 1/2 ||Y - Q Q^T Y||_F^2``, so that ``1/2 ||Y - XW||^2 = 1/2 ||RW - C||^2 + c_0`` with
only ``min(n, d) * m`` residual variables instead of ``n * m``. The constant ``c_0`` is added back
outside the solver. The epigraph form matters: SCIP with the quadratic directly in the objective
needed ~29k nodes where the epigraph + residual model needed 5-11 (``docs/design.md``); weak
signals still need hundreds (803 on ``random_instance(500, 30, 1, 30, 0, rho=0.8, snr=0.5)``).

SCIP 10 ships inside pyscipopt without an executable, so Pyomo cannot call it; the model goes
through an AMPL ``.nl`` file: Pyomo writes it with symbolic labels, ``pyscipopt.Model.readProblem``
reads it (SCIP names the variables after the ``.col`` file) and values map back by name.
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any

import numpy as np

from proxcompress.errors import SolverError
from proxcompress.formulations.limits import Clock, run_guarded
from proxcompress.formulations.loss import CompressedLoss, compressed_loss
from proxcompress.formulations.problem import LayerPruningProblem
from proxcompress.formulations.solution import Solution, Status, polish

if TYPE_CHECKING:  # pragma: no cover
    import pyomo.environ as pyo

#: SCIP's gap limits: relative ``limits/gap`` and absolute ``limits/absgap``.
SCIP_GAP = 1e-9
SCIP_ABSGAP = 1e-9

#: SCIP settings: on ``random_instance(n=500, d=30, m=1, n_groups=30)`` the aggregation (c-MIR)
#: separator spent most of the time on the dense residual rows and the MPEC heuristic found
#: nothing; with both off, four test instances (10-30 groups, rho 0 / 0.5 / 0.8, m = 1 / 3) ran
#: 1.5-3x faster (e.g. 3.6 s -> 1.2 s, 6.9 s -> 4.5 s; shared 2-core machine).
SCIP_PARAMS: dict[str, float | int] = {
    "separating/aggregation/freq": -1,
    "heuristics/mpec/freq": -1,
}


def build_bigm_model(problem: LayerPruningProblem, loss: CompressedLoss) -> pyo.ConcreteModel:
    """The Pyomo big-M model above (without the constant ``c_0``).

    Components: ``W[i, j]`` in ``[-M, M]``, ``z[g]`` binary, ``r[a, j]`` residuals, ``t`` the loss
    epigraph, ``s[g]`` the ridge epigraph of group ``g``.
    """
    import pyomo.environ as pyo

    p = problem
    rows, cols, groups = range(p.d), range(p.m), range(p.n_groups)
    res_rows = range(loss.R.shape[0])
    model = pyo.ConcreteModel(name="bigm")
    model.W = pyo.Var(rows, cols, bounds=(-p.M, p.M))
    model.z = pyo.Var(groups, domain=pyo.Binary)
    model.r = pyo.Var(res_rows, cols)
    model.t = pyo.Var(bounds=(0, None))
    model.s = pyo.Var(groups, bounds=(0, None))

    R, C = loss.R, loss.C
    model.residual = pyo.Constraint(
        res_rows, cols,
        rule=lambda m, a, j: m.r[a, j]
        == pyo.quicksum(float(R[a, i]) * m.W[i, j] for i in rows if R[a, i] != 0.0)
        - float(C[a, j]),
    )
    model.loss = pyo.Constraint(
        expr=model.t >= 0.5 * pyo.quicksum(model.r[a, j] ** 2 for a in res_rows for j in cols)
    )
    model.ridge = pyo.Constraint(
        groups,
        rule=lambda m, g: m.s[g]
        >= pyo.quicksum(m.W[int(i), j] ** 2 for i in p.group_rows[g] for j in cols),
    )
    group_of = p.groups
    model.upper = pyo.Constraint(
        rows, cols, rule=lambda m, i, j: m.W[i, j] <= p.M * m.z[int(group_of[i])]
    )
    model.lower = pyo.Constraint(
        rows, cols, rule=lambda m, i, j: -m.W[i, j] <= p.M * m.z[int(group_of[i])]
    )
    if p.k is not None and p.k < p.n_groups:
        model.budget = pyo.Constraint(expr=pyo.quicksum(model.z[g] for g in groups) <= p.k)
    model.objective = pyo.Objective(
        expr=model.t
        + p.lam * p.alpha * pyo.quicksum(model.s[g] for g in groups)
        + p.lam * (1.0 - p.alpha) * pyo.quicksum(model.z[g] for g in groups),
        sense=pyo.minimize,
    )
    return model


def _solve_nl_with_scip(
    model: Any, clock: Clock
) -> tuple[dict[str, float] | None, float, str, int]:
    """Write ``model`` as ``.nl``, solve it with SCIP; returns (values by ``.col`` name or
    ``None`` when SCIP stopped on the clock before any solution, dual bound, SCIP status,
    nodes)."""
    import pyscipopt

    with tempfile.TemporaryDirectory(prefix="proxcompress-bigm-") as tmp:
        path = os.path.join(tmp, "bigm.nl")
        model.write(path, format="nl", io_options={"symbolic_solver_labels": True})
        with open(os.path.join(tmp, "bigm.col"), encoding="utf-8") as handle:
            names = [line.strip() for line in handle if line.strip()]
        scip = pyscipopt.Model()
        scip.hideOutput()
        try:
            scip.readProblem(path)
        except Exception as exc:  # pyscipopt raises plain Exception on reader errors
            raise SolverError(f"bigm: SCIP could not read the .nl model: {exc}") from exc
    scip.setParam("limits/gap", SCIP_GAP)
    scip.setParam("limits/absgap", SCIP_ABSGAP)
    for key, value in SCIP_PARAMS.items():
        scip.setParam(key, value)
    left = clock.left()  # after writing and reading the model
    if left is not None:
        scip.setParam("limits/time", float(left))
    scip.optimize()
    status = scip.getStatus()
    dual = float(scip.getDualbound())
    if scip.isInfinity(abs(dual)):
        dual = -np.inf
    if scip.getNSols() == 0:
        if status == "timelimit":
            return None, dual, status, int(scip.getNNodes())
        raise SolverError(f"bigm: SCIP found no solution (status {status!r})")
    by_name = {var.name: var for var in scip.getVars()}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise SolverError(f"bigm: SCIP lost the variables {missing[:5]} of the .col file")
    best = scip.getBestSol()
    values = {name: float(scip.getSolVal(best, by_name[name])) for name in names}
    return values, dual, status, int(scip.getNNodes())


def solve_bigm(problem: LayerPruningProblem, time_limit: float | None = None) -> Solution:
    """Solve ``problem`` as the big-M MIQP with SCIP (through a Pyomo ``.nl`` file).

    SCIP runs with ``limits/gap = 1e-9``, ``limits/absgap = 1e-9`` and ``limits/time`` set to the
    time left of ``time_limit`` after the model is built. The reported ``bound`` is SCIP's dual
    bound plus ``c_0`` (clipped at the objective), ``nodes`` is ``SCIP.getNNodes()``, ``status``
    is ``optimal`` when SCIP closed the gap (``optimal`` or ``gaplimit``) and ``time_limit`` when
    it stopped on the clock (with no SCIP solution yet, the empty support is returned). The final
    ``W`` and objective come from re-solving SCIP's support exactly
    (:func:`~proxcompress.formulations.restricted.solve_support`).

    Under a time limit, building and solving run in a guard process killed at the deadline
    (plus 0.15 s; :mod:`~proxcompress.formulations.limits`); if it is killed, the empty support
    is reported with the trivial bound 0.

    Raises:
        SolverError: SCIP failed to read the model, found no solution or ended in another state.
    """
    clock = Clock(time_limit)
    result = run_guarded(lambda: _solve_in_scip(problem, clock), clock)
    if result is None:  # the guard stopped model building or SCIP at the deadline
        empty = np.zeros(problem.n_groups)
        return polish(problem, "bigm", empty, 0.0, "time_limit", clock.start, 0)
    return polish(
        problem, "bigm", np.asarray(result["z"]), result["bound"], result["status"],
        clock.start, result["nodes"],
    )


def _solve_in_scip(problem: LayerPruningProblem, clock: Clock) -> dict[str, Any]:
    """Build the model and solve it with SCIP; ``z``, bound, status and nodes as a dict."""
    loss = compressed_loss(problem)
    model = build_bigm_model(problem, loss)
    values, dual, scip_status, nodes = _solve_nl_with_scip(model, clock)
    if scip_status in ("optimal", "gaplimit"):
        status: Status = "optimal"
    elif scip_status == "timelimit":
        status = "time_limit"
    else:
        raise SolverError(f"bigm: SCIP stopped with status {scip_status!r}")
    if values is None:  # out of time before any solution: the empty support is feasible
        z = [0.0] * problem.n_groups
    else:
        z = [values[f"z[{g}]"] for g in range(problem.n_groups)]
    return {"z": z, "bound": dual + loss.const, "status": status, "nodes": nodes}
