"""The ``proxcompress`` command.

Each wing contributes subcommands through a small module exposing
``add_parsers(subparsers)``; every subparser sets ``func(args) -> int`` (the exit code).
Heavy imports (solvers, torch, sympy) happen inside ``func``, so ``--help`` stays fast.

Exit codes: 0 success, 1 a check failed, 2 bad input, 3 time limit reached, 130 interrupted.

Before a command runs, :func:`main` checks every output path it declared
(:func:`proxcompress.outputs.add_output`); an :class:`InvalidInputError` from anywhere in the
command is reported in one line, exit 2, with its field renamed to the command's flag where the
field is a flag's destination (``time_limit`` -> ``--time-limit``) or a name the command maps
with ``set_defaults(_field_flags={"n_groups": "--groups"})``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from proxcompress import __version__
from proxcompress.errors import InvalidInputError
from proxcompress.outputs import check_outputs

# modules that register subcommands, in the order they appear in --help
_COMMAND_MODULES = (
    "proxcompress.reproduce.cli",
    "proxcompress.formulations.cli",
    "proxcompress.proofs.cli",
    "proxcompress.training.cli",
    "proxcompress.training.data_cli",
    "proxcompress.causal.cli",
)

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every wing's subcommands."""
    parser = argparse.ArgumentParser(
        prog="proxcompress",
        description="Neural-network compression with guarantees.",
    )
    parser.add_argument("--version", action="version", version=f"proxcompress {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code.

    A reader that closes the pipe early (``proxcompress ... | head``) ends the command quietly
    with exit code 141 (128 + SIGPIPE, what a shell reports for a tool killed by SIGPIPE), no
    traceback: the rest of the output goes to ``/dev/null``.
    """
    return quiet_on_closed_pipe(lambda: _main(argv))


def quiet_on_closed_pipe(run: Callable[[], int | None]) -> int:
    """``run()`` as an entry point whose reader may close the pipe early (``... | head``):
    its exit code (``None`` counts as 0), or 141 with no traceback when stdout's reader is gone;
    the rest of the output goes to ``/dev/null``. The command line and every ``benchmarks/``
    script end through this one function."""
    try:
        code = run()
        sys.stdout.flush()  # a closed pipe shows here when the output was small
        return 0 if code is None else int(code)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail
        os.close(devnull)
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    command = _command_parser(parser, args)
    try:
        check_outputs(args)
        return int(args.func(args))
    except InvalidInputError as exc:
        flag = _field_flags(command, args).get(exc.field, exc.field)
        print(f"{command.prog}: error: {flag}: {' '.join(exc.detail.split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as exc:
        print(f"{command.prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{command.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace
                    ) -> argparse.ArgumentParser:
    """The (sub-)parser that parsed the command (``data speech`` is two levels down)."""
    current = parser
    while True:
        sub = next((a for a in current._actions if isinstance(a, argparse._SubParsersAction)),
                   None)
        name = getattr(args, sub.dest, None) if sub is not None else None
        if sub is None or name is None:
            return current
        current = sub.choices[name]


def _field_flags(command: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """Field name -> flag: every option's destination, then the command's own aliases."""
    flags = {a.dest: max(a.option_strings, key=len) for a in command._actions
             if a.option_strings and a.dest != "help"}
    flags.update(getattr(args, "_field_flags", None) or {})
    return flags


if __name__ == "__main__":
    sys.exit(main())
