"""``proxcompress verify --run DIR``: the pairs certified are the pairs a run trained with,
parameters included, and the exit code follows their verdicts."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from training_helpers import tiny_config, tiny_spr_config

from proxcompress.cli import main
from proxcompress.training.certify import mu_values, run_pairs
from proxcompress.training.layers import quantized_modules
from proxcompress.training.trainer import build_run_model, train


def _run(tmp_path: Path, name: str, mu0: float = 1000.0, **quant: Any) -> Path:
    folder = tmp_path / name
    train(tiny_config(epochs=1, quant=quant, mu={"start": mu0}), folder)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {
        "beta2": _run(root, "beta2", weights="bnn++-prox", beta=2.0, activations="bnn"),
        "beta5": _run(root, "beta5", weights="bnn++-prox", beta=5.0),
        # the published reading: beta(mu) = 2 + mu from mu = 0; a slow 1 + mu / 4 (mu reaches
        # about 3 here); a constant beta = 2, whose forward never tends to sign
        "published": _run(root, "published", 0.0, weights="bnn++"),
        "slow": _run(root, "slow", 0.0, weights="bnn++", beta=1.0, beta_growth=0.25),
        "constant": _run(root, "constant", 0.0, weights="bnn++", beta=2.0, beta_growth=0.0),
        "bnnp-prox": _run(root, "bnnp-prox", weights="bnn+", beta=2.0, derivative_at="prox"),
        "fp": _run(root, "fp", weights="none", keep_first=True),
    }


def test_pairs_are_the_trained_ones(runs: dict[str, Path]) -> None:
    """Name, parameters and the point of ``B'`` equal those of the torch ops in the model."""
    from proxcompress.training.certify import run_config

    for folder in runs.values():
        cfg = run_config(folder)
        pairs = {p.role: p for p in run_pairs(cfg, folder)}
        model = build_run_model(cfg, 10, cfg.seed)
        layers = quantized_modules(model)
        for role, attr in (("weights", "weight_quantizer"), ("activations", "input_quantizer")):
            ops = [getattr(m, attr) for m in layers if getattr(m, attr) is not None]
            if not ops:
                assert role not in pairs
                continue
            op = ops[0]
            assert all((o.name, o.parameters, o.derivative_at) ==
                       (op.name, op.parameters, op.derivative_at) for o in ops)
            assert (pairs[role].name, pairs[role].parameters) == (op.name, op.parameters)
            if pairs[role].derivative_at is not None:
                assert pairs[role].derivative_at == op.derivative_at
        if "weights" in pairs:
            summary = json.loads((folder / "summary.json").read_text())
            assert pairs["weights"].latent_bound == cfg.quant.latent_clip == 1.0
            grid = pairs["weights"].mu_values
            if grid:  # the run's own range of mu, end points included (mu = 0 skipped)
                start = cfg.mu.start or 0.25
                assert grid[0] == Fraction(start) and grid[-1] == Fraction(f"{summary['mu']:.6g}")


def test_mu_grid() -> None:
    assert mu_values(0.0, 70.3) == (Fraction(1, 4), Fraction(1), Fraction(4), Fraction(16),
                                    Fraction(64), Fraction("70.3"))
    assert mu_values(1000.0, 1070.123456) == (Fraction(1000), Fraction(1024),
                                              Fraction("1070.12"))
    assert mu_values(5.0, 5.0) == (Fraction(5),)


def test_verify_run_passes_with_the_runs_own_beta(runs: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # beta = 2 weights pass; BNN's activation pair fails its derivative check (by design)
    out_json = tmp_path / "r.json"
    assert main(["verify", "--run", str(runs["beta2"]), "--json", str(out_json),
                 "--markdown", str(tmp_path / "r.md")]) == 1
    text = capsys.readouterr().out
    assert "bnn++-prox(beta=2) [weights]" in text and "bnn [activations]" in text
    record = json.loads(out_json.read_text())["runs"][0]
    verdicts = {p["name"]: p["passed"] for p in record["pairs"]}
    assert verdicts == {"bnn++-prox(beta=2) [weights]": True, "bnn [activations]": False}
    failed = [c["check"] for p in record["pairs"] for c in p["checks"] if not c["passed"]]
    assert failed == ["derivative"]
    assert record["pairs_trained"][0]["parameters"] == {"beta": 2.0}
    assert "bnn++-prox(beta=2) [weights]" in (tmp_path / "r.md").read_text()
    # the published reading with beta(mu) <= 1.75 < 2.3994 over the run keeps B' >= 0 on
    # [-1, 1]: PASS, exit 0; a constant beta passes descent but its F never tends to sign
    assert main(["verify", "--run", str(runs["slow"])]) == 0
    out = capsys.readouterr().out
    assert "bnn++(beta=1, beta_growth=0.25) [weights]" in out and "PASS" in out
    assert main(["verify", "--run", str(runs["constant"])]) == 1
    assert "bnn++(beta=2, beta_growth=0) [weights] / facts: lim_(mu->oo) F does not take" in \
        capsys.readouterr().out


def test_verify_run_fails_naming_the_check(runs: dict[str, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--run", str(runs["beta5"])]) == 1
    out = capsys.readouterr().out
    assert "bnn++-prox(beta=5) [weights] / descent: B'(P(w)) < 0" in out
    # the published reading with beta(mu) = 1 + mu: the latents beyond 2.3994 / beta(mu)
    assert main(["verify", "--run", str(runs["published"])]) == 1
    assert "bnn++(beta=2, beta_growth=1) [weights] / descent: B'(w) < 0" in \
        capsys.readouterr().out
    # BNN+ with B' moved to P(w): the derivative check passes, the decomposition still fails
    assert main(["verify", "--run", str(runs["bnnp-prox"])]) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("bnn+(beta=2)")]
    assert lines and " FAIL " in f" {lines[0]} "
    assert "bnn+(beta=2) [weights] / decomposition" in out
    assert "bnn+(beta=2) [weights] / derivative" not in out


def test_verify_run_without_pairs_and_with_spr(runs: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--run", str(runs["fp"])]) == 0
    assert "full precision: no quantizer pair" in capsys.readouterr().out
    spr = tmp_path / "spr"
    train(tiny_spr_config(), spr)
    assert main(["verify", "--run", str(spr)]) == 0
    assert "spr" in capsys.readouterr().out


def test_verify_run_bad_input(runs: dict[str, Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    cases = [
        (["--run", str(tmp_path / "missing")], "no config.yaml"),
        (["--run", str(runs["fp"]), "--all"], "cannot be combined with --all"),
        (["--run", str(runs["fp"]), "--json", str(tmp_path / "no" / "x.json")], "--json"),
        (["--run", str(runs["fp"]), "--json", str(tmp_path)], "is a folder"),
    ]
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((runs["beta2"] / "config.yaml").read_text())
    cases.append((["--run", str(unfinished), "--json", str(out)], "has no summary.json"))
    for argv, message in cases:
        assert main(["verify", *argv]) == 2, argv
        assert message in capsys.readouterr().err
    assert not out.exists()
