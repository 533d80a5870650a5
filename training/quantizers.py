"""The catalogue's forward/backward quantizer pairs as torch ops (custom autograd).

Every pair of :mod:`proxcompress.proofs.pairs` has a torch twin here, looked up by the same
name (:func:`get_quantizer`). A pair is three maps of the latent ``w`` (and of the annealing
parameter ``mu >= 0`` where it has one):

* ``P = P^mu``, the proximal quantizer;
* ``B``, the backward quantizer (Lipschitz, differentiable a.e.);
* ``F``, the forward quantizer: what the network uses.

The op :meth:`TorchQuantizer.__call__` computes ``F(w; mu)`` in the forward pass and, in the
backward pass, replaces ``F'`` (zero almost everywhere for a hard quantizer) by ``B'`` taken at
the point the pair prescribes (``derivative_at``):

.. math::

    \\frac{\\partial \\ell}{\\partial w} = B'(\\pi(w)) \\, \\frac{\\partial \\ell}{\\partial F},
    \\qquad \\pi(w) = P^\\mu(w) \\;(\\text{"prox"}) \\text{ or } w \\;(\\text{"latent"}),

so that, with ``F = B o P`` and ``B'`` at ``P(w)``, one SGD step on the latent is a ProxConnect
step on the composite loss ``l o B`` (Lu, Yu, Li, Partovi Nia, *Understanding Neural Network
Binarization with Forward and Backward Proximal Quantizers*, NeurIPS 2023, arXiv:2402.17710;
methods.md section 1, the suite's working formalization [D]).

Conventions are the catalogue's: ``sign(0) = 0``; a projection onto levels takes the midpoint of
the two nearest levels at a tie; the hard-tanh derivative is ``1{|x| <= 1}`` (larq ``SteSign``).
``tests/training/test_quantizers.py`` ties each op to its SymPy twin (``Pair.numeric()``):
values of ``F``, ``B``, ``P``, ``B'`` and the autograd gradient on a grid, for several ``mu``.

This module never imports SymPy (training start-up stays fast).

Papers: Courbariaux et al., *BinaryConnect*, NeurIPS 2015; Hubara et al., *Binarized Neural
Networks*, NeurIPS 2016; Darabi et al., *BNN+*, arXiv:1812.11800; Dockhorn et al.,
*Demystifying and Generalizing BinaryConnect*, NeurIPS 2021; Bai, Wang, Liberty, *ProxQuant*,
ICLR 2019; Li et al., *DenseShift*, ICCV 2023.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import Tensor

from proxcompress.errors import InvalidInputError
from proxcompress.levels import BINARY as _BINARY
from proxcompress.levels import TERNARY as _TERNARY
from proxcompress.levels import shift_levels
from proxcompress.proofs import registry
from proxcompress.training.fused import ChannelScale, Kernel, fused_quantize, get_mode, kernel_for

DerivativePoint = Literal["prox", "latent"]
Map = Callable[[Tensor, float], Tensor]

#: SignSwish sharpness, larq's default [U: the paper's value]: the catalogue registry's.
DEFAULT_BETA = float(registry.DEFAULT_BETA)


# ---------------------------------------------------------------------------- elementary maps
def project(x: Tensor, levels: Sequence[float]) -> Tensor:
    """``Pi_Q(x)``: the nearest of ``levels``; the midpoint of the two nearest at a tie.

    Written as ``q_0 + sum_k (q_{k+1} - q_k) [1{x > m_k} + 1/2 1{x = m_k}]`` with midpoints
    ``m_k``; for ``Q = {-1, 1}`` this is ``sign`` with ``sign(0) = 0``.
    """
    q = sorted(float(v) for v in levels)
    out = torch.full_like(x, q[0])
    for lower, upper in zip(q, q[1:], strict=False):
        mid = 0.5 * (lower + upper)
        step = upper - lower
        out = out + step * (x > mid).to(x.dtype) + 0.5 * step * (x == mid).to(x.dtype)
    return out


def dist2_prox(x: Tensor, mu: float, levels: Sequence[float]) -> Tensor:
    """``(x + mu Pi_Q(x)) / (1 + mu)``, the prox of ``(mu/2) dist^2(., Q)`` [D, methods.md s.1]."""
    if levels is _BINARY or tuple(levels) == _BINARY:
        return (x + mu * torch.sign(x)) / (1.0 + mu)
    return (x + mu * project(x, levels)) / (1.0 + mu)


def signswish(x: Tensor, beta: float = DEFAULT_BETA) -> Tensor:
    """SignSwish ``SS_beta(x) = 2 sigma(beta x)[1 + beta x (1 - sigma(beta x))] - 1`` (BNN+,
    Darabi et al., arXiv:1812.11800)."""
    s = torch.sigmoid(beta * x)
    return 2.0 * s * (1.0 + beta * x * (1.0 - s)) - 1.0


def signswish_derivative(x: Tensor, beta: float = DEFAULT_BETA) -> Tensor:
    """``SS_beta'(x) = beta (2 - beta x tanh(beta x / 2)) / (1 + cosh(beta x))`` (larq
    ``SwishSign``), written with ``s = sigma(beta x)`` as
    ``2 beta s (1 - s) (2 - beta x (2 s - 1))`` (no overflow)."""
    s = torch.sigmoid(beta * x)
    return 2.0 * beta * s * (1.0 - s) * (2.0 - beta * x * (2.0 * s - 1.0))


def hardtanh(x: Tensor) -> Tensor:
    """``clip(x, -1, 1)``."""
    return torch.clamp(x, -1.0, 1.0)


def hardtanh_derivative(x: Tensor) -> Tensor:
    """``1{|x| <= 1}`` (larq ``SteSign``; the covering piece at the kinks)."""
    return (x.abs() <= 1.0).to(x.dtype)


def soft_threshold(x: Tensor, t: float) -> Tensor:
    """``sign(x) max(|x| - t, 0)``."""
    return torch.sign(x) * torch.clamp(x.abs() - t, min=0.0)


def _identity(x: Tensor, mu: float) -> Tensor:
    return x


def _one(x: Tensor, mu: float) -> Tensor:
    return torch.ones_like(x)


def _sign(x: Tensor, mu: float) -> Tensor:
    return torch.sign(x)


# --------------------------------------------------------------------------------- the op
@dataclass(frozen=True)
class TorchQuantizer:
    """A forward/backward quantizer pair as a torch op.

    Attributes:
        name: catalogue name.
        forward: ``F(x, mu)``.
        backward: ``B(x, mu)``.
        backward_derivative: ``B'(x, mu)``.
        prox: ``P^mu(x)``.
        limit: ``lim_{mu -> oo} F(x; mu)``, the deployed (hard) forward.
        levels: the value set ``Q`` of ``lim P^mu``.
        derivative_at: where ``B'`` is evaluated: ``"prox"`` (at ``P(w)``, the PC++ criterion)
            or ``"latent"`` (at ``w``, as BNN / BNN+ do). [U] pluggable via :func:`get_quantizer`.
        annealed: whether a map depends on ``mu``.
        parameters: fixed numeric parameters (``beta``, ``bits``).
        fused: optional ``(x, mu) -> (F(x; mu), B'(pi(x)))`` computing both in one cache-blocked
            pass (same values as the separate maps; used by the reference autograd op).
        kernel: the pair's fused forward/backward (:mod:`.fused`), used unless the mode is
            ``reference``; set by :func:`get_quantizer` for the method's derivative point.
    """

    name: str
    forward: Map
    backward: Map
    backward_derivative: Map
    prox: Map
    limit: Callable[[Tensor], Tensor]
    levels: tuple[float, ...]
    derivative_at: DerivativePoint
    annealed: bool
    parameters: dict[str, float] = field(default_factory=dict)
    fused: Callable[[Tensor, float], tuple[Tensor, Tensor]] | None = None
    kernel: Kernel | None = None

    def __call__(self, x: Tensor, mu: float | Tensor = 0.0, hard: bool = False,
                 scale: Tensor | ChannelScale | None = None, reuse: bool = False) -> Tensor:
        """``scale * F(x; mu)`` with the surrogate gradient ``scale * B'(pi(x))``.

        ``scale`` (optional) is a constant factor applied inside the op (no extra autograd
        node): a tensor broadcastable to ``x`` (one value per output channel on the fused path),
        e.g. a detached per-channel scale, or a :class:`~.fused.ChannelScale`, the layer's
        ``mean |w|`` computed inside the op; ``hard`` uses :attr:`limit` (deployment; no
        gradient surrogate). ``reuse``: the output feeds one operation whose gradient nobody
        else sees (a layer's GEMM): the fused backward may write into the incoming gradient
        (:class:`~.fused.FusedQuantize`)."""
        mu_f = float(mu)
        if self.kernel is not None and not hard and get_mode() != "reference":
            return fused_quantize(self.kernel, x, mu_f, scale, reuse)
        if isinstance(scale, ChannelScale):
            scale = scale.reference(x).detach()
        if hard:
            out = self.limit(x)
            return out if scale is None else out * scale
        if not torch.is_grad_enabled() or not x.requires_grad:
            out = self.forward(x, mu_f)
            return out if scale is None else out * scale
        return _QuantizeFunction.apply(x, mu_f, self, scale)

    def derivative_point(self, x: Tensor, mu: float) -> Tensor:
        """``pi(x)``: ``P^mu(x)`` or ``x`` according to :attr:`derivative_at`."""
        return self.prox(x, mu) if self.derivative_at == "prox" else x


class _QuantizeFunction(torch.autograd.Function):
    """Forward ``scale * F(x; mu)``; backward ``grad * scale * B'(pi(x))`` (the slope is saved
    in the forward pass)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, mu: float, quantizer: TorchQuantizer,
                scale: Tensor | None) -> Tensor:
        ctx.scale = scale
        if quantizer.fused is not None:
            out, slope = quantizer.fused(x, mu)
            ctx.identity = False
            ctx.save_for_backward(slope)
        else:
            out = quantizer.forward(x, mu)
            ctx.identity = quantizer.backward is _identity
            if ctx.identity:
                ctx.save_for_backward()
            else:
                ctx.save_for_backward(
                    quantizer.backward_derivative(quantizer.derivative_point(x, mu), mu))
        if scale is not None:
            out = out.mul_(scale) if out is not x else out * scale
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        scale = ctx.scale
        if ctx.identity:
            return (grad if scale is None else grad * scale), None, None, None
        (slope,) = ctx.saved_tensors
        g = grad * slope
        if scale is not None:
            g.mul_(scale)
        return g, None, None, None


