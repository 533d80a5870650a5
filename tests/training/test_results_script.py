"""``benchmarks/results.py``: the committed configs are its rows, and the page it renders
reports exactly the run folders (fake ones here), and its worker processes train exactly
what `proxcompress train` does."""

from __future__ import annotations

import importlib
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from scipy import stats

from proxcompress.training.config import config_from_dict, dump_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results() -> ModuleType:
    """The script as module ``results`` (importable by name, as the spawned workers need)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module("results")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def _row(results: ModuleType, name: str) -> dict[str, Any]:
    return next(r for r in results.rows() if r["name"] == name)


def _fake_run(results: ModuleType, runs: Path, row: dict[str, Any], seed: int,
              accuracy: float, wall: float | None = 30.0) -> Path:
    """A finished run folder as ``proxcompress train`` leaves it (the files the page reads)."""
    folder = results._run_dir(runs, row, seed)
    folder.mkdir(parents=True)
    cfg = config_from_dict({**row["config"], "seed": seed})
    (folder / "config.yaml").write_text(dump_config(cfg))
    c = row["config"]
    epochs = c["epochs"] + (c["spr"]["pretrain_epochs"] + c["spr"]["finetune_epochs"]
                            if c.get("spr", {}).get("enabled") else 0)
    (folder / "summary.json").write_text(json.dumps(
        {"test_accuracy": accuracy, "epochs": epochs, "model_bytes": 1234, "seconds": 20.0}))
    if wall is not None:
        (folder / results.WALL).write_text(json.dumps({"seconds": wall, "jobs": 2,
                                                       "load1": 2.0}))
    return folder


def test_committed_configs_are_exactly_the_rows(results: ModuleType) -> None:
    """Each ``configs/results/NAME.yaml`` is its row's resolved config, and there is no other."""
    rows = results.rows()
    committed = {p.stem for p in results.CONFIGS.glob("*.yaml")}
    assert committed == {r["name"] for r in rows}
    for row in rows:
        text = (results.CONFIGS / f"{row['name']}.yaml").read_text()
        body = "".join(line for line in text.splitlines(keepends=True)
                       if not line.startswith("#"))
        assert body == dump_config(config_from_dict(row["config"])), row["name"]


def test_page_reports_the_run_folders(results: ModuleType, tmp_path: Path) -> None:
    fp = _row(results, "mlp-fp")
    for seed, acc in zip((0, 1, 2), (89.0, 89.5, 90.0), strict=True):
        _fake_run(results, tmp_path, fp, seed, acc)
    _fake_run(results, tmp_path, _row(results, "mlp-bc"), 0, 88.0, wall=None)
    walls = {"binary,spr": {"wall_seconds": 3661.0, "jobs": 2, "load1_before": 0.1,
                            "when": "2026-01-02"}}
    page = results.render(results.rows(), None, tmp_path, {"walls": walls},
                          tmp_path / "page.md")
    lines = page.splitlines()
    assert any(line.endswith("61.0 minutes (`--tables binary,spr --jobs 2`, 2026-01-02): "
                             "**missed**") for line in lines)
    assert any(line.startswith("Wall time of the last `benchmarks/results.py --tables "
                               "binary,spr` run") and "61.0 minutes" in line for line in lines)
    assert any(line.startswith("| full precision | - | 89.50 +- 0.50 | 1234 | 20 | `mlp-fp` |")
               for line in lines)
    assert any("| 88.00 (1 seed) |" in line and "`mlp-bc`" in line for line in lines)
    assert any("| not run |" in line and "`cnn-fp`" in line for line in lines)
    # compute: 3 runs timed by wall.json (30 s each), one by its training seconds (20 s)
    compute = next(line for line in lines if line.startswith("| binary MLP / CNN |"))
    assert compute == "| binary MLP / CNN | 4 | 1.8 | 1 runs | 0.9 | 2.0 |"
    assert not (tmp_path / "freezing.png").exists()  # no freezing logs: no plot


def test_a_folder_of_another_config_stops_the_script(results: ModuleType,
                                                     tmp_path: Path) -> None:
    folder = _fake_run(results, tmp_path, _row(results, "mlp-bc"), 0, 88.0)
    assert results._done(folder, _row(results, "mlp-bc"))
    with pytest.raises(SystemExit, match="another config"):
        results._done(folder, _row(results, "mlp-fp"))


