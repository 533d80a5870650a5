"""Simulated heterogeneous cause-effect pairs with a known direction.

A population of ``k`` subpopulations, each with its own additive noise model
``effect = f_c(cause) + noise``: the cause is uniform on ``[-2, 2]``; mechanism ``c`` is the
cubic ``o_c + b1 u + b2 (u^2 - 4/3) + b3 u^3 / 4`` with standard normal coefficients and offset
``o_c``; labels are drawn with Dirichlet(4, ..., 4) proportions; the noise is uniform (default) or
Gaussian with standard deviation ``noise_scale``, multiplied by ``exp(heteroscedasticity * cause /
2)`` (default 0: homoscedastic; at 1 the sd grows from ``noise_scale / e`` to ``e noise_scale``
across the cause's range). With ``swap=True`` the pair is returned as
``(effect, cause)`` with probability 1/2, so the true direction is ``"y->x"`` as often as
``"x->y"``. The design is this package's (the paper's simulation settings are not confirmed,
methods.md section 10 [U]).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from proxcompress.errors import InvalidInputError

from ._checks import choice, integer
from .regression import FloatArray

NOISES: tuple[str, ...] = ("uniform", "gaussian")


@dataclass(frozen=True)
class CausalPair:
    """Samples ``x``, ``y``, the subpopulation of each sample and the true direction."""

    x: FloatArray
    y: FloatArray
    labels: NDArray[np.int64]
    direction: str


def simulate_mixture(n: int, k: int, *, seed: int,
                     noise: Literal["uniform", "gaussian"] = "uniform", noise_scale: float = 0.2,
                     swap: bool = True, heteroscedasticity: float = 0.0) -> CausalPair:
    """``n`` samples of a ``k``-mechanism population (module docstring); same seed, same pair."""
    integer(n, "n", 1)
    integer(k, "k", 1)
    integer(seed, "seed", 0)
    choice(noise, "noise", NOISES)
    if not noise_scale > 0:
        raise InvalidInputError("noise_scale", f"{noise_scale} is outside (0, inf)")
    if (isinstance(heteroscedasticity, bool) or not isinstance(heteroscedasticity, numbers.Real)
            or not np.isfinite(heteroscedasticity)):
        raise InvalidInputError("heteroscedasticity", f"{heteroscedasticity} is not finite")
    rng = np.random.default_rng(seed)
    cause = rng.uniform(-2.0, 2.0, n)
    coefficients = rng.standard_normal((k, 4))
    proportions = rng.dirichlet(np.full(k, 4.0))
    labels = rng.choice(k, size=n, p=proportions).astype(np.int64)
    o, b1, b2, b3 = (coefficients[labels, j] for j in range(4))
    if noise == "uniform":
        eps = rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), n) * noise_scale
    else:
        eps = rng.standard_normal(n) * noise_scale
    if heteroscedasticity:  # draws above unchanged: heteroscedasticity = 0 gives the same pairs
        eps = eps * np.exp(heteroscedasticity * cause / 2)
    effect = o + b1 * cause + b2 * (cause**2 - 4.0 / 3.0) + b3 * cause**3 / 4.0 + eps
    if swap and rng.random() < 0.5:
        return CausalPair(effect, cause, labels, "y->x")
    return CausalPair(cause, effect, labels, "x->y")
