"""The log-linear scale noise model fitted by maximum likelihood (issue 19, round 5): the
weighted refit, the variance step, the monotone ascent, the planted scale, the reduction to the
homoscedastic fit, and the clustering / direction test that use it."""

from __future__ import annotations

import numpy as np
import pytest

from proxcompress.causal import (
    PolynomialRegressor,
    SplineRegressor,
    causal_direction,
    cluster_mechanisms,
)
from proxcompress.causal.mechanisms import bic, resolution_variance, scaled_bic
from proxcompress.causal.regression import weighted_refit
from proxcompress.causal.scale import (
    LogLinearScale,
    ScaledCurve,
    fit_loglinear_scale,
    loglik,
    variance_step,
)
from proxcompress.errors import InvalidInputError


def _pair(seed: int, n: int = 400, alpha: float = 0.3, beta: float = 0.8
          ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    return x, np.sin(2 * x) + np.exp((alpha + beta * x) / 2) * rng.normal(size=n)


@pytest.mark.parametrize("regressor", [SplineRegressor(), PolynomialRegressor(degree=3)])
def test_weighted_refit_is_weighted_least_squares(regressor: object) -> None:
    """Against the normal equations of the curve's own basis (the design matrix evaluated by
    the curve itself on unit coefficient vectors)."""
    x, y = _pair(1, 120)
    weights = np.random.default_rng(2).uniform(0.2, 5, x.size)
    curve = regressor.fit(x, y)  # type: ignore[attr-defined]
    refit = weighted_refit(curve, x, y, weights)
    basis = np.column_stack([type(curve)(**{**curve.__dict__, "coefficients": e}).predict(x)
                             for e in np.eye(curve.coefficients.size)])
    root = np.sqrt(weights)
    expected = np.linalg.lstsq(basis * root[:, None], y * root, rcond=None)[0]
    assert np.allclose(refit.coefficients, expected, atol=1e-8)
    assert np.allclose(weighted_refit(curve, x, y, np.full(x.size, 3.0)).coefficients,
                       curve.coefficients, atol=1e-10)  # equal weights: the unweighted fit


@pytest.mark.parametrize(("floor", "slope"), [(0.0, True), (0.05, True), (0.0, False)])
def test_variance_step_is_the_maximum(floor: float, slope: bool) -> None:
    """The Fisher-scoring variance step against a general optimiser on the same objective."""
    from scipy.optimize import minimize

    x, y = _pair(3, 300)
    squared = (y - np.sin(2 * x)) ** 2
    theta = variance_step(x, squared, floor, np.array([0.0, 0.0]), slope)

    def negative(t: np.ndarray) -> float:
        eta = t[0] + (t[1] * x if slope else 0.0)
        return -loglik(squared, floor + np.exp(eta))

    best = minimize(negative, np.zeros(2 if slope else 1), method="Nelder-Mead",
                    options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
    assert -negative(theta[: 2 if slope else 1]) >= -best.fun - 1e-7
    assert np.allclose(theta[: 2 if slope else 1], best.x, atol=1e-3)
    if not slope:
        assert theta[1] == 0.0
        if floor == 0:  # closed form: the mean squared residual
            assert np.exp(theta[0]) == pytest.approx(squared.mean(), rel=1e-8)


@pytest.mark.parametrize("seed", range(4))
def test_likelihood_never_decreases(seed: int) -> None:
    x, y = _pair(10 + seed, 300, alpha=-0.5, beta=1.2 * (-1) ** seed)
    for floor in (0.0, 0.01):
        curve, trace = fit_loglinear_scale(x, y, SplineRegressor(), floor)
        assert len(trace) >= 2 and np.all(np.diff(trace) >= -1e-9 * (1 + abs(trace[0])))
        assert trace[-1] > trace[0]  # the planted slope is found, so the start is improved on
        final = loglik((y - curve.predict(x)) ** 2, curve.variance(x))
        assert final == pytest.approx(trace[-1], rel=1e-12)


def test_recovers_a_planted_log_linear_scale() -> None:
    x, y = _pair(5, 4000, alpha=0.3, beta=0.8)
    curve, _ = fit_loglinear_scale(x, y, SplineRegressor(), 0.0)
    # standard errors about sqrt(2 / n) ~ 0.02 (alpha) and 0.02 (beta, x of variance 4/3)
    assert curve.alpha == pytest.approx(0.3, abs=0.1) and curve.beta == pytest.approx(0.8, abs=0.1)
    assert np.max(np.abs(curve.predict(np.linspace(-1.5, 1.5, 7))
                         - np.sin(2 * np.linspace(-1.5, 1.5, 7)))) < 0.25


def test_reduces_to_the_homoscedastic_fit_when_the_slope_is_zero() -> None:
    """beta forced to 0 and one mechanism: the curve is the unweighted GCV spline (equal
    weights), the variance max(RSS / n, floor), and the BIC the classification BIC."""
    x, y = _pair(7, 300)
    for effect in (y, np.round(y, 0)):  # continuous, and a discretised effect (the floor)
        floor = resolution_variance(effect)
        plain = SplineRegressor().fit(x, effect)
        scaled = LogLinearScale(SplineRegressor(), floor, slope=False).fit(x, effect)
        assert scaled.beta == 0.0 and scaled.df == plain.df + 1
        assert np.allclose(scaled.mean.coefficients, plain.coefficients, atol=1e-9)  # type: ignore[attr-defined]
        labels = np.zeros(x.size, dtype=np.int64)
        assert scaled_bic(x, effect, labels, (scaled,)) == pytest.approx(
            bic(x, effect, labels, (plain,)), rel=1e-9)


def test_a_heteroscedastic_mechanism_is_one_mechanism() -> None:
    """A single mechanism whose spread grows 20-fold: the log-linear scale model's BIC keeps
    k = 1 on every seed, while a homoscedastic mixture of two curves is still split."""
    for seed in range(3):
        rng = np.random.default_rng(40 + seed)
        x = rng.uniform(-1.5, 1.5, 300)
        y = np.tanh(x) + 0.05 * np.exp(x) * rng.normal(size=300)
        mech = cluster_mechanisms(x, y, noise="loglinear-scale")
        assert mech.k == 1 and isinstance(mech.curves[0], ScaledCurve)
        standardized = mech.standardized_residuals(x, y)
        curve = mech.curves[0]
        assert np.allclose(standardized, (y - curve.predict(x)) / np.sqrt(curve.variance(x)))
    from proxcompress.causal import simulate_mixture

    pair = simulate_mixture(300, 2, seed=2001, swap=False)
    assert cluster_mechanisms(pair.x, pair.y, noise="loglinear-scale").k == 2


def test_direction_with_the_fitted_scale_model() -> None:
    """y = x^3 + e^x u (multiplicative noise): the additive test fails, the fitted log-linear
    scale model (k auto) decides it; mirror symmetry holds."""
    right = 0
    for seed in range(4):
        rng = np.random.default_rng(200 + seed)
        x = rng.uniform(-1.5, 1.5, 300)
        y = x**3 + np.exp(x) * rng.uniform(-1, 1, 300)
        result = causal_direction(x, y, noise="loglinear-bic")
        right += result.direction == "x->y"
        mirrored = causal_direction(y, x, noise="loglinear-bic")
        assert {result.direction, mirrored.direction} in ({"x->y", "y->x"}, {"undecided"})
    assert right >= 3


@pytest.mark.parametrize("criterion", ["mixture", "heldout", "heldout-or-one"])
def test_other_criteria_are_refused(criterion: str) -> None:
    x, y = _pair(8, 60)
    with pytest.raises(InvalidInputError) as info:
        causal_direction(x, y, noise="loglinear-bic", criterion=criterion)
    assert info.value.field == "criterion"
    with pytest.raises(InvalidInputError) as info:
        cluster_mechanisms(x, y, noise="loglinear-scale", criterion=criterion)
    assert info.value.field == "criterion"
    with pytest.raises(InvalidInputError) as info:
        cluster_mechanisms(x, y, noise="gamma")
    assert info.value.field == "noise"


def test_a_curve_without_a_weighted_refit_is_refused() -> None:
    class Flat:
        df = 1.0

        def predict(self, x: np.ndarray) -> np.ndarray:
            return np.zeros_like(x)

    with pytest.raises(InvalidInputError) as info:
        weighted_refit(Flat(), np.arange(5.0), np.arange(5.0), np.ones(5))  # type: ignore[arg-type]
    assert info.value.field == "regressor"
