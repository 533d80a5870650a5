"""Stage ``causal``: the causal-direction test on simulated heterogeneous populations (pairs
whose effect follows one of k mechanisms), the plain ANM test against the clustered one."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from proxcompress.causal.scores import wilson
from proxcompress.reproduce.plots import figure, save
from proxcompress.reproduce.stage import Context, Outcome, Plot, Table

#: the two tests compared: name -> (reader's name, causal_direction keyword arguments)
TESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "plain": ("plain ANM (k = 1; log-linear scale, HSIC else likelihood)", {"k": 1}),
    "clustered": ("clustered ANM (k by BIC, the default)", {}),
}


def run(ctx: Context) -> Outcome:
    """Simulate ``pairs`` populations per (noise, k) (seeds ``1000 k + s``, as
    ``benchmarks/causal.py``) and decide each pair's direction with both tests."""
    from proxcompress.atomic import write_json_atomic
    from proxcompress.causal import causal_direction, simulate_mixture

    b = ctx.budget
    noises = [n.strip() for n in b["noises"].split(",") if n.strip()]
    cells = [(noise, k) for noise in noises for k in b["ks"]]
    ctx.progress.total(len(cells) * b["pairs"])
    records = []
    for noise, k in cells:
        for s in range(b["pairs"]):
            pair = simulate_mixture(b["n"], k, seed=1000 * k + s, noise=noise)
            record: dict[str, Any] = {"noise": noise, "k": k, "seed": 1000 * k + s,
                                      "truth": pair.direction}
            for name, (_, kwargs) in TESTS.items():
                start = time.perf_counter()
                result = causal_direction(pair.x, pair.y, **kwargs)
                record[name] = {"direction": result.direction,
                                "seconds": time.perf_counter() - start}
            records.append(record)
            ctx.log(f"{noise} k={k} seed={record['seed']}: truth {pair.direction}, " + ", ".join(
                f"{name} {record[name]['direction']}" for name in TESTS))
            ctx.progress.advance()
    write_json_atomic(ctx.folder / "causal.json", {"settings": dict(b), "records": records})
    cell_rows, summary = [], {}
    for noise, k in cells:
        group = [r for r in records if r["noise"] == noise and r["k"] == k]
        row: list[Any] = [noise, k, len(group)]
        for name in TESTS:
            right = sum(r[name]["direction"] == r["truth"] for r in group)
            low, high = wilson(right, len(group))
            summary[f"{noise}/k={k}/{name}"] = {"right": right, "pairs": len(group),
                                                "fraction": right / len(group),
                                                "wilson95": [low, high]}
            row.append(f"{right / len(group):.2f} [{low:.2f}, {high:.2f}]")
        row.append(float(np.median([r["clustered"]["seconds"] for r in group])))
        cell_rows.append(row)

    def share(name: str, ks: Any) -> float:
        group = [r for r in records if r["k"] in ks]
        return sum(r[name]["direction"] == r["truth"] for r in group) / max(len(group), 1)

    mixed = [k for k in b["ks"] if k >= 2]
    figures = {
        "cells": summary, "pairs": len(records), "n": b["n"],
        "clustered_right": share("clustered", b["ks"]),
        "plain_right_single": share("plain", [1]) if 1 in b["ks"] else None,
        "clustered_right_mixed": share("clustered", mixed) if mixed else None,
        "plain_right_mixed": share("plain", mixed) if mixed else None,
    }
    table = Table(
        f"Direction found on simulated populations (n = {b['n']} samples per pair)",
        ["noise", "mechanisms k", "pairs", *[f"{label}: share right [95% Wilson]"
                                             for label, _ in TESTS.values()],
         "seconds per clustered test (median)"],
        cell_rows,
        note="Each pair: cause uniform on [-2, 2], effect a cubic of the cause whose "
        "coefficients depend on the sample's hidden mechanism, plus noise; the direction is "
        "swapped at random. The clustered test fits k mechanisms (k chosen by BIC up to 4) "
        "before the HSIC independence test of residuals and cause (docs/causal.md).")
    return Outcome(figures, [table], [_plot(ctx, records, cells)])


def _plot(ctx: Context, records: list[dict[str, Any]], cells: list[tuple[str, int]]) -> Plot:
    from proxcompress.causal import simulate_mixture

    fig, (scatter, bars) = figure(2, 1, width=6.0, height=4.2)
    k_show = max(k for _, k in cells)
    pair = simulate_mixture(ctx.budget["n"], k_show, seed=1000 * k_show,
                            noise=cells[0][0])  # type: ignore[arg-type]
    cause, effect = (pair.x, pair.y) if pair.direction == "x->y" else (pair.y, pair.x)
    for label in np.unique(pair.labels):
        mask = pair.labels == label
        scatter.scatter(cause[mask], effect[mask], s=8, alpha=0.7,
                        label=f"mechanism {label + 1}")
    scatter.set_xlabel("cause")
    scatter.set_ylabel("effect")
    scatter.set_title(f"one simulated population: {k_show} hidden mechanisms")
    scatter.legend(fontsize=8)
    labels = [f"{noise}\nk = {k}" for noise, k in cells]
    x = np.arange(len(cells))
    for i, (name, (label, _)) in enumerate(TESTS.items()):
        shares, lows, highs = [], [], []
        for noise, k in cells:
            group = [r for r in records if r["noise"] == noise and r["k"] == k]
            right = sum(r[name]["direction"] == r["truth"] for r in group)
            low, high = wilson(right, len(group))
            shares.append(right / len(group))
            lows.append(right / len(group) - low)
            highs.append(high - right / len(group))
        bars.bar(x + (i - 0.5) * 0.38, shares, 0.38, yerr=[lows, highs], capsize=3,
                 label=label)
    bars.axhline(0.5, color="grey", ls=":", lw=1)
    bars.set_xticks(x, labels, fontsize=8)
    bars.set_ylim(0, 1.05)
    bars.set_ylabel("share of pairs with the right direction")
    bars.set_title("direction found (bars: 95% Wilson intervals; dotted: a coin)")
    bars.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                frameon=False)
    return Plot(save(fig, ctx.folder / "causal.png").name,
                "Left: a simulated population, coloured by its hidden mechanism. Right: the "
                "share of pairs whose direction each test found, per noise type and number of "
                "mechanisms.")
