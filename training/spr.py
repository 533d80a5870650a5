"""The Structured Perspective Regularizer (SPR) in torch, ``M`` from a pre-trained model, and the
threshold search that turns an SPR-trained network into a structurally pruned one.

Cacciola, Frangioni, Li, Lodi, *Deep Neural Networks Pruning via the Structured Perspective
Regularization*, arXiv:2206.14056 (SIAM J. Math. Data Sci.); public code
``MCacciola94/Pruning_prj`` (``perspReg.py``, ``trainer.py``, ``quik_pruning.py``).

For a group ``W_j`` (output channel ``j`` of a layer with its BatchNorm ``gamma_j``, ``beta_j``)
with ``r = ||W_j||_2``, ``t = ||W_j||_inf`` and ``c = sqrt(alpha / (1 - alpha))``,

.. math::

    z(W_j) = \\min_{y \\in [t/M, 1]} \\frac{\\alpha r^2}{y} + (1-\\alpha) y
    = \\begin{cases}
      \\alpha r^2 + (1-\\alpha) & \\max(t/M, c r) \\ge 1 \\\\
      2\\sqrt{\\alpha(1-\\alpha)}\\, r & t/M \\le c r \\\\
      \\alpha M r^2 / t + (1-\\alpha) t / M & \\text{else}
    \\end{cases}

(:func:`spr_z`, equal to :func:`proxcompress.formulations.spr.spr_value`, tested), and the loss
term is ``Reg = lambda sum_j z(W_j) |W_j| / sum_j |W_j|`` (``|W_j|`` the group size; the code's
normalization by the parameter count). Unlike the closed form of ``formulations``, a group
with ``t > M`` (possible while training from scratch) is not an error: it falls in case 1, as in
the paper's code.

Choices [U] (methods.md section 7), each pluggable: the group (with BatchNorm, default, or
without: ``with_norm``), ``M = M_scale * max |W|`` of the unit in a pre-trained copy, blockwise
(max over conv weight, BN gamma, BN beta; default) or layerwise (conv weight only),
``M_scale = 1``, and the two bisections (10 iterations; unstructured threshold on ``[0, 0.1]``,
structured on the surviving fraction ``[0, 1]``; accuracy-drop tolerance in percentage points).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from proxcompress.errors import InvalidInputError
from proxcompress.training.models import ChannelUnit
from proxcompress.training.pruning import group_tensors, mask_channels

MRule = Literal["blockwise", "layerwise"]


def spr_z(r: Tensor, t: Tensor, alpha: float, M: float | Tensor) -> Tensor:
    """The SPR closed form ``z`` per group from ``r = ||W_j||_2`` and ``t = ||W_j||_inf``
    (module docstring; the case tests in the order of :mod:`proxcompress.formulations.spr`)."""
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError("spr.alpha", f"= {alpha} is outside the accepted range (0, 1)")
    c = math.sqrt(alpha / (1.0 - alpha))
    lo = t / M
    case1 = torch.maximum(lo, c * r) >= 1.0
    case2 = ~case1 & (lo <= c * r)
    case3 = ~case1 & ~case2
    z1 = alpha * r * r + (1.0 - alpha)
    z2 = 2.0 * math.sqrt(alpha * (1.0 - alpha)) * r
    safe_t = torch.where(case3, t, torch.ones_like(t))
    z3 = alpha * M * r * r / safe_t + (1.0 - alpha) * t / M
    return torch.where(case1, z1, torch.where(case2, z2, z3))


def _norms(parts: list[Tensor]) -> tuple[Tensor, Tensor, int]:
    flat = torch.cat(parts, dim=1)
    # ||.||_2 with a zero-safe gradient: sqrt(sum w^2 + tiny) - sqrt(tiny) keeps d/dw finite at 0
    sq = (flat * flat).sum(dim=1)
    r = torch.where(sq > 0, torch.sqrt(torch.clamp(sq, min=1e-30)), torch.zeros_like(sq))
    t = flat.abs().amax(dim=1)
    return r, t, flat.shape[1]


@dataclass
class SPRRegularizer:
    """``lambda sum_j z(W_j) |W_j| / sum_j |W_j|`` over the groups of ``units``.

    Attributes:
        units: the channel units to regularize.
        M: big-M bound per unit name (see :func:`compute_M`).
        lam: ``lambda >= 0``.
        alpha: in ``(0, 1)``.
        with_norm: include BatchNorm ``gamma``, ``beta`` in the groups [U] (default ``True``).
    """

    units: list[ChannelUnit]
    M: Mapping[str, float]
    lam: float = 1.0
    alpha: float = 0.1
    with_norm: bool = True

    def __post_init__(self) -> None:
        if not self.lam >= 0:
            raise InvalidInputError("spr.lam", f"= {self.lam} must be >= 0")
        if not 0.0 < self.alpha < 1.0:
            raise InvalidInputError("spr.alpha", f"= {self.alpha} is outside (0, 1)")
        for unit in self.units:
            m = self.M.get(unit.name)
            if m is None or not m > 0:
                raise InvalidInputError("spr.M", f"unit {unit.name!r} needs M > 0, got {m}")

    def group_values(self, model: nn.Module) -> dict[str, Tensor]:
        """``z(W_j)`` per channel, by unit (differentiable)."""
        out = {}
        for unit in self.units:
            r, t, _ = _norms(group_tensors(model, unit, self.with_norm))
            out[unit.name] = spr_z(r, t, self.alpha, self.M[unit.name])
        return out

    def __call__(self, model: nn.Module) -> Tensor:
        total = None
        count = 0
        for unit in self.units:
            r, t, size = _norms(group_tensors(model, unit, self.with_norm))
            term = spr_z(r, t, self.alpha, self.M[unit.name]).sum() * size
            total = term if total is None else total + term
            count += size * r.numel()
        if total is None:
            return torch.zeros(())
        return self.lam * total / count


@torch.no_grad()
def compute_M(
    model: nn.Module, units: list[ChannelUnit], rule: MRule = "blockwise", scale: float = 1.0
) -> dict[str, float]:
    """``M = scale * max |W|`` per unit of a *pre-trained* ``model`` (``MCacciola94/Pruning_prj``
    ``blockwise_M`` / ``layerwise_M``): blockwise takes the max over the conv weight and the
    BatchNorm gamma and beta, layerwise over the weight only."""
    if rule not in ("blockwise", "layerwise"):
        raise InvalidInputError("spr.M_rule", f"= {rule!r}; accepted: blockwise, layerwise")
    if not scale > 0:
        raise InvalidInputError("spr.M_scale", f"= {scale} must be > 0")
    out = {}
    for unit in units:
        parts = group_tensors(model, unit, with_norm=(rule == "blockwise"))
        if rule == "layerwise":
            parts = parts[:1]
        out[unit.name] = scale * max(float(p.abs().max()) for p in parts)
    return out


# ---------------------------------------------------------------------------- threshold search
@dataclass(frozen=True)
class ThresholdResult:
    """Outcome of :func:`threshold_search`.

    Attributes:
        weight_threshold: the unstructured magnitude threshold found.
        fraction_threshold: keep a channel iff its surviving fraction exceeds this.
        keep: boolean keep mask per unit name.
        base_accuracy: accuracy (percent) before thresholding, on the search data.
        accuracy: accuracy with the structured mask applied.
    """

    weight_threshold: float
    fraction_threshold: float
    keep: dict[str, list[bool]]
    base_accuracy: float
    accuracy: float


def _bisect(ok: Callable[[float], bool], low: float, high: float, iterations: int) -> float:
    """Largest ``x`` in ``[low, high]`` with ``ok(x)`` found by bisection (``ok(low)`` assumed)."""
    if ok(high):
        return high
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        if ok(mid):
            low = mid
        else:
            high = mid
    return low


@torch.no_grad()
def threshold_search(
    model: nn.Module,
    units: list[ChannelUnit],
    accuracy: Callable[[nn.Module], float],
    tolerance: float = 0.05,
    weight_range: tuple[float, float] = (0.0, 0.1),
    iterations: int = 10,
    with_norm: bool = True,
) -> ThresholdResult:
    """The two bisections of ``MCacciola94/Pruning_prj:quik_pruning.py`` (methods.md s.7 steps 3-4).

    1. Unstructured: the largest magnitude threshold ``tau`` in ``weight_range`` such that
       zeroing every group entry with ``|w| < tau`` costs at most ``tolerance`` percentage points
       of ``accuracy(model)`` (evaluated on a training subset by the caller).
    2. Structured: with ``tau`` fixed, a channel is kept iff the fraction of its group entries
       surviving ``tau`` exceeds ``phi``; the largest ``phi`` in ``[0, 1]`` within the same
       tolerance is found by bisection; kept channels keep all their weights (only whole
       channels are pruned).

    The model is left with the structured mask applied (dropped channels zeroed, the others
    restored). At least one channel per unit is kept.
    """
    originals = {u.name: [p.clone() for p in group_tensors(model, u, with_norm)] for u in units}

    def restore() -> None:
        for u in units:
            for p, o in zip(group_tensors(model, u, with_norm), originals[u.name], strict=True):
                p.copy_(o)

    base = accuracy(model)

    def unstructured_ok(tau: float) -> bool:
        restore()
        for u in units:
            for p in group_tensors(model, u, with_norm):
                p[p.abs() < tau] = 0.0
        return base - accuracy(model) <= tolerance

    tau = _bisect(unstructured_ok, weight_range[0], weight_range[1], iterations)
    restore()
    fractions = {}
    for u in units:
        flat = torch.cat([o for o in originals[u.name]], dim=1)
        fractions[u.name] = (flat.abs() >= tau).float().mean(dim=1) if tau > 0 else torch.ones(
            flat.shape[0])

    def keep_masks(phi: float) -> dict[str, Tensor]:
        out = {}
        for u in units:
            keep = fractions[u.name] > phi
            if not keep.any():
                keep[int(torch.argmax(fractions[u.name]))] = True
            out[u.name] = keep
        return out

    def structured_ok(phi: float) -> bool:
        restore()
        for u, keep in zip(units, keep_masks(phi).values(), strict=True):
            mask_channels(model, u, keep)
        return base - accuracy(model) <= tolerance

    phi = _bisect(structured_ok, 0.0, 1.0, iterations) if tau > 0 else 0.0
    restore()
    masks = keep_masks(phi) if tau > 0 else {u.name: torch.ones_like(fractions[u.name],
                                                                    dtype=torch.bool)
                                             for u in units}
    for u in units:
        mask_channels(model, u, masks[u.name])
    acc = accuracy(model)
    return ThresholdResult(
        weight_threshold=float(tau),
        fraction_threshold=float(phi),
        keep={name: m.tolist() for name, m in masks.items()},
        base_accuracy=float(base),
        accuracy=float(acc),
    )


__all__ = [
    "MRule",
    "SPRRegularizer",
    "ThresholdResult",
    "compute_M",
    "spr_z",
    "threshold_search",
]
