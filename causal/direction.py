"""The causal-direction test for heterogeneous populations (methods.md section 10).

For each candidate direction (x -> y, then y -> x): standardize both variables, cluster the
effect's mechanisms given the cause (:func:`.mechanisms.cluster_mechanisms`, unknown k by BIC, or
a fixed k; ``k=1`` is the plain additive-noise-model test of Hoyer et al. 2008), pool the
per-cluster residuals and test them for independence of the cause (:mod:`.independence`). The
direction whose residuals look more independent -- the larger p-value, compared on the log scale;
on equal p-values the smaller statistic -- is returned (the decision rule of Mooij et al. 2016's
ANM-pHSIC).

How the two directions are compared (``decision``, a table :data:`DECISIONS`; issue 19):

* ``"hsic"`` (default): the larger HSIC p-value, as above;
* ``"likelihood"``: the larger penalised log-likelihood of a location-scale noise model per
  cluster with a Gaussian noise density and the cause's entropy (:mod:`.likelihood`; LOCI of
  Immer et al. 2023 extended to the clusters);
* ``"entropy"``: the same with the noise density estimated nonparametrically;
* ``"heldout-likelihood"``: the Gaussian one with the conditional part cross-fitted
  (``HELDOUT_FOLDS`` folds) instead of BIC-penalised: complexity paid by held-out fit;
* ``"hsic-else-likelihood"``: the HSIC rule where at least one direction's residuals pass the
  test at ``FALLBACK_ALPHA`` (an additive model fits), the Gaussian likelihood where both are
  rejected (the additive model fits neither direction; the location-scale one may);
* ``"hsic-unless-close"``: the HSIC rule where the two p-values are at least ``CLOSE_LOG10``
  orders of magnitude apart, the Gaussian likelihood where HSIC does not separate them (the
  pairs whose HSIC evidence the notes call weak).

The likelihood's variance model follows ``noise`` (:data:`LIKELIHOOD_VARIANCES`): under
``"loglinear-scale"`` the log-linear scale whose residuals are tested
(:func:`.likelihood.loglinear_variance`, issue 19's round 6), otherwise round 2's spline
regression of the squared residuals.

How the labels adjust the statistic (``pooling``; a [U] choice, default ``"centred"``):

* ``"centred"``: residuals centred within each cluster, then pooled into one HSIC test;
* ``"standardized"``: centred and scaled to unit variance within each cluster, then pooled;
* ``"fisher"``: one HSIC test per cluster (clusters of at least ``MIN_CLUSTER_TEST`` points),
  p-values combined by Fisher's method (:func:`scipy.stats.combine_pvalues`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from proxcompress.errors import InvalidInputError

from . import options
from ._checks import choice, distinct_enough, same_length, sample
from .independence import HSICGamma, IndependenceTest, TestResult
from .likelihood import (
    HELDOUT_FOLDS,
    LINE,
    SPREAD_FLOOR,
    LikelihoodScore,
    entropy,
    location_scale_score,
    residual_scale,
)
from .mechanisms import IntArray, Mechanisms, cluster_mechanisms
from .options import DECISIONS, MIN_SAMPLES, NOISES, POOLINGS
from .regression import FloatArray, Regressor, SplineRegressor

Pooling = Literal["centred", "standardized", "fisher"]
Noise = Literal["additive", "location-scale", "loglinear-scale", "loglinear-bic"]
Decision = Literal["hsic", "likelihood", "entropy", "heldout-likelihood",
                   "hsic-else-likelihood", "hsic-unless-close"]
#: fewest points of a cluster tested on its own under ``pooling="fisher"``
MIN_CLUSTER_TEST = 20
#: below this many distinct values a variable is "discretised": the test still answers (the
#: regressor adapts), but the evidence is reported as weak
FEW_LEVELS = 20
#: p-values closer than this many orders of magnitude are reported as weak evidence
CLOSE_LOG10 = 1.0
#: smallest fitted noise scale, as a fraction of the cluster's mean |residual|
SCALE_FLOOR = SPREAD_FLOOR
#: ``decision="hsic-else-likelihood"`` falls back to the likelihood when both directions' HSIC
#: p-values are below this level
FALLBACK_ALPHA = 0.05
#: log-likelihoods (nats) closer than this are reported as weak evidence
CLOSE_NATS = 1.0


@dataclass(frozen=True)
class DirectionFit:
    """One candidate direction: the mechanisms found and the independence test of its
    residuals from the cause."""

    cause: str
    effect: str
    mechanisms: Mechanisms
    test: TestResult
    likelihood: LikelihoodScore | None = None


@dataclass(frozen=True)
class DirectionResult:
    """``direction`` is ``"x->y"``, ``"y->x"`` or ``"undecided"`` (equal evidence); ``notes``
    say why the evidence for it is weak (empty when it is not): a variable with fewer than
    ``FEW_LEVELS`` distinct values, or p-values within a factor of ``10 ** CLOSE_LOG10``."""

    direction: str
    forward: DirectionFit
    backward: DirectionFit
    notes: tuple[str, ...] = ()

    @property
    def weak_evidence(self) -> bool:
        return bool(self.notes)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary (labels left out; a non-finite number becomes None)."""

        def number(v: float) -> float | None:
            return v if np.isfinite(v) else None

        def fit(f: DirectionFit) -> dict[str, object]:
            return {
                "cause": f.cause, "effect": f.effect, "k": f.mechanisms.k,
                "bic_path": [number(b) for b in f.mechanisms.bic_path],
                "statistic": number(f.test.statistic), "p_value": f.test.p_value,
                "log_p_value": number(f.test.log_p_value), "tested_samples": f.test.samples,
                "log_likelihood": None if f.likelihood is None else number(f.likelihood.total),
            }

        return {"direction": self.direction, "forward": fit(self.forward),
                "backward": fit(self.backward),
                "evidence": {"weak": self.weak_evidence, "notes": list(self.notes)}}


