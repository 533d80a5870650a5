"""``proxcompress causal``: the causal-direction test on two columns of a CSV file, or on a
simulated heterogeneous pair.

::

    proxcompress causal --csv DATA.csv --x COLUMN --y COLUMN [--k auto|K] [--json OUT.json]
    proxcompress causal --simulate K [--n 300] [--seed 0] [--json OUT.json]

The CSV file has a header row; the two columns must hold finite numbers in every row. Exit codes:
0 a direction was decided, 1 undecided (equal evidence), 2 bad input. The JSON report (written
atomically, only after the whole test) holds the decision, both directions' k, BIC path,
statistic and p-value, and for ``--simulate`` the true direction.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np

from proxcompress.errors import InvalidInputError

EXIT_OK = 0
EXIT_UNDECIDED = 1


def read_columns(path: Path, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """Columns ``x`` and ``y`` of a CSV file with a header row, as float64 arrays."""
    if not path.is_file():
        raise InvalidInputError("--csv", f"{path} is not a file")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise InvalidInputError("--csv", f"{path} is empty")
    header = [name.strip() for name in rows[0]]
    columns = []
    for flag, name in (("--x", x), ("--y", y)):
        if name not in header:
            raise InvalidInputError(flag, f"column {name!r} is not in the header {header}")
        columns.append(header.index(name))
    values = np.empty((len(rows) - 1, 2))
    for r, row in enumerate(rows[1:], start=2):
        for j, (flag, c) in enumerate(zip(("--x", "--y"), columns, strict=True)):
            cell = row[c].strip() if c < len(row) else ""
            try:
                values[r - 2, j] = float(cell)
            except ValueError:
                raise InvalidInputError(
                    flag, f"row {r}, column {header[c]!r}: {cell!r} is not a number"
                ) from None
            if not np.isfinite(values[r - 2, j]):
                raise InvalidInputError(
                    flag, f"row {r}, column {header[c]!r}: {cell!r} is not finite"
                )
    return values[:, 0], values[:, 1]


def _k(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor an integer") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"{k} is outside [1, inf)")
    return k


def _run(args: argparse.Namespace) -> int:
    from proxcompress.atomic import write_json_atomic

    from .direction import causal_direction
    from .independence import HSICGamma, HSICPermutation
    from .simulate import simulate_mixture

    truth = None
    if args.simulate is not None:
        if args.csv is not None:
            raise InvalidInputError("--simulate", "give --csv or --simulate, not both")
        pair = simulate_mixture(args.n, args.simulate, seed=args.seed)
        x, y, names, truth = pair.x, pair.y, ("x", "y"), pair.direction
    else:
        if args.csv is None or args.x is None or args.y is None:
            raise InvalidInputError("--csv", "give --csv FILE with --x COLUMN and --y COLUMN, "
                                    "or --simulate K")
        if args.x == args.y:
            raise InvalidInputError("--y", f"the same column as --x ({args.x!r})")
        x, y = read_columns(Path(args.csv), args.x, args.y)
        names = (args.x, args.y)
    test = (HSICGamma() if args.test == "gamma"
            else HSICPermutation(permutations=args.permutations, seed=args.seed))
    result = causal_direction(x, y, k=args.k, k_max=args.k_max, criterion=args.criterion,
                              test=test, pooling=args.pooling, names=names)
    report: dict[str, Any] = {"n": int(x.size), **result.as_dict()}
    if truth is not None:
        report["true_direction"] = truth
    for fit in (result.forward, result.backward):
        print(f"{fit.cause} -> {fit.effect}: k = {fit.mechanisms.k}, HSIC n*stat = "
              f"{fit.test.statistic:.4g}, p = {fit.test.p_value:.3g}")
    arrow = {"x->y": f"{names[0]} -> {names[1]}", "y->x": f"{names[1]} -> {names[0]}"}
    print(f"direction: {arrow.get(result.direction, 'undecided')}"
          + (f" (true: {arrow[truth]})" if truth else ""))
    if args.json:
        write_json_atomic(args.json, report)
    return EXIT_OK if result.direction != "undecided" else EXIT_UNDECIDED


def add_parsers(subparsers: Any) -> None:
    """Register the ``causal`` subcommand."""
    parser = subparsers.add_parser(
        "causal",
        help="causal direction of two variables from a heterogeneous population (ANM + "
        "mechanism clustering)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--csv", metavar="FILE", help="CSV file with a header row")
    data.add_argument("--x", metavar="COLUMN", help="first variable's column")
    data.add_argument("--y", metavar="COLUMN", help="second variable's column")
    data.add_argument("--simulate", type=int, metavar="K",
                      help="instead: a simulated pair from K mechanisms (causal.simulate_mixture)")
    data.add_argument("--n", type=int, default=300, help="samples of --simulate (default 300)")
    data.add_argument("--seed", type=int, default=0,
                      help="seed of --simulate and of the permutation test (default 0)")
    method = parser.add_argument_group("method ([U] choices, docs/causal.md)")
    method.add_argument("--k", type=_k, default=None, metavar="auto|K",
                        help="mechanisms per direction: auto (BIC, default) or K; 1 = plain ANM")
    method.add_argument("--k-max", type=int, default=4, help="largest k tried by auto (default 4)")
    method.add_argument("--criterion", choices=("classification", "mixture"),
                        default="classification",
                        help="BIC likelihood of auto (default classification)")
    method.add_argument("--pooling", choices=("centred", "standardized", "fisher"),
                        default="centred",
                        help="how cluster labels adjust the test (default centred)")
    method.add_argument("--test", choices=("gamma", "permutation"), default="gamma",
                        help="HSIC p-value: gamma approximation (default) or permutations")
    method.add_argument("--permutations", type=int, default=500,
                        help="permutations of --test permutation (default 500)")
    parser.add_argument("--json", metavar="OUT", help="write the report as JSON")
    parser.set_defaults(func=_run)
