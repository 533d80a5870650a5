"""Random pruning instances for tests and benchmarks (seeded, reproducible)."""

from __future__ import annotations

import numpy as np

from proxcompress.checks import MAX_SEED, integer, real
from proxcompress.errors import InvalidInputError
from proxcompress.formulations.problem import LayerPruningProblem

#: most entries of any array :func:`random_instance` makes (``n*d``, ``n*m``, ``d*m``): 2**25,
#: 256 MiB of float64
MAX_ENTRIES = 2**25


def random_instance(
    n: int,
    d: int,
    m: int,
    n_groups: int,
    seed: int,
    *,
    rho: float = 0.0,
    active: float = 0.3,
    snr: float = 4.0,
    weights: str = "equal",
    alpha: float = 0.2,
    lam: float | None = None,
    M: float | None = None,
    k: int | None = None,
) -> LayerPruningProblem:
    """A planted structured-sparse regression instance.

    Features are Gaussian with AR(1) correlation ``corr(x_i, x_j) = rho^|i-j|`` (``rho = 0`` gives
    independent features); ``d`` features are split into ``n_groups`` contiguous groups of
    near-equal size; a fraction ``active`` of the groups carries non-zero weights, and Gaussian
    noise is added so that ``var(XW*) / var(noise) = snr`` (a small ``snr`` is a weak signal).

    ``weights="equal"`` gives the active entries random signs and magnitude 1, the design of the
    best-subset literature (Bertsimas, King, Mazumder 2016; Hazimeh, Mazumder, Saab 2022);
    ``weights="gaussian"`` draws them ``N(0, 1)``, which plants many near-zero groups and makes
    the MIP much harder (see docs/benchmarks.md).

    Defaults for the MIP parameters: ``M = 1.5 max|W_ridge|`` where ``W_ridge`` is the least-squares
    fit with a tiny ridge (so the bound never cuts the unpruned solution), and ``lam`` such that
    the price of keeping a group, ``lam (1 - alpha)``, is the BIC price
    ``sigma^2 log(n) / 2`` per weight of the group.

    Raises:
        InvalidInputError: naming the bad argument, before any work: sizes below 1 or making
            an array of more than :data:`MAX_ENTRIES` entries, a seed outside
            ``[0, 2**32 - 1]``, ``rho`` outside ``(-1, 1)``, ``alpha`` outside ``(0, 1)``, a
            non-positive or non-finite ``snr``, ...
    """
    n = integer("n", n, 1, MAX_ENTRIES)
    n_groups = integer("n_groups", n_groups, 1, MAX_ENTRIES)
    d = integer("d", d, 1, MAX_ENTRIES)
    m = integer("m", m, 1, MAX_ENTRIES)
    seed = integer("seed", seed, 0, MAX_SEED)
    if n_groups > d:
        raise InvalidInputError("n_groups", f"= {n_groups} exceeds d = {d}; each group needs a row")
    for name, size in (("n", n * d), ("m", n * m), ("d", d * m)):
        if size > MAX_ENTRIES:
            raise InvalidInputError(
                name, f"makes an array of {size} entries (n = {n}, d = {d}, m = {m}); accepted: "
                f"n*d, n*m and d*m at most {MAX_ENTRIES}"
            )
    real("rho", rho, -1.0, 1.0, low_open=True, high_open=True)
    real("active", active, 0.0, 1.0)
    real("snr", snr, 0.0, None, low_open=True)
    real("alpha", alpha, 0.0, 1.0, low_open=True, high_open=True)
    if lam is not None:
        real("lam", lam, 0.0, None)
    if M is not None:
        real("M", M, 0.0, None, low_open=True)
    if k is not None:
        integer("k", k, 0, None)
    if weights not in ("equal", "gaussian"):
        raise InvalidInputError("weights", f"= {weights!r}; accepted: 'equal', 'gaussian'")
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, d))
    X = np.empty((n, d))
    X[:, 0] = Z[:, 0]
    scale = np.sqrt(1.0 - rho**2)
    for j in range(1, d):
        X[:, j] = rho * X[:, j - 1] + scale * Z[:, j]
    groups = np.repeat(
        np.arange(n_groups), np.diff(np.linspace(0, d, n_groups + 1).round().astype(int))
    )
    n_active = max(1, round(active * n_groups)) if active > 0 else 0
    live = rng.choice(n_groups, size=n_active, replace=False)
    W_true = np.zeros((d, m))
    rows = np.isin(groups, live)
    shape = (int(rows.sum()), m)
    if weights == "equal":
        W_true[rows] = rng.choice([-1.0, 1.0], size=shape)
    else:
        W_true[rows] = rng.standard_normal(shape)
    signal = X @ W_true
    sigma = float(np.sqrt(max(signal.var(), 1e-12) / snr)) if n_active else 1.0
    Y = signal + sigma * rng.standard_normal((n, m))
    if M is None:
        W_fit = np.linalg.solve(X.T @ X + 1e-6 * n * np.eye(d), X.T @ Y)
        M = 1.5 * float(np.abs(W_fit).max())
    if lam is None:
        rows_per_group = d / n_groups
        lam = 0.5 * sigma**2 * np.log(n) * rows_per_group * m / (1.0 - alpha)
    return LayerPruningProblem(X=X, Y=Y, groups=groups, lam=lam, alpha=alpha, M=M, k=k)


