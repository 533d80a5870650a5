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
issue 19). The heteroscedastic arm runs plain, centred and their location-scale forms. Reported
per cell: the fraction of pairs
whose direction is right, with a 95% Wilson interval; for the two BICs how often the true
direction's k equals the simulated one; the median seconds per test.

``tuebingen``: the 99 real pairs of Mooij et al. (JMLR 2016) as shipped in the ``cdt`` 0.6.0
wheel (``cdt/data/resources/Tuebingen_pairs.csv`` and ``Tuebingen_targets.csv``, read with
zipfile; cdt is not installed). See :func:`tuebingen_main`.

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

#: the old kernel (before issue 19): the plain median heuristic
MEDIAN = {"test_widths": (1.0,)}
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
}
#: methods run on every cell; the others on the homoscedastic cells only
EVERY_CELL = ("plain", "centred", "plain_ls", "centred_ls")
#: (noise type, heteroscedasticity of simulate_mixture)
CELLS = (("uniform", 0.0), ("gaussian", 0.0), ("uniform", 1.0))
KS = (1, 2, 3)


def _kwargs(method: dict[str, Any]) -> dict[str, Any]:
    """causal_direction's keyword arguments of a method (``test_widths``: the HSIC kernel)."""
    from proxcompress.causal import HSICGamma

    out = {k: v for k, v in method.items() if k != "test_widths"}
    if "test_widths" in method:
        out["test"] = HSICGamma(widths=method["test_widths"])
    return out


#: the methods of this simulation run (``--methods``; all by default)
SELECTED: list[str] = list(METHODS)


def _methods(hetero: float) -> tuple[str, ...]:
    return tuple(m for m in (EVERY_CELL if hetero else METHODS) if m in SELECTED)


def _one(job: tuple[str, float, int, int, int, tuple[str, ...]]) -> dict[str, Any]:
    from proxcompress.causal import causal_direction, simulate_mixture

    noise, hetero, k, seed, n, selected = job
    SELECTED[:] = selected
    pair = simulate_mixture(n, k, seed=seed, noise=noise,  # type: ignore[arg-type]
                            heteroscedasticity=hetero)
    record: dict[str, Any] = {"noise": noise, "heteroscedasticity": hetero, "k": k, "seed": seed,
                              "truth": pair.direction}
    for name in _methods(hetero):
        start = time.perf_counter()
        result = causal_direction(pair.x, pair.y, **_kwargs(METHODS[name]))
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
            for name in ("centred", "mixture_bic"):
                if name in row:  # the methods run on every pair of the cell
                    row[name]["k_right"] = sum(r[name]["k_true_direction"] == k for r in group)
            rows.append(row)
    return rows


def render(result: dict[str, Any]) -> str:
    names = {"plain": "plain ANM", "centred": "clustered, centred (default)",
             "standardized": "clustered, standardized", "fisher": "clustered, Fisher",
             "mixture_bic": "clustered, mixture BIC", "plain_median": "plain, median kernel",
             "centred_median": "clustered, median kernel", "plain_ls": "plain, location-scale",
             "centred_ls": "clustered, location-scale"}
    lines = ["| noise | k | pairs | " + " | ".join(names[m] for m in METHODS)
             + " | k found = k (default / mixture BIC) | s per test (plain / default) |",
             "|" + "---|" * (len(METHODS) + 5)]
    for row in result["rows"]:
        cells = []
        for m in METHODS:
            if m not in row:
                cells.append("-")
                continue
            low, high = wilson(row[m]["correct"], row["pairs"])
            cells.append(f"{row[m]['correct'] / row['pairs']:.2f} [{low:.2f}, {high:.2f}]")
        found = " / ".join(str(row[m]["k_right"]) if m in row else "-"
                           for m in ("centred", "mixture_bic"))
        noise = row["noise"] + (", heteroscedastic" if row.get("heteroscedasticity") else "")
        lines.append(f"| {noise} | {row['k']} | {row['pairs']} | " + " | ".join(cells)
                     + f" | {found} | {row['plain']['median_seconds']:.2f} / "
                     f"{row['centred']['median_seconds']:.2f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- Tuebingen pairs

CDT_WHEEL = "cdt-0.6.0-py3-none-any.whl"
#: sha256 of the wheel PyPI serves (checked before reading it)
CDT_SHA256 = "a90401b688597c3ccf23cc7b10c62e19df69dc9277095bab40a1343c6e89996b"
PAIRS_CSV = "cdt/data/resources/Tuebingen_pairs.csv"
TARGETS_CSV = "cdt/data/resources/Tuebingen_targets.csv"
DEFAULT_CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME")
                             or os.path.join(os.path.expanduser("~"), ".cache"),
                             "proxcompress", "cdt")
