"""HSIC: the trace form against the explicit sums, the gamma null moments against the
permutation distribution, calibration under independence, power under dependence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from proxcompress.causal import HSICGamma, HSICPermutation, hsic
from proxcompress.causal.independence import _centre, gaussian_gram
from proxcompress.errors import InvalidInputError


def hsic_sums(u: np.ndarray, v: np.ndarray) -> float:
    """Gretton et al. 2005's empirical HSIC written as sums over index pairs and triples."""
    k, lg = gaussian_gram(u), gaussian_gram(v)
    n = u.size
    return float(np.sum(k * lg) / n**2 + k.sum() * lg.sum() / n**4
                 - 2 * np.einsum("ij,ik->", k, lg) / n**3)


# values on a 1/8 grid: distinct values stay distinct under the affine maps below (values 1e-126
# apart would merge when shifted, which changes the median-heuristic bandwidth)
samples = arrays(np.float64, st.integers(6, 25),
                 elements=st.integers(-800, 800).map(lambda i: i / 8))


@given(samples, st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_trace_form_equals_sums(u: np.ndarray, seed: int) -> None:
    v = np.random.default_rng(seed).standard_normal(u.size)
    assert hsic(u, v) == pytest.approx(hsic_sums(u, v), rel=1e-9, abs=1e-12)


@given(samples, st.integers(0, 2**32 - 1), st.floats(0.01, 100), st.floats(-50, 50))
@settings(max_examples=60, deadline=None)
def test_invariances(u: np.ndarray, seed: int, scale: float, shift: float) -> None:
    """Joint reordering of the pairs, symmetry, and affine maps (median-heuristic bandwidth)
    leave the statistic unchanged."""
    rng = np.random.default_rng(seed)
    v = u**2 + rng.standard_normal(u.size)
    p = rng.permutation(u.size)
    h = hsic(u, v)
    assert hsic(u[p], v[p]) == pytest.approx(h, rel=1e-9, abs=1e-12)
    assert hsic(v, u) == pytest.approx(h, rel=1e-9, abs=1e-12)
    assert hsic(scale * u + shift, v) == pytest.approx(h, rel=1e-6, abs=1e-10)


def test_gram_bandwidth_is_the_median_distance() -> None:
    u = np.array([0.0, 1.0, 3.0, 7.0])  # distances 1 2 3 4 6 7: median 3.5
    k = gaussian_gram(u)
    assert k[0, 1] == pytest.approx(np.exp(-0.5 / 3.5**2))
    assert np.allclose(np.diag(k), 1.0)
    assert np.allclose(_centre(k).sum(axis=0), 0.0) and np.allclose(_centre(k).sum(axis=1), 0.0)


@pytest.mark.parametrize("n", [40, 100])
def test_gamma_moments_match_the_permutation_distribution(n: int) -> None:
    """The closed-form null mean and variance of n HSIC_b against 4000 permutations."""
    rng = np.random.default_rng(n)
    u, v = rng.standard_normal(n), rng.uniform(size=n)
    kc, lc = _centre(gaussian_gram(u)), _centre(gaussian_gram(v))
    perms = np.array([np.sum(kc * lc[np.ix_(p, p)]) / n
                      for p in (rng.permutation(n) for _ in range(4000))])
    k, lg = gaussian_gram(u), gaussian_gram(v)
    off = n * (n - 1)
    mu_k, mu_l = (k.sum() - n) / off, (lg.sum() - n) / off
    mean = (1 + mu_k * mu_l - mu_k - mu_l)  # of n HSIC_b
    assert perms.mean() == pytest.approx(mean, rel=0.05)
    b = (kc * lc) ** 2
    var = n**2 * 2 * (n - 4) * (n - 5) / (n * (n - 1) * (n - 2) * (n - 3)) * (
        b.sum() - np.trace(b)) / off
    assert perms.var() == pytest.approx(var, rel=0.15)


def test_gamma_p_values_agree_with_permutations() -> None:
    rng = np.random.default_rng(5)
    for strength in (0.0, 0.3, 0.6):
        u = rng.standard_normal(80)
        v = strength * u**2 + rng.standard_normal(80)
        g, p = HSICGamma()(u, v), HSICPermutation(permutations=2000, seed=1)(u, v)
        assert g.statistic == pytest.approx(p.statistic)
        assert abs(g.p_value - p.p_value) < 0.05, strength


def test_calibrated_under_independence() -> None:
    """Rejections at 5% over 300 independent pairs: within a binomial band around 5%."""
    rng = np.random.default_rng(0)
    p = np.array([HSICGamma()(rng.standard_normal(100), rng.exponential(size=100)).p_value
                  for _ in range(300)])
    assert 0.02 <= np.mean(p < 0.05) <= 0.09
    assert 0.40 <= np.mean(p) <= 0.60


def test_detects_dependence_with_zero_correlation() -> None:
    rng = np.random.default_rng(1)
    u = rng.uniform(-1, 1, 200)
    v = u**2 + 0.1 * rng.standard_normal(200)  # uncorrelated with u, strongly dependent
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.15
    result = HSICGamma()(u, v)
    assert result.p_value < 1e-6
    assert result.log_p_value == pytest.approx(np.log(result.p_value))
    tiny = HSICGamma()(u, u**3)  # p far below float64's smallest positive number is still ordered
    assert tiny.log_p_value < result.log_p_value


def test_constant_sample_is_not_evidence() -> None:
    u = np.linspace(0, 1, 20)
    assert HSICGamma()(u, np.ones(20)).p_value == 1.0


def test_permutation_p_value_is_the_exceedance_count() -> None:
    rng = np.random.default_rng(2)
    u, v = rng.standard_normal(30), rng.standard_normal(30)
    result = HSICPermutation(permutations=99, seed=7)(u, v)
    kc, lc = _centre(gaussian_gram(u)), _centre(gaussian_gram(v))
    r = np.random.default_rng(7)
    count = sum(np.sum(kc * lc[np.ix_(p, p)]) / 30 >= result.statistic
                for p in (r.permutation(30) for _ in range(99)))
    assert result.p_value == (1 + count) / 100


@pytest.mark.parametrize(("u", "v", "field"), [
    (np.zeros(5), np.zeros(5), "n"),
    (np.zeros(8), np.zeros(7), "u, v"),
    (np.array([0, 1, 2, np.nan, 4, 5.0]), np.arange(6.0), "u, v"),
])
def test_bad_samples_are_refused(u: np.ndarray, v: np.ndarray, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        HSICGamma()(u, v)
    assert info.value.field == field
    with pytest.raises(InvalidInputError):
        HSICPermutation(permutations=0)


def test_large_samples_are_subsampled_reproducibly() -> None:
    rng = np.random.default_rng(6)
    u = rng.standard_normal(400)
    v = u**2 + rng.standard_normal(400)
    full = HSICGamma()(u, v)
    assert full.samples == 400
    small = HSICGamma(max_samples=100, seed=3)(u, v)
    keep = np.sort(np.random.default_rng(3).choice(400, 100, replace=False))
    assert small.samples == 100
    assert small == HSICGamma()(u[keep], v[keep])
    assert HSICPermutation(permutations=20, max_samples=100, seed=3)(u, v).statistic == (
        pytest.approx(small.statistic))
    for make in (lambda: HSICGamma(max_samples=5), lambda: HSICPermutation(max_samples=2)):
        with pytest.raises(InvalidInputError) as info:
            make()
        assert info.value.field == "max_samples"
