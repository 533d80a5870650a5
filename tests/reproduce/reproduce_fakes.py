"""Stages for the runner's tests: each writes a file, a table and a plot, and behaves as
:data:`BEHAVIOUR` says (``pass``, ``fail`` a check, ``raise``, ``interrupt``, ``unavailable``:
its data is missing)."""

from __future__ import annotations

import logging

from proxcompress.reproduce.plots import figure, save
from proxcompress.reproduce.stage import (
    Context,
    DataUnavailable,
    Outcome,
    Param,
    Plot,
    Rule,
    Stage,
    Table,
)

#: stage name -> behaviour of its next run
BEHAVIOUR: dict[str, str] = {}
#: (stage, resuming) of every run
CALLS: list[tuple[str, bool]] = []


def run(ctx: Context) -> Outcome:
    CALLS.append((ctx.stage, ctx.resuming))
    behaviour = BEHAVIOUR.get(ctx.stage, "pass")
    ctx.progress.total(1)
    ctx.log(f"{ctx.stage}: {behaviour}, budget {ctx.budget}")
    (ctx.folder / "partial.txt").write_text("started\n")
    if behaviour == "raise":
        raise RuntimeError(f"boom in {ctx.stage}")
    if behaviour == "interrupt":
        raise KeyboardInterrupt
    if behaviour == "unavailable":
        raise DataUnavailable(f"no data for {ctx.stage} here")
    if behaviour == "make-handler":  # as a library does on its first import inside a stage
        logging.getLogger("reproduce-fakes").addHandler(logging.StreamHandler())
    if behaviour == "use-handler":  # Pyomo's capture_output asks its handlers for their fd
        for handler in logging.getLogger("reproduce-fakes").handlers:
            handler.stream.fileno()  # type: ignore[attr-defined]
        logging.getLogger("reproduce-fakes").warning("logged from %s", ctx.stage)
    fig, (ax,) = figure(1, 1, width=3, height=2)
    ax.plot([0, 1, 2], [ctx.budget["n"], 2, 3])
    save(fig, ctx.folder / "plot.png")
    ctx.progress.advance()
    value = 0 if behaviour == "fail" else 1
    return Outcome({"value": value, "n": ctx.budget["n"]},
                   [Table(f"{ctx.stage} table", ["what", "value"], [["value", value]],
                          note="a note")],
                   [Plot("plot.png", f"{ctx.stage} plot")])


def stage(name: str, modes: tuple[str, ...] = ("quick", "full")) -> Stage:
    return Stage(
        name=name, title=f"Stage {name}", runs=f"the fake stage {name}",
        entry="reproduce_fakes:run",
        params={"n": Param(1, 5, "a knob", "an integer in [1, 9]",
                           lambda v: isinstance(v, int) and 1 <= v <= 9)},
        checks=(Rule("value is 1", "the stage's value is 1", lambda f: f["value"] == 1,
                     lambda f: f"value {f['value']}"),
                Rule("budget seen", "the figures hold the budget",
                     lambda f: f["budget"]["n"] == f["n"], lambda f: f"n = {f['n']}")),
        targets=(Rule("n above 3", "the knob n is above 3", lambda f: f["n"] > 3,
                      lambda f: f"n = {f['n']}", source="the tests"),
                 Rule("unmeasured", "a figure the stage never reports is positive",
                      lambda f: f["missing"] > 0, lambda f: str(f["missing"]))),
        outputs=("partial.txt", "plot.png"), modes=modes)


STAGES = (stage("a"), stage("b"), stage("c"), stage("d"), stage("only-full", ("full",)))


def reset() -> None:
    BEHAVIOUR.clear()
    CALLS.clear()


def names(calls: list[tuple[str, bool]]) -> list[str]:
    return [name for name, _ in calls]


__all__ = ["BEHAVIOUR", "CALLS", "STAGES", "names", "reset", "run", "stage"]
