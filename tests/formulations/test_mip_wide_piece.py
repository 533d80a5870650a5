"""``benchmarks/mip_pruning.py --piece wide``: each case's instances solved to the brute-force
optimum, and ``--no-rivals`` (``rivals=False``) runs bnb alone, also on the case that runs the
open solvers."""

from __future__ import annotations

import pytest
from mip_bench import mip_pruning

from proxcompress.formulations import solve
from proxcompress.formulations.instances import sparse_regression_instance

BENCH = mip_pruning("mip_pruning_wide")


@pytest.mark.parametrize("rivals", [False, True])
def test_wide_piece_solves_to_the_brute_force_optimum(monkeypatch, rivals: bool) -> None:
    # (label, p, rho, snr, rivals): the real cases at a size brute force enumerates
    monkeypatch.setattr(BENCH, "WIDE_CASES", (("independent", 12, 0.0, 10.0, True),
                                              ("equicorrelated", 12, 0.5, 2.0, False)))
    monkeypatch.setattr(BENCH, "sparse_regression_instance",
                        lambda n, p, seed, **kw: sparse_regression_instance(
                            60, p, seed, planted=3, k=4, **kw))
    runs = BENCH.piece_wide(1, 30.0, rivals)
    names = {case: sorted(r["name"] for r in runs if r["case"] == case)
             for case in ("independent", "equicorrelated")}
    assert names["equicorrelated"] == ["bnb"]
    assert names["independent"] == (["bigm", "bnb", "cuts", "perspective-scip"] if rivals
                                     else ["bnb"])
    for r in runs:
        rho = 0.0 if r["case"] == "independent" else 0.5
        snr = 10.0 if rho == 0.0 else 2.0
        problem = sparse_regression_instance(60, 12, 0, planted=3, k=4, rho=rho, snr=snr)
        best = solve(problem, "brute").objective
        assert r["status"] == "optimal" and r["agree"]
        assert r["objective"] == pytest.approx(best, rel=1e-6)
