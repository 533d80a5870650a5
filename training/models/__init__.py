"""Model families, one module each, behind one registry (:func:`build_model`, ``model.name``).

========================= ============ =====================================================
``model.name``            module       model
========================= ============ =====================================================
``mlp``                   :mod:`.mlp`  :class:`~.mlp.MLP` (``hidden``, BN, activation, dropout)
``vgg``                   :mod:`.cnn`  :class:`~.cnn.VGGSmall` (``width``, ``stages``)
``resnet20``              :mod:`.resnet` :class:`~.resnet.ResNet20` (``width``, ``blocks``)
``speech-resnet``         :mod:`.speech` :class:`~.speech.SpeechResNet` (spoken commands)
``vit``                   :mod:`.vit`  :class:`~.vit.VisionTransformer` (ViT, BinaryViT)
========================= ============ =====================================================

Each family module defines its model classes and ``build(spec: ModelSpec) -> PrunableModel``;
:data:`MODELS` maps the names to ``"module:function"`` and is read by the config's validation
without importing torch (this package's names are resolved lazily). :mod:`.base` holds what all
share: :class:`~.base.ChannelUnit`, :class:`~.base.PrunableModel`, :class:`~.base.ModelSpec`,
:func:`~.base.calibrate_batchnorm`. Adding a family: docs/extending.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from proxcompress.errors import InvalidInputError
from proxcompress.lazy import lazy_getattr

if TYPE_CHECKING:
    from proxcompress.training.models.base import (
        ACTIVATIONS,
        ChannelUnit,
        ModelSpec,
        PrunableModel,
        activation_module,
        calibrate_batchnorm,
    )
    from proxcompress.training.models.cnn import VGGSmall
    from proxcompress.training.models.mlp import MLP
    from proxcompress.training.models.resnet import BasicBlock, ResNet20
    from proxcompress.training.models.speech import SpeechResNet
    from proxcompress.training.models.vit import VisionTransformer

#: ``model.name`` -> ``"module:function"`` building it from a :class:`~.base.ModelSpec`
_BUILDERS: dict[str, str] = {
    "mlp": "proxcompress.training.models.mlp:build",
    "vgg": "proxcompress.training.models.cnn:build",
    "resnet20": "proxcompress.training.models.resnet:build",
    "speech-resnet": "proxcompress.training.models.speech:build",
    "vit": "proxcompress.training.models.vit:build",
}

#: the built-in model names (``model.name``; :func:`model_names` includes registered ones)
MODELS: tuple[str, ...] = tuple(_BUILDERS)


def model_names() -> tuple[str, ...]:
    """The registered model names (including those added by :func:`register_model`)."""
    return tuple(_BUILDERS)


def register_model(name: str, builder: str, *, replace: bool = False) -> None:
    """Add a model family: ``builder`` is ``"module:function"`` of ``function(spec:
    ModelSpec) -> PrunableModel``.

    Raises:
        InvalidInputError: ``name`` is taken and ``replace`` is false.
    """
    if name in _BUILDERS and not replace:
        raise InvalidInputError("name", f"model {name!r} is already registered")
    _BUILDERS[name] = builder


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
    **options: Any,
) -> PrunableModel:
    """Build one of :data:`MODELS`; ``seed`` (if given) seeds the initialization (torch's global
    RNG state is restored afterwards); ``options`` are family options by name (e.g. a ViT's).

    Raises:
        InvalidInputError: unknown ``name`` (field ``model.name``).
    """
    if name not in _BUILDERS:
        raise InvalidInputError("model.name", f"= {name!r}; accepted: {', '.join(_BUILDERS)}")
    from proxcompress.training.models.base import ModelSpec
    from proxcompress.training.recipes import seeded

    module, _, function = _BUILDERS[name].partition(":")
    build = getattr(importlib.import_module(module), function)
    spec = ModelSpec(in_channels, image_size, classes, tuple(hidden), width, tuple(stages),
                     blocks, batchnorm, activation, dropout, dict(options))
    with seeded(seed):
        model: PrunableModel = build(spec)
    return model


_PUBLIC = {
    "ACTIVATIONS": "base",
    "ChannelUnit": "base",
    "ModelSpec": "base",
    "PrunableModel": "base",
    "activation_module": "base",
    "calibrate_batchnorm": "base",
    "MLP": "mlp",
    "VGGSmall": "cnn",
    "BasicBlock": "resnet",
    "ResNet20": "resnet",
    "SpeechResNet": "speech",
    "VisionTransformer": "vit",
}

__all__ = ["ACTIVATIONS", "MLP", "MODELS", "BasicBlock", "ChannelUnit", "ModelSpec",
           "PrunableModel", "ResNet20", "SpeechResNet", "VGGSmall", "VisionTransformer",
           "activation_module", "build_model", "calibrate_batchnorm", "model_names",
           "register_model"]

__getattr__ = lazy_getattr("proxcompress.training.models", _PUBLIC)
