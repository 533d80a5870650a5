"""Public GEMM entry points: one function per layer kind, three backends behind each.

``backend``: ``"numpy"`` (the reference twin), ``"numba"`` (parallel CPU), ``"cupy"`` (GPU
RawKernels), or ``"auto"`` (cupy for CuPy arrays, else numba). Inputs stay where they are: NumPy
arrays in, NumPy out; CuPy in, CuPy out.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from proxcompress.errors import InvalidInputError

from . import reference
from ._checks import (
    Backend,
    check_array,
    check_k,
    check_padding_zero,
    resolve_backend,
)

__all__ = ["binary_matmul", "shift_matmul", "euclid_matmul"]

EuclidMethod = Literal["expand", "direct"]


def _check_inner(field: str, got: int, want: int, what: str) -> None:
    if got != want:
        raise InvalidInputError(field, f"has {got} {what} per row, expected {want} to match")


def binary_matmul(a_words: Any, b_words: Any, k: int, backend: Backend = "auto") -> Any:
    """Binary GEMM on packed signs: ``A @ B.T`` of the +-1 matrices, exactly.

    .. math:: C_{mn} = \\sum_{j<k} A_{mj} B_{nj}
              = k - 2 \\sum_w \\mathrm{popcount}(a_{mw} \\oplus b_{nw})

    Args:
        a_words: uint64 (M, W), rows packed with :func:`~proxcompress.kernels.pack_signs`.
        b_words: uint64 (N, W), packed the same way (e.g. the weight matrix, one row per output).
        k: number of packed elements per row, ``64*(W-1) < k <= 64*W``.
        backend: ``auto`` | ``numpy`` | ``numba`` | ``cupy``.

    Returns:
        int32 (M, N). Padding bits past ``k`` must be 0 (``pack_signs`` guarantees it; CPU
        backends verify it, the GPU backend does not, to avoid a device sync).
    """
    backend = resolve_backend(backend, a_words=a_words, b_words=b_words)
    fast = backend != "numpy"
    check_array("a_words", a_words, ndim=2, dtype=np.uint64, contiguous=fast)
    check_array("b_words", b_words, ndim=2, dtype=np.uint64, contiguous=fast)
    _check_inner("b_words", b_words.shape[1], a_words.shape[1], "words")
    k = check_k(k, a_words.shape[1])
    if backend == "cupy":
        from . import gpu

        return gpu.binary_matmul(a_words, b_words, k)
    check_padding_zero("a_words", a_words, k)
    check_padding_zero("b_words", b_words, k)
    if backend == "numpy":
        return reference.binary_matmul(a_words, b_words, k)
    from . import cpu

    out = np.empty((a_words.shape[0], b_words.shape[0]), np.int32)
    cpu.binary_matmul(a_words, b_words, k, out)
    return out


def _check_shift(x: Any, sign: Any, exponent: Any, fast: bool) -> None:
    check_array("x", x, ndim=2, dtype=np.float32, contiguous=fast)
    check_array("sign", sign, ndim=2, dtype=np.int8, contiguous=fast)
    check_array("exponent", exponent, ndim=2, dtype=np.int8, contiguous=fast)
    if exponent.shape != sign.shape:
        raise InvalidInputError(
            "exponent", f"shape {exponent.shape} must equal sign's {sign.shape}"
        )
    _check_inner("sign", sign.shape[1], x.shape[1], "columns")


def check_sign_values(sign: Any) -> None:
    """Shift signs are -1, 0 or +1 (checked on the CPU backends)."""
    if sign.size and int(np.abs(sign.astype(np.int16)).max()) > 1:
        raise InvalidInputError("sign", "values must be in {-1, 0, +1}")


def shift_matmul(x: Any, sign: Any, exponent: Any, backend: Backend = "auto") -> Any:
    """Shift GEMM: ``x @ (sign * 2.0**exponent).T``.

    .. math:: C_{mn} = \\sum_k x_{mk}\\, s_{nk}\\, 2^{e_{nk}}

    Args:
        x: float32 (M, K) activations.
        sign: int8 (N, K), values in {-1, 0, +1} (0 only for shift formats with zero).
        exponent: int8 (N, K); any int8 exponent is exact in float32.
        backend: ``auto`` | ``numpy`` | ``numba`` | ``cupy``.

    Returns:
        float32 (M, N). CPU backends check the sign values; the GPU backend treats any
        positive / negative / zero int8 as +1 / -1 / 0 (no device sync for a check).
    """
    backend = resolve_backend(backend, x=x, sign=sign, exponent=exponent)
    _check_shift(x, sign, exponent, backend != "numpy")
    if backend == "cupy":
        from . import gpu

        return gpu.shift_matmul(x, sign, exponent)
    check_sign_values(sign)
    if backend == "numpy":
        return reference.shift_matmul(x, sign, exponent)
    from . import cpu

    w = np.empty(sign.shape, np.float32)
    cpu.decode_shift(sign, exponent, w)
    return cpu.sgemm_nt(x, w)


def euclid_matmul(
    x: Any, w: Any, backend: Backend = "auto", method: EuclidMethod = "expand"
) -> Any:
    """Euclid (AdderNet-style) layer: negative squared distances.

    .. math:: C_{mn} = -\\sum_k (x_{mk} - w_{nk})^2
                     = -\\|x_m\\|^2 + 2\\, x_m \\cdot w_n - \\|w_n\\|^2

    Args:
        x: float32 (M, K).
        w: float32 (N, K).
        backend: ``auto`` | ``numpy`` | ``numba`` | ``cupy``.
        method: numba only. ``expand`` (default): one float32 BLAS GEMM plus float64 norms; its
            absolute error is about ``sqrt(K) * 6e-8 * |x_m| |w_n|``, which is large *relative* to
            the result when ``x_m`` is close to ``w_n``. ``direct``: direct differences, relative
            error at most about ``K * 6e-8``, slower. The numpy twin is always direct in float64;
            the GPU kernel is always direct in float32.

    Returns:
        float32 (M, N).
    """
    backend = resolve_backend(backend, x=x, w=w)
    if method not in ("expand", "direct"):
        raise InvalidInputError("method", f"{method!r} is not one of ('expand', 'direct')")
    fast = backend != "numpy"
    check_array("x", x, ndim=2, dtype=np.float32, contiguous=fast)
    check_array("w", w, ndim=2, dtype=np.float32, contiguous=fast)
    _check_inner("w", w.shape[1], x.shape[1], "columns")
    if backend == "cupy":
        from . import gpu

        return gpu.euclid_matmul(x, w)
    if backend == "numpy":
        return reference.euclid_matmul(x, w)
    from . import cpu

    if method == "direct":
        out = np.empty((x.shape[0], w.shape[0]), np.float32)
        cpu.euclid_direct(x, w, out)
        return out
    x_norms = np.empty(x.shape[0], np.float64)
    w_norms = np.empty(w.shape[0], np.float64)
    cpu.squared_norms(x, x_norms)
    cpu.squared_norms(w, w_norms)
    g = cpu.sgemm_nt(x, w)
    cpu.euclid_finish(g, x_norms, w_norms)
    return g
