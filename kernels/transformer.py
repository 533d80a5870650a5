"""The token ops of exported vision transformers (``proxcompress.training.models.vit``),
registered in :data:`proxcompress.kernels.model.OPS`.

Tokens are ``(N, T, C)`` float32 arrays (NumPy, or CuPy with ``backend="cupy"``). The linear
layers run on the ops of :mod:`.model` (``linear``, ``binary_linear`` with binary inputs on the
packed kernels: they take ``(N, T, K)`` as ``(N T, K)``); everything here is float
elementwise, normalization, pooling or the attention's products:

======================== =====================================================================
``to_tokens``            ``(N, C, H, W) -> (N, H W, C)``
``to_map``               ``(N, H W, C) -> (N, C, H, W)`` (``grid``)
``prepend_token``        a stored token (``token``) or zeros before the first token
``drop_first_token``     ``(N, 1 + T, C) -> (N, T, C)``
``add_table``            ``x + table`` (position embeddings, ``(T, C)``)
``layernorm``            over the last axis, ``eps``, optional ``weight`` / ``bias``
``gelu``                 ``x Phi(x)`` (``approximate``: ``none``, erf; or ``tanh``)
``channel_affine``       ``x * scale + bias`` per channel on ``axis`` (-1 or 1), either optional
``rprelu``               ``max(y, 0) - slope max(-y, 0) + shift_out``, ``y = x + shift_in``
``channel_repeat``       the channels on ``axis`` repeated ``times`` times
``channel_group_mean``   channel ``j`` = mean of ``j + i C/g``, ``i < g`` (``groups``)
``token_avgpool``        average pooling on the token ``grid`` (zero padding counted)
``token_upsample``       nearest upsampling of the token ``grid`` by ``factor``
``token_mean``           ``(N, T, C) -> (N, C)``
``select_token``         ``(N, T, C) -> (N, C)``, token ``index``
``attention_scores``     ``softmax(Q K^T * scale)`` per head: ``(N, T, C), (N, T', C) -> (N, h,
                         T, T')``
``quantize_probs``       ``alpha round(clip(p / alpha, 0, 1))``
``attention_context``    ``P V`` per head, heads merged: ``(N, h, T, T'), (N, T', C) -> (N, T,
                         C)``
``binarize``             ``c sign(x)`` (an activation quantizer site's deployed form)
======================== =====================================================================

Every op validates its attributes and tensors at load (errors name the node and field) and its
input shapes when it runs.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

from proxcompress.errors import InvalidInputError

from ._checks import Backend, array_module, is_cupy
from .model import Fn, Fused, OpSpec, Put, _bn_affine, _Node, _numba, register_fusion, register_op


def _rank(x: Any, n: int, node: _Node) -> None:
    if x.ndim != n:
        raise InvalidInputError(node.where, f"expects a {n}-d input, got shape {x.shape}")


def _channels(x: Any, c: int, axis: int, node: _Node) -> None:
    if x.ndim < 2 or x.shape[axis] != c:
        raise InvalidInputError(node.where, f"expects {c} channels on axis {axis}, got shape "
                                f"{x.shape}")


def _axis(node: _Node) -> int:
    axis = node.attr("axis", int, -1)
    if axis not in (-1, 1):
        raise InvalidInputError(f"{node.where}.attrs.axis", f"= {axis}; accepted: -1, 1")
    return int(axis)


def _count(node: _Node, key: str) -> int:
    """An integer attribute that must be >= 1."""
    value = node.attr(key, int)
    if value < 1:
        raise InvalidInputError(f"{node.where}.attrs.{key}", f"= {value} must be >= 1")
    return int(value)


def _grid(node: _Node, key: str = "grid") -> tuple[int, int]:
    return node.pair(key, 1)


def _per_channel(v: Any, axis: int, ndim: int) -> Any:
    return v if axis == -1 else v.reshape((-1,) + (1,) * (ndim - 2))


def _f32(y: Any) -> Any:
    return y.astype(np.float32, copy=False)


def _ones(v: np.ndarray | None, c: int) -> np.ndarray:
    """``v``, or ones where an op has no scale (``x * 1`` is exact)."""
    return np.ones(c, np.float32) if v is None else v


def _zeros(v: np.ndarray | None, c: int) -> np.ndarray:
    """``v``, or zeros where an op has no bias."""
    return np.zeros(c, np.float32) if v is None else v


def _channel_view(x: Any, axis: int) -> np.ndarray:
    """``x`` as a contiguous ``(A, C, B)`` array with the channels (``axis`` -1 or 1) in the
    middle: ``(N T, C, 1)`` for tokens, ``(N, C, H W)`` for maps."""
    x = np.ascontiguousarray(x)
    if axis == -1:
        return x.reshape(-1, x.shape[-1], 1)
    return x.reshape(x.shape[0], x.shape[1], -1)


# ---------------------------------------------------------------------------- layout ops
def _swap_last(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """:func:`.cpu_tokens.swap_last` of a 3-d ``x`` into ``out`` (numba backend)."""
    from . import cpu, cpu_tokens

    cpu.launch(cpu_tokens.swap_last, cpu_tokens.MOVE_WORK * x.size, None,
               np.ascontiguousarray(x), out)
    return out


def _to_tokens(node: _Node, backend: Backend, put: Put) -> Fn:
    numba = _numba(backend)

    def run(x: Any) -> Any:
        _rank(x, 4, node)
        xp = array_module(x)
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        if numba:
            return _swap_last(flat, np.empty((flat.shape[0], flat.shape[2], flat.shape[1]),
                                             np.float32))
        return xp.ascontiguousarray(flat.transpose(0, 2, 1))

    return run


def _to_map(node: _Node, backend: Backend, put: Put) -> Fn:
    h, w = _grid(node)
    numba = _numba(backend)

    def run(x: Any) -> Any:
        _rank(x, 3, node)
        if x.shape[1] != h * w:
            raise InvalidInputError(node.where, f"expects {h * w} tokens, got {x.shape}")
        xp = array_module(x)
        if numba:
            out = np.empty((x.shape[0], x.shape[2], h, w), np.float32)
            _swap_last(x, out.reshape(x.shape[0], x.shape[2], h * w))
            return out
        return xp.ascontiguousarray(x.transpose(0, 2, 1).reshape(x.shape[0], -1, h, w))

    return run


def _prepend_token(node: _Node, backend: Backend, put: Put) -> Fn:
    host = node.optional_tensor("token", np.float32, ndim=1)
    token = None if host is None else put(host)

    def run(x: Any) -> Any:
        _rank(x, 3, node)
        xp = array_module(x)
        first = xp.zeros((x.shape[0], 1, x.shape[2]), np.float32)
        if token is not None:
            _channels(x, token.shape[0], -1, node)
            first[:] = token
        return xp.concatenate([first, x], axis=1)

    return run


def _drop_first_token(node: _Node, backend: Backend, put: Put) -> Fn:
    def run(x: Any) -> Any:
        _rank(x, 3, node)
        return array_module(x).ascontiguousarray(x[:, 1:])

    return run


def _add_table(node: _Node, backend: Backend, put: Put) -> Fn:
    table = put(node.tensor("table", np.float32, ndim=2))
    numba = _numba(backend)

    def run(x: Any) -> Any:
        _rank(x, 3, node)
        if tuple(x.shape[1:]) != tuple(table.shape):
            raise InvalidInputError(node.where, f"expects (N, {table.shape[0]}, "
                                    f"{table.shape[1]}), got {x.shape}")
        if numba and x.dtype == np.float32:
            from . import cpu, cpu_tokens

            out = np.empty(x.shape, np.float32)
            cpu.launch(cpu_tokens.add_table, cpu_tokens.MOVE_WORK * out.size, None,
                       np.ascontiguousarray(x), table, out)
            return out
        return _f32(x + table)

    return run


# ------------------------------------------------------------------- normalization, activations
def _layernorm(node: _Node, backend: Backend, put: Put) -> Fn:
    eps = node.attr("eps", float)
    weight = node.optional_tensor("weight", np.float32, ndim=1)
    bias = node.optional_tensor("bias", np.float32, ndim=1)
    w = None if weight is None else put(weight)
    b = None if bias is None else put(bias)
    if _numba(backend):
        from . import cpu, cpu_tokens

        eps32 = np.float32(eps)

        def run_numba(x: Any) -> Any:
            if w is not None:
                _channels(x, w.shape[0], -1, node)
            c = x.shape[-1]
            flat = np.ascontiguousarray(x.reshape(-1, c))
            out = np.empty_like(flat)
            cpu.launch(cpu_tokens.layernorm, 8 * out.size, None, flat, _ones(w, c), _zeros(b, c),
                       eps32, out)
            return out.reshape(x.shape)

        return run_numba

    def run(x: Any) -> Any:
        xp = array_module(x)
        if w is not None:
            _channels(x, w.shape[0], -1, node)
        mean = x.mean(axis=-1, keepdims=True, dtype=np.float32)
        centred = x - mean
        var = (centred * centred).mean(axis=-1, keepdims=True, dtype=np.float32)
        y = centred / xp.sqrt(var + np.float32(eps))
        if w is not None:
            y = y * w
        if b is not None:
            y = y + b
        return _f32(y)

    return run


def _gelu(node: _Node, backend: Backend, put: Put) -> Fn:
    approximate = node.attr("approximate", str, "none")
    if approximate not in ("none", "tanh"):
        raise InvalidInputError(f"{node.where}.attrs.approximate", f"= {approximate!r}; "
                                "accepted: none, tanh")
    if approximate == "tanh":
        k = np.float32(math.sqrt(2.0 / math.pi))

        def run_tanh(x: Any) -> Any:
            xp = array_module(x)
            return _f32(0.5 * x * (1.0 + xp.tanh(k * (x + np.float32(0.044715) * x ** 3))))

        return run_tanh

    def run(x: Any) -> Any:
        if is_cupy(x):
            from cupyx.scipy.special import erf
        else:
            from scipy.special import erf
        return _f32(0.5 * x * (1.0 + erf(x * np.float32(1 / math.sqrt(2.0)))))

    return run


def _channel_affine(node: _Node, backend: Backend, put: Put) -> Fn:
    axis = _axis(node)
    scale_host = node.optional_tensor("scale", np.float32, ndim=1)
    bias_host = node.optional_tensor("bias", np.float32, ndim=1)
    if scale_host is None and bias_host is None:
        raise InvalidInputError(f"{node.where}.tensors", "needs a scale or a bias")
    c = (scale_host if scale_host is not None else bias_host).shape[0]  # type: ignore[union-attr]
    if scale_host is not None and bias_host is not None and bias_host.shape != (c,):
        raise InvalidInputError(f"{node.where}.tensors.bias", f"must have {c} entries")
    scale = None if scale_host is None else put(scale_host)
    bias = None if bias_host is None else put(bias_host)
    if _numba(backend):
        from . import cpu, cpu_tokens

        ones, zeros = _ones(scale, c), _zeros(bias, c)

        def run_numba(x: Any) -> Any:
            _channels(x, c, axis, node)
            view = _channel_view(x, axis)
            out = np.empty_like(view)
            cpu.launch(cpu_tokens.channel_affine, 2 * out.size, None, view, ones, zeros, out)
            return out.reshape(x.shape)

        return run_numba

    def run(x: Any) -> Any:
        _channels(x, c, axis, node)
        y = x
        if scale is not None:
            y = y * _per_channel(scale, axis, x.ndim)
        if bias is not None:
            y = y + _per_channel(bias, axis, x.ndim)
        return _f32(y)

    return run


def _rprelu(node: _Node, backend: Backend, put: Put) -> Fn:
    axis = _axis(node)
    shift_in = node.tensor("shift_in", np.float32, ndim=1)
    c = shift_in.shape[0]
    slope = put(node.tensor("slope", np.float32, (c,)))
    shift_out = put(node.tensor("shift_out", np.float32, (c,)))
    shift_in_dev = put(shift_in)
    if _numba(backend):
        from . import cpu, cpu_tokens

        def run_numba(x: Any) -> Any:
            _channels(x, c, axis, node)
            view = _channel_view(x, axis)
            out = np.empty_like(view)
            cpu.launch(cpu_tokens.rprelu, 4 * out.size, None, view, shift_in_dev, slope,
                       shift_out, out)
            return out.reshape(x.shape)

        return run_numba

    def run(x: Any) -> Any:
        _channels(x, c, axis, node)
        xp = array_module(x)
        y = x + _per_channel(shift_in_dev, axis, x.ndim)
        y = xp.maximum(y, np.float32(0)) - xp.maximum(-y, np.float32(0)) * \
            _per_channel(slope, axis, x.ndim)
        return _f32(y + _per_channel(shift_out, axis, x.ndim))

    return run


def _channel_repeat(node: _Node, backend: Backend, put: Put) -> Fn:
    axis = _axis(node)
    times = _count(node, "times")

    def run(x: Any) -> Any:
        if x.ndim < 2:
            raise InvalidInputError(node.where, f"expects channels, got shape {x.shape}")
        return array_module(x).concatenate([x] * times, axis=axis)

    return run


def _channel_group_mean(node: _Node, backend: Backend, put: Put) -> Fn:
    groups = _count(node, "groups")

    def run(x: Any) -> Any:
        if x.ndim < 2 or x.shape[-1] % groups:
            raise InvalidInputError(node.where, f"expects a channel count divisible by "
                                    f"{groups}, got shape {x.shape}")
        return _f32(x.reshape(*x.shape[:-1], groups, x.shape[-1] // groups).mean(
            axis=-2, dtype=np.float32))

    return run


# ------------------------------------------------------------------------- token pooling
def _token_map(x: Any, grid: tuple[int, int], node: _Node) -> Any:
    _rank(x, 3, node)
    if x.shape[1] != grid[0] * grid[1]:
        raise InvalidInputError(node.where, f"expects {grid[0] * grid[1]} tokens, got "
                                f"{x.shape}")
    return x.transpose(0, 2, 1).reshape(x.shape[0], x.shape[2], *grid)


def _map_tokens(m: Any) -> Any:
    xp = array_module(m)
    return xp.ascontiguousarray(m.reshape(m.shape[0], m.shape[1], -1).transpose(0, 2, 1))


def _token_avgpool(node: _Node, backend: Backend, put: Put) -> Fn:
    grid = _grid(node)
    kh, kw = node.pair("kernel_size", 1)
    sh, sw = node.pair("stride", 1)
    ph, pw = node.pair("padding", 0)
    if 2 * ph > kh or 2 * pw > kw:
        raise InvalidInputError(f"{node.where}.attrs.padding", "must be at most half the kernel")
    ho, wo = (grid[0] + 2 * ph - kh) // sh + 1, (grid[1] + 2 * pw - kw) // sw + 1
    if ho < 1 or wo < 1:
        raise InvalidInputError(f"{node.where}.attrs.kernel_size", "is larger than the grid")
    if _numba(backend):
        from . import cpu, cpu_tokens

        def run_numba(x: Any) -> Any:
            _token_map(x, grid, node)  # checks the rank and token count
            x = np.ascontiguousarray(x)
            out = np.empty((x.shape[0], ho * wo, x.shape[2]), np.float32)
            cpu.launch(cpu_tokens.token_avgpool, cpu_tokens.MOVE_WORK * out.size * kh * kw, None,
                       x, grid[0], grid[1], kh, kw, sh, sw, ph, pw, out)
            return out

        return run_numba

    def run(x: Any) -> Any:
        m = _token_map(x, grid, node)
        xp = array_module(x)
        padded = xp.pad(m, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else m
        out = xp.zeros((m.shape[0], m.shape[1], ho, wo), np.float32)
        for i in range(kh):
            for j in range(kw):
                out += padded[:, :, i: i + sh * (ho - 1) + 1: sh, j: j + sw * (wo - 1) + 1: sw]
        return _map_tokens(out / np.float32(kh * kw))

    return run


def _token_upsample(node: _Node, backend: Backend, put: Put) -> Fn:
    grid = _grid(node)
    factor = _count(node, "factor")

    def run(x: Any) -> Any:
        m = _token_map(x, grid, node)
        return _map_tokens(m.repeat(factor, axis=2).repeat(factor, axis=3))

    return run


def _token_mean(node: _Node, backend: Backend, put: Put) -> Fn:
    numba = _numba(backend)

    def run(x: Any) -> Any:
        _rank(x, 3, node)
        if numba and x.dtype == np.float32 and x.shape[1] > 0:
            from . import cpu, cpu_tokens

            out = np.empty((x.shape[0], x.shape[2]), np.float32)
            cpu.launch(cpu_tokens.token_mean, cpu_tokens.MOVE_WORK * x.size, None,
                       np.ascontiguousarray(x), out)
            return out
        return x.mean(axis=1, dtype=np.float32)

    return run


def _select_token(node: _Node, backend: Backend, put: Put) -> Fn:
    index = node.attr("index", int)

    def run(x: Any) -> Any:
        _rank(x, 3, node)
        if not -x.shape[1] <= index < x.shape[1]:
            raise InvalidInputError(node.where, f"token {index} out of range for {x.shape}")
        return array_module(x).ascontiguousarray(x[:, index])

    return run


# ---------------------------------------------------------------------------- attention
def _heads(node: _Node) -> int:
    return _count(node, "heads")


def _split(x: Any, heads: int, node: _Node) -> Any:
    _rank(x, 3, node)
    if x.shape[2] % heads:
        raise InvalidInputError(node.where, f"{x.shape[2]} channels do not split into {heads} "
                                "heads")
    return x.reshape(x.shape[0], x.shape[1], heads, -1).transpose(0, 2, 1, 3)


def _attention_scores(node: _Node, backend: Backend, put: Put) -> Fn:
    heads = _heads(node)
    scale = np.float32(node.attr("scale", float))

    def run(q: Any, k: Any) -> Any:
        qh, kh = _split(q, heads, node), _split(k, heads, node)
        if q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2]:
            raise InvalidInputError(node.where, f"queries {q.shape} and keys {k.shape} differ")
        xp = array_module(q)
        s = (qh @ kh.transpose(0, 1, 3, 2)) * scale
        s = s - s.max(axis=-1, keepdims=True)
        e = xp.exp(s)
        return _f32(e / e.sum(axis=-1, keepdims=True, dtype=np.float32))

    return run


def _quantize_probs(node: _Node, backend: Backend, put: Put) -> Fn:
    alpha = np.float32(node.attr("alpha", float))
    if not alpha > 0:
        raise InvalidInputError(f"{node.where}.attrs.alpha", f"= {alpha} must be > 0")

    def run(p: Any) -> Any:
        xp = array_module(p)
        return _f32(alpha * xp.round(xp.clip(p / alpha, np.float32(0), np.float32(1))))

    return run


def _attention_context(node: _Node, backend: Backend, put: Put) -> Fn:
    heads = _heads(node)

    def run(p: Any, v: Any) -> Any:
        _rank(p, 4, node)
        vh = _split(v, heads, node)
        if p.shape[1] != heads or p.shape[3] != v.shape[1] or p.shape[0] != v.shape[0]:
            raise InvalidInputError(node.where, f"probabilities {p.shape} do not match values "
                                    f"{v.shape} with {heads} heads")
        out = (p @ vh).transpose(0, 2, 1, 3)
        return array_module(p).ascontiguousarray(out.reshape(p.shape[0], p.shape[2], -1))

    return run


def _binarize(node: _Node, backend: Backend, put: Put) -> Fn:
    c = node.attr("scale", float)
    if not (c > 0 and math.isfinite(c)):
        raise InvalidInputError(f"{node.where}.attrs.scale", f"= {c} must be > 0")
    c32 = np.float32(c)

    def run(x: Any) -> Any:
        return _f32(array_module(x).sign(x) * c32)

    return run


# ------------------------------------------------------------------ fusions (numba backend)
def _single(name: str, uses: dict[str, int], output: str) -> bool:
    return uses.get(name) == 1 and name != output


def _react_fusion(nodes: list[_Node], uses: dict[str, int], output: str) -> list[Fused]:
    """BinaryViT's ReAct linears: ``rprelu(add(binary_linear(channel_affine(x)) [-> folded
    BatchNorm identity], shortcut(x)))`` with the shortcut ``identity``, ``channel_repeat`` or
    ``channel_group_mean`` of the same ``x``, every inner node used once, channels last:
    one :func:`.cpu_tokens.react_linear` pass (module docstring there)."""
    return [Fused(act.name, (move.inputs[0],), inner,
                  partial(_react_runner, act, move, linear, shortcut, None, None))
            for act, inner, move, linear, shortcut in _react_groups(nodes, uses, output)]


def _graph(nodes: list[_Node]) -> tuple[dict[str, _Node], dict[str, _Node]]:
    """Nodes by name, and each value's (last) consumer: an epilogue only follows values with
    a single consumer."""
    consumer = {i: n for n in nodes for i in n.inputs}
    return {n.name: n for n in nodes}, consumer


def _react_epilogue_fusion(nodes: list[_Node], uses: dict[str, int], output: str
                           ) -> list[Fused]:
    """A ReAct linear (:func:`_react_fusion`) with what follows it: a ``channel_affine``
    (LayerScale, the q/k/v shift) and then an ``add`` of a residual, either or both, each
    the single consumer of the node before it: one pass, the epilogue on the row in cache."""
    by, consumer = _graph(nodes)
    groups = []
    for act, inner, move, linear, shortcut in _react_groups(nodes, uses, output):
        last, names = act, list(inner)
        affine = consumer.get(act.name) if _single(act.name, uses, output) else None
        if affine is not None and (affine.op != "channel_affine" or _axis(affine) != -1):
            affine = None
        if affine is not None:
            names.append(last.name)
            last = affine
        add = consumer.get(last.name) if _single(last.name, uses, output) else None
        residual = None
        if add is not None and add.op == "add" and add.inputs[0] != add.inputs[1]:
            names.append(last.name)
            residual = by[add.inputs[1] if add.inputs[0] == last.name else add.inputs[0]]
            last = add
        if last is act:
            continue  # nothing to fold: _react_fusion's group
        inputs = (move.inputs[0],) if residual is None else (move.inputs[0], residual.name)
        groups.append(Fused(last.name, inputs, tuple(names), partial(
            _react_runner, act, move, linear, shortcut, affine, last if residual else None)))
    return groups


def _react_groups(nodes: list[_Node], uses: dict[str, int], output: str
                  ) -> list[tuple[_Node, tuple[str, ...], _Node, _Node, _Node]]:
    """``(act, absorbed names, move, linear, shortcut)`` of each ReAct linear."""
    by = {n.name: n for n in nodes}
    groups = []
    for act in nodes:
        add = by.get(act.inputs[0]) if act.op == "rprelu" else None
        if add is None or add.op != "add" or _axis(act) != -1 or \
                not _single(add.name, uses, output):
            continue
        for i in (0, 1):
            found = _react_parts(by, add.inputs[i], add.inputs[1 - i], uses, output)
            if found is not None:
                inner, move, linear, shortcut = found
                groups.append((act, (*inner, add.name), move, linear, shortcut))
                break
    return groups


def _react_parts(by: dict[str, _Node], left: str, right: str, uses: dict[str, int],
                 output: str) -> tuple[tuple[str, ...], _Node, _Node, _Node] | None:
    """``(inner names, move, linear, shortcut)`` when ``left`` is a ReAct linear's
    (BatchNorm-folded) output and ``right`` its shortcut, else ``None``."""
    inner: list[str] = []
    node = by.get(left)
    if node is not None and node.op == "identity" and _single(node.name, uses, output):
        inner.append(node.name)
        node = by.get(node.inputs[0])
    if node is None or node.op != "binary_linear" or node.input_scale() is None or \
            not _single(node.name, uses, output):
        return None
    linear, move = node, by.get(node.inputs[0])
    shortcut = by.get(right)
    if move is None or move.op != "channel_affine" or _axis(move) != -1 or \
            not _single(move.name, uses, output) or shortcut is None or \
            not _single(shortcut.name, uses, output) or shortcut.inputs != move.inputs:
        return None
    k, n_out = linear.attr("k", int), linear.tensor("words", np.uint64, ndim=2).shape[0]
    fits = {"identity": n_out == k,
            "channel_repeat": shortcut.op == "channel_repeat" and _axis(shortcut) == -1
            and n_out == k * _count(shortcut, "times"),
            "channel_group_mean": shortcut.op == "channel_group_mean"
            and k == _count(shortcut, "groups") * n_out}
    if not fits.get(shortcut.op, False):
        return None
    return (*inner, linear.name, move.name, shortcut.name), move, linear, shortcut


def _react_runner(act: _Node, move: _Node, linear: _Node, shortcut: _Node,
                  affine: _Node | None, add: _Node | None) -> Fn:
    from . import cpu, cpu_tokens

    k = linear.attr("k", int)
    words = linear.tensor("words", np.uint64, ndim=2)
    n_out = words.shape[0]
    c = linear.input_scale()
    assert c is not None  # the fusion only takes binary-input linears
    out_scale = (linear.tensor("scale", np.float32, (n_out,)) * np.float32(c)).astype(np.float32)
    bias = _zeros(linear.optional_tensor("bias", np.float32, (n_out,)), n_out)
    m_scale = _ones(move.optional_tensor("scale", np.float32, (k,)), k)
    m_bias = _zeros(move.optional_tensor("bias", np.float32, (k,)), k)
    kind, groups = {"identity": (cpu_tokens.SHORTCUT_IDENTITY, 1),
                    "channel_repeat": (cpu_tokens.SHORTCUT_REPEAT, 1),
                    "channel_group_mean": (cpu_tokens.SHORTCUT_GROUP_MEAN,
                                           shortcut.attr("groups", int, 1))}[shortcut.op]
    shift_in = act.tensor("shift_in", np.float32, (n_out,))
    slope = act.tensor("slope", np.float32, (n_out,))
    shift_out = act.tensor("shift_out", np.float32, (n_out,))
    none = np.empty(0, np.float32)
    p_scale = none if affine is None else _ones(
        affine.optional_tensor("scale", np.float32, (n_out,)), n_out)
    p_bias = none if affine is None else _zeros(
        affine.optional_tensor("bias", np.float32, (n_out,)), n_out)
    if affine is not None and affine.optional_tensor("scale", np.float32) is None and \
            affine.optional_tensor("bias", np.float32) is None:
        raise InvalidInputError(f"{affine.where}.tensors", "needs a scale or a bias")
    no_rows = np.empty((0, n_out), np.float32)

    def run(x: Any, residual: Any = None) -> Any:
        _channels(x, k, -1, move)
        flat = np.ascontiguousarray(x.reshape(-1, k))
        shape = (*x.shape[:-1], n_out)
        rows = no_rows
        if add is not None:
            if residual.shape != shape:
                raise InvalidInputError(add.where, f"adds {residual.shape} and {shape}")
            rows = np.ascontiguousarray(residual).reshape(-1, n_out)
        out = np.empty((flat.shape[0], n_out), np.float32)
        cpu.launch(cpu_tokens.react_linear, out.size * (words.shape[-1] + 8), None, flat,
                   m_scale, m_bias, words, out_scale, bias, kind, groups, shift_in, slope,
                   shift_out, p_scale, p_bias, rows, out)
        return out.reshape(shape)

    return run


def _attention_fusion(nodes: list[_Node], uses: dict[str, int], output: str) -> list[Fused]:
    """Binary attention: ``attention_context(quantize_probs(attention_scores(binarize(q),
    binarize(k))), binarize(v))``, every inner node used once: one
    :func:`.cpu_tokens.binary_attention` pass."""
    return [Fused(core[0].name, tuple(n.inputs[0] for n in core[3:]),
                  tuple(n.name for n in core[1:]), partial(_attention_runner, *core, None))
            for core in _attention_groups(nodes, uses, output)]


#: an attention epilogue: (BatchNorm or None, residuals as (input index 0-2, upsample factor,
#: the upsample node or None), RPReLU or None)
Epilogue = tuple["_Node | None", list[tuple[int, int, "_Node | None"]], "_Node | None"]


def _attention_epilogue_fusion(nodes: list[_Node], uses: dict[str, int], output: str
                               ) -> list[Fused]:
    """A binary attention (:func:`_attention_fusion`) with what follows it in BinaryViT: a
    channels-last ``batchnorm``, ``add`` s of the attention's own q, k or v inputs (each
    directly or through a ``token_upsample``) and an ``rprelu``, each the single consumer
    of the node before it: the epilogue runs on each output row while it is in cache."""
    by, consumer = _graph(nodes)
    groups = []
    for core in _attention_groups(nodes, uses, output):
        ctx = core[0]
        sources = [n.inputs[0] for n in core[3:]]
        names = [n.name for n in core[1:]]
        last, bn, act = ctx, None, None
        residuals: list[tuple[int, int, _Node | None]] = []

        def after(node: _Node) -> _Node | None:
            return consumer.get(node.name) if _single(node.name, uses, output) else None

        nxt = after(last)
        if nxt is not None and nxt.op == "batchnorm" and nxt.attr("channels_last", bool, False):
            names.append(last.name)
            bn, last = nxt, nxt
            nxt = after(last)
        while nxt is not None and nxt.op == "add" and nxt.inputs[0] != nxt.inputs[1]:
            other = by.get(nxt.inputs[1] if nxt.inputs[0] == last.name else nxt.inputs[0])
            up = None
            if other is not None and other.op == "token_upsample" and \
                    _single(other.name, uses, output):
                up, other = other, by.get(other.inputs[0])
            if other is None or other.name not in sources:
                break
            residuals.append((sources.index(other.name), 1 if up is None else
                              _count(up, "factor"), up))
            names.append(last.name)
            if up is not None:
                names.append(up.name)
            last = nxt
            nxt = after(last)
        if nxt is not None and nxt.op == "rprelu" and _axis(nxt) == -1:
            names.append(last.name)
            act, last = nxt, nxt
        if last is ctx:
            continue
        groups.append(Fused(last.name, tuple(sources), tuple(names),
                            partial(_attention_runner, *core, (bn, residuals, act))))
    return groups


def _attention_groups(nodes: list[_Node], uses: dict[str, int], output: str
                      ) -> list[tuple[_Node, _Node, _Node, _Node, _Node, _Node]]:
    """``(ctx, probs, scores, q sign, k sign, v sign)`` of each binary attention."""
    by = {n.name: n for n in nodes}
    groups = []
    for ctx in nodes:
        if ctx.op != "attention_context":
            continue
        probs, vs = by.get(ctx.inputs[0]), by.get(ctx.inputs[1])
        scores = by.get(probs.inputs[0]) if probs is not None else None
        if probs is None or probs.op != "quantize_probs" or scores is None or \
                scores.op != "attention_scores" or vs is None or \
                _heads(scores) != _heads(ctx):
            continue
        qs, ks = by.get(scores.inputs[0]), by.get(scores.inputs[1])
        if qs is None or ks is None:
            continue
        inner = [probs, scores, qs, ks, vs]
        if not all(_single(n.name, uses, output) for n in inner) or \
                not all(n.op == "binarize" for n in (qs, ks, vs)) or \
                not scores.attr("scale", float) > 0:  # the kernel needs scores rising with d
            continue
        groups.append((ctx, probs, scores, qs, ks, vs))
    return groups


def _score_table(dh: int, qk: np.float32, scale: np.float32) -> np.ndarray:
    """``table[m + dh, d + dh] = exp(s(d) - s(m))`` in float32 as the NumPy twin computes it,
    ``s(d) = (d qk) scale`` for the integer score ``d`` of sign vectors of width ``dh``."""
    d = np.arange(-dh, dh + 1, dtype=np.float32)
    s = (d * qk).astype(np.float32) * scale
    return np.exp((s[None, :] - s[:, None]).astype(np.float32)).astype(np.float32)


def _attention_runner(ctx: _Node, probs: _Node, scores: _Node, qs: _Node, ks: _Node,
                      vs: _Node, epilogue: Epilogue | None) -> Fn:
    from . import cpu, cpu_tokens

    heads = _heads(ctx)
    scale = np.float32(scores.attr("scale", float))
    alpha = np.float32(probs.attr("alpha", float))
    cq, ck, cv = (np.float32(n.attr("scale", float)) for n in (qs, ks, vs))
    qk = np.float32(cq * ck)
    tables: dict[int, np.ndarray] = {}
    bn, residuals, act = epilogue if epilogue is not None else (None, [], None)
    none = np.empty(0, np.float32)
    bn_scale, bn_bias = _bn_affine(bn) if bn is not None else (none, none)
    shift_in, slope, shift_out = (none, none, none) if act is None else (
        act.tensor(key, np.float32, ndim=1) for key in ("shift_in", "slope", "shift_out"))
    kinds = np.array([r[0] for r in residuals], np.int64)
    factors = np.array([r[1] for r in residuals], np.int64)
    last = act or (residuals[-1][2] if residuals else None) or bn or ctx

    def run(q: Any, k: Any, v: Any) -> Any:
        _split(q, heads, node=scores)
        _split(k, heads, node=scores)
        if q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2]:
            raise InvalidInputError(scores.where, f"queries {q.shape} and keys {k.shape} "
                                    "differ")
        if v.shape != k.shape:
            raise InvalidInputError(ctx.where, f"values {v.shape} do not match keys {k.shape}")
        c = q.shape[2]
        for vec in (bn_scale, shift_in, slope, shift_out):
            if vec.shape[0] not in (0, c):
                raise InvalidInputError(last.where, f"expects {vec.shape[0]} channels, got "
                                        f"{q.shape}")
        grid_w = 1
        for kind, factor, up in residuals:
            src = (q, k, v)[kind]
            if up is None:
                if src.shape != q.shape:
                    raise InvalidInputError(last.where, f"adds {q.shape} and {src.shape}")
                continue
            gh, gw = _grid(up)
            if src.shape[1] != gh * gw or q.shape[1] != gh * gw * factor * factor:
                raise InvalidInputError(up.where, f"upsamples {src.shape} on a {gh} x {gw} "
                                        f"grid by {factor} onto {q.shape}")
            if grid_w not in (1, gw * factor):
                raise InvalidInputError(up.where, f"a {gh} x {gw} grid by {factor} is not "
                                        f"the other residuals' grid")
            grid_w = gw * factor
        dh = c // heads
        if dh not in tables:
            tables[dh] = _score_table(dh, qk, scale)
        out = np.empty(q.shape, np.float32)
        cpu.launch(cpu_tokens.binary_attention, out.size * k.shape[1], None,
                   np.ascontiguousarray(q), np.ascontiguousarray(k), np.ascontiguousarray(v),
                   heads, tables[dh], alpha, cv, bn_scale, bn_bias, kinds, factors, grid_w,
                   shift_in, slope, shift_out, out)
        return out

    return run


def _pool_term(node: _Node | None, by: dict[str, _Node], uses: dict[str, int],
               output: str) -> tuple[tuple[str, ...], _Node, _Node | None] | None:
    """``(names, pool, affine)`` when ``node`` is ``channel_affine(token_avgpool(x))`` (the
    affine optional) with a grid-keeping stride-1 pool, each node used once, else ``None``."""
    affine = None
    if node is not None and node.op == "channel_affine" and _axis(node) == -1 and \
            _single(node.name, uses, output):
        affine, node = node, by.get(node.inputs[0])
    if node is None or node.op != "token_avgpool" or not _single(node.name, uses, output):
        return None
    (kh, kw), (sh, sw), (ph, pw) = (node.pair(key, low) for key, low in
                                    (("kernel_size", 1), ("stride", 1), ("padding", 0)))
    if (sh, sw) != (1, 1) or (kh, kw) != (2 * ph + 1, 2 * pw + 1):
        return None
    names = (node.name,) if affine is None else (node.name, affine.name)
    return names, node, affine


def _pool_chain(name: str, by: dict[str, _Node], uses: dict[str, int], output: str
                ) -> tuple[list[str], list[tuple[_Node, _Node | None]]] | None:
    """The pooled terms of a left-leaning sum ``((t_0 + t_1) + t_2) + ...`` (through
    single-use identities) in the twin's order, with the names of its nodes."""
    node = by.get(name)
    if node is None or not _single(name, uses, output):
        return None
    if node.op == "identity":
        found = _pool_chain(node.inputs[0], by, uses, output)
        return None if found is None else ([*found[0], name], found[1])
    term = _pool_term(node, by, uses, output)
    if term is not None:
        return list(term[0]), [term[1:]]
    if node.op != "add":
        return None
    for left, right in ((0, 1), (1, 0)):  # float addition commutes: either input order
        last = _pool_term(by.get(node.inputs[right]), by, uses, output)
        rest = _pool_chain(node.inputs[left], by, uses, output) if last is not None else None
        if rest is not None and last is not None:
            return [*rest[0], *last[0], name], [*rest[1], last[1:]]
    return None


