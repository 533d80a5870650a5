"""The causal-direction test for heterogeneous populations (methods.md section 10).

For each candidate direction (x -> y, then y -> x): standardize both variables, cluster the
effect's mechanisms given the cause (:func:`.mechanisms.cluster_mechanisms`, unknown k by BIC, or
a fixed k; ``k=1`` is the plain additive-noise-model test of Hoyer et al. 2008), pool the
per-cluster residuals and test them for independence of the cause (:mod:`.independence`). The
direction whose residuals look more independent -- the larger p-value, compared on the log scale;
on equal p-values the smaller statistic -- is returned (the decision rule of Mooij et al. 2016's
ANM-pHSIC).

How the labels adjust the statistic (``pooling``; a [U] choice, default ``"centred"``):

* ``"centred"``: residuals centred within each cluster, then pooled into one HSIC test;
* ``"standardized"``: centred and scaled to unit variance within each cluster, then pooled;
* ``"fisher"``: one HSIC test per cluster (clusters of at least ``MIN_CLUSTER_TEST`` points),
  p-values combined by Fisher's method (:func:`scipy.stats.combine_pvalues`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from proxcompress.errors import InvalidInputError

from .independence import HSICGamma, IndependenceTest, TestResult
from .mechanisms import IntArray, Mechanisms, cluster_mechanisms
from .regression import FloatArray, Regressor, SplineRegressor

Pooling = Literal["centred", "standardized", "fisher"]
POOLINGS: tuple[str, ...] = ("centred", "standardized", "fisher")
#: fewest points of a cluster tested on its own under ``pooling="fisher"``
MIN_CLUSTER_TEST = 20
#: fewest paired samples the test accepts
MIN_SAMPLES = 30


@dataclass(frozen=True)
class DirectionFit:
    """One candidate direction: the mechanisms found and the independence test of its
    residuals from the cause."""

    cause: str
    effect: str
    mechanisms: Mechanisms
    test: TestResult


@dataclass(frozen=True)
class DirectionResult:
    """``direction`` is ``"x->y"``, ``"y->x"`` or ``"undecided"`` (equal evidence)."""

    direction: str
    forward: DirectionFit
    backward: DirectionFit

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary (labels left out)."""

        def fit(f: DirectionFit) -> dict[str, object]:
            return {
                "cause": f.cause, "effect": f.effect, "k": f.mechanisms.k,
                "bic_path": list(f.mechanisms.bic_path), "statistic": f.test.statistic,
                "p_value": f.test.p_value, "log_p_value": f.test.log_p_value,
                "tested_samples": f.test.samples,
            }

        return {"direction": self.direction, "forward": fit(self.forward),
                "backward": fit(self.backward)}


def standardize(values: FloatArray, field: str) -> FloatArray:
    """``(v - mean) / std``; a constant or non-finite sample is an error naming ``field``."""
    if not np.all(np.isfinite(values)):
        raise InvalidInputError(field, "values must be finite (no NaN or inf)")
    sd = float(values.std())
    if sd == 0.0:
        raise InvalidInputError(field, "is constant; a direction test needs variation")
    return (values - values.mean()) / sd


def pooled_test(cause: FloatArray, residuals: FloatArray, labels: IntArray, pooling: str,
                test: IndependenceTest) -> TestResult:
    """Test ``residuals`` independent of ``cause`` given cluster ``labels`` (module docstring)."""
    if pooling not in POOLINGS:
        raise InvalidInputError("pooling", f"{pooling!r} is not one of {POOLINGS}")
    k = int(labels.max()) + 1
    if pooling == "fisher":
        from scipy.stats import combine_pvalues

        results = [test(cause[labels == c], residuals[labels == c]) for c in range(k)
                   if np.count_nonzero(labels == c) >= MIN_CLUSTER_TEST]
        if not results:
            raise InvalidInputError("pooling", f"no cluster has >= {MIN_CLUSTER_TEST} points")
        combined = combine_pvalues([r.p_value for r in results], method="fisher")
        p = float(combined.pvalue)
        return TestResult(float(combined.statistic), p, float(np.log(p)) if p > 0 else -np.inf,
                          sum(r.samples for r in results))
    pooled = residuals.copy()
    for c in range(k):
        at = labels == c
        pooled[at] -= pooled[at].mean()
        if pooling == "standardized":
            sd = pooled[at].std()
            pooled[at] /= sd if sd > 0 else 1.0
    return test(cause, pooled)


def _fit(cause: FloatArray, effect: FloatArray, names: tuple[str, str], k: int | None, k_max: int,
         regressor: Regressor, criterion: str, test: IndependenceTest, pooling: str
         ) -> DirectionFit:
    mech = cluster_mechanisms(cause, effect, k=k, k_max=k_max, regressor=regressor,
                              criterion=criterion)
    result = pooled_test(cause, mech.residuals(cause, effect), mech.labels, pooling, test)
    return DirectionFit(names[0], names[1], mech, result)


def causal_direction(x: FloatArray, y: FloatArray, *, k: int | None = None, k_max: int = 4,
                     regressor: Regressor | None = None, criterion: str = "classification",
                     test: IndependenceTest | None = None, pooling: Pooling = "centred",
                     names: tuple[str, str] = ("x", "y")) -> DirectionResult:
    """Decide between ``x -> y`` and ``y -> x`` (module docstring).

    ``k=None`` (default) chooses the number of mechanisms per direction by the BIC
    ``criterion`` (:mod:`.mechanisms`) up to ``k_max``; ``k=1`` is the plain ANM test.
    Defaults: :class:`.regression.SplineRegressor`, ``criterion="classification"``,
    :class:`.independence.HSICGamma`, ``pooling="centred"``.
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.ndim != 1 or ys.shape != xs.shape:
        raise InvalidInputError("x, y", f"1-D samples of equal length needed, got {xs.shape} "
                                f"and {ys.shape}")
    if xs.size < MIN_SAMPLES:
        raise InvalidInputError("n", f"{xs.size} paired samples; the test needs >= {MIN_SAMPLES}")
    if k is not None and k < 1:
        raise InvalidInputError("k", f"{k} is outside [1, inf)")
    if k_max < 1:
        raise InvalidInputError("k_max", f"{k_max} is outside [1, inf)")
    if pooling not in POOLINGS:
        raise InvalidInputError("pooling", f"{pooling!r} is not one of {POOLINGS}")
    xs, ys = standardize(xs, names[0]), standardize(ys, names[1])
    regressor = regressor or SplineRegressor()
    test = test or HSICGamma()
    forward = _fit(xs, ys, names, k, k_max, regressor, criterion, test, pooling)
    backward = _fit(ys, xs, (names[1], names[0]), k, k_max, regressor, criterion, test, pooling)
    f, b = forward.test, backward.test
    if (f.log_p_value, -f.statistic) > (b.log_p_value, -b.statistic):
        direction = "x->y"
    elif (f.log_p_value, -f.statistic) < (b.log_p_value, -b.statistic):
        direction = "y->x"
    else:
        direction = "undecided"
    return DirectionResult(direction, forward, backward)
