"""Transfer between tasks: ``data.classes`` keeps (and relabels) a subset of the labels, and
``model.init_exclude`` starts a run from another run's weights but a new classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from training_helpers import tiny_config

from proxcompress.errors import InvalidInputError
from proxcompress.training.checkpoint import load_checkpoint
from proxcompress.training.data import synthetic
from proxcompress.training.trainer import build_run_model, initial_state, run_data, train


def test_relabel_keeps_and_renumbers_the_classes() -> None:
    data = synthetic(300, 10, seed=2)[0]
    part = data.relabel([7, 2, 5])
    kept = torch.isin(data.y, torch.tensor([7, 2, 5]))
    assert len(part) == int(kept.sum()) and part.classes == 3
    assert torch.equal(part.x, data.x[kept])
    assert torch.equal(part.y, torch.tensor([{7: 0, 2: 1, 5: 2}[int(v)] for v in data.y[kept]]))
    with pytest.raises(InvalidInputError, match="data.classes"):
        data.relabel([3, 12])


def _cnn(data: dict[str, object], **model: object) -> Any:
    return tiny_config(epochs=1, data=data, quant={"weights": "none", "keep_first": True},
                       model={"name": "vgg", "width": 4, "stages": [1, 1], "dropout": 0.0,
                              **model})


def test_transfer_takes_every_weight_but_the_excluded_classifier(tmp_path: Path) -> None:
    source = tmp_path / "source"
    train(_cnn({"classes": [0, 1, 2, 3, 4]}), source)
    target = _cnn({"classes": [5, 6, 7, 8, 9]}, init_from=str(source), init_exclude=["head"])
    train_part, val, test = run_data(target)
    assert set(train_part.y.tolist()) == set(range(5)) and val is not None
    state = initial_state(target)
    assert state is not None and not any(k.startswith("head.") for k in state)
    model = build_run_model(target, 5, seed=9, initial_state=state)
    src, _, _, _, _ = load_checkpoint(source)
    for key, value in model.state_dict().items():
        if key.startswith("head."):
            continue
        assert torch.equal(value, src[key]), key
    summary = train(target, tmp_path / "target")
    assert 0 <= summary["test_accuracy"] <= 100
    # other classes without a new classifier: refused, naming the field
    bad = _cnn({"classes": [5, 6, 7, 8, 9]}, init_from=str(source))
    with pytest.raises(InvalidInputError, match="init_exclude"):
        initial_state(bad)
