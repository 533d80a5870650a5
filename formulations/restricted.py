"""The problem restricted to a fixed support: a box-constrained ridge regression.

For a fixed set ``S`` of kept groups the MIP reduces, column by column of ``W``, to

.. math::

    \\min_{|w| \\le M}\\; \\tfrac12 \\|y - X_S w\\|^2 + \\lambda\\alpha \\|w\\|^2
    \\;+\\; \\lambda(1-\\alpha)|S|,

a strictly convex QP when ``lam * alpha > 0``. It is solved exactly: the ridge closed form when it
respects the box, else the bounded-variable least-squares active-set method (Stark and Parker's
BVLS through :func:`scipy.optimize.lsq_linear`) on the Cholesky-whitened system. Every formulation
polishes its final support through :func:`solve_support`, so all of them report objectives that
are computed the same way and comparable to 1e-9.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import LinAlgError, cho_factor, cho_solve, solve_triangular
from scipy.optimize import lsq_linear

from proxcompress.formulations.problem import LayerPruningProblem

#: Above this many features the Gram matrix is not formed; each support's block
#: ``X_S^T X_S`` is computed from ``X`` when needed (``d = 10^4`` would need 0.8 GB and ~6 s).
GRAM_LIMIT = 4000


class SupportSolver:
    """Exact solutions of the restricted problem for many supports of one instance.

    Precomputes ``X^T Y``, ``||Y||^2`` and, for ``d <=`` :data:`GRAM_LIMIT`, the Gram matrix
    ``X^T X`` once.
    """

    def __init__(self, problem: LayerPruningProblem) -> None:
        self.problem = problem
        self.gram = problem.X.T @ problem.X if problem.d <= GRAM_LIMIT else None
        self.xty = problem.X.T @ problem.Y
        self.yy = float(np.sum(problem.Y**2))
        self.ridge = 2.0 * problem.lam * problem.alpha

    def gram_block(self, rows: NDArray[np.int64]) -> NDArray[np.float64]:
        """``X_S^T X_S`` for the feature rows ``rows``."""
        if self.gram is not None:
            return self.gram[np.ix_(rows, rows)]
        cols = self.problem.X[:, rows]
        return cols.T @ cols

    def rows(self, support: tuple[int, ...]) -> NDArray[np.int64]:
        """Rows of ``W`` belonging to the groups in ``support`` (sorted)."""
        p = self.problem
        if not support:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.concatenate([p.group_rows[g] for g in support]))

    def solve(self, support: tuple[int, ...]) -> tuple[NDArray[np.float64], float]:
        """Optimal ``W`` (``d x m``, zero off the support) and the MIP objective for ``support``."""
        p = self.problem
        W = np.zeros((p.d, p.m))
        rows = self.rows(support)
        count_term = p.lam * (1.0 - p.alpha) * len(support)
        if rows.size == 0:
            return W, 0.5 * self.yy + count_term
        A = self.gram_block(rows) + self.ridge * np.eye(rows.size)
        b = self.xty[rows]
        try:
            factor = cho_factor(A, lower=False, check_finite=False)
        except LinAlgError:
            return self._solve_rank_deficient(support, rows)
        Ws = cho_solve(factor, b, check_finite=False)
        value = 0.5 * self.yy - 0.5 * float(np.sum(b * Ws))
        if np.abs(Ws).max() > p.M:
            # Box active: min 1/2||R w - c||^2 - 1/2||c||^2 + 1/2||y||^2 with R^T R = A, R^T c = b.
            R = np.triu(factor[0])
            C = solve_triangular(R, b, trans="T", check_finite=False)
            value = 0.5 * self.yy
            for j in range(p.m):
                res = lsq_linear(R, C[:, j], bounds=(-p.M, p.M), method="bvls", tol=1e-13)
                Ws[:, j] = res.x
                value += 0.5 * float(np.sum((R @ res.x - C[:, j]) ** 2)) - 0.5 * float(
                    np.sum(C[:, j] ** 2)
                )
        W[rows] = Ws
        return W, value + count_term

    def _solve_rank_deficient(
        self, support: tuple[int, ...], rows: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], float]:
        p = self.problem
        A = p.X[:, rows]
        if self.ridge > 0:
            A = np.vstack([A, np.sqrt(self.ridge) * np.eye(rows.size)])
        W = np.zeros((p.d, p.m))
        for j in range(p.m):
            target = p.Y[:, j]
            if self.ridge > 0:
                target = np.concatenate([target, np.zeros(rows.size)])
            W[rows, j] = lsq_linear(A, target, bounds=(-p.M, p.M), method="bvls", tol=1e-13).x
        return W, p.objective(W, support)


def solve_support(
    problem: LayerPruningProblem, support: tuple[int, ...]
) -> tuple[NDArray[np.float64], float]:
    """Exact optimum of ``problem`` with the kept groups fixed to ``support``.

    Returns ``(W, objective)``; ``W`` is zero outside ``support``.
    """
    return SupportSolver(problem).solve(tuple(sorted(support)))
