"""The committed record of finished runs: ``benchmarks/results/runs/`` mirrors the runs folder
(``runs/results/``) with the files of each finished run that the tables read, so that the tables
survive a machine that loses its runs folder (the project's machines start bare), and a table
too long for one sitting (the long-budget table: hours on 2 cores) fills over several.

* :func:`archive` copies, for every finished run (``summary.json`` present), :data:`RUN_FILES`
  into the record; for the runs other rows start from (a distillation teacher, an
  ``init_from`` source: ``weights``), their checkpoint too; and the runs folder's own records
  (:data:`TOP_FILES`: the per-table wall times, the tensor-train timing, the MIP selection
  study). Only files whose bytes changed are written.
* :func:`restore` puts archived runs back into a runs folder that lacks them, so the script
  skips them and the page reads them as it reads any finished run. A run the runs folder
  already has (finished, or a run of another config) is left as it is: the runs folder wins.

Checkpoints of other runs, logs and per-step records stay in the runs folder only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from proxcompress.atomic import write_atomic, write_text_atomic

#: a finished run's files that the tables read (each copied when present)
RUN_FILES = ("config.yaml", "summary.json", "metrics.jsonl", "wall.json", "robustness.json",
             "freezing.jsonl")
#: the runs folder's own records (glob patterns relative to it); ``wall.json`` is merged
TOP_FILES = ("wall.json", "tt-timing.json", "selection/select-*.json")
#: the checkpoint of a run other rows start from (a teacher, an ``init_from`` source)
CHECKPOINT = "checkpoint.json"


def _finished(root: Path) -> Iterator[Path]:
    """Every finished run folder under ``root`` (``summary.json`` beside a ``config.yaml``),
    in a fixed order."""
    if not root.is_dir():
        return
    for summary in sorted(root.rglob("summary.json")):
        if (summary.parent / "config.yaml").is_file():
            yield summary.parent


def _copy(source: Path, target: Path) -> bool:
    """Copy ``source`` onto ``target`` (atomically) when their bytes differ; True if written."""
    data = source.read_bytes()
    if target.is_file() and target.read_bytes() == data:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, lambda tmp: tmp.write_bytes(data))
    return True


def _checkpoint_files(folder: Path) -> list[str]:
    """``checkpoint.json`` and the tensor file it names, when both are there."""
    record = folder / CHECKPOINT
    if not record.is_file():
        return []
    try:
        tensors = json.loads(record.read_text()).get("tensors")
    except (ValueError, AttributeError):
        return []
    if not isinstance(tensors, str) or "/" in tensors or not (folder / tensors).is_file():
        return []
    return [CHECKPOINT, tensors]


def _walls(path: Path) -> dict[str, object]:
    """A per-table wall-time record (a JSON object); ``ValueError`` naming the file if not."""
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object of per-table wall times")
    return data


def _merge_walls(source: Path, target: Path, source_wins: bool) -> bool:
    """Merge the per-table wall-time records of ``source`` into ``target``."""
    new, old = _walls(source), _walls(target) if target.is_file() else {}
    merged = {**old, **new} if source_wins else {**new, **old}
    if merged == old and target.is_file():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, json.dumps(merged, indent=1))
    return True


def _top_files(root: Path) -> Iterator[Path]:
    for pattern in TOP_FILES:
        yield from sorted(root.glob(pattern))


def archive(runs: Path, record: Path, weights: Iterable[str] = ()) -> list[Path]:
    """Copy every finished run of ``runs`` (and the folder's own records) into ``record``;
    ``weights``: row names whose runs keep their checkpoint too. Returns the files written."""
    keep = set(weights)
    written: list[Path] = []
    for folder in _finished(runs):
        relative = folder.relative_to(runs)
        names = [n for n in RUN_FILES if (folder / n).is_file()]
        if relative.parts[0] in keep:
            names += _checkpoint_files(folder)
        for name in names:
            if _copy(folder / name, record / relative / name):
                written.append(record / relative / name)
    for path in _top_files(runs):
        target = record / path.relative_to(runs)
        changed = (_merge_walls(path, target, source_wins=True) if path.name == "wall.json"
                   and path.parent == runs else _copy(path, target))
        if changed:
            written.append(target)
    return written


def restore(runs: Path, record: Path) -> list[Path]:
    """Put every archived run that ``runs`` lacks back into it (a folder with a
    ``config.yaml`` of its own is left alone); the runs folder's own records are merged
    (``wall.json``) or added when missing. Returns the run folders restored. ``ValueError``
    (naming the file) for a ``wall.json`` that is not a JSON object, before anything is
    written."""
    if (record / "wall.json").is_file():
        _walls(record / "wall.json")  # a damaged record stops before anything is written
    restored: list[Path] = []
    for folder in _finished(record):
        target = runs / folder.relative_to(record)
        if (target / "summary.json").exists() or (target / "config.yaml").exists():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file():
                _copy(path, target / path.name)
        restored.append(target)
    for path in _top_files(record):
        target = runs / path.relative_to(record)
        if path.name == "wall.json" and path.parent == record:
            _merge_walls(path, target, source_wins=False)
        elif not target.exists():
            _copy(path, target)
    return restored
