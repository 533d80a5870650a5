"""The Structured Perspective Regularizer (SPR) closed form, vectorized over groups.

For one group (structure) ``W_g`` with ``r = ||W_g||_2`` and ``t = ||W_g||_inf``, the perspective
relaxation of the big-M term ``alpha ||W_g||^2 + (1 - alpha) y_g`` (``|W_gi| <= M y_g``,
``y_g`` relaxed to ``[0, 1]``) projected onto ``W_g`` is

.. math::

    z(W_g) = \\min_{y \\in [t/M,\\, 1]} \\; \\frac{\\alpha r^2}{y} + (1-\\alpha) y ,
    \\qquad c = \\sqrt{\\alpha / (1-\\alpha)} ,

with the minimizer ``y* = clip(c r, t/M, 1)`` and three cases, tested in this order:

=== ======================================== ============ ==========================================
#   condition                                ``y*``       ``z``
=== ======================================== ============ ==========================================
1   ``max(t/M, c r) >= 1``                   ``1``        ``alpha r^2 + (1 - alpha)``
2   ``t/M <= c r`` (and ``< 1``)             ``c r``      ``2 sqrt(alpha (1 - alpha)) r``
3   else (``c r < t/M < 1``)                 ``t/M``      ``alpha M r^2 / t + (1 - alpha) t / M``
=== ======================================== ============ ==========================================

``W_g = 0`` falls in case 2 with ``y* = 0`` and ``z = 0`` (``0/0 := 0``). ``z`` is continuous at
both case boundaries (proved symbolically by :mod:`proxcompress.proofs.spr`). Case 2 is the group
lasso, case 1 ridge plus a constant, case 3 interpolates.

Reference: M. Cacciola, A. Frangioni, X. Li, A. Lodi, *Deep Neural Networks Pruning via the
Structured Perspective Regularization*, arXiv:2206.14056 (SIAM J. Math. Data Sci.); public code
``MCacciola94/Pruning_prj:perspReg.py``. Unlike that code no ``eps = 1e-10`` guard is added to
``t``: case 3 only occurs with ``t > c r >= 0``.

:func:`spr_value` evaluates the closed form; :func:`spr_numeric` solves the minimization over
``y`` numerically (``scipy.optimize.minimize_scalar``, bounded) and :func:`spr_check` compares
the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from proxcompress.errors import InvalidInputError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# relative slack allowed in ||W||_inf <= ||W||_2 (both computed in floating point)
_NORM_SLACK = 1e-12


class SPRValue(NamedTuple):
    """SPR term ``z`` and its minimizing ``y`` for each group (arrays of the norms' shape)."""

    z: FloatArray
    y: FloatArray


class SPRCheck(NamedTuple):
    """Closed form versus numeric minimization (see :func:`spr_check`)."""

    passed: bool
    max_error_z: float
    max_error_y: float
    closed_form: SPRValue
    numeric: SPRValue


def _scalar(name: str, value: Any, low: float, high: float, *, closed_low: bool) -> float:
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iuf":
        raise InvalidInputError(name, f"must be a real scalar, got {value!r}")
    out = float(arr.reshape(()))
    inside_low = out >= low if closed_low else out > low
    if not (np.isfinite(out) and inside_low and out < high):
        bracket = "[" if closed_low else "("
        raise InvalidInputError(
            name, f"= {out} is outside the accepted range {bracket}{low}, {high})"
        )
    return out


def group_norms(W_groups: ArrayLike | Sequence[ArrayLike]) -> tuple[FloatArray, FloatArray]:
    """Euclidean and max norms ``(||W_g||_2, ||W_g||_inf)`` of each group.

    Args:
        W_groups: a 2-D array whose rows are the groups, or a sequence of array-likes of any
            shapes (ragged groups; each is flattened). An empty group has both norms 0.

    Raises:
        InvalidInputError (field ``W_groups``): non-numeric or non-finite entries, or a 1-D /
            0-D array (pass ``[w]`` for a single group).
    """
    if isinstance(W_groups, np.ndarray):
        if W_groups.ndim != 2:
            raise InvalidInputError(
                "W_groups",
                f"an array must be 2-D (one group per row), got {W_groups.ndim} dimensions",
            )
        groups: Sequence[Any] = list(W_groups)
    elif isinstance(W_groups, Sequence) and not isinstance(W_groups, str | bytes):
        groups = W_groups
    else:
        raise InvalidInputError(
            "W_groups", f"must be a 2-D array or a sequence of arrays, got {type(W_groups)}"
        )
    l2 = np.zeros(len(groups))
    linf = np.zeros(len(groups))
    for g, group in enumerate(groups):
        try:
            arr = np.asarray(group, dtype=np.float64).ravel()
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"W_groups[{g}]", f"must be a real array ({exc})") from None
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError(f"W_groups[{g}]", "contains NaN or infinite values")
        if arr.size:
            linf[g] = float(np.max(np.abs(arr)))
            if linf[g] > 0:  # scaled, so that tiny entries do not underflow when squared
                l2[g] = linf[g] * float(np.linalg.norm(arr / linf[g]))
    return l2, linf


