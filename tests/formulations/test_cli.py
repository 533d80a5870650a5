"""``proxcompress solve / compare / instance``: exit codes, JSON schema, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from proxcompress.cli import main
from proxcompress.formulations import LayerPruningProblem, random_instance, solve
from proxcompress.formulations.cli import example_path


@pytest.fixture()
def instance(tmp_path):
    path = tmp_path / "inst.npz"
    random_instance(120, 12, 2, 6, seed=1, rho=0.5).to_npz(path)
    return path


def test_solve_writes_json_and_exits_zero(instance, tmp_path, capsys):
    out = tmp_path / "sol.json"
    assert main(["solve", str(instance), "--formulation", "bnb", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert set(record) >= {
        "objective",
        "bound",
        "gap",
        "status",
        "support",
        "W",
        "seconds",
        "nodes",
    }
    reference = solve(LayerPruningProblem.from_npz(instance), "brute")
    assert record["support"] == list(reference.support)
    assert record["objective"] == pytest.approx(reference.objective, rel=1e-9)
    assert np.asarray(record["W"]).shape == (12, 2)
    assert "objective" in capsys.readouterr().out


def test_solve_time_limit_exits_three(tmp_path):
    path = tmp_path / "big.npz"
    random_instance(500, 200, 1, 200, seed=0, alpha=0.2, weights="gaussian").to_npz(path)
    out = tmp_path / "sol.json"
    code = main(["solve", str(path), "--time-limit", "1", "--json", str(out)])
    record = json.loads(out.read_text())
    assert code == (0 if record["status"] == "optimal" else 3)
    assert record["bound"] <= record["objective"]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"Y": np.zeros(5), "groups": np.zeros(4), "lam": 1.0, "alpha": 0.5, "M": 1.0}, "X"),
        (
            {
                "X": np.zeros((5, 4)),
                "Y": np.zeros(5),
                "groups": np.zeros(4),
                "lam": 1.0,
                "alpha": 1.5,
                "M": 1.0,
            },
            "alpha",
        ),
        (
            {
                "X": np.zeros((5, 4)),
                "Y": np.zeros(5),
                "groups": np.zeros(4),
                "lam": 1.0,
                "alpha": 0.5,
                "M": 1.0,
                "extra": 1,
            },
            "extra",
        ),
    ],
)
def test_solve_bad_input_exits_two_and_writes_nothing(tmp_path, capsys, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    out = tmp_path / "sol.json"
    assert main(["solve", str(path), "--json", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_solve_missing_file_and_brute_refusal_exit_two(tmp_path, capsys):
    assert main(["solve", str(tmp_path / "nope.npz")]) == 2
    path = tmp_path / "wide.npz"
    random_instance(50, 21, 1, 21, seed=0).to_npz(path)
    assert main(["solve", str(path), "--formulation", "brute"]) == 2
    assert "bnb" in capsys.readouterr().err


def test_bad_time_limit_is_rejected(instance):
    with pytest.raises(SystemExit) as info:
        main(["solve", str(instance), "--time-limit", "-1"])
    assert info.value.code == 2


def test_compare_on_the_bundled_example_agrees(tmp_path, capsys):
    out = tmp_path / "cmp.json"
    assert main(["compare", "--formulations", "bnb,brute", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["agree"] is True
    assert {s["formulation"] for s in record["solutions"]} == {"bnb", "brute"}
    gaps = {r["kind"]: r["root_gap"] for r in record["relaxations"]}
    assert 0 <= gaps["perspective"] <= gaps["bigm"] + 1e-7
    assert "agree" in capsys.readouterr().out
    assert example_path().exists()


def test_instance_command_round_trips(tmp_path):
    out = tmp_path / "gen.npz"
    assert (
        main(["instance", str(out), "--n", "60", "--groups", "5", "--m", "2", "--seed", "3"]) == 0
    )
    problem = LayerPruningProblem.from_npz(out)
    assert (problem.n, problem.d, problem.m, problem.n_groups) == (60, 5, 2, 5)
