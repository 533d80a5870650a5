"""Checkpoints: tensors in safetensors, everything else in JSON, committed atomically.

A checkpoint in folder ``D`` is ``D/checkpoint.json`` (metadata: the tensor file's name and
SHA-256, the optimizer's non-tensor state, progress counters, any run state) and the tensor
file it names, ``D/checkpoint-<n>.safetensors`` (model state, optimizer tensors, RNG state and
any extra run tensors, e.g. the freezing metric's code snapshots).
The tensor file is written first (atomically, under a new name), then the JSON (atomically):
the JSON is the commit point, so an interrupted save leaves the previous checkpoint intact.
Older tensor files are removed after the commit. Nothing is unpickled on load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from proxcompress.atomic import sha256_file, write_atomic, write_json_atomic
from proxcompress.errors import InvalidInputError

META = "checkpoint.json"


class Checkpoint(NamedTuple):
    """What :func:`load_checkpoint` returns."""

    model_state: dict[str, Tensor]
    optimizer_state: dict[str, Any] | None
    meta: dict[str, Any]
    rng_state: Tensor
    extra: dict[str, Tensor]


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors: dict[str, Tensor] = {}
    plain: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for pid, entries in state["state"].items():
        plain["state"][str(pid)] = {}
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
                plain["state"][str(pid)][key] = {"tensor": f"optim.{pid}.{key}"}
            else:
                plain["state"][str(pid)][key] = {"value": value}
    return tensors, plain


def _unflatten_optimizer(plain: dict[str, Any], tensors: dict[str, Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for pid, entries in plain["state"].items():
        state[int(pid)] = {
            key: tensors[spec["tensor"]] if "tensor" in spec else spec["value"]
            for key, spec in entries.items()
        }
    return {"state": state, "param_groups": plain["param_groups"]}


def save_checkpoint(
    folder: str | os.PathLike[str],
    model_state: dict[str, Tensor],
    optimizer_state: dict[str, Any] | None,
    meta: dict[str, Any],
    extra: dict[str, Tensor] | None = None,
) -> Path:
    """Write a checkpoint atomically; returns the JSON path.

    Args:
        folder: the run folder.
        model_state: ``model.state_dict()``.
        optimizer_state: ``optimizer.state_dict()`` (``None``: no optimizer).
        meta: JSON-serializable run state (epoch, step, counters, ...).
        extra: further named tensors of the run (given back as ``Checkpoint.extra``).
    """
    from safetensors.torch import save_file

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model_state.items()}
    optim_plain = None
    if optimizer_state is not None:
        opt_tensors, optim_plain = _flatten_optimizer(optimizer_state)
        tensors.update(opt_tensors)
    tensors.update({f"extra.{k}": v.detach().cpu().contiguous() for k, v in (extra or {}).items()})
    tensors["rng.torch"] = torch.get_rng_state()
    previous = _read_meta(root)
    n = int(previous["sequence"]) + 1 if previous else 0
    name = f"checkpoint-{n}.safetensors"
    write_atomic(root / name, lambda tmp: save_file(tensors, str(tmp)))
    record = {
        "format": "proxcompress-checkpoint-1",
        "sequence": n,
        "tensors": name,
        "sha256": sha256_file(root / name),
        "optimizer": optim_plain,
        "meta": meta,
    }
    path = write_json_atomic(root / META, record)
    for old in root.glob("checkpoint-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return path


def _read_meta(root: Path) -> dict[str, Any] | None:
    path = root / META
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except json.JSONDecodeError as exc:
        raise InvalidInputError("--resume", f"{str(path)!r} is not valid JSON ({exc})") from None


def has_checkpoint(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a committed checkpoint."""
    return (Path(folder) / META).exists()


def load_checkpoint(folder: str | os.PathLike[str]) -> Checkpoint:
    """Read the checkpoint in ``folder``.

    Raises:
        FileNotFoundError: no checkpoint in ``folder``.
        InvalidInputError (field ``--resume``): unreadable JSON, a missing tensor file or a
            SHA-256 mismatch (corrupt or partial file).
    """
    from safetensors.torch import load_file

    root = Path(folder)
    record = _read_meta(root)
    if record is None:
        raise FileNotFoundError(f"--resume: no {META} in {str(root)!r}")
    tensor_path = root / str(record.get("tensors", ""))
    if not tensor_path.is_file():
        raise InvalidInputError("--resume", f"the tensor file {str(tensor_path)!r} is missing")
    if sha256_file(tensor_path) != record.get("sha256"):
        raise InvalidInputError("--resume", f"{str(tensor_path)!r} does not match its SHA-256 "
                                "in checkpoint.json (corrupt or partial)")
    tensors = load_file(str(tensor_path))
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = record.get("optimizer")
    optimizer_state = _unflatten_optimizer(optim, tensors) if optim is not None else None
    extra = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
    return Checkpoint(model_state, optimizer_state, record["meta"], tensors["rng.torch"], extra)


__all__ = ["Checkpoint", "has_checkpoint", "load_checkpoint", "save_checkpoint"]
