"""Causal direction on simulated heterogeneous populations: the plain ANM test against the
clustered one, per noise type and number of mechanisms.

Pairs: :func:`proxcompress.causal.simulate_mixture` (n samples, k mechanisms, true direction
x -> y or y -> x at random), seeds ``1000 k + s`` for ``s < --pairs``. Methods, all with the
spline regressor and the HSIC gamma test: ``plain`` (k = 1, Hoyer et al.'s ANM test), the
clustered test (k by the classification BIC up to 4) with each residual pooling (``centred``,
the default, ``standardized``, ``fisher``), and ``mixture_bic`` (centred, k by the mixture
BIC). Reported per (noise, k): the fraction of pairs whose direction is right, with a 95%
Wilson interval; for the two BICs how often the true direction's k equals the simulated one;
the median seconds per test.

Usage: ``python benchmarks/causal.py [--pairs 50] [--n 300] [--jobs 2] [--out FILE.json]``;
``--render FILE.json`` prints the Markdown table of docs/causal.md from a saved run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from typing import Any

METHODS: dict[str, dict[str, Any]] = {
    "plain": {"k": 1},
    "centred": {"pooling": "centred"},
    "standardized": {"pooling": "standardized"},
    "fisher": {"pooling": "fisher"},
    "mixture_bic": {"criterion": "mixture"},
}
NOISES = ("uniform", "gaussian")
KS = (1, 2, 3)


def _one(job: tuple[str, int, int, int]) -> dict[str, Any]:
    from proxcompress.causal import causal_direction, simulate_mixture

    noise, k, seed, n = job
    pair = simulate_mixture(n, k, seed=seed, noise=noise)  # type: ignore[arg-type]
    record: dict[str, Any] = {"noise": noise, "k": k, "seed": seed, "truth": pair.direction}
    for name, kwargs in METHODS.items():
        start = time.perf_counter()
        result = causal_direction(pair.x, pair.y, **kwargs)
        seconds = time.perf_counter() - start
        true_fit = result.forward if pair.direction == "x->y" else result.backward
        record[name] = {"direction": result.direction, "seconds": seconds,
                        "k_true_direction": true_fit.mechanisms.k}
    return record


def wilson(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (unrounded)."""
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    spread = (p * (1 - p) / trials + z * z / (4 * trials * trials)) ** 0.5
    half = z * spread / (1 + z * z / trials)
    return (centre - half, centre + half)


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for noise in NOISES:
        for k in KS:
            group = [r for r in records if r["noise"] == noise and r["k"] == k]
            if not group:
                continue
            row: dict[str, Any] = {"noise": noise, "k": k, "pairs": len(group)}
            for name in METHODS:
                right = sum(r[name]["direction"] == r["truth"] for r in group)
                row[name] = {"correct": right, "fraction": round(right / len(group), 4),
                             "wilson95": [round(b, 4) for b in wilson(right, len(group))],
                             "median_seconds": round(statistics.median(
                                 r[name]["seconds"] for r in group), 3)}
            for name in ("centred", "mixture_bic"):
                row[name]["k_right"] = sum(r[name]["k_true_direction"] == k for r in group)
            rows.append(row)
    return rows


def render(result: dict[str, Any]) -> str:
    lines = ["| noise | k | pairs | plain ANM | clustered, centred (default) | clustered, "
             "standardized | clustered, Fisher | clustered, mixture BIC | k found = k "
             "(default / mixture BIC) | s per test (plain / default) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        bounds = {m: wilson(row[m]["correct"], row["pairs"]) for m in METHODS}
        cells = [f"{row[m]['correct'] / row['pairs']:.2f} [{bounds[m][0]:.2f}, "
                 f"{bounds[m][1]:.2f}]" for m in METHODS]
        lines.append(f"| {row['noise']} | {row['k']} | {row['pairs']} | " + " | ".join(cells)
                     + f" | {row['centred']['k_right']} / {row['mixture_bic']['k_right']} | "
                     f"{row['plain']['median_seconds']:.2f} / "
                     f"{row['centred']['median_seconds']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out")
    parser.add_argument("--render", metavar="FILE.json")
    args = parser.parse_args()
    if args.render:
        with open(args.render, encoding="utf-8") as handle:
            print(render(json.load(handle)))
        return
    jobs = [(noise, k, 1000 * k + s, args.n) for noise in NOISES for k in KS
            for s in range(args.pairs)]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        records = list(pool.map(_one, jobs, chunksize=4))
    result = {
        "benchmark": "causal_direction_heterogeneous",
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "numpy": metadata.version("numpy"), "scipy": metadata.version("scipy"),
                    "jobs": args.jobs},
        "settings": {"n": args.n, "pairs_per_cell": args.pairs, "k_max": 4,
                     "regressor": "SplineRegressor()", "test": "HSICGamma()"},
        "wall_seconds": round(time.perf_counter() - start, 1),
        "rows": summarize(records),
        "records": records,
    }
    text = json.dumps(result, indent=1)
    if args.out:
        from proxcompress.atomic import write_text_atomic

        write_text_atomic(args.out, text)
    print(json.dumps({k: v for k, v in result.items() if k != "records"}, indent=1))


if __name__ == "__main__":
    main()
