"""Shift layers (DeepShift-Q, DenseShift, S3), the freezing metric and the mulfree recipes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from proxcompress.errors import InvalidInputError
from proxcompress.training.euclid import EuclidConv2d, HomotopySchedule
from proxcompress.training.models import build_model
from proxcompress.training.mulfree import (
    METHODS,
    MulFreeRecipe,
    MulFreeTraining,
    deployed_storage,
    mulfree_layers,
    mulfree_model,
)
from proxcompress.training.shift import (
    DenseShiftConv2d,
    DenseShiftLinear,
    FreezingTracker,
    S3Conv2d,
    S3Linear,
    ShiftConv2d,
    ShiftFormat,
    ShiftLinear,
    codes_to_weight,
    power_of_two_codes,
    s3_regularizer,
)

LAYERS: list[tuple[type[nn.Module], dict[str, Any]]] = [
    (ShiftLinear, {"bits": 2}),
    (ShiftLinear, {"bits": 3}),
    (ShiftLinear, {"bits": 4}),
    (ShiftLinear, {"bits": 3, "zero": False}),
    (ShiftLinear, {"bits": 5, "rounding": "linear"}),
    (DenseShiftLinear, {"bits": 2}),
    (DenseShiftLinear, {"bits": 3}),
    (DenseShiftLinear, {"bits": 4, "surrogate": "pow2"}),
    (S3Linear, {"bits": 3}),
    (S3Linear, {"bits": 4}),
    (S3Linear, {"bits": 3, "init": "dense"}),
]
CONVS = [(ShiftConv2d, {"bits": 3}), (DenseShiftConv2d, {"bits": 3}), (S3Conv2d, {"bits": 3}),
         (S3Conv2d, {"bits": 4})]


def _spread(layer: nn.Module, scale: float = 1.0) -> None:
    """Latents drawn wide enough to reach every code."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))


# ------------------------------------------------------------------------------ the rounding
def test_power_of_two_rounding_log_and_linear() -> None:
    fmt = ShiftFormat(True, -2, 1)  # {0, +-1/4, +-1/2, +-1, +-2}
    w = torch.tensor([0.0, 0.1, 0.18, 0.2, 0.3, 0.36, 1.4, 1.42, 1.6, 5.0, -0.7, -3.0])
    sign, e = power_of_two_codes(w, fmt, "log")
    got = codes_to_weight(sign, e).tolist()
    # log rounding: 2^k up when m >= sqrt 2; zero below 2^(emin - 1/2) = 0.1768
    assert got == [0, 0, 0.25, 0.25, 0.25, 0.5, 1, 2, 2, 2, -0.5, -2]
    sign, e = power_of_two_codes(w, fmt, "linear")
    got = codes_to_weight(sign, e).tolist()
    # linear: up when m >= 1.5; zero below 2^(emin - 1) = 0.125
    assert got == [0, 0, 0.25, 0.25, 0.25, 0.25, 1, 1, 2, 2, -0.5, -2]
    assert sign.dtype == torch.int8 and e.dtype == torch.int8
    zero_free = ShiftFormat(False, -2, 1)
    sign, e = power_of_two_codes(torch.tensor([0.0, 1e-9, -1e-9]), zero_free)
    assert codes_to_weight(sign, e).tolist() == [0.25, 0.25, -0.25]


def test_shift_format_alphabet() -> None:
    assert ShiftFormat(True, 0, 2).alphabet() == (-4, -2, -1, 0, 1, 2, 4)
    assert ShiftFormat(False, 0, 3).alphabet() == (-8, -4, -2, -1, 1, 2, 4, 8)


# ------------------------------------------------------------ alphabet and exact codes
@pytest.mark.parametrize(("cls", "kw"), LAYERS + CONVS,
                         ids=[f"{c.__name__}-{k}" for c, k in LAYERS + CONVS])
def test_forward_weights_equal_codes_and_lie_in_alphabet(cls: type, kw: dict[str, Any]) -> None:
    layer = cls(40, 24, 3, **kw) if issubclass(cls, nn.Conv2d) else cls(200, 24, **kw)
    _spread(layer, 1.0)
    if isinstance(layer, ShiftLinear | ShiftConv2d):
        layer.calibrate_range()
    w = layer.shift_weight()
    sign, exponent = layer.weight_codes()
    assert sign.dtype == torch.int8 and exponent.dtype == torch.int8
    assert torch.equal(w, codes_to_weight(sign, exponent))  # exact
    fmt = layer.code_format()
    values = set(w.detach().flatten().tolist())
    assert values <= set(fmt.alphabet())
    if len(fmt.alphabet()) <= 15:
        assert len(values) == len(fmt.alphabet())  # wide latents reach every value
    nonzero = sign != 0
    assert bool((exponent[nonzero] >= fmt.emin).all() and (exponent[nonzero] <= fmt.emax).all())
    assert bool((exponent[~nonzero] == 0).all())


