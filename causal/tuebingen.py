"""The Tübingen cause-effect pairs (Mooij et al., JMLR 2016) as the cdt 0.6.0 wheel ships them.

The 99 pairs are read from ``cdt/data/resources/Tuebingen_pairs.csv`` and
``Tuebingen_targets.csv`` inside the wheel with :mod:`zipfile`: cdt is never installed or
imported, and no pair is bundled with this package (the source data sets carry mixed licences).
The wheel comes from the package registry (``pip download cdt==0.6.0 --no-deps``) into a cache
folder, and its sha256 is checked before it is opened.

* :func:`find_wheel` -- the wheel in the cache (fetched with pip when asked), sha256 checked;
* :func:`load_pairs` -- the 99 pairs, each oriented A -> B as cdt's targets file says;
* :func:`weights_for` -- Mooij et al.'s weights, once cdt's numbering is confirmed;
* :func:`decide` -- this package's test on one pair, as a JSON-ready record;
* :func:`subsample` -- a seeded subsample of a pair and a seeded coin that swaps its roles;
* :func:`split_halves` -- the seeded split into a selection half and the other half.

Used by ``benchmarks/causal.py tuebingen`` and by the ``tuebingen`` stage of
``proxcompress reproduce``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from proxcompress.errors import InvalidInputError, MissingInputError

CDT_REQUIREMENT = "cdt==0.6.0"
CDT_WHEEL = "cdt-0.6.0-py3-none-any.whl"
#: sha256 of the wheel PyPI serves (checked before reading it)
CDT_SHA256 = "a90401b688597c3ccf23cc7b10c62e19df69dc9277095bab40a1343c6e89996b"
PAIRS_CSV = "cdt/data/resources/Tuebingen_pairs.csv"
TARGETS_CSV = "cdt/data/resources/Tuebingen_targets.csv"
#: the number of pairs in cdt's table
PAIRS = 99
#: the cache folder of the wheel: ``$XDG_CACHE_HOME/proxcompress/cdt`` (``~/.cache`` when
#: unset)
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME")
                     or Path.home() / ".cache") / "proxcompress" / "cdt"
#: seconds ``pip download`` may take before it counts as failed
DOWNLOAD_TIMEOUT_S = 300.0

#: Mooij et al.'s weights (column 6 of pairmeta.txt of the Tuebingen pairs v1.0), by the original
#: pair number. Pairs of one source data set share a total weight of one. cdt's 99 pairs are the
#: originals 1-51, 56-70 and 72-104 renumbered (the multivariate pairs 52-55 and 71 and the later
#: pairs 105-108 are absent); :func:`weights_for` checks that numbering against the pairs that
#: share a data column before using these weights.
MOOIJ_WEIGHTS = {
    **dict.fromkeys((1, 2, 4, 20), 0.166), 3: 0.167, 21: 0.167,
    **dict.fromkeys(range(5, 11), 0.143), 11: 0.142, 12: 0.5, 17: 0.5, 42: 0.5, 77: 0.5,
    101: 0.5, **dict.fromkeys((13, 14, 15, 16, 38, 39, 40, 41, 43, 44, 45, 46), 0.25),
    **dict.fromkeys((89, 90, 91, 92), 0.25), **dict.fromkeys((18, 19, 47, 48), 1.0),
    **dict.fromkeys((68, 69, 70, 72, 76, 84, 85, 86, 87, 88, 93, 99, 100), 1.0),
    22: 0.333, 23: 0.333, 24: 0.334, 49: 0.333, 50: 0.333, 51: 0.334, 65: 0.333, 66: 0.333,
    67: 0.334, **dict.fromkeys(range(25, 33), 0.125),
    **dict.fromkeys((33, 34, 35, 36, 37, 97, 98, 102, 103, 104), 0.2),
    **dict.fromkeys((56, 57, 59, 60, 62, 63, 73, 74), 0.083), 58: 0.084, 61: 0.084, 64: 0.084,
    75: 0.084, 78: 0.3333, 79: 0.3333, 80: 0.3334, 81: 0.3333, 82: 0.3333, 83: 0.3334,
    94: 0.3333, 95: 0.3333, 96: 0.3333,
}
#: cdt pairs that share a data column (so come from one source data set), in cdt's numbering
SHARED_COLUMN_GROUPS = (
    (1, 2, 3, 4, 20, 21), (5, 6, 7, 8, 9, 10, 11), (13, 14, 15, 16),
    (25, 26, 27, 28, 29, 30, 31, 32), (33, 34, 35, 36, 37), (52, 53, 54, 55, 56, 57, 58, 59),
    (62, 63), (73, 74, 75), (89, 90, 91), (97, 98, 99),
)
#: seed of the split of the pairs into the half on which variants are chosen and the other
SPLIT_SEED = 19


@dataclass(frozen=True)
class TuebingenPair:
    """One pair of cdt's table: its number (1-99 in cdt's numbering) and the two variables,
    ``a`` the cause and ``b`` the effect."""

    pair: int
    a: NDArray[np.float64]
    b: NDArray[np.float64]


def original_number(cdt_pair: int) -> int:
    """The pair's number in the original Tuebingen collection (see :data:`MOOIJ_WEIGHTS`)."""
    return cdt_pair if cdt_pair <= 51 else cdt_pair + 4 if cdt_pair <= 66 else cdt_pair + 5


