"""Float tolerances of the kernel tests: rigorous worst-case bounds, elementwise."""

from __future__ import annotations

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)


def assert_within(out: np.ndarray, ref: np.ndarray, bound: np.ndarray) -> None:
    """Every ``|out - ref| <= bound`` (elementwise), with NaN failing."""
    assert out.shape == ref.shape
    err = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    bad = ~(err <= bound)
    assert not bad.any(), (
        f"{int(bad.sum())} of {bad.size} entries off; worst excess "
        f"{float(np.max(err - bound))} (err {float(err.max())})"
    )


def matmul_bound(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Worst-case float32 dot-product error: ``2 K eps32 (|x| @ |w|.T)`` plus the final rounding."""
    k = x.shape[1]
    scale = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)).T
    return 2 * max(k, 1) * EPS32 * scale + 1e-37


def euclid_bound(x: np.ndarray, w: np.ndarray, ref: np.ndarray, method: str) -> np.ndarray:
    """Error bounds of the two Euclid methods (see ``euclid_matmul``'s docstring).

    direct: every term is >= 0, so ``2 K eps32 |ref|``; expand: the GEMM error is relative to
    ``|x|^2 + |w|^2``, not to the result.
    """
    k = max(x.shape[1], 1)
    if method == "direct":
        return 2 * k * EPS32 * np.abs(ref.astype(np.float64)) + 1e-37
    xn = (x.astype(np.float64) ** 2).sum(1)
    wn = (w.astype(np.float64) ** 2).sum(1)
    return 2 * k * EPS32 * (xn[:, None] + wn[None, :]) + 1e-37
