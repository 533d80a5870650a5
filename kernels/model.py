"""Run an exported model on the kernels: :func:`load` reads the folder that
``proxcompress.training.export`` writes and returns an inference object, on NumPy arrays (the
CPU backends) or, with ``backend="cupy"``, on CuPy arrays (the GPU kernels; the weights are
copied to the device once, at load).

An export is a folder with two files, never unpickled:

* ``model.safetensors``: the tensors (packed sign words, 4-bit shift codes, float weights);
* ``model.json``: the manifest (written last, atomically: the commit point) with the format
  name and version, the tensor file's SHA-256, and the graph: a list of nodes
  ``{"name", "op", "inputs", "attrs", "tensors"}`` in execution order, fed by one input ``x``.

Ops and how they run (``x`` float32, NCHW for images):

=================== ======================================================================
``linear``,         float32 ``x @ W.T + b`` (conv: im2col + matmul)
``conv2d``
``binary_*``        weights ``W = scale_o * s_ok``, ``s`` in {-1, +1}, stored as ``pack_signs``
                    words. With binary inputs ``c * sign(x)`` (``attrs.input.kind ==
                    "binary"``): :func:`~.ops.binary_matmul` / :func:`~.conv.binary_conv2d` give
                    the exact int32 ``sign(x) . s``; inputs equal to 0 (``sign(0) = 0``, as in
                    torch) are corrected exactly by subtracting the zero mask's product with
                    ``s``; then times ``c * scale_o``. With float inputs: the signs are unpacked
                    once at load (int8) and run on :func:`~.ops.shift_matmul` with exponent 0
                    (adds and subtracts only), then times ``scale_o``.
``shift_*``         weights ``scale_o * sign * 2**exponent`` (``scale`` optional), stored as
                    4-bit codes (``pack_shift`` with ``emin``, ``zero``) or as int8 pairs when
                    the exponents span more than the code holds; :func:`~.ops.shift_matmul` /
                    :func:`~.conv.shift_conv2d` on the (optionally binarized) input.
``euclid_*``        ``s * euclid_matmul(x, W)`` = ``-s ||x - w||^2`` (``method="direct"`` on
                    numba, accurate when ``x`` is close to ``w``).
``adder_*``         ``-||x - w||_1`` by array operations in float64 (no optimized kernel yet).
``batchnorm``       ``x * a + b`` with ``a = gamma / sqrt(var + eps)``, ``b = beta - mean a``.
``relu``,           elementwise; ``maxpool2d``, ``avgpool2d`` (no padding),
``hardtanh``        ``global_avgpool2d``, ``flatten``, ``add``, ``identity``.
=================== ======================================================================

Outputs equal the torch model in eval mode with hard (deployed) quantization: exactly for the
integer accumulators, to float32 rounding (about ``K * 6e-8`` relative per layer) elsewhere.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from proxcompress.atomic import sha256_file
from proxcompress.checks import check_arguments
from proxcompress.errors import InvalidInputError

from ._checks import Backend, array_module, is_cupy, words_for
from .conv import binary_conv2d, conv_output_size, euclid_conv2d, im2col, shift_conv2d, to_nchw
from .formats import pack_negative_mask, pack_signs, unpack_shift, unpack_signs
from .ops import binary_matmul, euclid_matmul, shift_matmul

__all__ = ["FORMAT", "FUSIONS", "MANIFEST", "OPS", "TENSORS", "VERSION", "Builder", "ExportedModel",
           "Fused", "Fusion", "OpSpec", "load", "register_fusion", "register_op"]

FORMAT = "proxcompress-export"
VERSION = 1
MANIFEST = "model.json"
TENSORS = "model.safetensors"

Fn = Callable[..., Any]
#: where a layer's constants go: the identity on the CPU, ``cupy.asarray`` on the GPU
Put = Callable[[np.ndarray], Any]
MatmulNT = Callable[[Any, Any], Any]


def _numba(backend: Backend) -> bool:
    """Whether a model's layers run the numba kernels (a model's "auto" is numba: it runs on
    NumPy arrays)."""
    return backend in ("auto", "numba")


def _matmul_nt(backend: Backend) -> MatmulNT:
    """float32 ``x @ w.T`` of the float layers: torch's BLAS on the numba backend (it shares
    numba's OpenMP threads; ``cpu.sgemm_nt`` says why; float convs there are
    ``cpu.conv2d_float``), the arrays' own ``@`` otherwise."""
    if _numba(backend):
        from . import cpu

        return cpu.sgemm_nt
    return lambda x, w: x @ w.T


# ---------------------------------------------------------------------------- validation
class _Node:
    """Typed access to one manifest node, every error naming ``node <name>.<field>``."""

    def __init__(self, raw: Any, tensors: dict[str, np.ndarray], index: int) -> None:
        if not isinstance(raw, dict):
            raise InvalidInputError(f"nodes[{index}]", "must be a mapping")
        self.raw = raw
        self.name = self._str(raw.get("name"), "name", f"nodes[{index}]")
        self.op = self._str(raw.get("op"), "op", self.where)
        inputs = raw.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise InvalidInputError(f"{self.where}.inputs", "must be a list of node names")
        self.inputs: list[str] = inputs
        attrs = raw.get("attrs", {})
        names = raw.get("tensors", {})
        if not isinstance(attrs, dict) or not isinstance(names, dict):
            raise InvalidInputError(self.where, "attrs and tensors must be mappings")
        self.attrs: dict[str, Any] = attrs
        self.names: dict[str, Any] = names
        self.all_tensors = tensors

    @property
    def where(self) -> str:
        return f"node {getattr(self, 'name', '?')}"

    @staticmethod
    def _str(v: Any, field: str, where: str) -> str:
        if not isinstance(v, str) or not v:
            raise InvalidInputError(f"{where}.{field}", "must be a non-empty string")
        return v

    def attr(self, key: str, kind: type, default: Any = ...) -> Any:
        if key not in self.attrs:
            if default is ...:
                raise InvalidInputError(f"{self.where}.attrs.{key}", "is missing")
            return default
        v = self.attrs[key]
        ok = isinstance(v, kind) and not (kind in (int, float) and isinstance(v, bool))
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v, ok = float(v), True
        if not ok or (kind is float and not math.isfinite(v)):
            raise InvalidInputError(f"{self.where}.attrs.{key}", f"= {v!r} must be "
                                    f"{kind.__name__}")
        return v

    def pair(self, key: str, low: int) -> tuple[int, int]:
        v = self.attr(key, list)
        if len(v) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) and i >= low
                                  for i in v):
            raise InvalidInputError(f"{self.where}.attrs.{key}", f"= {v!r} must be two "
                                    f"integers >= {low}")
        return int(v[0]), int(v[1])

    def optional_tensor(self, key: str, dtype: Any, shape: tuple[int, ...] | None = None,
                        ndim: int | None = None) -> np.ndarray | None:
        """The tensor named by ``tensors[key]``, ``None`` when the node names none."""
        if self.names.get(key) is None:
            return None
        return self.tensor(key, dtype, shape, ndim)

    def tensor(self, key: str, dtype: Any, shape: tuple[int, ...] | None = None,
               ndim: int | None = None) -> np.ndarray:
        """The tensor named by ``tensors[key]``, checked for dtype, shape and finiteness."""
        name = self.names.get(key)
        if name is None:
            raise InvalidInputError(f"{self.where}.tensors.{key}", "is missing")
        if not isinstance(name, str) or name not in self.all_tensors:
            raise InvalidInputError(f"{self.where}.tensors.{key}",
                                    f"{name!r} is not in the tensor file")
        t = self.all_tensors[name]
        if t.dtype != np.dtype(dtype):
            raise InvalidInputError(f"{self.where}.tensors.{key}",
                                    f"dtype {t.dtype}, expected {np.dtype(dtype)}")
        if shape is not None and tuple(t.shape) != shape:
            raise InvalidInputError(f"{self.where}.tensors.{key}",
                                    f"shape {tuple(t.shape)}, expected {shape}")
        if ndim is not None and t.ndim != ndim:
            raise InvalidInputError(f"{self.where}.tensors.{key}",
                                    f"shape {tuple(t.shape)} must have {ndim} dimensions")
        if t.dtype.kind == "f" and not np.isfinite(t).all():
            raise InvalidInputError(f"{self.where}.tensors.{key}", "holds NaN or inf")
        return np.ascontiguousarray(t)

    def input_scale(self) -> float | None:
        """``c`` of a binarized input ``c * sign(x)``, ``None`` for float inputs."""
        spec = self.attr("input", dict)
        kind = spec.get("kind")
        if kind == "float":
            return None
        if kind == "binary":
            c = spec.get("scale")
            if isinstance(c, bool) or not isinstance(c, int | float) or not math.isfinite(c) \
                    or c <= 0:
                raise InvalidInputError(f"{self.where}.attrs.input.scale", f"= {c!r} must be "
                                        "a number > 0")
            return float(c)
        raise InvalidInputError(f"{self.where}.attrs.input.kind", f"= {kind!r}; accepted: "
                                "'float', 'binary'")


