"""``cuts``: perspective cuts, an outer approximation solved as a sequence of MILPs by HiGHS.

Perspective cuts (Frangioni and Gentile, *Perspective cuts for a class of convex 0-1 mixed integer
programs*, Math. Program. 106, 2006) applied to the layer pruning MIP of Cacciola, Frangioni, Li,
Lodi (arXiv:2206.14056). HiGHS solves MILPs only (and Pyomo's ``appsi`` HiGHS interface rejects
any quadratic expression), so every nonlinear term is replaced by linear under-estimators that
are refined round after round.

**Diagonalized, shifted objective.** With the Gram matrix ``X^T X = Q diag(l) Q^T``, its smallest
eigenvalue ``mu = l_min`` (lowered by ``1e-10 l_max`` for round-off), ``u = Q^T W`` (column by
column) and ``kappa_a = l_a - mu >= 0``:

.. math::

    F(W, z) = \\tfrac12 \\|Y\\|_F^2 - \\langle X^T Y, W \\rangle
        + \\sum_{a \\in K} \\tfrac{\\kappa_a}{2} \\|u_a\\|^2
        + \\beta \\sum_g \\frac{\\|W_g\\|_F^2}{z_g} + \\lambda(1-\\alpha) \\sum_g z_g,
    \\qquad \\beta = \\lambda\\alpha + \\mu / 2,

with ``0/0 = 0`` and ``|W_ij| <= M z_g``. ``K`` holds the directions with
``kappa_a > 1e-9 l_max``; dropping the others (non-negative terms) only weakens the bound. On
``z`` binary ``F`` is the problem's objective. Moving ``mu I`` from the Gram matrix into the
perspective term is the diagonal-shift strengthening (Frangioni and Gentile, *SDP
diagonalizations and perspective cuts for a class of nonseparable MIQP*, Oper. Res. Lett. 35,
2007): on ``random_instance(n=500, d=30, m=1, n_groups=30, seed=0)`` it takes the perspective root
gap from 4.3% to ~0 (1.4% instead of 3.6% with ``rho=0.8, snr=0.5``). With ``n < d``,
``mu = 0`` and nothing is gained.

**Master MILP.** Epigraph variables in objective units, ``v_aj >= kappa_a u_aj^2 / 2`` and
``s_g >= beta ||W_g||^2 / z_g``, are bounded from below by tangent lines
``v_aj >= kappa_a (p u_aj - p^2 / 2)`` and perspective cuts at ``(Wbar, zbar > 0)``:

.. math::

    s_g \\ge \\beta \\Big( \\frac{2 \\langle \\bar W, W_g \\rangle}{\\bar z}
        - \\frac{\\|\\bar W\\|^2}{\\bar z^2} z_g \\Big).

Every master optimum (and every MIP dual bound of HiGHS) is a valid lower bound of the problem.
Only the constant ``||Y||^2 / 2`` stays outside HiGHS.

**Algorithm.** (1) Seeds: three tangents per direction (``u = 0, +-M ||q_a||_1``), a greedy
forward path and a one-flip/one-swap local search over exact support values
(:class:`~proxcompress.formulations.restricted.SupportSolver`) give the incumbent, and every cut at
the incumbent's exact optimum is added. (2) Kelley's cutting planes on the LP relaxation
(``z`` continuous; a few ms per LP) until a round gains less than 0.1% of the gap; the LP cuts
slack at the last LP point are then removed. (3) MILP rounds: HiGHS solves the master through
Pyomo's persistent ``appsi`` interface (cuts added incrementally, the incumbent as MIP start);
for its optimum *and every improving solution it met on the way*, the support is solved
exactly (upper bound, local search from it) and cuts are added at the master point and at the
support's exact optimum. The cuts at the exact optimum of a support make the master's value on
that support equal its true value (first-order optimality of the restricted convex problem), so
a support is never proposed twice while the gap is open, and the loop is finite.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pyomo.environ as pyo
from numpy.typing import NDArray
from pyomo.contrib.appsi.base import TerminationCondition
from pyomo.contrib.appsi.solvers import Highs

from proxcompress.errors import SolverError
from proxcompress.formulations.limits import Clock, run_guarded
from proxcompress.formulations.problem import LayerPruningProblem
from proxcompress.formulations.restricted import SupportSolver
from proxcompress.formulations.solution import Solution, Status, polish

logger = logging.getLogger(__name__)

#: Stop when ``UB - LB <= GAP_TOL * max(|UB|, 1)`` (UB: best exact support value; LB: master bound).
GAP_TOL = 1e-9
#: Tangent points per direction seeded before the first master problem.
GRID_POINTS = 3
#: Kelley rounds on the LP relaxation before the MILP rounds.
LP_ROUNDS = 40
#: A cut is added at a master point only if it is violated by more than this (objective units,
#: relative to ``max(|UB|, 1)``).
CUT_TOL = 1e-11
#: Before the MILP rounds, cuts of the LP phase slack by more than this (relative) are removed.
PURGE_SLACK = 1e-6
#: The LP phase stops when a round improves the bound by less than this fraction of the gap.
LP_STALL = 1e-3
#: A stalled loop (no new support, no violated cut) still counts as optimal below this gap.
STALL_TOL = 1e-7

#: HiGHS options of the master problems: quiet, exact gap (the loop sets ``mip_abs_gap``), and
#: feasibility tolerances tight enough that the master bound is accurate to ~1e-9 relative (at
#: HiGHS's defaults, 1e-7, bounds wobbled by 1e-5 absolute on objectives ~200).
HIGHS_OPTIONS: dict[str, Any] = {
    "output_flag": False,
    "mip_rel_gap": 0.0,
    "primal_feasibility_tolerance": 1e-9,
    "dual_feasibility_tolerance": 1e-9,
    "mip_feasibility_tolerance": 1e-9,
    "mip_improving_solution_save": True,
}

FloatArray = NDArray[np.float64]


class _OuterApproximation:
    """The master MILP, its cuts, and the incumbent of one run."""

    def __init__(self, problem: LayerPruningProblem, deadline: float | None = None) -> None:
        p = problem
        self.p = p
        self.deadline = deadline  # time.perf_counter() value after which heuristics stop
        self.exact = SupportSolver(p)
        gram = self.exact.gram if self.exact.gram is not None else p.X.T @ p.X
        eig, Q = np.linalg.eigh(gram)
        l_max = max(float(eig[-1]), 1.0)
        self.mu = max(0.0, float(eig[0]) - 1e-10 * l_max)
        kappa = eig - self.mu
        self.K = np.flatnonzero(kappa > 1e-9 * l_max)
        self.kappa = kappa[self.K]
        self.QK = Q[:, self.K]  # u_K = QK^T W
        self.beta = p.lam * p.alpha + 0.5 * self.mu
        self.c0 = 0.5 * self.exact.yy
        self.seen: set[tuple[int, ...]] = set()
        self.best_support: tuple[int, ...] = ()
        self.best_value = np.inf
        self.best_W = np.zeros((p.d, p.m))
        self._build()

    # ------------------------------------------------------------------ model
    def _build(self) -> None:
        p = self.p
        rows, cols, groups, dirs = range(p.d), range(p.m), range(p.n_groups), range(len(self.K))
        m = pyo.ConcreteModel(name="perspective_cuts")
        m.W = pyo.Var(rows, cols, bounds=(-p.M, p.M))
        m.z = pyo.Var(groups, bounds=(0, 1))  # continuous for the LP phase, binary later
        m.s = pyo.Var(groups, bounds=(0, None))  # beta ||W_g||^2 / z_g, objective units
        m.u = pyo.Var(dirs, cols)
        m.v = pyo.Var(dirs, cols, bounds=(0, None))  # kappa_a / 2 (u_aj - e_aj)^2, same
        QK = self.QK
        m.rotation = pyo.Constraint(
            dirs, cols,
            rule=lambda m, a, j: m.u[a, j]
            == pyo.quicksum(float(QK[i, a]) * m.W[i, j] for i in rows),
        )
        group_of = p.groups
        m.upper = pyo.Constraint(
            rows, cols, rule=lambda m, i, j: m.W[i, j] - p.M * m.z[int(group_of[i])] <= 0
        )
        m.lower = pyo.Constraint(
            rows, cols, rule=lambda m, i, j: -m.W[i, j] - p.M * m.z[int(group_of[i])] <= 0
        )
        if p.k is not None and p.k < p.n_groups:
            m.budget = pyo.Constraint(expr=pyo.quicksum(m.z[g] for g in groups) <= p.k)
        m.cuts = pyo.ConstraintList()
        xty = self.exact.xty
        m.objective = pyo.Objective(
            expr=pyo.quicksum(m.v[a, j] for a in dirs for j in cols)
            - pyo.quicksum(
                float(xty[i, j]) * m.W[i, j] for i in rows for j in cols if xty[i, j] != 0.0
            )
            + pyo.quicksum(m.s[g] for g in groups)
            + p.lam * (1.0 - p.alpha) * pyo.quicksum(m.z[g] for g in groups),
            sense=pyo.minimize,
        )
        self.model = m
        opt = Highs()
        if not opt.available():
            raise SolverError("cuts: HiGHS (highspy) is not available to Pyomo's appsi interface")
        opt.config.load_solution = False
        opt.highs_options = dict(HIGHS_OPTIONS)
        for flag in (
            "check_for_new_or_removed_constraints", "check_for_new_or_removed_vars",
            "check_for_new_or_removed_params", "check_for_new_objective", "update_constraints",
            "update_vars", "update_params", "update_named_expressions", "update_objective",
        ):
            setattr(opt.update_config, flag, False)
        opt.set_instance(m)
        self.opt = opt
        self._columns()
        self.pending: list[Any] = []
        # Cuts at master points (not at exact supports), with what is needed to price them:
        # ("t", a, j, p) or ("p", g, Wbar_g, zbar_g). :meth:`purge` may drop them.
        self.purgeable: dict[Any, tuple[Any, ...]] = {}
        self._seed_tangents()

    def _tangent(self, a: int, j: int, point: float, purgeable: bool = False) -> None:
        """``v_aj >= kappa_a (p u_aj - p^2 / 2)``: the tangent of ``kappa_a u^2 / 2`` at ``p``."""
        m = self.model
        kappa = float(self.kappa[a])
        con = m.cuts.add(m.v[a, j] - kappa * point * m.u[a, j] >= -0.5 * kappa * point * point)
        self.pending.append(con)
        if purgeable:
            self.purgeable[con] = ("t", a, j, point)

    def _perspective(self, g: int, Wg: FloatArray, zg: float, purgeable: bool = False) -> None:
        """``s_g >= beta (2 <Wbar, W_g> / zbar - ||Wbar||^2 / zbar^2 z_g)``."""
        m = self.model
        rows = self.p.group_rows[g]
        terms = [
            (2.0 * self.beta * float(Wg[r, j]) / zg, m.W[int(i), j])
            for r, i in enumerate(rows)
            for j in range(self.p.m)
            if Wg[r, j] != 0.0
        ]
        if not terms:
            return
        norm2 = self.beta * float(np.sum(Wg**2)) / zg**2
        con = m.cuts.add(m.s[g] - pyo.quicksum(c * w for c, w in terms) + norm2 * m.z[g] >= 0.0)
        self.pending.append(con)
        if purgeable:
            self.purgeable[con] = ("p", g, Wg.copy(), zg)

    def _seed_tangents(self) -> None:
        p = self.p
        reach = p.M * np.abs(self.QK).sum(axis=0)  # |u_a| <= M ||q_a||_1
        for a in range(len(self.K)):
            for j in range(p.m):
                for point in np.linspace(-reach[a], reach[a], GRID_POINTS):
                    self._tangent(a, j, float(point))

    def flush(self) -> None:
        """Send the new cuts to HiGHS."""
        if self.pending:
            self.opt.add_constraints(self.pending)
            self.pending = []

    def purge(self, point: dict[str, FloatArray]) -> int:
        """Remove the purgeable cuts that are slack at the master ``point`` (by more than
        ``PURGE_SLACK`` relative); cuts at exact supports always stay. Returns how many."""
        self.flush()
        scale = PURGE_SLACK * max(abs(self.best_value - self.c0), 1.0)
        u = self.QK.T @ point["W"]
        drop = []
        for con, meta in self.purgeable.items():
            if meta[0] == "t":
                _, a, j, p = meta
                slack = point["v"][a, j] - self.kappa[a] * (p * u[a, j] - 0.5 * p * p)
            else:
                _, g, Wg, zg = meta
                rows = self.p.group_rows[g]
                cut = 2.0 * float(np.sum(Wg * point["W"][rows])) / zg
                cut -= float(np.sum(Wg**2)) / zg**2 * point["z"][g]
                slack = point["s"][g] - self.beta * cut
            if slack > scale:
                drop.append(con)
        if drop:
            self.opt.remove_constraints(drop)
            for con in drop:
                con.deactivate()
                del self.purgeable[con]
        return len(drop)

    # ------------------------------------------------------------------ cuts
    def cuts_at(
        self,
        W: FloatArray,
        z: FloatArray,
        s: FloatArray | None = None,
        v: FloatArray | None = None,
    ) -> int:
        """Cuts at ``(W, z)``: all of them (``s``, ``v`` absent: an exact point), or only those
        the master point ``(W, z, s, v)`` violates. Returns how many were added."""
        tol = CUT_TOL * max(abs(self.best_value - self.c0), 1.0) if np.isfinite(
            self.best_value
        ) else CUT_TOL
        purgeable = s is not None
        before = len(self.pending)
        point = self.QK.T @ W  # (|K|, m)
        for a in range(len(self.K)):
            for j in range(self.p.m):
                gap = 0.5 * self.kappa[a] * point[a, j] ** 2 - (
                    v[a, j] if v is not None else -np.inf
                )
                if gap > tol:
                    self._tangent(a, j, float(point[a, j]), purgeable)
        for g, rows in enumerate(self.p.group_rows):
            if z[g] <= 1e-9:
                continue
            Wg = W[rows]
            gap = self.beta * float(np.sum(Wg**2)) / z[g] - (s[g] if s is not None else -np.inf)
            if gap > tol:
                self._perspective(g, Wg, float(z[g]), purgeable)
        return len(self.pending) - before

    def evaluate(self, support: tuple[int, ...], add_cuts: bool = False) -> int:
        """Solve ``support`` exactly and update the incumbent; with ``add_cuts``, add (once per
        support) every cut at its exact optimum. Returns the number of cuts added."""
        support = tuple(sorted(support))
        W, value = self.exact.solve(support)
        if value < self.best_value:
            self.best_support, self.best_W, self.best_value = support, W, value
        if not add_cuts or support in self.seen:
            return 0
        self.seen.add(support)
        z = np.zeros(self.p.n_groups)
        z[list(support)] = 1.0
        return self.cuts_at(W, z)

    def late(self) -> bool:
        """Past the deadline (the heuristics give up)."""
        return self.deadline is not None and time.perf_counter() > self.deadline

    def cut_incumbent(self) -> int:
        """Every cut at the incumbent's exact optimum (once)."""
        return self.evaluate(self.best_support, add_cuts=True)

    def local_search(self, support: tuple[int, ...]) -> None:
        """Best-improvement one-flip / one-swap descent from ``support`` within the budget
        (updates the incumbent; no cuts)."""
        current = tuple(sorted(support))
        value = self.exact.solve(current)[1]
        self.evaluate(current)
        while True:
            best_move, best_value = None, value
            inside = set(current)
            candidates: list[tuple[int, ...]] = [
                tuple(g for g in current if g != h) for h in current
            ]
            outside = [g for g in range(self.p.n_groups) if g not in inside]
            if len(current) < self.p.budget:
                candidates += [tuple(sorted(current + (g,))) for g in outside]
            candidates += [
                tuple(sorted((inside - {h}) | {g})) for h in current for g in outside
            ]
            if self.late():
                return
            for cand in candidates:
                if self.late():
                    return
                _, cand_value = self.exact.solve(cand)
                if cand_value < best_value - 1e-12 * abs(best_value):
                    best_move, best_value = cand, cand_value
            if best_move is None:
                return
            current, value = best_move, best_value
            self.evaluate(current)

    # ---------------------------------------------------------------- master
    def set_binary(self, binary: bool) -> None:
        m = self.model
        for g in range(self.p.n_groups):
            m.z[g].domain = pyo.Binary if binary else pyo.Reals
            m.z[g].setlb(0)
            m.z[g].setub(1)
        self.opt.update_variables([m.z[g] for g in range(self.p.n_groups)])

    def load_incumbent(self) -> None:
        """Write the incumbent into the variables (HiGHS's MIP start)."""
        m, p = self.model, self.p
        W = self.best_W
        u = self.QK.T @ W
        for (i, j), var in m.W.items():
            var.set_value(float(W[i, j]), skip_validation=True)
        for (a, j), var in m.u.items():
            var.set_value(float(u[a, j]), skip_validation=True)
            m.v[a, j].set_value(
                0.5 * float(self.kappa[a] * u[a, j] ** 2), skip_validation=True
            )
        kept = set(self.best_support)
        for g, rows in enumerate(p.group_rows):
            m.z[g].set_value(1.0 if g in kept else 0.0, skip_validation=True)
            m.s[g].set_value(self.beta * float(np.sum(W[rows] ** 2)), skip_validation=True)

    def _columns(self) -> None:
        """HiGHS column indices of ``W``, ``z``, ``s``, ``v`` (to read solutions as arrays)."""
        m, p = self.model, self.p
        col = self.opt._pyomo_var_to_solver_var_map
        self.col_W = np.array([[col[id(m.W[i, j])] for j in range(p.m)] for i in range(p.d)])
        self.col_z = np.array([col[id(m.z[g])] for g in range(p.n_groups)])
        self.col_s = np.array([col[id(m.s[g])] for g in range(p.n_groups)])
        self.col_v = np.array(
            [[col[id(m.v[a, j])] for j in range(p.m)] for a in range(len(self.K))], dtype=int
        ).reshape(len(self.K), p.m)

    def _point(self, values: Any) -> dict[str, FloatArray]:
        x = np.asarray(values, dtype=np.float64)
        return {"W": x[self.col_W], "z": x[self.col_z], "s": x[self.col_s], "v": x[self.col_v]}

    def solve_master(
        self, time_limit: float | None, warm: bool
    ) -> tuple[float, bool, list[dict[str, FloatArray]], int]:
        """Solve the master; returns (bound without ``c0``, solved to optimality, points, HiGHS
        nodes). ``points`` holds the optimum (or best solution) first, then, for a MILP, the
        other improving solutions HiGHS found on the way (``mip_improving_solution_save``)."""
        self.flush()
        opt = self.opt
        if time_limit is not None:
            # HiGHS measures its time limit from the creation of the (persistent) instance
            time_limit += float(opt._solver_model.getRunTime())
        opt.config.time_limit = time_limit
        opt.config.warmstart = warm
        if warm:
            self.load_incumbent()
        if np.isfinite(self.best_value):
            opt.highs_options["mip_abs_gap"] = 0.5 * GAP_TOL * max(abs(self.best_value), 1.0)
        results = opt.solve(self.model)
        highs = opt._solver_model
        info = highs.getInfo()
        nodes = max(int(info.mip_node_count), 0)
        term = results.termination_condition
        if term not in (TerminationCondition.optimal, TerminationCondition.maxTimeLimit):
            raise SolverError(f"cuts: HiGHS ended the master problem with {term}")
        optimal = term == TerminationCondition.optimal
        bound = results.best_objective_bound
        bound = -np.inf if bound is None else float(bound)
        points = []
        if results.best_feasible_objective is not None:
            points.append(self._point(highs.getSolution().col_value))
            if warm:
                saved = highs.getSavedMipSolutions()
                points += [self._point(sol.col_value) for sol in reversed(saved[:-1])]
        return bound, optimal, points, nodes