#: Mooij et al.'s weights (column 6 of pairmeta.txt of the Tuebingen pairs v1.0), by the original
#: pair number. Pairs of one source data set share a total weight of one. cdt's 99 pairs are the
#: originals 1-51, 56-70 and 72-104 renumbered (the multivariate pairs 52-55 and 71 and the later
#: pairs 105-108 are absent); :func:`weights_for` checks that numbering against the pairs that
#: share a data column before using these weights.
MOOIJ_WEIGHTS = {
    **dict.fromkeys((1, 2, 4, 20), 0.166), 3: 0.167, 21: 0.167,
    **dict.fromkeys(range(5, 11), 0.143), 11: 0.142, 12: 0.5, 17: 0.5, 42: 0.5, 77: 0.5,
    101: 0.5, **dict.fromkeys((13, 14, 15, 16, 38, 39, 40, 41, 43, 44, 45, 46), 0.25),
    **dict.fromkeys((89, 90, 91, 92), 0.25), **dict.fromkeys((18, 19, 47, 48), 1.0),
    **dict.fromkeys((68, 69, 70, 72, 76, 84, 85, 86, 87, 88, 93, 99, 100), 1.0),
    22: 0.333, 23: 0.333, 24: 0.334, 49: 0.333, 50: 0.333, 51: 0.334, 65: 0.333, 66: 0.333,
    67: 0.334, **dict.fromkeys(range(25, 33), 0.125),
    **dict.fromkeys((33, 34, 35, 36, 37, 97, 98, 102, 103, 104), 0.2),
    **dict.fromkeys((56, 57, 59, 60, 62, 63, 73, 74), 0.083), 58: 0.084, 61: 0.084, 64: 0.084,
    75: 0.084, 78: 0.3333, 79: 0.3333, 80: 0.3334, 81: 0.3333, 82: 0.3333, 83: 0.3334,
    94: 0.3333, 95: 0.3333, 96: 0.3333,
}
#: cdt pairs that share a data column (so come from one source data set), in cdt's numbering
SHARED_COLUMN_GROUPS = (
    (1, 2, 3, 4, 20, 21), (5, 6, 7, 8, 9, 10, 11), (13, 14, 15, 16),
    (25, 26, 27, 28, 29, 30, 31, 32), (33, 34, 35, 36, 37), (52, 53, 54, 55, 56, 57, 58, 59),
    (62, 63), (73, 74, 75), (89, 90, 91), (97, 98, 99),
)
#: seed of the split of the pairs into the half on which variants are chosen and the other
SPLIT_SEED = 19


class BenchmarkInputError(Exception):
    """A missing or wrong input of the benchmark: printed as one message, exit status 2."""


def original_number(cdt_pair: int) -> int:
    """The pair's number in the original Tuebingen collection (see :data:`MOOIJ_WEIGHTS`)."""
    return cdt_pair if cdt_pair <= 51 else cdt_pair + 4 if cdt_pair <= 66 else cdt_pair + 5


