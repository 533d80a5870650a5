"""``proxcompress verify``: exit codes 0/1/2, the table, JSON schema and Markdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import proxcompress.cli as cli


@pytest.fixture(autouse=True)
def only_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    """Isolate from the other wings' subcommands (their modules may be absent or slow)."""
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ("proxcompress.proofs.cli",))


@pytest.fixture(scope="module")
def verify_all(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, Path]:
    folder = tmp_path_factory.mktemp("verify")
    out_json, out_md = folder / "v.json", folder / "v.md"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli, "_COMMAND_MODULES", ("proxcompress.proofs.cli",))
        code = cli.main(["verify", "--all", "--json", str(out_json), "--markdown", str(out_md)])
    return code, out_json, out_md


def test_all_exits_1_because_bnn_and_bnn_plus_fail(verify_all: tuple[int, Path, Path]) -> None:
    code, out_json, _ = verify_all
    assert code == 1
    data = json.loads(out_json.read_text())
    verdicts = {p["name"]: p["passed"] for p in data["pairs"]}
    assert verdicts["proxconnect"] is True and verdicts["bnn+"] is False
    assert verdicts["bnn"] is False and verdicts["bnn++"] is False  # descent
    assert verdicts["bnn++-prox"] is True
    assert data["derivations"][0]["name"] == "spr" and data["derivations"][0]["passed"]


def test_json_schema(verify_all: tuple[int, Path, Path]) -> None:
    data = json.loads(verify_all[1].read_text())
    assert set(data) >= {"passed", "formalization", "pairs", "derivations"}
    assert data["formalization"]["composition"] == "BoP"
    for record in data["pairs"] + data["derivations"]:
        assert isinstance(record["name"], str) and isinstance(record["passed"], bool)
        for entry in record["checks"]:
            assert {"check", "passed", "detail", "status", "method"} <= set(entry)
            assert entry["passed"] == (entry["status"] != "fail")
            if entry["status"] == "fail":
                assert entry["counterexample"]["point"]
    bnn_plus = next(p for p in data["pairs"] if p["name"] == "bnn+")
    decomposition = next(c for c in bnn_plus["checks"] if c["check"] == "decomposition")
    assert decomposition["counterexample"]["point"] == {"x": 1.0}


def test_markdown_table(verify_all: tuple[int, Path, Path]) -> None:
    text = verify_all[2].read_text()
    assert "| name | pair | prox | backward | decomposition | derivative | facts |" in text
    assert "| bnn+ |" in text and "**FAIL**" in text
    assert "Inherited guarantee" in text


def test_name_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "--name", "proxconnect"]) == 0
    out = capsys.readouterr().out
    assert "proxconnect" in out and "PASS" in out and "decomposition" in out
    assert cli.main(["verify", "--name", "bnn++"]) == 1
    assert "bnn++ / descent: B'(w) < 0" in capsys.readouterr().out
    assert cli.main(["verify", "--name", "bnn+"]) == 1
    out = capsys.readouterr().out
    assert "bnn+ / decomposition: F != B(P(x)): at x = 1" in out


def test_user_pair_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    ok = ["verify", "--prox", "(x + mu*sign(x))/(1 + mu)", "--backward", "tanh(2*x)"]
    assert cli.main(ok) == 0
    failing = ["verify", "--prox", "sign(x)", "--backward", "tanh(x)", "--forward", "sign(x)"]
    assert cli.main(failing) == 1
    assert "decomposition" in capsys.readouterr().out
    assert cli.main(["verify", "--prox", "sign(x)", "--backward", "x**3"]) == 1


def test_spr_only(tmp_path: Path) -> None:
    out = tmp_path / "spr.json"
    assert cli.main(["verify", "--spr", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["pairs"] == []


@pytest.mark.parametrize(
    "argv",
    [
        ["verify"],
        ["verify", "--name", "nope"],
        ["verify", "--prox", "__import__('os')", "--backward", "x"],
        ["verify", "--prox", "x.__class__", "--backward", "x"],
        ["verify", "--prox", "lambda: 1", "--backward", "x"],
        ["verify", "--prox", "sign(x"],
        ["verify", "--prox", "x"],
        ["verify", "--all", "--name", "bnn"],
        ["verify", "--name", "bnn", "--levels=-1,1"],
        ["verify", "--prox", "x", "--backward", "x", "--levels", "a,b"],
    ],
)
def test_bad_input_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert "error" in capsys.readouterr().err


def test_argparse_rejects_unknown_choice() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "--all", "--composition", "BP"])
    assert exc.value.code == 2


def test_no_partial_report_on_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    assert cli.main(["verify", "--prox", "2x", "--backward", "x", "--json", str(out)]) == 2
    assert not out.exists()
