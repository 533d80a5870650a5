"""HSIC: the trace form against the explicit sums, the gamma null moments against the
permutation distribution, calibration under independence, power under dependence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from proxcompress.causal import HSICGamma, HSICPermutation, hsic
from proxcompress.causal.independence import (
    DEFAULT_WIDTHS,
    _centre,
    gamma_null_moments,
    gaussian_gram,
    log_gamma_sf,
)
from proxcompress.errors import InvalidInputError


def hsic_sums(u: np.ndarray, v: np.ndarray) -> float:
    """Gretton et al. 2005's empirical HSIC written as sums over index pairs and triples (the
    default multi-scale kernel)."""
    k, lg = gaussian_gram(u, DEFAULT_WIDTHS), gaussian_gram(v, DEFAULT_WIDTHS)
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
    # the default multi-scale kernel: the mean of the Gaussians of bandwidths 1.75, 3.5 and 7
    multi = gaussian_gram(u, DEFAULT_WIDTHS)
    assert DEFAULT_WIDTHS == (0.5, 1.0, 2.0)
    assert multi[0, 3] == pytest.approx(np.mean([np.exp(-0.5 * (7 / s) ** 2)
                                                 for s in (1.75, 3.5, 7.0)]))
    w = np.linspace(0, 3, 8)
    assert hsic(w, w**2, widths=(1.0,)) != pytest.approx(hsic(w, w**2))
    for bad in ((), (0.0,), (1,), [1.0], (float("nan"),)):
        with pytest.raises(InvalidInputError) as info:
            HSICGamma(widths=bad)  # type: ignore[arg-type]
        assert info.value.field == "widths"
    assert np.allclose(np.diag(k), 1.0)
    assert np.allclose(_centre(k).sum(axis=0), 0.0) and np.allclose(_centre(k).sum(axis=1), 0.0)


@pytest.mark.parametrize("n", [40, 100])
def test_gamma_moments_match_the_permutation_distribution(n: int) -> None:
    """The closed-form null mean and variance HSICGamma uses, against 4000 permutations."""
    rng = np.random.default_rng(n)
    u, v = rng.standard_normal(n), rng.uniform(size=n)
    k, lg = gaussian_gram(u), gaussian_gram(v)
    kc, lc = _centre(k), _centre(lg)
    perms = np.array([np.sum(kc * lc[np.ix_(p, p)]) / n**2
                      for p in (rng.permutation(n) for _ in range(4000))])  # HSIC_b
    mean, var = gamma_null_moments(k, lg, kc, lc)
    assert perms.mean() == pytest.approx(mean, rel=0.05)
    assert perms.var() == pytest.approx(var, rel=0.15)


def test_test_statistics_are_n_times_hsic() -> None:
    rng = np.random.default_rng(8)
    u = rng.standard_normal(40)
    v = np.sin(u) + rng.standard_normal(40)
    assert HSICGamma()(u, v).statistic == pytest.approx(40 * hsic_sums(u, v), rel=1e-9)
    assert HSICPermutation(permutations=5)(list(u), list(v)).statistic == pytest.approx(
        40 * hsic_sums(u, v), rel=1e-9)


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
    # p-values below float64's smallest positive number stay ordered on the log scale
    w = rng.uniform(-1, 1, 2500)
    strong, stronger = HSICGamma()(w, w**3), HSICGamma()(w, w)
    assert strong.p_value == stronger.p_value == 0.0
    assert np.isfinite(stronger.log_p_value) and stronger.log_p_value < strong.log_p_value < -745


@pytest.mark.parametrize("shape", [0.3, 1.0, 2.5, 7.0, 40.0])
def test_log_gamma_tail(shape: float) -> None:
    """Equal to SciPy's where SciPy's is finite; beyond, the asymptotic series
    (a - 1) log x - x - lgamma(a) + log(sum_j (a-1)(a-2)...(a-j) / x^j)."""
    from scipy.special import gammaln
    from scipy.stats import gamma

    for x in (0.01, 0.5, shape, shape + 1.5, 3 * shape + 5, 50.0, 300.0, 700.0):
        ref = gamma.logsf(x, shape)
        if np.isfinite(ref):
            assert log_gamma_sf(x, shape) == pytest.approx(ref, rel=1e-9, abs=1e-12)
    x = 1e4
    terms = np.cumprod([(shape - i) / x for i in range(1, 12)])
    series = (shape - 1) * np.log(x) - x - gammaln(shape) + np.log1p(terms.sum())
    assert log_gamma_sf(x, shape) == pytest.approx(series, rel=1e-12)
    assert log_gamma_sf(0.0, shape) == 0.0


def test_constant_sample_is_not_evidence() -> None:
    u = np.linspace(0, 1, 20)
    assert HSICGamma()(u, np.ones(20)).p_value == 1.0


def test_permutation_p_value_is_the_exceedance_count() -> None:
    rng = np.random.default_rng(2)
    u, v = rng.standard_normal(30), rng.standard_normal(30)
    result = HSICPermutation(permutations=99, seed=7)(u, v)
    kc = _centre(gaussian_gram(u, DEFAULT_WIDTHS))
    lc = _centre(gaussian_gram(v, DEFAULT_WIDTHS))
    r = np.random.default_rng(7)
    count = sum(np.sum(kc * lc[np.ix_(p, p)]) / 30 >= result.statistic
                for p in (r.permutation(30) for _ in range(99)))
    assert result.p_value == (1 + count) / 100


@pytest.mark.parametrize(("u", "v", "field"), [
    (np.zeros(5), np.zeros(5), "n"),
    (np.zeros(8), np.zeros(7), "u, v"),
    (np.array([0, 1, 2, np.nan, 4, 5.0]), np.arange(6.0), "u"),
    (np.arange(6.0), np.arange(6.0) + 1j, "v"),
    (np.zeros((6, 2)), np.zeros((6, 2)), "u"),
])
def test_bad_samples_are_refused(u: np.ndarray, v: np.ndarray, field: str) -> None:
    for test in (HSICGamma(), HSICPermutation(permutations=3)):
        with pytest.raises(InvalidInputError) as info:
            test(u, v)
        assert info.value.field == field


@pytest.mark.parametrize(("make", "field"), [
    (lambda: HSICPermutation(permutations=0), "permutations"),
    (lambda: HSICPermutation(permutations=2.5), "permutations"),
    (lambda: HSICPermutation(seed=-1), "seed"),
    (lambda: HSICGamma(seed=True), "seed"),
    (lambda: HSICGamma(max_samples=50.5), "max_samples"),
])
def test_bad_settings_are_refused(make, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError) as info:
        make()
    assert info.value.field == field


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
