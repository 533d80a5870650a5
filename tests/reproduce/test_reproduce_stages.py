"""The real stages of ``proxcompress reproduce --quick`` at tiny budgets (synthetic data, small
instances), through the command line: every stage runs, a stage whose check fails is reported
while the others pass, training interrupted inside a stage resumes from its checkpoint, the
``--full`` results stage renders and parses the results page, and the report renders in
headless Chromium with every stage's tables and plots shown."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from proxcompress.cli import main
from proxcompress.reproduce import registry
from proxcompress.reproduce.runner import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

ROOT = Path(__file__).resolve().parents[2]

#: every quick stage at a tiny budget; bnnpp's floor of 100% makes its "learns" check fail
TINY = [
    "certificates.spr_samples=20",
    "pruning.groups=[5]", "pruning.n=40", "pruning.time_limit=60",
    "bnnpp.data=synthetic", "bnnpp.epochs=1", "bnnpp.hidden=[16]", "bnnpp.jobs=1",
    "bnnpp.min_accuracy=100",
    "spr.data=synthetic", "spr.width=4", "spr.min_accuracy=0", "spr.lam=20",
    "mulfree.data=synthetic", "mulfree.width=4", "mulfree.methods=denseshift,euclid",
    "mulfree.jobs=2", "mulfree.min_accuracy=0",
    "tensor_train.size=64", "tensor_train.ranks=[1,2]", "tensor_train.lstm_hidden=4",
    "tensor_train.lm_hidden=32", "tensor_train.lm_embedding=16", "tensor_train.lm_compression=4",
    "kernels.size=64", "kernels.rounds=1",
    "causal.n=100", "causal.pairs=2",
    "vit.data=synthetic", "vit.epochs=1", "vit.dim=8", "vit.depth=2", "vit.jobs=2",
    "vit.train_subset=0", "vit.test_subset=0", "vit.min_accuracy=0",
    "tuebingen.pairs=3", "tuebingen.n=40", "tuebingen.download=false",
]


def _argv(out: Path, *extra: str, sets: list[str] = TINY) -> list[str]:
    argv = ["reproduce", "--quick", "--out", str(out), *extra]
    for item in sets:
        argv += ["--set", item]
    return argv


def fake_cdt_wheel(folder: Path, patch: pytest.MonkeyPatch) -> Path:
    """A synthetic wheel of cdt's layout (pairs sharing columns as cdt's do), its sha256 made
    the expected one for the test (no network, no real data)."""
    from tuebingen_fakes import fake_wheel, synthetic

    from proxcompress.causal import tuebingen

    wheel = fake_wheel(folder / tuebingen.CDT_WHEEL, synthetic(shared=True))
    patch.setattr(tuebingen, "CDT_SHA256", tuebingen.sha256(wheel))
    return wheel


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    root = tmp_path_factory.mktemp("reproduce")
    out = root / "quick"
    with pytest.MonkeyPatch.context() as patch:
        wheel = fake_cdt_wheel(root, patch)
        return out, main(_argv(out, "--set", f"tuebingen.wheel={wheel}"))


def _report(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_every_quick_stage_runs_and_a_failed_check_is_isolated(
        quick_run: tuple[Path, int]) -> None:
    out, code = quick_run
    assert code == EXIT_FAILED
    report = _report(out)
    stages = {s["name"]: s for s in report["stages"]}
    assert list(stages) == [s.name for s in registry.stages_for("quick")]
    assert {n: s["status"] for n, s in stages.items() if n != "bnnpp"} == \
        dict.fromkeys([n for n in stages if n != "bnnpp"], "passed")
    bnnpp = stages["bnnpp"]
    assert bnnpp["status"] == "failed"
    # learns (the floor of 100%), deploys, certified as trained
    assert [c["verdict"] for c in bnnpp["checks"]] == ["fail", "pass", "pass"]
    assert bnnpp["figures"]["certified"]["bnnpp-prox"]  # verify --run's report per pair
    for name, s in stages.items():
        assert s["tables"] and s["plots"], name
        assert all(row for t in s["tables"] for row in t["rows"]), name
        for plot in s["plots"]:
            assert (out / name / plot["file"]).read_bytes()[:4] == b"\x89PNG", plot
        assert (out / name / "log.txt").stat().st_size > 0
    # figures that real properties rest on
    cert = stages["certificates"]["figures"]
    assert cert["failing"] == ["bnn", "bnn+", "bnn++"] and cert["spr"]["passed"]
    pruning = stages["pruning"]["figures"]
    assert pruning["instances"] == 2 and pruning["with_brute_force"] == 2
    assert not pruning["disagreements"]
    spr = stages["spr"]["figures"]
    assert spr["channels_after"] < spr["channels_before"]
    assert spr["spr"]["deploy"]["agreement"] == 1.0
    assert set(stages["mulfree"]["figures"]["methods"]) == {"fp", "fp-lr1e-2", "denseshift",
                                                            "euclid"}
    kernels = stages["kernels"]["figures"]
    assert kernels["correctness"]["binary_exact"] and kernels["size"] == 64
    assert stages["causal"]["figures"]["pairs"] == 8
    vit = stages["vit"]["figures"]
    assert vit["binaryvit"]["deploy"]["agreement"] == 1.0
    assert vit["binaryvit"]["macs"]["binary"] > vit["binaryvit"]["macs"]["float"]
    assert vit["fp"]["macs"]["binary"] == 0 and vit["fp"]["binary_parameters"] == 0
    assert (out / "vit" / "binaryvit-export" / "model.json").is_file()
    tue = stages["tuebingen"]["figures"]
    assert tue["pairs"] == 3 and tue["of"] == 99 and tue["weights_confirmed"]
    assert tue["answered"] == 3  # b = a^2 + noise on a > 0: the default test answers each
    records = json.loads((out / "tuebingen" / "tuebingen.json").read_text())["records"]
    assert [r["n"] for r in records] == [40, 40, 40]
    tt = stages["tensor_train"]["figures"]
    assert tt["tt_svd_within_bound"] and tt["low_rank_optimal"] and tt["size"] == 64
    # the language models: dense, MPS and MPO trained on the KJV sample; the trained trains'
    # contracted forward equals the dense rebuild and their parameters the closed form
    lm = tt["lm"]
    assert set(lm["forms"]) == {"dense", "mps", "mpo"}
    assert lm["forms"]["dense"]["lstm_compression"] == 1.0
    for run in (r for r in lm["runs"].values() if r["form"] != "dense"):
        assert run["contract_vs_dense"] <= 1e-9
        assert run["counted"] == run["closed_form"] == run["lstm_parameters"]
        assert 4 * run["counted"] <= run["lstm_dense_parameters"]
    assert all(r["val_perplexity"] < lm["unigram"]["val"] for r in lm["runs"].values())
    assert (out / "tensor_train" / "lm-mps-seed0" / "summary.json").is_file()
    # the per-step loss behind the plots: one line per step of each run
    steps = [json.loads(line) for line in
             (out / "bnnpp" / "bnnpp" / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1)) and len(steps) == 4
    assert (out / "bnnpp" / "bnnpp-export" / "model.json").is_file()
    html = (out / "report.html").read_text()
    assert html.count('<section class="stage"') == len(stages)
    assert f"Verdict: 1 of {len(stages)} stages did not pass: bnnpp." in html


def _interrupt_first_training(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """The first training run of the test stops after ``after`` steps as on Ctrl-C."""
    from proxcompress.training import trainer

    original = trainer.Trainer.__init__
    calls = []

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            kwargs["interrupt_after_steps"] = after
        original(self, *args, **kwargs)

    monkeypatch.setattr(trainer.Trainer, "__init__", init)


def test_tuebingen_without_the_wheel_is_not_measured(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["reproduce", "--only", "tuebingen", "--out", str(out), "--set",
                 f"tuebingen.cache={tmp_path / 'empty'}", "--set", "tuebingen.download=false"])
    assert code == EXIT_OK
    stage = _report(out)["stages"][-1]
    assert stage["name"] == "tuebingen" and stage["status"] == "unavailable"
    assert "pip download cdt==0.6.0 --no-deps -d" in stage["notes"][0]
    assert {c["verdict"] for c in stage["checks"]} == {"not measured"}
    assert "not measured (data unavailable): tuebingen" in capsys.readouterr().err


def test_tuebingen_with_a_wrong_wheel_is_an_error(tmp_path: Path) -> None:
    """A file that is not cdt's wheel is a fault to report, not missing data."""
    wheel = tmp_path / "cdt.whl"
    wheel.write_bytes(b"not the wheel")
    out = tmp_path / "run"
    assert main(["reproduce", "--only", "tuebingen", "--out", str(out), "--set",
                 f"tuebingen.wheel={wheel}"]) == EXIT_FAILED
    stage = _report(out)["stages"][-1]
    assert stage["status"] == "error" and "not that of cdt 0.6.0's wheel" in stage["error"]


