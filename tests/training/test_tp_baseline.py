"""The magnitude baseline of the SPR table: Torch-Pruning's group-norm importance, our physical
removal; the same channels (and outputs) as Torch-Pruning's own MagnitudePruner."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from training_helpers import tiny_spr_config

from proxcompress.errors import InvalidInputError
from proxcompress.training.models import build_model
from proxcompress.training.pruning import prune_channels
from proxcompress.training.trainer import train

tp = pytest.importorskip("torch_pruning")


def _vgg(seed: int = 0) -> torch.nn.Module:
    model = build_model("vgg", in_channels=1, image_size=28, classes=10, hidden=[8], width=8,
                        stages=[1, 1, 1], blocks=1, batchnorm=True, activation="relu",
                        dropout=0.0, seed=seed)
    torch.manual_seed(seed)
    for m in model.modules():  # non-trivial BatchNorm statistics and affine parameters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_channels_and_outputs_as_torch_prunings_pruner(seed: int) -> None:
    from proxcompress.training.tp_baseline import magnitude_keep, magnitude_scores

    model = _vgg(seed)
    units = model.units()
    counts = [3, 5, 11]
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    keep = magnitude_keep(model, units, counts, x[:2])
    scores = magnitude_scores(model, units, x[:2])
    for unit, k in zip(units, counts, strict=True):  # the k largest scores, brute force
        s = scores[unit.name]
        assert len(keep[unit.name]) == k
        assert min(float(s[j]) for j in keep[unit.name]) >= max(
            [float(s[j]) for j in range(s.numel()) if j not in keep[unit.name]], default=-1.0)
    ours = copy.deepcopy(model)
    for unit in units:
        prune_channels(ours, unit, keep[unit.name])
    theirs = copy.deepcopy(model)
    ratios = {theirs.get_submodule(u.producer): 1 - k / theirs.get_submodule(u.producer)
              .out_channels for u, k in zip(units, counts, strict=True)}
    pruner = tp.pruner.MagnitudePruner(
        theirs, x[:2], importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio_dict=ratios, ignored_layers=[theirs.get_submodule("head")])
    pruner.step()
    for unit, k in zip(units, counts, strict=True):
        assert theirs.get_submodule(unit.producer).out_channels == k
        torch.testing.assert_close(theirs.get_submodule(unit.producer).weight,
                                   ours.get_submodule(unit.producer).weight)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x))


def test_magnitude_run_prunes_to_the_budget(tmp_path: Path) -> None:
    """``spr.method: magnitude`` trains ``pretrain_epochs + epochs`` plainly from SPR's init,
    keeps ``keep_counts`` channels per unit and fine-tunes; the summary says so."""
    summary = train(tiny_spr_config(spr={"method": "magnitude", "keep_counts": [3, 5]}),
                    tmp_path / "run")
    assert summary["spr"]["method"] == "magnitude"
    assert summary["spr"]["kept"] == {"conv0_0": 3, "conv1_0": 5}
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text()
             .splitlines()]
    assert [r["phase"] for r in lines] == ["train"] * 3 + ["finetune"]  # 1 + 2 epochs, then 1
    with pytest.raises(InvalidInputError, match="spr.keep_counts"):
        train(tiny_spr_config(spr={"method": "magnitude", "keep_counts": [3]}), tmp_path / "x")


def test_keep_counts_only_with_magnitude() -> None:
    for spr in ({"method": "magnitude"}, {"keep_counts": [3, 5]}):
        with pytest.raises(InvalidInputError, match="spr.keep_counts"):
            tiny_spr_config(spr=spr)
