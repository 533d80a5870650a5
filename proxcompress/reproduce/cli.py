"""``proxcompress reproduce``: the main job.

::

    proxcompress reproduce --quick --out DIR        # minutes: every wing at small budgets
    proxcompress reproduce --full --out DIR         # hours: full budgets and the results tables
    proxcompress reproduce --resume --out DIR       # after Ctrl-C: finished stages are skipped
    proxcompress reproduce --out DIR --only pruning,causal --set causal.pairs=20
    proxcompress reproduce --list                   # the stages, their knobs and budgets

Exit codes: 0 every stage passed, 1 a check failed or a stage raised, 2 bad input (checked
before any work; nothing written), 130 interrupted.
"""

from __future__ import annotations

import argparse
from typing import Any

from proxcompress.errors import InvalidInputError
from proxcompress.outputs import add_output

_EPILOG = """\
DIR receives report.html (self-contained), report.md, report.json and one folder per stage.
--set takes STAGE.KNOB=VALUE (the value parsed as YAML), e.g. --set bnnpp.epochs=1
--set pruning.groups=[8,10]; --list shows every knob with its quick and full value.
A stage passes when all its checks hold; targets (published claims) are reported, never fail.
"""


def add_parsers(subparsers: Any) -> None:
    """Register ``reproduce``."""
    p = subparsers.add_parser(
        "reproduce", help="the main job: every wing in one run, one report a person reads",
        description="Run the suite's stages (certificates, exact pruning, BNN++ and SPR "
        "training with export to the kernels, multiplication-free layers, a kernel benchmark, "
        "the causal test; --full adds the results tables) and write one report.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="small budgets, under 10 minutes on 2 cores (the default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="full budgets and the results tables (hours)")
    add_output(p, "--out", kind="folder", metavar="DIR", help="output folder: new or empty (or, "
               "with --resume, one a run recorded its state in)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in DIR: finished stages are skipped, interrupted "
                   "ones continue (training from its checkpoints)")
    p.add_argument("--only", metavar="STAGE[,STAGE]", help="run only these stages")
    p.add_argument("--set", action="append", default=[], dest="overrides",
                   metavar="STAGE.KNOB=VALUE", help="change a stage's budget (repeatable)")
    p.add_argument("--list", action="store_true",
                   help="list the stages with their knobs and budgets, and exit")
    p.set_defaults(func=run)


def listing() -> str:
    """The stages, what each runs, its knobs (quick / full) and its checks and targets."""
    from proxcompress.reproduce.registry import STAGES

    lines = []
    for s in STAGES:
        lines.append(f"{s.name} ({', '.join('--' + m for m in s.modes)}): {s.title}")
        for key, param in s.params.items():
            lines.append(f"    {s.name}.{key}: quick {param.quick!r}, full {param.full!r}"
                         f"  -- {param.help}")
        for rule in s.checks:
            lines.append(f"    check  {rule.name}: {rule.statement}")
        for rule in s.targets:
            lines.append(f"    target {rule.name}: {rule.statement}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Validate every flag and ``--out`` (bad input raises ``InvalidInputError``, exit 2),
    then run; returns the exit code."""
    if args.list:
        print(listing())
        return 0
    if not args.out:
        raise InvalidInputError("--out", "is required (the folder the report goes to)")
    from proxcompress.reproduce.runner import execute, plan

    only = args.only.split(",") if args.only is not None else None
    return execute(plan(args.out, args.mode, resume=args.resume, only=only,
                        overrides=args.overrides))


__all__ = ["add_parsers", "listing", "run"]
