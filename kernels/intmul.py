"""Exact integer, multiplication-free layer kernels: int8 activations, int32 accumulators.

The float paths of :mod:`.ops` decode shift weights to float32 and call a float GEMM: fast, but
every term is a float multiply. Here every term is integer work on int8 activations:

* :func:`shift_matmul_int` -- ``y[m, n] = sum_k s[n, k] * (x[m, k] << (e[n, k] - emin))``: a
  shift, a conditional negation (``(t ^ m) - m`` with the sign mask ``m``), a zero mask and an
  add per term; the layer's value is ``2**emin * y`` (times the activation scale).
* :func:`euclid_matmul_int` -- ``y[m, n] = -sum_k (x[m, k] - w[n, k])**2``: integer squared
  differences (the square is an 9-bit x 9-bit product: a multiply, counted as one in
  ``benchmarks/energy.py``).
* :func:`l1_matmul_int` -- ``y[m, n] = -sum_k |x[m, k] - w[n, k]|`` (AdderNet): subtract,
  absolute value, add.

Each has the NumPy twin (``backend="numpy"``, int64 arithmetic) and a numba backend, equal bit
for bit; the numba shift kernel's loop has no multiply instruction (tested on its assembly).
Inputs are int8; the int32 accumulators cannot overflow within the checked bounds (``K * 127 *
2**(emax - emin) < 2**31`` for shifts, ``K * 255**2 < 2**31`` for Euclid).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from proxcompress.errors import InvalidInputError

from ._checks import check_array

__all__ = ["quantize_int8", "shift_matmul_int", "euclid_matmul_int", "l1_matmul_int"]

IntBackend = Literal["numpy", "numba"]
_I32_MAX = 2**31 - 1


def quantize_int8(x: Any, scale: float | None = None) -> tuple[np.ndarray, float]:
    """Symmetric per-tensor int8: ``q = clip(round(x / scale), -127, 127)``; ``scale`` defaults
    to ``max |x| / 127`` (1 for an all-zero ``x``). Returns ``(q, scale)``."""
    x = np.asarray(x, np.float32)
    if not np.isfinite(x).all():
        raise InvalidInputError("x", "must be finite")
    if scale is None:
        peak = float(np.abs(x).max()) if x.size else 0.0
        scale = peak / 127 if peak > 0 else 1.0
    if not (np.isfinite(scale) and scale > 0):
        raise InvalidInputError("scale", f"= {scale!r}: expected a finite number > 0")
    q = np.clip(np.rint(x / np.float32(scale)), -127, 127).astype(np.int8)
    return q, float(scale)


def _check_backend(backend: str) -> None:
    if backend not in ("numpy", "numba"):
        raise InvalidInputError("backend", f"{backend!r} is not one of ('numpy', 'numba')")


def _check_pair(x: Any, w: Any, w_field: str) -> None:
    check_array("x", x, ndim=2, dtype=np.int8, contiguous=True)
    check_array(w_field, w, ndim=2, dtype=np.int8, contiguous=True)
    if w.shape[1] != x.shape[1]:
        raise InvalidInputError(w_field, f"has {w.shape[1]} columns per row, expected "
                                f"{x.shape[1]} to match x")


def shift_matmul_int(x: Any, sign: Any, exponent: Any, emin: int,
                     backend: IntBackend = "numba") -> np.ndarray:
    """``y = sum_k sign * (x << (exponent - emin))``, exact int32 (M, N).

    Args:
        x: int8 (M, K) activations (e.g. :func:`quantize_int8`).
        sign: int8 (N, K) in {-1, 0, +1}.
        exponent: int8 (N, K), ``>= emin`` where ``sign != 0``.
        emin: the smallest exponent (the layer's value is ``2**emin * y``).
        backend: ``numba`` (shift-and-add) or ``numpy`` (the twin).
    """
    _check_backend(backend)
    _check_pair(x, sign, "sign")
    check_array("exponent", exponent, ndim=2, dtype=np.int8, contiguous=True)
    if exponent.shape != sign.shape:
        raise InvalidInputError("exponent", f"shape {exponent.shape} must equal sign's "
                                f"{sign.shape}")
    if isinstance(emin, bool) or not isinstance(emin, int | np.integer):
        raise InvalidInputError("emin", f"= {emin!r}: expected an int")
    if sign.size and int(np.abs(sign.astype(np.int16)).max()) > 1:
        raise InvalidInputError("sign", "values must be in {-1, 0, +1}")
    live = sign != 0
    shift = exponent.astype(np.int16) - int(emin)
    if live.any():
        low, high = int(shift[live].min()), int(shift[live].max())
        if low < 0:
            raise InvalidInputError("exponent", f"has {low + emin} < emin = {emin} on a "
                                    "nonzero weight")
        if x.shape[1] * 127 * 2**high > _I32_MAX:
            raise InvalidInputError("exponent", f"range {emin}..{high + emin} over K = "
                                    f"{x.shape[1]} could overflow int32 (needs K * 127 * "
                                    "2**(emax - emin) < 2**31)")
    if backend == "numpy":
        w = np.where(live, sign.astype(np.int64) << np.where(live, shift, 0), 0)
        return (x.astype(np.int64) @ w.T).astype(np.int32)
    from . import cpu_int as cpu

    sh = np.where(live, shift, 0).astype(np.int8)
    neg = np.where(sign < 0, -1, 0).astype(np.int8)
    nz = np.where(live, -1, 0).astype(np.int8)
    out = np.empty((x.shape[0], sign.shape[0]), np.int32)
    cpu.shift_gemm_int(x, sh, neg, nz, out)
    return out


def _check_distance(x: Any, w: Any, backend: str, per_term: int) -> None:
    _check_backend(backend)
    _check_pair(x, w, "w")
    if x.shape[1] * per_term > _I32_MAX:
        raise InvalidInputError("x", f"K = {x.shape[1]} columns could overflow int32 "
                                f"(K * {per_term} must stay below 2**31)")


def euclid_matmul_int(x: Any, w: Any, backend: IntBackend = "numba") -> np.ndarray:
    """``y = -sum_k (x - w)**2`` of int8 (M, K) ``x`` and (N, K) ``w``, exact int32 (M, N)."""
    _check_distance(x, w, backend, 255**2)
    if backend == "numpy":
        d = x.astype(np.int64)[:, None, :] - w.astype(np.int64)[None, :, :]
        return (-(d * d).sum(-1)).astype(np.int32)
    from . import cpu_int as cpu

    out = np.empty((x.shape[0], w.shape[0]), np.int32)
    cpu.distance_gemm_int(x, w, True, out)
    return out


def l1_matmul_int(x: Any, w: Any, backend: IntBackend = "numba") -> np.ndarray:
    """``y = -sum_k |x - w|`` of int8 (M, K) ``x`` and (N, K) ``w``, exact int32 (M, N)."""
    _check_distance(x, w, backend, 255)
    if backend == "numpy":
        d = x.astype(np.int64)[:, None, :] - w.astype(np.int64)[None, :, :]
        return (-np.abs(d).sum(-1)).astype(np.int32)
    from . import cpu_int as cpu

    out = np.empty((x.shape[0], w.shape[0]), np.int32)
    cpu.distance_gemm_int(x, w, False, out)
    return out
