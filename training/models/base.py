"""What every model family shares: channel units (SPR's structure families), the prunable-model
base class, the activation table, the arguments a builder receives, and BatchNorm calibration.

A :class:`ChannelUnit` names one structure family of SPR (Cacciola, Frangioni, Li, Lodi,
arXiv:2206.14056): the output channels (rows) of a *producer* layer together with its BatchNorm,
and the *consumer* layers whose inputs are those channels. Removing channel ``j`` removes row
``j`` of the producer, entry ``j`` of the BatchNorm and the matching input slice of each consumer
(:mod:`~proxcompress.training.pruning`). Residual blocks expose only their inner convolution
(``conv1``), whose channels do not touch the skip connection (the usual ResNet channel-pruning
unit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from proxcompress.errors import InvalidInputError


@dataclass(frozen=True)
class ChannelUnit:
    """A prunable family of channels.

    Attributes:
        name: the unit's name (the producer's module name).
        producer: module name of the linear / conv layer whose output channels are pruned.
        norm: module name of the BatchNorm right after it (``None`` when absent).
        consumers: module names of the layers that read those channels.
        spatial: input features per channel of each consumer (1 for a conv, ``H*W`` for a linear
            layer after a flatten).
    """

    name: str
    producer: str
    norm: str | None
    consumers: tuple[str, ...]
    spatial: tuple[int, ...]


class PrunableModel(nn.Module):
    """A model that lists its :class:`ChannelUnit` s."""

    def units(self) -> list[ChannelUnit]:  # pragma: no cover - abstract
        raise NotImplementedError


#: activation name -> module class (``model.activation``)
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "hardtanh": nn.Hardtanh}


def activation_module(name: str) -> nn.Module:
    """A new activation module by its ``model.activation`` name."""
    if name not in ACTIVATIONS:
        raise InvalidInputError("model.activation",
                                f"= {name!r}; accepted: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


@dataclass(frozen=True)
class ModelSpec:
    """What a model family's builder receives (:func:`~proxcompress.training.models.build_model`
    and the ``model`` config section): the input, the classes, and every family's size options
    (each builder reads its own).

    Attributes:
        in_channels, image_size: the input (``image_size`` the side of a square image).
        classes: output classes.
        hidden: MLP hidden widths.
        width: first-stage width of the CNNs (``None``: the family's default).
        stages: convs per stage of the VGG-style CNN.
        blocks: basic blocks per stage of the ResNets.
        batchnorm: MLP BatchNorm.
        activation: ``relu`` or ``hardtanh``.
        dropout: MLP dropout.
        options: further family options by name (e.g. a ViT's switches).
    """

    in_channels: int = 1
    image_size: int = 28
    classes: int = 10
    hidden: Sequence[int] = (512, 512)
    width: int | None = None
    stages: Sequence[int] = (1, 1)
    blocks: int = 3
    batchnorm: bool = True
    activation: str = "relu"
    dropout: float = 0.0
    options: Mapping[str, Any] = field(default_factory=dict)


def calibrate_batchnorm(model: nn.Module, input_shape: tuple[int, ...], *, samples: int = 32,
                        seed: int = 0) -> nn.Module:
    """Give an untrained model's BatchNorm layers what training would: random affine terms
    (``weight`` about 1, ``bias`` about 0, spread 0.3) and running statistics of one batch of
    ``samples`` random inputs of ``input_shape``; returns the model in eval mode. For tests and
    benchmarks of deployed (exported) models, whose BatchNorm at its initial values is the
    identity."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            module.momentum = None
            with torch.no_grad():
                module.weight.copy_(1 + 0.3 * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(0.3 * torch.randn(module.bias.shape, generator=gen))
    model.train()
    with torch.no_grad():
        model(torch.randn((samples, *input_shape), generator=gen))
    return model.eval()


__all__ = ["ACTIVATIONS", "ChannelUnit", "ModelSpec", "PrunableModel", "activation_module",
           "calibrate_batchnorm"]
