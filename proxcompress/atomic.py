"""Safe file handling: atomic writes (write to a temporary file in the same folder, fsync,
rename: a reader never sees a partial file) and the content digest that manifests record.

Temporary files are named ``.<target name>.<pid>-<random>.tmp`` (folders made by
:func:`scratch_folder` the same, without the suffix): a process killed with SIGKILL cannot
remove its own, so every write first removes the temporaries of the same target whose process
no longer exists (:func:`remove_stale`). :func:`write_all_atomic` stages several files and
renames them only once every one of them was written, so a command with several outputs leaves
either all of them or none. :func:`hold_folder` keeps a second process out of a folder that
one is writing (a run folder resumed twice would interleave two runs' records).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Writer = Callable[[Path], object]

_STALE = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)-[A-Za-z0-9_]+(?:\.tmp)?$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process: leave its files alone
    return True


def remove_stale(folder: str | os.PathLike[str], name: str) -> list[Path]:
    """Remove the temporaries of target ``name`` in ``folder`` left by dead processes (a
    SIGKILL during a write); returns what was removed."""
    root = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(root.glob(f".{glob_escape(name)}.*"))
    except OSError:
        return removed
    for entry in entries:
        match = _STALE.fullmatch(entry.name)
        if match is None or match["name"] != name or _alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def glob_escape(text: str) -> str:
    """``text`` with the glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}-"


def nearest_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` or its nearest existing ancestor (where new files can go without creating
    folders)."""
    current = Path(path)
    while not current.is_dir() and current.parent != current:
        current = current.parent
    return current


def scratch_folder(target: str | os.PathLike[str]) -> Path:
    """A new empty folder beside ``target`` (same file system, so its files can be renamed
    into ``target``), named so that :func:`remove_stale` finds it after a SIGKILL."""
    path = Path(target)
    remove_stale(path.parent, path.name)
    return Path(tempfile.mkdtemp(prefix=_temp_prefix(path), dir=path.parent))


def _stage(target: Path, writer: Writer) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target.parent, target.name)
    fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        writer(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path: str | os.PathLike[str], writer: Writer) -> Path:
    """Call ``writer(tmp_path)`` then move ``tmp_path`` onto ``path`` atomically.

    If ``writer`` raises, the temporary file is removed and ``path`` is left untouched.
    """
    return write_all_atomic([(path, writer)])[0]


def write_all_atomic(items: Sequence[tuple[str | os.PathLike[str], Writer]]) -> list[Path]:
    """Write several files: each ``writer(tmp)`` into a temporary beside its target, and only
    when all of them succeeded, rename each onto its target. A failure in any writer leaves
    every target untouched."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, writer in items:
            target = Path(path)
            staged.append((_stage(target, writer), target))
        for tmp, target in staged:
            os.replace(tmp, target)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return [target for _, target in staged]


def text_writer(text: str) -> Writer:
    """A writer for :func:`write_all_atomic`: ``text`` as UTF-8."""
    return lambda tmp: tmp.write_text(text, encoding="utf-8")


def json_text(data: Any) -> str:
    """``data`` as the indented JSON text every report uses."""
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, text_writer(text))


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return write_text_atomic(path, json_text(data))


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hold_folder(folder: str | os.PathLike[str], field: str) -> int:
    """An exclusive advisory lock on the existing ``folder`` itself (``flock`` on its
    descriptor, so nothing is written into it), held until :func:`release_folder` or the
    process ends (the kernel releases it even on SIGKILL, so there is no stale lock). Returns
    the descriptor; raises :class:`~proxcompress.errors.InvalidInputError` naming ``field``
    when another process holds it. Where ``fcntl`` is missing (not POSIX) it returns -1 and
    locks nothing."""
    from proxcompress.errors import InvalidInputError

    try:
        import fcntl
    except ImportError:  # pragma: no cover - POSIX only
        return -1
    fd = os.open(os.fspath(folder), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InvalidInputError(field, f"{str(folder)!r} is in use by another process (a "
                                "run is writing it); wait for it to end or choose another "
                                "folder") from None
    return fd


def release_folder(fd: int) -> None:
    """Release a lock taken by :func:`hold_folder` (``-1``: nothing was locked)."""
    if fd >= 0:
        os.close(fd)
