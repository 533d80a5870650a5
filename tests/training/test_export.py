"""Export (``training.export``) and inference on the kernels (``kernels.load``)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from proxcompress.errors import InvalidInputError
from proxcompress.kernels import unpack_shift
from proxcompress.kernels.model import load
from proxcompress.training.euclid import EuclidLinear, HomotopySchedule
from proxcompress.training.exporter import export
from proxcompress.training.layers import BinaryConv2d, BinaryLinear, hard_quantization
from proxcompress.training.models import build_model, calibrate_batchnorm
from proxcompress.training.mulfree import MulFreeRecipe, mulfree_model
from proxcompress.training.quantize import QuantRecipe, quantize_model
from proxcompress.training.shift import ShiftLayer, codes_to_weight
from proxcompress.training.speech import SpeechResNet

KINDS = ["fp", "bnn++", "bnn++/act", "pair:shift", "pair:ternary", "deepshift", "denseshift",
         "s3", "s3-4bit", "euclid", "adder"]
MODELS = {
    "mlp": lambda: build_model("mlp", hidden=(48, 32), seed=0),
    "cnn": lambda: build_model("vgg", width=6, stages=(1, 1, 1), seed=0),
    "resnet": lambda: build_model("resnet20", width=4, blocks=1, seed=0),
}


def _calibrate(model: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, as after training."""
    return calibrate_batchnorm(model, shape, seed=5)


def _prepare(model: nn.Module, kind: str) -> nn.Module:
    if kind == "fp":
        return model
    if kind.startswith("bnn++"):
        act = "bnn++" if kind.endswith("/act") else None
        return quantize_model(model, QuantRecipe(weights="bnn++", activations=act, beta=2.0))
    if kind.startswith("pair:"):
        return quantize_model(model, QuantRecipe(weights=kind[5:]))
    method, _, bits = kind.partition("-")
    recipe = MulFreeRecipe(method, bits=4 if bits else None,
                           homotopy=HomotopySchedule("step"))
    return mulfree_model(model, recipe, seed=1)


def _torch_logits(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    model.eval()
    with torch.no_grad(), hard_quantization(model):
        return model(x).numpy()


def _relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_load_logits_equal_torch(name: str, kind: str, tmp_path: Path) -> None:
    model = _calibrate(_prepare(MODELS[name](), kind), (1, 28, 28))
    x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(9))
    manifest_path = export(model, tmp_path, example=x)
    loaded = load(tmp_path)
    got = loaded(x.numpy())
    twin = load(tmp_path, backend="numpy")(x.numpy())  # the reference twins, every layer
    assert _relative_error(twin, got) <= 1e-5
    # BatchNorm folded into the layer before it (default) or run as stored: the same model
    unfolded = load(tmp_path, fold_batchnorm=False)
    assert _relative_error(unfolded(x.numpy()), got) <= 1e-5 and unfolded.folded == []
    bn = {n["name"] for n in json.loads(manifest_path.read_text())["nodes"]
          if n["op"] == "batchnorm"}
    assert set(loaded.folded) <= bn and (loaded.folded or not bn or kind in ("euclid", "adder"))
    ref = _torch_logits(model, x)
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert _relative_error(got, ref) <= 1e-4
    manifest = json.loads(manifest_path.read_text())
    assert manifest["check"]["max_relative_error"] <= 1e-4
    assert loaded.input_shape == (1, 28, 28)
    ops = {n["op"] for n in manifest["nodes"]}
    expected = {"fp": None, "bnn++": "binary", "bnn++/act": "binary", "pair:shift": "shift",
                "pair:ternary": "shift", "deepshift": "shift", "denseshift": "shift",
                "s3": "shift", "s3-4bit": "shift", "euclid": "euclid", "adder": "adder"}[kind]
    if expected is not None:
        assert any(op.startswith(expected + "_") for op in ops)


def _read_safetensors_header(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n])


