"""Tensor-train (TT) decomposition: mode factorization, rank resolution and TT-SVD.

A tensor ``T`` of order ``d`` with modes ``D_1, ..., D_d`` is a tensor train with cores
``G_k`` of shape ``(r_{k-1}, D_k, r_k)``, ``r_0 = r_d = 1``, when

    T[i_1, ..., i_d] = G_1[:, i_1, :] G_2[:, i_2, :] ... G_d[:, i_d, :]

(Oseledets, "Tensor-train decomposition", SIAM J. Sci. Comput. 33(5), 2011; the same object is
a matrix product state in physics). The ``k``-th bond's rank is at most the rank of the
unfolding ``T_{<=k}`` of shape ``(D_1 ... D_k, D_{k+1} ... D_d)``, so at most
``min(D_1 ... D_k, D_{k+1} ... D_d)``: with those ranks the train is exact. TT-SVD (Oseledets,
algorithm 1) sweeps left to right, keeping the leading ``r_k`` singular vectors of each
unfolding; its error obeys ``||T - TT||_F^2 <= sum_k eps_k^2``, ``eps_k`` the discarded
singular values' norm at bond ``k`` (Oseledets, theorem 2.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

import torch
from torch import Tensor

from proxcompress.errors import InvalidInputError


def _check_positive_int(name: str, value: object, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(name, f"= {value!r}; accepted: an integer >= {low}")
    return value


@cache
def _factorizations(n: int, parts: int, smallest: int) -> tuple[tuple[int, ...], ...]:
    """Every non-decreasing tuple of ``parts`` integers >= ``smallest`` whose product is ``n``
    (the factor 1 allowed only when ``smallest`` is 1)."""
    if parts == 1:
        return ((n,),) if n >= smallest else ()
    out: list[tuple[int, ...]] = []
    f = smallest
    while f ** parts <= n:
        if n % f == 0:
            out.extend((f, *rest) for rest in _factorizations(n // f, parts - 1, f))
        f += 1
    return tuple(out)


def factor_modes(n: int, d: int) -> tuple[int, ...]:
    """``d`` integers whose product is ``n``, as near-equal as possible, in non-increasing order.

    "Near-equal" means: the largest factor is as small as possible, then the sum of the factors
    (so a prime ``n`` gives ``(n, 1, ..., 1)`` and ``4096 = 16 * 16 * 16``,
    ``1000 = 10 * 10 * 10``, ``96 = 6 * 4 * 4``). Exhaustive over the multiplicative partitions
    of ``n`` (fast for the layer sizes of a network).

    Raises:
        InvalidInputError: ``n`` or ``d`` not a positive integer.
    """
    _check_positive_int("n", n)
    _check_positive_int("d", d)
    if n > 2**31:
        raise InvalidInputError("n", f"= {n}; accepted: at most 2**31")
    best = min(_factorizations(n, d, 1), key=lambda t: (max(t), sum(t), t))
    return tuple(sorted(best, reverse=True))


def full_ranks(dims: Sequence[int]) -> tuple[int, ...]:
    """The largest useful rank of each of the ``d - 1`` bonds of a train with modes ``dims``:
    ``min(D_1 ... D_k, D_{k+1} ... D_d)`` (the rank of the unfolding)."""
    total = math.prod(dims)
    out = []
    left = 1
    for dk in dims[:-1]:
        left *= dk
        out.append(min(left, total // left))
    return tuple(out)


def resolve_ranks(ranks: int | Sequence[int], dims: Sequence[int],
                  name: str = "ranks") -> tuple[int, ...]:
    """The ``d - 1`` bond ranks of a train with modes ``dims`` from ``ranks``.

    ``ranks`` is one integer for every bond or one integer per bond (``>= 1``). Each is capped at
    its bond's full rank (:func:`full_ranks`) and at what its neighbours can carry
    (``r_k <= r_{k-1} D_k`` and ``r_k <= D_{k+1} r_{k+1}``): a larger rank adds parameters but
    never expressiveness. At or above the full ranks the train represents every tensor exactly.

    Raises:
        InvalidInputError (field ``name``): not an integer >= 1 or a list of ``d - 1`` of them.
    """
    bonds = len(dims) - 1
    if isinstance(ranks, int) and not isinstance(ranks, bool):
        _check_positive_int(name, ranks)
        wanted = [ranks] * bonds
    else:
        try:
            wanted = list(ranks)  # type: ignore[arg-type]
        except TypeError:
            raise InvalidInputError(name, f"= {ranks!r}; accepted: an integer >= 1 or a list of "
                                    f"{bonds} of them (one per bond)") from None
        if len(wanted) != bonds:
            raise InvalidInputError(name, f"has {len(wanted)} values; accepted: {bonds} (one per "
                                    f"bond of the {len(dims)} cores)")
        for i, r in enumerate(wanted):
            _check_positive_int(f"{name}[{i}]", r)
    caps = full_ranks(dims)
    out = [min(r, c) for r, c in zip(wanted, caps, strict=True)]
    prev = 1
    for k in range(bonds):  # r_k <= r_{k-1} D_k
        out[k] = min(out[k], prev * dims[k])
        prev = out[k]
    nxt = 1
    for k in reversed(range(bonds)):  # r_k <= D_{k+1} r_{k+1}
        out[k] = min(out[k], dims[k + 1] * nxt)
        nxt = out[k]
    return tuple(out)


def tt_svd(tensor: Tensor, ranks: int | Sequence[int]) -> list[Tensor]:
    """TT-SVD (Oseledets 2011, algorithm 1): cores ``(r_{k-1}, D_k, r_k)`` of ``tensor``.

    ``ranks`` as in :func:`resolve_ranks` (at the full ranks the train is exact up to round-off).
    A rank-deficient unfolding still yields exactly the resolved ranks (the extra singular
    vectors carry zero singular values), so the cores' shapes depend only on ``tensor.shape`` and
    ``ranks``. The singular values are kept in the right factor (left-orthogonal cores
    ``G_1 ... G_{d-1}``). Computed in float64, returned in ``tensor``'s dtype.
    """
    dims = tuple(int(s) for s in tensor.shape)
    if not dims or min(dims) < 1:
        raise InvalidInputError("tensor", f"shape {dims}: need at least one mode, all >= 1")
    if not bool(torch.isfinite(tensor).all()):
        raise InvalidInputError("tensor", "holds NaN or infinite values")
    r = resolve_ranks(ranks, dims)
    work = tensor.detach().to(torch.float64).reshape(1, -1)
    cores: list[Tensor] = []
    prev = 1
    for k, dk in enumerate(dims[:-1]):
        mat = work.reshape(prev * dk, -1)
        u, s, vh = torch.linalg.svd(mat, full_matrices=False)
        rk = r[k]
        cores.append(u[:, :rk].reshape(prev, dk, rk))
        work = s[:rk, None] * vh[:rk]
        prev = rk
    cores.append(work.reshape(prev, dims[-1], 1))
    return [c.to(tensor.dtype).contiguous() for c in cores]


def tt_full(cores: Sequence[Tensor]) -> Tensor:
    """The tensor ``(D_1, ..., D_d)`` of a train (reference contraction, left to right)."""
    out = cores[0].reshape(cores[0].shape[1], -1)  # (D_1, r_1)
    dims = [int(cores[0].shape[1])]
    for core in cores[1:]:
        r0, dk, r1 = core.shape
        out = out @ core.reshape(r0, dk * r1)
        out = out.reshape(-1, r1)
        dims.append(int(dk))
    return out.reshape(dims)


__all__ = ["factor_modes", "full_ranks", "resolve_ranks", "tt_full", "tt_svd"]
