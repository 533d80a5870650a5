"""Discretised causes (few distinct values, ties) and the location-scale residuals: the
regressor adapts instead of refusing, the report says when the evidence is weak, only a
constant variable is refused."""

from __future__ import annotations

import numpy as np
import pytest

from proxcompress.causal import SplineRegressor, causal_direction, cluster_mechanisms
from proxcompress.causal.direction import FEW_LEVELS, scaled_residuals, standardize
from proxcompress.errors import InvalidInputError


def level_means(x: np.ndarray, y: np.ndarray) -> dict[float, float]:
    return {float(v): float(y[x == v].mean()) for v in np.unique(x)}


@pytest.mark.parametrize("levels", [2, 3])
def test_two_or_three_levels_give_the_group_means(levels: int) -> None:
    """With d <= 3 distinct causes the fit is the polynomial of degree d - 1 through the level
    means: the group-means regression (closed form: the per-level averages)."""
    rng = np.random.default_rng(levels)
    x = rng.integers(0, levels, 200).astype(float) * 1.7 - 0.4
    y = rng.standard_normal(200) + np.sin(3 * x)
    curve = SplineRegressor().fit(x, y)
    assert curve.df == levels
    for value, mean in level_means(x, y).items():
        assert curve.predict(np.array([value]))[0] == pytest.approx(mean, abs=1e-10)


@pytest.mark.parametrize("levels", [4, 7, 12])
def test_the_most_flexible_candidate_is_the_group_means(levels: int) -> None:
    """d distinct causes allow at most d - 4 knots, so df <= d; level means far from any smooth
    curve (a fixed random pattern, tiny noise) make GCV take df = d, which reproduces the
    per-level means exactly."""
    rng = np.random.default_rng(levels)
    pattern = rng.choice([-3.0, 3.0], levels) * rng.uniform(1, 2, levels)
    x = np.repeat(np.arange(levels, dtype=float), 30)
    y = pattern[x.astype(int)] + 1e-3 * rng.standard_normal(x.size)
    curve = SplineRegressor().fit(x, y)
    assert curve.df == levels
    for value, mean in level_means(x, y).items():
        assert curve.predict(np.array([value]))[0] == pytest.approx(mean, abs=1e-9)


def test_complexity_never_exceeds_the_number_of_levels() -> None:
    rng = np.random.default_rng(5)
    for levels in range(2, 15):
        x = rng.integers(0, levels, 300).astype(float)
        curve = SplineRegressor().fit(x, np.sin(x) + rng.standard_normal(300))
        assert 2 <= curve.df <= levels


def test_anm_on_a_two_level_cause() -> None:
    """y = x + uniform noise with a binary x: the causal residuals are the noise, independent of
    x; the reverse residuals x - E[x | y] are 0 outside the overlap and +-1/2 inside it, so they
    depend on y. The test answers x -> y (plain ANM on 10 seeds, the default clustered test on
    3) and says the evidence rests on two levels; the clustering does not explain the binary
    effect by one zero-residual mechanism per level (the resolution floor of the BIC)."""
    right = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 2, 300).astype(float)
        y = x + rng.uniform(-1, 1, 300)
        result = causal_direction(x, y, k=None if seed < 3 else 1)
        right += result.direction == "x->y"
        assert result.weak_evidence
        assert any(note.startswith(f"x has 2 distinct values (< {FEW_LEVELS})")
                   for note in result.notes)
        assert result.as_dict()["evidence"]["weak"] is True
        residuals = result.backward.mechanisms.residuals(standardize(y, "y"), standardize(x, "x"))
        assert np.std(residuals) > 0.3
    assert right >= 9


def test_clustering_runs_on_a_discrete_cause() -> None:
    """Clusters need MIN_CLUSTER points and two distinct causes, not 20 distinct causes: two
    mechanisms on a 5-level cause are found (k = 2, residuals at the noise level; with five
    levels each curve can follow any level pattern, so which of the crossing lines' points go
    together is not identifiable, only that two curves explain the data)."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 5, 400).astype(float)
    label = rng.integers(0, 2, 400)
    y = np.where(label == 0, x, 6 - x) + 0.05 * rng.standard_normal(400)
    mech = cluster_mechanisms(x, y)
    assert mech.k == 2
    assert np.std(mech.residuals(x, y)) < 0.07
    assert np.std(cluster_mechanisms(x, y, k=1).residuals(x, y)) > 1


def test_continuous_pairs_have_no_level_note() -> None:
    rng = np.random.default_rng(11)
    x = rng.uniform(-2, 2, 200)
    y = x**3 + rng.uniform(-1, 1, 200)
    result = causal_direction(x, y, k=1)
    assert result.direction == "x->y"
    assert not any("distinct values" in note for note in result.notes)


def test_a_constant_variable_is_the_only_refusal() -> None:
    x = np.arange(40.0)
    with pytest.raises(InvalidInputError) as info:
        causal_direction(x, np.full(40, 2.5), names=("a", "b"))
    assert info.value.field == "b"
    result = causal_direction(x, (x % 2 == 0).astype(float))  # two levels: answered
    assert result.direction in ("x->y", "y->x")


def test_scaled_residuals_divide_by_the_fitted_scale() -> None:
    """Each cause value twice with residuals +-(2 + x): |r| is exactly the line 2 + x, which a
    cubic spline reproduces, so the scaled residuals are exactly +-1."""
    x = np.repeat(np.linspace(-1, 1, 60), 2)
    sign = np.tile([1.0, -1.0], 60)
    r = sign * (2 + x)
    out = scaled_residuals(x, r, np.zeros(120, dtype=np.int64), SplineRegressor())
    assert out == pytest.approx(sign, abs=1e-9)


def test_scaled_residuals_floor_and_clusters() -> None:
    """Per cluster: a cluster of zero residuals is left as it is; the fitted scale is floored
    at a tenth of the cluster's mean |residual|."""
    x = np.repeat(np.linspace(-1, 1, 40), 2)
    sign = np.tile([1.0, -1.0], 40)
    labels = np.r_[np.zeros(40, dtype=np.int64), np.ones(40, dtype=np.int64)]
    r = np.r_[np.zeros(40), sign[40:] * 3.0]
    out = scaled_residuals(x, r, labels, SplineRegressor())
    assert out[:40] == pytest.approx(np.zeros(40))
    assert out[40:] == pytest.approx(sign[40:], abs=1e-9)


