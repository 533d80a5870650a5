"""Multiplication-free recipes: swap a model's linear / conv layers for shift, Euclid or L1 ones.

:class:`MulFreeRecipe` is the multiplication-free family's
:class:`~proxcompress.training.recipes.Recipe`; :func:`mulfree_model` applies it (as
:func:`proxcompress.training.quantize.quantize_model` does) with the layers of :mod:`.shift` and
:mod:`.euclid`; it keeps the first and the last linear/conv layer full
precision by default (as every paper here does: DenseShift and S3 keep the first 7x7 conv and the
classifier, AdderNet the first and last layer). Methods:

========== ===================================== ======================================
method     layers                                weights
========== ===================================== ======================================
deepshift  :class:`~.shift.ShiftLinear` / Conv   latent copied from the float layer, rounded
denseshift :class:`~.shift.DenseShiftLinear` / … fresh latents, std ``init_std`` (paper init)
s3         :class:`~.shift.S3Linear` / …         fresh latents, Kaiming or dense (paper init)
euclid     :class:`~.euclid.EuclidLinear` / …    copied (the homotopy starts from the float net)
adder      :class:`~.euclid.AdderLinear` / …     copied
========== ===================================== ======================================

Biases are copied in every case. :class:`MulFreeTraining` bundles what a training loop adds for
these methods: S3's regularizer in the loss, the homotopy ``theta`` after every step, and the
weight-freezing metric at every epoch end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from proxcompress.errors import InvalidInputError
from proxcompress.training.euclid import (
    ADDER_ETA,
    AdderConv2d,
    AdderGrad,
    AdderLinear,
    EuclidConv2d,
    EuclidLinear,
    HomotopyLayer,
    HomotopySchedule,
    homotopy_layers,
    set_theta,
)
from proxcompress.training.recipes import MULFREE_BITS, LayerSwap, TrainingHooks
from proxcompress.training.shift import (
    DENSESHIFT_INIT_STD,
    S3_REG_WEIGHT,
    DenseShiftConv2d,
    DenseShiftLinear,
    FreezingTracker,
    Rounding,
    S3Conv2d,
    S3Init,
    S3Linear,
    ShiftConv2d,
    ShiftLayer,
    ShiftLinear,
    Surrogate,
    s3_regularizer,
    shift_layers,
)

if TYPE_CHECKING:
    from proxcompress.training.config import TrainConfig

#: method name -> (linear class, conv class); the names are :data:`.recipes.MULFREE_BITS`'s
_LAYERS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "deepshift": (ShiftLinear, ShiftConv2d),
    "denseshift": (DenseShiftLinear, DenseShiftConv2d),
    "s3": (S3Linear, S3Conv2d),
    "euclid": (EuclidLinear, EuclidConv2d),
    "adder": (AdderLinear, AdderConv2d),
}
METHODS: tuple[str, ...] = tuple(MULFREE_BITS)
#: default bits per method (the shift ones)
DEFAULT_BITS = {m: spec[0] for m, spec in MULFREE_BITS.items() if spec is not None}
_BITS_RANGE = {m: spec[1] for m, spec in MULFREE_BITS.items() if spec is not None}
_COPY_WEIGHTS = ("deepshift", "euclid", "adder")


@dataclass(frozen=True)
class MulFreeRecipe(LayerSwap):
    """What :func:`mulfree_model` does; every [U] choice of the layers is a field here.

    Attributes:
        method: one of :data:`METHODS`.
        bits: bits per shift weight (``None``: 4 for deepshift, 3 for denseshift and s3).
        keep_first: keep the first linear/conv layer (module order) full precision.
        keep_last: keep the last one full precision.
        skip: names of further layers to keep full precision.
        zero: deepshift: the format has 0 (default ``True``).
        rounding: deepshift: ``"log"`` (default) or ``"linear"`` [U].
        surrogate: denseshift: backward ``"sqrt"`` (default) or ``"pow2"`` [U].
        init_std: denseshift: latent init std (default 1e-3) [U].
        s3_init: s3: ``"kaiming"`` (default) or ``"dense"`` [U].
        reg_weight: s3: weight of the dense-weight regularizer (default 1e-5).
        euclid_scale: euclid: ``s`` in ``-s ||x - w||^2`` (default 0.5) [U].
        adder_grad: adder: ``"addernet"`` (default) or ``"exact"`` [U].
        adder_eta: adder: adaptive learning-rate coefficient (default 0.1, ``None`` off) [U].
        homotopy: euclid / adder: the ``theta`` schedule (default linear 0 -> 1 over the first
            half of training) [U].
        freezing_window: snapshots between compared codes of the freezing metric (default 1).
        init_scale: multiplies every latent weight of the shift layers after their init
            (default 1): the initialization-scale study of S3's claim (docs/results.md).
    """

    method: str
    bits: int | None = None
    keep_first: bool = True
    keep_last: bool = True
    skip: tuple[str, ...] = ()
    zero: bool = True
    rounding: Rounding = "log"
    surrogate: Surrogate = "sqrt"
    init_std: float = DENSESHIFT_INIT_STD
    s3_init: S3Init = "kaiming"
    reg_weight: float = S3_REG_WEIGHT
    euclid_scale: float = 0.5
    adder_grad: AdderGrad = "addernet"
    adder_eta: float | None = ADDER_ETA
    homotopy: HomotopySchedule = field(default_factory=HomotopySchedule)
    freezing_window: int = 1
    init_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in _LAYERS:
            raise InvalidInputError("method", f"= {self.method!r}; accepted: "
                                    f"{', '.join(METHODS)}")
        if self.bits is not None:
            if self.method not in _BITS_RANGE:
                raise InvalidInputError("bits", f"is not a parameter of {self.method!r} "
                                        "(float weights); leave it null")
            low, high = _BITS_RANGE[self.method]
            if isinstance(self.bits, bool) or not isinstance(self.bits, int) \
                    or not low <= self.bits <= high:
                raise InvalidInputError("bits", f"= {self.bits!r}; accepted for "
                                        f"{self.method}: [{low}, {high}]")
        if not (isinstance(self.reg_weight, int | float) and math.isfinite(self.reg_weight)
                and self.reg_weight >= 0):
            raise InvalidInputError("reg_weight", f"= {self.reg_weight!r} must be >= 0")
        if not (isinstance(self.init_scale, int | float) and math.isfinite(self.init_scale)
                and self.init_scale > 0):
            raise InvalidInputError("init_scale", f"= {self.init_scale!r} must be > 0")

    @property
    def resolved_bits(self) -> int | None:
        """``bits`` or the method's default (``None`` for euclid / adder)."""
        return self.bits if self.bits is not None else DEFAULT_BITS.get(self.method)

    def layer_options(self) -> dict[str, Any]:
        """Keyword arguments of the method's layer classes."""
        m = self.method
        if m == "deepshift":
            return {"bits": self.resolved_bits, "zero": self.zero, "rounding": self.rounding}
        if m == "denseshift":
            return {"bits": self.resolved_bits, "surrogate": self.surrogate,
                    "init_std": self.init_std}
        if m == "s3":
            return {"bits": self.resolved_bits, "init": self.s3_init}
        if m == "euclid":
            return {"scale": self.euclid_scale, "theta": self.homotopy.value(0, 1)}
        return {"grad": self.adder_grad, "eta": self.adder_eta,
                "theta": self.homotopy.value(0, 1)}

    @property
    def latent_clip(self) -> float | None:
        """No latent clipping (the shift and distance layers keep their own latents)."""
        return None

    def excluded(self, module: nn.Module) -> bool:
        from proxcompress.training.layers import QuantizedMixin

        return isinstance(module, QuantizedMixin) or _is_mulfree(module)

    def replacement(self, module: nn.Module, index: int) -> nn.Module:
        return _swap(module, self)

    def apply(self, model: nn.Module, *, seed: int | None = None) -> nn.Module:
        """:func:`mulfree_model`."""
        return self.swap(model, seed)

    def hooks(self, model: nn.Module, total_steps: int, cfg: TrainConfig | None = None
              ) -> MulFreeTraining:
        """:class:`MulFreeTraining` (``mulfree.freezing_every`` from ``cfg``)."""
        every = cfg.mulfree.freezing_every if cfg is not None else 0
        return MulFreeTraining(model, self, total_steps, every)