# -------------------------------------------------------------------- fused SignSwish passes
_CHUNK = 1 << 16  # elements per block: every pass of a block stays in the L2 cache


def _blocked(x: Tensor, body: Callable[[Tensor, Tensor, Tensor], None]
             ) -> tuple[Tensor, Tensor]:
    """Run ``body(x_block, out_block, slope_block)`` block by block over flat views."""
    xc = x.detach().contiguous()
    out = torch.empty_like(xc)
    slope = torch.empty_like(xc)
    xf, of, sf = xc.view(-1), out.view(-1), slope.view(-1)
    for i in range(0, xf.numel(), _CHUNK):
        body(xf[i:i + _CHUNK], of[i:i + _CHUNK], sf[i:i + _CHUNK])
    return out, slope


def _signswish_into(u: Tensor, out: Tensor | None, slope: Tensor, beta: float) -> None:
    """From ``u = beta x``: ``slope = SS_beta'(x) = 2 beta q (2 + u - 2 u s)`` and (if ``out``
    is given) ``out = SS_beta(x) = 2 s - 1 + 2 u q``, with ``s = sigma(u)``, ``q = s (1 - s)``."""
    s = torch.sigmoid(u)
    torch.addcmul(s, s, s, value=-1.0, out=slope)  # q
    if out is not None:
        torch.mul(s, 2.0, out=out).sub_(1.0).addcmul_(u, slope, value=2.0)
    t = torch.addcmul(u + 2.0, u, s, value=-2.0)
    slope.mul_(t).mul_(2.0 * beta)


