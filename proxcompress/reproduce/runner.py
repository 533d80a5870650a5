"""Running the stages: the plan (every flag and ``--out`` checked before any work), each stage
in its folder with its log and progress display, its verdicts, the state that ``--resume``
reads, and the reports rewritten after every stage.

State: ``DIR/state.json`` (written atomically) records the mode, the budget overrides and each
stage's status: ``passed`` / ``failed`` (finished: ``--resume`` skips it), ``error`` (the stage
raised; rerun on ``--resume``), ``unavailable`` (its external data is not on the machine and
could not be fetched: not measured, not a failure; rerun on ``--resume``), ``interrupted``
or ``running`` (Ctrl-C, SIGTERM or a killed process; rerun on ``--resume``, its training runs
continuing from their checkpoints). Each
stage's result is ``DIR/<stage>/result.json``, written before the state says it finished.

Exit codes: 0 every stage passed (or was not measured for want of its data), 1 a check failed
or a stage raised, 2 bad input (nothing written), 130 interrupted (finished stages and the
report kept; continue with ``--resume``).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from proxcompress.errors import InvalidInputError
from proxcompress.reproduce.registry import STAGES, stages_for
from proxcompress.reproduce.stage import (
    MODES,
    Context,
    DataUnavailable,
    Outcome,
    Progress,
    Stage,
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
STATE = "state.json"
RESULT = "result.json"
FORMAT = "proxcompress-reproduce"
VERSION = 1
#: statuses of a finished stage (``--resume`` skips it)
FINISHED = ("passed", "failed")
#: the status of a stage whose external data is missing (:class:`DataUnavailable`)
UNAVAILABLE = "unavailable"
#: statuses that do not fail the run
NOT_FAILED = ("passed", UNAVAILABLE)


class StageInterrupted(Exception):
    """The run stopped inside a stage (Ctrl-C / SIGTERM); state and reports are saved."""


@dataclass
class Plan:
    """A validated invocation: what runs, with which budgets, into which folder."""

    mode: str
    out: Path
    stages: list[Stage]
    budgets: dict[str, dict[str, Any]]
    overrides: list[str]
    state: dict[str, Any] = field(default_factory=dict)


def now() -> str:
    """The local time, e.g. ``2026-12-05 03:31:10 UTC``."""
    return datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars / arrays, tuples and paths made JSON-ready; non-finite
    floats become None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -------------------------------------------------------------------------------- the plan
def _read_state(out: Path) -> dict[str, Any] | None:
    path = out / STATE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError("--out", f"{str(path)!r} is unreadable ({exc}); give a new "
                                "folder") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT \
            or state.get("mode") not in MODES or not isinstance(state.get("stages"), dict):
        raise InvalidInputError("--out", f"{str(path)!r} is not the state of a proxcompress "
                                "reproduce run; give a new folder")
    return state


def _check_out(out: Path, resume: bool) -> dict[str, Any] | None:
    """The folder's recorded state (resume) or None; refuses what cannot be written."""
    if out.exists() and not out.is_dir():
        raise InvalidInputError("--out", f"{str(out)!r} exists and is not a folder")
    state = _read_state(out) if out.is_dir() else None
    if out.is_dir() and any(out.iterdir()):
        if not resume:
            raise InvalidInputError(
                "--out", f"{str(out)!r} is not empty; give a new or empty folder, or "
                "--resume to continue the run recorded in it")
        if state is None:
            raise InvalidInputError("--out", f"{str(out)!r} holds files but no {STATE} of a "
                                    "reproduce run; give a new or empty folder")
    parent = out if out.is_dir() else next((p for p in out.parents if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInputError("--out", f"cannot write under {str(parent)!r}")
    return state


def _parse_override(item: str, mode: str) -> tuple[Stage, str, Any]:
    import yaml

    key, sep, text = item.partition("=")
    stage_name, dot, knob = key.strip().partition(".")
    if not sep or not dot or not knob:
        raise InvalidInputError("--set", f"{item!r} is not STAGE.KNOB=VALUE")
    stages = {s.name: s for s in stages_for(mode)}
    if stage_name not in stages:
        raise InvalidInputError("--set", f"{stage_name!r} is not a stage of --{mode}; accepted: "
                                f"{', '.join(stages)}")
    stage = stages[stage_name]
    if knob not in stage.params:
        raise InvalidInputError(f"--set {stage_name}.{knob}", "is not a knob of the stage; "
                                f"accepted: {', '.join(stage.params)}")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        raise InvalidInputError(f"--set {key}", f"{text!r} is not a value") from None
    param = stage.params[knob]
    want = type(param.quick)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if want is str and value is None:
        value = ""
    if type(value) is not want or not param.valid(value):
        raise InvalidInputError(f"--set {key}", f"= {text!r}; accepted: {param.accepted}")
    return stage, knob, value


def plan(out: str | os.PathLike[str], mode: str | None = None, *, resume: bool = False,
         only: Sequence[str] | None = None, overrides: Sequence[str] = ()) -> Plan:
    """Validate an invocation (no side effects).

    Args:
        out: the output folder: new or empty, or with ``resume`` one a run recorded its state
            in (or new / empty: the run starts afresh).
        mode: ``quick`` or ``full`` (None: the recorded mode when resuming, else ``quick``).
        resume: continue the run recorded in ``out``.
        only: run only these stages.
        overrides: ``STAGE.KNOB=VALUE`` budget changes.

    Raises:
        InvalidInputError: naming the flag and what it accepts.
    """
    folder = Path(out)
    state = _check_out(folder, resume)
    if mode is not None and mode not in MODES:
        raise InvalidInputError("mode", f"{mode!r}; accepted: {', '.join(MODES)}")
    recorded = state["mode"] if state else None
    if recorded and mode and mode != recorded:
        raise InvalidInputError(f"--{mode}", f"the run in {str(folder)!r} is a --{recorded} "
                                "run; resume it as such or give a new folder")
    mode = mode or recorded or "quick"
    stages = stages_for(mode)
    if only:
        names = [n.strip() for n in only if n.strip()]
        unknown = [n for n in names if n not in {s.name for s in stages}]
        if unknown or not names:
            raise InvalidInputError("--only", f"{', '.join(unknown) or 'nothing'} is not a "
                                    f"stage of --{mode}; accepted: "
                                    f"{', '.join(s.name for s in stages)}")
        stages = [s for s in stages if s.name in names]
    previous = list(state.get("overrides", [])) if state else []
    started = {name for name, rec in (state or {}).get("stages", {}).items()}
    budgets = {s.name: s.budget(mode) for s in stages_for(mode)}
    for item in previous:  # recorded when the run started: validated then, applied again
        stage, knob, value = _parse_override(item, mode)
        budgets[stage.name][knob] = value
    for item in overrides:
        stage, knob, value = _parse_override(item, mode)
        if stage.name in started and budgets[stage.name][knob] != value:
            raise InvalidInputError(f"--set {item.partition('=')[0]}",
                                    f"stage {stage.name!r} already ran in {str(folder)!r} "
                                    "with another budget; give a new folder to change it")
        budgets[stage.name][knob] = value
    return Plan(mode, folder, stages, budgets, [*previous, *overrides], state or {})


# --------------------------------------------------------------------------------- running
def _entry(stage: Stage) -> Callable[[Context], Outcome]:
    module, _, name = stage.entry.partition(":")
    fn: Callable[[Context], Outcome] = getattr(importlib.import_module(module), name)
    return fn


def _interruption(exc: BaseException) -> bool:
    if isinstance(exc, KeyboardInterrupt | StageInterrupted):
        return True
    trainer = sys.modules.get("proxcompress.training.trainer")
    return trainer is not None and isinstance(exc, trainer.Interrupted | trainer.HardStop)


class StreamSwitch(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` while the stages run: writes go to the current stage's
    log, else to the stream it replaced. A logging handler or a library that keeps a reference
    to the stream it found (Pyomo's handlers do) keeps this object, which never points at a
    closed file: after the run it points at the original stream again."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self.original = target
        self.target: TextIO = target

    def _live(self) -> TextIO:
        """The target, or, once it is closed (a test harness's capture after the test), the
        process's own standard error."""
        if not getattr(self.target, "closed", False):
            return self.target
        return sys.__stderr__ or self.target

    def write(self, text: str) -> int:
        return self._live().write(text)

    def flush(self) -> None:
        self._live().flush()

    def fileno(self) -> int:
        return self._live().fileno()

    def isatty(self) -> bool:
        return self._live().isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self._live(), "encoding", "utf-8"))


@contextlib.contextmanager
def _streams_to(log: TextIO) -> Iterator[None]:
    """Point ``sys.stdout`` and ``sys.stderr`` at ``log`` (through :class:`StreamSwitch`es)."""
    installed = [stream for stream in (sys.stdout, sys.stderr)
                 if isinstance(stream, StreamSwitch)]
    if len(installed) < 2:
        with contextlib.redirect_stdout(StreamSwitch(sys.stdout)), \
                contextlib.redirect_stderr(StreamSwitch(sys.stderr)), _streams_to(log):
            yield
        return
    for stream in installed:
        stream.target = log
    try:
        yield
    finally:
        for stream in installed:
            stream.flush()
            stream.target = stream.original


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops a stage as Ctrl-C does (the trainer installs its own handler inside)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def judge(stage: Stage, figures: dict[str, Any], budget: dict[str, Any]
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The verdict of each check (``pass`` / ``fail`` / ``not measured``) and each target
    (``met`` / ``missed`` / ``not measured``) on the stage's figures (with its ``budget``)."""
    seen = {**figures, "budget": budget}
    checks, targets = [], []
    for rule in stage.checks:
        ok, measured = rule.judge(seen)
        checks.append({"name": rule.name, "statement": rule.statement, "measured": measured,
                       "verdict": {True: "pass", False: "fail", None: "not measured"}[ok]})
    for rule in stage.targets:
        ok, measured = rule.judge(seen)
        targets.append({"name": rule.name, "statement": rule.statement, "measured": measured,
                        "source": rule.source,
                        "verdict": {True: "met", False: "missed", None: "not measured"}[ok]})
    return checks, targets


def run_stage(stage: Stage, folder: Path, budget: dict[str, Any], mode: str, resuming: bool,
              label: str, stream: TextIO | None) -> dict[str, Any]:
    """Run one stage in ``folder``; returns its result record (``status``: passed, failed or
    error). Raises :class:`StageInterrupted` (after writing nothing) when interrupted."""
    from proxcompress.reproduce.machine import usable_cores

    start = time.perf_counter()
    progress = Progress(label, stream)
    record: dict[str, Any] = {"name": stage.name, "title": stage.title, "runs": stage.runs,
                              "mode": mode, "budget": budget, "outputs": list(stage.outputs),
                              "figures": {}, "tables": [], "plots": [], "notes": [],
                              "checks": [], "targets": [], "error": None}
    with open(folder / "log.txt", "a", encoding="utf-8") as log, _streams_to(log):
        log.write(f"--- {now()} stage {stage.name} ({mode}), budget {json.dumps(budget)}\n")
        log.flush()  # worker processes append to the same file
        ctx = Context(stage.name, folder, dict(budget), mode, usable_cores(), resuming, log,
                      progress)
        try:
            outcome = _entry(stage)(ctx)
        except BaseException as exc:
            progress.close()
            if _interruption(exc):
                log.write(f"--- interrupted: {exc!r}\n")
                raise StageInterrupted(str(exc) or "interrupted") from None
            if not isinstance(exc, Exception):
                raise
            if isinstance(exc, DataUnavailable):
                reason = str(exc)
                log.write(f"--- not measured: {reason}\n")
                checks, targets = judge(stage, {}, budget)
                for rule in (*checks, *targets):
                    rule["measured"] = f"not measured: {reason}"
                record.update(status=UNAVAILABLE, notes=[f"Not measured: {reason}"],
                              checks=checks, targets=targets,
                              seconds=time.perf_counter() - start, finished=now())
                return record
            (folder / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
            traceback.print_exc(file=log)
            record.update(status="error", error=f"{type(exc).__name__}: {exc}",
                          seconds=time.perf_counter() - start, finished=now())
            return record
        finally:
            progress.close()
    figures = jsonable(outcome.figures)
    checks, targets = judge(stage, figures, budget)
    record.update(
        status="passed" if all(c["verdict"] == "pass" for c in checks) else "failed",
        figures=figures, tables=[jsonable(t.to_dict()) for t in outcome.tables],
        plots=[p.to_dict() for p in outcome.plots], notes=list(outcome.notes),
        checks=checks, targets=targets, seconds=time.perf_counter() - start, finished=now())
    return record


def _line(record: dict[str, Any], position: str) -> str:
    checks = record["checks"]
    targets = record["targets"]
    parts = [f"{sum(c['verdict'] == 'pass' for c in checks)}/{len(checks)} checks"]
    if targets:
        parts.append(f"{sum(t['verdict'] == 'met' for t in targets)}/{len(targets)} "
                     "targets met")
    if record.get("error"):
        parts = [record["error"][:120]]
    if record["status"] == UNAVAILABLE:
        parts = [record["notes"][0][:200]]
    return (f"[{time.strftime('%H:%M:%S')}] stage {position} {record['name']}: "
            f"{record['status'].upper()} ({', '.join(parts)}) in {record['seconds']:.1f} s")


def execute(p: Plan, stream: TextIO | None = None) -> int:
    """Run the plan; returns the exit code. Reports are rewritten after every stage."""
    from proxcompress.atomic import write_json_atomic
    from proxcompress.reproduce.machine import describe
    from proxcompress.reproduce.report import write_reports

    stream = stream if stream is not None else sys.stderr
    p.out.mkdir(parents=True, exist_ok=True)
    state = p.state or {"format": FORMAT, "version": VERSION, "mode": p.mode,
                        "created": now(), "stages": {}}
    state["overrides"] = p.overrides
    machine = describe()
    state.setdefault("invocations", []).append({"started": now(), "argv": sys.argv[1:],
                                                "cpu_model": machine["cpu_model"],
                                                "cores": machine["cores"]})
    write_json_atomic(p.out / STATE, state)
    results: dict[str, dict[str, Any]] = {}
    for stage in stages_for(p.mode):  # earlier results of stages not in this plan
        file = p.out / stage.name / RESULT
        if state["stages"].get(stage.name, {}).get("status") in FINISHED and file.is_file():
            results[stage.name] = json.loads(file.read_text(encoding="utf-8"))

    def report(interrupted: str | None = None) -> None:
        write_reports(p.out, p.mode, [s.name for s in stages_for(p.mode)], results, machine,
                      state, interrupted)

    interrupted = None
    with _sigterm_interrupts(), contextlib.redirect_stdout(StreamSwitch(sys.stdout)), \
            contextlib.redirect_stderr(StreamSwitch(sys.stderr)):
        for i, stage in enumerate(p.stages, 1):
            position = f"{i}/{len(p.stages)}"
            folder = p.out / stage.name
            recorded = state["stages"].get(stage.name, {})
            if recorded.get("status") in FINISHED and stage.name in results:
                print(f"[{time.strftime('%H:%M:%S')}] stage {position} {stage.name}: "
                      f"{recorded['status'].upper()} before, skipped (--resume)", file=stream,
                      flush=True)
                continue
            resuming = recorded.get("status") in ("interrupted", "running")
            if not resuming and folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True, exist_ok=True)
            state["stages"][stage.name] = {"status": "running", "started": now(),
                                           "budget": p.budgets[stage.name]}
            write_json_atomic(p.out / STATE, state)
            try:
                record = run_stage(stage, folder, p.budgets[stage.name], p.mode, resuming,
                                   f"stage {position} {stage.name}", stream)
            except StageInterrupted as exc:
                state["stages"][stage.name].update(status="interrupted", note=str(exc))
                write_json_atomic(p.out / STATE, state)
                interrupted = stage.name
                print(f"[{time.strftime('%H:%M:%S')}] stage {position} {stage.name}: "
                      f"INTERRUPTED; continue with: proxcompress reproduce --resume --out "
                      f"{p.out}", file=stream, flush=True)
                break
            record["machine"] = {"cpu_model": machine["cpu_model"], "cores": machine["cores"]}
            write_json_atomic(folder / RESULT, record)
            results[stage.name] = record
            state["stages"][stage.name] = {"status": record["status"],
                                           "seconds": record["seconds"],
                                           "finished": record["finished"],
                                           "budget": record["budget"]}
            write_json_atomic(p.out / STATE, state)
            report()
            print(_line(record, position), file=stream, flush=True)
    report(interrupted)
    failed = [s.name for s in stages_for(p.mode)
              if s.name in results and results[s.name]["status"] not in NOT_FAILED]
    unmeasured = [s.name for s in stages_for(p.mode)
                  if s.name in results and results[s.name]["status"] == UNAVAILABLE]
    print(f"report: {p.out / 'report.html'} (also report.md, report.json)", file=stream,
          flush=True)
    if interrupted:
        return EXIT_INTERRUPTED
    if failed:
        print(f"FAILED stages: {', '.join(failed)}", file=stream, flush=True)
        return EXIT_FAILED
    if unmeasured:
        print(f"every stage that ran passed; not measured (data unavailable): "
              f"{', '.join(unmeasured)} (--resume runs them once the data is there)",
              file=stream, flush=True)
        return EXIT_OK
    print("every stage passed", file=stream, flush=True)
    return EXIT_OK


def reproduce(out: str | os.PathLike[str], mode: str | None = None, *, resume: bool = False,
              only: Sequence[str] | None = None, overrides: Sequence[str] = (),
              stream: TextIO | None = None) -> int:
    """Validate (:func:`plan`, raising :class:`~proxcompress.errors.InvalidInputError` on bad
    input before any work) and run (:func:`execute`); returns the exit code."""
    return execute(plan(out, mode, resume=resume, only=only, overrides=overrides), stream)


__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "FINISHED",
           "NOT_FAILED", "UNAVAILABLE", "Plan",
           "STAGES", "StageInterrupted", "execute", "judge", "plan", "reproduce", "run_stage"]