def _widths(terms: list[tuple[_Node, _Node | None]]) -> set[int]:
    """The channel counts the terms' affine tensors name."""
    return {v.shape[0] for _, a in terms if a is not None for v in (
        a.optional_tensor("scale", np.float32, ndim=1),
        a.optional_tensor("bias", np.float32, ndim=1)) if v is not None}


def _multipool_fusion(nodes: list[_Node], uses: dict[str, int], output: str) -> list[Fused]:
    """BinaryViT's multi-pooling and its residual: ``add(base, sum_p channel_affine(
    token_avgpool_p(x)))``, pools of one input on one grid, stride 1, grid kept, every inner
    node used once: one :func:`.cpu_tokens.token_multipool` pass."""
    by = {n.name: n for n in nodes}
    groups: list[Fused] = []
    taken: set[str] = set()
    for root in reversed(nodes):  # the last add first: the longest chain
        if root.op != "add" or root.name in taken:
            continue
        for b, m in ((0, 1), (1, 0)):
            found = _pool_chain(root.inputs[m], by, uses, output)
            if found is None:
                continue
            names, terms = found
            source = terms[0][0].inputs[0]
            if len(terms) < 2 or len(_widths(terms)) > 1 or any(
                    pool.inputs[0] != source or _grid(pool) != _grid(terms[0][0])
                    for pool, _ in terms):
                continue
            groups.append(Fused(root.name, (root.inputs[b], source), tuple(names),
                                partial(_multipool_runner, root, terms)))
            taken.update(names)
            break
    return groups