def find_wheel(wheel: str | None, download: bool, cache: str) -> str:
    """The cdt wheel: ``wheel`` if given, else the cache folder (downloaded into it with
    ``pip download`` first when ``download``); its sha256 checked."""
    import hashlib
    import subprocess
    import sys

    path = wheel or os.path.join(cache, CDT_WHEEL)
    if wheel is None and download and not os.path.isfile(path):
        os.makedirs(cache, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "pip", "download", "cdt==0.6.0", "--no-deps",
                               "--only-binary", ":all:", "-d", cache], check=False)
        if done.returncode != 0:
            raise BenchmarkInputError(f"--download: pip download cdt==0.6.0 failed (exit "
                                      f"{done.returncode}); see pip's message above")
    if not os.path.isfile(path):
        raise BenchmarkInputError(
            f"--wheel: {path} not found. The Tuebingen pairs are read from the cdt 0.6.0 wheel "
            f"(not installed, only opened): run\n  pip download cdt==0.6.0 --no-deps -d "
            f"{cache}\nor rerun with --download (does that), or pass --wheel FILE.whl")
    with open(path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    if digest != CDT_SHA256:
        raise BenchmarkInputError(f"--wheel: {path} has sha256 {digest}, not that of cdt 0.6.0's "
                                  f"wheel ({CDT_SHA256})")
    return path


def load_tuebingen(path: str) -> list[dict[str, Any]]:
    """The pairs of the wheel: ``{"pair": i, "a": array, "b": array, "truth": "a->b"}`` for
    i = 1..99. Each CSV cell holds a whole variable as space-separated numbers; cdt orients every
    pair as A -> B (its targets file says 1 for all of them; checked here)."""
    import csv
    import io
    import zipfile

    import numpy as np

    try:
        with zipfile.ZipFile(path) as archive:
            pairs_text = archive.read(PAIRS_CSV).decode("utf-8")
            targets_text = archive.read(TARGETS_CSV).decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise BenchmarkInputError(f"--wheel: {path} cannot be read as the cdt wheel: {exc}"
                                  ) from None
    csv.field_size_limit(1 << 30)
    rows = list(csv.reader(io.StringIO(pairs_text)))
    targets = {row[0]: row[1] for row in list(csv.reader(io.StringIO(targets_text)))[1:]}
    if rows[0] != ["SampleID", "A", "B"] or len(rows) != 100:
        raise BenchmarkInputError(f"--wheel: {PAIRS_CSV} is not the 99-pair table expected")
    pairs = []
    for row in rows[1:]:
        name = row[0]
        if targets.get(name) != "1.0":
            raise BenchmarkInputError(f"--wheel: {name} is not labelled A -> B "
                                      f"({targets.get(name)})")
        a, b = (np.array(cell.split(), dtype=np.float64) for cell in row[1:])
        pairs.append({"pair": int(name.removeprefix("pair")), "a": a, "b": b, "truth": "a->b"})
    return pairs


def shared_column_groups(pairs: list[dict[str, Any]]) -> list[tuple[int, ...]]:
    """Groups of pairs linked by an identical data column (the same source data set)."""
    owner: dict[bytes, list[int]] = {}
    for p in pairs:
        for column in (p["a"], p["b"]):
            owner.setdefault(column.tobytes(), []).append(p["pair"])
    parent = {p["pair"]: p["pair"] for p in pairs}

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for members in owner.values():
        for other in members[1:]:
            parent[root(other)] = root(members[0])
    groups: dict[int, list[int]] = {}
    for i in sorted(parent):
        groups.setdefault(root(i), []).append(i)
    return [tuple(g) for g in groups.values() if len(g) > 1]


def weights_for(pairs: list[dict[str, Any]]) -> dict[int, float] | None:
    """Mooij et al.'s weight of each cdt pair, or None when the numbering cannot be confirmed
    (the shared-column groups differ from those expected)."""
    expected = sorted(tuple(sorted(set(g))) for g in SHARED_COLUMN_GROUPS)
    if sorted(shared_column_groups(pairs)) != expected:
        return None
    return {p["pair"]: MOOIJ_WEIGHTS[original_number(p["pair"])] for p in pairs}


def subsample(pair: dict[str, Any], n: int, seed: int) -> dict[str, Any]:
    """``n`` points drawn without replacement (all of them if fewer), and a fair coin that
    presents the pair as (A, B) or (B, A): seeded by ``(seed, pair)``, the same for every
    method."""
    import numpy as np

    rng = np.random.default_rng([seed, pair["pair"]])
    size = pair["a"].size
    keep = np.sort(rng.choice(size, n, replace=False)) if size > n else np.arange(size)
    swap = bool(rng.random() < 0.5)
    a, b = pair["a"][keep], pair["b"][keep]
    x, y = (b, a) if swap else (a, b)
    return {"pair": pair["pair"], "x": x, "y": y, "truth": "y->x" if swap else "x->y",
            "n_total": int(size), "n": int(keep.size), "distinct_x": int(np.unique(x).size),
            "distinct_y": int(np.unique(y).size)}


def split_halves(ids: list[int], seed: int = SPLIT_SEED) -> tuple[list[int], list[int]]:
    """A seeded random half of the pairs (where variants are chosen) and the other half."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(sorted(ids))
    half = len(ids) // 2 + len(ids) % 2
    return sorted(int(i) for i in order[:half]), sorted(int(i) for i in order[half:])


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
        from proxcompress.causal import causal_direction

        result = causal_direction(x, y, **_kwargs(method))
        return {"direction": result.direction, "k": [result.forward.mechanisms.k,
                                                     result.backward.mechanisms.k],
                "log_p": [result.forward.test.log_p_value, result.backward.test.log_p_value],
                "weak": result.weak_evidence}

    return run


#: the methods of the Tuebingen run: this package's test with k auto (the default) and k = 1,
#: each with the default multi-scale kernel, the median-heuristic kernel (the default before
#: issue 19), location-scale residuals, and both changes; causal-learn's ANM (needs the ``bench``
#: extra). Every variant tried in issue 19 is here, so the reported scores can be rerun.
TUEBINGEN_METHODS: dict[str, Any] = {
    "auto": ours(),
    "k1": ours(k=1),
    "auto_median": ours(**MEDIAN),
    "k1_median": ours(k=1, **MEDIAN),
    "auto_ls_median": ours(noise="location-scale", **MEDIAN),
    "k1_ls_median": ours(k=1, noise="location-scale", **MEDIAN),
    "auto_ls": ours(noise="location-scale"),
    "k1_ls": ours(k=1, noise="location-scale"),
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


def score(records: list[dict[str, Any]], method: str, weights: dict[int, float] | None
          ) -> dict[str, Any]:
    """Accuracy over all pairs (undecided and refused count as wrong), over decided pairs, and
    weighted by Mooij et al.'s weights (over all pairs) where known."""
    right = [r for r in records if r[method]["direction"] == r["truth"]]
    decided = [r for r in records if r[method]["direction"] in ("x->y", "y->x")]
    out: dict[str, Any] = {
        "pairs": len(records), "correct": len(right), "decided": len(decided),
        "accuracy": round(len(right) / len(records), 4),
        "wilson95": [round(b, 4) for b in wilson(len(right), len(records))],
        "accuracy_decided": round(len(right) / len(decided), 4) if decided else None,
    }
    if weights is not None:
        total = sum(weights[r["pair"]] for r in records)
        out["weighted_accuracy"] = round(sum(weights[r["pair"]] for r in right) / total, 4)
    if all("weak" in r[method] for r in records):  # this package's evidence notes
        for flag, key in ((True, "weak_evidence"), (False, "strong_evidence")):
            group = [r for r in records if r[method]["weak"] is flag]
            out[key] = {"pairs": len(group),
                        "correct": sum(r[method]["direction"] == r["truth"] for r in group)}
    return out


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
    pairs = load_tuebingen(find_wheel(args.wheel, args.download, args.cache))
    weights = weights_for(pairs)
    reused = _reusable(args)
    todo = tuple(m for m in methods if m not in reused)
    jobs = [(subsample(p, args.n, args.seed), todo) for p in pairs]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, initializer=_single_thread) as pool:
        records = list(pool.map(_tuebingen_one, jobs))
    for r in records:
        r.update({m: reused[m][r["pair"]] for m in methods if m in reused})
    for r in records:
        r["weight"] = None if weights is None else weights[r["pair"]]
    choose, held_out = split_halves([r["pair"] for r in records])
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
        "settings": {"n": args.n, "seed": args.seed, "split_seed": SPLIT_SEED,
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
        if unknown or not {"plain", "centred"} <= set(args.methods.split(",")):
            raise BenchmarkInputError(f"--methods: {args.methods!r}: plain and centred needed, "
                                      f"from {list(METHODS)}")
        SELECTED[:] = args.methods.split(",")
    jobs = [(noise, hetero, k, 1000 * k + s, args.n, tuple(SELECTED)) for noise, hetero in CELLS
            for k in KS for s in range(args.pairs)]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        records = list(pool.map(_one, jobs, chunksize=4))
    return {
        "benchmark": "causal_direction_heterogeneous",
        "machine": _machine(args.jobs),
        "settings": {"n": args.n, "pairs_per_cell": args.pairs, "k_max": 4,
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
    tue = commands.add_parser("tuebingen", help="the Tuebingen cause-effect pairs (cdt wheel)")
    tue.add_argument("--wheel", help=f"the {CDT_WHEEL} file (default: in --cache)")
    tue.add_argument("--cache", default=DEFAULT_CACHE,
                     help=f"folder of the wheel (default {DEFAULT_CACHE})")
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
    if args.out:
        from proxcompress.atomic import write_text_atomic

        write_text_atomic(args.out, json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "records"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
