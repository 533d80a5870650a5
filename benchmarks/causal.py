"""Causal direction benchmarks: simulated heterogeneous populations, and the Tuebingen
cause-effect pairs.

``simulation`` (the default): the plain ANM test against the clustered one, per noise type and
number of mechanisms. Pairs: :func:`proxcompress.causal.simulate_mixture` (n samples, k
mechanisms, true direction x -> y or y -> x at random), seeds ``1000 k + s`` for
``s < --pairs``, with uniform or Gaussian noise, and a heteroscedastic uniform arm (noise sd
times ``exp(cause / 2)``). Methods, all with the spline regressor and the HSIC gamma test:
``plain`` (k = 1, Hoyer et al.'s ANM test), the clustered test (k by the classification BIC up
to 4) with each residual pooling (``centred``, the default, ``standardized``, ``fisher``), and
``mixture_bic`` (centred, k by the mixture BIC), all with the default multi-scale HSIC kernel;
``plain_median`` and ``centred_median`` with the median-heuristic kernel (the default before
issue 19); ``plain_ls`` and ``centred_ls`` with location-scale residuals (a variant tried in
issue 19); the likelihood decisions (``*_lik``, ``*_ent``, ``*_cv``, ``*_fb``) and, from issue 19's
third round, k chosen by held-out likelihood (``centred_hk*``: over the path; ``centred_ho1*``:
k = 1 or the classification BIC's k); from the fourth round, the maximum standardised HSIC over
a bandwidth grid (``*_mb``, :class:`~proxcompress.causal.HSICMaxBandwidth`) and log-linear scale
residuals (``*_ll``); from the fifth, the log-linear scale model in the clustering, its BIC and
the test (``*_llb``); from the sixth, log-linear scale residuals with the HSIC-else-likelihood
decision scoring that scale model (``*_ll_fb``). The heteroscedastic arm runs plain, centred and the
forms named in ``EVERY_CELL``. Reported
per cell: the fraction of pairs
whose direction is right, with a 95% Wilson interval; for the two BICs how often the true
direction's k equals the simulated one; the median seconds per test.

``tuebingen``: the 99 real pairs of Mooij et al. (JMLR 2016) as shipped in the ``cdt`` 0.6.0
wheel (``cdt/data/resources/Tuebingen_pairs.csv`` and ``Tuebingen_targets.csv``, read with
zipfile by :mod:`proxcompress.causal.tuebingen`; cdt is not installed). See
:func:`tuebingen_main`.

Usage::

    python benchmarks/causal.py [simulation] [--pairs 50] [--n 300] [--jobs 2] [--out FILE.json]
    python benchmarks/causal.py tuebingen [--wheel FILE.whl | --download] [--n 500] [--jobs 2]
                                          [--methods a,b,...] [--out FILE.json]
    python benchmarks/causal.py --render FILE.json     # the Markdown table of either run
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

from proxcompress.causal import tuebingen
from proxcompress.causal.scores import score, wilson
from proxcompress.errors import InvalidInputError

#: the old kernel (before issue 19): the plain median heuristic
MEDIAN = {"test_widths": (1.0,)}
#: issue 19's round 4: the maximum standardised HSIC over a bandwidth grid (HSICMaxBandwidth)
MAX_BANDWIDTH = {"test_max_bandwidth": True}
METHODS: dict[str, dict[str, Any]] = {
    "plain": {"k": 1},
    "centred": {"pooling": "centred"},
    "standardized": {"pooling": "standardized"},
    "fisher": {"pooling": "fisher"},
    "mixture_bic": {"criterion": "mixture"},
    "plain_median": {"k": 1, **MEDIAN},
    "centred_median": {**MEDIAN},
    "plain_ls": {"k": 1, "noise": "location-scale"},
    "centred_ls": {"noise": "location-scale"},
    "plain_lik": {"k": 1, "decision": "likelihood"},
    "centred_lik": {"decision": "likelihood"},
    "plain_ent": {"k": 1, "decision": "entropy"},
    "centred_ent": {"decision": "entropy"},
    "plain_cv": {"k": 1, "decision": "heldout-likelihood"},
    "centred_cv": {"decision": "heldout-likelihood"},
    "plain_fb": {"k": 1, "decision": "hsic-else-likelihood"},
    "centred_fb": {"decision": "hsic-else-likelihood"},
    "centred_hk": {"criterion": "heldout"},
    "centred_hk_fb": {"criterion": "heldout", "decision": "hsic-else-likelihood"},
    "centred_hk_close": {"criterion": "heldout", "decision": "hsic-unless-close"},
    "centred_ho1": {"criterion": "heldout-or-one"},
    "centred_ho1_fb": {"criterion": "heldout-or-one", "decision": "hsic-else-likelihood"},
    "plain_mb": {"k": 1, **MAX_BANDWIDTH},
    "centred_mb": {**MAX_BANDWIDTH},
    "plain_ll": {"k": 1, "noise": "loglinear-scale"},
    "centred_ll": {"noise": "loglinear-scale"},
    "centred_mb_ll": {"noise": "loglinear-scale", **MAX_BANDWIDTH},
    "plain_llb": {"k": 1, "noise": "loglinear-bic"},
    "centred_llb": {"noise": "loglinear-bic"},
    "plain_ll_fb": {"k": 1, "noise": "loglinear-scale", "decision": "hsic-else-likelihood"},
    "centred_ll_fb": {"noise": "loglinear-scale", "decision": "hsic-else-likelihood"},
}
#: the methods whose found k is counted against the simulated k (k chosen three ways)
K_CHOICES = ("centred", "mixture_bic", "centred_hk", "centred_ho1", "centred_llb")
#: methods run on every cell; the others on the homoscedastic cells only
EVERY_CELL = ("plain", "centred", "plain_ls", "centred_ls", "plain_lik", "centred_lik",
              "plain_ent", "centred_ent", "plain_cv", "centred_cv", "plain_fb", "centred_fb",
              "centred_hk", "centred_hk_fb", "centred_hk_close", "centred_ho1",
              "centred_ho1_fb", "plain_mb", "centred_mb", "plain_ll", "centred_ll",
              "centred_mb_ll", "plain_llb", "centred_llb", "plain_ll_fb", "centred_ll_fb")
#: (noise type, heteroscedasticity of simulate_mixture)
CELLS = (("uniform", 0.0), ("gaussian", 0.0), ("uniform", 1.0))
KS = (1, 2, 3)


def _kwargs(method: dict[str, Any]) -> dict[str, Any]:
    """causal_direction's keyword arguments of a method (``test_widths``: the HSIC kernel;
    ``test_max_bandwidth``: the HSICMaxBandwidth test)."""
    from proxcompress.causal import HSICGamma, HSICMaxBandwidth

    out = {k: v for k, v in method.items() if not k.startswith("test_")}
    out.setdefault("criterion", "classification")  # the rows before round 3 of issue 19
    # every method named before round 6 of issue 19 (when LL-FB became the default) means the
    # noise model and decision of its time unless it names them
    out.setdefault("noise", "additive")
    out.setdefault("decision", "hsic")
    if "test_widths" in method:
        out["test"] = HSICGamma(widths=method["test_widths"])
    if method.get("test_max_bandwidth"):
        out["test"] = HSICMaxBandwidth()
    return out


#: the methods of this simulation run (``--methods``; all by default)
SELECTED: list[str] = list(METHODS)


def _methods(hetero: float) -> tuple[str, ...]:
    return tuple(m for m in (EVERY_CELL if hetero else METHODS) if m in SELECTED)


def _one(job: tuple[str, float, int, int, int, tuple[str, ...]]) -> dict[str, Any]:
    """One simulated pair under every selected method of its cell. Methods that differ only in
    their ``decision`` share one fit (:func:`~proxcompress.causal.causal_directions`); their
    ``seconds`` is that shared fit's."""
    from proxcompress.causal import causal_directions, simulate_mixture

    noise, hetero, k, seed, n, selected = job
    SELECTED[:] = selected
    pair = simulate_mixture(n, k, seed=seed, noise=noise,  # type: ignore[arg-type]
                            heteroscedasticity=hetero)
    record: dict[str, Any] = {"noise": noise, "heteroscedasticity": hetero, "k": k, "seed": seed,
                              "truth": pair.direction}
    groups: dict[str, list[str]] = {}
    for name in _methods(hetero):
        shared = {key: v for key, v in METHODS[name].items() if key != "decision"}
        groups.setdefault(repr(sorted(shared.items())), []).append(name)
    for names in groups.values():
        shared = {key: v for key, v in METHODS[names[0]].items() if key != "decision"}
        decisions = tuple(METHODS[m].get("decision", "hsic") for m in names)
        start = time.perf_counter()
        kwargs = _kwargs(shared)
        del kwargs["decision"]  # the group's decisions are passed together
        results = causal_directions(pair.x, pair.y, tuple(dict.fromkeys(decisions)), **kwargs)
        seconds = time.perf_counter() - start
        for name, decision in zip(names, decisions, strict=True):
            result = results[decision]
            true_fit = result.forward if pair.direction == "x->y" else result.backward
            record[name] = {"direction": result.direction, "seconds": seconds,
                            "k_true_direction": true_fit.mechanisms.k}
    return record


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for noise, hetero in CELLS:
        for k in KS:
            group = [r for r in records if r["noise"] == noise and r["k"] == k
                     and r.get("heteroscedasticity", 0.0) == hetero]
            if not group:
                continue
            row: dict[str, Any] = {"noise": noise, "heteroscedasticity": hetero, "k": k,
                                   "pairs": len(group)}
            for name in _methods(hetero):
                right = sum(r[name]["direction"] == r["truth"] for r in group)
                row[name] = {"correct": right, "fraction": round(right / len(group), 4),
                             "wilson95": [round(b, 4) for b in wilson(right, len(group))],
                             "median_seconds": round(statistics.median(
                                 r[name]["seconds"] for r in group), 3)}
            for name in K_CHOICES:
                if name in row:  # the methods run on every pair of the cell
                    row[name]["k_right"] = sum(r[name]["k_true_direction"] == k for r in group)
            rows.append(row)
    return rows


