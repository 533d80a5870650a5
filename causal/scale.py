"""The log-linear scale noise model of one mechanism, fitted by maximum likelihood (issue 19,
round 5: ``noise="loglinear-bic"``).

``effect = f(cause) + sqrt(v(cause)) noise`` with standard Gaussian noise and
``v(c) = floor + exp(alpha + beta c)``: a mean curve (the regressor's spline) and a log-linear
variance, the form of :data:`.direction.SCALES`' ``"loglinear-scale"`` residuals, here in the
likelihood itself, so that the clustering, its BIC and the tested residuals share one model.
``floor`` is the effect's resolution variance ``delta^2 / 12`` (:func:`.mechanisms.
resolution_variance`): the variance rounding to the effect's grid adds to the noise's, and it
keeps the likelihood bounded for discretised effects (for continuous effects it is negligible).

The log-likelihood of a cluster, ``l = sum_i -1/2 log(2 pi v_i) - r_i^2 / (2 v_i)`` with
``r_i = y_i - f(x_i)`` and ``v_i = v(x_i)``, is maximised by block coordinate ascent:

* **mean step** (``v`` fixed): ``l`` in ``f`` is ``-sum_i r_i^2 / (2 v_i)``: weighted least
  squares with weights ``1 / v_i`` (:func:`.regression.weighted_refit`) on the basis the
  regressor chose (its GCV) on the first, unweighted fit; the basis stays fixed, so the step
  maximises ``l`` over it exactly;
* **variance step** (``f`` fixed): ``l(alpha, beta)`` by Fisher scoring in
  ``eta_i = alpha + beta x_i``: with ``u_i = exp(eta_i) / v_i``,
  ``dl / d eta_i = u_i (r_i^2 / v_i - 1) / 2`` and the expected information ``u_i^2 / 2``, so a
  step is the weighted least squares of ``(r_i^2 / v_i - 1) / u_i`` on ``(1, x_i)`` with weights
  ``u_i^2 / 2``; a step that does not increase ``l`` is halved (so ``l`` never decreases).
  With ``floor = 0`` the weights are constant (``l`` is concave in ``(alpha, beta)``).

Neither step decreases ``l``, so the iterations are monotone; they start from the unweighted
fit with a constant variance (``beta = 0``, ``exp(alpha)`` the mean squared residual less the
floor), which is the homoscedastic model, and stop after ``SCALE_ITERATIONS`` rounds or when
``l`` gains less than ``TOLERANCE`` (relative). With ``slope=False`` ``beta`` is held at 0 (a
constant variance per mechanism; with one mechanism the homoscedastic fit of
:func:`.mechanisms.bic`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .regression import Curve, FloatArray, Regressor, weighted_refit

#: mean/variance rounds of one mechanism's fit
SCALE_ITERATIONS = 10
#: Fisher-scoring steps of one variance step, and the halvings of one step
NEWTON_STEPS = 30
HALVINGS = 30
#: stop when a round gains less than this fraction of ``1 + |l|``
TOLERANCE = 1e-9
#: bound on ``|alpha + beta x|`` (exp overflows beyond ~709)
ETA_BOUND = 600.0


@dataclass(frozen=True)
class ScaledCurve:
    """A mean curve with the variance ``floor + exp(alpha + beta x)``, the cause clipped to the
    fitted range ``[lo, hi]`` as the mean's is; ``df`` counts the scale's parameters too."""

    mean: Curve
    alpha: float
    beta: float
    lo: float
    hi: float
    floor: float
    scale_params: int = 2

    @property
    def df(self) -> float:
        return float(self.mean.df) + self.scale_params

    def predict(self, x: FloatArray) -> FloatArray:
        return self.mean.predict(x)

    def variance(self, x: FloatArray) -> FloatArray:
        eta = np.clip(self.alpha + self.beta * np.clip(x, self.lo, self.hi), -ETA_BOUND,
                      ETA_BOUND)
        return np.asarray(self.floor + np.exp(eta), dtype=np.float64)

    def costs(self, x: FloatArray, y: FloatArray) -> FloatArray:
        """``-2 log N(y; f(x), v(x)) - log(2 pi)`` per point: the assignment cost of the
        clustering (the additive model's is the squared residual)."""
        v = self.variance(x)
        return np.asarray(np.log(v) + (y - self.predict(x)) ** 2 / v, dtype=np.float64)


def loglik(squared: FloatArray, variance: FloatArray) -> float:
    """``sum_i -1/2 log(2 pi v_i) - r_i^2 / (2 v_i)``."""
    return float(-0.5 * np.sum(np.log(2 * np.pi * variance) + squared / variance))


def _variance(eta: FloatArray, floor: float) -> FloatArray:
    return np.asarray(floor + np.exp(np.clip(eta, -ETA_BOUND, ETA_BOUND)), dtype=np.float64)


def variance_step(x: FloatArray, squared: FloatArray, floor: float, start: FloatArray,
                  slope: bool = True) -> FloatArray:
    """``(alpha, beta)`` maximising ``l`` for fixed squared residuals (module docstring), from
    ``start``; ``slope=False`` keeps ``beta`` at 0."""
    design = np.column_stack([np.ones_like(x), x]) if slope else np.ones((x.size, 1))
    theta = np.array(start[: design.shape[1]], dtype=np.float64)
    current = loglik(squared, _variance(design @ theta, floor))
    for _ in range(NEWTON_STEPS):
        eta = design @ theta
        v = _variance(eta, floor)
        u = np.exp(np.clip(eta, -ETA_BOUND, ETA_BOUND)) / v
        root = u / np.sqrt(2)  # sqrt of the information weight u^2 / 2
        working = (squared / v - 1) / np.maximum(u, 1e-300)
        step = np.linalg.lstsq(design * root[:, None], working * root, rcond=None)[0]
        for _ in range(HALVINGS):
            candidate = theta + step
            value = loglik(squared, _variance(design @ candidate, floor))
            if value > current:
                break
            step = step / 2
        else:
            break  # no ascent along the scoring direction: a maximum (to rounding)
        gain = value - current
        theta, current = candidate, value
        if gain <= TOLERANCE * (1 + abs(current)):
            break
    return np.array([theta[0], theta[1] if slope else 0.0])


def fit_loglinear_scale(x: FloatArray, y: FloatArray, regressor: Regressor, floor: float,
                        slope: bool = True, iterations: int = SCALE_ITERATIONS
                        ) -> tuple[ScaledCurve, list[float]]:
    """The maximum-likelihood mean curve and log-linear variance of one mechanism (module
    docstring), and ``l`` after the start and after each round (non-decreasing)."""
    mean = regressor.fit(x, y)
    squared = (y - mean.predict(x)) ** 2
    excess = float(squared.mean()) - floor
    theta = np.array([np.log(max(excess, 1e-3 * float(squared.mean()), 1e-300)), 0.0])
    variance = _variance(theta[0] + theta[1] * x, floor)
    trace = [loglik(squared, variance)]
    for _ in range(iterations):
        theta = variance_step(x, squared, floor, theta, slope)
        variance = _variance(theta[0] + theta[1] * x, floor)
        mean = weighted_refit(mean, x, y, 1 / variance)
        squared = (y - mean.predict(x)) ** 2
        trace.append(loglik(squared, variance))
        if trace[-1] - trace[-2] <= TOLERANCE * (1 + abs(trace[-1])):
            break
    # the last mean step's squared residuals are what the curve is scored with
    lo, hi = float(x.min()), float(x.max())
    return ScaledCurve(mean, float(theta[0]), float(theta[1]), lo, hi, floor,
                       2 if slope else 1), trace


@dataclass(frozen=True)
class LogLinearScale:
    """A :class:`.regression.Regressor` whose curves carry the log-linear variance:
    ``fit`` is :func:`fit_loglinear_scale` with ``regressor``'s curves."""

    regressor: Regressor
    floor: float
    slope: bool = True

    def min_points(self) -> int:
        return max(self.regressor.min_points(), 2)

    def fit(self, x: FloatArray, y: FloatArray) -> ScaledCurve:
        return fit_loglinear_scale(x, y, self.regressor, self.floor, self.slope)[0]