def _fused_bnn_plus_plus(beta: float) -> Callable[[Tensor, float], tuple[Tensor, Tensor]]:
    """``(SS_beta(P^mu(x)), SS_beta'(P^mu(x)))`` with ``P^mu`` the dist^2 prox onto {-1, 1}."""

    def fused(x: Tensor, mu: float) -> tuple[Tensor, Tensor]:
        def body(xb: Tensor, ob: Tensor, sb: Tensor) -> None:
            u = torch.sign(xb).mul_(mu).add_(xb).mul_(beta / (1.0 + mu))  # beta P(x)
            _signswish_into(u, ob, sb, beta)

        return _blocked(x, body)

    return fused


def _fused_bnn_plus(beta: float) -> Callable[[Tensor, float], tuple[Tensor, Tensor]]:
    """``(sign(x), SS_beta'(x))`` (BNN+, ``B'`` at the latent)."""

    def fused(x: Tensor, mu: float) -> tuple[Tensor, Tensor]:
        def body(xb: Tensor, ob: Tensor, sb: Tensor) -> None:
            torch.sign(xb, out=ob)
            _signswish_into(torch.mul(xb, beta), None, sb, beta)

        return _blocked(x, body)

    return fused


# ------------------------------------------------------------------------------ factories
def binaryconnect() -> TorchQuantizer:
    """BinaryConnect: ``F = sign``, ``B = id`` (STE). Courbariaux, Bengio, David, NeurIPS 2015."""
    return TorchQuantizer(
        "binaryconnect", _sign, _identity, _one, _sign, torch.sign, _BINARY, "latent", False
    )


