"""Models for 28x28 (Fashion-MNIST) and 32x32 inputs: an MLP, a small VGG-style CNN and a
ResNet-20-style CNN, each declaring its prunable channel units.

A :class:`ChannelUnit` names one structure family of SPR (Cacciola, Frangioni, Li, Lodi,
arXiv:2206.14056): the output channels (rows) of a *producer* layer together with its BatchNorm,
and the *consumer* layers whose inputs are those channels. Removing channel ``j`` removes row
``j`` of the producer, entry ``j`` of the BatchNorm and the matching input slice of each consumer
(:mod:`.pruning`). Residual blocks expose only their inner convolution (``conv1``), whose
channels do not touch the skip connection (the usual ResNet channel-pruning unit).

ResNet-20: He, Zhang, Ren, Sun, *Deep Residual Learning*, CVPR 2016 (CIFAR variant, 3 stages of
3 basic blocks, widths 16/32/64; projection shortcuts ``1x1 conv + BN`` where the shape changes).
VGG: Simonyan and Zisserman, ICLR 2015 (3x3 conv-BN-activation stacks with max pooling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

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


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "hardtanh":
        return nn.Hardtanh()
    raise InvalidInputError("model.activation", f"= {name!r}; accepted: relu, hardtanh")


class PrunableModel(nn.Module):
    """A model that lists its :class:`ChannelUnit` s."""

    def units(self) -> list[ChannelUnit]:  # pragma: no cover - abstract
        raise NotImplementedError


class MLP(PrunableModel):
    """``input -> [Linear -> BN -> act -> dropout] x len(hidden) -> Linear``.

    Args:
        in_features: flattened input size (784 for 28x28 grey images).
        hidden: hidden widths, e.g. ``(512, 512)``.
        classes: output classes.
        batchnorm: BatchNorm1d after each hidden layer.
        activation: ``relu`` or ``hardtanh`` (the latter for binary activations).
        dropout: dropout probability after each hidden activation.
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden: Sequence[int] = (512, 512),
        classes: int = 10,
        batchnorm: bool = True,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.hidden = tuple(int(h) for h in hidden)
        self.batchnorm = batchnorm
        width = in_features
        for i, h in enumerate(self.hidden):
            self.add_module(f"fc{i}", nn.Linear(width, h, bias=not batchnorm))
            self.add_module(f"bn{i}", nn.BatchNorm1d(h) if batchnorm else nn.Identity())
            self.add_module(f"act{i}", _activation(activation))
            self.add_module(f"drop{i}", nn.Dropout(dropout) if dropout > 0 else nn.Identity())
            width = h
        self.head = nn.Linear(width, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        for i in range(len(self.hidden)):
            x = getattr(self, f"fc{i}")(x)
            x = getattr(self, f"bn{i}")(x)
            x = getattr(self, f"act{i}")(x)
            x = getattr(self, f"drop{i}")(x)
        return self.head(x)

    def units(self) -> list[ChannelUnit]:
        out = []
        for i in range(len(self.hidden)):
            consumer = f"fc{i + 1}" if i + 1 < len(self.hidden) else "head"
            out.append(
                ChannelUnit(
                    f"fc{i}", f"fc{i}", f"bn{i}" if self.batchnorm else None, (consumer,), (1,)
                )
            )
        return out


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
    """

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
                    (f"act{s}_{k}", _activation(activation)),
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
        for name in self._order:
            x = getattr(self, name)(x)
        return self.head(x.flatten(1))

    def units(self) -> list[ChannelUnit]:
        out = []
        for i, (conv, bn) in enumerate(self.layer_names):
            if i + 1 < len(self.layer_names):
                out.append(ChannelUnit(conv, conv, bn, (self.layer_names[i + 1][0],), (1,)))
            else:
                out.append(ChannelUnit(conv, conv, bn, ("head",), (self.spatial,)))
        return out


class BasicBlock(nn.Module):
    """``act(bn2(conv2(act(bn1(conv1 x)))) + shortcut(x))``; shortcut = identity or
    ``1x1 conv -> BN`` when stride or width change."""

    def __init__(self, c_in: int, c_out: int, stride: int, activation: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = _activation(activation)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act2 = _activation(activation)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResNet20(PrunableModel):
    """ResNet-20 for small images: ``conv3x3(16) -> 3 stages x blocks BasicBlocks (widths
    w, 2w, 4w; stride 2 at stages 2, 3) -> global average pool -> linear``.

    Args:
        in_channels: 1 or 3.
        classes: output classes.
        width: first-stage width (16 in He et al.).
        blocks: basic blocks per stage (3 gives ResNet-20; 1 a quick ResNet-8), or one count per
            stage (the number of stages is then its length).
        activation: ``relu`` or ``hardtanh``.
        stem_stride: stride of the 3x3 stem (2 halves large inputs such as spectrograms).

    Works for 28x28 and 32x32 inputs (global average pooling).
    """

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 10,
        width: int = 16,
        blocks: int | Sequence[int] = 3,
        activation: str = "relu",
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        per_stage = (blocks,) * 3 if isinstance(blocks, int) else tuple(blocks)
        self.stem = nn.Conv2d(in_channels, width, 3, stride=stem_stride, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width)
        self.stem_act = _activation(activation)
        layers: list[nn.Module] = []
        c_in = width
        for s, n_blocks in enumerate(per_stage):
            c_out = width * 2**s
            for b in range(n_blocks):
                stride = 2 if (s > 0 and b == 0) else 1
                layers.append(BasicBlock(c_in, c_out, stride, activation))
                c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c_in, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem_act(self.stem_bn(self.stem(x)))
        x = self.blocks(x)
        return self.head(self.pool(x).flatten(1))

    def units(self) -> list[ChannelUnit]:
        return [
            ChannelUnit(f"blocks.{i}.conv1", f"blocks.{i}.conv1", f"blocks.{i}.bn1",
                        (f"blocks.{i}.conv2",), (1,))
            for i in range(len(self.blocks))
        ]


MODELS = ("mlp", "vgg", "resnet20", "speech-resnet")


def build_model(
    name: str,
    *,
    in_channels: int = 1,
    image_size: int = 28,
    classes: int = 10,
    hidden: Sequence[int] = (512, 512),
    width: int | None = None,
    stages: Sequence[int] = (1, 1),
    blocks: int = 3,
    batchnorm: bool = True,
    activation: str = "relu",
    dropout: float = 0.0,
    seed: int | None = None,
) -> PrunableModel:
    """Build one of :data:`MODELS`; ``seed`` (if given) seeds the initialization.

    Raises:
        InvalidInputError: unknown ``name`` (field ``model.name``).
    """
    state = None
    if seed is not None:
        state = torch.get_rng_state()
        torch.manual_seed(seed)
    try:
        if name == "mlp":
            return MLP(in_channels * image_size**2, hidden, classes, batchnorm, activation, dropout)
        if name == "vgg":
            return VGGSmall(in_channels, image_size, classes, width or 32, stages, activation)
        if name == "resnet20":
            return ResNet20(in_channels, classes, width or 16, blocks, activation)
        if name == "speech-resnet":
            from proxcompress.training.speech import SpeechResNet

            return SpeechResNet(classes, width or 16, (blocks,) * 3, in_channels, activation)
        raise InvalidInputError("model.name", f"= {name!r}; accepted: {', '.join(MODELS)}")
    finally:
        if state is not None:
            torch.set_rng_state(state)


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


__all__ = ["MLP", "MODELS", "BasicBlock", "ChannelUnit", "PrunableModel", "ResNet20",
           "calibrate_batchnorm",
           "VGGSmall", "build_model"]
