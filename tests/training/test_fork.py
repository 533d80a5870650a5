"""Forks at a phase boundary (training/fork.py): ``--stop-after`` then ``--fork-from`` with a
config that differs only in keys the finished phases never read gives the run of that config
trained straight through, bit for bit; every other difference, and every bad folder or flag,
is refused with exit 2 before anything is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from training_helpers import tiny_config, tiny_spr_config

from proxcompress.cli import main
from proxcompress.errors import InvalidInputError
from proxcompress.training.checkpoint import load_checkpoint
from proxcompress.training.config import config_from_dict, dump_config
from proxcompress.training.fork import check_fork, fork_run
from proxcompress.training.runchecks import FORK_KEYS
from proxcompress.training.trainer import STEPS, read_log, train


def _clockless(value: Any) -> Any:
    """``value`` without wall-clock fields (``seconds``, ``inference_ms...``), recursively:
    all that differs between two identical runs."""
    if isinstance(value, dict):
        return {k: _clockless(v) for k, v in value.items()
                if "seconds" not in k and not k.startswith("inference_ms")}
    return value


def _same_runs(a: Path, b: Path) -> None:
    """Same final tensors, optimizer wrapper state, per-step losses, per-epoch metrics and
    summary (clock fields aside)."""
    (ma, _, meta_a, ra, _), (mb, _, meta_b, rb, _) = load_checkpoint(a), load_checkpoint(b)
    assert ma.keys() == mb.keys()
    for key in ma:
        assert torch.equal(ma[key], mb[key]), key
    assert torch.equal(ra, rb)
    assert meta_a["wrapper"] == meta_b["wrapper"]
    assert read_log(a / STEPS) == read_log(b / STEPS)

    def lines(folder: Path) -> list[dict[str, Any]]:
        return [_clockless(json.loads(x))
                for x in (folder / "metrics.jsonl").read_text().splitlines()]

    assert lines(a) == lines(b)
    sa, sb = (_clockless(json.loads((f / "summary.json").read_text())) for f in (a, b))
    assert sa == sb


def test_spr_fork_after_pretraining_equals_the_straight_run(tmp_path: Path) -> None:
    """SPR at lambda 2, forked from a lambda-5 run stopped after its pretraining, is the
    lambda-2 run trained from scratch."""
    lam2 = tiny_spr_config(spr={"lam": 2.0, "tolerance": 3.0})
    train(lam2, tmp_path / "straight")
    stopped = train(tiny_spr_config(), tmp_path / "prefix", stop_after="pretrain")
    assert stopped == {"stopped_after": "pretrain", "epochs": 1}
    assert not (tmp_path / "prefix" / "summary.json").exists()
    fork_run(tmp_path / "prefix", lam2, tmp_path / "fork")
    train(lam2, tmp_path / "fork", resume=True)
    _same_runs(tmp_path / "straight", tmp_path / "fork")
    # the prefix is untouched and can feed another fork
    again = tiny_spr_config(spr={"lam": 10.0})
    fork_run(tmp_path / "prefix", again, tmp_path / "fork10")
    train(again, tmp_path / "fork10", resume=True)
    assert "lam: 10.0" in (tmp_path / "fork10" / "config.yaml").read_text()


def test_magnitude_fork_after_training_equals_the_straight_run(tmp_path: Path) -> None:
    pytest.importorskip("torch_pruning")
    budget = tiny_spr_config(spr={"method": "magnitude", "keep_counts": [3, 5]})
    train(budget, tmp_path / "straight")
    other = tiny_spr_config(spr={"method": "magnitude", "keep_counts": [6, 12]})
    train(other, tmp_path / "prefix", stop_after="train")
    fork_run(tmp_path / "prefix", budget, tmp_path / "fork")
    assert train(budget, tmp_path / "fork", resume=True)["spr"]["kept"] == \
        {"conv0_0": 3, "conv1_0": 5}
    _same_runs(tmp_path / "straight", tmp_path / "fork")


def test_a_stopped_prefix_resumed_with_stop_after_stays_stopped(tmp_path: Path) -> None:
    cfg = tiny_spr_config()
    train(cfg, tmp_path / "p", stop_after="pretrain")
    before = (tmp_path / "p" / "checkpoint.json").read_bytes()
    assert train(cfg, tmp_path / "p", resume=True, stop_after="pretrain")["stopped_after"] \
        == "pretrain"
    assert (tmp_path / "p" / "checkpoint.json").read_bytes() == before


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fork") / "prefix"
    train(tiny_spr_config(), folder, stop_after="pretrain")
    return folder


#: (dotted key, a value other than tiny_spr_config's) read before / after the pretraining
READ_BEFORE = [("optim.lr", 0.07), ("seed", 4), ("spr.M_scale", 2.0), ("spr.pretrain_epochs", 2),
               ("epochs", 3), ("model.width", 4), ("data.synthetic_samples", 224),
               ("spr.M_rule", "layerwise")]
READ_AFTER = [("spr.lam", 0.5), ("spr.alpha", 0.3), ("spr.tolerance", 1.0),
              ("spr.search_samples", 64), ("spr.finetune_epochs", 2),
              ("spr.finetune_lr", 0.01), ("spr.with_norm", False), ("progress", True)]


def _changed(changes: list[tuple[str, Any]]) -> Any:
    raw = tiny_spr_config().to_dict()
    for key, value in changes:
        *parents, last = key.split(".")
        node = raw
        for p in parents:
            node = node[p]
        node[last] = value
    return config_from_dict(raw)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(after=st.lists(st.sampled_from(READ_AFTER), unique_by=lambda kv: kv[0], max_size=4),
       before=st.lists(st.sampled_from(READ_BEFORE), unique_by=lambda kv: kv[0], max_size=2))
def test_only_keys_no_finished_phase_read_may_differ(prefix: Path, after: list[Any],
                                                     before: list[Any]) -> None:
    cfg = _changed(after + before)
    if not before:
        check_fork(prefix, cfg)
        return
    with pytest.raises(InvalidInputError) as info:
        check_fork(prefix, cfg)
    assert any(key in str(info.value) for key, _ in before), str(info.value)


def test_fork_keys_are_read_after_their_phase_only() -> None:
    """The table's keys exist in the config, and what a later phase may change includes
    nothing an earlier boundary forbids."""
    raw = tiny_spr_config().to_dict()
    for keys in FORK_KEYS.values():
        for key in keys:
            section, name = key.split(".")
            assert name in raw[section], key
    assert set(FORK_KEYS["train"]) <= set(FORK_KEYS["pretrain"])


def _cli(tmp_path: Path, config: Any, *args: str) -> int:
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(config))
    return main(["train", "--config", str(path), *args])


@pytest.mark.parametrize("case", ["last-phase", "no-phases", "missing", "not-boundary",
                                  "finished", "other-lr", "not-empty", "with-resume"])
def test_bad_forks_exit_2_and_write_nothing(tmp_path: Path, prefix: Path, case: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    cfg = tiny_spr_config(spr={"lam": 2.0})
    if case == "last-phase":
        code, field = _cli(tmp_path, cfg, "--out", str(out), "--stop-after", "finetune"), \
            "--stop-after"
    elif case == "no-phases":
        code, field = _cli(tmp_path, tiny_config(), "--out", str(out), "--stop-after",
                           "train"), "--stop-after"
    elif case == "missing":
        code, field = _cli(tmp_path, cfg, "--out", str(out), "--fork-from",
                           str(tmp_path / "nowhere")), "--fork-from"
    elif case in ("not-boundary", "finished"):
        source = tmp_path / "source"
        if case == "finished":
            train(tiny_spr_config(), source)
        else:
            with pytest.raises(Exception, match="interrupted"):
                train(tiny_spr_config(), source, interrupt_after_steps=2)
        code, field = _cli(tmp_path, cfg, "--out", str(out), "--fork-from", str(source)), \
            "--fork-from"
    elif case == "other-lr":
        code, field = _cli(tmp_path, _changed([("optim.lr", 0.2)]), "--out", str(out),
                           "--fork-from", str(prefix)), "optim.lr"
    elif case == "not-empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
        code, field = _cli(tmp_path, cfg, "--out", str(out), "--fork-from", str(prefix)), \
            "--out"
    else:
        code, field = main(["train", "--resume", str(prefix), "--fork-from", str(prefix)]), \
            "--fork-from"
    err = capsys.readouterr().err
    assert code == 2, err
    assert field in err and "Traceback" not in err
    if case == "not-empty":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()
    assert not list(tmp_path.glob(".*.fork"))


def test_cli_stop_after_and_fork(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(tmp_path, tiny_spr_config(), "--out", str(tmp_path / "p"), "--stop-after",
                "pretrain") == 0
    assert json.loads(capsys.readouterr().out) == {"stopped_after": "pretrain", "epochs": 1}
    assert _cli(tmp_path, tiny_spr_config(spr={"lam": 2.0}), "--out", str(tmp_path / "f"),
                "--fork-from", str(tmp_path / "p")) == 0
    summary = json.loads((tmp_path / "f" / "summary.json").read_text())
    assert summary["epochs"] == 4 and "lam: 2.0" in (tmp_path / "f" / "config.yaml").read_text()
