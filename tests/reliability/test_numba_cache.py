"""numba's on-disk cache of every cached function of the project is keyed on the sources of every
first-party package (``proxcompress/numba_cache.py``): a cached function whose code comes partly
from another module -- of its package or another one -- recompiles when that module changes
(numba alone keys it on its own file and kept the old code: issue 17)."""

from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import subprocess
import sys
import textwrap
import tomllib
import weakref
from pathlib import Path

import pytest

pytest.importorskip("numba")

from numba.core.dispatcher import Dispatcher  # noqa: E402

from proxcompress import numba_cache  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _module_name(name: str) -> str:
    """``proxcompress.formulations/bnb.py`` -> ``proxcompress.formulations.bnb``."""
    package, _, rel = name.partition("/")
    parts = [package, *rel.removesuffix(".py").split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _cached_modules() -> list[str]:
    """Every first-party module whose source defines ``cache=True`` numba functions."""
    return sorted(_module_name(name) for name, path in numba_cache.source_files()
                  if "cache=True" in path.read_text() and not name.endswith("/numba_cache.py"))


def test_the_digest_covers_every_package_of_the_distribution() -> None:
    """:data:`PACKAGES` against pyproject.toml: every package shipped lies under one of them and
    every one of its ``.py`` files is hashed."""
    shipped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    hashed = {path.resolve() for _, path in numba_cache.source_files()}
    for package in shipped:
        assert any(package == p or package.startswith(p + ".")
                   for p in numba_cache.PACKAGES), package
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, package
        files = [p for folder in spec.submodule_search_locations for p in Path(folder).glob("*.py")]
        assert files and {p.resolve() for p in files} <= hashed, package
    assert len(hashed) == len(numba_cache.source_files())  # each file once


def test_every_cached_dispatcher_of_every_package_carries_the_digest() -> None:
    """Import every module with ``cache=True`` functions, then every cached numba dispatcher
    defined by first-party code (module globals, ``cpu.serial`` twins, anything alive) must carry
    the project digest: a module that decorates with numba's own ``njit`` fails here."""
    names = _cached_modules()
    assert {"proxcompress.kernels.cpu", "proxcompress.formulations.bnb",
            "proxcompress.formulations.subsets", "proxcompress.formulations.pairhull",
            "proxcompress.training.adder_grad"} <= set(names)
    for name in names:
        importlib.import_module(name)
    from proxcompress.kernels import cpu

    twin = cpu.serial(cpu.binary_gemm)
    digest = numba_cache.source_digest()
    per_module: dict[str, int] = {}

    class _Gone:
        pass

    gone = _Gone()
    # a weak proxy whose object has died: in the full suite other tests leave such proxies
    # alive, and isinstance() on one raises ReferenceError (the scan must skip them)
    dead = [weakref.proxy(gone)]
    del gone
    for obj in gc.get_objects():
        if type(obj) in weakref.ProxyTypes:
            continue
        if (isinstance(obj, Dispatcher) and obj.py_func.__module__.startswith("proxcompress.")
                and obj._cache.__class__.__name__ != "NullCache"):
            stamp = obj._cache._cache_file._source_stamp
            assert stamp[0] == numba_cache.STAMP_TAG and stamp[2] == digest, obj.py_func
            per_module[obj.py_func.__module__] = per_module.get(obj.py_func.__module__, 0) + 1
    assert set(per_module) == set(names)  # every module the scan found defines cached functions
    assert sum(per_module.values()) >= 100
    assert twin._cache._cache_file._source_stamp[2] == digest
    assert dead  # the dead proxy stayed in the scan


def _write_packages(root: Path, **files: str) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_digest_follows_every_source_file_of_every_package(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_packages(tmp_path, **{"pkga/__init__.py": "", "pkga/a.py": "x = 1\n",
                                 "pkga/sub/__init__.py": "", "pkga/sub/b.py": "y = 2\n",
                                 "pkga/notes.txt": "not source",
                                 "pkgb/__init__.py": "", "pkgb/c.py": "z = 3\n"})
    monkeypatch.syspath_prepend(str(tmp_path))

    def digest() -> str:
        return numba_cache.source_digest.__wrapped__(("pkga", "pkgb"))

    first = digest()
    assert digest() == first
    assert [name for name, _ in numba_cache.source_files(("pkga", "pkgb"))] == [
        "pkga/__init__.py", "pkga/a.py", "pkga/sub/__init__.py", "pkga/sub/b.py",
        "pkgb/__init__.py", "pkgb/c.py"]
    (tmp_path / "pkga" / "notes.txt").write_text("changed, still not source")
    assert digest() == first
    for rel, changed in (("pkga/sub/b.py", "y = 3\n"), ("pkgb/c.py", "z = 4\n")):
        original = (tmp_path / rel).read_text()
        (tmp_path / rel).write_text(changed)
        assert digest() != first, rel  # a nested module, a module of the other package
        (tmp_path / rel).write_text(original)
        assert digest() == first
    (tmp_path / "pkga/sub/b.py").rename(tmp_path / "pkga/sub/d.py")  # same bytes, other file
    assert digest() != first
    assert numba_cache.source_digest.__wrapped__(("pkga",)) != first  # pkgb counts


def test_njit_keys_cached_dispatchers_only() -> None:
    from numba import njit as numba_njit

    def f(x: int) -> int:
        return x + 1

    bare = numba_cache.njit(f)
    plain = numba_cache.njit(parallel=False)(f)
    cached = numba_cache.njit(cache=True)(f)
    assert bare(1) == plain(1) == cached(1) == 2
    assert bare._cache.__class__.__name__ == plain._cache.__class__.__name__ == "NullCache"
    stamp = cached._cache._cache_file._source_stamp
    assert stamp[0] == numba_cache.STAMP_TAG and stamp[2] == numba_cache.source_digest()
    assert numba_cache.key_on_sources(cached)._cache._cache_file._source_stamp == stamp  # once
    own = numba_njit(cache=True)(f)._cache._cache_file._source_stamp
    assert stamp[1] == own  # numba's (mtime, size) is kept inside the key
    with pytest.raises(TypeError, match="signatures with cache=True"):
        numba_cache.njit("int64(int64)", cache=True)


_CALLER = """
from numba import njit as numba_njit
from proxcompress.numba_cache import njit
from stalecallee.callee import g, SCALE

@njit(cache=True)
def keyed():
    return g() * SCALE

@numba_njit(cache=True)
def plain():
    return g() * SCALE
"""

_SCRIPT = """
import proxcompress.numba_cache as nc
digest = nc.source_digest(("stalecaller", "stalecallee"))
nc.source_digest = lambda *packages: digest  # key on the two packages of the test
from stalecaller.caller import keyed, plain
print(keyed(), plain(), *(sum(f.stats.cache_hits.values()) for f in (keyed, plain)))
"""


def test_a_changed_callee_in_another_package_recompiles_the_caller(tmp_path: Path) -> None:
    """The behaviour the module exists for, across packages: after the callee's package changes
    (a callee's semantics, a constant frozen into the caller), numba's own stamp still serves the
    cached caller (``plain``: the old, now wrong, value); the caller decorated with
    :func:`proxcompress.numba_cache.njit` recompiles (``keyed``: the new value)."""
    _write_packages(tmp_path, **{"stalecaller/__init__.py": "",
                                 "stalecaller/caller.py": textwrap.dedent(_CALLER),
                                 "stalecallee/__init__.py": ""})
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def run(value: int, scale: int) -> list[str]:
        (tmp_path / "stalecallee" / "callee.py").write_text(
            f"from numba import njit\n\nSCALE = {scale}\n\n@njit\ndef g():\n    return {value}\n")
        return subprocess.run([sys.executable, "-c", textwrap.dedent(_SCRIPT)], env=env,
                              capture_output=True, text=True, check=True).stdout.split()

    # printed: keyed(), plain(), then the cache hits of each (1: loaded from disk, 0: compiled)
    assert run(1, 1) == ["1", "1", "0", "0"]
    assert run(1, 1) == ["1", "1", "1", "1"]  # both loaded from the cache
    assert run(22, 1) == ["22", "1", "0", "1"]  # plain: numba's cache of the old callee
    assert run(22, 3) == ["66", "1", "0", "1"]  # a changed constant of the other package
    assert run(22, 3) == ["66", "1", "1", "1"]  # the recompiled caller is cached in turn
