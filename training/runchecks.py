"""Checks of a training run before it writes anything, and of a run folder before it resumes.

* :func:`preflight` -- what a valid config can still get wrong and that only the model or
  another run can tell: the model's parameter count (at most :data:`MAX_PARAMETERS`, counted on
  PyTorch's ``meta`` device, so nothing is allocated), ``spr.units`` naming units the model
  has, and ``model.init_from`` (a readable, finished, matching run). ``train`` runs it before it
  creates the run folder and ``train --dry-run`` runs it too, so a bad config leaves no folder.
* :func:`check_restart` -- a ``--resume`` folder without a checkpoint record starts afresh only
  when nothing shows it ever had one.
* :func:`checked_run_state` -- the run state in a checkpoint's metadata: every counter of the
  right type and range, before the trainer uses any of it.
* :func:`check_resume` -- the run's ``config.yaml`` (with the ``--set`` overrides allowed on
  resume, :data:`RESUME_KEYS`) against the config recorded in the checkpoint: equal except those
  keys, so edited widths cannot meet the old tensors; and epochs only changed where honest: a
  finished phase keeps its epochs (so ``summary.json`` and ``config.yaml`` never disagree), the
  current phase cannot end before the epochs it already trained.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any

from proxcompress.errors import InvalidInputError
from proxcompress.training.config import TrainConfig, config_from_dict

#: largest model a config may build (parameters of the full-precision model)
MAX_PARAMETERS = 2**28
#: dotted config keys a resumed run may change (``--set`` on ``train --resume``)
RESUME_KEYS = ("epochs", "progress", "threads", "checkpoint_every", "spr.finetune_epochs")
#: keys that never change what a run computes (``train --fork-from`` may change them too)
NEUTRAL_KEYS = ("progress", "threads", "checkpoint_every")
#: per finished phase, the dotted keys that no phase up to and including it reads (nor the
#: work at its end: SPR's ``M`` after the pretraining, the fresh model of the next phase), so
#: that a fork at that boundary (``train --fork-from``) may differ from its prefix in them
FORK_KEYS = {
    "pretrain": ("spr.lam", "spr.alpha", "spr.with_norm", "spr.keep_counts", "spr.tolerance",
                 "spr.search_samples", "spr.weight_range", "spr.finetune_epochs",
                 "spr.finetune_lr"),
    "train": ("spr.keep_counts", "spr.tolerance", "spr.search_samples", "spr.weight_range",
              "spr.finetune_epochs", "spr.finetune_lr"),
}


def select_units(units: list[Any], wanted: list[str] | None) -> list[Any]:
    """The units of ``wanted`` (``spr.units``; ``None``: all), in model order."""
    if wanted is None:
        return units
    names = {u.name for u in units}
    for w in wanted:
        if w not in names:
            raise InvalidInputError("spr.units", f"{w!r} is not a unit of this model; "
                                    f"accepted: {', '.join(sorted(names))}")
    return [u for u in units if u.name in wanted]


def _meta_model(cfg: TrainConfig) -> Any:
    """The config's full-precision model on PyTorch's ``meta`` device: shapes and units only,
    no memory allocated and no random number drawn."""
    import torch

    from proxcompress.training.trainer import base_model, run_classes

    classes = run_classes(cfg)
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        return base_model(cfg, classes)


def _units(cfg: TrainConfig) -> list[Any]:
    return _meta_model(cfg).units()  # type: ignore[no-any-return]


def preflight(cfg: TrainConfig, *, initial: bool = True) -> Any:
    """Run the checks of the module docstring; returns the ``model.init_from`` weights (or
    ``None``; not loaded when ``initial`` is false, e.g. on resume)."""
    from proxcompress.training.trainer import initial_state

    model = _meta_model(cfg)
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_PARAMETERS:
        raise InvalidInputError("model", f"has {count} parameters; accepted: at most "
                                f"{MAX_PARAMETERS} (reduce model.hidden / model.width)")
    if cfg.spr.enabled:
        select_units(model.units(), cfg.spr.units)
    return initial_state(cfg) if initial else None


def check_restart(folder: str | os.PathLike[str], field: str = "--resume") -> None:
    """A ``--resume`` folder without ``checkpoint.json`` may start afresh only when it holds
    nothing a checkpoint would have been written after (a run stopped before its first one);
    tensor files, a summary or logged epochs mean the record was lost or removed, and the run
    is refused instead of being silently retrained over."""
    root = Path(folder)
    evidence = sorted(p.name for p in root.glob("checkpoint-*.safetensors"))
    evidence += [name for name in ("summary.json",) if (root / name).exists()]
    metrics = root / "metrics.jsonl"
    if metrics.is_file() and metrics.stat().st_size > 0:
        evidence.append("metrics.jsonl")
    if evidence:
        raise InvalidInputError(field, f"{str(root)!r} has no checkpoint.json but holds "
                                f"{', '.join(evidence)}: the run's checkpoint record is "
                                "missing or was removed; restore it or start a new run")


def _is_int(v: Any, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def checked_run_state(meta: dict[str, Any], phases: list[tuple[str, int]], field: str,
                      sums: int = 3) -> dict[str, Any]:
    """``meta["run"]`` after checking its structure (module docstring; ``sums``: the task's
    running sums in ``acc``, :attr:`proxcompress.training.tasks.Task.sums`); errors name
    ``field``."""

    def bad(what: str) -> InvalidInputError:
        return InvalidInputError(field, f"the checkpoint's run state is invalid: {what}")

    run = meta.get("run")
    if not isinstance(run, dict):
        raise bad("'run' must be an object")
    for key in ("phase", "epoch", "step", "global_epoch"):
        if not _is_int(run.get(key)):
            raise bad(f"{key!r} = {str(run.get(key))[:40]} must be an integer >= 0")
    if run["phase"] > len(phases):
        raise bad(f"phase {run['phase']} exceeds the run's {len(phases)} phases")
    acc = run.get("acc")
    if not (isinstance(acc, list) and len(acc) == sums and all(map(_is_number, acc))):
        raise bad(f"'acc' must be a list of {sums} numbers")
    if not (_is_number(run.get("seconds")) and run["seconds"] >= 0):
        raise bad("'seconds' must be a number >= 0")
    pruned = run.get("pruned")
    if not isinstance(pruned, dict) or not all(
            isinstance(v, list) and all(_is_int(i) for i in v) for v in pruned.values()):
        raise bad("'pruned' must map unit names to lists of channel indices")
    m = run.get("M")
    if m is not None and not (isinstance(m, dict) and all(map(_is_number, m.values()))):
        raise bad("'M' must be null or map unit names to numbers")
    for key in ("pretrain_accuracy", "before_pruning", "after_pruning"):
        if run.get(key) is not None and not _is_number(run[key]):
            raise bad(f"{key!r} must be null or a number")
    if run.get("threshold") is not None and not isinstance(run["threshold"], dict):
        raise bad("'threshold' must be null or an object")
    wrapper = meta.get("wrapper")
    if wrapper is not None and not (isinstance(wrapper, dict) and _is_int(wrapper.get("steps"))
                                    and _is_number(wrapper.get("lr_sum"))):
        raise bad("'wrapper' must hold the optimizer's integer 'steps' and number 'lr_sum'")
    return run


def without_keys(raw: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """A copy of a nested config mapping without the dotted ``keys``."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name in keys:
            continue
        inner = tuple(k.split(".", 1)[1] for k in keys if k.startswith(f"{name}."))
        out[name] = without_keys(value, inner) if isinstance(value, dict) and inner else value
    return out


