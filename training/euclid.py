"""Euclid layers (negative squared distance) and their L1 sibling (AdderNet), with the homotopy
from multiplication.

**EuclidNet** (Li, Prazeres, Oberman, Ghaffari, Asgharian, Partovi Nia, *EuclidNets: An
Alternative Operation for Efficient Inference of Deep Learning Models*, SN Computer Science 2023,
arXiv:2212.11803; ICPRAM 2022; methods.md section 4). Each output is a negative squared distance
between the input (patch) and the output's weight row:

.. math::

    E_s(x, w) = -s\\,\\|x - w\\|_2^2 = -s\\,(\\|x\\|^2 - 2\\,x \\cdot w + \\|w\\|^2),

with scale ``s = 1/2`` by default (methods.md's sign convention [D]: then
:math:`E = x\\cdot w - \\tfrac12\\|x\\|^2 - \\tfrac12\\|w\\|^2`, a linear layer plus two
corrections) and ``s = 1`` the kernels' ``euclid_matmul`` form [U, pluggable]. The torch forward
uses the expanded form (one GEMM / conv plus the two norms; for a conv, :math:`\\|x\\|^2` per
patch is ``conv2d(x**2, ones)``, equal to the unfolded patches' norms), zero padding counting
as inputs 0, exactly as :func:`proxcompress.kernels.euclid_conv2d`.

**Homotopy training** (the patent's "homotopy training" [C: US 2022/0374689 A1]; its form is
[U]). A buffer ``theta`` in [0, 1] blends the ordinary product into the distance:

.. math:: y_\\theta = (1 - \\theta)\\, x \\cdot w + \\theta\\, E_s(x, w),

which for ``s = 1/2`` is methods.md's :math:`x \\cdot w - \\theta (\\tfrac12\\|x\\|^2 +
\\tfrac12\\|w\\|^2)`: ``theta = 0`` is the ordinary (possibly pre-trained) layer, ``theta = 1``
the pure Euclid layer (the only exportable one). :class:`HomotopySchedule` says how ``theta``
moves with the step (default: linear from 0 to 1 over the first half of training, then 1 [U]);
:func:`set_theta` writes it into every layer. A layer built alone starts at ``theta = 1``.

**AdderNet** (Chen, Wang, Xu, Shi, Xu, Tian, Xu, *AdderNet: Do We Really Need Multiplications
in Deep Learning?*, CVPR 2020, arXiv:1912.13200): :math:`A(x, w) = -\\|x - w\\|_1`, with the
paper's surrogate gradients (``grad="addernet"``, default) instead of the signs (``"exact"``):

.. math::

    \\frac{\\partial A}{\\partial w_k} := x_k - w_k, \\qquad
    \\frac{\\partial A}{\\partial x_k} := \\mathrm{HT}(w_k - x_k)
    = \\mathrm{clip}(w_k - x_k, -1, 1),

and the adaptive learning rate of its eq. (11): the layer's weight gradient ``g`` (of the L1
part) is rescaled to :math:`\\eta \\sqrt{k}\\, g / \\|g\\|_2`, ``k`` the number of weights,
``eta = 0.1`` [U: pluggable, ``None`` turns it off]. The same homotopy applies to it. The L1
distance has no GEMM form, so it is computed from the unfolded patches in row blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from proxcompress.errors import InvalidInputError

ScheduleKind = Literal["linear", "cosine", "step", "constant"]
AdderGrad = Literal["addernet", "exact"]

#: AdderNet's adaptive learning-rate coefficient eta [U]
ADDER_ETA = 0.1
#: elements of the (rows x outputs x fan-in) temporaries of the L1 backward per block
_BLOCK = 1 << 22


# ------------------------------------------------------------------------------- schedule
@dataclass(frozen=True)
class HomotopySchedule:
    """``theta`` as a function of the optimizer step ``t`` out of ``total`` [U: pluggable].

    Kinds (``f = min(t / (ramp * total), 1)``):
        ``linear`` (default): ``theta = start + (1 - start) f``.
        ``cosine``: ``theta = start + (1 - start) (1 - cos(pi f)) / 2``.
        ``step``: ``theta = 1`` from the first step (train the pure Euclid / L1 network).
        ``constant``: ``theta = start``.

    Attributes:
        kind: one of the kinds.
        start: ``theta`` at step 0 (default 0: the multiplication network).
        ramp: fraction of the run over which ``theta`` reaches 1 (default 0.5), in (0, 1].
    """

    kind: ScheduleKind = "linear"
    start: float = 0.0
    ramp: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "cosine", "step", "constant"):
            raise InvalidInputError("homotopy.kind", f"= {self.kind!r}; accepted: linear, "
                                    "cosine, step, constant")
        if not (isinstance(self.start, int | float) and 0.0 <= self.start <= 1.0):
            raise InvalidInputError("homotopy.start", f"= {self.start!r}; accepted: [0, 1]")
        if not (isinstance(self.ramp, int | float) and 0.0 < self.ramp <= 1.0):
            raise InvalidInputError("homotopy.ramp", f"= {self.ramp!r}; accepted: (0, 1]")

    def value(self, step: int, total: int) -> float:
        """``theta`` after ``step`` of ``total`` steps."""
        if self.kind == "step":
            return 1.0
        if self.kind == "constant":
            return float(self.start)
        f = min(step / max(self.ramp * max(total, 1), 1e-12), 1.0)
        if self.kind == "cosine":
            f = 0.5 * (1.0 - math.cos(math.pi * f))
        return float(self.start + (1.0 - self.start) * f)


def _check_theta(theta: Any) -> float:
    if isinstance(theta, bool) or not isinstance(theta, int | float) or not 0 <= theta <= 1:
        raise InvalidInputError("theta", f"= {theta!r}; accepted: a number in [0, 1]")
    return float(theta)


class HomotopyLayer(nn.Module):
    """Mixin of the Euclid / L1 layers: the ``theta`` buffer and the blend
    ``(1 - theta) * dot + theta * distance`` (module docstring)."""

    theta: Tensor
    weight: Any
    bias: Any

    def _init_theta(self, theta: float) -> None:
        self.register_buffer("theta", torch.tensor(_check_theta(theta), dtype=torch.float64))

    def _blend(self, dot: Tensor | None, distance: Tensor | None) -> Tensor:
        t = float(self.theta)
        if t == 1.0:
            assert distance is not None
            return distance
        if t == 0.0:
            assert dot is not None
            return dot
        assert dot is not None and distance is not None
        return (1.0 - t) * dot + t * distance

    def _add_bias(self, y: Tensor) -> Tensor:
        if self.bias is None:
            return y
        if y.dim() == 4:
            return y + self.bias.view(1, -1, 1, 1)
        return y + self.bias


def set_theta(model: nn.Module, theta: float) -> None:
    """Write ``theta`` into every Euclid / L1 layer of ``model``."""
    value = _check_theta(theta)
    for m in model.modules():
        if isinstance(m, HomotopyLayer):
            m.theta.fill_(value)


def homotopy_layers(model: nn.Module) -> list[tuple[str, HomotopyLayer]]:
    """``(name, layer)`` for every Euclid / L1 layer of ``model``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, HomotopyLayer)]


