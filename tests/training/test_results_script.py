"""The results tables (:mod:`proxcompress.reproduce.tables`, run as ``benchmarks/results.py``):
the committed configs are its rows' chosen configs, every choice is made on validation accuracy
(never on test), the page reports exactly the run folders (fake ones here) with each row's own
verdict, and its worker processes (spawned, importing the package module) train exactly what
``proxcompress train`` does; without a checkout the command refuses."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from proxcompress.reproduce.tables import core, main, render, tt
from proxcompress.training.config import config_from_dict, dump_config

ROOT = Path(__file__).resolve().parents[2]


def _row(name: str) -> dict[str, Any]:
    return next(r for r in core.rows() if r["name"] == name)


def _fake_run(runs: Path, row: dict[str, Any], assignment: dict[str, Any],
              seed: int, test: float, val: float | None = None, wall: float | None = 30.0,
              cpu: float | None = None, **summary: Any) -> Path:
    """A finished run folder as ``proxcompress train`` leaves it (the files the page reads)."""
    folder = core._run_dir(runs, row, assignment, seed)
    folder.mkdir(parents=True)
    config = core._assign(row["config"], assignment)
    cfg = config_from_dict({**config, "seed": seed})
    (folder / "config.yaml").write_text(dump_config(cfg))
    (folder / "summary.json").write_text(json.dumps(
        {"test_accuracy": test, "val_accuracy": test if val is None else val,
         "epochs": core._expected_epochs(config), "model_bytes": 1234, "seconds": 20.0,
         **summary}))
    if wall is not None:
        record = {"seconds": wall, "jobs": 2, "load1": 2.0}
        if cpu is not None:  # runs before 2026-12-06 have no CPU time
            record["cpu_seconds"] = cpu
        (folder / core.WALL).write_text(json.dumps(record))
    return folder


def test_committed_configs_are_exactly_the_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ``configs/results/NAME.yaml`` is its row's config with the choice recorded in
    ``sweeps.json`` (the base values while undecided), and there is no other. The choices come
    from the record alone: a regeneration in progress in the local runs folder must not change
    what this test compares."""
    monkeypatch.setattr(core, "_summary", lambda folder, config: None)
    rows = core.rows()
    committed = {p.stem for p in core.CONFIGS.glob("*.yaml")}
    assert committed == {r["name"] for r in rows}
    record = core.read_record()
    assert set(record) == {r["name"] for r in rows}
    # the default runs folder: a distilled row's committed config names its teacher there
    choices = core.Choices(rows, ROOT / "runs" / "results", record)
    for row in rows:
        text = (core.CONFIGS / f"{row['name']}.yaml").read_text()
        body = "".join(line for line in text.splitlines(keepends=True)
                       if not line.startswith("#"))
        assert body == dump_config(config_from_dict(choices.config(row))), row["name"]
        assert record[row["name"]]["grid"] == row["sweep"]
        for source in row["inherit"].values():
            assert source in record


def test_every_row_holds_out_validation() -> None:
    for row in core.rows():
        assert config_from_dict(row["config"]).data.val_fraction == 0.1, row["name"]


def test_choices_are_made_on_validation_never_on_test(tmp_path: Path
                                                      ) -> None:
    """The candidate with the best validation accuracy wins although its test accuracy is the
    worst; rows inheriting the choice wait for it, then run the chosen value at every seed."""
    rows = core.rows()
    bc = _row("mlp-bc")
    bnnp = _row("mlp-bnnp")
    choices = core.Choices(rows, tmp_path)
    pending = core.pending([bc, bnnp], None, choices)
    assert [(r["name"], a, s) for r, a, s in pending] == [
        ("mlp-bc", {"optim.lr": lr}, 0) for lr in core.LR_GRID]  # bnnp waits for bc
    for lr, val, test in zip(core.LR_GRID, (88.0, 89.5, 88.5), (90.0, 80.0, 85.0),
                             strict=True):
        _fake_run(tmp_path, bc, {"optim.lr": lr}, 0, test, val)
    choices = core.Choices(rows, tmp_path)
    assert choices.chosen(bc) == {"optim.lr": 1e-3}
    pending = core.pending([bc, bnnp], None, choices)
    assert [(r["name"], a, s) for r, a, s in pending] == [
        ("mlp-bc", {"optim.lr": 1e-3}, 1), ("mlp-bc", {"optim.lr": 1e-3}, 2),
        ("mlp-bnnp", {"optim.lr": 1e-3, "quant.beta": 2.0}, 0),
        ("mlp-bnnp", {"optim.lr": 1e-3, "quant.beta": 5.0}, 0)]
    # a partly finished sweep chooses nothing
    _fake_run(tmp_path, bnnp, {"optim.lr": 1e-3, "quant.beta": 5.0}, 0, 50.0, 88.0)
    assert core.Choices(rows, tmp_path).chosen(bnnp) is None


