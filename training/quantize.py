"""``quantize_model(model, recipe)``: swap linear / conv layers for binary ones; model summary.

The recipe says which pair quantizes the weights (a catalogue name), which (if any) quantizes
the activations, the per-channel scale, and which layers stay full precision: by default the
first and the last layer, as in BNN (Hubara et al. 2016), XNOR-Net and larq's recipes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from proxcompress.errors import InvalidInputError
from proxcompress.training.layers import BinaryConv2d, BinaryLinear, QuantizedMixin, Scale
from proxcompress.training.quantizers import DerivativePoint, get_quantizer, quantizer_parameters

if TYPE_CHECKING:
    from proxcompress.training.mulfree import MulFreeRecipe


@dataclass(frozen=True)
class QuantRecipe:
    """What :func:`quantize_model` does.

    Attributes:
        weights: catalogue pair for the weights (``"none"``: leave the model full precision).
        activations: catalogue pair for the inputs of binary layers, ``None`` to keep them full
            precision. The inputs of every binary layer are quantized, except those of the
            model's first layer (the image), which never are.
        scale: per-output-channel scale ``mean |w|``: ``"channel"`` (default; constant in the
            backward pass, Bi-Real Net), ``"channel-grad"`` (with its gradient, XNOR-Net) or
            ``"none"``.
        keep_first: keep the first linear/conv layer (in module order) full precision.
        keep_last: keep the last one full precision.
        skip: names of further modules to keep full precision.
        beta: SignSwish sharpness for ``bnn+`` / ``bnn++`` / ``bnn++-prox`` (``None``: the
            pair's default) [U].
        beta_growth: ``bnn++``'s ``beta(mu) = beta + beta_growth mu`` (``None``: its default)
            [U].
        derivative_at: override where ``B'`` is evaluated (``None``: the method's point) [U].
    """

    weights: str = "bnn++"
    activations: str | None = None
    scale: Scale = "channel"
    keep_first: bool = True
    keep_last: bool = True
    skip: tuple[str, ...] = field(default_factory=tuple)
    beta: float | None = None
    beta_growth: float | None = None
    derivative_at: DerivativePoint | None = None

    def quantizer(self, name: str) -> Any:
        given = {"beta": self.beta, "beta_growth": self.beta_growth}
        params = {p: given[p] for p in quantizer_parameters(name)
                  if given.get(p) is not None}
        return get_quantizer(name, derivative_at=self.derivative_at, **params)


def _swap(module: nn.Module, recipe: QuantRecipe) -> nn.Module:
    wq = recipe.quantizer(recipe.weights)
    aq = recipe.quantizer(recipe.activations) if recipe.activations else None
    new: nn.Module
    if isinstance(module, nn.Linear):
        new = BinaryLinear(
            module.in_features,
            module.out_features,
            module.bias is not None,
            weight_quantizer=wq,
            input_quantizer=aq,
            scale=recipe.scale,
        )
    elif isinstance(module, nn.Conv2d):
        new = BinaryConv2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=module.groups,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
            weight_quantizer=wq,
            input_quantizer=aq,
            scale=recipe.scale,
        )
    else:  # pragma: no cover - guarded by the caller
        raise TypeError(type(module))
    with torch.no_grad():
        new.weight.copy_(module.weight)
        if module.bias is not None:
            new.bias.copy_(module.bias)  # type: ignore[union-attr]
    return new.to(module.weight.device, module.weight.dtype)


def swappable_layers(
    model: nn.Module,
    skip: tuple[str, ...],
    keep_first: bool,
    keep_last: bool,
    exclude: Callable[[nn.Module], bool],
) -> list[tuple[str, nn.Module, bool]]:
    """The ``nn.Linear`` / ``nn.Conv2d`` layers of ``model`` in module order (those for which
    ``exclude`` is false), each with whether it stays full precision: named in ``skip``, or the
    first / last layer when ``keep_first`` / ``keep_last``. Shared by every layer-swapping recipe.

    Raises:
        InvalidInputError: a ``skip`` name that is not such a layer.
    """
    layers = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear | nn.Conv2d) and not exclude(m)
    ]
    names = {name for name, _ in layers}
    for name in skip:
        if name not in names:
            raise InvalidInputError("skip", f"{name!r} is not a linear/conv layer of the model")
    keep = set(skip)
    if layers and keep_first:
        keep.add(layers[0][0])
    if layers and keep_last:
        keep.add(layers[-1][0])
    return [(name, m, name in keep) for name, m in layers]


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` in place of the submodule called ``name`` (dotted path) of ``model``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def quantize_model(model: nn.Module, recipe: QuantRecipe | MulFreeRecipe | None = None
                   ) -> nn.Module:
    """Replace, in place, every ``nn.Linear`` / ``nn.Conv2d`` of ``model`` by its binary twin
    (latent weights initialized from the full-precision ones), except the layers the recipe keeps.

    Returns ``model``. With ``recipe.weights == "none"`` the model is returned unchanged. A
    :class:`~proxcompress.training.mulfree.MulFreeRecipe` goes to
    :func:`~proxcompress.training.mulfree.mulfree_model` (shift, Euclid or L1 layers).

    Raises:
        InvalidInputError: an unknown pair name, or a ``skip`` name that is not a layer.
    """
    from proxcompress.training.mulfree import MulFreeRecipe, mulfree_model  # mulfree imports us

    if isinstance(recipe, MulFreeRecipe):
        return mulfree_model(model, recipe)
    recipe = recipe or QuantRecipe()
    if recipe.weights == "none":
        return model
    recipe.quantizer(recipe.weights)  # validate names early
    if recipe.activations:
        recipe.quantizer(recipe.activations)
    layers = swappable_layers(
        model, recipe.skip, recipe.keep_first, recipe.keep_last,
        exclude=lambda m: isinstance(m, QuantizedMixin),
    )
    for i, (name, module, kept) in enumerate(layers):
        if kept:
            continue
        new = _swap(module, recipe)
        if i == 0:  # the model's input (the image) is never quantized
            new.input_quantizer = None  # type: ignore[assignment]
        replace_module(model, name, new)
    return model


# ---------------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class LayerInfo:
    """One linear / conv layer in a :class:`ModelSummary`."""

    name: str
    kind: str
    weights: int
    weight_bits: int
    activation_bits: int
    macs: int


@dataclass(frozen=True)
class ModelSummary:
    """Parameters, storage and multiply-accumulates of a model for one input sample.

    Attributes:
        parameters: every parameter (latent weights counted once).
        binary_parameters: weights stored with 1 bit (the quantized layers' ``weight``).
        bits: storage of the deployed model: 1 bit per binary weight (``log2 |Q|`` rounded up for
            larger value sets), ``bits`` per shift-layer weight (their latents not counted),
            32 per Euclid / L1 weight and per other parameter, plus 32 per BatchNorm running
            statistic.
        model_bytes: ``ceil(bits / 8)``.
        float_macs: multiply-accumulates of full-precision layers.
        binary_weight_macs: MACs with binary or shift weights and real inputs (sign-and-add,
            shift-and-add).
        binary_macs: MACs with binary weights and binary inputs (XNOR-popcount).
        layers: per-layer details.
    """

    parameters: int
    binary_parameters: int
    bits: int
    model_bytes: int
    float_macs: int
    binary_weight_macs: int
    binary_macs: int
    layers: tuple[LayerInfo, ...]

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "layers"}
        out["layers"] = [layer.__dict__ for layer in self.layers]
        return out

    def text(self) -> str:
        """A fixed-width table."""
        lines = [f"{'layer':<28} {'kind':<14} {'weights':>9} {'w bits':>6} {'a bits':>6} "
                 f"{'MACs':>11}"]
        for li in self.layers:
            lines.append(
                f"{li.name:<28} {li.kind:<14} {li.weights:>9} {li.weight_bits:>6} "
                f"{li.activation_bits:>6} {li.macs:>11}"
            )
        lines.append(
            f"parameters {self.parameters} (binary {self.binary_parameters}), "
            f"{self.model_bytes} bytes deployed; MACs: float {self.float_macs}, "
            f"binary-weight {self.binary_weight_macs}, binary {self.binary_macs}"
        )
        return "\n".join(lines)


def _bits_for(levels: tuple[float, ...]) -> int:
    n = len(levels)
    return max(1, (n - 1).bit_length())


def model_summary(model: nn.Module, input_shape: tuple[int, ...]) -> ModelSummary:
    """Count parameters, deployed storage and per-sample MACs of ``model`` on ``input_shape``
    (one sample, without the batch dimension), by running one forward pass with hooks."""
    from proxcompress.training.mulfree import deployed_storage
    from proxcompress.training.shift import ShiftLayer

    infos: list[LayerInfo] = []
    hooks = []

    def hook(name: str) -> Any:
        def fn(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            w = module.weight  # type: ignore[union-attr]
            if isinstance(module, nn.Conv2d):
                macs = int(output[0].numel() * w[0].numel())
            else:
                macs = int(w.numel())
            if isinstance(module, QuantizedMixin):
                wbits = _bits_for(module.weight_quantizer.levels)
                abits = (
                    _bits_for(module.input_quantizer.levels) if module.input_quantizer else 32
                )
            elif isinstance(module, ShiftLayer):
                wbits, abits = module.bits, 32
            else:
                wbits, abits = 32, 32
            infos.append(
                LayerInfo(name, type(module).__name__, int(w.numel()), wbits, abits, macs)
            )

        return fn

    for name, m in model.named_modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            hooks.append(m.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), dtype=param.dtype, device=param.device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    parameters = sum(p.numel() for p in model.parameters())
    binary = 0
    bits = 0
    quant_weights = set()
    for m in model.modules():
        if isinstance(m, QuantizedMixin):
            quant_weights.add(id(m.weight))
            binary += m.weight.numel()
            bits += m.weight.numel() * _bits_for(m.weight_quantizer.levels)
            if m.scale != "none":
                bits += 32 * m.weight.shape[0]
    mulfree = deployed_storage(model)
    bits += mulfree.bits
    for p in model.parameters():
        if id(p) not in quant_weights and id(p) not in mulfree.latent_ids:
            bits += 32 * p.numel()
    for name, b in model.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            bits += 32 * b.numel()
    fmacs = sum(i.macs for i in infos if i.weight_bits == 32)
    bwmacs = sum(i.macs for i in infos if i.weight_bits < 32 and i.activation_bits == 32)
    bmacs = sum(i.macs for i in infos if i.weight_bits < 32 and i.activation_bits < 32)
    return ModelSummary(
        parameters=int(parameters),
        binary_parameters=int(binary),
        bits=int(bits),
        model_bytes=int((bits + 7) // 8),
        float_macs=int(fmacs),
        binary_weight_macs=int(bwmacs),
        binary_macs=int(bmacs),
        layers=tuple(infos),
    )


__all__ = ["LayerInfo", "ModelSummary", "QuantRecipe", "model_summary", "quantize_model"]