def _validate(
    l2: ArrayLike, linf: ArrayLike, alpha: float, M: float, field: str
) -> tuple[FloatArray, FloatArray, float, float]:
    alpha_f = _scalar("alpha", alpha, 0.0, 1.0, closed_low=False)
    M_f = _scalar("M", M, 0.0, np.inf, closed_low=False)
    try:
        r = np.asarray(l2, dtype=np.float64)
        t = np.asarray(linf, dtype=np.float64)
        r, t = np.broadcast_arrays(r, t)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(field, f"norms must be real arrays of one shape ({exc})") from None
    for name, arr in (("l2", r), ("linf", t)):
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise InvalidInputError(name, "norms must be finite and >= 0")
    bad = np.flatnonzero((t > r * (1 + _NORM_SLACK)).ravel())
    if bad.size:
        i = int(bad[0])
        raise InvalidInputError(
            field,
            f"group {i}: ||W||_inf = {t.ravel()[i]} > ||W||_2 = {r.ravel()[i]}, which no "
            "vector satisfies",
        )
    infeasible = np.flatnonzero((t > M_f).ravel())
    if infeasible.size:
        i = int(infeasible[0])
        raise InvalidInputError(
            field,
            f"group {i}: ||W||_inf = {t.ravel()[i]} exceeds M = {M_f}; the big-M constraint "
            f"|W_gi| <= M y_g with y_g <= 1 is infeasible ({infeasible.size} group(s) "
            "affected; accepted: ||W_g||_inf <= M)",
        )
    return r.astype(np.float64), t.astype(np.float64), alpha_f, M_f


def _cases(r: FloatArray, t: FloatArray, alpha: float, M: float) -> IntArray:
    c = np.sqrt(alpha / (1.0 - alpha))
    lo = t / M
    case = np.where(np.maximum(lo, c * r) >= 1.0, 1, np.where(lo <= c * r, 2, 3))
    return case.astype(np.int64)


def spr_case(l2: ArrayLike, linf: ArrayLike, alpha: float, M: float) -> IntArray:
    """Which of the three cases (1, 2 or 3, table in the module docstring) each group falls in.

    Same arguments and errors as :func:`spr_value`.
    """
    r, t, alpha_f, M_f = _validate(l2, linf, alpha, M, "linf")
    return _cases(r, t, alpha_f, M_f)


def spr_value(l2: ArrayLike, linf: ArrayLike, alpha: float, M: float) -> SPRValue:
    """The SPR closed form ``z`` and its minimizing ``y``, group by group.

    Args:
        l2: ``||W_g||_2`` per group (any shape; broadcast against ``linf``).
        linf: ``||W_g||_inf`` per group.
        alpha: trade-off in ``(0, 1)``.
        M: big-M bound, ``M > 0``.

    Returns:
        :class:`SPRValue` ``(z, y)`` with the broadcast shape of the norms.

    Raises:
        InvalidInputError: naming ``alpha`` or ``M`` when outside their ranges, ``l2`` / ``linf``
            when negative or non-finite, and ``linf`` for an infeasible group
            (``||W_g||_inf > M``) or inconsistent norms (``||W_g||_inf > ||W_g||_2``).
    """
    r, t, alpha_f, M_f = _validate(l2, linf, alpha, M, "linf")
    return _closed_form(r, t, alpha_f, M_f)