def _rank(x: Any, n: int, where: str) -> None:
    if x.ndim != n:
        raise InvalidInputError(where, f"expects a {n}-d input, got shape {x.shape}")


def _binarize(x: Any, c: float | None) -> Any:
    if c is None:
        return x
    xp = array_module(x)
    return xp.ascontiguousarray((xp.sign(x) * np.float32(c)).astype(np.float32))


def _per_channel(y: Any, v: Any) -> Any:
    return y * (v.reshape(1, -1, 1, 1) if y.ndim == 4 else v.reshape(1, -1))


def _finish(y: Any, scale: Any, bias: Any) -> Any:
    y = y.astype(np.float32, copy=False)
    if scale is not None:
        y = _per_channel(y, scale)
    if bias is not None:
        y = y + (bias.reshape(1, -1, 1, 1) if y.ndim == 4 else bias.reshape(1, -1))
    return y.astype(np.float32, copy=False)


@dataclass(frozen=True)
class _Conv:
    """Geometry of a conv node."""

    in_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    @classmethod
    def of(cls, node: _Node) -> _Conv:
        return cls(node.attr("in_channels", int), node.pair("kernel_size", 1),
                   node.pair("stride", 1), node.pair("padding", 0), node.pair("dilation", 1))

    @property
    def k(self) -> int:
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    @property
    def grey_3x3(self) -> bool:
        """One input channel, 3 x 3, stride and dilation 1 (``cpu_packed.float_conv3x3_sign``)."""
        return (self.in_channels, self.kernel_size, self.stride, self.dilation) == (
            1, (3, 3), (1, 1), (1, 1))

    def check(self, x: Any, where: str) -> None:
        _rank(x, 4, where)
        if x.shape[1] != self.in_channels:
            raise InvalidInputError(where, f"expects {self.in_channels} input channels, got "
                                    f"shape {x.shape}")

    def cols(self, x: Any) -> tuple[Any, int, int]:
        return im2col(x, self.kernel_size, self.stride, self.padding, self.dilation)


def _check_features(x: Any, k: int, where: str) -> None:
    _rank(x, 2, where)
    if x.shape[1] != k:
        raise InvalidInputError(where, f"expects {k} input features, got shape {x.shape}")


# --------------------------------------------------------------------------------- ops
def _optional(put: Put, a: np.ndarray | None) -> Any:
    return None if a is None else put(a)


def _float_layer(node: _Node, conv: bool, put: Put, backend: Backend) -> Fn:
    if conv:
        g = _Conv.of(node)
        w = node.tensor("weight", np.float32, ndim=4)
        if w.shape[1:] != (g.in_channels, *g.kernel_size):
            raise InvalidInputError(f"{node.where}.tensors.weight", f"shape {w.shape} does not "
                                    f"match in_channels / kernel_size {g}")
        bias = _optional(put, node.optional_tensor("bias", np.float32, (w.shape[0],)))
        if _numba(backend):
            from . import cpu

            w4 = np.ascontiguousarray(w)

            def run_conv_cpu(x: Any) -> Any:
                g.check(x, node.where)
                return _finish(cpu.conv2d_float(x, w4, g.stride, g.padding, g.dilation), None,
                               bias)

            return run_conv_cpu
        wm = put(np.ascontiguousarray(w.reshape(w.shape[0], -1)))

        def run_conv(x: Any) -> Any:
            g.check(x, node.where)
            cols, ho, wo = g.cols(x)
            return _finish(to_nchw(cols @ wm.T, x.shape[0], ho, wo), None, bias)

        return run_conv
    matmul_nt = _matmul_nt(backend)
    w = put(node.tensor("weight", np.float32, ndim=2))
    bias = _optional(put, node.optional_tensor("bias", np.float32, (w.shape[0],)))
    if _numba(backend):
        return _small_linear(node, w, bias, lambda x: _finish(matmul_nt(x, w), None, bias))

    def run(x: Any) -> Any:
        _check_features(x, w.shape[1], node.where)
        return _finish(matmul_nt(x, w), None, bias)

    return run


def _small_linear(node: _Node, w: np.ndarray, bias: np.ndarray | None, large: Fn) -> Fn:
    """A float linear layer on the numba backend: below ``cpu.SMALL_LINEAR_WORK``
    multiply-adds (a binary network's head at small batches) one serial ``cpu.linear_f64``
    call (float64 sums, rounded once: no torch call and its fixed cost of about 20 us);
    above, ``large`` (torch's sgemm)."""
    from . import cpu

    n_out, k = w.shape
    wt = np.ascontiguousarray(w.T, dtype=np.float64)
    b = bias if bias is not None else np.zeros(n_out, np.float32)
    kernel = cpu.serial(cpu.linear_f64)

    def run(x: Any) -> Any:
        _check_features(x, k, node.where)
        if x.shape[0] * k * n_out >= cpu.SMALL_LINEAR_WORK:
            return large(x)
        out = np.empty((x.shape[0], n_out), np.float32)
        kernel(np.ascontiguousarray(x), wt, b, bias is not None, out)
        return out

    return run


def _zero_correction(zeros: Any, signs_f32: Any, matmul_nt: MatmulNT) -> Any:
    """``zeros @ signs.T`` as int32 (exact: integer sums below 2^24)."""
    return matmul_nt(zeros.astype(np.float32), signs_f32).astype(np.int32)


def _binary_layer(node: _Node, conv: bool, backend: Backend, put: Put) -> Fn:
    k = node.attr("k", int)
    g = _Conv.of(node) if conv else None
    if g is not None and g.k != k:
        raise InvalidInputError(f"{node.where}.attrs.k", f"= {k} does not match in_channels "
                                f"* kernel_size = {g.k}")
    if k < 1:
        raise InvalidInputError(f"{node.where}.attrs.k", f"= {k} must be >= 1")
    words = node.tensor("words", np.uint64, ndim=2)
    n_out = words.shape[0]
    if words.shape[1] != words_for(k):
        raise InvalidInputError(f"{node.where}.tensors.words", f"has {words.shape[1]} words "
                                f"per row; k = {k} needs {words_for(k)}")
    signs = unpack_signs(words, k)  # validates the padding bits
    scale = node.tensor("scale", np.float32, (n_out,))
    bias = _optional(put, node.optional_tensor("bias", np.float32, (n_out,)))
    c = node.input_scale()
    if c is not None:
        matmul_nt = _matmul_nt(backend)
        out_scale = put((scale * np.float32(c)).astype(np.float32))
        signs_f32 = put(signs.astype(np.float32))
        words = put(words)
        if g is None:
            def run_binary(x: Any) -> Any:
                _check_features(x, k, node.where)
                acc = binary_matmul(pack_signs(x), words, k, backend=backend)
                zeros = x == 0
                if zeros.any():
                    acc = acc - _zero_correction(zeros, signs_f32, matmul_nt)
                return _finish(acc, out_scale, bias)

            return run_binary

        def run_binary_conv(x: Any) -> Any:
            g.check(x, node.where)
            acc = binary_conv2d(x, words, g.kernel_size, g.stride, g.padding, g.dilation,
                                padding_mode="zero", backend=backend)
            zeros = x == 0
            # the images holding an input equal to 0 (sign 0, not +1), usually few: their
            # correction alone, not an im2col and a GEMM of the whole batch
            hit = array_module(x).flatnonzero(zeros.reshape(x.shape[0], -1).any(axis=1))
            if hit.size:
                cols, ho, wo = g.cols(zeros[hit].astype(np.float32))
                acc[hit] -= to_nchw(_zero_correction(cols, signs_f32, matmul_nt), hit.size,
                                    ho, wo)
            return _finish(acc, out_scale, bias)

        return run_binary_conv
    return _shift_runner(node, g, signs, np.zeros_like(signs), None, put(scale), bias,
                         backend, put)