def recipe_from_config(cfg: TrainConfig) -> MulFreeRecipe:
    """The config's multiplication-free recipe (``quant.weights`` one of :data:`METHODS`, its
    options in the ``mulfree`` section; ``keep_first`` / ``keep_last`` from ``quant``)."""
    q, f = cfg.quant, cfg.mulfree
    return MulFreeRecipe(
        q.weights, bits=f.bits, keep_first=q.keep_first, keep_last=q.keep_last, zero=f.zero,
        rounding=f.rounding, surrogate=f.surrogate, init_std=f.init_std,
        s3_init=f.s3_init, reg_weight=f.reg_weight, euclid_scale=f.euclid_scale,
        adder_grad=f.adder_grad, adder_eta=f.adder_eta,
        homotopy=HomotopySchedule(f.homotopy.kind, f.homotopy.start, f.homotopy.ramp),
        freezing_window=f.freezing_window, init_scale=f.init_scale)


def _is_mulfree(m: nn.Module) -> bool:
    return isinstance(m, ShiftLayer | HomotopyLayer)


def _swap(module: nn.Module, recipe: MulFreeRecipe) -> nn.Module:
    linear_cls, conv_cls = _LAYERS[recipe.method]
    opts = recipe.layer_options()
    new: nn.Module
    if isinstance(module, nn.Linear):
        new = linear_cls(module.in_features, module.out_features, module.bias is not None,
                         **opts)
    elif isinstance(module, nn.Conv2d):
        new = conv_cls(module.in_channels, module.out_channels, module.kernel_size,
                       stride=module.stride, padding=module.padding, dilation=module.dilation,
                       groups=module.groups, bias=module.bias is not None,
                       padding_mode=module.padding_mode, **opts)
    else:  # pragma: no cover - guarded by the caller
        raise TypeError(type(module))
    with torch.no_grad():
        if recipe.method in _COPY_WEIGHTS:
            new.weight.copy_(module.weight)  # type: ignore[operator]
        if module.bias is not None:
            new.bias.copy_(module.bias)  # type: ignore[operator, union-attr]
        if recipe.init_scale != 1.0 and isinstance(new, ShiftLayer):
            for name, p in new.named_parameters():  # every latent weight, not the bias
                if name.startswith("weight"):
                    p.mul_(recipe.init_scale)
    if isinstance(new, ShiftConv2d | ShiftLinear) and new.auto_range:
        new.calibrate_range()
    return new.to(module.weight.device, module.weight.dtype)  # type: ignore[arg-type]