def render(result: dict[str, Any]) -> str:
    names = {"plain": "plain ANM", "centred": "clustered, centred (default)",
             "standardized": "clustered, standardized", "fisher": "clustered, Fisher",
             "mixture_bic": "clustered, mixture BIC", "plain_median": "plain, median kernel",
             "centred_median": "clustered, median kernel", "plain_ls": "plain, location-scale",
             "centred_ls": "clustered, location-scale", "plain_lik": "plain, likelihood",
             "centred_lik": "clustered, likelihood", "plain_ent": "plain, entropy",
             "centred_ent": "clustered, entropy", "plain_cv": "plain, held-out likelihood",
             "centred_cv": "clustered, held-out likelihood",
             "plain_fb": "plain, HSIC else likelihood",
             "centred_fb": "clustered, HSIC else likelihood",
             "centred_hk": "clustered, k by held-out likelihood",
             "centred_hk_fb": "clustered, k by held-out likelihood, HSIC else likelihood",
             "centred_hk_close": "clustered, k by held-out likelihood, HSIC unless close",
             "centred_ho1": "clustered, k = 1 or BIC's k by held-out likelihood",
             "centred_ho1_fb": "clustered, k = 1 or BIC's k by held-out likelihood, HSIC else "
             "likelihood",
             "plain_mb": "plain, max over bandwidths", "centred_mb": "clustered, max over "
             "bandwidths", "plain_ll": "plain, log-linear scale",
             "centred_ll": "clustered, log-linear scale",
             "centred_mb_ll": "clustered, max over bandwidths, log-linear scale",
             "plain_llb": "plain, log-linear scale model (fit and test)",
             "centred_llb": "clustered, log-linear scale model (fit, BIC and test)",
             "plain_ll_fb": "plain, log-linear scale, HSIC else likelihood",
             "centred_ll_fb": "clustered, log-linear scale, HSIC else likelihood"}
    shown = [m for m in METHODS if any(m in row for row in result["rows"])]  # the run's methods
    lines = ["| noise | k | pairs | " + " | ".join(names[m] for m in shown)
             + " | k found = k (default / mixture BIC / held-out / 1 or BIC's / log-linear "
               "scale BIC) | s per test (plain / clustered) |",
             "|" + "---|" * (len(shown) + 5)]
    for row in result["rows"]:
        cells = []
        for m in shown:
            if m not in row:
                cells.append("-")
                continue
            low, high = wilson(row[m]["correct"], row["pairs"])
            cells.append(f"{row[m]['correct'] / row['pairs']:.2f} [{low:.2f}, {high:.2f}]")
        found = " / ".join(str(row[m]["k_right"]) if m in row else "-"
                           for m in K_CHOICES)
        clustered = next(m for m in shown if m != "plain" and not m.startswith("plain_"))
        noise = row["noise"] + (", heteroscedastic" if row.get("heteroscedasticity") else "")
        lines.append(f"| {noise} | {row['k']} | {row['pairs']} | " + " | ".join(cells)
                     + f" | {found} | {row['plain']['median_seconds']:.2f} / "
                     f"{row[clustered]['median_seconds']:.2f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- Tuebingen pairs

class BenchmarkInputError(Exception):
    """A missing or wrong input of the benchmark: printed as one message, exit status 2."""


def causal_learn_anm(x: Any, y: Any) -> dict[str, Any]:
    """causal-learn's ANM (GP regression, KCI p-values) on z-scored x and y (its GP's
    hyperparameter bounds assume unit scale); the larger p-value wins, equal ones undecided."""
    import numpy as np
    from causallearn.search.FCMBased.ANM.ANM import ANM

    def z(v: Any) -> Any:
        return ((v - v.mean()) / v.std()).reshape(-1, 1)

    forward, backward = ANM().cause_or_effect(z(x), z(y))
    forward, backward = float(np.squeeze(forward)), float(np.squeeze(backward))
    direction = ("x->y" if forward > backward else "y->x" if backward > forward
                 else "undecided")
    return {"direction": direction, "p_forward": forward, "p_backward": backward}


def ours(**method: Any) -> Any:
    """This package's test with ``method`` (:func:`_kwargs`) as a benchmark method."""

    def run(x: Any, y: Any) -> dict[str, Any]:
        return tuebingen.decide(x, y, **_kwargs(method))

    return run


#: the methods of the Tuebingen run: this package's test with k auto and k = 1 (``auto`` and
#: ``k1``: HSIC on additive residuals, the default before issue 19's round 6; ``auto_ll_fb`` and
#: ``k1_ll_fb``: the default since, LL-FB), each with the default multi-scale kernel, the
#: median-heuristic kernel (the default before issue 19), location-scale residuals, and both
#: changes; causal-learn's ANM (needs the ``bench`` extra). Every variant tried in issue 19 is
#: here, so the reported scores can be rerun.
TUEBINGEN_METHODS: dict[str, Any] = {
    "auto": ours(),
    "k1": ours(k=1),
    "auto_median": ours(**MEDIAN),
    "k1_median": ours(k=1, **MEDIAN),
    "auto_ls_median": ours(noise="location-scale", **MEDIAN),
    "k1_ls_median": ours(k=1, noise="location-scale", **MEDIAN),
    "auto_ls": ours(noise="location-scale"),
    "k1_ls": ours(k=1, noise="location-scale"),
    "auto_lik": ours(decision="likelihood"),
    "k1_lik": ours(k=1, decision="likelihood"),
    "auto_ent": ours(decision="entropy"),
    "k1_ent": ours(k=1, decision="entropy"),
    "auto_cv": ours(decision="heldout-likelihood"),
    "k1_cv": ours(k=1, decision="heldout-likelihood"),
    "auto_fb": ours(decision="hsic-else-likelihood"),
    "k1_fb": ours(k=1, decision="hsic-else-likelihood"),
    "auto_hk": ours(criterion="heldout"),
    "auto_hk_fb": ours(criterion="heldout", decision="hsic-else-likelihood"),
    "auto_hk_close": ours(criterion="heldout", decision="hsic-unless-close"),
    "auto_close": ours(decision="hsic-unless-close"),
    "k1_close": ours(k=1, decision="hsic-unless-close"),
    "auto_ho1": ours(criterion="heldout-or-one"),
    "auto_ho1_fb": ours(criterion="heldout-or-one", decision="hsic-else-likelihood"),
    "auto_mb": ours(**MAX_BANDWIDTH),
    "k1_mb": ours(k=1, **MAX_BANDWIDTH),
    "auto_ll": ours(noise="loglinear-scale"),
    "k1_ll": ours(k=1, noise="loglinear-scale"),
    "auto_mb_ll": ours(noise="loglinear-scale", **MAX_BANDWIDTH),
    "k1_mb_ll": ours(k=1, noise="loglinear-scale", **MAX_BANDWIDTH),
    "auto_llb": ours(noise="loglinear-bic"),
    "k1_llb": ours(k=1, noise="loglinear-bic"),
    "auto_ll_fb": ours(noise="loglinear-scale", decision="hsic-else-likelihood"),
    "k1_ll_fb": ours(k=1, noise="loglinear-scale", decision="hsic-else-likelihood"),
    "causal_learn_anm": causal_learn_anm,
}


def _single_thread() -> None:
    """Worker start: one BLAS/OpenMP thread per process (the workers share the cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with scikit-learn (the bench extra)
        return
    threadpool_limits(1)


def _tuebingen_one(job: tuple[dict[str, Any], tuple[str, ...]]) -> dict[str, Any]:
    import numpy as np

    data, methods = job
    record = {k: v for k, v in data.items() if k not in ("x", "y")}
    for name in methods:
        start = time.perf_counter()
        try:
            out = TUEBINGEN_METHODS[name](data["x"], data["y"])
        except Exception as exc:  # noqa: BLE001 - a refusal is a result to record
            out = {"direction": "refused", "error": f"{type(exc).__name__}: {exc}"}
        out["seconds"] = round(time.perf_counter() - start, 3)
        out = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
               for k, v in out.items()}
        record[name] = out
    return record


def _reusable(args: argparse.Namespace) -> dict[str, dict[int, Any]]:
    """Per-pair results of ``--reuse-methods`` taken from the ``--reuse`` files (saved runs with
    the same ``--n`` and ``--seed``, so the same subsamples; the first file holding a method
    wins), by method and pair."""
    found: dict[str, dict[int, Any]] = {}
    wanted = args.reuse_methods.split(",") if args.reuse_methods else []
    for path in args.reuse or []:
        try:
            with open(path, encoding="utf-8") as handle:
                saved = json.load(handle)
            same = (saved["benchmark"] == "causal_direction_tuebingen"
                    and saved["settings"]["n"] == args.n
                    and saved["settings"]["seed"] == args.seed)
            records = saved["records"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BenchmarkInputError(f"--reuse: {path} is not a saved Tuebingen run: {exc}"
                                      ) from None
        if not same:
            raise BenchmarkInputError(f"--reuse: {path} was run with other --n / --seed")
        for m in wanted:
            if m not in found and all(m in r for r in records):
                found[m] = {r["pair"]: r[m] for r in records}
    missing = [m for m in wanted if m not in found]
    if missing:
        raise BenchmarkInputError(f"--reuse-methods: {missing} not in the --reuse files")
    return found


def tuebingen_main(args: argparse.Namespace) -> dict[str, Any]:
    """The Tuebingen run: seeded subsamples of ``--n`` points per pair (all points of smaller
    pairs; a seeded coin also swaps the roles of A and B, so the truth is x -> y or y -> x), every
    method on the same subsamples; accuracies over all pairs, both halves of the seeded split,
    and per pair."""
    methods = tuple(args.methods.split(",")) if args.methods else tuple(TUEBINGEN_METHODS)
    unknown = [m for m in methods if m not in TUEBINGEN_METHODS]
    if unknown:
        raise BenchmarkInputError(f"--methods: {unknown} not among {list(TUEBINGEN_METHODS)}")
    if "causal_learn_anm" in methods:
        try:
            import causallearn  # noqa: F401
        except ImportError:
            raise BenchmarkInputError(
                "--methods: causal_learn_anm needs causal-learn (pip install -e '.[bench]'), or "
                "leave it out with --methods") from None
    if args.n < 30:
        raise BenchmarkInputError(f"--n: {args.n} is outside [30, inf)")
    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise BenchmarkInputError(f"--out: the folder of {args.out} does not exist")
    pairs = tuebingen.load_pairs(tuebingen.find_wheel(args.wheel, download=args.download,
                                                      cache=args.cache))
    weights = tuebingen.weights_for(pairs)
    reused = _reusable(args)
    todo = tuple(m for m in methods if m not in reused)
    jobs = [(tuebingen.subsample(p, args.n, args.seed), todo) for p in pairs]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, initializer=_single_thread) as pool:
        records = list(pool.map(_tuebingen_one, jobs))
    for r in records:
        r.update({m: reused[m][r["pair"]] for m in methods if m in reused})
    for r in records:
        r["weight"] = None if weights is None else weights[r["pair"]]
    choose, held_out = tuebingen.split_halves([r["pair"] for r in records])
    summary = {}
    for name in methods:
        summary[name] = {
            "all": score(records, name, weights),
            "selection_half": score([r for r in records if r["pair"] in choose], name, weights),
            "other_half": score([r for r in records if r["pair"] in held_out], name, weights),
            "median_seconds": round(statistics.median(r[name]["seconds"] for r in records), 3),
        }
    return {
        "benchmark": "causal_direction_tuebingen",
        "machine": _machine(args.jobs),
        "settings": {"n": args.n, "seed": args.seed, "split_seed": tuebingen.SPLIT_SEED,
                     "selection_half": choose, "other_half": held_out,
                     "weights": "Mooij et al. 2016 (pairmeta.txt)" if weights else
                     "unavailable: cdt's numbering could not be confirmed"},
        "wall_seconds": round(time.perf_counter() - start, 1),
        "summary": summary,
        "records": records,
    }


def _machine(jobs: int) -> dict[str, Any]:
    import subprocess

    cpu = ""
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in lines.splitlines()
                    if line.startswith("Model name")), "")
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": metadata.version("numpy"), "scipy": metadata.version("scipy"),
            "jobs": jobs}


def render_tuebingen(result: dict[str, Any]) -> str:
    lines = ["| method | correct / 99 | accuracy, all pairs [95% Wilson] | decided | accuracy, "
             "decided | weighted accuracy | selection half | other half | median s per pair |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, row in result["summary"].items():
        a = row["all"]
        weighted = f"{a['weighted_accuracy']:.3f}" if "weighted_accuracy" in a else "n/a"
        lines.append(
            f"| {name} | {a['correct']} | {a['accuracy']:.3f} [{a['wilson95'][0]:.2f}, "
            f"{a['wilson95'][1]:.2f}] | {a['decided']} | {a['accuracy_decided']:.3f} | "
            f"{weighted} | {row['selection_half']['accuracy']:.3f} | "
            f"{row['other_half']['accuracy']:.3f} | {row['median_seconds']:.2f} |")
    return "\n".join(lines)


def simulation_main(args: argparse.Namespace) -> dict[str, Any]:
    if args.methods:
        unknown = [m for m in args.methods.split(",") if m not in METHODS]
        chosen = args.methods.split(",")
        if unknown or "plain" not in chosen or all(m.startswith("plain") for m in chosen):
            raise BenchmarkInputError(f"--methods: {args.methods!r}: plain and a clustered "
                                      f"method needed, from {list(METHODS)}")
        SELECTED[:] = args.methods.split(",")
    every = [f"{noise}:{hetero:g}:{k}" for noise, hetero in CELLS for k in KS]
    cells = args.cells.split(",") if args.cells else every
    if any(cell not in every for cell in cells):
        raise BenchmarkInputError(f"--cells: {args.cells!r}: comma-separated, of {every}")
    jobs = [(noise, hetero, k, 1000 * k + s, args.n, tuple(SELECTED)) for noise, hetero in CELLS
            for k in KS if f"{noise}:{hetero:g}:{k}" in cells for s in range(args.pairs)]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        records = list(pool.map(_one, jobs, chunksize=4))
    return {
        "benchmark": "causal_direction_heterogeneous",
        "machine": _machine(args.jobs),
        "settings": {"n": args.n, "pairs_per_cell": args.pairs, "k_max": 4, "cells": cells,
                     "regressor": "SplineRegressor()", "test": "HSICGamma()",
                     "methods": METHODS},
        "wall_seconds": round(time.perf_counter() - start, 1),
        "rows": summarize(records),
        "records": records,
    }


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--render":
        if len(argv) != 2 or not os.path.isfile(argv[1]):
            print("--render: give one saved JSON file", file=sys.stderr)
            return 2
        with open(argv[1], encoding="utf-8") as handle:
            saved = json.load(handle)
        print(render_tuebingen(saved) if saved["benchmark"] == "causal_direction_tuebingen"
              else render(saved))
        return 0
    if not argv or argv[0].startswith("-"):
        argv.insert(0, "simulation")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("simulation", help="simulated heterogeneous populations")
    sim.add_argument("--pairs", type=int, default=50)
    sim.add_argument("--n", type=int, default=300)
    sim.add_argument("--methods", help=f"comma-separated, of {list(METHODS)} (default all)")
    sim.add_argument("--cells", help="comma-separated noise:heteroscedasticity:k cells, e.g. "
                     "uniform:0:3 (default all nine; the same seeds whichever are run)")
    tue = commands.add_parser("tuebingen", help="the Tuebingen cause-effect pairs (cdt wheel)")
    tue.add_argument("--wheel", help=f"the {tuebingen.CDT_WHEEL} file (default: in --cache)")
    tue.add_argument("--cache", default=str(tuebingen.DEFAULT_CACHE),
                     help=f"folder of the wheel (default {tuebingen.DEFAULT_CACHE})")
    tue.add_argument("--download", action="store_true",
                     help="pip download the wheel into --cache if it is not there")
    tue.add_argument("--n", type=int, default=500, help="points per pair (default 500)")
    tue.add_argument("--seed", type=int, default=0, help="subsample seed (default 0)")
    tue.add_argument("--methods", help=f"comma-separated, of {list(TUEBINGEN_METHODS)}")
    tue.add_argument("--reuse", metavar="FILE.json", action="append",
                     help="a saved run (same --n, --seed) to take --reuse-methods' results from "
                     "(repeatable)")
    tue.add_argument("--reuse-methods", help="comma-separated methods taken from --reuse")
    for sub in (sim, tue):
        sub.add_argument("--jobs", type=int, default=2)
        sub.add_argument("--out", help="write the JSON here (atomically)")
    args = parser.parse_args(argv)
    try:
        if args.jobs < 1:
            raise BenchmarkInputError(f"--jobs: {args.jobs} is outside [1, inf)")
        result = tuebingen_main(args) if args.command == "tuebingen" else simulation_main(args)
    except BenchmarkInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InvalidInputError as exc:  # the reader's: name the flag
        print(f"error: --{exc.field}: {exc.detail}", file=sys.stderr)
        return 2
    if args.out:
        from proxcompress.atomic import write_text_atomic

        write_text_atomic(args.out, json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "records"}, indent=1))
    return 0


if __name__ == "__main__":
    from proxcompress.cli import quiet_on_closed_pipe

    raise SystemExit(quiet_on_closed_pipe(main))