def _shift_runner(node: _Node, g: _Conv | None, sign: np.ndarray, exponent: np.ndarray,
                  c: float | None, scale: Any, bias: Any, backend: Backend, put: Put) -> Fn:
    """``sign``, ``exponent``: host arrays (moved with ``put`` here); ``scale``, ``bias``:
    already where the layer runs. On numba the weights are decoded exactly to float32 once, at
    load (``shift_matmul`` / ``shift_conv2d`` would decode them on every call: 3.3 of the 5 ms
    of the binary MLP's float-input first layer at batch 256, one thread)."""
    if _numba(backend):
        from . import cpu
        from .formats import shift_weights

        w = shift_weights(sign, exponent)
        if g is None:
            def run_decoded(x: Any) -> Any:
                _check_features(x, w.shape[1], node.where)
                return _finish(cpu.sgemm_nt(_binarize(x, c), w), scale, bias)

            return run_decoded
        w4 = np.ascontiguousarray(w.reshape(-1, g.in_channels, *g.kernel_size))

        def run_decoded_conv(x: Any) -> Any:
            g.check(x, node.where)
            return _finish(cpu.conv2d_float(_binarize(x, c), w4, g.stride, g.padding,
                                            g.dilation), scale, bias)

        return run_decoded_conv
    if g is None:
        s2, e2 = put(sign), put(exponent)

        def run(x: Any) -> Any:
            _check_features(x, s2.shape[1], node.where)
            return _finish(shift_matmul(_binarize(x, c), s2, e2, backend=backend), scale, bias)

        return run
    s4 = put(np.ascontiguousarray(sign.reshape(-1, g.in_channels, *g.kernel_size)))
    e4 = put(np.ascontiguousarray(exponent.reshape(s4.shape)))

    def run_conv(x: Any) -> Any:
        g.check(x, node.where)
        y = shift_conv2d(_binarize(x, c), s4, e4, g.stride, g.padding, g.dilation,
                         backend=backend)
        return _finish(y, scale, bias)

    return run_conv


def _shift_layer(node: _Node, conv: bool, backend: Backend, put: Put) -> Fn:
    k = node.attr("k", int)
    g = _Conv.of(node) if conv else None
    if g is not None and g.k != k:
        raise InvalidInputError(f"{node.where}.attrs.k", f"= {k} does not match in_channels "
                                f"* kernel_size = {g.k}")
    storage = node.attr("storage", str)
    if storage == "packed":
        codes = node.tensor("codes", np.uint8, ndim=2)
        sign, exponent = unpack_shift(codes, k, emin=node.attr("emin", int),
                                      zero=node.attr("zero", bool))
    elif storage == "int8":
        sign = node.tensor("sign", np.int8, ndim=2)
        exponent = node.tensor("exponent", np.int8, sign.shape)
        if sign.shape[1] != k or not np.isin(sign, (-1, 0, 1)).all():
            raise InvalidInputError(f"{node.where}.tensors.sign", f"must be (N, {k}) with "
                                    "values in {-1, 0, 1}")
    else:
        raise InvalidInputError(f"{node.where}.attrs.storage", f"= {storage!r}; accepted: "
                                "'packed', 'int8'")
    n_out = sign.shape[0]
    scale = _optional(put, node.optional_tensor("scale", np.float32, (n_out,)))
    bias = _optional(put, node.optional_tensor("bias", np.float32, (n_out,)))
    return _shift_runner(node, g, np.ascontiguousarray(sign), np.ascontiguousarray(exponent),
                         node.input_scale(), scale, bias, backend, put)