def _greedy_path(oa: _OuterApproximation) -> None:
    """Forward selection: add the group that lowers the exact value most, up to the budget;
    the best support on the path becomes the incumbent."""
    p = oa.p
    current: tuple[int, ...] = ()
    oa.evaluate(current)
    while len(current) < p.budget and not oa.late():
        options = [tuple(sorted(current + (g,))) for g in range(p.n_groups) if g not in current]
        values = [oa.exact.solve(s)[1] for s in options]
        current = options[int(np.argmin(values))]
        oa.evaluate(current)


def solve_cuts(problem: LayerPruningProblem, time_limit: float | None = None) -> Solution:
    """Solve ``problem`` by perspective cuts: an outer approximation whose master MILPs are solved
    by HiGHS through Pyomo's persistent ``appsi`` interface (everything linear).

    Stops when ``UB - LB <= 1e-9 max(|UB|, 1)`` (:data:`GAP_TOL`), where ``UB`` is the best exact
    support value and ``LB`` the best master bound (HiGHS's MIP dual bound, valid up to HiGHS's
    feasibility tolerances of 1e-9), or on ``time_limit`` (``status == "time_limit"``, best bound
    so far). If a master round proposes nothing new while the gap is still open (numerical floor),
    the run stops and is reported ``optimal`` when the gap is below :data:`STALL_TOL` (1e-7).
    ``nodes`` counts the master MILPs solved (cutting-plane rounds; the cheap LP rounds of the
    root phase are not counted), not HiGHS's branch-and-bound nodes (logged at DEBUG level).

    Under a time limit the whole loop runs in a guard process killed at the deadline (plus
    0.15 s; :mod:`~proxcompress.formulations.limits`); HiGHS gets the time left and the heuristics
    stop at the deadline, so the loop normally returns its incumbent and bound itself.

    Raises:
        SolverError: HiGHS is unavailable or ended a master problem in an unexpected state, or the
            loop stalled with a gap above :data:`STALL_TOL`.
    """
    clock = Clock(time_limit)
    result = run_guarded(lambda: _run(problem, clock), clock)
    if result is None:  # the guard stopped model building or HiGHS at the deadline
        empty = np.zeros(problem.n_groups)
        return polish(problem, "cuts", empty, 0.0, "time_limit", clock.start, 0)
    z = np.zeros(problem.n_groups)
    z[result["support"]] = 1.0
    return polish(problem, "cuts", z, result["bound"], result["status"], clock.start,
                  result["nodes"])