def sparse_regression_instance(
    n: int,
    p: int,
    seed: int,
    *,
    planted: int = 10,
    snr: float = 10.0,
    rho: float = 0.0,
    lam: float = 0.02,
    alpha: float = 0.5,
    M: float = 1.0,
    k: int | None = None,
) -> LayerPruningProblem:
    """The normalised sparse-regression design (one feature per group) of the best-subset
    literature (L0BnB: Hazimeh, Mazumder, Saab 2022) and of issues 13-14.

    Standard normal features, equicorrelated with ``rho`` (``x_j = sqrt(1 - rho) z_j +
    sqrt(rho) z_0``), each centred and scaled to unit norm (a column that centring makes zero
    stays zero); ``y = X w + e`` with ``planted`` weights of random sign and magnitude 1 and
    Gaussian noise at ``var(Xw) / var(e) = snr``, centred and scaled to unit norm. So
    ``X^T X`` has unit diagonal and is singular whenever ``p >= n`` (centring removes one
    dimension). ``lam``, ``alpha`` and ``M`` are given, not derived.

    Raises:
        InvalidInputError: naming the bad argument.
    """
    for name, value, low in (("n", n, 1), ("p", p, 1), ("planted", planted, 0)):
        if int(value) != value or value < low:
            raise InvalidInputError(name, f"= {value} must be an integer >= {low}")
    if planted > p:
        raise InvalidInputError("planted", f"= {planted} exceeds p = {p}")
    if not 0.0 <= rho < 1.0:
        raise InvalidInputError("rho", f"= {rho} is outside the accepted range [0, 1)")
    if not snr > 0:
        raise InvalidInputError("snr", f"= {snr} must be > 0")
    rng = np.random.default_rng(seed)
    X = np.sqrt(1.0 - rho) * rng.standard_normal((n, p))
    if rho > 0:
        X += np.sqrt(rho) * rng.standard_normal((n, 1))
    X -= X.mean(axis=0)
    norms = np.linalg.norm(X, axis=0)
    X /= np.where(norms > 0, norms, 1.0)
    w = np.zeros(p)
    live = rng.choice(p, size=planted, replace=False)
    w[live] = rng.choice([-1.0, 1.0], size=planted)
    signal = X @ w
    noise = rng.standard_normal(n)
    noise -= noise.mean()
    if planted and signal.var() > 0 and noise.var() > 0:
        noise *= np.sqrt(signal.var() / snr / noise.var())
    y = signal + noise
    y -= y.mean()
    norm = float(np.linalg.norm(y))
    if norm > 0:
        y /= norm
    return LayerPruningProblem(X=X, Y=y, groups=np.arange(p), lam=lam, alpha=alpha, M=M, k=k)
