"""A word-level language-modelling corpus: the King James Bible from Debian's ``bible-kjv-text``.

Source: ``bible -f 'Gen1:1-Rev22:21'`` (the ``bible-kjv`` program reading the
``bible-kjv-text`` data, both Debian packages; the KJV text is in the public domain), one verse
per line, ``<book><chapter>:<verse> <text>``, 66 books, 31102 verses.

Corpus (:func:`build_corpus`), deterministic (no randomness: the same text and options give
byte-identical files):

* **tokens**: each verse lowercased, words = maximal runs of letters joined by inner
  apostrophes or hyphens (``[a-z]+(?:['-][a-z]+)*``: ``father's``, ``beer-sheba``);
  punctuation dropped; every verse ends with ``<eos>``;
* **split by book**, fixed: with the books numbered 0..65 in canonical order, book ``i`` is
  *validation* when ``i % 10 == 5`` (Joshua, Nehemiah, Ezekiel, Zephaniah, 1 Corinthians,
  Titus, Revelation), *test* when ``i % 10 == 0`` (Genesis, 1 Kings, Ecclesiastes, Obadiah,
  Mark, Colossians, 2 Peter), *train* otherwise -- about 77 / 12 / 11 % of the 821k tokens,
  each split mixing narrative, poetry, prophecy and epistles of both testaments;
* **vocabulary**: ``<unk>`` (id 0), ``<eos>`` (id 1), then the ``vocab_size - 2`` most frequent
  training words (ties by alphabetical order); every other word is ``<unk>``.

Files in ``out``: ``train.safetensors``, ``valid.safetensors``, ``test.safetensors``
(``tokens``: int32 ids), ``vocab.txt`` (one token per line, id = line number) and
``manifest.json`` (written last: format, options, the books of each split, token and ``<unk>``
counts, the source package's version, SHA-256 of every other file). Nothing is pickled.

An embedded sample (``training/data/kjv_sample.txt.gz``: Ruth, Jonah, Titus, Philemon and
Obadiah in the same line format, about 30 KB) serves the tests without the package.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from proxcompress.atomic import sha256_file, write_atomic, write_text_atomic
from proxcompress.errors import InvalidInputError, MissingInputError
from proxcompress.training.data import read_manifest

FORMAT = "proxcompress-kjv-1"
#: the whole Bible for ``bible -f``
RANGE = "Gen1:1-Rev22:21"
#: book labels as ``bible`` prints them, in canonical order
BOOKS = ("Ge", "Exo", "Lev", "Num", "Deu", "Josh", "Jdgs", "Ruth", "1Sm", "2Sm", "1Ki", "2Ki",
         "1Chr", "2Chr", "Ezra", "Neh", "Est", "Job", "Psa", "Prv", "Eccl", "SSol", "Isa", "Jer",
         "Lam", "Eze", "Dan", "Hos", "Joel", "Amos", "Obad", "Jonah", "Mic", "Nahum", "Hab",
         "Zep", "Hag", "Zec", "Mal", "Mat", "Mark", "Luke", "John", "Acts", "Rom", "1Cor",
         "2Cor", "Gal", "Eph", "Phi", "Col", "1Th", "2Th", "1Tim", "2Tim", "Titus", "Phmn",
         "Heb", "Jas", "1Pet", "2Pet", "1Jn", "2Jn", "3Jn", "Jude", "Rev")
SPLITS = ("train", "valid", "test")
UNK, EOS = "<unk>", "<eos>"
SAMPLE = Path(__file__).with_name("data") / "kjv_sample.txt.gz"
#: the sample's books (all three splits: Obadiah is a test book, Titus a validation book)
SAMPLE_BOOKS = ("Ruth", "Obad", "Jonah", "Titus", "Phmn")
_VERSE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")
_WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*")
MIN_VOCAB, MAX_VOCAB = 3, 1_000_000


def split_of(book: str) -> str:
    """``train``, ``valid`` or ``test`` for a book label of :data:`BOOKS` (module docstring)."""
    i = BOOKS.index(book)
    return "valid" if i % 10 == 5 else "test" if i % 10 == 0 else "train"


def tokenize(text: str) -> list[str]:
    """The words of one verse (lowercased, punctuation dropped), without ``<eos>``."""
    return _WORD.findall(text.lower())


def bible_text(program: str = "bible") -> tuple[str, str]:
    """``(text, source)`` of the whole KJV from Debian's ``bible`` program.

    Raises:
        FileNotFoundError: the program or its text is missing (names the Debian packages).
    """
    hint = "install Debian's bible-kjv-text (apt-get install -y bible-kjv-text)"
    exe = shutil.which(program)
    if exe is None:
        raise FileNotFoundError(f"{program}: not found; {hint}")
    run = subprocess.run([exe, "-f", RANGE], capture_output=True, timeout=300, check=False)
    if run.returncode != 0 or not run.stdout.strip():
        raise FileNotFoundError(f"{program} -f {RANGE} failed (exit {run.returncode}: "
                                f"{run.stderr.decode(errors='replace').strip()[:200]}); {hint}")
    version = "unknown"
    query = shutil.which("dpkg-query")
    if query is not None:
        out = subprocess.run([query, "-W", "-f=${Version}", "bible-kjv-text"],
                             capture_output=True, text=True, timeout=30, check=False)
        version = out.stdout.strip() or version
    return run.stdout.decode("utf-8"), f"bible-kjv-text {version}"


def sample_text() -> str:
    """The embedded sample (module docstring) in ``bible``'s line format."""
    if not SAMPLE.is_file():
        raise FileNotFoundError(f"data: the embedded KJV sample {str(SAMPLE)!r} is missing")
    return gzip.decompress(SAMPLE.read_bytes()).decode("utf-8")


