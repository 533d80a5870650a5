"""Stage ``pruning``: one layer's structured pruning solved exactly with every formulation, on
the bundled example and on generated planted instances, with brute-force enumeration where the
instance is small enough, and the two continuous relaxations' root bounds."""

from __future__ import annotations

from typing import Any

import numpy as np

from proxcompress.reproduce.plots import figure, save
from proxcompress.reproduce.stage import Context, Outcome, Plot, Table

#: relative tolerance on objectives ("the same optimum")
TOLERANCE = 1e-6


def _instances(ctx: Context) -> list[tuple[str, Any]]:
    from proxcompress.formulations import LayerPruningProblem, random_instance
    from proxcompress.formulations.cli import example_path

    out: list[tuple[str, Any]] = [("bundled example", LayerPruningProblem.from_npz(example_path()))]
    b = ctx.budget
    for groups in b["groups"]:
        for seed in range(b["seeds"]):
            problem = random_instance(b["n"], 2 * groups, 2, groups, seed, rho=b["rho"],
                                      snr=b["snr"])
            name = f"planted, {groups} groups, seed {seed}"
            problem.to_npz(ctx.folder / "instances" / f"g{groups}-s{seed}.npz")
            out.append((name, problem))
    return out


def run(ctx: Context) -> Outcome:
    """Solve every instance with every formulation (brute force up to ``brute_max_groups``)."""
    from proxcompress.atomic import write_json_atomic
    from proxcompress.formulations import solve
    from proxcompress.formulations.relaxations import relaxation

    (ctx.folder / "instances").mkdir(exist_ok=True)
    instances = _instances(ctx)
    names = [f.strip() for f in ctx.budget["formulations"].split(",") if f.strip()]
    ctx.progress.total(len(instances))
    records = []
    for label, problem in instances:
        solutions = {}
        for name in names:
            if name == "brute" and problem.n_groups > ctx.budget["brute_max_groups"]:
                continue
            s = solve(problem, name, time_limit=ctx.budget["time_limit"])
            solutions[name] = {"status": s.status, "objective": s.objective, "bound": s.bound,
                               "gap": s.gap, "seconds": s.seconds, "nodes": s.nodes,
                               "support": list(s.support)}
            ctx.log(f"{label}: {name} {s.status} objective {s.objective:.10g} "
                    f"in {s.seconds:.2f} s")
        best = min(v["objective"] for v in solutions.values())
        reference = solutions.get("brute") or min(solutions.values(),
                                                   key=lambda v: v["objective"])
        same = {name: bool(v["status"] == "optimal"
                           and abs(v["objective"] - reference["objective"])
                           <= TOLERANCE * max(1.0, abs(reference["objective"]))
                           and v["support"] == reference["support"])
                for name, v in solutions.items()}
        roots = {kind: relaxation(problem, kind).bound for kind in ("bigm", "perspective")}
        records.append({
            "instance": label, "groups": problem.n_groups, "n": problem.n, "d": problem.d,
            "m": problem.m, "solutions": solutions, "optimum": best,
            "reference": "brute" if "brute" in solutions else "best found",
            "agree": all(same.values()), "agrees": same, "root_bounds": roots,
            "root_gaps": {k: (best - v) / abs(best) for k, v in roots.items()},
        })
        ctx.progress.advance()
    write_json_atomic(ctx.folder / "pruning.json", {"tolerance": TOLERANCE, "records": records})
    figures = {
        "instances": len(records),
        "with_brute_force": sum("brute" in r["solutions"] for r in records),
        "disagreements": [
            f"{r['instance']}: {', '.join(k for k, v in r['agrees'].items() if not v)}"
            for r in records if not r["agree"]],
        "not_optimal": [f"{r['instance']}: {k} {v['status']}" for r in records
                        for k, v in r["solutions"].items() if v["status"] != "optimal"],
        "root_order_violations": [
            r["instance"] for r in records
            if not (r["root_bounds"]["bigm"] <= r["root_bounds"]["perspective"]
                    + 1e-6 * max(1.0, abs(r["optimum"]))
                    and r["root_bounds"]["perspective"]
                    <= r["optimum"] + 1e-6 * max(1.0, abs(r["optimum"])))],
        "mean_root_gap": {k: float(np.mean([r["root_gaps"][k] for r in records]))
                          for k in ("bigm", "perspective")},
        "seconds": {name: float(sum(r["solutions"][name]["seconds"] for r in records
                                    if name in r["solutions"])) for name in names},
        "records": records,
    }
    against = "brute force" if any("brute" in r["solutions"] for r in records) else "the best"
    rows = []
    for r in records:
        for name, v in r["solutions"].items():
            rows.append([r["instance"], name, v["status"], v["objective"], v["gap"],
                         v["seconds"], v["nodes"], len(v["support"]),
                         "yes" if r["agrees"][name] else "NO"])
    solved = Table(
        "Every formulation on every instance",
        ["instance", "formulation", "status", "objective", "relative gap", "time (s)",
         "nodes", "groups kept", f"same optimum and groups as {against}"],
        rows,
        note="bigm: Pyomo -> SCIP; perspective: CVXPY conic perspective -> ECOS_BB / SCIP; cuts: "
        "perspective cuts with HiGHS; bnb: the suite's branch-and-bound; brute: every subset "
        f"(up to {ctx.budget['brute_max_groups']} groups). Objectives agree within a relative "
        f"{TOLERANCE:g}. The instances are in instances/*.npz.")
    root_table = Table(
        "Continuous relaxations at the root",
        ["instance", "groups", "optimum", "big-M root bound", "perspective root bound",
         "big-M root gap", "perspective root gap"],
        [[r["instance"], r["groups"], r["optimum"], r["root_bounds"]["bigm"],
          r["root_bounds"]["perspective"], r["root_gaps"]["bigm"],
          r["root_gaps"]["perspective"]] for r in records],
        note="Root gap = (optimum - bound) / |optimum|: how far the relaxation's bound sits "
        "below the optimum before any branching (smaller is tighter).")
    return Outcome(figures, [solved, root_table], [_plot(ctx, records, names)])