def _run(problem: LayerPruningProblem, clock: Clock) -> dict[str, Any]:
    """The cutting-plane loop (in the guard's child process under a time limit)."""
    time_limit = clock.time_limit
    oa = _OuterApproximation(problem, None if time_limit is None else clock.deadline)
    lower = -np.inf

    def gap() -> float:
        return (oa.best_value - lower) / max(abs(oa.best_value), 1.0)

    def out_of_time() -> bool:
        left = clock.left()
        return left is not None and left <= 1e-3

    # (1) Seeds: the greedy path and a local search from its best support.
    _greedy_path(oa)
    oa.local_search(oa.best_support)
    oa.cut_incumbent()
    timed_out = stalled = False
    # (2) Kelley's cutting planes on the LP relaxation (z continuous): cheap root cuts.
    point = None
    for _ in range(LP_ROUNDS):
        if out_of_time():
            timed_out = True
            break
        previous = lower
        bound, optimal, points, _ = oa.solve_master(clock.left(), warm=False)
        if not optimal or not points:
            timed_out = True
            break
        point = points[0]
        lower = max(lower, bound + oa.c0)
        z = point["z"]
        oa.evaluate(tuple(int(g) for g in np.argsort(-z)[: problem.budget] if z[g] > 0.5))
        oa.cut_incumbent()
        if gap() <= GAP_TOL or oa.cuts_at(point["W"], z, point["s"], point["v"]) == 0:
            break
        if lower - previous < LP_STALL * (oa.best_value - lower):
            break
    if point is not None and not timed_out:
        oa.purge(point)
    # (3) MILP rounds.
    rounds = total_nodes = 0
    if not timed_out and gap() > GAP_TOL:
        oa.set_binary(True)
        while not out_of_time():
            bound, optimal, points, nodes = oa.solve_master(
                clock.left(), warm=True
            )
            rounds += 1
            total_nodes += nodes
            lower = max(lower, bound + oa.c0)
            added = 0
            for point in points:
                z = np.round(point["z"])
                support = tuple(int(g) for g in np.flatnonzero(z > 0.5))
                if support not in oa.seen:
                    added += oa.evaluate(support, add_cuts=True)
                    oa.local_search(support)
                    oa.cut_incumbent()
                added += oa.cuts_at(point["W"], z, point["s"], point["v"])
            if not optimal:
                break
            if gap() <= GAP_TOL:
                break
            if added == 0:
                stalled = True
                break
    logger.debug(
        "cuts: %d MILP rounds, %d HiGHS nodes, %d supports cut, gap %.2e",
        rounds, total_nodes, len(oa.seen), gap(),
    )
    if stalled and gap() > STALL_TOL:
        raise SolverError(
            f"cuts: the outer approximation stalled at relative gap {gap():.2e} (HiGHS proposes "
            "no new support or cut); the master problem is numerically too coarse"
        )
    closed = gap() <= GAP_TOL or (stalled and gap() <= STALL_TOL)
    status: Status = "optimal" if closed else "time_limit"
    return {"support": list(oa.best_support), "bound": lower, "status": status, "nodes": rounds}
