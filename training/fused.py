"""Fused forward/backward elementwise work of the catalogue pairs (issue 17, part 4).

A binary layer's step does, besides its GEMMs, a few passes over the latent weights: the
per-channel scale ``alpha_j = (sum_i |w_ji| + extra_j) / n``, the forward quantizer ``F(w; mu)``
times ``alpha``, the surrogate slope ``B'(pi(w))`` that the backward pass multiplies the
incoming gradient by, and that multiplication. :class:`~.quantizers._QuantizeFunction` (the
*reference* twin, kept unchanged) runs them as separate whole-tensor torch ops; an MLP's weights
are as large as its activations, so those passes (and their temporaries) cost about as much as
the GEMMs.

Here each pair has a :class:`Kernel` (a table, :data:`KERNELS`, keyed by catalogue name) and one
autograd function, :class:`FusedQuantize`, runs it:

* forward: the latent is walked in blocks of whole rows that stay in the L2 cache; per block the
  scale (when the layer's ``"channel"`` scale is asked for), ``alpha F`` and, where ``B'`` is
  not a constant or an indicator, the slope ``alpha B'`` (with ``alpha`` folded in) are written
  straight into the two outputs: no whole-tensor temporaries;
* backward: one pass: ``grad * slope`` (SignSwish pairs), ``grad * alpha`` (straight-through
  pairs: BinaryConnect, ProxConnect) or, for the indicator ``1{|w| <= 1}`` of BNN,
  ``hardtanh_backward`` on the saved latent with bounds ``+-(1 + eps)`` (the next float above 1:
  ``|w| < 1 + eps`` is ``|w| <= 1`` exactly, boundary included, as the catalogue's convention),
  then ``* alpha``. Nothing is saved for it but the latent itself.

The maps and the names are the catalogue's (the SymPy-certified pair is the trained one, issue
18). The fused path computes the same expressions in the same order as the reference, so
forward values and gradients are *bitwise* equal for the piecewise pairs given the same scale;
for the SignSwish pairs the scale is folded into the slope (one multiplication where the
reference makes two), a difference of a few ulp; the fused scale sums ``|w|`` per block where the
reference calls ``vector_norm``: equal up to summation order
(``tests/training/test_fused.py``). One difference on purpose: BNN's gradient at a NaN latent is
the upstream gradient (``hardtanh_backward`` compares false) where the reference's is 0.

Which path runs is :func:`set_mode` / the environment variable ``PROXCOMPRESS_QUANT_OPS``:
``fused`` (default), ``reference`` (today's ops, for checks and the before/after benchmark) or
``compiled`` (the SignSwish block bodies through ``torch.compile``; optional, off by default:
see docs/decisions.md for what it costs and gives).
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from proxcompress.errors import InvalidInputError

Mode = Literal["fused", "eager", "reference", "compiled"]
MODES: tuple[str, ...] = ("fused", "eager", "reference", "compiled")
Saves = Literal["none", "slope", "latent"]
#: the dtypes of the numba passes (:mod:`proxcompress.kernels.trainstep`)
_NUMBA_DTYPES = (torch.float32, torch.float64)
#: float32 latents of at least this many elements take the one SignSwish pass with the sigmoid
#: inside (``kernels.trainstep.signswish_pass32``; smaller ones: torch's sigmoid, then the
#: pass). Its sigmoid is torch's vector sigmoid bit for bit; torch runs the last few elements
#: of each thread's range (fewer than 32) through the C library's ``expf`` instead, which can
#: differ by an ulp or two: on large latents that is a few elements at most, on a small one
#: it can be all of them, where the gain is a few microseconds (docs/decisions.md)
_INLINE_SIGMOID_MIN = 1 << 16
#: ``scratch(k)``: the ``k``-th scratch tensor shaped like the latent (reused across steps)
Scratch = Callable[[int], Tensor]
#: ``body(x, mu, out, slope_or_None, alpha_or_None, scratch)``, ``x`` the latent as ``(rows,
#: cols)``: write ``alpha F(x)`` into ``out`` and, for ``saves == "slope"``,
#: ``alpha B'(pi(x))`` into ``slope`` (``alpha`` of shape ``(rows, 1)``; ``None``: no scale)
Body = Callable[[Tensor, float, Tensor, Tensor | None, Tensor | None, Scratch], None]


@dataclass(frozen=True)
class Kernel:
    """The fused elementwise work of one pair.

    Attributes:
        body: the forward pass (see :data:`Body`).
        saves: what the backward pass needs: ``"none"`` (``B' = 1``: ``grad * alpha``),
            ``"slope"`` (the slope written by ``body``) or ``"latent"`` (``B' = 1{|x| <= 1}``
            at the latent, from the saved input).
        expr: the same work as one pure function ``expr(x, out, slope, alpha, mu)`` (``alpha``
            a ``(rows, 1)`` tensor, ``mu`` a 0-d tensor, results stored with ``copy_``) for
            ``torch.compile`` (``compiled`` mode), where it pays: the SignSwish pairs.
        channel: the forward the numba scale pass writes in the same sweep with the layer's
            channel scale (``kernels.trainstep.CHANNEL_FORWARDS``: ``"sign"`` for
            BinaryConnect / BNN, ``"dist2-prox"`` for ProxConnect; ``"none"``: ``body`` runs).
        signswish: for the SignSwish pairs, ``mu -> (inputs, beta, sign_forward)`` of
            ``kernels.trainstep.signswish_pass32``: float32 latents in ``fused`` mode then take
            that one pass (scale, ``u``, sigmoid and both outputs; on the calling thread, or rows
            split over torch's threads when ``kernels.trainstep.SPLIT_PASSES``) instead of
            ``body``.
    """

    body: Body
    saves: Saves
    expr: Callable[..., None] | None = None
    channel: str = "none"
    signswish: Callable[[float], tuple[str, float, bool]] | None = None


# --------------------------------------------------------------------------- the mode switch
def _env_mode() -> Mode:
    value = os.environ.get("PROXCOMPRESS_QUANT_OPS", "fused").strip().lower() or "fused"
    if value not in MODES:
        raise InvalidInputError("PROXCOMPRESS_QUANT_OPS",
                                f"= {value!r}; accepted: {', '.join(MODES)}")
    return value  # type: ignore[return-value]


_state: dict[str, Any] = {"mode": None}


def get_mode() -> Mode:
    """The current path: one of :data:`MODES` (first call: the
    environment's ``PROXCOMPRESS_QUANT_OPS``, default ``fused``)."""
    if _state["mode"] is None:
        _state["mode"] = _env_mode()
    mode: Mode = _state["mode"]
    return mode


def set_mode(mode: str) -> None:
    """Choose the quantizer ops of every binary layer (process-wide).

    Raises:
        InvalidInputError: ``mode`` is not one of :data:`MODES`.
    """
    if mode not in MODES:
        raise InvalidInputError("mode", f"= {mode!r}; accepted: {', '.join(MODES)}")
    _state["mode"] = mode


@contextmanager
def quant_ops(mode: str) -> Iterator[None]:
    """Context manager: :func:`set_mode` inside, the previous mode after."""
    previous = get_mode()
    set_mode(mode)
    try:
        yield
    finally:
        _state["mode"] = previous


# ----------------------------------------------------------------------------------- bodies
def _scale_into(out: Tensor, alpha: Tensor | None) -> None:
    if alpha is not None:
        out.mul_(alpha)


def _sign_body(x: Tensor, mu: float, out: Tensor, slope: Tensor | None,
               alpha: Tensor | None, scratch: Scratch) -> None:
    """``alpha sign(x)`` (BinaryConnect, BNN, BNN+'s forward)."""
    torch.sign(x, out=out)
    _scale_into(out, alpha)


def _dist2_prox_body(x: Tensor, mu: float, out: Tensor, slope: Tensor | None,
                     alpha: Tensor | None, scratch: Scratch) -> None:
    """``alpha (x + mu sign x) / (1 + mu)`` (ProxConnect; ``mu sign x`` is exact, so the fused
    ``x + mu s`` rounds as the reference's two operations)."""
    torch.sign(x, out=out)
    torch.add(x, out, alpha=mu, out=out)
    out.div_(1.0 + mu)
    _scale_into(out, alpha)


def numba_pass(name: str, x: Tensor) -> Callable[..., None] | None:
    """The pass ``name`` of :mod:`proxcompress.kernels.trainstep` when it applies to ``x``
    (mode ``fused``, a CPU float32 / float64 tensor, numba importable), else ``None``."""
    if get_mode() != "fused" or x.device.type != "cpu" or x.dtype not in _NUMBA_DTYPES:
        return None
    if "numba" not in _state:
        try:
            from proxcompress.kernels import trainstep

            _state["numba"] = trainstep
        except ImportError:  # pragma: no cover - numba is a core dependency
            _state["numba"] = None
    module = _state["numba"]
    return None if module is None else getattr(module, name)


def _signswish_into(x: Tensor, u: Tensor, out: Tensor, slope: Tensor, beta: float,
                    alpha: Tensor | None, scratch: Scratch, sign_forward: bool) -> None:
    """From ``u = beta x`` (or ``beta P(x)``): ``slope = alpha SS_beta'(x) = alpha 2 beta q
    (2 + u - 2 u s)`` and ``out = alpha sign(x)`` (``sign_forward``) or
    ``alpha SS_beta(x) = alpha (2 s - 1 + 2 u q)``, with ``s = sigma(u)``, ``q = s (1 - s)``:
    the reference's operations (``quantizers._signswish_into``) on scratch buffers, ``alpha``
    folded into the last multiplication; after torch's sigmoid, one numba pass
    (:mod:`proxcompress.kernels.trainstep`) in ``fused`` mode, seven torch passes in
    ``eager``."""
    s = torch.sigmoid(u, out=scratch(1))
    signswish = numba_pass("signswish_pass", x)
    if signswish is not None:
        rows = x.shape[0]
        a = (torch.ones((rows, 1), dtype=x.dtype) if alpha is None
             else alpha.expand(rows, 1).contiguous())
        signswish(x.numpy(), u.numpy(), s.numpy(), a.numpy(), beta, sign_forward, out.numpy(),
                  slope.numpy())
        return
    if sign_forward:
        _sign_body(x, 0.0, out, None, alpha, scratch)
    torch.addcmul(s, s, s, value=-1.0, out=slope)  # q
    if not sign_forward:
        torch.mul(s, 2.0, out=out).sub_(1.0).addcmul_(u, slope, value=2.0)
        _scale_into(out, alpha)
    t = torch.add(u, 2.0, out=scratch(2)).addcmul_(u, s, value=-2.0)
    slope.mul_(t).mul_(2.0 * beta if alpha is None else alpha * (2.0 * beta))


def _bnn_plus_body(beta: float) -> Body:
    def body(x: Tensor, mu: float, out: Tensor, slope: Tensor | None,
             alpha: Tensor | None, scratch: Scratch) -> None:
        assert slope is not None
        u = torch.mul(x, beta, out=scratch(0))
        _signswish_into(x, u, out, slope, beta, alpha, scratch, True)

    return body


def _bnn_plus_plus_body(beta: float, beta_growth: float) -> Body:
    def body(x: Tensor, mu: float, out: Tensor, slope: Tensor | None,
             alpha: Tensor | None, scratch: Scratch) -> None:
        assert slope is not None
        b = beta + beta_growth * mu
        _signswish_into(x, torch.mul(x, b, out=scratch(0)), out, slope, b, alpha, scratch,
                        False)

    return body


def _bnn_plus_plus_prox_body(beta: float) -> Body:
    def body(x: Tensor, mu: float, out: Tensor, slope: Tensor | None,
             alpha: Tensor | None, scratch: Scratch) -> None:
        assert slope is not None
        u = torch.sign(x, out=scratch(0)).mul_(mu).add_(x).mul_(beta / (1.0 + mu))  # beta P(x)
        _signswish_into(x, u, out, slope, beta, alpha, scratch, False)

    return body


# the SignSwish pairs as pure functions for torch.compile (the same operations; inductor fuses
# them into one loop and may contract a multiply-add, so results differ from the eager ones by
# the rounding of q = s - s^2, absolute, not relative: see docs/decisions.md)
def _signswish_expr(u: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    s = torch.sigmoid(u)
    q = torch.addcmul(s, s, s, value=-1.0)
    out = torch.mul(s, 2.0).sub(1.0).addcmul(u, q, value=2.0)
    t = torch.addcmul(u + 2.0, u, s, value=-2.0)
    return out, q * t


def _bnn_plus_expr(beta: float) -> Callable[..., None]:
    def expr(x: Tensor, out: Tensor, slope: Tensor, alpha: Tensor, mu: Tensor) -> None:
        _, qt = _signswish_expr(x * beta, torch.as_tensor(beta))
        out.copy_(torch.sign(x) * alpha)
        slope.copy_(qt * (alpha * (2.0 * beta)))

    return expr


def _bnn_plus_plus_expr(beta: float, beta_growth: float) -> Callable[..., None]:
    def expr(x: Tensor, out: Tensor, slope: Tensor, alpha: Tensor, mu: Tensor) -> None:
        b = mu * beta_growth + beta
        ss, qt = _signswish_expr(x * b, b)
        out.copy_(ss * alpha)
        slope.copy_(qt * (alpha * (2.0 * b)))

    return expr


def _bnn_plus_plus_prox_expr(beta: float) -> Callable[..., None]:
    def expr(x: Tensor, out: Tensor, slope: Tensor, alpha: Tensor, mu: Tensor) -> None:
        u = (torch.sign(x) * mu + x) * (beta / (1.0 + mu))
        ss, qt = _signswish_expr(u, torch.as_tensor(beta))
        out.copy_(ss * alpha)
        slope.copy_(qt * (alpha * (2.0 * beta)))

    return expr


def _factory(body: Callable[..., Body], expr: Callable[..., Callable[..., None]],
             inputs: Callable[..., Callable[[float], tuple[str, float, bool]]],
             *names: str) -> Callable[..., Kernel]:
    def make(**parameters: float) -> Kernel:
        values = [float(parameters[n]) for n in names]
        return Kernel(body(*values), "slope", expr(*values), signswish=inputs(*values))

    return make


# ``mu -> (u's form, beta, forward is sign)`` of each SignSwish pair, as its body computes them
def _bnn_plus_inputs(beta: float) -> Callable[[float], tuple[str, float, bool]]:
    return lambda mu: ("scaled", beta, True)


def _bnn_plus_plus_inputs(beta: float, beta_growth: float
                          ) -> Callable[[float], tuple[str, float, bool]]:
    return lambda mu: ("scaled", beta + beta_growth * mu, False)


def _bnn_plus_plus_prox_inputs(beta: float) -> Callable[[float], tuple[str, float, bool]]:
    return lambda mu: ("prox", beta, False)


#: catalogue name -> kernel factory (``factory(**parameters)``: the pair's resolved parameters).
#: Pairs without an entry run the reference op (their ``F`` is a few passes already and no
#: results table trains them).
KERNELS: dict[str, Callable[..., Kernel]] = {
    "binaryconnect": lambda **p: Kernel(_sign_body, "none", channel="sign"),
    "bnn": lambda **p: Kernel(_sign_body, "latent", channel="sign"),
    "proxconnect": lambda **p: Kernel(_dist2_prox_body, "none", channel="dist2-prox"),
    "bnn+": _factory(_bnn_plus_body, _bnn_plus_expr, _bnn_plus_inputs, "beta"),
    "bnn++": _factory(_bnn_plus_plus_body, _bnn_plus_plus_expr, _bnn_plus_plus_inputs, "beta",
                      "beta_growth"),
    "bnn++-prox": _factory(_bnn_plus_plus_prox_body, _bnn_plus_plus_prox_expr,
                           _bnn_plus_plus_prox_inputs, "beta"),
}


_MADE: dict[tuple[Any, ...], Kernel] = {}


def kernel_for(name: str, parameters: dict[str, float]) -> Kernel | None:
    """The fused kernel of the catalogue pair ``name`` with its parameters, or ``None`` (one
    object per name and parameters: layers share it, and its compiled form)."""
    make = KERNELS.get(name)
    if make is None:
        return None
    key = (name, make, *sorted((k, float(v)) for k, v in parameters.items()))
    if key not in _MADE:
        _MADE[key] = make(**parameters)
    return _MADE[key]


_compiled: dict[int, Body] = {}


def _body_for(kernel: Kernel) -> Body:
    """``kernel.body``, or in ``compiled`` mode ``kernel.expr`` through ``torch.compile``
    (compiled once per kernel, shapes dynamic, ``mu`` a tensor: no recompilation as ``mu``
    grows). If compilation fails (inductor needs a C++ compiler, and it has been seen to trip
    over Pyomo's deferred imports in a process that loaded Pyomo), a ``RuntimeWarning`` says so
    once, :data:`_state` ``["compile_error"]`` keeps the reason, and the kernel runs
    uncompiled."""
    if get_mode() != "compiled" or kernel.expr is None:
        return kernel.body
    key = id(kernel)
    if key not in _compiled:
        fn = torch.compile(kernel.expr, dynamic=True)

        def body(x: Tensor, mu: float, out: Tensor, slope: Tensor | None,
                 alpha: Tensor | None, scratch: Scratch) -> None:
            a = alpha if alpha is not None else torch.ones((x.shape[0], 1), dtype=x.dtype)
            try:
                fn(x, out, slope, a, torch.tensor(mu, dtype=x.dtype))
            except Exception as exc:  # noqa: BLE001 - any compiler failure: run uncompiled
                _state["compile_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                warnings.warn(f"torch.compile failed ({_state['compile_error']}); the fused "
                              "quantizer ops run uncompiled", RuntimeWarning, stacklevel=2)
                _compiled[key] = kernel.body
                kernel.body(x, mu, out, slope, alpha, scratch)

        _compiled[key] = body
    return _compiled[key]


# --------------------------------------------------------------------------------- buffers
def _storage_uses(t: Tensor) -> int | None:
    """How many tensors share ``t``'s storage (``None``: this torch cannot say)."""
    counter = getattr(torch._C, "_storage_Use_Count", None)
    if counter is None:
        return None
    return int(counter(t.untyped_storage()._cdata))


class _Buffers:
    """The output, slope and scratch tensors of one latent, reused from step to step.

    A tensor is handed out again only when nothing but this cache refers to its storage (the
    previous step's graph has been freed and nobody kept the output): otherwise a new one is
    made. The weights of a layer are the same leaf tensor every step, so after the first step
    the fused op allocates nothing weight-sized; a fresh allocation of that size would be a
    fresh ``mmap`` with glibc's default thresholds (a page fault per 4 KiB)."""

    def __init__(self) -> None:
        self.tensors: dict[str, tuple[Tensor, int]] = {}

    def get(self, role: str, like: Tensor) -> Tensor:
        held = self.tensors.get(role)
        if held is not None:
            t, idle = held
            if (t.shape == like.shape and t.dtype == like.dtype and t.device == like.device
                    and _storage_uses(t) == idle):
                return t
        t = torch.empty_like(like)
        uses = _storage_uses(t)
        if uses is not None:
            self.tensors[role] = (t, uses)
        return t


#: id of a latent -> (weak reference to it, its buffers); an entry goes with its latent
_POOLS: dict[int, tuple[weakref.ref[Tensor], _Buffers]] = {}


def reusable_buffer(x: Tensor, role: str) -> Tensor:
    """A tensor shaped like ``x`` for the result ``role`` of an op on ``x``: the one of the
    previous step when ``x`` is a leaf and nothing refers to that one any more (:class:`_Buffers`),
    else a new one."""
    pool = _buffers_for(x)
    return torch.empty_like(x) if pool is None else pool.get(role, x)


def _buffers_for(x: Tensor) -> _Buffers | None:
    """The reuse cache of ``x`` when it is a leaf (a parameter: the same tensor every step)."""
    if not x.is_leaf:
        return None
    key = id(x)
    entry = _POOLS.get(key)
    if entry is None or entry[0]() is not x:

        def forget(_: object) -> None:
            _POOLS.pop(key, None)

        entry = (weakref.ref(x, forget), _Buffers())
        _POOLS[key] = entry
    return entry[1]


# ----------------------------------------------------------------------------- the forward
@dataclass(frozen=True)
class ChannelScale:
    """The layer's per-output-channel scale ``alpha_j = (sum_i |x_ji| + extra_j) / fan_in``,
    computed inside the fused pass (detached: Bi-Real Net's ``"channel"`` scale)."""

    extra: Tensor
    fan_in: float

    def reference(self, x: Tensor) -> Tensor:
        """``alpha`` as the reference computes it (``vector_norm``), shaped to broadcast."""
        total = torch.linalg.vector_norm(x.reshape(x.shape[0], -1), ord=1, dim=1)
        alpha = (total + self.extra) / self.fan_in
        return alpha.reshape(-1, *([1] * (x.dim() - 1)))


def _row_scale(scale: Tensor | None, rows: int) -> Tensor | None:
    """``scale`` as a ``(rows, 1)`` column when it is one value per row (or one value)."""
    if scale is None:
        return None
    s = scale.detach()
    if s.numel() == 1:
        return s.reshape(1, 1)
    if s.numel() == rows and (s.dim() == 0 or s.shape[0] == rows):
        return s.reshape(rows, 1)
    raise InvalidInputError("scale", f"of shape {tuple(scale.shape)}: the fused op takes one "
                            "value per output channel (first dimension) or a scalar")


def fused_forward(kernel: Kernel, x: Tensor, mu: float, scale: Tensor | ChannelScale | None
                  ) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``(alpha F(x; mu), alpha B'(pi(x)) or None, alpha or None)`` (no autograd;
    :class:`FusedQuantize` wraps it). With a :class:`ChannelScale` the sum of ``|x|`` per row
    is taken in ``out`` before ``F`` overwrites it (no temporary)."""
    xc = x.detach()
    nhwc = _channels_last(xc)
    if nhwc:  # a channels-last activation: the pass runs on its NHWC storage, the result
        xc = xc.permute(0, 2, 3, 1)  # keeps the layout (rows are still the batch)
    elif not xc.is_contiguous():
        xc = xc.contiguous()
    rows = xc.shape[0] if xc.dim() else 1
    cols = xc.numel() // rows if rows else 0
    x2 = xc.view(rows, cols)
    pool = _buffers_for(x)

    def buffer(role: str) -> Tensor:
        return torch.empty_like(x2) if pool is None else pool.get(role, x2)

    out = buffer("out")
    slope = buffer("slope") if kernel.saves == "slope" else None
    alpha: Tensor | None
    done = False
    channel = numba_pass("channel_scale_pass", x2) if isinstance(scale, ChannelScale) else None
    signswish = (numba_pass("signswish_pass32", x2) if kernel.signswish is not None
                 and x2.dtype == torch.float32 and x2.numel() >= _INLINE_SIGMOID_MIN else None)
    if signswish is not None and slope is not None and kernel.signswish is not None:
        inputs, beta, sign_forward = kernel.signswish(mu)  # one pass: scale, u, sigmoid, outputs
        row_scale = None if isinstance(scale, ChannelScale) else _row_scale(scale, rows)
        a = (torch.empty((rows, 1), dtype=x2.dtype) if row_scale is None
             else row_scale.expand(rows, 1).contiguous())
        if scale is None:
            a.fill_(1.0)
        parts = (scale.extra.detach().reshape(rows).to(x2.dtype).contiguous().numpy(),
                 scale.fan_in) if isinstance(scale, ChannelScale) else None
        signswish(x2.numpy(), a.numpy(), beta, sign_forward, out.numpy(), slope.numpy(),
                  inputs, mu, parts,
                  torch.get_num_threads() if _state["numba"].SPLIT_PASSES else 1)
        alpha, done = (None if scale is None else a), True
    elif isinstance(scale, ChannelScale) and channel is not None:  # one numba sweep
        alpha = torch.empty((rows, 1), dtype=x2.dtype)
        extra = scale.extra.detach().reshape(rows).to(x2.dtype).contiguous()
        done = kernel.channel != "none"
        channel(x2.numpy(), extra.numpy(), scale.fan_in, alpha.numpy(),
                out.numpy() if done else None, kernel.channel, mu)
    elif isinstance(scale, ChannelScale):
        torch.abs(x2, out=out)
        alpha = out.sum(dim=1, keepdim=True)
        alpha.add_(scale.extra.detach().reshape(rows, 1).to(x2.dtype)).div_(scale.fan_in)
    else:
        alpha = _row_scale(scale, rows)
    if not done:
        _body_for(kernel)(x2, mu, out, slope, alpha, lambda k: buffer(f"scratch{k}"))
    shape = (rows, *([1] * (xc.dim() - 1)))

    def back(t: Tensor) -> Tensor:
        t = t.view_as(xc)
        return t.permute(0, 3, 1, 2) if nhwc else t

    return (back(out), None if slope is None else back(slope),
            None if alpha is None else alpha.expand(rows, 1).reshape(shape))


def _channels_last(x: Tensor) -> bool:
    """A 4-D tensor stored channels-last (NHWC) and not also plain contiguous (e.g. the
    activations of :class:`~proxcompress.training.models.cnn.VGGSmall`)."""
    return (x.dim() == 4 and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last))


def _indicator_bound(dtype: torch.dtype) -> float:
    """``1 + eps``: ``|x| < 1 + eps`` iff ``|x| <= 1`` in ``dtype``."""
    return 1.0 + float(torch.finfo(dtype).eps)


def _writable(grad: Tensor, like: Tensor) -> bool:
    """Whether the backward pass may overwrite ``grad`` (dense, the latent's shape and dtype,
    not part of a double-backward graph)."""
    dense = grad.is_contiguous() or (grad.stride() == like.stride() and _channels_last(grad))
    return (grad.shape == like.shape and grad.dtype == like.dtype and dense
            and not grad.requires_grad)


class FusedQuantize(torch.autograd.Function):
    """``alpha F(x; mu)`` with the surrogate gradient ``alpha B'(pi(x))``, one kernel per pair
    (:data:`KERNELS`); ``alpha`` a per-row tensor, a :class:`ChannelScale` or ``None``.

    With ``reuse`` the caller promises that the output feeds one operation (a layer's GEMM or
    convolution) whose gradient tensor nobody else sees: the backward pass then writes into the
    incoming gradient instead of a new tensor."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, mu: float, kernel: Kernel,
                scale: Tensor | ChannelScale | None, reuse: bool) -> Tensor:
        out, slope, alpha = fused_forward(kernel, x, mu, scale)
        ctx.saves = kernel.saves
        ctx.alpha = alpha
        ctx.reuse = reuse
        if kernel.saves == "slope":
            ctx.save_for_backward(slope)
        elif kernel.saves == "latent":
            ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None]:
        alpha = ctx.alpha
        if ctx.saves == "slope":
            (slope,) = ctx.saved_tensors
            g = grad.mul_(slope) if ctx.reuse and _writable(grad, slope) else grad * slope
        elif ctx.saves == "latent":
            (x,) = ctx.saved_tensors
            bound = _indicator_bound(x.dtype)
            if ctx.reuse and _writable(grad, x):
                g = torch.ops.aten.hardtanh_backward.grad_input(grad, x, -bound, bound,
                                                                grad_input=grad)
            else:
                g = torch.ops.aten.hardtanh_backward(grad, x, -bound, bound)
            if alpha is not None:
                g.mul_(alpha)
        elif alpha is None:
            g = grad
        else:
            g = grad.mul_(alpha) if ctx.reuse and _writable(grad, grad) else grad * alpha
        return g, None, None, None, None


def fused_quantize(kernel: Kernel, x: Tensor, mu: float,
                   scale: Tensor | ChannelScale | None = None, reuse: bool = False) -> Tensor:
    """Apply :class:`FusedQuantize` (with autograd) or :func:`fused_forward` (without; the
    result may be a buffer that a later call of the same latent overwrites when nothing else
    refers to it)."""
    if torch.is_grad_enabled() and x.requires_grad:
        out: Tensor = FusedQuantize.apply(x, mu, kernel, scale, reuse)
        return out
    return fused_forward(kernel, x, mu, scale)[0]


__all__ = [
    "KERNELS",
    "MODES",
    "ChannelScale",
    "FusedQuantize",
    "Kernel",
    "fused_forward",
    "fused_quantize",
    "get_mode",
    "kernel_for",
    "numba_pass",
    "quant_ops",
    "reusable_buffer",
    "set_mode",
]
