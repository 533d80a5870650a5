"""Power-of-two (shift) layers: DeepShift-Q quantization, DenseShift and S3 reparametrizations.

Every layer here computes with weights :math:`w = s\\,2^{e}`, a sign :math:`s` and an integer
exponent :math:`e`, so a product :math:`x w` is a sign flip plus an exponent addition (a shift
for integer inputs). Each layer exports its integer codes (:meth:`ShiftLayer.weight_codes`:
sign int8, exponent int8) and these reproduce its forward weights exactly,
``shift_weight() == sign * 2.0**exponent``, which is what the kernels' ``shift_matmul`` and the
4-bit ``pack_shift`` format consume (:mod:`proxcompress.kernels.formats`).

Three ways to train such weights:

**DeepShift-Q** (:class:`ShiftLinear`, :class:`ShiftConv2d`; Elhoushi et al., *DeepShift:
Towards Multiplication-Less Neural Networks*, CVPRW 2021, arXiv:1905.13298; the low-bit shift
SLU network, Avila et al., Interspeech 2022, arXiv:2207.07497, methods.md section 6). A latent
float weight ``w`` is rounded to a power of two in the forward pass and the gradient passes
straight through (identity):

.. math::

    Q(w) = \\mathrm{sign}(w)\\, 2^{\\mathrm{clip}(\\mathrm{round}(\\log_2 |w|),\\, e_{min},
    \\, e_{max})}, \\qquad
    \\frac{\\partial \\ell}{\\partial w} := \\frac{\\partial \\ell}{\\partial Q}.

With ``bits`` bits (1 sign bit) the format *with zero* has :math:`2^{b-1} - 1` exponents plus
the value 0 (a weight below the smallest level rounds to 0); the zero-free format has
:math:`2^{b-1}` exponents. :math:`e_{max}` is a per-layer buffer.

**DenseShift** (:class:`DenseShiftLinear`, :class:`DenseShiftConv2d`; Li, Liu, Yang,
Courville, Xing, Partovi Nia, ICCV 2023, arXiv:2208.09708; methods.md section 5, parametrization
confirmed from ``huawei-noah/noah-research:S3-Training/dsconv2d.py@4b5c2aa``). Zero-free weights
:math:`\\pm 2^{S}`, :math:`S \\in \\{0, \\dots, 2^{b-1} - 1\\}`, from real latents
``weight`` (the sign latent) and ``weight_exponent[0..P-1]``, :math:`P = 2^{b-1} - 1`:

.. math::

    b(x) = 1\\{x > 0\\}, \\quad \\mathrm{sgn}(x) = \\pm 1\\ (\\mathrm{sgn}(0) = +1), \\quad
    S = (\\cdots((b(t_1) + 1)\\, b(t_2) + 1) \\cdots + 1)\\, b(t_P),

    W_{fwd} = \\mathrm{sgn}(W_{sign})\\, 2^{S}, \\qquad
    W_{bwd} = \\mathrm{sgn}(W_{sign})\\, g(S),

both ``b`` and ``sgn`` straight-through (identity gradient); the network uses ``W_fwd`` and
the gradient is that of ``W_bwd`` (the sign-scale decomposition with its backward surrogate).
``g(S) = sqrt(S + 1)`` is the code's surrogate (default); ``2^S`` the alternative
(``surrogate="pow2"``) [U, pluggable]. Latents start at :math:`N(0, \\sigma^2)`,
:math:`\\sigma = 10^{-3}` (low-variance init, ``init_std``) [C: ``resnet.py@4af7c9b``].

**S3** (:class:`S3Linear`, :class:`S3Conv2d`; Li, Liu, Yu, Liu, Xu, Partovi Nia, NeurIPS 2021,
arXiv:2107.03453; methods.md section 8, confirmed from ``S3-Training/s3conv2dshift.py``).
The sign-sparse-shift reparametrization, latents ``weight`` (= ``W_sign``), ``weight_sparse``
and ``weight_shift[0..n-1]`` (= ``W_s1, W_s2, ...``):

.. math::

    W = \\mathrm{sgn}(W_{sign})\\, b(W_{sparse})\\, 2^{e}, \\qquad
    e = b(W_{s1})\\,(1 + b(W_{s2})\\,(1 + \\cdots)),

3 bits: :math:`n = 2`, alphabet :math:`\\{0, \\pm 1, \\pm 2, \\pm 4\\}` (the paper's); 4 bits:
:math:`n = 6`, :math:`\\{0, \\pm 2^0, \\dots, \\pm 2^6\\}`, the full sign + 3-bit code with zero
(the nested extension is ours [D]). The dense-weight regularizer
:math:`R = \\|\\max(-W_{sparse}, 0)\\|_1` (weight :math:`10^{-5}`) keeps weights non-zero
(:func:`s3_regularizer`).

**Weight freezing** (DenseShift v1's diagnostic; its definition is [U]): :class:`FreezingTracker`
reports, between two snapshots of the integer codes, the share of weights whose sign, exponent,
or both did not change.

Layers subclass ``nn.Linear`` / ``nn.Conv2d``: ``weight`` holds the (sign) latent, so tools that
read ``weight.shape`` (MAC counts) keep working; the forward weight is :meth:`shift_weight`.
DenseShift and S3 need a normalization after the layer (BatchNorm absorbs the scale, as in the
papers): their weights have magnitude 1 to 2^6 whatever the fan-in.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from proxcompress.errors import InvalidInputError
from proxcompress.training.fused import numba_pass, reusable_buffer

Rounding = Literal["log", "linear"]
Surrogate = Literal["sqrt", "pow2"]
S3Init = Literal["kaiming", "dense"]

#: DenseShift's low-variance init [C: S3-Training/resnet.py@4af7c9b]
DENSESHIFT_INIT_STD = 1e-3
#: S3's dense-weight regularizer weight [C: S3-Training main.py, --rs 1e-5]
S3_REG_WEIGHT = 1e-5


# ------------------------------------------------------------------- straight-through ops
class _SteSign(torch.autograd.Function):
    """Forward ``sgn(x)`` in {-1, +1} with ``sgn(0) = +1``; backward identity."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad


class _SteStep(torch.autograd.Function):
    """Forward ``1{x > 0}``; backward identity."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad


class _Exp2(torch.autograd.Function):
    """``2^e`` for integer-valued ``e`` (exact), derivative ``ln 2 * 2^e``."""

    @staticmethod
    def forward(ctx: Any, e: Tensor) -> Tensor:
        out = torch.exp2(e)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (out,) = ctx.saved_tensors
        return grad * out * math.log(2.0)


class _DenseShiftWeight(torch.autograd.Function):
    """Forward ``sign * 2^S`` (exact); backward the gradient of ``sign * g(S)``."""

    @staticmethod
    def forward(ctx: Any, sign: Tensor, s: Tensor, surrogate: str) -> Tensor:
        ctx.save_for_backward(sign, s)
        ctx.surrogate = surrogate
        return sign * torch.exp2(s)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        sign, s = ctx.saved_tensors
        if ctx.surrogate == "sqrt":
            g = torch.sqrt(s + 1.0)
            dg = 0.5 / g
        else:
            g = torch.exp2(s)
            dg = g * math.log(2.0)
        return grad * g, grad * sign * dg, None


class _PowerOfTwoSTE(torch.autograd.Function):
    """Forward the DeepShift-Q rounding (exact ``sign * 2^e``); backward identity."""

    @staticmethod
    def forward(ctx: Any, w: Tensor, fmt: ShiftFormat, rounding: str) -> Tensor:
        rounded = numba_pass("shift_round_pass", w)
        if rounded is not None and rounding in ("log", "linear"):  # one exact pass (issue 17)
            out = reusable_buffer(w, "shift")
            rounded(w.detach().contiguous().numpy(), fmt.emin, fmt.emax, fmt.zero, rounding,
                    out.numpy())
            return out.view_as(out)
        sign, exponent = power_of_two_codes(w, fmt, rounding)  # type: ignore[arg-type]
        return sign.to(w.dtype) * torch.exp2(exponent.to(w.dtype))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return grad, None, None


# ------------------------------------------------------------------------- the format
@dataclass(frozen=True)
class ShiftFormat:
    """Which shift weights a layer can hold: :math:`\\{\\pm 2^e : e_{min} \\le e \\le e_{max}\\}`,
    plus 0 when ``zero``.

    Attributes:
        zero: whether 0 is a value (sign 0).
        emin: smallest exponent.
        emax: largest exponent.
    """

    zero: bool
    emin: int
    emax: int

    def alphabet(self) -> tuple[float, ...]:
        """Every value, ascending."""
        pos = [2.0**e for e in range(self.emin, self.emax + 1)]
        return tuple(sorted([-v for v in pos] + ([0.0] if self.zero else []) + pos))


def _check_bits(bits: Any, low: int, high: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not low <= bits <= high:
        raise InvalidInputError("bits", f"= {bits!r}; accepted: an integer in [{low}, {high}]")
    return bits


def exponent_count(bits: int, zero: bool) -> int:
    """Exponents of a ``bits``-bit shift code (1 sign bit): ``2^(bits-1) - 1`` with zero,
    ``2^(bits-1)`` without."""
    return 2 ** (bits - 1) - (1 if zero else 0)


def power_of_two_codes(
    w: Tensor, fmt: ShiftFormat, rounding: Rounding = "log"
) -> tuple[Tensor, Tensor]:
    """Round ``w`` to the nearest value of ``fmt``: ``(sign, exponent)`` as int8.

    With :math:`|w| = m 2^{k}`, :math:`m \\in [1, 2)` (exact, from ``frexp``):

    * ``rounding="log"`` (DeepShift's ``round(log2 |w|)``, default [U]): :math:`e = k + 1\\{m \\ge
      \\sqrt 2\\}`; with zero, :math:`|w| < 2^{e_{min} - 1/2}` (i.e. :math:`e < e_{min}`) gives 0.
    * ``rounding="linear"`` (nearest value on the real line): :math:`e = k + 1\\{m \\ge 1.5\\}`;
      with zero, :math:`|w| < 2^{e_{min} - 1}` gives 0.

    Then :math:`e` is clipped to :math:`[e_{min}, e_{max}]`. Zero-free formats map
    :math:`w = 0` to :math:`+2^{e_{min}}` (``sgn(0) = +1``). Zero weights have exponent 0.
    """
    if rounding not in ("log", "linear"):
        raise InvalidInputError("rounding", f"= {rounding!r}; accepted: 'log', 'linear'")
    a = w.detach().abs()
    mantissa, k = torch.frexp(a)  # a = mantissa * 2^k, mantissa in [0.5, 1)
    floor_e = k.to(torch.int32) - 1
    threshold = math.sqrt(2.0) if rounding == "log" else 1.5
    e = floor_e + (2.0 * mantissa >= threshold).to(torch.int32)
    sign = torch.where(w.detach() < 0, -1, 1).to(torch.int8)
    if fmt.zero:
        below = e < fmt.emin if rounding == "log" else floor_e < fmt.emin - 1
        is_zero = below | (a == 0)
    e = torch.where(a == 0, fmt.emin, e).clamp(fmt.emin, fmt.emax)
    if fmt.zero:
        sign = torch.where(is_zero, 0, sign).to(torch.int8)
        e = torch.where(is_zero, 0, e)
    return sign, e.to(torch.int8)


def codes_to_weight(sign: Tensor, exponent: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """``sign * 2.0**exponent`` (exact in float32 for every int8 exponent)."""
    return sign.to(dtype) * torch.exp2(exponent.to(dtype))


# ------------------------------------------------------------------------- base class
class ShiftLayer(nn.Module, metaclass=abc.ABCMeta):
    """What every shift layer offers (a mixin; concrete layers also subclass ``nn.Linear`` or
    ``nn.Conv2d``).

    * :meth:`shift_weight`: the forward weight, differentiable through the method's surrogate;
    * :meth:`weight_codes`: ``(sign, exponent)`` int8, with
      ``shift_weight() == sign * 2.0**exponent`` exactly;
    * :meth:`code_format`: the :class:`ShiftFormat` the codes lie in;
    * :attr:`bits`: bits per deployed weight;
    * :meth:`latent_parameters`: the tensors behind the weight (not stored when deployed).
    """

    bits: int
    weight: Any
    bias: Any

    @abc.abstractmethod
    def shift_weight(self) -> Tensor:
        """The forward weight (straight-through gradients to the latents)."""

    @abc.abstractmethod
    def weight_codes(self) -> tuple[Tensor, Tensor]:
        """``(sign, exponent)`` int8 with ``shift_weight() == sign * 2.0**exponent``."""

    @abc.abstractmethod
    def code_format(self) -> ShiftFormat:
        """The format the codes lie in."""

    def latent_parameters(self) -> list[nn.Parameter]:
        """The latent tensors that produce the weight (everything but the bias)."""
        return [p for n, p in self.named_parameters(recurse=False) if n != "bias"]

    def _apply_weight(self, x: Tensor, weight: Tensor) -> Tensor:
        if isinstance(self, nn.Conv2d):
            return self._conv_forward(x, weight, self.bias)
        return functional.linear(x, weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self._apply_weight(x, self.shift_weight())


def _fan_out(layer: nn.Module) -> int:
    """``k_h k_w C_out`` for a conv, ``out_features`` for a linear layer (S3's Kaiming ``n``)."""
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        return int(kh * kw * layer.out_channels)
    return int(cast(Tensor, layer.weight).shape[0])


# ---------------------------------------------------------------------------- DeepShift-Q
class _DeepShiftMixin(ShiftLayer):
    """DeepShift-Q rounding of a latent float weight (see the module docstring)."""

    zero: bool
    rounding: Rounding
    emax: Tensor

    def _init_deepshift(self, bits: int, zero: bool, rounding: Rounding, emax: int | None) -> None:
        self.bits = _check_bits(bits, 2, 8)
        if rounding not in ("log", "linear"):
            raise InvalidInputError("rounding", f"= {rounding!r}; accepted: 'log', 'linear'")
        self.zero = bool(zero)
        self.rounding = rounding
        self.auto_range = emax is None
        if emax is not None and (isinstance(emax, bool) or not isinstance(emax, int)
                                 or not -100 <= emax <= 100):
            raise InvalidInputError("emax", f"= {emax!r}; accepted: an integer in [-100, 100] "
                                    "or None (from the weights)")
        self.register_buffer("emax", torch.tensor(0 if emax is None else emax, dtype=torch.int64))
        if self.auto_range:
            self.calibrate_range()

    def calibrate_range(self) -> None:
        """Set ``emax`` to the rounded exponent of ``max |w|`` (so the largest latent weight is a
        level): the default [U]. DeepShift's own range ends at :math:`2^0` (``emax=0``), fine for
        its 5-6 bits but at 3 bits it would round most Kaiming-initialized weights to 0."""
        with torch.no_grad():
            top = self.weight.detach().abs().max()
            if top == 0:
                self.emax.fill_(0)
                return
            mantissa, k = torch.frexp(top)
            threshold = math.sqrt(2.0) if self.rounding == "log" else 1.5
            self.emax.fill_(int(k) - 1 + int(2.0 * float(mantissa) >= threshold))

    def code_format(self) -> ShiftFormat:
        emax = int(self.emax)
        return ShiftFormat(self.zero, emax - exponent_count(self.bits, self.zero) + 1, emax)

    def shift_weight(self) -> Tensor:
        return _PowerOfTwoSTE.apply(self.weight, self.code_format(), self.rounding)

    def weight_codes(self) -> tuple[Tensor, Tensor]:
        return power_of_two_codes(self.weight, self.code_format(), self.rounding)

    def extra_repr(self) -> str:
        f = self.code_format()
        return (f"{super().extra_repr()}, bits={self.bits}, zero={self.zero}, "
                f"exponents=[{f.emin}, {f.emax}], rounding={self.rounding}")


class ShiftLinear(_DeepShiftMixin, nn.Linear):
    """Linear layer with DeepShift-Q power-of-two weights (module docstring).

    Args:
        in_features: as :class:`torch.nn.Linear`.
        out_features: as :class:`torch.nn.Linear`.
        bias: as :class:`torch.nn.Linear`.
        bits: bits per weight including the sign, 2..8 (default 4: the kernels' 4-bit code).
        zero: whether the format has 0 (default ``True``; ``False``: DeepShift-Q's clamp of tiny
            weights to the smallest level).
        rounding: ``"log"`` (default, DeepShift [U]) or ``"linear"`` (nearest level).
        emax: largest exponent; ``None`` (default [U]) sets it from the initial weights and
            again on :meth:`calibrate_range`.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 bits: int = 4, zero: bool = True, rounding: Rounding = "log",
                 emax: int | None = None, **kwargs: Any) -> None:
        super().__init__(in_features, out_features, bias, **kwargs)
        self._init_deepshift(bits, zero, rounding, emax)


class ShiftConv2d(_DeepShiftMixin, nn.Conv2d):
    """Conv2d with DeepShift-Q power-of-two weights; arguments as :class:`torch.nn.Conv2d`
    plus ``bits``, ``zero``, ``rounding``, ``emax`` as :class:`ShiftLinear`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 *args: Any, bits: int = 4, zero: bool = True, rounding: Rounding = "log",
                 emax: int | None = None, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size, *args, **kwargs)
        self._init_deepshift(bits, zero, rounding, emax)


# ----------------------------------------------------------------------------- DenseShift
class _DenseShiftMixin(ShiftLayer):
    """DenseShift's zero-free sign-scale reparametrization (module docstring)."""

    surrogate: Surrogate
    weight_exponent: nn.Parameter

    def _init_denseshift(self, bits: int, surrogate: Surrogate, init_std: float) -> None:
        self.bits = _check_bits(bits, 2, 4)
        if surrogate not in ("sqrt", "pow2"):
            raise InvalidInputError("surrogate", f"= {surrogate!r}; accepted: 'sqrt', 'pow2'")
        if not (isinstance(init_std, int | float) and math.isfinite(init_std) and init_std > 0):
            raise InvalidInputError("init_std", f"= {init_std!r} must be a number > 0")
        self.surrogate = surrogate
        self.init_std = float(init_std)
        latents = 2 ** (bits - 1) - 1
        w = self.weight
        self.weight_exponent = nn.Parameter(
            torch.empty((latents, *w.shape), dtype=w.dtype, device=w.device))
        with torch.no_grad():
            self.weight.normal_(0.0, self.init_std)
            self.weight_exponent.normal_(0.0, self.init_std)

    def _exponent(self) -> Tensor:
        """``S = (...((b(t_1) + 1) b(t_2) + 1) ...) b(t_P)`` (float, straight-through)."""
        # unbind: one stacking node in the backward pass (indexing made a zero-filled tensor of
        # the whole stack per latent)
        first, *rest = self.weight_exponent.unbind(0)
        s = _SteStep.apply(first)
        for t in rest:
            s = (s + 1.0) * _SteStep.apply(t)
        return s

    def shift_weight(self) -> Tensor:
        return _DenseShiftWeight.apply(_SteSign.apply(self.weight), self._exponent(),
                                       self.surrogate)

    def weight_codes(self) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            sign = torch.where(self.weight >= 0, 1, -1).to(torch.int8)
            return sign, self._exponent().round().to(torch.int8)

    def code_format(self) -> ShiftFormat:
        return ShiftFormat(False, 0, 2 ** (self.bits - 1) - 1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}, surrogate={self.surrogate}"


class DenseShiftLinear(_DenseShiftMixin, nn.Linear):
    """Linear layer with DenseShift weights :math:`\\pm 2^S` (module docstring).

    Args:
        in_features: as :class:`torch.nn.Linear`.
        out_features: as :class:`torch.nn.Linear`.
        bias: as :class:`torch.nn.Linear`.
        bits: 2..4 (default 3: :math:`\\{\\pm 1, \\pm 2, \\pm 4, \\pm 8\\}`); ``2^(bits-1) - 1``
            exponent latents.
        surrogate: backward surrogate ``g(S)``: ``"sqrt"`` (``sqrt(S + 1)``, the code's, default)
            or ``"pow2"`` (``2^S``) [U].
        init_std: std of the Gaussian init of every latent (default 1e-3) [U: pluggable].
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 bits: int = 3, surrogate: Surrogate = "sqrt",
                 init_std: float = DENSESHIFT_INIT_STD, **kwargs: Any) -> None:
        super().__init__(in_features, out_features, bias, **kwargs)
        self._init_denseshift(bits, surrogate, init_std)


class DenseShiftConv2d(_DenseShiftMixin, nn.Conv2d):
    """Conv2d with DenseShift weights; arguments as :class:`torch.nn.Conv2d` plus ``bits``,
    ``surrogate``, ``init_std`` as :class:`DenseShiftLinear`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 *args: Any, bits: int = 3, surrogate: Surrogate = "sqrt",
                 init_std: float = DENSESHIFT_INIT_STD, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size, *args, **kwargs)
        self._init_denseshift(bits, surrogate, init_std)


# ------------------------------------------------------------------------------------ S3
class _S3Mixin(ShiftLayer):
    """S3's sign-sparse-shift reparametrization (module docstring)."""

    weight_sparse: nn.Parameter
    weight_shift: nn.Parameter

    def _init_s3(self, bits: int, init: S3Init) -> None:
        self.bits = _check_bits(bits, 3, 4)
        if init not in ("kaiming", "dense"):
            raise InvalidInputError("init", f"= {init!r}; accepted: 'kaiming', 'dense'")
        self.init = init
        w = self.weight
        self.weight_sparse = nn.Parameter(torch.empty_like(w))
        self.weight_shift = nn.Parameter(
            torch.empty((2 ** (bits - 1) - 2, *w.shape), dtype=w.dtype, device=w.device))
        std = math.sqrt(2.0 / _fan_out(self))
        with torch.no_grad():
            for p in (self.weight, self.weight_sparse, self.weight_shift):
                p.normal_(0.0, std)
            if init == "dense":
                self.weight_sparse.abs_()
                self.weight_shift.abs_().neg_()

    def _exponent(self) -> Tensor:
        """``e = b(s_1) (1 + b(s_2) (1 + ...))`` (float, straight-through)."""
        *rest, last = self.weight_shift.unbind(0)  # one stacking node in the backward pass
        e = _SteStep.apply(last)
        for t in reversed(rest):
            e = _SteStep.apply(t) * (1.0 + e)
        return e

    def shift_weight(self) -> Tensor:
        sign = _SteSign.apply(self.weight)
        sparse = _SteStep.apply(self.weight_sparse)
        return sign * sparse * _Exp2.apply(self._exponent())

    def weight_codes(self) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            nonzero = self.weight_sparse > 0
            sign = torch.where(self.weight >= 0, 1, -1)
            sign = torch.where(nonzero, sign, 0).to(torch.int8)
            e = torch.where(nonzero, self._exponent().round(), 0.0)
            return sign, e.to(torch.int8)

    def code_format(self) -> ShiftFormat:
        return ShiftFormat(True, 0, 2 ** (self.bits - 1) - 2)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}, init={self.init}"


class S3Linear(_S3Mixin, nn.Linear):
    """Linear layer with S3 weights (module docstring).

    Args:
        in_features: as :class:`torch.nn.Linear`.
        out_features: as :class:`torch.nn.Linear`.
        bias: as :class:`torch.nn.Linear`.
        bits: 3 (default, :math:`\\{0, \\pm 1, \\pm 2, \\pm 4\\}`) or 4
            (:math:`\\{0, \\pm 2^0, \\dots, \\pm 2^6\\}`).
        init: ``"kaiming"`` (default: every latent :math:`N(0, 2/n)`, ``n`` the fan-out, the
            main-branch code) or ``"dense"`` (the earlier commit: ``|W_sparse|`` and
            ``-|W_s|``, so every weight starts at :math:`\\pm 1`) [U].
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 bits: int = 3, init: S3Init = "kaiming", **kwargs: Any) -> None:
        super().__init__(in_features, out_features, bias, **kwargs)
        self._init_s3(bits, init)


class S3Conv2d(_S3Mixin, nn.Conv2d):
    """Conv2d with S3 weights; arguments as :class:`torch.nn.Conv2d` plus ``bits`` and ``init``
    as :class:`S3Linear`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 *args: Any, bits: int = 3, init: S3Init = "kaiming", **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size, *args, **kwargs)
        self._init_s3(bits, init)


# ------------------------------------------------------------------ model-level helpers
def shift_layers(model: nn.Module) -> list[tuple[str, ShiftLayer]]:
    """``(name, layer)`` for every shift layer of ``model``, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, ShiftLayer)]


def s3_regularizer(model: nn.Module, weight: float = S3_REG_WEIGHT) -> Tensor:
    """S3's dense-weight regularizer ``weight * sum_layers ||max(-W_sparse, 0)||_1`` (0 for a
    model without S3 layers). Add it to the loss: it pushes ``W_sparse`` up, so weights stay
    non-zero (``add_reg_sparse_to_loss`` in the S3 code)."""
    terms = [functional.relu(-m.weight_sparse).sum()
             for _, m in shift_layers(model) if isinstance(m, _S3Mixin)]
    if not terms:
        return torch.zeros(())
    return weight * torch.stack(terms).sum()


class FreezingTracker:
    """The weight-freezing metric [U: DenseShift v1 proposes one; its definition is not public].

    Our definition: snapshot the integer codes of every shift layer (:meth:`update`, e.g. once
    per epoch); compare with the snapshot ``window`` updates before. A weight is *frozen* when
    neither its sign nor its exponent changed over those updates:

    .. math:: \\mathrm{frozen} = \\frac{1}{n} \\sum_i
              1\\{s_i^{(t)} = s_i^{(t-w)} \\wedge e_i^{(t)} = e_i^{(t-w)}\\}

    (and ``sign_frozen`` / ``exponent_frozen`` for each part alone). A weight that moves to 0
    and back within the window counts as frozen if its end codes match: codes are compared
    between the two snapshots only.

    Args:
        window: snapshots between the compared codes (default 1: consecutive snapshots).
    """

    def __init__(self, window: int = 1) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise InvalidInputError("window", f"= {window!r} must be an integer >= 1")
        self.window = window
        self.history: list[dict[str, tuple[Tensor, Tensor]]] = []

    @staticmethod
    def snapshot(model: nn.Module) -> dict[str, tuple[Tensor, Tensor]]:
        """``{layer name: (sign, exponent)}`` on the CPU."""
        out = {}
        for name, m in shift_layers(model):
            sign, exponent = m.weight_codes()
            out[name] = (sign.detach().cpu().clone(), exponent.detach().cpu().clone())
        return out

    def state_tensors(self) -> dict[str, Tensor]:
        """The kept snapshots as named tensors (``"<i>.<layer>.sign|exponent"``), for a
        checkpoint."""
        out = {}
        for i, snap in enumerate(self.history):
            for name, (sign, exponent) in snap.items():
                out[f"{i}.{name}.sign"] = sign
                out[f"{i}.{name}.exponent"] = exponent
        return out

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore the snapshots of :meth:`state_tensors`."""
        history: dict[int, dict[str, list[Tensor]]] = {}
        for key, value in tensors.items():
            index, rest = key.split(".", 1)
            name, part = rest.rsplit(".", 1)
            history.setdefault(int(index), {}).setdefault(name, [value, value])[
                0 if part == "sign" else 1] = value
        self.history = [{name: (pair[0], pair[1]) for name, pair in history[i].items()}
                        for i in sorted(history)]

    def update(self, model: nn.Module) -> dict[str, float] | None:
        """Take a snapshot; return ``{"frozen", "sign_frozen", "exponent_frozen"}`` (shares in
        [0, 1]) against the snapshot ``window`` updates back, ``None`` until there is one (or
        when the model has no shift layers).

        Raises:
            InvalidInputError: the model's shift layers changed between snapshots.
        """
        now = self.snapshot(model)
        self.history.append(now)
        if len(self.history) > self.window + 1:
            self.history.pop(0)
        if len(self.history) <= self.window or not now:
            return None
        before = self.history[0]
        if before.keys() != now.keys() or any(
                before[k][0].shape != now[k][0].shape for k in now):
            raise InvalidInputError("model", "its shift layers changed between snapshots")
        both = sign_same = exp_same = total = 0
        for key, (s1, e1) in now.items():
            s0, e0 = before[key]
            ss, es = s0 == s1, e0 == e1
            sign_same += int(ss.sum())
            exp_same += int(es.sum())
            both += int((ss & es).sum())
            total += s1.numel()
        return {"frozen": both / total, "sign_frozen": sign_same / total,
                "exponent_frozen": exp_same / total}


__all__ = [
    "DENSESHIFT_INIT_STD",
    "S3_REG_WEIGHT",
    "DenseShiftConv2d",
    "DenseShiftLinear",
    "FreezingTracker",
    "Rounding",
    "S3Conv2d",
    "S3Init",
    "S3Linear",
    "ShiftConv2d",
    "ShiftFormat",
    "ShiftLayer",
    "ShiftLinear",
    "Surrogate",
    "codes_to_weight",
    "exponent_count",
    "power_of_two_codes",
    "s3_regularizer",
    "shift_layers",
]
