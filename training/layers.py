"""Binary (quantized) layers with latent full-precision weights.

:class:`BinaryLinear` and :class:`BinaryConv2d` keep the full-precision *latent* weight ``w``
as their ``weight`` parameter (what the optimizer updates) and compute with

.. math::

    \\hat W = \\alpha \\odot F(w; \\mu), \\qquad
    \\alpha_j = \\tfrac{1}{n_j} \\sum_i |w_{ji}| \\;\\text{(per output channel, optional; } n_j
    \\text{ the fan-in)},

where ``F`` is a catalogue quantizer (:mod:`.quantizers`) and ``mu`` the annealing parameter,
a buffer set by :class:`~proxcompress.training.optim.ProxConnectOptimizer`. Inputs (activations)
are optionally quantized by a second pair, ``x -> F_a(x; mu)``. The per-channel scale is
XNOR-Net's ``mean |w|`` (Rastegari et al., ECCV 2016): ``scale="channel"`` (default) treats it
as a constant in the backward pass, as Bi-Real Net does (Liu et al., ECCV 2018; cheaper: no
gradient through ``alpha``), ``"channel-grad"`` lets the gradient flow through it (XNOR-Net),
``"none"`` drops it.
``hard`` mode (deployment) uses ``lim_{mu -> oo} F``.

Courbariaux et al., BinaryConnect, NeurIPS 2015; Hubara et al., BNN, NeurIPS 2016.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from proxcompress.errors import InvalidInputError
from proxcompress.training.fused import ChannelScale
from proxcompress.training.quantizers import TorchQuantizer, get_quantizer

Scale = Literal["none", "channel", "channel-grad"]


class QuantizedMixin:
    """Shared state of the quantized layers: the weight / activation pairs, ``mu``, ``hard``."""

    weight: Any
    weight_quantizer: TorchQuantizer
    input_quantizer: TorchQuantizer | None
    scale: Scale
    hard: bool
    mu: Tensor
    scale_extra: Tensor
    fan_in: Tensor

    def _init_quant(
        self,
        weight_quantizer: TorchQuantizer | str,
        input_quantizer: TorchQuantizer | str | None,
        scale: Scale,
    ) -> None:
        if isinstance(weight_quantizer, str):
            weight_quantizer = get_quantizer(weight_quantizer)
        if isinstance(input_quantizer, str):
            input_quantizer = get_quantizer(input_quantizer)
        if scale not in ("none", "channel", "channel-grad"):
            raise InvalidInputError(
                "scale", f"= {scale!r}; accepted: 'none', 'channel', 'channel-grad'")
        self.weight_quantizer = weight_quantizer
        self.input_quantizer = input_quantizer
        self.scale = scale
        self.hard = False
        self.register_buffer("mu", torch.zeros((), dtype=torch.float64))  # type: ignore[attr-defined]
        # alpha_j = (sum_i |w_ji| + scale_extra_j) / fan_in: after physical pruning of input
        # channels, scale_extra keeps the removed columns' |w| sum and fan_in the original
        # count, so the pruned layer computes exactly what the masked one did
        w = self.weight
        self.register_buffer(  # type: ignore[attr-defined]
            "scale_extra", torch.zeros(w.shape[0], dtype=w.dtype, device=w.device))
        self.register_buffer(  # type: ignore[attr-defined]
            "fan_in", torch.tensor(float(w[0].numel()), dtype=torch.float64))

    def channel_scale(self) -> Tensor:
        """``alpha_j = (sum_i |w_ji| + scale_extra_j) / fan_in``, shaped to broadcast."""
        return self._channel().reference(self.weight)

    def _channel(self) -> ChannelScale:
        return ChannelScale(self.scale_extra, float(self.fan_in))

    def quantized_weight(self) -> Tensor:
        """``alpha * F(w; mu)`` (``lim F`` in hard mode)."""
        w = self.weight
        # reuse: the result feeds only this layer's GEMM / convolution
        if self.scale == "none":
            return self.weight_quantizer(w, float(self.mu), hard=self.hard, reuse=True)
        if self.scale == "channel":  # detached scale (Bi-Real Net), computed inside the op
            return self.weight_quantizer(w, float(self.mu), hard=self.hard,
                                         scale=self._channel(), reuse=True)
        return self.weight_quantizer(w, float(self.mu), hard=self.hard) * self.channel_scale()

    def quantized_input(self, x: Tensor) -> Tensor:
        """``F_a(x; mu)`` or ``x`` when activations stay full precision."""
        if self.input_quantizer is None:
            return x
        return self.input_quantizer(x, float(self.mu), hard=self.hard, reuse=True)

    def quant_repr(self) -> str:
        act = self.input_quantizer.name if self.input_quantizer else "fp"
        return f"w={self.weight_quantizer.name}, a={act}, scale={self.scale}"


class BinaryLinear(QuantizedMixin, nn.Linear):
    """``y = F_a(x) (alpha * F(w; mu))^T + b`` with a latent weight ``w`` (see module doc).

    Args:
        in_features: as :class:`torch.nn.Linear`.
        out_features: as :class:`torch.nn.Linear`.
        bias: as :class:`torch.nn.Linear`.
        weight_quantizer: catalogue name or :class:`TorchQuantizer` for the weights.
        input_quantizer: the same for the inputs, ``None`` for full-precision activations.
        scale: ``"channel"`` (mean ``|w|`` per output row, default) or ``"none"``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        weight_quantizer: TorchQuantizer | str = "bnn++",
        input_quantizer: TorchQuantizer | str | None = None,
        scale: Scale = "channel",
        **kwargs: Any,
    ) -> None:
        super().__init__(in_features, out_features, bias, **kwargs)
        self._init_quant(weight_quantizer, input_quantizer, scale)

    def forward(self, x: Tensor) -> Tensor:
        return functional.linear(self.quantized_input(x), self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.quant_repr()}"


