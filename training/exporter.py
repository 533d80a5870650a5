"""``export(model, path)``: write a trained model in the kernels' packed formats.

The folder ``path`` receives ``model.safetensors`` (tensors) and ``model.json`` (the manifest,
written last and atomically: the commit point; it records the tensor file's SHA-256), the format
:func:`proxcompress.kernels.load` reads (see :mod:`proxcompress.kernels.model` for the ops and
how each runs). Nothing is pickled.

The model is traced with ``torch.fx`` (binary, shift, Euclid and L1 layers as leaves), so any
model built from the supported pieces exports, including residual ones:

* layers: ``nn.Linear`` / ``nn.Conv2d`` (float32), :class:`~.layers.BinaryLinear` /
  :class:`~.layers.BinaryConv2d` with a binary pair (sign words + per-channel scale ``alpha * c``,
  ``c = |F_lim(1)|``) or a power-of-two / ternary pair (4-bit shift codes + scale), the shift
  layers of :mod:`.shift` (their integer codes, no scale), Euclid and L1 layers of :mod:`.euclid`
  (float32 weights; ``theta`` must be 1);
* ``BatchNorm1d/2d`` (running statistics), ``ReLU``, ``Hardtanh``, ``MaxPool2d``, ``AvgPool2d``
  (no padding), ``AdaptiveAvgPool2d(1)``, ``Flatten`` / ``x.flatten(d)``, ``+``, ``Dropout`` and
  ``Identity`` (identities in eval mode), ``x.contiguous(...)`` (a memory layout: no node).

The export is the *deployed* model: eval mode (running statistics, no dropout) and hard
quantization (``lim_{mu -> oo} F`` for the binary layers, as
:class:`~.layers.hard_quantization`). Binarized activations must be ``c * sign(x)`` (any binary
pair: ``F_lim(x) = c sign(x)``); other activation quantizers have no kernel and are refused.

The binary layers' stored bytes (1 bit per weight, rows padded to 64 bits, plus a float32 scale
per output) are about 30x smaller than their float32 weights for fan-ins of a few hundred;
``model.json`` records the stored and float32 bytes per layer (``storage``).
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, fx, nn

from proxcompress.atomic import sha256_file, write_atomic, write_json_atomic
from proxcompress.errors import InvalidInputError
from proxcompress.kernels import pack_shift, pack_signs
from proxcompress.kernels.model import FORMAT, MANIFEST, TENSORS, VERSION, ExportedModel
from proxcompress.training.euclid import AdderConv2d, AdderLinear, EuclidConv2d, EuclidLinear
from proxcompress.training.layers import ActivationQuantizer, QuantizedMixin
from proxcompress.training.models import vit
from proxcompress.training.shift import ShiftLayer


class _Tracer(fx.Tracer):
    """``torch.fx`` tracer keeping every exportable layer as one call."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, tuple(_LEAVES)) or super().is_leaf_module(m, qualname)


def _np(t: Tensor, dtype: Any) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(dtype))


class _Writer:
    """Collects nodes and tensors."""

    def __init__(self) -> None:
        self.input = ""
        self.output = ""
        self.nodes: list[dict[str, Any]] = []
        self.tensors: dict[str, np.ndarray] = {}
        self.storage: dict[str, dict[str, int]] = {}
        #: fx nodes that are their input under another name (``x.contiguous()``): no node of
        #: their own, so the exported graph (and the packed chains' patterns) see through them
        self.aliases: dict[str, str] = {}

    def resolve(self, name: str) -> str:
        """The exported node that holds fx node ``name``'s value."""
        while name in self.aliases:
            name = self.aliases[name]
        return name

    def add(self, name: str, op: str, inputs: list[str], attrs: dict[str, Any] | None = None,
            tensors: Mapping[str, np.ndarray | None] | None = None,
            float32_weights: int | None = None) -> None:
        inputs = [self.resolve(i) for i in inputs]
        names = {}
        stored = 0
        for key, arr in (tensors or {}).items():
            if arr is None:
                continue
            full = f"{name}.{key}"
            self.tensors[full] = arr
            names[key] = full
            stored += arr.nbytes
        self.nodes.append({"name": name, "op": op, "inputs": inputs, "attrs": attrs or {},
                           "tensors": names})
        if float32_weights is not None:
            self.storage[name] = {"stored_bytes": stored, "float32_bytes": 4 * float32_weights}


