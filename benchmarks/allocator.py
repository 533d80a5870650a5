"""glibc's allocator as ``proxcompress train`` tunes it (training/allocator.py) against its
defaults, same run, alternating.

Each repeat trains one epoch of a results config twice in fresh processes, once with
``PROXCOMPRESS_MALLOC=tuned`` and once with ``=default`` (the order alternating between
repeats), and records the run's own training seconds (``summary.json``), the child process's
user and system CPU seconds and minor page faults, the load average before it, and whether the
two runs ended with the same test accuracy (the arithmetic must not change). Prints one JSON
document (``--json OUT``: also written there) with the machine (:func:`describe`).

    python benchmarks/allocator.py [--config configs/results/cnn-bc.yaml] [--repeats 3]
                                   [--subset 20000] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from proxcompress.atomic import write_text_atomic
from proxcompress.errors import InvalidInputError
from proxcompress.outputs import check_output
from proxcompress.reproduce.machine import describe

ROOT = Path(__file__).resolve().parents[1]


def _one(config: Path, subset: int, mode: str, out: Path) -> dict[str, Any]:
    """One epoch of ``config`` in a fresh process with the allocator ``mode``."""
    env = {**os.environ, "PROXCOMPRESS_MALLOC": mode, "OMP_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "proxcompress", "train", "--config", str(config),
                    "--set", "epochs=1", "--set", f"data.train_subset={subset}",
                    "--out", str(out)], env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads((out / "summary.json").read_text())
    return {"mode": mode, "train_seconds": summary["seconds"], "process_wall": wall,
            "user": after.ru_utime - before.ru_utime, "sys": after.ru_stime - before.ru_stime,
            "minor_faults": after.ru_minflt - before.ru_minflt, "load1_before": load,
            "test_accuracy": summary["test_accuracy"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs/results/cnn-bc.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--subset", type=int, default=20000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.repeats < 1 or args.subset < 100:
        parser.error("--repeats >= 1 and --subset >= 100")
    if not args.config.is_file():
        parser.error(f"--config {args.config}: no such file")
    if args.json is not None:
        try:  # the output target is checked before any training
            check_output("--json", args.json)
        except InvalidInputError as exc:
            parser.error(str(exc))
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = ("tuned", "default") if r % 2 == 0 else ("default", "tuned")
            for mode in order:
                try:
                    runs.append(_one(args.config, args.subset, mode, Path(tmp) / f"{r}-{mode}"))
                except subprocess.CalledProcessError as exc:  # its message is on stderr above
                    parser.exit(2, f"allocator.py: proxcompress train exited {exc.returncode} "
                                   f"on --config {args.config}\n")
    summary: dict[str, Any] = {}
    for mode in ("tuned", "default"):
        mine = [x for x in runs if x["mode"] == mode]
        summary[mode] = {k: statistics.median(x[k] for x in mine)
                         for k in ("train_seconds", "process_wall", "user", "sys",
                                   "minor_faults")}
    summary["train_speedup"] = (summary["default"]["train_seconds"]
                                / summary["tuned"]["train_seconds"])
    summary["same_test_accuracy"] = len({x["test_accuracy"] for x in runs}) == 1
    doc = {"benchmark": "allocator", "machine": describe(), "config": str(args.config),
           "epochs": 1, "train_subset": args.subset, "repeats": args.repeats,
           "summary": summary, "runs": runs}
    text = json.dumps(doc, indent=1)
    print(text)
    if args.json:
        write_text_atomic(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
