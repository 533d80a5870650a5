"""Training tasks: what a run does with its data, one class per task, chosen by ``data.name``.

A task owns the run's data (training, validation, test), turns an epoch into optimizer steps
(:meth:`Task.start_epoch`, :meth:`Task.step`: the batch, the forward pass, the loss and the
running sums of the epoch's training metrics) and measures a model on the validation or the test
split (:meth:`Task.evaluate`). The trainer keeps everything else (optimizer, schedules, recipes'
hooks, checkpoints, signals, data parallelism).

* :class:`ClassificationTask` (images, spoken commands): a seeded permutation per epoch,
  mini-batches of ``optim.batch_size``, cross-entropy (or, with ``distill.teacher``, the
  distiller's loss, :mod:`proxcompress.training.distill`), accuracy in percent.
* :class:`LanguageModelTask` (``kjv``, ``kjv-sample``): the training token stream cut into
  ``optim.batch_size`` contiguous rows after a random offset in ``[0, data.bptt)`` drawn per
  epoch (seeded by ``(seed, epoch)``; every epoch has the same number of steps), truncated
  back-propagation through time over windows of ``data.bptt`` tokens, the LSTM state carried
  from window to window (detached; reset at each epoch; saved in checkpoints, so a resumed run
  equals an uninterrupted one), mean negative log-likelihood per token; evaluation on
  ``data.eval_streams`` contiguous streams of the split with the state carried through, no
  dropout: ``perplexity = exp(total NLL / tokens)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from proxcompress.errors import InvalidInputError

if TYPE_CHECKING:
    from proxcompress.training.config import TrainConfig
    from proxcompress.training.data import Dataset
    from proxcompress.training.distill import Distiller
    from proxcompress.training.text import TextData

#: ``data.name`` -> task kind (every other data set is a classification task)
LANGUAGE_DATA = ("kjv", "kjv-sample")


def task_kind(data_name: str) -> str:
    """``language-model`` for the text corpora, ``classification`` otherwise."""
    return "language-model" if data_name in LANGUAGE_DATA else "classification"


def task_class(data_name: str) -> type[Task]:
    """The task class of ``data.name`` (:data:`TASKS`)."""
    return TASKS[task_kind(data_name)]


class Task:
    """What a training run does with its data (module docstring). ``metric`` names the main
    metric (``accuracy`` in percent, higher is better; ``perplexity``, lower is better)."""

    kind: ClassVar[str] = ""
    metric: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True

    #: running sums of an epoch's training metrics (the checkpoint's ``run.acc``)
    sums: ClassVar[int] = 3

    classes: int
    steps_per_epoch: int
    train_size: int

    def start_epoch(self, epoch: int, step: int) -> None:
        """Prepare epoch ``epoch`` (global count), resumed at ``step`` (0: from its start)."""

    def step(self, model: nn.Module, step: int) -> tuple[Tensor, list[float]]:
        """The loss of step ``step`` (to back-propagate) and the step's increments of the
        epoch's running sums."""
        raise NotImplementedError

    def sums_size(self) -> int:
        return self.sums

    def train_record(self, sums: list[float]) -> dict[str, float]:
        """The epoch's training metrics from the running sums (all processes reduced)."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float] | None:
        """``{metric: ..., "loss": ...}`` of ``model`` on ``val`` or ``test`` (``None``: no
        such split)."""
        raise NotImplementedError

    def has_validation(self) -> bool:
        return True

    def split_sizes(self) -> dict[str, int]:
        """``train_samples``, ``val_samples``, ``test_samples`` for the summary."""
        raise NotImplementedError

    def state_tensors(self) -> dict[str, Tensor]:
        """Tensors to checkpoint (a resumed run continues exactly)."""
        return {}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore :meth:`state_tensors`."""


