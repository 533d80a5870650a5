"""Exact structured pruning: time to proven optimality, nodes and root gaps per formulation.

Prints one JSON document (and writes it with ``--out``): the machine, library versions, and one
record per (instance, formulation) with seconds, nodes, status, objective, bound and gap, plus
root gaps of the big-M and perspective relaxations. Every solve of one instance is checked
against the others: a disagreement on the optimum is reported in ``agree``.

Instances: ``random_instance(n=500, d=G, m=1, n_groups=G)`` in two regimes, independent features
with strong signal (rho = 0, snr = 4) and correlated features with weak signal (rho = 0.8,
snr = 0.5), seeds 0..S-1.

Usage: ``python benchmarks/mip_pruning.py [--quick] [--out FILE.json]``; ``--render FILE.json``
prints the Markdown tables of docs/benchmarks.md from a saved run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from importlib import metadata
from typing import Any

from proxcompress.formulations import random_instance, solve
from proxcompress.formulations.bnb import root_bound
from proxcompress.formulations.perspective import solve_perspective
from proxcompress.formulations.relaxations import relaxation, root_gap

REGIMES = {"independent-strong": (0.0, 4.0), "correlated-weak": (0.8, 0.5)}


def _machine() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "versions": {
            pkg: metadata.version(pkg)
            for pkg in ("numpy", "numba", "pyomo", "highspy", "cvxpy", "ecos", "pyscipopt")
        },
    }


def _solvers(groups: int) -> dict[str, Any]:
    """Which formulations to run at this size (the slow ones are skipped where they only time
    out; ECOS_BB has no time limit, so it runs only where it finishes)."""
    out: dict[str, Any] = {"bnb": lambda p, t: solve(p, "bnb", t)}
    if groups <= 100:
        out["bigm"] = lambda p, t: solve(p, "bigm", t)
        out["perspective-scip"] = lambda p, t: solve_perspective(p, t, solver="SCIP")
        out["cuts"] = lambda p, t: solve(p, "cuts", t)
    if groups <= 30:
        out["perspective-ecos_bb"] = lambda p, t: solve_perspective(p, t, solver="ECOS_BB")
    return out


def run_instance(
    groups: int, regime: str, seed: int, alpha: float, time_limit: float
) -> list[dict[str, Any]]:
    """Solve one instance with every formulation that applies; one record each."""
    rho, snr = REGIMES[regime]
    problem = random_instance(500, groups, 1, groups, seed, rho=rho, snr=snr, alpha=alpha)
    records = []
    for name, run in _solvers(groups).items():
        start = time.perf_counter()
        solution = run(problem, time_limit)
        records.append(
            {
                "groups": groups,
                "regime": regime,
                "seed": seed,
                "alpha": alpha,
                "formulation": name,
                "status": solution.status,
                "seconds": time.perf_counter() - start,
                "nodes": solution.nodes,
                "objective": solution.objective,
                "bound": solution.bound,
                "gap": solution.gap,
                "support": list(solution.support),
            }
        )
    optimal = [r for r in records if r["status"] == "optimal"]
    best = min(r["objective"] for r in records)
    agree = all(
        abs(r["objective"] - best) <= 1e-6 * abs(best) and r["support"] == optimal[0]["support"]
        for r in optimal
    )
    roots = {kind: root_gap(problem, kind, best) for kind in ("bigm", "perspective")}
    shifted = (best - root_bound(problem)) / abs(best)
    for record in records:
        record.update(
            agree=agree,
            root_gap_bigm=roots["bigm"],
            root_gap_perspective=roots["perspective"],
            root_gap_bnb_shifted=shifted,
        )
        print(json.dumps({k: v for k, v in record.items() if k != "support"}), flush=True)
    return records


def alpha_sweep(groups: int, regime: str, seeds: int, alphas: list[float]) -> list[dict[str, Any]]:
    """Root gaps of both relaxations as alpha varies, and the share of the big-M gap closed."""
    rows = []
    rho, snr = REGIMES[regime]
    for alpha in alphas:
        closed = []
        gaps = []
        for seed in range(seeds):
            problem = random_instance(500, groups, 1, groups, seed, rho=rho, snr=snr, alpha=alpha)
            optimum = solve(problem, "bnb").objective
            bigm = relaxation(problem, "bigm").bound
            persp = relaxation(problem, "perspective").bound
            gaps.append(
                (
                    root_gap(problem, "bigm", optimum),
                    root_gap(problem, "perspective", optimum),
                    (optimum - root_bound(problem)) / abs(optimum),
                )
            )
            closed.append((persp - bigm) / (optimum - bigm) if optimum > bigm else 1.0)
        row = {
            "groups": groups,
            "regime": regime,
            "alpha": alpha,
            "root_gap_bigm_median": statistics.median(g[0] for g in gaps),
            "root_gap_perspective_median": statistics.median(g[1] for g in gaps),
            "bigm_gap_closed_median": statistics.median(closed),
            "root_gap_bnb_shifted_median": statistics.median(g[2] for g in gaps),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def bnb_alpha_sweep(
    groups: int, seeds: int, alphas: list[float], time_limit: float
) -> list[dict[str, Any]]:
    """bnb alone at ``groups`` groups as alpha varies (small alpha = weak perspective)."""
    rows = []
    for regime, (rho, snr) in REGIMES.items():
        for alpha in alphas:
            for seed in range(seeds):
                problem = random_instance(
                    500, groups, 1, groups, seed, rho=rho, snr=snr, alpha=alpha
                )
                solution = solve(problem, "bnb", time_limit)
                row = {
                    "groups": groups,
                    "regime": regime,
                    "alpha": alpha,
                    "seed": seed,
                    "status": solution.status,
                    "seconds": solution.seconds,
                    "nodes": solution.nodes,
                    "gap": solution.gap,
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def _median_percent(rows: list[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in rows if key in r]
    return f"{statistics.median(values):.2%}" if values else "-"


def render(result: dict[str, Any]) -> str:
    """Markdown tables (medians over seeds) from one saved run."""
    runs = result["runs"]
    names = ["bnb", "bigm", "perspective-scip", "perspective-ecos_bb", "cuts"]
    lines = [
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; "
        f"load average {result['machine']['loadavg_at_start'][0]:.1f} at start. "
        f"n = {result['n']}, m = {result['m']}, alpha = {runs[0]['alpha']}, time limit "
        f"{result['time_limit']:g} s. Cells: median seconds (median nodes) over the seeds; "
        "`TL` = some seed hit the time limit (median gap in brackets); `-` = not run.",
        "",
        "| regime | groups | " + " | ".join(names) + " | bnb speed-up vs best SCIP/ECOS_BB "
        "| root gap big-M | root gap perspective | root gap bnb (shifted) | all agree |",
        "|---|---|" + "---|" * (len(names) + 5),
    ]
    keys = sorted({(r["regime"], r["groups"]) for r in runs}, key=lambda k: (k[0], k[1]))
    for regime, groups in keys:
        rows = [r for r in runs if r["regime"] == regime and r["groups"] == groups]
        cells, medians = [], {}
        for name in names:
            mine = [r for r in rows if r["formulation"] == name]
            if not mine:
                cells.append("-")
                continue
            seconds = statistics.median(r["seconds"] for r in mine)
            nodes = statistics.median(r["nodes"] for r in mine)
            medians[name] = seconds
            if any(r["status"] != "optimal" for r in mine):
                gap = statistics.median(r["gap"] for r in mine)
                cells.append(f"TL {seconds:.3g} s [{gap:.1e}]")
            else:
                cells.append(f"{seconds:.3g} s ({nodes:g})")
        rivals = [
            medians[n] for n in ("bigm", "perspective-scip", "perspective-ecos_bb") if n in medians
        ]
        speedup = f"{min(rivals) / medians['bnb']:.2g}x" if rivals else "-"
        lines.append(
            f"| {regime} | {groups} | " + " | ".join(cells) + f" | {speedup} | "
            f"{statistics.median(r['root_gap_bigm'] for r in rows):.2%} | "
            f"{statistics.median(r['root_gap_perspective'] for r in rows):.2%} | "
            f"{_median_percent(rows, 'root_gap_bnb_shifted')} | "
            f"{'yes' if all(r['agree'] for r in rows) else 'NO'} |"
        )
    lines += [
        "",
        "Root gaps as alpha varies (30 groups, medians over seeds; share of the big-M root gap "
        "that the perspective relaxation closes):",
        "",
        "| regime | alpha | root gap big-M | root gap perspective | big-M gap closed "
        "| root gap bnb (shifted) |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["alpha_sweep"]:
        lines.append(
            f"| {row['regime']} | {row['alpha']} | {row['root_gap_bigm_median']:.2%} | "
            f"{row['root_gap_perspective_median']:.2%} | {row['bigm_gap_closed_median']:.0%} | "
            f"{row['root_gap_bnb_shifted_median']:.2%} |"
        )
    return "\n".join(lines)


def render_bnb_alpha(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the bnb-alone alpha sweep (medians over seeds)."""
    lines = [
        "| regime | groups | alpha | bnb median seconds | median nodes | optimal / runs "
        "| worst gap |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in sorted({(r["regime"], r["groups"], r["alpha"]) for r in rows}):
        mine = [r for r in rows if (r["regime"], r["groups"], r["alpha"]) == key]
        solved = sum(r["status"] == "optimal" for r in mine)
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | "
            f"{statistics.median(r['seconds'] for r in mine):.3g} | "
            f"{statistics.median(r['nodes'] for r in mine):g} | {solved} / {len(mine)} | "
            f"{max(r['gap'] for r in mine):.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grid (a smoke run)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--out", default=None)
    parser.add_argument("--render", default=None, metavar="FILE.json")
    parser.add_argument(
        "--only-bnb-alpha", action="store_true", help="run only the bnb alpha sweep (100 groups)"
    )
    args = parser.parse_args()
    if args.render:
        with open(args.render, encoding="utf-8") as handle:
            saved = json.load(handle)
        if "runs" in saved:
            print(render(saved))
        if "bnb_alpha_sweep" in saved:
            print("\n" + render_bnb_alpha(saved["bnb_alpha_sweep"]))
        return
    if args.only_bnb_alpha:
        rows = bnb_alpha_sweep(
            50 if args.quick else 100, args.seeds, [0.05, 0.2, 0.8], args.time_limit
        )
        text = json.dumps(
            {
                "benchmark": "mip_pruning-bnb-alpha",
                "machine": _machine(),
                "time_limit": args.time_limit,
                "bnb_alpha_sweep": rows,
            },
            indent=1,
        )
        if args.out:
            from proxcompress.atomic import write_text_atomic

            write_text_atomic(args.out, text + "\n")
        print(text)
        return
    sizes = [10, 30] if args.quick else [10, 30, 50, 100, 200]
    seeds = 1 if args.quick else args.seeds
    # Load the Numba-compiled bnb kernels from the cache once, outside the timings.
    solve(random_instance(50, 5, 1, 5, 0), "bnb")
    started = time.time()
    result: dict[str, Any] = {
        "benchmark": "mip_pruning",
        "machine": _machine(),
        "n": 500,
        "m": 1,
        "time_limit": args.time_limit,
        "runs": [],
    }
    for regime in REGIMES:
        for groups in sizes:
            for seed in range(seeds):
                result["runs"] += run_instance(groups, regime, seed, args.alpha, args.time_limit)
    result["alpha_sweep"] = [
        row for regime in REGIMES for row in alpha_sweep(30, regime, seeds, [0.05, 0.2, 0.5, 0.8])
    ]
    result["bnb_alpha_sweep"] = bnb_alpha_sweep(
        50 if args.quick else 100, seeds, [0.05, 0.2, 0.8], args.time_limit
    )
    result["wall_seconds"] = time.time() - started
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    text = json.dumps(result, indent=1)
    if args.out:
        from proxcompress.atomic import write_text_atomic

        write_text_atomic(args.out, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
