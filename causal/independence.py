"""Independence tests between a cause and residuals: HSIC with Gaussian kernels.

``HSIC_b = tr(K H L H) / n^2`` (Gretton et al. 2005, the biased estimator), ``K`` and ``L``
Gaussian Gram matrices of the two samples with the median-heuristic bandwidth (median of the
nonzero pairwise distances), ``H = I - 11^T / n``. The null distribution of ``n HSIC_b`` is a
weighted sum of chi-squares; two ways to a p-value (a [U] choice of methods.md section 10; the
paper cites saddlepoint approximations, not implemented here):

* :class:`HSICGamma` (default): the two-parameter gamma with the null mean and variance of
  Gretton et al. 2008 ("A kernel statistical test of independence"), in closed form, O(n^2);
* :class:`HSICPermutation`: the permutation distribution, ``(1 + #{perm >= observed}) / (B + 1)``.

Both return a :class:`TestResult` with the log p-value too, so that two p-values far below
float64's range can still be compared (:mod:`.direction` decides by the larger one).

Memory and time grow as n^2 (a few n x n float64 matrices), so above ``max_samples`` pairs
(default 3000, about 70 MB per matrix) both tests run on a seeded random subsample of that many
pairs; :attr:`TestResult.samples` says how many were used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from proxcompress.errors import InvalidInputError

FloatArray = NDArray[np.float64]

#: fewest samples a test accepts (the gamma moments divide by n - 3)
MIN_SAMPLES = 6
#: default largest sample tested as a whole (above it: a seeded random subsample)
MAX_SAMPLES = 3000


@dataclass(frozen=True)
class TestResult:
    """``statistic`` is ``n HSIC_b`` over the ``samples`` pairs tested;
    ``p_value = exp(log_p_value)``."""

    statistic: float
    p_value: float
    log_p_value: float
    samples: int


class IndependenceTest(Protocol):
    """Tests ``u`` independent of ``v`` (1-D samples of equal length)."""

    def __call__(self, u: FloatArray, v: FloatArray) -> TestResult: ...


def gaussian_gram(u: FloatArray) -> FloatArray:
    """``exp(-(u_i - u_j)^2 / (2 s^2))`` with ``s`` the median of the nonzero ``|u_i - u_j|``
    (``s = 1`` if all values are equal)."""
    d = np.abs(u[:, None] - u[None, :])
    nonzero = d[np.triu_indices(u.size, 1)]
    nonzero = nonzero[nonzero > 0]
    s = float(np.median(nonzero)) if nonzero.size else 1.0
    return np.exp(-0.5 * (d / s) ** 2)


def _centre(k: FloatArray) -> FloatArray:
    return k - k.mean(axis=0)[None, :] - k.mean(axis=1)[:, None] + k.mean()


def _check(u: FloatArray, v: FloatArray) -> None:
    if u.ndim != 1 or v.shape != u.shape:
        raise InvalidInputError("u, v",
                                f"1-D samples of equal length needed, got {u.shape}, {v.shape}")
    if u.size < MIN_SAMPLES:
        raise InvalidInputError("n", f"{u.size} samples; an HSIC test needs >= {MIN_SAMPLES}")
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(v))):
        raise InvalidInputError("u, v", "samples must be finite")


def _check_max(max_samples: int) -> None:
    if max_samples < MIN_SAMPLES:
        raise InvalidInputError("max_samples", f"{max_samples} is outside [{MIN_SAMPLES}, inf)")


def _subsample(u: FloatArray, v: FloatArray, max_samples: int, seed: int
               ) -> tuple[FloatArray, FloatArray]:
    """The pairs tested: all of them, or ``max_samples`` drawn without replacement."""
    _check(u, v)
    if u.size <= max_samples:
        return u, v
    keep = np.sort(np.random.default_rng(seed).choice(u.size, max_samples, replace=False))
    return u[keep], v[keep]


def hsic(u: FloatArray, v: FloatArray) -> float:
    """The biased estimator ``HSIC_b = tr(K H L H) / n^2``."""
    _check(u, v)
    k, lc = gaussian_gram(u), _centre(gaussian_gram(v))
    return float(np.sum(k * lc)) / u.size**2


@dataclass(frozen=True)
class HSICGamma:
    """HSIC test, gamma approximation of the null distribution of ``n HSIC_b`` (above
    ``max_samples`` pairs, on a random subsample drawn with ``seed``).

    Null moments (Gretton et al. 2008), with ``Kc = HKH``, ``Lc = HLH``, ``n`` samples:
    ``E[HSIC_b] = (1 + mu_K mu_L - mu_K - mu_L) / n``, ``mu_K`` the mean off-diagonal entry of K;
    ``Var[HSIC_b] = 2 (n-4)(n-5) / (n (n-1)(n-2)(n-3)) * sum_{i != j} B_ij / (n (n-1))`` with
    ``B = (Kc o Lc)^2`` elementwise. Shape ``E^2 / Var``, scale ``n Var / E``.
    """

    max_samples: int = MAX_SAMPLES
    seed: int = 0

    def __post_init__(self) -> None:
        _check_max(self.max_samples)

    def __call__(self, u: FloatArray, v: FloatArray) -> TestResult:
        from scipy.stats import gamma

        u, v = _subsample(u, v, self.max_samples, self.seed)
        n = u.size
        k, lg = gaussian_gram(u), gaussian_gram(v)
        kc, lc = _centre(k), _centre(lg)
        statistic = float(np.sum(kc * lc)) / n  # n HSIC_b (tr(Kc Lc) = tr(K H L H))
        off = n * (n - 1)
        mu_k = (float(k.sum()) - n) / off  # unit diagonal
        mu_l = (float(lg.sum()) - n) / off
        mean = (1.0 + mu_k * mu_l - mu_k - mu_l) / n
        b = (kc * lc) ** 2
        var = (2.0 * (n - 4) * (n - 5) / (n * (n - 1) * (n - 2) * (n - 3))
               * (float(b.sum()) - float(np.trace(b))) / off)
        if mean <= 0 or var <= 0:  # a constant sample: nothing to detect
            return TestResult(statistic, 1.0, 0.0, n)
        shape, scale = mean**2 / var, n * var / mean
        log_p = float(gamma.logsf(statistic, shape, scale=scale))
        return TestResult(statistic, float(np.exp(log_p)), log_p, n)


@dataclass(frozen=True)
class HSICPermutation:
    """HSIC test, permutation null: ``permutations`` random permutations of ``v``, drawn with
    ``seed`` (as is the subsample above ``max_samples`` pairs)."""

    permutations: int = 500
    seed: int = 0
    max_samples: int = MAX_SAMPLES

    def __post_init__(self) -> None:
        if self.permutations < 1:
            raise InvalidInputError("permutations", f"{self.permutations} is outside [1, inf)")
        _check_max(self.max_samples)

    def __call__(self, u: FloatArray, v: FloatArray) -> TestResult:
        u, v = _subsample(u, v, self.max_samples, self.seed)
        n = u.size
        kc, lc = _centre(gaussian_gram(u)), _centre(gaussian_gram(v))
        statistic = float(np.sum(kc * lc)) / n
        rng = np.random.default_rng(self.seed)
        exceed = 0
        for _ in range(self.permutations):
            p = rng.permutation(n)
            exceed += float(np.sum(kc * lc[np.ix_(p, p)])) / n >= statistic
        p_value = (1 + exceed) / (self.permutations + 1)
        return TestResult(statistic, p_value, float(np.log(p_value)), n)
