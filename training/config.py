"""Training configuration: typed dataclasses, validated YAML, ``--set key=value`` overrides.

A config file is YAML with the top-level keys of :class:`TrainConfig`; every key is optional
(defaults below). Validation happens before any work: an unknown key, a wrong type or a value
out of range raises :class:`~proxcompress.errors.InvalidInputError` naming the dotted field
(e.g. ``optim.lr``) and what is accepted. Overrides ``--set optim.lr=0.01`` parse the value as
YAML (``1`` an int, ``0.5`` a float, ``[256, 256]`` a list, ``null`` None).
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from proxcompress.errors import InvalidInputError

QUANTIZERS = ("binaryconnect", "bnn", "bnn+", "proxconnect", "proxconnect-clip", "bnn++",
              "proxquant", "ternary", "shift")
#: multiplication-free methods of :mod:`proxcompress.training.mulfree` (its ``METHODS``; kept
#: here as names so that validating a config does not import torch)
MULFREE_METHODS = ("deepshift", "denseshift", "s3", "euclid", "adder")


def _check(fn: Any, accepted: str) -> dict[str, Any]:
    return {"check": fn, "accepted": accepted}


def _positive(v: Any) -> bool:
    return v > 0


def _non_negative(v: Any) -> bool:
    return v >= 0


@dataclass
class DataConfig:
    """``data``: which data set.

    ``name``: ``fashion-mnist`` (Debian's IDX files under ``root``, default
    ``/usr/share/datasets/fashion-mnist``), ``embedded`` (4000/1000 images shipped with the
    package) or ``synthetic`` (random templates, tests). ``train_subset`` / ``test_subset``: use
    a seeded subset of that many samples (``null``: all).
    """

    name: Literal["fashion-mnist", "embedded", "synthetic"] = "embedded"
    root: str | None = None
    train_subset: int | None = field(default=None, metadata=_check(_positive, "> 0 or null"))
    test_subset: int | None = field(default=None, metadata=_check(_positive, "> 0 or null"))
    synthetic_samples: int = field(default=512, metadata=_check(_positive, "> 0"))
    image_size: Literal[28, 32] = 28
    in_channels: Literal[1, 3] = 1


@dataclass
class ModelConfig:
    """``model``: ``mlp`` (``hidden`` widths), ``vgg`` (``width``, ``stages``: convs per stage)
    or ``resnet20`` (``width``, ``blocks`` per stage)."""

    name: Literal["mlp", "vgg", "resnet20"] = "mlp"
    hidden: list[int] = field(default_factory=lambda: [512, 512],
                              metadata=_check(lambda v: len(v) > 0 and min(v) > 0,
                                              "a non-empty list of widths > 0"))
    width: int | None = field(default=None, metadata=_check(_positive, "> 0 or null"))
    stages: list[int] = field(default_factory=lambda: [1, 1],
                              metadata=_check(lambda v: len(v) > 0 and min(v) > 0,
                                              "a non-empty list of conv counts > 0"))
    blocks: int = field(default=3, metadata=_check(_positive, "> 0"))
    batchnorm: bool = True
    activation: Literal["relu", "hardtanh"] = "relu"
    dropout: float = field(default=0.0, metadata=_check(lambda v: 0 <= v < 1, "[0, 1)"))


@dataclass
class QuantConfig:
    """``quant``: ``weights`` is a catalogue pair name, a multiplication-free method
    (``deepshift``, ``denseshift``, ``s3``, ``euclid``, ``adder``: options in ``mulfree``) or
    ``none`` (full precision); ``activations`` a pair for the inputs of binary layers or
    ``null``. [U] choices:
    ``beta`` (SignSwish, 5), ``derivative_at`` (``null``: the method's own point),
    ``scale`` (``channel``: mean |w| per output channel, treated as a constant in the backward
    pass; ``channel-grad``: with its gradient; ``none``), ``latent_clip`` (1.0)."""

    weights: str = field(default="none", metadata=_check(
        lambda v: v in ("none", *QUANTIZERS, *MULFREE_METHODS),
        f"none, {', '.join(QUANTIZERS + MULFREE_METHODS)}"))
    activations: str | None = field(default=None, metadata=_check(
        lambda v: v is None or v in QUANTIZERS, f"null, {', '.join(QUANTIZERS)}"))
    scale: Literal["none", "channel", "channel-grad"] = "channel"
    keep_first: bool = True
    keep_last: bool = True
    beta: float = field(default=5.0, metadata=_check(_positive, "> 0"))
    derivative_at: Literal["prox", "latent"] | None = None
    latent_clip: float | None = field(default=1.0, metadata=_check(_positive, "> 0 or null"))


@dataclass
class HomotopyConfig:
    """``mulfree.homotopy``: the Euclid / L1 ``theta`` schedule
    (:class:`~proxcompress.training.euclid.HomotopySchedule`)."""

    kind: Literal["linear", "cosine", "step", "constant"] = "linear"
    start: float = field(default=0.0, metadata=_check(lambda v: 0 <= v <= 1, "[0, 1]"))
    ramp: float = field(default=0.5, metadata=_check(lambda v: 0 < v <= 1, "(0, 1]"))


@dataclass
class MulFreeConfig:
    """``mulfree``: options of the multiplication-free methods (``quant.weights`` one of
    ``deepshift``, ``denseshift``, ``s3``, ``euclid``, ``adder``), the fields of
    :class:`~proxcompress.training.mulfree.MulFreeRecipe` (``keep_first`` / ``keep_last`` come
    from ``quant``). ``bits``: ``null`` is the method's default (4 deepshift, 3 denseshift and
    s3), only for the shift methods. Ignored for other ``quant.weights``."""

    bits: int | None = None
    zero: bool = True
    rounding: Literal["log", "linear"] = "log"
    surrogate: Literal["sqrt", "pow2"] = "sqrt"
    init_std: float = field(default=1e-3, metadata=_check(_positive, "> 0"))
    s3_init: Literal["kaiming", "dense"] = "kaiming"
    reg_weight: float = field(default=1e-5, metadata=_check(_non_negative, ">= 0"))
    euclid_scale: float = field(default=0.5, metadata=_check(_positive, "> 0"))
    adder_grad: Literal["addernet", "exact"] = "addernet"
    adder_eta: float | None = field(default=0.1, metadata=_check(_positive, "> 0 or null"))
    homotopy: HomotopyConfig = field(default_factory=HomotopyConfig)
    freezing_window: int = field(default=1, metadata=_check(_positive, ">= 1"))


@dataclass
class MuConfig:
    """``mu``: the annealing schedule (:class:`~proxcompress.training.optim.MuSchedule`);
    ``aggregate``: ``mu_t = start + scale * sum eta_s`` (ProxConnect, default)."""

    schedule: Literal["aggregate", "linear", "exponential", "constant"] = "aggregate"
    scale: float = field(default=100.0, metadata=_check(_non_negative, ">= 0"))
    start: float = field(default=0.0, metadata=_check(_non_negative, ">= 0"))
    end: float = field(default=100.0, metadata=_check(_non_negative, ">= 0"))


@dataclass
class OptimConfig:
    """``optim``: optimizer, learning-rate schedule (per step: ``cosine`` to 0 over each phase,
    ``constant``, or ``multistep`` with ``milestones`` in epochs and factor ``gamma``) and the
    global batch size (split over processes under torchrun)."""

    name: Literal["adam", "sgd"] = "adam"
    lr: float = field(default=1e-3, metadata=_check(_positive, "> 0"))
    momentum: float = field(default=0.9, metadata=_check(lambda v: 0 <= v < 1, "[0, 1)"))
    weight_decay: float = field(default=0.0, metadata=_check(_non_negative, ">= 0"))
    schedule: Literal["cosine", "constant", "multistep"] = "cosine"
    milestones: list[int] = field(default_factory=list,
                                  metadata=_check(lambda v: all(m > 0 for m in v), "epochs > 0"))
    gamma: float = field(default=0.1, metadata=_check(_positive, "> 0"))
    batch_size: int = field(default=128, metadata=_check(_positive, "> 0"))


@dataclass
class SPRConfig:
    """``spr``: SPR structured pruning (Cacciola et al., arXiv:2206.14056): pre-train
    ``pretrain_epochs`` (for ``M``), train ``epochs`` from a fresh init with CE + SPR, threshold
    search on ``search_samples`` training images within ``tolerance`` accuracy points, physical
    removal, fine-tune ``finetune_epochs`` (lr ``finetune_lr``, default ``optim.lr / 10``).
    ``units``: unit names to prune (``null``: all). Full-precision models only."""

    enabled: bool = False
    lam: float = field(default=1.0, metadata=_check(_non_negative, ">= 0"))
    alpha: float = field(default=0.1, metadata=_check(lambda v: 0 < v < 1, "(0, 1)"))
    M_rule: Literal["blockwise", "layerwise"] = "blockwise"
    M_scale: float = field(default=1.0, metadata=_check(_positive, "> 0"))
    with_norm: bool = True
    pretrain_epochs: int = field(default=1, metadata=_check(_positive, ">= 1"))
    finetune_epochs: int = field(default=1, metadata=_check(_non_negative, ">= 0"))
    finetune_lr: float | None = field(default=None, metadata=_check(_positive, "> 0 or null"))
    tolerance: float = field(default=0.5, metadata=_check(_non_negative, ">= 0"))
    search_samples: int = field(default=2000, metadata=_check(_positive, "> 0"))
    weight_range: float = field(default=0.1, metadata=_check(_positive, "> 0"))
    units: list[str] | None = None


@dataclass
class TrainConfig:
    """The whole run. ``seed`` seeds everything; ``epochs`` are the main training epochs;
    ``threads`` sets ``torch.set_num_threads`` (``null``: leave it); ``checkpoint_every``
    saves every that many steps too (0: only at epoch ends and on interrupt)."""

    seed: int = field(default=0, metadata=_check(_non_negative, ">= 0"))
    epochs: int = field(default=1, metadata=_check(_non_negative, ">= 0"))
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    threads: int | None = field(default=None, metadata=_check(_positive, "> 0 or null"))
    progress: bool = True
    checkpoint_every: int = field(default=0, metadata=_check(_non_negative, ">= 0"))
    eval_batch_size: int = field(default=1000, metadata=_check(_positive, "> 0"))
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    mulfree: MulFreeConfig = field(default_factory=MulFreeConfig)
    mu: MuConfig = field(default_factory=MuConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    spr: SPRConfig = field(default_factory=SPRConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(path: str, value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(path, value, arg)
            except InvalidInputError as exc:
                errors.append(str(exc).split(": ", 1)[-1])
        raise InvalidInputError(path, " or ".join(errors) + (" or null" if type(None) in args
                                                             else ""))
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices and not isinstance(value, bool):
            return value
        raise InvalidInputError(path, f"= {value!r}; accepted: {', '.join(map(str, choices))}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise InvalidInputError(path, f"= {value!r} must be a list of {_type_name(item)}")
        return [_coerce(f"{path}[{i}]", v, item) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return _build(path, value, tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise InvalidInputError(path, f"= {value!r} must be true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise InvalidInputError(path, f"= {value!r} must be an integer")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise InvalidInputError(path, f"= {value!r} must be finite")
            return float(value)
        raise InvalidInputError(path, f"= {value!r} must be a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise InvalidInputError(path, f"= {value!r} must be a string")
    raise TypeError(f"unsupported config type {tp!r}")  # pragma: no cover


def _build(prefix: str, raw: Any, cls: Any) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidInputError(prefix or "config", f"must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise InvalidInputError(where, f"unknown key; accepted: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        path = f"{prefix}.{name}" if prefix else name
        value = _coerce(path, raw[name], hints[name])
        check = f.metadata.get("check")
        if check is not None and value is not None and not check(value):
            raise InvalidInputError(path, f"= {value!r} is outside the accepted range "
                                    f"({f.metadata['accepted']})")
        kwargs[name] = value
    return cls(**kwargs)


#: bit widths each shift method takes (``MulFreeRecipe`` checks the same ranges)
_MULFREE_BITS = {"deepshift": (2, 8), "denseshift": (2, 4), "s3": (3, 4)}


def _cross_checks(cfg: TrainConfig) -> None:
    if cfg.quant.weights in MULFREE_METHODS:
        if cfg.quant.activations:
            raise InvalidInputError("quant.activations", f"must be null with the "
                                    f"multiplication-free method {cfg.quant.weights!r}")
        bits, method = cfg.mulfree.bits, cfg.quant.weights
        if bits is not None and method not in _MULFREE_BITS:
            raise InvalidInputError("mulfree.bits", f"is not a parameter of {method!r} (float "
                                    "weights); leave it null")
        if bits is not None and not _MULFREE_BITS[method][0] <= bits <= _MULFREE_BITS[method][1]:
            low, high = _MULFREE_BITS[method]
            raise InvalidInputError("mulfree.bits", f"= {bits!r}; accepted for {method}: "
                                    f"[{low}, {high}]")
    if cfg.spr.enabled and cfg.quant.weights != "none":
        raise InvalidInputError("spr.enabled", "SPR pruning needs a full-precision model "
                                "(quant.weights: none)")
    if cfg.quant.activations and cfg.quant.weights == "none":
        raise InvalidInputError("quant.activations", "needs quant.weights set (binary layers)")
    if cfg.mu.schedule == "exponential" and cfg.mu.start <= 0:
        raise InvalidInputError("mu.start", "must be > 0 for the exponential schedule")


def config_from_dict(raw: Any) -> TrainConfig:
    """Validate a plain mapping (e.g. parsed YAML) into a :class:`TrainConfig`."""
    cfg = _build("", raw, TrainConfig)
    _cross_checks(cfg)
    return cfg


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw mapping (copied)."""
    import copy

    import yaml

    out = copy.deepcopy(raw) if raw else {}
    for item in overrides:
        if "=" not in item:
            raise InvalidInputError("--set", f"{item!r} must look like key=value")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise InvalidInputError("--set", f"{key!r} is not a dotted key")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInputError(key, f"value {text!r} is not valid YAML ({exc})") from None
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise InvalidInputError(key, f"{part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a YAML config file (``yaml.safe_load``: no arbitrary objects)."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"--config: {str(p)!r} does not exist")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInputError("config", f"{str(p)!r} is not valid YAML ({exc})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInputError("config", f"{str(p)!r} must hold a mapping at the top level")
    return raw


def load_config(path: str | os.PathLike[str] | None, overrides: list[str] | None = None
                ) -> TrainConfig:
    """Read, override and validate a config (``path`` ``None``: defaults + overrides)."""
    raw = read_yaml(path) if path is not None else {}
    return config_from_dict(apply_overrides(raw, overrides or []))


def dump_config(cfg: TrainConfig) -> str:
    """The resolved config as YAML (every key, defaults included)."""
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


__all__ = [
    "MULFREE_METHODS",
    "DataConfig",
    "HomotopyConfig",
    "ModelConfig",
    "MulFreeConfig",
    "MuConfig",
    "OptimConfig",
    "QuantConfig",
    "SPRConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "dump_config",
    "load_config",
    "read_yaml",
]
