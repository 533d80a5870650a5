"""Regressors: exact on their own function spaces, GCV against brute force, clipping."""

from __future__ import annotations

import numpy as np
import pytest

from proxcompress.causal import PolynomialRegressor, SplineRegressor
from proxcompress.errors import InvalidInputError


def test_spline_reproduces_a_cubic_exactly() -> None:
    """A cubic lies in every cubic spline space: residuals vanish whatever the knots."""
    x = np.random.default_rng(0).uniform(-2, 2, 200)
    y = 0.5 - x + 0.3 * x**2 - 0.2 * x**3
    curve = SplineRegressor().fit(x, y)
    assert np.max(np.abs(curve.predict(x) - y)) < 1e-9


def test_spline_gcv_choice_equals_brute_force() -> None:
    """The chosen knot count minimizes n RSS / (n - df)^2 over all counts tried."""
    from scipy.interpolate import make_lsq_spline

    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, 150)
    y = np.sin(2 * x) + 0.1 * rng.standard_normal(150)
    curve = SplineRegressor(max_knots=8).fit(x, y)
    xs, ys = np.sort(x), y[np.argsort(x)]
    scores = []
    for m in range(9):
        inner = np.quantile(xs, np.arange(1, m + 1) / (m + 1))
        t = np.concatenate([[xs[0]] * 4, inner, [xs[-1]] * 4])
        s = make_lsq_spline(xs, ys, t, k=3)
        rss = np.sum((ys - s(xs)) ** 2)
        scores.append(150 * rss / (150 - (m + 4)) ** 2)
    assert curve.df == int(np.argmin(scores)) + 4
    assert curve.df > 4  # a sine over two periods needs interior knots
    assert np.sqrt(np.mean((curve.predict(x) - np.sin(2 * x)) ** 2)) < 0.05


def test_knots_sit_at_quantiles_of_the_distinct_causes() -> None:
    """With heavy ties, the brute force over distinct-value knots picks the same fit."""
    from scipy.interpolate import make_lsq_spline

    rng = np.random.default_rng(3)
    x = np.round(rng.uniform(-2, 2, 300), 1)  # 41 distinct values, ~7 copies each
    y = np.sin(2 * x) + 0.1 * rng.standard_normal(300)
    curve = SplineRegressor(max_knots=8).fit(x, y)
    xs, ys = np.sort(x), y[np.argsort(x, kind="stable")]
    distinct = np.unique(xs)
    best = None
    for m in range(9):
        inner = np.quantile(distinct, np.arange(1, m + 1) / (m + 1))
        t = np.concatenate([[xs[0]] * 4, inner, [xs[-1]] * 4])
        s = make_lsq_spline(xs, ys, t, k=3)
        gcv = 300 * np.sum((ys - s(xs)) ** 2) / (300 - (m + 4)) ** 2
        if best is None or gcv < best[0]:
            best = (gcv, s)
    assert curve.predict(distinct) == pytest.approx(best[1](distinct), abs=1e-9)


def test_small_samples_lower_the_knot_count() -> None:
    x = np.linspace(0, 1, 30)
    curve = SplineRegressor(max_knots=8, points_per_coefficient=5).fit(x, np.sin(6 * x))
    assert curve.df <= 30 // 5


def test_prediction_is_clipped_to_the_fitted_range() -> None:
    x = np.linspace(-1, 1, 50)
    for regressor in (SplineRegressor(), PolynomialRegressor(3)):
        curve = regressor.fit(x, x**3)
        out = curve.predict(np.array([-5.0, 5.0]))
        assert out == pytest.approx([-1.0, 1.0], abs=1e-9)


def test_polynomial_equals_numpy_polyfit() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, 40)
    y = rng.standard_normal(40)
    curve = PolynomialRegressor(4).fit(x, y)
    assert curve.df == 5
    assert curve.predict(x) == pytest.approx(np.polyval(np.polyfit(x, y, 4), x), abs=1e-9)


def test_too_few_points_and_bad_settings_are_refused() -> None:
    with pytest.raises(InvalidInputError) as info:
        SplineRegressor().fit(np.full(10, 2.0), np.arange(10.0))  # one distinct cause value
    assert info.value.field == "x"
    with pytest.raises(InvalidInputError) as info:
        PolynomialRegressor(3).fit(np.ones(10), np.arange(10.0))  # one distinct cause value
    assert info.value.field == "x"
    with pytest.raises(InvalidInputError) as info:
        SplineRegressor().fit(np.arange(30.0), np.r_[np.arange(29.0), np.inf])
    assert info.value.field == "y"
    for make, field in (
        (lambda: SplineRegressor(max_knots=-1), "max_knots"),
        (lambda: SplineRegressor(points_per_coefficient=1), "points_per_coefficient"),
        (lambda: PolynomialRegressor(-1), "degree"),
        (lambda: SplineRegressor(max_knots=2.5), "max_knots"),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInputError) as info:
            make()
        assert info.value.field == field
