"""The layer-wise structured pruning problem, stated once.

.. math::

    \\min_{W, z}\\; \\tfrac12 \\|Y - XW\\|_F^2
        + \\lambda \\sum_g \\big[\\alpha \\|W_g\\|_F^2 + (1-\\alpha) z_g\\big]
    \\quad\\text{s.t.}\\quad |W_{ij}| \\le M z_g \\;(i \\in g),\\; z_g \\in \\{0,1\\},
    \\; \\textstyle\\sum_g z_g \\le k \\text{ (optional)}.

A group ``g`` is a set of rows of ``W`` (one input neuron or channel). Every formulation in
:mod:`proxcompress.formulations` takes a :class:`LayerPruningProblem` and returns a
:class:`~proxcompress.formulations.solution.Solution`. This is the big-M MIP of the SPR paper
(Cacciola, Frangioni, Li, Lodi, arXiv:2206.14056) applied to one linear layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from proxcompress.errors import InvalidInputError

FloatArray = NDArray[np.float64]

_REQUIRED_KEYS = ("X", "Y", "groups", "lam", "alpha", "M")
_OPTIONAL_KEYS = ("k",)


#: largest accepted Frobenius norm of ``X`` and ``Y``, and of ``M ||X||_F``: their squares (the
#: Gram matrix ``X^T X``, ``||Y||^2``, the residual of any ``|W| <= M``) stay finite in float64
MAX_NORM = 1e150


def _finite_array(name: str, value: Any, ndim: tuple[int, ...]) -> FloatArray:
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(name, f"must be a real array ({exc})") from None
    if raw.dtype.kind not in "biuf":
        raise InvalidInputError(
            name, f"has dtype {raw.dtype}; accepted: real numbers (bool, integer or float)"
        )
    arr = raw.astype(np.float64, copy=False)
    if arr.ndim not in ndim:
        raise InvalidInputError(name, f"has {arr.ndim} dimensions, accepted: {ndim}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(name, "contains NaN or infinite values; all entries must be finite")
    return arr


def _norm(arr: FloatArray) -> float:
    """Frobenius norm without overflow (scaled by the largest entry)."""
    scale = float(np.abs(arr).max(initial=0.0))
    if scale == 0.0:
        return 0.0
    return scale * float(np.linalg.norm(arr / scale))


def _finite_scalar(name: str, value: Any) -> float:
    if isinstance(value, str | bytes | list | tuple | dict | set):
        raise InvalidInputError(name, f"must be a real scalar, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = np.asarray(None)
    if arr.size != 1 or arr.dtype.kind not in "iuf":
        raise InvalidInputError(name, f"must be a real scalar, got {type(value).__name__}")
    out = float(arr.reshape(()))
    if not np.isfinite(out):
        raise InvalidInputError(name, f"= {out} is not finite")
    return out


@dataclass(frozen=True, eq=False)
class LayerPruningProblem:
    """One layer-wise structured pruning instance.

    Args:
        X: inputs, shape ``(n, d)``.
        Y: targets, shape ``(n, m)``; a 1-D ``Y`` means ``m = 1``.
        groups: ``d`` integer labels; label ``g`` in ``0..G-1`` names the group of feature ``i``
            (row ``i`` of ``W``). Every label in ``0..G-1`` must be used (no empty group).
        lam: regularization weight, ``lam >= 0``.
        alpha: trade-off in ``(0, 1)`` between the ridge term and the count of kept groups.
        M: big-M bound on ``|W_ij|``, ``M > 0``.
        k: optional cardinality budget, at most ``k`` groups kept, ``0 <= k``.

    Raises:
        InvalidInputError: naming the field, for shapes that do not match, NaN/inf, ``alpha``
            outside ``(0, 1)``, ``M <= 0``, ``lam < 0``, empty groups or a negative ``k``.
    """

    X: FloatArray
    Y: FloatArray
    groups: NDArray[np.int64]
    lam: float
    alpha: float
    M: float
    k: int | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        X = _finite_array("X", self.X, (2,))
        Y = _finite_array("Y", self.Y, (1, 2))
        if Y.ndim == 1:
            Y = Y[:, None]
        n, d = X.shape
        if n == 0 or d == 0:
            raise InvalidInputError(
                "X", f"has shape {X.shape}; needs n >= 1 rows and d >= 1 columns"
            )
        if Y.shape[0] != n:
            raise InvalidInputError(
                "Y", f"has {Y.shape[0]} rows but X has n = {n}; they must match"
            )
        if Y.shape[1] == 0:
            raise InvalidInputError("Y", "has m = 0 columns; needs m >= 1")
        for name, arr in (("X", X), ("Y", Y)):
            norm = _norm(arr)
            if norm > MAX_NORM:
                raise InvalidInputError(
                    name,
                    f"has Frobenius norm {norm:.3e}, outside the accepted range [0, "
                    f"{MAX_NORM:.0e}] ({name}^T {name} would overflow float64); rescale it",
                )
        groups_raw = np.asarray(self.groups)
        if groups_raw.dtype.kind not in "iuf":
            raise InvalidInputError(
                "groups", f"has dtype {groups_raw.dtype}; accepted: integer labels 0..G-1"
            )
        if groups_raw.ndim != 1 or groups_raw.shape[0] != d:
            raise InvalidInputError(
                "groups", f"has shape {groups_raw.shape}; needs one label per column of X, ({d},)"
            )
        if d and (groups_raw.min() < 0 or groups_raw.max() >= d):
            raise InvalidInputError(
                "groups",
                f"has label {groups_raw.min() if groups_raw.min() < 0 else groups_raw.max()}; "
                f"labels must lie in 0..G-1 with G <= d = {d} (every group non-empty)",
            )
        if groups_raw.dtype.kind not in "iu":
            if (
                groups_raw.dtype.kind == "f"
                and np.all(np.isfinite(groups_raw))
                and np.all(groups_raw == np.round(groups_raw))
            ):
                groups_raw = groups_raw.astype(np.int64)
            else:
                raise InvalidInputError("groups", "must hold integer labels 0..G-1")
        groups = groups_raw.astype(np.int64)
        n_groups = int(groups.max()) + 1
        counts = np.bincount(groups, minlength=n_groups)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            raise InvalidInputError(
                "groups",
                f"group(s) {empty.tolist()[:10]} are empty; labels must cover 0..{n_groups - 1}",
            )
        lam = _finite_scalar("lam", self.lam)
        if lam < 0:
            raise InvalidInputError("lam", f"= {lam} is negative; accepted range lam >= 0")
        alpha = _finite_scalar("alpha", self.alpha)
        if not 0.0 < alpha < 1.0:
            raise InvalidInputError("alpha", f"= {alpha} is outside the accepted range (0, 1)")
        M = _finite_scalar("M", self.M)
        if M <= 0:
            raise InvalidInputError("M", f"= {M} is not positive; accepted range M > 0")
        if M * max(_norm(X), 1.0) > MAX_NORM:
            raise InvalidInputError(
                "M",
                f"= {M:.3e}: M * max(||X||_F, 1) must be <= {MAX_NORM:.0e} (X W would overflow "
                "float64); accepted range 0 < M <= "
                f"{MAX_NORM / max(_norm(X), 1.0):.3e}",
            )
        if lam > MAX_NORM:
            raise InvalidInputError("lam", f"= {lam:.3e} is outside the accepted range "
                                    f"[0, {MAX_NORM:.0e}]")
        k = self.k
        if k is not None:
            k_float = _finite_scalar("k", k)
            if k_float != round(k_float):
                raise InvalidInputError("k", f"= {k} must be an integer >= 0 (or absent)")
            if k_float < 0:
                raise InvalidInputError(
                    "k",
                    f"= {k} makes the instance infeasible (at most k groups kept); "
                    "accepted: integer k >= 0, or absent",
                )
            k = int(k_float)
        object.__setattr__(self, "X", np.ascontiguousarray(X))
        object.__setattr__(self, "Y", np.ascontiguousarray(Y))
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "lam", lam)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "M", M)
        object.__setattr__(self, "k", k)

    # ----------------------------------------------------------------- sizes
    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        """Number of input features (rows of ``W``)."""
        return int(self.X.shape[1])

    @property
    def m(self) -> int:
        """Number of outputs (columns of ``W``)."""
        return int(self.Y.shape[1])

    @cached_property
    def n_groups(self) -> int:
        """Number of groups ``G``."""
        return int(self.groups.max()) + 1

    @cached_property
    def group_rows(self) -> tuple[NDArray[np.int64], ...]:
        """Row indices of ``W`` for each group, in label order."""
        return tuple(np.flatnonzero(self.groups == g) for g in range(self.n_groups))

    @property
    def budget(self) -> int:
        """The effective cardinality budget: ``k`` or ``G`` when absent."""
        return self.n_groups if self.k is None else min(self.k, self.n_groups)

    # ------------------------------------------------------------- evaluation
    def support_of(self, W: FloatArray, tol: float = 0.0) -> tuple[int, ...]:
        """Sorted ids of the groups with a non-zero block ``W_g`` (``max |W_g| > tol``)."""
        W = np.asarray(W, dtype=np.float64).reshape(self.d, self.m)
        return tuple(g for g, rows in enumerate(self.group_rows) if np.abs(W[rows]).max() > tol)

    def objective(self, W: FloatArray, support: tuple[int, ...] | None = None) -> float:
        """MIP objective at ``W`` with ``z_g = 1`` exactly for ``g`` in ``support``.

        ``support`` defaults to the groups where ``W_g`` is non-zero (the cheapest ``z`` for ``W``).

        Raises:
            InvalidInputError: if ``W`` has the wrong shape or breaks ``|W_ij| <= M z_g``.
        """
        W = np.asarray(W, dtype=np.float64)
        if W.size != self.d * self.m:
            raise InvalidInputError("W", f"has {W.size} entries; expected d*m = {self.d * self.m}")
        W = W.reshape(self.d, self.m)
        if support is None:
            support = self.support_of(W)
        kept = np.zeros(self.n_groups, dtype=bool)
        kept[list(support)] = True
        row_kept = kept[self.groups]
        if np.any(W[~row_kept] != 0.0):
            raise InvalidInputError("W", "is non-zero on a group outside the support (z_g = 0)")
        if np.abs(W).max(initial=0.0) > self.M * (1 + 1e-7):
            raise InvalidInputError("W", f"breaks the big-M bound |W_ij| <= M = {self.M}")
        resid = self.Y - self.X @ W
        return float(
            0.5 * np.sum(resid**2)
            + self.lam * (self.alpha * np.sum(W**2) + (1.0 - self.alpha) * kept.sum())
        )

    # ---------------------------------------------------------------------- io
    @classmethod
    def from_npz(
        cls, path: str | os.PathLike[str], field: str = "instance"
    ) -> LayerPruningProblem:
        """Load an instance from ``.npz`` with arrays ``X``, ``Y``, ``groups``, scalars ``lam``,
        ``alpha``, ``M`` and optional ``k``, read with :func:`proxcompress.readers.read_npz`
        (never unpickled; real dtypes only).

        Raises:
            InvalidInputError: naming ``field`` for a missing, unreadable or damaged file, else
                the key: a missing or unknown key, or invalid values.
        """
        from proxcompress.readers import read_npz

        arrays: dict[str, Any] = read_npz(field, path)
        missing = [key for key in _REQUIRED_KEYS if key not in arrays]
        if missing:
            raise InvalidInputError(
                missing[0],
                f"missing from {os.fspath(path)!r}; required keys: {', '.join(_REQUIRED_KEYS)}",
            )
        unknown = sorted(set(arrays) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS))
        if unknown:
            accepted = ", ".join(_REQUIRED_KEYS + _OPTIONAL_KEYS)
            raise InvalidInputError(
                unknown[0], f"unknown key in {os.fspath(path)!r}; accepted: {accepted}"
            )
        k = arrays.get("k")
        return cls(
            X=arrays["X"],
            Y=arrays["Y"],
            groups=arrays["groups"],
            lam=arrays["lam"],
            alpha=arrays["alpha"],
            M=arrays["M"],
            k=None if k is None else k,
        )

    def to_npz(self, path: str | os.PathLike[str]) -> None:
        """Save the instance as ``.npz`` (atomically), readable by :meth:`from_npz`."""
        from proxcompress.atomic import write_atomic

        arrays: dict[str, Any] = dict(
            X=self.X, Y=self.Y, groups=self.groups, lam=self.lam, alpha=self.alpha, M=self.M
        )
        if self.k is not None:
            arrays["k"] = self.k

        def _write(tmp: Any) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

        write_atomic(path, _write)
