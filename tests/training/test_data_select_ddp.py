"""Data (IDX validation, embedded subset, synthetic), layers / summary, channel selection
through formulations (MIP vs SPR vs magnitude), and torchrun data parallelism."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from proxcompress.errors import InvalidInputError
from proxcompress.training.data import (
    load_dataset,
    load_embedded,
    load_fashion_mnist,
    read_idx,
    synthetic,
)
from proxcompress.training.layers import BinaryConv2d, BinaryLinear, hard_quantization
from proxcompress.training.models import build_model
from proxcompress.training.quantize import QuantRecipe, model_summary, quantize_model


def _idx(path: Path, array: np.ndarray, magic_type: int = 0x08, gz: bool = False) -> Path:
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _fake_root(root: Path, n_train: int = 20, n_test: int = 10, gz: bool = True) -> Path:
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for stem, n in (("train", n_train), ("t10k", n_test)):
        _idx(root / f"{stem}-images-idx3-ubyte{suffix}",
             rng.integers(0, 256, (n, 28, 28)), gz=gz)
        _idx(root / f"{stem}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n), gz=gz)
    return root


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    train, test = load_fashion_mnist(_fake_root(tmp_path, gz=gz))
    assert train.x.shape == (20, 1, 28, 28) and test.y.shape == (10,)
    assert train.y.dtype == torch.int64


def test_idx_corruption_is_a_clear_error(tmp_path: Path) -> None:
    root = _fake_root(tmp_path, gz=False)
    images = root / "train-images-idx3-ubyte"
    raw = images.read_bytes()
    images.write_bytes(raw[:-7])  # truncated
    with pytest.raises(InvalidInputError, match="payload bytes"):
        load_fashion_mnist(root)
    images.write_bytes(b"\x00\x00\x08\x01" + raw[4:])  # a label header on an image file
    with pytest.raises(InvalidInputError, match="magic"):
        read_idx(images, 0x00000803)
    images.write_bytes(b"PK\x03\x04" + raw[4:])  # not IDX at all
    with pytest.raises(InvalidInputError, match="not an IDX file"):
        read_idx(images)
    gz = root / "x.gz"
    gz.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(InvalidInputError, match="gzip"):
        read_idx(gz)


def test_idx_missing_files_name_the_package(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


def test_labels_out_of_range(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    _idx(root / "train-labels-idx1-ubyte.gz", np.full(20, 11), gz=True)
    with pytest.raises(InvalidInputError, match="labels"):
        load_fashion_mnist(root)


def test_embedded_subset_is_balanced_and_small() -> None:
    train, test = load_embedded()
    assert (len(train), len(test)) == (4000, 1000)
    assert torch.bincount(train.y).tolist() == [400] * 10
    assert train.x.shape[1:] == (1, 28, 28)
    from proxcompress.training.data import EMBEDDED

    assert EMBEDDED.stat().st_size < 3_000_000


def test_32x32_and_rgb_variants() -> None:
    train, _ = load_dataset("embedded", image_size=32, in_channels=3)
    assert train.x.shape[1:] == (3, 32, 32)
    model = build_model("resnet20", in_channels=3, width=4, blocks=1, seed=0)
    assert model(train.x[:2]).shape == (2, 10)
    with pytest.raises(InvalidInputError, match="data.name"):
        load_dataset("mnist")


def test_synthetic_is_seeded() -> None:
    a, _ = synthetic(32, 8, seed=4)
    b, _ = synthetic(32, 8, seed=4)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


# ------------------------------------------------------------------------ layers / summary
def test_quantize_model_keeps_first_and_last_and_counts() -> None:
    model = build_model("vgg", width=8, stages=(1, 1, 1), seed=0)
    quantize_model(model, QuantRecipe("bnn++", activations="bnn"))
    kinds = [type(m).__name__ for m in (model.conv0_0, model.conv1_0, model.conv2_0, model.head)]
    assert kinds == ["Conv2d", "BinaryConv2d", "BinaryConv2d", "Linear"]
    s = model_summary(model, (1, 28, 28))
    binary = 16 * 8 * 9 + 32 * 16 * 9
    assert s.binary_parameters == binary
    assert s.binary_macs == 16 * 8 * 9 * 14 * 14 + 32 * 16 * 9 * 7 * 7
    assert s.float_macs == 8 * 9 * 28 * 28 + 32 * 3 * 3 * 10
    assert s.parameters == sum(p.numel() for p in model.parameters())
    float_params = s.parameters - binary
    bn_stats = 2 * (8 + 16 + 32)
    assert s.bits == binary + 32 * (float_params + 16 + 32 + bn_stats)
    assert s.model_bytes == (s.bits + 7) // 8


def test_first_layer_input_is_never_quantized() -> None:
    model = build_model("mlp", hidden=(16, 16), seed=0)
    quantize_model(model, QuantRecipe("binaryconnect", activations="bnn", keep_first=False))
    assert isinstance(model.fc0, BinaryLinear) and model.fc0.input_quantizer is None
    assert model.fc1.input_quantizer is not None


def test_hard_mode_uses_sign_times_scale() -> None:
    layer = BinaryConv2d(3, 4, 3, weight_quantizer="bnn++", padding=1)
    layer.mu.fill_(2.0)
    with hard_quantization(torch.nn.Sequential(layer)):
        w = layer.quantized_weight()
    from proxcompress.training.quantizers import signswish

    alpha = layer.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(w, torch.sign(layer.weight) * alpha)  # bnn++: lim F = sign
    assert not layer.hard
    old = BinaryConv2d(3, 4, 3, weight_quantizer="bnn++-prox", padding=1)
    with hard_quantization(torch.nn.Sequential(old)):
        w = old.quantized_weight()
    alpha = old.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(w, signswish(torch.sign(old.weight), 2.0) * alpha)


def test_scale_modes_gradients() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 6)
    grads = {}
    for mode in ("channel", "channel-grad", "none"):
        layer = BinaryLinear(6, 3, weight_quantizer="binaryconnect", scale=mode)
        with torch.no_grad():
            layer.weight.copy_(torch.linspace(-0.9, 0.8, 18).reshape(3, 6))
        layer(x).sum().backward()
        grads[mode] = layer.weight.grad.clone()
    # STE: d/dw of sum(x sign(w)^T alpha) = alpha * colsum(x) (+ the scale term with grad)
    alpha = torch.linspace(-0.9, 0.8, 18).reshape(3, 6).abs().mean(1, keepdim=True)
    torch.testing.assert_close(grads["channel"], alpha * x.sum(0, keepdim=True).expand(3, 6))
    torch.testing.assert_close(grads["none"], x.sum(0, keepdim=True).expand(3, 6))
    assert not torch.allclose(grads["channel"], grads["channel-grad"])


# ------------------------------------------------------------------------ channel selection
def _small_trained_cnn() -> tuple[torch.nn.Module, object, object]:
    from proxcompress.training.trainer import evaluate

    train, test = synthetic(256, 128, seed=1)
    torch.manual_seed(0)
    model = build_model("vgg", width=4, stages=(1, 1), seed=0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(3):
        for i in range(0, 256, 64):
            loss = torch.nn.functional.cross_entropy(model(train.x[i:i + 64]), train.y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert evaluate(model, test)[0] > 30
    return model, train, test


def test_mip_selection_is_optimal_for_its_problem() -> None:
    from proxcompress.formulations import solve_support
    from proxcompress.training.pruning import unit_by_name
    from proxcompress.training.select import _problem, record_consumer, select_channels

    model, train, _ = _small_trained_cnn()
    unit = unit_by_name(model, "conv0_0")  # 4 channels -> conv1_0 (8 x 4 x 3 x 3)
    mip = select_channels(model, unit, 2, "mip", train, samples=64, positions=8)
    assert mip["status"] == "optimal" and len(mip["kept"]) == 2
    rec = record_consumer(model, unit, train, 64, 8, 0)
    problem = _problem(rec, 2)
    best = solve_support(problem, tuple(mip["kept"]))[1]
    from itertools import combinations

    for support in combinations(range(4), 2):  # brute force over every 2-subset
        assert best <= solve_support(problem, support)[1] + 1e-9
    for method in ("spr", "magnitude"):
        other = select_channels(model, unit, 2, method)
        assert best <= solve_support(problem, tuple(other["kept"]))[1] + 1e-9


def test_compare_selections_and_apply() -> None:
    from proxcompress.training.pruning import unit_by_name
    from proxcompress.training.select import compare_selections

    model, train, test = _small_trained_cnn()
    unit = unit_by_name(model, "conv0_0")
    rows = compare_selections(model, unit, 3, train, test, samples=64, positions=8)
    assert [r["method"] for r in rows] == ["mip", "spr", "magnitude"]
    for r in rows:
        assert len(r["kept"]) == 3 and 0 <= r["test_accuracy"] <= 100
        assert np.isfinite(r["reconstruction_error"]) and r["reconstruction_error"] >= 0
        assert np.isfinite(r["reconstruction_error_no_refit"])
    with pytest.raises(InvalidInputError, match="keep"):
        compare_selections(model, unit, 9, train, test)


# ---------------------------------------------------------------------------------- torchrun
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_torchrun_two_cpu_processes(tmp_path: Path) -> None:
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text("epochs: 2\nprogress: false\nthreads: 1\n"
                   "data: {name: synthetic, synthetic_samples: 256}\n"
                   "model: {name: mlp, hidden: [32, 32]}\n"
                   "quant: {weights: bnn++, keep_first: false, beta: 2.0}\n"
                   "optim: {batch_size: 64}\n")
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", str(_free_port()), "-m", "proxcompress", "train",
         "--config", str(cfg), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["replicas_in_sync"] is True  # DDP kept both replicas identical
    assert summary["epochs"] == 2
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # only rank 0 writes