def _multipool_runner(root: _Node, terms: list[tuple[_Node, _Node | None]]) -> Fn:
    from . import cpu, cpu_tokens

    first = terms[0][0]
    grid = _grid(first)
    sizes = np.array([[*p.pair("kernel_size", 1), *p.pair("padding", 0)] for p, _ in terms],
                     np.int64)
    widths = _widths(terms)
    c = widths.pop() if widths else None  # the matcher takes one width only

    def affine(a: _Node | None, key: str, fill: float, width: int) -> np.ndarray:
        v = None if a is None else a.optional_tensor(key, np.float32, (width,))
        return np.full(width, fill, np.float32) if v is None else v

    tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def run(base: Any, x: Any) -> Any:
        _token_map(x, grid, first)  # checks the rank and token count
        width = x.shape[2]
        if c is not None:
            _channels(x, c, -1, first)
        if base.shape != x.shape:
            raise InvalidInputError(root.where, f"adds {base.shape} and {x.shape}")
        if width not in tables:
            tables[width] = (np.stack([affine(a, "scale", 1.0, width) for _, a in terms]),
                             np.stack([affine(a, "bias", 0.0, width) for _, a in terms]))
        scale, bias = tables[width]
        out = np.empty(x.shape, np.float32)
        cpu.launch(cpu_tokens.token_multipool, out.size * int((sizes[:, 0] * sizes[:, 1]).sum()),
                   None, np.ascontiguousarray(x), np.ascontiguousarray(base), grid[0], grid[1],
                   sizes[:, 0].copy(), sizes[:, 1].copy(), sizes[:, 2].copy(),
                   sizes[:, 3].copy(), scale, bias, out)
        return out

    return run