def parse_verses(text: str) -> Iterator[tuple[str, list[str]]]:
    """``(book, words)`` per verse of ``bible``'s output.

    Raises:
        InvalidInputError (field ``source``): a line not in the ``<book><c>:<v> <text>`` format
            or an unknown book label.
    """
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _VERSE.match(line)
        if m is None or m.group(1) not in BOOKS:
            raise InvalidInputError("source", f"line {number} is not a KJV verse "
                                    f"('<book><chapter>:<verse> <text>'): {line[:60]!r}")
        yield m.group(1), tokenize(m.group(4))


@dataclass(frozen=True)
class Corpus:
    """Token ids per split, the vocabulary and the books of each split."""

    vocab: list[str]
    tokens: dict[str, np.ndarray]
    books: dict[str, list[str]]
    unknown: dict[str, int]


def build_corpus(text: str, vocab_size: int = 10000) -> Corpus:
    """The corpus of ``text`` (``bible``'s output) with a vocabulary of ``vocab_size`` tokens
    (``<unk>`` and ``<eos>`` included) chosen on the training split (module docstring)."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) \
            or not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise InvalidInputError("vocab_size", f"= {vocab_size!r}; accepted: an integer in "
                                f"[{MIN_VOCAB}, {MAX_VOCAB}]")
    words: dict[str, list[str]] = {s: [] for s in SPLITS}
    books: dict[str, list[str]] = {s: [] for s in SPLITS}
    for book, verse in parse_verses(text):
        split = split_of(book)
        if not books[split] or books[split][-1] != book:
            books[split].append(book)
        words[split].extend(verse)
        words[split].append(EOS)
    if not words["train"]:
        raise InvalidInputError("source", "holds no verse of a training book")
    counts = Counter(w for w in words["train"] if w != EOS)
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    vocab = [UNK, EOS, *ranked[: vocab_size - 2]]
    index = {w: i for i, w in enumerate(vocab)}
    tokens = {s: np.array([index.get(w, 0) for w in ws], dtype=np.int32)
              for s, ws in words.items()}
    unknown = {s: int((t == 0).sum()) for s, t in tokens.items()}
    return Corpus(vocab, tokens, books, unknown)


def write_corpus(corpus: Corpus, out: str | os.PathLike[str], source: str) -> Path:
    """Write the corpus files into the folder ``out`` (module docstring); returns the manifest
    path. Every file is written atomically, the manifest last."""
    from safetensors.numpy import save_file

    from proxcompress.outputs import check_output

    root = check_output("out", out, "folder")
    root.mkdir(parents=True, exist_ok=True)

    def writer(tensors: dict[str, np.ndarray]) -> Callable[[Path], None]:
        return lambda tmp: save_file(tensors, str(tmp))

    hashes = {}
    for split in SPLITS:
        path = root / f"{split}.safetensors"
        write_atomic(path, writer({"tokens": corpus.tokens[split]}))
        hashes[path.name] = sha256_file(path)
    write_text_atomic(root / "vocab.txt", "\n".join(corpus.vocab) + "\n")
    hashes["vocab.txt"] = sha256_file(root / "vocab.txt")
    manifest = {
        "format": FORMAT, "source": source, "range": RANGE,
        "options": {"vocab_size": len(corpus.vocab)},
        "tokenizer": "lowercase; [a-z]+(?:['-][a-z]+)*; <eos> after every verse",
        "split_rule": "book index i (0..65, canonical order): valid if i % 10 == 5, test if "
                      "i % 10 == 0, else train",
        "books": corpus.books,
        "tokens": {s: int(t.shape[0]) for s, t in corpus.tokens.items()},
        "unknown": corpus.unknown,
        "sha256": hashes,
    }
    return write_text_atomic(root / "manifest.json",
                             json.dumps(manifest, indent=1, sort_keys=True) + "\n")


@dataclass
class TextData:
    """A loaded corpus: ``vocab`` and one 1-D int64 token tensor per split."""

    vocab: list[str]
    train: Tensor
    valid: Tensor
    test: Tensor
    name: str = "kjv"

    @property
    def classes(self) -> int:
        return len(self.vocab)


def load_corpus(root: str | os.PathLike[str] | None) -> TextData:
    """A :func:`write_corpus` folder (``None``: the embedded sample, built at 2000 words).

    Raises:
        MissingInputError (field ``data.root``, also a ``FileNotFoundError``): no manifest in
            ``root``, or a file it lists is missing.
        InvalidInputError (field ``data.root``): another format, a file that does not match its
            SHA-256, or ids outside the vocabulary.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from proxcompress.readers import read_text

    if root is None:
        corpus = build_corpus(sample_text(), 2000)
        t = {s: torch.from_numpy(corpus.tokens[s].astype(np.int64)) for s in SPLITS}
        return TextData(corpus.vocab, t["train"], t["valid"], t["test"], "kjv-sample")
    base = Path(root)
    files = [f"{split}.safetensors" for split in SPLITS] + ["vocab.txt"]
    manifest = read_manifest(base, FORMAT, "proxcompress data kjv", files=files)
    for name in files:
        if not (base / name).is_file():
            raise MissingInputError("data.root", f"{str(base / name)!r} is missing")
        if sha256_file(base / name) != manifest["sha256"][name]:
            raise InvalidInputError("data.root", f"{str(base / name)!r} does not match its "
                                    "SHA-256 in manifest.json (corrupt or from another "
                                    "generation)")
    vocab = read_text("data.root", base / "vocab.txt").split("\n")[:-1]
    splits = {}
    for split in SPLITS:
        path = base / f"{split}.safetensors"
        try:
            tokens = load_file(str(path)).get("tokens")
        except (SafetensorError, OSError, ValueError) as exc:
            raise InvalidInputError("data.root", f"{str(path)!r} is not a readable safetensors "
                                    f"file ({str(exc)[:200]})") from None
        if (tokens is None or tokens.ndim != 1 or tokens.dtype.kind != "i"
                or (tokens.size and (tokens.min() < 0 or tokens.max() >= len(vocab)))):
            raise InvalidInputError("data.root", f"{str(path)!r}: 'tokens' must be a 1-D "
                                    f"integer array of ids in [0, {len(vocab)})")
        splits[split] = torch.from_numpy(tokens.astype(np.int64))
    return TextData(vocab, splits["train"], splits["valid"], splits["test"])


