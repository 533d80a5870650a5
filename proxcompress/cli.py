"""The ``proxcompress`` command.

Each wing contributes subcommands through a small module exposing
``add_parsers(subparsers)``; every subparser sets ``func(args) -> int`` (the exit code).
Heavy imports (solvers, torch, sympy) happen inside ``func``, so ``--help`` stays fast.

Exit codes: 0 success, 1 a check failed, 2 bad input, 3 time limit reached.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from proxcompress import __version__
from proxcompress.errors import InvalidInputError

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
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args))
    except (InvalidInputError, FileNotFoundError) as exc:
        print(f"proxcompress {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
