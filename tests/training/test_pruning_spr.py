"""SPR regularizer = formulations.spr closed form; physical pruning = masking; threshold search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from proxcompress.errors import InvalidInputError
from proxcompress.formulations.spr import spr_value, spr_value_groups
from proxcompress.training.layers import BinaryConv2d, BinaryLinear
from proxcompress.training.models import build_model
from proxcompress.training.pruning import (
    group_tensors,
    mask_channels,
    prune_channels,
    total_channels,
    unit_by_name,
)
from proxcompress.training.quantize import QuantRecipe, quantize_model
from proxcompress.training.spr import SPRRegularizer, compute_M, spr_z, threshold_search


# ------------------------------------------------------------------------ SPR = formulations
@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=12),
                    min_size=1, max_size=8),
    alpha=st.floats(0.01, 0.99),
    m_factor=st.floats(1.0, 5.0),
)
def test_spr_z_equals_the_closed_form_of_formulations(groups, alpha, m_factor) -> None:  # type: ignore[no-untyped-def]
    arrays = [np.asarray(g) for g in groups]
    M = m_factor * max(max(float(np.abs(a).max()) for a in arrays), 1e-3)
    ref = spr_value_groups(arrays, alpha, M).z
    r = torch.tensor([float(np.linalg.norm(a)) for a in arrays], dtype=torch.float64)
    t = torch.tensor([float(np.abs(a).max()) for a in arrays], dtype=torch.float64)
    got = spr_z(r, t, alpha, M).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


def test_all_three_cases_are_covered() -> None:
    alpha, M = 0.2, 1.0
    r = torch.tensor([3.0, 0.1, 0.3, 0.0], dtype=torch.float64)  # case 1, 2, 3, zero
    t = torch.tensor([1.0, 0.02, 0.29, 0.0], dtype=torch.float64)
    from proxcompress.formulations.spr import spr_case

    assert spr_case(r.numpy(), t.numpy(), alpha, M).tolist() == [1, 2, 3, 2]
    np.testing.assert_allclose(spr_z(r, t, alpha, M).numpy(),
                               spr_value(r.numpy(), t.numpy(), alpha, M).z, rtol=1e-13)


def test_regularizer_value_and_finite_gradient_at_zero_groups() -> None:
    model = build_model("vgg", width=4, stages=(1, 1), seed=0)
    units = model.units()
    mask_channels(model, units[0], [True, False, True, True])  # an exactly-zero group
    M = compute_M(model, units, "blockwise", 1.5)
    reg = SPRRegularizer(units, M, lam=0.7, alpha=0.3)
    value = reg(model)
    # the same number from formulations.spr, group by group
    total, count = 0.0, 0
    for u in units:
        parts = [p.detach().double().numpy() for p in group_tensors(model, u)]
        rows = np.concatenate(parts, axis=1)
        z = spr_value_groups(list(rows), 0.3, M[u.name]).z
        total += float(z.sum()) * rows.shape[1]
        count += rows.size
    assert float(value.detach()) == pytest.approx(0.7 * total / count, rel=1e-6)
    value.backward()
    for p in model.parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all()


def test_compute_M_rules() -> None:
    model = build_model("mlp", hidden=(5,), seed=0)
    (unit,) = model.units()
    with torch.no_grad():
        model.bn0.weight.fill_(9.0)
    assert compute_M(model, [unit], "blockwise")[unit.name] == pytest.approx(9.0)
    w = float(model.fc0.weight.detach().abs().max())
    assert compute_M(model, [unit], "layerwise", 2.0)[unit.name] == pytest.approx(2 * w)
    with pytest.raises(InvalidInputError, match="M_rule"):
        compute_M(model, [unit], "global")  # type: ignore[arg-type]


# ------------------------------------------------------------------- physical = masked model
def _randomize_bn(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))


@pytest.mark.parametrize("name,kwargs,shape", [
    ("mlp", {"hidden": (12, 9)}, (1, 28, 28)),
    ("mlp", {"hidden": (12, 9), "batchnorm": False, "activation": "hardtanh"}, (1, 28, 28)),
    ("vgg", {"width": 6, "stages": (1, 2)}, (1, 28, 28)),
    ("vgg", {"width": 4, "stages": (1, 1)}, (3, 32, 32)),
    ("resnet20", {"width": 4, "blocks": 1}, (1, 28, 28)),
    ("resnet20", {"width": 4, "blocks": 3}, (3, 32, 32)),
])
def test_pruned_model_equals_masked_model(name: str, kwargs: dict, shape: tuple) -> None:
    model = build_model(name, in_channels=shape[0], image_size=shape[1], seed=1, **kwargs)
    _randomize_bn(model, 2)
    g = torch.Generator().manual_seed(3)
    keeps = {}
    for u in model.units():
        n = total = int(model.get_submodule(u.producer).weight.shape[0])
        keep = torch.rand(n, generator=g) < 0.5
        keep[int(torch.randint(0, total, (1,), generator=g))] = True
        keeps[u.name] = keep
    masked = build_model(name, in_channels=shape[0], image_size=shape[1], seed=1, **kwargs)
    masked.load_state_dict(model.state_dict())
    for u in masked.units():
        mask_channels(masked, u, keeps[u.name])
    before = total_channels(model)
    for u in model.units():
        prune_channels(model, u, torch.nonzero(keeps[u.name]).flatten().tolist())
    assert total_channels(model) == sum(int(k.sum()) for k in keeps.values()) < before
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in masked.parameters())
    x = torch.randn((7, *shape), generator=g)
    model.eval()
    masked.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), masked(x), rtol=1e-5, atol=1e-5)


def test_pruning_binary_layers_and_training_afterwards() -> None:
    model = build_model("vgg", width=4, stages=(1, 1, 1), seed=0)
    quantize_model(model, QuantRecipe("bnn++", activations="bnn"))
    assert isinstance(model.conv1_0, BinaryConv2d)
    masked = build_model("vgg", width=4, stages=(1, 1, 1), seed=0)
    quantize_model(masked, QuantRecipe("bnn++", activations="bnn"))
    masked.load_state_dict(model.state_dict())
    unit = unit_by_name(model, "conv1_0")
    keep = [True, False, True, True, False, True, True, True]
    mask_channels(masked, unit, keep)
    prune_channels(model, unit, [i for i, k in enumerate(keep) if k])
    x = torch.randn(3, 1, 28, 28)
    model.eval()
    masked.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), masked(x), rtol=1e-5, atol=1e-5)
    model.train()
    model(x).sum().backward()  # the smaller model still trains
    assert model.conv1_0.weight.grad.shape[0] == 6


def test_prune_errors() -> None:
    model = build_model("mlp", hidden=(4,), seed=0)
    unit = model.units()[0]
    with pytest.raises(InvalidInputError, match="keep"):
        prune_channels(model, unit, [])
    with pytest.raises(InvalidInputError, match="keep"):
        prune_channels(model, unit, [4])
    with pytest.raises(InvalidInputError, match="unit"):
        unit_by_name(model, "nope")


def test_mlp_binary_linear_pruning() -> None:
    model = build_model("mlp", hidden=(8, 8, 8), seed=0)
    quantize_model(model, QuantRecipe("proxconnect"))
    assert isinstance(model.fc1, BinaryLinear)
    unit = unit_by_name(model, "fc1")
    prune_channels(model, unit, [0, 3, 5])
    assert model.fc1.weight.shape == (3, 8) and model.fc2.weight.shape == (8, 3)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


# ------------------------------------------------------------------------- threshold search
def test_threshold_search_prunes_dead_channels_only() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", hidden=(16,), seed=0)
    unit = model.units()[0]
    dead = [1, 4, 7, 8, 12]
    with torch.no_grad():
        for j in dead:  # tiny groups: what SPR training leaves behind
            for p in group_tensors(model, unit):
                p[j] *= 1e-4
    x = torch.randn(256, 1, 28, 28)
    model.eval()
    with torch.no_grad():
        labels = model(x).argmax(1)

    def accuracy(m: torch.nn.Module) -> float:
        with torch.no_grad():
            return 100.0 * float((m(x).argmax(1) == labels).float().mean())

    result = threshold_search(model, [unit], accuracy, tolerance=0.5)
    kept = [i for i, k in enumerate(result.keep[unit.name]) if k]
    assert set(range(16)) - set(kept) == set(dead)
    assert result.base_accuracy - result.accuracy <= 0.5
