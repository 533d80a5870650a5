"""Continuous relaxations: the perspective bound dominates the big-M bound, both bound the MIP."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from proxcompress.errors import InvalidInputError
from proxcompress.formulations import random_instance
from proxcompress.formulations.brute import solve_brute
from proxcompress.formulations.relaxations import (
    Relaxation,
    pairwise_sdp_bound,
    relaxation,
    root_gap,
)

TOL = 1e-7  # relative accuracy of the CLARABEL solves
#: the lifted SDP's primal value where the SDP is tight (degenerate): CLARABEL ends up to ~1e-6
#: relative above the optimum (the function promises a bound up to the solver's accuracy)
SDP_TOL = 1e-6


@pytest.mark.parametrize(
    "params",
    [
        dict(n=60, d=8, m=1, n_groups=4, seed=0),
        dict(n=40, d=12, m=3, n_groups=6, seed=1, rho=0.8, alpha=0.5),
        dict(n=100, d=10, m=2, n_groups=10, seed=2, snr=0.5, k=3),
        dict(n=20, d=30, m=2, n_groups=10, seed=4, k=2),
    ],
)
def test_bounds_order(params: dict) -> None:
    problem = random_instance(**params)
    optimum = solve_brute(problem).objective
    bigm, persp = relaxation(problem, "bigm"), relaxation(problem, "perspective")
    scale = abs(optimum)
    assert bigm.bound <= persp.bound + TOL * scale
    assert persp.bound <= optimum + TOL * scale
    gap_b, gap_p = root_gap(problem, "bigm", optimum), root_gap(problem, "perspective", optimum)
    assert gap_b == pytest.approx((optimum - bigm.bound) / scale, abs=1e-8)
    assert -TOL <= gap_p <= gap_b + TOL
    for rel in (bigm, persp):
        assert rel.W.shape == (problem.d, problem.m)
        assert rel.z.shape == (problem.n_groups,)
        assert np.all((rel.z >= 0) & (rel.z <= 1))
        assert rel.seconds > 0


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(5, 80),
    d=st.integers(1, 12),
    m=st.integers(1, 3),
    groups=st.integers(1, 12),
    rho=st.sampled_from([0.0, 0.8]),
    snr=st.sampled_from([0.5, 4.0]),
    alpha=st.floats(0.05, 0.95),
    k=st.one_of(st.none(), st.integers(0, 4)),
    seed=st.integers(0, 10_000),
)
# Found by Hypothesis: CLARABEL ends "almost solved" on these perspective relaxations.
@example(n=11, d=6, m=3, groups=6, rho=0.8, snr=4.0, alpha=0.5, k=None, seed=2)
@example(n=34, d=7, m=2, groups=6, rho=0.0, snr=4.0, alpha=0.1484375, k=None, seed=986)
def test_perspective_never_below_bigm(
    n: int, d: int, m: int, groups: int, rho: float, snr: float, alpha: float, k: int | None,
    seed: int,
) -> None:
    problem = random_instance(
        n=n, d=d, m=m, n_groups=min(groups, d), seed=seed, rho=rho, snr=snr, alpha=alpha, k=k
    )
    bigm, persp = relaxation(problem, "bigm"), relaxation(problem, "perspective")
    assert bigm.bound <= persp.bound + TOL * max(abs(persp.bound), 1.0)


def test_bigm_relaxation_sets_z_to_the_scaled_inf_norm() -> None:
    """At the big-M relaxed optimum only the big-M rows hold z up: z_g = max |W_g| / M."""
    problem = random_instance(n=80, d=12, m=2, n_groups=6, seed=3)
    rel = relaxation(problem, "bigm")
    expected = [np.abs(rel.W[rows]).max() / problem.M for rows in problem.group_rows]
    assert rel.z == pytest.approx(expected, abs=1e-6)


def test_relaxation_is_frozen_and_validates_kind() -> None:
    problem = random_instance(n=30, d=4, m=1, n_groups=2, seed=0)
    rel = relaxation(problem, "perspective")
    assert isinstance(rel, Relaxation) and rel.kind == "perspective"
    with pytest.raises(dataclasses.FrozenInstanceError):
        rel.bound = 0.0  # type: ignore[misc]
    with pytest.raises(InvalidInputError, match="kind"):
        relaxation(problem, "lp")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="optimum"):
        root_gap(problem, "bigm", 0.0)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    d=st.integers(1, 7),
    rho=st.sampled_from([0.0, 0.8, 0.95]),
    snr=st.sampled_from([0.5, 4.0]),
    alpha=st.sampled_from([0.05, 0.5]),
    k=st.one_of(st.none(), st.integers(0, 3)),
    reach=st.integers(0, 6),
    seed=st.integers(0, 10_000),
)
@example(d=8, rho=0.8, snr=0.5, alpha=0.05, k=None, reach=7, seed=1)  # the hard regime in small
# Found by Hypothesis: the SDP equals the optimum and CLARABEL ends "almost solved" at 1e-8.
@example(d=5, rho=0.8, snr=0.5, alpha=0.05, k=None, reach=1, seed=1)
# Found by Hypothesis (sixth stop): the SDP is tight (it equals the optimum) and CLARABEL's
# primal value ends 6.5e-7 above it, within its accuracy on such degenerate SDPs.
@example(d=5, rho=0.95, snr=4.0, alpha=0.05, k=None, reach=2, seed=1)
def test_pairwise_sdp_bounds_the_optimum(d, rho, snr, alpha, k, reach, seed) -> None:
    """The lifted SDP with pair constraints lies between the perspective relaxation (which it
    contains) and the brute-force optimum, for any reach."""
    problem = random_instance(40, d, 1, d, seed, rho=rho, snr=snr, alpha=alpha, k=k)
    reach = min(reach, d - 1)
    optimum = solve_brute(problem).objective
    bound = pairwise_sdp_bound(problem, reach)
    scale = max(abs(optimum), 1e-9)
    assert bound <= optimum + SDP_TOL * scale
    assert bound >= relaxation(problem, "perspective").bound - 1e-6 * scale


def test_pairwise_sdp_tightens_with_the_pairs() -> None:
    """On correlated features the pairs close part of the Shor relaxation's gap (AR(1) 0.8,
    weak signal: the hard regime in small)."""
    problem = random_instance(40, 8, 1, 8, 1, rho=0.8, snr=0.5, alpha=0.05)
    optimum = solve_brute(problem).objective
    shor, pairs = pairwise_sdp_bound(problem, 0), pairwise_sdp_bound(problem, 7)
    assert shor < pairs <= optimum * (1 + TOL)


@pytest.mark.parametrize(
    ("params", "reach", "name"),
    [
        (dict(n=30, d=6, m=2, n_groups=6, seed=0), 1, "problem"),
        (dict(n=30, d=6, m=1, n_groups=3, seed=0), 1, "problem"),
        (dict(n=30, d=6, m=1, n_groups=6, seed=0), 6, "reach"),
        (dict(n=30, d=6, m=1, n_groups=6, seed=0), -1, "reach"),
        (dict(n=30, d=6, m=1, n_groups=6, seed=0), 1.5, "reach"),
        (dict(n=30, d=6, m=1, n_groups=6, seed=0), True, "reach"),
    ],
)
def test_pairwise_sdp_refuses(params, reach, name) -> None:
    with pytest.raises(InvalidInputError, match=name):
        pairwise_sdp_bound(random_instance(**params), reach)