def _check_conv(layer: nn.Conv2d) -> None:
    if layer.groups != 1:
        raise InvalidInputError("groups", f"= {layer.groups}; Euclid / L1 convs need groups=1")
    if layer.padding_mode != "zeros":
        raise InvalidInputError("padding_mode", f"= {layer.padding_mode!r}; accepted: 'zeros'")
    if isinstance(layer.padding, str):
        raise InvalidInputError("padding", f"= {layer.padding!r}; give explicit integers")


def _geometry(layer: nn.Conv2d) -> dict[str, tuple[int, int]]:
    """``stride``, ``padding``, ``dilation`` as int pairs (string padding is refused)."""
    return {"stride": cast(tuple[int, int], layer.stride),
            "padding": cast(tuple[int, int], layer.padding),
            "dilation": cast(tuple[int, int], layer.dilation)}


def _check_scale(scale: Any) -> float:
    if isinstance(scale, bool) or not isinstance(scale, int | float) or scale <= 0 \
            or not math.isfinite(scale):
        raise InvalidInputError("scale", f"= {scale!r} must be a finite number > 0")
    return float(scale)


# ---------------------------------------------------------------------------------- Euclid
class EuclidLinear(HomotopyLayer, nn.Linear):
    """``y = (1 - theta) x.w + theta (-s ||x - w||^2) + b`` per output (module docstring).

    Args:
        in_features: as :class:`torch.nn.Linear`.
        out_features: as :class:`torch.nn.Linear`.
        bias: as :class:`torch.nn.Linear`.
        scale: ``s`` (default 0.5 [U]; 1.0 gives ``-||x - w||^2``).
        theta: initial homotopy parameter (default 1: pure Euclid).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 scale: float = 0.5, theta: float = 1.0, **kwargs: Any) -> None:
        super().__init__(in_features, out_features, bias, **kwargs)
        self.scale = _check_scale(scale)
        self._init_theta(theta)

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        dot = functional.linear(x, w)
        distance = None
        if float(self.theta) > 0:
            x2 = (x * x).sum(-1, keepdim=True)
            w2 = (w * w).sum(1)
            distance = -self.scale * ((x2 + w2) - 2.0 * dot)
        return self._add_bias(self._blend(dot, distance))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale}, theta={float(self.theta):.4g}"


class EuclidConv2d(HomotopyLayer, nn.Conv2d):
    """``y[n,o,l] = (1 - theta) conv + theta (-s sum_{c,i,j} (x_patch - w_o)^2) + b_o``
    (module docstring); arguments as :class:`torch.nn.Conv2d` (``groups=1``, zero padding)
    plus ``scale`` and ``theta`` as :class:`EuclidLinear`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 *args: Any, scale: float = 0.5, theta: float = 1.0, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size, *args, **kwargs)
        _check_conv(self)
        self.scale = _check_scale(scale)
        self._init_theta(theta)

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        g = _geometry(self)
        dot = functional.conv2d(x, w, None, g["stride"], g["padding"], g["dilation"])
        distance = None
        if float(self.theta) > 0:
            ones = torch.ones((1, *w.shape[1:]), dtype=x.dtype, device=x.device)
            x2 = functional.conv2d(x * x, ones, None, g["stride"], g["padding"], g["dilation"])
            w2 = (w * w).sum((1, 2, 3)).view(1, -1, 1, 1)
            distance = -self.scale * ((x2 + w2) - 2.0 * dot)
        return self._add_bias(self._blend(dot, distance))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale}, theta={float(self.theta):.4g}"


