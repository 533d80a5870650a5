"""``benchmarks/mip_pruning.py --piece sdp`` (issue 14, twelfth stop): every arm of the root
SDP's profile runs, the CVXPY twin and the direct SCS assembly reach the same value, and both
the ``sdp`` table and the overlap piece's backend A/B table render."""

from __future__ import annotations

import pytest
from mip_bench import mip_pruning

BENCH = mip_pruning("mip_pruning_sdp")


def test_sdp_piece_arms_agree_and_render() -> None:
    rows = BENCH.piece_sdp(1, 2, groups=8)
    row = rows[0]
    assert set(BENCH.SDP_ARMS) <= set(row)
    assert row["direct"]["value"] == pytest.approx(row["cvxpy"]["value"], rel=1e-3)
    for arm in ("cvxpy", "cvxpy-scipy", "cvxpy-nodpp"):
        assert row[arm]["compile_cpu"] >= 0 and row[arm]["rows"] > 0
    assert row["direct"]["iterations"] > 0 and row["direct"]["rows"] > 0
    table = BENCH.render({"piece": "sdp", "machine": {}, "rows": rows})
    assert all(f"| 0 | {arm} |" in table for arm in BENCH.SDP_ARMS)


def test_overlap_backend_ab_table_renders() -> None:
    arm = {"status": "time_limit", "gap": 0.01, "nodes": 5, "cpu_seconds": 30.0, "load": 3.0,
           "sdp_seconds": 5.0, "sdp_cpu_seconds": 4.0}
    rows = [{"seed": 0, "bnb+overlap:cvxpy": arm,
             "bnb+overlap:direct": {**arm, "status": "optimal", "gap": 0.0}}]
    table = BENCH.render({"piece": "overlap", "machine": {}, "rows": rows})
    assert "cvxpy: status" in table and "direct: status" in table
    assert "| 0 | time_limit, 1.00%, 5, 30.0, 5.0 (4.0) | optimal, 0.00%, 5" in table
