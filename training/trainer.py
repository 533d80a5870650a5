"""The trainer behind ``proxcompress train``.

One run is a list of *phases*: ``train`` (``epochs``), or, with SPR pruning, ``pretrain``
(a reference network for ``M``), ``train`` (from a fresh init with cross-entropy + SPR) and
``finetune`` (after the threshold search and physical removal of the pruned channels;
Cacciola et al., arXiv:2206.14056, methods.md section 7).

Reproducibility: the model init is seeded from ``seed``; the order of epoch ``e`` is a
permutation drawn from a generator seeded with ``(seed, e)``; the learning rate is a function
of the step; dropout draws from the global torch RNG whose state is checkpointed. A checkpoint
is written at the end of every epoch and when the run is interrupted (Ctrl-C / SIGTERM: the
signal only sets a flag, checked between steps, so no step is cut in half; a second signal
stops at once without saving), at the last completed step, with the partial epoch's counters;
``--resume`` restarts from it and skips the steps already taken, so an interrupted and resumed
run ends with the same weights as an uninterrupted one (bit-exact on one process; tested).

Data-parallel under ``torchrun`` (``WORLD_SIZE > 1``): DistributedDataParallel with ``gloo`` on
CPU and ``nccl`` on GPU; each process takes every ``world``-th sample of the epoch's
permutation and ``batch_size / world`` samples per step; rank 0 evaluates and writes files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from proxcompress.atomic import hold_folder, release_folder, write_json_atomic, write_text_atomic
from proxcompress.errors import InvalidInputError
from proxcompress.training.allocator import tune_allocator
from proxcompress.training.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from proxcompress.training.config import TrainConfig, config_from_dict, dump_config
from proxcompress.training.data import Dataset, input_spec, load_dataset, split_validation
from proxcompress.training.layers import hard_quantization, quantized_modules
from proxcompress.training.models import PrunableModel, build_model
from proxcompress.training.mulfree import MulFreeRecipe
from proxcompress.training.optim import MuSchedule, ProxConnectOptimizer
from proxcompress.training.pruning import apply_pruning, prune_channels, total_channels
from proxcompress.training.quantize import model_summary
from proxcompress.training.recipes import Recipe, TrainingHooks, recipe_from_config
from proxcompress.training.spr import SPRRegularizer, compute_M, threshold_search
from proxcompress.training.tasks import (
    ClassificationTask,
    LanguageModelTask,
    Task,
    language_classes,
    language_data,
    task_class,
    task_kind,
)

if TYPE_CHECKING:
    from proxcompress.training.distill import Distiller

EXIT_INTERRUPTED = 130
#: checkpoint ``extra`` tensors of the task (the LSTM state of a language model)
TASK_PREFIX = "task."
#: per-step freezing metric log of a run folder (``mulfree.freezing_every``)
FREEZING = "freezing.jsonl"
#: per-step training log of a run folder: ``step`` (counted over all phases), ``epoch``
#: (fractional, over all phases), ``phase``, the mini-batch's cross-entropy ``loss``, ``lr``
#: and ``mu``; the curves plot it (one point per step, not one per epoch)
STEPS = "steps.jsonl"


class Interrupted(Exception):
    """The run was interrupted (Ctrl-C, SIGTERM, or a test hook); a checkpoint was saved."""


class HardStop(Exception):
    """A second Ctrl-C / SIGTERM: the run stopped at once; the last checkpoint stands."""


@dataclass
class _Dist:
    world: int = 1
    rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(cfg: TrainConfig) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device", "= cuda but no CUDA device is available")
    if world <= 1:
        return _Dist(1, 0, torch.device("cuda" if want_cuda else "cpu"))
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
    rank = dist.get_rank()
    if want_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return _Dist(dist.get_world_size(), rank, device)


def _teardown_distributed(synchronize: bool) -> None:
    """Wait for every rank (after a normal finish) and destroy the process group before the
    interpreter exits: a rank that left while another still used the group aborted at exit
    ("terminate called without an active exception") in about a third of the 2-process CPU runs.
    After an error or an interruption there is no barrier (a peer may never reach it)."""
    import torch.distributed as dist

    if dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def _all_reduce(values: list[float], d: _Dist) -> list[float]:
    if d.world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return t.tolist()


def _lr_at(cfg: TrainConfig, base_lr: float, step: int, total: int, epoch: int) -> float:
    o = cfg.optim
    if o.schedule == "constant":
        return base_lr
    if o.schedule == "multistep":
        return base_lr * o.gamma ** sum(1 for m in o.milestones if epoch >= m)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(step / max(total, 1), 1.0)))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _versions() -> dict[str, Any]:
    from proxcompress import __version__
    from proxcompress.reproduce.machine import cpu_model

    return {"proxcompress": __version__, "torch": torch.__version__,
            "python": platform.python_version(), "git_commit": _git_commit(),
            "machine": platform.machine(), "cpu_model": cpu_model(),
            "cpu_threads": torch.get_num_threads()}


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, batch_size: int = 1000,
             device: torch.device | None = None) -> tuple[float, float]:
    """``(accuracy in percent, mean cross-entropy)`` of ``model`` (eval mode) on ``data``."""
    was = model.training
    model.eval()
    correct = 0
    loss = 0.0
    dev = device or torch.device("cpu")
    for i in range(0, len(data), batch_size):
        x = data.x[i:i + batch_size].to(dev)
        y = data.y[i:i + batch_size].to(dev)
        out = model(x)
        loss += float(functional.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
    model.train(was)
    n = max(len(data), 1)
    return 100.0 * correct / n, loss / n


def inference_ms(model: nn.Module, shape: tuple[int, ...], batch: int = 256, repeats: int = 20
                 ) -> float:
    """Median CPU wall time (ms) of one eval forward pass on a batch of ``batch`` inputs."""
    model.eval()
    x = torch.randn((batch, *shape))
    times = []
    with torch.no_grad():
        for i in range(repeats + 3):
            t0 = time.perf_counter()
            model(x)
            if i >= 3:
                times.append(time.perf_counter() - t0)
    times.sort()
    return 1000.0 * times[len(times) // 2]


def mulfree_recipe(cfg: TrainConfig) -> MulFreeRecipe | None:
    """The config's multiplication-free recipe, or ``None`` for other ``quant.weights``."""
    recipe = recipe_from_config(cfg)
    return recipe if isinstance(recipe, MulFreeRecipe) else None


