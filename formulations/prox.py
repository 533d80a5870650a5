"""ProxConnect proximal problems, solved numerically.

For a regularizer ``r`` and a weight ``mu >= 0`` the proximal map is, coordinate-wise,

.. math::

    \\operatorname{prox}_{\\mu r}(\\theta)
        = \\arg\\min_w \\; \\tfrac12 (w - \\theta)^2 + \\mu\\, r(w).

ProxConnect (Dockhorn, Yu, Sari, Zolnouri, Partovi Nia, *Demystifying and Generalizing
BinaryConnect*, NeurIPS 2021, arXiv:2110.13220) quantizes with such maps, and PC++ (Lu, Yu, Li,
Partovi Nia, NeurIPS 2023, arXiv:2402.17710) composes them with a backward quantizer. The
regularizers here are the ones behind the binary quantizers of :mod:`proxcompress.proofs`:

``dist2``: ``r(w) = (1/2) dist^2(w, Q)``; known prox ``(theta + mu Pi_Q(theta)) / (1 + mu)``.

``dist1``: ``r(w) = min_q |w - q|`` (ProxQuant; for ``Q = {-1, 1}`` the W-shaped ``| |w| - 1 |``);
known prox ``q + soft_mu(theta - q)`` with ``q`` the level nearest to ``theta``.

``indicator``: ``r = iota_Q`` (0 on ``Q``, ``+inf`` elsewhere); known prox ``Pi_Q(theta)``
(BinaryConnect).

``box_quadratic``: ``r(w) = ((rho - 1)/2) w^2 + iota_[-1,1](w)``; known prox
``clip(theta / (1 + mu (rho - 1)), -1, 1)`` when ``1 + mu (rho - 1) > 0``.

``Q`` is a finite set of levels (``levels``, default binary ``(-1, 1)``). ``box_quadratic`` with
``mu = 1`` is the clip family ``clip(theta / rho, -1, 1)`` (a stand-in proximal quantizer [D],
methods.md section 1; ``rho = 1`` gives the hard-tanh, the projection onto ``[-1, 1]``).
``dist1`` is Bai, Wang, Liberty, *ProxQuant: Quantized Neural Networks via Proximal Operators*,
ICLR 2019. The "known prox" is what :mod:`proxcompress.proofs` states symbolically; this
module never uses it, it solves the problems:

* ``"cvxpy"``: CVXPY (Clarabel) when the prox *problem* is convex. ``box_quadratic`` is convex
  whenever ``1 + mu (rho - 1) > 0``, also for ``rho < 1`` where ``r`` itself is not (the
  objective is rewritten as ``((1 + mu (rho - 1))/2) w^2 - theta w`` to be DCP); the others
  only for a single level.
* ``"exact"``: piecewise analysis. Every ``r`` above is a minimum of convex pieces
  ``r = min_q r_q`` (one per level, or the single box piece), and
  ``min_w min_q = min_q min_w``: the minimizer of each piece has a closed form (a quadratic or
  a soft-threshold on a line, clipped to the box), and the best piece wins. Exact up to
  rounding.
* ``"grid"``: global search for any regularizer: a dense grid (plus the levels and box ends)
  followed by a bounded Brent refinement around the best grid point; accuracy about ``1e-9``.
* ``"auto"`` (default): ``"cvxpy"`` if the problem is convex, else ``"exact"``.

A prox of a nonconvex ``r`` can be set-valued at isolated points (e.g. ``Pi_Q`` at a midpoint of
two levels). There every method returns one minimizer; ``"exact"`` returns the largest of the
tied minimizers (ties within ``1e-12`` relative). :func:`prox_objective` lets callers test
whether another candidate is also a minimizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from proxcompress.errors import InvalidInputError, SolverError
from proxcompress.levels import BINARY, TERNARY, shift_levels

FloatArray = NDArray[np.float64]

Regularizer = Literal["dist2", "dist1", "indicator", "box_quadratic"]
Method = Literal["auto", "cvxpy", "exact", "grid"]

REGULARIZERS: tuple[str, ...] = ("dist2", "dist1", "indicator", "box_quadratic")
METHODS: tuple[str, ...] = ("auto", "cvxpy", "exact", "grid")


_TIE = 1e-12
_GRID_POINTS = 4001


def _levels(levels: Sequence[float]) -> FloatArray:
    try:
        arr = np.unique(np.asarray(levels, dtype=np.float64).ravel())
    except (TypeError, ValueError) as exc:
        raise InvalidInputError("levels", f"must be a sequence of reals ({exc})") from None
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise InvalidInputError("levels", "must be a non-empty set of finite reals")
    return arr


def _theta(theta: ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(theta, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError("theta", f"must be a real array ({exc})") from None
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError("theta", "contains NaN or infinite values")
    return arr


def _scalar(name: str, value: Any, *, minimum: float | None = None) -> float:
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iuf":
        raise InvalidInputError(name, f"must be a real scalar, got {value!r}")
    out = float(arr.reshape(()))
    if not np.isfinite(out) or (minimum is not None and out < minimum):
        accepted = f"[{minimum}, inf)" if minimum is not None else "finite"
        raise InvalidInputError(name, f"= {out} is outside the accepted range {accepted}")
    return out


def _name(name: str) -> str:
    if name not in REGULARIZERS:
        raise InvalidInputError(
            "regularizer", f"{name!r} is unknown; accepted: {', '.join(REGULARIZERS)}"
        )
    return name


def regularizer_value(
    name: Regularizer, w: ArrayLike, *, levels: Sequence[float] = BINARY, rho: float = 1.0
) -> FloatArray:
    """``r(w)`` element-wise for the regularizer ``name`` (``+inf`` outside its domain).

    ``levels`` is the set ``Q`` of ``dist2``, ``dist1`` and ``indicator``; ``rho`` is the
    curvature parameter of ``box_quadratic``. Both are ignored by the other regularizers.
    """
    _name(name)
    wa = _theta(w)
    q = _levels(levels)
    rho_f = _scalar("rho", rho)
    if name == "box_quadratic":
        inside = np.abs(wa) <= 1.0
        return np.where(inside, 0.5 * (rho_f - 1.0) * wa**2, np.inf)
    gaps = np.abs(wa[..., None] - q)
    nearest = np.min(gaps, axis=-1)
    if name == "dist2":
        return 0.5 * nearest**2
    if name == "dist1":
        return nearest
    return np.where(nearest == 0.0, 0.0, np.inf)


def prox_objective(
    name: Regularizer,
    w: ArrayLike,
    theta: ArrayLike,
    mu: float,
    *,
    levels: Sequence[float] = BINARY,
    rho: float = 1.0,
) -> FloatArray:
    """``(1/2)(w - theta)^2 + mu r(w)`` element-wise (``+inf`` outside the domain of ``r``, for
    every ``mu``)."""
    mu_f = _scalar("mu", mu, minimum=0.0)
    wa, ta = _theta(w), _theta(theta)
    r = regularizer_value(name, wa, levels=levels, rho=rho)
    penalty = np.where(np.isinf(r), np.inf, mu_f * np.where(np.isinf(r), 0.0, r))
    return 0.5 * (wa - ta) ** 2 + penalty


def is_convex_problem(
    name: Regularizer, mu: float, *, levels: Sequence[float] = BINARY, rho: float = 1.0
) -> bool:
    """Whether ``w -> (1/2)(w - theta)^2 + mu r(w)`` is convex (so CVXPY applies)."""
    _name(name)
    mu_f = _scalar("mu", mu, minimum=0.0)
    if name == "box_quadratic":
        return 1.0 + mu_f * (_scalar("rho", rho) - 1.0) > 0.0
    single = _levels(levels).size == 1
    return single if name == "indicator" else (mu_f == 0.0 or single)


def prox(
    name: Regularizer,
    theta: ArrayLike,
    mu: float,
    *,
    levels: Sequence[float] = BINARY,
    rho: float = 1.0,
    method: Method = "auto",
) -> FloatArray:
    """``prox_{mu r}(theta)`` element-wise, for the regularizer ``name``.

    Args:
        name: one of :data:`REGULARIZERS` (table in the module docstring).
        theta: points, any shape.
        mu: prox weight, ``mu >= 0`` (``mu = 0`` is the identity, except for ``indicator``
            and ``box_quadratic`` whose domain constraint stays).
        levels: the finite set ``Q`` (``dist2``, ``dist1``, ``indicator``).
        rho: curvature of ``box_quadratic``.
        method: ``"auto"``, ``"cvxpy"``, ``"exact"`` or ``"grid"`` (module docstring).

    Returns:
        one minimizer per point, shape of ``theta`` (the largest one at ties, for ``"exact"``).

    Raises:
        InvalidInputError: unknown ``name`` / ``method``, non-finite input, ``mu < 0``, or
            ``method="cvxpy"`` on a nonconvex problem.
        SolverError: CVXPY did not return an optimal solution.
    """
    _name(name)
    if method not in METHODS:
        raise InvalidInputError("method", f"{method!r} is unknown; accepted: {', '.join(METHODS)}")
    ta = _theta(theta)
    mu_f = _scalar("mu", mu, minimum=0.0)
    q = _levels(levels)
    rho_f = _scalar("rho", rho)
    convex = is_convex_problem(name, mu_f, levels=tuple(q), rho=rho_f)
    chosen = ("cvxpy" if convex else "exact") if method == "auto" else method
    if chosen == "cvxpy":
        if not convex:
            raise InvalidInputError(
                "method",
                f"'cvxpy' needs a convex prox problem; {name} with mu = {mu_f}, "
                f"{q.size} level(s), rho = {rho_f} is not (use 'exact' or 'grid')",
            )
        return _prox_cvxpy(name, ta, mu_f, q, rho_f)
    if chosen == "exact":
        return _prox_exact(name, ta, mu_f, q, rho_f)
    return _prox_grid(name, ta, mu_f, q, rho_f)


def _candidates(name: str, theta: FloatArray, mu: float, q: FloatArray, rho: float) -> FloatArray:
    """Minimizer of each convex piece, shape ``theta.shape + (pieces,)``."""
    t = theta[..., None]
    if name == "dist2":
        return (t + mu * q) / (1.0 + mu)
    if name == "dist1":
        shifted = t - q
        return q + np.sign(shifted) * np.maximum(np.abs(shifted) - mu, 0.0)
    if name == "indicator":
        return np.broadcast_to(q, theta.shape + q.shape).copy()
    curvature = 1.0 + mu * (rho - 1.0)
    ends = np.broadcast_to(np.array([-1.0, 1.0]), theta.shape + (2,))
    if curvature <= 0.0:  # concave or linear on the box: a minimizer sits at an end
        return ends.copy()
    stationary = np.clip(t / curvature, -1.0, 1.0)
    return np.concatenate([stationary, ends], axis=-1)


def _select(
    name: str, cands: FloatArray, theta: FloatArray, mu: float, q: FloatArray, rho: float
) -> FloatArray:
    values = prox_objective(name, cands, theta[..., None], mu, levels=tuple(q), rho=rho)
    best = np.min(values, axis=-1, keepdims=True)
    tied = values <= best + _TIE * np.maximum(1.0, np.abs(best))
    return np.max(np.where(tied, cands, -np.inf), axis=-1)


def _prox_exact(name: str, theta: FloatArray, mu: float, q: FloatArray, rho: float) -> FloatArray:
    return _select(name, _candidates(name, theta, mu, q, rho), theta, mu, q, rho)


def _prox_grid(name: str, theta: FloatArray, mu: float, q: FloatArray, rho: float) -> FloatArray:
    from scipy.optimize import minimize_scalar

    # every minimizer lies between theta and the levels / box ends
    lo = float(min(theta.min(initial=0.0), q.min(), -1.0)) - 1.0
    hi = float(max(theta.max(initial=0.0), q.max(), 1.0)) + 1.0
    grid = np.concatenate([np.linspace(lo, hi, _GRID_POINTS), q, [-1.0, 1.0]])
    step = (hi - lo) / (_GRID_POINTS - 1)
    flat = theta.ravel()
    out = np.empty(flat.shape)
    for i, th in enumerate(flat):
        values = prox_objective(name, grid, th, mu, levels=tuple(q), rho=rho)
        k = int(np.argmin(values))
        best_w, best_v = float(grid[k]), float(values[k])
        res = minimize_scalar(
            # outside dom r the objective is +inf; a huge finite value keeps Brent's arithmetic
            # free of inf - inf
            lambda v, th=th: min(
                float(prox_objective(name, v, th, mu, levels=tuple(q), rho=rho)), 1e300
            ),
            bounds=(best_w - step, best_w + step),
            method="bounded",
            options={"xatol": 1e-12},
        )
        if np.isfinite(res.fun) and res.fun < best_v:
            best_w = float(res.x)
        out[i] = best_w
    return out.reshape(theta.shape)


def _prox_cvxpy(name: str, theta: FloatArray, mu: float, q: FloatArray, rho: float) -> FloatArray:
    import cvxpy as cp

    flat = theta.ravel()
    if flat.size == 0:
        return theta.copy()
    w = cp.Variable(flat.size)
    constraints = []
    if name == "box_quadratic":
        curvature = 1.0 + mu * (rho - 1.0)
        objective = 0.5 * curvature * cp.sum_squares(w) - flat @ w
        constraints = [w >= -1.0, w <= 1.0]
    else:
        fit = 0.5 * cp.sum_squares(w - flat)
        if mu == 0.0 and name != "indicator":
            objective = fit
        elif name == "dist2":
            objective = fit + 0.5 * mu * cp.sum_squares(w - q[0])
        elif name == "dist1":
            objective = fit + mu * cp.norm1(w - q[0])
        else:
            objective, constraints = fit, [w == q[0]]
    problem = cp.Problem(cp.Minimize(objective), constraints)
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    if problem.status != cp.OPTIMAL or w.value is None:
        raise SolverError(f"CVXPY prox of {name} ended with status {problem.status}")
    return np.asarray(w.value, dtype=np.float64).reshape(theta.shape)


__all__ = [
    "BINARY",
    "METHODS",
    "REGULARIZERS",
    "TERNARY",
    "is_convex_problem",
    "prox",
    "prox_objective",
    "regularizer_value",
    "shift_levels",
]
