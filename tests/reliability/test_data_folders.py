"""Data folders (``data.root``): a speech folder whose manifest or split files are wrong, and
Fashion-MNIST IDX files of another size or format, are refused with exit 2 naming ``data.root``
(or ``data``) before any training and before the run folder exists (issue 13).

Generated: the manifest replaced by any JSON value of the wrong kind, any of its keys removed
or given a wrong-typed value; IDX images of any size other than 28 x 28, and IDX files cut at
any byte.
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
from reliability_helpers import LM_CONFIG, TINY_CONFIG, refused_here
from safetensors.numpy import save_file

from proxcompress.training.speech import FORMAT, INTENTS, SAMPLE_RATE

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
SPEECH_CONFIG = TINY_CONFIG.replace(
    "name: synthetic, synthetic_samples: 64", "name: speech, root: data").replace(
    "name: mlp, hidden: [16, 16], dropout: 0.0", "name: speech-resnet, width: 4")
IDX_CONFIG = TINY_CONFIG.replace("name: synthetic, synthetic_samples: 64",
                                 "name: fashion-mnist, root: data")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A structurally valid speech folder (silent utterances) and its manifest."""
    folder = tmp_path_factory.mktemp("speech")
    hashes = {}
    for split in ("train", "test"):
        n = 2 * len(INTENTS)
        lengths = np.full(n, 400, dtype=np.int64)
        save_file({"audio": np.zeros(int(lengths.sum()), np.int16),
                   "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   "labels": np.arange(n, dtype=np.int64) % len(INTENTS),
                   "speakers": np.arange(n, dtype=np.int64) % 4},
                  str(folder / f"{split}.safetensors"))
        hashes[f"{split}.safetensors"] = hashlib.sha256(
            (folder / f"{split}.safetensors").read_bytes()).hexdigest()
    manifest = {"format": FORMAT, "sample_rate": SAMPLE_RATE, "intents": sorted(INTENTS),
                "sha256": hashes}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _speech_case(speech: Path, tmp_path: Path, manifest: Any) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    shutil.copytree(speech, folder / "data")
    (folder / "data" / "manifest.json").write_text(json.dumps(manifest))
    (folder / "c.yaml").write_text(SPEECH_CONFIG)
    refused_here(["train", "--config", "c.yaml", "--out", "run"], "data.root", folder)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3)
                           | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=6)


@SETTINGS
@given(value=JSON_VALUES.filter(lambda v: not isinstance(v, dict)))
def test_manifest_of_the_wrong_kind(speech: Path, tmp_path: Path, value: Any) -> None:
    _speech_case(speech, tmp_path, value)


@SETTINGS
@given(key=st.sampled_from(["format", "sample_rate", "intents", "sha256"]),
       value=st.one_of(st.just("missing"), JSON_VALUES))
def test_manifest_key_removed_or_wrong(speech: Path, tmp_path: Path, key: str,
                                       value: Any) -> None:
    manifest = json.loads((speech / "manifest.json").read_text())
    if value == manifest[key]:
        return
    if value == "missing":
        del manifest[key]
    else:
        manifest[key] = value
    _speech_case(speech, tmp_path, manifest)


