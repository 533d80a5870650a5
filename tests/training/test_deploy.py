"""``proxcompress export --run DIR --out DIR``: a trained run (binary, SPR-pruned, DenseShift)
exported and run on the kernels classifies its whole test set as torch does; ``load_run``
restores the trained (and pruned) model; bad input names the field and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from training_helpers import tiny_config, tiny_spr_config

from proxcompress.cli import main
from proxcompress.errors import InvalidInputError
from proxcompress.kernels.model import _matmul_nt
from proxcompress.training.data import load_dataset
from proxcompress.training.deployment import deploy
from proxcompress.training.trainer import evaluate, load_run, train

#: an op each run's export must hold (the layers really are binary / shift / pruned float)
KIND_OP = {"binary": "binary_linear", "spr": "conv2d", "denseshift": "shift_conv2d"}
RUNS = {
    "binary": lambda: tiny_config(epochs=1, quant={"weights": "bnn", "activations": "bnn"}),
    "spr": lambda: tiny_spr_config(),
    "denseshift": lambda: tiny_config(
        epochs=1, model={"name": "vgg", "width": 8, "stages": [1, 1], "dropout": 0.0},
        quant={"weights": "denseshift", "keep_first": True}),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("runs")
    return {name: (root / name, train(make(), root / name)) for name, make in RUNS.items()}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_export_cli_reproduces_the_run(name: str, runs: dict[str, tuple[Path, dict[str, Any]]],
                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, summary = runs[name]
    out, report_path = tmp_path / "export", tmp_path / "report.json"
    code = main(["export", "--run", str(run), "--out", str(out), "--batch", "50",
                 "--json", str(report_path)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(report_path.read_text())
    assert (out / "model.json").is_file() and report["manifest"] == str(out / "model.json")
    ops = {node["op"] for node in json.loads((out / "model.json").read_text())["nodes"]}
    assert KIND_OP[name] in ops
    # the kernels classify every test sample as the torch model does, and the torch side is the
    # run's own deployed model (its summary's accuracy)
    assert report["agreement"] == 1.0
    assert report["kernels_accuracy"] == report["torch_accuracy"]
    assert report["torch_accuracy"] == summary["test_accuracy"]
    assert report["samples"] == summary["test_samples"]
    assert report["max_relative_logit_error"] <= 1e-4


def test_load_run_restores_the_pruned_model(runs: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    run, summary = runs["spr"]
    cfg, model = load_run(run)
    assert not model.training
    assert model.conv0_0.weight.shape[0] == summary["spr"]["kept"]["conv0_0"]
    _, test = load_dataset(cfg.data.name, cfg.data.root, cfg.seed, cfg.data.synthetic_samples,
                           cfg.data.image_size, cfg.data.in_channels)
    acc, _ = evaluate(model, test.subset(cfg.data.test_subset, cfg.seed))
    assert acc == summary["test_accuracy"]


def test_export_cli_bad_input_writes_nothing(runs: dict[str, tuple[Path, dict[str, Any]]],
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    run, _ = runs["binary"]
    out = tmp_path / "export"
    assert main(["export", "--run", str(run), "--out", str(out), "--batch", "0"]) == 2
    assert "--batch" in capsys.readouterr().err and not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["export", "--run", str(empty), "--out", str(out)]) == 2
    assert "config.yaml" in capsys.readouterr().err and not out.exists()
    (empty / "config.yaml").write_text((run / "config.yaml").read_text())
    assert main(["export", "--run", str(empty), "--out", str(out)]) == 2
    assert "no checkpoint" in capsys.readouterr().err and not out.exists()
    afile = tmp_path / "afile"
    afile.write_text("keep")
    assert main(["export", "--run", str(run), "--out", str(afile)]) == 2
    assert "not a folder" in capsys.readouterr().err and afile.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "empty"]  # no scratch left


def test_failure_after_the_export_leaves_out_untouched(
        runs: dict[str, tuple[Path, dict[str, Any]]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The export is written to a scratch folder and moved into --out only after the whole test
    set was checked: a backend that fails to load (no GPU, say) leaves no files behind."""
    import proxcompress.kernels as kernels

    def no_gpu(path: Any, backend: str = "auto") -> Any:
        raise InvalidInputError("backend", "'cupy' needs CuPy and a CUDA device (test)")

    monkeypatch.setattr(kernels, "load", no_gpu)
    out = tmp_path / "export"
    assert main(["export", "--run", str(runs["binary"][0]), "--out", str(out)]) == 2
    assert "'cupy' needs" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_export_cli_replaces_an_earlier_export(runs: dict[str, tuple[Path, dict[str, Any]]],
                                               tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "export"
    for name in ("binary", "denseshift"):  # the second run's export replaces the first's
        assert main(["export", "--run", str(runs[name][0]), "--out", str(out)]) == 0
    capsys.readouterr()
    ops = {node["op"] for node in json.loads((out / "model.json").read_text())["nodes"]}
    assert "shift_conv2d" in ops and "binary_linear" not in ops
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_deploy_arguments_are_checked(runs: dict[str, tuple[Path, dict[str, Any]]],
                                      tmp_path: Path) -> None:
    run, _ = runs["binary"]
    cfg, model = load_run(run)
    _, test = load_dataset(cfg.data.name, cfg.data.root, cfg.seed, cfg.data.synthetic_samples)
    for kwargs, field in (({"batch": 0}, "batch"), ({"repeats": 0}, "repeats")):
        with pytest.raises(InvalidInputError) as info:
            deploy(model, tmp_path / "x", test, **kwargs)
        assert info.value.field == field
    with pytest.raises(InvalidInputError) as info:
        deploy(model, tmp_path / "x", test.subset(0))
    assert info.value.field == "test"
    assert not (tmp_path / "x").exists()


def test_cpu_models_use_the_shared_thread_pool_gemm() -> None:
    """A loaded model's float layers on "auto" / "numba" use ``cpu.sgemm_nt`` (torch's BLAS,
    docs/kernels.md "CPU float GEMMs"); the NumPy twin keeps NumPy."""
    from proxcompress.kernels import cpu

    assert _matmul_nt("auto") is cpu.sgemm_nt and _matmul_nt("numba") is cpu.sgemm_nt
    x, w = torch.randn(3, 5).numpy(), torch.randn(2, 5).numpy()
    assert (_matmul_nt("numpy")(x, w) == x @ w.T).all()


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(RUNS))
def test_export_cli_on_the_gpu(name: str, runs: dict[str, tuple[Path, dict[str, Any]]],
                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--backend cupy``: the run's test set classified on the GPU kernels as torch does."""
    run, summary = runs[name]
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "e"), "--backend",
                 "cupy", "--batch", "40"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "cupy" and report["agreement"] == 1.0
    assert report["kernels_accuracy"] == report["torch_accuracy"] == summary["test_accuracy"]
