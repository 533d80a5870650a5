"""Model families, one module each, behind one registry (:func:`build_model`, ``model.name``).

========================= ============ =====================================================
``model.name``            module       model
========================= ============ =====================================================
``mlp``                   :mod:`.mlp`  :class:`~.mlp.MLP` (``hidden``, BN, activation, dropout)
``vgg``                   :mod:`.cnn`  :class:`~.cnn.VGGSmall` (``width``, ``stages``)
``resnet20``              :mod:`.resnet` :class:`~.resnet.ResNet20` (``width``, ``blocks``)
``speech-resnet``         :mod:`.speech` :class:`~.speech.SpeechResNet` (spoken commands)
``vit``                   :mod:`.vit`  :class:`~.vit.VisionTransformer` (ViT, BinaryViT)
``speech-lstm``           :mod:`.lstm` :class:`~.lstm.SpeechLSTM` (spoken commands, frames)
``lstm-lm``               :mod:`.lstm` :class:`~.lstm.LSTMLanguageModel` (words, KJV)
========================= ============ =====================================================

Each family module defines its model classes and ``build(spec: ModelSpec) -> PrunableModel``;
:data:`MODELS` maps the names to ``"module:function"`` and is read by the config's validation
without importing torch (this package's names are resolved lazily). :mod:`.base` holds what all
share: :class:`~.base.ChannelUnit`, :class:`~.base.PrunableModel`, :class:`~.base.ModelSpec`,
:func:`~.base.calibrate_batchnorm`. Adding a family: docs/extending.md.
"""

from __future__ import annotations

import importlib
import inspect
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
    from proxcompress.training.models.lstm import LSTMLanguageModel, SpeechLSTM
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
    "speech-lstm": "proxcompress.training.models.lstm:build_speech",
    "lstm-lm": "proxcompress.training.models.lstm:build_language_model",
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
        InvalidInputError: unknown ``name`` (field ``model.name``); a model above
            ``runchecks.MAX_PARAMETERS`` parameters (naming the size argument given).
    """
    if name not in _BUILDERS:
        raise InvalidInputError("model.name", f"= {name!r}; accepted: {', '.join(_BUILDERS)}")
    from proxcompress.training.models.base import ModelSpec
    from proxcompress.training.recipes import seeded

    module, _, function = _BUILDERS[name].partition(":")
    build = getattr(importlib.import_module(module), function)
    spec = ModelSpec(in_channels, image_size, classes, tuple(hidden), width, tuple(stages),
                     blocks, batchnorm, activation, dropout, dict(options))
    given = {"hidden": tuple(hidden), "width": width, "stages": tuple(stages), "blocks": blocks,
             "image_size": image_size, "classes": classes, "in_channels": in_channels}
    _check_size(name, build, spec, [k for k, v in given.items() if v != _DEFAULTS[k]])
    with seeded(seed):
        model: PrunableModel = build(spec)
    return model


def _check_size(name: str, build: Any, spec: Any, given: list[str]) -> None:
    """Refuse a model above ``runchecks.MAX_PARAMETERS`` before anything is allocated: it is
    built once on PyTorch's ``meta`` device (shapes only, no RNG drawn) and its parameters
    counted; the error names the size argument the caller set (``model`` when none)."""
    import torch

    from proxcompress.training.runchecks import MAX_PARAMETERS

    if torch.empty(0).device.type == "meta":  # already a shape-only build
        return
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        count = sum(p.numel() for p in build(spec).parameters())
    if count > MAX_PARAMETERS:
        field = given[0] if given else "model"
        raise InvalidInputError(field, f"the {name} model would have {count:,} parameters; at "
                                f"most {MAX_PARAMETERS:,} are accepted")


#: build_model's size arguments at their defaults (an error names the one the caller changed)
_DEFAULTS = {k: (tuple(p.default) if isinstance(p.default, tuple) else p.default)
             for k, p in inspect.signature(build_model).parameters.items()
             if p.default is not inspect.Parameter.empty}

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
    "LSTMLanguageModel": "lstm",
    "SpeechLSTM": "lstm",
}

__all__ = ["ACTIVATIONS", "MLP", "MODELS", "BasicBlock", "ChannelUnit", "LSTMLanguageModel",
           "ModelSpec", "PrunableModel", "ResNet20", "SpeechLSTM", "SpeechResNet", "VGGSmall",
           "VisionTransformer", "activation_module", "build_model", "calibrate_batchnorm",
           "model_names", "register_model"]

__getattr__ = lazy_getattr("proxcompress.training.models", _PUBLIC)
