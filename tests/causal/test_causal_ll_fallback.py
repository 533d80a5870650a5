"""Issue 19, round 6: the likelihood of ``noise="loglinear-scale"`` (the fitted log-linear scale
Gaussian per mechanism) that ``decision="hsic-else-likelihood"`` falls back to: its shape is the
tested residuals' divisor, its constant the brute-force maximum of the Gaussian likelihood, its
value SciPy's normal density; the direction test scores that model under LL and round 2's
spline variance under the other noise models."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import norm

from proxcompress.causal import SplineRegressor, causal_directions, simulate_mixture
from proxcompress.causal.direction import scaled_residuals, standardize
from proxcompress.causal.likelihood import (
    LINE,
    SPREAD_FLOOR,
    location_scale_score,
    loglinear_variance,
    variance_floor,
)
from proxcompress.causal.mechanisms import cluster_mechanisms, resolution_variance
from proxcompress.errors import InvalidInputError


def multiplicative(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """``r = exp(0.3 + 0.8 x) e`` plus a small offset: a log-linear spread, nonzero mean."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.5, 1.5, n)
    return x, 0.05 + np.exp(0.3 + 0.8 * x) * rng.standard_normal(n)


def numpy_twin(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The divisor written out with NumPy alone: centred |r|, floored at SPREAD_FLOOR times its
    mean, a least-squares line of its log on x, exponentiated and floored again."""
    size = np.abs(r - r.mean())
    floor = SPREAD_FLOOR * size.mean()
    b, a = np.polyfit(x, np.log(np.maximum(size, floor)), 1)
    return np.maximum(np.exp(a + b * x), floor)


def test_the_shape_is_the_tested_residuals_divisor() -> None:
    x, r = multiplicative(0)
    shape = numpy_twin(x, r)
    tested = scaled_residuals(x, r, np.zeros(x.size, dtype=np.int64), LINE, log_scale=True)
    np.testing.assert_allclose(tested, (r - r.mean()) / shape, rtol=1e-10)
    variance, df = loglinear_variance(x, r, LINE, 0.0)
    sigma2 = np.mean((r / shape) ** 2)
    np.testing.assert_allclose(variance, sigma2 * shape**2, rtol=1e-10)
    assert df == 2.0


def test_the_constant_is_the_brute_force_maximum_of_the_likelihood() -> None:
    """Given the shape, ``sigma^2 = mean((r / s)^2)`` maximises ``sum log N(r; 0, sigma^2 s^2)``:
    a bounded scalar optimiser and a fine grid find no larger value."""
    x, r = multiplicative(1)
    shape = numpy_twin(x, r)
    variance, _ = loglinear_variance(x, r, LINE, 0.0)
    ours = float(np.sum(norm.logpdf(r, 0.0, np.sqrt(variance))))

    def minus(log_sigma: float) -> float:
        return -float(np.sum(norm.logpdf(r, 0.0, np.exp(log_sigma) * shape)))

    best = minimize_scalar(minus, bounds=(-5, 5), method="bounded", options={"xatol": 1e-10})
    assert ours >= -best.fun - 1e-7
    assert ours == pytest.approx(-best.fun, abs=1e-6)
    grid = max(-minus(s) for s in np.linspace(-2, 2, 4001))
    assert grid <= ours + 1e-9
    # the true spread is recovered: sigma exp(a + b x) ~ exp(0.3 + 0.8 x)
    b, a = np.polyfit(x, 0.5 * np.log(variance), 1)
    assert b == pytest.approx(0.8, abs=0.1) and a == pytest.approx(0.3, abs=0.1)


def test_floor_and_no_shape() -> None:
    """The variance floor binds from below; a cause with one distinct value (no line) gives the
    constant ``mean r^2`` with one parameter; all-zero residuals give the floor."""
    x, r = multiplicative(2)
    variance, _ = loglinear_variance(x, r, LINE, 1.0)
    assert variance.min() >= 1.0 and np.any(variance == 1.0)
    variance, df = loglinear_variance(np.zeros(50), r[:50], LINE, 0.0)
    np.testing.assert_allclose(variance, np.mean(r[:50] ** 2))
    assert df == 1.0
    variance, df = loglinear_variance(x[:50], np.zeros(50), LINE, 1e-3)
    np.testing.assert_array_equal(variance, 1e-3)


def test_location_scale_score_with_the_loglinear_variance_is_the_closed_form() -> None:
    """Two mechanisms: the conditional part is SciPy's normal log-density with each cluster's
    log-linear variance (the floor of round 2), the parameters each curve's df plus two plus one
    proportion, the penalty ``p/2 log n``."""
    pair = simulate_mixture(300, 2, seed=5, noise="gaussian", heteroscedasticity=1.0)
    cause, effect = (pair.x, pair.y) if pair.direction == "x->y" else (pair.y, pair.x)
    regressor = SplineRegressor()
    mech = cluster_mechanisms(cause, effect, k=2, regressor=regressor)
    score = location_scale_score(cause, effect, mech, regressor, "gaussian",
                                 cause_entropy=0.0, variance="loglinear")
    residuals = mech.residuals(cause, effect)
    expected, parameters = 0.0, 1.0
    for c, curve in enumerate(mech.curves):
        at = mech.labels == c
        r = residuals[at]
        floor = max(resolution_variance(effect), (0.1 * r.std()) ** 2)
        shape = numpy_twin(cause[at], r)
        v = np.maximum(np.mean((r / shape) ** 2) * shape**2, floor)
        expected += float(np.sum(norm.logpdf(r, 0.0, np.sqrt(v))))
        parameters += curve.df + 2
        assert floor == variance_floor(r, resolution_variance(effect))
    assert score.conditional_loglik == pytest.approx(expected, rel=1e-10)
    assert score.parameters == pytest.approx(parameters)
    assert score.penalty == pytest.approx(0.5 * parameters * np.log(300))
    spline = location_scale_score(cause, effect, mech, regressor, "gaussian",
                                  cause_entropy=0.0)
    assert spline.conditional_loglik != pytest.approx(score.conditional_loglik)
    with pytest.raises(InvalidInputError, match="variance"):
        location_scale_score(cause, effect, mech, regressor, variance="cubic")


@pytest.mark.parametrize("noise, variance", [("loglinear-scale", "loglinear"),
                                             ("additive", "spline")])
def test_the_direction_test_scores_the_model_it_tests(noise: str, variance: str) -> None:
    """Under ``noise="loglinear-scale"`` the fallback's likelihood is the log-linear model's;
    under the additive noise (round 2) it is the spline variance's, as before round 6."""
    pair = simulate_mixture(200, 1, seed=7, noise="uniform", heteroscedasticity=1.0)
    out = causal_directions(pair.x, pair.y, ("hsic", "hsic-else-likelihood"),
                            noise=noise)  # type: ignore[arg-type]
    fit = out["hsic-else-likelihood"].forward
    assert fit.likelihood is not None and out["hsic"].forward.likelihood is None
    xs, ys = standardize(pair.x, "x"), standardize(pair.y, "y")
    again = location_scale_score(xs, ys, fit.mechanisms, SplineRegressor(), "gaussian",
                                 variance=variance)
    assert fit.likelihood.total == pytest.approx(again.total, rel=1e-12)
    # the HSIC part is the noise model's own test, shared by both decisions
    assert fit.test == out["hsic"].forward.test
