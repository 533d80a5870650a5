"""Brute force: what it accepts, and its early stop against a plain enumeration."""

from __future__ import annotations

import itertools

import pytest

from proxcompress.errors import InvalidInputError
from proxcompress.formulations import random_instance, solve, solve_support
from proxcompress.formulations.brute import MAX_SUPPORTS, enumerable, support_count


@pytest.mark.parametrize(
    ("groups", "k", "field"), [(21, None, "groups"), (80, None, "groups"), (40, 10, "k")]
)
def test_refuses_what_it_cannot_enumerate(groups, k, field):
    problem = random_instance(30, groups, 1, groups, seed=0, k=k)
    assert support_count(problem) > MAX_SUPPORTS and not enumerable(problem)
    with pytest.raises(InvalidInputError, match="bnb") as info:
        solve(problem, "brute")
    assert info.value.field == field


def test_many_groups_with_a_small_budget_are_enumerated():
    problem = random_instance(100, 40, 1, 40, seed=2, k=2)
    assert support_count(problem) == 1 + 40 + 780
    brute = solve(problem, "brute")
    assert brute.status == "optimal"
    assert brute.objective == pytest.approx(solve(problem, "bnb").objective, rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_early_stop_finds_the_enumeration_optimum(seed):
    """The floor stop (exhaustion bound) never skips a better support: the optimum equals a
    plain enumeration of every support."""
    problem = random_instance(60, 9, 1, 9, seed, rho=0.5, snr=[0.3, 4.0][seed % 2],
                              alpha=[0.05, 0.5, 0.9][seed % 3], k=[None, 4][seed % 2])
    plain = min(
        solve_support(problem, support)[1]
        for size in range(problem.budget + 1)
        for support in itertools.combinations(range(9), size)
    )
    brute = solve(problem, "brute")
    assert brute.objective == pytest.approx(plain, rel=1e-12)
    assert brute.bound == brute.objective
