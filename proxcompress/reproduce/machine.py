"""The machine and software a report was measured on: CPU model (``lscpu``), cores, memory,
accelerator, operating system, Python and the versions of the packages the stages use, and the
repository commit."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: distributions whose versions the report lists
PACKAGES = ("proxcompress", "torch", "numpy", "scipy", "numba", "sympy", "mpmath", "pyomo",
            "pyscipopt", "highspy", "cvxpy", "scs", "ecos", "safetensors", "matplotlib", "tqdm",
            "cupy-cuda12x")


def checkout() -> Path | None:
    """The repository checkout this package runs from (an editable install: the folder with
    ``pyproject.toml`` and ``benchmarks/``), or None for an installed wheel."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "benchmarks").is_dir():
        return root
    return None


def _lscpu() -> dict[str, str]:
    if shutil.which("lscpu") is None:
        return {}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                              check=False, env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


#: the ``lscpu`` flags that decide which vector code a CPU runs
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vpopcntdq", "avx512_bf16",
              "amx_tile")


def cpu_model() -> str:
    """The CPU's model name (``lscpu``; the platform's processor or machine where it cannot
    be read). Runs are bit-reproducible on one CPU model, not across vendors (their GEMM and
    convolution kernels round differently)."""
    return _lscpu().get("Model name") or platform.processor() or platform.machine()


def simd_flags() -> list[str]:
    """The :data:`SIMD_FLAGS` this CPU has (from ``lscpu``; empty where it cannot be read)."""
    have = set(_lscpu().get("Flags", "").split())
    return [f for f in SIMD_FLAGS if f in have]


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _accelerator() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return ", ".join(torch.cuda.get_device_name(i)
                             for i in range(torch.cuda.device_count()))
    except Exception:  # an accelerator probe must never fail the report
        pass
    return "none (CPU only)"


def _commit(root: Path | None) -> str | None:
    if root is None or shutil.which("git") is None:
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def describe() -> dict[str, Any]:
    """The machine and versions, JSON-ready."""
    cpu = _lscpu()
    model = cpu_model()
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu_model": model,
        "architecture": cpu.get("Architecture", platform.machine()),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "threads_per_core": cpu.get("Thread(s) per core"),
        "sockets": cpu.get("Socket(s)"),
        "memory_gib": _memory_gib(),
        "accelerator": _accelerator(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "commit": _commit(checkout()),
    }


__all__ = ["PACKAGES", "SIMD_FLAGS", "checkout", "describe", "simd_flags", "usable_cores"]