def test_paired_interval_equals_scipy(results: ModuleType, tmp_path: Path) -> None:
    """The BNN++ - BNN+ line: mean of the per-seed differences and the half-width of SciPy's
    one-sample t confidence interval."""
    a, b = _row(results, "cnn-bnnpp"), _row(results, "cnn-bnnp")
    acc_a = [89.1, 89.6, 89.0, 89.9, 89.3, 89.5, 88.8, 89.7]
    acc_b = [89.0, 89.2, 89.4, 89.5, 89.1, 89.6, 88.7, 89.2]
    for seed, (x, y) in enumerate(zip(acc_a, acc_b, strict=True)):
        _fake_run(results, tmp_path, a, seed, x)
        _fake_run(results, tmp_path, b, seed, y)
    text = results._paired(tmp_path, results.rows(), "cnn-bnnpp", "cnn-bnnp", None)
    diffs = [x - y for x, y in zip(acc_a, acc_b, strict=True)]
    low, high = stats.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    match = re.fullmatch(r", paired over 8 seeds ([+-][0-9.]+) \+- ([0-9.]+) \(95% t interval\)",
                         text)
    assert match is not None, text
    assert float(match[1]) == pytest.approx(statistics.fmean(diffs), abs=0.005)
    assert float(match[2]) == pytest.approx((high - low) / 2, abs=0.005)


def test_unknown_table_is_refused(results: ModuleType, capsys: pytest.CaptureFixture[str]
                                  ) -> None:
    with pytest.raises(SystemExit) as exc:
        results.main(["--tables", "binary,nope", "--render-only"])
    assert exc.value.code == 2
    assert "unknown nope" in capsys.readouterr().err


def test_workers_train_exactly_what_the_command_line_trains(
        results: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``run_all``'s long-lived workers (two runs each, in parallel) leave the same runs as
    ``proxcompress train`` in a fresh process; a second call finds nothing to do."""
    monkeypatch.setattr(results, "CONFIGS", tmp_path / "configs")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the workers import the script
    (tmp_path / "configs").mkdir()
    row = {"table": "binary", "model": "mlp", "name": "tiny", "label": "tiny",
           "config": {"epochs": 1, "threads": 1, "progress": False,
                      "data": {"name": "synthetic", "synthetic_samples": 96},
                      "model": {"name": "mlp", "hidden": [24]},
                      "quant": {"weights": "bnn++", "keep_first": False, "beta": 2.0},
                      "optim": {"name": "adam", "lr": 0.01, "batch_size": 32}}}
    results.write_configs([row])
    lines: list[str] = []
    runs = tmp_path / "runs"
    for key in results.WORKER_ENV:
        monkeypatch.delenv(key, raising=False)
    results.run_all([row], [0, 1, 2, 3], runs, 2, lines.append, None)
    assert not set(results.WORKER_ENV) & set(os.environ)  # only the workers run single-threaded
    assert sum(line.startswith("done") and line.endswith(" s") and "ok in" in line
               for line in lines) == 4
    cli = tmp_path / "cli"
    subprocess.run([sys.executable, "-m", "proxcompress", "train", "--config",
                    str(tmp_path / "configs" / "tiny.yaml"), "--set", "seed=3", "--out",
                    str(cli)], check=True, capture_output=True)
    mine = json.loads((runs / "tiny" / "seed-3" / "summary.json").read_text())
    theirs = json.loads((cli / "summary.json").read_text())
    assert mine["test_accuracy"] == theirs["test_accuracy"]
    metrics = [(runs / "tiny" / "seed-3" / "metrics.jsonl").read_text(),
               (cli / "metrics.jsonl").read_text()]
    losses = [[json.loads(line)["loss"] for line in m.splitlines()] for m in metrics]
    assert losses[0] == losses[1]
    assert json.loads((runs / "tiny" / "seed-3" / results.WALL).read_text())["seconds"] > 0
    lines.clear()
    results.run_all([row], [0, 1, 2, 3], runs, 2, lines.append, None)
    assert lines == []