def _plot(ctx: Context, records: list[dict[str, Any]], names: list[str]) -> Plot:
    fig, (ax, gap_ax) = figure(2, 1, width=6.4, height=4.3)
    labels = [r["instance"].replace("planted, ", "planted\n") for r in records]
    x = np.arange(len(records))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        ax.bar(x + (i - (len(names) - 1) / 2) * width,
               [r["solutions"].get(name, {}).get("seconds", np.nan) for r in records], width,
               label=name)
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("time to proven optimum (s, log scale)")
    ax.set_title("solve time per formulation and instance")
    ax.legend(fontsize=8, ncol=len(names), loc="upper center", bbox_to_anchor=(0.5, -0.2),
              frameon=False, handlelength=1.0, columnspacing=0.8)
    ax.grid(alpha=0.3, axis="y")
    for i, kind in enumerate(("bigm", "perspective")):
        gap_ax.bar(x + (i - 0.5) * 0.38, [100 * r["root_gaps"][kind] for r in records], 0.38,
                   label=f"{'big-M' if kind == 'bigm' else 'perspective'} relaxation")
    gap_ax.set_xticks(x, labels, fontsize=8)
    gap_ax.set_ylabel("root gap (% of the optimum)")
    gap_ax.set_title("root relaxation gap (smaller is tighter)")
    gap_ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False,
                  ncol=2)
    gap_ax.grid(alpha=0.3, axis="y")
    return Plot(save(fig, ctx.folder / "pruning.png").name,
                "Left: time each formulation took to prove the optimum, per instance (the first "
                "run of bnb includes Numba's compilation). Right: the root gap of the big-M and "
                "perspective relaxations.")
