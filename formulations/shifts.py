"""Diagonal shifts for the perspective relaxation (Frangioni and Gentile, *SDP diagonalizations
and perspective cuts for a class of nonseparable MIQP*, Oper. Res. Lett. 35, 2007).

For any diagonal ``D = Diag(delta) >= 0`` with ``X^T X - D`` positive semi-definite,

.. math::

    \\tfrac12\\|Y - XW\\|^2 = \\tfrac12 \\langle W, (X^T X - D) W\\rangle
        - \\langle X^T Y, W\\rangle + \\tfrac12\\|Y\\|^2
        + \\textstyle\\sum_i \\tfrac{\\delta_i}{2}\\|W_i\\|^2 ,

so ``delta_i / 2 ||W_i||^2`` can move from the loss into feature ``i``'s ridge term, whose
perspective (divided by ``z_g``) is then tighter: the relaxation's bound only grows. Which
``delta`` is best depends on the data; this module offers a registry of safe choices
(:data:`SHIFTS`), each returning per-feature ``delta``:

- ``scalar``: ``delta_i = share * L``, ``L`` a safe lower bound on ``lambda_min(X^T X)``;
- ``jacobi``: ``delta_i = share * L_c * (X^T X)_ii``, ``L_c`` a safe lower bound on the smallest
  eigenvalue of the correlation matrix ``S^{-1/2} X^T X S^{-1/2}`` (``S`` its diagonal). When the
  features have different scales (channels of a layer) this moves far more than the scalar
  shift, which the smallest-variance feature limits;
- ``sdp``: a feature-weighted SDP shift (:func:`sdp_shift`), ``max sum_i w_i delta_i`` subject
  to ``X^T X - Diag(delta) >= 0``, solved by a low-rank (mixing) method on its dual and made
  feasible by a final eigenvalue correction.

"Safe" means each is *certified* (:func:`factor_shifted`): smallest eigenvalues are lowered by
``16 d eps lambda_max`` (the backward error of the symmetric eigensolver and of forming the Gram
matrix), ``X^T X - D`` must keep a Jacobi-scaled smallest eigenvalue of at least
:data:`MIN_MARGIN` and its Cholesky factorisation must succeed (else the shift is halved, three
times, then dropped). A singular Gram matrix (centred data with ``p >= n``, duplicate or zero
columns) gets no shift.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import LinAlgError, cho_factor

from proxcompress.numba_cache import njit

FloatArray = NDArray[np.float64]


def safe_lambda_min(matrix: FloatArray) -> float:
    """A lower bound on the smallest eigenvalue of the symmetric ``matrix`` that holds despite
    round-off: the computed value minus ``16 d eps lambda_max``."""
    if not np.all(np.isfinite(matrix)):
        return -np.inf
    try:
        eig = np.linalg.eigvalsh(matrix)
    except np.linalg.LinAlgError:
        return -np.inf
    d = matrix.shape[0]
    return float(eig[0]) - 16.0 * d * np.finfo(float).eps * max(float(eig[-1]), 0.0)


class Shift(NamedTuple):
    """A per-feature shift and, when known, a certified lower bound on the Jacobi-scaled
    smallest eigenvalue of ``X^T X - Diag(delta)`` (so :func:`factor_shifted` can skip its own
    eigendecomposition)."""

    delta: FloatArray
    margin: float | None = None


def scalar_shift(gram: FloatArray, share: float) -> Shift:
    """``share * max(0, L)`` for every feature, ``L`` from :func:`safe_lambda_min`; the shifted
    matrix keeps ``lambda_min >= (1 - share) L``, so its Jacobi-scaled smallest eigenvalue is at
    least ``(1 - share) L / max_i (X^T X)_ii``."""
    low = max(0.0, safe_lambda_min(gram))
    top = float(np.max(np.diag(gram), initial=0.0))
    margin = (1.0 - share) * low / top if top > 0 and low > 0 else None
    return Shift(np.full(gram.shape[0], share * low), margin)


def jacobi_shift(gram: FloatArray, share: float) -> Shift:
    """``share * L_c * diag(gram)`` with ``L_c`` the safe smallest eigenvalue of the correlation
    matrix (a zero column makes the Gram matrix singular: no shift); the shifted matrix's
    Jacobi-scaled smallest eigenvalue is at least ``(1 - share) L_c``."""
    diag = np.diag(gram).copy()
    delta = np.zeros(gram.shape[0])
    if not np.all(diag > 0):
        return Shift(delta)
    scale = 1.0 / np.sqrt(diag)
    low = safe_lambda_min(gram * scale[:, None] * scale[None, :])
    if low <= 0:
        return Shift(delta)
    return Shift(share * low * diag, (1.0 - share) * low)


@njit(cache=True)
def _mixing_sweeps(H: FloatArray, V: FloatArray, w: FloatArray, sweeps: int) -> FloatArray:
    d, r = V.shape
    HV = H @ V
    for _ in range(sweeps):
        for i in range(d):
            norm = 0.0
            g = np.empty(r)
            for c in range(r):
                g[c] = HV[i, c] - H[i, i] * V[i, c]
                norm += g[c] * g[c]
            norm = np.sqrt(norm)
            if norm <= 0.0:
                continue
            root_w = np.sqrt(w[i])
            for c in range(r):
                step = -root_w * g[c] / norm - V[i, c]
                if step != 0.0:
                    for k in range(d):
                        HV[k, c] += H[k, i] * step
                    V[i, c] += step
    out = np.empty(d)
    for i in range(d):
        total = 0.0
        for c in range(r):
            total += HV[i, c] * V[i, c]
        out[i] = total / w[i]
    return out


def _mixing(H: FloatArray, w: FloatArray, rank: int | None, sweeps: int, seed: int) -> FloatArray:
    """``delta`` near ``argmax w^T delta`` s.t. ``H - Diag(delta) >= 0`` (all ``w > 0``): the
    dual ``min <H, S>``, ``diag(S) = w``, ``S = V V^T``, by mixing sweeps; ``delta`` from
    complementary slackness ``(H - Diag(delta)) V = 0``."""
    d = H.shape[0]
    r = rank if rank is not None else int(min(d, np.ceil(np.sqrt(2 * d)) + 1))
    rng = np.random.default_rng(seed)
    V = rng.standard_normal((d, r))
    V *= (np.sqrt(w) / np.maximum(np.linalg.norm(V, axis=1), 1e-300))[:, None]
    return np.asarray(_mixing_sweeps(np.ascontiguousarray(H), V, w, sweeps))


def sdp_shift(
    gram: FloatArray, share: float, weights: FloatArray | None = None, rank: int | None = None,
    sweeps: int = 200, seed: int = 0,
) -> Shift:
    """A weighted SDP diagonal shift: ``delta`` near ``argmax sum_i w_i delta_i`` subject to
    ``gram - Diag(delta) >= 0``, ``delta >= 0`` (``w = diag(gram)`` by default: the
    Jacobi-scaled trace).

    Features with ``w_i = 0`` get ``delta_i = 0`` (the most permissive choice), and so do those
    the SDP would shift negatively (an active set on ``delta >= 0``, re-solved); on the others,
    the constraint is the Schur complement ``H = G_PP - G_PN G_NN^+ G_NP >= Diag(delta_P)``, and
    the dual ``min <H, S>``, ``diag(S) = w_P``, ``S = V V^T`` is solved by block-coordinate
    (mixing) sweeps, ``v_i = -sqrt(w_i) g_i / ||g_i||``, ``g_i = sum_{j != i} H_ij v_j`` (Wang,
    Chang, Kolter, *The mixing method*, 2017); complementary slackness ``(H - Diag(delta)) V = 0``
    gives ``delta_i = <(H V)_i, v_i> / w_i``. That ``delta`` is made feasible by subtracting the
    safe smallest eigenvalue of the Jacobi-scaled ``gram - Diag(delta)`` if negative, and
    scaled by ``share``. Any returned ``delta`` is certified by :func:`factor_shifted`, so the
    accuracy of the approximate SDP solve never affects validity.
    """
    d = gram.shape[0]
    diag = np.diag(gram)
    if np.any(diag <= 0) or not np.all(np.isfinite(gram)):
        return Shift(np.zeros(d))
    w = diag.copy() if weights is None else np.maximum(np.asarray(weights, dtype=float), 0.0)
    live = w > 0
    delta = np.zeros(d)
    for _ in range(8):  # active set on delta >= 0: features the SDP wants negative get 0
        if not np.any(live):
            return Shift(np.zeros(d))
        H = gram[np.ix_(live, live)]
        if not np.all(live):
            rest = ~live
            H = H - gram[np.ix_(live, rest)] @ np.linalg.pinv(gram[np.ix_(rest, rest)]) @ gram[
                np.ix_(rest, live)]
            H = 0.5 * (H + H.T)
        delta = np.zeros(d)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            delta[live] = _mixing(H, w[live], rank, sweeps, seed)
        if not np.all(np.isfinite(delta)):
            return Shift(np.zeros(d))
        negative = live & (delta < 0)
        if not np.any(negative):
            break
        live &= ~negative
    delta = np.maximum(delta, 0.0)
    # feasibility: gram - Diag(delta) + t S >= 0 with S = Diag(diag) (Jacobi-scaled correction)
    scale = 1.0 / np.sqrt(diag)
    low = safe_lambda_min((gram - np.diag(delta)) * scale[:, None] * scale[None, :])
    if low < 0:
        delta = np.maximum(delta + low * diag, 0.0)
    return Shift(share * delta)


#: The shift kinds: name -> function ``(gram, share) -> Shift``.
SHIFTS: dict[str, Callable[[FloatArray, float], Shift]] = {
    "scalar": scalar_shift,
    "jacobi": jacobi_shift,
    "sdp": sdp_shift,
}


#: The shifted Gram matrix must keep a Jacobi-scaled smallest eigenvalue of at least this
#: (certified), so that ``C = A^{-T} X^T Y`` stays accurate: a shift that would leave it (nearly)
#: singular is halved or dropped. A singular ``X^T X`` therefore never gets a shift, whatever
#: the kind.
MIN_MARGIN = 1e-6


def _scaled_margin(matrix: FloatArray) -> float:
    diag = np.diag(matrix)
    if np.any(~np.isfinite(diag)) or np.any(diag <= 0):
        return -np.inf
    scale = 1.0 / np.sqrt(diag)
    return safe_lambda_min(matrix * scale[:, None] * scale[None, :])


def factor_shifted(
    gram: FloatArray, delta: FloatArray, margin: float | None = None
) -> tuple[FloatArray, FloatArray | None]:
    """``(delta, U)`` with ``U`` upper triangular, ``U^T U = gram - Diag(delta)``, certified:
    the shifted matrix keeps a Jacobi-scaled smallest eigenvalue of at least
    :data:`MIN_MARGIN` (checked here unless ``margin``, a certified lower bound on it, already
    says so) and factorises. Otherwise ``delta`` is halved (three times) and finally dropped
    (``delta = 0``, ``U = None``)."""
    delta = np.asarray(delta, dtype=float)
    if not np.all(np.isfinite(delta)):
        delta = np.zeros_like(delta)
    delta = np.maximum(delta, 0.0)
    for _ in range(4):
        if not np.any(delta > 0):
            break
        shifted = gram - np.diag(delta)
        known = margin is not None and margin >= MIN_MARGIN
        if not known and _scaled_margin(shifted) < MIN_MARGIN:
            delta, margin = 0.5 * delta, None
            continue
        try:
            factor, _ = cho_factor(shifted, lower=False, check_finite=False)
        except LinAlgError:
            delta, margin = 0.5 * delta, None
            continue
        upper = np.triu(factor)
        if np.all(np.isfinite(upper)) and np.all(np.diag(upper) > 0):
            return delta, upper
        delta, margin = 0.5 * delta, None
    return np.zeros_like(delta), None
