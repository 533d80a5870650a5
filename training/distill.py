"""Knowledge distillation from a finished run (``distill.teacher``).

BinaryViT trains its student with the teacher's soft targets only: the cross-entropy between
the teacher's softmax and the student's log-softmax (ReActNet / MEAL style; Le & Li, CVPRW 2023,
``losses.py`` with mixup off; methods.md section 2). With a temperature ``T`` and a weight
``alpha`` (Hinton, Vinyals, Dean, arXiv:1503.02531):

.. math::

    L = \\alpha T^2 \\, \\mathrm{CE}(\\mathrm{softmax}(t / T), \\mathrm{log\\_softmax}(s / T))
        + (1 - \\alpha) \\, \\mathrm{CE}(y, s),

``alpha = 1``, ``T = 1`` by default (BinaryViT's). The teacher is the model of a finished run
folder (its latest checkpoint, eval mode, no gradient); ``{seed}`` in the path is replaced by the
student's seed, so each seed can learn from its own teacher.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from proxcompress.errors import InvalidInputError

if TYPE_CHECKING:
    from proxcompress.training.config import TrainConfig


def soft_cross_entropy(student: Tensor, teacher: Tensor, temperature: float = 1.0) -> Tensor:
    """``T^2 mean_n sum_k softmax(t_n / T)_k (-log_softmax(s_n / T)_k)`` (logits ``(N, K)``)."""
    p = torch.softmax(teacher / temperature, dim=1)
    return -(p * functional.log_softmax(student / temperature, dim=1)).sum(1).mean() \
        * temperature**2


def teacher_folder(cfg: TrainConfig) -> Path | None:
    """``distill.teacher`` with ``{seed}`` replaced by the run's seed (``None``: no teacher)."""
    if cfg.distill.teacher is None:
        return None
    return Path(cfg.distill.teacher.replace("{seed}", str(cfg.seed)))


class Distiller:
    """The teacher of a run and the distillation loss.

    Args:
        cfg: the student's config (``distill`` section).
        device: where the teacher runs.

    Raises:
        InvalidInputError (field ``distill.teacher``): no finished run there, or a run whose
            data (name, split, subsets, image size, channels) differ from the student's.
    """

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        from proxcompress.training.trainer import load_run

        folder = teacher_folder(cfg)
        assert folder is not None
        if not (folder / "summary.json").is_file():
            raise InvalidInputError("distill.teacher", f"{str(folder)!r} holds no finished run "
                                    "(no summary.json)")
        theirs, model = load_run(folder)
        mine, other = cfg.data, theirs.data
        for key in ("name", "root", "val_fraction", "val_seed", "train_subset", "image_size",
                    "in_channels", "synthetic_samples"):
            if getattr(mine, key) != getattr(other, key):
                raise InvalidInputError("distill.teacher", f"the run in {str(folder)!r} was "
                                        f"trained on other data (data.{key} = "
                                        f"{getattr(other, key)!r}, this run "
                                        f"{getattr(mine, key)!r}): it may have seen this run's "
                                        "validation samples")
        self.teacher: nn.Module = model.to(device).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.alpha = cfg.distill.alpha
        self.temperature = cfg.distill.temperature
        self.folder = folder

    def loss(self, student: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """The distillation loss of the student's logits on the batch ``(x, y)``."""
        with torch.no_grad():
            teacher = self.teacher(x)
        if teacher.shape != student.shape:
            raise InvalidInputError("distill.teacher", f"the teacher gives {teacher.shape[1]} "
                                    f"classes, the student {student.shape[1]}")
        out = self.alpha * soft_cross_entropy(student, teacher, self.temperature)
        if self.alpha < 1:
            out = out + (1 - self.alpha) * functional.cross_entropy(student, y)
        return out


__all__ = ["Distiller", "soft_cross_entropy", "teacher_folder"]