def standardize(values: FloatArray, field: str) -> FloatArray:
    """``(v - mean) / std`` of a finite sample, computed after dividing by ``max |v|`` so that
    neither tiny nor huge magnitudes under- or overflow; a constant sample is an error naming
    ``field``."""
    if np.ptp(values) == 0:
        raise InvalidInputError(field, "is constant; a direction test needs variation")
    scaled = values / np.max(np.abs(values))
    return (scaled - scaled.mean()) / scaled.std()


def fisher_log_p(log_p_values: list[float]) -> tuple[float, float]:
    """Fisher's combination ``X = -2 sum log p_i`` of m p-values and ``log P(chi2_2m >= X)``,
    in closed form on the log scale (no underflow): ``-X/2 + log sum_{j<m} (X/2)^j / j!``."""
    from scipy.special import gammaln, logsumexp

    x = -2.0 * float(np.sum(log_p_values))
    j = np.arange(len(log_p_values))
    half = x / 2
    terms = j * np.log(half) - gammaln(j + 1) if half > 0 else np.where(j == 0, 0.0, -np.inf)
    return x, float(-half + logsumexp(terms))


def pooled_test(cause: FloatArray, residuals: FloatArray, labels: IntArray, pooling: str,
                test: IndependenceTest) -> TestResult:
    """Test ``residuals`` independent of ``cause`` given cluster ``labels`` (module docstring);
    ``labels`` number the clusters ``0..k-1``."""
    choice(pooling, "pooling", POOLINGS)
    labels = np.asarray(labels)
    if labels.shape != np.shape(residuals) or labels.dtype.kind not in "iu" or labels.min() < 0:
        raise InvalidInputError("labels", "non-negative integer labels, one per residual, needed")
    k = int(labels.max()) + 1
    if pooling == "fisher":
        results = [test(cause[labels == c], residuals[labels == c]) for c in range(k)
                   if np.count_nonzero(labels == c) >= MIN_CLUSTER_TEST]
        if not results:
            raise InvalidInputError("pooling", f"no cluster has >= {MIN_CLUSTER_TEST} points")
        statistic, log_p = fisher_log_p([r.log_p_value for r in results])
        return TestResult(statistic, float(np.exp(log_p)), log_p, sum(r.samples for r in results))
    pooled = np.asarray(residuals, dtype=np.float64).copy()
    for c in range(k):
        at = labels == c
        if not at.any():
            continue
        pooled[at] -= pooled[at].mean()
        if pooling == "standardized":
            sd = pooled[at].std()
            pooled[at] /= sd if sd > 0 else 1.0
    return test(cause, pooled)


