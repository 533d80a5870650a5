"""Input checks and backend resolution shared by every kernel entry point.

Every failure raises :class:`proxcompress.errors.InvalidInputError` naming the field and the
accepted range. Checks only read shapes, dtypes and flags (no pass over the data) unless the
function says otherwise, so they cost nothing on the GPU.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import numpy as np

from proxcompress.errors import InvalidInputError

Backend = Literal["auto", "numpy", "numba", "cupy"]
BACKENDS: tuple[str, ...] = ("auto", "numpy", "numba", "cupy")


def is_cupy(a: Any) -> bool:
    """True when ``a`` is a CuPy array (checked by type, without importing CuPy)."""
    return type(a).__module__.startswith("cupy")


def array_module(a: Any) -> Any:
    """``numpy`` or ``cupy``, whichever owns ``a``."""
    if is_cupy(a):
        import cupy

        return cupy
    return np


def resolve_backend(backend: str, **arrays: Any) -> Backend:
    """Pick the backend: ``auto`` means cupy for CuPy arrays, else numba.

    Arrays must all live on one device; no implicit host/device copies are made.
    """
    if backend not in BACKENDS:
        raise InvalidInputError("backend", f"{backend!r} is not one of {BACKENDS}")
    on_gpu = {name: is_cupy(a) for name, a in arrays.items()}
    if any(on_gpu.values()) and not all(on_gpu.values()):
        where = ", ".join(f"{n}={'cupy' if g else 'numpy'}" for n, g in on_gpu.items())
        raise InvalidInputError("arrays", f"all inputs must be on one device, got {where}")
    gpu = all(on_gpu.values())
    if backend == "auto":
        return "cupy" if gpu else "numba"
    if backend == "cupy" and not gpu:
        raise InvalidInputError("backend", "'cupy' needs CuPy arrays (move them with cupy.asarray)")
    if backend != "cupy" and gpu:
        raise InvalidInputError("backend", f"{backend!r} needs NumPy arrays, got CuPy arrays")
    return cast(Backend, backend)


def check_array(
    field: str,
    a: Any,
    *,
    ndim: int | None = None,
    dtype: Any = None,
    contiguous: bool = False,
) -> None:
    """Check type, rank, dtype and (optionally) C-contiguity of one array."""
    if not hasattr(a, "dtype") or not hasattr(a, "shape"):
        raise InvalidInputError(field, f"expected a NumPy or CuPy array, got {type(a).__name__}")
    if ndim is not None and a.ndim != ndim:
        raise InvalidInputError(field, f"expected {ndim} dimensions, got shape {tuple(a.shape)}")
    if dtype is not None and a.dtype != np.dtype(dtype):
        raise InvalidInputError(field, f"dtype must be {np.dtype(dtype)}, got {a.dtype}")
    if contiguous and not a.flags.c_contiguous:
        raise InvalidInputError(
            field, "must be C-contiguous for this backend (use ascontiguousarray)"
        )


def words_for(k: int) -> int:
    """Number of uint64 words holding ``k`` packed elements: ``ceil(k / 64)``."""
    return (k + 63) // 64


def check_k(k: Any, words: int, field: str = "k") -> int:
    """``k`` must be an integer with ``64*(words-1) < k <= 64*words``."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InvalidInputError(field, f"must be an integer, got {type(k).__name__}")
    k = int(k)
    lo, hi = 64 * (words - 1) + 1, 64 * words
    if words < 1 or not lo <= k <= hi:
        raise InvalidInputError(
            field, f"= {k} does not match {words} packed words per row (accepted: {lo}..{hi})"
        )
    return k


def check_padding_zero(field: str, words: Any, k: int) -> None:
    """The bits past element ``k`` in the last word must be 0 (CPU arrays only: one pass over
    the last column, no device sync)."""
    r = k % 64
    if r == 0 or words.size == 0:
        return
    last = np.asarray(words[..., -1])
    if np.any(last >> np.uint64(r)):
        raise InvalidInputError(
            field, f"padding bits {r}..63 of the last word must be 0 (k = {k}); use pack_signs"
        )
