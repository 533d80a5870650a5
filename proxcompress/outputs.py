"""Output targets of the command line: declared with their argument, checked before any work.

Every subcommand declares its output files and folders with :func:`add_output` instead of
``add_argument``; :func:`proxcompress.cli.main` calls :func:`check_outputs` on the parsed
arguments before the command runs, so that a ``--json`` / ``--out`` / ``--markdown`` pointing
at a folder, inside a file, at something that is not a regular file, or into a folder this
process cannot write exits 2 naming the flag, before minutes of work. The check writes nothing
that stays: writability is tested by creating (and removing) a probe file in the nearest
existing folder, which is the only test that also holds for root, read-only mounts and ACLs.

The outputs themselves are written atomically, after the work (:mod:`proxcompress.atomic`).
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Literal

from proxcompress.errors import InvalidInputError

Kind = Literal["file", "folder"]
_KEY = "_outputs"


def add_output(parser: Any, *flags: str, kind: Kind = "file", **kwargs: Any) -> argparse.Action:
    """``parser.add_argument(*flags, **kwargs)`` for an output path, recorded so that
    :func:`check_outputs` checks it before the command runs. ``kind``: ``file`` (written
    atomically) or ``folder`` (created, files written into it)."""
    action = parser.add_argument(*flags, **kwargs)
    label = max(action.option_strings, key=len) if action.option_strings else action.dest
    specs = list(parser.get_default(_KEY) or [])
    specs.append((action.dest, label, kind))
    parser.set_defaults(**{_KEY: tuple(specs)})
    return action


def declared_outputs(args: argparse.Namespace) -> tuple[tuple[str, str, Kind], ...]:
    """The ``(dest, flag, kind)`` outputs the parsed command declared."""
    return tuple(getattr(args, _KEY, ()) or ())


def _nearest_existing(flag: str, path: Path) -> Path:
    current = path
    while True:
        try:
            os.stat(current)
            return current
        except FileNotFoundError:
            pass
        except OSError as exc:  # ENAMETOOLONG, ELOOP, EACCES on a parent, ...
            raise InvalidInputError(flag, f"{str(path)!r} cannot be used "
                                    f"({exc.strerror})") from None
        if current.parent == current:
            return current
        current = current.parent


def _probe_writable(flag: str, folder: Path) -> None:
    try:
        fd, name = tempfile.mkstemp(prefix=".proxcompress-probe-", dir=folder)
    except OSError as exc:
        raise InvalidInputError(flag, f"cannot write into folder {str(folder)!r} "
                                f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(name)


def check_output(flag: str, path: str | os.PathLike[str], kind: Kind = "file") -> Path:
    """Refuse an output target that cannot be written, before any work.

    A ``file`` target must not be a folder or another non-regular file (a device, a pipe), and
    its folder must exist; a ``folder`` target must not be a file (it is created, with missing
    parents, when the work succeeded). No part of the path above the target may be a file,
    and the nearest existing folder must accept a new file. Returns the target as a ``Path``.

    Raises:
        InvalidInputError: naming ``flag`` and what is wrong.
    """
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(flag, "is empty; give a path")
    if "\0" in text:
        raise InvalidInputError(flag, "contains a NUL character")
    target = Path(text)
    try:
        info = os.stat(target) if os.path.lexists(target) else None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            info = None
        elif exc.errno == errno.ENOENT:  # a dangling symbolic link
            raise InvalidInputError(flag, f"{text!r} is a symbolic link to a missing "
                                    "target") from None
        else:
            raise InvalidInputError(flag, f"{text!r} cannot be used ({exc.strerror})") from None
    if info is not None:
        if kind == "file" and stat.S_ISDIR(info.st_mode):
            raise InvalidInputError(flag, f"{text!r} is a folder; give a file name")
        if kind == "file" and not stat.S_ISREG(info.st_mode):
            raise InvalidInputError(flag, f"{text!r} exists and is not a regular file")
        if kind == "folder" and not stat.S_ISDIR(info.st_mode):
            raise InvalidInputError(flag, f"{text!r} exists and is not a folder")
    for part in (target.parent, *target.parent.parents):
        try:
            mode = os.stat(part).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                continue
            raise InvalidInputError(flag, f"{text!r} cannot be used ({exc.strerror})") from None
        if not stat.S_ISDIR(mode):
            raise InvalidInputError(flag, f"{text!r} lies inside {str(part)!r}, which is a "
                                    "file, not a folder")
        break
    if kind == "file" and not target.parent.is_dir():
        raise InvalidInputError(flag, f"the folder of {text!r} does not exist; create it first "
                                "(output files are not given new folders)")
    if len(target.name.encode()) > 255:
        raise InvalidInputError(flag, f"the file name in {text!r} is longer than 255 bytes")
    where = target if kind == "folder" and info is not None else _nearest_existing(
        flag, target.parent)
    _probe_writable(flag, where)
    return target


def check_outputs(args: argparse.Namespace) -> None:
    """Check every declared output of a parsed command (:func:`check_output`), and that no
    two outputs name the same path."""
    seen: dict[str, str] = {}
    for dest, flag, kind in declared_outputs(args):
        value = getattr(args, dest, None)
        if value is None:
            continue
        target = check_output(flag, value, kind)
        key = os.path.realpath(target)
        if key in seen:
            raise InvalidInputError(flag, f"names the same path as {seen[key]} ({str(target)!r})")
        seen[key] = flag


__all__ = ["add_output", "check_output", "check_outputs", "declared_outputs"]