def bnn() -> TorchQuantizer:
    """BNN: ``F = sign``, ``B = hardtanh``, ``B' = 1{|w| <= 1}`` at the latent ``w`` (larq
    ``SteSign``). Hubara et al., NeurIPS 2016."""
    return TorchQuantizer(
        "bnn",
        _sign,
        lambda x, mu: hardtanh(x),
        lambda x, mu: hardtanh_derivative(x),
        _sign,
        torch.sign,
        _BINARY,
        "latent",
        False,
    )


def bnn_plus(beta: float = DEFAULT_BETA) -> TorchQuantizer:
    """BNN+: ``F = sign``, ``B = SS_beta``, ``B'`` at the latent (larq ``SwishSign``).
    Darabi et al., arXiv:1812.11800."""
    return TorchQuantizer(
        "bnn+",
        _sign,
        lambda x, mu: signswish(x, beta),
        lambda x, mu: signswish_derivative(x, beta),
        _sign,
        torch.sign,
        _BINARY,
        "latent",
        False,
        {"beta": float(beta)},
        _fused_bnn_plus(float(beta)),
    )


def proxconnect() -> TorchQuantizer:
    """ProxConnect: ``F = P^mu = (x + mu sign x) / (1 + mu)``, ``B = id`` (prox of
    ``(mu/2) dist^2(., {-1, 1})``; stand-in [D] for the paper's family [U]).
    Dockhorn et al., NeurIPS 2021."""

    def p(x: Tensor, mu: float) -> Tensor:
        return dist2_prox(x, mu, _BINARY)

    return TorchQuantizer("proxconnect", p, _identity, _one, p, torch.sign, _BINARY, "prox", True)


def proxconnect_clip() -> TorchQuantizer:
    """ProxConnect, clip family: ``F = P^mu = clip((1 + mu) x, -1, 1)``, ``B = id``."""

    def p(x: Tensor, mu: float) -> Tensor:
        return hardtanh((1.0 + mu) * x)

    return TorchQuantizer(
        "proxconnect-clip", p, _identity, _one, p, torch.sign, _BINARY, "prox", True
    )