def test_log_linear_scale_divides_by_the_exponential_spread() -> None:
    """Each cause value twice with residuals +-exp(0.3 + 0.8 x): log |r| is exactly a line, which
    the degree-1 fit reproduces, so the scaled residuals are exactly +-1 (the cluster mean is
    0); a spread that is not log-linear (2 + sin(4 x)) is left partly in place."""
    from proxcompress.causal import PolynomialRegressor

    x = np.repeat(np.linspace(-1, 1, 60), 2)
    sign = np.tile([1.0, -1.0], 60)
    labels = np.zeros(120, dtype=np.int64)
    line = PolynomialRegressor(degree=1)
    out = scaled_residuals(x, sign * np.exp(0.3 + 0.8 * x), labels, line, log_scale=True)
    assert out == pytest.approx(sign, abs=1e-9)
    wavy = scaled_residuals(x, sign * (2 + np.sin(4 * x)), labels, line, log_scale=True)
    assert np.ptp(np.abs(wavy)) > 0.5
    assert scaled_residuals(x, sign * (2 + np.sin(4 * x)), labels, SplineRegressor()) \
        == pytest.approx(sign, abs=0.1)  # the spline's flexible spread absorbs it


def test_log_linear_scale_decides_a_multiplicative_pair() -> None:
    """y = x^3 + exp(x) e, e uniform: additive residuals fan out (dependent in both
    directions); dividing by the fitted exp(a + b x) spread restores independence in the causal
    direction. The option is named in the noise table and checked like the others."""
    from proxcompress.causal.direction import FITTED_NOISES, SCALES
    from proxcompress.causal.options import NOISES

    assert NOISES == ("additive", *SCALES, *FITTED_NOISES)
    right = {"additive": 0, "loglinear-scale": 0}
    default = 0
    for seed in range(6):
        rng = np.random.default_rng(200 + seed)
        x = rng.uniform(-1.5, 1.5, 300)
        y = x**3 + np.exp(x) * rng.uniform(-1, 1, 300)
        for noise in right:
            right[noise] += causal_direction(x, y, k=1, noise=noise,
                                             decision="hsic").direction == "x->y"
        default += causal_direction(x, y, k=1).direction == "x->y"
    assert right["loglinear-scale"] >= 5 and right["additive"] <= 1
    assert default >= 5  # the default (LL-FB: log-linear scale, HSIC else likelihood)


def test_location_scale_decides_a_heteroscedastic_pair() -> None:
    """y = x + (0.1 + x^2) e, e uniform: additive residuals fan out with |x| (dependent in both
    directions); dividing by the fitted scale restores independence in the causal direction."""
    right = 0
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        x = rng.uniform(-1, 1, 300)
        y = x + (0.1 + x**2) * rng.uniform(-1, 1, 300)
        right += causal_direction(x, y, k=1, noise="location-scale").direction == "x->y"
    assert right >= 5
    with pytest.raises(InvalidInputError) as info:
        causal_direction(x, y, noise="multiplicative")  # type: ignore[arg-type]
    assert info.value.field == "noise"


def test_heteroscedastic_simulation_scales_the_same_noise() -> None:
    """Same seed, same draws: (y_h1 - y_0) / (y_h2 - y_0) = (e^{h1 x/2} - 1) / (e^{h2 x/2} - 1)
    whatever the noise and the mechanism; h = 0 is the homoscedastic pair."""
    from proxcompress.causal import simulate_mixture

    base = simulate_mixture(200, 2, seed=9, swap=False)
    one = simulate_mixture(200, 2, seed=9, swap=False, heteroscedasticity=1.0)
    two = simulate_mixture(200, 2, seed=9, swap=False, heteroscedasticity=2.0)
    x = base.x
    assert np.array_equal(one.x, x) and np.array_equal(one.labels, base.labels)
    expected = (np.exp(x / 2) - 1) / (np.exp(x) - 1)
    assert (one.y - base.y) / (two.y - base.y) == pytest.approx(expected, rel=1e-6)
    assert np.array_equal(simulate_mixture(200, 2, seed=9, heteroscedasticity=0.0).y,
                          simulate_mixture(200, 2, seed=9).y)
    for bad in (float("nan"), True, "1"):
        with pytest.raises(InvalidInputError) as info:
            simulate_mixture(50, 1, seed=0, heteroscedasticity=bad)  # type: ignore[arg-type]
        assert info.value.field == "heteroscedasticity"