def scaled_residuals(cause: FloatArray, residuals: FloatArray, labels: IntArray,
                     regressor: Regressor, log_scale: bool = False) -> FloatArray:
    """Residuals centred and divided, within each cluster, by their fitted scale ``s_c(cause)``
    (:func:`.likelihood.residual_scale`: the regression of ``|residual|`` on the cause by
    ``regressor``, floored at ``SCALE_FLOOR`` times the cluster's mean ``|residual|``; with
    ``log_scale`` of ``log |residual|``, exponentiated: with a line, ``s_c = exp(a + b cause)``,
    a multiplicative spread). Under a location-scale noise model
    ``effect = f(cause) + s(cause) noise`` the result is independent of the cause in the causal
    direction. Clusters without a fitted scale are left as they are."""
    out = np.asarray(residuals, dtype=np.float64).copy()
    for c in range(int(labels.max()) + 1):
        at = labels == c
        if not at.any():
            continue
        r = out[at] - out[at].mean()
        scale = residual_scale(cause[at], r, regressor, log_scale)
        if scale is not None:
            out[at] = r / scale
    return out


#: the noise models with a fitted scale (:data:`.options.NOISES` but "additive"): the regressor
#: of the scale (None: the test's own regressor) and whether it fits ``log |residual|``
SCALES: dict[str, tuple[Regressor | None, bool]] = {
    "location-scale": (None, False),
    "loglinear-scale": (LINE, True),  # the likelihood's log-linear scale is this same line
}
#: the noise models fitted inside the clustering (its assignments, fits and BIC; the tested
#: residuals divided by the fitted sd): the direction test's name -> the clustering's
FITTED_NOISES: dict[str, str] = {"loglinear-bic": "loglinear-scale"}
#: the variance model of the likelihood decisions' score per noise model
#: (:data:`.likelihood.VARIANCES`; round 2's spline for the others): the model whose residuals
#: are tested is the one scored (issue 19, round 6)
LIKELIHOOD_VARIANCES: dict[str, str] = {"loglinear-scale": "loglinear"}
assert ("additive", *SCALES, *FITTED_NOISES) == NOISES  # noqa: S101 - the parser's names


def _fit(cause: FloatArray, effect: FloatArray, names: tuple[str, str], k: int | None, k_max: int,
         regressor: Regressor, criterion: str, test: IndependenceTest, pooling: str,
         noise: str) -> DirectionFit:
    mech = cluster_mechanisms(cause, effect, k=k, k_max=k_max, regressor=regressor,
                              criterion=criterion, noise=FITTED_NOISES.get(noise, "additive"))
    residuals = mech.standardized_residuals(cause, effect)
    if noise in SCALES:
        scale_regressor, log_scale = SCALES[noise]
        residuals = scaled_residuals(cause, residuals, mech.labels, scale_regressor or regressor,
                                     log_scale)
    result = pooled_test(cause, residuals, mech.labels, pooling, test)
    return DirectionFit(names[0], names[1], mech, result)


#: a rule's comparison of the two directions: a key per direction (the larger wins, compared
#: lexicographically) and which evidence decided ("hsic" or "likelihood", for the notes)
Comparison = tuple[tuple[float, ...], tuple[float, ...], str]