def test_paper_alphabets() -> None:
    assert S3Linear(4, 4).code_format().alphabet() == (-4, -2, -1, 0, 1, 2, 4)
    assert S3Linear(4, 4, bits=4).code_format().alphabet() == tuple(
        sorted([0.0] + [s * 2.0**e for s in (-1, 1) for e in range(7)]))
    assert DenseShiftLinear(4, 4).code_format().alphabet() == (-8, -4, -2, -1, 1, 2, 4, 8)
    f = ShiftLinear(4, 4, bits=4, emax=0).code_format()
    assert (f.zero, f.emin, f.emax) == (True, -6, 0)


# ------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize(("cls", "kw"), LAYERS + CONVS,
                         ids=[f"{c.__name__}-{k}" for c, k in LAYERS + CONVS])
def test_gradients_reach_every_latent(cls: type, kw: dict[str, Any]) -> None:
    torch.manual_seed(0)
    if issubclass(cls, nn.Conv2d):
        layer, x = cls(3, 6, 3, padding=1, **kw), torch.randn(4, 3, 7, 7)
    else:
        layer, x = cls(12, 6, **kw), torch.randn(16, 12)
    (layer(x) ** 2).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    for latent in layer.latent_parameters():
        assert latent.grad is not None and latent.grad.shape == latent.shape


def test_deepshift_gradient_is_straight_through() -> None:
    layer = ShiftLinear(5, 3, bias=False, bits=3)
    x = torch.randn(7, 5)
    layer(x).sum().backward()
    assert torch.allclose(layer.weight.grad, x.sum(0).expand(3, 5))


def _ste01(x: torch.Tensor) -> torch.Tensor:
    return x + ((x > 0).float() - x).detach()


def _ste_sign(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.where(x >= 0, 1.0, -1.0) - x).detach()


@pytest.mark.parametrize("surrogate", ["sqrt", "pow2"])
def test_denseshift_matches_reference_code(surrogate: str) -> None:
    """Value and gradients equal the official formulation
    ``W = W_bwd + stopgrad(W_fwd - W_bwd)`` (S3-Training/dsconv2d.py)."""
    layer = DenseShiftLinear(6, 4, bits=3, surrogate=surrogate, bias=False)
    _spread(layer)
    x = torch.randn(9, 6)
    upstream = torch.randn(9, 4)
    (layer(x) * upstream).sum().backward()
    ws = layer.weight.detach().clone().requires_grad_()
    wt = layer.weight_exponent.detach().clone().requires_grad_()
    s = _ste01(wt[0])
    s = (s + 1) * _ste01(wt[1])
    s = (s + 1) * _ste01(wt[2])
    sign = _ste_sign(ws)
    bwd = sign * (torch.sqrt(s + 1) if surrogate == "sqrt" else torch.pow(2.0, s))
    w = bwd + (sign.detach() * torch.pow(2.0, s.detach()) - bwd).detach()
    (functional_linear(x, w) * upstream).sum().backward()
    assert torch.allclose(layer.shift_weight(), w)
    assert torch.allclose(layer.weight.grad, ws.grad, atol=1e-6)
    assert torch.allclose(layer.weight_exponent.grad, wt.grad, atol=1e-6)


def functional_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return x @ w.t()


def test_s3_matches_reference_code() -> None:
    """Value and gradients equal ``sign * b(W_sparse) * 2^(b(s1) (b(s2) + 1))`` with STEs
    (S3-Training/s3conv2dshift.py)."""
    layer = S3Linear(6, 4, bits=3, bias=False)
    _spread(layer)
    x = torch.randn(9, 6)
    upstream = torch.randn(9, 4)
    (layer(x) * upstream).sum().backward()
    ws = layer.weight.detach().clone().requires_grad_()
    wv = layer.weight_sparse.detach().clone().requires_grad_()
    wsh = layer.weight_shift.detach().clone().requires_grad_()
    e = _ste01(wsh[0]) * (_ste01(wsh[1]) + 1)
    w = _ste_sign(ws) * _ste01(wv) * torch.pow(torch.full_like(e, 2.0), e)
    (functional_linear(x, w) * upstream).sum().backward()
    assert torch.equal(layer.shift_weight(), w)
    for mine, ref in ((layer.weight, ws), (layer.weight_sparse, wv), (layer.weight_shift, wsh)):
        assert torch.allclose(mine.grad, ref.grad, atol=1e-6)


