"""Helpers of the training tests: tiny synthetic configs."""

from __future__ import annotations

from typing import Any

from proxcompress.training.config import TrainConfig, config_from_dict


def tiny_config(**sections: Any) -> TrainConfig:
    """A seconds-long run on synthetic data (MLP 784-32-32-10, BNN++ weights, dropout)."""
    raw: dict[str, Any] = {
        "seed": 3,
        "epochs": 2,
        "progress": False,
        "data": {"name": "synthetic", "synthetic_samples": 160},
        "model": {"name": "mlp", "hidden": [32, 32], "dropout": 0.1},
        "quant": {"weights": "bnn++", "keep_first": False, "beta": 2.0},
        "optim": {"name": "adam", "lr": 0.01, "batch_size": 32},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return config_from_dict(raw)


def tiny_spr_config(**extra: Any) -> TrainConfig:
    """A seconds-long SPR run (pretrain, train, prune, finetune) of a small VGG on synthetic
    data."""
    return tiny_config(
        epochs=2,
        data={"synthetic_samples": 192},
        model={"name": "vgg", "width": 8, "stages": [1, 1], "dropout": 0.0},
        quant={"weights": "none", "keep_first": True},
        optim={"name": "sgd", "lr": 0.05, "batch_size": 64},
        spr={"enabled": True, "lam": 5.0, "alpha": 0.1, "pretrain_epochs": 1,
             "finetune_epochs": 1, "tolerance": 5.0, "search_samples": 96,
             **extra.pop("spr", {})},
        **extra,
    )
