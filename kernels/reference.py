"""The NumPy reference twin: each kernel written the obvious way, used to test the fast backends.

Inputs are assumed valid (the public functions in :mod:`proxcompress.kernels.ops` check them).
Float results are computed in float64 and rounded once to float32.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 1 << 22  # elements of the broadcast temporaries per block of rows


def _rows_per_block(per_row: int) -> int:
    return max(1, _CHUNK // max(1, per_row))


def binary_matmul(a_words: np.ndarray, b_words: np.ndarray, k: int) -> np.ndarray:
    """``out[m, n] = k - 2 * popcount(a[m] xor b[n])`` summed over words (int32)."""
    m, w = a_words.shape
    n = b_words.shape[0]
    out = np.empty((m, n), np.int32)
    step = _rows_per_block(n * w)
    for i in range(0, m, step):
        x = a_words[i : i + step, None, :] ^ b_words[None, :, :]
        out[i : i + step] = k - 2 * np.bitwise_count(x).sum(axis=-1, dtype=np.int64)
    return out


def shift_matmul(x: np.ndarray, sign: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """``x @ (sign * 2.0**exponent).T`` in float64, rounded to float32."""
    w = sign.astype(np.float64) * np.ldexp(1.0, exponent.astype(np.int64))
    return (x.astype(np.float64) @ w.T).astype(np.float32)


def euclid_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``out[m, n] = -sum_k (x[m, k] - w[n, k])**2`` by direct differences in float64."""
    m, k = x.shape
    n = w.shape[0]
    out = np.empty((m, n), np.float32)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    step = _rows_per_block(n * k)
    for i in range(0, m, step):
        d = x64[i : i + step, None, :] - w64[None, :, :]
        out[i : i + step] = -np.einsum("mnk,mnk->mn", d, d)
    return out
