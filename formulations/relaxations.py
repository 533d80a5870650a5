"""Continuous relaxations of the big-M and perspective models, and their root gaps.

Relaxing ``z_g in {0, 1}`` to ``0 <= z_g <= 1`` in the models of
:func:`~proxcompress.formulations.perspective.build_conic_model` gives two convex programs:

- ``bigm``: a convex QP. At its optimum ``z_g = max_{i in g, j} |W_ij| / M`` (only the big-M
  rows hold ``z`` up), so the count term becomes a weak ``lam (1-alpha) ||W_g||_inf / M``.
- ``perspective``: an SOCP with ``s_g z_g >= ||W_g||_F^2``. Minimizing over ``z_g`` gives the
  Structured Perspective Regularizer of Cacciola, Frangioni, Li, Lodi (arXiv:2206.14056): each
  group pays ``2 lam sqrt(alpha (1-alpha)) ||W_g||_F`` while ``||W_g||_F`` is small (and the
  big-M rows are slack), which is never below the big-M price (the perspective is the convex
  hull of each group's term; Frangioni and Gentile, Math. Program. 106, 2006).

Both are solved through CVXPY by CLARABEL with gap and feasibility tolerances of ``1e-9`` (then
at CLARABEL's defaults, ``1e-8``, then by ECOS, when an attempt ends "inaccurate", see
:data:`ATTEMPTS`); the reported ``bound`` is the primal objective value (plus the constant of the
loss compression), a lower bound on the MIP optimum up to that accuracy.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Literal

import cvxpy as cp
import numpy as np
from numpy.typing import NDArray

from proxcompress.errors import InvalidInputError, SolverError
from proxcompress.formulations.perspective import build_conic_model
from proxcompress.formulations.problem import LayerPruningProblem

RelaxationKind = Literal["bigm", "perspective"]

#: Solver attempts, in order, until one reports optimality: CLARABEL at 1e-9 (its defaults are
#: 1e-8; 1e-10 often ended "inaccurate"), CLARABEL at its defaults, then ECOS. The perspective
#: relaxation is hard on interior-point methods when some ``z_g -> 0`` (the apex of the rotated
#: cone): Hypothesis found instances where CLARABEL stops "almost solved" at both tolerances while
#: its value agreed with ECOS and SCS to 1e-9.
ATTEMPTS: tuple[tuple[str, dict[str, float]], ...] = (
    ("CLARABEL", {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9}),
    ("CLARABEL", {}),
    ("ECOS", {}),
)


#: Solver attempts of :func:`pairwise_sdp_bound`, in order: CLARABEL at its defaults, at 1e-7
#: (Hypothesis found small instances whose SDP equals the MIP optimum, where CLARABEL ends
#: "almost solved" at 1e-8 and 1e-9 but not at 1e-7), then SCS at 1e-9.
SDP_ATTEMPTS: tuple[tuple[str, dict[str, float]], ...] = (
    ("CLARABEL", {}),
    ("CLARABEL", {"tol_gap_abs": 1e-7, "tol_gap_rel": 1e-7, "tol_feas": 1e-7}),
    ("SCS", {"eps": 1e-9, "max_iters": 200_000}),
)


@dataclass(frozen=True)
class Relaxation:
    """The continuous relaxation of one model of a :class:`LayerPruningProblem`.

    Attributes:
        kind: ``bigm`` or ``perspective``.
        bound: optimal value of the relaxation: a lower bound on the MIP optimum.
        W: relaxed weights, shape ``(d, m)``.
        z: relaxed indicators in ``[0, 1]``, shape ``(G,)``.
        seconds: wall time (model building included).
    """

    kind: str
    bound: float
    W: NDArray[np.float64]
    z: NDArray[np.float64]
    seconds: float


def relaxation(problem: LayerPruningProblem, kind: RelaxationKind) -> Relaxation:
    """Solve the continuous relaxation (``0 <= z <= 1``) of the ``kind`` model with CLARABEL
    (ECOS as the last resort, :data:`ATTEMPTS`).

    Raises:
        InvalidInputError: ``kind`` is not ``bigm`` or ``perspective``.
        SolverError: no attempt reached optimality.
    """
    start = time.perf_counter()
    statuses = []
    for solver, options in ATTEMPTS:
        # A fresh model for each attempt: CVXPY would reuse the cached solver and its settings.
        model = build_conic_model(problem, kind, relax=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "may be inaccurate": checked below
                model.problem.solve(solver=solver, **options)
        except cp.error.SolverError as exc:
            statuses.append(f"{solver}: {exc}")
            continue
        statuses.append(f"{solver}: {model.problem.status}")
        if model.problem.status == cp.OPTIMAL and model.W.value is not None:
            break
    else:
        raise SolverError(f"relaxation ({kind}): no solver reached optimality ({statuses})")
    return Relaxation(
        kind=kind,
        bound=float(model.problem.value) + model.const,
        W=np.asarray(model.W.value, dtype=np.float64).reshape(problem.d, problem.m),
        z=np.clip(np.asarray(model.z.value, dtype=np.float64), 0.0, 1.0),
        seconds=time.perf_counter() - start,
    )


def root_gap(problem: LayerPruningProblem, kind: RelaxationKind, optimum: float) -> float:
    """Relative root gap ``(optimum - bound) / |optimum|`` of the ``kind`` relaxation, where
    ``optimum`` is the MIP optimum (e.g. from ``brute`` or an exact formulation). Not clipped:
    a value below ``-1e-8`` would mean ``optimum`` is not the optimum.

    Raises:
        InvalidInputError: ``optimum`` is not finite or is zero.
    """
    if not np.isfinite(optimum) or optimum == 0.0:
        raise InvalidInputError("optimum", f"= {optimum} must be finite and non-zero")
    return (optimum - relaxation(problem, kind).bound) / abs(optimum)


def pairwise_sdp_bound(problem: LayerPruningProblem, reach: int = 2) -> float:
    """A lifted (Shor) SDP relaxation with the perspective and rank-one pair constraints, for
    single-output problems whose groups are single features: a root bound stronger than any
    diagonal shift of the perspective (issue 14's hard regime; not used by a solver yet).

    With ``Y = [[1, w^T], [w, B]] >= 0`` (``B`` stands for ``w w^T``), the loss is the linear
    ``||y||^2 / 2 - <X^T y, w> + <X^T X, B> / 2``, the ridge ``lam alpha tr(B)``; every feature
    keeps ``|w_i| <= M z_i``, ``B_ii <= M^2 z_i`` and the perspective ``[[z_i, w_i], [w_i,
    B_ii]] >= 0`` (Dong, Chen and Linderoth, 2015: the Shor relaxation of the perspective
    matches the best diagonal shift), and every pair of features at most ``reach`` apart in the
    feature order the rank-one convexification ``[[s, w_i, w_j], [w_i, B_ii, B_ij], [w_j, B_ij,
    B_jj]] >= 0`` with ``s <= min(1, z_i + z_j)`` (Atamtürk and Gómez, *Rank-one
    convexification for sparse regression*, 2019): ``(a^T w)^2 <= a^T B a min(1, z_i + z_j)``
    holds for every integer point, with ``B = w w^T``. A budget adds ``sum z <= k``. Solved by
    CLARABEL (then SCS, :data:`SDP_ATTEMPTS`); the value is a lower bound on the MIP optimum
    up to the solver's accuracy (tested against brute force). ``reach = 0`` gives the Shor
    relaxation alone.

    Raises:
        InvalidInputError: ``problem`` has several outputs or a group of several features;
            ``reach`` is not an integer in ``[0, d - 1]``.
        SolverError: no attempt reaches optimality.
    """
    p = problem
    if p.m != 1:
        raise InvalidInputError("problem", f"has m = {p.m} outputs; accepted: m = 1")
    if p.n_groups != p.d:
        raise InvalidInputError("problem", "has a group of several features; accepted: one "
                                           "feature per group")
    if isinstance(reach, bool) or not isinstance(reach, int | np.integer) or not (
            0 <= reach <= max(p.d - 1, 0)):
        raise InvalidInputError("reach", f"= {reach!r}; accepted: an integer in [0, {p.d - 1}]")
    order = np.argsort(p.groups, kind="stable")  # feature of each group
    X = p.X[:, order]
    y = p.Y[:, 0]
    d = p.d
    lifted = cp.Variable((d + 1, d + 1), PSD=True)
    w, B = lifted[0, 1:], lifted[1:, 1:]
    z = cp.Variable(d)

    def entry(expr: cp.Expression) -> cp.Expression:
        return cp.reshape(expr, (1, 1), order="C")

    constraints = [lifted[0, 0] == 1, z >= 0, z <= 1, cp.abs(w) <= p.M * z,
                   cp.diag(B) <= p.M**2 * z]
    if p.budget < p.n_groups:
        constraints.append(cp.sum(z) <= p.budget)
    for i in range(d):
        constraints.append(cp.bmat([[entry(z[i]), entry(w[i])],
                                    [entry(w[i]), entry(B[i, i])]]) >> 0)
        for j in range(i + 1, min(d, i + 1 + reach)):
            s = cp.Variable()
            constraints += [s <= 1, s <= z[i] + z[j]]
            constraints.append(cp.bmat([
                [entry(s), entry(w[i]), entry(w[j])],
                [entry(w[i]), entry(B[i, i]), entry(B[i, j])],
                [entry(w[j]), entry(B[i, j]), entry(B[j, j])],
            ]) >> 0)
    gram = X.T @ X
    objective = (0.5 * float(y @ y) - (X.T @ y) @ w + 0.5 * cp.trace(gram @ B)
                 + p.lam * p.alpha * cp.trace(B) + p.lam * (1.0 - p.alpha) * cp.sum(z))
    statuses = []
    for solver, options in SDP_ATTEMPTS:
        model = cp.Problem(cp.Minimize(objective), constraints)  # fresh: no cached settings
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "may be inaccurate": checked below
                model.solve(solver=solver, **options)
        except cp.error.SolverError as exc:
            statuses.append(f"{solver}: {exc}")
            continue
        statuses.append(f"{solver}: {model.status}")
        if model.status == cp.OPTIMAL and model.value is not None:
            return float(model.value)
    raise SolverError(f"pairwise SDP relaxation: no solver reached optimality ({statuses})")
