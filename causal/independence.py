"""Independence tests between a cause and residuals: HSIC with Gaussian kernels.

``HSIC_b = tr(K H L H) / n^2`` (Gretton et al. 2005, the biased estimator), ``K`` and ``L``
Gram matrices of the two samples, ``H = I - 11^T / n``. The kernel (a [U] choice, ``widths``)
is the mean of Gaussian kernels with bandwidths ``w s``, ``s`` the median heuristic (median of
the nonzero pairwise distances), ``w`` in ``DEFAULT_WIDTHS = (0.5, 1, 2)`` by default: a
multi-scale kernel, sensitive to dependence at half and twice the median distance as well
(chosen on the Tuebingen pairs' selection half, docs/decisions.md); ``widths=(1.0,)`` is the
plain median heuristic. The null distribution of ``n HSIC_b`` is a
weighted sum of chi-squares; two ways to a p-value (a [U] choice of methods.md section 10; the
paper cites saddlepoint approximations, not implemented here):

* :class:`HSICGamma` (default): the two-parameter gamma with the null mean and variance of
  Gretton et al. 2008 ("A kernel statistical test of independence"), in closed form, O(n^2);
* :class:`HSICPermutation`: the permutation distribution, ``(1 + #{perm >= observed}) / (B + 1)``.

:class:`HSICMaxBandwidth` (issue 19, round 4) is a different statistic: the maximum over a grid
of bandwidths of ``n HSIC_b``, each standardised by its permutation reference set, with a
permutation p-value calibrated for that maximum (the same permutations for every bandwidth).

Both return a :class:`TestResult` with the log p-value too, so that two p-values far below
float64's range can still be compared (:mod:`.direction` decides by the larger one).

Memory and time grow as n^2 (a few n x n float64 matrices), so above ``max_samples`` pairs
(default 3000, about 70 MB per matrix) both tests run on a seeded random subsample of that many
pairs; :attr:`TestResult.samples` says how many were used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from proxcompress.errors import InvalidInputError

from ._checks import integer, same_length, sample

FloatArray = NDArray[np.float64]

#: fewest samples a test accepts (the gamma moments divide by n - 3)
MIN_SAMPLES = 6
#: default largest sample tested as a whole (above it: a seeded random subsample)
MAX_SAMPLES = 3000
#: default kernel bandwidths, as multiples of the median heuristic (:func:`gaussian_gram`)
DEFAULT_WIDTHS: tuple[float, ...] = (0.5, 1.0, 2.0)
#: bandwidth grid of :class:`HSICMaxBandwidth`, multiples of the median heuristic
GRID_WIDTHS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)


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

    def __call__(self, u: Any, v: Any) -> TestResult: ...


def gaussian_gram(u: FloatArray, widths: tuple[float, ...] = (1.0,)) -> FloatArray:
    """``exp(-(u_i - u_j)^2 / (2 s^2))`` with ``s`` the median of the nonzero ``|u_i - u_j|``
    (``s = 1`` if all values are equal); with several ``widths`` the mean of the Gaussian
    kernels of bandwidths ``w s`` (a multi-scale kernel, still characteristic)."""
    d = np.abs(u[:, None] - u[None, :])
    nonzero = d[np.triu_indices(u.size, 1)]
    nonzero = nonzero[nonzero > 0]
    s = float(np.median(nonzero)) if nonzero.size else 1.0
    if widths == (1.0,):
        return np.exp(-0.5 * (d / s) ** 2)
    return np.mean([np.exp(-0.5 * (d / (w * s)) ** 2) for w in widths], axis=0)


def _centre(k: FloatArray) -> FloatArray:
    return k - k.mean(axis=0)[None, :] - k.mean(axis=1)[:, None] + k.mean()


def _statistic(kc: FloatArray, lc: FloatArray) -> float:
    """``n HSIC_b`` from the centred Gram matrices (``tr(Kc Lc) / n = tr(K H L H) / n``)."""
    return float(np.sum(kc * lc)) / kc.shape[0]


def _pairs(u: Any, v: Any, max_samples: int, seed: int) -> tuple[FloatArray, FloatArray]:
    """The pairs tested: all of them, or ``max_samples`` drawn without replacement."""
    us, vs = sample(u, "u"), sample(v, "v")
    same_length(us, vs, "u, v")
    if us.size < MIN_SAMPLES:
        raise InvalidInputError("n", f"{us.size} samples; an HSIC test needs >= {MIN_SAMPLES}")
    if us.size <= max_samples:
        return us, vs
    keep = np.sort(np.random.default_rng(seed).choice(us.size, max_samples, replace=False))
    return us[keep], vs[keep]


def _widths(widths: Any) -> tuple[float, ...]:
    if (not isinstance(widths, tuple) or not widths
            or not all(isinstance(w, float) and np.isfinite(w) and w > 0 for w in widths)):
        raise InvalidInputError("widths", f"a non-empty tuple of positive finite floats needed, "
                                f"got {widths!r}")
    return widths


def _permutation_settings(test: Any) -> None:
    """The settings every permutation test checks (``permutations``, ``seed``,
    ``max_samples``, ``widths``), each named in the error."""
    integer(test.permutations, "permutations", 1)
    integer(test.seed, "seed", 0)
    integer(test.max_samples, "max_samples", MIN_SAMPLES)
    _widths(test.widths)


def hsic(u: Any, v: Any, widths: tuple[float, ...] = DEFAULT_WIDTHS) -> float:
    """The biased estimator ``HSIC_b = tr(K H L H) / n^2`` of all the pairs."""
    _widths(widths)
    us, vs = _pairs(u, v, np.iinfo(np.int64).max, 0)
    return _statistic(_centre(gaussian_gram(us, widths)),
                      _centre(gaussian_gram(vs, widths))) / us.size


def gamma_null_moments(k: FloatArray, lg: FloatArray, kc: FloatArray, lc: FloatArray
                       ) -> tuple[float, float]:
    """Null mean and variance of ``HSIC_b`` from the Gram matrices ``k``, ``lg`` and their
    centred forms ``kc = HKH``, ``lc = HLH``, Gretton et al. 2008:
    ``E = (1 + mu_K mu_L - mu_K - mu_L) / n`` with ``mu_K`` the mean off-diagonal entry of K;
    ``Var = 2 (n-4)(n-5) / (n (n-1)(n-2)(n-3)) * sum_{i != j} B_ij / (n (n-1))`` with
    ``B = (Kc o Lc)^2`` elementwise."""
    n = k.shape[0]
    off = n * (n - 1)
    mu_k = (float(k.sum()) - float(np.trace(k))) / off
    mu_l = (float(lg.sum()) - float(np.trace(lg))) / off
    mean = (1.0 + mu_k * mu_l - mu_k - mu_l) / n
    b = (kc * lc) ** 2
    var = (2.0 * (n - 4) * (n - 5) / (n * (n - 1) * (n - 2) * (n - 3))
           * (float(b.sum()) - float(np.trace(b))) / off)
    return mean, var


def log_gamma_sf(x: float, shape: float) -> float:
    """``log Q(shape, x)``, the log upper tail of the unit-scale gamma distribution, accurate
    where ``Q`` underflows float64: SciPy's ``gamma.logsf`` down to ``log Q = -700``, below it
    mpmath's arbitrary-precision regularized incomplete gamma (SciPy's returns -inf there)."""
    from scipy.stats import gamma

    log_q = float(gamma.logsf(x, shape))
    if log_q > -700.0:
        return log_q
    import mpmath

    return float(mpmath.log(mpmath.gammainc(shape, x, mpmath.inf, regularized=True)))


@dataclass(frozen=True)
class HSICGamma:
    """HSIC test, gamma approximation of the null distribution of ``n HSIC_b``
    (:func:`gamma_null_moments`; shape ``E^2 / Var``, scale ``n Var / E``). Above
    ``max_samples`` pairs, on a random subsample drawn with ``seed``."""

    max_samples: int = MAX_SAMPLES
    seed: int = 0
    widths: tuple[float, ...] = DEFAULT_WIDTHS

    def __post_init__(self) -> None:
        integer(self.max_samples, "max_samples", MIN_SAMPLES)
        integer(self.seed, "seed", 0)
        _widths(self.widths)

    def __call__(self, u: Any, v: Any) -> TestResult:
        us, vs = _pairs(u, v, self.max_samples, self.seed)
        n = us.size
        k, lg = gaussian_gram(us, self.widths), gaussian_gram(vs, self.widths)
        kc, lc = _centre(k), _centre(lg)
        statistic = _statistic(kc, lc)
        mean, var = gamma_null_moments(k, lg, kc, lc)
        if mean <= 0 or var <= 0:  # a constant sample: nothing to detect
            return TestResult(statistic, 1.0, 0.0, n)
        shape, scale = mean**2 / var, n * var / mean
        log_p = log_gamma_sf(statistic / scale, shape)
        return TestResult(statistic, float(np.exp(log_p)), log_p, n)


@dataclass(frozen=True)
class HSICPermutation:
    """HSIC test, permutation null: ``permutations`` random permutations of ``v``, drawn with
    ``seed`` (as is the subsample above ``max_samples`` pairs). Each permutation gathers an
    n x n matrix: at n = 3000 and 500 permutations, tens of seconds."""

    permutations: int = 500
    seed: int = 0
    max_samples: int = MAX_SAMPLES
    widths: tuple[float, ...] = DEFAULT_WIDTHS

    def __post_init__(self) -> None:
        _permutation_settings(self)

    def __call__(self, u: Any, v: Any) -> TestResult:
        us, vs = _pairs(u, v, self.max_samples, self.seed)
        n = us.size
        kc, lc = _centre(gaussian_gram(us, self.widths)), _centre(gaussian_gram(vs, self.widths))
        statistic = _statistic(kc, lc)
        rng = np.random.default_rng(self.seed)
        exceed = sum(_statistic(kc, lc[np.ix_(p, p)]) >= statistic
                     for p in (rng.permutation(n) for _ in range(self.permutations)))
        p_value = (1 + exceed) / (self.permutations + 1)
        return TestResult(statistic, p_value, float(np.log(p_value)), n)


def standardized_max(statistics: FloatArray, null: FloatArray) -> FloatArray:
    """Per row of ``statistics`` (shape ``(m, bandwidths)``), the maximum over bandwidths of
    ``(t - mean) / sd``, with each bandwidth's mean and sd taken over the rows of ``null`` (its
    statistics under independence); a bandwidth whose null sd is 0 contributes 0."""
    mean, sd = null.mean(axis=0), null.std(axis=0)
    z = np.divide(statistics - mean, sd, out=np.zeros_like(statistics), where=sd > 0)
    return np.asarray(z.max(axis=1), dtype=np.float64)


@dataclass(frozen=True)
class HSICMaxBandwidth:
    """HSIC over a grid of bandwidths, aggregated by the maximum (issue 19, round 4).

    For each multiplier ``w`` of ``widths``, the Gaussian kernels of bandwidth ``w s_u`` and
    ``w s_v`` (``s`` the median heuristic of each sample) give ``T_w = n HSIC_b``. Random
    permutations of ``v`` (drawn with ``seed``; each permutation serves every bandwidth) give
    permuted values of every ``T_w``: the first ``standardizing`` of them estimate each
    bandwidth's null mean and sd, ``Z_w = (T_w - mean) / sd``, and the statistic is
    ``max_w Z_w``; the next ``permutations`` calibrate it:
    ``p = (1 + #{permuted max >= observed max}) / (B + 1)``. The standardising permutations are
    separate from the calibrating ones, so the observed statistic and the calibrating ones are
    exchangeable under independence (an exact test), and ``Z`` is not capped (standardised by a
    reference set that contains it, it could not exceed ``sqrt(B)``). Above ``max_samples``
    pairs, on a random subsample drawn with ``seed``. Cost: ``B + standardizing`` gathers of
    ``len(widths)`` n x n matrices."""

    permutations: int = 200
    standardizing: int = 100
    seed: int = 0
    max_samples: int = MAX_SAMPLES
    widths: tuple[float, ...] = GRID_WIDTHS

    def __post_init__(self) -> None:
        _permutation_settings(self)
        integer(self.standardizing, "standardizing", 2)

    def reference(self, u: Any, v: Any) -> tuple[FloatArray, int]:
        """The ``(1 + standardizing + permutations, len(widths))`` statistics ``n HSIC_b``
        (row 0 observed, then one row per permutation of ``v``) and the pairs tested."""
        us, vs = _pairs(u, v, self.max_samples, self.seed)
        n = us.size
        kc = np.stack([_centre(gaussian_gram(us, (w,))) for w in self.widths])
        lc = np.stack([_centre(gaussian_gram(vs, (w,))) for w in self.widths])
        rng = np.random.default_rng(self.seed)
        rows = [np.einsum("bij,bij->b", kc, lc) / n]
        for _ in range(self.standardizing + self.permutations):
            p = rng.permutation(n)
            rows.append(np.einsum("bij,bij->b", kc, lc[:, p[:, None], p[None, :]]) / n)
        return np.asarray(rows, dtype=np.float64), n

    def __call__(self, u: Any, v: Any) -> TestResult:
        reference, n = self.reference(u, v)
        null, calibrating = reference[1:1 + self.standardizing], reference[1 + self.standardizing:]
        observed = float(standardized_max(reference[:1], null)[0])
        exceed = int(np.count_nonzero(standardized_max(calibrating, null) >= observed))
        p_value = (1 + exceed) / (self.permutations + 1)
        return TestResult(observed, p_value, float(np.log(p_value)), n)
