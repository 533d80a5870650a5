"""What keying numba's cache on the project's sources costs a process (proxcompress.numba_cache).

Each figure is taken in fresh Python processes (the digest is computed once per process), the
variants interleaved round-robin so a background load hits them alike:

* ``digest``: :func:`proxcompress.numba_cache.source_digest` of every first-party package (the
  project-wide key), against ``digest_kernels``: the kernels package alone (the previous key) --
  the files are in the page cache (a process that imports the package has just read them);
* ``bnb_import_warm``: importing ``proxcompress.formulations.bnb`` (it loads every formulation
  kernel from numba's cache at import), the time a process already pays next to the digest;
* ``bnb_import_cold``: the same import with an empty cache: what the first process pays after
  any source edit (every cached function of the module chain recompiles).

Prints one JSON object: the machine (``lscpu``), load averages, file counts and bytes, per figure
the median wall and CPU (process) time and the CPU samples in milliseconds (CPU time is what a
loaded machine distorts least). ``python benchmarks/numba_cache.py --rounds 10``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from typing import Any

_DIGEST = """
import gc, time, proxcompress.numba_cache as nc
gc.collect()  # a pending collection of numba's objects is not the digest's cost
t, c = time.perf_counter(), time.process_time(); nc.source_digest({packages})
print(time.perf_counter() - t, time.process_time() - c)
"""
_IMPORT = """
import time
t, c = time.perf_counter(), time.process_time(); import proxcompress.formulations.bnb
print(time.perf_counter() - t, time.process_time() - c)
"""


def _seconds(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (process) seconds of the timed part of ``code`` in a fresh process."""
    wall, cpu = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                               text=True, check=True).stdout.split()[-2:]
    return float(wall), float(cpu)


def machine() -> dict[str, Any]:
    """The CPU as ``lscpu`` names it, the core count, the Python and numba versions."""
    import numba

    info: dict[str, Any] = {"machine": platform.machine(), "cores": os.cpu_count(),
                            "python": platform.python_version(), "numba": numba.__version__}
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            info["cpu"] = value.strip()
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="digest rounds (1..100)")
    parser.add_argument("--import-rounds", type=int, default=3, help="warm imports (0..20)")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 100 or not 0 <= args.import_rounds <= 20:
        parser.error("--rounds must lie in 1..100 and --import-rounds in 0..20")
    from proxcompress import numba_cache

    files = numba_cache.source_files()
    kernels = numba_cache.source_files(("proxcompress.kernels",))
    report: dict[str, Any] = {
        "device": machine(), "load_average_at_start": os.getloadavg(),
        "files": len(files), "bytes": sum(p.stat().st_size for _, p in files),
        "files_kernels": len(kernels), "bytes_kernels": sum(p.stat().st_size for _, p in kernels)}
    samples: dict[str, list[tuple[float, float]]] = {"digest": [], "digest_kernels": [],
                                       "bnb_import_cold": [], "bnb_import_warm": []}
    env = dict(os.environ)
    for _ in range(args.rounds):  # round-robin: the two digests alternate
        samples["digest"].append(_seconds(_DIGEST.format(packages=""), env))
        samples["digest_kernels"].append(
            _seconds(_DIGEST.format(packages="('proxcompress.kernels',)"), env))
    if args.import_rounds:
        with tempfile.TemporaryDirectory() as cache:
            cached = dict(env, NUMBA_CACHE_DIR=cache)
            samples["bnb_import_cold"].append(_seconds(_IMPORT, cached))
            for _ in range(args.import_rounds):
                samples["bnb_import_warm"].append(_seconds(_IMPORT, cached))
    report["ms"] = {name: {f"{kind}_median": round(1e3 * statistics.median(x[i] for x in xs), 2)
                           for i, kind in enumerate(("wall", "cpu"))}
                    | {"samples_cpu": [round(1e3 * x[1], 2) for x in xs]}
                    for name, xs in samples.items() if xs}
    report["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
