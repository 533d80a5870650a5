"""The least-squares loss compressed by a thin QR of ``X`` (shared by every formulation that
models residuals: ``bigm``, ``perspective`` and the relaxations)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from proxcompress.formulations.problem import LayerPruningProblem


@dataclass(frozen=True)
class CompressedLoss:
    """``1/2 ||Y - XW||_F^2 = 1/2 ||R W - C||_F^2 + const`` with ``X = QR`` (thin QR).

    ``R`` has shape ``(min(n, d), d)`` and ``C = Q^T Y`` shape ``(min(n, d), m)``; ``const`` is
    half the squared norm of the part of ``Y`` outside the column space of ``Q``.
    """

    R: NDArray[np.float64]
    C: NDArray[np.float64]
    const: float


def compressed_loss(problem: LayerPruningProblem) -> CompressedLoss:
    """The thin-QR compression of the least-squares loss of ``problem`` (shared by every
    formulation that models residuals: ``bigm``, ``perspective`` and the relaxations)."""
    Q, R = np.linalg.qr(problem.X, mode="reduced")
    C = Q.T @ problem.Y
    const = 0.5 * float(np.sum((problem.Y - Q @ C) ** 2))
    return CompressedLoss(R=np.ascontiguousarray(R), C=np.ascontiguousarray(C), const=const)
