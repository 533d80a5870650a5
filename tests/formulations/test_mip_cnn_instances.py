"""The frozen CNN layer instances of ``benchmarks/mip_pruning.py`` (``--piece cnn`` /
``cnn-root``'s default ``--runs``): each committed run loads, and the layer problem it gives
has the shape of its row (no solving)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mip_bench import mip_pruning

from proxcompress.training.data import DEFAULT_ROOT

ROOT = Path(__file__).resolve().parents[2]


def _benchmark():
    return mip_pruning("mip_pruning_frozen")


def test_frozen_instances_are_committed_with_what_load_run_reads() -> None:
    """Three seed folders, each only the resolved config and the final checkpoint (its JSON
    and the tensor file it names)."""
    import json

    folder = ROOT / "benchmarks" / "results" / "mip_cnn_instances"
    for seed in range(3):
        run = folder / f"seed-{seed}"
        record = json.loads((run / "checkpoint.json").read_text(encoding="utf-8"))
        assert sorted(p.name for p in run.iterdir()) == sorted(
            ["config.yaml", "checkpoint.json", record["tensors"]])
        assert f"seed: {seed}\n" in (run / "config.yaml").read_text(encoding="utf-8")


@pytest.mark.skipif(not DEFAULT_ROOT.exists(), reason="needs the Fashion-MNIST files")
def test_frozen_instance_gives_the_rows_problem() -> None:
    """Seed 0's 8-of-16 row: the consumer's 4096 recorded samples, 16 input channels of 3 x 3
    (144 features) into 32 outputs, budget 8; the magnitude warm start is the checkpoint's
    (golden: the largest 8 channel norms of conv0_0)."""
    bench = _benchmark()
    assert bench.CNN_INSTANCES == ROOT / "benchmarks" / "results" / "mip_cnn_instances"
    problem, starts, shape = bench._cnn_problem(bench.CNN_INSTANCES / "seed-0", "conv0_0", 8)
    assert shape == {"n": 4096, "d": 144, "m": 32, "groups": 16, "k": 8}
    assert (problem.n_groups, problem.budget, problem.X.shape) == (16, 8, (4096, 144))
    assert len(starts) == 2 and all(len(s) == 8 and s == sorted(s) for s in starts)
    assert starts[1] == [3, 4, 6, 9, 11, 12, 13, 14]
