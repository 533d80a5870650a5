"""Checkpoints (``train --resume``, ``export --run``, ``select --run``): an edited, damaged or
crafted run folder is refused with exit 2 naming the flag that gave it, before anything in it
changes (issue 13); and resuming never rewrites history.

Generated: a wrong-typed value for any field of ``checkpoint.json`` or of its run state, NaN
or infinity in any floating-point tensor (with the recorded SHA-256 updated, so only the
finiteness check can catch it), damage anywhere in the tensor file's header (hash updated),
and an edit of any model setting in ``config.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import LM_CONFIG, TINY_CONFIG, refused_here, run, snapshot
from safetensors.numpy import load_file, save_file

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
COMMANDS = {
    "--resume": ["train", "--resume", "run", "--set", "epochs=2"],
    "--run": ["export", "--run", "run", "--out", "exp"],
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-epoch BNN++ run."""
    folder = tmp_path_factory.mktemp("runs")
    (folder / "c.yaml").write_text(TINY_CONFIG.replace("epochs: 1", "epochs: 2"))
    answer = run(["train", "--config", "c.yaml", "--out", "run"], folder)
    assert answer.code == 0, answer.err
    return folder / "run"


def _copy(finished: Path, tmp_path: Path) -> Path:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    shutil.copytree(finished, folder / "run")
    return folder


def _record(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "run" / "checkpoint.json").read_text())  # type: ignore[no-any-return]


def _rewrite_tensors(folder: Path, tensors: dict[str, np.ndarray]) -> None:
    record = _record(folder)
    path = folder / "run" / record["tensors"]
    save_file(tensors, str(path))
    record["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "run" / "checkpoint.json").write_text(json.dumps(record))


WRONG = ["x", [1], {"a": 1}, -1, 0.5, True, None]
RECORD_KEYS = ["format", "sequence", "tensors", "sha256", "meta", "optimizer"]
RUN_KEYS = ["phase", "epoch", "step", "global_epoch", "acc", "seconds", "pruned", "M"]
#: values that are valid for a key (null for the optional ones, a fraction of a second)
VALID = {"optimizer": [None], "M": [None], "seconds": [0.5]}


@SETTINGS
@given(where=st.sampled_from(["record", "run", "whole"]), data=st.data(),
       flag=st.sampled_from(sorted(COMMANDS)))
def test_wrong_types_in_checkpoint_json(finished: Path, tmp_path: Path, where: str,
                                        data: st.DataObject, flag: str) -> None:
    folder = _copy(finished, tmp_path)
    record = _record(folder)
    if where == "whole":
        record = data.draw(st.sampled_from(WRONG + [[record]]))
    else:
        keys = RECORD_KEYS if where == "record" else RUN_KEYS
        key = data.draw(st.sampled_from(keys))
        value = data.draw(st.sampled_from([v for v in WRONG
                                           if not any(type(v) is type(w) and v == w
                                                  for w in VALID.get(key, []))]))
        (record if where == "record" else record["meta"]["run"])[key] = value
    (folder / "run" / "checkpoint.json").write_text(json.dumps(record))
    refused_here(COMMANDS[flag], flag, folder)


@SETTINGS
@given(data=st.data(), value=st.sampled_from([np.nan, np.inf, -np.inf]),
       flag=st.sampled_from(sorted(COMMANDS)))
def test_non_finite_tensors_are_refused(finished: Path, tmp_path: Path, data: st.DataObject,
                                        value: float, flag: str) -> None:
    folder = _copy(finished, tmp_path)
    tensors = load_file(str(folder / "run" / _record(folder)["tensors"]))
    name = data.draw(st.sampled_from(sorted(k for k, v in tensors.items()
                                            if v.dtype.kind == "f" and v.size)))
    flat = tensors[name].reshape(-1).copy()
    flat[data.draw(st.integers(0, flat.size - 1))] = value
    tensors[name] = flat.reshape(tensors[name].shape)
    _rewrite_tensors(folder, tensors)
    answer = refused_here(COMMANDS[flag], flag, folder)
    assert "NaN or infinite" in answer.message


@SETTINGS
@given(data=st.data())
def test_header_damage_with_the_hash_updated(finished: Path, tmp_path: Path,
                                             data: st.DataObject) -> None:
    """Damage in the safetensors header (its length or JSON) is refused naming --run; the
    rare damage that leaves an equivalent header is exported normally. Never a traceback."""
    folder = _copy(finished, tmp_path)
    record = _record(folder)
    path = folder / "run" / record["tensors"]
    raw = bytearray(path.read_bytes())
    header_end = 8 + struct.unpack("<Q", bytes(raw[:8]))[0]
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, header_end - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw))
    record["sha256"] = hashlib.sha256(bytes(raw)).hexdigest()
    (folder / "run" / "checkpoint.json").write_text(json.dumps(record))
    before = snapshot(folder)
    answer = run(COMMANDS["--run"], folder)
    assert answer.exception is None, repr(answer.exception)
    if answer.code == 2:
        assert "error: --run:" in answer.message and snapshot(folder) == before
    else:
        assert answer.code == 0


