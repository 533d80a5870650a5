"""The GPU gate of every test folder.

Tests marked ``@pytest.mark.gpu`` run only where CuPy imports and sees a CUDA device; elsewhere
they are skipped with the reason.
"""

from __future__ import annotations

import functools

import pytest


@functools.cache
def gpu_unavailable() -> str | None:
    """None when CuPy and a CUDA device are usable, else the reason why not."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA library that fails to load
        return f"cupy not importable ({type(exc).__name__})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"no CUDA device ({type(exc).__name__})"
    return None if count > 0 else "no CUDA device"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "gpu" in item.keywords:
            reason = gpu_unavailable()
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))
