"""Regressors for additive noise models: ``effect = f(cause) + noise``.

A regressor is any object with ``fit(x, y) -> Curve``; a :class:`Curve` predicts and states its
degrees of freedom (what the BIC of :mod:`.mechanisms` charges for it). Two are provided:

* :class:`SplineRegressor` (the default, a [U] choice of methods.md section 10): a least-squares
  cubic B-spline (:func:`scipy.interpolate.make_lsq_spline`) with interior knots at quantiles of
  the distinct cause values, their number chosen by generalized cross-validation. Its degrees of
  freedom are exact (the number of coefficients), which a smoothing spline's are not without the
  hat matrix. Its complexity adapts to the number ``d`` of distinct cause values (discretised
  causes: years, counts, grades): at most ``d - 4`` knots, so the most flexible candidate has
  ``d`` coefficients and reproduces the per-level means; with ``d = 2`` or ``3`` levels the fit
  is the line or parabola through the level means (the group-means regression).
* :class:`PolynomialRegressor`: a least-squares polynomial of fixed degree.

Curves predict outside the range they were fitted on by holding the boundary value (the cause is
clipped to the fitted range): a cubic piece extrapolated far out would otherwise claim points of
other mechanisms in :func:`.mechanisms.cluster_mechanisms`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from proxcompress.errors import InvalidInputError

from ._checks import distinct_enough, integer, same_length, sample

FloatArray = NDArray[np.float64]


class Curve(Protocol):
    """A fitted regression function."""

    @property
    def df(self) -> float:
        """Degrees of freedom used by the fit (number of free coefficients)."""
        ...

    def predict(self, x: FloatArray) -> FloatArray:
        """The fitted values at ``x``."""
        ...


class Regressor(Protocol):
    """Fits a :class:`Curve` to paired samples; must be deterministic in its inputs."""

    def min_points(self) -> int:
        """The fewest distinct cause values a fit needs."""
        ...

    def fit(self, x: FloatArray, y: FloatArray) -> Curve:
        """Fit ``y = f(x) + noise``; ``x`` and ``y`` are 1-D float arrays of equal length."""
        ...


def _fit_input(x: FloatArray, y: FloatArray, need: int) -> tuple[FloatArray, FloatArray]:
    xs, ys = sample(x, "x"), sample(y, "y")
    same_length(xs, ys, "x, y")
    distinct_enough(xs, need, "x")
    return xs, ys


@dataclass(frozen=True)
class ClippedCurve:
    """A curve with ``coefficients`` fitted on causes in ``[lo, hi]``, constant beyond (the cause
    is clipped); subclasses evaluate it inside the range."""

    coefficients: FloatArray
    lo: float
    hi: float

    @property
    def df(self) -> float:
        return float(self.coefficients.size)

    def predict(self, x: FloatArray) -> FloatArray:
        return np.asarray(self._inside(np.clip(x, self.lo, self.hi)), dtype=np.float64)

    def _inside(self, x: FloatArray) -> NDArray[Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class SplineCurve(ClippedCurve):
    """A B-spline of this ``degree`` (3, lower for fewer than four distinct causes) with these
    ``knots``."""

    knots: FloatArray
    degree: int = 3

    def _inside(self, x: FloatArray) -> NDArray[Any]:
        from scipy.interpolate import BSpline

        return BSpline(self.knots, self.coefficients, self.degree, extrapolate=False)(x)


@dataclass(frozen=True)
class SplineRegressor:
    """Least-squares cubic B-spline, ``m`` interior knots at quantiles of the distinct cause
    values, ``m`` in ``0..max_knots`` chosen by GCV ``n RSS / (n - df)^2`` with ``df = m + 4``.

    With ``m = 0`` the fit is the least-squares cubic polynomial. ``max_knots`` is lowered where
    the data are too few: at least ``points_per_coefficient`` points per coefficient, and at most
    ``d - 4`` knots for ``d`` distinct causes (``df <= d``; at ``df = d`` the spline passes through
    the per-level means). With ``d = 2`` or ``3`` distinct causes the degree drops to ``d - 1``:
    the line or parabola through the level means (group means). Two distinct causes suffice.
    """

    max_knots: int = 8
    points_per_coefficient: int = 5

    def __post_init__(self) -> None:
        integer(self.max_knots, "max_knots", 0)
        integer(self.points_per_coefficient, "points_per_coefficient", 2)

    def min_points(self) -> int:
        return 2

    def fit(self, x: FloatArray, y: FloatArray) -> SplineCurve:
        from scipy.interpolate import make_lsq_spline

        x, y = _fit_input(x, y, self.min_points())
        order = np.argsort(x, kind="stable")
        xs, ys = x[order], y[order]
        n, lo, hi = xs.size, float(xs[0]), float(xs[-1])
        distinct = np.unique(xs)
        degree = min(3, distinct.size - 1)
        best: tuple[float, SplineCurve] | None = None
        top = min(self.max_knots, n // self.points_per_coefficient - degree - 1,
                  distinct.size - degree - 1)
        counts = range(max(top, 0) + 1)
        # every knot count's quantiles in one call (the same values as one call per count)
        levels = np.quantile(distinct, np.concatenate([np.arange(1, m + 1) / (m + 1)
                                                       for m in counts]))
        for m in counts:
            inner = np.unique(levels[m * (m - 1) // 2: m * (m + 1) // 2])
            inner = inner[(inner > lo) & (inner < hi)]
            knots = np.concatenate([[lo] * (degree + 1), inner, [hi] * (degree + 1)])
            try:
                spline = make_lsq_spline(xs, ys, knots, k=degree)
            except (ValueError, np.linalg.LinAlgError):
                continue  # Schoenberg-Whitney condition fails for these knots
            rss = float(np.sum((ys - spline(xs)) ** 2))
            df = spline.c.size
            gcv = n * rss / (n - df) ** 2 if n > df else np.inf
            if best is None or gcv < best[0]:
                best = (gcv, SplineCurve(np.asarray(spline.c, dtype=np.float64), lo, hi, knots,
                                         degree))
        if best is None:  # pragma: no cover - m = 0 with >= degree + 1 distinct causes always fits
            raise InvalidInputError("x", "no cubic spline fits these cause values")
        return best[1]


@dataclass(frozen=True)
class PolynomialCurve(ClippedCurve):
    """A polynomial in the cause; ``coefficients`` highest degree first (numpy.polyval order)."""

    def _inside(self, x: FloatArray) -> NDArray[Any]:
        return np.polyval(self.coefficients, x)


@dataclass(frozen=True)
class PolynomialRegressor:
    """Least-squares polynomial of degree ``degree``."""

    degree: int = 3

    def __post_init__(self) -> None:
        integer(self.degree, "degree", 0)

    def min_points(self) -> int:
        return self.degree + 2

    def fit(self, x: FloatArray, y: FloatArray) -> PolynomialCurve:
        x, y = _fit_input(x, y, self.min_points())
        coefficients = np.polynomial.polynomial.polyfit(x, y, self.degree)[::-1]
        return PolynomialCurve(np.ascontiguousarray(coefficients), float(x.min()), float(x.max()))


def _refit_spline(curve: SplineCurve, x: FloatArray, y: FloatArray,
                  root_weights: FloatArray) -> SplineCurve:
    from scipy.interpolate import make_lsq_spline

    order = np.argsort(x, kind="stable")
    spline = make_lsq_spline(x[order], y[order], curve.knots, k=curve.degree,
                             w=root_weights[order])
    return SplineCurve(np.asarray(spline.c, dtype=np.float64), curve.lo, curve.hi, curve.knots,
                       curve.degree)


def _refit_polynomial(curve: PolynomialCurve, x: FloatArray, y: FloatArray,
                      root_weights: FloatArray) -> PolynomialCurve:
    degree = curve.coefficients.size - 1
    coefficients = np.polynomial.polynomial.polyfit(x, y, degree, w=root_weights)[::-1]
    return PolynomialCurve(np.ascontiguousarray(coefficients), curve.lo, curve.hi)


#: curve type -> its weighted least-squares refit on the same basis (knots, degree)
WEIGHTED_REFITS: dict[type, Any] = {SplineCurve: _refit_spline,
                                    PolynomialCurve: _refit_polynomial}


def weighted_refit(curve: Curve, x: FloatArray, y: FloatArray, weights: FloatArray) -> Curve:
    """``curve``'s basis (the knots and degree the regressor chose on ``x``, ``y``) refitted by
    weighted least squares, minimising ``sum_i weights_i (y_i - f(x_i))^2`` (positive
    ``weights``); ``lo``/``hi`` (the clipping range) are kept, so ``x`` must be the sample the
    curve was fitted on."""
    refit = WEIGHTED_REFITS.get(type(curve))
    if refit is None:
        raise InvalidInputError("regressor", f"a weighted refit needs a SplineRegressor or "
                                f"PolynomialRegressor curve, got {type(curve).__name__}")
    return refit(curve, x, y, np.sqrt(weights))  # type: ignore[no-any-return]
