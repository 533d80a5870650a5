"""ResNet-20 for small images: He, Zhang, Ren, Sun, *Deep Residual Learning*, CVPR 2016 (CIFAR
variant, 3 stages of 3 basic blocks, widths 16/32/64; projection shortcuts ``1x1 conv + BN``
where the shape changes)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from proxcompress.training.models.base import (
    ChannelUnit,
    ModelSpec,
    PrunableModel,
    activation_module,
)


class BasicBlock(nn.Module):
    """``act(bn2(conv2(act(bn1(conv1 x)))) + shortcut(x))``; shortcut = identity or
    ``1x1 conv -> BN`` when stride or width change."""

    def __init__(self, c_in: int, c_out: int, stride: int, activation: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = activation_module(activation)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act2 = activation_module(activation)
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
        self.stem_act = activation_module(activation)
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


def build(spec: ModelSpec) -> ResNet20:
    """``model.name: resnet20`` (``width``, default 16; ``blocks`` per stage; ``activation``)."""
    return ResNet20(spec.in_channels, spec.classes, spec.width or 16, spec.blocks,
                    spec.activation)


__all__ = ["BasicBlock", "ResNet20", "build"]