@pytest.mark.slow
def test_training_interrupted_in_a_stage_resumes_from_its_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    sets = [s for s in TINY if s.startswith("bnnpp.") and "min_accuracy" not in s]
    sets += ["bnnpp.epochs=2", "bnnpp.min_accuracy=0"]
    _interrupt_first_training(monkeypatch, after=3)
    assert main(_argv(out, "--only", "bnnpp", sets=sets)) == EXIT_INTERRUPTED
    state = json.loads((out / "state.json").read_text())
    assert state["stages"]["bnnpp"]["status"] == "interrupted"
    assert _report(out)["interrupted"] == "bnnpp"
    assert (out / "bnnpp" / "bnnpp" / "checkpoint.json").is_file()
    assert main(["reproduce", "--resume", "--only", "bnnpp", "--out", str(out)]) == EXIT_OK
    log = (out / "bnnpp" / "log.txt").read_text()
    assert "bnnpp: training (resumed from its checkpoint" in log
    steps = [json.loads(line)["step"] for line in
             (out / "bnnpp" / "bnnpp" / "steps.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # 2 epochs x 4 steps, each once
    statuses = {s["name"]: s["status"] for s in _report(out)["stages"]}
    assert statuses["bnnpp"] == "passed" and statuses["pruning"] == "pending"


@pytest.mark.slow
def test_full_results_stage_renders_and_parses_the_results_page(tmp_path: Path) -> None:
    from proxcompress.reproduce.stages.results import parse_page

    out = tmp_path / "full"
    runs = tmp_path / "no-runs"
    runs.mkdir()
    configs = {p.name: p.read_bytes() for p in (ROOT / "configs" / "results").iterdir()}
    code = main(["reproduce", "--full", "--only", "results", "--out", str(out),
                 "--set", "results.render_only=true", "--set", f"results.runs={runs}"])
    assert code == EXIT_FAILED  # nothing has run: "every row ran" fails
    # a runs folder of its own leaves the committed configs (they describe runs/results) alone
    assert {p.name: p.read_bytes() for p in (ROOT / "configs" / "results").iterdir()} == configs
    stage = _report(out)["stages"][-1]
    assert stage["name"] == "results" and stage["checks"][0]["verdict"] == "fail"
    page = (out / "results" / "results.md").read_text()
    tables = sum(1 for a, b in zip(page.splitlines(), page.splitlines()[1:], strict=False)
                 if a.startswith("|") and b.startswith("|---"))
    assert len(stage["tables"]) == tables + 1  # and the targets table
    # the committed page: every Markdown table and every target line comes back
    committed = (ROOT / "docs" / "results.md").read_text()
    parsed, targets = parse_page(committed)
    assert len(parsed) == sum(1 for line in committed.splitlines() if line.startswith("|---"))
    assert len(targets) == len(re.findall(r"\*\*(?:met|missed)\*\*", committed))
    assert {t["verdict"] for t in targets} == {"met", "missed"}


def test_parse_page_reads_tables_and_targets() -> None:
    from proxcompress.reproduce.stages.results import parse_page

    page = ("# T\n\n## First\n\n| a | b |\n|---|---|\n| 1 | x |\n| 2 | y |\n\ntext\n\n"
            "## Targets\n\n* one thing: **met**\n* another: 3 vs 4: **missed** (note)\n"
            "* no verdict here\n")
    tables, targets = parse_page(page)
    assert [(t.title, t.columns, t.rows) for t in tables] == [
        ("First", ["a", "b"], [["1", "x"], ["2", "y"]])]
    assert targets == [{"text": "one thing: met", "verdict": "met"},
                       {"text": "another: 3 vs 4: missed (note)", "verdict": "missed"}]


# ------------------------------------------------------------------------ the report, seen
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                  "--no-first-run", "--disable-extensions", "--virtual-time-budget=10000"]


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (Debian package "
                    "'chromium'; make test installs it as root)")
def test_report_renders_in_chromium_with_every_stage_table_and_plot(
        quick_run: tuple[Path, int], tmp_path: Path) -> None:
    out, _ = quick_run
    browser = _chromium()
    assert browser is not None
    page = (out / "report.html").resolve().as_uri()
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, "--dump-dom", page], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert 'data-loaded="yes"' in dom and 'data-broken-images="0"' in dom
    for s in registry.stages_for("quick"):
        section = re.search(rf'<section class="stage" id="stage-{s.name}"[^>]*>', dom)
        assert section is not None, s.name
        shown = re.search(r'data-plots-shown="(\d+)"', section.group(0))
        tables = re.search(r'data-tables="(\d+)"', section.group(0))
        assert shown and int(shown.group(1)) >= 1, s.name
        assert tables and int(tables.group(1)) >= 2, s.name  # checks and at least one table
    shot = tmp_path / "report.png"
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--screenshot={shot}", "--window-size=1280,2200",
                    page], capture_output=True, timeout=120, check=True)
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[:2] == (2200, 1280)
    ink = (pixels[..., :3].mean(axis=2) < 0.6).mean()  # text, tables and plots, not a blank page
    assert 0.01 < ink < 0.5
    assert np.unique(pixels[..., :3].reshape(-1, 3), axis=0).shape[0] > 50


