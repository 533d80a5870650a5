"""``proxcompress verify``: certify quantizer pairs and the SPR derivation from the command line.

::

    proxcompress verify --all [--json OUT.json] [--markdown OUT.md]
    proxcompress verify --name bnn++ [--name bnn+]
    proxcompress verify --prox "EXPR" --backward "EXPR" [--forward "EXPR"] [--levels -1,1]
    proxcompress verify --spr
    proxcompress verify --run RUN_DIR [--run RUN_DIR ...] [--json OUT.json] [--markdown OUT.md]

``--run`` certifies exactly the pairs a training run used, with its parameters (``beta``, where
``B'`` is taken, its latent clipping and its range of ``mu``), read from the run's
``config.yaml`` and ``summary.json`` (:mod:`proxcompress.training.certify`), and SPR's
derivation for an SPR run.

Exit codes: 0 every requested certificate passes, 1 one fails (the table names the check and
the text below it the counterexample), 2 bad input. SymPy is imported inside the command only.
"""

from __future__ import annotations

import argparse
from typing import Any

from proxcompress.errors import InvalidInputError

EXIT_OK = 0
EXIT_FAILED = 1
#: default seconds for parsing, synthesizing and certifying a user pair
DEFAULT_BUDGET = 60.0
#: what SymPy may raise on an expression that passed the parser's checks but that it cannot
#: analyse: reported as bad input naming the pair's flags, not as a traceback
_ANALYSIS_ERRORS = (TypeError, ValueError, ZeroDivisionError, OverflowError, RecursionError,
                    AttributeError, NotImplementedError, IndexError, KeyError)

_EPILOG = """\
expressions are SymPy strings in x (and optionally mu > 0), e.g.
  --prox "(x + mu*sign(x))/(1 + mu)" --backward "tanh(2*x)"
allowed: + - * / ** ^, < <= > >=, & | ~, Piecewise, Min, Max, Abs, sign, Heaviside, Eq, Ne,
sqrt, exp, log, sin, cos, tan, sinh, cosh, tanh, atan, erf, SignSwish(u[, beta]), sigmoid,
hardtanh, clip(u, lo, hi), pi, E. Without --forward, F is synthesized as B o P.

[U] formalization choices (methods.md section 1): --composition BoP (default) or PoB;
--derivative-at prox (default: B' at P(w)) or latent (B' at w).
"""


