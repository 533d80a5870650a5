"""The multiplication-free methods through the config, ``quantize_model`` and ``model_summary``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn
from training_helpers import tiny_config

from proxcompress.errors import InvalidInputError
from proxcompress.training import config as config_mod
from proxcompress.training import mulfree
from proxcompress.training.checkpoint import load_checkpoint
from proxcompress.training.config import MULFREE_METHODS, config_from_dict
from proxcompress.training.mulfree import MulFreeRecipe
from proxcompress.training.quantize import model_summary, quantize_model
from proxcompress.training.shift import S3Linear, ShiftLinear
from proxcompress.training.trainer import Interrupted, train


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                         nn.Linear(8, 3))


def test_config_names_match_the_mulfree_module() -> None:
    assert MULFREE_METHODS == mulfree.METHODS
    assert config_mod._MULFREE_BITS == mulfree._BITS_RANGE


@pytest.mark.parametrize("method", MULFREE_METHODS)
def test_quant_weights_accepts_every_mulfree_method(method: str) -> None:
    cfg = config_from_dict({"quant": {"weights": method},
                            "mulfree": {"homotopy": {"kind": "cosine"}, "reg_weight": 0.0}})
    assert cfg.quant.weights == method
    assert cfg.mulfree.homotopy.kind == "cosine"


@pytest.mark.parametrize(("raw", "field"), [
    ({"mulfree": {"nope": 1}}, "mulfree.nope"),
    ({"mulfree": {"rounding": "up"}}, "mulfree.rounding"),
    ({"mulfree": {"reg_weight": -1.0}}, "mulfree.reg_weight"),
    ({"mulfree": {"homotopy": {"ramp": 0}}}, "mulfree.homotopy.ramp"),
    ({"mulfree": {"freezing_window": 0}}, "mulfree.freezing_window"),
    ({"quant": {"weights": "s3"}, "mulfree": {"bits": 5}}, "mulfree.bits"),
    ({"quant": {"weights": "euclid"}, "mulfree": {"bits": 4}}, "mulfree.bits"),
    ({"quant": {"weights": "deepshift", "activations": "bnn"}}, "quant.activations"),
    ({"quant": {"weights": "denseshift"}, "spr": {"enabled": True}}, "spr.enabled"),
])
def test_bad_mulfree_config_names_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        config_from_dict(raw)
    assert info.value.field == field


def test_quantize_model_dispatches_a_mulfree_recipe() -> None:
    model = quantize_model(_mlp(), MulFreeRecipe("s3", bits=3))
    kinds = [type(m) for m in model.modules() if isinstance(m, nn.Linear)]
    assert kinds == [nn.Linear, S3Linear, nn.Linear]


def test_model_summary_counts_shift_bits_not_latents() -> None:
    plain = model_summary(_mlp(), (16,))
    shifted = quantize_model(_mlp(), MulFreeRecipe("deepshift", bits=4))
    summary = model_summary(shifted, (16,))
    assert plain.bits - summary.bits == 64 * (32 - 4)
    (middle,) = [li for li in summary.layers if li.kind == ShiftLinear.__name__]
    assert middle.weight_bits == 4
    assert summary.binary_weight_macs == 64


@pytest.mark.parametrize("method", ["s3", "euclid"])
def test_trainer_mulfree_metrics_and_bit_exact_resume(tmp_path: Path, method: str) -> None:
    cfg = tiny_config(quant={"weights": method, "keep_first": True})
    train(cfg, tmp_path / "full")
    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "cut", interrupt_after_steps=5)  # the end of epoch 1
    train(cfg, tmp_path / "cut", resume=True)
    full, cut = ([json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
                 for d in ("full", "cut"))
    key = "frozen" if method == "s3" else "theta"
    assert all(key in r for r in full)
    # the freezing snapshots are checkpointed, so the resumed run's metrics are the same
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in full] == \
        [{k: v for k, v in r.items() if k not in drop} for r in cut]
    a, b = load_checkpoint(tmp_path / "full")[0], load_checkpoint(tmp_path / "cut")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)


def fmnist_installed() -> bool:
    """Whether Debian's dataset-fashion-mnist is where the data module reads it."""
    from proxcompress.training.data import DEFAULT_ROOT

    return (DEFAULT_ROOT / "train-images-idx3-ubyte.gz").exists()


CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_committed_config_validates_and_builds(path: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """``proxcompress train --config FILE --dry-run`` (validation + model + summary, no data)
    for every config in configs/, the multiplication-free, speech and language-model rows
    included (a word-level model's size is its corpus's vocabulary: those rows read a corpus
    folder built here from the embedded KJV sample, as ``proxcompress data kjv`` writes one)."""
    from proxcompress.cli import main
    from proxcompress.training import text

    extra: list[str] = []
    loaded = config_mod.load_config(path)
    if loaded.data.name == "kjv":
        text.write_corpus(text.build_corpus(text.sample_text()), tmp_path / "kjv", "sample")
        extra = ["--set", f"data.root={tmp_path / 'kjv'}"]
    if loaded.model.init_from:
        # a fine-tuning row names the source run results.py trains first (runs/results/NAME/
        # ...): without it the row is refused, naming the field; with that source's committed
        # config trained here (one epoch on a 64-image subset) it builds
        assert main(["train", "--config", str(path), "--dry-run", "--set",
                     f"model.init_from={tmp_path / 'none'}"]) == 2
        assert "model.init_from" in capsys.readouterr().err
        name = Path(loaded.model.init_from).parts[2]
        source = config_mod.load_config(path.parent / f"{name}.yaml")
        data = replace(source.data, train_subset=64, test_subset=64)
        extra = ["--set", f"model.init_from={tmp_path / 'source'}"]
        if data.name == "fashion-mnist" and not fmnist_installed():
            # no Debian dataset here: both runs on the embedded sample (same images' shape)
            data = replace(data, name="embedded")
            extra += ["--set", "data.name=embedded"]
        train(replace(source, epochs=1, data=data), tmp_path / "source")
    assert main(["train", "--config", str(path), "--dry-run", *extra]) == 0
    out = capsys.readouterr().out
    cfg = config_mod.load_config(path)
    layer = {"deepshift": "ShiftConv2d", "denseshift": "DenseShiftConv2d", "s3": "S3Conv2d",
             "euclid": "EuclidConv2d", "adder": "AdderConv2d"}.get(cfg.quant.weights)
    if layer is not None:
        assert layer in out


def test_freezing_log_every_k_steps_survives_a_resume(tmp_path: Path) -> None:
    """``mulfree.freezing_every``: one ``freezing.jsonl`` line every k steps with shares in
    [0, 1]; after an interrupt and ``--resume`` (at a snapshot step or between two) the log
    is the same."""
    cfg = tiny_config(quant={"weights": "denseshift", "keep_first": True},
                      mulfree={"freezing_every": 2})
    train(cfg, tmp_path / "full")
    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "cut", interrupt_after_steps=6)
    train(cfg, tmp_path / "cut", resume=True)
    with pytest.raises(Interrupted):  # a cut between two snapshot steps
        train(cfg, tmp_path / "odd", interrupt_after_steps=5)
    train(cfg, tmp_path / "odd", resume=True)
    full, cut, odd = ([json.loads(x) for x in (tmp_path / d / "freezing.jsonl").read_text()
                  .splitlines()] for d in ("full", "cut", "odd"))
    steps = [r["step"] for r in full]
    assert steps == list(range(2, 2 * len(steps) + 1, 2)) and len(steps) == 5  # 10 steps
    assert [r["step"] for r in cut] == steps
    for r in full:
        assert 0.0 <= r["frozen"] <= min(r["sign_frozen"], r["exponent_frozen"]) <= 1.0
    # the snapshots are checkpointed: a resume anywhere reproduces the log line by line
    assert full == cut == odd


def test_init_from_a_full_precision_run(tmp_path: Path) -> None:
    """``model.init_from``: a DeepShift run starts from the float weights of a finished
    full-precision run (its latents equal them before any step); another model, a quantized
    source or a missing folder is an error naming the field, before any work."""
    from proxcompress.training.trainer import build_run_model, initial_state

    fp = tiny_config(quant={"weights": "none"})
    train(fp, tmp_path / "fp")
    source = load_checkpoint(tmp_path / "fp").model_state
    shifted = tiny_config(quant={"weights": "deepshift", "keep_first": True},
                          model={"init_from": str(tmp_path / "fp")})
    model = build_run_model(shifted, 10, shifted.seed, initial_state(shifted))
    state = model.state_dict()
    weights = [k for k in source if k.endswith(".weight")]
    assert weights and all(torch.equal(state[k], source[k]) for k in weights)
    assert any(isinstance(m, ShiftLinear) for m in model.modules())
    train(shifted, tmp_path / "shift")  # the trainer takes the same path ...
    train(replace(shifted, model=replace(shifted.model, init_from=None)), tmp_path / "scratch")
    first = [json.loads((tmp_path / d / "metrics.jsonl").read_text().splitlines()[0])
             for d in ("shift", "scratch")]
    assert first[0]["loss"] < first[1]["loss"]  # ... and starts from the trained weights
    for raw, message in (
            ({"model": {"init_from": str(tmp_path / "nothing")}}, "no checkpoint"),
            ({"model": {"init_from": str(tmp_path / "shift")}}, "quant.weights"),
            ({"model": {"init_from": str(tmp_path / "fp"), "hidden": [16, 16]}}, "model")):
        cfg = tiny_config(epochs=1, quant={"weights": "deepshift"}, **raw)
        with pytest.raises(InvalidInputError, match=message) as info:
            train(cfg, tmp_path / "bad")
        assert info.value.field == "model.init_from"
        assert not (tmp_path / "bad" / "checkpoint.json").exists()
    with pytest.raises(InvalidInputError) as spr:
        config_from_dict({"model": {"init_from": "x"}, "spr": {"enabled": True}})
    assert spr.value.field == "model.init_from"
