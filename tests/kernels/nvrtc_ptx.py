"""NVRTC, the compiler CuPy uses on the device, run without a device (test helper)."""

from __future__ import annotations

import re
from typing import Any

import pytest


def _load() -> Any:
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception:  # no CuPy, or CuPy without a loadable libnvrtc
        return None
    return nvrtc


#: CuPy's NVRTC binding, or None where it cannot be loaded
NVRTC = _load()


def extern_kernels(source: str) -> list[str]:
    """Names of the ``extern "C" __global__`` kernels defined in a CUDA source."""
    return re.findall(r'extern "C" __global__ void(?: __launch_bounds__\([^)]*\))?\s+(\w+)\(',
                      source)


def nvrtc_ptx(source: str, name: str, arch: str) -> str:
    """PTX of ``source`` for ``arch`` (e.g. ``"compute_90"``); a compile error fails the test
    with NVRTC's log."""
    program = NVRTC.createProgram(source, name, [], [])
    try:
        NVRTC.compileProgram(program, [f"-arch={arch}"])
    except Exception as error:
        pytest.fail(f"{name} ({arch}): {error}\n{NVRTC.getProgramLog(program)}")
    ptx = NVRTC.getPTX(program)
    return ptx.decode() if isinstance(ptx, bytes) else str(ptx)
