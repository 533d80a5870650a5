"""``proxcompress solve``, ``proxcompress compare`` and ``proxcompress instance``.

Heavy imports (solvers) happen inside the command functions so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxcompress.formulations.solution import Solution

EXIT_OK, EXIT_BAD_INPUT, EXIT_TIME_LIMIT = 0, 2, 3
_NAMES = ("bigm", "perspective", "cuts", "bnb", "brute")


def example_path() -> Path:
    """The bundled example instance (12 groups, n = 200, m = 2)."""
    return Path(str(resources.files("proxcompress.formulations") / "data" / "example.npz"))


def _seconds() -> Any:
    from proxcompress.checks import cli_float

    return cli_float(0.0, None, low_open=True)


def add_parsers(subparsers: Any) -> None:
    """Register the formulations wing's subcommands."""
    from proxcompress.outputs import add_output

    solve = subparsers.add_parser(
        "solve",
        help="solve a layer-pruning instance (.npz) exactly with one formulation",
        description="Solve INSTANCE.npz (arrays X, Y, groups; scalars lam, alpha, M, optional k). "
        "Exit code 0 when solved to optimality, 3 on the time limit (best solution and bound "
        "reported), 2 on bad input.",
    )
    solve.add_argument("instance", type=Path, help="instance file (.npz, never unpickled)")
    solve.add_argument("--formulation", choices=_NAMES, default="bnb")
    solve.add_argument("--time-limit", type=_seconds(), default=None, metavar="S")
    add_output(solve, "--json", type=Path, default=None, metavar="OUT.json")
    solve.set_defaults(func=_run_solve)

    compare = subparsers.add_parser(
        "compare",
        help="solve one instance with every formulation and print them side by side",
        description="The main job: solve INSTANCE (default: the bundled example) with every "
        "formulation and the continuous relaxations, and print objective, bound, gap, time, "
        "nodes, and what was proved. Exit code 0 when every formulation proved optimality and "
        "they agree on the optimum, 1 when results contradict each other (two proved optima "
        "differ, or a solution or bound beats a proved optimum), 3 when the time limit stopped "
        "a formulation before it proved optimality (best objectives and bounds reported).",
    )
    compare.add_argument("instance", type=Path, nargs="?", default=None)
    compare.add_argument(
        "--formulations", default=",".join(_NAMES), help="comma-separated subset (default: all)"
    )
    compare.add_argument("--time-limit", type=_seconds(), default=60.0, metavar="S")
    add_output(compare, "--json", type=Path, default=None, metavar="OUT.json")
    compare.set_defaults(func=_run_compare)

    instance = subparsers.add_parser(
        "instance",
        help="write a random planted instance (.npz) for solve/compare",
        description="Write a random planted instance (formulations.random_instance, which "
        "checks every option: sizes >= 1 with n*d, n*m, d*m <= 2**25, seed in [0, 2**32-1], "
        "rho in (-1, 1), snr > 0, alpha in (0, 1), k >= 0).",
    )
    add_output(instance, "out", type=Path, help="output .npz")
    instance.add_argument("--n", type=int, default=500, help="samples")
    instance.add_argument("--d", type=int, default=None, help="features (default: --groups)")
    instance.add_argument("--m", type=int, default=1, help="outputs")
    instance.add_argument("--groups", type=int, default=30)
    instance.add_argument("--rho", type=float, default=0.0, help="AR(1) feature correlation")
    instance.add_argument("--snr", type=float, default=4.0)
    instance.add_argument("--alpha", type=float, default=0.5)
    instance.add_argument("--k", type=int, default=None)
    instance.add_argument("--seed", type=int, default=0)
    instance.set_defaults(func=_run_instance, _field_flags={"n_groups": "--groups"})


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Fixed-width text table; floats with 10 significant digits, tiny ones in 3-digit
    scientific notation."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            if value == 0 or 1e-3 <= abs(value) < 1e10:
                return f"{value:.10g}"
            return f"{value:.3e}"
        return str(value)

    cells = [[cell(row.get(col, "")) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _solution_row(solution: Solution) -> dict[str, Any]:
    return {
        "formulation": solution.formulation,
        "status": solution.status,
        "objective": solution.objective,
        "bound": solution.bound,
        "gap": solution.gap,
        "seconds": round(solution.seconds, 3),
        "nodes": solution.nodes,
        "kept": len(solution.support),
    }


def _run_solve(args: argparse.Namespace) -> int:
    from proxcompress.atomic import write_json_atomic
    from proxcompress.formulations import LayerPruningProblem, solve

    problem = LayerPruningProblem.from_npz(args.instance)
    solution = solve(problem, args.formulation, time_limit=args.time_limit)
    print(
        f"instance {args.instance}: n={problem.n} d={problem.d} m={problem.m} "
        f"groups={problem.n_groups} lam={problem.lam:g} alpha={problem.alpha:g} "
        f"M={problem.M:g} k={problem.k}"
    )
    print(format_table([_solution_row(solution)], list(_solution_row(solution))))
    print(f"support: {list(solution.support)}")
    if args.json is not None:
        write_json_atomic(args.json, solution.to_json())
    return EXIT_OK if solution.status == "optimal" else EXIT_TIME_LIMIT


def _run_compare(args: argparse.Namespace) -> int:
    from proxcompress.atomic import write_json_atomic
    from proxcompress.errors import InvalidInputError
    from proxcompress.formulations import LayerPruningProblem, solve
    from proxcompress.formulations.relaxations import relaxation, root_gap

    names = [name.strip() for name in args.formulations.split(",") if name.strip()]
    unknown = [name for name in names if name not in _NAMES]
    if unknown or not names:
        raise InvalidInputError(
            "--formulations", f"{unknown or names} not accepted; choose from {', '.join(_NAMES)}"
        )
    path = args.instance if args.instance is not None else example_path()
    problem = LayerPruningProblem.from_npz(path)
    print(
        f"instance {path.name}: n={problem.n} d={problem.d} m={problem.m} "
        f"groups={problem.n_groups} lam={problem.lam:g} alpha={problem.alpha:g} "
        f"M={problem.M:g} k={problem.k}"
    )
    solutions = []
    skipped = []
    for name in names:
        try:
            solutions.append(solve(problem, name, time_limit=args.time_limit))
        except InvalidInputError as exc:
            if name != "brute":  # brute alone may refuse a size it cannot enumerate
                raise
            skipped.append(f"brute skipped ({exc.field}: {exc.detail})")
    if not solutions:
        raise InvalidInputError("--formulations", f"nothing left to compare: {skipped[0]}; "
                                "add another formulation")
    for note in skipped:
        print(note)
    rows = [_solution_row(s) for s in solutions]
    verdict = proved_verdict(solutions)
    best = verdict["best_objective"]
    relaxations = [relaxation(problem, kind) for kind in ("bigm", "perspective")]
    for relaxed in relaxations:
        rows.append(
            {
                "formulation": f"{relaxed.kind} relaxation",
                "status": "root bound",
                "bound": relaxed.bound,
                "gap": root_gap(problem, relaxed.kind, best),
                "seconds": round(relaxed.seconds, 3),
            }
        )
    print(format_table(rows, list(_solution_row(solutions[0]))))
    print(f"supports: {sorted({s.support for s in solutions})}")
    print(verdict["message"])
    if args.json is not None:
        write_json_atomic(
            args.json,
            {
                "instance": str(path),
                "solutions": [s.to_json() for s in solutions],
                "relaxations": [
                    {"kind": r.kind, "bound": r.bound, "root_gap": root_gap(problem, r.kind, best)}
                    for r in relaxations
                ],
                **{k: v for k, v in verdict.items() if k != "message"},
            },
        )
    return {"agree": EXIT_OK, "disagree": 1, "not proved": EXIT_TIME_LIMIT}[verdict["verdict"]]


def proved_verdict(solutions: list[Solution]) -> dict[str, Any]:
    """What a set of solutions of one instance proves (``compare``'s last line and JSON).

    ``verdict`` is ``agree`` when every formulation proved optimality and all found the same
    objective and support; ``disagree`` when two proved optima differ, or any solution's
    objective lies below a proved optimum, or any bound above it (each impossible when the
    formulations are correct); ``not proved`` otherwise (a formulation stopped at its time
    limit): then only the best objective (an upper bound on the optimum) and the best bound (a
    lower bound) are claimed. Also returned: ``agree`` (``verdict == "agree"``), ``proved`` and
    ``not_proved`` (formulation names), ``best_objective``, ``best_bound`` and ``message``.
    """
    optimal = [s for s in solutions if s.status == "optimal"]
    open_ = [s for s in solutions if s.status != "optimal"]
    best = min(s.objective for s in solutions)
    best_bound = max(s.bound for s in solutions)

    def tol(value: float) -> float:
        return 1e-6 * max(1.0, abs(value))

    conflicts = []
    if optimal:
        ref = optimal[0]
        for s in optimal[1:]:
            if abs(s.objective - ref.objective) > tol(ref.objective) or s.support != ref.support:
                conflicts.append(f"{s.formulation} proved {s.objective:.10g} {list(s.support)} "
                                 f"but {ref.formulation} proved {ref.objective:.10g} "
                                 f"{list(ref.support)}")
        for s in open_:
            if s.objective < ref.objective - tol(ref.objective):
                conflicts.append(f"{s.formulation} found {s.objective:.10g}, below the optimum "
                                 f"{ref.objective:.10g} proved by {ref.formulation}")
            if s.bound > ref.objective + tol(ref.objective):
                conflicts.append(f"{s.formulation}'s bound {s.bound:.10g} exceeds the optimum "
                                 f"{ref.objective:.10g} proved by {ref.formulation}")
    if conflicts:
        verdict = "disagree"
        message = "FORMULATIONS DISAGREE: " + "; ".join(conflicts)
    elif not open_:
        verdict = "agree"
        ran = ", ".join(s.formulation for s in solutions)
        message = (f"all formulations run ({ran}) proved optimality and agree on the optimum "
                   f"{best:.10g} (support {list(optimal[0].support)})")
    else:
        verdict = "not proved"
        names = ", ".join(f"{s.formulation} ({s.status}: objective {s.objective:.10g}, bound "
                          f"{s.bound:.10g})" for s in open_)
        proved = (f"; optimality proved by {', '.join(s.formulation for s in optimal)} "
                  f"(optimum {optimal[0].objective:.10g}), consistent with the others"
                  if optimal else "")
        message = (f"optimality NOT proved by {names}{proved}; best objective {best:.10g}, "
                   f"best bound {best_bound:.10g}")
    return {
        "verdict": verdict,
        "agree": verdict == "agree",
        "proved": [s.formulation for s in optimal],
        "not_proved": [s.formulation for s in open_],
        "best_objective": best,
        "best_bound": best_bound,
        "message": message,
    }


def _run_instance(args: argparse.Namespace) -> int:
    from proxcompress.formulations import random_instance

    problem = random_instance(
        args.n,
        args.d if args.d is not None else args.groups,
        args.m,
        args.groups,
        args.seed,
        rho=args.rho,
        snr=args.snr,
        alpha=args.alpha,
        k=args.k,
    )
    problem.to_npz(args.out)
    print(
        f"wrote {args.out}: n={problem.n} d={problem.d} m={problem.m} groups={problem.n_groups} "
        f"lam={problem.lam:g} alpha={problem.alpha:g} M={problem.M:g}"
    )
    return EXIT_OK