def mulfree_model(model: nn.Module, recipe: MulFreeRecipe, seed: int | None = None
                  ) -> nn.Module:
    """Replace, in place, every ``nn.Linear`` / ``nn.Conv2d`` of ``model`` (not already a
    quantized, shift, Euclid or L1 layer) by the recipe's layer, except the kept ones.

    Args:
        model: the model (changed in place and returned).
        recipe: the method and its options.
        seed: seeds the fresh latents of denseshift / s3 (``None``: the global RNG); the global
            RNG state is restored afterwards.

    Raises:
        InvalidInputError: a ``skip`` name that is not a linear/conv layer, or a layer the
            method cannot take (e.g. a grouped conv for euclid / adder).
    """
    return recipe.apply(model, seed=seed)


def mulfree_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` of every shift, Euclid and L1 layer of ``model``."""
    return [(n, m) for n, m in model.named_modules() if _is_mulfree(m)]


@dataclass(frozen=True)
class DeployedStorage:
    """Storage of the mulfree layers of a model once deployed.

    Attributes:
        latent_ids: ``id()`` of every latent parameter (not stored when deployed).
        weights: number of deployed weights in those layers.
        bits: their storage in bits (shift: ``bits`` per weight; Euclid / L1: 32).
    """

    latent_ids: frozenset[int]
    weights: int
    bits: int


def deployed_storage(model: nn.Module) -> DeployedStorage:
    """Latent parameters and deployed bits of the mulfree layers (for a model summary)."""
    ids: set[int] = set()
    weights = bits = 0
    for _, m in mulfree_layers(model):
        n = cast(Tensor, m.weight).numel()
        weights += n
        if isinstance(m, ShiftLayer):
            ids.update(id(p) for p in m.latent_parameters())
            bits += n * m.bits
        else:
            ids.add(id(m.weight))
            bits += 32 * n
    return DeployedStorage(frozenset(ids), weights, bits)


class MulFreeTraining(TrainingHooks):
    """What a training loop adds for a mulfree model (one object per run; the family's
    :class:`~proxcompress.training.recipes.TrainingHooks`).

    * :meth:`regularizer`: S3's dense-weight term (add to the loss; ``None`` without S3 layers);
    * :meth:`after_step`: set the homotopy ``theta`` for the next step (Euclid / L1 layers);
    * :meth:`epoch_metrics`: the weight-freezing metric (shift layers), for ``metrics.jsonl``.

    Args:
        model: the model after :func:`mulfree_model`.
        recipe: its recipe.
        total_steps: optimizer steps of the whole run (the homotopy's horizon).
        freezing_every: also measure the freezing metric every that many steps
            (:meth:`step_metrics`, consecutive snapshots; 0: off).
    """

    def __init__(self, model: nn.Module, recipe: MulFreeRecipe, total_steps: int,
                 freezing_every: int = 0) -> None:
        if isinstance(freezing_every, bool) or not isinstance(freezing_every, int) \
                or freezing_every < 0:
            raise InvalidInputError("freezing_every", f"= {freezing_every!r} must be an "
                                    "integer >= 0")
        self.model = model
        self.recipe = recipe
        self.total_steps = max(int(total_steps), 1)
        self.has_s3 = any(isinstance(m, S3Linear | S3Conv2d) for _, m in shift_layers(model))
        self.has_homotopy = bool(homotopy_layers(model))
        shifts = bool(shift_layers(model))
        self.tracker = FreezingTracker(recipe.freezing_window) if shifts else None
        self.freezing_every = freezing_every if shifts else 0
        self.step_tracker = FreezingTracker(1) if self.freezing_every else None
        for tracker in (self.tracker, self.step_tracker):
            if tracker is not None:
                tracker.update(model)
        self.after_step(0)

    def regularizer(self) -> Tensor | None:
        """``reg_weight * sum ||max(-W_sparse, 0)||_1`` or ``None``."""
        if not self.has_s3:
            return None
        return s3_regularizer(self.model, self.recipe.reg_weight)

    def after_step(self, step: int) -> None:
        """Write ``theta = homotopy.value(step, total_steps)`` into the Euclid / L1 layers."""
        if self.has_homotopy:
            set_theta(self.model, self.recipe.homotopy.value(step, self.total_steps))

    def state_tensors(self) -> dict[str, Tensor]:
        """The freezing trackers' snapshots as named tensors (for the checkpoint)."""
        out: dict[str, Tensor] = {}
        for prefix, tracker in (("epoch", self.tracker), ("step", self.step_tracker)):
            if tracker is not None:
                out.update({f"{prefix}.{k}": v for k, v in tracker.state_tensors().items()})
        return out

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore :meth:`state_tensors` (trackers absent from ``tensors`` keep their
        snapshot of the current model)."""
        for prefix, tracker in (("epoch", self.tracker), ("step", self.step_tracker)):
            part = {k[len(prefix) + 1:]: v for k, v in tensors.items()
                    if k.startswith(prefix + ".")}
            if tracker is not None and part:
                tracker.load_state_tensors(part)

    def step_metrics(self, step: int) -> dict[str, float] | None:
        """Every ``freezing_every`` steps: the freezing metric against the snapshot
        ``freezing_every`` steps before (``None`` at other steps or when off)."""
        if self.step_tracker is None or step % self.freezing_every:
            return None
        return self.step_tracker.update(self.model)

    def epoch_metrics(self) -> dict[str, float]:
        """``{"frozen", "sign_frozen", "exponent_frozen"}`` since the previous call (empty for
        the first snapshot or a model without shift layers), plus ``theta`` where it applies."""
        out: dict[str, float] = {}
        if self.tracker is not None:
            out.update(self.tracker.update(self.model) or {})
        layers = homotopy_layers(self.model)
        if layers:
            out["theta"] = float(layers[0][1].theta)
        return out


__all__ = [
    "DEFAULT_BITS",
    "METHODS",
    "DeployedStorage",
    "MulFreeRecipe",
    "MulFreeTraining",
    "deployed_storage",
    "mulfree_layers",
    "mulfree_model",
    "recipe_from_config",
]
