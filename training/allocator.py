"""glibc's ``malloc`` tuned for training loops (Linux; a no-op elsewhere).

A CPU training step allocates and frees the same few large activation buffers (the results
CNN: 6.4 MB per ``128 x 16 x 28 x 28`` float tensor) hundreds of times an epoch. With glibc's
defaults, freed memory at the top of the heap beyond a small trim threshold goes back to the
kernel and large blocks are ``mmap``-ed, so the next step touches fresh pages again: one
regeneration of the binary results tables took 132 million minor page faults (five minutes of
system time) on 2 cores. :func:`tune_allocator` keeps that memory in the process instead
(``mallopt``: blocks up to 32 MiB from the heap, heap memory returned to the kernel only
beyond 1 GiB free at its top, the heap grown 256 MiB at a time). The arithmetic is untouched:
runs are bit-identical with and without it; one epoch of the results CNN trains about 8% faster
(``benchmarks/allocator.py``, docs/benchmarks.md "Allocator"). The price: a process keeps up
to 1 GiB of freed memory mapped (the results workers peak near 1.5 GB either way).

``PROXCOMPRESS_MALLOC=default`` leaves glibc's settings alone (what the benchmark compares).
"""

from __future__ import annotations

import ctypes
import os
import sys

from proxcompress.errors import InvalidInputError

#: glibc's ``mallopt`` parameter numbers (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: the tuned values: (parameter, bytes); 32 MiB is glibc's largest mmap threshold on 64-bit
SETTINGS = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 256 << 20))
#: the environment variable that chooses (``tuned``, the default, or ``default``)
ENV = "PROXCOMPRESS_MALLOC"
CHOICES = ("tuned", "default")

_done = False


def wanted() -> bool:
    """Whether :envvar:`PROXCOMPRESS_MALLOC` asks for the tuned allocator.

    Raises:
        InvalidInputError (field ``PROXCOMPRESS_MALLOC``): a value other than ``tuned`` or
            ``default``.
    """
    value = os.environ.get(ENV, "tuned")
    if value not in CHOICES:
        raise InvalidInputError(ENV, f"= {value!r}; accepted: {', '.join(CHOICES)}")
    return value == "tuned"


def tune_allocator() -> bool:
    """Apply :data:`SETTINGS` to this process's glibc ``malloc`` once; True when they are in
    effect (now or from an earlier call), False where the variable says ``default`` or the C
    library has no ``mallopt`` (not Linux, musl, ...).

    Raises:
        InvalidInputError: a bad :envvar:`PROXCOMPRESS_MALLOC` (see :func:`wanted`).
    """
    global _done
    if not wanted():
        return False
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = all(mallopt(param, value) == 1 for param, value in SETTINGS)
    return _done


__all__ = ["CHOICES", "ENV", "SETTINGS", "tune_allocator", "wanted"]