register_fusion(_react_epilogue_fusion)  # before the plain ReAct fusion: its larger groups win
register_fusion(_react_fusion)
register_fusion(_attention_epilogue_fusion)  # likewise before the plain attention fusion
register_fusion(_attention_fusion)
register_fusion(_multipool_fusion)

for _name, _spec in {
    "to_tokens": OpSpec(_to_tokens),
    "to_map": OpSpec(_to_map),
    "prepend_token": OpSpec(_prepend_token),
    "drop_first_token": OpSpec(_drop_first_token),
    "add_table": OpSpec(_add_table),
    "layernorm": OpSpec(_layernorm),
    "gelu": OpSpec(_gelu),
    "channel_affine": OpSpec(_channel_affine),
    "rprelu": OpSpec(_rprelu),
    "channel_repeat": OpSpec(_channel_repeat),
    "channel_group_mean": OpSpec(_channel_group_mean),
    "token_avgpool": OpSpec(_token_avgpool),
    "token_upsample": OpSpec(_token_upsample),
    "token_mean": OpSpec(_token_mean),
    "select_token": OpSpec(_select_token),
    "attention_scores": OpSpec(_attention_scores, arity=2),
    "quantize_probs": OpSpec(_quantize_probs),
    "attention_context": OpSpec(_attention_context, arity=2),
    "binarize": OpSpec(_binarize),
}.items():
    register_op(_name, _spec)

__all__: list[str] = []
