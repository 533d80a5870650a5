"""formulations.spr: the SPR closed form against the numeric minimization, cases and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxcompress.errors import InvalidInputError
from proxcompress.formulations.spr import (
    group_norms,
    spr_case,
    spr_check,
    spr_numeric,
    spr_value,
    spr_value_groups,
)


def _objective(y: float, r: float, alpha: float) -> float:
    return alpha * r * r / y + (1 - alpha) * y


def test_three_cases_by_hand() -> None:
    alpha, M = 0.2, 1.0  # c = 1/2
    # case 1 via c r >= 1, case 1 via t = M, case 2, case 3
    l2 = np.array([3.0, 1.0, 1.0, 0.5])
    linf = np.array([1.0, 1.0, 0.3, 0.45])
    z, y = spr_value(l2, linf, alpha, M)
    assert spr_case(l2, linf, alpha, M).tolist() == [1, 1, 2, 3]
    np.testing.assert_allclose(y, [1.0, 1.0, 0.5, 0.45])
    np.testing.assert_allclose(z[:2], alpha * l2[:2] ** 2 + (1 - alpha))
    np.testing.assert_allclose(z[2], 2 * np.sqrt(alpha * (1 - alpha)) * 1.0)
    np.testing.assert_allclose(z[3], alpha * M * 0.25 / 0.45 + (1 - alpha) * 0.45 / M)
    for zi, yi, ri in zip(z, y, l2, strict=True):
        assert zi == pytest.approx(_objective(yi, ri, alpha))


def test_zero_group_gives_zero() -> None:
    z, y = spr_value_groups([np.zeros(3), [0.0]], 0.3, 2.0)
    assert z.tolist() == [0.0, 0.0] and y.tolist() == [0.0, 0.0]
    z, y = spr_numeric([0.0], [0.0], 0.3, 2.0)
    assert z[0] == 0.0


def test_groups_as_rows_and_ragged() -> None:
    W = np.array([[3.0, -4.0], [0.0, 0.5]])
    l2, linf = group_norms(W)
    np.testing.assert_allclose(l2, [5.0, 0.5])
    np.testing.assert_allclose(linf, [4.0, 0.5])
    ragged = spr_value_groups([W[0], [0.5], []], 0.1, 4.0)
    np.testing.assert_allclose(ragged.z[:2], spr_value([5.0, 0.5], [4.0, 0.5], 0.1, 4.0).z)
    assert ragged.z[2] == 0.0


def test_infeasible_group_names_field() -> None:
    with pytest.raises(InvalidInputError) as err:
        spr_value_groups([[0.1], [3.0, 1.0]], 0.5, 2.0)
    assert err.value.field == "W_groups"
    assert "group 1" in str(err.value) and "exceeds M = 2.0" in str(err.value)
    with pytest.raises(InvalidInputError) as err:
        spr_value([3.0], [2.5], 0.5, 2.0)
    assert err.value.field == "linf"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"M": 0.0}, "M"),
        ({"M": -1.0}, "M"),
        ({"l2": [-1.0]}, "l2"),
        ({"linf": [np.inf]}, "linf"),
        ({"l2": [1.0], "linf": [2.0], "M": 5.0}, "linf"),
    ],
)
def test_invalid_inputs(kwargs: dict, field: str) -> None:
    args = {"l2": [1.0], "linf": [0.5], "alpha": 0.5, "M": 1.0, **kwargs}
    with pytest.raises(InvalidInputError) as err:
        spr_value(**args)
    assert err.value.field == field


def test_bad_group_input() -> None:
    with pytest.raises(InvalidInputError):
        group_norms(np.ones(3))
    with pytest.raises(InvalidInputError):
        group_norms([[1.0, np.nan]])
    with pytest.raises(InvalidInputError):
        group_norms("abc")


@settings(max_examples=150, deadline=None)
@given(
    w=st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=6),
    alpha=st.floats(0.001, 0.999),
    slack=st.floats(1.0, 5.0),
)
def test_closed_form_is_the_minimum(w: list[float], alpha: float, slack: float) -> None:
    l2, linf = group_norms([w])
    M = max(float(linf[0]) * slack, 1e-3)
    check = spr_check(l2, linf, alpha, M)
    assert check.passed, check
    # and nothing on a fine grid of feasible y beats it
    lo = float(linf[0]) / M
    grid = np.linspace(max(lo, 1e-12), 1.0, 2001)
    values = alpha * float(l2[0]) ** 2 / grid + (1 - alpha) * grid
    assert check.closed_form.z[0] <= values.min() + 1e-12


def test_continuity_across_case_boundaries() -> None:
    alpha, M = 0.2, 1.0  # c = 1/2
    eps = 1e-9
    # case 1 | case 2 at c r = 1 (r = 2) with t small
    z = spr_value([2 - eps, 2 + eps], [0.1, 0.1], alpha, M).z
    assert abs(z[0] - z[1]) < 1e-7
    # case 2 | case 3 at t/M = c r (r = 1, t = 0.5)
    z = spr_value([1.0, 1.0], [0.5 - eps, 0.5 + eps], alpha, M).z
    assert abs(z[0] - z[1]) < 1e-7
    # case 3 | case 1 at t = M
    z = spr_value([1.2, 1.2], [M - eps, M], alpha, M).z
    assert abs(z[0] - z[1]) < 1e-7