@SETTINGS
@given(edit=st.sampled_from([("- 16", "- 24"), ("name: mlp", "name: vgg"),
                             ("dropout: 0.0", "dropout: 0.5"), ("batchnorm: true",
                                                                 "batchnorm: false"),
                             ("weights: bnn++", "weights: bnn"), ("lr: 0.01", "lr: 0.5"),
                             ("seed: 1", "seed: 2")]),
       flag=st.sampled_from(sorted(COMMANDS)))
def test_edited_config_yaml_is_refused(finished: Path, tmp_path: Path,
                                       edit: tuple[str, str], flag: str) -> None:
    folder = _copy(finished, tmp_path)
    path = folder / "run" / "config.yaml"
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    refused_here(COMMANDS[flag], flag, folder)


@pytest.mark.parametrize("flag", sorted(COMMANDS))
def test_missing_pieces(finished: Path, tmp_path: Path, flag: str) -> None:
    for remove in ("checkpoint.json", "config.yaml", "tensors"):
        folder = _copy(finished, tmp_path)
        target = folder / "run" / (_record(folder)["tensors"] if remove == "tensors" else remove)
        target.unlink()
        refused_here(COMMANDS[flag], flag, folder)
    refused_here(COMMANDS[flag], flag, Path(tempfile.mkdtemp(dir=tmp_path)))  # no run at all


def test_resume_keeps_history_honest(finished: Path, tmp_path: Path) -> None:
    """A finished 2-epoch run: fewer epochs are refused (config.yaml untouched), the same
    number finishes again with the same summary, more epochs continue and both files agree."""
    folder = _copy(finished, tmp_path)
    answer = refused_here(["train", "--resume", "run", "--set", "epochs=1"], "epochs", folder)
    assert "already trained" in answer.message
    assert run(["train", "--resume", "run"], folder).code == 0
    summary = json.loads((folder / "run" / "summary.json").read_text())
    assert summary["epochs"] == 2
    assert run(["train", "--resume", "run", "--set", "epochs=3"], folder).code == 0
    summary = json.loads((folder / "run" / "summary.json").read_text())
    assert summary["epochs"] == 3 and "epochs: 3" in (folder / "run" / "config.yaml").read_text()
    refused_here(["train", "--resume", "run", "--set", "optim.lr=0.5"], "optim.lr", folder)


# ---------------------------------------------------- language-model runs (issue 20)
MPS_LM_CONFIG = LM_CONFIG + "tt: {form: mps, ranks: 2}\n"


@pytest.fixture(scope="module")
def lm_finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch MPS language-model run (its checkpoint carries the LSTM state)."""
    folder = tmp_path_factory.mktemp("lm-runs")
    (folder / "c.yaml").write_text(MPS_LM_CONFIG)
    answer = run(["train", "--config", "c.yaml", "--out", "run"], folder)
    assert answer.code == 0, answer.err
    return folder / "run"


@SETTINGS
@given(which=st.sampled_from(["extra.task.hx_h", "extra.task.hx_c"]),
       shape=st.lists(st.integers(1, 40), min_size=1, max_size=4).map(tuple))
def test_lm_state_of_another_shape_is_refused(lm_finished: Path, tmp_path: Path, which: str,
                                              shape: tuple[int, ...]) -> None:
    """The carried LSTM state must be (layers, batch rows, hidden) = (1, 32, 8) to resume."""
    if shape == (1, 32, 8):
        return
    folder = _copy(lm_finished, tmp_path)
    tensors = load_file(str(folder / "run" / _record(folder)["tensors"]))
    assert tensors[which].shape == (1, 32, 8)
    tensors[which] = np.zeros(shape, np.float32)
    _rewrite_tensors(folder, tensors)
    refused_here(COMMANDS["--resume"], "--resume", folder)


def test_lm_run_state_and_config_are_checked(lm_finished: Path, tmp_path: Path) -> None:
    """A language model's run state keeps two running sums (tokens' NLL and count); a
    classifier's three are refused, as is an edited tensor-train setting."""
    folder = _copy(lm_finished, tmp_path)
    record = _record(folder)
    assert len(record["meta"]["run"]["acc"]) == 2
    record["meta"]["run"]["acc"] = [0.0, 0.0, 0.0]
    (folder / "run" / "checkpoint.json").write_text(json.dumps(record))
    refused_here(COMMANDS["--resume"], "--resume", folder)
    for old, new in (("form: mps", "form: mpo"), ("hidden: 8", "hidden: 16"),
                     ("bptt: 12", "bptt: 20")):
        folder = _copy(lm_finished, tmp_path)
        path = folder / "run" / "config.yaml"
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new, 1))
        refused_here(COMMANDS["--resume"], "--resume", folder)
    folder = _copy(lm_finished, tmp_path)  # the untouched run resumes and trains on
    assert run(COMMANDS["--resume"], folder).code == 0
    assert json.loads((folder / "run" / "summary.json").read_text())["epochs"] == 2