class ClassificationTask(Task):
    """Mini-batch classification with cross-entropy (module docstring)."""

    kind = "classification"
    metric = "accuracy"
    higher_is_better = True

    def __init__(self, cfg: TrainConfig, train: Dataset, val: Dataset | None, test: Dataset,
                 device: torch.device, rank: int = 0, world: int = 1,
                 eval_fn: Callable[..., tuple[float, float]] | None = None,
                 distiller: Distiller | None = None) -> None:
        self.cfg = cfg
        self.distiller = distiller
        self.train_data, self.val_data, self.test_data = train, val, test
        self.device, self.rank, self.world = device, rank, world
        self.classes = train.classes
        self.local_batch = cfg.optim.batch_size // world
        self.shard = len(train) // world
        self.steps_per_epoch = math.ceil(self.shard / self.local_batch)
        self.train_size = len(train)
        self.perm = torch.empty(0, dtype=torch.long)
        self._eval = eval_fn

    def start_epoch(self, epoch: int, step: int) -> None:
        g = torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch)
        perm = torch.randperm(len(self.train_data), generator=g)
        self.perm = perm[: self.shard * self.world][self.rank::self.world]

    def step(self, model: nn.Module, step: int) -> tuple[Tensor, list[float]]:
        idx = self.perm[step * self.local_batch:(step + 1) * self.local_batch]
        x = self.train_data.x[idx].to(self.device)
        y = self.train_data.y[idx].to(self.device)
        out = model(x)
        loss = (self.distiller.loss(out, x, y) if self.distiller is not None
                else functional.cross_entropy(out, y))
        return loss, [float(loss.detach()) * len(idx), float((out.argmax(1) == y).sum()),
                      float(len(idx))]

    def train_record(self, sums: list[float]) -> dict[str, float]:
        loss_sum, correct, seen = sums
        return {"loss": loss_sum / max(seen, 1), "train_accuracy": 100.0 * correct / max(seen, 1)}

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float] | None:
        data = self.val_data if split == "val" else self.test_data
        if data is None:
            return None
        assert self._eval is not None
        acc, loss = self._eval(model, data, self.cfg.eval_batch_size, self.device)
        return {"accuracy": acc, "loss": loss}

    def has_validation(self) -> bool:
        return self.val_data is not None

    def split_sizes(self) -> dict[str, int]:
        return {"train_samples": len(self.train_data),
                "val_samples": 0 if self.val_data is None else len(self.val_data),
                "test_samples": len(self.test_data)}


