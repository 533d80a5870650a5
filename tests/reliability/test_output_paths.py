"""Output paths of every subcommand: checked before any work, nothing written until the work
succeeded, temporaries of killed processes cleaned (issue 13).

Generated: every (subcommand, output flag) against every kind of unusable target -- a folder
where a file goes, a path inside a file, a missing folder, a dangling link, a device, a pipe,
a name too long, an empty path -- must exit 2 naming the flag with the folder unchanged (the
target untouched). A read-only folder is tried as an unprivileged user.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import TINY_CONFIG, refused_here, run, snapshot

from proxcompress.atomic import remove_stale, write_all_atomic, write_atomic
from proxcompress.cli import build_parser
from proxcompress.outputs import declared_outputs

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
OUTPUT_NAMES = {"out", "json", "markdown"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An instance, a config and a finished run for the commands that read them."""
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "c.yaml").write_text(TINY_CONFIG)
    assert run(["instance", "inst.npz", "--n", "30", "--groups", "3"], folder).code == 0
    assert run(["train", "--config", "c.yaml", "--out", "run"], folder).code == 0
    (folder / "fp.yaml").write_text(TINY_CONFIG.replace("weights: bnn++", "weights: none"))
    assert run(["train", "--config", "fp.yaml", "--out", "fp-run"], folder).code == 0
    return folder


def _commands(probe: ModuleType, inputs: Path) -> dict[str, tuple[list[str], str, str]]:
    table: dict[str, tuple[list[str], str, str]] = probe.output_commands(
        inputs / "inst.npz", inputs / "c.yaml", inputs / "run", inputs / "fp-run")
    return table


@SETTINGS
@given(data=st.data())
def test_unusable_targets_are_refused_before_any_work(probe: ModuleType, inputs: Path,
                                                      tmp_path: Path,
                                                      data: st.DataObject) -> None:
    commands = _commands(probe, inputs)
    name = data.draw(st.sampled_from(sorted(commands)), label="command")
    argv, flag, kind = commands[name]
    kinds = probe.FILE_KINDS if kind == "file" else probe.FOLDER_KINDS
    target_kind = data.draw(st.sampled_from([k for k in kinds if k != "read-only folder"]),
                            label="target")
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    target = probe.make_target(folder, target_kind)
    start = time.monotonic()
    refused_here([a.replace("{t}", target) for a in argv], flag, folder)
    assert time.monotonic() - start < 60  # refused before the work, not after it


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX only")
@pytest.mark.parametrize("name", ["solve --json", "train --out", "verify --markdown"])
def test_read_only_folder_is_refused(probe: ModuleType, inputs: Path, tmp_path: Path,
                                     name: str) -> None:
    """As an unprivileged user (root writes anywhere; the check probes, it does not guess)."""
    argv, flag, _ = _commands(probe, inputs)[name]
    folder = tmp_path / "case"
    (folder / "ro").mkdir(parents=True)
    os.chmod(folder / "ro", 0o555)
    os.chmod(folder, 0o777)
    if os.geteuid() == 0:
        for parent in [tmp_path, *tmp_path.parents]:  # pytest's folders are 0700
            if parent != Path("/"):
                os.chmod(parent, os.stat(parent).st_mode | 0o005)
    before = snapshot(folder)
    code, err = run_unprivileged([a.replace("{t}", "ro/t") for a in argv], folder)
    assert code == 2, err[-500:]
    assert f"error: {flag}:" in err and "Traceback" not in err
    assert snapshot(folder) == before


def run_unprivileged(argv: list[str], cwd: Path) -> tuple[int, str]:
    """``proxcompress ARGV`` in a forked child that drops root to nobody (as root) first;
    returns the exit code (1 for an exception) and the standard error."""
    from proxcompress.cli import main

    err_path = cwd.parent / "stderr.txt"
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            handle = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            os.dup2(handle, 2)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            os.chdir(cwd)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err_path.read_text()


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += [sub, *_subparsers(sub)]
    return found


def test_every_output_flag_is_declared() -> None:
    """Each subcommand's --out / --json / --markdown / OUT goes through add_output, so that
    cli.main checks it before the command runs (a new subcommand cannot forget it)."""
    for sub in _subparsers(build_parser()):
        declared = {dest for dest, _, _ in declared_outputs(argparse.Namespace(
            _outputs=sub.get_default("_outputs")))}
        for action in sub._actions:
            if action.dest in OUTPUT_NAMES and action.dest not in declared:
                pytest.fail(f"{sub.prog}: {action.option_strings or action.dest} is not "
                            "declared with proxcompress.outputs.add_output")


def test_two_outputs_on_one_path_are_refused(tmp_path: Path) -> None:
    refused_here(["verify", "--name", "bnn++", "--json", "same", "--markdown", "same"],
                 "--markdown", tmp_path)