class BinaryConv2d(QuantizedMixin, nn.Conv2d):
    """``y = conv(F_a(x), alpha * F(w; mu)) + b`` with a latent weight ``w`` (see module doc).

    Arguments as :class:`torch.nn.Conv2d` plus ``weight_quantizer``, ``input_quantizer`` and
    ``scale`` as :class:`BinaryLinear`. Zero padding pads the *quantized* input with zeros
    (``sign(0) = 0``), as a ternary value; binary kernels treat it as in larq (pad value 0).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *args: Any,
        weight_quantizer: TorchQuantizer | str = "bnn++",
        input_quantizer: TorchQuantizer | str | None = None,
        scale: Scale = "channel",
        **kwargs: Any,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, *args, **kwargs)
        self._init_quant(weight_quantizer, input_quantizer, scale)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(self.quantized_input(x), self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.quant_repr()}"


class ActivationQuantizer(nn.Module):
    """A point of a model where activations may be quantized outside a layer (e.g. the queries
    and keys of a binary attention before ``Q K^T``): ``F_a(x; mu)`` when a quantizer is set,
    the identity otherwise. A model places these sites; a recipe sets their quantizer in place
    (:class:`~proxcompress.training.quantize.QuantRecipe` with ``activations``), so the model
    can keep references to them. ``mu`` and ``hard`` follow the quantized layers
    (:func:`set_mu`, :class:`hard_quantization`)."""

    mu: Tensor

    def __init__(self, quantizer: TorchQuantizer | str | None = None) -> None:
        super().__init__()
        self.quantizer = get_quantizer(quantizer) if isinstance(quantizer, str) else quantizer
        self.hard = False
        self.register_buffer("mu", torch.zeros((), dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        if self.quantizer is None:
            return x
        return self.quantizer(x, float(self.mu), hard=self.hard)

    def extra_repr(self) -> str:
        return f"a={self.quantizer.name if self.quantizer else 'fp'}"


def quantized_modules(model: nn.Module) -> list[QuantizedMixin]:
    """Every :class:`BinaryLinear` / :class:`BinaryConv2d` of ``model``."""
    return [m for m in model.modules() if isinstance(m, QuantizedMixin)]


def annealed_modules(model: nn.Module) -> list[QuantizedMixin | ActivationQuantizer]:
    """The quantized layers and the activation quantizer sites of ``model`` (what ``mu`` and
    the hard mode reach)."""
    return [m for m in model.modules() if isinstance(m, QuantizedMixin | ActivationQuantizer)]


def set_mu(model: nn.Module, mu: float) -> None:
    """Set the annealing parameter of every quantized layer and activation site."""
    for m in annealed_modules(model):
        m.mu.fill_(float(mu))


class hard_quantization:  # noqa: N801 - used as a context manager, like torch.no_grad
    """Context manager: every quantized layer (and activation site) uses ``lim_{mu -> oo} F``
    (the deployed model)."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = annealed_modules(model)
        self.saved: list[bool] = []

    def __enter__(self) -> hard_quantization:
        self.saved = [m.hard for m in self.modules]
        for m in self.modules:
            m.hard = True
        return self

    def __exit__(self, *exc: object) -> None:
        for m, h in zip(self.modules, self.saved, strict=True):
            m.hard = h


__all__ = [
    "ActivationQuantizer",
    "BinaryConv2d",
    "BinaryLinear",
    "QuantizedMixin",
    "annealed_modules",
    "hard_quantization",
    "quantized_modules",
    "set_mu",
]