@pytest.mark.parametrize("kind", ["deepshift", "denseshift", "s3", "s3-4bit"])
def test_exported_codes_lie_in_the_alphabet_and_equal_forward_weights(
        kind: str, tmp_path: Path) -> None:
    """Each reparametrization produces only values of its alphabet after export."""
    model = _prepare(build_model("vgg", width=6, stages=(1, 1, 1), seed=0), kind)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ShiftLayer):
                for p in m.latent_parameters():
                    p.copy_(torch.randn(p.shape, generator=g))
    export(model, tmp_path)
    from safetensors.numpy import load_file

    manifest = json.loads((tmp_path / "model.json").read_text())
    tensors = load_file(str(tmp_path / "model.safetensors"))
    shift_nodes = [n for n in manifest["nodes"] if n["op"].startswith("shift_")]
    assert len(shift_nodes) == 2
    for node in shift_nodes:
        layer = model.get_submodule(node["name"])
        a = node["attrs"]
        assert a["storage"] == "packed"
        sign, exponent = unpack_shift(tensors[node["tensors"]["codes"]], a["k"],
                                      emin=a["emin"], zero=a["zero"])
        values = codes_to_weight(torch.from_numpy(sign), torch.from_numpy(exponent))
        alphabet = set(layer.code_format().alphabet())
        assert set(values.flatten().tolist()) <= alphabet
        forward = layer.shift_weight().detach().reshape(values.shape)
        assert torch.equal(values, forward)


def test_binary_accumulators_are_exact(tmp_path: Path) -> None:
    """+-1 weights and +-1 activations: the int32 accumulators equal torch's sums exactly,
    zero activations (sign 0 after ReLU) and zero padding included."""
    torch.manual_seed(0)
    mlp = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 70), nn.ReLU(),
        BinaryLinear(70, 10, weight_quantizer="binaryconnect",
                     input_quantizer="binaryconnect", scale="none"))
    cnn = nn.Sequential(
        nn.Conv2d(1, 5, 3), nn.ReLU(),
        BinaryConv2d(5, 7, 3, padding=1, stride=2, bias=False, weight_quantizer="binaryconnect",
                     input_quantizer="binaryconnect", scale="none"),
        nn.Flatten())
    x = torch.randn(6, 1, 28, 28)
    for i, model in enumerate((mlp, cnn)):
        folder = tmp_path / str(i)
        export(model, folder)
        got = load(folder)(x.numpy())
        ref = _torch_logits(model, x)
        assert (ref == 0).any() or i == 0
        np.testing.assert_array_equal(got, ref)


def test_binary_conv_corrects_exactly_the_images_holding_a_zero(tmp_path: Path) -> None:
    """Inputs equal to 0 (sign 0, not +1) in two images of six: the exported binary conv
    corrects those images alone and equals torch exactly; the zeros change those images."""
    torch.manual_seed(1)
    cnn = nn.Sequential(
        BinaryConv2d(3, 7, 3, padding=1, stride=2, bias=False, weight_quantizer="binaryconnect",
                     input_quantizer="binaryconnect", scale="none"),
        nn.Flatten())
    x = torch.randn(6, 3, 9, 9)
    x[1, 0, 2:4, 3] = 0
    x[4, 2, 0, 0] = x[4, 1, 8, 8] = 0
    export(cnn, tmp_path)
    got = load(tmp_path)(x.numpy())
    np.testing.assert_array_equal(got, _torch_logits(cnn, x))
    plus = load(tmp_path)(torch.where(x == 0, 1.0, x).numpy())
    changed = np.flatnonzero((plus != got).any(axis=1))
    assert changed.tolist() == [1, 4]


def test_binary_layers_are_at_least_25x_smaller(tmp_path: Path) -> None:
    model = build_model("mlp", hidden=(512, 512), batchnorm=False, seed=0)
    quantize_model(model, QuantRecipe("bnn++", keep_first=False, keep_last=False))
    export(model, tmp_path)
    manifest = json.loads((tmp_path / "model.json").read_text())
    header = _read_safetensors_header(tmp_path / "model.safetensors")
    float32_bytes = 4 * sum(m.weight.numel() for m in model.modules()
                            if isinstance(m, BinaryLinear))
    binary = [n for n in manifest["nodes"] if n["op"] == "binary_linear"]
    assert len(binary) == 3
    stored = 0
    for node in binary:
        per_layer = sum(header[t]["data_offsets"][1] - header[t]["data_offsets"][0]
                        for t in node["tensors"].values())
        weights = model.get_submodule(node["name"]).weight.numel()
        assert manifest["storage"]["layers"][node["name"]]["stored_bytes"] == per_layer
        if weights >= 10_000:
            assert 25 * per_layer <= 4 * weights
        stored += per_layer
    assert 25 * stored <= float32_bytes
    file_bytes = (tmp_path / "model.safetensors").stat().st_size
    assert 25 * file_bytes <= float32_bytes  # the whole file, header and biases included


def test_speech_resnet_exports(tmp_path: Path) -> None:
    model = _calibrate(_prepare(SpeechResNet(width=4), "deepshift"), (1, 40, 50))
    x = torch.randn(3, 1, 40, 50)
    export(model, tmp_path, example=x)
    assert _relative_error(load(tmp_path)(x.numpy()), _torch_logits(model, x)) <= 1e-4