class LanguageModelTask(Task):
    """Word-level language modelling with truncated BPTT (module docstring). The model is
    called as ``model(tokens (T, B), hx, targets) -> (hidden, hx, mean NLL)``
    (:class:`~proxcompress.training.models.lstm.LSTMLanguageModel`)."""

    kind = "language-model"
    metric = "perplexity"
    higher_is_better = False
    sums = 2

    def __init__(self, cfg: TrainConfig, data: TextData, device: torch.device, rank: int = 0,
                 world: int = 1) -> None:
        from proxcompress.training.text import windows

        self.cfg = cfg
        self.data = data
        self.device, self.rank, self.world = device, rank, world
        self.classes = data.classes
        self.bptt = cfg.data.bptt
        batch = cfg.optim.batch_size
        n = int(data.train.shape[0])
        self.length = (n - self.bptt) // batch
        if self.length < 2:  # rows of at least 2 tokens after the random offset
            if n - 2 * batch >= 1:
                raise InvalidInputError("data.bptt", f"= {self.bptt}; accepted: [1, "
                                        f"{n - 2 * batch}] for the {n} training tokens in rows "
                                        f"of optim.batch_size = {batch}")
            raise InvalidInputError("optim.batch_size", f"= {batch}; accepted: [1, "
                                    f"{max((n - self.bptt) // 2, 1)}] for the {n} training "
                                    f"tokens with data.bptt = {self.bptt}")
        streams = cfg.data.eval_streams
        sizes = (int(data.valid.shape[0]), int(data.test.shape[0]))
        if min(sizes) // streams < 2:  # every evaluation stream holds a prediction
            raise InvalidInputError("data.eval_streams", f"= {streams}; accepted: [1, "
                                    f"{max(min(sizes) // 2, 1)}] (streams of at least 2 of "
                                    f"the {sizes[0]} validation and {sizes[1]} test tokens)")
        self.windows = windows(self.length, self.bptt)
        self.steps_per_epoch = len(self.windows)
        self.train_size = int(data.train.shape[0])
        self.rows = torch.empty(0, dtype=torch.long)
        self.hx: tuple[Tensor, Tensor] | None = None

    def start_epoch(self, epoch: int, step: int) -> None:
        g = torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch)
        offset = int(torch.randint(0, self.bptt, (1,), generator=g))
        batch = self.cfg.optim.batch_size
        rows = self.data.train[offset: offset + batch * self.length].reshape(batch, self.length)
        self.rows = rows[self.rank::self.world]
        if step == 0:
            self.hx = None

    def step(self, model: nn.Module, step: int) -> tuple[Tensor, list[float]]:
        start, size = self.windows[step]
        x = self.rows[:, start:start + size].T.to(self.device)
        y = self.rows[:, start + 1:start + size + 1].T.to(self.device)
        hx = None if self.hx is None else (self.hx[0].detach(), self.hx[1].detach())
        _, state, loss = model(x, hx, y)
        self.hx = (state[0].detach(), state[1].detach())
        n = float(y.numel())
        return loss, [float(loss.detach()) * n, n]

    def train_record(self, sums: list[float]) -> dict[str, float]:
        nll, tokens = sums
        mean = nll / max(tokens, 1)
        return {"loss": mean, "train_perplexity": math.exp(min(mean, 700.0))}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float] | None:
        from proxcompress.training.text import stream_batches, windows

        tokens = self.data.valid if split == "val" else self.data.test
        rows = stream_batches(tokens, self.cfg.data.eval_streams)
        was = model.training
        model.eval()
        total, count = 0.0, 0
        hx = None
        for start, size in windows(int(rows.shape[1]), self.bptt):
            x = rows[:, start:start + size].T.to(self.device)
            y = rows[:, start + 1:start + size + 1].T.to(self.device)
            _, hx, loss = model(x, hx, y)
            total += float(loss) * y.numel()
            count += y.numel()
        model.train(was)
        mean = total / max(count, 1)
        return {"perplexity": math.exp(min(mean, 700.0)), "loss": mean,
                "tokens": float(count)}

    def split_sizes(self) -> dict[str, int]:
        return {"train_samples": int(self.data.train.shape[0]),
                "val_samples": int(self.data.valid.shape[0]),
                "test_samples": int(self.data.test.shape[0])}

    def state_tensors(self) -> dict[str, Tensor]:
        if self.hx is None:
            return {}
        return {"hx_h": self.hx[0].detach().cpu(), "hx_c": self.hx[1].detach().cpu()}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore the carried LSTM state, checked to be ``(layers, rows of this process,
        hidden)`` floats for both ``h`` and ``c`` (a checkpoint from another layout is refused,
        naming ``--resume``)."""
        if not tensors:
            return
        lstm = self.cfg.model.lstm
        rows = len(range(self.rank, self.cfg.optim.batch_size, self.world))
        want = (lstm.layers, rows, lstm.hidden)
        got = [tensors.get(k) for k in ("hx_h", "hx_c")]
        if set(tensors) != {"hx_h", "hx_c"} or not all(
                t is not None and tuple(t.shape) == want and t.is_floating_point() for t in got):
            shapes = {k: tuple(v.shape) for k, v in tensors.items()}
            raise InvalidInputError("--resume", f"the checkpoint's LSTM state {shapes} does not "
                                    f"fit this run (hx_h and hx_c of shape {want})")
        self.hx = (tensors["hx_h"].to(self.device), tensors["hx_c"].to(self.device))


#: task kind -> class
TASKS: dict[str, type[Task]] = {t.kind: t for t in (ClassificationTask, LanguageModelTask)}


def language_data(cfg: TrainConfig) -> TextData:
    """The corpus of ``data.name`` (``kjv``: the ``data.root`` folder; ``kjv-sample``: the
    embedded sample)."""
    from proxcompress.training.text import load_corpus

    if cfg.data.name == "kjv-sample":
        return load_corpus(None)
    if not cfg.data.root:
        raise InvalidInputError("data.root", "is required for data.name: kjv (a folder made by "
                                "'proxcompress data kjv --out DIR')")
    return load_corpus(cfg.data.root)


def language_classes(cfg: TrainConfig) -> int:
    """The vocabulary size of the run's corpus without loading its tokens (the checked
    manifest's ``options.vocab_size``)."""
    from proxcompress.training.data import read_manifest
    from proxcompress.training.text import FORMAT

    if cfg.data.name == "kjv-sample" or not cfg.data.root:
        return language_data(cfg).classes
    manifest = read_manifest(cfg.data.root, FORMAT, "proxcompress data kjv")
    options = manifest.get("options")
    size = options.get("vocab_size") if isinstance(options, dict) else None
    if not isinstance(size, int) or isinstance(size, bool) or size < 3:
        raise InvalidInputError("data.root", f"{cfg.data.root!r}: manifest.json's "
                                "options.vocab_size must be an integer >= 3")
    return size


__all__ = ["LANGUAGE_DATA", "TASKS", "ClassificationTask", "LanguageModelTask", "Task",
           "language_classes", "language_data", "task_class", "task_kind"]
