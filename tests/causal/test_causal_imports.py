"""The causal wing needs NumPy and SciPy only, and is reachable from the front door."""

from __future__ import annotations

import subprocess
import sys

import proxcompress
from proxcompress import causal


def test_front_door_name() -> None:
    assert proxcompress.causal_direction is causal.causal_direction
    for name in causal.__all__:
        assert getattr(causal, name).__name__ == name


def test_no_heavy_imports() -> None:
    code = (
        "import sys\n"
        "from proxcompress.causal import causal_direction, simulate_mixture\n"
        "p = simulate_mixture(60, 2, seed=0)\n"
        "causal_direction(p.x, p.y)\n"
        "print([m for m in ('torch', 'numba', 'sympy', 'pyomo', 'cvxpy') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_command_parser_loads_no_numpy() -> None:
    """``proxcompress --help`` builds the causal parser; that must stay cheap."""
    code = (
        "import sys\n"
        "import proxcompress.causal.cli\n"
        "print('numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