# ---------------------------------------------------------------------------------- inits
def test_inits() -> None:
    torch.manual_seed(0)
    d = DenseShiftConv2d(64, 64, 3)
    for p in d.latent_parameters():
        assert abs(float(p.detach().std()) - 1e-3) < 1e-4
    s = S3Conv2d(64, 64, 3)
    std = math.sqrt(2.0 / (9 * 64))
    for p in s.latent_parameters():
        assert abs(float(p.detach().std()) - std) < 0.05 * std
    dense = S3Linear(50, 40, init="dense")
    assert set(dense.shift_weight().abs().flatten().tolist()) == {1.0}


def test_s3_regularizer() -> None:
    model = nn.Sequential(S3Linear(4, 3), nn.ReLU(), S3Linear(3, 2), ShiftLinear(2, 2))
    expected = sum(float(torch.relu(-m.weight_sparse.detach()).sum()) for m in model
                   if isinstance(m, S3Linear))
    r = s3_regularizer(model, 1e-5)
    assert math.isclose(float(r.detach()), 1e-5 * expected, rel_tol=1e-6)
    r.backward()
    g = model[0].weight_sparse.grad
    assert torch.equal(g, torch.where(model[0].weight_sparse < 0, -1e-5, 0.0))
    assert float(s3_regularizer(nn.Linear(2, 2))) == 0.0


# ------------------------------------------------------------------------------ freezing
def test_freezing_tracker_shares() -> None:
    layer = DenseShiftLinear(10, 10)
    model = nn.Sequential(layer)
    tracker = FreezingTracker()
    assert tracker.update(model) is None
    assert tracker.update(model) == {"frozen": 1.0, "sign_frozen": 1.0, "exponent_frozen": 1.0}
    before = FreezingTracker.snapshot(model)["0"][1]
    with torch.no_grad():
        layer.weight[0].neg_()  # 10 signs flip
        layer.weight_exponent[:, 1, :5] = 1.0  # exponents of row 1 -> 3
        layer.weight_exponent[:, 1, 5:] = -1.0  # -> 0
    changed_exp = int((before[1] != torch.tensor([3] * 5 + [0] * 5, dtype=torch.int8)).sum())
    assert changed_exp > 0
    out = tracker.update(model)
    assert out is not None
    assert out["sign_frozen"] == 0.9
    assert math.isclose(out["exponent_frozen"], 1 - changed_exp / 100)
    assert math.isclose(out["frozen"], 1 - (10 + changed_exp) / 100)
    w2 = FreezingTracker(window=2)
    w2.update(model)
    w2.update(model)
    assert w2.update(model) == {"frozen": 1.0, "sign_frozen": 1.0, "exponent_frozen": 1.0}
    with pytest.raises(InvalidInputError, match="window"):
        FreezingTracker(0)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(("factory", "field"), [
    (lambda: ShiftLinear(2, 2, bits=1), "bits"),
    (lambda: ShiftLinear(2, 2, bits=9), "bits"),
    (lambda: ShiftLinear(2, 2, rounding="nearest"), "rounding"),
    (lambda: ShiftLinear(2, 2, emax=1.5), "emax"),
    (lambda: DenseShiftLinear(2, 2, bits=5), "bits"),
    (lambda: DenseShiftLinear(2, 2, surrogate="exp"), "surrogate"),
    (lambda: DenseShiftLinear(2, 2, init_std=0.0), "init_std"),
    (lambda: S3Linear(2, 2, bits=2), "bits"),
    (lambda: S3Conv2d(2, 2, 3, init="xavier"), "init"),
    (lambda: MulFreeRecipe("binary"), "method"),
    (lambda: MulFreeRecipe("s3", bits=5), "bits"),
    (lambda: MulFreeRecipe("euclid", bits=3), "bits"),
    (lambda: MulFreeRecipe("s3", reg_weight=-1.0), "reg_weight"),
])
def test_bad_input_names_the_field(factory: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        factory()
    assert info.value.field == field


# --------------------------------------------------------------------------- the recipes
@pytest.mark.parametrize("method", METHODS)
def test_mulfree_model_swaps_all_but_first_and_last(method: str) -> None:
    model = build_model("vgg", width=4, stages=(1, 1, 1), seed=0)
    first = model.conv0_0.weight.detach().clone()
    mulfree_model(model, MulFreeRecipe(method), seed=3)
    names = [n for n, _ in mulfree_layers(model)]
    assert names == ["conv1_0", "conv2_0"]
    assert type(model.conv0_0) is nn.Conv2d and type(model.head) is nn.Linear
    assert torch.equal(model.conv0_0.weight, first)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    storage = deployed_storage(model)
    n = model.conv1_0.weight.numel() + model.conv2_0.weight.numel()
    assert storage.weights == n
    bits = MulFreeRecipe(method).resolved_bits or 32
    assert storage.bits == n * bits


def test_mulfree_model_copies_float_weights_and_is_seeded() -> None:
    base = build_model("mlp", hidden=(16, 16), seed=0)
    w = base.fc1.weight.detach().clone()
    m1 = mulfree_model(build_model("mlp", hidden=(16, 16), seed=0), MulFreeRecipe("euclid"))
    assert torch.equal(m1.fc1.weight, w)
    a = mulfree_model(build_model("mlp", hidden=(16, 16), seed=0), MulFreeRecipe("s3"), seed=4)
    b = mulfree_model(build_model("mlp", hidden=(16, 16), seed=0), MulFreeRecipe("s3"), seed=4)
    assert torch.equal(a.fc1.weight_shift, b.fc1.weight_shift)
    keep = mulfree_model(build_model("mlp", hidden=(16, 16), seed=0),
                         MulFreeRecipe("deepshift", keep_first=False, skip=("fc1",)))
    assert [n for n, _ in mulfree_layers(keep)] == ["fc0"]
    with pytest.raises(InvalidInputError, match="skip"):
        mulfree_model(build_model("mlp", seed=0), MulFreeRecipe("s3", skip=("nope",)))


def test_mulfree_training_hooks() -> None:
    model = build_model("vgg", width=4, stages=(1, 1, 1), seed=0)
    recipe = MulFreeRecipe("euclid", homotopy=HomotopySchedule("linear", 0.0, 0.5))
    mulfree_model(model, recipe)
    hooks = MulFreeTraining(model, recipe, total_steps=10)
    assert isinstance(model.conv1_0, EuclidConv2d) and float(model.conv1_0.theta) == 0.0
    assert hooks.regularizer() is None
    hooks.after_step(2)
    assert math.isclose(float(model.conv2_0.theta), 0.4, rel_tol=1e-6)
    hooks.after_step(7)
    assert hooks.epoch_metrics() == {"theta": 1.0}
    s3 = mulfree_model(build_model("vgg", width=4, stages=(1, 1, 1), seed=0), MulFreeRecipe("s3"))
    hooks = MulFreeTraining(s3, MulFreeRecipe("s3"), 10)
    reg = hooks.regularizer()
    assert reg is not None and float(reg.detach()) > 0
    assert hooks.epoch_metrics() == {"frozen": 1.0, "sign_frozen": 1.0, "exponent_frozen": 1.0}


@pytest.mark.parametrize("method", ["deepshift", "denseshift", "s3"])
def test_shift_networks_learn_a_small_task(method: str) -> None:
    """A few dozen Adam steps on an easy synthetic task: the loss drops for each method."""
    torch.manual_seed(0)
    templates = torch.randn(4, 32)
    y = torch.randint(0, 4, (256,))
    x = templates[y] + 0.5 * torch.randn(256, 32)
    model = nn.Sequential(nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 32),
                          nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4))
    recipe = MulFreeRecipe(method, bits=3)
    mulfree_model(model, recipe, seed=0)
    hooks = MulFreeTraining(model, recipe, 60)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(60):
        loss = nn.functional.cross_entropy(model(x), y)
        reg = hooks.regularizer()
        opt.zero_grad()
        (loss if reg is None else loss + reg).backward()
        opt.step()
        hooks.after_step(step + 1)
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.5 * losses[0]
    metrics = hooks.epoch_metrics()
    assert 0.0 <= metrics["frozen"] < 1.0  # codes moved during training