# --------------------------------------------------------------------------- bad models
class _Sigmoid(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(x))


@pytest.mark.parametrize(("model", "match"), [
    (lambda: nn.Sequential(EuclidLinear(4, 2, theta=0.5)), "theta"),
    (lambda: _Sigmoid(), "sigmoid"),
    (lambda: nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)), "groups"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.Tanh()), "Tanh"),
    (lambda: quantize_model(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)),
                            QuantRecipe("bnn", activations="ternary")), "activation"),
])
def test_unsupported_models_are_refused(model: Any, match: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=match):
        export(model(), tmp_path)
    assert not any(tmp_path.iterdir())


def test_failed_check_writes_nothing(tmp_path: Path) -> None:
    model = build_model("mlp", hidden=(8,), seed=0)
    with pytest.raises(InvalidInputError, match="example"):
        export(model, tmp_path / "out", example=torch.randn(2, 1, 28, 28), rtol=-1.0)
    assert not (tmp_path / "out").exists()


def test_export_path_must_be_a_folder(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("keep")
    with pytest.raises(InvalidInputError) as info:
        export(build_model("mlp", hidden=(8,), seed=0), target)
    assert info.value.field == "path" and target.read_text() == "keep"


def test_check_names_the_wrong_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel op that computes the wrong thing is caught at its own node."""
    import proxcompress.kernels.model as kmodel

    right = kmodel._batchnorm

    def wrong(*args: Any) -> Any:
        run = right(*args)
        return lambda x: run(x) * 1.01

    monkeypatch.setattr(kmodel, "_batchnorm", wrong)
    model = _calibrate(quantize_model(build_model("mlp", hidden=(16, 12), seed=0),
                                      QuantRecipe("bnn")), (1, 28, 28))
    with pytest.raises(InvalidInputError, match="node 'bn0'"):
        export(model, tmp_path / "out", example=torch.randn(4, 1, 28, 28))
    assert not (tmp_path / "out").exists()


def test_check_judges_each_node_on_torch_inputs(tmp_path: Path) -> None:
    """Binarized activations exactly at 0 in exact arithmetic (untrained BatchNorm, ReLU in front
    of binary layers): torch's float32 sums land near 0 on either side, the kernels' integer
    sums on 0, so the two outputs differ end to end, while every node is right on its inputs.
    The check accepts (each node to 1e-4) and records both figures."""
    torch.manual_seed(0)
    model = quantize_model(build_model("mlp", hidden=(1024, 1024, 1024), seed=0),
                           QuantRecipe(weights="bnn", activations="bnn")).eval()
    manifest = json.loads(export(model, tmp_path, example=torch.randn(64, 1, 28, 28)).read_text())
    check = manifest["check"]
    assert check["worst_node_relative_error"] <= 1e-4 < check["max_relative_error"]
    assert check["worst_node"] in {n["name"] for n in manifest["nodes"]}


# ------------------------------------------------------------------------------ bad files
@pytest.fixture()
def exported(tmp_path: Path) -> Path:
    model = quantize_model(build_model("mlp", hidden=(16, 16), seed=0), QuantRecipe("bnn"))
    export(model, tmp_path / "a")
    return tmp_path / "a"


def _edit_manifest(folder: Path, edit: Any) -> None:
    path = folder / "model.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_corrupt_tensor_file_is_refused(exported: Path) -> None:
    path = exported / "model.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidInputError, match="SHA-256"):
        load(exported)


def test_tensor_file_of_another_export_is_refused(exported: Path, tmp_path: Path) -> None:
    other = build_model("mlp", hidden=(16, 16), seed=1)
    export(other, tmp_path / "b")
    (exported / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors")
                                                 .read_bytes())
    with pytest.raises(InvalidInputError, match="SHA-256"):
        load(exported)


def _first(manifest: dict[str, Any], op: str) -> dict[str, Any]:
    return next(n for n in manifest["nodes"] if n["op"] == op)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda m: m.update(version=2), "version"),
    (lambda m: m.update(format="other"), "manifest"),
    (lambda m: _first(m, "binary_linear")["attrs"].update(k=999), "k"),
    (lambda m: _first(m, "binary_linear")["tensors"].update(words="nope"), "words"),
    (lambda m: _first(m, "binary_linear")["tensors"].pop("scale"), "scale"),
    (lambda m: _first(m, "binary_linear").update(op="magic_linear"), "magic"),
    (lambda m: _first(m, "linear")["tensors"].update(weight="fc1.words"), "dtype"),
    (lambda m: _first(m, "relu").update(inputs=["later"]), "inputs"),
    (lambda m: _first(m, "binary_linear")["attrs"]["input"].update(kind="ternary"), "kind"),
    (lambda m: m.update(output="nowhere"), "output"),
])
def test_mismatched_manifest_is_refused(exported: Path, edit: Any, match: str) -> None:
    _edit_manifest(exported, edit)
    with pytest.raises(InvalidInputError, match=match):
        load(exported)


def test_missing_or_broken_manifest(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nothing")
    (exported / "model.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="JSON"):
        load(exported)


def test_numpy_backend_and_bad_backend(exported: Path) -> None:
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(load(exported, backend="numpy")(x), load(exported)(x),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(InvalidInputError, match="backend.*accepted"):
        load(exported, backend="cuda")  # type: ignore[arg-type]


def test_cupy_backend_says_what_it_needs(exported: Path) -> None:
    """Without CuPy or a CUDA device, loading names the backend; with one, NumPy inputs are
    refused (no implicit host-to-device copies)."""
    try:
        model = load(exported, backend="cupy")
    except InvalidInputError as exc:
        assert "'cupy' needs" in str(exc)
        return
    with pytest.raises(InvalidInputError, match="CuPy"):
        model(np.zeros((2, 1, 28, 28), np.float32))


# ------------------------------------------------------------------------------- on the GPU
@pytest.mark.gpu
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_gpu_inference_equals_torch(name: str, kind: str, tmp_path: Path) -> None:
    """``load(..., backend="cupy")``: CuPy in, CuPy out, the logits of the torch model (and of
    the CPU backend) to the export tolerance."""
    import cupy as cp

    model = _calibrate(_prepare(MODELS[name](), kind), (1, 28, 28))
    x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(9))
    export(model, tmp_path, example=x)
    out = load(tmp_path, backend="cupy")(cp.asarray(x.numpy()))
    assert isinstance(out, cp.ndarray) and out.dtype == cp.float32
    got = cp.asnumpy(out)
    assert _relative_error(got, _torch_logits(model, x)) <= 1e-4
    assert _relative_error(got, load(tmp_path)(x.numpy())) <= 1e-4


@pytest.mark.gpu
def test_gpu_binary_accumulators_are_exact_and_inputs_stay_on_device(tmp_path: Path) -> None:
    import cupy as cp

    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 5, 3), nn.ReLU(),
        BinaryConv2d(5, 7, 3, padding=1, stride=2, bias=False, weight_quantizer="binaryconnect",
                     input_quantizer="binaryconnect", scale="none"),
        nn.Flatten(), nn.ReLU(),
        BinaryLinear(7 * 13 * 13, 10, weight_quantizer="binaryconnect",
                     input_quantizer="binaryconnect", scale="none"))
    export(cnn, tmp_path)
    x = torch.randn(6, 1, 28, 28)
    model = load(tmp_path, backend="cupy")
    np.testing.assert_array_equal(cp.asnumpy(model(cp.asarray(x.numpy()))),
                                  _torch_logits(cnn, x))
    with pytest.raises(InvalidInputError, match="CuPy"):
        model(x.numpy())


def test_bad_inputs_at_call(exported: Path) -> None:
    model = load(exported)
    with pytest.raises(InvalidInputError, match="float32"):
        model(np.zeros((2, 1, 28, 28), np.float64))
    with pytest.raises(InvalidInputError, match="784"):
        model(np.zeros((2, 1, 27, 29), np.float32))
    with pytest.raises(InvalidInputError, match="NaN"):
        model(np.full((2, 1, 28, 28), np.nan, np.float32))


@pytest.mark.parametrize("pool", [
    nn.MaxPool2d(3, stride=2, padding=1, dilation=2), nn.MaxPool2d(2), nn.MaxPool2d((2, 3), (1, 2)),
    nn.AvgPool2d(3, stride=2), nn.AvgPool2d((2, 1), (2, 1)),
])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_pools_equal_torch(pool: nn.Module, backend: str, tmp_path: Path) -> None:
    """Pooling with padding, dilation and uneven windows, against torch (every tap of every
    window; the padded taps of a max pool never win)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), pool, nn.Flatten(),
                          nn.LazyLinear(4)).eval()
    x = torch.randn(3, 1, 13, 12)
    model(x)  # materialise the lazy layer
    export(model, tmp_path, example=x)
    got = load(tmp_path, backend=backend)(x.numpy())  # type: ignore[arg-type]
    np.testing.assert_allclose(got, _torch_logits(model, x), rtol=1e-5, atol=1e-6)
