"""Euclid and L1 (AdderNet) layers, the homotopy from multiplication."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as functional
from torch import nn

from proxcompress.errors import InvalidInputError
from proxcompress.training.euclid import (
    AdderConv2d,
    AdderLinear,
    EuclidConv2d,
    EuclidLinear,
    HomotopySchedule,
    _L1Distance,
    homotopy_layers,
    set_theta,
)

CONV_GEOMETRIES = [
    {"stride": 1, "padding": 0, "dilation": 1},
    {"stride": 2, "padding": 1, "dilation": 1},
    {"stride": (1, 2), "padding": (2, 1), "dilation": (2, 1)},
]


def _patches(x: torch.Tensor, layer: nn.Conv2d) -> tuple[torch.Tensor, int, int]:
    cols = functional.unfold(x, layer.kernel_size, dilation=layer.dilation,
                             padding=layer.padding, stride=layer.stride)
    n, _, h, w = x.shape
    kh, kw = layer.kernel_size
    ho = (h + 2 * layer.padding[0] - layer.dilation[0] * (kh - 1) - 1) // layer.stride[0] + 1
    wo = (w + 2 * layer.padding[1] - layer.dilation[1] * (kw - 1) - 1) // layer.stride[1] + 1
    return cols.transpose(1, 2), ho, wo  # (N, L, K)


# ---------------------------------------------------------------------------------- Euclid
@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_euclid_linear_equals_expanded_form(scale: float) -> None:
    torch.manual_seed(0)
    layer = EuclidLinear(13, 5, scale=scale).double()
    x = torch.randn(7, 13, dtype=torch.float64)
    w, b = layer.weight, layer.bias
    expanded = (x * x).sum(1, keepdim=True) - 2 * x @ w.t() + (w * w).sum(1)
    direct = ((x[:, None, :] - w[None]) ** 2).sum(-1)
    y = layer(x)
    assert torch.allclose(expanded, direct)
    assert torch.allclose(y, -scale * expanded + b, atol=1e-12)  # equal up to sign (and s)


@pytest.mark.parametrize("geometry", CONV_GEOMETRIES)
def test_euclid_conv_equals_unfolded_distances(geometry: dict[str, Any]) -> None:
    torch.manual_seed(1)
    layer = EuclidConv2d(3, 4, (3, 2), scale=1.0, **geometry).double()
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    cols, ho, wo = _patches(x, layer)
    w = layer.weight.reshape(4, -1)
    ref = -((cols[:, :, None, :] - w[None, None]) ** 2).sum(-1)  # (N, L, O)
    ref = ref.transpose(1, 2).reshape(2, 4, ho, wo) + layer.bias.view(1, -1, 1, 1)
    assert torch.allclose(layer(x), ref, atol=1e-10)


def test_euclid_homotopy_blends_product_and_distance() -> None:
    torch.manual_seed(2)
    lin = EuclidLinear(6, 3, theta=0.0).double()
    x = torch.randn(4, 6, dtype=torch.float64)
    plain = functional.linear(x, lin.weight, lin.bias)
    assert torch.allclose(lin(x), plain)
    set_theta(lin, 1.0)
    pure = lin(x)
    set_theta(lin, 0.3)
    assert torch.allclose(lin(x), 0.7 * plain + 0.3 * pure + 0.0 * lin.bias)
    # s = 1/2: y_theta = x.w - theta (|x|^2 + |w|^2) / 2 (methods.md's form)
    w = lin.weight
    form = x @ w.t() - 0.3 * 0.5 * ((x * x).sum(1, keepdim=True) + (w * w).sum(1)) + lin.bias
    assert torch.allclose(lin(x), form)
    conv = EuclidConv2d(2, 3, 3, padding=1, theta=0.0).double()
    xc = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    assert torch.allclose(conv(xc), functional.conv2d(xc, conv.weight, conv.bias, padding=1))


def test_euclid_gradients_flow() -> None:
    for layer, x in ((EuclidLinear(5, 3, theta=0.5), torch.randn(4, 5, requires_grad=True)),
                     (EuclidConv2d(2, 3, 3, padding=1), torch.randn(2, 2, 6, 6,
                                                                   requires_grad=True))):
        layer(x).square().sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        for p in layer.parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------- AdderNet
@pytest.mark.parametrize("geometry", CONV_GEOMETRIES)
def test_adder_conv_equals_unfolded_l1(geometry: dict[str, Any]) -> None:
    torch.manual_seed(3)
    layer = AdderConv2d(3, 4, (2, 3), **geometry).double()
    x = torch.randn(2, 3, 8, 9, dtype=torch.float64)
    cols, ho, wo = _patches(x, layer)
    w = layer.weight.reshape(4, -1)
    ref = -(cols[:, :, None, :] - w[None, None]).abs().sum(-1)
    ref = ref.transpose(1, 2).reshape(2, 4, ho, wo) + layer.bias.view(1, -1, 1, 1)
    assert torch.allclose(layer(x), ref, atol=1e-10)


def test_adder_linear_surrogate_gradients() -> None:
    """AdderNet: dA/dw := x - w (full precision), dA/dx := clip(w - x, -1, 1); eta rescales the
    weight gradient to eta sqrt(k) g / |g|."""
    torch.manual_seed(4)
    layer = AdderLinear(5, 3, bias=False, eta=None).double()
    x = (2 * torch.randn(4, 5, dtype=torch.float64)).requires_grad_()
    g = torch.randn(4, 3, dtype=torch.float64)
    (layer(x) * g).sum().backward()
    w = layer.weight.detach()
    diff = x.detach()[:, None, :] - w[None]  # (M, N, K)
    gw = torch.einsum("mn,mnk->nk", g, diff)
    gx = torch.einsum("mn,mnk->mk", g, (-diff).clamp(-1, 1))
    assert torch.allclose(layer.weight.grad, gw)
    assert torch.allclose(x.grad, gx)
    scaled = AdderLinear(5, 3, bias=False, eta=0.1).double()
    with torch.no_grad():
        scaled.weight.copy_(w)
    (scaled(x.detach()) * g).sum().backward()
    assert torch.allclose(scaled.weight.grad, 0.1 * math.sqrt(15) * gw / gw.norm())


def test_adder_exact_gradients_are_autograd_of_l1() -> None:
    torch.manual_seed(5)
    layer = AdderConv2d(2, 3, 3, padding=1, grad="exact", eta=None).double()
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    (layer(x) ** 2).sum().backward()
    w = layer.weight.detach().clone().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    cols, ho, wo = _patches(x2, layer)
    ref = -(cols[:, :, None, :] - w.reshape(3, -1)[None, None]).abs().sum(-1)
    ref = ref.transpose(1, 2).reshape(2, 3, ho, wo) + layer.bias.detach().view(1, -1, 1, 1)
    (ref**2).sum().backward()
    assert torch.allclose(layer.weight.grad, w.grad)
    assert torch.allclose(x.grad, x2.grad)


@pytest.mark.parametrize("grad", ["addernet", "exact"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 3, 5), (129, 7, 65), (300, 33, 144)])
def test_adder_float32_cpu_kernels_equal_the_broadcast_twin(grad: str,
                                                            shape: tuple[int, int, int]) -> None:
    """The Numba backward (CPU float32) against the float64 broadcast formulas, ties
    ``x == w`` included (``sign(0) = 0``)."""
    m, n, k = shape
    gen = torch.Generator().manual_seed(m * 1000 + n)
    x = torch.randn(m, k, generator=gen) * 1.5
    w = torch.randn(n, k, generator=gen)
    x[0, : k // 2] = w[0, : k // 2]  # exact ties
    g = torch.randn(m, n, generator=gen)
    xr = x.clone().requires_grad_()
    wr = w.clone().requires_grad_()
    (_L1Distance.apply(xr, wr, grad, None) * g).sum().backward()
    diff = x.double()[:, None, :] - w.double()[None]
    if grad == "addernet":
        gw = torch.einsum("mn,mnk->nk", g.double(), diff)
        gx = torch.einsum("mn,mnk->mk", g.double(), (-diff).clamp(-1, 1))
    else:
        gw = torch.einsum("mn,mnk->nk", g.double(), torch.sign(diff))
        gx = -torch.einsum("mn,mnk->mk", g.double(), torch.sign(diff))
    assert xr.grad is not None and wr.grad is not None
    assert xr.grad.dtype == torch.float32
    assert torch.allclose(xr.grad.double(), gx, rtol=1e-4, atol=1e-4)
    assert torch.allclose(wr.grad.double(), gw, rtol=1e-4, atol=1e-3)


def test_adder_homotopy_and_batched_inputs() -> None:
    torch.manual_seed(6)
    layer = AdderLinear(4, 2, theta=0.0).double()
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    assert torch.allclose(layer(x), functional.linear(x, layer.weight, layer.bias))
    set_theta(layer, 0.25)
    l1 = -(x[..., None, :] - layer.weight).abs().sum(-1)
    assert torch.allclose(layer(x), 0.75 * (x @ layer.weight.t()) + 0.25 * l1 + layer.bias)


# ------------------------------------------------------------------------------ schedules
def test_homotopy_schedule_values() -> None:
    lin = HomotopySchedule()
    assert [lin.value(s, 100) for s in (0, 25, 50, 80)] == [0.0, 0.5, 1.0, 1.0]
    cos = HomotopySchedule("cosine", start=0.2, ramp=1.0)
    assert math.isclose(cos.value(50, 100), 0.2 + 0.8 * 0.5)
    assert HomotopySchedule("step").value(0, 10) == 1.0
    assert HomotopySchedule("constant", start=0.3).value(99, 10) == 0.3


def test_set_theta_and_layers() -> None:
    model = nn.Sequential(EuclidLinear(3, 3), nn.ReLU(), AdderLinear(3, 2), nn.Linear(2, 2))
    set_theta(model, 0.5)
    assert [float(m.theta) for _, m in homotopy_layers(model)] == [0.5, 0.5]


@pytest.mark.parametrize(("factory", "field"), [
    (lambda: HomotopySchedule("exp"), "kind"),  # the argument, refused by its annotation
    (lambda: HomotopySchedule(start=1.5), "homotopy.start"),
    (lambda: HomotopySchedule(ramp=0.0), "homotopy.ramp"),
    (lambda: EuclidLinear(2, 2, theta=2.0), "theta"),
    (lambda: EuclidLinear(2, 2, scale=0.0), "scale"),
    (lambda: EuclidConv2d(4, 4, 3, groups=2), "groups"),
    (lambda: AdderConv2d(2, 2, 3, padding_mode="reflect"), "padding_mode"),
    (lambda: AdderLinear(2, 2, grad="sign"), "grad"),
    (lambda: AdderLinear(2, 2, eta=-1.0), "eta"),
    (lambda: set_theta(nn.Sequential(EuclidLinear(2, 2)), -0.1), "theta"),
])
def test_bad_input_names_the_field(factory: Any, field: str) -> None:
    import proxcompress.training as public

    for name in ("HomotopySchedule", "EuclidLinear", "EuclidConv2d", "AdderConv2d",
                 "AdderLinear", "set_theta"):
        getattr(public, name)  # public classes are argument-checked (patched once, in place)
    with pytest.raises(InvalidInputError) as info:
        factory()
    assert info.value.field == field
