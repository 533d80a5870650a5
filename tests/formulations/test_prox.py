"""formulations.prox: numeric proximal maps against their closed forms and each other."""

from __future__ import annotations

import numpy as np
import pytest

from proxcompress.errors import InvalidInputError
from proxcompress.formulations.prox import (
    BINARY,
    TERNARY,
    is_convex_problem,
    prox,
    prox_objective,
    regularizer_value,
    shift_levels,
)

THETA = np.linspace(-3.1, 3.1, 124)  # avoids 0 and the ternary ties +-1/2
MUS = (0.25, 1.0, 4.0)


def _project(theta: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    q = np.asarray(levels)
    return q[np.argmin(np.abs(theta[:, None] - q), axis=1)]


@pytest.mark.parametrize("levels", [BINARY, TERNARY, shift_levels(3)])
@pytest.mark.parametrize("mu", MUS)
def test_dist2_closed_form(levels: tuple[float, ...], mu: float) -> None:
    theta = np.linspace(-9.7, 9.7, 200)
    expected = (theta + mu * _project(theta, levels)) / (1 + mu)
    np.testing.assert_allclose(prox("dist2", theta, mu, levels=levels), expected, atol=1e-12)


@pytest.mark.parametrize("mu", MUS)
def test_dist1_is_proxquant_soft_threshold(mu: float) -> None:
    s = np.sign(THETA)
    expected = s + np.sign(THETA - s) * np.maximum(np.abs(THETA - s) - mu, 0.0)
    np.testing.assert_allclose(prox("dist1", THETA, mu), expected, atol=1e-12)
    # W-shaped regularizer | |w| - 1 |
    np.testing.assert_allclose(regularizer_value("dist1", THETA), np.abs(np.abs(THETA) - 1))


def test_indicator_is_projection() -> None:
    np.testing.assert_array_equal(prox("indicator", THETA, 1.0), np.sign(THETA))
    np.testing.assert_array_equal(
        prox("indicator", THETA, 0.3, levels=TERNARY), _project(THETA, TERNARY)
    )


@pytest.mark.parametrize("rho", [0.25, 0.5, 1.0, 3.0])
def test_box_quadratic_is_clip(rho: float) -> None:
    expected = np.clip(THETA / rho, -1, 1)
    cvx = prox("box_quadratic", THETA, 1.0, rho=rho)  # convex problem: CVXPY
    assert is_convex_problem("box_quadratic", 1.0, rho=rho)
    np.testing.assert_allclose(cvx, expected, atol=1e-6)
    np.testing.assert_allclose(prox("box_quadratic", THETA, 1.0, rho=rho, method="exact"),
                               expected, atol=1e-12)


def test_box_quadratic_concave_goes_to_the_ends() -> None:
    # 1 + mu (rho - 1) = 1 + 4 (0.5 - 1) = -1 < 0: nonconvex, minimizers at +-1
    assert not is_convex_problem("box_quadratic", 4.0, rho=0.5)
    np.testing.assert_array_equal(prox("box_quadratic", THETA, 4.0, rho=0.5), np.sign(THETA))
    with pytest.raises(InvalidInputError) as err:
        prox("box_quadratic", THETA, 4.0, rho=0.5, method="cvxpy")
    assert err.value.field == "method"


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("dist2", {}), ("dist1", {}), ("indicator", {"levels": TERNARY}),
     ("box_quadratic", {"rho": 0.3}), ("dist2", {"levels": shift_levels(3)})],
)
def test_grid_search_agrees_with_exact(name: str, kwargs: dict) -> None:
    theta = np.linspace(-3.07, 3.07, 40)
    for mu in (0.3, 2.0):
        exact = prox(name, theta, mu, method="exact", **kwargs)
        grid = prox(name, theta, mu, method="grid", **kwargs)
        np.testing.assert_allclose(grid, exact, atol=1e-6)


@pytest.mark.parametrize("name", ["dist2", "dist1"])
def test_single_level_is_convex_and_cvxpy_agrees(name: str) -> None:
    assert is_convex_problem(name, 2.0, levels=(0.5,))
    exact = prox(name, THETA, 2.0, levels=(0.5,), method="exact")
    np.testing.assert_allclose(prox(name, THETA, 2.0, levels=(0.5,), method="cvxpy"), exact,
                               atol=1e-6)


def test_ties_return_largest_minimizer_and_objective_shows_both() -> None:
    w = prox("indicator", [0.0], 1.0)
    assert w[0] == 1.0
    values = prox_objective("indicator", [-1.0, 1.0], [0.0, 0.0], 1.0)
    assert values[0] == values[1]


def test_objective_outside_domain_is_infinite() -> None:
    assert np.isinf(prox_objective("indicator", [0.5], [0.5], 0.0)[0])
    assert np.isinf(prox_objective("box_quadratic", [1.5], [0.0], 1.0)[0])
    assert prox_objective("dist2", [0.5], [0.5], 0.0)[0] == 0.0


def test_mu_zero_is_identity_for_distances() -> None:
    np.testing.assert_allclose(prox("dist2", THETA, 0.0), THETA)
    np.testing.assert_allclose(prox("dist1", THETA, 0.0, method="cvxpy"), THETA, atol=1e-6)


def test_shift_levels() -> None:
    assert shift_levels(3) == (-8.0, -4.0, -2.0, -1.0, 1.0, 2.0, 4.0, 8.0)
    assert shift_levels(2, scale=0.5) == (-1.0, -0.5, 0.5, 1.0)
    with pytest.raises(InvalidInputError):
        shift_levels(1)
    with pytest.raises(InvalidInputError):
        shift_levels(3, scale=0.0)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: prox("l0", THETA, 1.0), "regularizer"),
        (lambda: prox("dist2", THETA, -1.0), "mu"),
        (lambda: prox("dist2", [np.nan], 1.0), "theta"),
        (lambda: prox("dist2", THETA, 1.0, method="newton"), "method"),
        (lambda: prox("dist2", THETA, 1.0, levels=()), "levels"),
        (lambda: prox("dist1", THETA, 1.0, method="cvxpy"), "method"),
    ],
)
def test_invalid_inputs(call, field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        call()
    assert err.value.field == field