@pytest.mark.parametrize("method", ["deepshift", "s3", "denseshift"])
def test_init_scale_multiplies_the_latents(method: str) -> None:
    """``init_scale`` multiplies every latent weight after the init (a power of two: DeepShift's
    calibrated range moves with it, and S3's and DenseShift's codes, thresholds at 0, stay)."""
    from proxcompress.training.mulfree import MulFreeRecipe, mulfree_model

    def build(scale: float) -> torch.nn.Module:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 8, 3),
                                    torch.nn.Conv2d(8, 2, 1))
        return mulfree_model(model, MulFreeRecipe(method, bits=3, init_scale=scale), seed=1)

    base, scaled = build(1.0), build(4.0)
    layer, other = base[1], scaled[1]
    for (name, p), (_, q) in zip(layer.named_parameters(), other.named_parameters(),
                                 strict=True):
        if name.startswith("weight"):
            torch.testing.assert_close(q, 4.0 * p)
    sign, exponent = layer.weight_codes()
    sign4, exponent4 = other.weight_codes()
    assert torch.equal(sign, sign4)
    if method == "deepshift":
        assert int(other.emax) == int(layer.emax) + 2
        assert torch.equal(exponent4[sign4 != 0], exponent[sign != 0] + 2)  # x 4 = 2^2
    else:
        assert torch.equal(exponent, exponent4)
    with pytest.raises(InvalidInputError, match="init_scale"):
        MulFreeRecipe(method, init_scale=0.0)