def add_parsers(subparsers: Any) -> None:
    """Register the ``verify`` subcommand."""
    from proxcompress.checks import cli_float
    from proxcompress.outputs import add_output

    parser = subparsers.add_parser(
        "verify",
        help="certify forward/backward quantizer pairs (PC++ criterion) and the SPR closed form",
        description="Check, symbolically, that quantizer pairs satisfy the PC++ decomposition\n"
        "criterion (F = B o P, P a proximal quantizer, B Lipschitz) and that the SPR\n"
        "closed form equals its defining minimization.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("what to verify")
    what.add_argument("--all", action="store_true",
                      help="every catalogue pair and the SPR derivation")
    what.add_argument("--name", action="append", metavar="NAME",
                      help="a catalogue pair, e.g. bnn++ (repeatable)")
    what.add_argument("--spr", action="store_true", help="the SPR derivation")
    what.add_argument("--run", action="append", metavar="RUN_DIR",
                      help="a 'proxcompress train' run folder: certify the pairs it trained "
                      "with, parameters included (repeatable)")
    what.add_argument("--prox", metavar="EXPR", help="P of a user pair")
    what.add_argument("--backward", metavar="EXPR", help="B of a user pair")
    what.add_argument("--forward", metavar="EXPR",
                      help="F of a user pair (default: synthesized B o P)")
    what.add_argument("--levels", metavar="L1,L2,...",
                      help="declared value set of lim_(mu->oo) P for a user pair "
                      "(write --levels=-1,1)")
    what.add_argument("--pair-name", default="custom", metavar="NAME",
                      help="name of the user pair in reports (default: custom)")
    what.add_argument("--time-limit", type=cli_float(0.0, None, low_open=True),
                      default=DEFAULT_BUDGET, metavar="S",
                      help="seconds the analysis of a user pair may take (default "
                      f"{DEFAULT_BUDGET:g}); past it the pair is refused (exit 2)")
    form = parser.add_argument_group("formalization [U]")
    form.add_argument("--composition", choices=("BoP", "PoB"), default="BoP",
                      help="F = B o P (default) or F = P o B")
    form.add_argument("--derivative-at", choices=("prox", "latent"), default="prox",
                      help="where the criterion evaluates B': at P(w) (default) or at w")
    form.add_argument("--method-derivative-at", choices=("prox", "latent"), default=None,
                      help="where the user pair's method evaluates B' (default: as the "
                      "criterion)")
    out = parser.add_argument_group("output (written together, only after every check ran)")
    add_output(out, "--json", metavar="OUT.json", help="write the certificates as JSON")
    add_output(out, "--markdown", metavar="OUT.md", help="write the tables as Markdown")
    parser.set_defaults(func=run)


def _levels(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInputError("--levels", f"{text!r} is not a comma-separated list of numbers"
                                ) from None
    if not values:
        raise InvalidInputError("--levels", "is empty")
    return values


def _output_target(flag: str, path: str | None) -> None:
    """Refuse, before any work, an output path that is a folder or lies in a missing one."""
    if path is None:
        return
    from pathlib import Path

    target = Path(path)
    if target.is_dir():
        raise InvalidInputError(flag, f"{path!r} is a folder")
    if not target.parent.is_dir():
        raise InvalidInputError(flag, f"the folder of {path!r} does not exist")


def _validate(args: argparse.Namespace) -> None:
    custom = args.prox is not None or args.backward is not None or args.forward is not None
    _output_target("--json", args.json)
    _output_target("--markdown", args.markdown)
    if args.run:
        others = [flag for flag, used in (("--all", args.all), ("--name", args.name),
                                          ("--spr", args.spr), ("--prox/--backward", custom))
                  if used]
        if others:
            raise InvalidInputError("--run", f"cannot be combined with {', '.join(others)}")
        if args.composition != "BoP" or args.derivative_at != "prox":
            raise InvalidInputError("--run", "certifies under the adopted formalization; "
                                    "drop --composition / --derivative-at")
    if not (args.all or args.name or args.spr or custom or args.run):
        raise InvalidInputError(
            "verify", "nothing to verify: give --all, --name NAME, --spr, --prox/--backward "
            "or --run DIR")
    if args.all and (args.name or custom):
        raise InvalidInputError("--all", "cannot be combined with --name or --prox/--backward")
    if custom and (args.prox is None or args.backward is None):
        raise InvalidInputError("--prox/--backward", "a user pair needs both --prox and "
                                "--backward (--forward is optional)")
    for flag, value in (("--levels", args.levels),
                        ("--method-derivative-at", args.method_derivative_at)):
        if value is not None and not custom:
            raise InvalidInputError(flag, "applies to a user pair (--prox/--backward) only")


def run(args: argparse.Namespace) -> int:
    """Run ``verify``; returns the exit code (bad input raises ``InvalidInputError``)."""
    _validate(args)
    from proxcompress.atomic import json_text, text_writer, write_all_atomic
    from proxcompress.proofs.certificate import Report
    from proxcompress.proofs.checks import CheckOptions, certify
    from proxcompress.proofs.pairs import get_pair, pair_names
    from proxcompress.proofs.report import render_markdown, render_text, to_json
    from proxcompress.proofs.spr import derive_spr

    if args.run:
        return _run_runs(args)
    options = CheckOptions(composition=args.composition, derivative_at=args.derivative_at)
    names = list(pair_names()) if args.all else list(args.name or [])
    pairs = [get_pair(name) for name in names]
    reports: list[Report] = [certify(pair, options) for pair in pairs]
    if args.prox is not None:
        reports.append(_user_pair(args, options))
    if args.all or args.spr:
        reports.append(derive_spr())
    print(render_text(reports, options), end="")
    outputs = []
    if args.json:
        outputs.append((args.json, text_writer(json_text(to_json(reports, options)))))
    if args.markdown:
        outputs.append((args.markdown, text_writer(render_markdown(reports, options))))
    write_all_atomic(outputs)
    return EXIT_OK if all(r.passed for r in reports) else EXIT_FAILED


def _user_pair(args: argparse.Namespace, options: Any) -> Any:
    """Parse, synthesize and certify the user pair within ``--time-limit`` seconds."""
    from proxcompress.errors import InvalidInputError as Invalid
    from proxcompress.proofs.checks import certify
    from proxcompress.proofs.parse import time_budget
    from proxcompress.proofs.synthesis import make_pair

    field = "--prox/--backward" + ("/--forward" if args.forward is not None else "")
    levels = _levels(args.levels)
    try:
        with time_budget(args.time_limit, field, "analysing the pair"):
            pair = make_pair(
                args.backward, args.prox, forward=args.forward, name=args.pair_name,
                levels=levels, method_derivative_at=args.method_derivative_at or
                args.derivative_at, options=options,
            )
            return certify(pair, options)
    except Invalid:
        raise
    except _ANALYSIS_ERRORS as exc:
        raise InvalidInputError(field, f"SymPy cannot analyse this pair ({type(exc).__name__}: "
                                f"{' '.join(str(exc).split())[:200]})") from None


def _run_runs(args: argparse.Namespace) -> int:
    """``--run DIR ...``: every run's own pairs; the runs are read (and refused) first."""
    from proxcompress.atomic import json_text, text_writer, write_all_atomic
    from proxcompress.proofs.report import render_markdown, render_text, to_json
    from proxcompress.training.certify import certify_run, run_config, run_pairs

    for folder in args.run:  # bad input before any analysis
        run_pairs(run_config(folder), folder)
    results = [(folder, certify_run(folder)) for folder in args.run]
    text, markdown, records = [], [], []
    for folder, result in results:
        reports, options = result["reports"], result["options"]
        head = [f"run {folder}:"] + [f"  {note}" for note in result["notes"]]
        text.append("\n".join(head) + "\n" + (render_text(reports, options[0] if options
                                                          else None) if reports else ""))
        markdown.append(f"### Run `{folder}`\n\n" + "".join(f"* {note}\n" for note in
                                                             result["notes"]) + "\n"
                        + (render_markdown(reports, options[0] if options else None)
                           if reports else ""))
        record = to_json(reports, options[0] if options else None)
        record["run"] = folder
        record["pairs_trained"] = [
            {"role": rp.role, "name": rp.name, "parameters": rp.parameters,
             "derivative_at": rp.derivative_at, "latent_bound": rp.latent_bound,
             "mu_values": [str(m) for m in rp.mu_values], "label": rp.label()}
            for rp in result["pairs"]]
        record["notes"] = result["notes"]
        records.append(record)
    print("\n".join(text), end="")
    passed = all(r["passed"] for r in records)
    outputs = []
    if args.json:
        outputs.append((args.json, text_writer(json_text(
            {"tool": "proxcompress verify --run", "passed": passed, "runs": records}))))
    if args.markdown:
        outputs.append((args.markdown, text_writer("\n".join(markdown))))
    write_all_atomic(outputs)
    return EXIT_OK if passed else EXIT_FAILED


__all__ = ["add_parsers", "run"]
