"""Exact structured pruning: time to proven optimality, nodes and root gaps per formulation.

The study runs in pieces (each under ~40 minutes on 2 cores; run them on an otherwise quiet
machine), each printing one JSON document and
writing it with ``--out``:

- ``table`` (``--regime R``): ``random_instance(n=500, d=G, m=1, n_groups=G)`` for G in
  10..200, independent features with strong signal (rho 0, snr 4) or correlated features with
  weak signal (AR(1) rho 0.8, snr 0.5), alpha 0.5, seeds 0..S-1; every formulation that applies
  (bnb, bigm and perspective on SCIP, cuts on HiGHS up to 100 groups; ECOS_BB up to 30), with the
  root gaps of the big-M, perspective and bnb (shifted, and Frank-Wolfe refined) relaxations.
  Every solve of one instance is checked against the others (``agree``).
- ``alpha``: root gaps of both relaxations as alpha varies (30 groups).
- ``bnb-alpha``: bnb alone at 100 groups, alpha in {0.05, 0.2, 0.8} (``--alphas``), both regimes.
- ``root-sdp``: issue 14's hard regime (100 groups, AR(1) 0.8, SNR 0.5, alpha 0.05): root bounds
  of bnb's relaxation (Frank-Wolfe shift), the Shor SDP and the SDP with rank-one pair
  constraints (``--reach``, :func:`~proxcompress.formulations.relaxations.pairwise_sdp_bound`)
  against bnb's incumbent (``--time-limit``); a few minutes per SDP.
- ``hull``: the hard regime (as ``root-sdp``) with bnb's node bound raised by the block hull
  of pairs of neighbours (:mod:`~proxcompress.formulations.pairhull`), the decomposition from
  its SDP (:func:`~proxcompress.formulations.pairhull.sdp_decomposition`, SCS, seconds,
  counted in the time limit; ``--decompositions FILE.json`` reads saved ones instead, and a
  run without it writes them next to ``--out``): bnb with and without the hull per seed, in
  alternating order, each under ``--time-limit`` (nodes, ms per node, the hull's sweeps and
  ms per node), then the root bounds.
- ``hull-root``: the hard regime's root bounds of the pair hulls by their joint dual SDP
  (SCS): disjoint pairs, and overlapping pairs (every pair at most 1 and ``--reach`` apart,
  :func:`~proxcompress.formulations.pairhull.overlap_root_bound`), against bnb's refined root.
- ``overlap``: the hard regime with bnb's node bound raised by the hull of *overlapping* pairs
  (every pair at most ``--reach`` apart, :func:`~proxcompress.formulations.pairhull.overlap_hull`:
  the root SDP by SCS inside the time limit, then per node ``--overlap-sweeps`` sweeps of the
  dual split warm-started at the parent's): bnb with and without it per seed, in alternating
  order (status, gap, nodes, wall and CPU seconds, the SDP's seconds, the hull's sweeps and ms
  per node, the load before each solve). ``--sdp-backend-ab``: instead, the hull arm once per
  backend of its root SDP (the CVXPY twin and the direct SCS assembly), alternating.
- ``sdp``: where the overlapping pairs' root SDP (hard regime, ``--reach``) spends its time:
  CVXPY's model build, compilation (default canonicalisation backend, SciPy's, DPP ignored) and
  SCS's solve, against the direct assembly for SCS's own API (:func:`piece_sdp`); no search.
- ``wide``: single-feature groups of the normalised sparse-regression design
  (:func:`~proxcompress.formulations.instances.sparse_regression_instance`: n = 1000,
  independent unit-norm features, 10 planted, SNR 10, lam 0.02, alpha 0.5, M 1) at
  p = 1000 and 10 000, plus the equicorrelated (rho 0.5, SNR 2) p = 1000 case; the open solvers
  at p = 1000 only (at 10 000 their models do not build within the limit).
- ``cnn``: the layer-wise problems of ``proxcompress select --select mip`` on the results CNN
  (``--runs DIR`` with ``seed-S`` run folders of ``configs/results/cnn-fp.yaml``; default
  the *frozen instances* ``benchmarks/results/mip_cnn_instances/seed-S``: the config and final
  checkpoint, without the optimizer's state, of the three cnn-fp runs trained with main's
  c0299e8 (VGGSmall channels-last after its first conv since 5d746bd; the results table's
  runs), written by ``--freeze SOURCE``; the activations are recomputed from Fashion-MNIST):
  half the channels of each conv layer (8 of 16, 16 of 32, 32 of 64), warm-started from the SPR and
  magnitude choices as ``select`` does; the open solvers on the 8-of-16 rows
  (``--shor-ablation``: also bnb with the subset search's Shor bound at the root only, the
  search before the open nodes' Shor bounds, as a same-run baseline; ``--tree-ablation``: also
  bnb without the subset search's certificate tree, ``bnb-no-tree``; ``--root-shor-iters N``:
  also bnb with ``N`` Shor iterations at the subset search's root, ``bnb-root-shor-N``;
  ``--shor-rule-ab``: also bnb with the root's and open nodes' Shor bounds by the step rule
  before issue 14's eleventh stop, ``bnb-shor-adam``, the two alternating per instance).
- ``cnn-root``: the same layers' (same ``--runs``) root removal bounds, the subset search's
  row-wise bound against the Shor relaxation's eigenvalue dual (``--shor-iters``), no search.
- ``cnn-relax``: the same layers' root bounds by relaxation, side by side (issue 14's tenth
  stop; :func:`piece_cnn_relax`): the subset search's row-wise and Shor bounds (``--shor-iters``
  more Shor iterations from the root's), bnb's own root (FW-refined diagonal perspective with
  the budget), the perspective relaxation with the budget and a diagonal or block shift
  (:func:`perspective_budget_bound`), and on 8 of 16 the removal bound's dual family with its
  inner minimum exact (:func:`enumerated_removal_bound`), each with wall and CPU seconds.
- ``cnn-shor``: the same layers' root Shor bound by each step rule of
  :func:`~proxcompress.formulations.subsets.shor_bound` (``scaled``, the default, and
  ``adam``, the rule before issue 14's eleventh stop) at ``--shor-iters`` iteration counts
  (default 500, 1 000, 3 000), the rules alternating, with the bound, its gap to the best
  known objective, wall and CPU seconds and the load (:func:`piece_cnn_shor`); no search.

- ``overlap`` and ``bnb-alpha`` run bnb's default since issue 14's ninth stop: the
  overlapping pairs' hull built inside the limit when the refined root gap exceeds
  ``bnb.AUTO_HULL_GAP`` (``hull_built`` and the SDP's seconds per row); ``--no-rule`` builds
  it before every solve of the ``overlap`` piece as before.

Usage: ``python benchmarks/mip_pruning.py --piece P [--regime R] [--out FILE.json]``;
``--render FILE.json [FILE.json ...]`` prints the Markdown tables of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from proxcompress.errors import InvalidInputError
from proxcompress.formulations import (
    LayerPruningProblem,
    Solution,
    bnb,
    pairhull,
    random_instance,
    solve,
    subsets,
)
from proxcompress.formulations.bnb import build_engine, refine_shift, solve_bnb
from proxcompress.formulations.instances import sparse_regression_instance
from proxcompress.formulations.pairhull import (
    OVERLAP_ROOT_SWEEPS,
    OVERLAP_SWEEPS,
    block_hull,
    chain_blocks,
    joint_dual_bound,
    overlap_hull,
    overlap_root_bound,
    sdp_decomposition,
)
from proxcompress.formulations.perspective import solve_perspective
from proxcompress.formulations.relaxations import pairwise_sdp_bound, relaxation, root_gap

REGIMES = {"independent-strong": (0.0, 4.0), "correlated-weak": (0.8, 0.5)}
#: the bnb-alpha piece's default alphas (``--alphas``)
BNB_ALPHAS = (0.05, 0.2, 0.8)
RIVALS = ("bigm", "perspective-scip", "perspective-ecos_bb", "cuts")
NAMES = ("bnb", "bnb-no-ascent", *RIVALS)
CNN_LAYERS = (("conv0_0", 8), ("conv1_0", 16), ("conv2_0", 32))
#: the frozen CNN layer instances: config and final checkpoint of the three
#: configs/results/cnn-fp.yaml runs (module docstring)
CNN_INSTANCES = Path(__file__).resolve().parent / "results" / "mip_cnn_instances"
#: the ``cnn-shor`` piece's default iteration counts
SHOR_COUNTS = (500, 1000, 3000)


def _machine() -> dict[str, Any]:
    model = "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "device": "cpu",
        "cpu": model,
        "cores": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "versions": {
            pkg: metadata.version(pkg)
            for pkg in ("numpy", "numba", "pyomo", "highspy", "cvxpy", "scs", "ecos", "pyscipopt")
        },
    }


def _runners(groups: int, rivals: bool = True) -> dict[str, Callable[..., Solution]]:
    """Which formulations run at this size (ECOS_BB has no time limit of its own and is
    stopped by the guard, so it runs only where it can finish)."""
    out: dict[str, Callable[..., Solution]] = {"bnb": lambda p, t, **kw: solve(p, "bnb", t, **kw)}
    if rivals and groups <= 100:
        out["bigm"] = lambda p, t, **kw: solve(p, "bigm", t)
        out["perspective-scip"] = lambda p, t, **kw: solve_perspective(p, t, solver="SCIP")
        out["cuts"] = lambda p, t, **kw: solve(p, "cuts", t)
    if rivals and groups <= 30:
        out["perspective-ecos_bb"] = lambda p, t, **kw: solve_perspective(p, t, solver="ECOS_BB")
    return out


def _record(solution: Solution, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "formulation": solution.formulation,
        "status": solution.status,
        "seconds": seconds,
        "nodes": solution.nodes,
        "objective": solution.objective,
        "bound": solution.bound,
        "gap": solution.gap,
        "support": list(solution.support),
        **extra,
    }


def _agree(records: list[dict[str, Any]]) -> bool:
    """Proved optima agree (objective to 1e-6) and no bound passes the best objective."""
    optimal = [r for r in records if r["status"] == "optimal"]
    best = min(r["objective"] for r in records)
    tol = 1e-6 * max(abs(best), 1.0)
    return all(abs(r["objective"] - best) <= tol for r in optimal) and all(
        r["bound"] <= best + tol for r in records
    )


def _solve_all(
    problem: LayerPruningProblem, runners: dict[str, Callable[..., Solution]], time_limit: float,
    extra: dict[str, Any], warm_start: list[list[int]] | None = None,
) -> list[dict[str, Any]]:
    records = []
    for name, run in runners.items():
        load = os.getloadavg()[0]
        start = time.perf_counter()
        cpu = time.process_time()  # this process's (a solver in a child process is not in it)
        kwargs = ({"warm_start": warm_start} if warm_start and name.startswith("bnb")
                  else {})
        solution = run(problem, time_limit, **kwargs)
        records.append({**_record(solution, time.perf_counter() - start), "name": name,
                        "cpu_seconds": time.process_time() - cpu, "load": load, **extra})
    agree = _agree(records)
    for record in records:
        record["agree"] = agree
        print(json.dumps({k: v for k, v in record.items() if k != "support"}), flush=True)
    return records


def _shifted_gaps(problem: LayerPruningProblem, best: float) -> dict[str, float]:
    engine, root = build_engine(problem)
    _, refined = refine_shift(engine, root)
    return {
        "root_gap_bnb_shifted": (best - root.bound) / abs(best),
        "root_gap_bnb_refined": (best - refined.bound) / abs(best),
    }


# ---------------------------------------------------------------------------- pieces
def piece_table(regime: str, sizes: list[int], seeds: int, alpha: float,
                time_limit: float) -> list[dict[str, Any]]:
    """The main table for one regime."""
    rho, snr = REGIMES[regime]
    runs = []
    for groups in sizes:
        for seed in range(seeds):
            problem = random_instance(500, groups, 1, groups, seed, rho=rho, snr=snr, alpha=alpha)
            extra = {"groups": groups, "regime": regime, "seed": seed, "alpha": alpha}
            records = _solve_all(problem, _runners(groups), time_limit, extra)
            best = min(r["objective"] for r in records)
            gaps = {kind: root_gap(problem, kind, best) for kind in ("bigm", "perspective")}
            shifted = _shifted_gaps(problem, best)
            for record in records:
                record.update(root_gap_bigm=gaps["bigm"], root_gap_perspective=gaps["perspective"],
                              **shifted)
            runs += records
    return runs


def piece_alpha(groups: int, seeds: int, alphas: list[float]) -> list[dict[str, Any]]:
    """Root gaps of both relaxations (and bnb's) as alpha varies."""
    rows = []
    for regime, (rho, snr) in REGIMES.items():
        for alpha in alphas:
            gaps, closed = [], []
            for seed in range(seeds):
                problem = random_instance(500, groups, 1, groups, seed, rho=rho, snr=snr,
                                          alpha=alpha)
                optimum = solve(problem, "bnb").objective
                bigm = relaxation(problem, "bigm").bound
                persp = relaxation(problem, "perspective").bound
                shifted = _shifted_gaps(problem, optimum)
                gaps.append(((optimum - bigm) / abs(optimum), (optimum - persp) / abs(optimum),
                             shifted["root_gap_bnb_shifted"], shifted["root_gap_bnb_refined"]))
                closed.append((persp - bigm) / (optimum - bigm) if optimum > bigm else 1.0)
            row = {
                "groups": groups, "regime": regime, "alpha": alpha,
                "root_gap_bigm_median": statistics.median(g[0] for g in gaps),
                "root_gap_perspective_median": statistics.median(g[1] for g in gaps),
                "bigm_gap_closed_median": statistics.median(closed),
                "root_gap_bnb_shifted_median": statistics.median(g[2] for g in gaps),
                "root_gap_bnb_refined_median": statistics.median(g[3] for g in gaps),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def _auto_hull_recorded(problem: LayerPruningProblem, backend: str = "auto"
                        ) -> tuple[Any, dict[str, Any]]:
    """``solve_bnb``'s default ``hull="auto"`` as an explicit builder (with
    ``hull_iters=OVERLAP_SWEEPS, hull_gap=bnb.AUTO_HULL_GAP`` the same search), recording
    whether the rule built the hull (``hull_built``) and its SDP's wall and CPU seconds, which
    count inside the solve's limit; ``backend``: the SDP's (``pairhull.SDP_BACKENDS``)."""
    build = bnb._auto_hull(problem, backend=backend)
    record: dict[str, Any] = {"hull_built": False}
    if build is None:
        return None, record

    def recorded() -> Any:
        start, cpu = time.perf_counter(), time.process_time()
        hull = build()
        record.update(hull_built=hull is not None, _hull=hull,
                      sdp_seconds=time.perf_counter() - start,
                      sdp_cpu_seconds=time.process_time() - cpu)
        return hull

    return recorded, record


def piece_bnb_alpha(groups: int, seeds: int, alphas: list[float],
                    time_limit: float) -> list[dict[str, Any]]:
    """bnb alone at ``groups`` groups as alpha varies (small alpha: weak perspective)."""
    rows = []
    for regime, (rho, snr) in REGIMES.items():
        for alpha in alphas:
            for seed in range(seeds):
                problem = random_instance(500, groups, 1, groups, seed, rho=rho, snr=snr,
                                          alpha=alpha)
                load = os.getloadavg()[0]
                start = time.perf_counter()
                cpu = time.process_time()
                hull, built = _auto_hull_recorded(problem)
                solution = solve_bnb(problem, time_limit, hull=hull,
                                     hull_iters=OVERLAP_SWEEPS, hull_gap=bnb.AUTO_HULL_GAP)
                row = {**_record(solution, time.perf_counter() - start), "name": "bnb",
                       "groups": groups, "regime": regime, "alpha": alpha, "seed": seed,
                       "cpu_seconds": time.process_time() - cpu, "load": load,
                       **{k: v for k, v in built.items() if not k.startswith("_")}}
                print(json.dumps({k: v for k, v in row.items() if k != "support"}), flush=True)
                rows.append(row)
    return rows



def piece_root_sdp(seeds: int, reach: int, time_limit: float) -> list[dict[str, Any]]:
    """Root bounds of the hard regime: bnb's (shifted, then refined), Shor, Shor with pairs."""
    rows = []
    for seed in range(seeds):
        problem = random_instance(500, 100, 1, 100, seed, rho=0.8, snr=0.5, alpha=0.05)
        solution = solve(problem, "bnb", time_limit)
        engine, root = build_engine(problem)
        shifted = root.bound
        refined = refine_shift(engine, root)[1].bound
        row: dict[str, Any] = {"seed": seed, "incumbent": solution.objective,
                               "status": solution.status, "tree_bound": solution.bound,
                               "bnb_shifted": shifted, "bnb_refined": refined}
        for name, r in (("shor", 0), (f"pairs_reach_{reach}", reach)):
            start = time.perf_counter()
            row[name] = pairwise_sdp_bound(problem, r)
            row[f"{name}_seconds"] = time.perf_counter() - start
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows

HULL_ITERS = 40


def _hull_instance(seed: int, alpha: float, groups: int = 100) -> LayerPruningProblem:
    """The hard-regime instance of :func:`piece_hull` (``groups`` single-feature groups)."""
    return random_instance(500, groups, 1, groups, seed, rho=0.8, snr=0.5, alpha=alpha)


def _saved_decomposition(entries: list[Any], blocks: list[list[int]], d: int
                         ) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The ``d x d`` block matrix of a saved decomposition (its blocks' entries in order)."""
    Q = np.zeros((d, d))
    for block, values in zip(blocks, entries, strict=True):
        Q[np.ix_(block, block)] = np.asarray(values, dtype=np.float64)
    return Q


def _read_decompositions(path: Path, seeds: int, alpha: float = 0.05) -> dict[str, Any]:
    """``--decompositions``, read and checked before any work: JSON of ``"seed:alpha"`` ->
    one 2 x 2 matrix of finite numbers per block, each giving a valid block hull of its
    instance; raises ``ValueError`` naming what is wrong."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a readable JSON file ({exc})") from None
    if not isinstance(saved, dict):
        raise ValueError("the file must hold an object of \"seed:alpha\" -> blocks")
    for seed in range(seeds):
        key = f"{seed}:{alpha}"
        if key not in saved:
            continue
        problem = _hull_instance(seed, alpha)
        blocks = chain_blocks(problem.d, 2)
        entries = saved[key]
        ok = isinstance(entries, list) and len(entries) == len(blocks) and all(
            isinstance(e, list) and len(e) == 2 and all(
                isinstance(r, list) and len(r) == 2 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool)
                    and np.isfinite(v) for v in r) for r in e) for e in entries)
        if not ok:
            raise ValueError(f"{key!r} must be {len(blocks)} 2 x 2 matrices of finite numbers")
        try:
            block_hull(problem, _saved_decomposition(entries, blocks, problem.d), blocks)
        except InvalidInputError as exc:
            raise ValueError(f"{key!r} gives no valid block hull: {exc}") from None
    return saved


def piece_hull(seeds: int, time_limit: float, saved: dict[str, Any] | None,
               alpha: float = 0.05) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """bnb with and without the block-hull node bound on the hard regime (module docstring),
    in alternating order per seed; returns the rows and the decompositions (block entries by
    seed)."""
    rows, decompositions = [], {}
    for seed in range(seeds):
        problem = _hull_instance(seed, alpha)
        blocks = chain_blocks(problem.d, 2)
        key = f"{seed}:{alpha}"
        row: dict[str, Any] = {"seed": seed, "alpha": alpha}
        hull = None
        names = ("bnb", "bnb+hull") if seed % 2 == 0 else ("bnb+hull", "bnb")
        for name in names:
            load = os.getloadavg()[0]
            start = time.perf_counter()
            if name == "bnb":
                solution = solve_bnb(problem, time_limit, hull=None)
                extra: dict[str, Any] = {}
            else:
                if saved is not None and key in saved:
                    Q = _saved_decomposition(saved[key], blocks, problem.d)
                    row["sdp_seconds"] = None
                else:  # the decomposition counts in the time limit
                    Q = sdp_decomposition(problem, blocks)
                    row["sdp_seconds"] = time.perf_counter() - start
                decompositions[key] = [Q[np.ix_(b, b)].tolist() for b in blocks]
                hull = block_hull(problem, Q, blocks)
                left = max(time_limit - (time.perf_counter() - start), 1.0)
                solution = solve_bnb(problem, left, hull=hull, hull_iters=HULL_ITERS)
                calls = max(int(hull.stats["calls"]), 1)
                extra = {"hull_calls": int(hull.stats["calls"]),
                         "sweeps_per_call": hull.stats["sweeps"] / calls,
                         "ms_per_call": 1e3 * hull.stats["seconds"] / calls}
            seconds = time.perf_counter() - start
            row[name] = {**_record(solution, seconds), "load": load,
                         "ms_per_node": 1e3 * seconds / max(solution.nodes, 1), **extra}
            row[name].pop("support", None)
        assert hull is not None
        engine, root = build_engine(problem)  # root bounds, outside the timings
        row["root_refined"] = refine_shift(engine, root)[1].bound
        row["root_hull"] = hull.bound(np.zeros(problem.d, dtype=np.int8), iters=1500).bound
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows, decompositions


def piece_overlap(seeds: int, time_limit: float, reach: int, sweeps: int,
                  alpha: float = 0.05, rule: bool = True,
                  backends: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """bnb with and without the overlapping-pair node bound on the hard regime (module
    docstring), in alternating order per seed, the SDP inside the time limit: with ``rule``
    the hull arm is bnb's default (the hull built after the root when its gap asks for it,
    ``bnb.AUTO_HULL_GAP``, reach ``bnb.AUTO_HULL_REACH``), else the hull built before the
    solve at ``reach``. With ``backends`` (``pairhull.SDP_BACKENDS``) the arms are instead the
    hull arm once per backend of the root SDP (``bnb+overlap:BACKEND``), no bnb-alone arm."""
    rows = []
    arms = tuple(f"bnb+overlap:{b}" for b in backends) or ("bnb", "bnb+overlap")
    for seed in range(seeds):
        problem = _hull_instance(seed, alpha)
        row: dict[str, Any] = {"seed": seed, "alpha": alpha, "rule": rule,
                               "reach": bnb.AUTO_HULL_REACH if rule else reach, "sweeps": sweeps}
        names = arms if seed % 2 == 0 else arms[::-1]
        for name in names:
            backend = name.split(":")[1] if ":" in name else "auto"
            load = os.getloadavg()[0]
            start = time.perf_counter()
            cpu = time.process_time()
            extra: dict[str, Any] = {}
            hull: Any = None
            if name == "bnb":
                solution = solve_bnb(problem, time_limit, hull=None)
            elif rule:  # bnb's default: the hull built inside the limit when the root asks
                build, built = _auto_hull_recorded(problem, backend)
                solution = solve_bnb(problem, time_limit, hull=build, hull_iters=sweeps,
                                     hull_gap=bnb.AUTO_HULL_GAP)
                hull = built.pop("_hull", None)
                extra.update(built)
            else:
                hull = overlap_hull(problem, reach, backend=backend)
                extra["sdp_seconds"] = time.perf_counter() - start
                extra["sdp_cpu_seconds"] = time.process_time() - cpu
                left = max(time_limit - (time.perf_counter() - start), 1.0)
                solution = solve_bnb(problem, left, hull=hull, hull_iters=sweeps)
            seconds = time.perf_counter() - start
            cpu_seconds = time.process_time() - cpu
            if hull is not None:  # outside the timings
                calls = max(int(hull.stats["calls"]), 1)
                extra.update(hull_calls=int(hull.stats["calls"]),
                             sweeps_per_call=hull.stats["sweeps"] / calls,
                             ms_per_call=1e3 * hull.stats["seconds"] / calls,
                             root_overlap=hull.bound(np.zeros(problem.d, dtype=np.int8),
                                                     iters=OVERLAP_ROOT_SWEEPS).bound)
            row[name] = {**_record(solution, seconds), "load": load,
                         "cpu_seconds": cpu_seconds, **extra}
            row[name].pop("support", None)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def piece_hull_root(seeds: int, reach: int) -> list[dict[str, Any]]:
    """Root bounds of the hard regime's pair hulls (SCS): disjoint pairs, and overlapping pairs
    at reach 1 and ``reach`` (:func:`~proxcompress.formulations.pairhull.overlap_root_bound`),
    against bnb's refined root."""
    rows = []
    for seed in range(seeds):
        problem = _hull_instance(seed, 0.05)
        engine, root = build_engine(problem)
        row: dict[str, Any] = {"seed": seed, "load": os.getloadavg()[0],
                               "root_refined": refine_shift(engine, root)[1].bound}
        start = time.perf_counter()
        row["disjoint"] = joint_dual_bound(problem, chain_blocks(problem.d, 2))
        row["disjoint_seconds"] = time.perf_counter() - start
        for r in sorted({1, reach}):
            start = time.perf_counter()
            row[f"reach_{r}"] = overlap_root_bound(problem, r)
            row[f"reach_{r}_seconds"] = time.perf_counter() - start
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def _lap(rec: dict[str, Any], name: str, since: tuple[float, float]) -> tuple[float, float]:
    """Record the wall and CPU seconds since ``since`` as ``name`` and ``name_cpu``; returns
    now."""
    now = time.perf_counter(), time.process_time()
    rec[name] = now[0] - since[0]
    rec[name + "_cpu"] = now[1] - since[1]
    return now


#: the ``sdp`` piece's arms: the CVXPY twin (build, compile with CVXPY's default canonicalisation
#: backend, SCS on its data), its compilation alone with the SciPy backend or DPP ignored, and
#: the direct assembly for SCS's own API (the default since issue 14's twelfth stop)
SDP_ARMS = ("cvxpy", "cvxpy-scipy", "cvxpy-nodpp", "direct")


def piece_sdp(seeds: int, reach: int, groups: int = 100) -> list[dict[str, Any]]:
    """Where the overlapping pairs' root SDP spends its time (hard regime, pairs at most
    ``reach`` apart, SCS at ``OVERLAP_SDP_EPS``): per arm of :data:`SDP_ARMS` (alternating
    order per seed) the layout, the CVXPY model's build and compilation (``get_problem_data``)
    or the direct assembly, and SCS's solve, each in wall and CPU seconds, SCS's iterations
    and the SDP's value (``1/2 |y|^2`` less SCS's primal objective); the load before each
    arm. ``groups``: the instance's size (100, the hard regime; smaller in the tests)."""
    import cvxpy as cp
    import scs
    from cvxpy.reductions.solvers.conic_solvers.scs_conif import dims_to_solver_dict

    rows = []
    for seed in range(seeds):
        problem = _hull_instance(seed, 0.05, groups)
        d = problem.d
        pairs = [[i, j] for i in range(d) for j in range(i + 1, min(i + reach + 1, d))]
        row: dict[str, Any] = {"seed": seed, "reach": reach, "eps": pairhull.OVERLAP_SDP_EPS}
        for arm in SDP_ARMS if seed % 2 == 0 else SDP_ARMS[::-1]:
            rec: dict[str, Any] = {"load": os.getloadavg()[0]}
            started = time.perf_counter(), time.process_time()
            lay = pairhull._joint_layout(problem, pairs)
            mark = _lap(rec, "layout", started)
            if arm == "direct":
                stats: dict[str, Any] = {}
                rec["value"] = pairhull._joint_dual_scs(lay, pairhull.OVERLAP_SDP_EPS, stats)[0]
                _lap(rec, "assemble_and_solve", mark)
                rec.update(stats)
            else:
                model = pairhull._joint_dual_model(lay)[0]
                mark = _lap(rec, "build", mark)
                options: dict[str, Any] = {"canon_backend": "SCIPY"} if arm == "cvxpy-scipy" else {}
                if arm == "cvxpy-nodpp":
                    options["ignore_dpp"] = True
                data = model.get_problem_data(cp.SCS, **options)[0]
                mark = _lap(rec, "compile", mark)
                rec["rows"], rec["columns"] = data["A"].shape
                if arm == "cvxpy":  # the solve is the same for every compilation
                    out = scs.SCS({"A": data["A"], "b": data["b"], "c": data["c"]},
                                  dims_to_solver_dict(data["dims"]),
                                  eps_abs=pairhull.OVERLAP_SDP_EPS,
                                  eps_rel=pairhull.OVERLAP_SDP_EPS, verbose=False).solve()
                    _lap(rec, "solve", mark)
                    rec.update(value=0.5 * lay.yy - float(out["info"]["pobj"]),
                               iterations=int(out["info"]["iter"]),
                               setup_ms=float(out["info"]["setup_time"]),
                               solve_ms=float(out["info"]["solve_time"]))
            _lap(rec, "total", started)
            row[arm] = rec
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


WIDE_CASES = (
    # (label, p, rho, snr, rivals)
    ("independent, SNR 10", 1000, 0.0, 10.0, True),
    ("independent, SNR 10", 10_000, 0.0, 10.0, False),
    ("equicorrelated 0.5, SNR 2", 1000, 0.5, 2.0, False),
)


def piece_wide(seeds: int, time_limit: float, rivals: bool = True) -> list[dict[str, Any]]:
    """Single-feature groups of the normalised design, n = 1000 (``rivals=False``: bnb only,
    also on the case that runs the open solvers)."""
    runs = []
    for label, p, rho, snr, case_rivals in WIDE_CASES:
        for seed in range(seeds):
            problem = sparse_regression_instance(1000, p, seed, rho=rho, snr=snr)
            runners = _runners(100, rivals and case_rivals)
            runners.pop("perspective-ecos_bb", None)
            extra = {"case": label, "p": p, "seed": seed, "n": 1000}
            runs += _solve_all(problem, runners, time_limit, extra)
    return runs


def _cnn_problem(run: Path, unit_name: str, keep: int) -> tuple[LayerPruningProblem,
                                                                list[list[int]], dict[str, Any]]:
    """The layer-wise problem ``select --select mip`` solves for ``unit_name`` (its data, its
    problem and its SPR / magnitude warm starts)."""
    import torch

    from proxcompress.training.data import load_dataset
    from proxcompress.training.pruning import group_tensors, unit_by_name
    from proxcompress.training.select import _problem, _spr_scores, record_consumer
    from proxcompress.training.trainer import load_run

    cfg, model = load_run(str(run))
    train, _ = load_dataset(cfg.data.name, cfg.data.root, cfg.seed, cfg.data.synthetic_samples,
                            cfg.data.image_size, cfg.data.in_channels)
    train = train.subset(4096, cfg.seed)
    unit = unit_by_name(model, unit_name)
    rec = record_consumer(model, unit, train, 256, 16, 0)
    problem = _problem(rec, keep)
    norms = torch.cat([p.detach() for p in group_tensors(model, unit)], dim=1).norm(dim=1)
    starts = [sorted(torch.topk(_spr_scores(model, unit, 0.1, None), keep).indices.tolist()),
              sorted(torch.topk(norms, keep).indices.tolist())]
    shape = {"n": problem.n, "d": problem.d, "m": problem.m, "groups": problem.n_groups,
             "k": keep}
    return problem, starts, shape


def _missing_runs(folder: Path, seeds: int) -> list[str]:
    """The ``seed-S`` run folders (S < ``seeds``) of ``folder`` without the config and
    checkpoint that ``load_run`` reads."""
    return [f"seed-{seed}" for seed in range(seeds)
            if not all((folder / f"seed-{seed}" / name).is_file()
                       for name in ("config.yaml", "checkpoint.json"))]


def freeze_instances(source: Path, dest: Path, seeds: int) -> None:
    """Write the frozen CNN instances: for each ``source/seed-S`` run, its resolved
    ``config.yaml`` and its final checkpoint without the optimizer's state (the model's tensors,
    run state and RNG state as saved; all that ``load_run`` reads) into ``dest/seed-S``."""
    import shutil

    import torch

    from proxcompress.training.checkpoint import load_checkpoint, save_checkpoint

    for seed in range(seeds):
        run, out = source / f"seed-{seed}", dest / f"seed-{seed}"
        checkpoint = load_checkpoint(run, "--freeze")
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        shutil.copyfile(run / "config.yaml", out / "config.yaml")
        saved = torch.get_rng_state()
        torch.set_rng_state(checkpoint.rng_state)
        try:
            save_checkpoint(out, checkpoint.model_state, None, checkpoint.meta, checkpoint.extra)
        finally:
            torch.set_rng_state(saved)


def _bnb_without_ascent(p: LayerPruningProblem, t: float | None, **kw: Any) -> Solution:
    """bnb with the subset search's removal bound at the groups' own directions (no ascent
    steps on its dual point): the ablation of the ascent."""
    saved = subsets.ROOT_STEPS, subsets.NODE_STEPS
    subsets.ROOT_STEPS = subsets.NODE_STEPS = 0
    try:
        return solve(p, "bnb", t, **kw)
    finally:
        subsets.ROOT_STEPS, subsets.NODE_STEPS = saved


def _bnb_root_shor_only(p: LayerPruningProblem, t: float | None, **kw: Any) -> Solution:
    """bnb with the subset search's Shor bound at the root only, after 80% of the limit (no
    open-node Shor bounds): the search before issue 14's seventh stop, for a same-run
    baseline."""
    names = ("ROOT_SHOR_AFTER", "OPEN_SHOR_SHARE", "NODE_SHOR_GAP")
    saved = tuple(getattr(subsets, name) for name in names)
    subsets.ROOT_SHOR_AFTER, subsets.OPEN_SHOR_SHARE, subsets.NODE_SHOR_GAP = 0.8, 0.0, -1.0
    try:
        return solve(p, "bnb", t, **kw)
    finally:
        for name, value in zip(names, saved, strict=True):
            setattr(subsets, name, value)


def _bnb_without_tree(p: LayerPruningProblem, t: float | None, **kw: Any) -> Solution:
    """bnb without the subset search's certificate tree (the depth-first search and its open
    nodes' Shor bounds to the limit): the search before issue 14's eighth stop."""
    saved = subsets.TREE_PACE
    subsets.TREE_PACE = -1.0
    try:
        return solve(p, "bnb", t, **kw)
    finally:
        subsets.TREE_PACE = saved


def _bnb_with_subsets(**constants: Any) -> Callable[..., Solution]:
    """bnb with the given constants of :mod:`subsets` set for the solve (and restored)."""
    def run(p: LayerPruningProblem, t: float | None, **kw: Any) -> Solution:
        saved = {name: getattr(subsets, name) for name in constants}
        for name, value in constants.items():
            setattr(subsets, name, value)
        try:
            return solve(p, "bnb", t, **kw)
        finally:
            for name, value in saved.items():
                setattr(subsets, name, value)
    return run


def _bnb_root_shor_iters(iters: int) -> Callable[..., Solution]:
    """bnb with ``iters`` Shor iterations at the subset search's root instead of
    :data:`subsets.ROOT_SHOR_ITERS` (``--root-shor-iters``)."""
    return _bnb_with_subsets(ROOT_SHOR_ITERS=iters)


def _bnb_shor_rule(rule: str) -> Callable[..., Solution]:
    """bnb with the subset search's root and open-node Shor bounds by the step rule ``rule``
    instead of :data:`subsets.SHOR_RULE` (``--shor-rule-ab``; the certificate tree's rule,
    :data:`subsets.TREE_SHOR_RULE`, is left as it is)."""
    return _bnb_with_subsets(SHOR_RULE=rule)


def piece_cnn(runs_dir: Path, seeds: int, time_limit: float, rivals: bool = True,
              ascent_ablation: bool = False,
              layers: tuple[str, ...] = tuple(name for name, _ in CNN_LAYERS),
              shor_ablation: bool = False, tree_ablation: bool = False,
              root_shor_iters: int | None = None, shor_rule_ab: bool = False,
              ) -> list[dict[str, Any]]:
    """Half the channels of every conv layer of the results CNN (the open solvers on the
    8-of-16 rows unless ``rivals`` is off; bnb without the ascent as well with
    ``ascent_ablation``; bnb with the root's Shor bound only with ``shor_ablation``; bnb
    without the certificate tree with ``tree_ablation``)."""
    out = []
    for seed in range(seeds):
        run = runs_dir / f"seed-{seed}"
        for unit_name, keep in CNN_LAYERS:
            if unit_name not in layers:
                continue
            problem, starts, shape = _cnn_problem(run, unit_name, keep)
            runners = _runners(problem.n_groups, rivals=rivals and problem.n_groups <= 16)
            if ascent_ablation:
                runners["bnb-no-ascent"] = _bnb_without_ascent
            if shor_ablation:
                runners["bnb-root-shor"] = _bnb_root_shor_only
            if tree_ablation:
                runners["bnb-no-tree"] = _bnb_without_tree
            if root_shor_iters is not None:
                runners[f"bnb-root-shor-{root_shor_iters}"] = _bnb_root_shor_iters(
                    root_shor_iters)
            if shor_rule_ab:
                runners["bnb-shor-adam"] = _bnb_shor_rule("adam")
                if seed % 2 == 1:  # the two rules alternate which runs first
                    runners["bnb"] = runners.pop("bnb")
            extra = {"layer": unit_name, "seed": seed, **shape}
            out += _solve_all(problem, runners, time_limit, extra, warm_start=starts)
    return out


def _read_best_known(path: Path) -> dict[tuple[str, int], float]:
    """``--best-known``: a saved ``cnn`` piece's best objective per (layer, seed); raises
    ``ValueError`` naming what is wrong (the command checks it before any work)."""
    try:
        runs = json.loads(path.read_text(encoding="utf-8"))["runs"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a saved cnn piece (JSON with \"runs\"): {exc!r}"
                         ) from None
    known: dict[tuple[str, int], float] = {}
    for run in runs if isinstance(runs, list) else [None]:
        if not (isinstance(run, dict) and isinstance(run.get("layer"), str)
                and isinstance(run.get("seed"), int)
                and isinstance(run.get("objective"), (int, float))):
            raise ValueError("every run needs a layer (text), seed (integer) and objective "
                             "(number)")
        key = (run["layer"], run["seed"])
        known[key] = min(known.get(key, np.inf), float(run["objective"]))
    return known


def _cnn_layer_instances(runs_dir: Path, seeds: int, layers: tuple[str, ...]) -> Any:
    """For each seed and chosen layer: ``(seed, unit_name, keep, problem, shape, incumbent)``,
    the incumbent scored on ``select``'s warm starts (SPR, magnitude)."""
    from proxcompress.formulations.heuristics import Incumbent
    from proxcompress.formulations.restricted import SupportSolver

    for seed in range(seeds):
        for unit_name, keep in CNN_LAYERS:
            if unit_name not in layers:
                continue
            problem, starts, shape = _cnn_problem(runs_dir / f"seed-{seed}", unit_name, keep)
            incumbent = Incumbent(problem, SupportSolver(problem))
            for support in starts:
                incumbent.offer(tuple(support))
            yield seed, unit_name, keep, problem, shape, incumbent


def piece_cnn_root(runs_dir: Path, seeds: int, iters: int, best_known: Path | None,
                   layers: tuple[str, ...] = tuple(name for name, _ in CNN_LAYERS),
                   ) -> list[dict[str, Any]]:
    """Root bounds of the subset search on every CNN layer: the row-wise removal bound after
    its root ascent (what the search uses) against the Shor relaxation's eigenvalue dual
    started from that dual point (``iters`` iterations), as objective bounds
    ``f(U) + L_r`` and gaps against the best known objective: the warm starts' best (SPR,
    magnitude), or a saved ``cnn`` piece's best objective for the layer and seed if lower."""
    known = _read_best_known(best_known) if best_known is not None else {}
    rows = []
    for seed, unit_name, keep, problem, shape, incumbent in _cnn_layer_instances(
            runs_dir, seeds, layers):
        load = os.getloadavg()[0]
        clock = time.perf_counter()
        search = subsets.SubsetSearch(problem, incumbent)
        row_seconds = time.perf_counter() - clock
        H, W, Z = search.H[0], search.W[0], search.Z[0].copy()
        every = np.arange(problem.n_groups, dtype=np.int64)
        r = problem.n_groups - keep
        row_wise = subsets._removal_bound(H, W, search.starts, every, r, Z.copy(), 0, np.inf)
        clock = time.perf_counter()
        shor, _ = subsets.shor_removal_bound(H, W, search.starts, every, r, Z, iters)
        shor_seconds = time.perf_counter() - clock
        best = min(incumbent.value, known.get((unit_name, seed), np.inf))
        fit = float(search.f[0])
        row = {"layer": unit_name, "seed": seed, **shape, "incumbent": best,
               "warm_start_best": incumbent.value, "f_U": fit,
               "row_wise": row_wise, "shor": shor, "iters": iters,
               "step": subsets.SHOR_LR,
               "root_gap_row_wise": (best - fit - row_wise) / abs(best),
               "root_gap_shor": (best - fit - shor) / abs(best),
               "seconds_row_wise": row_seconds, "seconds_shor": shor_seconds,
               "load_before": load, "load_after": os.getloadavg()[0]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- cnn-relax
#: the most removal sets :func:`enumerated_removal_bound` enumerates
MAX_REMOVAL_SETS = 20_000
GOLDEN_RATIO = 0.5 * (np.sqrt(5.0) - 1.0)


def _capped_simplex(y: np.ndarray, k: float, low: float) -> np.ndarray:
    """The Euclidean projection of ``y`` onto ``{low <= z <= 1, sum z = k}`` (bisection on the
    shift)."""
    lo, hi = float(y.min()) - 1.0, float(y.max())
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if np.clip(y - mid, low, 1.0).sum() > k:
            lo = mid
        else:
            hi = mid
    return np.clip(y - 0.5 * (lo + hi), low, 1.0)


def block_jacobi_shift(gram0: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The block shift ``t * blockdiag(gram0_gg)`` with ``t`` the safe smallest eigenvalue of the
    block-Jacobi-scaled ``gram0`` (``B^{-1/2} gram0 B^{-1/2}``, ``B`` its diagonal blocks), so
    ``gram0 - D = B^{1/2} (C - t I) B^{1/2}`` stays positive semi-definite; zero where a block
    is singular."""
    from proxcompress.formulations.shifts import safe_lambda_min

    d = gram0.shape[0]
    scale = np.zeros((d, d))
    D = np.zeros((d, d))
    for s, e in zip(starts[:-1], starts[1:], strict=True):
        w, V = np.linalg.eigh(gram0[s:e, s:e])
        if w[0] <= 1e-12 * max(w[-1], 1e-300):
            return D
        scale[s:e, s:e] = (V / np.sqrt(w)) @ V.T
    t = max(0.0, safe_lambda_min(scale @ gram0 @ scale)) * (1.0 - 1e-9)
    for s, e in zip(starts[:-1], starts[1:], strict=True):
        D[s:e, s:e] = t * gram0[s:e, s:e]
    return D


def perspective_budget_bound(gram0: np.ndarray, ridge: float, xty: np.ndarray, yy: float,
                             starts: np.ndarray, k: int, price: float, shift: np.ndarray,
                             iters: int = 300) -> tuple[float, np.ndarray]:
    """The perspective relaxation of the budgeted problem without the box, with a block
    shift: for ``D = blockdiag(D_g)`` with ``gram0 - D >= 0`` (``gram0 = X^T X``) and
    ``E_g = D_g + ridge I``,

    ``P(z) = min_W 1/2 <W, (gram0 - D) W> - <X^T Y, W> + 1/2 sum_g <W_g, E_g W_g> / z_g
    + 1/2 ||Y||^2 + price sum z``

    equals the objective of the support ``z`` (box left out) at every 0/1 point, and is convex
    in ``z``; minimised by projected gradient over ``{z in [0, 1]^G, sum z = k}``. Returned:
    the certified lower bound ``max_t P(z_t) + min_v <grad P(z_t), v - z_t>`` over the
    iterates (``v`` over ``{[0, 1]^G, sum v <= k}``: the ``k`` most negative slopes) and the
    last ``z``. Never above the budgeted optimum of the problem without (hence with) its box.
    """
    G = starts.shape[0] - 1
    base = gram0 - shift
    blocks = [(int(s), int(e)) for s, e in zip(starts[:-1], starts[1:], strict=True)]
    E = [shift[s:e, s:e] + ridge * np.eye(e - s) for s, e in blocks]

    def value(z: np.ndarray) -> tuple[float, np.ndarray]:
        from scipy.linalg import cho_factor, cho_solve

        A = base.copy()
        for (s, e), Eg, zg in zip(blocks, E, z, strict=True):
            A[s:e, s:e] += Eg / zg
        W = cho_solve(cho_factor(A), xty)
        out = 0.5 * yy - 0.5 * float(np.sum(xty * W)) + price * float(z.sum())
        grad = np.array([price - 0.5 * float(np.sum(W[s:e] * (Eg @ W[s:e]))) / zg**2
                         for (s, e), Eg, zg in zip(blocks, E, z, strict=True)])
        return out, grad

    def certified(val: float, z: np.ndarray, grad: np.ndarray) -> float:
        lowest = np.sort(np.minimum(grad, 0.0))[:k].sum()
        return val - float(grad @ z) + float(lowest)

    low = 1e-8
    z = np.full(G, k / G)
    val, grad = value(z)
    best = certified(val, z, grad)
    step = 0.1 / max(float(np.abs(grad).max()), 1e-300)
    for _ in range(iters):
        trial = _capped_simplex(z - step * grad, k, low)
        tval, tgrad = value(trial)
        if tval <= val:
            z, val, grad = trial, tval, tgrad
            best = max(best, certified(val, z, grad))
            step *= 1.5
        else:
            step *= 0.3
    return best, z


def _removal_pieces(H: np.ndarray, W: np.ndarray, Z: np.ndarray, owner: np.ndarray,
                    G: int) -> tuple[np.ndarray, np.ndarray]:
    """``a_g = <W_g, Z_g>`` and ``Q_gh = <Z_g, H_gh Z_h>`` (NumPy)."""
    onehot = np.zeros((owner.shape[0], G))
    onehot[np.arange(owner.shape[0]), owner] = 1.0
    a = onehot.T @ np.sum(W * Z, axis=1)
    Q = onehot.T @ (H * (Z @ Z.T)) @ onehot
    return a, Q


def enumerated_removal_bound(H: np.ndarray, W: np.ndarray, starts: np.ndarray, r: int,
                             Z0: np.ndarray, iters: int = 300) -> dict[str, float]:
    """The removal-cost bound of the subset search's dual family with its inner minimum
    solved exactly (every removal set of size ``r`` enumerated): ``phi(Z) = min_{|D| = r}
    a(Z)^T x_D - x_D^T Q(Z) x_D / 2`` is a lower bound on the cost of removing ``r`` groups for
    every ``Z`` (the row-wise and Shor bounds relax this minimum). Returns ``phi`` at ``Z0``
    (e.g. the Shor bound's point), and the best ``phi`` over Frank-Wolfe on the convex
    ``g(x, X) = 1/2 <W x~, (H .* X~)^+ W x~>`` over the hull of ``{(x_D, x_D x_D^T)}``, whose
    minimum is ``max_Z phi(Z)`` (``phi(Z_t)`` at the iterate's maximiser ``Z_t`` is the
    Frank-Wolfe lower bound); ``upper``: the last ``g``, an upper bound on that maximum."""
    import itertools

    G = starts.shape[0] - 1
    d = H.shape[0]
    owner = np.repeat(np.arange(G), np.diff(starts))
    sets = np.array(list(itertools.combinations(range(G), r)))
    V = np.zeros((sets.shape[0], G))
    V[np.arange(sets.shape[0])[:, None], sets] = 1.0

    def phi(Z: np.ndarray) -> tuple[float, int]:
        a, Q = _removal_pieces(H, W, Z, owner, G)
        vals = V @ a - 0.5 * np.einsum("ij,jk,ik->i", V, Q, V)
        at = int(np.argmin(vals))
        return float(vals[at]), at

    def g_of(x: np.ndarray, X: np.ndarray) -> tuple[float, np.ndarray]:
        rows = np.flatnonzero(x[owner] > 1e-14)
        Wx = (W * x[owner][:, None])[rows]
        K = H[np.ix_(rows, rows)] * X[np.ix_(owner[rows], owner[rows])]
        try:
            sol = np.linalg.solve(K, Wx)
        except np.linalg.LinAlgError:
            sol = np.linalg.lstsq(K, Wx, rcond=None)[0]
        Z = np.zeros((d, W.shape[1]))
        Z[rows] = sol
        return 0.5 * float(np.sum(Wx * sol)), Z

    at_z0, first = phi(Z0)
    x = V[first].copy()
    X = np.outer(x, x)
    best = at_z0
    upper = np.inf
    for _ in range(iters):
        upper, Z = g_of(x, X)
        value, at = phi(Z)
        best = max(best, value)
        v = V[at]
        Xv = np.outer(v, v)
        lo, hi = 0.0, 1.0  # golden section on the convex segment
        m1, m2 = hi - GOLDEN_RATIO * hi, GOLDEN_RATIO * hi
        f1 = g_of(x + m1 * (v - x), X + m1 * (Xv - X))[0]
        f2 = g_of(x + m2 * (v - x), X + m2 * (Xv - X))[0]
        for _ in range(20):
            if f1 <= f2:
                hi, m2, f2 = m2, m1, f1
                m1 = hi - GOLDEN_RATIO * (hi - lo)
                f1 = g_of(x + m1 * (v - x), X + m1 * (Xv - X))[0]
            else:
                lo, m1, f1 = m1, m2, f2
                m2 = lo + GOLDEN_RATIO * (hi - lo)
                f2 = g_of(x + m2 * (v - x), X + m2 * (Xv - X))[0]
        gamma = 0.5 * (lo + hi)
        x, X = x + gamma * (v - x), X + gamma * (Xv - X)
        if upper - best <= 1e-6 * max(abs(upper), 1e-12):
            break
    return {"at_z0": at_z0, "best": best, "upper": upper}


def _relax_row(rows: list[dict[str, Any]], base: dict[str, Any], name: str, bound: float,
               clock: tuple[float, float, float], **extra: Any) -> None:
    """One ``cnn-relax`` row: the bound, its gap to ``base["incumbent"]``, the wall and CPU
    seconds since ``clock`` and the load before."""
    best = base["incumbent"]
    row = {**base, "relaxation": name, "bound": bound, "gap": (best - bound) / abs(best),
           "seconds": time.perf_counter() - clock[0],
           "cpu_seconds": time.process_time() - clock[1], "load": clock[2], **extra}
    print(json.dumps(row), flush=True)
    rows.append(row)


def _clock() -> tuple[float, float, float]:
    return time.perf_counter(), time.process_time(), os.getloadavg()[0]


def _relax_warmup() -> None:
    """Compile the subset search's and the Shor bound's kernels on a tiny budgeted instance."""
    from proxcompress.formulations.heuristics import Incumbent
    from proxcompress.formulations.restricted import SupportSolver

    tiny = random_instance(60, 12, 2, 6, 0, k=3)
    search = subsets.SubsetSearch(tiny, Incumbent(tiny, SupportSolver(tiny)))
    every = np.arange(tiny.n_groups, dtype=np.int64)
    subsets.shor_bound(search.H[0], search.W[0], search.starts, every, 3, search.Z[0], 3)


def _bound_instances(runs_dir: Path, seeds: int, layers: tuple[str, ...],
                     best_known: Path | None) -> Any:
    """:func:`_cnn_layer_instances` for the root-bound pieces: ``(base, keep, problem,
    incumbent)``, ``base`` the row's layer, seed, shape and best known objective (the warm
    starts' best, or a saved ``cnn`` piece's if lower)."""
    known = _read_best_known(best_known) if best_known is not None else {}
    for seed, unit_name, keep, problem, shape, incumbent in _cnn_layer_instances(
            runs_dir, seeds, layers):
        yield ({"layer": unit_name, "seed": seed, **shape,
                "incumbent": min(incumbent.value, known.get((unit_name, seed), np.inf))},
               keep, problem, incumbent)


def piece_cnn_relax(runs_dir: Path, seeds: int, layers: tuple[str, ...], iters: int,
                    best_known: Path | None) -> list[dict[str, Any]]:
    """Root bounds of the layers by relaxation, as objective bounds with their gaps to the best
    known objective (the warm starts' best, or a saved ``cnn`` piece's if lower) and their wall
    and CPU seconds: the subset search's row-wise and Shor bounds
    (:data:`subsets.ROOT_SHOR_ITERS`, then ``iters`` more from there), bnb's own root
    (perspective with the FW-refined diagonal shift and the budget, box included), the
    perspective relaxation with the budget and a diagonal (Jacobi) or block (block-Jacobi)
    shift (:func:`perspective_budget_bound`, no box), and where at most
    :data:`MAX_REMOVAL_SETS` removal sets exist, the dual family's bound with its inner
    minimum exact (:func:`enumerated_removal_bound`)."""
    import math

    from proxcompress.formulations.shifts import jacobi_shift

    rows: list[dict[str, Any]] = []
    for base, keep, problem, incumbent in _bound_instances(runs_dir, seeds, layers,
                                                           best_known):
        clock = _clock()
        search = subsets.SubsetSearch(problem, incumbent)
        fit = float(search.f[0])
        _relax_row(rows, base, "subset search: row-wise (root ascent)",
                   fit + search.root_removal, clock, f_U=fit)
        H, W = search.H[0], search.W[0]
        every = np.arange(problem.n_groups, dtype=np.int64)
        r = problem.n_groups - keep
        clock = _clock()
        shor = subsets.shor_bound(H, W, search.starts, every, r, search.Z[0].copy(),
                                  subsets.ROOT_SHOR_ITERS)
        _relax_row(rows, base, f"subset search: Shor ({subsets.ROOT_SHOR_ITERS} it.)",
                   fit + shor.value, clock)
        ridge = 2.0 * problem.lam * problem.alpha
        gram0 = search.gram - ridge * np.eye(problem.d)
        price = problem.lam * (1.0 - problem.alpha)
        for name in ("diagonal (Jacobi)", "block (block-Jacobi)"):
            clock = _clock()
            shift = (np.diag(jacobi_shift(gram0, 1.0 - 1e-9).delta) if name[0] == "d"
                     else block_jacobi_shift(gram0, search.starts))
            bound, _ = perspective_budget_bound(gram0, ridge, search.xty, search.yy,
                                                search.starts, keep, price, shift)
            _relax_row(rows, base, f"perspective, budget, {name} shift, no box", bound,
                       clock, shift_share=float(np.trace(shift) / np.trace(gram0)))
        if math.comb(problem.n_groups, r) <= MAX_REMOVAL_SETS:
            clock = _clock()
            found = enumerated_removal_bound(H, W, search.starts, r, shor.Z, iters=0)
            _relax_row(rows, base, "Z-family, inner minimum exact (enumerated), at "
                       "Shor's Z", fit + found["at_z0"], clock)
            clock = _clock()
            found = enumerated_removal_bound(H, W, search.starts, r, shor.Z)
            _relax_row(rows, base, "Z-family, inner minimum exact, Frank-Wolfe over the "
                       "hull (best)", fit + found["best"], clock, upper=fit + found["upper"])
        clock = _clock()
        more = subsets.shor_bound(H, W, search.starts, every, r, shor.Z, iters,
                                  subsets.NODE_SHOR_LR, mult=shor.mult,
                                  tau=subsets.NODE_SHOR_TAU)
        _relax_row(rows, base, f"subset search: Shor (+{iters} it. from it)",
                   fit + max(more.value, shor.value), clock)
        clock = _clock()
        engine, root = build_engine(problem)
        engine, root = refine_shift(engine, root)
        _relax_row(rows, base, "bnb root: perspective, FW-refined diagonal shift, budget, "
                   "box", root.bound, clock)
    return rows


# --------------------------------------------------------------------------- cnn-shor
def piece_cnn_shor(runs_dir: Path, seeds: int, layers: tuple[str, ...],
                   iters: tuple[int, ...], best_known: Path | None) -> list[dict[str, Any]]:
    """The root Shor bound of the subset search (from the search's root dual point, zero
    multipliers, as the search starts it) by each step rule of :func:`subsets.shor_bound` at
    each iteration count, the rules alternating (the rule before first at odd counts), as
    objective bounds with their gaps to the best known objective, wall and CPU seconds and the
    load before."""
    rows: list[dict[str, Any]] = []
    for base, keep, problem, incumbent in _bound_instances(runs_dir, seeds, layers,
                                                           best_known):
        search = subsets.SubsetSearch(problem, incumbent)
        fit = float(search.f[0])
        every = np.arange(problem.n_groups, dtype=np.int64)
        r = problem.n_groups - keep
        for turn, count in enumerate(iters):
            order = subsets.SHOR_RULES if turn % 2 == 0 else subsets.SHOR_RULES[::-1]
            for rule in order:
                clock = _clock()
                found = subsets.shor_bound(search.H[0], search.W[0], search.starts, every, r,
                                           search.root_Z.copy(), count, rule=rule)
                _relax_row(rows, base, rule, fit + found.value, clock, iters=count)
    return rows


# --------------------------------------------------------------------------- render
def _cell(rows: list[dict[str, Any]]) -> tuple[str, float | None]:
    if not rows:
        return "-", None
    seconds = statistics.median(r["seconds"] for r in rows)
    nodes = statistics.median(r["nodes"] for r in rows)
    solved = sum(r["status"] == "optimal" for r in rows)
    if solved < len(rows):
        gap = statistics.median(r["gap"] for r in rows)
        return f"TL {seconds:.3g} s [{gap:.1e}] ({solved}/{len(rows)} proved)", seconds
    return f"{seconds:.3g} s ({nodes:g})", seconds


def _speedup(cells: dict[str, float | None], rows: dict[str, list[dict[str, Any]]]) -> str:
    rivals = {n: s for n, s in cells.items() if n in RIVALS and s is not None}
    if cells.get("bnb") is None or not rivals:
        return "-"
    if any(r["status"] != "optimal" for r in rows["bnb"]):
        return "bnb not proved"
    best = min(rivals.values())
    name = min(rivals, key=lambda n: rivals[n])
    bound = any(r["status"] != "optimal" for r in rows[name])
    return f"{'>= ' if bound else ''}{best / cells['bnb']:.2g}x"


def render_table(runs: list[dict[str, Any]], machine: dict[str, Any], key: str,
                 label: str) -> str:
    names = [n for n in NAMES if any(r["name"] == n for r in runs)]
    lines = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores, load average "
        f"{machine['loadavg_at_start'][0]:.1f} at start. Cells: median seconds (median nodes) "
        "over the seeds; `TL` = some seed hit the time limit (median gap in brackets); "
        "`-` = not run. Speed-up: best open solver's median time over bnb's (`>=` when that "
        "solver hit the limit).",
        "",
        f"| {label} | " + " | ".join(names) + " | bnb speed-up vs best open solver | all agree |",
        "|" + "---|" * (label.count("|") + 1 + len(names) + 2),
    ]
    for group_key in sorted({r[key] for r in runs}, key=str):
        mine = [r for r in runs if r[key] == group_key]
        by_name = {n: [r for r in mine if r["name"] == n] for n in names}
        cells = {n: _cell(by_name[n]) for n in names}
        lines.append(
            f"| {group_key} | " + " | ".join(cells[n][0] for n in names)
            + f" | {_speedup({n: c[1] for n, c in cells.items()}, by_name)} | "
            f"{'yes' if all(r['agree'] for r in mine) else 'NO'} |"
        )
    return "\n".join(lines)


def _pct(rows: list[dict[str, Any]], field: str) -> str:
    values = [r[field] for r in rows if field in r]
    # a bound above the optimum by round-off (1e-12 relative) prints as 0
    return f"{max(statistics.median(values), 0.0):.2%}" if values else "-"


def render(result: dict[str, Any]) -> str:
    """Markdown for one saved piece."""
    piece, machine = result["piece"], result["machine"]
    if piece == "table":
        runs = result["runs"]
        for r in runs:
            r["row"] = f"{r['regime']} | {r['groups']:>3}"
        text = render_table(runs, machine, "row", "regime | groups")
        gaps = ["", "| regime | groups | root gap big-M | root gap perspective | "
                "root gap bnb (shifted) | root gap bnb (FW-refined shift) |",
                "|---|---|---|---|---|---|"]
        for row in sorted({r["row"] for r in runs}):
            mine = [r for r in runs if r["row"] == row and r["name"] == "bnb"]
            gaps.append(f"| {row} | {_pct(mine, 'root_gap_bigm')} | "
                        f"{_pct(mine, 'root_gap_perspective')} | "
                        f"{_pct(mine, 'root_gap_bnb_shifted')} | "
                        f"{_pct(mine, 'root_gap_bnb_refined')} |")
        return text + "\n" + "\n".join(gaps)
    if piece == "alpha":
        lines = ["| regime | alpha | root gap big-M | root gap perspective | big-M gap closed "
                 "| root gap bnb (shifted) | root gap bnb (FW-refined) |",
                 "|---|---|---|---|---|---|---|"]
        for row in result["rows"]:
            lines.append(
                f"| {row['regime']} | {row['alpha']} | {row['root_gap_bigm_median']:.2%} | "
                f"{row['root_gap_perspective_median']:.2%} | {row['bigm_gap_closed_median']:.0%} "
                f"| {max(row['root_gap_bnb_shifted_median'], 0.0):.2%} | "
                f"{max(row['root_gap_bnb_refined_median'], 0.0):.2%} |")
        return "\n".join(lines)
    if piece == "bnb-alpha":
        lines = ["| regime | groups | alpha | bnb median seconds | median nodes | optimal / runs "
                 "| worst gap |", "|---|---|---|---|---|---|---|"]
        rows = result["rows"]
        for key in sorted({(r["regime"], r["groups"], r["alpha"]) for r in rows}):
            mine = [r for r in rows if (r["regime"], r["groups"], r["alpha"]) == key]
            solved = sum(r["status"] == "optimal" for r in mine)
            lines.append(
                f"| {key[0]} | {key[1]} | {key[2]} | "
                f"{statistics.median(r['seconds'] for r in mine):.3g} | "
                f"{statistics.median(r['nodes'] for r in mine):g} | {solved} / {len(mine)} | "
                f"{max(r['gap'] for r in mine):.1e} |")
        return "\n".join(lines)
    if piece == "root-sdp":
        rows = result["rows"]
        pairs = next(k for k in rows[0] if k.startswith("pairs_reach_") and
                     not k.endswith("seconds"))
        lines = ["| seed | incumbent (bnb) | bnb root (shift) | bnb root (FW-refined) | Shor SDP "
                 f"| Shor + pairs ({pairs.removeprefix('pairs_reach_')} apart) |",
                 "|---|---|---|---|---|---|"]
        for r in rows:
            gap = [f"{r[k]:.1f} ({(r['incumbent'] - r[k]) / abs(r['incumbent']):.2%})"
                   for k in ("bnb_shifted", "bnb_refined", "shor", pairs)]
            lines.append(f"| {r['seed']} | {r['incumbent']:.1f} ({r['status']}) | "
                         + " | ".join(gap) + " |")
        return "\n".join(lines)
    if piece == "cnn-root":
        lines = ["| layer | keep | seed | best known objective | f(U) | row-wise removal bound "
                 "(root gap, s) | Shor eigenvalue dual (root gap, s) | load |",
                 "|---|---|---|---|---|---|---|---|"]
        for r in result["rows"]:
            lines.append(
                f"| {r['layer']} | {r['k']} of {r['groups']} | {r['seed']} | {r['incumbent']:.1f} "
                f"| {r['f_U']:.1f} | {r['row_wise']:.1f} ({r['root_gap_row_wise']:.1%}, "
                f"{r['seconds_row_wise']:.1f}) | {r['shor']:.1f} ({r['root_gap_shor']:.1%}, "
                f"{r['seconds_shor']:.1f}, {r['iters']} it., step {r.get('step', 0.2)}) | "
                f"{r['load_before']:.1f}-{r['load_after']:.1f} |")
        return "\n".join(lines)
    if piece in ("cnn-relax", "cnn-shor"):  # cnn-shor: the rule, and its iterations
        shor = piece == "cnn-shor"
        head = "step rule | iterations" if shor else "relaxation"
        lines = [f"| layer | keep | seed | {head} | root bound | gap to the incumbent | "
                 "wall s | CPU s | load |", "|---|---|---|---|" + "---|" * (5 + shor)]
        for r in result["rows"]:
            lines.append(
                f"| {r['layer']} | {r['k']} of {r['groups']} | {r['seed']} | {r['relaxation']} "
                + (f"| {r['iters']} " if shor else "")
                + f"| {r['bound']:.1f} | {r['gap']:.2%} | {r['seconds']:.1f} | "
                f"{r['cpu_seconds']:.1f} | {r['load']:.1f} |")
        return "\n".join(lines)
    if piece == "hull-root":
        reach = max(int(k.split("_")[1]) for r in result["rows"] for k in r
                    if k.startswith("reach_") and not k.endswith("seconds"))
        lines = [f"| seed | bnb root (FW shift) | disjoint pairs | overlapping, reach 1 | "
                 f"overlapping, reach {reach} | load |", "|---|---|---|---|---|---|"]
        for r in result["rows"]:
            cells = [f"{r[k]:.1f} ({r[k + '_seconds']:.0f} s)" if k + "_seconds" in r
                     else f"{r[k]:.1f}" for k in ("root_refined", "disjoint", "reach_1",
                                                  f"reach_{reach}")]
            lines.append(f"| {r['seed']} | " + " | ".join(cells) + f" | {r['load']:.1f} |")
        return "\n".join(lines)
    if piece == "sdp":
        lines = ["| seed | arm | CVXPY build s (CPU) | compile s (CPU) | SCS s (CPU), iterations | "
                 "total s (CPU) | SDP value | load |", "|---|---|---|---|---|---|---|---|"]
        for r in result["rows"]:
            for arm in SDP_ARMS:
                a = r[arm]

                def cell(name: str, a: dict[str, Any] = a) -> str:
                    return f"{a[name]:.2f} ({a[name + '_cpu']:.2f})" if name in a else "-"

                solve = (f"{cell('solve')}, {a['iterations']}" if "solve" in a else
                         f"{cell('assemble_and_solve')}, {a['iterations']}"
                         if "assemble_and_solve" in a else "-")
                value = f"{a['value']:.2f}" if "value" in a else "-"
                lines.append(f"| {r['seed']} | {arm} | {cell('build')} | {cell('compile')} | "
                             f"{solve} | {cell('total')} | {value} | {a['load']:.1f} |")
        return "\n".join(lines)
    if piece == "overlap" and any(":" in k for k in result["rows"][0]):
        arms = [k for k in result["rows"][0] if k.startswith("bnb+overlap:")]
        lines = ["| seed | " + " | ".join(f"{k.split(':')[1]}: status, gap, nodes, CPU s, SDP s "
                                         "(CPU)" for k in arms) + " | load |",
                 "|---|" + "---|" * len(arms) + "---|"]
        for r in result["rows"]:
            cells = [_arm_cell(r[k], f"{r[k]['cpu_seconds']:.1f}, " + (
                f"{r[k]['sdp_seconds']:.1f} ({r[k]['sdp_cpu_seconds']:.1f})"
                if "sdp_seconds" in r[k] else "not built")) for k in arms]
            lines.append(f"| {r['seed']} | " + " | ".join(cells) + " | "
                         + " / ".join(f"{r[k]['load']:.1f}" for k in arms) + " |")
        return "\n".join(lines)
    if piece == "overlap":
        lines = ["| seed | bnb: status, gap, nodes, CPU s | bnb + overlapping pairs: status, gap, "
                 "nodes, CPU s | overlap: root bound, SDP s (CPU), sweeps / node, ms / node | "
                 "load |", "|---|---|---|---|---|"]
        for r in result["rows"]:
            cells = [_arm_cell(r[k], f"{r[k]['cpu_seconds']:.1f}")
                     for k in ("bnb", "bnb+overlap")]
            h = r["bnb+overlap"]
            hull = (f"{h['root_overlap']:.1f}, {h['sdp_seconds']:.1f} "
                    f"({h['sdp_cpu_seconds']:.1f}), {h['sweeps_per_call']:.1f}, "
                    f"{h['ms_per_call']:.2f}" if "root_overlap" in h else "not built")
            lines.append(f"| {r['seed']} | " + " | ".join(cells)
                         + f" | {hull} | {r['bnb']['load']:.1f} / {h['load']:.1f} |")
        return "\n".join(lines)
    if piece == "hull":
        lines = ["| seed | bnb root (FW shift) | hull root (pairs) | bnb: status, gap, nodes, "
                 "ms/node | bnb + hull: status, gap, nodes, ms/node | hull: split s, sweeps / "
                 "node, ms / node | load |", "|---|---|---|---|---|---|---|"]
        for r in result["rows"]:
            per_node = {k: r[k].get("ms_per_node", 1e3 * r[k]["seconds"] / max(r[k]["nodes"], 1))
                        for k in ("bnb", "bnb+hull")}
            cells = [_arm_cell(r[k], f"{per_node[k]:.1f}") for k in ("bnb", "bnb+hull")]
            inc = min(r["bnb"]["objective"], r["bnb+hull"]["objective"])
            roots = [f"{r[k]:.1f} ({(inc - r[k]) / abs(inc):.2%})"
                     for k in ("root_refined", "root_hull")]
            h = r["bnb+hull"]
            split = "saved" if r.get("sdp_seconds") is None else f"{r['sdp_seconds']:.1f}"
            hull_cell = (f"{split}, {h['sweeps_per_call']:.0f}, {h['ms_per_call']:.1f}"
                         if "sweeps_per_call" in h else f"{split}, -, -")
            lines.append(f"| {r['seed']} | " + " | ".join([*roots, *cells, hull_cell])
                         + f" | {r['bnb']['load']:.1f} / {h['load']:.1f} |")
        return "\n".join(lines)
    if piece == "wide":
        runs = result["runs"]
        for r in runs:
            r["row"] = f"{r['case']} | {r['p']}"
        return render_table(runs, machine, "row", "features | p")
    runs = result["runs"]
    for r in runs:
        r["row"] = f"{r['layer']} | {r['k']} of {r['groups']} | {r['d']} x {r['m']}"
    return render_table(runs, machine, "row", "layer | keep | d x m")


def _arm_cell(arm: dict[str, Any], last: str) -> str:
    """One solve's table cell: status, gap, nodes and ``last``."""
    return f"{arm['status']}, {arm['gap']:.2%}, {arm['nodes']}, {last}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--piece", choices=("table", "alpha", "bnb-alpha", "wide", "cnn",
                                            "root-sdp", "cnn-root", "hull", "hull-root",
                                            "overlap", "cnn-relax", "cnn-shor", "sdp"))
    parser.add_argument("--regime", choices=tuple(REGIMES), default="independent-strong")
    parser.add_argument("--quick", action="store_true", help="small grid (a smoke run)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--alphas", type=float, nargs="+", default=list(BNB_ALPHAS),
                        help="bnb-alpha piece: the alphas, each in (0, 1) (default: "
                             f"{' '.join(map(str, BNB_ALPHAS))})")
    parser.add_argument("--runs", type=Path, default=CNN_INSTANCES,
                        help="cnn and cnn-root pieces: folder with seed-S runs of "
                             "configs/results/cnn-fp.yaml (default: the frozen instances, "
                             "benchmarks/results/mip_cnn_instances)")
    parser.add_argument("--freeze", type=Path, default=None, metavar="SOURCE",
                        help="write the frozen CNN instances into --runs from SOURCE's seed-S "
                             "runs of configs/results/cnn-fp.yaml (config and final checkpoint, "
                             "no optimizer state), then exit")
    parser.add_argument("--no-rivals", action="store_true",
                        help="cnn and wide pieces: bnb only (no open solvers on the 8-of-16 "
                        "rows and on 1000 independent features)")
    parser.add_argument("--ascent-ablation", action="store_true",
                        help="cnn piece: also bnb without the ascent on the subset search's "
                        "dual point (bnb-no-ascent)")
    parser.add_argument("--shor-ablation", action="store_true",
                        help="cnn piece: also bnb with the subset search's Shor bound at the "
                             "root only (the search before the open nodes' Shor bounds)")
    parser.add_argument("--tree-ablation", action="store_true",
                        help="cnn piece: also bnb without the subset search's certificate tree "
                             "(bnb-no-tree)")
    parser.add_argument("--root-shor-iters", type=int, default=None,
                        help="cnn piece: also bnb with this many Shor iterations at the subset "
                             "search's root (bnb-root-shor-N; default: not run)")
    parser.add_argument("--shor-rule-ab", action="store_true",
                        help="cnn piece: also bnb with the Shor bounds' step rule before "
                             "issue 14's eleventh stop (bnb-shor-adam)")
    parser.add_argument("--reach", type=int, default=2,
                        help="root-sdp, hull-root and overlap pieces: pairs of features at most "
                        "this far apart")
    parser.add_argument("--no-rule", action="store_true",
                        help="overlap piece: build the hull before every solve (at --reach) "
                             "instead of bnb's default rule (built when the root gap asks)")
    parser.add_argument("--sdp-backend-ab", action="store_true",
                        help="overlap piece: the hull arm once per backend of its root SDP "
                             "(cvxpy, the twin before issue 14's twelfth stop, and direct), "
                             "alternating, instead of bnb with and without the hull")
    parser.add_argument("--overlap-sweeps", type=int, default=OVERLAP_SWEEPS,
                        help="overlap piece: sweeps of the dual split per node")
    parser.add_argument("--shor-iters", type=int, nargs="+", default=None,
                        help="cnn-root and cnn-relax pieces: iterations of the Shor dual's "
                             f"ascent (one count; default {subsets.SHOR_ITERS}); cnn-shor: "
                             f"the counts (default {' '.join(map(str, SHOR_COUNTS))})")
    parser.add_argument("--best-known", type=Path, default=None,
                        help="cnn-root, cnn-relax and cnn-shor pieces: a saved cnn piece whose "
                             "objectives are the best known "
                             "(e.g. benchmarks/results/mip_cnn_ascent_quiet.json)")
    parser.add_argument("--layers", nargs="+", choices=[name for name, _ in CNN_LAYERS],
                        default=[name for name, _ in CNN_LAYERS],
                        help="cnn, cnn-root, cnn-relax and cnn-shor pieces: the layers "
                             "(default: all three)")
    parser.add_argument("--decompositions", type=Path, default=None,
                        help="hull piece: saved decompositions (JSON) instead of the SDPs")
    parser.add_argument("--out", default=None)
    parser.add_argument("--render", nargs="+", default=None, metavar="FILE.json")
    args = parser.parse_args()
    if args.render:
        for path in args.render:
            with open(path, encoding="utf-8") as handle:
                print(render(json.load(handle)) + "\n")
        return
    if args.freeze is not None:
        seeds = 1 if args.quick else args.seeds
        missing = _missing_runs(args.freeze, seeds)
        if missing:
            parser.error(f"--freeze: {args.freeze} has no run {missing[0]} (config.yaml and "
                         f"checkpoint.json); accepted: a folder with seed-0 .. seed-{seeds - 1}")
        try:
            freeze_instances(args.freeze, args.runs, seeds)
        except InvalidInputError as exc:
            parser.error(f"--freeze: {exc}")
        return
    if args.piece is None:
        parser.error("--piece, --render or --freeze is required")
    if args.sdp_backend_ab and args.piece != "overlap":
        parser.error(f"--sdp-backend-ab: given with --piece {args.piece}; accepted: only with "
                     "--piece overlap")
    if not all(0.0 < alpha < 1.0 for alpha in args.alphas):
        parser.error(f"--alphas: {' '.join(map(str, args.alphas))}; accepted: numbers in the "
                     "open interval (0, 1)")
    if args.root_shor_iters is not None and not 1 <= args.root_shor_iters <= 100_000:
        parser.error(f"--root-shor-iters: {args.root_shor_iters}; accepted: an integer in "
                     "[1, 100000]")
    counts = args.shor_iters or ([subsets.SHOR_ITERS] if args.piece != "cnn-shor"
                                 else list(SHOR_COUNTS))
    if args.piece != "cnn-shor" and len(counts) > 1:
        parser.error(f"--shor-iters: {len(counts)} counts; accepted: one integer in "
                     "[0, 100000] (several only with --piece cnn-shor)")
    if not all(0 <= count <= 100_000 for count in counts):
        parser.error(f"--shor-iters: {' '.join(map(str, counts))}; accepted: integers in "
                     "[0, 100000]")
    if args.best_known is not None and not args.best_known.is_file():
        parser.error(f"--best-known: {args.best_known} is not a file; accepted: a saved cnn "
                     "piece (JSON)")
    seeds = 1 if args.quick else args.seeds
    if args.piece in ("cnn", "cnn-root", "cnn-relax", "cnn-shor"):
        missing = _missing_runs(args.runs, seeds)
        if missing:
            parser.error(f"--runs: {args.runs} has no run {missing[0]} (config.yaml and "
                         f"checkpoint.json); accepted: a folder with seed-0 .. seed-{seeds - 1} "
                         "runs of configs/results/cnn-fp.yaml")
    try:  # the files, read before any work
        if args.best_known is not None:
            _read_best_known(args.best_known)
    except ValueError as exc:
        parser.error(f"--best-known: {exc}")
    try:
        saved = (None if args.decompositions is None
                 else _read_decompositions(args.decompositions, seeds))
    except ValueError as exc:
        parser.error(f"--decompositions: {exc}")
    if not 0 <= args.reach <= 99:
        parser.error(f"--reach: {args.reach}; accepted: an integer in [0, 99]")
    if not 1 <= args.overlap_sweeps <= 10_000:
        parser.error(f"--overlap-sweeps: {args.overlap_sweeps}; accepted: an integer in "
                     "[1, 10000]")
    # One-time costs outside the timings: bnb's compiled kernels, Pyomo, SCIP, CVXPY, HiGHS.
    tiny = random_instance(50, 5, 1, 5, 0, k=2)
    for run in _runners(5, rivals=args.piece not in ("cnn-relax", "cnn-shor")).values():
        run(tiny, None)
    if args.piece in ("cnn-relax", "cnn-shor"):  # the subset search's and Shor's kernels
        _relax_warmup()
    if args.piece == "overlap":  # the overlapping pairs' compiled sweeps
        solve_bnb(random_instance(50, 5, 1, 5, 0, alpha=0.05), None,
                  hull=overlap_hull(random_instance(50, 5, 1, 5, 0, alpha=0.05)), hull_iters=2)
    started = time.time()
    result: dict[str, Any] = {"benchmark": "mip_pruning", "piece": args.piece,
                              "machine": _machine(), "time_limit": args.time_limit}
    if args.piece == "table":
        sizes = [10, 30] if args.quick else [10, 30, 50, 100, 200]
        result.update(regime=args.regime, n=500, m=1, alpha=args.alpha, runs=piece_table(
            args.regime, sizes, seeds, args.alpha, args.time_limit))
    elif args.piece == "alpha":
        result["rows"] = piece_alpha(30, seeds, [0.05, 0.2, 0.5, 0.8])
    elif args.piece == "bnb-alpha":
        result["rows"] = piece_bnb_alpha(50 if args.quick else 100, seeds, args.alphas,
                                         args.time_limit)
    elif args.piece == "wide":
        result["runs"] = piece_wide(seeds, args.time_limit, not args.no_rivals)
    elif args.piece == "root-sdp":
        result["rows"] = piece_root_sdp(seeds, args.reach, args.time_limit)
    elif args.piece == "hull-root":
        result["rows"] = piece_hull_root(seeds, max(args.reach, 1))
    elif args.piece == "overlap":
        result["rows"] = piece_overlap(seeds, args.time_limit, max(args.reach, 1),
                                       args.overlap_sweeps, rule=not args.no_rule,
                                       backends=("cvxpy", "direct") if args.sdp_backend_ab
                                       else ())
    elif args.piece == "sdp":
        result["rows"] = piece_sdp(seeds, max(args.reach, 1))
    elif args.piece == "cnn-relax":
        result["rows"] = piece_cnn_relax(args.runs, seeds, tuple(args.layers), counts[0],
                                         args.best_known)
    elif args.piece == "cnn-shor":
        result["rows"] = piece_cnn_shor(args.runs, seeds, tuple(args.layers), tuple(counts),
                                        args.best_known)
    elif args.piece == "cnn-root":
        result["rows"] = piece_cnn_root(args.runs, seeds, counts[0], args.best_known,
                                        tuple(args.layers))
    elif args.piece == "hull":
        result["rows"], decompositions = piece_hull(seeds, args.time_limit, saved)
        if args.out and saved is None:
            from proxcompress.atomic import write_text_atomic

            write_text_atomic(str(Path(args.out).with_suffix("")) + "_decompositions.json",
                              json.dumps(decompositions) + "\n")
    else:
        result["runs"] = piece_cnn(args.runs, seeds, args.time_limit, not args.no_rivals,
                                   args.ascent_ablation, tuple(args.layers),
                                   args.shor_ablation, args.tree_ablation,
                                   args.root_shor_iters, args.shor_rule_ab)
    result["wall_seconds"] = time.time() - started
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    text = json.dumps(result, indent=1, default=lambda x: float(x) if np.isscalar(x) else str(x))
    if args.out:
        from proxcompress.atomic import write_text_atomic

        write_text_atomic(args.out, text + "\n")
    print(text)


if __name__ == "__main__":
    from proxcompress.cli import quiet_on_closed_pipe

    raise SystemExit(quiet_on_closed_pipe(main))