def test_outputs_are_written_together_or_not_at_all(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """verify's JSON is not left behind when its Markdown cannot be made."""
    import proxcompress.proofs.report as report

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(report, "render_markdown", broken)
    answer = run(["verify", "--prox", "(x + mu*sign(x))/(1 + mu)", "--backward", "tanh(x)",
                  "--json", "v.json", "--markdown", "v.md"], tmp_path)
    assert isinstance(answer.exception, RuntimeError)
    assert list(tmp_path.iterdir()) == []

    written: list[Path] = []

    def second(tmp: Path) -> None:
        written.append(tmp)
        raise OSError("disk full")

    (tmp_path / "a").write_text("old")
    with pytest.raises(OSError):
        write_all_atomic([(tmp_path / "a", lambda t: t.write_text("new")), (tmp_path / "b",
                                                                            second)])
    assert (tmp_path / "a").read_text() == "old" and not (tmp_path / "b").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no temporaries left


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_temporaries_of_killed_processes_are_cleaned(tmp_path: Path, kind: str) -> None:
    pid = _dead_pid()
    stale = tmp_path / f".out.json.{pid}-abc123{'.tmp' if kind == 'file' else ''}"
    if kind == "file":
        stale.write_text("partial")
    else:
        stale.mkdir()
        (stale / "model.json").write_text("{")
    alive = tmp_path / f".out.json.{os.getpid()}-zzz.tmp"  # this process's: left alone
    alive.write_text("mine")
    other = tmp_path / f".other.json.{pid}-abc123.tmp"  # another target's: left alone
    other.write_text("x")
    write_atomic(tmp_path / "out.json", lambda t: t.write_text("{}"))
    assert not stale.exists() and alive.exists() and other.exists()
    assert (tmp_path / "out.json").read_text() == "{}"


def test_sigkill_during_a_write_is_cleaned_by_the_next(tmp_path: Path) -> None:
    """A real SIGKILL in the middle of write_atomic: the temporary stays, the target does not
    change, and the next write of the same target removes the temporary."""
    script = ("import sys, time\nfrom proxcompress.atomic import write_atomic\n"
              "def slow(t):\n    t.write_text('partial')\n    print('ready', flush=True)\n"
              "    time.sleep(60)\n"
              f"write_atomic({str(tmp_path / 'out.json')!r}, slow)\n")
    (tmp_path / "out.json").write_text("old")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    child.kill()
    child.wait()
    left = list(tmp_path.glob(".out.json.*.tmp"))
    assert len(left) == 1 and (tmp_path / "out.json").read_text() == "old"
    assert remove_stale(tmp_path, "out.json") == left
    assert not left[0].exists()


def test_failed_export_leaves_no_folder(inputs: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure after the export was written (here: loading it back) leaves neither --out
    nor any of its missing parents."""
    import proxcompress.kernels as kernels

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the GPU went away")

    monkeypatch.setattr(kernels, "load", fail)
    answer = run(["export", "--run", str(inputs / "run"), "--out", "a/b/exp"], tmp_path)
    assert isinstance(answer.exception, RuntimeError)
    assert list(tmp_path.iterdir()) == []



BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def _reader_gone(argv: list[str]) -> tuple[int, str]:
    """Run ``argv`` with its stdout's reader gone before the first write (``... | head``): the
    exit code and everything written on stderr."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=300), err


@pytest.mark.parametrize("argv", [["--help"], ["reproduce", "--list"], ["verify", "--help"]])
def test_a_reader_closing_the_pipe_gets_no_traceback(argv: list[str]) -> None:
    """``proxcompress ... | head``: the reader is gone before the first write; the command ends
    quietly (141, 128 + SIGPIPE; 0 where the output still fitted the pipe's buffer and the
    command ended first), nothing on stderr."""
    code, err = _reader_gone([sys.executable, "-m", "proxcompress", *argv])
    assert code in (0, 141), err
    assert err == ""


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py")))
def test_a_benchmark_whose_reader_closes_the_pipe_gets_no_traceback(script: str) -> None:
    """``python benchmarks/X.py --help | head``: every benchmark script ends through
    ``cli.quiet_on_closed_pipe`` (141 or 0, nothing on stderr), as the command line does."""
    code, err = _reader_gone([sys.executable, str(BENCHMARKS / script), "--help"])
    assert code in (0, 141), err
    assert err == ""


def test_a_rendered_table_whose_reader_closes_the_pipe_gets_no_traceback() -> None:
    """``python benchmarks/causal.py --render FILE | head`` (a page of output): before the shared
    guard this ended in a BrokenPipeError traceback."""
    code, err = _reader_gone([sys.executable, str(BENCHMARKS / "causal.py"), "--render",
                              str(BENCHMARKS / "results" / "causal_tuebingen.json")])
    assert code == 141, err
    assert err == ""