def _first_difference(a: Any, b: Any, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in a or key not in b:
                return where
            found = _first_difference(a[key], b[key], where)
            if found:
                return found
        return ""
    return "" if a == b else (prefix or "config")


def check_recorded_config(cfg: TrainConfig, meta: dict[str, Any], field: str,
                          allowed: tuple[str, ...] = RESUME_KEYS) -> TrainConfig:
    """``cfg`` (a run's ``config.yaml``) must equal the config recorded in its checkpoint's
    metadata ``meta``, except the keys that may change (``allowed``; on resume
    :data:`RESUME_KEYS`); returns the recorded one."""
    recorded_raw = meta.get("config")
    if not isinstance(recorded_raw, dict):
        raise InvalidInputError(field, "the checkpoint records no config")
    try:
        recorded = config_from_dict(recorded_raw)
    except InvalidInputError as exc:
        raise InvalidInputError(field, f"the config recorded in the checkpoint is invalid "
                                f"({exc})") from None
    difference = _first_difference(without_keys(cfg.to_dict(), allowed),
                                   without_keys(recorded.to_dict(), allowed))
    if difference:
        what = "on resume" if allowed == RESUME_KEYS else "here"
        raise InvalidInputError(field, f"config.yaml differs from the config recorded in the "
                                f"checkpoint at {difference} (the tensors were trained with "
                                f"the recorded one); only {', '.join(allowed)} may change "
                                f"{what}")
    return recorded


def check_resume(cfg: TrainConfig, meta: dict[str, Any], run: dict[str, Any], field: str,
                 allowed: tuple[str, ...] = RESUME_KEYS) -> None:
    """The resumed config against the checkpoint's (module docstring; ``allowed``: the keys
    that may differ); errors name ``field`` (or the epochs key that would rewrite history)."""
    from proxcompress.training.trainer import run_phases

    recorded = check_recorded_config(cfg, meta, field, allowed)
    m = run.get("M")
    if m is not None:
        if not cfg.spr.enabled:
            raise InvalidInputError(field, "the checkpoint's run state records M, but the run "
                                    "does not prune (spr.enabled is false)")
        wanted = {u.name for u in select_units(_units(cfg), cfg.spr.units)}
        if set(m) != wanted:
            raise InvalidInputError(field, f"the checkpoint's M names units {sorted(m)}; the "
                                    f"run prunes {sorted(wanted)}")
    old, new = run_phases(recorded), run_phases(cfg)
    keys = {"train": "epochs", "pretrain": "spr.pretrain_epochs",
            "finetune": "spr.finetune_epochs"}
    for index, ((name, before), (_, after)) in enumerate(zip(old, new, strict=True)):
        if index < run["phase"] and after != before:
            raise InvalidInputError(keys[name], f"= {after}: the {name} phase already finished "
                                    f"its {before} epochs; a finished phase keeps its epochs "
                                    "(start a new run, e.g. with model.init_from, to train "
                                    "further)")
        if index == run["phase"] and after < run["epoch"]:
            raise InvalidInputError(keys[name], f"= {after} is below the {run['epoch']} epochs "
                                    f"the {name} phase already trained; accepted: >= "
                                    f"{run['epoch']}")


__all__ = ["FORK_KEYS", "MAX_PARAMETERS", "NEUTRAL_KEYS", "RESUME_KEYS", "check_recorded_config",
           "check_restart", "check_resume", "checked_run_state", "preflight", "select_units",
           "without_keys"]
