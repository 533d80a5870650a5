"""Causal direction for heterogeneous populations: additive noise models with mechanism
clustering of unknown k (methods.md section 10; Partovi Nia et al., arXiv:2006.04877).

* :func:`causal_direction` -- decide ``x -> y`` or ``y -> x``: cluster each direction's
  mechanisms (k by BIC, or fixed; ``k=1`` is the plain ANM test), pool the per-cluster residuals,
  HSIC-test them against the cause, pick the direction with the larger p-value (or by a
  location-scale likelihood, ``decision``); :func:`causal_directions` -- several decisions
  from one fit;
* :func:`cluster_mechanisms` -- the k-means-inspired clustering with unknown k on its own;
* :class:`HSICGamma`, :class:`HSICPermutation`, :class:`HSICMaxBandwidth`,
  :func:`hsic` -- the independence tests;
* :class:`SplineRegressor`, :class:`PolynomialRegressor` -- the regressors;
* :func:`simulate_mixture` -- heterogeneous pairs with a known direction.

Every point methods.md leaves open ([U]: regressor, independence test, k selection, residual
pooling, p-value approximation) is a parameter with a documented default; docs/causal.md and
docs/decisions.md say which and why. Needs NumPy and SciPy (and mpmath for extreme p-values);
names are resolved lazily.
"""

from __future__ import annotations

from proxcompress.lazy import lazy_getattr

# public name -> module that defines it (resolved on first use: importing the package, as the
# ``proxcompress`` command does for its parser, loads neither NumPy nor SciPy)
_PUBLIC = {
    "causal_direction": "direction",
    "causal_directions": "direction",
    "DirectionResult": "direction",
    "DirectionFit": "direction",
    "cluster_mechanisms": "mechanisms",
    "Mechanisms": "mechanisms",
    "hsic": "independence",
    "HSICGamma": "independence",
    "HSICPermutation": "independence",
    "HSICMaxBandwidth": "independence",
    "IndependenceTest": "independence",
    "TestResult": "independence",
    "Regressor": "regression",
    "SplineRegressor": "regression",
    "PolynomialRegressor": "regression",
    "simulate_mixture": "simulate",
    "CausalPair": "simulate",
}

__all__ = list(_PUBLIC)

#: result and record types: returned by the API, not entry points (their construction is not
#: argument-checked)
_RESULTS = ("CausalPair", "DirectionFit", "DirectionResult", "Mechanisms", "TestResult")

__getattr__ = lazy_getattr("proxcompress.causal", _PUBLIC, _RESULTS)
