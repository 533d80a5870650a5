"""Design rule: the training wing never imports SymPy, Pyomo or CVXPY at import time, and
``proxcompress --help`` does not import torch."""

from __future__ import annotations

import subprocess
import sys


def test_training_modules_import_no_symbolic_or_solver_packages() -> None:
    code = (
        "import sys\n"
        "import proxcompress.training as t\n"
        "for m in ('quantizers', 'layers', 'quantize', 'optim', 'spr', 'pruning', 'select',\n"
        "          'models', 'data', 'config', 'checkpoint', 'trainer', 'cli'):\n"
        "    __import__('proxcompress.training.' + m)\n"
        "bad = [m for m in ('sympy', 'pyomo', 'cvxpy') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


def test_cli_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from proxcompress.cli import build_parser\n"
        "build_parser()\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