# ---------------------------------------------------------------------------------- AdderNet
class _L1Distance(torch.autograd.Function):
    """``-||x_m - w_n||_1`` for rows ``x`` (M, K), ``w`` (N, K), with AdderNet's backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, grad: str, eta: float | None) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.grad, ctx.eta = grad, eta
        return -torch.cdist(x.unsqueeze(0), w.unsqueeze(0), p=1.0).squeeze(0)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        x, w = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if x.device.type == "cpu" and x.dtype == w.dtype == g.dtype == torch.float32:
            gx, gw = _l1_grads_numba(g, x, w, ctx.grad, need_x, need_w)
        else:
            gx, gw = _l1_grads_torch(g, x, w, ctx.grad, need_x, need_w)
        if gw is not None and ctx.eta is not None:
            norm = torch.linalg.vector_norm(gw)
            if norm > 0:
                gw = gw * (ctx.eta * math.sqrt(gw.numel()) / norm)
        return gx, gw, None, None


def _l1_grads_numba(g: Tensor, x: Tensor, w: Tensor, grad: str, need_x: bool, need_w: bool
                    ) -> tuple[Tensor | None, Tensor | None]:
    """CPU float32: the kernels of :mod:`proxcompress.training.adder_grad`."""
    from proxcompress.training import adder_grad

    gn, xn, wn = (t.detach().contiguous().numpy() for t in (g, x, w))
    if grad == "addernet":
        gx = torch.from_numpy(adder_grad.input_grad_clipped(gn, xn, wn)) if need_x else None
        gw = g.t() @ x - g.sum(0).unsqueeze(1) * w if need_w else None
        return gx, gw
    ax, aw = adder_grad.sign_grads(gn, xn, wn, need_x, need_w)
    return (None if ax is None else torch.from_numpy(ax),
            None if aw is None else torch.from_numpy(aw))


def _l1_grads_torch(g: Tensor, x: Tensor, w: Tensor, grad: str, need_x: bool, need_w: bool
                    ) -> tuple[Tensor | None, Tensor | None]:
    """Any device and dtype: row blocks of broadcast temporaries (at most ``_BLOCK``)."""
    m, k = x.shape
    n = w.shape[0]
    rows = max(1, _BLOCK // max(1, n * k))
    gx = torch.empty_like(x) if need_x else None
    gw = None
    if grad == "addernet":
        if need_w:
            gw = g.t() @ x - g.sum(0).unsqueeze(1) * w  # sum_m g_mn (x_m - w_n)
        if gx is not None:
            for i in range(0, m, rows):
                d = (w.unsqueeze(0) - x[i:i + rows].unsqueeze(1)).clamp_(-1.0, 1.0)
                gx[i:i + rows] = torch.einsum("mn,mnk->mk", g[i:i + rows], d)
    else:
        gw = torch.zeros_like(w) if need_w else None
        for i in range(0, m, rows):
            s = torch.sign(x[i:i + rows].unsqueeze(1) - w.unsqueeze(0))  # d/dw of -|x - w|
            if gw is not None:
                gw += torch.einsum("mn,mnk->nk", g[i:i + rows], s)
            if gx is not None:
                gx[i:i + rows] = -torch.einsum("mn,mnk->mk", g[i:i + rows], s)
    return gx, gw


def _check_adder(grad: Any, eta: Any) -> tuple[AdderGrad, float | None]:
    if grad not in ("addernet", "exact"):
        raise InvalidInputError("grad", f"= {grad!r}; accepted: 'addernet', 'exact'")
    if eta is not None and (isinstance(eta, bool) or not isinstance(eta, int | float)
                            or not math.isfinite(eta) or eta <= 0):
        raise InvalidInputError("eta", f"= {eta!r} must be a number > 0 or None")
    return grad, None if eta is None else float(eta)


class AdderLinear(HomotopyLayer, nn.Linear):
    """``y = (1 - theta) x.w + theta (-||x - w||_1) + b`` per output, AdderNet's gradients.

    Args:
        in_features: as :class:`torch.nn.Linear`.
        out_features: as :class:`torch.nn.Linear`.
        bias: as :class:`torch.nn.Linear`.
        grad: ``"addernet"`` (default: full-precision ``x - w`` and clipped ``HT(w - x)``) or
            ``"exact"`` (the signs) [U].
        eta: adaptive learning-rate coefficient (default 0.1; ``None``: off) [U].
        theta: initial homotopy parameter (default 1: pure L1).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 grad: AdderGrad = "addernet", eta: float | None = ADDER_ETA,
                 theta: float = 1.0, **kwargs: Any) -> None:
        super().__init__(in_features, out_features, bias, **kwargs)
        self.grad, self.eta = _check_adder(grad, eta)
        self._init_theta(theta)

    def forward(self, x: Tensor) -> Tensor:
        t = float(self.theta)
        lead = x.shape[:-1]
        rows = x.reshape(-1, x.shape[-1])
        dot = functional.linear(rows, self.weight) if t < 1 else None
        dist = _L1Distance.apply(rows, self.weight, self.grad, self.eta) if t > 0 else None
        y = self._blend(dot, dist)
        return self._add_bias(y.reshape(*lead, -1))

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, grad={self.grad}, eta={self.eta}, "
                f"theta={float(self.theta):.4g}")