def initial_state(cfg: TrainConfig) -> dict[str, Tensor] | None:
    """The weights of ``model.init_from`` (``None`` when unset), after checking that the run
    there is a finished full-precision, unpruned run of the same model and data.

    Raises:
        InvalidInputError (field ``model.init_from``): no checkpoint there, or another model,
            data set, quantizer or a pruned model.
    """
    path = cfg.model.init_from
    if not path:
        return None
    if not has_checkpoint(path):
        raise InvalidInputError("model.init_from", f"{path!r} holds no checkpoint (a run folder "
                                "of 'proxcompress train')")
    state, _, meta, _, _ = load_checkpoint(path, "model.init_from")
    try:
        other = config_from_dict(meta.get("config"))
    except InvalidInputError as exc:
        raise InvalidInputError("model.init_from", f"the run in {path!r} records an invalid "
                                f"config ({exc})") from None
    mine = replace(cfg.model, init_from=None, init_exclude=[])
    theirs = replace(other.model, init_from=None, init_exclude=[])
    checks = [("model", mine, theirs), ("data.name", cfg.data.name, other.data.name),
              ("data.image_size", cfg.data.image_size, other.data.image_size),
              ("data.in_channels", cfg.data.in_channels, other.data.in_channels),
              ("quant.weights", "none", other.quant.weights)]
    for name, want, got in checks:
        if want != got:
            raise InvalidInputError("model.init_from", f"the run in {path!r} differs in {name} "
                                    f"({got!r}; this run needs {want!r})")
    if not isinstance(meta.get("run"), dict) or meta["run"].get("pruned"):
        raise InvalidInputError("model.init_from", f"the run in {path!r} is pruned or records "
                                "no run state")
    if other.data.classes != cfg.data.classes and "head" not in cfg.model.init_exclude:
        raise InvalidInputError("model.init_exclude", f"the run in {path!r} has other classes "
                                f"({other.data.classes}): exclude the classifier (head)")
    excluded = tuple(f"{p}." for p in cfg.model.init_exclude)
    kept = {k: v for k, v in state.items() if not k.startswith(excluded)}
    with torch.device("meta"):  # shapes only: nothing allocated, no RNG drawn
        fresh = base_model(cfg, run_classes(cfg))
    _load_into(fresh, kept, excluded, path, assign=True)
    return kept


def base_model(cfg: TrainConfig, classes: int, seed: int | None = None) -> PrunableModel:
    """The config's model before any layer is swapped (full precision), seeded."""
    m = cfg.model
    return build_model(
        m.name, in_channels=cfg.data.in_channels, image_size=cfg.data.image_size,
        classes=classes, hidden=m.hidden, width=m.width, stages=m.stages, blocks=m.blocks,
        batchnorm=m.batchnorm, activation=m.activation, dropout=m.dropout, seed=seed,
        vit=m.vit, lstm=dataclasses.asdict(m.lstm),
    )


def build_run_model(cfg: TrainConfig, classes: int, seed: int,
                    initial_state: dict[str, Tensor] | None = None) -> PrunableModel:
    """The config's model, initialized from ``seed`` (then from ``initial_state``, a
    full-precision state dict of the same model, when given), with its quantized or
    multiplication-free layers swapped in (the config's recipe: what :class:`Trainer`
    trains)."""
    model = base_model(cfg, classes, seed)
    if initial_state is not None:  # all but the excluded modules (model.init_exclude)
        _load_into(model, initial_state, tuple(f"{p}." for p in cfg.model.init_exclude),
                   cfg.model.init_from or "", assign=False)
    recipe = recipe_from_config(cfg)
    if recipe is not None:
        recipe.apply(model)
    return model


def run_data(cfg: TrainConfig) -> tuple[Dataset, Dataset | None, Dataset]:
    """The run's ``(train, validation, test)`` data: the validation split carved out of the
    training set first (``data.val_fraction``, seeded by ``data.val_seed``), then the seeded
    training and test subsets; validation is ``None`` when ``val_fraction`` is 0."""
    d = cfg.data
    train, test = load_dataset(d.name, d.root, cfg.seed, d.synthetic_samples, d.image_size,
                               d.in_channels, d.standardize)
    if d.classes is not None:
        train, test = (data.relabel(d.classes) for data in (train, test))
    train, val = split_validation(train, d.val_fraction, d.val_seed)
    return (train.subset(d.train_subset, cfg.seed), val, test.subset(d.test_subset, cfg.seed))


def make_task(cfg: TrainConfig, device: torch.device | None = None, rank: int = 0,
              world: int = 1, distiller: Distiller | None = None) -> Task:
    """The run's :mod:`task <proxcompress.training.tasks>` with its data loaded: a language
    model for the text corpora, a classification otherwise (:func:`run_data`; its loss the
    ``distiller``'s when given)."""
    dev = device or torch.device("cpu")
    if task_kind(cfg.data.name) == "language-model":
        return LanguageModelTask(cfg, language_data(cfg), dev, rank, world)
    train, val, test = run_data(cfg)
    return ClassificationTask(cfg, train, val, test, dev, rank, world, evaluate, distiller)


def run_classes(cfg: TrainConfig) -> int:
    """The classes of the run's task without loading the data where it can: the vocabulary
    size for a language model, else the data set's classes (``data.classes``: the kept
    subset's)."""
    if task_kind(cfg.data.name) == "language-model":
        return language_classes(cfg)
    return input_spec(cfg.data.name, cfg.data.image_size, cfg.data.in_channels,
                      cfg.data.root, cfg.data.classes)[1]