def test_page_reports_the_run_folders(tmp_path: Path) -> None:
    rows = core.rows()
    fp = _row("mlp-fp")
    for lr, val in zip(core.LR_GRID, (88.0, 89.0, 88.9), strict=True):
        _fake_run(tmp_path, fp, {"optim.lr": lr}, 0, 89.0 if lr == 1e-3 else 70.0, val)
    for seed, acc in ((1, 89.5), (2, 90.0)):
        _fake_run(tmp_path, fp, {"optim.lr": 1e-3}, seed, acc, 88.0 + seed,
                  wall=None if seed == 2 else 30.0, cpu=24.0 if seed == 1 else None)
    walls = {"binary,spr": {"wall_seconds": 3661.0, "jobs": 2, "load1_before": 0.1,
                            "when": "2026-01-02"}}
    choices = core.Choices(rows, tmp_path)
    page = render.render(rows, None, choices, {"walls": walls}, tmp_path / "page.md")
    lines = page.splitlines()
    # the joint run is stated without a verdict (the target is the quick tables' own)
    assert any(line.endswith("61.0 minutes (`--tables binary,spr --jobs 2`, 2026-01-02)")
               for line in lines)
    assert not any("regenerate from scratch in under an hour" in line for line in lines)
    # two separate from-scratch runs: each has its own verdict, and they add up
    split = {"binary": {"wall_seconds": 2400.0, "jobs": 2, "load1_before": 0.1,
                        "when": "2026-01-03"},
             "spr": {"wall_seconds": 3660.0, "jobs": 2, "load1_before": 0.2,
                     "when": "2026-01-03"}}
    page = render.render(rows, None, choices, {"walls": split}, tmp_path / "page2.md")
    targets = [line for line in page.splitlines() if "from scratch in under an hour" in line]
    assert targets[0].startswith("* the quick tables (the 3-epoch MLP and CNN binary tables")
    assert targets[0].endswith("40.0 minutes (`--tables binary --jobs 2`, 2026-01-03): **met**")
    assert targets[1].startswith("* the SPR table")
    assert targets[1].endswith("61.0 minutes (`--tables spr --jobs 2`, 2026-01-03): **missed**")
    assert any(line.endswith("101.0 minutes (`--tables binary` then `--tables spr --jobs 2`, "
                             "2026-01-03)") for line in page.splitlines())
    split["spr"]["wall_seconds"] = 1080.0
    split["spr"]["from_scratch"] = False
    page = render.render(rows, None, choices, {"walls": split}, tmp_path / "page3.md")
    assert any("not measured from scratch" in line and "58.0 minutes" in line
               for line in page.splitlines())
    assert ("| full precision | - | lr = 0.001 (of 0.0003, 0.001, 0.003) | 89.33 +- 0.58 | "
            "89.50 +- 0.50 | - | 1234 | 20 | `mlp-fp` |") in lines
    assert "* `mlp-fp`: lr=0.0003: 88.00; **lr=0.001: 89.00**; lr=0.003: 88.90" in lines
    assert any("| not run |" in line and "`cnn-fp`" in line for line in lines)
    # compute: 5 runs (2 of them sweep candidates), 4 timed by wall.json, 1 by its seconds,
    # 1 with its CPU time (24 s)
    compute = next(line for line in lines if line.startswith("| binary MLP / CNN |"))
    assert compute == "| binary MLP / CNN | 5 (2) | 2.3 | 1.2 | 2.0 | 0.4 (1 of 5) |"
    assert next(line for line in lines if line.startswith("| all |")).endswith("| 0.4 |")
    assert not (tmp_path / "freezing.png").exists()  # no freezing logs: no plot


def test_verdict_is_the_rows_own_pair(tmp_path: Path) -> None:
    """The verdict column certifies the config the row trained with: bnn++-prox at beta = 5 fails
    ``descent``, at beta = 2 passes; with binary activations BNN's pair fails ``derivative``."""
    rows = core.rows()
    bc, row = _row("mlp-bc"), _row("mlp-bnnpp-prox")
    bc_act = _row("mlp-bc-act")
    for lr in core.LR_GRID:
        _fake_run(tmp_path, bc, {"optim.lr": lr}, 0, 80.0, 90.0 if lr == 1e-3 else 80.0)
        _fake_run(tmp_path, bc_act, {"optim.lr": lr}, 0, 80.0,
                  90.0 if lr == 1e-3 else 80.0)
    for beta in (2.0, 5.0):
        for mu0 in (0.0, 1000.0):
            good = beta == 5.0 and mu0 == 1000.0  # the winner, to see its verdict
            _fake_run(tmp_path, row, {"optim.lr": 1e-3, "quant.beta": beta,
                                               "mu.start": mu0}, 0, 80.0, 90.0 if good else 85.0,
                      mu=mu0 + 70.0)
    choices = core.Choices(rows, tmp_path)
    assert core.verdict(choices, row) == "FAIL (weights: descent)"
    assert core.verdict(choices, bc) == "PASS"
    assert core.verdict(choices, bc_act) == "FAIL (activations: derivative)"
    assert core.verdict(choices, _row("mlp-fp")) == "-"


def test_a_folder_of_another_config_stops_the_script(tmp_path: Path) -> None:
    bc, fp = _row("mlp-bc"), _row("mlp-fp")
    folder = _fake_run(tmp_path, bc, {"optim.lr": 1e-3}, 0, 88.0)
    assert core._summary(folder, core._assign(bc["config"], {"optim.lr": 1e-3}))
    with pytest.raises(SystemExit, match="another config"):
        core._summary(folder, core._assign(fp["config"], {"optim.lr": 1e-3}))


def test_paired_interval_equals_scipy(tmp_path: Path) -> None:
    """Mean of the per-seed differences and the half-width of SciPy's one-sample t confidence
    interval."""
    rows = [{**_row("cnn-fp"), "name": name, "sweep": {}, "inherit": {},
             "seeds": list(range(8))} for name in ("a", "b")]
    acc_a = [89.1, 89.6, 89.0, 89.9, 89.3, 89.5, 88.8, 89.7]
    acc_b = [89.0, 89.2, 89.4, 89.5, 89.1, 89.6, 88.7, 89.2]
    for seed, (x, y) in enumerate(zip(acc_a, acc_b, strict=True)):
        _fake_run(tmp_path, rows[0], {}, seed, x)
        _fake_run(tmp_path, rows[1], {}, seed, y)
    text = core._paired(core.Choices(rows, tmp_path), "a", "b", None)
    diffs = [x - y for x, y in zip(acc_a, acc_b, strict=True)]
    low, high = stats.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    match = re.fullmatch(r", paired over 8 seeds ([+-][0-9.]+) \+- ([0-9.]+) \(95% t interval\)",
                         text)
    assert match is not None, text
    assert float(match[1]) == pytest.approx(statistics.fmean(diffs), abs=0.005)
    assert float(match[2]) == pytest.approx((high - low) / 2, abs=0.005)