def _l1(x: Any, w: Any) -> Any:
    """``-sum_k |x[m,k] - w[n,k]|`` in float64 blocks, rounded to float32 (the NumPy twin and
    the GPU; the numba backend runs ``cpu.l1_distance``)."""
    xp = array_module(x)
    out = xp.empty((x.shape[0], w.shape[0]), np.float32)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    step = max(1, (1 << 22) // max(1, w.size))
    for i in range(0, x.shape[0], step):
        out[i:i + step] = -xp.abs(x64[i:i + step, None, :] - w64[None]).sum(-1)
    return out


def _distance_layer(node: _Node, conv: bool, backend: Backend, put: Put, kind: str) -> Fn:
    g = _Conv.of(node) if conv else None
    w = node.tensor("weight", np.float32, ndim=4 if conv else 2)
    if g is not None and w.shape[1:] != (g.in_channels, *g.kernel_size):
        raise InvalidInputError(f"{node.where}.tensors.weight", f"shape {w.shape} does not "
                                f"match in_channels / kernel_size {g}")
    bias = _optional(put, node.optional_tensor("bias", np.float32, (w.shape[0],)))
    s = np.float32(node.attr("scale", float)) if kind == "euclid" else None
    wm = put(np.ascontiguousarray(w.reshape(w.shape[0], -1)))
    w4 = wm.reshape(w.shape)  # a view: the weights are on the device once

    def distance(rows: Any) -> Any:
        if s is not None:
            return euclid_matmul(rows, wm, backend=backend, method="direct") * s
        if _numba(backend):
            from . import cpu

            out = np.empty((rows.shape[0], wm.shape[0]), np.float32)
            cpu.l1_distance(np.ascontiguousarray(rows), wm, out)
            return out
        return _l1(rows, wm)

    if g is None:
        def run(x: Any) -> Any:
            _check_features(x, wm.shape[1], node.where)
            return _finish(distance(x), None, bias)

        return run

    def run_conv(x: Any) -> Any:
        g.check(x, node.where)
        if s is not None:
            y = euclid_conv2d(x, w4, g.stride, g.padding, g.dilation, backend=backend,
                              method="direct") * s
            return _finish(y, None, bias)
        cols, ho, wo = g.cols(x)
        return _finish(to_nchw(distance(cols), x.shape[0], ho, wo), None, bias)

    return run_conv


def _bn_affine(node: _Node) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm in eval mode as ``x * a + b`` per channel (float32)."""
    mean = node.tensor("running_mean", np.float32, ndim=1)
    c = mean.shape[0]
    var = node.tensor("running_var", np.float32, (c,))
    gamma = node.optional_tensor("weight", np.float32, (c,))
    beta = node.optional_tensor("bias", np.float32, (c,))
    eps = node.attr("eps", float)
    if (var < 0).any():
        raise InvalidInputError(f"{node.where}.tensors.running_var", "holds negative values")
    a = (1.0 / np.sqrt(var.astype(np.float64) + eps)).astype(np.float32)
    if gamma is not None:
        a = (a * gamma).astype(np.float32)
    b = (-mean * a).astype(np.float32)
    if beta is not None:
        b = (b + beta).astype(np.float32)
    return a, b




def _fold_spec(op: Any) -> OpSpec | None:
    """The spec of ``op`` when a BatchNorm can be folded into it."""
    spec = OPS.get(op) if isinstance(op, str) else None
    return spec if spec is not None and spec.fold is not None else None


def _fold_batchnorm(raw_nodes: list[Any], tensors: dict[str, np.ndarray], output: str
                    ) -> tuple[list[Any], dict[str, np.ndarray]]:
    """Fold each BatchNorm that is the only consumer of a layer whose :class:`OpSpec` has a
    ``fold`` into it: ``a (W x + bias) + b`` becomes ``(a W) x + (a bias + b)`` for float
    layers and the per-channel scale of binary / shift layers becomes ``a * scale`` (their
    integer part is unchanged); the BatchNorm node becomes an identity. Anything unexpected is
    left as it is (the usual validation then reports it). Returns new lists; the inputs are not
    changed."""
    consumers: dict[str, int] = {}
    for raw in raw_nodes:
        for name in raw.get("inputs", []) if isinstance(raw, dict) else []:
            consumers[name] = consumers.get(name, 0) + 1
    nodes, tensors = list(raw_nodes), dict(tensors)
    where = {raw.get("name"): i for i, raw in enumerate(nodes) if isinstance(raw, dict)}
    for k, raw in enumerate(nodes):
        if not isinstance(raw, dict) or raw.get("op") != "batchnorm":
            continue
        src = (raw.get("inputs") or [None])[0]
        j = where.get(src)
        spec = _fold_spec(nodes[j].get("op")) if j is not None else None
        if j is None or spec is None or j >= k or consumers.get(src) != 1 or src == output:
            continue
        if (raw.get("attrs") or {}).get("channels_last") and \
                str(nodes[j].get("op")).endswith("conv2d"):
            continue  # a conv's channels are on axis 1
        a, b = _bn_affine(_Node(raw, tensors, k))
        layer = _Node(nodes[j], tensors, j)
        names = dict(layer.names)
        bias = layer.optional_tensor("bias", np.float32)
        if bias is not None and bias.shape != a.shape:
            continue
        if spec.fold == "weight":
            w = layer.optional_tensor("weight", np.float32)
            if w is None or w.shape[0] != a.shape[0]:
                continue
            tensors[f"{src}.weight+bn"] = (w * a.reshape(-1, *[1] * (w.ndim - 1))).astype(
                np.float32)
            names["weight"] = f"{src}.weight+bn"
        else:
            scale = layer.optional_tensor("scale", np.float32)
            if (scale is None and spec.scale_required) or \
                    (scale is not None and scale.shape != a.shape):
                continue  # a binary layer needs its scale: the validation reports it
            tensors[f"{src}.scale+bn"] = (a if scale is None else a * scale).astype(np.float32)
            names["scale"] = f"{src}.scale+bn"
        tensors[f"{src}.bias+bn"] = (b if bias is None else a * bias + b).astype(np.float32)
        names["bias"] = f"{src}.bias+bn"
        nodes[j] = {**nodes[j], "tensors": names}
        nodes[k] = {"name": raw.get("name"), "op": "identity", "inputs": [src], "attrs": {}}
    return nodes, tensors


def _batchnorm(node: _Node, put: Put, backend: Backend = "numpy") -> Fn:
    a_host, b_host = _bn_affine(node)
    c = a_host.shape[0]
    a, b = put(a_host), put(b_host)
    numba = _numba(backend) and not node.attr("channels_last", bool, False)
    if node.attr("channels_last", bool, False):  # tokens (N, T, C): channels on the last axis
        def run_last(x: Any) -> Any:
            if x.ndim < 2 or x.shape[-1] != c:
                raise InvalidInputError(node.where, f"expects (..., {c}), got {x.shape}")
            y = x * a
            y += b
            return y

        return run_last

    def run(x: Any) -> Any:
        if x.ndim not in (2, 4) or x.shape[1] != c:
            raise InvalidInputError(node.where, f"expects (N, {c}) or (N, {c}, H, W), got "
                                    f"{x.shape}")
        if numba and x.dtype == np.float32:  # one parallel pass: x * a + b, two roundings
            from . import cpu, cpu_tokens

            view = np.ascontiguousarray(x).reshape(x.shape[0], c, -1)
            out = np.empty_like(view)
            cpu.launch(cpu_tokens.channel_affine, cpu_tokens.MOVE_WORK * out.size, None, view,
                       a, b, out)
            return out.reshape(x.shape)
        shape = (1, c, 1, 1) if x.ndim == 4 else (1, c)
        y = x * a.reshape(shape)
        y += b.reshape(shape)
        return y

    return run


def _pool(node: _Node, kind: str) -> Fn:
    kh, kw = node.pair("kernel_size", 1)
    sh, sw = node.pair("stride", 1)
    ph, pw = node.pair("padding", 0) if kind == "max" else (0, 0)
    dh, dw = node.pair("dilation", 1) if kind == "max" else (1, 1)
    if 2 * ph > kh or 2 * pw > kw:
        raise InvalidInputError(f"{node.where}.attrs.padding", "must be at most half the kernel")
    def run(x: Any) -> Any:
        _rank(x, 4, node.where)
        xp = array_module(x)
        n, c, h, w = x.shape
        ho, wo = conv_output_size((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
        pad_value = -np.inf if kind == "max" else 0.0
        padded = x
        if ph or pw:
            padded = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
        taps = (padded[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh,
                       j * dw: j * dw + sw * (wo - 1) + 1: sw]
                for i in range(kh) for j in range(kw))
        out = xp.array(next(taps), dtype=np.float32)  # one pass per tap, no stacked copy
        for tap in taps:
            if kind == "max":
                xp.maximum(out, tap, out=out)
            else:
                out += tap
        return out if kind == "max" else out / np.float32(kh * kw)

    return run


def _relu(node: _Node, backend: Backend, put: Put) -> Fn:
    return lambda x: array_module(x).maximum(x, np.float32(0))


def _hardtanh(node: _Node, backend: Backend, put: Put) -> Fn:
    lo, hi = np.float32(node.attr("min", float)), np.float32(node.attr("max", float))
    return lambda x: x.clip(lo, hi)


def _identity(node: _Node, backend: Backend, put: Put) -> Fn:
    return lambda x: x


def _add(node: _Node, backend: Backend, put: Put) -> Fn:
    return lambda a, b: (a + b).astype(np.float32, copy=False)


def _flatten(node: _Node, backend: Backend, put: Put) -> Fn:
    start = node.attr("start_dim", int)
    if start < 0:
        raise InvalidInputError(f"{node.where}.attrs.start_dim", f"= {start} must be >= 0")

    def run(x: Any) -> Any:
        if start >= max(x.ndim, 1):
            raise InvalidInputError(node.where, f"start_dim {start} out of range for "
                                    f"shape {x.shape}")
        return array_module(x).ascontiguousarray(x.reshape(*x.shape[:start], -1))

    return run


def _global_avgpool(node: _Node, backend: Backend, put: Put) -> Fn:
    def run(x: Any) -> Any:
        _rank(x, 4, node.where)
        return x.mean(axis=(2, 3), keepdims=True, dtype=np.float32)

    return run


# ------------------------------------------------------ packed activations between layers
@dataclass(frozen=True)
class _Packed:
    """Signs kept packed between two binary layers (numba backend): ``words`` (N, Q) for
    features, (N, H, W, Q) NHWC for images; bit set = -1. Only the planned steps see it."""

    words: np.ndarray


_BINARY_OPS = ("binary_linear", "binary_conv2d")
#: layers that can head a packed chain, by form (a chain joins layers of one form)
_FORM = {"linear": "linear", "binary_linear": "linear", "shift_linear": "linear",
         "conv2d": "conv", "binary_conv2d": "conv", "shift_conv2d": "conv"}


def _packed_plan(nodes: list[_Node], output: str) -> dict[str, set[str]]:
    """Roles of nodes in chains ``A -> (hardtanh | identity | maxpool2d)* -> B`` where ``B`` is
    a binary layer with binary inputs, ``A`` a float, binary or shift layer of the same form
    (linear, linear or conv, conv) and every node of the chain has one consumer: ``A`` writes
    packed signs (``produce``: by an integer threshold when it is itself binary with binary
    inputs, else by packing its float output), the
    chain passes or pools them (``pass``, ``pool``: no padding or dilation) and ``B`` reads them
    (``consume``). Valid because ``sign`` of ``A``'s output is what ``B`` reads: hardtanh with
    ``min < 0 < max`` keeps the sign, and max-pooling commutes with it."""
    by_name = {n.name: n for n in nodes}
    uses: dict[str, int] = {}
    for n in nodes:
        for i in n.inputs:
            uses[i] = uses.get(i, 0) + 1
    roles: dict[str, set[str]] = {}
    for b in nodes:
        if b.op not in _BINARY_OPS or b.input_scale() is None:
            continue
        chain: list[tuple[str, str]] = []
        src = b.inputs[0]
        while src in by_name and uses.get(src) == 1 and src != output:
            n = by_name[src]
            if n.op == "identity" or (n.op == "hardtanh" and n.attr("min", float) < 0
                                      < n.attr("max", float)):
                chain.append((n.name, "pass"))
            elif (n.op == "maxpool2d" and b.op == "binary_conv2d"
                  and n.pair("padding", 0) == (0, 0) and n.pair("dilation", 1) == (1, 1)
                  and len(set(n.pair("kernel_size", 1) + n.pair("stride", 1))) == 1):
                chain.append((n.name, "pool"))
            else:
                if _FORM.get(n.op) == _FORM[b.op]:
                    roles.setdefault(n.name, set()).add("produce")
                    for name, role in chain:
                        roles.setdefault(name, set()).add(role)
                    roles.setdefault(b.name, set()).add("consume")
                break
            src = n.inputs[0]
    return roles


def _fused_pools(nodes: list[_Node], roles: dict[str, set[str]]) -> dict[str, tuple[str, int]]:
    """Float grey 3 x 3 conv producers (``cpu_packed.float_conv3x3_sign``) whose chain reaches
    a ``pool`` node through ``pass`` nodes only: producer -> (that pool node, its kernel). The
    producer's epilogue pools (max-pooling commutes with the sign, as in the plan), so the
    1-bit conv output is never stored and read back; the pool node's role becomes
    ``pooled`` (in ``roles``, a pass-through for packed values)."""
    consumers: dict[str, list[_Node]] = {}
    for n in nodes:
        for i in n.inputs:
            consumers.setdefault(i, []).append(n)
    fused: dict[str, tuple[str, int]] = {}
    for n in nodes:
        if n.op != "conv2d" or "produce" not in roles.get(n.name, set()) \
                or not _Conv.of(n).grey_3x3:
            continue
        src = n.name
        while len(consumers.get(src, [])) == 1:
            nxt = consumers[src][0]
            role = roles.get(nxt.name, set())
            if role == {"pool"}:
                fused[n.name] = (nxt.name, nxt.pair("kernel_size", 1)[0])
                roles[nxt.name] = {"pooled"}
            if role != {"pass"}:
                break
            src = nxt.name
    return fused


def _zero_points(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Channels where ``alpha * acc + beta == 0`` for some integer ``acc`` (the sign is then 0,
    which packed bits cannot hold): their ``acc`` value, a mask, and whether a channel is 0
    for every ``acc`` (``alpha = beta = 0``)."""
    a, b = alpha.astype(np.float64), beta.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(a != 0, np.round(-b / np.where(a != 0, a, 1.0)), 0.0)
    hit = (a != 0) & (a * z + b == 0) & (np.abs(z) < 2**31)
    return z.astype(np.int64), hit, bool(((a == 0) & (b == 0)).any())


#: a float tail run in a binary conv's epilogue: ``(lo, hi, pool, fallback)``, clip bounds,
#: the max-pool's kernel (= stride) and the unfused steps for a batch that is not packed
Tail = tuple[float, float, int, Fn]


def _binary_packed(node: _Node, roles: set[str], tail: Tail | None = None) -> Fn:
    """A binary layer with binary inputs on the numba backend that reads packed signs
    (``consume``) and/or writes them (``produce``): ``sign(scale * acc + bias)`` as the
    per-channel integer threshold of :func:`~.packed.sign_thresholds`. A batch in which some
    output is exactly 0 falls back to the float output (torch's ``sign(0) = 0``)."""
    from . import cpu, packed

    conv = node.op == "binary_conv2d"
    k = node.attr("k", int)
    g = _Conv.of(node) if conv else None
    words = node.tensor("words", np.uint64, ndim=2)
    signs = unpack_signs(words, k)
    n_out = words.shape[0]
    scale = node.tensor("scale", np.float32, (n_out,))
    bias = node.optional_tensor("bias", np.float32, (n_out,))
    c = node.input_scale()
    assert c is not None  # the plan only picks binary-input layers
    out_scale = (scale * np.float32(c)).astype(np.float32)
    signs_f32 = signs.astype(np.float32)
    matmul_nt = _matmul_nt("numba")
    produce = "produce" in roles
    zbias = bias if bias is not None else np.zeros(n_out, np.float32)
    t, flip = packed.sign_thresholds(out_scale.astype(np.float64), zbias.astype(np.float64))
    z, zhit, always_zero = _zero_points(out_scale, zbias)
    if g is None:
        panels = cpu.panels_for(words)

        def acc_of(x: Any) -> Any:
            acc = np.empty((x.words.shape[0] if isinstance(x, _Packed) else x.shape[0], n_out),
                           np.int32)
            if isinstance(x, _Packed):
                cpu.binary_matmul(x.words, words, k, acc, panels)
                return acc
            _check_features(x, k, node.where)
            cpu.binary_matmul(pack_signs(x), words, k, acc, panels)
            zeros = x == 0
            if zeros.any():
                acc -= _zero_correction(zeros, signs_f32, matmul_nt)
            return acc
    else:
        kh, kw = g.kernel_size
        w_taps = np.ascontiguousarray(
            pack_negative_mask(signs.reshape(n_out, g.in_channels, kh, kw).transpose(2, 3, 0, 1)
                               < 0).transpose(0, 1, 3, 2))
        pad_sum = np.zeros((kh, kw, n_out), np.int64)
        rows = packed.RowConv(w_taps, g.in_channels, g.stride, g.padding, g.dilation, pad_sum)
        int_pool = rows.int_pool(out_scale, bias)

        def acc_of(x: Any) -> Any:
            if isinstance(x, _Packed) and packed._TAP_ROWS:
                return rows.acc(x.words)
            if isinstance(x, _Packed):
                n, h, w = x.words.shape[:3]
                acc = np.empty((n, n_out, *conv_output_size((h, w), g.kernel_size, g.stride,
                                                            g.padding, g.dilation)), np.int32)
                with cpu.parallel_chunksize(cpu._chunked(n * acc.shape[2])):
                    cpu.binary_conv_direct(x.words, w_taps, g.in_channels, g.stride, g.padding,
                                           g.dilation, pad_sum, acc)
                return acc
            g.check(x, node.where)
            acc = cpu.binary_conv2d(x < 0, w_taps, g.in_channels, g.stride, g.padding,
                                    g.dilation, pad_sum,
                                    conv_output_size(x.shape[2:], g.kernel_size, g.stride,
                                                     g.padding, g.dilation))
            zeros = x == 0
            if zeros.any():
                cols, ho, wo = g.cols(zeros.astype(np.float32))
                acc -= to_nchw(_zero_correction(cols, signs_f32, matmul_nt), x.shape[0], ho, wo)
            return acc

    def run_tail(x: Any) -> Any:
        assert tail is not None and g is not None
        if isinstance(x, _Packed) and packed._TAP_ROWS:
            return rows.affine_pool(x.words, out_scale, bias, *tail[:3], int_pool)
        return tail[3](run(x))

    def run(x: Any) -> Any:
        if produce and not always_zero and g is not None and isinstance(x, _Packed) \
                and not zhit.any():
            # fused: packed in, thresholded packed out
            if packed._TAP_ROWS:
                return _Packed(rows.threshold(x.words, t, flip))
            return _Packed(packed.binary_conv2d_packed(x.words, w_taps, g.in_channels, g.stride,
                                                       g.padding, g.dilation, pad_sum, t, flip))
        if not produce and g is not None and isinstance(x, _Packed) and packed._TAP_ROWS:
            return rows.affine(x.words, out_scale, bias)  # the float finish in the epilogue
        acc = acc_of(x)
        if produce and not always_zero:
            last = acc if g is None else acc.transpose(0, 2, 3, 1)
            if not (zhit.any() and (last[..., zhit] == z[zhit]).any()):
                return _Packed(packed.threshold_pack(np.ascontiguousarray(last), t, flip))
        return _finish(acc, out_scale, bias)

    return run if tail is None else run_tail


def _clip_chain(name: str, by_name: dict[str, _Node], uses: dict[str, int], output: str
               ) -> tuple[_Node | None, list[_Node]]:
    """Walk back from node ``name`` through ``hardtanh`` / ``identity`` nodes used once (not the
    model's output): the first other node (``None`` at the graph's input) and the walked
    chain, nearest first. What a fusion absorbing a layer's clip looks for."""
    chain: list[_Node] = []
    src = by_name.get(name)
    while src is not None and src.op in ("hardtanh", "identity") and uses.get(src.name) == 1 \
            and src.name != output:
        chain.append(src)
        src = by_name.get(src.inputs[0])
    return src, chain


def _clipped_consumer(start: str, op: str, by_name: dict[str, _Node], uses: dict[str, int],
                      output: str, plan: dict[str, set[str]]
                      ) -> tuple[_Node, list[_Node], tuple[float, float]] | None:
    """The ``op`` node behind node ``start`` through :func:`_clip_chain`, when it is the packed
    plan's consumer only (reads packed signs, writes floats), used once, not the output, with
    at most one ``hardtanh`` in the chain: the node, the chain (nearest first) and the clip
    bounds (``(-inf, inf)`` without a clip). What the fusions absorbing a binary layer's float
    epilogue look for."""
    src, chain = _clip_chain(start, by_name, uses, output)
    clips = [n for n in chain if n.op == "hardtanh"]
    if src is None or src.op != op or uses.get(src.name) != 1 or src.name == output \
            or plan.get(src.name) != {"consume"} or len(clips) > 1:
        return None
    bounds = ((clips[0].attr("min", float), clips[0].attr("max", float)) if clips
              else (-np.inf, np.inf))
    return src, chain, bounds


def _conv_pool_fusion(nodes: list[_Node], uses: dict[str, int], output: str) -> list[Fused]:
    """``binary_conv2d -> [hardtanh] -> maxpool2d`` with a float output, the conv reading
    packed signs (the packed plan's ``consume``, not ``produce``), at most one hardtanh with
    ``min < 0 < max`` and identities between, each used once; a square pool with stride equal
    to its kernel, no padding or dilation: one ``RowConv.affine_pool`` pass (the conv's float
    map is never written). A binary CNN's last conv block before its float head."""
    plan = _packed_plan(nodes, output)
    by_name = {n.name: n for n in nodes}
    groups = []
    for pool in nodes:
        if pool.op != "maxpool2d" or pool.pair("padding", 0) != (0, 0) \
                or pool.pair("dilation", 1) != (1, 1) \
                or len(set(pool.pair("kernel_size", 1) + pool.pair("stride", 1))) != 1:
            continue
        found = _clipped_consumer(pool.inputs[0], "binary_conv2d", by_name, uses, output, plan)
        if found is None:
            continue
        src, chain, (lo, hi) = found
        if not lo < 0 < hi:
            continue  # a zero bound: np.clip's choice between signed zeros is not pinned
        groups.append(Fused(pool.name, (src.inputs[0],), (src.name, *[n.name for n in chain]),
                            partial(_conv_pool_runner, src, pool, lo, hi)))
    return groups


def _conv_pool_runner(conv: _Node, pool: _Node, lo: float, hi: float) -> Fn:
    kernel = pool.pair("kernel_size", 1)[0]
    pool_fn = _pool(pool, "max")
    a, b = np.float32(lo), np.float32(hi)
    return _binary_packed(conv, {"consume"}, (lo, hi, kernel, lambda y: pool_fn(y.clip(a, b))))


def _float_producer(node: _Node, fn: Fn, pool: int = 1) -> Fn:
    """A layer with a float output that heads a packed chain: its output's signs, packed (NHWC
    words for images); a batch with an output exactly 0 stays float (``sign(0) = 0``). A float
    conv (a network's first layer) runs a direct conv whose epilogue packs the signs
    (``cpu_packed.float_conv_sign``): no float output is written, which with glibc's default
    thresholds would be a freshly mapped, page-faulting buffer on every call. ``pool`` > 1 (a
    grey 3 x 3 conv whose chain max-pools first, :func:`_fused_pools`): the epilogue also
    pools, the packed value is the pooled one (the float fallback is not pooled: the pool
    node's own step does that)."""
    from . import cpu, cpu_packed

    if node.op == "conv2d":
        g = _Conv.of(node)
        w = node.tensor("weight", np.float32, ndim=4)
        wt = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
        bias = node.optional_tensor("bias", np.float32, (w.shape[0],))
        b = bias if bias is not None else np.zeros(w.shape[0], np.float32)
        grey_3x3 = g.grey_3x3  # pixels as the vector lanes
        assert pool == 1 or grey_3x3

        @functools.cache
        def out_size(h: int, w: int) -> tuple[int, int]:
            return conv_output_size((h, w), g.kernel_size, g.stride, g.padding, g.dilation)

        def run_conv(x: Any) -> Any:
            g.check(x, node.where)
            ho, wo = out_size(*x.shape[2:])
            if pool > min(ho, wo):
                return fn(x)  # the pool node's own step reports it
            words = np.empty((x.shape[0], ho // pool, wo // pool, words_for(w.shape[0])),
                             np.uint64)
            zero = np.empty(x.shape[0] * ho, np.int8)
            work = zero.shape[0] * wo * wt.size
            if grey_3x3:
                # a serial call (cpu.launch) runs whole images: no split to balance
                rows = ho if work < cpu.SERIAL_WORK else cpu.rows_per_task(x.shape[0], ho)
                rows = -(-rows // pool) * pool
                cpu.launch(cpu_packed.float_conv3x3_sign, work, x.shape[0] * -(-ho // rows),
                           x, wt, b, g.padding, rows, pool, words, zero)
            else:
                cpu.launch(cpu_packed.float_conv_sign, work, zero.shape[0], x, wt, b, g.stride,
                           g.padding, g.dilation, words, zero)
            return fn(x) if zero.any() else _Packed(words)

        return run_conv

    def run(x: Any) -> Any:
        y = fn(x)
        neg = y < 0
        if (y == 0).any():
            return y
        if y.ndim == 2:
            return _Packed(pack_negative_mask(neg))
        n, c, h, w = y.shape
        words = np.empty((n, h, w, words_for(c)), np.uint64)
        cpu.pack_channels(neg, words)
        return _Packed(words)

    return run


def _grid_producer(node: _Node, grid: _first_layer.Grid, fn: Fn) -> Fn:
    """A float linear layer heading a packed chain, on grid inputs: the certified integer
    signs of :mod:`.first_layer` where its CPU features are there (else ``fn``)."""
    if not _first_layer.available():
        return fn
    return _first_layer.grid_sign_producer(node, grid, fn, _Packed)


def _packed_step(role: str, node: _Node, fn: Fn) -> Fn:
    """A pass-through or pooling step of a packed chain: packed in, packed out; anything else
    (a fallback batch) runs the node's own function."""
    from . import packed

    if role in ("pass", "pooled"):  # pooled: by the producer's epilogue (_fused_pools)
        return lambda x: x if isinstance(x, _Packed) else fn(x)
    kernel, stride = node.pair("kernel_size", 1)[0], node.pair("stride", 1)[0]

    def run(x: Any) -> Any:
        if not isinstance(x, _Packed):
            return fn(x)
        if kernel > min(x.words.shape[1:3]):
            raise InvalidInputError(node.where, f"kernel {kernel} exceeds the input's "
                                    f"{x.words.shape[1]} x {x.words.shape[2]}")
        return _Packed(packed.pool_words(x.words, kernel, stride))

    return run


#: ``builder(node, backend, put) -> fn``: validates a node and returns the function running it
Builder = Callable[[_Node, Backend, Put], Fn]


@dataclass(frozen=True)
class OpSpec:
    """How an op of the manifest runs.

    Attributes:
        build: the node's builder.
        arity: the number of inputs it takes.
        fold: how a BatchNorm that only follows it is folded into it at load
            (``fold_batchnorm=True``): ``"weight"`` scales its ``weight`` rows, ``"scale"`` its
            per-output ``scale`` (created when absent, unless ``scale_required``); both fold the
            shift into its ``bias``. ``None``: not folded.
        scale_required: the op cannot run without its ``scale`` tensor (then a node without
            one is left to the validation, which reports it).
    """

    build: Builder
    arity: int = 1
    fold: Literal["weight", "scale"] | None = None
    scale_required: bool = False


def _layer(build: Callable[..., Fn], conv: bool, *args: Any) -> Builder:
    """A builder of the linear (``conv=False``) or conv form of a layer op; linear layers take
    ``(..., K)`` inputs (e.g. tokens ``(N, T, K)``), run as ``(N T, K)``."""
    if conv:
        return lambda node, backend, put: build(node, conv, backend, put, *args)

    def builder(node: _Node, backend: Backend, put: Put) -> Fn:
        fn = build(node, conv, backend, put, *args)

        def run(x: Any) -> Any:
            if x.ndim <= 2:
                return fn(x)
            flat = array_module(x).ascontiguousarray(x.reshape(-1, x.shape[-1]))
            return fn(flat).reshape(*x.shape[:-1], -1)

        return run

    return builder


def _float(node: _Node, conv: bool, backend: Backend, put: Put) -> Fn:
    return _float_layer(node, conv, put, backend)


@dataclass(frozen=True)
class Fused:
    """A group of nodes the numba backend runs as one kernel (found at load by a
    :data:`FUSIONS` entry): ``name`` is the group's last node, whose value is the group's
    output; ``absorbed`` are its other nodes, each consumed only inside the group (their values
    are never stored); ``inputs`` what the group reads; ``build`` returns its function."""

    name: str
    inputs: tuple[str, ...]
    absorbed: tuple[str, ...]
    build: Callable[[], Fn]


#: ``fusion(nodes, uses, output) -> groups``: ``nodes`` the validated graph (BatchNorm folded),
#: ``uses`` each node's consumer count, ``output`` the model's output node
Fusion = Callable[[list["_Node"], dict[str, int], str], list[Fused]]
#: load-time fusions of the numba backend (``ExportedModel.fused`` lists what they found); the
#: NumPy backend runs every node as stored: it is the twin the fused kernels are tested against
FUSIONS: list[Fusion] = []


def register_fusion(fusion: Fusion) -> None:
    """Add a load-time fusion (see :data:`FUSIONS`)."""
    FUSIONS.append(fusion)


register_fusion(_conv_pool_fusion)


def _fusions(nodes: list[_Node], output: str) -> dict[str, Fused]:
    """The groups of every registered fusion, by output node; a group that overlaps one found
    before it is dropped."""
    uses: dict[str, int] = {}
    for n in nodes:
        for i in n.inputs:
            uses[i] = uses.get(i, 0) + 1
    groups: dict[str, Fused] = {}
    taken: set[str] = set()
    for fusion in FUSIONS:
        for group in fusion(nodes, uses, output):
            members = {group.name, *group.absorbed}
            if members & taken or output in group.absorbed:
                continue
            taken |= members
            groups[group.name] = group
    return groups


#: op name -> how it runs (the manifest's ``op``); :func:`register_op` adds one
OPS: dict[str, OpSpec] = {
    "linear": OpSpec(_layer(_float, False), fold="weight"),
    "conv2d": OpSpec(_layer(_float, True), fold="weight"),
    "binary_linear": OpSpec(_layer(_binary_layer, False), fold="scale", scale_required=True),
    "binary_conv2d": OpSpec(_layer(_binary_layer, True), fold="scale", scale_required=True),
    "shift_linear": OpSpec(_layer(_shift_layer, False), fold="scale"),
    "shift_conv2d": OpSpec(_layer(_shift_layer, True), fold="scale"),
    "euclid_linear": OpSpec(_layer(_distance_layer, False, "euclid")),
    "euclid_conv2d": OpSpec(_layer(_distance_layer, True, "euclid")),
    "adder_linear": OpSpec(_layer(_distance_layer, False, "adder")),
    "adder_conv2d": OpSpec(_layer(_distance_layer, True, "adder")),
    "batchnorm": OpSpec(lambda node, backend, put: _batchnorm(node, put, backend)),
    "maxpool2d": OpSpec(lambda node, backend, put: _pool(node, "max")),
    "avgpool2d": OpSpec(lambda node, backend, put: _pool(node, "avg")),
    "relu": OpSpec(_relu),
    "hardtanh": OpSpec(_hardtanh),
    "identity": OpSpec(_identity),
    "add": OpSpec(_add, arity=2),
    "flatten": OpSpec(_flatten),
    "global_avgpool2d": OpSpec(_global_avgpool),
}


def register_op(name: str, spec: OpSpec, *, replace: bool = False) -> None:
    """Add an op the reader runs (a layer family's kernel; docs/extending.md).

    Raises:
        InvalidInputError: ``name`` is taken and ``replace`` is false.
    """
    if name in OPS and not replace:
        raise InvalidInputError("op", f"{name!r} is already registered")
    OPS[name] = spec


def _arity(op: str) -> int:
    spec = OPS.get(op)
    return spec.arity if spec is not None else 1


def _build(node: _Node, backend: Backend, put: Put) -> Fn:
    spec = OPS.get(node.op)
    if spec is None:
        raise InvalidInputError(f"{node.where}.op", f"= {node.op!r} is not a known op")
    return spec.build(node, backend, put)


# ----------------------------------------------------------------------------- the model
def _device_put(backend: Backend) -> Put:
    """The identity for the CPU backends; ``cupy.asarray`` for ``cupy``, after checking that
    CuPy imports and sees a CUDA device."""
    if backend != "cupy":
        return lambda a: a
    try:
        import cupy

        devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # ImportError, or a CUDA library or driver that fails to load
        raise InvalidInputError("backend", f"'cupy' needs CuPy and a CUDA device "
                                f"({type(exc).__name__}: {exc})") from None
    if devices < 1:
        raise InvalidInputError("backend", "'cupy' needs a CUDA device; none is visible")
    return cupy.asarray


@check_arguments
class ExportedModel:
    """An exported model (see the module docstring): on NumPy float32 arrays with the CPU
    backends, on CuPy float32 arrays with ``backend="cupy"`` (its weights live on the GPU).

    ``fold_batchnorm`` (default): a BatchNorm that only follows a float, binary or shift layer
    is folded into that layer's weights or per-channel scale and bias (one pass over the
    activations less); ``export`` checks the unfolded nodes one by one.

    Attributes:
        manifest: the parsed ``model.json``.
        backend: the kernels' backend (``auto``: numba on the CPU).
        input_shape: the per-sample input shape recorded at export (``None``: not recorded).
        folded: the BatchNorm nodes folded into the layer before them.
    """

    def __init__(self, manifest: dict[str, Any], tensors: dict[str, np.ndarray],
                 backend: Backend = "auto", fold_batchnorm: bool = True) -> None:
        if backend not in ("auto", "numpy", "numba", "cupy"):
            raise InvalidInputError("backend", f"= {backend!r}; accepted: auto, numpy, numba "
                                    "(CPU, NumPy arrays), cupy (GPU, CuPy arrays)")
        self.manifest = manifest
        self.backend = backend
        put = _device_put(backend)
        shape = manifest.get("input_shape")
        if shape is not None and (not isinstance(shape, list) or not all(
                isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)):
            raise InvalidInputError("input_shape", f"= {shape!r} must be a list of sizes > 0")
        self.input_shape: tuple[int, ...] | None = tuple(shape) if shape is not None else None
        #: inputs on an affine 8-bit grid (``input_grid`` of the export): a float linear
        #: layer heading a packed chain then takes the certified integer path (first_layer)
        self.input_grid = _first_layer.parse_grid(manifest.get("input_grid"))
        raw_nodes = manifest.get("nodes")
        if not isinstance(raw_nodes, list) or not raw_nodes:
            raise InvalidInputError("nodes", "must be a non-empty list")
        self.input_name = _Node._str(manifest.get("input"), "input", "manifest")
        self.output_name = _Node._str(manifest.get("output"), "output", "manifest")
        self.folded: list[str] = []
        if fold_batchnorm:
            folded_nodes, tensors = _fold_batchnorm(raw_nodes, tensors, self.output_name)
            self.folded = [str(a.get("name")) for a, b in zip(raw_nodes, folded_nodes, strict=True)
                           if a is not b and b.get("op") == "identity"]
            raw_nodes = folded_nodes
        known = {self.input_name}
        self.steps: list[tuple[str, list[str], Fn]] = []
        parsed = [_Node(raw, tensors, i) for i, raw in enumerate(raw_nodes)]
        #: nodes whose activations stay packed (numba backend, BatchNorm folded): name -> roles
        self.packed: dict[str, set[str]] = {}
        #: fused groups (numba backend, BatchNorm folded): output node -> absorbed nodes
        self.fused: dict[str, tuple[str, ...]] = {}
        groups: dict[str, Fused] = {}
        #: float grey 3 x 3 producers that also max-pool (numba backend): name -> (pool, kernel)
        pools: dict[str, tuple[str, int]] = {}
        if fold_batchnorm and _numba(backend):
            try:
                self.packed = _packed_plan(parsed, self.output_name)
                pools = _fused_pools(parsed, self.packed)
                groups = _fusions(parsed, self.output_name)
            except InvalidInputError:
                self.packed, groups, pools = {}, {}, {}  # the validation below reports it
        absorbed = {name for g in groups.values() for name in g.absorbed}
        for node in parsed:
            if node.name in known:
                raise InvalidInputError(f"{node.where}.name", "is used twice")
            for name in node.inputs:
                if name not in known:
                    raise InvalidInputError(f"{node.where}.inputs", f"{name!r} is not defined "
                                            "before this node")
            if len(node.inputs) != _arity(node.op):
                raise InvalidInputError(f"{node.where}.inputs", f"op {node.op!r} takes "
                                        f"{_arity(node.op)} input(s)")
            fn = _build(node, backend, put)
            roles = self.packed.get(node.name, set())
            if "consume" in roles or ("produce" in roles and node.op in _BINARY_OPS
                                      and node.input_scale() is not None):
                fn = _binary_packed(node, roles)
            elif "produce" in roles:
                fn = _float_producer(node, fn, pools.get(node.name, ("", 1))[1])
                if self.input_grid is not None and node.op in _first_layer.SIGN_OPS \
                        and (node.op == "linear" or node.input_scale() is None):
                    fn = _grid_producer(node, self.input_grid, fn)
            elif roles:
                fn = _packed_step(next(iter(roles)), node, fn)
            known.add(node.name)
            if node.name in absorbed:
                continue  # validated above; runs inside its group
            inputs = node.inputs
            if node.name in groups:
                group = groups[node.name]
                fn, inputs = group.build(), list(group.inputs)
                self.fused[node.name] = group.absorbed
            self.steps.append((node.name, inputs, fn))
        if self.output_name not in known:
            raise InvalidInputError("output", f"{self.output_name!r} is not a node")
        self._dead = _last_uses(self.steps, self.input_name, self.output_name)

    def __call__(self, x: Any) -> Any:
        """Run the model on a float32 batch ``x`` (batch first; a CuPy array with the ``cupy``
        backend, else a NumPy array); returns float32 outputs on the same device."""
        gpu = self.backend == "cupy"
        kind = "CuPy" if gpu else "NumPy"
        if is_cupy(x) != gpu or not hasattr(x, "dtype") or x.dtype != np.float32:
            raise InvalidInputError("x", f"must be a float32 {kind} array (backend "
                                    f"{self.backend!r}), got {type(x).__module__}."
                                    f"{type(x).__name__} of {getattr(x, 'dtype', '-')}")
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise InvalidInputError("x", f"shape {x.shape}; expected (N, "
                                    f"{', '.join(map(str, self.input_shape))})")
        xp = array_module(x)
        x = xp.ascontiguousarray(x)
        if _numba(self.backend):
            from . import cpu

            finite = cpu.all_finite(x.reshape(-1))
        else:
            finite = bool(xp.isfinite(x).all())
        if not finite:
            raise InvalidInputError("x", "holds NaN or inf")
        values = {self.input_name: x}
        for (name, inputs, fn), dead in zip(self.steps, self._dead, strict=True):
            values[name] = fn(*(values[i] for i in inputs))
            for gone in dead:  # freed as soon as read for the last time: the allocator
                del values[gone]  # reuses warm memory instead of faulting in fresh pages
        return values[self.output_name]


def _last_uses(steps: list[tuple[str, list[str], Fn]], first: str,
               output: str) -> list[tuple[str, ...]]:
    """Per step, the values read there for the last time (the model's input and output
    excepted: the caller owns the one, receives the other)."""
    last: dict[str, int] = {}
    for index, (_, inputs, _) in enumerate(steps):
        for name in inputs:
            last[name] = index
    dead: list[list[str]] = [[] for _ in steps]
    for name, index in last.items():
        if name not in (first, output):
            dead[index].append(name)
    return [tuple(d) for d in dead]


@check_arguments
def load(path: str | os.PathLike[str], backend: Backend = "auto",
         fold_batchnorm: bool = True) -> ExportedModel:
    """Load an export folder written by ``proxcompress.training.export``.

    Args:
        path: the folder (holding ``model.json`` and ``model.safetensors``).
        backend: the kernels' backend for every layer: ``auto`` (numba), ``numba`` or ``numpy``
            (the reference twins), all on NumPy arrays; or ``cupy``: the weights are copied to
            the current CUDA device once and the model runs on CuPy arrays (GPU kernels).
        fold_batchnorm: fold each BatchNorm that only follows a float, binary or shift layer
            into it (``ExportedModel.folded`` lists them); ``False`` runs every node as stored.

    Raises:
        FileNotFoundError: no manifest or no tensor file.
        InvalidInputError: a manifest that is not JSON or not this format/version, a tensor file
            whose SHA-256 differs from the manifest's (corrupt or partial), or any node whose
            attributes or tensors do not match (the message names the node and field); backend
            ``cupy`` where CuPy does not import or sees no CUDA device.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    root = Path(path)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"path: no {MANIFEST} in {str(root)!r}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError("manifest", f"{str(manifest_path)!r} is not valid JSON "
                                f"({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInputError("manifest", f"{str(manifest_path)!r} is not a {FORMAT} "
                                "manifest")
    if manifest.get("version") != VERSION:
        raise InvalidInputError("manifest.version", f"= {manifest.get('version')!r}; this "
                                f"reader knows version {VERSION}")
    tensor_name = manifest.get("tensors")
    if not isinstance(tensor_name, str) or Path(tensor_name).name != tensor_name:
        raise InvalidInputError("manifest.tensors", f"= {tensor_name!r} must be a file name")
    tensor_path = root / tensor_name
    if not tensor_path.is_file():
        raise FileNotFoundError(f"path: the tensor file {str(tensor_path)!r} is missing")
    if sha256_file(tensor_path) != manifest.get("sha256"):
        raise InvalidInputError("tensors", f"{str(tensor_path)!r} does not match the SHA-256 "
                                f"in {MANIFEST} (corrupt, partial or from another export)")
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidInputError("tensors", f"{str(tensor_path)!r} is not a readable "
                                f"safetensors file ({exc})") from None
    return ExportedModel(manifest, tensors, backend, fold_batchnorm)


from . import binary_head as _binary_head  # noqa: E402,F401 (registers its fusion, after the ViT's)
from . import first_layer as _first_layer  # noqa: E402
from . import transformer as _transformer  # noqa: E402,F401 (registers the token ops in OPS)
