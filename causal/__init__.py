"""Causal direction for heterogeneous populations: additive noise models with mechanism
clustering of unknown k (methods.md section 10; Partovi Nia et al., arXiv:2006.04877).

* :func:`causal_direction` -- decide ``x -> y`` or ``y -> x``: cluster each direction's
  mechanisms (k by BIC, or fixed; ``k=1`` is the plain ANM test), pool the per-cluster residuals,
  HSIC-test them against the cause, pick the direction with the larger p-value;
* :func:`cluster_mechanisms` -- the k-means-inspired clustering with unknown k on its own;
* :class:`HSICGamma`, :class:`HSICPermutation`, :func:`hsic` -- the independence tests;
* :class:`SplineRegressor`, :class:`PolynomialRegressor` -- the regressors;
* :func:`simulate_mixture` -- heterogeneous pairs with a known direction.

Every point methods.md leaves open ([U]: regressor, independence test, k selection, residual
pooling, p-value approximation) is a parameter with a documented default; docs/causal.md and
docs/decisions.md say which and why. Needs NumPy and SciPy only.
"""

from __future__ import annotations

from .direction import DirectionFit, DirectionResult, causal_direction
from .independence import HSICGamma, HSICPermutation, IndependenceTest, TestResult, hsic
from .mechanisms import Mechanisms, cluster_mechanisms
from .regression import PolynomialRegressor, Regressor, SplineRegressor
from .simulate import CausalPair, simulate_mixture

__all__ = [
    "causal_direction",
    "DirectionResult",
    "DirectionFit",
    "cluster_mechanisms",
    "Mechanisms",
    "hsic",
    "HSICGamma",
    "HSICPermutation",
    "IndependenceTest",
    "TestResult",
    "Regressor",
    "SplineRegressor",
    "PolynomialRegressor",
    "simulate_mixture",
    "CausalPair",
]