def test_unknown_table_is_refused(capsys: pytest.CaptureFixture[str]
                                  ) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--tables", "binary,nope", "--render-only"])
    assert exc.value.code == 2
    assert "unknown nope" in capsys.readouterr().err


def test_workers_train_exactly_what_the_command_line_trains(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``run_all``'s long-lived workers (a two-candidate sweep, then the winner's other seeds,
    in parallel) leave the same runs as ``proxcompress train`` in a fresh process; a second
    call finds nothing to do."""
    row = {"table": "binary", "model": "mlp", "name": "tiny", "label": "tiny",
           "sweep": {"optim.lr": [0.003, 0.01]}, "inherit": {},
           "config": {"epochs": 1, "threads": 1, "progress": False,
                      "data": {"name": "synthetic", "synthetic_samples": 96},
                      "model": {"name": "mlp", "hidden": [24]},
                      "quant": {"weights": "bnn++", "keep_first": False, "beta": 2.0},
                      "optim": {"name": "adam", "lr": 0.01, "batch_size": 32}}}
    lines: list[str] = []
    runs = tmp_path / "runs"
    for key in core.WORKER_ENV:
        monkeypatch.delenv(key, raising=False)
    core.run_all([row], [0, 1, 3], runs, 2, lines.append, False)
    assert not set(core.WORKER_ENV) & set(os.environ)  # only the workers run single-threaded
    assert sum(line.startswith("done") and "ok in" in line for line in lines) == 4
    chosen = core.Choices([row], runs).chosen(row)
    assert chosen is not None
    folder = core._run_dir(runs, row, chosen, 3)
    cli = tmp_path / "cli"
    subprocess.run([sys.executable, "-m", "proxcompress", "train", "--config",
                    str(folder.parent / "candidate.yaml"), "--set", "seed=3", "--out",
                    str(cli)], check=True, capture_output=True)
    mine = json.loads((folder / "summary.json").read_text())
    theirs = json.loads((cli / "summary.json").read_text())
    assert mine["test_accuracy"] == theirs["test_accuracy"]
    metrics = [(folder / "metrics.jsonl").read_text(), (cli / "metrics.jsonl").read_text()]
    losses = [[json.loads(line)["loss"] for line in m.splitlines()] for m in metrics]
    assert losses[0] == losses[1]
    timing = json.loads((folder / core.WALL).read_text())
    # the worker's CPU time of the run: positive, and not above what two cores allow
    assert timing["seconds"] > 0 and 0 < timing["cpu_seconds"] <= 2 * timing["seconds"] + 0.1
    lines.clear()
    core.run_all([row], [0, 1, 3], runs, 2, lines.append, False)
    assert lines == []


def test_a_worker_killed_from_outside_stops_the_script_instead_of_hanging(tmp_path: Path
                                                                        ) -> None:
    """A worker SIGKILLed mid-run (the out-of-memory killer did it once, and the script then
    waited for its result forever): the script stops with a message naming the run."""
    import multiprocessing
    import signal
    import threading
    import time

    row = {"table": "binary", "model": "mlp", "name": "doomed", "label": "doomed",
           "sweep": {}, "inherit": {},
           "config": {"epochs": 400, "threads": 1, "progress": False,
                      "data": {"name": "synthetic", "synthetic_samples": 512},
                      "model": {"name": "mlp", "hidden": [64]},
                      "optim": {"name": "adam", "lr": 0.01, "batch_size": 32}}}
    lines: list[str] = []
    killed: list[int] = []

    def killer() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            children = multiprocessing.active_children()
            if any(line.startswith("start") for line in lines) and children:
                time.sleep(3.0)  # inside the run, past the imports
                os.kill(children[0].pid, signal.SIGKILL)
                killed.append(children[0].pid)
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    with pytest.raises(SystemExit, match="ended abruptly while running doomed"):
        core.run_all([row], [0], tmp_path / "runs", 1, lines.append, False)
    thread.join(5)
    assert killed and not any(line.startswith("done") for line in lines)


def test_long_budget_takes_the_smallest_converged_epochs(tmp_path: Path
                                                         ) -> None:
    """The long table's epochs: the cheapest candidate within ``LONG_PLATEAU`` validation
    points of the best; its binary rows inherit them (and the quick table's learning rate)."""
    rows = core.rows()
    fp, long_fp = _row("mlp-fp"), _row("long-mlp-fp")
    for lr in core.LR_GRID:
        _fake_run(tmp_path, fp, {"optim.lr": lr}, 0, 80.0, 90.0 if lr == 3e-3 else 85.0)
    vals = dict(zip(core.LONG_EPOCHS, (88.0, 89.85, 90.0, 89.9), strict=True))
    for epochs, val in vals.items():
        _fake_run(tmp_path, long_fp, {"optim.lr": 3e-3, "epochs": epochs}, 0, 50.0, val)
    choices = core.Choices(rows, tmp_path)
    assert choices.chosen(long_fp) == {"optim.lr": 3e-3, "epochs": 15}
    bc = _row("long-mlp-bc")
    assert choices.candidates(bc) is None  # waits for the quick BC's learning rate
    for lr in core.LR_GRID:
        _fake_run(tmp_path, _row("mlp-bc"), {"optim.lr": lr}, 0, 80.0,
                  90.0 if lr == 1e-3 else 85.0)
    choices = core.Choices(rows, tmp_path)
    assert choices.candidates(bc) == [{"epochs": 15, "optim.lr": 1e-3}]
    assert core.Choices(rows, tmp_path).config(bc)["epochs"] == 15


def test_tensor_train_table_chooses_on_validation_perplexity(tmp_path: Path) -> None:
    """Perplexity rows choose the *lowest* validation perplexity; the page reports the LM table,
    the MPS-vs-MPO comparison (paired over seeds) and the 10x target from the run folders."""
    rows = core.rows()
    dense = _row("tt-lm-dense")
    mps, mpo = _row("tt-lm-mps-c10"), _row("tt-lm-mpo-c10")

    def lm_run(row: dict[str, Any], assignment: dict[str, Any], seed: int, test: float,
               val: float, params: int) -> None:
        _fake_run(tmp_path, row, assignment, seed, 0.0, 0.0, test_perplexity=test,
                  val_perplexity=val, lstm_parameters=params, lstm_compression=526336 / params,
                  tt_ranks=[{"ih": 18, "hh": 18}])

    for lr, val in zip(tt.LM_LR_GRID, (120.0, 110.0), strict=True):
        lm_run(dense, {"optim.lr": lr}, 0, 100.0 if lr == 1e-3 else 150.0, val, 526336)
    choices = core.Choices(rows, tmp_path)
    assert choices.chosen(dense) == {"optim.lr": 3e-3}  # lower validation perplexity wins
    for seed in (1, 2):
        lm_run(dense, {"optim.lr": 3e-3}, seed, 150.0 + seed, 111.0, 526336)
    for layout, val in (("interleaved", 130.0), ("blocked", 125.0)):
        lm_run(mps, {"optim.lr": 3e-3, "tt.layout": layout}, 0, 160.0, val, 51120)
    choices = core.Choices(rows, tmp_path)
    assert choices.chosen(mps) == {"optim.lr": 3e-3, "tt.layout": "blocked"}
    for seed in (1, 2):
        lm_run(mps, {"optim.lr": 3e-3, "tt.layout": "blocked"}, seed, 160.0 + seed, 125.0,
               51120)
    for seed in (0, 1, 2):
        lm_run(mpo, {"optim.lr": 3e-3}, seed, 170.0 + 2 * seed, 135.0, 49280)
    page = render.render(rows, None, core.Choices(rows, tmp_path), {},
                          tmp_path / "page.md")
    assert "| MPS, 3 modes per dimension, blocked | 10x | 18, 18 | 51120 | 10.3 |" in page
    assert "161.00 +- 1.00" in page and "+6.6%" in page  # (161 / 151 - 1)
    claim = next(line for line in page.splitlines() if line.startswith("* 10x: test perplexity"))
    # paired MPS - MPO per seed: 160-170, 161-172, 162-174 -> mean -11, t interval
    diffs = [-10.0, -11.0, -12.0]
    half = stats.t.ppf(0.975, 2) * statistics.stdev(diffs) / 3**0.5
    assert f"-11.00 +- {half:.2f}" in claim and "**MPS at least as accurate**" in claim
    target = next(line for line in page.splitlines() if line.startswith("* >= 10x fewer"))
    assert "`tt-lm-mps-c10` (10x) at +6.6%" in target and target.endswith("**met**")
    assert (tmp_path / tt.PLOT).exists()
    # the timing phase's specs: resolved configs, so a form without num_modes in its row (the
    # low-rank baseline) gets the defaults instead of a KeyError after the last run
    lowrank = _row("tt-lm-lowrank-c10")
    assert "num_modes" not in lowrank["config"]["tt"]
    lm_run(lowrank, {"optim.lr": 3e-3}, 0, 155.0, 120.0, 50688)
    specs = tt._specs(core.Choices(rows, tmp_path), None)
    assert specs["tt-lm-lowrank-c10"].form == "lowrank"
    assert specs["tt-lm-lowrank-c10"].num_modes == 3 and specs["tt-lm-mps-c10"].ranks == 18
    assert specs["tt-lm-mps-c10"].layout == "blocked"


def test_vit_table_distillation_waits_for_its_teacher_seed(tmp_path: Path) -> None:
    """The distilled row's teacher is the full-precision row's chosen run of the same seed: the
    row waits for the teacher's choice, then each seed for that seed's teacher run; the paired
    rung differences and the gap target are computed from the runs."""
    rows = core.rows()
    sizes = {"parameters": 40000, "float_macs": 10, "binary_weight_macs": 0, "binary_macs": 99}
    fp, deit, bvit, kd = (_row(f"vit-{k}") for k in ("fp", "deit", "binaryvit",
                                                               "binaryvit-kd"))
    assert {r["name"] for r in rows if r["table"] == "vit"} >= {
        "vit-fp", "vit-deit", "vit-binaryvit", "vit-binaryvit-kd", "vit-binaryvit-bnnp",
        "vit-binaryvit-bnnpp"}
    choices = core.Choices(rows, tmp_path)
    assert [r["name"] for r, _, _ in core.pending([kd], None, choices)] == []
    for lr, val in zip(core.VIT_LR_GRID, (85.0, 86.0), strict=True):
        _fake_run(tmp_path, fp, {"optim.lr": lr}, 0, 87.0, val, **sizes)
    for lr, val in zip(core.VIT_LR_GRID, (80.0, 79.0), strict=True):
        _fake_run(tmp_path, deit, {"optim.lr": lr}, 0, 80.0, val, **sizes)
    choices = core.Choices(rows, tmp_path)
    teacher = choices.teacher(kd)
    assert teacher == str(tmp_path / "vit-fp" / "lr=0.01" / "seed-{seed}")
    assert choices.config(kd)["distill"]["teacher"] == teacher
    pending = [(r["name"], s) for r, _, s in core.pending([kd], None, choices)]
    assert pending == [("vit-binaryvit-kd", 0)]  # seeds 1, 2 wait for their teachers
    for seed in (1, 2):
        _fake_run(tmp_path, fp, {"optim.lr": 1e-2}, seed, 87.0 + seed, **sizes)
        _fake_run(tmp_path, deit, {"optim.lr": 3e-3}, seed, 80.0 + seed, **sizes)
    choices = core.Choices(rows, tmp_path)
    assert [s for _, _, s in core.pending([kd], None, choices)] == [0, 1, 2]
    for seed in (0, 1, 2):
        _fake_run(tmp_path, bvit, {"optim.lr": 3e-3}, seed, 84.0 + 0.5 * seed,
                  **sizes)
    choices = core.Choices(rows, tmp_path)
    section = render._vit_section([r for r in rows if r["table"] == "vit"], None, choices, {})
    text = "\n".join(section)
    # BinaryViT - DeiT per seed: 4.0, 3.5, 3.0 -> +3.50 +- t(0.975, 2) * 0.5 / sqrt(3)
    half = stats.t.ppf(0.975, 2) * 0.5 / 3 ** 0.5
    assert f"+3.50 +- {half:.2f} (vs `vit-affine`)" not in text  # affine did not run
    assert f"(paired BinaryViT - DeiT +3.50 +- {half:.2f})" in text
    # gap FP 88 vs DeiT 81: BinaryViT 84.5 closes 50% of it
    assert "50% of the 7.00-point gap closed" in text and "**met**" in text
    page = "# t\n\n## Reading the tables\n\nx\n"
    once = render.splice_section(page, section)
    assert once.count(render.VIT_BEGIN) == 1 and once.endswith("## Reading the tables\n\nx\n")
    twice = render.splice_section(once, section)
    assert twice == once
    assert render.existing_section(once)[0] == render.VIT_BEGIN


def test_set_overrides_need_their_own_outputs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--tables", "vit", "--set", "device=cuda", "--render-only"])
    assert "--set" in capsys.readouterr().err


def test_derived_keys_wait_for_their_source(tmp_path: Path) -> None:
    """Torch-Pruning rows take the per-unit median of the channels the SPR row kept over all
    its seeds; the transfer rows take the source run's folder; both wait until it exists."""
    rows = core.rows()
    spr, tpm = _row("cnn-spr-lam2"), _row("cnn-tp-lam2")
    spr5 = _row("cnn-spr-lam5")
    for lr in core.SPR_LR_GRID:
        _fake_run(tmp_path, spr5, {"optim.lr": lr}, 0, 80.0, 90.0 if lr == 0.05 else 80.0,
                  spr={"kept": {"a": 8, "b": 10, "c": 20}})
    for seed, kept in zip((0, 1), ({"a": 8, "b": 12, "c": 30}, {"a": 6, "b": 14, "c": 28}),
                          strict=True):
        _fake_run(tmp_path, spr, {"optim.lr": 0.05}, seed, 80.0, spr={"kept": kept})
    assert core.Choices(rows, tmp_path).candidates(tpm) is None  # seed 2 is missing
    _fake_run(tmp_path, spr, {"optim.lr": 0.05}, 2, 80.0,
              spr={"kept": {"a": 7, "b": 9, "c": 40}})
    assert core.Choices(rows, tmp_path).candidates(tpm) == [
        {"optim.lr": 0.05, "spr.keep_counts": [7, 12, 30]}]
    source, target = _row("transfer-source-fp"), _row("transfer-fp")
    fp = _row("cnn-fp")
    for lr in core.LR_GRID:
        _fake_run(tmp_path, fp, {"optim.lr": lr}, 0, 80.0, 90.0 if lr == 1e-3 else 80.0)
    assert core.Choices(rows, tmp_path).candidates(target) is None
    folder = _fake_run(tmp_path, source, {"optim.lr": 1e-3}, 0, 80.0)
    (candidate,) = core.Choices(rows, tmp_path).candidates(target)
    assert candidate["model.init_from"] == str(folder.resolve())


def test_without_a_checkout_the_command_refuses(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """An installed wheel has no configs/results/, docs/results.md or run folders: exit 2 with
    the reason, before any work (no traceback, nothing written)."""
    monkeypatch.setattr(core, "CHECKOUT", None)
    assert main(["--render-only"]) == 2
    assert "installed wheel" in capsys.readouterr().err


def test_the_script_is_a_thin_wrapper_of_the_package_module() -> None:
    """``benchmarks/results.py`` runs :func:`proxcompress.reproduce.tables.main` with its
    arguments (bad ones exit 2 naming the flag, as the module's parser does), and the paths
    are the checkout's."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "results.py"), "--tables",
                           "nope", "--render-only"], capture_output=True, text=True, cwd=ROOT,
                          check=False)
    assert done.returncode == 2
    assert "--tables: unknown nope" in done.stderr and "Traceback" not in done.stderr
    assert core.ROOT == ROOT and core.CONFIGS == ROOT / "configs" / "results"


def test_tt_timing_loads_the_benchmark_from_the_checkout() -> None:
    """The LSTM step timing is ``benchmarks/tensor_train.py``'s own function (loaded from its
    file, not copied into the package)."""
    bench = tt._tensor_train_benchmark()
    assert bench.__file__ == str(ROOT / "benchmarks" / "tensor_train.py")
    assert callable(bench.lstm_step_times) and callable(bench.cpu_device)


def test_a_runs_folder_linked_elsewhere_keeps_its_repository_path(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    """A runs folder that is a symlink inside the checkout (``runs/results`` -> another disk)
    names the teacher run through the link, as the runs made there recorded it, so rendering
    from such a checkout reads those runs instead of stopping on 'another config'; a folder
    outside the checkout stays absolute."""
    repo, disk = tmp_path / "repo", tmp_path / "disk"
    (repo / "runs").mkdir(parents=True)
    disk.mkdir()
    (repo / "runs" / "results").symlink_to(disk, target_is_directory=True)
    monkeypatch.setattr(core, "ROOT", repo)
    linked = repo / "runs" / "results"
    assert core.repo_path(linked / "vit-fp") == "runs/results/vit-fp"
    assert core.repo_path(disk / "x") == str(disk / "x")  # outside the checkout: absolute
    rows = core.rows()
    fp = _row("vit-fp")
    for lr, val in zip(core.VIT_LR_GRID, (85.0, 86.0), strict=True):
        _fake_run(disk, fp, {"optim.lr": lr}, 0, 87.0, val)
    through_link = core.Choices(rows, linked).teacher(_row("vit-binaryvit-kd"))
    assert through_link == "runs/results/vit-fp/lr=0.01/seed-{seed}"


def test_a_resumed_regeneration_is_never_reported_as_a_from_scratch_time() -> None:
    """A wall-time record decides a regeneration-time target only when nothing was found
    finished: a resumed invocation says so and gives no verdict (records written before the
    field existed were from scratch)."""
    rec = {"wall_seconds": 1800.0, "jobs": 2, "when": "2026-12-05"}
    assert render._scratch_target("t", rec, 60, "vit") == [
        "* t: 30.0 minutes (`--tables vit --jobs 2`, 2026-12-05): **met**"]
    assert "**missed**" in render._scratch_target("t", rec, 20, "vit")[0]
    assert render._scratch_target("t", rec, None, "vit") == [  # stated, no target
        "* t: 30.0 minutes (`--tables vit --jobs 2`, 2026-12-05)"]
    resumed = {**rec, "from_scratch": False, "trained": 5, "resumed": 1}
    line = render._scratch_target("t", resumed, 60, "vit")[0]
    assert "not measured from scratch" in line and "**" not in line
    assert "5 runs started and 1 resumed" in render._wall_scope(resumed)
    assert render._scratch_target("t", None, 60, "vit") == []


def test_the_record_of_finished_runs_restores_the_same_page(tmp_path: Path) -> None:
    """:mod:`.archive`: the record keeps exactly the files the page reads (the checkpoint only
    for runs other rows start from); a bare runs folder restored from it renders the same page
    as the runs it came from; archiving again writes nothing; the runs folder wins over the
    record (a folder with a config of its own, the wall-time entries)."""
    from proxcompress.reproduce.tables import archive

    rows = core.rows()
    runs, record, bare = tmp_path / "runs", tmp_path / "record", tmp_path / "bare"
    fp, source = _row("mlp-fp"), _row("transfer-source-fp")
    for lr, val in zip(core.LR_GRID, (88.0, 89.0, 88.9), strict=True):
        folder = _fake_run(runs, fp, {"optim.lr": lr}, 0, 80.0 + val / 10, val)
        (folder / "metrics.jsonl").write_text('{"epoch": 1, "loss": 0.5}\n')
        (folder / "train.log").write_text("a log stays behind\n")
    for seed in (1, 2):
        _fake_run(runs, fp, {"optim.lr": 1e-3}, seed, 89.0 + seed, cpu=20.0)
    partial = core._run_dir(runs, fp, {"optim.lr": 1e-3}, 3)  # no summary: not finished
    partial.mkdir(parents=True)
    (partial / "config.yaml").write_text("epochs: 1\n")
    taught = _fake_run(runs, source, {"optim.lr": 1e-3}, 0, 80.0)
    for folder in (taught, core._run_dir(runs, fp, {"optim.lr": 1e-3}, 1)):
        (folder / "checkpoint.json").write_text(json.dumps({"tensors": "checkpoint-3.safetensors"}))
        (folder / "checkpoint-3.safetensors").write_bytes(b"weights")
    (runs / core.WALL).write_text(json.dumps({"binary": {"wall_seconds": 60.0}}))
    assert "transfer-source-fp" in core.weight_rows(rows)
    assert "mlp-fp" not in core.weight_rows(rows)

    written = archive.archive(runs, record, core.weight_rows(rows))
    kept = sorted(str(p.relative_to(record)) for p in record.rglob("*") if p.is_file())
    assert sorted(str(p.relative_to(record)) for p in written) == kept
    assert not any(name.endswith(("train.log", "seed-3/config.yaml")) for name in kept)
    assert any(name.endswith("lr=0.0003/seed-0/metrics.jsonl") for name in kept)
    checkpoints = [name for name in kept if "checkpoint" in name]
    assert checkpoints == [f"{core._run_dir(Path(), source, {'optim.lr': 1e-3}, 0)}/{name}"
                           for name in ("checkpoint-3.safetensors", "checkpoint.json")]
    assert archive.archive(runs, record, core.weight_rows(rows)) == []  # nothing changed

    restored = archive.restore(bare, record)
    assert len(restored) == 6
    pages = [render.render(rows, None, core.Choices(rows, folder), {}, tmp_path / "page.md")
             .replace(str(folder), "RUNS") for folder in (runs, bare)]
    assert pages[0] == pages[1] and "90.00 +- 1.00" in pages[0]  # mlp-fp validation 89, 90, 91
    assert json.loads((bare / core.WALL).read_text()) == {"binary": {"wall_seconds": 60.0}}
    assert archive.restore(bare, record) == []  # already there

    # the runs folder wins: its own config is left alone, its wall-time entries are kept
    mine = tmp_path / "mine"
    own = core._run_dir(mine, fp, {"optim.lr": 1e-3}, 1)
    own.mkdir(parents=True)
    (own / "config.yaml").write_text("epochs: 7\n")
    (mine / core.WALL).write_text(json.dumps({"binary": {"wall_seconds": 1.0}, "spr": {}}))
    assert own not in archive.restore(mine, record)
    assert (own / "config.yaml").read_text() == "epochs: 7\n"
    assert not (own / "summary.json").exists()
    assert json.loads((mine / core.WALL).read_text()) == {"binary": {"wall_seconds": 1.0},
                                                          "spr": {}}


def test_record_options_are_checked_before_any_work(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x")
    for argv in (["--record", str(afile)], ["--record", str(tmp_path), "--no-record"]):
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "o.md"),
                  "--render-only"])
        assert exc.value.code == 2 and "--record" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "o.md").exists()
    # a damaged record (its wall-time file not a JSON object) is named, before anything is written
    record = tmp_path / "record"
    (record / "mlp-fp" / "lr=0.001" / "seed-0").mkdir(parents=True)
    (record / "mlp-fp" / "lr=0.001" / "seed-0" / "summary.json").write_text("{}")
    (record / "mlp-fp" / "lr=0.001" / "seed-0" / "config.yaml").write_text("epochs: 3\n")
    for damaged in ("[1, 2]", "{not json"):
        (record / core.WALL).write_text(damaged)
        with pytest.raises(SystemExit) as exc:
            main(["--record", str(record), "--runs", str(tmp_path / "runs"), "--out",
                  str(tmp_path / "o.md"), "--render-only"])
        assert exc.value.code == 2 and "wall.json" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "o.md").exists()


def test_runs_sharing_their_first_phase_train_it_once(tmp_path: Path) -> None:
    """SPR rows at two lambdas (one learning rate, inherited) train the pretraining once, as
    a ``--stop-after`` run both fork from; each fork ends as ``proxcompress train`` of its own
    config does from scratch, and the Compute table counts the shared phase once."""
    from training_helpers import tiny_spr_config

    base = {**tiny_spr_config().to_dict(), "threads": 1}
    lam5 = {"table": "spr", "model": "cnn", "name": "tiny-lam5", "label": "lam 5",
            "sweep": {"optim.lr": [0.05]}, "inherit": {}, "config": base}
    lam2 = {"table": "spr", "model": "cnn", "name": "tiny-lam2", "label": "lam 2",
            "sweep": {}, "inherit": {"optim.lr": "tiny-lam5"},
            "config": core._assign(base, {"spr.lam": 2.0})}
    runs = tmp_path / "runs"
    lines: list[str] = []
    core.run_all([lam5, lam2], [0], runs, 2, lines.append, False)
    started = [line for line in lines if line.startswith("start")]
    assert sum("shared pretrain" in line for line in started) == 1, lines
    assert sum(line.startswith("done") and "ok in" in line for line in lines) == 3, lines
    choices = core.Choices([lam5, lam2], runs)
    folders = [core._run_dir(runs, r, choices.chosen(r) or {}, 0) for r in (lam5, lam2)]
    records = [json.loads((f / core.WALL).read_text()) for f in folders]
    assert records[0]["prefix"]["folder"] == records[1]["prefix"]["folder"]
    assert all((f / "train.log").is_file() for f in folders)
    cli = tmp_path / "cli"
    subprocess.run([sys.executable, "-m", "proxcompress", "train", "--config",
                    str(folders[1].parent / "candidate.yaml"), "--set", "seed=0", "--out",
                    str(cli)], check=True, capture_output=True)
    mine, theirs = (json.loads((f / "summary.json").read_text()) for f in (folders[1], cli))
    assert mine["test_accuracy"] == theirs["test_accuracy"]
    assert mine["spr"]["kept"] == theirs["spr"]["kept"]
    assert [json.loads(x)["loss"] for x in (folders[1] / "metrics.jsonl").read_text()
            .splitlines()] == [json.loads(x)["loss"] for x in (cli / "metrics.jsonl")
                               .read_text().splitlines()]
    table = render.compute_budget([lam5, lam2], [0], choices)
    (spr_line,) = [line for line in table if line.startswith("| SPR |")]
    assert "| 2 (0) + 1 shared first phases |" in spr_line
    summed = sum(r["seconds"] for r in records) + records[0]["prefix"]["seconds"]
    assert spr_line.split(" | ")[2] == f"{summed / 60:.1f}"
    lines.clear()
    core.run_all([lam5, lam2], [0], runs, 2, lines.append, False)
    assert lines == []


def test_torch_pruning_first_phases_start_before_the_spr_budgets_are_known(
        tmp_path: Path) -> None:
    """The Torch-Pruning rows wait for the SPR rows' kept channels, but their first phase (5
    epochs of plain training) reads neither the budget nor anything else the SPR rows decide
    but the learning rate: it may start as soon as that is chosen, in the folder the final
    run forks from."""
    rows = core.rows()
    spr5, spr2, tpm = _row("cnn-spr-lam5"), _row("cnn-spr-lam2"), _row("cnn-tp-lam2")
    choices = core.Choices(rows, tmp_path)
    assert core.early_prefixes([tpm], None, choices) == []  # the learning rate is unknown
    for lr in core.SPR_LR_GRID:
        _fake_run(tmp_path, spr5, {"optim.lr": lr}, 0, 80.0, 90.0 if lr == 0.05 else 80.0,
                  spr={"kept": {"a": 8, "b": 10, "c": 20}})
    choices = core.Choices(rows, tmp_path)
    assert choices.candidates(tpm) is None
    early = core.early_prefixes([tpm, spr2], None, choices)
    assert [(r["name"], s) for r, _, s in early] == [("cnn-tp-lam2", s) for s in (0, 1, 2)]
    assert early[0][1] == {"optim.lr": 0.05, "spr.keep_counts": [16, 32, 64]}
    step = core.next_step(choices, *early[0])
    assert step[4] == "prefix" and step[1].parent.parent.name == core.PREFIXES
    assert step[2][-2:] == ["--stop-after", "train"]
    final = core._assign(tpm["config"], {"optim.lr": 0.05, "spr.keep_counts": [7, 12, 30]})
    assert core.prefix_folder(tmp_path, final, 0) == step[1]
    other_lr = core._assign(final, {"optim.lr": 0.02})
    assert core.prefix_folder(tmp_path, other_lr, 0) != step[1]
    # SPR rows: lambda is not part of the pretraining's identity, the learning rate is
    spr_config = core._assign(spr2["config"], {"optim.lr": 0.05})
    assert core.prefix_folder(tmp_path, spr_config, 1) == core.prefix_folder(
        tmp_path, core._assign(spr5["config"], {"optim.lr": 0.05}), 1)
    assert core.prefix_folder(tmp_path, _row("cnn-bc")["config"], 0) is None


def test_speech_convergence_counts_chance_epochs_and_the_last_epochs_range(tmp_path: Path
                                                                           ) -> None:
    """The convergence lines under a speech table: per seed of the chosen config, the epochs
    whose validation accuracy is below 2x chance, the best validation epoch and the range over
    the last 5 epochs, as computed by hand from the fake curves; and the figure exists."""
    rows = core.rows()
    fp = _row("speech-hard-fp")
    classes = 38  # chance 2.63%: an epoch below 5.26% is at chance
    curves = {0: [3.0, 5.0, 40.0, 80.0, 85.0, 86.0, 87.0, 86.5, 88.0, 87.5],
              1: [2.0, 60.0, 80.0, 84.0, 85.0, 90.0, 88.0, 89.0, 88.5, 89.5],
              2: [4.0, 4.0, 4.0, 6.0, 50.0, 70.0, 75.0, 80.0, 82.0, 81.0]}
    for lr in (1e-3, 1e-2):  # the candidates not chosen
        _fake_run(tmp_path, fp, {"optim.lr": lr}, 0, 50.0, 50.0)
    for seed, curve in curves.items():
        folder = _fake_run(tmp_path, fp, {"optim.lr": 3e-3}, seed, curve[-1], curve[-1])
        (folder / "metrics.jsonl").write_text("".join(
            json.dumps({"epoch": e + 1, "val_accuracy": v, "train_accuracy": v + 5})
            + "\n" for e, v in enumerate(curve)))
    choices = core.Choices(rows, tmp_path)
    figure = tmp_path / "speech-hard.png"
    lines = render._convergence_lines(choices, [fp], None, classes, figure)
    line = next(x for x in lines if x.startswith("* `speech-hard-fp`"))
    assert line == ("* `speech-hard-fp` (seeds 0, 1, 2): epochs at chance 2 / 1 / 3; best "
                    "validation epoch 9 / 6 / 9 of 10; validation range over the last 5 epochs "
                    "2.00 / 2.00 / 12.00 points")
    assert "2 x chance = 5.3%" in "\n".join(lines)
    assert figure.stat().st_size > 1000 and "![speech-hard curves](speech-hard.png)" in lines
    # a quantized row is read at its deployed (hard) accuracy, as the trainer's best epoch
    shift = _row("speech-hard-shift")
    hard = [3.0, 50.0, 70.0, 72.0, 71.0, 74.0]
    folder = _fake_run(tmp_path, shift, {"optim.lr": 3e-3}, 0, 70.0, 70.0)
    (folder / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e + 1, "val_accuracy": 90.0 - e, "val_accuracy_hard": v})
        + "\n" for e, v in enumerate(hard)))
    lines = render._convergence_lines(choices, [shift], [0], classes, figure)
    assert ("* `speech-hard-shift` (seeds 0): epochs at chance 1; best validation epoch 6 of 6; "
            "validation range over the last 5 epochs 24.00 points") in lines
    # a row without finished runs adds nothing
    assert render._convergence_lines(core.Choices(rows, tmp_path / "none"), [fp], None,
                                     classes, tmp_path / "x.png") == []


def test_speech_conditions_read_the_data_arguments() -> None:
    """The harder table's description is read off its ``proxcompress data speech`` arguments
    (both argv forms, the ``=`` one a negative SNR needs), never typed beside them."""
    assert render._conditions(["--seed", "0", "--snr", "0,15", "--reverb", "0.2,0.6"]) == (
        "noise at 0 to 15 dB SNR and synthetic rooms with reverberation times of 0.2 to 0.6 s")
    assert render._conditions(["--snr=-5,10"]) == "noise at -5 to 10 dB SNR, dry"
    assert render._conditions([]) == "noise at 10 to 30 dB SNR, dry"
    from proxcompress.training.config import STANDARDIZE

    assert set(render.STANDARDIZE_TEXT) == set(STANDARDIZE)  # every value has its words


def test_generated_data_arguments_parse() -> None:
    """Every data folder the script generates has arguments the data command accepts (a
    negative SNR written as two argv items would stop a from-scratch run at its first row)."""
    from proxcompress.cli import build_parser

    parser = build_parser()
    for root, (dataset, args) in core.GENERATED_DATA.items():
        ns = parser.parse_args(["data", dataset, "--out", root, *args])
        assert ns.out == root