def _by_hsic(f: DirectionFit, b: DirectionFit) -> Comparison:
    return (f.test.log_p_value, -f.test.statistic), (b.test.log_p_value, -b.test.statistic), \
        "hsic"


def _by_likelihood(f: DirectionFit, b: DirectionFit) -> Comparison:
    assert f.likelihood is not None and b.likelihood is not None  # noqa: S101 - DECISIONS
    return (f.likelihood.total,), (b.likelihood.total,), "likelihood"


def _hsic_else_likelihood(f: DirectionFit, b: DirectionFit) -> Comparison:
    passes = max(f.test.log_p_value, b.test.log_p_value) >= np.log(FALLBACK_ALPHA)
    return _by_hsic(f, b) if passes else _by_likelihood(f, b)


def _hsic_unless_close(f: DirectionFit, b: DirectionFit) -> Comparison:
    separated = abs(f.test.log_p_value - b.test.log_p_value) / np.log(10) >= CLOSE_LOG10
    return _by_hsic(f, b) if separated else _by_likelihood(f, b)  # NaN gap: not separated


Rule = Callable[[DirectionFit, DirectionFit], Comparison]
#: decision -> (the likelihood score it needs: noise density and held-out folds, 0 for a BIC
#: penalty; None for none), the rule
DECISION_RULES: dict[str, tuple[tuple[str, int] | None, Rule]] = {
    "hsic": (None, _by_hsic),
    "likelihood": (("gaussian", 0), _by_likelihood),
    "entropy": (("entropy", 0), _by_likelihood),
    "heldout-likelihood": (("gaussian", HELDOUT_FOLDS), _by_likelihood),
    "hsic-else-likelihood": (("gaussian", 0), _hsic_else_likelihood),
    "hsic-unless-close": (("gaussian", 0), _hsic_unless_close),
}
assert tuple(DECISION_RULES) == DECISIONS  # noqa: S101 - the parser's names are these


def causal_direction(x: FloatArray, y: FloatArray, *, k: int | None = None, k_max: int = 4,
                     regressor: Regressor | None = None, criterion: str = "classification",
                     test: IndependenceTest | None = None, pooling: Pooling = "centred",
                     noise: Noise = options.DEFAULT_NOISE,
                     decision: Decision = options.DEFAULT_DECISION,
                     names: tuple[str, str] = ("x", "y")) -> DirectionResult:
    """Decide between ``x -> y`` and ``y -> x`` (module docstring).

    ``k=None`` (default) chooses the number of mechanisms per direction by the BIC
    ``criterion`` (:mod:`.mechanisms`) up to ``k_max``; ``k=1`` is the plain ANM test.
    Defaults: :class:`.regression.SplineRegressor`, ``criterion="classification"``,
    :class:`.independence.HSICGamma`, ``pooling="centred"``, ``noise="loglinear-scale"``,
    ``decision="hsic-else-likelihood"`` (issue 19's round 6; before it ``"additive"`` and
    ``"hsic"``: the classic ANM test, still available)
    """
    return causal_directions(x, y, (decision,), k=k, k_max=k_max, regressor=regressor,
                             criterion=criterion, test=test, pooling=pooling, noise=noise,
                             names=names)[decision]


