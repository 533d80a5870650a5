"""``quantize_model(model, recipe)``: swap linear / conv layers for binary ones; model summary.

:class:`QuantRecipe` is the quantization family's :class:`~proxcompress.training.recipes.Recipe`:
it says which pair quantizes the weights (a catalogue name), which (if any) quantizes the
activations, the per-channel scale, and which layers stay full precision: by default the first
and the last layer, as in BNN (Hubara et al. 2016), XNOR-Net and larq's recipes.
:func:`quantize_model` applies any recipe (a
:class:`~proxcompress.training.mulfree.MulFreeRecipe` too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from proxcompress.proofs.registry import pair_spec
from proxcompress.training.layers import (
    ActivationQuantizer,
    BinaryConv2d,
    BinaryLinear,
    QuantizedMixin,
    Scale,
)
from proxcompress.training.quantizers import DerivativePoint, get_quantizer
from proxcompress.training.recipes import (
    LayerSwap,
    Recipe,
    TrainingHooks,
    replace_module,
    swappable_layers,
)

if TYPE_CHECKING:
    from proxcompress.training.config import TrainConfig


@dataclass(frozen=True)
class QuantRecipe(LayerSwap):
    """What :func:`quantize_model` does (the quantization family's recipe).

    Attributes:
        weights: catalogue pair for the weights (``"none"``: leave the model full precision).
        activations: catalogue pair for the inputs of binary layers, ``None`` to keep them full
            precision. The inputs of every binary layer are quantized, except those of the
            model's first layer (the image), which never are; so are the model's
            :class:`~proxcompress.training.layers.ActivationQuantizer` sites.
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
        latent_clip: the trainer clips the latent weights to ``[-c, c]`` after each step
            (BinaryConnect; ``None``: off).
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
    latent_clip: float | None = 1.0

    def quantizer(self, name: str) -> Any:
        """The torch op of the pair ``name`` with this recipe's parameters (``beta``,
        ``beta_growth`` where the catalogue pair takes them; ``None``: the pair's default)."""
        given = {"beta": self.beta, "beta_growth": self.beta_growth}
        accepted = pair_spec(name, "quantizer").parameters
        params = {p: v for p, v in given.items() if p in accepted and v is not None}
        return get_quantizer(name, derivative_at=self.derivative_at, **params)

    def excluded(self, module: nn.Module) -> bool:
        return isinstance(module, QuantizedMixin)

    def replacement(self, module: nn.Module, index: int) -> nn.Module:
        new = _swap(module, self)
        if index == 0:  # the model's input (the image) is never quantized
            new.input_quantizer = None  # type: ignore[assignment]
        return new

    def apply(self, model: nn.Module, *, seed: int | None = None) -> nn.Module:
        """:func:`quantize_model` (``seed`` is unused: the binary latents copy the float
        weights)."""
        if self.weights == "none":
            return model
        self.quantizer(self.weights)  # validate names early
        if self.activations:
            self.quantizer(self.activations)
            for site in model.modules():  # the model's own activation sites (e.g. Q, K, V)
                if isinstance(site, ActivationQuantizer) and site.quantizer is None:
                    site.quantizer = self.quantizer(self.activations)
        return self.swap(model)

    def hooks(self, model: nn.Module, total_steps: int, cfg: TrainConfig | None = None
              ) -> TrainingHooks:
        """None beyond ``mu`` and the latent clipping (the optimizer wrapper does both)."""
        return TrainingHooks()


def recipe_from_config(cfg: TrainConfig) -> QuantRecipe:
    """The ``quant`` section as a :class:`QuantRecipe`."""
    q = cfg.quant
    return QuantRecipe(weights=q.weights, activations=q.activations, scale=q.scale,
                       keep_first=q.keep_first, keep_last=q.keep_last, beta=q.beta,
                       beta_growth=q.beta_growth, derivative_at=q.derivative_at,
                       latent_clip=q.latent_clip)


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


def quantize_model(model: nn.Module, recipe: Recipe | None = None) -> nn.Module:
    """Apply ``recipe`` (default ``QuantRecipe()``) to ``model`` in place and return it.

    With a :class:`QuantRecipe`: replace every ``nn.Linear`` / ``nn.Conv2d`` by its binary twin
    (latent weights initialized from the full-precision ones), except the layers the recipe
    keeps; ``recipe.weights == "none"`` leaves the model unchanged. Any other
    :class:`~proxcompress.training.recipes.Recipe` (e.g. a
    :class:`~proxcompress.training.mulfree.MulFreeRecipe`: shift, Euclid or L1 layers) does what
    its ``apply`` does.

    Raises:
        InvalidInputError: an unknown pair name, or a ``skip`` name that is not a layer.
    """
    return (recipe or QuantRecipe()).apply(model)


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
            if not isinstance(module, nn.Linear | nn.Conv2d):  # an operand product
                macs, both_binary = module.count_macs(inputs, output)  # type: ignore[operator]
                bits = 1 if both_binary else 32
                infos.append(LayerInfo(name, type(module).__name__, 0, bits, bits, int(macs)))
                return
            w = module.weight
            # per output element, a dot product over one weight row (a linear layer on tokens
            # (T, K) computes T of them per output channel)
            macs = int(output[0].numel() * w[0].numel())
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
        # linear / conv layers, and modules that multiply activations with each other (e.g.
        # attention's Q K^T) and count their own MACs: ``count_macs(inputs, output) -> (MACs
        # per sample, both operands binary)``
        if isinstance(m, nn.Linear | nn.Conv2d) or callable(getattr(m, "count_macs", None)):
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


__all__ = ["LayerInfo", "ModelSummary", "QuantRecipe", "model_summary", "quantize_model",
           "recipe_from_config", "replace_module", "swappable_layers"]
