"""``benchmarks/tensor_train.py``: what its JSON reports is what the layers compute (small
shapes, one round; the timings themselves are not asserted)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("opt_einsum", reason="opt_einsum is not installed (pip install -e .)")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module("tensor_train")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_layer_report(bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "r.json"
    assert bench.main(["--in", "64", "--out", "128", "--repeats", "1", "--warmup", "0",
                       "--no-tltorch", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == data
    assert data["per_batch"]["64"]["dense_flops"] == 2 * 64 * 64 * 128
    dense = data["rows"]["dense"]["parameters"]
    assert dense == 64 * 128 + 128
    for label, row in data["rows"].items():
        if label == "dense":
            continue
        assert row["fraction"] == pytest.approx(row["parameters"] / dense, abs=1e-5)
        for b in (1, 64):
            assert row[f"flops_ratio_b{b}"] == pytest.approx(
                row[f"flops_b{b}"] / (2 * b * 64 * 128), abs=1e-4)
            assert row[f"contract_ms_b{b}"] > 0 and row[f"dense_ms_b{b}"] > 0
    assert set(data["target"]["cases_meeting_it"]) <= set(data["rows"])
    assert data["device"]["torch_threads"] >= 1


def test_lstm_report(bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "l.json"
    assert bench.main(["--lstm", "16,32", "--compression", "4", "--repeats", "1", "--warmup",
                       "0", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    dense = rows["dense"]["parameters"]
    assert dense == 4 * 32 * (16 + 32 + 2)
    assert rows["dense"]["flops_b64"] == 2 * 64 * 4 * 32 * (16 + 32)
    for label in ("mps", "mps-blocked", "mpo", "lowrank"):
        assert rows[label]["parameters"] <= dense / 4
        assert rows[label]["contract_ms_b1"] > 0 and rows[label]["rebuild_ms"] > 0


@pytest.mark.parametrize("argv", [["--batches", "0"], ["--batches", "x"], ["--lstm", "3"],
                                  ["--lstm", "4,4", "--compression", "1"],
                                  ["--json", "/no/such/folder/x.json"]])
def test_bad_flags_exit_2(bench: ModuleType, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    assert info.value.code == 2
