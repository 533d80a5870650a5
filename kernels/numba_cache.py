"""numba's on-disk cache of the CPU kernels, keyed on the sources of the whole kernels package.

numba keys a cached function's index on its own file's ``(mtime, size)`` and nothing else. A
kernel whose machine code comes partly from another module -- ``cpu.binary_gemm`` inlines the
:mod:`.simd` micro-kernel, ``cpu.TILE_ROWS`` / ``TILE_COLS`` (read from :mod:`.simd`) are frozen
into ``pack_panels``, ``cpu_packed`` and ``cpu_tokens`` call ``cpu``'s functions, ``cpu_mlp``
builds its IR with :mod:`.simd`'s helpers -- therefore keeps loading the machine code compiled
from the *old* version of that other module after it changes, as long as its own file is
untouched. That happened (issue 17): the AVX2 tile changed only ``simd.py``, and every run of
the checkout that had compiled the GEMM before kept the previous inner loop (30.5 ms of CPU time
per 2048^3 call against the new loop's 23.3 ms, same machine), so the quiet re-measurement read
the old loop's speed.

:func:`key_on_package` adds :func:`source_digest` (SHA-256 of every ``.py`` file of the package)
to the index stamp of each cached dispatcher of a module, so any change of the package's source
recompiles its cached kernels on first use. It sets numba's private ``_source_stamp`` of the
dispatcher's cache file; ``tests/kernels/test_kernel_cache.py`` checks every cached kernel
carries the digest, so a numba release that renames it fails there, not silently.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

#: the kernels package's source directory
PACKAGE = Path(__file__).resolve().parent
#: first element of a stamp set by :func:`key_on_package` (numba's own is ``(mtime, size)``)
STAMP_TAG = "proxcompress.kernels sources"


@functools.cache
def source_digest(root: Path = PACKAGE) -> str:
    """SHA-256 over the relative path and bytes of every ``.py`` file under ``root``, sorted."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def key_on_package_source(dispatcher: Any, root: Path = PACKAGE) -> Any:
    """Key ``dispatcher``'s on-disk cache (if it has one) on :func:`source_digest` of ``root``
    as well as on its own file's stamp; returns ``dispatcher``."""
    cache_file: Any = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    stamp = getattr(cache_file, "_source_stamp", None)
    if stamp is not None and not (isinstance(stamp, tuple) and stamp[:1] == (STAMP_TAG,)):
        cache_file._source_stamp = (STAMP_TAG, stamp, source_digest(root))
    return dispatcher


def key_on_package(namespace: dict[str, Any]) -> None:
    """:func:`key_on_package_source` for every cached numba dispatcher of a module's globals
    (called at the end of each kernels module that defines ``cache=True`` functions)."""
    from numba.core.dispatcher import Dispatcher

    for obj in list(namespace.values()):
        if isinstance(obj, Dispatcher):
            key_on_package_source(obj)
