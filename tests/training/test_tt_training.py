"""Tensor-train runs through the trainer: the language-model task (perplexity against a direct
computation, bit-exact resume with the carried LSTM state), the tensor_train recipe (compression
by budget, decomposition exact at full rank), the speech LSTM, config errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from proxcompress.cli import main
from proxcompress.errors import InvalidInputError
from proxcompress.training.checkpoint import load_checkpoint
from proxcompress.training.config import config_from_dict
from proxcompress.training.models.lstm import LSTMLanguageModel, SpeechLSTM
from proxcompress.training.tasks import LanguageModelTask
from proxcompress.training.tensor_train import TTLSTM, TTSpec
from proxcompress.training.tensor_train.recipe import TensorTrainRecipe, lstm_counts
from proxcompress.training.text import load_corpus, stream_batches
from proxcompress.training.trainer import Interrupted, build_run_model, train

#: a declared dependency (pyproject); an environment installed before it skips cleanly
pytest.importorskip("opt_einsum", reason="opt_einsum is not installed (pip install -e .)")


def lm_config(**changes: Any) -> Any:
    raw: dict[str, Any] = {
        "seed": 3, "epochs": 2, "threads": 1, "progress": False,
        "data": {"name": "kjv-sample", "bptt": 12, "eval_streams": 3},
        "model": {"name": "lstm-lm", "lstm": {"embedding": 16, "hidden": 24, "dropout": 0.1,
                                              "cutoffs": [60, 300]}},
        "optim": {"lr": 3e-3, "batch_size": 16, "clip_norm": 1.0},
    }
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            raw.setdefault(section, {})[name] = value
        else:
            raw[section] = value
    return config_from_dict(raw)


def test_language_model_run_and_its_perplexity(tmp_path: Path) -> None:
    cfg = lm_config(tt={"form": "mpo", "compression": 3})
    summary = train(cfg, tmp_path / "run")
    assert summary["task"] == "language-model"
    assert summary["lstm_compression"] >= 3
    assert summary["lstm_parameters"] == sum(
        p.numel() for n, p in build_run_model(cfg, 815, 3).named_parameters()
        if n.startswith("rnn."))
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in metrics] == [1, 2]
    assert metrics[-1]["val_perplexity"] == pytest.approx(summary["val_perplexity"])
    assert summary["val_perplexity"] == pytest.approx(math.exp(metrics[-1]["val_loss"]))
    # the test perplexity against a direct computation: the whole of each stream in one pass,
    # -log p(target) from the normalized distribution over the vocabulary
    state, _, _, _, _ = load_checkpoint(tmp_path / "run")
    model = build_run_model(cfg, 815, 3)
    model.load_state_dict(state)
    model.eval()
    rows = stream_batches(load_corpus(None).test, 3)
    with torch.no_grad():
        hidden, _, _ = model(rows[:, :-1].T)
        logp = model.log_prob(hidden)
        assert torch.allclose(logp.exp().sum(-1), torch.ones(()), atol=1e-4)
        nll = -logp.gather(-1, rows[:, 1:].T.unsqueeze(-1)).mean()
    assert summary["test_perplexity"] == pytest.approx(math.exp(float(nll)), rel=1e-4)
    assert summary["test_samples"] == 690 and summary["val_samples"] == 942


@pytest.mark.parametrize("after", [5, 23])  # inside epoch 1, inside epoch 2
def test_language_model_interrupt_and_resume_is_exact(tmp_path: Path, after: int) -> None:
    cfg = lm_config(tt={"form": "mps", "ranks": 3})
    train(cfg, tmp_path / "full")
    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "cut", interrupt_after_steps=after)
    train(cfg, tmp_path / "cut", resume=True)
    a, _, _, _, _ = load_checkpoint(tmp_path / "full")
    b, _, _, _, _ = load_checkpoint(tmp_path / "cut")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    drop = ("seconds",)
    full, cut = ([{k: v for k, v in json.loads(x).items() if k not in drop}
                  for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
                 for d in ("full", "cut"))
    assert full == cut


def test_language_model_batches_cover_the_stream() -> None:
    cfg = lm_config()
    task = LanguageModelTask(cfg, load_corpus(None), torch.device("cpu"))
    seen = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor, hx: Any, y: torch.Tensor) -> Any:
            assert torch.equal(x[1:], y[:-1])  # targets are the next tokens
            seen.append(y.T)
            h = torch.zeros(1, x.shape[1], 2)
            return None, (h, h), torch.zeros((), requires_grad=True)

    task.start_epoch(0, 0)
    for s in range(task.steps_per_epoch):
        task.step(Probe(), s)
    targets = torch.cat(seen, 1)
    assert torch.equal(targets, task.rows[:, 1:])  # each row's tokens after the first, once
    assert task.rows.shape == (16, (4482 - 12) // 16)


def test_recipe_budget_and_exact_decomposition() -> None:
    torch.manual_seed(0)
    model = LSTMLanguageModel(50, 12, 16, 2, 0.0, (20,)).double()
    tokens = torch.randint(0, 50, (7, 3))
    want, _, _ = model(tokens)
    dense = sum(p.numel() for p in model.rnn.parameters())
    for form in ("mps", "mpo", "lowrank"):
        copy = TensorTrainRecipe(TTSpec(form, 10**6, 2), init="decompose").apply(
            _clone(model))
        assert isinstance(copy.rnn, TTLSTM)
        got, _, _ = copy(tokens)
        assert torch.allclose(got, want, atol=1e-12), form
        small = TensorTrainRecipe(TTSpec(form, 8, 2), compression=4).apply(_clone(model))
        counts = lstm_counts(small)
        assert counts["lstm_dense_parameters"] == dense
        assert counts["lstm_parameters"] <= dense / 4
        # the largest rank within the budget: one more exceeds it
        rank = small.rnn.hh_spec.ranks
        assert isinstance(rank, int)
        bigger = TTSpec(form, rank + 1, 2)
        assert TTLSTM(12, 16, 2, device="meta", ih=bigger, hh=bigger).num_parameters() \
            > dense / 4
    only_hh = TensorTrainRecipe(TTSpec("mpo", 2, 2), matrices=("hh",)).apply(_clone(model))
    assert only_hh.rnn.ih_spec.form == "dense" and only_hh.rnn.hh_spec.form == "mpo"


def _clone(model: LSTMLanguageModel) -> LSTMLanguageModel:
    out = LSTMLanguageModel(50, 12, 16, 2, 0.0, (20,)).double()
    out.load_state_dict(model.state_dict())
    return out


def test_linear_layers_swap_but_first_and_last() -> None:
    from proxcompress.training.models import build_model
    from proxcompress.training.tensor_train import TTLinear

    model = build_model("mlp", hidden=(16, 16, 16), seed=0)
    TensorTrainRecipe(TTSpec("mpo", 2, 2), linear=True).apply(model, seed=1)
    kinds = [type(getattr(model, n)).__name__ for n in ("fc0", "fc1", "fc2", "head")]
    assert kinds == ["Linear", "MPOLinear", "MPOLinear", "Linear"]
    assert isinstance(model.fc1, TTLinear)


def test_speech_lstm_shapes_and_gradients() -> None:
    model = SpeechLSTM(40, 26, hidden=16, frame_stack=3)
    x = torch.randn(5, 1, 40, 351)
    out = model(x)
    assert out.shape == (5, 26)
    assert model.rnn.input_size == 120
    out.sum().backward()
    TensorTrainRecipe(TTSpec("mps", 4)).apply(model)
    assert isinstance(model.rnn, TTLSTM) and model.rnn.batch_first
    assert model(x).shape == (5, 26)


@pytest.mark.parametrize("changes, field", [
    ({"data": {"name": "kjv"}, "model": {"name": "lstm-lm"}}, "data.root"),
    ({"data": {"name": "kjv-sample"}}, "model.name"),
    ({"model": {"name": "lstm-lm"}}, "model.name"),
    ({"data": {"name": "kjv-sample"}, "model": {"name": "lstm-lm"},
      "tt": {"form": "mps", "ranks": 4, "compression": 10}}, "tt.ranks"),
    ({"tt": {"form": "mps"}, "quant": {"weights": "bnn"}}, "quant.weights"),
    ({"data": {"name": "kjv-sample"}, "model": {"name": "lstm-lm"}, "spr": {"enabled": True}},
     "spr.enabled"),
    ({"tt": {"form": "tucker"}}, "tt.form"),
    ({"tt": {"form": "mps", "compression": 0.5}}, "tt.compression"),
    ({"tt": {"form": "mps", "matrices": ["xh"]}}, "tt.matrices"),
    ({"model": {"lstm": {"cutoffs": [10, 5]}}}, "model.lstm.cutoffs"),
    ({"data": {"bptt": 0}}, "data.bptt"),
    ({"optim": {"clip_norm": -1}}, "optim.clip_norm"),
])
def test_config_errors_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        config_from_dict(changes)
    assert info.value.field == field


def test_cli_trains_and_dry_runs_a_language_model(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "lm.yaml"
    path.write_text("data: {name: kjv-sample, bptt: 12}\n"
                    "model: {name: lstm-lm, lstm: {embedding: 8, hidden: 8, cutoffs: [50]}}\n"
                    "optim: {batch_size: 32}\nepochs: 1\nprogress: false\n"
                    "tt: {form: lowrank, ranks: 2}\n")
    assert main(["train", "--config", str(path), "--dry-run"]) == 0
    assert "lstm_compression" in capsys.readouterr().out
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(printed) >= {"val_perplexity", "test_perplexity", "parameters"}