#: BNN++'s ``beta(mu) = beta + beta_growth mu`` defaults and the ``bnn++-prox`` reading's
#: sharpness: the catalogue registry's [U]
BNNPP_BETA = float(registry.BNNPP_BETA)
BNNPP_GROWTH = float(registry.BNNPP_GROWTH)
BNNPP_PROX_BETA = float(registry.BNNPP_PROX_BETA)


def bnn_plus_plus(beta: float = BNNPP_BETA, beta_growth: float = BNNPP_GROWTH
                  ) -> TorchQuantizer:
    """BNN++ as published: ``F^mu = B^mu = SS_{beta(mu)}`` on the latent,
    ``beta(mu) = beta + beta_growth mu``, ``B'`` at the latent; deployed: ``sign``
    (``lim_{mu -> oo} F``). ``P`` is the identity. Lu, Yu, Li, Partovi Nia, NeurIPS 2023
    (the reading of the public summaries; the schedule is [U])."""

    def sharpness(mu: float) -> float:
        return beta + beta_growth * mu

    def fused(x: Tensor, mu: float) -> tuple[Tensor, Tensor]:
        b = sharpness(mu)

        def body(xb: Tensor, ob: Tensor, sb: Tensor) -> None:
            _signswish_into(torch.mul(xb, b), ob, sb, b)

        return _blocked(x, body)

    return TorchQuantizer(
        "bnn++",
        lambda x, mu: signswish(x, sharpness(mu)),
        lambda x, mu: signswish(x, sharpness(mu)),
        lambda x, mu: signswish_derivative(x, sharpness(mu)),
        _identity,
        torch.sign,
        _BINARY,
        "latent",
        True,
        {"beta": float(beta), "beta_growth": float(beta_growth)},
        fused,
    )


def bnn_plus_plus_prox(beta: float = BNNPP_PROX_BETA) -> TorchQuantizer:
    """BNN++, the earlier reading (``bnn++-prox``): ``F = SS_beta o P^mu``, ``B = SS_beta``,
    ``B'`` at ``P(w)`` [U]; ``P^mu`` the ProxConnect family."""

    def p(x: Tensor, mu: float) -> Tensor:
        return dist2_prox(x, mu, _BINARY)

    return TorchQuantizer(
        "bnn++-prox",
        lambda x, mu: signswish(p(x, mu), beta),
        lambda x, mu: signswish(x, beta),
        lambda x, mu: signswish_derivative(x, beta),
        p,
        lambda x: signswish(torch.sign(x), beta),
        _BINARY,
        "prox",
        True,
        {"beta": float(beta)},
        _fused_bnn_plus_plus(float(beta)),
    )


def proxquant() -> TorchQuantizer:
    """ProxQuant's binary prox: ``P^mu(x) = sign x + soft_mu(x - sign x)``, ``B = id``.
    Bai, Wang, Liberty, ICLR 2019 (lazy / ProxConnect form [U])."""

    def p(x: Tensor, mu: float) -> Tensor:
        s = torch.sign(x)
        return s + soft_threshold(x - s, mu)

    return TorchQuantizer("proxquant", p, _identity, _one, p, torch.sign, _BINARY, "prox", True)


def ternary() -> TorchQuantizer:
    """Ternary ProxConnect: ``F = P^mu = (x + mu Pi_{-1,0,1}(x)) / (1 + mu)``, ``B = id``."""

    def p(x: Tensor, mu: float) -> Tensor:
        return dist2_prox(x, mu, _TERNARY)

    return TorchQuantizer(
        "ternary", p, _identity, _one, p, lambda x: project(x, _TERNARY), _TERNARY, "prox", True
    )


def shift(bits: int = 3) -> TorchQuantizer:
    """Power-of-two ProxConnect: ``F = P^mu = (x + mu Pi_S(x)) / (1 + mu)``,
    ``S = {+-2^p}`` (DenseShift's zero-free set), ``B = id``."""
    levels = shift_levels(bits)

    def p(x: Tensor, mu: float) -> Tensor:
        return dist2_prox(x, mu, levels)

    return TorchQuantizer(
        "shift",
        p,
        _identity,
        _one,
        p,
        lambda x: project(x, levels),
        levels,
        "prox",
        True,
        {"bits": float(bits)},
    )


