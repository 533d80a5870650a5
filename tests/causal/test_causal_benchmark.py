"""benchmarks/causal.py tuebingen without the network or the real data: the wheel reader on a
synthetic wheel of the same layout, the missing-wheel message, seeded subsamples, the split, the
scores and Mooij et al.'s weights table."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_causal", ROOT / "benchmarks" / "causal.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_causal"] = module
    spec.loader.exec_module(module)
    return module


def fake_wheel(path: Path, columns: list[tuple[np.ndarray, np.ndarray]],
               labels: list[str] | None = None) -> Path:
    """A zip laid out like cdt's wheel: one row per pair, each cell a whole variable as
    space-separated numbers."""
    rows = ["SampleID,A,B"] + [f"pair{i},{' '.join(map(repr, a.tolist()))},"
                               f"{' '.join(map(repr, b.tolist()))}"
                               for i, (a, b) in enumerate(columns, start=1)]
    labels = labels or ["1.0"] * len(columns)
    targets = ["SampleID,Target"] + [f"pair{i},{t}" for i, t in enumerate(labels, start=1)]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cdt/data/resources/Tuebingen_pairs.csv", "\n".join(rows) + "\n")
        archive.writestr("cdt/data/resources/Tuebingen_targets.csv", "\n".join(targets) + "\n")
    return path


def synthetic(n_pairs: int = 99) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n_pairs):
        a = np.round(rng.uniform(0, 10, 40 + i), 3)
        out.append((a, np.round(a**2 + rng.standard_normal(a.size), 3)))
    return out


def test_reads_the_wheel_layout(bench: ModuleType, tmp_path: Path) -> None:
    columns = synthetic()
    pairs = bench.load_tuebingen(str(fake_wheel(tmp_path / "w.whl", columns)))
    assert [p["pair"] for p in pairs] == list(range(1, 100))
    for p, (a, b) in zip(pairs, columns, strict=True):
        assert np.array_equal(p["a"], a) and np.array_equal(p["b"], b)
        assert p["truth"] == "a->b"
    # no shared columns in this synthetic set: cdt's numbering cannot be confirmed, no weights
    assert bench.weights_for(pairs) is None


def test_a_wrong_label_or_layout_is_refused(bench: ModuleType, tmp_path: Path) -> None:
    columns = synthetic()
    with pytest.raises(bench.BenchmarkInputError, match="pair3 is not labelled A -> B"):
        bench.load_tuebingen(str(fake_wheel(tmp_path / "w.whl", columns,
                                            ["1.0", "1.0", "-1.0"] + ["1.0"] * 96)))
    with pytest.raises(bench.BenchmarkInputError, match="99-pair table"):
        bench.load_tuebingen(str(fake_wheel(tmp_path / "v.whl", columns[:10])))
    (tmp_path / "x.whl").write_text("not a zip")
    with pytest.raises(bench.BenchmarkInputError, match="cannot be read"):
        bench.load_tuebingen(str(tmp_path / "x.whl"))


def test_missing_wheel_is_a_clear_error(bench: ModuleType, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = bench.main(["tuebingen", "--cache", str(tmp_path), "--methods", "k1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "pip download cdt==0.6.0 --no-deps -d" in err and "--download" in err
    assert "Traceback" not in err
    wrong = fake_wheel(tmp_path / "w.whl", synthetic())
    assert bench.main(["tuebingen", "--wheel", str(wrong), "--methods", "k1"]) == 2
    assert "not that of cdt 0.6.0's wheel" in capsys.readouterr().err
    assert bench.main(["tuebingen", "--wheel", str(wrong), "--methods", "nope"]) == 2
    assert "--methods" in capsys.readouterr().err


def test_subsamples_are_seeded_and_shared(bench: ModuleType) -> None:
    rng = np.random.default_rng(1)
    pair = {"pair": 7, "a": rng.standard_normal(900), "b": rng.standard_normal(900)}
    one, two = bench.subsample(pair, 500, 0), bench.subsample(pair, 500, 0)
    assert np.array_equal(one["x"], two["x"]) and one["truth"] == two["truth"]
    assert one["n"] == 500 and np.unique(one["x"]).size == 500
    a_side = one["x"] if one["truth"] == "x->y" else one["y"]
    assert np.all(np.isin(a_side, pair["a"]))
    small = bench.subsample({"pair": 8, "a": pair["a"][:80], "b": pair["b"][:80]}, 500, 0)
    assert small["n"] == 80
    swaps = [bench.subsample({**pair, "pair": i}, 500, 0)["truth"] for i in range(1, 100)]
    assert 30 < swaps.count("y->x") < 70  # a fair coin per pair


def test_split_halves(bench: ModuleType) -> None:
    ids = list(range(1, 100))
    first, second = bench.split_halves(ids)
    assert len(first) == 50 and len(second) == 49
    assert sorted(first + second) == ids
    assert bench.split_halves(ids) == (first, second)


def test_scores(bench: ModuleType) -> None:
    records = [{"pair": 1, "truth": "x->y", "m": {"direction": "x->y"}},
               {"pair": 2, "truth": "y->x", "m": {"direction": "x->y"}},
               {"pair": 3, "truth": "y->x", "m": {"direction": "undecided"}},
               {"pair": 4, "truth": "x->y", "m": {"direction": "x->y"}}]
    out = bench.score(records, "m", {1: 0.5, 2: 0.5, 3: 1.0, 4: 1.0})
    assert out["correct"] == 2 and out["decided"] == 3
    assert out["accuracy"] == 0.5 and out["accuracy_decided"] == pytest.approx(2 / 3, abs=1e-4)
    assert out["weighted_accuracy"] == pytest.approx(1.5 / 3, abs=1e-4)
    assert "weighted_accuracy" not in bench.score(records, "m", None)
    assert "weak_evidence" not in out
    for r, weak in zip(records, (True, False, True, False), strict=True):
        r["m"]["weak"] = weak
    out = bench.score(records, "m", None)
    assert out["weak_evidence"] == {"pairs": 2, "correct": 1}
    assert out["strong_evidence"] == {"pairs": 2, "correct": 1}


def test_weights_table_covers_the_99_pairs(bench: ModuleType) -> None:
    originals = [bench.original_number(i) for i in range(1, 100)]
    assert originals == [*range(1, 52), *range(56, 71), *range(72, 105)]
    assert all(0 < bench.MOOIJ_WEIGHTS[o] <= 1 for o in originals)
    for group in bench.SHARED_COLUMN_GROUPS:  # one source data set: one weight
        assert len({round(bench.MOOIJ_WEIGHTS[bench.original_number(i)], 2) for i in group}) == 1