#: ``writer(w, node_name, module, input_names)``: adds a module's node(s) to the export
ModuleWriter = Callable[[_Writer, str, nn.Module, list[str]], None]
#: ``writer(w, fx_node, input_names) -> handled``
CallWriter = Callable[[_Writer, fx.Node, list[str]], bool]


def _conv_attrs(m: nn.Conv2d, where: str) -> dict[str, Any]:
    if m.groups != 1:
        raise InvalidInputError("model", f"layer {where!r}: groups = {m.groups}; the kernels "
                                "take groups=1 only")
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise InvalidInputError("model", f"layer {where!r}: padding must be explicit zeros, "
                                f"got {m.padding!r} / {m.padding_mode!r}")
    return {"in_channels": int(m.in_channels), "kernel_size": list(m.kernel_size),
            "stride": list(m.stride), "padding": list(m.padding),
            "dilation": list(m.dilation)}


def _bias(m: nn.Module) -> np.ndarray | None:
    b = getattr(m, "bias", None)
    return None if b is None else _np(b, np.float32)


def _binary_magnitude(limit: Any, dtype: torch.dtype) -> float | None:
    """``c`` when ``limit(+-1) = +-c`` (to 1e-6 relative: SignSwish is odd only up to rounding),
    else ``None``."""
    one = torch.ones((), dtype=dtype)
    c_pos, c_neg = float(limit(one)), -float(limit(-one))
    if not (math.isfinite(c_pos) and c_pos > 0 and abs(c_pos - c_neg) <= 1e-6 * c_pos):
        return None
    return c_pos


def _input_spec(m: QuantizedMixin, where: str) -> dict[str, Any]:
    """``{"kind": "float"}`` or ``{"kind": "binary", "scale": c}`` for ``F_lim(x) = c sign x``."""
    q = m.input_quantizer
    if q is None:
        return {"kind": "float"}
    c = _binary_magnitude(q.limit, torch.float32)
    probe = torch.tensor([-3.0, -1.0, -0.25, 0.0, 0.25, 1.0, 3.0])
    out = q.limit(probe).to(torch.float64)
    if c is None or not torch.allclose(out, c * torch.sign(probe).to(torch.float64),
                                       rtol=1e-6, atol=0.0):
        raise InvalidInputError("model", f"layer {where!r}: activation quantizer {q.name!r} is "
                                "not c * sign(x); only binary activations have a kernel")
    return {"kind": "binary", "scale": c}


def _shift_tensors(sign: Tensor, exponent: Tensor
                   ) -> tuple[dict[str, Any], dict[str, np.ndarray | None]]:
    """4-bit codes when the nonzero exponents fit the code (7 values with zero, 8 without),
    else the int8 pair."""
    s = _np(sign.reshape(sign.shape[0], -1), np.int8)
    e = _np(exponent.reshape(sign.shape[0], -1), np.int8)
    e = np.where(s != 0, e, 0).astype(np.int8)
    zero = bool((s == 0).any())
    nonzero = e[s != 0].astype(np.int16)
    lo, hi = (int(nonzero.min()), int(nonzero.max())) if nonzero.size else (0, 0)
    span = 6 if zero else 7
    attrs: dict[str, Any] = {"k": int(s.shape[1])}
    if hi - lo <= span and -128 <= lo <= 127 - span:
        attrs.update(storage="packed", emin=lo, zero=zero)
        return attrs, {"codes": pack_shift(s, e, emin=lo, zero=zero)}
    attrs["storage"] = "int8"
    return attrs, {"sign": s, "exponent": e}


