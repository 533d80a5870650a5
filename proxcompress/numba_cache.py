"""numba's on-disk cache of every cached function of the project, keyed on the project's sources.

numba keys a ``cache=True`` function's index on its own file's ``(mtime, size)`` and nothing
else. A function whose machine code comes partly from another module -- a callee it calls or
inlines, a module constant it reads (numba freezes globals at compile time) -- therefore keeps
loading the machine code compiled from the *old* version of that other module after it changes,
as long as its own file is untouched: the old speed (issue 17: ``cpu.binary_gemm`` kept the
pre-tile AVX2 loop of ``kernels/simd.py``) or the old semantics (a caller silently running a
callee's previous definition: wrong answers).

:func:`njit` is ``numba.njit`` whose cached dispatchers also carry :func:`source_digest`
(SHA-256 of every ``.py`` file of every first-party package, :data:`PACKAGES`) in their index
stamp, so any source change of the project recompiles every cached function on its first use.
Every module of the project with ``cache=True`` functions decorates them with this :func:`njit`
(``from proxcompress.numba_cache import njit``): the keying happens at decoration, before any
call, so it holds for modules that run their kernels at import (``formulations.bnb`` does).
It sets numba's private ``_source_stamp`` of the dispatcher's cache file;
``tests/reliability/test_numba_cache.py`` checks that every cached dispatcher of every package
carries the digest, so a numba release that renames it (or a module that decorates with numba's
own ``njit``) fails there, not silently. docs/decisions.md has why the whole project is hashed
and what that costs.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba

#: the first-party packages whose sources key every cached function (sub-packages such as
#: ``proxcompress.reproduce`` or ``proxcompress.training.models`` lie under one of them; the test
#: checks this list against pyproject.toml's packages)
PACKAGES: tuple[str, ...] = (
    "proxcompress",
    "proxcompress.formulations",
    "proxcompress.proofs",
    "proxcompress.training",
    "proxcompress.kernels",
    "proxcompress.causal",
)
#: first element of a stamp set by :func:`key_on_sources` (numba's own is ``(mtime, size)``)
STAMP_TAG = "proxcompress sources"


def source_files(packages: tuple[str, ...] = PACKAGES) -> list[tuple[str, Path]]:
    """``(name, path)`` of every ``.py`` file under the directories of ``packages`` (found
    without importing them; ``__pycache__`` skipped), sorted by name. A package whose directory
    lies inside another's (an installed wheel nests the sub-packages under ``proxcompress/``) is
    walked once, under the outer one."""
    roots: list[tuple[str, Path]] = []
    for package in packages:
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec is not None else []:
            roots.append((package, Path(folder).resolve()))
    files: list[tuple[str, Path]] = []
    for package, root in roots:
        if any(root != other and root.is_relative_to(other) for _, other in roots):
            continue
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
            rel = Path(folder).relative_to(root).as_posix()
            prefix = package if rel == "." else f"{package}/{rel}"
            files += [(f"{prefix}/{n}", Path(folder, n)) for n in names if n.endswith(".py")]
    return sorted(files)


@functools.cache
def source_digest(packages: tuple[str, ...] = PACKAGES) -> str:
    """SHA-256 over the name and bytes of every file of :func:`source_files`; computed once per
    process (a few milliseconds: docs/decisions.md)."""
    h = hashlib.sha256()
    for name, path in source_files(packages):
        h.update(name.encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def key_on_sources(dispatcher: Any, digest: str | None = None) -> Any:
    """Key ``dispatcher``'s on-disk cache (if it has one) on ``digest`` (default:
    :func:`source_digest`) as well as on its own file's stamp; returns ``dispatcher``. Anything
    without a cache (an uncached dispatcher, a plain function under ``NUMBA_DISABLE_JIT``) is
    returned unchanged."""
    cache_file: Any = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    stamp = getattr(cache_file, "_source_stamp", None)
    if stamp is not None and not (isinstance(stamp, tuple) and stamp[:1] == (STAMP_TAG,)):
        cache_file._source_stamp = (STAMP_TAG, stamp, digest or source_digest())
    return dispatcher


def njit(*args: Any, **options: Any) -> Any:
    """``numba.njit`` with the same arguments, its cached dispatchers keyed on
    :func:`source_digest` (:func:`key_on_sources`). Used bare (``@njit``) or with options
    (``@njit(parallel=True, cache=True)``); eager signatures with ``cache=True`` are refused
    (numba would compile, and load the cache, before the key is set)."""
    if args and inspect.isfunction(args[0]):
        return key_on_sources(numba.njit(*args, **options))
    if args and options.get("cache"):
        raise TypeError("proxcompress.numba_cache.njit: signatures with cache=True compile "
                        "before the cache is keyed; compile lazily (no signatures)")
    decorate = numba.njit(*args, **options)

    def keyed(func: Callable[..., Any]) -> Any:
        return key_on_sources(decorate(func))

    return keyed
