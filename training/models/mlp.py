"""The MLP: ``input -> [Linear -> BN -> act -> dropout] x len(hidden) -> Linear``."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from proxcompress.training.models.base import (
    ChannelUnit,
    ModelSpec,
    PrunableModel,
    activation_module,
)


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
            self.add_module(f"act{i}", activation_module(activation))
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


def build(spec: ModelSpec) -> MLP:
    """``model.name: mlp`` (``hidden``, ``batchnorm``, ``activation``, ``dropout``)."""
    return MLP(spec.in_channels * spec.image_size**2, spec.hidden, spec.classes, spec.batchnorm,
               spec.activation, spec.dropout)


__all__ = ["MLP", "build"]
