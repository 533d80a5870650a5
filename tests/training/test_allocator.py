"""glibc's allocator tuning (training/allocator.py): chosen by PROXCOMPRESS_MALLOC, refused with
a clear error when misspelt, fewer page faults in a real training run, and the same arithmetic
(bit-identical checkpoints) with and without it."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from proxcompress.errors import InvalidInputError
from proxcompress.training import allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
ROOT = Path(__file__).resolve().parents[2]


def test_the_variable_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(allocator.ENV, raising=False)
    assert allocator.wanted()
    monkeypatch.setenv(allocator.ENV, "default")
    assert not allocator.wanted()
    assert allocator.tune_allocator() is False
    monkeypatch.setenv(allocator.ENV, "tuned")
    assert allocator.wanted()


@pytest.mark.parametrize("value", ["", "on", "Tuned", "1", "default "])
def test_a_misspelt_value_names_the_variable(monkeypatch: pytest.MonkeyPatch,
                                             value: str) -> None:
    monkeypatch.setenv(allocator.ENV, value)
    with pytest.raises(InvalidInputError, match="PROXCOMPRESS_MALLOC.*accepted: tuned, default"):
        allocator.tune_allocator()


def test_a_misspelt_value_exits_2_before_training(tmp_path: Path) -> None:
    env = {**os.environ, allocator.ENV: "fast"}
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "proxcompress", "train", "--config",
                           str(ROOT / "configs/results/mlp-fp.yaml"), "--set",
                           "data.name=synthetic", "--out", str(out)],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "PROXCOMPRESS_MALLOC" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_tuning_takes_effect_and_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(allocator.ENV, raising=False)
    assert allocator.tune_allocator() is True
    assert allocator.tune_allocator() is True


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_same_weights_fewer_page_faults(tmp_path: Path) -> None:
    """One epoch of the results CNN on the embedded data in fresh processes: the checkpoint
    is the same bytes with either setting, and the tuned process takes fewer minor faults."""
    script = ("import json, resource, sys\n"
              "from proxcompress.cli import main\n"
              "code = main(sys.argv[1:])\n"
              "print(json.dumps({'code': code, 'faults': "
              "resource.getrusage(resource.RUSAGE_SELF).ru_minflt}))\n")
    faults = {}
    for mode in ("default", "tuned"):
        env = {**os.environ, allocator.ENV: mode, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(
            [sys.executable, "-c", script, "train", "--config",
             str(ROOT / "configs/results/cnn-bc.yaml"), "--set", "epochs=1", "--set",
             "data.name=embedded", "--set", "data.train_subset=1500", "--out",
             str(tmp_path / mode)], env=env, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["code"] == 0
        faults[mode] = result["faults"]
    a = (tmp_path / "default" / "checkpoint-0.safetensors").read_bytes()
    b = (tmp_path / "tuned" / "checkpoint-0.safetensors").read_bytes()
    assert a == b
    assert faults["tuned"] < faults["default"], faults