def run_phases(cfg: TrainConfig) -> list[tuple[str, int]]:
    """The run's phases and their epochs: SPR's pretrain / train / finetune, else one."""
    if cfg.spr.enabled and cfg.spr.method == "magnitude":  # the same epochs, no reference
        return [("train", cfg.spr.pretrain_epochs + cfg.epochs),
                ("finetune", cfg.spr.finetune_epochs)]
    if cfg.spr.enabled:
        return [("pretrain", cfg.spr.pretrain_epochs), ("train", cfg.epochs),
                ("finetune", cfg.spr.finetune_epochs)]
    return [("train", cfg.epochs)]


def stop_index(cfg: TrainConfig, stop_after: str | None) -> int | None:
    """The index of the phase ``stop_after`` names (``None`` for ``None``): one of the run's
    phases before its last.

    Raises:
        InvalidInputError (field ``--stop-after``): any other value.
    """
    if stop_after is None:
        return None
    names = [name for name, _ in run_phases(cfg)[:-1]]
    if stop_after not in names:
        accepted = ", ".join(names) if names else "none (this run has a single phase)"
        raise InvalidInputError("--stop-after", f"= {stop_after!r} is not a phase of this run "
                                f"before its last; accepted: {accepted}")
    return names.index(stop_after)


def phase_seed(cfg: TrainConfig, phase: str) -> int:
    """The init seed of a phase's model: ``seed``, or ``seed + 1`` for a pruning run's train
    and finetune phases (so SPR, restarting after its reference, and the magnitude baseline
    start from the same init)."""
    return cfg.seed + (1 if phase != "pretrain" and cfg.spr.enabled else 0)


def run_model(cfg: TrainConfig, classes: int, phase: str) -> PrunableModel:
    """The freshly built model of a phase (:func:`phase_seed`)."""
    return build_run_model(cfg, classes, phase_seed(cfg, phase))


def load_run(run_dir: str | os.PathLike[str], field: str = "--run",
             kinds: tuple[str, ...] = ("classification", "language-model")
             ) -> tuple[TrainConfig, PrunableModel]:
    """The config and the latest checkpointed model of a run folder (pruned as it was, on the
    CPU, in eval mode); ``kinds``: the task kinds the caller takes (a command that classifies
    refuses a language-model run naming ``field``).

    Raises:
        InvalidInputError (field ``field``, the flag that gave ``run_dir``): no run there (no
            ``config.yaml`` or no checkpoint; also a ``FileNotFoundError``), a corrupt or
            inconsistent checkpoint (see ``load_checkpoint`` and :mod:`.runchecks`).
    """
    from proxcompress.errors import MissingInputError
    from proxcompress.training.runchecks import check_resume, checked_run_state

    cfg = config_for_resume(run_dir, [], field)
    kind = task_kind(cfg.data.name)
    if kind not in kinds:
        raise InvalidInputError(field, f"{str(run_dir)!r} holds a {kind} run (data.name: "
                                f"{cfg.data.name}); accepted: {' or '.join(kinds)} runs")
    if not has_checkpoint(run_dir):
        raise MissingInputError(field, f"no checkpoint in {str(run_dir)!r}")
    model_state, _, meta, _, _ = load_checkpoint(run_dir, field)
    phases = run_phases(cfg)
    run = checked_run_state(meta, phases, field, task_class(cfg.data.name).sums)
    check_resume(cfg, meta, run, field)
    phase = phases[min(run["phase"], len(phases) - 1)][0]
    model = run_model(cfg, run_classes(cfg), phase)
    _load_state(model, model_state, field, run_dir, run.get("pruned"))
    return cfg, model.eval()


def _load_state(model: nn.Module, state: dict[str, Tensor], field: str,
                where: str | os.PathLike[str], pruned: dict[str, list[int]] | None = None,
                assign: bool = False) -> None:
    """Apply a checkpoint's recorded pruning and weights to ``model``; a checkpoint that does
    not fit the config (other widths, missing or extra tensors) is refused naming ``field``."""
    try:
        if pruned:
            apply_pruning(model, pruned)
        model.load_state_dict(state, assign=assign)
    except (RuntimeError, KeyError, IndexError, ValueError, TypeError) as exc:
        if isinstance(exc, InvalidInputError):
            exc = ValueError(exc.detail)
        first = " ".join(str(exc).split())[:300]
        raise InvalidInputError(field, f"the checkpoint in {str(where)!r} does not fit the "
                                f"run's config ({first})") from None