@pytest.mark.slow
def test_sigterm_stops_the_training_workers_and_resume_continues_them(tmp_path: Path) -> None:
    import os
    import signal
    import sys
    import time

    out = tmp_path / "run"
    sets = ["mulfree.data=synthetic", "mulfree.width=4", "mulfree.methods=denseshift",
            "mulfree.jobs=2", "mulfree.min_accuracy=0", "mulfree.epochs=30"]
    argv = [sys.executable, "-m", "proxcompress", *_argv(out, "--only", "mulfree", sets=sets)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    checkpoints = [out / "mulfree" / name / "checkpoint.json" for name in ("fp", "denseshift")]
    while not all(c.exists() for c in checkpoints):  # both runs are past their first epoch
        assert process.poll() is None, process.communicate()
        assert time.monotonic() - started < 300
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == EXIT_INTERRUPTED, err
    assert "mulfree: INTERRUPTED" in err
    state = json.loads((out / "state.json").read_text())
    assert state["stages"]["mulfree"]["status"] == "interrupted"
    assert not (out / "mulfree" / "fp" / "summary.json").exists()  # stopped mid-run
    assert main(["reproduce", "--resume", "--only", "mulfree", "--out", str(out)]) == EXIT_OK
    log = (out / "mulfree" / "log.txt").read_text()
    assert log.count("training (resumed from its checkpoint") == 2
    for name in ("fp", "denseshift"):
        metrics = (out / "mulfree" / name / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(m)["epoch"] for m in metrics] == list(range(1, 31))
