"""Helpers of the reliability tests: run the command line in-process and judge the answer.

A hostile case passes when the command returns exit code 2 (no exception reaches the caller:
no traceback), its one-line message names the expected field or flag, and the folder it ran in
is exactly as before (no partial output, targets untouched).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxcompress.cli import main

TINY_CONFIG = (
    "seed: 1\nepochs: 1\nprogress: false\n"
    "data: {name: synthetic, synthetic_samples: 64}\n"
    "model: {name: mlp, hidden: [16, 16], dropout: 0.0}\n"
    "quant: {weights: bnn++, keep_first: false}\n"
    "optim: {name: adam, lr: 0.01, batch_size: 32}\n"
)

#: the language model's tiny config (issue 20): the embedded KJV sample, an 8-wide LSTM
LM_CONFIG = (
    "seed: 1\nepochs: 1\nprogress: false\n"
    "data: {name: kjv-sample, bptt: 12}\n"
    "model: {name: lstm-lm, lstm: {embedding: 8, hidden: 8, cutoffs: [50]}}\n"
    "optim: {batch_size: 32}\n"
)


@dataclass
class Answer:
    """What a command did: exit code (``None`` when it raised), output and the exception."""

    code: int | None
    out: str
    err: str
    exception: BaseException | None

    @property
    def message(self) -> str:
        lines = self.err.strip().splitlines()
        return lines[-1] if lines else ""


@contextlib.contextmanager
def _cwd(folder: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def run(argv: list[str], cwd: Path | None = None) -> Answer:
    """``proxcompress ARGV`` in-process (optionally in ``cwd``), capturing everything."""
    out, err = io.StringIO(), io.StringIO()
    code: int | None = None
    exception = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            (_cwd(cwd) if cwd is not None else contextlib.nullcontext()):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own errors (exit 2, naming the argument)
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException as exc:  # noqa: BLE001 -- a traceback would reach the user
            exception = exc
    return Answer(code, out.getvalue(), err.getvalue(), exception)


def snapshot(folder: Path) -> dict[str, Any]:
    """Every entry under ``folder``: kind, and for files the SHA-256 of the bytes."""
    out: dict[str, Any] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            info = os.lstat(path)
            key = str(path.relative_to(folder))
            if stat.S_ISREG(info.st_mode):
                out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[key] = stat.S_IFMT(info.st_mode)
    return out


def assert_refused(answer: Answer, fields: str | tuple[str, ...], before: dict[str, Any],
                   after: dict[str, Any]) -> None:
    """Exit 2, no exception, the message names one of ``fields``, nothing changed."""
    assert answer.exception is None, f"traceback: {answer.exception!r}"
    assert answer.code == 2, (answer.code, answer.err[-500:])
    names = (fields,) if isinstance(fields, str) else fields
    message = answer.message
    assert any(f"error: {f}:" in message or f"argument {f}" in message for f in names), \
        (names, message)
    assert "Traceback" not in answer.err
    assert before == after, sorted(set(before.items()) ^ set(after.items()))[:5]


def refused_here(argv: list[str], fields: str | tuple[str, ...], folder: Path) -> Answer:
    """Run ``argv`` in ``folder`` and assert it was refused leaving the folder as it was."""
    before = snapshot(folder)
    answer = run(argv, folder)
    assert_refused(answer, fields, before, snapshot(folder))
    return answer
