"""Accuracy under input transformations and noise, on the test set only (EuclidNet's claim).

EuclidNets (Li et al., SN Computer Science 2023; methods.md section 4) claim the same
behaviour as the multiplying network under input transformations and noise. For a finished run,
:func:`robustness` applies each transformation of :data:`TRANSFORMS` at graded strengths to the
run's *test* images (nothing is trained or chosen on them) and reports the deployed model's
accuracy. The images are transformed in pixel space (``[0, 1]``, background 0) and normalized
again as the model expects:

* ``rotation`` (degrees), ``translation`` (pixels, the same along both axes), ``scaling``
  (zoom factor): an affine resampling, bilinear, zeros outside (``torch.nn.functional.
  grid_sample``, ``align_corners=False``);
* ``noise``: additive Gaussian noise of that standard deviation, clipped to ``[0, 1]``, drawn
  from a generator seeded with ``seed`` (the same noise for every model);
* ``contrast``: ``m + c (u - m)`` around each image's mean ``m``.

Strength 0 (or factor 1) is the identity (tested), so the first column is the clean accuracy.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import torch.nn.functional as functional
from torch import Tensor

from proxcompress.errors import InvalidInputError

#: transformation -> graded strengths (the clean images are the identity of each)
TRANSFORMS: dict[str, tuple[float, ...]] = {
    "rotation": (10.0, 20.0, 30.0),
    "translation": (2.0, 4.0),
    "scaling": (0.8, 1.2),
    "noise": (0.1, 0.2, 0.4),
    "contrast": (0.5, 0.25),
}


def _affine(images: Tensor, matrix: Tensor) -> Tensor:
    x = images.to(torch.float64)  # float64 sampling: identities hold to ~1e-15
    grid = functional.affine_grid(matrix.to(torch.float64).expand(x.shape[0], 2, 3),
                                  list(x.shape), align_corners=False)
    out = functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                                 align_corners=False)
    return out.to(images.dtype)


def transform(images: Tensor, kind: str, strength: float, seed: int = 0) -> Tensor:
    """``images`` (``N x C x H x W`` in ``[0, 1]``) under one transformation.

    Raises:
        InvalidInputError (field ``kind``): an unknown transformation.
    """
    x = images.to(torch.float32)
    h, w = x.shape[-2:]
    if kind == "rotation":
        a = math.radians(strength)
        m = torch.tensor([[math.cos(a), -math.sin(a) * h / w, 0.0],
                          [math.sin(a) * w / h, math.cos(a), 0.0]])
        return _affine(x, m)
    if kind == "translation":
        # grid units: 2 / size per pixel; sampling at x - t moves the content by +t
        m = torch.tensor([[1.0, 0.0, -2.0 * strength / w], [0.0, 1.0, -2.0 * strength / h]])
        return _affine(x, m)
    if kind == "scaling":
        if strength <= 0:
            raise InvalidInputError("strength", f"= {strength} must be > 0 for scaling")
        m = torch.tensor([[1.0 / strength, 0.0, 0.0], [0.0, 1.0 / strength, 0.0]])
        return _affine(x, m)
    if kind == "noise":
        g = torch.Generator().manual_seed(seed)
        return (x + strength * torch.randn(x.shape, generator=g)).clamp(0.0, 1.0)
    if kind == "contrast":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return mean + strength * (x - mean)
    raise InvalidInputError("kind", f"= {kind!r}; accepted: {', '.join(TRANSFORMS)}")


def robustness(run_dir: str | os.PathLike[str], batch_size: int = 1000, seed: int = 0
               ) -> dict[str, Any]:
    """The deployed model of the run in ``run_dir`` on its test set under every transformation:
    ``{"clean": acc, "rotation": {"10": acc, ...}, ...}`` (percent).

    Raises:
        InvalidInputError: a run whose data are not Fashion-MNIST images.
    """
    from proxcompress.training.data import FMNIST_MEAN, FMNIST_STD, Dataset
    from proxcompress.training.layers import hard_quantization, quantized_modules
    from proxcompress.training.trainer import evaluate, load_run, run_data

    cfg, model = load_run(run_dir)
    if cfg.data.name not in ("fashion-mnist", "embedded") or cfg.data.image_size != 28:
        raise InvalidInputError("--run", "robustness needs a 28x28 Fashion-MNIST run")
    _, _, test = run_data(cfg)
    pixels = test.x * FMNIST_STD + FMNIST_MEAN  # back to [0, 1]

    def accuracy(images: Tensor) -> float:
        data = Dataset((images - FMNIST_MEAN) / FMNIST_STD, test.y, test.classes, test.name)
        if quantized_modules(model):
            with hard_quantization(model):
                return evaluate(model, data, batch_size)[0]
        return evaluate(model, data, batch_size)[0]

    out: dict[str, Any] = {"clean": accuracy(pixels), "samples": len(test), "seed": seed}
    for kind, strengths in TRANSFORMS.items():
        out[kind] = {f"{s:g}": accuracy(transform(pixels, kind, s, seed)) for s in strengths}
    return out


__all__ = ["TRANSFORMS", "robustness", "transform"]
