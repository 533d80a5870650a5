"""Stage ``tuebingen``: the causal-direction test on real data, the Tübingen cause-effect pairs
(Mooij et al., JMLR 2016) as the cdt 0.6.0 wheel ships them (:mod:`proxcompress.causal.tuebingen`
reads them; ``benchmarks/causal.py tuebingen`` is the full study with the peer).

The wheel is fetched from the package registry only when it is not in the cache; without the
network and without the cache the stage raises
:class:`~proxcompress.reproduce.stage.DataUnavailable` (reported as not measured, with the
reason; docs/decisions.md, issue 16).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from proxcompress.causal.scores import DIRECTIONS, score, wilson
from proxcompress.reproduce.plots import figure, save
from proxcompress.reproduce.stage import Context, DataUnavailable, Outcome, Plot, Table

#: the tests run on every pair: name -> (reader's name, causal_direction keyword arguments)
TESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": ("this package's test (k by BIC, the default)", {}),
    "plain": ("plain ANM (k = 1; log-linear scale, HSIC else likelihood)", {"k": 1}),
}
#: the pairs' selection: a seeded permutation of the 99, the first ``pairs`` of it
SELECTION_SEED = 16
#: the full benchmark's result for the default (docs/causal.md, n = 500, seed 0, all 99 pairs;
#: LL-FB since issue 19's round 6, 57 before it): right / 99
BENCHMARK_DEFAULT_RIGHT = 67


def selected(ids: list[int], count: int) -> list[int]:
    """``count`` pairs of ``ids`` (all when ``count`` >= their number), a seeded choice."""
    if count >= len(ids):
        return sorted(ids)
    order = np.random.default_rng(SELECTION_SEED).permutation(sorted(ids))
    return sorted(int(i) for i in order[:count])


def _pairs(ctx: Context) -> list[Any]:
    from proxcompress.causal import tuebingen
    from proxcompress.errors import InvalidInputError, MissingInputError

    b = ctx.budget
    cache = b["cache"] or tuebingen.DEFAULT_CACHE
    try:
        wheel = tuebingen.find_wheel(b["wheel"] or None, download=b["download"], cache=cache)
    except MissingInputError:
        why = "downloading is off (download = false)" if not b["download"] else "not fetched"
        raise DataUnavailable(
            f"the Tübingen pairs are read from cdt 0.6.0's wheel, which is not in {cache} and "
            f"{why}. To measure them: pip download cdt==0.6.0 --no-deps -d {cache}, then "
            "proxcompress reproduce --resume.") from None
    except InvalidInputError as exc:
        if exc.field != "download":
            raise  # a wrong wheel is a fault to report, not missing data
        raise DataUnavailable(
            f"the Tübingen pairs are read from cdt 0.6.0's wheel, which is not in {cache}, and "
            f"fetching it failed: {exc.detail}. To measure them: pip download cdt==0.6.0 "
            f"--no-deps -d {cache} where pip works, then proxcompress reproduce --resume."
        ) from None
    ctx.log(f"pairs from {wheel}")
    return tuebingen.load_pairs(wheel)


def run(ctx: Context) -> Outcome:
    """A seeded subset of ``pairs`` of the 99 pairs (all at ``--full``), each subsampled to
    ``n`` points and presented in a seeded random orientation (the benchmark's protocol), its
    direction decided by the default test and the plain one."""
    from proxcompress.atomic import write_json_atomic
    from proxcompress.causal import tuebingen
    from proxcompress.errors import InvalidInputError

    b = ctx.budget
    pairs = _pairs(ctx)
    weights = tuebingen.weights_for(pairs)  # confirmed on all 99 before any subset
    chosen = selected([p.pair for p in pairs], b["pairs"])
    ctx.progress.total(len(chosen))
    records = []
    for pair in (p for p in pairs if p.pair in chosen):
        sub = tuebingen.subsample(pair, b["n"], b["seed"])
        record: dict[str, Any] = {k: v for k, v in sub.items() if k not in ("x", "y")}
        record["weight"] = None if weights is None else weights[pair.pair]
        for name, (_, kwargs) in TESTS.items():
            start = time.perf_counter()
            try:
                out = tuebingen.decide(sub["x"], sub["y"], **kwargs)
            except InvalidInputError as exc:  # a constant variable: the one refusal
                out = {"direction": "refused", "error": str(exc)}
            out["seconds"] = time.perf_counter() - start
            record[name] = out
        records.append(record)
        ctx.log(f"pair {pair.pair} (n = {sub['n']} of {sub['n_total']}): truth {sub['truth']}, "
                + ", ".join(f"{name} {record[name]['direction']}" for name in TESTS))
        ctx.progress.advance()
    scores = {name: score(records, name, weights) for name in TESTS}
    write_json_atomic(ctx.folder / "tuebingen.json",
                      {"settings": dict(b), "pairs": chosen, "scores": scores,
                       "records": records})
    default = scores["default"]
    figures: dict[str, Any] = {
        "pairs": len(records), "of": len(pairs), "n": b["n"],
        "weights_confirmed": weights is not None,
        "answered": default["decided"], "right": default["correct"],
        "accuracy": default["accuracy"], "accuracy_answered": default["accuracy_decided"],
        "weighted_accuracy": default.get("weighted_accuracy"),
        "weak_evidence": default.get("weak_evidence"),
        "strong_evidence": default.get("strong_evidence"),
        "scores": scores,
        "median_seconds": {name: float(np.median([r[name]["seconds"] for r in records]))
                           for name in TESTS},
    }
    return Outcome(figures, [_scores_table(scores, records, weights is not None),
                             _pairs_table(records)],
                   [_plot(ctx, scores, records)])


def _scores_table(scores: dict[str, Any], records: list[dict[str, Any]], weighted: bool
                  ) -> Table:
    rows = []
    for name, (label, _) in TESTS.items():
        s = scores[name]
        weak, strong = s.get("weak_evidence"), s.get("strong_evidence")
        rows.append([label, s["pairs"], s["decided"], s["correct"], 100 * s["accuracy"],
                     f"[{100 * s['wilson95'][0]:.0f}, {100 * s['wilson95'][1]:.0f}]",
                     None if s["accuracy_decided"] is None else 100 * s["accuracy_decided"],
                     100 * s["weighted_accuracy"] if "weighted_accuracy" in s else None,
                     f"{weak['correct']} of {weak['pairs']}" if weak else None,
                     f"{strong['correct']} of {strong['pairs']}" if strong else None,
                     float(np.median([r[name]["seconds"] for r in records]))])
    return Table(
        f"Direction found on {len(records)} of the 99 Tübingen pairs",
        ["test", "pairs", "answered", "right", "accuracy, all pairs (%)", "95% Wilson (%)",
         "accuracy, answered (%)", "weighted accuracy (%)", "right with the weak-evidence note",
         "right without it", "seconds per pair (median)"],
        rows,
        note="Per pair a seeded subsample of n points (all points of smaller pairs) and a seeded "
        "coin that swaps cause and effect, as in benchmarks/causal.py tuebingen; undecided or "
        "refused pairs count as wrong in 'all pairs'. Weighted: Mooij et al.'s weights (each "
        "source data set weighs one in all), "
        + ("applied after cdt's numbering was confirmed from the pairs that share a data column"
           if weighted else "not applied: cdt's numbering could not be confirmed")
        + ". The weak-evidence note (few levels, close p-values) says what an answer rests on; "
        f"on all 99 pairs it did not predict errors (docs/causal.md, where the default is right "
        f"on {BENCHMARK_DEFAULT_RIGHT} of 99).")


def _pairs_table(records: list[dict[str, Any]]) -> Table:
    rows = []
    for r in records:
        d = r["default"]
        log_p = d.get("log_p") or [None, None]
        rows.append([r["pair"], r["n"], r["n_total"], r["distinct_x"], r["distinct_y"],
                     r["truth"], d["direction"], "yes" if d["direction"] == r["truth"] else "no",
                     log_p[0], log_p[1], "x".join(map(str, d.get("k", []))) or None,
                     "weak" if d.get("weak") else "", r["plain"]["direction"], r["weight"]])
    return Table("Each pair: the default test's answer and its evidence",
                 ["pair (cdt)", "n", "points in all", "distinct x", "distinct y", "truth",
                  "answer", "right", "log p (x->y)", "log p (y->x)", "k (x->y x y->x)",
                  "note", "plain ANM's answer", "weight"], rows,
                 note="log p: the HSIC test's log p-value of independence of residuals and "
                 "cause in each direction (the larger wins); k: mechanisms found per "
                 "direction.")


def _plot(ctx: Context, scores: dict[str, Any], records: list[dict[str, Any]]) -> Plot:
    fig, (bars, margin) = figure(2, 1, width=6.0, height=4.0)
    kinds = [("accuracy", "all pairs"), ("accuracy_decided", "answered"),
             ("weighted_accuracy", "weighted")]
    x = np.arange(len(kinds))
    for i, (name, (label, _)) in enumerate(TESTS.items()):
        s = scores[name]
        values = [100 * (s.get(key) or 0.0) for key, _ in kinds]
        low, high = wilson(s["correct"], s["pairs"])
        err = [[0.0] * len(kinds), [0.0] * len(kinds)]
        err[0][0], err[1][0] = values[0] - 100 * low, 100 * high - values[0]
        bars.bar(x + (i - 0.5) * 0.38, values, 0.38, yerr=err, capsize=3, label=label)
    bars.axhline(65, color="C3", ls="--", lw=1, label="target: 65% of all pairs")
    bars.axhline(50, color="grey", ls=":", lw=1)
    bars.set_xticks(x, [k for _, k in kinds])
    bars.set_ylim(0, 100)
    bars.set_ylabel("right (%)")
    bars.set_title(f"{len(records)} Tübingen pairs (bar: 95% Wilson; dotted: a coin)",
                   fontsize=9)
    bars.legend(fontsize=7, loc="lower center")
    answered = [r for r in records if r["default"]["direction"] in DIRECTIONS
                and r["default"].get("log_p")]
    gaps = [abs(r["default"]["log_p"][0] - r["default"]["log_p"][1]) for r in answered]
    order = np.argsort(gaps)
    for j, k in enumerate(order):
        r = answered[k]
        right = r["default"]["direction"] == r["truth"]
        margin.scatter(j, max(gaps[k], 1e-3), color="C2" if right else "C3",
                       marker="o" if not r["default"]["weak"] else "x", s=22)
    margin.set_yscale("log")
    margin.set_xlabel("pairs, by the margin of the answer")
    margin.set_ylabel("|log p(x->y) - log p(y->x)|")
    margin.set_title("default test: green right, red wrong; x: weak-evidence note", fontsize=9)
    margin.grid(alpha=0.3)
    return Plot(save(fig, ctx.folder / "tuebingen.png").name,
                "Left: the share of pairs each test got right (all pairs, the pairs answered, "
                "Mooij et al.'s weights) against the 65% target. Right: each pair's margin "
                "between the two directions' log p-values, right or wrong.")
