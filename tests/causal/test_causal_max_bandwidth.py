"""HSICMaxBandwidth (issue 19, round 4): every statistic against the closed-form HSIC of its
bandwidth, the standardised maximum and the p-value against brute force, the shared
permutations, calibration under independence within a binomial band, power under dependence."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from proxcompress.causal import HSICGamma, HSICMaxBandwidth, causal_direction, hsic
from proxcompress.causal.independence import GRID_WIDTHS, standardized_max
from proxcompress.errors import InvalidInputError


def test_reference_rows_are_n_hsic_of_each_bandwidth_under_the_same_permutations() -> None:
    """Row 0: n HSIC_b of the data at each multiplier (the closed-form estimator :func:`hsic`
    with that one width); row j: the same with v permuted by the j-th permutation of the seeded
    generator, one permutation for every bandwidth."""
    rng = np.random.default_rng(3)
    u, v = rng.standard_normal(40), rng.standard_normal(40)
    test = HSICMaxBandwidth(permutations=4, standardizing=3, seed=11)
    reference, n = test.reference(u, v)
    assert n == 40 and reference.shape == (8, len(GRID_WIDTHS))
    perms = np.random.default_rng(11)
    for row, order in enumerate([np.arange(40)] + [perms.permutation(40) for _ in range(7)]):
        for col, w in enumerate(GRID_WIDTHS):
            assert reference[row, col] == pytest.approx(40 * hsic(u, v[order], widths=(w,)),
                                                        rel=1e-10)


def test_standardized_max_is_the_loop() -> None:
    rng = np.random.default_rng(4)
    null, stats = rng.standard_normal((30, 4)), rng.standard_normal((5, 4)) * 3
    null[:, 2] = 1.5  # a bandwidth without spread contributes 0
    got = standardized_max(stats, null)
    for i in range(5):
        zs = [0.0 if null[:, b].std() == 0 else
              (stats[i, b] - null[:, b].mean()) / null[:, b].std() for b in range(4)]
        assert got[i] == pytest.approx(max(zs), rel=1e-12)


def test_p_value_counts_the_calibrating_permutations_only() -> None:
    """p = (1 + #{calibrating max >= observed max}) / (B + 1); the standardising permutations
    (the first ``standardizing`` rows) set the scale and are not counted."""
    rng = np.random.default_rng(5)
    u = rng.uniform(-1, 1, 50)
    v = 0.3 * u**2 + rng.standard_normal(50)
    test = HSICMaxBandwidth(permutations=49, standardizing=20, seed=2)
    reference, _ = test.reference(u, v)
    null = reference[1:21]
    z_obs = standardized_max(reference[:1], null)[0]
    count = int(np.sum(standardized_max(reference[21:], null) >= z_obs))
    result = test(u, v)
    assert result.statistic == pytest.approx(z_obs)
    assert result.p_value == (1 + count) / 50
    assert result.log_p_value == pytest.approx(np.log(result.p_value))


def test_one_bandwidth_is_the_plain_permutation_test() -> None:
    """With a one-point grid the maximum is a monotone map of n HSIC_b, so the p-value is the
    exceedance count of the plain permutation test over the calibrating permutations."""
    rng = np.random.default_rng(6)
    u, v = rng.standard_normal(35), rng.standard_normal(35)
    test = HSICMaxBandwidth(permutations=39, standardizing=10, seed=9, widths=(1.0,))
    reference, _ = test.reference(u, v)
    count = int(np.sum(reference[11:, 0] >= reference[0, 0]))
    assert test(u, v).p_value == (1 + count) / 40


def test_calibrated_under_independence() -> None:
    """Rejections at 5% and at 20% over 200 independent pairs (n = 40, a skewed and a
    symmetric marginal): within the 99.9% binomial band of the nominal level."""
    rng = np.random.default_rng(0)
    test = HSICMaxBandwidth(permutations=59, standardizing=40)
    p = np.array([test(rng.standard_normal(40), rng.exponential(size=40)).p_value
                  for _ in range(200)])
    for level in (0.05, 0.2):
        # with 59 permutations p <= level is reachable exactly at multiples of 1/60
        low, high = binom.interval(0.999, 200, level)
        assert low <= np.sum(p <= level) <= high, level


def test_detects_dependence_one_scale_sees() -> None:
    """v = sin(12 u) + noise: nearly uncorrelated, visible at the narrow end of the grid. The
    maximum over bandwidths rejects at its permutation floor; the default averaged kernel
    (gamma test) does not reject at 10% on this sample."""
    rng = np.random.default_rng(1)
    u = rng.uniform(-1, 1, 200)
    v = np.sin(12 * u) + 0.5 * rng.standard_normal(200)
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.15
    result = HSICMaxBandwidth(permutations=99, standardizing=50)(u, v)
    assert result.p_value == 1 / 100 and result.statistic > 5
    assert HSICGamma()(u, v).p_value > 0.1


def test_direction_with_the_max_bandwidth_test() -> None:
    """A plain additive pair y = x^3 + uniform noise: decided x -> y with the test plugged in."""
    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, 150)
    y = x**3 + 0.2 * rng.uniform(-1, 1, 150)
    test = HSICMaxBandwidth(permutations=49, standardizing=30)
    assert causal_direction(x, y, k=1, test=test).direction == "x->y"


@pytest.mark.parametrize(("make", "field"), [
    (lambda: HSICMaxBandwidth(permutations=0), "permutations"),
    (lambda: HSICMaxBandwidth(standardizing=1), "standardizing"),
    (lambda: HSICMaxBandwidth(seed=-2), "seed"),
    (lambda: HSICMaxBandwidth(widths=()), "widths"),
    (lambda: HSICMaxBandwidth(widths=(1.0, -2.0)), "widths"),
    (lambda: HSICMaxBandwidth(max_samples=3), "max_samples"),
])
def test_bad_settings_are_refused(make, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError) as info:
        make()
    assert info.value.field == field


def test_bad_samples_are_refused() -> None:
    with pytest.raises(InvalidInputError) as info:
        HSICMaxBandwidth(permutations=3)(np.zeros(8), np.zeros(7))
    assert info.value.field == "u, v"
