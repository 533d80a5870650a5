"""The KJV language-modelling corpus: tokens, split by book, vocabulary, files, the command."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from proxcompress.cli import main
from proxcompress.errors import InvalidInputError
from proxcompress.training import text
from proxcompress.training.text import (
    BOOKS,
    EOS,
    SAMPLE_BOOKS,
    UNK,
    build_corpus,
    load_corpus,
    parse_verses,
    sample_text,
    split_of,
    stream_batches,
    tokenize,
    windows,
)

needs_bible = pytest.mark.skipif(shutil.which("bible") is None,
                                 reason="bible-kjv-text is not installed")
FILES = ("train.safetensors", "valid.safetensors", "test.safetensors", "vocab.txt",
         "manifest.json")


def test_tokenize() -> None:
    assert tokenize("And Joseph fell upon his father's face, and wept; Beer-sheba.") == [
        "and", "joseph", "fell", "upon", "his", "father's", "face", "and", "wept", "beer-sheba"]
    assert tokenize("(LORD) -- 'O' ...") == ["lord", "o"]


def test_split_by_book() -> None:
    assert len(BOOKS) == len(set(BOOKS)) == 66
    splits = Counter(split_of(b) for b in BOOKS)
    assert splits == {"train": 52, "valid": 7, "test": 7}
    assert [b for b in BOOKS if split_of(b) == "valid"] == [
        "Josh", "Neh", "Eze", "Zep", "1Cor", "Titus", "Rev"]
    assert [b for b in BOOKS if split_of(b) == "test"] == [
        "Ge", "1Ki", "Eccl", "Obad", "Mark", "Col", "2Pet"]
    assert {split_of(b) for b in SAMPLE_BOOKS} == {"train", "valid", "test"}


def test_corpus_against_a_direct_count() -> None:
    raw = sample_text()
    verses = list(parse_verses(raw))
    assert {b for b, _ in verses} == set(SAMPLE_BOOKS)
    corpus = build_corpus(raw, 50)
    train_words = [w for b, ws in verses if split_of(b) == "train" for w in ws]
    counts = Counter(train_words)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:48]
    assert corpus.vocab == [UNK, EOS] + [w for w, _ in top]
    index = {w: i for i, w in enumerate(corpus.vocab)}
    for split in ("train", "valid", "test"):
        want = [index.get(w, 0) for b, ws in verses if split_of(b) == split for w in [*ws, EOS]]
        assert corpus.tokens[split].tolist() == want
        assert corpus.unknown[split] == want.count(0)
        n_verses = sum(1 for b, _ in verses if split_of(b) == split)
        assert int((corpus.tokens[split] == 1).sum()) == n_verses
    # a vocabulary larger than the training words leaves no <unk> in training
    assert build_corpus(raw, 10**5).unknown["train"] == 0


def test_corpus_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="vocab_size"):
        build_corpus(sample_text(), 2)
    with pytest.raises(InvalidInputError, match="line 2"):
        build_corpus("Ruth1:1 In the days\nnot a verse\n", 10)
    with pytest.raises(InvalidInputError, match="line 1"):
        build_corpus("Tobit1:1 apocrypha\n", 10)
    with pytest.raises(InvalidInputError, match="training"):
        build_corpus("Obad1:1 The vision of Obadiah.\n", 10)


def test_command_is_byte_identical_and_loads(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert main(["data", "kjv", "--sample", "--out", str(out), "--vocab", "300"]) == 0
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    data = load_corpus(a)
    corpus = build_corpus(sample_text(), 300)
    assert data.vocab == corpus.vocab and data.classes == 300
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(data, split), torch.from_numpy(
            corpus.tokens[split].astype(np.int64)))
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["books"]["test"] == ["Obad"] and manifest["source"] == "embedded sample"
    embedded = load_corpus(None)
    assert embedded.name == "kjv-sample" and embedded.classes == 815


def test_load_refuses_corrupt_files(tmp_path: Path) -> None:
    out = tmp_path / "c"
    assert main(["data", "kjv", "--sample", "--out", str(out)]) == 0
    raw = bytearray((out / "valid.safetensors").read_bytes())
    raw[-1] ^= 1
    (out / "valid.safetensors").write_bytes(bytes(raw))
    with pytest.raises(InvalidInputError, match="SHA-256"):
        load_corpus(out)
    with pytest.raises(FileNotFoundError, match="proxcompress data kjv"):
        load_corpus(tmp_path)


def test_command_errors_exit_2_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "file"
    target.write_text("keep")
    assert main(["data", "kjv", "--sample", "--out", str(target)]) == 2
    assert target.read_text() == "keep"
    assert "--out" in capsys.readouterr().err
    assert main(["data", "kjv", "--sample", "--out", str(tmp_path / "v"), "--vocab", "2"]) == 2
    assert "--vocab" in capsys.readouterr().err and not (tmp_path / "v").exists()
    # --out follows every command's output contract (proxcompress.outputs): missing parent
    # folders are created, a target inside a file is refused
    assert main(["data", "kjv", "--sample", "--out", str(target / "deeper")]) == 2
    assert "--out" in capsys.readouterr().err and target.read_text() == "keep"
    assert main(["data", "kjv", "--sample", "--out", str(tmp_path / "no" / "deeper")]) == 0
    assert (tmp_path / "no" / "deeper" / "manifest.json").is_file()
    monkeypatch.setattr(text.shutil, "which", lambda name: None)
    assert main(["data", "kjv", "--out", str(tmp_path / "d")]) == 2
    assert "bible-kjv-text" in capsys.readouterr().err and not (tmp_path / "d").exists()


def test_batching_covers_the_stream() -> None:
    tokens = torch.arange(103)
    rows = stream_batches(tokens, 4)
    assert rows.shape == (4, 25) and torch.equal(rows.flatten(), tokens[:100])
    spans = windows(25, 7)
    assert spans == [(0, 7), (7, 7), (14, 7), (21, 3)]
    # every target position 1..24 is predicted exactly once
    targets = [t for s, n in spans for t in range(s + 1, s + n + 1)]
    assert targets == list(range(1, 25))
    with pytest.raises(InvalidInputError, match="bptt"):
        windows(10, 0)


@needs_bible
def test_full_corpus_from_the_package(tmp_path: Path) -> None:
    out = tmp_path / "kjv"
    assert main(["data", "kjv", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tokens"] == {"train": 633604, "valid": 95982, "test": 91149}
    assert manifest["options"]["vocab_size"] == 10000
    assert manifest["source"].startswith("bible-kjv-text")
    assert len(manifest["books"]["train"]) == 52