def sha256(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def download_wheel(cache: str | os.PathLike[str] = DEFAULT_CACHE) -> Path:
    """Fetch the wheel with ``pip download cdt==0.6.0 --no-deps`` (this interpreter's pip) into
    a fresh folder inside ``cache``, check its sha256, then move it into ``cache``: a failed or
    interrupted download leaves nothing behind.

    Raises:
        InvalidInputError: (field ``download``) pip failed or timed out (its last lines
            quoted), or the file it fetched is not cdt 0.6.0's wheel.
    """
    folder = Path(cache)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        command = [sys.executable, "-m", "pip", "download", CDT_REQUIREMENT, "--no-deps",
                   "--only-binary", ":all:", "--disable-pip-version-check", "--timeout", "30",
                   "--retries", "2", "-d", tmp]
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False,
                                  timeout=DOWNLOAD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise InvalidInputError("download", f"pip download {CDT_REQUIREMENT} did not finish "
                                    f"in {DOWNLOAD_TIMEOUT_S:g} s") from None
        fetched = Path(tmp) / CDT_WHEEL
        if done.returncode != 0 or not fetched.is_file():
            said = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise InvalidInputError("download", f"pip download {CDT_REQUIREMENT} failed (exit "
                                    f"{done.returncode}): {said or 'no message'}")
        digest = sha256(fetched)
        if digest != CDT_SHA256:
            raise InvalidInputError("download", f"pip fetched a {CDT_WHEEL} with sha256 "
                                    f"{digest}, not that of cdt 0.6.0's wheel ({CDT_SHA256})")
        target = folder / CDT_WHEEL
        os.replace(fetched, target)
    return target


def find_wheel(wheel: str | os.PathLike[str] | None = None, *, download: bool = False,
               cache: str | os.PathLike[str] = DEFAULT_CACHE) -> Path:
    """The cdt wheel: ``wheel`` if given, else ``cache / CDT_WHEEL`` (fetched by
    :func:`download_wheel` first when absent and ``download``); its sha256 checked.

    Raises:
        MissingInputError: (field ``wheel``) no wheel there; the message says how to get it.
        InvalidInputError: (``wheel``) the file is not cdt 0.6.0's wheel; (``download``) the
            download failed.
    """
    path = Path(wheel) if wheel is not None else Path(cache) / CDT_WHEEL
    if wheel is None and download and not path.is_file():
        path = download_wheel(cache)
    if not path.is_file():
        raise MissingInputError(
            "wheel", f"{path} not found. The Tuebingen pairs are read from the cdt 0.6.0 wheel "
            f"(not installed, only opened): run\n  pip download {CDT_REQUIREMENT} --no-deps -d "
            f"{Path(cache)}\nor rerun with --download (does that), or pass --wheel FILE.whl")
    digest = sha256(path)
    if digest != CDT_SHA256:
        raise InvalidInputError("wheel", f"{path} has sha256 {digest}, not that of cdt 0.6.0's "
                                f"wheel ({CDT_SHA256})")
    return path


def load_pairs(path: str | os.PathLike[str]) -> list[TuebingenPair]:
    """The pairs of the wheel at ``path``, in cdt's order (pair 1..99). Each CSV cell holds a
    whole variable as space-separated numbers; cdt orients every pair as A -> B (its targets
    file says 1 for all of them; checked here).

    Raises:
        InvalidInputError: (field ``wheel``) not a zip holding the two tables, a table not laid
            out as cdt's, or a pair not labelled A -> B.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            pairs_text = archive.read(PAIRS_CSV).decode("utf-8")
            targets_text = archive.read(TARGETS_CSV).decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise InvalidInputError("wheel", f"{path} cannot be read as the cdt wheel: {exc}"
                                ) from None
    csv.field_size_limit(1 << 30)
    rows = list(csv.reader(io.StringIO(pairs_text)))
    targets = {row[0]: row[1] for row in list(csv.reader(io.StringIO(targets_text)))[1:]
               if len(row) >= 2}
    if not rows or rows[0] != ["SampleID", "A", "B"] or len(rows) != PAIRS + 1:
        raise InvalidInputError("wheel", f"{PAIRS_CSV} is not the {PAIRS}-pair table expected")
    pairs = []
    for row in rows[1:]:
        name = row[0]
        if targets.get(name) != "1.0":
            raise InvalidInputError("wheel", f"{name} is not labelled A -> B "
                                    f"({targets.get(name)})")
        try:
            number = int(name.removeprefix("pair"))
            a, b = (np.array(cell.split(), dtype=np.float64) for cell in row[1:3])
        except (ValueError, IndexError) as exc:
            raise InvalidInputError("wheel", f"{name} is not a numbered pair of numbers: "
                                    f"{exc}") from None
        pairs.append(TuebingenPair(number, a, b))
    return pairs


def shared_column_groups(pairs: list[TuebingenPair]) -> list[tuple[int, ...]]:
    """Groups of pairs linked by an identical data column (the same source data set)."""
    owner: dict[bytes, list[int]] = {}
    for p in pairs:
        for column in (p.a, p.b):
            owner.setdefault(column.tobytes(), []).append(p.pair)
    parent = {p.pair: p.pair for p in pairs}

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for members in owner.values():
        for other in members[1:]:
            parent[root(other)] = root(members[0])
    groups: dict[int, list[int]] = {}
    for i in sorted(parent):
        groups.setdefault(root(i), []).append(i)
    return [tuple(g) for g in groups.values() if len(g) > 1]


def weights_for(pairs: list[TuebingenPair]) -> dict[int, float] | None:
    """Mooij et al.'s weight of each cdt pair, or None when the numbering cannot be confirmed
    (the shared-column groups of ``pairs``, all 99 of them, differ from those expected)."""
    expected = sorted(tuple(sorted(set(g))) for g in SHARED_COLUMN_GROUPS)
    if sorted(shared_column_groups(pairs)) != expected:
        return None
    return {p.pair: MOOIJ_WEIGHTS[original_number(p.pair)] for p in pairs}


def subsample(pair: TuebingenPair, n: int, seed: int) -> dict[str, Any]:
    """``n`` points drawn without replacement (all of them if fewer), and a fair coin that
    presents the pair as (A, B) or (B, A): seeded by ``(seed, pair)``, the same for every
    method. Returns ``{"pair", "x", "y", "truth" ("x->y" or "y->x"), "n_total", "n",
    "distinct_x", "distinct_y"}``."""
    rng = np.random.default_rng([seed, pair.pair])
    size = pair.a.size
    keep = np.sort(rng.choice(size, n, replace=False)) if size > n else np.arange(size)
    swap = bool(rng.random() < 0.5)
    a, b = pair.a[keep], pair.b[keep]
    x, y = (b, a) if swap else (a, b)
    return {"pair": pair.pair, "x": x, "y": y, "truth": "y->x" if swap else "x->y",
            "n_total": int(size), "n": int(keep.size), "distinct_x": int(np.unique(x).size),
            "distinct_y": int(np.unique(y).size)}


def decide(x: NDArray[np.float64], y: NDArray[np.float64], **kwargs: Any) -> dict[str, Any]:
    """This package's test (:func:`~proxcompress.causal.causal_direction` with ``kwargs``) on
    one pair, as a JSON-ready record: ``{"direction", "k" (forward, backward), "log_p"
    (forward, backward), "weak" (the weak-evidence note)}``."""
    from proxcompress.causal.direction import causal_direction

    result = causal_direction(x, y, **kwargs)
    return {"direction": result.direction,
            "k": [result.forward.mechanisms.k, result.backward.mechanisms.k],
            "log_p": [result.forward.test.log_p_value, result.backward.test.log_p_value],
            "weak": result.weak_evidence}


def split_halves(ids: list[int], seed: int = SPLIT_SEED) -> tuple[list[int], list[int]]:
    """A seeded random half of the pairs (where variants are chosen) and the other half."""
    order = np.random.default_rng(seed).permutation(sorted(ids))
    half = len(ids) // 2 + len(ids) % 2
    return sorted(int(i) for i in order[:half]), sorted(int(i) for i in order[half:])


__all__ = ["CDT_SHA256", "CDT_WHEEL", "DEFAULT_CACHE", "MOOIJ_WEIGHTS", "PAIRS",
           "SHARED_COLUMN_GROUPS", "SPLIT_SEED", "TuebingenPair", "decide", "download_wheel",
           "find_wheel", "load_pairs", "original_number", "shared_column_groups",
           "split_halves", "subsample", "weights_for"]
