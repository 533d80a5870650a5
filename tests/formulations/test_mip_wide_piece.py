"""``benchmarks/mip_pruning.py --piece wide``: each case's instances solved to the brute-force
optimum, and ``--no-rivals`` (``rivals=False``) runs bnb alone, also on the case that runs the
open solvers."""

from __future__ import annotations

import pytest
from mip_bench import mip_pruning

from proxcompress.formulations import solve
from proxcompress.formulations.instances import sparse_regression_instance

BENCH = mip_pruning("mip_pruning_wide")


#: (label, p, rho, snr, rivals): the real cases at a size brute force enumerates
CASES = (("independent", 12, 0.0, 10.0, True), ("equicorrelated", 12, 0.5, 2.0, False))


def _small(n: int, p: int, seed: int, **kw):
    return sparse_regression_instance(60, p, seed, planted=3, k=4, **kw)


@pytest.mark.parametrize("rivals", [False, True])
def test_wide_piece_solves_to_the_brute_force_optimum(monkeypatch, rivals: bool) -> None:
    monkeypatch.setattr(BENCH, "WIDE_CASES", CASES)
    monkeypatch.setattr(BENCH, "sparse_regression_instance", _small)
    runs = BENCH.piece_wide(1, 30.0, rivals)
    for label, p, rho, snr, case_rivals in CASES:
        mine = [r for r in runs if r["case"] == label]
        assert sorted(r["name"] for r in mine) == (
            ["bigm", "bnb", "cuts", "perspective-scip"] if rivals and case_rivals else ["bnb"])
        best = solve(_small(1000, p, 0, rho=rho, snr=snr), "brute").objective
        for r in mine:
            assert r["status"] == "optimal" and r["agree"]
            assert r["objective"] == pytest.approx(best, rel=1e-6)
