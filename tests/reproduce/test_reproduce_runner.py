"""``proxcompress reproduce``'s runner on stages of its own (fast, deterministic): exit codes,
a failed or raising stage does not stop the others, ``--resume`` skips finished stages and
reruns the rest, Ctrl-C keeps what finished, bad input exits 2 and writes nothing; the real
registry's entries are well formed."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import reproduce_fakes as fakes
from hypothesis import given, settings
from hypothesis import strategies as st

from proxcompress.cli import main
from proxcompress.errors import InvalidInputError
from proxcompress.reproduce import registry
from proxcompress.reproduce.runner import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    judge,
    plan,
    reproduce,
)
from proxcompress.reproduce.stage import MODES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    fakes.reset()
    monkeypatch.setattr(registry, "STAGES", fakes.STAGES)
    monkeypatch.setattr(registry, "_BY_NAME", {s.name: s for s in fakes.STAGES})


def _report(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text())


def _statuses(out: Path) -> dict[str, str]:
    return {s["name"]: s["status"] for s in _report(out)["stages"]}


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() \
        else []


# ------------------------------------------------------------------------ exit codes, report
@pytest.mark.usefixtures("fake_stages")
def test_all_passed_exits_0_and_reports_every_stage(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert reproduce(out, "quick") == EXIT_OK
    report = _report(out)
    assert report["verdict"] == "passed" and report["mode"] == "quick"
    assert _statuses(out) == {"a": "passed", "b": "passed", "c": "passed", "d": "passed"}
    stage = report["stages"][0]
    assert stage["budget"] == {"n": 1} and stage["figures"] == {"value": 1, "n": 1}
    assert [c["verdict"] for c in stage["checks"]] == ["pass", "pass"]
    # targets never fail the run: one missed, one not measured
    assert [t["verdict"] for t in stage["targets"]] == ["missed", "not measured"]
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu_model"]
    html = (out / "report.html").read_text()
    for name in "abcd":
        assert f'id="stage-{name}"' in html and f"{name} table" in html
        assert (out / name / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert html.count('src="data:image/png;base64,') == 4
    assert "only-full" not in html  # a --full stage is not part of a quick run
    md = (out / "report.md").read_text()
    assert "![a plot](a/plot.png)" in md and "| value is 1 |" in md
    state = json.loads((out / "state.json").read_text())
    assert {k: v["status"] for k, v in state["stages"].items()} == _statuses(out)


@pytest.mark.usefixtures("fake_stages")
def test_full_mode_has_its_budgets_and_stages(tmp_path: Path) -> None:
    assert reproduce(tmp_path / "run", "full") == EXIT_OK
    report = _report(tmp_path / "run")
    assert [s["name"] for s in report["stages"]] == ["a", "b", "c", "d", "only-full"]
    assert {s["budget"]["n"] for s in report["stages"]} == {5}
    assert {t["verdict"] for s in report["stages"] for t in s["targets"][:1]} == {"met"}


@pytest.mark.usefixtures("fake_stages")
def test_a_failed_and_a_raising_stage_do_not_stop_the_others(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    out = tmp_path / "run"
    fakes.BEHAVIOUR.update(b="raise", c="fail")
    assert main(["reproduce", "--out", str(out)]) == EXIT_FAILED
    assert _statuses(out) == {"a": "passed", "b": "error", "c": "failed", "d": "passed"}
    assert fakes.names(fakes.CALLS) == ["a", "b", "c", "d"]
    err = capsys.readouterr().err
    assert "stage 2/4 b: ERROR (RuntimeError: boom in b)" in err
    assert "stage 3/4 c: FAILED (1/2 checks" in err and "FAILED stages: b, c" in err
    assert "RuntimeError: boom in b" in (out / "b" / "error.txt").read_text()
    report = _report(out)
    assert report["verdict"] == "failed"
    assert report["stages"][1]["error"] == "RuntimeError: boom in b"
    assert report["stages"][2]["checks"][0]["verdict"] == "fail"
    assert report["stages"][3]["figures"]["value"] == 1  # d ran after the failures
    html = (out / "report.html").read_text()
    assert "boom in b" in html and 'data-status="error"' in html
    assert 'data-status="failed"' in html


@pytest.mark.usefixtures("fake_stages")
def test_a_stage_without_its_data_is_not_measured_and_does_not_fail(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    fakes.BEHAVIOUR.update(b="unavailable")
    assert main(["reproduce", "--out", str(out)]) == EXIT_OK
    assert _statuses(out) == {"a": "passed", "b": "unavailable", "c": "passed", "d": "passed"}
    err = capsys.readouterr().err
    assert "stage 2/4 b: UNAVAILABLE (Not measured: no data for b here)" in err
    assert "not measured (data unavailable): b" in err and "FAILED" not in err
    report = _report(out)
    b = report["stages"][1]
    assert report["verdict"] == "partial" and b["notes"] == ["Not measured: no data for b here"]
    assert {c["verdict"] for c in [*b["checks"], *b["targets"]]} == {"not measured"}
    assert {c["measured"] for c in b["checks"]} == {"not measured: no data for b here"}
    html = (out / "report.html").read_text()
    assert 'data-status="unavailable"' in html and "NOT MEASURED" in html
    assert "3 of 4 stages ran and passed; not measured (data unavailable): b" in html
    assert not (out / "b" / "error.txt").exists()
    fakes.reset()  # the data arrived: --resume measures it
    assert main(["reproduce", "--resume", "--out", str(out)]) == EXIT_OK
    assert fakes.CALLS == [("b", False)]
    assert _statuses(out)["b"] == "passed" and _report(out)["verdict"] == "passed"


@pytest.mark.usefixtures("fake_stages")
def test_resume_skips_finished_stages_and_reruns_a_raised_one(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    out = tmp_path / "run"
    fakes.BEHAVIOUR.update(b="raise", c="fail")
    assert reproduce(out) == EXIT_FAILED
    a_result = (out / "a" / "result.json").read_text()
    fakes.reset()
    assert main(["reproduce", "--resume", "--out", str(out)]) == EXIT_FAILED  # c still failed
    assert fakes.CALLS == [("b", False)]  # a, c (failed: finished), d skipped; b afresh
    assert "skipped (--resume)" in capsys.readouterr().err
    assert not (out / "b" / "error.txt").exists()  # the raised stage's folder started clean
    assert _statuses(out) == {"a": "passed", "b": "passed", "c": "failed", "d": "passed"}
    assert (out / "a" / "result.json").read_text() == a_result
    assert len(json.loads((out / "state.json").read_text())["invocations"]) == 2


@pytest.mark.usefixtures("fake_stages")
def test_interrupt_keeps_finished_stages_and_resume_continues(tmp_path: Path) -> None:
    out = tmp_path / "run"
    fakes.BEHAVIOUR.update(c="interrupt")
    assert reproduce(out) == EXIT_INTERRUPTED
    assert fakes.names(fakes.CALLS) == ["a", "b", "c"]
    state = json.loads((out / "state.json").read_text())
    assert state["stages"]["c"]["status"] == "interrupted" and "d" not in state["stages"]
    report = _report(out)
    assert report["verdict"] == "partial" and report["interrupted"] == "c"
    assert _statuses(out) == {"a": "passed", "b": "passed", "c": "interrupted",
                              "d": "pending"}
    assert (out / "c" / "partial.txt").exists()  # what the stage wrote stays for its resume
    fakes.reset()
    assert reproduce(out, resume=True) == EXIT_OK
    assert fakes.CALLS == [("c", True), ("d", False)]
    assert _report(out)["verdict"] == "passed"


@pytest.mark.usefixtures("fake_stages")
def test_a_handler_made_in_one_stage_writes_to_the_next_stages_log(tmp_path: Path) -> None:
    """A logging handler a library creates inside a stage keeps ``sys.stderr`` as it found it;
    later stages (and the process after the run) must not find a closed file there."""
    import logging

    logger = logging.getLogger("reproduce-fakes")
    logger.propagate = False
    fakes.BEHAVIOUR.update(a="make-handler", c="use-handler")
    try:
        assert reproduce(tmp_path / "run") == EXIT_OK
        assert "logged from c" in (tmp_path / "run" / "c" / "log.txt").read_text()
        (handler,) = logger.handlers
        handler.stream.fileno()  # type: ignore[attr-defined]  # the original stderr again
    finally:
        logger.handlers.clear()
        logger.propagate = True


@pytest.mark.usefixtures("fake_stages")
def test_only_and_set(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert reproduce(out, only=["b", "d"], overrides=["d.n=4"]) == EXIT_OK
    assert fakes.names(fakes.CALLS) == ["b", "d"]
    report = _report(out)
    assert _statuses(out) == {"a": "pending", "b": "passed", "c": "pending", "d": "passed"}
    assert report["verdict"] == "partial" and report["overrides"] == ["d.n=4"]
    assert report["stages"][3]["budget"] == {"n": 4}
    fakes.reset()  # the recorded override holds on resume; the rest runs with its defaults
    assert reproduce(out, resume=True) == EXIT_OK
    assert fakes.names(fakes.CALLS) == ["a", "c"]
    assert _report(out)["stages"][3]["budget"] == {"n": 4}


# -------------------------------------------------------------------------------- bad input
def _bad(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    try:
        code = main(["reproduce", *argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == EXIT_BAD_INPUT
    return capsys.readouterr().err


@pytest.mark.parametrize(("argv", "named"), [
    (["--set", "pruning"], "--set"),
    (["--set", "nostage.n=1"], "--set"),
    (["--set", "pruning.nope=1"], "--set pruning.nope"),
    (["--set", "pruning.seeds=-1"], "--set pruning.seeds"),
    (["--set", "pruning.seeds=abc"], "--set pruning.seeds"),
    (["--set", "pruning.seeds=1.5"], "--set pruning.seeds"),
    (["--set", "pruning.groups=[1]"], "--set pruning.groups"),
    (["--set", "pruning.formulations=bigm,cplex"], "--set pruning.formulations"),
    (["--set", "bnnpp.data=cifar"], "--set bnnpp.data"),
    (["--set", "bnnpp.min_accuracy=101"], "--set bnnpp.min_accuracy"),
    (["--set", "results.jobs=2"], "--set"),  # a --full stage under --quick
    (["--set", "causal.pairs=[unclosed"], "--set causal.pairs"),
    (["--only", "nope"], "--only"),
    (["--only", ","], "--only"),
    (["--quick", "--full"], "not allowed with argument"),
])
def test_bad_flags_exit_2_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            argv: list[str], named: str) -> None:
    out = tmp_path / "new" / "run"
    err = _bad([*argv, "--out", str(out)], capsys)
    assert named in err and "Traceback" not in err
    assert not (tmp_path / "new").exists()


def test_out_is_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    assert "--out: is required" in _bad([], capsys)
    file = tmp_path / "file"
    file.write_text("x")
    assert "is not a folder" in _bad(["--out", str(file)], capsys)
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep")
    assert "is not empty" in _bad(["--out", str(full)], capsys)
    assert "no state.json" in _bad(["--resume", "--out", str(full)], capsys)
    (full / "state.json").write_text('{"format": "something else"}')
    assert "is not the state" in _bad(["--resume", "--out", str(full)], capsys)
    (full / "state.json").write_text("{not json")
    assert "unreadable" in _bad(["--resume", "--out", str(full)], capsys)
    assert _files(full) == ["mine.txt", "state.json"]
    assert (full / "mine.txt").read_text() == "keep"


@pytest.mark.usefixtures("fake_stages")
def test_resume_refuses_another_mode_or_budget(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert reproduce(out, only=["a"]) == EXIT_OK
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert "is a --quick run" in _bad(["--full", "--resume", "--out", str(out)], capsys)
    err = _bad(["--resume", "--out", str(out), "--set", "a.n=3"], capsys)
    assert "--set a.n" in err and "already ran" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # a stage that has not started may still get a budget of its own
    assert reproduce(out, resume=True, only=["b"], overrides=["b.n=3"]) == EXIT_OK


def test_resume_of_a_new_or_empty_folder_starts_afresh(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fakes.reset()
    monkeypatch.setattr(registry, "STAGES", fakes.STAGES)
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "new", tmp_path / "empty"):
        assert reproduce(out, resume=True, only=["a"]) == EXIT_OK
    assert fakes.names(fakes.CALLS) == ["a", "a"]


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=12))
def test_any_set_value_is_accepted_or_refused_by_name(tmp_path_factory: pytest.TempPathFactory,
                                                      text: str) -> None:
    out = tmp_path_factory.mktemp("p") / "run"
    for knob in ("pruning.seeds", "bnnpp.data", "pruning.groups", "spr.lam"):
        try:
            p = plan(out, "quick", overrides=[f"{knob}={text}"])
        except InvalidInputError as exc:
            assert exc.field == f"--set {knob}"
        else:
            stage, key = knob.split(".")
            value = p.budgets[stage][key]
            assert registry.stage(stage).params[key].valid(value)
    assert not out.exists()


# ----------------------------------------------------------------------- the real registry
def test_registry_entries_are_well_formed() -> None:
    names = [s.name for s in registry.STAGES]
    assert len(set(names)) == len(names)
    for mode in MODES:
        assert registry.stages_for(mode)
    docs = (ROOT / "docs" / "reproduce.md").read_text()
    for s in registry.STAGES:
        module, _, function = s.entry.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), s.entry
        assert s.checks and s.title and s.runs and s.outputs
        assert f"| `{s.name}`" in docs, f"docs/reproduce.md lacks stage {s.name}"
        for key, param in s.params.items():
            for mode in MODES:
                assert param.valid(getattr(param, mode)), (s.name, key, mode)
        for rule in (*s.checks, *s.targets):
            assert rule.statement and rule.name


def test_a_rule_without_its_figure_is_not_measured() -> None:
    stage = fakes.stage("x")
    checks, targets = judge(stage, {"value": 1, "n": 1}, {"n": 1})
    assert [c["verdict"] for c in checks] == ["pass", "pass"]
    assert targets[1] == {"name": "unmeasured", "statement": stage.targets[1].statement,
                          "measured": "not measured", "source": "", "verdict": "not measured"}
    checks, _ = judge(stage, {"n": 1}, {"n": 1})
    assert checks[0]["verdict"] == "not measured"


def test_list_names_every_stage_and_knob(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for s in registry.STAGES:
        assert out.count(f"{s.name}.") >= len(s.params)


def test_a_stream_switch_outlives_a_closed_target(capfd: pytest.CaptureFixture[str]) -> None:
    """A library that wrapped ``sys.stdout`` during a run (colorama does, at import) may write
    through the switch after the stream it pointed at was closed (a test's capture)."""
    import io

    from proxcompress.reproduce.runner import StreamSwitch

    target = io.StringIO()
    switch = StreamSwitch(target)
    switch.write("to the target\n")
    assert target.getvalue() == "to the target\n"
    target.close()
    switch.write("after the close\n")
    switch.flush()
    assert switch.isatty() in (True, False)
    assert "after the close" in capfd.readouterr().err
