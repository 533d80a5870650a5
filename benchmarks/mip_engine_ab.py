"""Same-run A/B of the ``bnb`` engine against an earlier commit (issue 14's hard rows).

Each run is a fresh subprocess with one thread per library; the runs of the two engines
alternate (case, seed, then ``base`` and ``new``), so both see the same load. ``base`` is the
``formulations`` package of ``--ref`` (``git archive``, into a temporary folder, imported in place
of this checkout's); ``new`` is this checkout. Cases:

- ``wide10k``: ``sparse_regression_instance(1000, 10_000, seed)`` (independent, SNR 10);
- ``wide1k``: the same at p = 1000;
- ``equi``: p = 1000, equicorrelated rho 0.5, SNR 2;
- ``hard``: ``random_instance(500, 100, 1, 100, seed, rho=0.8, snr=0.5, alpha=0.05)``;
- ``alpha02``: the same at alpha 0.2 (the alpha sweep's next row);
- ``strong05``: independent features, SNR 4, alpha 0.05 (the independent-strong row).

Usage: ``python benchmarks/mip_engine_ab.py --ref REF [--cases wide10k,hard] [--seeds 3]
[--time-limit 60] [--out FILE.jsonl]``; one JSON line per run (engine, case, seed, seconds,
status, objective, bound, nodes, load average), then a summary line per case and engine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from proxcompress.atomic import text_writer, write_atomic

ROOT = Path(__file__).resolve().parent.parent
THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
CASES = {
    "wide10k": "sparse_regression_instance(1000, 10_000, seed)",
    "wide1k": "sparse_regression_instance(1000, 1000, seed)",
    "equi": "sparse_regression_instance(1000, 1000, seed, rho=0.5, snr=2.0)",
    "hard": "random_instance(500, 100, 1, 100, seed, rho=0.8, snr=0.5, alpha=0.05)",
    "alpha02": "random_instance(500, 100, 1, 100, seed, rho=0.8, snr=0.5, alpha=0.2)",
    "strong05": "random_instance(500, 100, 1, 100, seed, rho=0.0, snr=4.0, alpha=0.05)",
}
CHILD = """
import importlib.util, json, os, sys, time
base = sys.argv[1]
if base:
    spec = importlib.util.spec_from_file_location(
        "proxcompress.formulations", os.path.join(base, "__init__.py"),
        submodule_search_locations=[base])
    module = importlib.util.module_from_spec(spec)
    sys.modules["proxcompress.formulations"] = module
    spec.loader.exec_module(module)
from proxcompress.formulations import random_instance
from proxcompress.formulations.bnb import solve_bnb
from proxcompress.formulations.instances import sparse_regression_instance
seed, limit = int(sys.argv[2]), float(sys.argv[3])
problem = {case}
start = time.perf_counter()
solution = solve_bnb(problem, limit)
print(json.dumps({{"seconds": time.perf_counter() - start, "status": solution.status,
                  "objective": solution.objective, "bound": solution.bound,
                  "nodes": solution.nodes}}))
"""


def _base_package(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "formulations"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "formulations"


def _run(base: str, case: str, seed: int, limit: float) -> dict[str, object]:
    env = {**os.environ, **dict.fromkeys(THREADS, "1")}
    out = subprocess.run([sys.executable, "-c", CHILD.format(case=CASES[case]), base, str(seed),
                          str(limit)], check=True, capture_output=True, text=True, env=env,
                         cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", required=True, help="the base commit (e.g. main)")
    parser.add_argument("--cases", default="wide10k,hard")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cases = args.cases.split(",")
    unknown = sorted(set(cases) - set(CASES))
    if unknown or args.seeds < 1 or not args.time_limit > 0:
        parser.error(f"--cases: accepted {', '.join(CASES)}; --seeds >= 1; --time-limit > 0")
    known = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet",
                            f"{args.ref}^{{commit}}"], capture_output=True)
    if known.returncode != 0:
        parser.error(f"--ref: {args.ref!r} is not a commit of this repository")
    if args.out is not None and (args.out.is_dir() or not args.out.parent.is_dir()):
        parser.error(f"--out: a file in an existing folder (got {args.out})")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = str(_base_package(args.ref, Path(tmp)))
        for case in cases:
            for seed in range(args.seeds):
                for engine, path in (("base", base), ("new", "")):
                    row = {"engine": engine, "ref": args.ref if path else "HEAD", "case": case,
                           "seed": seed, **_run(path, case, seed, args.time_limit),
                           "load": os.getloadavg()[0]}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    for case in cases:
        for engine in ("base", "new"):
            mine = [r for r in rows if r["case"] == case and r["engine"] == engine]
            gaps = [(r["objective"] - r["bound"]) / abs(r["objective"]) for r in mine]
            print(json.dumps({"summary": case, "engine": engine,
                              "median_seconds": statistics.median(r["seconds"] for r in mine),
                              "proved": sum(r["status"] == "optimal" for r in mine),
                              "runs": len(mine), "worst_gap": max(gaps)}), flush=True)
    if args.out:
        write_atomic(args.out, text_writer("".join(json.dumps(r) + "\n" for r in rows)))


if __name__ == "__main__":
    from proxcompress.cli import quiet_on_closed_pipe

    raise SystemExit(quiet_on_closed_pipe(main))