def _idx(dims: tuple[int, ...], kind: int = 0x08) -> bytes:
    head = bytes([0, 0, kind, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return head + bytes(int(np.prod(dims)) * (4 if kind == 0x0D else 1))


def _idx_case(tmp_path: Path, files: dict[str, bytes | None], field: str = "data") -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "data").mkdir()
    names: dict[str, bytes | None] = {
        "train-images-idx3-ubyte": _idx((20, 28, 28)), "train-labels-idx1-ubyte": _idx((20,)),
        "t10k-images-idx3-ubyte": _idx((20, 28, 28)), "t10k-labels-idx1-ubyte": _idx((20,))}
    names.update(files)
    for name, data in names.items():
        if data is not None:
            (folder / "data" / name).write_bytes(data)
    (folder / "c.yaml").write_text(IDX_CONFIG)
    refused_here(["train", "--config", "c.yaml", "--out", "run"], field, folder)


@SETTINGS
@given(h=st.integers(1, 64), w=st.integers(1, 64), split=st.sampled_from(["train", "t10k"]))
def test_idx_images_of_another_size_are_refused_before_training(tmp_path: Path, h: int,
                                                                w: int, split: str) -> None:
    if (h, w) == (28, 28):
        return
    _idx_case(tmp_path, {f"{split}-images-idx3-ubyte": _idx((20, h, w))})


@SETTINGS
@given(cut=st.integers(0, 20 * 28 * 28 + 15))
def test_truncated_idx_is_refused(tmp_path: Path, cut: int) -> None:
    _idx_case(tmp_path, {"train-images-idx3-ubyte": _idx((20, 28, 28))[:cut]})


def test_named_idx_cases(tmp_path: Path) -> None:
    _idx_case(tmp_path, {"train-images-idx3-ubyte": _idx((20, 28, 28), 0x0D)})
    _idx_case(tmp_path, {"train-labels-idx1-ubyte": _idx((19,))})
    _idx_case(tmp_path, {"train-labels-idx1-ubyte": _idx((20,))[:-1] + b"\xc8"})
    _idx_case(tmp_path, {"train-images-idx3-ubyte": None,
                         "train-images-idx3-ubyte.gz": b"not gzip"})
    _idx_case(tmp_path, {"t10k-labels-idx1-ubyte": None}, "data.root")


# ------------------------------------------------------ the language-model corpus (issue 20)
KJV_CONFIG = LM_CONFIG.replace("name: kjv-sample", "name: kjv, root: data")


@pytest.fixture(scope="module")
def kjv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``proxcompress data kjv --sample`` folder."""
    from proxcompress.cli import main

    folder = tmp_path_factory.mktemp("kjv") / "data"
    assert main(["data", "kjv", "--out", str(folder), "--sample", "--vocab", "200"]) == 0
    return folder


def _kjv_case(kjv: Path, tmp_path: Path, edit: Any) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    shutil.copytree(kjv, folder / "data")
    edit(folder / "data")
    (folder / "c.yaml").write_text(KJV_CONFIG)
    refused_here(["train", "--config", "c.yaml", "--out", "run"], "data.root", folder)


def _manifest_edit(key: str, value: Any) -> Any:
    def edit(root: Path) -> None:
        manifest = json.loads((root / "manifest.json").read_text())
        if value == "missing":
            del manifest[key]
        else:
            manifest[key] = value
        (root / "manifest.json").write_text(json.dumps(manifest))
    return edit


@SETTINGS
@given(value=JSON_VALUES.filter(lambda v: not isinstance(v, dict)))
def test_kjv_manifest_of_the_wrong_kind(kjv: Path, tmp_path: Path, value: Any) -> None:
    _kjv_case(kjv, tmp_path, lambda root: (root / "manifest.json").write_text(json.dumps(value)))


@SETTINGS
@given(key=st.sampled_from(["format", "sha256", "options"]),
       value=st.one_of(st.just("missing"), JSON_VALUES))
def test_kjv_manifest_key_removed_or_wrong(kjv: Path, tmp_path: Path, key: str,
                                           value: Any) -> None:
    manifest = json.loads((kjv / "manifest.json").read_text())
    if value == manifest[key]:
        return
    _kjv_case(kjv, tmp_path, _manifest_edit(key, value))


def _rehash(root: Path, name: str) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["sha256"][name] = hashlib.sha256((root / name).read_bytes()).hexdigest()
    (root / "manifest.json").write_text(json.dumps(manifest))


@SETTINGS
@given(split=st.sampled_from(["train", "valid", "test"]),
       tokens=st.one_of(
           st.lists(st.integers(200, 2**31 - 1), min_size=1, max_size=5).map(
               lambda v: np.array(v, np.int32)),
           st.lists(st.integers(-2**31, -1), min_size=1, max_size=5).map(
               lambda v: np.array(v, np.int32)),
           st.just(np.zeros((2, 2), np.int32)), st.just(np.zeros(4, np.float32))))
def test_kjv_tokens_outside_the_vocabulary_are_refused(kjv: Path, tmp_path: Path, split: str,
                                                       tokens: np.ndarray) -> None:
    """Even with a matching SHA-256 (a folder written by something else), ids must be 1-D
    integers in [0, vocabulary)."""
    def edit(root: Path) -> None:
        save_file({"tokens": tokens}, str(root / f"{split}.safetensors"))
        _rehash(root, f"{split}.safetensors")
    _kjv_case(kjv, tmp_path, edit)


@pytest.mark.parametrize("name", ["train.safetensors", "valid.safetensors", "vocab.txt",
                                  "manifest.json"])
def test_kjv_files_missing_damaged_or_folders(kjv: Path, tmp_path: Path, name: str) -> None:
    _kjv_case(kjv, tmp_path, lambda root: (root / name).unlink())
    _kjv_case(kjv, tmp_path, lambda root: (root / name).write_bytes(b"\xff\x00damaged"))
    _kjv_case(kjv, tmp_path, lambda root: ((root / name).unlink(), (root / name).mkdir()))
    if name.endswith(".safetensors"):  # not a safetensors file, yet listed with its hash
        def edit(root: Path) -> None:
            (root / name).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
            _rehash(root, name)
        _kjv_case(kjv, tmp_path, edit)
