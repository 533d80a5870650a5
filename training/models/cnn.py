"""A small VGG-style CNN (Simonyan and Zisserman, ICLR 2015: 3x3 conv-BN-activation stacks with
max pooling)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from proxcompress.training.models.base import (
    ChannelUnit,
    ModelSpec,
    PrunableModel,
    activation_module,
)


class VGGSmall(PrunableModel):
    """A small VGG-style CNN: stages of ``[3x3 conv -> BN -> act] x convs`` then 2x2 max-pool,
    widths ``width * (1, 2, 4, ...)``, then flatten and one linear classifier.

    Args:
        in_channels: 1 (grey) or 3 (colour).
        image_size: 28 or 32 (any size divisible by ``2^len(stages)`` after flooring works).
        classes: output classes.
        width: channels of the first stage.
        stages: convs per stage, e.g. ``(1, 1)`` for a 2-conv CNN, ``(2, 2, 2)`` for VGG-like.
        activation: ``relu`` or ``hardtanh``.

    The activations after the first convolution are stored channels-last (NHWC; the
    parameters stay in the default layout): on CPU, PyTorch's NCHW max pooling is 8-15x slower
    than its NHWC kernel and the oneDNN convolutions are faster in NHWC, so a training step of
    the results CNN takes about 0.6x the time (docs/decisions.md, "Channels-last CNN
    activations"). The values are the same tensors up to float rounding of the convolutions.
    """

    #: store the activations after the first convolution channels-last (see the class doc)
    channels_last: bool = True

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        classes: int = 10,
        width: int = 32,
        stages: Sequence[int] = (1, 1),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.layer_names: list[tuple[str, str]] = []
        c_in = in_channels
        size = image_size
        modules: list[tuple[str, nn.Module]] = []
        for s, n_convs in enumerate(stages):
            c_out = width * 2**s
            for k in range(n_convs):
                name = f"conv{s}_{k}"
                modules += [
                    (name, nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)),
                    (f"bn{s}_{k}", nn.BatchNorm2d(c_out)),
                    (f"act{s}_{k}", activation_module(activation)),
                ]
                self.layer_names.append((name, f"bn{s}_{k}"))
                c_in = c_out
            modules.append((f"pool{s}", nn.MaxPool2d(2)))
            size //= 2
        for name, m in modules:
            self.add_module(name, m)
        self._order = [name for name, _ in modules]
        self.spatial = size * size
        self.head = nn.Linear(c_in * self.spatial, classes)

    def forward(self, x: Tensor) -> Tensor:
        for i, name in enumerate(self._order):
            x = getattr(self, name)(x)
            if i == 0 and self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        return self.head(x.flatten(1))

    def units(self) -> list[ChannelUnit]:
        out = []
        for i, (conv, bn) in enumerate(self.layer_names):
            if i + 1 < len(self.layer_names):
                out.append(ChannelUnit(conv, conv, bn, (self.layer_names[i + 1][0],), (1,)))
            else:
                out.append(ChannelUnit(conv, conv, bn, ("head",), (self.spatial,)))
        return out


def build(spec: ModelSpec) -> VGGSmall:
    """``model.name: vgg`` (``width``, default 32; ``stages``; ``activation``)."""
    return VGGSmall(spec.in_channels, spec.image_size, spec.classes, spec.width or 32,
                    spec.stages, spec.activation)


__all__ = ["VGGSmall", "build"]
