"""numba's on-disk cache of the kernels is keyed on the whole package's sources
(``kernels/numba_cache.py``): a cached kernel that inlines another module's code recompiles when
that module changes (numba alone keys it on its own file and kept the old code: issue 17)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("numba")

from numba.core.dispatcher import Dispatcher  # noqa: E402

from proxcompress.kernels import numba_cache  # noqa: E402


def _cached_modules() -> list[str]:
    """Every kernels module that defines ``cache=True`` numba functions."""
    return sorted(p.stem for p in numba_cache.PACKAGE.glob("*.py")
                  if p.stem != "numba_cache" and "cache=True" in p.read_text())


def test_every_cached_kernel_is_keyed_on_the_package_sources() -> None:
    names = _cached_modules()
    assert {"cpu", "cpu_mlp", "cpu_packed"} <= set(names)
    digest = numba_cache.source_digest()
    seen = 0
    for name in names:
        module = importlib.import_module(f"proxcompress.kernels.{name}")
        for attr, obj in vars(module).items():
            if isinstance(obj, Dispatcher) and obj._cache.__class__.__name__ != "NullCache":
                stamp = obj._cache._cache_file._source_stamp
                assert stamp[0] == numba_cache.STAMP_TAG and stamp[2] == digest, (name, attr)
                seen += 1
    assert seen >= 40
    from proxcompress.kernels import cpu

    twin = cpu.serial(cpu.binary_gemm)
    assert twin._cache._cache_file._source_stamp[2] == digest


def test_digest_follows_every_source_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    (tmp_path / "notes.txt").write_text("not source")
    first = numba_cache.source_digest.__wrapped__(tmp_path)
    assert numba_cache.source_digest.__wrapped__(tmp_path) == first
    (tmp_path / "notes.txt").write_text("changed, still not source")
    assert numba_cache.source_digest.__wrapped__(tmp_path) == first
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")
    assert numba_cache.source_digest.__wrapped__(tmp_path) != first
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    (tmp_path / "sub" / "b.py").rename(tmp_path / "sub" / "c.py")  # same bytes, other file
    assert numba_cache.source_digest.__wrapped__(tmp_path) != first


_CALLER = """
from numba import njit
from proxcompress.kernels.numba_cache import key_on_package_source
from .callee import g

@njit(cache=True)
def keyed():
    return g()

@njit(cache=True)
def plain():
    return g()

key_on_package_source(keyed, root=__import__("pathlib").Path(__file__).parent)
"""


def test_a_changed_callee_recompiles_the_keyed_kernel(tmp_path: Path) -> None:
    """The behaviour the module exists for, in a two-module package: after the callee's source
    changes, numba's own stamp still serves the cached caller (``plain``: the old value); the
    caller keyed on the package's sources recompiles (``keyed``: the new value)."""
    pkg = tmp_path / "stalepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "caller.py").write_text(textwrap.dedent(_CALLER))
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    script = "from stalepkg.caller import keyed, plain; print(keyed(), plain())"

    def run(value: int) -> str:
        (pkg / "callee.py").write_text(
            f"from numba import njit\n\n@njit\ndef g():\n    return {value}\n")
        return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, check=True).stdout.split()

    assert run(1) == ["1", "1"]
    assert run(22) == ["22", "1"]  # plain: numba's cache of the old callee
