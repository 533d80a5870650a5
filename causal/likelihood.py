"""Likelihood scores of a direction under a location-scale noise model (issue 19).

The score of ``cause -> effect`` is the log-likelihood of the pair factorised that way,
``log p(cause) + log p(effect | cause)``, with the effect given the cause a location-scale noise
model per mechanism (cluster) c of :mod:`.mechanisms`,
``effect = f_c(cause) + g_c(cause) noise``: LOCI (Immer et al., ICML 2023), extended to the
clusters. Per direction, with ``r = effect - f_c(cause)`` the residuals of the clustering's
curves:

* the variance ``g_c^2(cause)`` (``variance``, :data:`VARIANCES`): ``"spline"``, the
  regression (the same regressor as the curves) of ``r^2`` on the cause within each cluster:
  the least-squares moment estimate of the conditional variance, in closed form (no
  optimiser); or ``"loglinear"`` (``noise="loglinear-scale"``'s model, round 6):
  ``sigma_c^2 s_c(cause)^2`` with ``s_c = exp(a_c + b_c cause)`` the tested residuals' divisor
  (:func:`residual_scale`) and ``sigma_c^2`` its maximum-likelihood constant; either floored
  at ``max(delta^2 / 12, (SCALE_FLOOR sd_c)^2)`` (the effect's resolution, as the BIC's floor,
  and a tenth of the cluster's residual sd);
* the noise density (``density``, a [U] choice): ``"gaussian"`` (LOCI's Gaussian likelihood,
  ``sum -1/2 (log 2 pi g^2 + r^2 / g^2)``) or ``"entropy"`` (nonparametric: minus n times the
  m-spacing entropy estimate of the standardised residuals ``r / g``, minus ``sum log g``: the
  entropy form of an ANM score, Mooij et al. 2016's ANM-ent with a location-scale model);
* the labels: ``sum_c n_c log(n_c / n)`` (the classification likelihood of the BIC);
* the cause: minus n times the m-spacing entropy estimate of the (z-scored) cause, the
  nonparametric ``log p(cause)`` of LOCI's factorisation (both variables are z-scored, so a
  Gaussian marginal would cancel between the directions);
* a BIC penalty ``p/2 log n``, ``p`` the coefficients of every curve and variance curve plus
  ``k - 1`` proportions (the two directions may have different k and spline sizes); or, with
  ``folds > 0``, no penalty but a held-out (cross-fitted) conditional likelihood: within each
  cluster the points are dealt into ``folds`` folds by the rank of their cause (point i of the
  sorted cause in fold ``i mod folds``: deterministic and order-free), and each fold's points
  are scored by the mean and variance curves fitted on the other folds (Gaussian density):
  the regression's complexity is paid for by its out-of-sample fit instead of a count of
  coefficients.

Entropies are SciPy's :func:`scipy.stats.differential_entropy` (the m-spacing estimators) of the
values after :func:`dequantize`: tied values (a discretised variable) spread evenly over their
resolution cell, the differential entropy of the variable uniformly jittered within its grid,
without randomness (a tie would make a spacing zero and the estimate minus infinity).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from proxcompress.errors import InvalidInputError

from ._checks import choice, integer
from .mechanisms import IntArray, Mechanisms, resolution_variance
from .regression import FloatArray, PolynomialRegressor, Regressor

#: the noise densities of :func:`location_scale_score`
DENSITIES: tuple[str, ...] = ("gaussian", "entropy")
#: smallest fitted noise sd, as a fraction of the cluster's residual sd
SCALE_FLOOR = 0.1
#: the log-linear scale's regressor (``log |r|`` on the cause)
LINE = PolynomialRegressor(degree=1)
#: folds of the held-out scores (``decision="heldout-likelihood"``, ``criterion="heldout"``)
HELDOUT_FOLDS = 5
#: smallest fitted residual scale of :func:`residual_scale`, as a fraction of the cluster's mean
#: ``|residual|`` (a fitted scale must stay positive)
SPREAD_FLOOR = 0.1


@dataclass(frozen=True)
class LikelihoodScore:
    """One direction's score (module docstring): ``total`` is ``cause_loglik +
    conditional_loglik + labels_loglik - penalty``, all in nats over the whole sample."""

    total: float
    cause_loglik: float
    conditional_loglik: float
    labels_loglik: float
    penalty: float
    parameters: float


def dequantize(values: FloatArray) -> FloatArray:
    """``values`` with each group of ``c`` tied copies of ``v`` replaced by
    ``v + delta ((j + 1/2) / c - 1/2)``, ``j < c``: evenly spread over the cell of width
    ``delta`` (the median gap between consecutive distinct values) around ``v``. Without ties
    the values come back unchanged; a constant sample is spread over a unit cell."""
    values = np.asarray(values, dtype=np.float64)
    levels, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    if levels.size == values.size:
        return values.copy()
    gaps = np.diff(levels)
    delta = float(np.median(gaps)) if gaps.size else 1.0
    order = np.argsort(inverse, kind="stable")
    rank = np.empty(values.size, dtype=np.float64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(values.size) - np.repeat(starts, counts)
    c = counts[inverse].astype(np.float64)
    return values + delta * ((rank + 0.5) / c - 0.5)


def entropy(values: FloatArray) -> float:
    """The m-spacing estimate of the differential entropy of ``values`` after
    :func:`dequantize` (SciPy's default method for the sample size)."""
    from scipy.stats import differential_entropy

    return float(differential_entropy(dequantize(values)))


def variance_floor(residuals: FloatArray, resolution: float) -> float:
    """Smallest fitted variance of a cluster: the effect's resolution variance, the square of
    ``SCALE_FLOOR`` times the residuals' sd, and never 0."""
    return max(resolution, (SCALE_FLOOR * float(residuals.std())) ** 2, 1e-300)


def gaussian_loglik(residuals: FloatArray, variance: FloatArray) -> float:
    """``sum -1/2 (log 2 pi variance + residuals^2 / variance)``."""
    return -0.5 * float(np.sum(np.log(2 * np.pi * variance) + residuals**2 / variance))


def variance_curve(cause: FloatArray, residuals: FloatArray, regressor: Regressor,
                   floor: float, at: FloatArray | None = None) -> tuple[FloatArray, float]:
    """The fitted conditional variance (the regression of ``residuals^2`` on the cause, at
    least ``floor``) at ``at`` (default: ``cause``) and the regression's degrees of freedom; a
    constant variance (``mean r^2``, one parameter) where the cause has too few distinct values
    to fit."""
    squared = residuals**2
    at = cause if at is None else at
    if np.unique(cause).size < regressor.min_points():
        return np.full(at.size, max(float(squared.mean()), floor)), 1.0
    curve = regressor.fit(cause, squared)
    return np.maximum(curve.predict(at), floor), curve.df


def residual_scale(cause: FloatArray, centred: FloatArray, regressor: Regressor,
                   log_scale: bool) -> FloatArray | None:
    """One cluster's fitted residual scale ``s(cause)`` at its points: the regression
    (``regressor``) of ``|centred|`` on the cause, or with ``log_scale`` of
    ``log max(|centred|, floor)`` exponentiated (with a line, ``exp(a + b cause)``), at least
    ``floor = SPREAD_FLOOR`` times the mean ``|centred|``. None where no scale is fitted (all
    residuals zero, or too few distinct causes for the regressor). The divisor of the scaled
    residuals of :func:`.direction.scaled_residuals`."""
    size = np.abs(centred)
    floor = SPREAD_FLOOR * float(size.mean())
    if floor == 0 or np.unique(cause).size < regressor.min_points():
        return None
    target = np.log(np.maximum(size, floor)) if log_scale else size
    scale = regressor.fit(cause, target).predict(cause)
    return np.maximum(np.exp(scale) if log_scale else scale, floor)


def loglinear_variance(cause: FloatArray, residuals: FloatArray, regressor: Regressor,
                       floor: float) -> tuple[FloatArray, float]:
    """The variance of the log-linear scale model of ``noise="loglinear-scale"`` at the
    cluster's points and its parameter count (issue 19, round 6): the shape ``s(cause)`` is
    :func:`residual_scale` of the centred residuals with a line on ``log |r|`` (exactly the
    divisor of the tested residuals), the noise sd ``sigma s(cause)`` with
    ``sigma^2 = mean((residuals / s)^2)``, the Gaussian maximum-likelihood constant given the
    shape (the least squares of ``log |r|`` fixes ``log s`` only up to a constant), floored at
    ``floor``; two parameters (``a``, ``b``; ``sigma`` is ``a``'s). Where no shape is fitted: the
    constant ``mean r^2`` (one parameter). ``regressor`` is unused (the scale is a line)."""
    del regressor
    shape = residual_scale(cause, residuals - residuals.mean(), LINE, log_scale=True)
    if shape is None:
        return np.full(cause.size, max(float(np.mean(residuals**2)), floor)), 1.0
    sigma2 = float(np.mean((residuals / shape) ** 2))
    return np.maximum(sigma2 * shape**2, floor), 2.0


#: the variance models of :func:`location_scale_score` (a variance at the cluster's points and
#: its parameter count): round 2's spline regression of ``r^2`` (every noise model but
#: ``loglinear-scale``), and the log-linear scale of ``noise="loglinear-scale"`` (round 6)
VARIANCES: dict[str, Callable[[FloatArray, FloatArray, Regressor, float],
                              tuple[FloatArray, float]]] = {
    "spline": variance_curve,
    "loglinear": loglinear_variance,
}


def fold_of(cause: FloatArray, folds: int) -> IntArray:
    """Each point's fold: point i of the sorted ``cause`` in fold ``i mod folds`` (deterministic
    and independent of the points' order; ties keep their input order)."""
    fold = np.empty(cause.size, dtype=np.int64)
    fold[np.argsort(cause, kind="stable")] = np.arange(cause.size) % folds
    return fold


def mean_and_variance(cause: FloatArray, effect: FloatArray, regressor: Regressor,
                      resolution: float, at: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The mean curve (``regressor``; the mean of ``effect`` where the cause has too few
    distinct values to fit) and the variance curve of :func:`variance_curve`, fitted on
    ``(cause, effect)`` and evaluated at ``at``."""
    if np.unique(cause).size < regressor.min_points():
        fitted, predicted = np.full(cause.size, effect.mean()), np.full(at.size, effect.mean())
    else:
        curve = regressor.fit(cause, effect)
        fitted, predicted = curve.predict(cause), curve.predict(at)
    r = effect - fitted
    variance, _ = variance_curve(cause, r, regressor, variance_floor(r, resolution), at)
    return predicted, variance


def heldout_classification(cause: FloatArray, effect: FloatArray, labels: IntArray,
                    regressor: Regressor, folds: int, resolution: float) -> float:
    """The cross-fitted classification log-likelihood of ``effect`` given ``cause`` with one
    location-scale Gaussian per cluster of ``labels`` (``0..k-1``): each cluster's points dealt
    into ``folds`` folds by :func:`fold_of`; for fold j, every cluster's mean and variance
    curves (:func:`mean_and_variance`) fitted on its points outside fold j, and each point of
    fold j scored by its best mechanism, ``max_c log pi_c N(effect; f_c(cause), g_c^2(cause))``,
    ``pi_c`` the clusters' shares of the points outside fold j (the hard assignment of the
    classification BIC, label cost included; a sum over c, the mixture density, would reward
    splitting one non-Gaussian noise into several Gaussians). A point's own label does not
    enter its score. With one cluster: the cross-fitted heteroscedastic Gaussian."""
    folds = integer(folds, "folds", 2)
    k = int(labels.max()) + 1
    fold = np.empty(cause.size, dtype=np.int64)
    for c in range(k):
        at = labels == c
        fold[at] = fold_of(cause[at], folds)
    total = 0.0
    for j in range(folds):
        held = fold == j
        if not held.any():
            continue
        terms, sizes = [], []
        for c in range(k):
            train = (labels == c) & ~held
            if not train.any():
                continue
            mean, variance = mean_and_variance(cause[train], effect[train], regressor,
                                               resolution, cause[held])
            sizes.append(np.count_nonzero(train))
            terms.append(np.log(sizes[-1]) - 0.5 * (np.log(2 * np.pi * variance)
                                                    + (effect[held] - mean) ** 2 / variance))
        total += float(np.sum(np.max(np.stack(terms), axis=0))) - held.sum() * np.log(
            sum(sizes))
    return total


def heldout_gaussian(cause: FloatArray, effect: FloatArray, regressor: Regressor, folds: int,
                     resolution: float) -> float:
    """The cross-fitted Gaussian log-likelihood of ``effect`` given ``cause`` (one cluster;
    module docstring): each fold's points scored by the mean and variance curves fitted on the
    other folds' points (:func:`heldout_classification` with one cluster)."""
    return heldout_classification(cause, effect, np.zeros(cause.size, dtype=np.int64), regressor,
                           folds, resolution)


def location_scale_score(cause: FloatArray, effect: FloatArray, mechanisms: Mechanisms,
                         regressor: Regressor, density: str = "gaussian",
                         cause_entropy: float | None = None, folds: int = 0,
                         variance: str = "spline") -> LikelihoodScore:
    """The score of ``cause -> effect`` given its clustering ``mechanisms`` (module docstring).
    ``cause_entropy`` may be passed when already known (it is the other direction's effect);
    ``folds`` (0, or an integer >= 2) scores the conditional part held out (Gaussian density
    only); ``variance`` (a name of :data:`VARIANCES`) is the variance model of the BIC-penalised
    score (held-out scores use the spline's)."""
    choice(density, "density", DENSITIES)
    choice(variance, "variance", tuple(VARIANCES))
    if folds != 0:
        integer(folds, "folds", 2)
    if folds and density != "gaussian":
        raise InvalidInputError("folds", "held-out scores use the Gaussian density")
    labels: IntArray = mechanisms.labels
    residuals = mechanisms.residuals(cause, effect)
    n = effect.size
    resolution = resolution_variance(effect)
    conditional = 0.0
    parameters = float(mechanisms.k - 1)
    for c, curve in enumerate(mechanisms.curves):
        at = labels == c
        r = residuals[at]
        if folds:
            conditional += heldout_gaussian(cause[at], effect[at], regressor, folds, resolution)
            continue
        v, df = VARIANCES[variance](cause[at], r, regressor, variance_floor(r, resolution))
        parameters += curve.df + df
        if density == "gaussian":
            conditional += gaussian_loglik(r, v)
        else:
            conditional += -r.size * entropy(r / np.sqrt(v)) - 0.5 * float(np.sum(np.log(v)))
    sizes = np.bincount(labels, minlength=mechanisms.k).astype(np.float64)
    sizes = sizes[sizes > 0]
    labels_loglik = float(np.sum(sizes * np.log(sizes / n)))
    cause_loglik = -n * (entropy(cause) if cause_entropy is None else cause_entropy)
    penalty = 0.0 if folds else 0.5 * parameters * float(np.log(n))
    return LikelihoodScore(cause_loglik + conditional + labels_loglik - penalty, cause_loglik,
                           conditional, labels_loglik, penalty, parameters)


__all__ = ["DENSITIES", "HELDOUT_FOLDS", "LINE", "SPREAD_FLOOR", "VARIANCES", "LikelihoodScore",
           "dequantize", "entropy", "fold_of", "gaussian_loglik", "heldout_classification",
           "heldout_gaussian", "location_scale_score", "loglinear_variance", "mean_and_variance",
           "residual_scale", "variance_curve", "variance_floor"]
