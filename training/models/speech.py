"""The spoken-command ResNet (:mod:`proxcompress.training.speech` makes the task): ResNet-20's
blocks over the ``(1, n_mels, frames)`` log-mel image with a stride-2 stem."""

from __future__ import annotations

from collections.abc import Sequence

from proxcompress.errors import InvalidInputError
from proxcompress.training.models.base import ACTIVATIONS, ModelSpec
from proxcompress.training.models.resnet import ResNet20


class SpeechResNet(ResNet20):
    """A small ResNet for log-mel inputs ``(N, 1, n_mels, frames)`` (module docstring): the
    repository's :class:`~proxcompress.training.models.resnet.ResNet20` with a stride-2 stem.

    Args:
        classes: output classes (``None``: the task's 26 intents).
        width: first-stage width ``w`` (stages ``w, 2w, 4w``).
        blocks: basic blocks per stage.
        in_channels: input channels (1).
        activation: ``relu`` or ``hardtanh``.
    """

    def __init__(self, classes: int | None = None, width: int = 16,
                 blocks: Sequence[int] = (1, 1, 1), in_channels: int = 1,
                 activation: str = "relu") -> None:
        if activation not in ACTIVATIONS:
            raise InvalidInputError("model.activation", f"= {activation!r}; accepted: "
                                    f"{', '.join(ACTIVATIONS)}")
        if classes is None:
            from proxcompress.training.speech import INTENTS

            classes = len(INTENTS)
        if width < 1 or not blocks or min(blocks) < 1 or classes < 2:
            raise InvalidInputError("model", f"width = {width}, blocks = {list(blocks)}, "
                                    f"classes = {classes}: need width >= 1, blocks >= 1, "
                                    "classes >= 2")
        super().__init__(in_channels, classes, width, tuple(blocks), activation, stem_stride=2)


def build(spec: ModelSpec) -> SpeechResNet:
    """``model.name: speech-resnet`` (``width``, default 16; ``blocks`` per stage)."""
    return SpeechResNet(spec.classes, spec.width or 16, (spec.blocks,) * 3, spec.in_channels,
                        spec.activation)


__all__ = ["SpeechResNet", "build"]
