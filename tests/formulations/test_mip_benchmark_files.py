"""``benchmarks/mip_pruning.py``'s file flags: a bad ``--decompositions`` or ``--best-known``
file exits 2 naming the flag and what is wrong, before any work (no traceback, no output)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "mip_pruning.py"


@pytest.mark.parametrize(("flag", "piece", "text", "says"), [
    ("--decompositions", "hull", "not json", "not a readable JSON file"),
    ("--decompositions", "hull", "[1, 2]", "object"),
    ("--decompositions", "hull", '{"0:0.05": [[1, 2]]}', "50 2 x 2 matrices"),
    ("--decompositions", "hull",
     '{"0:0.05": ' + str([[[0.0, 0.0], [0.0, 1e9]]] * 50) + "}", "no valid block hull"),
    ("--best-known", "cnn-root", "not json", "not a saved cnn piece"),
    ("--best-known", "cnn-root", '{"runs": [{"layer": 3}]}', "every run needs"),
])
def test_bad_files_exit_2_naming_the_flag(tmp_path: Path, flag: str, piece: str, text: str,
                                          says: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--piece", piece, "--seeds", "1", flag,
                           str(bad), "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{flag}: " in done.stderr and says in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


@pytest.mark.parametrize(("piece", "flag", "value", "accepted"), [
    ("overlap", "--overlap-sweeps", "0", "[1, 10000]"),
    ("overlap", "--overlap-sweeps", "20000", "[1, 10000]"),
    ("cnn", "--root-shor-iters", "0", "[1, 100000]"),
    ("cnn", "--root-shor-iters", "200000", "[1, 100000]"),
    ("cnn-shor", "--shor-iters", "-1", "[0, 100000]"),
    ("cnn-root", "--shor-iters", "200000", "[0, 100000]"),
    ("bnb-alpha", "--alphas", "0", "open interval (0, 1)"),
    ("bnb-alpha", "--alphas", "1.0", "open interval (0, 1)"),
    ("bnb-alpha", "--alphas", "nan", "open interval (0, 1)"),
])
def test_bad_numbers_exit_2_naming_the_flag(tmp_path: Path, piece: str, flag: str, value: str,
                                           accepted: str) -> None:
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--piece", piece, "--seeds", "1", flag,
                           value, "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{flag}: " in done.stderr and accepted in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_several_shor_counts_only_for_the_cnn_shor_piece(tmp_path: Path) -> None:
    """``--shor-iters`` takes several counts for ``cnn-shor`` only: elsewhere exit 2 naming the
    flag, before any work."""
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--piece", "cnn-root", "--seeds", "1",
                           "--shor-iters", "10", "20", "--out", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "--shor-iters: " in done.stderr and "only with --piece cnn-shor" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


@pytest.mark.parametrize(("args", "flag"), [
    (["--piece", "cnn", "--runs", "{tmp}/none"], "--runs"),
    (["--piece", "cnn-root", "--runs", "{tmp}"], "--runs"),
    (["--piece", "cnn-relax", "--runs", "{tmp}"], "--runs"),
    (["--piece", "cnn-shor", "--runs", "{tmp}"], "--runs"),
    (["--freeze", "{tmp}", "--runs", "{tmp}/out"], "--freeze"),
])
def test_missing_cnn_runs_exit_2_naming_the_flag(tmp_path: Path, args: list[str],
                                                 flag: str) -> None:
    """``--runs`` (cnn pieces) and ``--freeze`` without the seed-S runs: exit 2 naming the flag
    and the missing run, before any work (nothing written)."""
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(SCRIPT), *[a.format(tmp=tmp_path) for a in args],
                           "--seeds", "1", "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{flag}: " in done.stderr and "seed-0" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()
    assert not (tmp_path / "out").exists()


def test_sdp_backend_ab_only_with_the_overlap_piece(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--piece", "hull-root", "--seeds", "1",
                           "--sdp-backend-ab", "--out", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "--sdp-backend-ab: " in done.stderr and "--piece overlap" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()