class AdderConv2d(HomotopyLayer, nn.Conv2d):
    """AdderNet conv: ``y[n,o,l] = -sum_{c,i,j} |x_patch - w_o|`` (blended by ``theta``),
    computed on the unfolded patches; arguments as :class:`torch.nn.Conv2d` (``groups=1``,
    zero padding) plus ``grad``, ``eta``, ``theta`` as :class:`AdderLinear`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 *args: Any, grad: AdderGrad = "addernet", eta: float | None = ADDER_ETA,
                 theta: float = 1.0, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size, *args, **kwargs)
        _check_conv(self)
        self.grad, self.eta = _check_adder(grad, eta)
        self._init_theta(theta)

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w_in = x.shape
        kh, kw = self.kernel_size
        g = _geometry(self)
        (sh, sw), (ph, pw), (dh, dw) = g["stride"], g["padding"], g["dilation"]
        ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        wo = (w_in + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        cols = functional.unfold(x, (kh, kw), **g)  # (N, C kh kw, L)
        rows = cols.transpose(1, 2).reshape(n * ho * wo, -1)
        w = self.weight.reshape(self.out_channels, -1)
        t = float(self.theta)
        dot = rows @ w.t() if t < 1 else None
        dist = _L1Distance.apply(rows, w, self.grad, self.eta) if t > 0 else None
        y = self._blend(dot, dist).reshape(n, ho * wo, -1).transpose(1, 2)
        return self._add_bias(y.reshape(n, -1, ho, wo))

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, grad={self.grad}, eta={self.eta}, "
                f"theta={float(self.theta):.4g}")


__all__ = [
    "ADDER_ETA",
    "AdderConv2d",
    "AdderGrad",
    "AdderLinear",
    "EuclidConv2d",
    "EuclidLinear",
    "HomotopyLayer",
    "HomotopySchedule",
    "ScheduleKind",
    "homotopy_layers",
    "set_theta",
]
