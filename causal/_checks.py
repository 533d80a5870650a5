"""Argument checks shared by the causal wing: each failure is an
:class:`~proxcompress.errors.InvalidInputError` naming the argument and its accepted range."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import NDArray

from proxcompress.errors import InvalidInputError


def integer(value: Any, field: str, low: int) -> int:
    """``value`` as an int, which must be an integer (not a bool) and at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(field, f"{value!r} is not an integer in [{low}, inf)")
    if value < low:
        raise InvalidInputError(field, f"{value} is outside [{low}, inf)")
    return int(value)


def sample(values: Any, field: str) -> NDArray[np.float64]:
    """A finite, real, 1-D float64 array from ``values`` (a copy only where needed)."""
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise InvalidInputError(field, f"real numbers needed, got dtype {array.dtype}")
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 1:
        raise InvalidInputError(field, f"a 1-D sample needed, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InvalidInputError(field, "values must be finite (no NaN or inf)")
    return array


def same_length(a: NDArray[np.float64], b: NDArray[np.float64], field: str) -> None:
    """Paired samples must have equal lengths."""
    if a.shape != b.shape:
        raise InvalidInputError(field, f"paired samples of equal length needed, got {a.size} "
                                f"and {b.size}")


def choice(value: Any, field: str, allowed: tuple[str, ...]) -> str:
    """``value`` must be one of ``allowed``."""
    if value not in allowed:
        raise InvalidInputError(field, f"{value!r} is not one of {allowed}")
    return str(value)


def distinct_enough(values: NDArray[np.float64], need: int, field: str) -> None:
    """A regression on ``values`` needs at least ``need`` distinct values of them."""
    distinct = np.unique(values).size
    if distinct < need:
        raise InvalidInputError(field, f"{distinct} distinct values; the regressor needs >= {need}")
