"""``benchmarks/kernels.py`` imported under its own name (``kernels`` is also the wing's
folder), for the tests that check its sources and cases."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def bench_kernels() -> ModuleType:
    path = ROOT / "benchmarks" / "kernels.py"
    spec = importlib.util.spec_from_file_location("bench_kernels", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
