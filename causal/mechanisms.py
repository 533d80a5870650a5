"""Mechanism clustering with unknown k: a mixture of additive noise models
``effect = f_c(cause) + noise`` with hard labels c (methods.md section 10, step 2).

k-means-inspired alternation: assign every point to the mechanism with the smallest squared
residual, refit each mechanism on its points, until the labels stop changing. The number of
mechanisms grows X-means style (Pelleg & Moore 2000): from the current solution, each cluster in
turn is split by the sign of its residuals (points above / below its curve) and the alternation
rerun; the best split by BIC is kept, up to ``k_max``. The k returned is the BIC minimum over
that path. Everything here is deterministic and does not depend on the order of the points.

The BIC (a [U] choice, ``criterion``): ``-2 log L + p log n`` with
``p = sum_c df_c + 1 + (k - 1)`` (curves, one noise scale, the proportions) and either

* ``"classification"`` (default): the likelihood of the hard assignment with one noise variance,
  what the squared-residual assignment maximizes:
  ``log L = -n/2 (log(2 pi RSS/n) + 1) + sum_c n_c log(n_c / n)``;
* ``"mixture"``: the fitted curves scored as a Gaussian mixture with proportions ``n_c / n``,
  ``log L = max_sigma sum_i log sum_c pi_c N(effect_i; f_c(cause_i), sigma^2)``.

The noise variance in both is floored at the effect's resolution, ``delta^2 / 12`` with ``delta``
the median gap between its consecutive distinct values (the variance of rounding to that grid):
a discretised effect (counts, grades, a binary variable) could otherwise be "explained" by one
mechanism per level with zero residuals and an unbounded likelihood. For continuous effects the
floor is far below any noise level and changes nothing.

A third way to choose k (``criterion="heldout"``, issue 19): the path is grown as with the
classification BIC (the same candidate clusterings), and k maximises the cross-fitted
classification log-likelihood of one location-scale Gaussian per cluster, each held-out point
scored by its best mechanism (:func:`.likelihood.heldout_classification`, ``HELDOUT_FOLDS``
folds): heteroscedastic noise is then
not mistaken for several mechanisms, and a split must predict held-out points better to be kept.
``bic`` and ``bic_path`` then hold ``-2`` times that held-out log-likelihood (smaller is better,
as for a BIC). ``criterion="heldout-or-one"`` asks the held-out score one question only: k = 1
or the classification BIC's k (k = 1 where its held-out score is at least the other's);
``bic_path`` then holds the classification BICs and ``bic`` the chosen k's.

Measured on the simulated populations of docs/causal.md, both BICs pick the same k on Gaussian noise
but the mixture criterion splits a single uniform-noise mechanism (a uniform is well approximated
by two Gaussians; the classification likelihood pays ``n log 2`` of label entropy for the split).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from proxcompress.errors import InvalidInputError

from ._checks import choice, distinct_enough, integer, same_length, sample
from .options import BICS, CLUSTER_NOISES, CRITERIA
from .regression import Curve, FloatArray, Regressor, SplineRegressor
from .scale import LogLinearScale, ScaledCurve, loglik

IntArray = NDArray[np.int64]
#: fewest points of a mechanism (cluster) beyond the first
MIN_CLUSTER = 20


@dataclass(frozen=True)
class Mechanisms:
    """A clustering: ``labels[i]`` in ``0..k-1`` (numbered by the mean cause of each cluster),
    one curve per cluster, its BIC, and the BIC of the best solution at each k tried
    (``bic_path[j]`` for ``k = j + 1``)."""

    labels: IntArray
    curves: tuple[Curve, ...]
    bic: float
    bic_path: tuple[float, ...]

    @property
    def k(self) -> int:
        return len(self.curves)

    def residuals(self, cause: FloatArray, effect: FloatArray) -> FloatArray:
        """``effect_i - f_{labels_i}(cause_i)`` (float64, whatever the input's dtype)."""
        cause, effect = sample(cause, "cause"), sample(effect, "effect")
        if cause.shape != self.labels.shape or effect.shape != self.labels.shape:
            raise InvalidInputError("cause, effect", f"{self.labels.size} samples expected (the "
                                    f"clustered ones), got {cause.size} and {effect.size}")
        fitted = np.empty(effect.shape)
        for c, curve in enumerate(self.curves):
            at = self.labels == c
            fitted[at] = curve.predict(cause[at])
        return effect - fitted

    def standardized_residuals(self, cause: FloatArray, effect: FloatArray) -> FloatArray:
        """:meth:`residuals` divided by the fitted noise sd ``sqrt(v_c(cause))`` where a
        mechanism carries a log-linear variance (:class:`.scale.ScaledCurve`; unchanged
        elsewhere)."""
        residuals = self.residuals(cause, effect)
        cause = sample(cause, "cause")
        for c, curve in enumerate(self.curves):
            if isinstance(curve, ScaledCurve):
                at = self.labels == c
                residuals[at] /= np.sqrt(curve.variance(cause[at]))
        return residuals


def resolution_variance(values: FloatArray) -> float:
    """``delta^2 / 12``, ``delta`` the median gap between consecutive distinct ``values`` (0 for
    a constant sample): the variance that rounding to the data's grid adds."""
    gaps = np.diff(np.unique(values))
    return float(np.median(gaps)) ** 2 / 12 if gaps.size else 0.0


def point_costs(cause: FloatArray, effect: FloatArray, curves: tuple[Curve, ...]) -> FloatArray:
    """``costs[c, i]``: what assigning point i to mechanism c costs, ``-2`` times its log density
    up to a constant: the squared residual (additive noise, one variance) or
    :meth:`.scale.ScaledCurve.costs` (log-linear scale)."""
    return np.stack([curve.costs(cause, effect) if isinstance(curve, ScaledCurve)
                     else (effect - curve.predict(cause)) ** 2 for curve in curves])


def scaled_bic(cause: FloatArray, effect: FloatArray, labels: IntArray,
               curves: tuple[ScaledCurve, ...]) -> float:
    """The classification BIC of the log-linear scale model (issue 19, round 5): each point's
    Gaussian log density under its mechanism's mean and variance, the label term
    ``sum_c n_c log(n_c / n)``, and ``p = sum_c (df_c + scale parameters) + (k - 1)``; with one
    mechanism and a constant variance (``slope=False``) it is the classification BIC."""
    n, k = effect.size, len(curves)
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    total = float(np.sum(sizes * np.log(sizes / n)))
    for c, curve in enumerate(curves):
        at = labels == c
        total += loglik((effect[at] - curve.predict(cause[at])) ** 2, curve.variance(cause[at]))
    params = sum(curve.df for curve in curves) + (k - 1)
    return float(-2 * total + params * np.log(n))


def bic(cause: FloatArray, effect: FloatArray, labels: IntArray, curves: tuple[Curve, ...],
        criterion: str = "classification") -> float:
    """The BIC of a labelled fit under ``criterion`` (one of :data:`.options.BICS`; module
    docstring); curves with a log-linear scale are scored by :func:`scaled_bic` (their
    classification BIC)."""
    choice(criterion, "criterion", BICS)
    if curves and all(isinstance(curve, ScaledCurve) for curve in curves):
        if criterion != "classification":
            raise InvalidInputError("criterion", "the log-linear scale model has a "
                                    "classification BIC only")
        return scaled_bic(cause, effect, labels, curves)  # type: ignore[arg-type]
    n, k = effect.size, len(curves)
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    squared = np.stack([(effect - curve.predict(cause)) ** 2 for curve in curves])
    params = sum(curve.df for curve in curves) + 1 + (k - 1)
    floor = max(resolution_variance(effect), 1e-300)
    if criterion == "classification":
        rss = float(np.sum(squared[labels, np.arange(n)]))
        var = max(rss / n, floor)  # the maximum-likelihood variance, floored
        loglik = -0.5 * n * np.log(2 * np.pi * var) - rss / (2 * var) + float(
            np.sum(sizes * np.log(sizes / n)))
        return float(-2 * loglik + params * np.log(n))
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    log_pi = np.log(sizes / n)[:, None]
    # At the optimal scale sigma^2 = sum_i sum_c w_ic r_ic^2 / n (posterior weights w), which
    # lies between the means of the smallest and the largest squared residual of each point.
    low = max(float(np.sqrt(np.mean(squared.min(axis=0)))), np.sqrt(floor), 1e-12)
    high = max(float(np.sqrt(np.mean(squared.max(axis=0)))), low)

    def negative_loglik(log_sigma: float) -> float:
        var = np.exp(2 * log_sigma)
        dens = log_pi - 0.5 * np.log(2 * np.pi * var) - squared / (2 * var)
        return -float(np.sum(logsumexp(dens, axis=0)))

    best = minimize_scalar(negative_loglik, bounds=(np.log(low) - 1e-6, np.log(high) + 1e-6),
                           method="bounded", options={"xatol": 1e-6})
    return float(2 * best.fun + params * np.log(n))


def _canonical(cause: FloatArray, labels: IntArray) -> list[int]:
    """The clusters in increasing order of mean cause (ties by size, then smallest member)."""
    keys = []
    for c in range(int(labels.max()) + 1):
        members = cause[labels == c]
        keys.append((float(members.mean()), -members.size, float(members.min()), c))
    return [key[-1] for key in sorted(keys)]


def _fit_all(cause: FloatArray, effect: FloatArray, labels: IntArray, k: int,
             regressor: Regressor) -> tuple[Curve, ...]:
    return tuple(regressor.fit(cause[labels == c], effect[labels == c]) for c in range(k))


def _large_enough(cause: FloatArray, labels: IntArray, k: int, need: int, points: int) -> bool:
    """Every cluster has at least ``points`` points and ``need`` distinct causes."""
    return all(np.count_nonzero(labels == c) >= points
               and np.unique(cause[labels == c]).size >= need for c in range(k))


def alternate(cause: FloatArray, effect: FloatArray, labels: IntArray, regressor: Regressor,
              max_iter: int = 100, min_cluster: int = MIN_CLUSTER
              ) -> tuple[IntArray, tuple[Curve, ...]] | None:
    """Run the assign / refit alternation from ``labels`` (``0..k-1``, every cluster fittable).

    Returns the fixed point (or the labels after ``max_iter`` rounds), or None when an
    assignment leaves a cluster with fewer than ``min_cluster`` points or too few distinct
    causes to fit.
    """
    k = int(labels.max()) + 1
    need = regressor.min_points()
    curves = _fit_all(cause, effect, labels, k, regressor)
    for _ in range(max_iter):
        new = np.argmin(point_costs(cause, effect, curves), axis=0).astype(np.int64)
        if np.array_equal(new, labels):
            break
        if not _large_enough(cause, new, k, need, min_cluster):
            return None
        labels = new
        curves = _fit_all(cause, effect, labels, k, regressor)
    return labels, curves


def cluster_mechanisms(cause: FloatArray, effect: FloatArray, *, k: int | None = None,
                       k_max: int = 4, regressor: Regressor | None = None,
                       criterion: str = "classification", min_cluster: int = MIN_CLUSTER,
                       noise: str = "additive") -> Mechanisms:
    """Cluster ``effect = f_c(cause) + noise`` into mechanisms (module docstring).

    ``k=None`` chooses k in ``1..k_max`` by ``criterion`` (a BIC, or ``"heldout"``); an integer
    ``k`` grows the path to exactly k (an error if no split of that size leaves every cluster
    enough points to fit). A cluster needs ``min_cluster`` points (default 20) and the distinct
    causes its regressor needs (two for the default spline, which adapts to discretised causes).
    ``noise="loglinear-scale"`` gives every mechanism a log-linear variance
    (:mod:`.scale`): the assignments, the fits and the BIC (the classification one only) use
    its likelihood, and the curves are :class:`.scale.ScaledCurve`.
    """
    choice(criterion, "criterion", CRITERIA)
    choice(noise, "noise", CLUSTER_NOISES)
    if noise != "additive" and criterion != "classification":
        raise InvalidInputError("criterion", f"noise={noise!r} chooses k by its own "
                                f"classification BIC; criterion must be 'classification'")
    regressor = regressor or SplineRegressor()
    cause, effect = sample(cause, "cause"), sample(effect, "effect")
    same_length(cause, effect, "cause, effect")
    if noise != "additive":
        regressor = LogLinearScale(regressor, resolution_variance(effect))
    top = integer(k, "k", 1) if k is not None else integer(k_max, "k_max", 1)
    integer(min_cluster, "min_cluster", 1)
    need = regressor.min_points()
    distinct_enough(cause, need, "cause")
    grow = criterion if criterion in BICS else "classification"  # the BIC growing the path
    labels = np.zeros(cause.size, dtype=np.int64)
    curves = _fit_all(cause, effect, labels, 1, regressor)
    path = [(bic(cause, effect, labels, curves, grow), labels, curves)]
    while len(path) < top:
        _, labels, curves = path[-1]
        best: tuple[float, IntArray, tuple[Curve, ...]] | None = None
        for c, curve in enumerate(curves):
            at = labels == c
            above = effect - curve.predict(cause) > 0
            split = labels.copy()
            split[at & above] = len(curves)
            if not _large_enough(cause, split, len(curves) + 1, need, min_cluster):
                continue
            found = alternate(cause, effect, split, regressor, min_cluster=min_cluster)
            if found is None:
                continue
            score = bic(cause, effect, *found, grow)
            if best is None or score < best[0]:
                best = (score, *found)
        if best is None:
            break
        path.append(best)
    if k is not None and len(path) < k:
        raise InvalidInputError("k", f"no {k} mechanisms with >= {min_cluster} points and >= "
                                f"{need} distinct causes each")
    index = k - 1 if k is not None else int(np.argmin([p[0] for p in path]))
    if criterion in ("heldout", "heldout-or-one"):
        from .likelihood import HELDOUT_FOLDS, heldout_classification  # it imports this module

        def heldout(j: int) -> float:
            return -2 * heldout_classification(cause, effect, path[j][1], regressor,
                                               HELDOUT_FOLDS, resolution_variance(effect))

        if criterion == "heldout":
            path = [(heldout(j), *path[j][1:]) for j in range(len(path))]
            index = k - 1 if k is not None else int(np.argmin([p[0] for p in path]))
        elif k is None and index > 0 and heldout(0) <= heldout(index):
            index = 0
    score, labels, curves = path[index]
    order = _canonical(cause, labels)  # renumbered: the curves fitted on each cluster move along
    renumber = np.empty(len(order), dtype=np.int64)
    renumber[order] = np.arange(len(order))
    return Mechanisms(renumber[labels], tuple(curves[c] for c in order), score,
                      tuple(p[0] for p in path))
