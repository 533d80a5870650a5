"""The vocabulary of ``proxcompress reproduce``: what a stage declares and what it returns.

A :class:`Stage` is one row of the registry (:data:`proxcompress.reproduce.registry.STAGES`):
its name and title, what it runs (in words, for the report), the function that runs it
(``entry``, a ``"module:function"`` string imported only when the stage runs, so that building
the command line stays cheap), its budget knobs (:class:`Param`: the value under ``--quick`` and
under ``--full``), its checks and targets (:class:`Rule`) and the files it writes.

The function receives a :class:`Context` (its folder, its budget, a log, a progress display)
and returns an :class:`Outcome`: the measured ``figures`` (a JSON-ready dict), the tables and
plots a person reads. The runner, not the stage, turns figures into verdicts: a check that does
not hold fails the stage (exit code 1); a target is a published or issued claim reported as met
or missed and never fails the run (a speed target depends on the machine, an accuracy target on
the budget). A stage whose data is not on the machine and cannot be fetched raises
:class:`DataUnavailable`: it is reported as not measured, with the reason, and neither passes
nor fails (docs/decisions.md, issue 16).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

#: a stage's measured figures (JSON-ready), what checks and targets read
Figures = Mapping[str, Any]

MODES = ("quick", "full")


def _any(_: Any) -> bool:
    return True


class DataUnavailable(Exception):  # noqa: N818 - a state, not a fault of the code
    """The data a stage measures is not on this machine and cannot be fetched (no network, no
    cache): the stage is reported as *not measured* with this reason, its checks and targets
    unanswered; it does not fail the run, and ``--resume`` runs it again (once the data is
    there). Only for external data the suite does not bundle (e.g. the Tübingen pairs)."""


@dataclass(frozen=True)
class Param:
    """One budget knob of a stage: its value under ``--quick`` and under ``--full``.

    ``--set STAGE.NAME=VALUE`` overrides it (the value parsed as YAML); the override must have
    the type of ``quick`` (an int is accepted where a float is) and satisfy ``valid``, else the
    command exits 2 naming the flag and ``accepted``, before any work.
    """

    quick: Any
    full: Any
    help: str
    accepted: str = "any value of that type"
    valid: Callable[[Any], bool] = _any


@dataclass(frozen=True)
class Rule:
    """A check or a target over a stage's figures.

    ``statement`` says what must hold in words a reader understands without the code;
    ``holds(figures)`` decides it; ``measured(figures)`` says what was measured. A figure that
    is missing (``KeyError``, ``TypeError``, ``IndexError``) makes the rule "not measured":
    a failed check, an unanswered target. ``source`` names where a target's claim comes from.
    """

    name: str
    statement: str
    holds: Callable[[Figures], bool]
    measured: Callable[[Figures], str]
    source: str = ""

    def judge(self, figures: Figures) -> tuple[bool | None, str]:
        """``(verdict, measured)``; verdict ``None`` when the figures do not answer it."""
        try:
            return bool(self.holds(figures)), str(self.measured(figures))
        except (KeyError, TypeError, IndexError, ValueError, ZeroDivisionError):
            return None, "not measured"


@dataclass(frozen=True)
class Stage:
    """One stage of the main job (a row of the registry).

    Attributes:
        name: the stage's id: its folder under ``--out``, its key in ``report.json`` and in
            ``--only`` / ``--set``.
        title: a heading for a person.
        runs: what it runs, in a sentence or two (the report prints it).
        entry: ``"module:function"``; the function takes a :class:`Context` and returns an
            :class:`Outcome`.
        params: the budget knobs, each with its quick and full value.
        checks: rules that must hold (a failure fails the stage and the run).
        targets: claims reported as met / missed (never fail the run).
        outputs: the files it writes in its folder (glob patterns), for the report.
        modes: the modes it runs in.
    """

    name: str
    title: str
    runs: str
    entry: str
    params: Mapping[str, Param]
    checks: tuple[Rule, ...]
    targets: tuple[Rule, ...] = ()
    outputs: tuple[str, ...] = ()
    modes: tuple[str, ...] = MODES

    def budget(self, mode: str) -> dict[str, Any]:
        """The knobs' values under ``mode``."""
        return {key: getattr(p, mode) for key, p in self.params.items()}


@dataclass
class Table:
    """A table of the report: ``columns`` name what each holds, units included."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": self.rows,
                "note": self.note}


@dataclass
class Plot:
    """A PNG the stage wrote (``file``: relative to its folder) and what it shows."""

    file: str
    caption: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "caption": self.caption}


@dataclass
class Outcome:
    """What a stage returns: figures (checks and targets read them), tables, plots, notes."""

    figures: dict[str, Any]
    tables: list[Table] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Progress:
    """The stage's progress display: a tqdm bar on a terminal (the latest log line as its
    postfix), nothing otherwise (the runner prints one line per stage)."""

    def __init__(self, description: str, stream: TextIO | None) -> None:
        self._bar: Any = None
        if stream is not None and stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=None, desc=description, file=stream, leave=True,
                             dynamic_ncols=True)

    def total(self, units: int) -> None:
        """Announce how many units (runs, instances, pairs) the stage will advance through."""
        if self._bar is not None:
            self._bar.reset(total=units)

    def advance(self, units: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(units)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text[:60], refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@dataclass
class Context:
    """What a stage function receives.

    Attributes:
        stage: its name. folder: its output folder (created, empty unless ``resuming``).
        budget: the knobs' values (overrides applied). mode: ``quick`` or ``full``.
        threads: CPU threads the stage may use (the cores this process may run on).
        resuming: the stage was interrupted before; work it checkpointed (training runs) may
            continue instead of starting over.
        log_file: its log (``log.txt`` in its folder).
        progress: its progress display.
    """

    stage: str
    folder: Path
    budget: dict[str, Any]
    mode: str
    threads: int
    resuming: bool
    log_file: TextIO
    progress: Progress

    def log(self, message: str) -> None:
        """A line in the stage's log (and as the progress bar's postfix on a terminal)."""
        self.log_file.write(message.rstrip("\n") + "\n")
        self.log_file.flush()
        self.progress.note(message.strip().splitlines()[-1] if message.strip() else "")


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table cell: ints as they are, floats with ``digits`` significant digits
    (scientific notation when tiny or huge), anything else as ``str``."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and not 1e-3 <= abs(value) < 1e7:
            return f"{value:.{max(digits - 1, 1)}e}"
        return f"{value:.{digits}g}"
    return str(value)


__all__ = ["MODES", "Context", "DataUnavailable", "Figures", "Outcome", "Param", "Plot",
           "Progress", "Rule", "Stage", "Table", "fmt"]
