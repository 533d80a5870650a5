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
    ("a,a,b\n1,2,3\n", ["--x", "a", "--y", "b"], "--x: column 'a' appears more than once"),
    ("a,b\n" + "".join(f"{i},{i * i}\n" for i in range(10)), ["--x", "a", "--y", "b"],
     "--csv: 10 paired samples; the test needs >= 30"),
    ("a,b\n" + "".join(f"{i},7\n" for i in range(40)), ["--x", "a", "--y", "b"],
     "b: is constant"),
])
def test_bad_csv_is_a_clear_error_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, args: list[str],
        message: str) -> None:
    data, out = tmp_path / "d.csv", tmp_path / "r.json"
    data.write_text(content)
    assert main(["causal", "--csv", str(data), *args, "--json", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_bom_and_blank_lines_are_accepted(tmp_path: Path) -> None:
    pair = simulate_mixture(60, 1, seed=2)
    write_csv(tmp_path / "plain.csv", pair.x, pair.y)
    text = (tmp_path / "plain.csv").read_text()
    (tmp_path / "bom.csv").write_text("\ufeff" + text.replace("\n", "\n\n", 3) + "\n\n")
    out_a, out_b = tmp_path / "a.json", tmp_path / "b.json"
    for name, out in (("plain.csv", out_a), ("bom.csv", out_b)):
        assert main(["causal", "--csv", str(tmp_path / name), "--x", "cause_a", "--y",
                     "effect_b", "--json", str(out)]) in (0, 1)
    assert json.loads(out_a.read_text()) == json.loads(out_b.read_text())


@pytest.mark.parametrize(("args", "message"), [
    (["--simulate", "0"], "--simulate: 0 is outside [1, inf)"),
    (["--simulate", "2", "--seed", "-1"], "--seed: -1 is outside [0, inf)"),
    (["--simulate", "2", "--n", "10"], "--n: 10 is outside [30, inf)"),
    (["--simulate", "2", "--k-max", "0"], "--k-max: 0 is outside [1, inf)"),
    (["--simulate", "2", "--permutations", "9"],
     "--permutations: applies to --test permutation or max-bandwidth"),
    (["--simulate", "2", "--test", "permutation", "--permutations", "0"],
     "--permutations: 0 is outside [1, inf)"),
    (["--simulate", "2", "--x", "a"], "--x: give --csv, --x and --y, or --simulate, not both"),
    (["--csv", "d.csv", "--x", "a", "--y", "b", "--n", "50"], "--n: sets the size of --simulate"),
    ([], "--csv: give --csv FILE"),
    (["--simulate", "2", "--noise", "loglinear-bic", "--criterion", "heldout"],
     "--criterion: --noise loglinear-bic chooses k by its own classification BIC"),
])
def test_flags_are_checked_before_any_work(
        capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["causal", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("target", ["folder", "missing/r.json"])
def test_bad_json_target_fails_before_the_test(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str) -> None:
    (tmp_path / "folder").mkdir()
    assert main(["causal", "--simulate", "2", "--json", str(tmp_path / target)]) == 2
    err = capsys.readouterr()
    assert "--json: " in err.err and "direction" not in err.out  # refused before computing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_unreadable_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "latin1.csv").write_bytes("a,b\n\xe9,1\n".encode("latin-1"))
    assert main(["causal", "--csv", str(tmp_path / "latin1.csv"), "--x", "a", "--y", "b"]) == 2
    assert "--csv: " in capsys.readouterr().err
    assert main(["causal", "--csv", str(tmp_path / "none.csv"), "--x", "a", "--y", "b"]) == 2
    assert "is not a file" in capsys.readouterr().err


def test_argparse_rejects_a_bad_k(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["causal", "--simulate", "2", "--k", "two"])
    assert info.value.code == 2
    assert "'two' is neither 'auto' nor an integer" in capsys.readouterr().err


def test_discretised_column_is_answered_with_a_weak_evidence_note(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(4)
    grade = rng.integers(1, 6, 120).astype(float)  # five levels
    score = grade + rng.uniform(-1, 1, 120)
    write_csv(tmp_path / "d.csv", grade, score)
    out = tmp_path / "r.json"
    code = main(["causal", "--csv", str(tmp_path / "d.csv"), "--x", "cause_a", "--y", "effect_b",
                 "--k", "1", "--json", str(out)])
    assert code == 0
    assert "weak evidence: cause_a has 5 distinct values" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["evidence"]["weak"] is True
    api = causal_direction(grade, score, k=1, names=("cause_a", "effect_b"))
    assert report["direction"] == api.direction
    assert report["evidence"]["notes"] == list(api.notes)
    code = main(["causal", "--csv", str(tmp_path / "d.csv"), "--x", "cause_a", "--y", "effect_b",
                 "--k", "1", "--noise", "location-scale", "--json", str(out)])
    api = causal_direction(grade, score, k=1, noise="location-scale", names=("cause_a", "effect_b"))
    assert json.loads(out.read_text())["direction"] == api.direction


def test_round4_statistics_from_the_command_line(tmp_path: Path) -> None:
    """--test max-bandwidth (with --permutations and --seed) and --noise loglinear-scale give
    the API's answer and statistics."""
    from proxcompress.causal import HSICMaxBandwidth

    pair = simulate_mixture(120, 1, seed=5)
    out = tmp_path / "r.json"
    code = main(["causal", "--simulate", "1", "--n", "120", "--seed", "5", "--k", "1",
                 "--test", "max-bandwidth", "--permutations", "19",
                 "--noise", "loglinear-scale", "--json", str(out)])
    assert code == 0
    api = causal_direction(pair.x, pair.y, k=1, noise="loglinear-scale",
                           test=HSICMaxBandwidth(permutations=19, seed=5))
    report = json.loads(out.read_text())
    assert report["direction"] == api.direction
    assert report["forward"]["statistic"] == api.forward.test.statistic
    assert report["forward"]["p_value"] == api.forward.test.p_value
