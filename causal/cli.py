"""``proxcompress causal``: the causal-direction test on two columns of a CSV file, or on a
simulated heterogeneous pair.

::

    proxcompress causal --csv DATA.csv --x COLUMN --y COLUMN [--k auto|K] [--json OUT.json]
    proxcompress causal --simulate K [--n 300] [--seed 0] [--json OUT.json]

The CSV file has a header row; the two columns must hold finite numbers in every non-blank row.
Exit codes: 0 a direction was decided, 1 undecided (equal evidence), 2 bad input (every flag and
the --json target are checked before any work; a constant column is the only data refused for
its values: discretised columns with as few as two levels are answered, with a "weak evidence"
note). The JSON report (written atomically, only after the whole test) holds the decision, both
directions' k, BIC path, statistic, p-value and log p-value, the evidence notes, and for
``--simulate`` the true direction.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxcompress.errors import InvalidInputError

from .options import (
    CRITERIA,
    DECISIONS,
    DEFAULT_DECISION,
    DEFAULT_NOISE,
    MIN_SAMPLES,
    NOISES,
    POOLINGS,
)

if TYPE_CHECKING:
    import numpy as np

EXIT_OK = 0
EXIT_UNDECIDED = 1
DEFAULT_N = 300
DEFAULT_PERMUTATIONS = 500
#: the --test choices (the tests themselves are built in :func:`_run`)
TESTS = ("gamma", "permutation", "max-bandwidth")


def read_columns(path: Path, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """Columns ``x`` and ``y`` of a CSV file with a header row (UTF-8, a byte-order mark
    allowed; blank lines skipped), as float64 arrays."""
    import numpy as np

    if not path.is_file():
        raise InvalidInputError("--csv", f"{path} is not a file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInputError("--csv", f"{path} cannot be read as UTF-8 CSV: {exc}") from None
    if not rows:
        raise InvalidInputError("--csv", f"{path} is empty")
    header = [name.strip() for name in rows[0]]
    columns = []
    for flag, name in (("--x", x), ("--y", y)):
        if header.count(name) != 1:
            problem = "is not in" if name not in header else "appears more than once in"
            raise InvalidInputError(flag, f"column {name!r} {problem} the header {header}")
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


def _check_flags(args: argparse.Namespace) -> None:
    """Every flag in range, and no flag that this run would ignore, before any work."""
    for flag, value, low in (("--n", args.n, MIN_SAMPLES), ("--seed", args.seed, 0),
                             ("--k-max", args.k_max, 1), ("--simulate", args.simulate, 1),
                             ("--permutations", args.permutations, 1)):
        if value is not None and value < low:
            raise InvalidInputError(flag, f"{value} is outside [{low}, inf)")
    if args.simulate is not None:
        for flag, value in (("--csv", args.csv), ("--x", args.x), ("--y", args.y)):
            if value is not None:
                raise InvalidInputError(flag, "give --csv, --x and --y, or --simulate, not both")
    else:
        if args.csv is None or args.x is None or args.y is None:
            raise InvalidInputError("--csv", "give --csv FILE with --x COLUMN and --y COLUMN, "
                                    "or --simulate K")
        if args.n is not None:
            raise InvalidInputError("--n", "sets the size of --simulate only")
        if args.x == args.y:
            raise InvalidInputError("--y", f"the same column as --x ({args.x!r})")
    if args.permutations is not None and args.test == "gamma":
        raise InvalidInputError("--permutations", "applies to --test permutation or "
                                "max-bandwidth only")
    if args.noise == "loglinear-bic" and args.criterion != "classification":
        raise InvalidInputError("--criterion", "--noise loglinear-bic chooses k by its own "
                                "classification BIC; give --criterion classification")


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
    from .independence import HSICGamma, HSICMaxBandwidth, HSICPermutation, IndependenceTest
    from .simulate import simulate_mixture

    _check_flags(args)
    truth = None
    if args.simulate is not None:
        pair = simulate_mixture(args.n or DEFAULT_N, args.simulate, seed=args.seed)
        x, y, names, truth = pair.x, pair.y, ("x", "y"), pair.direction
    else:
        x, y = read_columns(Path(args.csv), args.x, args.y)
        args._field_flags = {"n": "--csv"}  # the sample count is the file's, not --n's
        names = (args.x, args.y)
    tests: dict[str, Callable[[], IndependenceTest]] = {  # --test -> the independence test
        "gamma": lambda: HSICGamma(seed=args.seed),
        "permutation": lambda: HSICPermutation(
            permutations=args.permutations or DEFAULT_PERMUTATIONS, seed=args.seed),
        "max-bandwidth": lambda: HSICMaxBandwidth(
            permutations=args.permutations or HSICMaxBandwidth.permutations, seed=args.seed),
    }
    test = tests[args.test]()
    result = causal_direction(x, y, k=args.k, k_max=args.k_max, criterion=args.criterion,
                              test=test, pooling=args.pooling, noise=args.noise,
                              decision=args.decision, names=names)
    report: dict[str, Any] = {"n": int(x.size), **result.as_dict()}
    if truth is not None:
        report["true_direction"] = truth
    for fit in (result.forward, result.backward):
        print(f"{fit.cause} -> {fit.effect}: k = {fit.mechanisms.k}, HSIC n*stat = "
              f"{fit.test.statistic:.4g}, p = {fit.test.p_value:.3g}"
              + ("" if fit.likelihood is None
                 else f", log-likelihood = {fit.likelihood.total:.6g}"))
    arrow = {"x->y": f"{names[0]} -> {names[1]}", "y->x": f"{names[1]} -> {names[0]}"}
    print(f"direction: {arrow.get(result.direction, 'undecided')}"
          + (f" (true: {arrow[truth]})" if truth else ""))
    for note in result.notes:
        print(f"weak evidence: {note}")
    if args.json:
        write_json_atomic(args.json, report)
    return EXIT_OK if result.direction != "undecided" else EXIT_UNDECIDED


def add_parsers(subparsers: Any) -> None:
    """Register the ``causal`` subcommand."""
    from proxcompress.outputs import add_output

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
    data.add_argument("--n", type=int, help=f"samples of --simulate (default {DEFAULT_N})")
    data.add_argument("--seed", type=int, default=0,
                      help="seed of --simulate, of the permutations and of the HSIC subsample "
                      "above 3000 pairs (default 0)")
    method = parser.add_argument_group("method ([U] choices, docs/causal.md)")
    method.add_argument("--k", type=_k, default=None, metavar="auto|K",
                        help="mechanisms per direction: auto (BIC, default) or K; 1 = plain ANM")
    method.add_argument("--k-max", type=int, default=4, help="largest k tried by auto (default 4)")
    method.add_argument("--criterion", choices=CRITERIA, default="classification",
                        help="what chooses k under auto: the classification (default) or "
                        "mixture BIC; heldout (cross-fitted location-scale likelihood over the "
                        "path); heldout-or-one (it chooses between k = 1 and the classification "
                        "BIC's k)")
    method.add_argument("--pooling", choices=POOLINGS, default="centred",
                        help="how cluster labels adjust the test (default centred)")
    method.add_argument("--noise", choices=NOISES, default=DEFAULT_NOISE,
                        help="noise model tested: additive, location-scale (residuals "
                        "divided by their fitted scale), loglinear-scale (by a fitted "
                        "exp(a + b cause) scale; default) or loglinear-bic (that scale model "
                        "fitted by maximum likelihood in the clustering and its BIC; needs "
                        "--criterion classification); docs/causal.md")
    method.add_argument("--decision", choices=DECISIONS, default=DEFAULT_DECISION,
                        help="how the directions are compared: hsic (larger p-value), "
                        "likelihood, entropy or heldout-likelihood (location-scale likelihood per "
                        "mechanism), hsic-else-likelihood (the p-values where one direction "
                        "passes at 5%%, the likelihood where both are rejected; default), "
                        "hsic-unless-close (docs/causal.md)")
    method.add_argument("--test", choices=TESTS, default="gamma",
                        help="HSIC p-value: gamma approximation (default) or permutations; "
                        "max-bandwidth: the maximum standardised HSIC over a bandwidth grid, "
                        "permutation-calibrated (docs/causal.md)")
    method.add_argument("--permutations", type=int,
                        help=f"permutations of --test permutation (default {DEFAULT_PERMUTATIONS}) "
                        "or max-bandwidth (default 200)")
    add_output(parser, "--json", metavar="OUT", help="write the report as JSON")
    parser.set_defaults(func=_run)