def _quantized(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    assert isinstance(m, QuantizedMixin)
    conv = isinstance(m, nn.Conv2d)
    attrs = _conv_attrs(m, name) if conv else {}  # type: ignore[arg-type]
    with torch.no_grad():
        latent = m.weight.detach()
        q = m.weight_quantizer.limit(latent).to(torch.float64)
        if m.scale == "channel":
            total = latent.abs().sum(dim=tuple(range(1, latent.dim()))) + m.scale_extra
            alpha = (total / float(m.fan_in)).to(latent.dtype)
        else:
            alpha = torch.ones(latent.shape[0], dtype=latent.dtype)
    attrs["input"] = _input_spec(m, name)
    rows = q.reshape(q.shape[0], -1)
    kind = "conv2d" if conv else "linear"
    if tuple(m.weight_quantizer.levels) == (-1.0, 1.0):
        c = _binary_magnitude(m.weight_quantizer.limit, latent.dtype)
        if c is None or not bool(torch.isclose(rows.abs(), torch.full_like(rows, c),
                                               rtol=1e-6, atol=0.0).all()):
            raise InvalidInputError("model", f"layer {name!r}: the deployed weights are not "
                                    "+-c (a latent weight exactly 0 has sign(0) = 0, no bit)")
        scale = (alpha.to(torch.float64) * c).to(torch.float32)
        attrs["k"] = int(rows.shape[1])
        w.add(name, f"binary_{kind}", inp, attrs,
              {"words": pack_signs(_np(rows, np.float32)), "scale": _np(scale, np.float32),
               "bias": _bias(m)}, float32_weights=rows.numel())
        return
    mantissa, exp = torch.frexp(rows)
    nonzero = rows != 0
    if not bool((mantissa.abs()[nonzero] == 0.5).all()):
        raise InvalidInputError("model", f"layer {name!r}: quantizer "
                                f"{m.weight_quantizer.name!r} has values that are neither "
                                "+-1 nor powers of two; no kernel format")
    sign = torch.sign(rows).to(torch.int8)
    exponent = torch.where(nonzero, exp - 1, 0).to(torch.int8)
    extra, tensors = _shift_tensors(sign, exponent)
    attrs.update(extra)
    tensors.update(scale=_np(alpha, np.float32), bias=_bias(m))
    w.add(name, f"shift_{kind}", inp, attrs, tensors, float32_weights=rows.numel())


def _shift_module(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    conv = isinstance(m, nn.Conv2d)
    attrs = _conv_attrs(m, name) if conv else {}  # type: ignore[arg-type]
    with torch.no_grad():
        sign, exponent = m.weight_codes()  # type: ignore[operator]
    extra, tensors = _shift_tensors(sign, exponent)
    attrs.update(extra, input={"kind": "float"})
    tensors["bias"] = _bias(m)
    w.add(name, f"shift_{'conv2d' if conv else 'linear'}", inp, attrs, tensors,
          float32_weights=m.weight.numel())  # type: ignore[operator]


def _distance_module(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    theta = float(m.theta)  # type: ignore[arg-type]
    if theta != 1.0:
        raise InvalidInputError("model", f"layer {name!r}: theta = {theta:.4g}; only the pure "
                                "distance layer (theta = 1) has a kernel")
    conv = isinstance(m, nn.Conv2d)
    attrs = _conv_attrs(m, name) if conv else {}  # type: ignore[arg-type]
    op = "euclid" if isinstance(m, EuclidLinear | EuclidConv2d) else "adder"
    if op == "euclid":
        attrs["scale"] = float(m.scale)  # type: ignore[arg-type]
    w.add(name, f"{op}_{'conv2d' if conv else 'linear'}", inp, attrs,
          {"weight": _np(m.weight, np.float32), "bias": _bias(m)},  # type: ignore[arg-type]
          float32_weights=m.weight.numel())  # type: ignore[operator]


def _float_module(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    conv = isinstance(m, nn.Conv2d)
    attrs = _conv_attrs(m, name) if conv else {}  # type: ignore[arg-type]
    w.add(name, "conv2d" if conv else "linear", inp, attrs,
          {"weight": _np(m.weight, np.float32), "bias": _bias(m)},  # type: ignore[arg-type]
          float32_weights=m.weight.numel())  # type: ignore[operator]


def _batchnorm_module(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    assert isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)
    if m.running_mean is None or m.running_var is None:
        raise InvalidInputError("model", f"layer {name!r}: BatchNorm without running "
                                "statistics (track_running_stats=False) cannot be exported")
    w.add(name, "batchnorm", inp, {"eps": float(m.eps)},
          {"running_mean": _np(m.running_mean, np.float32),
           "running_var": _np(m.running_var, np.float32),
           "weight": None if m.weight is None else _np(m.weight, np.float32),
           "bias": None if m.bias is None else _np(m.bias, np.float32)})


def _hardtanh_module(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    assert isinstance(m, nn.Hardtanh)
    w.add(name, "hardtanh", inp, {"min": float(m.min_val), "max": float(m.max_val)})


def _flatten_module(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    assert isinstance(m, nn.Flatten)
    if m.end_dim != -1:
        raise InvalidInputError("model", f"layer {name!r}: Flatten end_dim must be -1")
    w.add(name, "flatten", inp, {"start_dim": int(m.start_dim)})


def _global_pool_module(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    assert isinstance(m, nn.AdaptiveAvgPool2d)
    size = m.output_size
    if size not in (1, (1, 1)):
        raise InvalidInputError("model", f"layer {name!r}: AdaptiveAvgPool2d output "
                                f"{size!r}; only 1 (global average) is supported")
    w.add(name, "global_avgpool2d", inp)


def _plain(op: str) -> ModuleWriter:
    """A writer of an attribute-free op (``relu``, ``identity``)."""
    def write(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
        w.add(name, op, inp)

    return write


def _pool(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    assert isinstance(m, nn.MaxPool2d | nn.AvgPool2d)

    def two(v: Any) -> list[int]:
        return [int(v), int(v)] if isinstance(v, int) else [int(i) for i in v]

    if m.ceil_mode:
        raise InvalidInputError("model", f"layer {name!r}: ceil_mode is not supported")
    stride = m.stride if m.stride is not None else m.kernel_size
    attrs: dict[str, Any] = {"kernel_size": two(m.kernel_size), "stride": two(stride)}
    if isinstance(m, nn.MaxPool2d):
        if m.return_indices:
            raise InvalidInputError("model", f"layer {name!r}: return_indices is not supported")
        attrs.update(padding=two(m.padding), dilation=two(m.dilation))
        w.add(name, "maxpool2d", inp, attrs)
        return
    if two(m.padding) != [0, 0] or m.divisor_override is not None:
        raise InvalidInputError("model", f"layer {name!r}: AvgPool2d needs padding 0 and no "
                                "divisor_override")
    w.add(name, "avgpool2d", inp, attrs)


def _f32(t: Tensor | None) -> np.ndarray | None:
    return None if t is None else _np(t, np.float32)


def _token_batchnorm_module(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    assert isinstance(m, vit.TokenBatchNorm)
    _batchnorm_module(w, name, m.bn, inp)
    w.nodes[-1]["attrs"]["channels_last"] = True


def _layernorm_module(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    assert isinstance(m, nn.LayerNorm)
    if len(m.normalized_shape) != 1:
        raise InvalidInputError("model", f"layer {name!r}: LayerNorm over the last axis only")
    w.add(name, "layernorm", inp, {"eps": float(m.eps)},
          {"weight": _f32(m.weight), "bias": _f32(m.bias)})


def _gelu_module(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    assert isinstance(m, nn.GELU)
    w.add(name, "gelu", inp, {"approximate": str(m.approximate)})


def _activation_site(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    assert isinstance(m, ActivationQuantizer)
    if m.quantizer is None:
        w.add(name, "identity", inp)
        return
    c = _binary_magnitude(m.quantizer.limit, torch.float32)
    probe = torch.tensor([-3.0, -1.0, -0.25, 0.0, 0.25, 1.0, 3.0])
    if c is None or not torch.allclose(m.quantizer.limit(probe).double(),
                                       c * torch.sign(probe).double(), rtol=1e-6, atol=0.0):
        raise InvalidInputError("model", f"layer {name!r}: activation quantizer "
                                f"{m.quantizer.name!r} is not c * sign(x)")
    w.add(name, "binarize", inp, {"scale": c})


def _channel_bias_module(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    assert isinstance(m, vit.ChannelBias)
    w.add(name, "channel_affine", inp, {"axis": m.axis}, {"bias": _f32(m.bias)})


def _layerscale_module(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    assert isinstance(m, vit.LayerScale)
    w.add(name, "channel_affine", inp, {"axis": -1},
          {"scale": _f32(m.gamma), "bias": _f32(m.bias)})


def _rprelu_module(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    assert isinstance(m, vit.RPReLU)
    w.add(name, "rprelu", inp, {"axis": m.axis},
          {"shift_in": _f32(m.shift_in), "slope": _f32(m.slope),
           "shift_out": _f32(m.shift_out)})


def _attrs_writer(op: str, attrs: Callable[[Any], dict[str, Any]],
                  tensors: Callable[[Any], dict[str, Any]] | None = None) -> ModuleWriter:
    """A writer of ``op`` whose attributes (and tensors) are read off the module."""
    def write(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
        w.add(name, op, inp, attrs(m), tensors(m) if tensors else None)

    return write


#: module class -> writer; the most specific class of a module's MRO that is here wins
_MODULE_WRITERS: dict[type, ModuleWriter] = {
    QuantizedMixin: _quantized,
    ShiftLayer: _shift_module,
    EuclidLinear: _distance_module,
    EuclidConv2d: _distance_module,
    AdderLinear: _distance_module,
    AdderConv2d: _distance_module,
    nn.Linear: _float_module,
    nn.Conv2d: _float_module,
    nn.BatchNorm1d: _batchnorm_module,
    nn.BatchNorm2d: _batchnorm_module,
    nn.ReLU: _plain("relu"),
    nn.Hardtanh: _hardtanh_module,
    nn.Dropout: _plain("identity"),
    nn.Identity: _plain("identity"),
    nn.Flatten: _flatten_module,
    nn.MaxPool2d: _pool,
    nn.AvgPool2d: _pool,
    nn.AdaptiveAvgPool2d: _global_pool_module,
    nn.LayerNorm: _layernorm_module,
    nn.GELU: _gelu_module,
    ActivationQuantizer: _activation_site,
    vit.TokenBatchNorm: _token_batchnorm_module,
    vit.ChannelBias: _channel_bias_module,
    vit.LayerScale: _layerscale_module,
    vit.RPReLU: _rprelu_module,
    vit.ToTokens: _plain("to_tokens"),
    vit.ToMap: _attrs_writer("to_map", lambda m: {"grid": list(m.grid)}),
    vit.ClassToken: _attrs_writer("prepend_token", lambda m: {},
                                  lambda m: {"token": _f32(m.token.reshape(-1))}),
    vit.PrependZeroToken: _plain("prepend_token"),
    vit.SelectPatches: _plain("drop_first_token"),
    vit.PositionEmbedding: _attrs_writer("add_table", lambda m: {},
                                         lambda m: {"table": _f32(m.table[0])}),
    vit.ChannelRepeat: _attrs_writer("channel_repeat",
                                     lambda m: {"axis": m.axis, "times": m.times}),
    vit.ChannelGroupMean: _attrs_writer("channel_group_mean", lambda m: {"groups": m.groups}),
    vit.TokenPool: _attrs_writer("token_avgpool", lambda m: {
        "grid": list(m.grid), "kernel_size": list(m.kernel), "stride": list(m.stride),
        "padding": list(m.padding)}),
    vit.TokenUpsample: _attrs_writer("token_upsample",
                                     lambda m: {"grid": list(m.grid), "factor": m.factor}),
    vit.TokenMean: _plain("token_mean"),
    vit.SelectToken: _attrs_writer("select_token", lambda m: {"index": m.index}),
    vit.AttentionScores: _attrs_writer("attention_scores",
                                       lambda m: {"heads": m.heads, "scale": m.scale}),
    vit.ProbQuantizer: _attrs_writer("quantize_probs",
                                     lambda m: {"alpha": float(m.step())}),
    vit.AttentionContext: _attrs_writer("attention_context", lambda m: {"heads": m.heads}),
}
#: module classes traced as one call (their inside is the writer's business)
_LEAVES: list[type] = [QuantizedMixin, ShiftLayer, EuclidLinear, EuclidConv2d, AdderLinear,
                       AdderConv2d, ActivationQuantizer, vit.TokenBatchNorm, vit.ChannelBias,
                       vit.LayerScale, vit.RPReLU, vit.ToTokens, vit.ToMap, vit.ClassToken,
                       vit.PrependZeroToken, vit.SelectPatches, vit.PositionEmbedding,
                       vit.ChannelRepeat, vit.ChannelGroupMean, vit.TokenPool,
                       vit.TokenUpsample, vit.TokenMean, vit.SelectToken, vit.AttentionScores,
                       vit.ProbQuantizer, vit.AttentionContext]


def register_module(cls: type, writer: ModuleWriter, *, leaf: bool = True) -> None:
    """Export modules of class ``cls`` (and subclasses without a writer of their own) with
    ``writer(w, name, module, inputs)``, which adds the node(s) with ``w.add``; ``leaf``: trace
    the module as one call (a layer family's layers; torch's own modules are leaves anyway)."""
    _MODULE_WRITERS[cls] = writer
    if leaf and cls not in _LEAVES:
        _LEAVES.append(cls)


def _module(w: _Writer, name: str, m: nn.Module, inp: list[str]) -> None:
    for cls in type(m).__mro__:
        writer = _MODULE_WRITERS.get(cls)
        if writer is not None:
            writer(w, name, m, inp)
            return
    raise InvalidInputError("model", f"layer {name!r} ({type(m).__name__}) has no export "
                            "format")


def _flatten_start(node: fx.Node) -> int:
    args = list(node.args[1:])
    start = node.kwargs.get("start_dim", args[0] if args else 0)
    end = node.kwargs.get("end_dim", args[1] if len(args) > 1 else -1)
    if not isinstance(start, int) or end != -1:
        raise InvalidInputError("model", f"node {node.name!r}: flatten needs a constant "
                                "start_dim and end_dim -1")
    return start


def _flatten_call(w: _Writer, node: fx.Node, inp: list[str]) -> bool:
    w.add(node.name, "flatten", inp[:1], {"start_dim": _flatten_start(node)})
    return True


def _relu_call(w: _Writer, node: fx.Node, inp: list[str]) -> bool:
    w.add(node.name, "relu", inp[:1])
    return True


def _contiguous_call(w: _Writer, node: fx.Node, inp: list[str]) -> bool:
    """``x.contiguous(...)``: a memory layout (e.g. VGGSmall's channels-last activations), the
    same values: the kernels' tensors are always dense row-major, so the node is its input."""
    if len(inp) != 1:
        return False
    w.aliases[node.name] = inp[0]
    return True


def _add_method(w: _Writer, node: fx.Node, inp: list[str]) -> bool:
    if len(inp) != 2 or node.kwargs:
        return False
    w.add(node.name, "add", inp)
    return True


def _add_call(w: _Writer, node: fx.Node, inp: list[str]) -> bool:
    if len(inp) != 2 or len(node.args) != 2 or node.kwargs:
        return False
    return _add_method(w, node, inp)


#: function or method-name target -> (label in messages, writer)
_CALL_WRITERS: dict[Any, tuple[str, CallWriter]] = {
    "flatten": ("flatten", _flatten_call),
    "relu": ("relu", _relu_call),
    "contiguous": ("contiguous", _contiguous_call),
    "add": ("+", _add_method),
    operator.add: ("+", _add_call),
    torch.add: ("+", _add_call),
    torch.flatten: ("flatten", _flatten_call),
    torch.relu: ("relu", _relu_call),
    nn.functional.relu: ("relu", _relu_call),
}


def register_call(target: Any, writer: CallWriter, label: str | None = None) -> None:
    """Export ``call_function`` nodes of ``target`` (a function) or ``call_method`` nodes of
    that method name (a string) with ``writer(w, node, inputs) -> bool`` (``False``: the call's
    form is not supported; the export then refuses it). ``label`` names it in error messages."""
    _CALL_WRITERS[target] = (label or str(getattr(target, "__name__", target)), writer)


def _function(w: _Writer, node: fx.Node) -> None:
    target = node.target
    inp = [a.name for a in node.args if isinstance(a, fx.Node)]
    entry = _CALL_WRITERS.get(target)
    if entry is not None and (node.op == "call_method") == isinstance(target, str) \
            and entry[1](w, node, inp):
        return
    supported = ", ".join(sorted({label for label, _ in _CALL_WRITERS.values()}))
    raise InvalidInputError("model", f"node {node.name!r}: {node.op} {target!r} has no export "
                            f"format (supported: {supported})")


class _Recorder(fx.Interpreter):
    """Runs the traced model and keeps every node's output (by node name, as NumPy)."""

    def __init__(self, module: fx.GraphModule) -> None:
        super().__init__(module)
        self.values: dict[str, np.ndarray] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if isinstance(out, Tensor):
            self.values[n.name] = out.detach().cpu().numpy()
        return out


def _check(model: nn.Module, graph: fx.Graph, exported: ExportedModel, example: Tensor
           ) -> tuple[np.ndarray, dict[str, float]]:
    """The traced model's output on ``example`` and, per exported node, its relative error
    when run on torch's own values of its inputs (teacher forcing: a node is judged on what
    it computes, not on differences that reach it; a binarized activation within rounding of
    0 can flip between torch's float sums and the kernels' exact ones, and would otherwise
    carry a legitimate difference through every later layer)."""
    recorder = _Recorder(fx.GraphModule(model, graph))
    output = recorder.run(example).detach().cpu().numpy()
    values = recorder.values
    errors: dict[str, float] = {}
    for name, inputs, fn in exported.steps:
        ref = values[name]
        got = fn(*(np.ascontiguousarray(values[i].astype(np.float32)) for i in inputs))
        errors[name] = float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-30))
    return output, errors


def _graph(model: nn.Module) -> tuple[_Writer, fx.Graph]:
    graph = _Tracer().trace(model)
    w = _Writer()
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise InvalidInputError("model", f"forward must take one tensor input, got "
                                f"{len(inputs)}")
    for node in graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            result = node.args[0]
            if not isinstance(result, fx.Node):
                raise InvalidInputError("model", "forward must return one tensor")
            w.output = w.resolve(result.name)
            continue
        if node.op == "call_module":
            args = [a for a in node.args if isinstance(a, fx.Node)]
            if not args or len(args) != len(node.args) or node.kwargs:
                raise InvalidInputError("model", f"node {node.name!r}: module "
                                        f"{node.target!r} must take tensors only")
            _module(w, node.name, model.get_submodule(str(node.target)), [a.name for a in args])
        elif node.op in ("call_function", "call_method"):
            _function(w, node)
        else:
            raise InvalidInputError("model", f"node {node.name!r}: {node.op} is not supported "
                                    "(parameters used outside a layer?)")
    w.input = inputs[0].name
    return w, graph


def _grid_json(grid: Any) -> dict[str, Any]:
    from proxcompress.kernels.first_layer import parse_grid

    try:
        scale, offset, levels = grid
    except (TypeError, ValueError):
        raise InvalidInputError("input_grid", f"= {grid!r} must be (scale, offset, "
                                "levels)") from None
    parsed = parse_grid({"scale": scale, "offset": offset, "levels": levels})
    assert parsed is not None
    return parsed.to_json()


def export(model: nn.Module, path: str | os.PathLike[str], *,
           example: Tensor | None = None, rtol: float = 1e-4,
           input_grid: tuple[float, float, int] | None = None) -> Path:
    """Write ``model`` (eval mode, hard quantization) into the folder ``path``.

    Args:
        model: a model of the supported layers (module docstring); its mode and ``hard`` flags
            are restored afterwards.
        path: the export folder (created; an earlier export there is replaced, the manifest
            last).
        example: optional input batch: records its per-sample shape (checked by the reader) and
            checks the export on the kernels against torch before writing anything: every
            node, run on torch's values of its inputs, must equal torch's value of its output
            to ``rtol`` (relative to that output's largest magnitude), else nothing is written.
            The manifest's ``check`` records the worst node and the end-to-end difference (which
            may be larger where binarized activations sit within rounding of 0).
        rtol: tolerance of that check.
        input_grid: ``(scale, offset, levels)`` when the model's inputs are
            ``scale * p + offset`` with integer pixels ``p`` in ``0 .. levels - 1`` (8-bit
            images under an affine normalisation, e.g. :data:`~.data.FMNIST_GRID`): recorded
            in the manifest, it lets the reader run a float first layer that only feeds a sign
            on certified integer arithmetic (``kernels.first_layer``; every batch is checked
            to lie on the grid, else the float path runs).

    Returns:
        The manifest's path.

    Raises:
        InvalidInputError: a layer or operation without an export format, a binary latent
            weight exactly 0, a Euclid / L1 layer with ``theta < 1``, a failed check, or a
            ``path`` that exists and is not a folder.
    """
    from safetensors.numpy import save_file

    from proxcompress.training.layers import hard_quantization

    root = Path(path)
    if root.exists() and not root.is_dir():
        raise InvalidInputError("path", f"{str(root)!r} exists and is not a folder; nothing "
                                "written")
    grid = _grid_json(input_grid) if input_grid is not None else None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), hard_quantization(model):
            w, graph = _graph(model)
            checked = None
            if example is not None:
                manifest_nodes = {"format": FORMAT, "version": VERSION, "input": w.input,
                                  "output": w.output, "nodes": w.nodes}
                exported = ExportedModel(manifest_nodes, w.tensors, fold_batchnorm=False)
                checked = (exported, *_check(model, graph, exported, example))
    finally:
        model.train(was_training)
    manifest: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "tensors": TENSORS, "sha256": None,
        "input": w.input, "output": w.output,
        "input_shape": list(example.shape[1:]) if example is not None else None,
        **({"input_grid": grid} if grid is not None else {}),
        "nodes": w.nodes,
        "storage": {"layers": w.storage,
                    "stored_bytes": sum(s["stored_bytes"] for s in w.storage.values()),
                    "float32_bytes": sum(s["float32_bytes"] for s in w.storage.values())},
    }
    if example is not None and checked is not None:
        exported, reference, errors = checked
        got = exported(np.ascontiguousarray(example.detach().cpu().numpy().astype(np.float32)))
        end_to_end = float(np.abs(got - reference).max()) / max(float(np.abs(reference).max()),
                                                                1e-30)
        worst = max(errors, key=lambda n: errors[n])
        manifest["check"] = {"samples": int(example.shape[0]), "rtol": rtol,
                             "worst_node": worst, "worst_node_relative_error": errors[worst],
                             "max_relative_error": end_to_end}
        failed = [n for n, e in errors.items() if not e <= rtol]  # in graph order
        if failed:
            first = failed[0]
            raise InvalidInputError("example", f"node {first!r} of the exported model differs "
                                    f"from torch by {errors[first]:.3g} (relative, on torch's "
                                    f"inputs) > rtol = {rtol} ({len(failed)} node(s) fail); "
                                    "nothing written")
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(root / TENSORS, lambda tmp: save_file(w.tensors, str(tmp)))
    manifest["sha256"] = sha256_file(root / TENSORS)
    manifest["storage"]["file_bytes"] = (root / TENSORS).stat().st_size
    return write_json_atomic(root / MANIFEST, manifest)


__all__ = ["FORMAT", "MANIFEST", "TENSORS", "VERSION", "CallWriter", "ModuleWriter", "export",
           "register_call", "register_module"]
