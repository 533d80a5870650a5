"""``proxcompress causal``: CSV input, simulated pairs, the JSON report, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from proxcompress.causal import causal_direction, simulate_mixture
from proxcompress.cli import main


def write_csv(path: Path, pair_x: np.ndarray, pair_y: np.ndarray) -> None:
    lines = ["id,cause_a,effect_b"] + [f"{i},{float(a)!r},{float(b)!r}" for i, (a, b)
                                       in enumerate(zip(pair_x, pair_y, strict=True))]
    path.write_text("\n".join(lines) + "\n")


def test_csv_report_equals_the_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pair = simulate_mixture(200, 2, seed=21)
    write_csv(tmp_path / "d.csv", pair.x, pair.y)
    out = tmp_path / "r.json"
    code = main(["causal", "--csv", str(tmp_path / "d.csv"), "--x", "cause_a", "--y", "effect_b",
                 "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    api = causal_direction(pair.x, pair.y, names=("cause_a", "effect_b")).as_dict()
    assert report == {"n": 200, **api}
    assert report["forward"]["cause"] == "cause_a"
    assert "direction: " in capsys.readouterr().out


def test_simulated_pair_reports_the_truth(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert main(["causal", "--simulate", "2", "--seed", "3", "--k", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["true_direction"] == simulate_mixture(300, 2, seed=3).direction
    assert report["forward"]["k"] == report["backward"]["k"] == 2


@pytest.mark.parametrize(("content", "args", "message"), [
    ("a,b\n1,2\nx,3\n", ["--x", "a", "--y", "b"], "--x: row 3, column 'a': 'x' is not a number"),
    ("a,b\n1,2\n2,nan\n", ["--x", "a", "--y", "b"], "--y: row 3, column 'b': 'nan' is not finite"),
    ("a,b\n1,2\n", ["--x", "a", "--y", "c"], "--y: column 'c' is not in the header"),
    ("a,b\n1,2\n", ["--x", "a", "--y", "a"], "--y: the same column as --x"),
    ("", ["--x", "a", "--y", "b"], "is empty"),
    ("a,b\n" + "".join(f"{i},{i * i}\n" for i in range(10)), ["--x", "a", "--y", "b"],
     "n: 10 paired samples; the test needs >= 30"),
])
def test_bad_csv_is_a_clear_error_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, args: list[str],
        message: str) -> None:
    data, out = tmp_path / "d.csv", tmp_path / "r.json"
    data.write_text(content)
    assert main(["causal", "--csv", str(data), *args, "--json", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["causal"]) == 2
    assert "--csv" in capsys.readouterr().err
    assert main(["causal", "--csv", str(tmp_path / "none.csv"), "--x", "a", "--y", "b"]) == 2
    assert "is not a file" in capsys.readouterr().err
    assert main(["causal", "--csv", "x.csv", "--simulate", "2"]) == 2
    with pytest.raises(SystemExit):
        main(["causal", "--simulate", "2", "--k", "two"])
