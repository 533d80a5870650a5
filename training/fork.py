"""Forking a run at a phase boundary, so that runs sharing their first phases train them once.

A pruning run has phases (SPR: ``pretrain``, ``train``, ``finetune``; the magnitude baseline:
``train``, ``finetune``). Some keys of its config are read only after a phase has finished
(:data:`~proxcompress.training.runchecks.FORK_KEYS`): SPR's ``lam`` first shapes the ``train``
phase, the baseline's ``keep_counts`` first chooses the channels at the end of its ``train``
phase. Runs that differ only in those keys therefore compute the same phases up to there, bit
for bit.

* ``proxcompress train --config C --out P --stop-after PHASE`` trains up to the end of
  ``PHASE`` and stops once the boundary checkpoint is saved (no ``summary.json``: the run is
  not finished; ``--resume P`` would finish it).
* ``proxcompress train --config C2 --out D --fork-from P`` (:func:`fork_run`) checks that P's
  checkpoint lies exactly at a phase boundary and that C2 differs from P's config only in the
  keys no finished phase read (and the neutral ones: ``progress``, ``threads``,
  ``checkpoint_every``), writes that checkpoint, P's logs and C2 as ``config.yaml`` into a new
  folder D (built aside and renamed into place: no partial D), and resumes there. The run then
  continues as the run of C2 trained from scratch would have from that boundary: the same
  tensors, data order and random state (tests compare the two).

``benchmarks/results.py`` uses it for the SPR table: SPR at lambda 2 / 5 / 10 share their
pretraining at a seed and learning rate, the magnitude baseline's three channel budgets share
its training (:mod:`proxcompress.reproduce.tables.core`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxcompress.errors import InvalidInputError, MissingInputError

if TYPE_CHECKING:
    from proxcompress.training.config import TrainConfig

#: the run folder's logs a fork carries over (each when present)
LOGS = ("metrics.jsonl", "freezing.jsonl", "steps.jsonl")


def fork_keys(phase: str) -> tuple[str, ...]:
    """The dotted keys a fork after ``phase`` may change: those no phase up to it reads, and
    the neutral ones."""
    from proxcompress.training.runchecks import FORK_KEYS, NEUTRAL_KEYS

    return NEUTRAL_KEYS + FORK_KEYS.get(phase, ())


def check_fork(prefix: str | os.PathLike[str], cfg: TrainConfig,
               field: str = "--fork-from") -> Any:
    """The checkpoint of ``prefix`` once it is known to suit a fork with ``cfg`` (module
    docstring).

    Raises:
        MissingInputError (field ``field``): ``prefix`` holds no checkpoint.
        InvalidInputError (field ``field``, or the config key that differs): a damaged
            checkpoint, one not at a phase boundary, or ``cfg`` differing from the prefix's
            config in a key a finished phase read.
    """
    from proxcompress.training.checkpoint import has_checkpoint, load_checkpoint
    from proxcompress.training.runchecks import check_resume, checked_run_state
    from proxcompress.training.tasks import task_class
    from proxcompress.training.trainer import run_phases

    root = Path(prefix)
    if not root.is_dir() or not has_checkpoint(root):
        raise MissingInputError(field, f"no checkpoint in {str(root)!r} (a folder written by "
                                "train --stop-after PHASE)")
    checkpoint = load_checkpoint(root, field)
    phases = run_phases(cfg)
    run = checked_run_state(checkpoint.meta, phases, field, task_class(cfg.data.name).sums)
    if run["epoch"] or run["step"] or not 1 <= run["phase"] < len(phases):
        raise InvalidInputError(field, f"the checkpoint in {str(root)!r} is not at the end of "
                                "a phase before the run's last (train --stop-after PHASE "
                                "writes one)")
    finished = phases[run["phase"] - 1][0]
    check_resume(cfg, checkpoint.meta, run, field, fork_keys(finished))
    return checkpoint


def fork_run(prefix: str | os.PathLike[str], cfg: TrainConfig, out: str | os.PathLike[str],
             field: str = "--fork-from") -> Path:
    """Write the fork of ``prefix`` with config ``cfg`` into the new folder ``out`` (module
    docstring) and return it; train it with ``train(cfg, out, resume=True)``.

    Raises:
        InvalidInputError (field ``--out``): ``out`` exists and is not an empty folder.
        Everything :func:`check_fork` raises.
    """
    import torch

    from proxcompress.atomic import write_text_atomic
    from proxcompress.training.checkpoint import save_checkpoint
    from proxcompress.training.config import dump_config

    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInputError("--out", f"{str(target)!r} exists and is not an empty folder; "
                                "a fork starts a new run folder")
    checkpoint = check_fork(prefix, cfg, field)
    aside = target.parent / f".{target.name}.fork"
    shutil.rmtree(aside, ignore_errors=True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(checkpoint.rng_state)  # saved as the checkpoint's RNG state
            save_checkpoint(aside, checkpoint.model_state, checkpoint.optimizer_state,
                            {**checkpoint.meta, "config": cfg.to_dict()}, checkpoint.extra)
        for name in LOGS:
            if (Path(prefix) / name).is_file():
                shutil.copyfile(Path(prefix) / name, aside / name)
        write_text_atomic(aside / "config.yaml", dump_config(cfg))
        if target.is_dir():
            target.rmdir()  # empty (checked above)
        os.replace(aside, target)
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    return target


__all__ = ["LOGS", "check_fork", "fork_keys", "fork_run"]
