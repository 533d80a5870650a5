"""Shared fixtures of the reliability tests."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def probe() -> ModuleType:
    """``benchmarks/reliability_probe.py`` as a module: its catalogues of entry points, output
    flags and target kinds are what the tests draw from."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module("reliability_probe")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