def spr_value_groups(W_groups: ArrayLike | Sequence[ArrayLike], alpha: float, M: float) -> SPRValue:
    """:func:`spr_value` on the norms of the groups (see :func:`group_norms` for ``W_groups``).

    Raises:
        InvalidInputError: as :func:`spr_value`; an infeasible group names field ``W_groups``.
    """
    l2, linf = group_norms(W_groups)
    r, t, alpha_f, M_f = _validate(l2, linf, alpha, M, "W_groups")
    return _closed_form(r, t, alpha_f, M_f)


def _closed_form(r: FloatArray, t: FloatArray, alpha: float, M: float) -> SPRValue:
    c = np.sqrt(alpha / (1.0 - alpha))
    case = _cases(r, t, alpha, M)
    y = np.where(case == 1, 1.0, np.where(case == 2, c * r, t / M))
    z1 = alpha * r**2 + (1.0 - alpha)
    z2 = 2.0 * np.sqrt(alpha * (1.0 - alpha)) * r
    # case 3 has t > c r >= 0; elsewhere the quotient is unused, so divide by 1 there
    safe_t = np.where(case == 3, t, 1.0)
    z3 = alpha * M * r**2 / safe_t + (1.0 - alpha) * t / M
    z = np.where(case == 1, z1, np.where(case == 2, z2, z3))
    return SPRValue(z=z.astype(np.float64), y=y.astype(np.float64))


def _objective(y: float, r: float, alpha: float) -> float:
    if y == 0.0:
        return 0.0 if r == 0.0 else float("inf")
    return alpha * r * r / y + (1.0 - alpha) * y


def spr_numeric(
    l2: ArrayLike, linf: ArrayLike, alpha: float, M: float, *, xatol: float = 1e-12
) -> SPRValue:
    """``min_{y in [||W_g||_inf / M, 1]} alpha ||W_g||^2 / y + (1 - alpha) y`` solved numerically.

    Each group is minimized with ``scipy.optimize.minimize_scalar(method="bounded")`` (Brent on
    the interval, tolerance ``xatol``); both interval ends are also evaluated and the best of the
    three points is returned, since the bounded method never evaluates the ends themselves.
    Same arguments and errors as :func:`spr_value`; independent of the closed form.
    """
    from scipy.optimize import minimize_scalar

    r, t, alpha_f, M_f = _validate(l2, linf, alpha, M, "linf")
    z = np.empty(r.shape)
    y = np.empty(r.shape)
    for idx in np.ndindex(r.shape):
        ri, lo = float(r[idx]), float(t[idx]) / M_f
        candidates = [lo, 1.0]
        if lo < 1.0:
            res = minimize_scalar(
                lambda v, ri=ri: _objective(v, ri, alpha_f),
                bounds=(lo, 1.0),
                method="bounded",
                options={"xatol": xatol},
            )
            candidates.append(float(res.x))
        values = [_objective(v, ri, alpha_f) for v in candidates]
        best = int(np.argmin(values))
        z[idx], y[idx] = values[best], candidates[best]
    return SPRValue(z=z, y=y)


def spr_check(
    l2: ArrayLike,
    linf: ArrayLike,
    alpha: float,
    M: float,
    *,
    rtol: float = 1e-9,
    ytol: float = 1e-5,
) -> SPRCheck:
    """Check that :func:`spr_value` equals the numeric minimum of :func:`spr_numeric`.

    Passes when ``|z_closed - z_numeric| <= rtol * max(1, |z_closed|)`` for every group and
    ``|y_closed - y_numeric| <= ytol``. The objective is flat near its minimum, so the numeric
    ``y`` is only accurate to about ``sqrt`` of the objective's accuracy; ``ytol`` reflects that.
    """
    closed = spr_value(l2, linf, alpha, M)
    numeric = spr_numeric(l2, linf, alpha, M)
    err_z = np.abs(closed.z - numeric.z) / np.maximum(1.0, np.abs(closed.z))
    err_y = np.abs(closed.y - numeric.y)
    max_z = float(np.max(err_z, initial=0.0))
    max_y = float(np.max(err_y, initial=0.0))
    return SPRCheck(
        passed=max_z <= rtol and max_y <= ytol,
        max_error_z=max_z,
        max_error_y=max_y,
        closed_form=closed,
        numeric=numeric,
    )


__all__ = [
    "SPRCheck",
    "SPRValue",
    "group_norms",
    "spr_case",
    "spr_check",
    "spr_numeric",
    "spr_value",
    "spr_value_groups",
]
