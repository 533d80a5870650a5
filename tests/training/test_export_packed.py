"""Exported binary models keep binary activations packed between binary layers (numba backend):
the plan finds the chains, the outputs equal the node-by-node run and torch eval, predictions
are equal, exact zeros fall back to floats, and residual (add) graphs still run correctly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from proxcompress.kernels.model import load
from proxcompress.training.exporter import export
from proxcompress.training.layers import hard_quantization
from proxcompress.training.models import build_model, calibrate_batchnorm
from proxcompress.training.quantize import QuantRecipe, quantize_model


def _model(name: str) -> nn.Module:
    if name == "mlp":
        model = build_model("mlp", hidden=(96, 80), activation="hardtanh", seed=0)
        model = quantize_model(model, QuantRecipe("bnn", "bnn", keep_first=False))
    elif name == "cnn":
        model = build_model("vgg", width=16, stages=(1, 1, 1), activation="hardtanh", seed=0)
        model = quantize_model(model, QuantRecipe("bnn", "bnn"))
    else:  # residual: ReActNet-style shortcuts around binary convs
        model = build_model("resnet20", width=16, blocks=1, activation="hardtanh", seed=0)
        model = quantize_model(model, QuantRecipe("bnn", "bnn"))
    return calibrate_batchnorm(model, (1, 28, 28), samples=128, seed=3).eval()


PLANS = {"mlp": ({"fc0"}, {"fc1"}), "cnn": ({"conv0_0", "conv1_0"}, {"conv1_0", "conv2_0"})}


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet"])
def test_packed_chains_equal_node_by_node_and_torch(name: str, tmp_path: Path) -> None:
    model = _model(name)
    x = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(7))
    export(model, tmp_path / name, example=x[:8])
    fast = load(tmp_path / name, backend="numba")
    plain = load(tmp_path / name, backend="numba", fold_batchnorm=False)
    if name in PLANS:
        producers, consumers = PLANS[name]
        assert {n for n, r in fast.packed.items() if "produce" in r} == producers
        assert {n for n, r in fast.packed.items() if "consume" in r} == consumers
    got, ref = fast(x.numpy()), plain(x.numpy())
    with torch.no_grad(), hard_quantization(model):
        want = model(x).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))
    assert (got.argmax(1) == want.argmax(1)).all()


@pytest.mark.parametrize(("bias0", "packed_out"), [(-64.0, False), (-63.5, True)])
def test_exact_zero_output_falls_back_to_float(bias0: float, packed_out: bool) -> None:
    """Row 0 of the weights is all +1 and the input all +1, so acc = 64; a bias of -64 makes
    the output exactly 0 (torch's sign gives 0, which bits cannot hold): the layer returns the
    float output instead; -63.5 keeps it packed, with the right bits."""
    from proxcompress.kernels import model as km
    from proxcompress.kernels import pack_signs, unpack_signs

    w = np.ones((3, 64), np.float32)
    w[1, ::2] = -1  # acc 0
    w[2] = -1  # acc -64
    tensors = {"w": pack_signs(w), "s": np.ones(3, np.float32),
               "b": np.array([bias0, 5.0, 1.0], np.float32)}
    raw = {"name": "b", "op": "binary_linear", "inputs": ["x"],
           "attrs": {"k": 64, "input": {"kind": "binary", "scale": 1.0}},
           "tensors": {"words": "w", "scale": "s", "bias": "b"}}
    run = km._binary_packed(km._Node(raw, tensors, 0), {"produce", "consume"})
    x = km._Packed(np.zeros((2, 1), np.uint64))  # two rows of +1
    y = run(x)
    if packed_out:
        assert isinstance(y, km._Packed)
        np.testing.assert_array_equal(unpack_signs(y.words, 3), [[1, 1, -1]] * 2)
    else:
        assert isinstance(y, np.ndarray)
        np.testing.assert_array_equal(y, [[0.0, 5.0, -63.0]] * 2)


def test_tap_row_convs_and_the_fused_conv_pool_equal_the_per_tap_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The binary CNN's last conv block (conv -> folded BatchNorm -> hardtanh -> max-pool,
    float out) is one fused group, and the model with the tap-row convs and that group gives
    the same logits, bit for bit, as the per-tap kernels with the block's steps unfused
    (``packed._TAP_ROWS = False``) and the NumPy backend's predictions."""
    from proxcompress.kernels import packed

    model = _model("cnn")
    x = torch.randn(48, 1, 28, 28, generator=torch.Generator().manual_seed(11))
    export(model, tmp_path / "cnn", example=x[:8])
    fast = load(tmp_path / "cnn", backend="numba")
    assert fast.fused == {"pool2": ("conv2_0", "act2_0", "bn2_0")}  # bn2_0: folded
    got = fast(x.numpy())
    monkeypatch.setattr(packed, "_TAP_ROWS", False)
    np.testing.assert_array_equal(got, fast(x.numpy()))
    ref = load(tmp_path / "cnn", backend="numpy")(x.numpy())
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_first_conv_pools_in_its_epilogue_as_the_unfused_chain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The binary CNN's grey 3 x 3 first conv max-pools its packed signs in its epilogue (the
    chain's pool node passes them on): the logits equal, bit for bit, those of the unfused
    chain (conv words stored, then pooled by the pool step), at one image and at a batch."""
    from proxcompress.kernels import model as km

    model = _model("cnn")
    x = torch.randn(40, 1, 28, 28, generator=torch.Generator().manual_seed(5)).numpy()
    export(model, tmp_path / "cnn", example=torch.from_numpy(x[:8]))
    fast = load(tmp_path / "cnn", backend="numba")
    assert fast.packed["pool0"] == {"pooled"} and fast.packed["pool1"] == {"pool"}
    monkeypatch.setattr(km, "_fused_pools", lambda nodes, roles: {})
    unfused = load(tmp_path / "cnn", backend="numba")
    assert unfused.packed["pool0"] == {"pool"}
    for batch in (x[:1], x):
        np.testing.assert_array_equal(fast(batch), unfused(batch))


@pytest.mark.parametrize(("size", "pool"), [(9, 2), (8, 3), (2, 3)])
def test_pooling_grey_producer_packs_the_pooled_signs_or_falls_back(size: int,
                                                                    pool: int) -> None:
    """The float grey 3 x 3 producer with ``pool``: packed words equal to the NumPy twin's
    max-pool of the conv's packed signs (rows and columns past the last window dropped); an
    image whose conv output has an exact 0 (a zero image, a zero bias) returns the unpooled
    float output of the node, as does a pool larger than the conv output."""
    from proxcompress.kernels import model as km
    from proxcompress.kernels import packed
    from proxcompress.kernels.formats import pack_negative_mask

    rng = np.random.default_rng(size + pool)
    tensors = {"w": rng.standard_normal((5, 1, 3, 3)).astype(np.float32),
               "b": np.zeros(5, np.float32)}
    raw = {"name": "c", "op": "conv2d", "inputs": ["x"],
           "attrs": {"in_channels": 1, "out_channels": 5, "kernel_size": [3, 3],
                     "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1]},
           "tensors": {"weight": "w", "bias": "b"}}
    node = km._Node(raw, tensors, 0)
    fn = km._build(node, "numba", km._device_put("numba"))
    run = km._float_producer(node, fn, pool)
    x = rng.standard_normal((3, 1, size, size)).astype(np.float32)
    y = fn(x)
    got = run(x)
    if pool > size:
        np.testing.assert_array_equal(got, y)
        return
    assert isinstance(got, km._Packed)
    neg = pack_negative_mask(np.ascontiguousarray((y < 0).transpose(0, 2, 3, 1)))
    np.testing.assert_array_equal(got.words, packed.max_pool_packed(neg, pool,
                                                                    backend="numpy"))
    x[1] = 0
    np.testing.assert_array_equal(run(x), fn(x))