def causal_directions(x: FloatArray, y: FloatArray, decisions: tuple[str, ...], *,
                      k: int | None = None, k_max: int = 4, regressor: Regressor | None = None,
                      criterion: str = "classification", test: IndependenceTest | None = None,
                      pooling: Pooling = "centred",
                      noise: Noise = options.DEFAULT_NOISE,
                      names: tuple[str, str] = ("x", "y")) -> dict[str, DirectionResult]:
    """:func:`causal_direction` under each of ``decisions`` (names of :data:`DECISIONS`), from
    one clustering and one independence test per direction (what every decision shares); each
    likelihood score needed is computed once."""
    if (not isinstance(names, tuple) or len(names) != 2
            or not all(isinstance(name, str) for name in names)):
        raise InvalidInputError("names", f"two strings needed, got {names!r}")
    if not isinstance(decisions, tuple) or not decisions:
        raise InvalidInputError("decisions", f"a non-empty tuple needed, got {decisions!r}")
    for decision in decisions:
        choice(decision, "decision", DECISIONS)
    xs, ys = sample(x, names[0]), sample(y, names[1])
    same_length(xs, ys, f"{names[0]}, {names[1]}")
    if xs.size < MIN_SAMPLES:
        raise InvalidInputError("n", f"{xs.size} paired samples; the test needs >= {MIN_SAMPLES}")
    choice(pooling, "pooling", POOLINGS)
    choice(noise, "noise", NOISES)
    if noise in FITTED_NOISES and criterion != "classification":
        raise InvalidInputError("criterion", f"noise={noise!r} chooses k by its own "
                                f"classification BIC; criterion must be 'classification'")
    xs, ys = standardize(xs, names[0]), standardize(ys, names[1])
    regressor = regressor or SplineRegressor()
    for values, name in ((xs, names[0]), (ys, names[1])):  # each is a cause in one direction
        distinct_enough(values, regressor.min_points(), name)
    test = test or HSICGamma()
    forward = _fit(xs, ys, names, k, k_max, regressor, criterion, test, pooling, noise)
    backward = _fit(ys, xs, (names[1], names[0]), k, k_max, regressor, criterion, test, pooling,
                    noise)
    specs = {spec for d in decisions if (spec := DECISION_RULES[d][0]) is not None}
    entropies = {names[0]: entropy(xs), names[1]: entropy(ys)} if specs else {}
    scored = {spec: tuple(
        replace(fit, likelihood=location_scale_score(
            cause, effect, fit.mechanisms, regressor, spec[0],
            cause_entropy=entropies[fit.cause], folds=spec[1],
            variance=LIKELIHOOD_VARIANCES.get(noise, "spline")))
        for fit, cause, effect in ((forward, xs, ys), (backward, ys, xs))) for spec in specs}
    results = {}
    for decision in decisions:
        spec, rule = DECISION_RULES[decision]
        f, b = (forward, backward) if spec is None else scored[spec]
        key_f, key_b, used = rule(f, b)
        direction = "x->y" if key_f > key_b else "y->x" if key_f < key_b else "undecided"
        results[decision] = DirectionResult(direction, f, b, _notes(xs, ys, names, f, b, used))
    return results


def _notes(xs: FloatArray, ys: FloatArray, names: tuple[str, str], forward: DirectionFit,
           backward: DirectionFit, used: str) -> tuple[str, ...]:
    """Why the evidence is weak (:class:`DirectionResult`); ``used`` is the evidence that
    decided (``"hsic"`` or ``"likelihood"``)."""
    notes = []
    for values, name in ((xs, names[0]), (ys, names[1])):
        levels = np.unique(values).size
        if levels < FEW_LEVELS:
            notes.append(f"{name} has {levels} distinct values (< {FEW_LEVELS}): regressions on "
                         f"it are fitted through few levels and the additive-noise evidence rests "
                         f"on them")
    f, b = forward.test, backward.test
    if used == "likelihood":
        assert forward.likelihood is not None and backward.likelihood is not None  # noqa: S101
        gap = abs(forward.likelihood.total - backward.likelihood.total)
        if not gap >= CLOSE_NATS:
            notes.append(f"the two directions' log-likelihoods ({forward.likelihood.total:.4g}, "
                         f"{backward.likelihood.total:.4g}) are within {CLOSE_NATS:g} nat")
        return tuple(notes)
    gap = abs(f.log_p_value - b.log_p_value) / np.log(10)
    if not gap >= CLOSE_LOG10:  # also NaN-safe
        notes.append(f"the two directions' p-values ({f.p_value:.3g}, {b.p_value:.3g}) are "
                     f"within a factor of {10 ** CLOSE_LOG10:g}")
    return tuple(notes)
