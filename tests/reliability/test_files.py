"""Input files (``.npz`` instances): every damaged or hostile file is refused with exit 2 naming
the file or the key, before any work, without a traceback or an output file (issue 13).

The cases are generated: random byte corruption and truncation of a valid instance (either the
reader refuses it, or what survives is a valid instance that is solved), every dtype kind that
is not a real number, group labels of any magnitude, and scalings of ``X`` / ``Y`` / ``M`` whose
products would overflow float64.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import refused_here, run, snapshot

from proxcompress.errors import InvalidInputError
from proxcompress.formulations import LayerPruningProblem, random_instance
from proxcompress.formulations.problem import MAX_NORM
from proxcompress.readers import read_npz

KEYS = ("instance", "X", "Y", "groups", "lam", "alpha", "M", "k")
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def valid() -> tuple[bytes, dict[str, np.ndarray]]:
    buffer = io.BytesIO()
    problem = random_instance(40, 6, 1, 3, seed=0)
    np.savez(buffer, X=problem.X, Y=problem.Y, groups=problem.groups, lam=problem.lam,
             alpha=problem.alpha, M=problem.M)
    with np.load(io.BytesIO(buffer.getvalue())) as data:
        return buffer.getvalue(), {k: data[k] for k in data.files}


def _npz(arrays: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def _solve(folder: Path, data: bytes) -> None:
    """``solve`` on ``data``: refused (exit 2, a key or the file named, no output) or, when the
    damage left a valid instance, solved (exit 0 or 3) with its JSON written."""
    (folder / "inst.npz").write_bytes(data)
    before = snapshot(folder)
    answer = run(["solve", "inst.npz", "--json", "out.json", "--time-limit", "20"], folder)
    assert answer.exception is None, repr(answer.exception)
    if answer.code == 2:
        assert any(f"error: {k}:" in answer.message for k in KEYS), answer.message
        assert snapshot(folder) == before
    else:
        assert answer.code in (0, 3) and (folder / "out.json").is_file()


@SETTINGS
@given(data=st.data())
def test_random_byte_corruption(valid: tuple[bytes, dict[str, np.ndarray]], tmp_path: Path,
                                data: st.DataObject) -> None:
    good = bytearray(valid[0])
    for _ in range(data.draw(st.integers(1, 8), label="bytes changed")):
        good[data.draw(st.integers(0, len(good) - 1))] = data.draw(st.integers(0, 255))
    _solve(Path(tempfile.mkdtemp(dir=tmp_path)), bytes(good))


@SETTINGS
@given(cut=st.integers(0, 10**6))
def test_truncation_is_refused(valid: tuple[bytes, dict[str, np.ndarray]], tmp_path: Path,
                               cut: int) -> None:
    good = valid[0]
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "inst.npz").write_bytes(good[: cut % len(good)])
    refused_here(["solve", "inst.npz", "--json", "out.json"], "instance", folder)


HOSTILE_DTYPES = {
    "complex": lambda a: a + 1j,
    "string": lambda a: a.astype(str),
    "bytes": lambda a: a.astype("S12"),
    "object": lambda a: a.astype(object),
    "structured": lambda a: np.zeros(a.shape[0], dtype=[("a", "f8")]),
    "datetime": lambda a: np.zeros(a.shape, dtype="datetime64[s]"),
}


@SETTINGS
@given(key=st.sampled_from(["X", "Y", "groups", "lam", "alpha", "M"]),
       kind=st.sampled_from(sorted(HOSTILE_DTYPES)))
def test_non_real_dtypes_are_refused_naming_the_key(
        valid: tuple[bytes, dict[str, np.ndarray]], tmp_path: Path, key: str, kind: str) -> None:
    arrays = dict(valid[1])
    arrays[key] = HOSTILE_DTYPES[kind](np.atleast_1d(arrays[key]))
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "inst.npz").write_bytes(_npz(arrays))
    refused_here(["solve", "inst.npz", "--json", "out.json"], key, folder)


@SETTINGS
@given(label=st.one_of(st.integers(6, 2**62), st.integers(-(2**62), -1),
                       st.floats(allow_nan=True, allow_infinity=True).filter(
                           lambda v: not (v == v and v.is_integer() and 0 <= v < 6))))
def test_group_labels_outside_the_features_are_refused(
        valid: tuple[bytes, dict[str, np.ndarray]], tmp_path: Path, label: float) -> None:
    arrays = dict(valid[1])
    groups = arrays["groups"].astype(type(label) if isinstance(label, float) else np.int64)
    groups[-1] = label
    arrays["groups"] = groups
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "inst.npz").write_bytes(_npz(arrays))
    refused_here(["solve", "inst.npz"], "groups", folder)


@SETTINGS
@given(key=st.sampled_from(["X", "Y", "M", "lam"]), exponent=st.integers(151, 307))
def test_magnitudes_that_would_overflow_are_refused(
        valid: tuple[bytes, dict[str, np.ndarray]], tmp_path: Path, key: str,
        exponent: int) -> None:
    arrays = dict(valid[1])
    arrays[key] = arrays[key] * 10.0**exponent
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "inst.npz").write_bytes(_npz(arrays))
    answer = refused_here(["solve", "inst.npz"], key, folder)
    assert f"{MAX_NORM:.0e}" in answer.message  # the accepted range is named


def test_container_level_damage(tmp_path: Path) -> None:
    """Each named way an archive can be wrong: refused by the reader, naming the field."""
    buffer = io.BytesIO()
    np.save(buffer, np.ones(3))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**12,)})
    members = io.BytesIO()
    with zipfile.ZipFile(members, "w") as archive:
        archive.writestr("X.npy", header.getvalue() + bytes(8))
    cases = {"empty": b"", "npy": buffer.getvalue(), "text": b"hello",
             "bomb": members.getvalue()}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InvalidInputError) as err:
            read_npz("instance", tmp_path / name)
        assert err.value.field in ("instance", "X")
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(InvalidInputError, match="folder"):
        LayerPruningProblem.from_npz(tmp_path / "folder.npz")
    with pytest.raises(FileNotFoundError):  # also an InvalidInputError naming the field
        LayerPruningProblem.from_npz(tmp_path / "missing.npz")


def test_public_names_still_load_files(tmp_path: Path) -> None:
    """The argument checks of the public names accept what files give (0-d arrays for
    scalars): an instance with ``k`` reads back through ``proxcompress.LayerPruningProblem``."""
    import proxcompress

    random_instance(30, 6, 1, 3, seed=0, k=2).to_npz(tmp_path / "k.npz")
    problem = proxcompress.LayerPruningProblem.from_npz(tmp_path / "k.npz")
    assert problem.k == 2
    assert proxcompress.solve(problem, "bnb").status == "optimal"
