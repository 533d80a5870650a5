"""Reading user files safely: one reader per format, shared by every wing.

Each reader refuses, with :class:`~proxcompress.errors.InvalidInputError` naming the field the
file came from (``instance``, ``--config``, ``--resume``, ``data.root``, ...), anything it
cannot read as promised, before the data is used:

* :func:`read_npz`: a NumPy ``.npz`` archive, never unpickled. A missing, empty, truncated or
  non-zip file, a single ``.npy`` array, a member whose header promises more bytes than it holds
  (or more than ``max_bytes``), object, complex, string or structured dtypes are refused, each
  member's header is read and checked *before* its data.
* :func:`parse_yaml` / :func:`read_yaml`: YAML with PyYAML's ``SafeLoader`` (no Python objects)
  extended to refuse duplicate keys, documents nested deeper than ``MAX_YAML_DEPTH`` and
  documents whose aliases would expand to more than ``MAX_YAML_NODES`` nodes (billion laughs:
  the size is counted on the composed graph, where each anchored node exists once, so the
  expanded value is never built), recursive aliases, and files that are not UTF-8.
* :func:`read_json`: strict UTF-8 JSON, duplicate keys refused, bounded size and depth.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from proxcompress.errors import InvalidInputError, MissingInputError

#: largest text file (YAML, JSON) read, in bytes
MAX_TEXT_BYTES = 64 << 20
#: deepest nesting of a YAML document
MAX_YAML_DEPTH = 64
#: most nodes a YAML document may expand to, aliases counted at every use
MAX_YAML_NODES = 100_000
#: default limit on the uncompressed size of one ``.npz`` archive
MAX_NPZ_BYTES = 8 << 30
#: dtype kinds :func:`read_npz` accepts by default (bool, signed, unsigned, float)
REAL_KINDS = "biuf"


def _where(path: Path) -> str:
    return repr(os.fspath(path))


def regular_file(field: str, path: str | os.PathLike[str], what: str = "file") -> Path:
    """``path`` as a ``Path`` after checking it names an existing regular file."""
    p = Path(path)
    try:
        info = os.stat(p)
    except FileNotFoundError:
        raise MissingInputError(field, f"{what} {_where(p)} does not exist") from None
    except OSError as exc:
        raise InvalidInputError(field, f"{what} {_where(p)} cannot be read "
                                f"({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidInputError(field, f"{_where(p)} is a folder; a {what} is needed")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInputError(field, f"{_where(p)} is not a regular file")
    return p


def read_bytes(field: str, path: str | os.PathLike[str], max_bytes: int = MAX_TEXT_BYTES,
               what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes``."""
    p = regular_file(field, path, what)
    try:
        with open(p, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise InvalidInputError(field, f"{_where(p)} cannot be read ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise InvalidInputError(field, f"{_where(p)} is larger than the accepted "
                                f"{max_bytes} bytes")
    return data


def read_text(field: str, path: str | os.PathLike[str], max_bytes: int = MAX_TEXT_BYTES,
              what: str = "file") -> str:
    """A regular file's text, which must be UTF-8 (a byte-order mark is dropped)."""
    data = read_bytes(field, path, max_bytes, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(field, f"{_where(Path(path))} is not UTF-8 text (byte "
                                f"{exc.start}: {data[exc.start:exc.start + 1]!r})") from None


# --------------------------------------------------------------------------------- npz
def read_npz(field: str, path: str | os.PathLike[str], *, kinds: str = REAL_KINDS,
             max_bytes: int = MAX_NPZ_BYTES) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive, never unpickled (see the module docstring).

    Args:
        field: the name errors report (the flag or argument the path came from).
        path: the archive.
        kinds: accepted ``dtype.kind`` letters (default real numbers: ``biuf``).
        max_bytes: most uncompressed bytes in all.
    """
    p = regular_file(field, path, ".npz file")
    try:
        with open(p, "rb") as handle:
            head = handle.read(6)
    except OSError as exc:
        raise InvalidInputError(field, f"{_where(p)} cannot be read ({exc.strerror})") from None
    if not head:
        raise InvalidInputError(field, f"{_where(p)} is empty; an .npz archive is needed")
    if head == b"\x93NUMPY":
        raise InvalidInputError(field, f"{_where(p)} is a single .npy array; an .npz archive "
                                "(numpy.savez) is needed")
    if not zipfile.is_zipfile(p):
        raise InvalidInputError(field, f"{_where(p)} is not an .npz (zip) archive "
                                "(truncated or another format)")
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(p) as archive:
            infos = archive.infolist()
            total = sum(info.file_size for info in infos)
            if total > max_bytes:
                raise InvalidInputError(field, f"{_where(p)} holds {total} uncompressed bytes; "
                                        f"accepted: at most {max_bytes}")
            for info in infos:
                key = _member_key(field, p, info.filename)
                if key in arrays:
                    raise InvalidInputError(field, f"{_where(p)} holds {key!r} twice")
                with archive.open(info) as member:
                    arrays[key] = _read_member(field, p, key, member, info.file_size, kinds)
    except InvalidInputError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        raise InvalidInputError(field, f"{_where(p)} is damaged ({type(exc).__name__}: "
                                f"{str(exc)[:200]})") from None
    return arrays


def _member_key(field: str, p: Path, name: str) -> str:
    if not name.endswith(".npy") or len(name) == 4:
        raise InvalidInputError(field, f"{_where(p)} holds {name[:80]!r}, which is not an "
                                ".npy member")
    return name[:-4]


def _read_member(field: str, p: Path, key: str, member: Any, size: int, kinds: str
                 ) -> np.ndarray:
    fmt = np.lib.format
    version = fmt.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(member)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = fmt.read_array_header_2_0(member)
    else:
        raise InvalidInputError(field, f"{_where(p)}: {key!r} has .npy version {version}")
    if dtype.hasobject:
        raise InvalidInputError(key, f"in {_where(p)} holds Python objects (dtype {dtype}); "
                                "they would need unpickling, which is never done")
    if dtype.kind not in kinds or dtype.fields is not None:
        raise InvalidInputError(key, f"in {_where(p)} has dtype {dtype}; accepted: real "
                                "numbers (bool, integer or float)")
    count = int(np.prod(shape, dtype=object))
    payload = count * dtype.itemsize
    header = member.tell()
    if payload != size - header:
        raise InvalidInputError(key, f"in {_where(p)}: its header promises shape {shape} "
                                f"({payload} bytes) but the member holds {size - header}")
    data = member.read(payload)
    if len(data) != payload:
        raise InvalidInputError(key, f"in {_where(p)} is truncated")
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C").copy()


# -------------------------------------------------------------------------------- yaml
def _loader_class() -> type:
    import yaml
    from yaml.constructor import ConstructorError
    from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

    class BoundedSafeLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` refusing duplicate keys, deep nesting and alias bombs."""

        field = "config"
        depth = 0

        def compose_node(self, parent: Node | None, index: Any) -> Node:
            self.depth += 1
            try:
                if self.depth > MAX_YAML_DEPTH:
                    mark = self.peek_event().start_mark
                    raise InvalidInputError(self.field, f"nests deeper than {MAX_YAML_DEPTH} "
                                            f"levels (line {mark.line + 1})")
                return super().compose_node(parent, index)  # type: ignore[no-any-return]
            finally:
                self.depth -= 1

        def compose_document(self) -> Node | None:
            node = super().compose_document()
            if node is not None:
                _expanded_size(self.field, node)
            return node  # type: ignore[no-any-return]

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            if isinstance(node, MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    try:
                        key = self.construct_object(key_node, deep=True)
                        hash(key)
                    except (TypeError, ConstructorError):
                        continue  # the base class reports an unhashable key
                    line = key_node.start_mark.line + 1
                    if key in seen:
                        raise InvalidInputError(
                            self.field, f"key {str(key)[:60]!r} appears twice (lines "
                            f"{seen[key]} and {line}); each key may appear once")
                    seen[key] = line
            return super().construct_mapping(node, deep)  # type: ignore[no-any-return]

    def _expanded_size(field: str, root: Node) -> None:
        sizes: dict[int, int] = {}
        active: set[int] = set()

        def size(node: Node) -> int:
            key = id(node)
            if key in sizes:
                return sizes[key]
            if key in active:
                raise InvalidInputError(field, "holds a recursive alias (an anchor used "
                                        "inside itself)")
            active.add(key)
            total = 1
            if isinstance(node, SequenceNode):
                for child in node.value:
                    total += size(child)
                    if total > MAX_YAML_NODES:
                        break
            elif isinstance(node, MappingNode):
                for k, v in node.value:
                    total += size(k) + size(v)
                    if total > MAX_YAML_NODES:
                        break
            elif not isinstance(node, ScalarNode):  # pragma: no cover
                raise InvalidInputError(field, f"holds an unknown node {type(node).__name__}")
            active.discard(key)
            if total > MAX_YAML_NODES:
                raise InvalidInputError(field, f"expands to more than {MAX_YAML_NODES} values "
                                        "through its aliases (*name); write the values out")
            sizes[key] = total
            return total

        size(root)

    return BoundedSafeLoader


_LOADER: type | None = None


def parse_yaml(text: str, field: str = "config") -> Any:
    """Parse YAML text with the bounded safe loader (module docstring); errors name
    ``field``."""
    global _LOADER
    import yaml

    if _LOADER is None:
        _LOADER = _loader_class()
    loader = _LOADER(text)
    loader.field = field
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise InvalidInputError(field, f"is not valid YAML: {str(problem)[:200]}{where}"
                                ) from None
    except RecursionError:
        raise InvalidInputError(field, "nests too deeply") from None
    finally:
        loader.dispose()


def read_yaml(field: str, path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file (UTF-8, at most ``MAX_TEXT_BYTES``) with :func:`parse_yaml`."""
    text = read_text(field, path, what="YAML file")
    try:
        return parse_yaml(text, field)
    except InvalidInputError as exc:
        raise InvalidInputError(exc.field, f"{_where(Path(path))} {exc.detail}") from None


# -------------------------------------------------------------------------------- json
def _no_duplicates(field: str) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise InvalidInputError(field, f"key {key[:60]!r} appears twice")
            out[key] = value
        return out

    return hook


def parse_json(text: str, field: str) -> Any:
    """Parse JSON text, refusing duplicate keys; errors name ``field``."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates(field))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(field, f"is not valid JSON ({exc.msg} at line {exc.lineno}, "
                                f"column {exc.colno})") from None
    except RecursionError:
        raise InvalidInputError(field, "nests too deeply") from None


def read_json(field: str, path: str | os.PathLike[str], max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """Parse a JSON file (UTF-8, at most ``max_bytes``) with :func:`parse_json`."""
    text = read_text(field, path, max_bytes, what="JSON file")
    try:
        return parse_json(text, field)
    except InvalidInputError as exc:
        raise InvalidInputError(field, f"{_where(Path(path))} {exc.detail}") from None


__all__ = [
    "MAX_NPZ_BYTES",
    "MAX_TEXT_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "parse_json",
    "parse_yaml",
    "read_bytes",
    "read_json",
    "read_npz",
    "read_text",
    "read_yaml",
    "regular_file",
]