def _load_into(model: nn.Module, state: dict[str, Tensor], excluded: tuple[str, ...],
               where: str | os.PathLike[str], assign: bool) -> None:
    """Load ``model.init_from``'s weights into ``model``: every tensor but the excluded modules'
    must be there with its shape; refused naming ``model.init_from`` otherwise."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=assign)
    except (RuntimeError, KeyError, IndexError, ValueError, TypeError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise InvalidInputError("model.init_from", f"the weights in {str(where)!r} do not fit "
                                f"this model ({first})") from None
    wrong = [k for k in missing if not k.startswith(excluded)] + list(unexpected)
    if wrong:
        raise InvalidInputError("model.init_from", f"the weights in {str(where)!r} do not fit "
                                f"this model: {', '.join(wrong[:4])}")


class Trainer:
    """One training run in ``out_dir`` (see the module docstring).

    Args:
        cfg: the validated config.
        out_dir: the run folder.
        resume: continue from the checkpoint in ``out_dir``.
        interrupt_after_steps: test hook: raise :class:`Interrupted` after that many optimizer
            steps of this process (a checkpoint is saved first, as on Ctrl-C).
        log: where progress lines go (rank 0 only).
        stop_after: a phase of the run but its last: stop once it has finished and its
            boundary checkpoint is saved (no summary; ``train --fork-from`` starts other runs
            from there, :mod:`proxcompress.training.fork`).

    Raises:
        InvalidInputError (field ``--stop-after``): ``stop_after`` is not a phase of the run
            before its last.
    """

    def __init__(self, cfg: TrainConfig, out_dir: str | os.PathLike[str], *, resume: bool = False,
                 interrupt_after_steps: int | None = None,
                 log: Callable[[str], None] | None = None,
                 stop_after: str | None = None) -> None:
        self.cfg = cfg
        self.out = Path(out_dir)
        self.resume = resume
        self.interrupt_after_steps = interrupt_after_steps
        self.log = log or (lambda s: print(s, file=sys.stderr, flush=True))
        self.phases = run_phases(cfg)
        self.stop_index = stop_index(cfg, stop_after)
        self._stop_signal = False
        self.recipe: Recipe | None = recipe_from_config(cfg)
        self.hooks = TrainingHooks()
        self.distiller: Any = None

    # ----------------------------------------------------------------------------- building
    def _model_for(self, phase: str) -> PrunableModel:
        return run_model(self.cfg, self.task.classes, phase)

    def _start_hooks(self, state: dict[str, Any]) -> None:
        """Create the recipe's training hooks (after the optimizer) and advance them to the
        current step (e.g. the homotopy's ``theta``); their state (e.g. freezing snapshots) is
        the model as it is now until a resume restores the checkpointed one."""
        self.hooks = TrainingHooks()
        if self.recipe is not None:
            self.hooks = self.recipe.hooks(self.model, self.cfg.epochs * self.steps_per_epoch,
                                           self.cfg)
        self.hooks.after_step(state["epoch"] * self.steps_per_epoch + state["step"])

    def _optimizer(self, model: nn.Module, lr: float) -> ProxConnectOptimizer:
        o = self.cfg.optim
        params = [p for p in model.parameters() if p.requires_grad]
        inner: torch.optim.Optimizer
        if o.name == "adam":
            inner = torch.optim.Adam(params, lr=lr, weight_decay=o.weight_decay)
        else:
            inner = torch.optim.SGD(params, lr=lr, momentum=o.momentum,
                                    weight_decay=o.weight_decay)
        mu = self.cfg.mu
        steps = max(1, self.cfg.epochs * self.steps_per_epoch)
        schedule = MuSchedule(mu.schedule, mu.scale, mu.start, mu.end, steps)
        clip = self.recipe.latent_clip if self.recipe is not None else None
        return ProxConnectOptimizer(inner, model, schedule, clip)

    # ------------------------------------------------------------------------------ signals
    def _on_signal(self, signum: int, frame: Any) -> None:
        """First Ctrl-C / SIGTERM: stop at the next step boundary (a step is never cut in
        half, so the saved state is consistent); a second one stops at once, unsaved."""
        if self._stop_signal:
            raise HardStop(f"second signal {signum}: stopped without saving")
        self._stop_signal = True

    # ---------------------------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        """Train to the end (or raise :class:`Interrupted` after saving a checkpoint)."""
        cfg = self.cfg
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        tune_allocator()  # glibc keeps the step's buffers (training/allocator.py)
        self.dist = _setup_distributed(cfg)
        torch.manual_seed(cfg.seed + self.dist.rank)
        d = self.dist
        self.distiller = None
        if cfg.distill.teacher is not None:
            from proxcompress.training.distill import Distiller

            self.distiller = Distiller(cfg, d.device)
        if cfg.optim.batch_size % d.world:
            raise InvalidInputError("optim.batch_size", f"= {cfg.optim.batch_size} must be a "
                                    f"multiple of the number of processes ({d.world})")
        self.task = make_task(cfg, d.device, d.rank, d.world, self.distiller)
        if isinstance(self.task, ClassificationTask):
            self.train_data = self.task.train_data
            self.val_data = self.task.val_data
            self.test_data = self.task.test_data
        self.steps_per_epoch = self.task.steps_per_epoch
        from proxcompress.training.runchecks import check_restart, preflight

        resuming = self.resume and has_checkpoint(self.out)
        if self.resume and not resuming:
            check_restart(self.out)
        self._initial = preflight(cfg, initial=not resuming)
        lock = -1
        if d.main:
            self.out.mkdir(parents=True, exist_ok=True)
            lock = hold_folder(self.out, "--resume" if self.resume else "--out")
        try:
            return self._run_locked()
        finally:
            release_folder(lock)

    def _run_locked(self) -> dict[str, Any]:
        """:meth:`run` once the run folder is held (rank 0)."""
        d = self.dist
        state = self._restore_or_start()
        previous = {}
        if threading_ok():
            previous = {s: signal.signal(s, self._on_signal)
                        for s in (signal.SIGTERM, signal.SIGINT)}
        finished = False
        try:
            if not self._loop(state):  # stopped at a phase boundary (``stop_after``)
                finished = True
                done = self.phases[state["phase"] - 1][0]
                if d.main:
                    self.log(f"stopped after the {done} phase; checkpoint in {self.out}")
                return {"stopped_after": done, "epochs": state["global_epoch"]}
            summary = self._finish(state)
            finished = True
            return summary
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            if d.world > 1:
                _teardown_distributed(synchronize=finished)

    # --------------------------------------------------------------------- state / resume
    def _restore_or_start(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "phase": 0, "epoch": 0, "step": 0, "global_epoch": 0, "M": None, "pruned": {},
            "threshold": None, "acc": [0.0] * self.task.sums_size(), "seconds": 0.0,
            "pretrain_accuracy": None,
            "before_pruning": None,
        }
        extra: dict[str, Tensor] = {}
        if self.resume and has_checkpoint(self.out):
            from proxcompress.training.runchecks import check_resume, checked_run_state

            model_state, opt_state, meta, rng, extra = load_checkpoint(self.out, "--resume")
            state.update(checked_run_state(meta, self.phases, "--resume",
                                           self.task.sums_size()))
            check_resume(self.cfg, meta, state, "--resume")
            phase = self.phases[min(state["phase"], len(self.phases) - 1)][0]
            self.model = self._model_for(phase)
            _load_state(self.model, model_state, "--resume", self.out, state["pruned"])
            self.model.to(self.dist.device)
            self.optimizer = self._optimizer(self.model, self._phase_lr(
                min(state["phase"], len(self.phases) - 1)))
            if opt_state is not None:
                try:
                    self.optimizer.load_state_dict({"optimizer": opt_state, **meta["wrapper"]})
                except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
                    raise InvalidInputError("--resume", f"the optimizer state in the checkpoint "
                                            f"does not fit the model ({str(exc)[:200]})"
                                            ) from None
            torch.set_rng_state(rng)
            self._truncate_metrics(state["global_epoch"],
                                   state["epoch"] * self.steps_per_epoch + state["step"],
                                   state["global_epoch"] * self.steps_per_epoch + state["step"])
            if self.dist.main:
                self.log(f"resumed from {self.out} at phase {self.phases[state['phase']][0]}, "
                         f"epoch {state['epoch']}, step {state['step']}")
        else:
            if self.resume and self.dist.main:
                self.log(f"no checkpoint in {self.out}; starting afresh")
            self.model = build_run_model(self.cfg, self.task.classes,
                                         phase_seed(self.cfg, self.phases[0][0]),
                                         self._initial).to(self.dist.device)
            self.optimizer = self._optimizer(self.model, self._phase_lr(0))
            if self.dist.main:
                for name in ("metrics.jsonl", FREEZING, STEPS):
                    (self.out / name).unlink(missing_ok=True)
        self._start_hooks(state)
        self.hooks.load_state_tensors({k: v for k, v in extra.items()
                                       if not k.startswith(TASK_PREFIX)})
        self.task.load_state_tensors({k[len(TASK_PREFIX):]: v for k, v in extra.items()
                                      if k.startswith(TASK_PREFIX)})
        if self.dist.main:
            write_text_atomic(self.out / "config.yaml", dump_config(self.cfg))
        return state

    def _phase_lr(self, phase: int) -> float:
        name = self.phases[phase][0]
        if name == "finetune":
            return self.cfg.spr.finetune_lr or self.cfg.optim.lr / 10
        return self.cfg.optim.lr

    def _truncate_metrics(self, epochs_done: int, steps_done: int, all_steps_done: int) -> None:
        """Drop the log lines written after the checkpoint being resumed (``steps_done``
        counts the current phase's steps, ``all_steps_done`` every phase's)."""
        if not self.dist.main:
            return
        for name, key, done in (("metrics.jsonl", "epoch", epochs_done),
                                (FREEZING, "step", steps_done),
                                (STEPS, "step", all_steps_done)):
            path = self.out / name
            if not path.exists():
                continue
            keep = [line for line in path.read_text(errors="replace").splitlines()
                    if _logged_at(line, key) <= done]
            write_text_atomic(path, "".join(line + "\n" for line in keep))

    def _append_step(self, state: dict[str, Any], phase: str, loss: float, lr: float) -> None:
        step = state["global_epoch"] * self.steps_per_epoch + state["step"]
        record = {"step": step, "epoch": round(step / self.steps_per_epoch, 6), "phase": phase,
                  "loss": loss, "lr": lr, "mu": self.optimizer.mu}
        with open(self.out / STEPS, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def _append_freezing(self, step: int, frozen: dict[str, float]) -> None:
        record = {"step": step, "epoch": step / self.steps_per_epoch, **frozen}
        with open(self.out / FREEZING, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def _save(self, state: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        wrapper = self.optimizer.state_dict()
        opt = wrapper.pop("optimizer")
        extra = {**self.hooks.state_tensors(),
                 **{TASK_PREFIX + k: v for k, v in self.task.state_tensors().items()}}
        save_checkpoint(self.out, self._bare().state_dict(), opt,
                        {"run": state, "wrapper": wrapper, "config": self.cfg.to_dict()}, extra)

    def _bare(self) -> nn.Module:
        return self.model

    # ---------------------------------------------------------------------------- the loop
    def _loop(self, state: dict[str, Any]) -> bool:
        """Train the remaining phases; False when it stopped at :attr:`stop_index`'s end."""
        cfg, d = self.cfg, self.dist
        steps_taken = 0
        while state["phase"] < len(self.phases):
            if self.stop_index is not None and state["phase"] > self.stop_index:
                return False
            phase, n_epochs = self.phases[state["phase"]]
            if phase == "finetune" and state["threshold"] is None:
                self._prune(state)
            regularizer = self._regularizer(state) if phase == "train" else None
            ddp_model: nn.Module = self.model
            if d.world > 1:
                from torch.nn.parallel import DistributedDataParallel

                ddp_model = DistributedDataParallel(
                    self.model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
            base_lr = self._phase_lr(state["phase"])
            total_steps = n_epochs * self.steps_per_epoch
            while state["epoch"] < n_epochs:
                t0 = time.perf_counter()
                self.task.start_epoch(state["global_epoch"], state["step"])
                bar = None
                if cfg.progress and d.main:
                    from tqdm import tqdm

                    bar = tqdm(total=self.steps_per_epoch, initial=state["step"], leave=False,
                               desc=f"{phase} {state['epoch'] + 1}/{n_epochs}", file=sys.stderr)
                ddp_model.train()
                try:
                    while state["step"] < self.steps_per_epoch:
                        if self._stop_signal:
                            raise KeyboardInterrupt
                        s = state["step"]
                        lr = _lr_at(cfg, base_lr, state["epoch"] * self.steps_per_epoch + s,
                                    total_steps, state["epoch"])
                        for group in self.optimizer.param_groups:
                            group["lr"] = lr
                        loss, sums = self.task.step(ddp_model, s)
                        total = loss + regularizer(self.model) if regularizer else loss
                        extra = self.hooks.regularizer()
                        if extra is not None:
                            total = total + extra
                        self.optimizer.zero_grad()
                        total.backward()
                        if cfg.optim.clip_norm is not None:
                            nn.utils.clip_grad_norm_(self.model.parameters(),
                                                     cfg.optim.clip_norm)
                        self.optimizer.step()
                        done = state["epoch"] * self.steps_per_epoch + s + 1
                        self.hooks.after_step(done)
                        step_record = self.hooks.step_metrics(done)
                        if step_record is not None and d.main:
                            self._append_freezing(done, step_record)
                        state["acc"] = [a + b for a, b in zip(state["acc"], sums, strict=True)]
                        state["step"] = s + 1
                        steps_taken += 1
                        if d.main:
                            self._append_step(state, phase, float(loss.detach()), lr)
                        if bar is not None:
                            bar.update(1)
                        if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0:
                            self._save(state)
                        if (self.interrupt_after_steps is not None
                                and steps_taken >= self.interrupt_after_steps):
                            raise KeyboardInterrupt
                except KeyboardInterrupt:
                    state["seconds"] += time.perf_counter() - t0
                    self._save(state)
                    if bar is not None:
                        bar.close()
                    raise Interrupted(f"interrupted; checkpoint saved in {self.out} "
                                      f"(resume with --resume {self.out})") from None
                if bar is not None:
                    bar.close()
                self._end_epoch(state, phase, t0, regularizer)

            state["phase"] += 1
            state["epoch"] = 0
            if phase == "pretrain":
                self._after_pretrain(state)
            elif state["phase"] < len(self.phases):
                self._save(state)
        return True

    def _end_epoch(self, state: dict[str, Any], phase: str, t0: float,
                   regularizer: SPRRegularizer | None) -> None:
        d = self.dist
        sums = _all_reduce(state["acc"], d)
        state["epoch"] += 1
        state["global_epoch"] += 1
        state["step"] = 0
        state["acc"] = [0.0] * self.task.sums_size()
        record: dict[str, Any] = {"epoch": state["global_epoch"], "phase": phase,
                                  **self.task.train_record(sums),
                                  "lr": self.optimizer.param_groups[0]["lr"],
                                  "mu": self.optimizer.mu}
        record.update(self.hooks.epoch_metrics())  # e.g. frozen, theta (mulfree)
        if d.main:
            val = self.task.evaluate(self.model, "val")
            if val is not None:
                record.update({f"val_{k}": v for k, v in val.items() if k != "tokens"})
                if quantized_modules(self.model):
                    with hard_quantization(self.model):
                        record["val_accuracy_hard"] = evaluate(
                            self.model, self.val_data, self.cfg.eval_batch_size, d.device)[0]
            record["sparsity"] = self._sparsity(state, regularizer)
        seconds = time.perf_counter() - t0
        state["seconds"] += seconds
        record["seconds"] = seconds
        if d.main:
            with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            self.log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in record.items()))
        self._save(state)
        if d.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def _sparsity(self, state: dict[str, Any], regularizer: SPRRegularizer | None) -> float:
        """Fraction of the units' channels removed (after pruning) or, while training with SPR,
        whose group has ``||W_j||_inf < 1e-3 M`` (near zero)."""
        if not self.cfg.spr.enabled:
            return 0.0
        units = self._units()
        now = total_channels(self.model)
        if state["pruned"]:
            return 1.0 - now / state["channels_before"]
        if regularizer is None:
            return 0.0
        from proxcompress.training.pruning import group_tensors

        small = 0
        for u in units:
            flat = torch.cat(group_tensors(self.model, u, regularizer.with_norm), dim=1)
            small += int((flat.abs().amax(1) < 1e-3 * regularizer.M[u.name]).sum())
        return small / max(now, 1)

    def _units(self) -> list[Any]:
        from proxcompress.training.runchecks import select_units

        return select_units(self.model.units(), self.cfg.spr.units)

    def _regularizer(self, state: dict[str, Any]) -> SPRRegularizer | None:
        if not self.cfg.spr.enabled or state["M"] is None:
            return None
        s = self.cfg.spr
        return SPRRegularizer(self._units(), state["M"], s.lam, s.alpha, s.with_norm)

    def _after_pretrain(self, state: dict[str, Any]) -> None:
        s = self.cfg.spr
        state["M"] = compute_M(self.model, self._units(), s.M_rule, s.M_scale)
        state["pretrain_accuracy"] = self._val_accuracy()
        if self.dist.main:
            self.log(f"pretrained reference: validation accuracy "
                     f"{_percent(state['pretrain_accuracy'])}, M = {state['M']}")
        # restart from a fresh init (the paper's code), seeded
        self.model = self._model_for("train").to(self.dist.device)
        self.optimizer = self._optimizer(self.model, self._phase_lr(state["phase"]))
        self._save(state)

    def _val_accuracy(self) -> float | None:
        """The model's validation accuracy (``None`` without a validation split)."""
        if self.val_data is None:
            return None
        return evaluate(self.model, self.val_data, self.cfg.eval_batch_size, self.dist.device)[0]

    def _prune(self, state: dict[str, Any]) -> None:
        s = self.cfg.spr
        units = self._units()
        search = self.train_data.subset(s.search_samples, self.cfg.seed + 7)
        state["channels_before"] = total_channels(self.model)
        state["parameters_before"] = sum(p.numel() for p in self.model.parameters())
        state["before_pruning"] = self._val_accuracy()
        if s.method == "magnitude":
            from proxcompress.training.tp_baseline import magnitude_keep

            assert s.keep_counts is not None  # config validation
            kept = magnitude_keep(self.model, units, s.keep_counts,
                                  self.train_data.x[:2].to(self.dist.device))
            state["threshold"] = {"method": "magnitude (Torch-Pruning group norm)",
                                  "keep_counts": list(s.keep_counts)}
        else:
            result = threshold_search(
                self.model, units,
                lambda m: evaluate(m, search, self.cfg.eval_batch_size, self.dist.device)[0],
                tolerance=s.tolerance, weight_range=(0.0, s.weight_range),
                with_norm=s.with_norm)
            kept = {u.name: [i for i, k in enumerate(result.keep[u.name]) if k] for u in units}
            state["threshold"] = {"weight_threshold": result.weight_threshold,
                                  "fraction_threshold": result.fraction_threshold,
                                  "search_base_accuracy": result.base_accuracy,
                                  "search_accuracy": result.accuracy}
        state["pruned"] = {u.name: prune_channels(self.model, u, kept[u.name]) for u in units}
        state["after_pruning"] = self._val_accuracy()
        if self.dist.main:
            self.log(f"pruned {state['channels_before'] - total_channels(self.model)} of "
                     f"{state['channels_before']} channels; validation accuracy "
                     f"{_percent(state['before_pruning'])} -> "
                     f"{_percent(state['after_pruning'])}")
        self.optimizer = self._optimizer(self.model, self._phase_lr(state["phase"]))
        self._save(state)

    # ------------------------------------------------------------------------------ finish
    def _finish(self, state: dict[str, Any]) -> dict[str, Any]:
        d = self.dist
        checksum = float(sum(p.detach().double().sum() for p in self.model.parameters()))
        sums = [checksum]
        if d.world > 1:
            import torch.distributed as dist

            gathered = [None] * d.world
            dist.all_gather_object(gathered, checksum)
            sums = [float(v) for v in gathered]  # type: ignore[arg-type]
        if not d.main:
            return {}
        # the test set is evaluated here only, once per finished run (the deployed model and,
        # for a quantized one, the model at its final mu)
        task, m = self.task, self.task.metric
        test = task.evaluate(self.model, "test")
        val = task.evaluate(self.model, "val")
        assert test is not None
        quantized = bool(quantized_modules(self.model))
        summary: dict[str, Any] = {
            "task": task.kind,
            f"test_{m}": test[m],
            "test_loss": test["loss"],
            f"val_{m}": None if val is None else val[m],
            "epochs": state["global_epoch"],
        }
        if quantized:
            summary[f"test_{m}_soft"] = summary[f"test_{m}"]
            summary[f"val_{m}_soft"] = summary[f"val_{m}"]
            with hard_quantization(self.model):
                hard_test = task.evaluate(self.model, "test")
                hard_val = task.evaluate(self.model, "val")
            assert hard_test is not None
            summary[f"test_{m}"] = hard_test[m]
            summary[f"val_{m}"] = None if hard_val is None else hard_val[m]
            summary["mu"] = self.optimizer.mu
            summary[f"test_{m}_note"] = ("deployed model: every quantized layer at "
                                         "lim_{mu->oo} F; *_soft at the final mu")
        train_metrics = read_log(self.out / "metrics.jsonl")
        self.model.cpu()
        summary.update(self._model_counts())
        summary.update({
            "seconds": state["seconds"],
            **task.split_sizes(),
            "world_size": d.world,
            "replicas_in_sync": all(v == sums[0] for v in sums),
            "data": self.cfg.data.name,
            "model": self.cfg.model.name,
            "quantizer": self.cfg.quant.weights,
            "activations": self.cfg.quant.activations,
        })
        if train_metrics and task.has_validation():  # the early-stopping point
            last = [r for r in train_metrics if r["phase"] == train_metrics[-1]["phase"]]
            key = "val_accuracy_hard" if "val_accuracy_hard" in last[0] else f"val_{m}"
            pick = max if task.higher_is_better else min
            best = pick(last, key=lambda r: r[key])
            summary["best_val_epoch"] = best["epoch"]
            summary[f"best_val_{m}"] = best[key]
        if train_metrics:
            summary[f"train_{m}"] = train_metrics[-1][f"train_{m}"]
        if self.cfg.spr.enabled:
            reference = self._model_for("train")
            shape = tuple(self.test_data.x.shape[1:])
            summary["spr"] = {  # accuracies before the end: on the validation split
                "method": self.cfg.spr.method,
                "pretrain_val_accuracy": state["pretrain_accuracy"],
                "val_accuracy_before_pruning": state["before_pruning"],
                "val_accuracy_after_pruning": state.get("after_pruning"),
                "channels_before": state.get("channels_before"),
                "channels_after": total_channels(self.model),
                "pruned_fraction": 1 - total_channels(self.model) / state["channels_before"]
                if state.get("channels_before") else 0.0,
                "parameters_before": state.get("parameters_before"),
                "parameters_after": summary["parameters"],
                "kept": {k: len(v) for k, v in state["pruned"].items()},
                "threshold": state["threshold"],
                "M": state["M"],
                "inference_ms_unpruned": inference_ms(reference, shape),
                "inference_ms_pruned": inference_ms(self.model, shape),
                "inference_batch": 256,
            }
        if self.distiller is not None:
            summary["distill"] = {"teacher": str(self.distiller.folder),
                                  "alpha": self.distiller.alpha,
                                  "temperature": self.distiller.temperature}
        summary["versions"] = _versions()
        write_json_atomic(self.out / "summary.json", summary)
        if train_metrics:
            try:
                plot_metrics(train_metrics, self.out / "curves.png",
                             read_log(self.out / STEPS), m)
            except Exception as exc:  # plotting must never fail a finished run
                self.log(f"plotting failed: {exc}")
        return summary

    def _model_counts(self) -> dict[str, Any]:
        """Parameters, storage and per-sample MACs (``model_summary`` at the input shape for a
        classifier; the parameters for a language model), and the LSTMs' parameters next to
        those of dense ``nn.LSTM`` s of the same sizes."""
        from proxcompress.training.tensor_train.recipe import lstm_counts

        out: dict[str, Any] = {}
        if isinstance(self.task, ClassificationTask):
            s = model_summary(self.model, tuple(self.test_data.x.shape[1:]))
            out = {"parameters": s.parameters, "binary_parameters": s.binary_parameters,
                   "model_bytes": s.model_bytes, "float_macs": s.float_macs,
                   "binary_weight_macs": s.binary_weight_macs, "binary_macs": s.binary_macs}
        else:
            out = {"parameters": sum(p.numel() for p in self.model.parameters())}
        return {**out, **lstm_counts(self.model)}