def make_sample(text: str, out: str | os.PathLike[str] = SAMPLE) -> Path:
    """Write the embedded sample: the lines of :data:`SAMPLE_BOOKS` (maintainers)."""
    lines = [line for line in text.splitlines()
             if (m := _VERSE.match(line)) is not None and m.group(1) in SAMPLE_BOOKS]
    payload = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0)
    return write_atomic(out, lambda tmp: Path(tmp).write_bytes(payload))


# ------------------------------------------------------------------------------ batching
def stream_batches(tokens: Tensor, batch: int) -> Tensor:
    """The token stream as ``batch`` contiguous rows, ``(batch, L)``, ``L = len // batch`` (the
    tail that does not fill a row is dropped)."""
    if batch < 1:
        raise InvalidInputError("batch", f"= {batch}; accepted: >= 1")
    length = int(tokens.shape[0]) // batch
    return tokens[: length * batch].reshape(batch, length)


def windows(length: int, bptt: int) -> list[tuple[int, int]]:
    """``(start, size)`` of the truncated-BPTT windows over a row of ``length`` tokens: inputs
    ``[start, start + size)`` predict ``[start + 1, start + size + 1)``."""
    if bptt < 1:
        raise InvalidInputError("bptt", f"= {bptt}; accepted: >= 1")
    return [(s, min(bptt, length - 1 - s)) for s in range(0, max(length - 1, 0), bptt)]


__all__ = ["BOOKS", "Corpus", "EOS", "FORMAT", "RANGE", "SAMPLE", "SAMPLE_BOOKS", "SPLITS",
           "TextData", "UNK", "bible_text", "build_corpus", "load_corpus",
           "make_sample", "parse_verses", "sample_text", "split_of", "stream_batches",
           "tokenize", "windows"]
