"""Mechanism clustering: recovery of known mixtures, the alternation's fixed point, the BIC
against its definition, invariance to the order of the points."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import comb

from proxcompress.causal import PolynomialRegressor, cluster_mechanisms, simulate_mixture
from proxcompress.causal.mechanisms import alternate, bic
from proxcompress.errors import InvalidInputError


def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    """Hubert & Arabie's adjusted Rand index from the contingency table."""
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    pairs = comb(table, 2).sum()
    rows, cols, total = comb(table.sum(1), 2).sum(), comb(table.sum(0), 2).sum(), comb(a.size, 2)
    expected = rows * cols / total
    return float((pairs - expected) / (0.5 * (rows + cols) - expected))


def two_lines(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two mechanisms at least 0.3 apart on [-2, 2] (3 noise sd): curves that cross would make
    the labels ambiguous, since a flexible curve can switch branches at the crossing."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    labels = (rng.random(n) < 0.4).astype(np.int64)
    y = np.where(labels == 1, 1.5 + 0.2 * x + 0.3 * x**2, 0.5 * x**2) + 0.1 * rng.standard_normal(n)
    return x, y, labels


def test_recovers_two_mechanisms() -> None:
    x, y, labels = two_lines()
    mech = cluster_mechanisms(x, y)
    assert mech.k == 2
    assert adjusted_rand(mech.labels, labels) > 0.9
    assert mech.bic == min(mech.bic_path) and len(mech.bic_path) == 4


def test_one_gaussian_mechanism_stays_one() -> None:
    for seed in range(5):
        pair = simulate_mixture(300, 1, seed=seed, noise="gaussian", swap=False)
        assert cluster_mechanisms(pair.x, pair.y).k == 1, seed


def test_fixed_k_and_residuals() -> None:
    x, y, _ = two_lines()
    mech = cluster_mechanisms(x, y, k=3)
    assert mech.k == 3 and len(mech.bic_path) == 3
    r = mech.residuals(x, y)
    for c, curve in enumerate(mech.curves):
        at = mech.labels == c
        assert r[at] == pytest.approx(y[at] - curve.predict(x[at]))
    # clusters are numbered by their mean cause
    means = [x[mech.labels == c].mean() for c in range(3)]
    assert means == sorted(means)


def test_alternation_ends_at_its_fixed_point() -> None:
    """At the returned labels, every point's own curve has the smallest squared residual, and
    every curve is the regressor's fit on its own points."""
    x, y, _ = two_lines(seed=3)
    start = (y > np.median(y)).astype(np.int64)
    regressor = PolynomialRegressor(2)
    labels, curves = alternate(x, y, start, regressor)
    squared = np.stack([(y - c.predict(x)) ** 2 for c in curves])
    assert np.array_equal(np.argmin(squared, axis=0), labels)
    for c, curve in enumerate(curves):
        refit = regressor.fit(x[labels == c], y[labels == c])
        assert refit.predict(x) == pytest.approx(curve.predict(x))


def test_classification_bic_equals_its_definition() -> None:
    """Hard-assignment log-likelihood with the ML noise variance, from Gaussian log densities."""
    from scipy.stats import norm

    x, y, labels = two_lines(n=200, seed=4)
    regressor = PolynomialRegressor(2)
    curves = tuple(regressor.fit(x[labels == c], y[labels == c]) for c in range(2))
    r = np.where(labels == 0, y - curves[0].predict(x), y - curves[1].predict(x))
    sigma = np.sqrt(np.mean(r**2))
    pi = np.bincount(labels) / 200
    loglik = np.sum(norm.logpdf(r, scale=sigma) + np.log(pi[labels]))
    params = 3 + 3 + 1 + 1
    assert bic(x, y, labels, curves) == pytest.approx(-2 * loglik + params * np.log(200))


def test_mixture_bic_equals_its_definition() -> None:
    """Mixture log-likelihood maximized over the noise scale by brute force on a fine grid."""
    x, y, labels = two_lines(n=200, seed=4)
    regressor = PolynomialRegressor(2)
    curves = tuple(regressor.fit(x[labels == c], y[labels == c]) for c in range(2))
    pi = np.bincount(labels) / 200
    best = -np.inf
    for sigma in np.exp(np.linspace(np.log(0.02), np.log(2.0), 20001)):
        dens = sum(p * np.exp(-(y - c.predict(x)) ** 2 / (2 * sigma**2))
                   / np.sqrt(2 * np.pi * sigma**2) for p, c in zip(pi, curves, strict=True))
        best = max(best, float(np.sum(np.log(dens))))
    params = 3 + 3 + 1 + 1
    got = bic(x, y, labels, curves, "mixture")
    assert got == pytest.approx(-2 * best + params * np.log(200), abs=1e-3)
    # the mixture explains each point by every curve: never less likely than the hard assignment
    assert got <= bic(x, y, labels, curves) + 1e-9


@given(st.integers(0, 10**6))
@settings(max_examples=8, deadline=None)
def test_order_of_points_does_not_matter(seed: int) -> None:
    pair = simulate_mixture(150, 2, seed=seed % 1000, swap=False)
    p = np.random.default_rng(seed).permutation(150)
    a = cluster_mechanisms(pair.x, pair.y, k_max=3)
    b = cluster_mechanisms(pair.x[p], pair.y[p], k_max=3)
    assert a.k == b.k
    assert np.array_equal(a.labels[p], b.labels)
    assert a.bic == pytest.approx(b.bic, rel=1e-9)


def test_bad_arguments_are_refused() -> None:
    x, y, _ = two_lines(n=60)
    for kwargs, field in (({"k": 0}, "k"), ({"k_max": 0}, "k_max"), ({"k": 30}, "k"),
                          ({"k": 2.5}, "k"), ({"k": True}, "k"), ({"k_max": 2.5}, "k_max"),
                          ({"criterion": "aic"}, "criterion"), ({"min_cluster": 0}, "min_cluster")):
        with pytest.raises(InvalidInputError) as info:
            cluster_mechanisms(x, y, **kwargs)
        assert info.value.field == field
    for cause, effect, field in ((x, y[:-1], "cause, effect"), (np.r_[x[:-1], np.nan], y, "cause"),
                                 (x, np.r_[y[:-1], np.inf], "effect"),
                                 (np.zeros_like(x), y, "cause")):  # one distinct cause
        with pytest.raises(InvalidInputError) as info:
            cluster_mechanisms(cause, effect)
        assert info.value.field == field


def test_residuals_are_float_whatever_the_input() -> None:
    x, y, _ = two_lines(n=100)
    mech = cluster_mechanisms(x, y, k=1)
    yi = np.round(10 * y).astype(np.int64)
    assert mech.residuals(list(x), yi) == pytest.approx(yi - mech.curves[0].predict(x))
    with pytest.raises(InvalidInputError):
        mech.residuals(x[:-1], y[:-1])
