"""Checkpoints: tensors in safetensors, everything else in JSON, committed atomically.

A checkpoint in folder ``D`` is ``D/checkpoint.json`` (metadata: the tensor file's name and
SHA-256, the optimizer's non-tensor state, progress counters, any run state) and the tensor
file it names, ``D/checkpoint-<n>.safetensors`` (model state, optimizer tensors, RNG state and
any extra run tensors, e.g. the freezing metric's code snapshots).
The tensor file is written first (atomically, under a new name), then the JSON (atomically):
the JSON is the commit point, so an interrupted save leaves the previous checkpoint intact.
Older tensor files are removed after the commit. Nothing is unpickled on load.

Loading trusts nothing in the folder (it may have been edited, damaged or crafted):
:func:`load_checkpoint` checks ``checkpoint.json``'s structure and types (UTF-8 JSON, a mapping
with the format tag, an integer sequence, the tensor file's own name -- never a path elsewhere
--, a SHA-256, the optimizer's structure), that the tensor file matches its SHA-256 and
parses as safetensors, that every tensor the JSON refers to exists, that the RNG state is one,
and that every floating-point tensor is finite (a NaN run must not resume silently). Each
failure raises ``InvalidInputError`` naming the field the folder came from (``--resume``,
``--run``, ``model.init_from``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from proxcompress.atomic import sha256_file, write_atomic, write_json_atomic
from proxcompress.errors import InvalidInputError

META = "checkpoint.json"
FORMAT = "proxcompress-checkpoint-1"
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    try:
        previous = _read_meta(root)
    except InvalidInputError:  # a damaged record is replaced by this save
        previous = None
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


def _read_meta(root: Path, field: str = "--resume") -> dict[str, Any] | None:
    from proxcompress.readers import read_json

    path = root / META
    if not path.exists():
        return None
    record = read_json(field, path)
    _check_record(field, path, record)
    return record  # type: ignore[no-any-return]


def _check_record(field: str, path: Path, record: Any) -> None:
    """The structure of ``checkpoint.json`` (module docstring)."""

    def bad(what: str) -> InvalidInputError:
        return InvalidInputError(field, f"{str(path)!r} is not a valid checkpoint: {what}")

    if not isinstance(record, dict):
        raise bad(f"a JSON {type(record).__name__}, not an object")
    if record.get("format") != FORMAT:
        raise bad(f"format {str(record.get('format'))[:40]!r}, expected {FORMAT!r}")
    sequence = record.get("sequence")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
        raise bad("'sequence' must be an integer >= 0")
    if record.get("tensors") != f"checkpoint-{sequence}.safetensors":
        raise bad(f"'tensors' must be 'checkpoint-{sequence}.safetensors' (a file of this "
                  "folder)")
    if not isinstance(record.get("sha256"), str) or not _SHA256.fullmatch(record["sha256"]):
        raise bad("'sha256' must be 64 lower-case hex digits")
    if not isinstance(record.get("meta"), dict):
        raise bad("'meta' must be an object")
    optim = record.get("optimizer")
    if optim is None:
        return
    if (not isinstance(optim, dict) or not isinstance(optim.get("param_groups"), list)
            or not all(isinstance(g, dict) for g in optim["param_groups"])
            or not isinstance(optim.get("state"), dict)):
        raise bad("'optimizer' must hold 'param_groups' (a list of objects) and 'state'")
    for pid, entries in optim["state"].items():
        if not pid.isdigit() or not isinstance(entries, dict):
            raise bad(f"optimizer state {pid[:20]!r} must be an object under an integer id")
        for key, spec in entries.items():
            if not isinstance(spec, dict) or len(spec) != 1 or not (
                    isinstance(spec.get("tensor"), str) or "value" in spec):
                raise bad(f"optimizer state {pid}.{key[:20]} must be {{'tensor': name}} or "
                          "{'value': v}")


def read_record(folder: str | os.PathLike[str], field: str = "--resume"
                ) -> dict[str, Any] | None:
    """The checked ``checkpoint.json`` of ``folder`` (``None`` when there is none), without
    reading the tensors."""
    return _read_meta(Path(folder), field)


def has_checkpoint(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a committed checkpoint."""
    return (Path(folder) / META).exists()


def load_checkpoint(folder: str | os.PathLike[str], field: str = "--resume") -> Checkpoint:
    """Read and check the checkpoint in ``folder`` (module docstring).

    Args:
        folder: the run folder.
        field: what errors name: the flag or config key the folder came from.

    Raises:
        FileNotFoundError: no checkpoint in ``folder``.
        InvalidInputError (field ``field``): anything the module docstring lists.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    root = Path(folder)
    record = _read_meta(root, field)
    if record is None:
        raise FileNotFoundError(f"{field}: no {META} in {str(root)!r}")
    tensor_path = root / record["tensors"]
    if not tensor_path.is_file():
        raise InvalidInputError(field, f"the tensor file {str(tensor_path)!r} is missing")
    if sha256_file(tensor_path) != record["sha256"]:
        raise InvalidInputError(field, f"{str(tensor_path)!r} does not match its SHA-256 "
                                "in checkpoint.json (corrupt or partial)")
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise InvalidInputError(field, f"{str(tensor_path)!r} is not a readable safetensors "
                                f"file ({str(exc)[:200]})") from None
    rng = tensors.get("rng.torch")
    reference = torch.get_rng_state()
    if rng is None or rng.dtype != reference.dtype or rng.shape != reference.shape:
        raise InvalidInputError(field, f"{str(tensor_path)!r} holds no valid RNG state "
                                "'rng.torch'")
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InvalidInputError(field, f"tensor {name!r} of {str(tensor_path)!r} holds NaN "
                                    "or infinite values; the run diverged or the file is "
                                    "damaged, and is not resumed")
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = record.get("optimizer")
    optimizer_state = None
    if optim is not None:
        missing = [spec["tensor"] for entries in optim["state"].values()
                   for spec in entries.values() if "tensor" in spec
                   and spec["tensor"] not in tensors]
        if missing:
            raise InvalidInputError(field, f"checkpoint.json refers to tensor {missing[0]!r}, "
                                    f"which {str(tensor_path)!r} does not hold")
        optimizer_state = _unflatten_optimizer(optim, tensors)
    extra = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
    return Checkpoint(model_state, optimizer_state, record["meta"], rng, extra)


__all__ = ["Checkpoint", "has_checkpoint", "load_checkpoint", "read_record", "save_checkpoint"]