def _logged_at(line: str, key: str) -> float:
    """The ``key`` counter of one log line; a torn or foreign line (a process killed while
    appending) counts as after every checkpoint, so resuming drops it."""
    try:
        value = json.loads(line)[key]
    except (ValueError, KeyError, TypeError, IndexError):
        return math.inf
    return float(value) if isinstance(value, int | float) else math.inf


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def threading_ok() -> bool:
    """Signal handlers can only be installed from the main thread."""
    import threading

    return threading.current_thread() is threading.main_thread()


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a JSON-lines log of a run folder (``metrics.jsonl``, :data:`STEPS`,
    :data:`FREEZING`); ``[]`` when it does not exist."""
    file = Path(path)
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` values (the first ones over what there is)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_metrics(records: list[dict[str, Any]], path: Path,
                 steps: list[dict[str, Any]] | None = None, metric: str = "accuracy") -> None:
    """A run's curves as one PNG (written atomically): the training loss at every step (light)
    and its moving average over a tenth of an epoch, with the validation loss at each epoch's
    end; train / validation ``metric`` (accuracy, or a language model's perplexity) at each
    epoch's end (the test set is evaluated once, at the end of the run); the learning rate and
    ``mu`` at every step and
    the SPR sparsity at each epoch's end. ``records``: ``metrics.jsonl``; ``steps``:
    :data:`STEPS` (without it the loss and schedule panels show the epoch values only). Phase
    changes (SPR pretrain / train / finetune) are marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [r["loss"] for r in records], "o-", label="train loss")
    if "val_loss" in records[0]:
        axes[0].plot(epochs, [r.get("val_loss") for r in records], "s-", label="validation loss")
    axes[0].set_xlabel("epoch")
    axes[0].legend()
    axes[1].plot(epochs, [r[f"train_{metric}"] for r in records], "o-", label="train")
    if f"val_{metric}" in records[0]:
        axes[1].plot(epochs, [r.get(f"val_{metric}") for r in records], "s-",
                     label="validation")
    if "val_accuracy_hard" in records[0]:
        axes[1].plot(epochs, [r.get("val_accuracy_hard") for r in records], "^-",
                     label="validation (hard)")
    axes[1].set_ylabel("accuracy (%)" if metric == "accuracy" else metric)
    axes[1].set_xlabel("epoch")
    axes[1].legend()
    axes[2].plot(epochs, [r["mu"] for r in records], "o-", label="mu")
    axes[2].set_xlabel("epoch")
    ax2 = axes[2].twinx()
    ax2.plot(epochs, [r.get("sparsity", 0.0) for r in records], "r^-", label="sparsity")
    axes[2].legend(loc="upper left")
    ax2.legend(loc="lower right")
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    ax = axes[0]
    if steps:
        x = [s["epoch"] for s in steps]
        losses = [s["loss"] for s in steps]
        per_epoch = max(1, round(len(steps) / max(steps[-1]["epoch"], 1e-9)))
        ax.plot(x, losses, color="tab:blue", alpha=0.25, lw=0.6, label="train loss, each step")
        ax.plot(x, smooth(losses, max(1, per_epoch // 10)), color="tab:blue", lw=1.4,
                label="moving average (0.1 epoch)")
    else:
        ax.plot(epochs, [r["loss"] for r in records], "o-", label="train loss (epoch mean)")
    if records and "val_loss" in records[0]:
        ax.plot(epochs, [r.get("val_loss") for r in records], "s-", color="tab:orange",
                label="validation loss (epoch end)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_title("loss")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(epochs, [r[f"train_{metric}"] for r in records], "o-", label="train (epoch mean)")
    if records and f"val_{metric}" in records[0]:
        ax.plot(epochs, [r.get(f"val_{metric}") for r in records], "s-", label="validation")
    if records and "val_accuracy_hard" in records[0]:
        ax.plot(epochs, [r.get("val_accuracy_hard") for r in records], "^-",
                label="validation, hard quantization")
    ax.set_ylabel("accuracy (%)" if metric == "accuracy" else metric)
    ax.set_xlabel("epoch")
    ax.set_title(f"{metric} at each epoch's end")
    ax.legend(fontsize=8)
    ax = axes[2]
    if steps:
        ax.plot([s["epoch"] for s in steps], [s["lr"] for s in steps], color="tab:green",
                label="learning rate")
    else:
        ax.plot(epochs, [r["lr"] for r in records], "o-", color="tab:green",
                label="learning rate")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title("schedule")
    twin = ax.twinx()
    sparsity = [r.get("sparsity", 0.0) for r in records]
    if any(sparsity):
        twin.plot(epochs, [100 * v for v in sparsity], "r^-", label="SPR sparsity (%)")
        twin.set_ylabel("channels near zero / removed (%)")
    elif steps and len({s["mu"] for s in steps}) > 1:
        twin.plot([s["epoch"] for s in steps], [s["mu"] for s in steps], color="tab:red",
                  label="mu")
        twin.set_ylabel("mu")
    ax.legend(loc="upper left", fontsize=8)
    if twin.lines:
        twin.legend(loc="upper right", fontsize=8)
    if steps:
        changes = [(prev["epoch"], s["phase"]) for prev, s in zip(steps, steps[1:], strict=False)
                   if s["phase"] != prev["phase"]]
        for ax in axes:
            for at, phase in changes:
                ax.axvline(at, color="grey", ls="--", lw=0.8)
                ax.text(at, 1.0, f" {phase}", transform=ax.get_xaxis_transform(), fontsize=7,
                        va="top", color="grey")
    fig.tight_layout()

    from proxcompress.atomic import write_atomic

    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


def train(cfg: TrainConfig, out_dir: str | os.PathLike[str], *, resume: bool = False,
          **kwargs: Any) -> dict[str, Any]:
    """Run (or resume) a training run; returns the summary (empty on ranks > 0)."""
    return Trainer(cfg, out_dir, resume=resume, **kwargs).run()


def config_for_resume(out_dir: str | os.PathLike[str], overrides: list[str],
                      field: str = "--resume") -> TrainConfig:
    """The run's own ``config.yaml`` with ``overrides``; only the keys of
    :data:`~proxcompress.training.runchecks.RESUME_KEYS` may change on resume.

    Raises:
        InvalidInputError: naming ``field`` when ``out_dir`` holds no readable ``config.yaml``
            (also a ``FileNotFoundError`` when there is none), or the key of an override that
            may not change.
    """
    from proxcompress.training.config import read_run_config
    from proxcompress.training.runchecks import RESUME_KEYS

    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key not in RESUME_KEYS:
            raise InvalidInputError(key, f"cannot change on --resume; allowed: "
                                    f"{', '.join(sorted(RESUME_KEYS))}")
    return read_run_config(out_dir, field, overrides)


__all__ = ["EXIT_INTERRUPTED", "FREEZING", "STEPS", "HardStop", "Interrupted", "Trainer",
           "build_run_model", "config_for_resume", "evaluate", "inference_ms", "initial_state",
           "load_run", "mulfree_recipe", "plot_metrics", "read_log", "run_data", "run_model",
           "run_phases", "smooth", "stop_index", "train"]
