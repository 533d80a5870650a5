"""benchmarks/causal.py tuebingen without the network or the real data: the missing-wheel
message, a wrong wheel and a wrong method refused with exit 2 (the reader itself is tested in
test_tuebingen.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tuebingen_fakes import fake_wheel, synthetic

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_causal", ROOT / "benchmarks" / "causal.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_causal"] = module
    spec.loader.exec_module(module)
    return module


def test_missing_wheel_is_a_clear_error(bench: ModuleType, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = bench.main(["tuebingen", "--cache", str(tmp_path), "--methods", "k1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--wheel:" in err and "pip download cdt==0.6.0 --no-deps -d" in err
    assert "--download" in err and "Traceback" not in err
    wrong = fake_wheel(tmp_path / "w.whl", synthetic())
    assert bench.main(["tuebingen", "--wheel", str(wrong), "--methods", "k1"]) == 2
    assert "not that of cdt 0.6.0's wheel" in capsys.readouterr().err
    assert bench.main(["tuebingen", "--wheel", str(wrong), "--methods", "nope"]) == 2
    assert "--methods" in capsys.readouterr().err


def test_the_benchmark_uses_the_package_reader(bench: ModuleType) -> None:
    """One piece of code for the wheel, the weights and the scores."""
    from proxcompress.causal import scores, tuebingen

    assert bench.tuebingen is tuebingen and bench.score is scores.score
    assert not hasattr(bench, "load_tuebingen") and not hasattr(bench, "MOOIJ_WEIGHTS")


def test_simulation_cells_are_selectable(bench: ModuleType, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """--cells runs only the named cells, with the seeds the full study gives them (the same
    pair and answer as the study's record for that seed); a cell outside the nine exits 2."""
    import json

    out = tmp_path / "sim.json"
    assert bench.main(["simulation", "--pairs", "1", "--cells", "gaussian:0:2", "--methods",
                       "plain,centred_llb", "--jobs", "1", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert [(r["noise"], r["k"], r["seed"]) for r in saved["records"]] == [("gaussian", 2, 2000)]
    assert saved["settings"]["cells"] == ["gaussian:0:2"]
    direct = bench._one(("gaussian", 0.0, 2, 2000, 300, ("plain", "centred_llb")))
    assert direct["centred_llb"]["direction"] == saved["records"][0]["centred_llb"]["direction"]
    assert bench.main(["simulation", "--cells", "gaussian:0:4", "--methods", "plain,centred"]) == 2
    assert "--cells" in capsys.readouterr().err