#: catalogue name -> torch factory (the names and parameters are the catalogue registry's)
_FACTORIES: dict[str, Callable[..., TorchQuantizer]] = {
    "binaryconnect": binaryconnect,
    "bnn": bnn,
    "bnn+": bnn_plus,
    "proxconnect": proxconnect,
    "proxconnect-clip": proxconnect_clip,
    "bnn++": bnn_plus_plus,
    "bnn++-prox": bnn_plus_plus_prox,
    "proxquant": proxquant,
    "ternary": ternary,
    "shift": shift,
}


#: the factories above (a pair re-registered with another factory gets no fused kernel)
_BUILTIN = dict(_FACTORIES)


def quantizer_names() -> tuple[str, ...]:
    """The registered names: the catalogue's (:func:`proxcompress.proofs.registry.pair_names`)."""
    return registry.pair_names()


def get_quantizer(
    name: str, *, derivative_at: DerivativePoint | None = None, **parameters: float
) -> TorchQuantizer:
    """The torch op registered under the catalogue name ``name`` (case-insensitive).

    Args:
        name: one of :func:`quantizer_names`.
        derivative_at: override where ``B'`` is evaluated (``"prox"`` or ``"latent"``);
            default: the published method's point (the catalogue's ``method_derivative_at``).
        parameters: ``beta`` for ``bnn+`` (default 5, larq), ``bnn++`` (1) and ``bnn++-prox``
            (2); ``beta_growth`` for ``bnn++`` (1); ``bits`` for ``shift`` (3): the catalogue
            registry's defaults, which unset ones take.

    Raises:
        InvalidInputError: unknown name, a catalogue pair without a torch op, an unknown
            parameter, or a bad ``derivative_at``.
    """
    key = registry.pair_spec(name, "quantizer").name
    resolved = registry.resolve_parameters(key, parameters)
    if key not in _FACTORIES:
        raise InvalidInputError("quantizer", f"{name!r} has no torch op; add one with "
                                "proxcompress.training.quantizers.register")
    quantizer = _FACTORIES[key](**resolved)
    if _FACTORIES[key] is _BUILTIN.get(key):
        quantizer = replace(quantizer, kernel=kernel_for(key, resolved))
    if derivative_at is not None:
        if derivative_at not in ("prox", "latent"):
            raise InvalidInputError(
                "derivative_at", f"= {derivative_at!r}; accepted: 'prox', 'latent'"
            )
        if derivative_at != quantizer.derivative_at:
            quantizer = replace(quantizer, derivative_at=derivative_at, fused=None, kernel=None)
    return quantizer


def register(name: str, factory: Callable[..., TorchQuantizer], *, replace_: bool = False) -> None:
    """Add the torch op of the catalogue pair ``name`` (register the pair first with
    ``proofs.pairs.register``: names and parameters are the catalogue's);
    ``factory(**parameters)`` builds it.

    Raises:
        InvalidInputError: ``name`` is not in the catalogue, or already has a torch op and
            ``replace_`` is false.
    """
    key = registry.pair_spec(name, "name").name
    if key in _FACTORIES and not replace_:
        raise InvalidInputError("name", f"{name!r} is already registered")
    _FACTORIES[key] = factory


__all__ = [
    "DEFAULT_BETA",
    "DerivativePoint",
    "TorchQuantizer",
    "binaryconnect",
    "bnn",
    "bnn_plus",
    "bnn_plus_plus",
    "bnn_plus_plus_prox",
    "dist2_prox",
    "get_quantizer",
    "hardtanh",
    "project",
    "proxconnect",
    "proxconnect_clip",
    "proxquant",
    "quantizer_names",
    "register",
    "shift",
    "shift_levels",
    "signswish",
    "signswish_derivative",
    "ternary",
]
