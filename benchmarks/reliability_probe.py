"""Reliability probe: hostile and edge-case inputs across every subcommand and the Python API.

Generates a broad set of cases in eight classes -- input files (``.npz``), YAML configs,
checkpoints (``--resume``, ``--run``), data folders (speech manifests, IDX files, the KJV
language-model corpus), ``verify``
expressions, output paths, flag values and Python API arguments -- runs each one in a forked
child (its own folder, a wall-clock limit and a memory watch), and prints JSON counts:

* ``tried``: cases run;
* ``refused``: hostile input answered as promised (exit 2 and the field / flag named in the
  one-line message; API: ``InvalidInputError`` whose ``field`` is the argument);
* ``answered``: valid edge-case input handled without a traceback (exit 0, 1 or 3);
* ``tracebacks``: an exception reached the user (or a child died / hung / ran out of memory);
* ``wrong_field``: refused, but naming another field;
* ``partial_outputs``: a refused or failed case left files behind or changed its folder;
* ``accepted_hostile``: a hostile case that was not refused.

Usage: ``python benchmarks/reliability_probe.py [--only CLASS[,CLASS]] [--out FILE.json]
[--timeout S] [--list]``. Exit code 0 when every case behaved, 1 otherwise. Each case runs with one
thread per library (``OMP``/``MKL``/``NUMBA_NUM_THREADS=1`` in the children); on a shared
machine run one probe at a time (about ten minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import inspect
import io
import json
import multiprocessing
import os
import platform
import random
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = ("files", "configs", "checkpoints", "data", "expressions", "outputs", "flags", "api")
NOBODY = 65534
MEMORY_LIMIT = 6 << 30


@dataclass
class Case:
    """One probe case: a command line (``argv``, ``{dir}`` is the case folder) or an API call
    (``call`` returns ``(function, args, kwargs)`` and runs in the child)."""

    klass: str
    name: str
    field: str | tuple[str, ...] = ""
    argv: list[str] | None = None
    call: Callable[[Path], tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] | None = None
    setup: Callable[[Path], None] | None = None
    expect: str = "refuse"  # refuse | answer | either
    user: str = "self"  # self | nobody (drops root, for read-only folders)
    check: Callable[[Path, int, str, str], str | None] | None = None
    timeout: float | None = None


# ------------------------------------------------------------------------------- fixtures
class Fixtures:
    """Valid inputs every class mutates, made once in ``root``."""

    def __init__(self, root: Path) -> None:
        from proxcompress.formulations import random_instance

        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.instance = root / "instance.npz"
        random_instance(60, 8, 1, 4, seed=0).to_npz(self.instance)
        self.instance_bytes = self.instance.read_bytes()
        with np.load(self.instance) as data:
            self.arrays = {k: data[k] for k in data.files}
        self.config = root / "tiny.yaml"
        self.config_text = (
            "seed: 1\nepochs: 1\nprogress: false\n"
            "data: {name: synthetic, synthetic_samples: 64}\n"
            "model: {name: mlp, hidden: [16, 16], dropout: 0.0}\n"
            "quant: {weights: bnn++, keep_first: false}\n"
            "optim: {name: adam, lr: 0.01, batch_size: 32}\n")
        self.config.write_text(self.config_text)
        self.spr_config = root / "spr.yaml"
        self.spr_config.write_text(
            "seed: 1\nepochs: 1\nprogress: false\n"
            "data: {name: synthetic, synthetic_samples: 64}\n"
            "model: {name: mlp, hidden: [16, 16]}\n"
            "optim: {name: adam, lr: 0.01, batch_size: 32}\n"
            "spr: {enabled: true, pretrain_epochs: 1, finetune_epochs: 1, search_samples: 32}\n")
        self.lm_config_text = (
            "seed: 1\nepochs: 1\nprogress: false\n"
            "data: {name: kjv-sample, bptt: 12}\n"
            "model: {name: lstm-lm, lstm: {embedding: 8, hidden: 8, cutoffs: [50]}}\n"
            "optim: {batch_size: 32}\n")
        self.fp_config = root / "fp.yaml"
        self.fp_config.write_text(self.config_text.replace("weights: bnn++", "weights: none"))

    def _train(self, config: Path, name: str) -> Path:
        out = self.root / name
        if not out.exists():
            subprocess.run([sys.executable, "-m", "proxcompress", "train", "--config",
                            str(config), "--out", str(out)], check=True, capture_output=True,
                           env={**os.environ, "PYTHONWARNINGS": "ignore"})
        return out

    @functools.cached_property
    def run(self) -> Path:
        """A finished one-epoch BNN++ run (trained once, on first use)."""
        return self._train(self.config, "run")

    @functools.cached_property
    def fp_run(self) -> Path:
        """A finished one-epoch full-precision run."""
        return self._train(self.fp_config, "fp-run")

    @functools.cached_property
    def speech(self) -> Path:
        _fake_speech(self.root / "speech")
        return self.root / "speech"

    @functools.cached_property
    def kjv(self) -> Path:
        """A ``proxcompress data kjv --sample`` folder (the language-model corpus)."""
        out = self.root / "kjv"
        if not out.exists():
            subprocess.run([sys.executable, "-m", "proxcompress", "data", "kjv", "--out",
                            str(out), "--sample", "--vocab", "200"], check=True,
                           capture_output=True)
        return out

    @functools.cached_property
    def idx(self) -> Path:
        _idx_folder(self.root / "idx", 28, 28, 40)
        return self.root / "idx"


def _fake_speech(folder: Path) -> None:
    """A structurally valid speech folder (silent utterances) with a matching manifest."""
    from safetensors.numpy import save_file

    from proxcompress.training.speech import FORMAT, INTENTS, SAMPLE_RATE

    folder.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for split, n in (("train", 26), ("test", 26)):
        lengths = np.full(n, 800, dtype=np.int64)
        tensors = {"audio": np.zeros(int(lengths.sum()), np.int16),
                   "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   "labels": np.arange(n, dtype=np.int64) % len(INTENTS),
                   "speakers": np.zeros(n, np.int64)}
        save_file(tensors, str(folder / f"{split}.safetensors"))
        hashes[f"{split}.safetensors"] = hashlib.sha256(
            (folder / f"{split}.safetensors").read_bytes()).hexdigest()
    manifest = {"format": FORMAT, "sample_rate": SAMPLE_RATE, "intents": sorted(INTENTS),
                "sha256": hashes, "utterances": {"train": [], "test": []}}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _idx(dims: tuple[int, ...], magic_type: int = 0x08, payload: bytes | None = None) -> bytes:
    head = bytes([0, 0, magic_type, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    size = int(np.prod(dims))
    return head + (payload if payload is not None else bytes(size))


def _idx_folder(folder: Path, h: int, w: int, n: int, labels: bytes | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem_i, stem_l in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                           ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
        (folder / stem_i).write_bytes(_idx((n, h, w)))
        (folder / stem_l).write_bytes(_idx((n,), payload=labels if labels is not None
                                           else bytes(i % 10 for i in range(n))))


def _npz(arrays: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)


def _copy_run(src: Path) -> Callable[[Path], None]:
    return lambda d: shutil.copytree(src, d / "run")


# ------------------------------------------------------------------------ case catalogue
def file_cases(fx: Fixtures) -> list[Case]:
    """Hostile ``.npz`` instances for ``solve`` and ``compare``."""
    rng = random.Random(13)
    good = fx.instance_bytes
    a = fx.arrays
    variants: list[tuple[str, bytes | None, str]] = [
        ("empty", b"", "instance"),
        ("not a zip", b"hello, this is text\n", "instance"),
        ("a .npy", _npy(np.ones(3)), "instance"),
        ("zip without npy", _zip({"readme.txt": b"hi"}), "instance"),
        ("bad npy header", _zip({"X.npy": b"\x93NUMPY\x01\x00garbage"}), "instance"),
        ("header promises 1e12 entries", _zip({"X.npy": _npy_header((10**12,)) + bytes(8)}),
         "X"),
        ("object array", _npz({**a, "X": np.array([[1, None]], dtype=object)}), "X"),
        ("complex X", _npz({**a, "X": a["X"] + 1j}), "X"),
        ("string X", _npz({**a, "X": a["X"].astype(str)}), "X"),
        ("bytes Y", _npz({**a, "Y": a["Y"].astype("S8")}), "Y"),
        ("structured X", _npz({**a, "X": np.zeros(3, dtype=[("a", "f8")])}), "X"),
        ("group label 1e12", _npz({**a, "groups": np.array([0, 1, 2, 10**12] * 2)}), "groups"),
        ("group label -1", _npz({**a, "groups": np.array([-1, 1, 2, 3] * 2)}), "groups"),
        ("empty group", _npz({**a, "groups": np.array([0, 2, 2, 3] * 2)}), "groups"),
        ("fractional group", _npz({**a, "groups": np.array([0.5, 1, 2, 3] * 2)}), "groups"),
        ("nan group", _npz({**a, "groups": np.array([np.nan, 1, 2, 3] * 2)}), "groups"),
        ("X * 1e200", _npz({**a, "X": a["X"] * 1e200}), "X"),
        ("Y * 1e200", _npz({**a, "Y": a["Y"] * 1e200}), "Y"),
        ("X * 1e160", _npz({**a, "X": a["X"] * 1e160}), "X"),
        ("M = 1e300", _npz({**a, "M": np.float64(1e300)}), "M"),
        ("lam = 1e300", _npz({**a, "lam": np.float64(1e300)}), "lam"),
        ("nan in X", _npz({**a, "X": np.where(a["X"] > 1, np.nan, a["X"])}), "X"),
        ("inf in Y", _npz({**a, "Y": a["Y"] + np.inf}), "Y"),
        ("alpha 1.5", _npz({**a, "alpha": np.float64(1.5)}), "alpha"),
        ("alpha as string", _npz({**a, "alpha": np.array("0.5")}), "alpha"),
        ("M = 0", _npz({**a, "M": np.float64(0)}), "M"),
        ("lam < 0", _npz({**a, "lam": np.float64(-1)}), "lam"),
        ("k = -1", _npz({**a, "k": np.int64(-1)}), "k"),
        ("k = 1.5", _npz({**a, "k": np.float64(1.5)}), "k"),
        ("k array", _npz({**a, "k": np.arange(3)}), "k"),
        ("missing X", _npz({k: v for k, v in a.items() if k != "X"}), "X"),
        ("missing groups", _npz({k: v for k, v in a.items() if k != "groups"}), "groups"),
        ("extra key", _npz({**a, "W": np.zeros(2)}), "W"),
        ("3-D X", _npz({**a, "X": a["X"][:, :, None]}), "X"),
        ("rows mismatch", _npz({**a, "Y": a["Y"][:-1]}), "Y"),
        ("groups too short", _npz({**a, "groups": a["groups"][:-1]}), "groups"),
        ("0 rows", _npz({**a, "X": a["X"][:0], "Y": a["Y"][:0]}), "X"),
    ]
    for cut in sorted(rng.sample(range(1, len(good) - 1), 10)):
        variants.append((f"truncated at {cut}", good[:cut], "instance"))
    for seed in range(30):
        r = random.Random(seed)
        data = bytearray(good)
        for _ in range(r.randint(1, 8)):
            data[r.randrange(len(data))] = r.randrange(256)
        if bytes(data) != good:
            variants.append((f"random corruption {seed}", bytes(data), "*"))
    cases = []
    for name, data, fld in variants:
        setup = (lambda d, b=data: _write(d / "inst.npz", b)) if data is not None else None
        expect = "either" if fld == "*" else "refuse"
        fields = ("instance", "X", "Y", "groups", "lam", "alpha", "M", "k") if fld == "*" \
            else fld
        cases.append(Case("files", f"solve: {name}", fields, ["solve", "inst.npz",
                                                               "--time-limit", "20"],
                          setup=setup, expect=expect))
    for name, data, fld in variants[:12]:
        cases.append(Case("files", f"compare: {name}", fld,
                          ["compare", "inst.npz", "--formulations", "bnb", "--time-limit", "20"],
                          setup=lambda d, b=data: _write(d / "inst.npz", b)))
    csvs: list[tuple[str, bytes, str]] = [
        ("empty", b"", "--csv"), ("header only", b"a,b\n", "--csv"),
        ("not UTF-8", b"a,b\n1,\xff\n", "--csv"), ("missing column", b"a,c\n1,2\n", "--y"),
        ("duplicate column", b"a,a,b\n1,2,3\n", "--x"), ("text cell", b"a,b\n1,x\n", "--y"),
        ("nan cell", b"a,b\nnan,1\n", "--x"), ("inf cell", b"a,b\n1,inf\n", "--y"),
        ("1e999 cell", b"a,b\n1e999,1\n", "--x"), ("NUL byte", b"a,b\n1,\x002\n", "--y"),
        ("short row", b"a,b\n1\n", "--y"), ("too few rows", b"a,b\n1,2\n3,4\n", "--csv"),
    ]
    for name, data, fld in csvs:
        cases.append(Case("files", f"causal --csv: {name}", (fld, "--csv", "x", "y"),
                          ["causal", "--csv", "d.csv", "--x", "a", "--y", "b", "--json",
                           "r.json"], setup=lambda d, b=data: _write(d / "d.csv", b)))
    cases.append(Case("files", "solve: a folder", "instance", ["solve", "inst.npz"],
                      setup=lambda d: (d / "inst.npz").mkdir()))
    cases.append(Case("files", "solve: missing file", "instance", ["solve", "nothing.npz"]))
    cases.append(Case("files", "solve: unreadable (mode 000)", "instance",
                      ["solve", "inst.npz"], user="nobody",
                      setup=lambda d: (_write(d / "inst.npz", good),
                                       os.chmod(d / "inst.npz", 0))))
    return cases


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False,
                                                  "shape": shape})
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _laughs(levels: int, width: int) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + f"\nepochs: *a{levels - 1}\n"


def config_cases(fx: Fixtures) -> list[Case]:
    """Hostile YAML configs, ``--set`` values and cross-field errors for ``train``."""
    base = fx.config_text
    docs: list[tuple[str, bytes | str, str]] = [
        ("invalid UTF-8", base.encode() + b"\n# \xff\xfe\n", "--config"),
        ("latin-1 text", "model: {name: mlp}\n# caf\xe9\n".encode("latin-1"), "--config"),
        ("empty mapping list", "- 1\n- 2\n", "--config"),
        ("a scalar", "42\n", "--config"),
        ("billion laughs 9x9", _laughs(9, 9), "--config"),
        ("billion laughs 20x2", _laughs(20, 2), "--config"),
        ("recursive alias", "a: &a [*a]\n", "--config"),
        ("recursive mapping alias", "a: &a {b: *a}\n", "--config"),
        ("deep nesting", "x: " + "[" * 500 + "]" * 500 + "\n", "--config"),
        ("deep mapping nesting", "".join(f"{' ' * i}k{i}:\n" for i in range(200)), "--config"),
        ("duplicate top-level key", base + "epochs: 3\n", "--config"),
        ("duplicate nested key", base + "mu: {scale: 1, scale: 2}\n", "--config"),
        ("python tag", base + "evil: !!python/object/apply:os.system ['true']\n", "--config"),
        ("custom tag", base + "x: !custom 1\n", "--config"),
        ("tabs", "model:\n\tname: mlp\n", "--config"),
        ("unterminated flow", "model: {name: mlp\n", "--config"),
        ("unknown key", base + "typo_key: 1\n", "typo_key"),
        ("unknown nested key", base.replace("dropout: 0.0", "dropout: 0.0, widht: 3"),
         "model.widht"),
        ("epochs string", base.replace("epochs: 1", "epochs: one"), "epochs"),
        ("epochs -1", base.replace("epochs: 1", "epochs: -1"), "epochs"),
        ("epochs 1e12", base.replace("epochs: 1", "epochs: 1000000000000"), "epochs"),
        ("seed -1", base.replace("seed: 1", "seed: -1"), "seed"),
        ("seed 2**70", base.replace("seed: 1", f"seed: {2**70}"), "seed"),
        ("lr nan", base.replace("lr: 0.01", "lr: .nan"), "optim.lr"),
        ("lr inf", base.replace("lr: 0.01", "lr: .inf"), "optim.lr"),
        ("lr bool", base.replace("lr: 0.01", "lr: true"), "optim.lr"),
        ("batch 0", base.replace("batch_size: 32", "batch_size: 0"), "optim.batch_size"),
        ("batch 1e9", base.replace("batch_size: 32", "batch_size: 1000000000"),
         "optim.batch_size"),
        ("hidden huge", base.replace("[16, 16]", "[100000000]"), "model.hidden"),
        ("hidden 60000x3", base.replace("[16, 16]", "[60000, 60000, 60000]"), "model"),
        ("hidden empty", base.replace("[16, 16]", "[]"), "model.hidden"),
        ("hidden strings", base.replace("[16, 16]", "[a, b]"), "model.hidden[0]"),
        ("hidden mapping", base.replace("[16, 16]", "{a: 1}"), "model.hidden"),
        ("model a list", base.replace("model: {name: mlp, hidden: [16, 16], dropout: 0.0}",
                                      "model: [1, 2]"), "model"),
        ("quant unknown", base.replace("weights: bnn++", "weights: bnn+++"), "quant.weights"),
        ("dropout 1", base.replace("dropout: 0.0", "dropout: 1.0"), "model.dropout"),
        ("device gpu", base + "device: gpu\n", "device"),
        ("image size 64", base.replace("synthetic_samples: 64",
                                       "synthetic_samples: 64, image_size: 64"),
         "data.image_size"),
        ("spr with quantizer", base + "spr: {enabled: true}\n", "spr.enabled"),
        ("speech without root", base.replace("name: synthetic", "name: speech"), "model.name"),
        ("init_from missing", base.replace("dropout: 0.0}", "dropout: 0.0, init_from: nowhere}"),
         "model.init_from"),
        ("init_from a quantized run", fx.config_text.replace(
            "dropout: 0.0}", f"dropout: 0.0, init_from: {fx.run}}}"), "model.init_from"),
        ("init_from other widths", fx.config_text.replace("[16, 16]", "[8]").replace(
            "dropout: 0.0}", f"dropout: 0.0, init_from: {fx.fp_run}}}"), "model.init_from"),
        ("spr units unknown", fx.spr_config.read_text().replace(
            "search_samples: 32}", "search_samples: 32, units: [nope]}"), "spr.units"),
        ("exponential mu from 0", base + "mu: {schedule: exponential, start: 0}\n", "mu.start"),
        ("bits for euclid", base.replace("weights: bnn++", "weights: euclid") +
         "mulfree: {bits: 3}\n", "mulfree.bits"),
    ]
    lm = fx.lm_config_text
    docs += [  # the language model and the tensor-train keys (issue 20)
        ("lm: tt form unknown", lm + "tt: {form: tucker}\n", "tt.form"),
        ("lm: tt compression 0.5", lm + "tt: {form: mps, compression: 0.5}\n", "tt.compression"),
        ("lm: tt ranks and compression", lm + "tt: {form: mps, ranks: 4, compression: 10}\n",
         "tt.ranks"),
        ("lm: tt ranks [0]", lm + "tt: {form: mpo, ranks: [0]}\n", "tt.ranks"),
        ("lm: tt num_modes 9", lm + "tt: {form: mps, num_modes: 9}\n", "tt.num_modes"),
        ("lm: tt matrices xh", lm + "tt: {form: mps, matrices: [xh]}\n", "tt.matrices"),
        ("lm: bptt 0", lm.replace("bptt: 12", "bptt: 0"), "data.bptt"),
        ("lm: eval_streams 0", lm.replace("bptt: 12", "bptt: 12, eval_streams: 0"),
         "data.eval_streams"),
        ("lm: classes", lm.replace("bptt: 12", "bptt: 12, classes: [0, 1]"), "data.classes"),
        ("lm: kjv without root", lm.replace("kjv-sample", "kjv"), "data.root"),
        ("lm: with images", lm.replace("kjv-sample", "synthetic"), "model.name"),
        ("lm: cutoffs decreasing", lm.replace("[50]", "[50, 10]"), "model.lstm.cutoffs"),
        ("lm: hidden 100000", lm.replace("hidden: 8", "hidden: 100000"), "model"),
        ("lm: binary weights", lm + "quant: {weights: bnn}\n", "quant.weights"),
        ("lm: distillation", lm + "distill: {teacher: elsewhere}\n", "distill.teacher"),
        ("lm: clip_norm -1", lm.replace("batch_size: 32", "batch_size: 32, clip_norm: -1"),
         "optim.clip_norm"),
    ]
    cases = []
    for name, text, fld in docs:
        def setup(d: Path, t: bytes | str = text) -> None:
            _write(d / "c.yaml", t)

        cases.append(Case("configs", f"train: {name}", fld,
                          ["train", "--config", "c.yaml", "--out", "out"], setup=setup))
        if fld in ("spr.units", "model.init_from", "model", "--config"):
            cases.append(Case("configs", f"train --dry-run: {name}", fld,
                              ["train", "--config", "c.yaml", "--dry-run"], setup=setup))
    sets = [("optim.lr=abc", "optim.lr"), ("optim.lr=[1", "optim.lr"), ("=1", "--set"),
            ("epochs", "--set"), ("model=5", "model"), ("model.hidden.x=1", "model.hidden.x"),
            ("optim.lr=.nan", "optim.lr"), ("a.b.c=1", "a"),
            ("epochs=*x", "epochs"), ("epochs=!!python/name:os.system", "epochs"),
            ("seed=99999999999999999999999", "seed"), ("data.name=mnist", "data.name")]
    for text, fld in sets:
        cases.append(Case("configs", f"--set {text}", fld,
                          ["train", "--config", "c.yaml", "--set", text, "--out", "out"],
                          setup=lambda d: _write(d / "c.yaml", fx.config_text)))
    cases.append(Case("configs", "config is a folder", "--config",
                      ["train", "--config", "c.yaml", "--out", "out"],
                      setup=lambda d: (d / "c.yaml").mkdir()))
    cases.append(Case("configs", "config missing", "--config",
                      ["train", "--config", "none.yaml", "--out", "out"]))
    return cases


def checkpoint_cases(fx: Fixtures) -> list[Case]:
    """Damaged, edited and crafted checkpoints for ``train --resume``, ``export --run`` and
    ``select --run``."""
    from safetensors.numpy import load_file, save_file

    def json_edit(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
        def setup(d: Path) -> None:
            _copy_run(fx.run)(d)
            path = d / "run" / "checkpoint.json"
            record = json.loads(path.read_text())
            out = edit(record)
            path.write_text(json.dumps(record if out is None else out))
        return setup

    def raw_json(data: bytes) -> Callable[[Path], None]:
        return lambda d: (_copy_run(fx.run)(d), (d / "run" / "checkpoint.json").write_bytes(data))

    def tensors_edit(edit: Callable[[dict[str, np.ndarray]], None]) -> Callable[[Path], None]:
        """Rewrite the tensor file and update its recorded SHA-256 (a crafted checkpoint)."""
        def setup(d: Path) -> None:
            _copy_run(fx.run)(d)
            record = json.loads((d / "run" / "checkpoint.json").read_text())
            path = d / "run" / record["tensors"]
            tensors = load_file(str(path))
            edit(tensors)
            save_file(tensors, str(path))
            record["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            (d / "run" / "checkpoint.json").write_text(json.dumps(record))
        return setup

    def bytes_edit(seed: int) -> Callable[[Path], None]:
        def setup(d: Path) -> None:
            _copy_run(fx.run)(d)
            record = json.loads((d / "run" / "checkpoint.json").read_text())
            path = d / "run" / record["tensors"]
            data = bytearray(path.read_bytes())
            r = random.Random(seed)
            for _ in range(r.randint(1, 6)):
                data[r.randrange(min(len(data), 400))] = r.randrange(256)
            path.write_bytes(bytes(data))
            record["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
            (d / "run" / "checkpoint.json").write_text(json.dumps(record))
        return setup

    def first_float(t: dict[str, np.ndarray]) -> str:
        return next(k for k, v in t.items() if k.startswith("model.") and v.dtype.kind == "f")

    def config_edit(old: str, new: str) -> Callable[[Path], None]:
        def setup(d: Path) -> None:
            _copy_run(fx.run)(d)
            path = d / "run" / "config.yaml"
            path.write_text(path.read_text().replace(old, new, 1))
        return setup

    variants: list[tuple[str, Callable[[Path], None]]] = [
        ("checkpoint.json a list", json_edit(lambda r: [r])),
        ("checkpoint.json a string", json_edit(lambda r: "checkpoint")),
        ("checkpoint.json not UTF-8", raw_json(b'{"format": "\xff\xfe"}')),
        ("checkpoint.json not JSON", raw_json(b"{not json")),
        ("checkpoint.json empty", raw_json(b"")),
        ("checkpoint.json deep", raw_json(b"[" * 100000 + b"]" * 100000)),
        ("duplicate keys", raw_json(b'{"format": 1, "format": 2}')),
        ("without meta", json_edit(lambda r: r.pop("meta"))),
        ("checkpoint.json removed", lambda d: (_copy_run(fx.run)(d),
                                               (d / "run" / "checkpoint.json").unlink())),
        ("meta a list", json_edit(lambda r: r.update(meta=[1]))),
        ("phase a string", json_edit(lambda r: r["meta"]["run"].update(phase="0"))),
        ("phase 99", json_edit(lambda r: r["meta"]["run"].update(phase=99))),
        ("phase -1", json_edit(lambda r: r["meta"]["run"].update(phase=-1))),
        ("epoch float", json_edit(lambda r: r["meta"]["run"].update(epoch=0.5))),
        ("acc wrong", json_edit(lambda r: r["meta"]["run"].update(acc="x"))),
        ("run missing", json_edit(lambda r: r["meta"].pop("run"))),
        ("recorded config missing", json_edit(lambda r: r["meta"].pop("config"))),
        ("recorded config invalid", json_edit(lambda r: r["meta"]["config"].update(epochs=-3))),
        ("pruned bogus", json_edit(lambda r: r["meta"]["run"].update(pruned={"fc0": [99]}))),
        ("wrapper missing", json_edit(lambda r: r["meta"].pop("wrapper"))),
        ("sequence -1", json_edit(lambda r: r.update(sequence=-1))),
        ("tensors path traversal", json_edit(lambda r: r.update(tensors="../../etc/passwd"))),
        ("sha256 malformed", json_edit(lambda r: r.update(sha256="xyz"))),
        ("format other", json_edit(lambda r: r.update(format="other"))),
        ("optimizer bogus", json_edit(lambda r: r.update(optimizer={"state": 1}))),
        ("optimizer tensor missing", json_edit(lambda r: r["optimizer"]["state"].update(
            {"0": {"exp_avg": {"tensor": "optim.nothing"}}}))),
        ("tensor file removed", lambda d: (_copy_run(fx.run)(d), [
            p.unlink() for p in (d / "run").glob("checkpoint-*.safetensors")])),
        ("tensor file a folder", lambda d: (_copy_run(fx.run)(d), [
            (p.unlink(), p.mkdir()) for p in (d / "run").glob("checkpoint-*.safetensors")])),
        ("NaN weights, hash updated", tensors_edit(
            lambda t: t.__setitem__(first_float(t), t[first_float(t)] * np.nan))),
        ("inf weights, hash updated", tensors_edit(
            lambda t: t.__setitem__(first_float(t), t[first_float(t)] + np.inf))),
        ("tensor removed, hash updated", tensors_edit(lambda t: t.pop(first_float(t)))),
        ("tensor reshaped, hash updated", tensors_edit(
            lambda t: t.__setitem__(first_float(t), t[first_float(t)].reshape(-1)[:3]))),
        ("tensor extra, hash updated", tensors_edit(
            lambda t: t.__setitem__("model.extra", np.zeros(3, np.float32)))),
        ("rng removed, hash updated", tensors_edit(lambda t: t.pop("rng.torch"))),
        ("rng wrong, hash updated", tensors_edit(
            lambda t: t.__setitem__("rng.torch", np.zeros(3, np.float32)))),
        ("config.yaml other widths", config_edit("- 16", "- 24")),
        ("config.yaml other model", config_edit("name: mlp", "name: vgg")),
        ("config.yaml invalid YAML", config_edit("seed:", "seed: [")),
        ("config.yaml not UTF-8", lambda d: (_copy_run(fx.run)(d),
                                             (d / "run" / "config.yaml").write_bytes(b"\xff"))),
        ("config.yaml removed", lambda d: (_copy_run(fx.run)(d),
                                           (d / "run" / "config.yaml").unlink())),
        ("config.yaml a folder", lambda d: (_copy_run(fx.run)(d),
                                            (d / "run" / "config.yaml").unlink(),
                                            (d / "run" / "config.yaml").mkdir())),
    ]
    variants += [(f"tensor bytes damaged {s}, hash updated", bytes_edit(s)) for s in range(8)]
    cases = []
    for name, setup in variants:
        cases.append(Case("checkpoints", f"train --resume: {name}", "--resume",
                          ["train", "--resume", "run", "--set", "epochs=2"], setup=setup))
        cases.append(Case("checkpoints", f"export --run: {name}", "--run",
                          ["export", "--run", "run", "--out", "exp"], setup=setup))
        cases.append(Case("checkpoints", f"select --run: {name}", "--run",
                          ["select", "--run", "run", "--unit", "fc0", "--keep", "4",
                           "--select", "magnitude"], setup=setup))
    summary_edits: list[tuple[str, Callable[[Path], None]]] = [
        ("summary.json removed", lambda d: (d / "run" / "summary.json").unlink()),
        ("summary.json a list", lambda d: (d / "run" / "summary.json").write_text("[1]")),
        ("summary.json not JSON", lambda d: (d / "run" / "summary.json").write_text("{")),
        ("summary.json not UTF-8", lambda d: (d / "run" / "summary.json").write_bytes(b"\xff")),
        ("summary.json mu a string", lambda d: (d / "run" / "summary.json").write_text(
            '{"mu": "x"}')),
        ("summary.json mu nan", lambda d: (d / "run" / "summary.json").write_text(
            '{"mu": NaN}')),
    ]
    for name, edit in [*summary_edits, *[(n, e) for n, e in variants if "config.yaml" in n]]:
        def setup(d: Path, edit: Callable[[Path], None] = edit, name: str = name) -> None:
            if name.startswith("summary"):
                _copy_run(fx.run)(d)
                edit(d)
            else:
                edit(d)

        cases.append(Case("checkpoints", f"verify --run: {name}", "--run",
                          ["verify", "--run", "run", "--json", "v.json"], setup=setup))
    cases.append(Case("checkpoints", "resume a finished run with fewer epochs", "epochs",
                      ["train", "--resume", "run", "--set", "epochs=0"],
                      setup=_copy_run(fx.run)))
    cases.append(Case("checkpoints", "resume a finished run with other lr", "optim.lr",
                      ["train", "--resume", "run", "--set", "optim.lr=0.5"],
                      setup=_copy_run(fx.run)))
    for flag in (["train", "--resume", "nothing"], ["export", "--run", "nothing", "--out", "e"],
                 ["select", "--run", "nothing", "--unit", "fc0", "--keep", "2"]):
        cases.append(Case("checkpoints", f"{flag[0]}: run folder missing", flag[1], flag))
    return cases


def data_cases(fx: Fixtures) -> list[Case]:
    """Data folders: speech manifests and Fashion-MNIST IDX files, used by ``train``."""

    def speech(edit: Callable[[Path], None]) -> Callable[[Path], None]:
        def setup(d: Path) -> None:
            shutil.copytree(fx.speech, d / "speech")
            edit(d / "speech")
            _write(d / "c.yaml", fx.config_text.replace("name: synthetic, synthetic_samples: 64",
                                                        "name: speech, root: speech")
                   .replace("name: mlp, hidden: [16, 16], dropout: 0.0",
                            "name: speech-resnet, width: 4"))
        return setup

    def manifest(edit: Callable[[dict[str, Any]], Any],
                 where: Callable[[Callable[[Path], None]], Callable[[Path], None]] | None = None
                 ) -> Callable[[Path], None]:
        """Edit a data folder's manifest (the speech folder's unless ``where`` says)."""
        def inner(folder: Path) -> None:
            record = json.loads((folder / "manifest.json").read_text())
            out = edit(record)
            (folder / "manifest.json").write_text(json.dumps(record if out is None else out))
        return (where or speech)(inner)

    def idx(edit: Callable[[Path], None]) -> Callable[[Path], None]:
        def setup(d: Path) -> None:
            shutil.copytree(fx.idx, d / "idx")
            edit(d / "idx")
            _write(d / "c.yaml", fx.config_text.replace("name: synthetic, synthetic_samples: 64",
                                                        "name: fashion-mnist, root: idx"))
        return setup

    variants: list[tuple[str, Callable[[Path], None], str]] = [
        ("manifest a list", manifest(lambda m: [m]), "data.root"),
        ("manifest without sha256", manifest(lambda m: m.pop("sha256")), "data.root"),
        ("manifest sha256 a list", manifest(lambda m: m.update(sha256=[1])), "data.root"),
        ("manifest other format", manifest(lambda m: m.update(format="x")), "data.root"),
        ("manifest other rate", manifest(lambda m: m.update(sample_rate=8000)), "data.root"),
        ("manifest rate a string", manifest(lambda m: m.update(sample_rate="16000")),
         "data.root"),
        ("manifest other intents", manifest(lambda m: m.update(intents=["a", "b"])),
         "data.root"),
        ("manifest not JSON", speech(lambda f: (f / "manifest.json").write_text("{")),
         "data.root"),
        ("manifest not UTF-8", speech(lambda f: (f / "manifest.json").write_bytes(b"\xff")),
         "data.root"),
        ("manifest a folder", speech(lambda f: ((f / "manifest.json").unlink(),
                                                (f / "manifest.json").mkdir())), "data.root"),
        ("manifest missing", speech(lambda f: (f / "manifest.json").unlink()), "data.root"),
        ("split file missing", speech(lambda f: (f / "train.safetensors").unlink()),
         "data.root"),
        ("split file damaged", speech(lambda f: (f / "test.safetensors").write_bytes(b"xx")),
         "data.root"),
        ("IDX images 32x32", idx(lambda f: _idx_folder(f, 32, 32, 40)), "data"),
        ("IDX images 28x20", idx(lambda f: _idx_folder(f, 28, 20, 40)), "data"),
        ("IDX truncated", idx(lambda f: (f / "train-images-idx3-ubyte").write_bytes(
            _idx((40, 28, 28))[:-5])), "data"),
        ("IDX bad magic", idx(lambda f: (f / "train-images-idx3-ubyte").write_bytes(
            b"\x01\x02\x03\x04" + bytes(10))), "data"),
        ("IDX float images", idx(lambda f: (f / "train-images-idx3-ubyte").write_bytes(
            _idx((40, 28, 28), 0x0D, bytes(40 * 28 * 28 * 4)))), "data"),
        ("IDX labels out of range", idx(lambda f: _idx_folder(f, 28, 28, 40,
                                                             bytes([200] * 40))), "data"),
        ("IDX count mismatch", idx(lambda f: (f / "t10k-labels-idx1-ubyte").write_bytes(
            _idx((39,)))), "data"),
        ("IDX empty file", idx(lambda f: (f / "train-images-idx3-ubyte").write_bytes(b"")),
         "data"),
        ("IDX files missing", idx(lambda f: (f / "train-images-idx3-ubyte").unlink()),
         "data.root"),
        ("IDX a folder", idx(lambda f: ((f / "train-labels-idx1-ubyte").unlink(),
                                        (f / "train-labels-idx1-ubyte").mkdir())), "data"),
        ("IDX bad gzip", idx(lambda f: ((f / "train-images-idx3-ubyte").unlink(),
                                        (f / "train-images-idx3-ubyte.gz").write_bytes(b"x"))),
         "data"),
    ]
    def kjv(edit: Callable[[Path], None]) -> Callable[[Path], None]:
        def setup(d: Path) -> None:
            shutil.copytree(fx.kjv, d / "kjv")
            edit(d / "kjv")
            _write(d / "c.yaml", fx.lm_config_text.replace("name: kjv-sample",
                                                           "name: kjv, root: kjv"))
        return setup

    def kjv_manifest(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
        return manifest(edit, kjv)

    def kjv_tokens(tokens: np.ndarray) -> Callable[[Path], None]:
        def inner(folder: Path) -> None:
            from safetensors.numpy import save_file

            save_file({"tokens": tokens}, str(folder / "train.safetensors"))
            record = json.loads((folder / "manifest.json").read_text())
            record["sha256"]["train.safetensors"] = hashlib.sha256(
                (folder / "train.safetensors").read_bytes()).hexdigest()
            (folder / "manifest.json").write_text(json.dumps(record))
        return kjv(inner)

    variants += [
        ("kjv manifest a list", kjv_manifest(lambda m: [m]), "data.root"),
        ("kjv manifest other format", kjv_manifest(lambda m: m.update(format="x")),
         "data.root"),
        ("kjv manifest without sha256", kjv_manifest(lambda m: m.pop("sha256")), "data.root"),
        ("kjv manifest vocab_size a string", kjv_manifest(
            lambda m: m["options"].update(vocab_size="200")), "data.root"),
        ("kjv manifest missing", kjv(lambda f: (f / "manifest.json").unlink()), "data.root"),
        ("kjv vocab.txt changed", kjv(lambda f: (f / "vocab.txt").write_text("a\n")),
         "data.root"),
        ("kjv split missing", kjv(lambda f: (f / "test.safetensors").unlink()), "data.root"),
        ("kjv ids beyond the vocabulary", kjv_tokens(np.array([5, 10**6], np.int32)),
         "data.root"),
        ("kjv negative ids", kjv_tokens(np.array([-1, 3], np.int32)), "data.root"),
        ("kjv float tokens", kjv_tokens(np.zeros(4, np.float32)), "data.root"),
    ]
    return [Case("data", f"train: {name}", fld, ["train", "--config", "c.yaml", "--out", "out"],
                 setup=setup) for name, setup, fld in variants]


def _random_expression(r: random.Random, depth: int = 0) -> str:
    atoms = ["x", "mu", "1", "2", "0.5", "64", "10**64", "pi", "E", "-1", "1e308", "True"]
    funcs = ["sin", "exp", "log", "sqrt", "tanh", "Abs", "sign", "Heaviside", "erf", "sigmoid",
             "hardtanh", "SignSwish", "Min", "Max", "clip", "Piecewise", "Eq", "Ne"]
    if depth > 4 or r.random() < 0.25:
        return r.choice(atoms)
    kind = r.random()
    if kind < 0.45:
        op = r.choice(["+", "-", "*", "/", "**", "^", "<", "&", "|"])
        return f"({_random_expression(r, depth + 1)} {op} {_random_expression(r, depth + 1)})"
    f = r.choice(funcs)
    n = {"Min": 2, "Max": 2, "clip": 3, "Eq": 2, "Ne": 2, "Piecewise": 2,
         "SignSwish": 1 + r.randint(0, 1)}.get(f, 1)
    if f == "Piecewise":
        return (f"Piecewise(({_random_expression(r, depth + 1)}, "
                f"{_random_expression(r, depth + 1)}), ({_random_expression(r, depth + 1)}, "
                "True))")
    return f"{f}({', '.join(_random_expression(r, depth + 1) for _ in range(n))})"


def expression_cases(fx: Fixtures) -> list[Case]:
    """Hostile ``verify`` expressions (and random ones from the grammar, which must be answered
    without a traceback within the budget)."""
    hostile = [
        "2^64^64*x", "2**64**64*x", "x^64^64", "(2^64)^64*x", "((10**64)**64)**64*x",
        "(((10**64)**64)**64)**64*x", "((x**64)**64)**64", "x**(64*64*64*64)",
        "x**(10**64)", "x**(2**63)", "10**(10**10)", "Piecewise((1, x))",
        "Piecewise((1, 2))", "Piecewise((1, x), (0, True))", "x & (x < 1)", "~x", "x | True",
        "Heaviside(x < 1)", "1e400*x", "1e-400*x", "9" * 31 + "*x", "(" * 200 + "x" + ")" * 200,
        "x" + "+x" * 500, "__import__('os')", "x.__class__", "lambda: x", "[x]", "{x}",
        "x if x else x", "open('/etc/passwd')", "'x'", "b'x'", "x @ x", "x // 2", "x % 2",
        "x == 1", "x := 1", "x; x", "\\x", "x\x00", "exp(exp(exp(exp(exp(x)))))**64",
        "Min()", "clip(x)", "SignSwish()", "sin(x, x)", "sin(x=1)", "sin(*x)", "y", "",
        "   ", "x**-65", "x**(1/0)", "x/0", "log(0)*x", "Eq(x)", "x < 1 < 2",
    ]
    cases = []
    for i, text in enumerate(hostile):
        for flag, other in (("--prox", "--backward"), ("--backward", "--prox")):
            cases.append(Case("expressions", f"{flag} #{i}: {text[:40]!r}",
                              (flag, "--prox/--backward"),
                              ["verify", flag, text, other, "x", "--time-limit", "20"],
                              expect="either", timeout=90))
    r = random.Random(7)
    for i in range(40):
        text = _random_expression(r)
        cases.append(Case("expressions", f"random #{i}: {text[:50]!r}",
                          ("--prox", "--prox/--backward"),
                          ["verify", "--prox", text, "--backward", "tanh(x)", "--time-limit",
                           "20"], expect="either", timeout=90))
    for text in ("a,b", "nan", "inf,1", "", ",", "1e999"):
        cases.append(Case("expressions", f"--levels={text}", "--levels",
                          ["verify", "--prox", "sign(x)", "--backward", "x",
                           f"--levels={text}"], expect="either"))
    return cases


def make_target(d: Path, kind: str) -> str:
    """Make an output target of the given hostile kind in ``d``; returns its path."""
    if kind == "a folder":
        (d / "t").mkdir()
        return "t"
    if kind == "inside a file":
        (d / "f").write_text("keep")
        return "f/t"
    if kind == "missing folder":
        return "missing/sub/t"
    if kind == "read-only folder":
        (d / "ro").mkdir()
        os.chmod(d / "ro", 0o555)
        return "ro/t"
    if kind == "dangling link":
        os.symlink(d / "nowhere" / "x", d / "t")
        return "t"
    if kind == "a device":
        return "/dev/null"
    if kind == "name too long":
        return "n" * 300
    if kind == "empty":
        return ""
    if kind == "a fifo":
        os.mkfifo(d / "t")
        return "t"
    raise ValueError(kind)


FILE_KINDS = ("a folder", "inside a file", "missing folder", "read-only folder", "dangling link",
              "a device", "name too long", "empty", "a fifo")
FOLDER_KINDS = ("inside a file", "read-only folder", "name too long", "empty", "a device")


def output_commands(instance: Path, config: Path, run: Path, fp_run: Path
                    ) -> dict[str, tuple[list[str], str, str]]:
    """Every output flag of every subcommand: name -> (argv with ``{t}`` for the target, the
    flag, ``file`` or ``folder``); the inputs are a valid instance, config and two finished
    runs (BNN++ and full precision)."""
    inst, cfg = str(instance), str(config)
    return {
        "solve --json": (["solve", inst, "--json", "{t}"], "--json", "file"),
        "compare --json": (["compare", inst, "--formulations", "bnb", "--json", "{t}"],
                           "--json", "file"),
        "instance OUT": (["instance", "{t}", "--n", "20", "--groups", "3"], "out", "file"),
        "verify --json": (["verify", "--name", "bnn++", "--json", "{t}"], "--json", "file"),
        "verify --markdown": (["verify", "--name", "bnn++", "--json", "ok.json", "--markdown",
                               "{t}"], "--markdown", "file"),
        "causal --json": (["causal", "--simulate", "1", "--n", "40", "--json", "{t}"], "--json",
                          "file"),
        "train --out": (["train", "--config", cfg, "--out", "{t}"], "--out", "folder"),
        "select --json": (["select", "--run", str(fp_run), "--unit", "fc0", "--keep", "4",
                           "--select", "magnitude", "--json", "{t}"], "--json", "file"),
        "export --out": (["export", "--run", str(run), "--out", "{t}"], "--out", "folder"),
        "export --json": (["export", "--run", str(run), "--out", "exp", "--json", "{t}"],
                          "--json", "file"),
        "data speech --out": (["data", "speech", "--out", "{t}", "--speakers", "2",
                               "--phrasings", "1"], "--out", "folder"),
        "data kjv --out": (["data", "kjv", "--out", "{t}", "--sample"], "--out", "folder"),
        "robustness --json": (["robustness", "--run", str(fp_run), "--json", "{t}"], "--json",
                              "file"),
        "reproduce --out": (["reproduce", "--quick", "--only", "certificates", "--out", "{t}"],
                            "--out", "folder"),
    }


def output_cases(fx: Fixtures) -> list[Case]:
    """Every output flag of every subcommand against every hostile target kind."""
    commands = output_commands(fx.instance, fx.config, fx.run, fx.fp_run)
    cases = []
    for name, (argv, flag, kind) in commands.items():
        for target in (FILE_KINDS if kind == "file" else FOLDER_KINDS):
            def setup(d: Path, target: str = target) -> None:
                (d / "target.txt").write_text(make_target(d, target))

            cases.append(Case("outputs", f"{name} -> {target}", flag, argv, setup=setup,
                              user="nobody" if target == "read-only folder" else "self"))
    cases.append(Case("outputs", "verify --json and --markdown the same file", "--markdown",
                      ["verify", "--name", "bnn++", "--json", "same", "--markdown", "same"]))
    cases.append(Case("outputs", "a SIGKILL-left temporary is cleaned by the next run", "",
                      ["solve", str(fx.instance), "--json", "sol.json"], expect="answer",
                      setup=_stale_temp, check=_stale_removed))
    return cases


def _stale_temp(d: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    (d / f".sol.json.{child.pid}-abcd1234.tmp").write_text("partial")


def _stale_removed(d: Path, rc: int, out: str, err: str) -> str | None:
    left = [p.name for p in d.glob(".sol.json.*.tmp")]
    if left or not (d / "sol.json").is_file():
        return f"stale temporaries left: {left}"
    return None


def flag_cases(fx: Fixtures) -> list[Case]:
    """Bad flag values of every subcommand (random draws and the edges)."""
    inst = str(fx.instance)
    table: list[tuple[list[str], str]] = []
    r = random.Random(5)
    numbers = ["nan", "inf", "-inf", "-1", "0", "1e400", "abc", "", "1.5", str(2**70),
               "-0", "1e-400", "0x10"]
    big = 2**25
    instance_flags: dict[str, Callable[[float], bool]] = {
        "--n": lambda v: 1 <= v <= big, "--d": lambda v: 1 <= v <= big,
        "--m": lambda v: 1 <= v <= big, "--groups": lambda v: 1 <= v <= 8,
        "--rho": lambda v: -1 < v < 1, "--snr": lambda v: v > 0, "--alpha": lambda v: 0 < v < 1,
        "--k": lambda v: v >= 0, "--seed": lambda v: 0 <= v < 2**32}
    integers = {"--n", "--d", "--m", "--groups", "--k", "--seed"}

    def valid(flag: str, text: str) -> bool:
        try:
            value = int(text) if flag in integers else float(text)
        except ValueError:
            return False
        return value == value and abs(value) != float("inf") and instance_flags[flag](value)

    for flag in instance_flags:
        hostile = [v for v in numbers + ["1e12", "-5", "2.5"] if not valid(flag, v)]
        for value in r.sample(hostile, min(7, len(hostile))):
            table.append((["instance", "o.npz", "--n", "40", "--d", "8", "--groups", "4", flag,
                          value], flag))
    for value in ("0", "-1", "nan", "inf", "abc", "1e400"):
        table.append((["solve", inst, "--time-limit", value], "--time-limit"))
        table.append((["compare", inst, "--time-limit", value], "--time-limit"))
        table.append((["verify", "--prox", "x", "--backward", "x", "--time-limit", value],
                      "--time-limit"))
    for value in ("bogus", "", ",", "bnb,bogus"):
        table.append((["compare", inst, "--formulations", value], "--formulations"))
    table += [
        (["solve", inst, "--formulation", "simplex"], "--formulation"),
        (["causal", "--simulate", "0"], "--simulate"), (["causal", "--simulate", "2",
                                                         "--n", "5"], "--n"),
        (["causal", "--simulate", "2", "--k", "0"], "--k"),
        (["causal", "--simulate", "2", "--seed", "-1"], "--seed"),
        (["causal", "--simulate", "2", "--k-max", "0"], "--k-max"),
        (["select", "--run", str(fx.fp_run), "--unit", "fc0", "--keep", "0"], "--keep"),
        (["select", "--run", str(fx.fp_run), "--unit", "fc0", "--keep", "99999"], "--keep"),
        (["select", "--run", str(fx.fp_run), "--unit", "nope", "--keep", "2"], "--unit"),
        (["select", "--run", str(fx.fp_run), "--unit", "fc0", "--keep", "2", "--samples",
          "0"], "--samples"),
        (["select", "--run", str(fx.fp_run), "--unit", "fc0", "--keep", "2", "--time-limit",
          "nan"], "--time-limit"),
        (["export", "--run", str(fx.run), "--out", "e", "--batch", "0"], "--batch"),
        (["export", "--run", str(fx.run), "--out", "e", "--backend", "cuda"], "--backend"),
        (["train"], "--config"), (["train", "--config", str(fx.config)], "--out"),
        (["train", "--resume", "missing-run"], "--resume"),
        (["train", "--resume", str(fx.run), "--out", "elsewhere"], "--out"),
        (["train", "--config", str(fx.fp_config), "--resume", str(fx.run)], "--config"),
        (["data", "speech", "--out", "s", "--speakers", "1"], "--speakers"),
        (["data", "speech", "--out", "s", "--speakers", "1000"], "--speakers"),
        (["data", "speech", "--out", "s", "--seed", "-1"], "--seed"),
        (["data", "speech", "--out", "s", "--repeats", "0"], "--repeats"),
        (["data", "speech", "--out", "s", "--test-every", "0"], "--test-every"),
        (["data", "kjv", "--out", "k", "--sample", "--vocab", "2"], "--vocab"),
        (["data", "kjv", "--out", "k", "--sample", "--vocab", "10000000"], "--vocab"),
        (["data", "kjv", "--out", "k", "--sample", "--vocab", "abc"], "--vocab"),
        (["verify"], "verify"), (["verify", "--all", "--name", "bnn"], "--all"),
        (["verify", "--name", "nope"], "--name"), (["verify", "--prox", "x"], "--prox/--backward"),
        (["verify", "--name", "bnn", "--levels=1"], "--levels"),
    ]
    cases = [Case("flags", " ".join(argv)[:80], flag, argv) for argv, flag in table]
    cases.append(Case("flags", "compare at a tiny time limit claims only what was proved", "",
                      ["compare", "hard.npz", "--formulations", "bnb,cuts", "--time-limit",
                       "0.2"], expect="answer", setup=_hard_instance, check=_honest_verdict,
                      timeout=300))
    return cases


def _hard_instance(d: Path) -> None:
    from proxcompress.formulations import random_instance

    random_instance(400, 120, 1, 120, seed=1, alpha=0.2, weights="gaussian").to_npz(
        d / "hard.npz")


def _honest_verdict(d: Path, rc: int, out: str, err: str) -> str | None:
    last = out.strip().splitlines()[-1] if out.strip() else ""
    if rc == 0 and "proved optimality" not in last:
        return f"exit 0 without claiming proof: {last!r}"
    if rc == 3 and ("NOT proved" not in last or "agree on the optimum" in last):
        return f"time limit but the verdict claims: {last!r}"
    if rc not in (0, 1, 3):
        return f"exit {rc}"
    return None


# ---------------------------------------------------------------------------------- api
def hostile_values(tp: Any) -> list[Any]:
    """Values that no annotation ``tp`` accepts (type-level), ``[]`` when not checkable."""
    from proxcompress.checks import annotation_checker

    check = annotation_checker(tp)
    if check is None:
        return []
    pool = ["5", 1.5, -3, None, [], {}, {"X": 1}, float("nan"), 1j, b"x", "no-such-choice",
            object(), np.array([1j]), np.array(["a"]), ["a", "b"], [1.5], True, 10**30]
    return [v for v in pool if not _safe(check, v)]


def _safe(check: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(check(value))
    except Exception:
        return False


def api_targets() -> list[tuple[str, Callable[[Path], tuple[Any, tuple[Any, ...],
                                                             dict[str, Any]]]]]:
    """``(name, baseline)``: each public function or class with a valid call to mutate."""

    def problem() -> Any:
        from proxcompress.formulations import random_instance

        return random_instance(30, 6, 1, 3, seed=0)

    def mlp() -> Any:
        from proxcompress.training import build_model

        return build_model("mlp", hidden=(8,), classes=10, seed=0)

    def data() -> Any:
        from proxcompress.training.data import synthetic

        return synthetic(32, 16, (1, 28, 28), seed=0)[0]

    def pair() -> Any:
        from proxcompress.proofs import get_pair

        return get_pair("bnn++")

    f = "proxcompress.formulations"
    p = "proxcompress.proofs"
    t = "proxcompress.training"
    k = "proxcompress.kernels"
    c = "proxcompress.causal"

    def imp(module: str, name: str) -> Any:
        import importlib

        return getattr(importlib.import_module(module), name)

    def b(module: str, name: str, *args: Any, **kwargs: Any) -> Any:
        def build(d: Path) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
            values = tuple(a() if callable(a) and getattr(a, "_lazy", False) else a
                           for a in args)
            kw = {key: (v() if callable(v) and getattr(v, "_lazy", False) else v)
                  for key, v in kwargs.items()}
            values = tuple(str(d / v[4:]) if isinstance(v, str) and v.startswith("DIR/") else v
                           for v in values)
            kw = {key: (str(d / v[4:]) if isinstance(v, str) and v.startswith("DIR/") else v)
                  for key, v in kw.items()}
            return imp(module, name), values, kw
        return build

    def lazy(fn: Callable[[], Any]) -> Callable[[], Any]:
        fn._lazy = True  # type: ignore[attr-defined]
        return fn

    P, M, D, PAIR = lazy(problem), lazy(mlp), lazy(data), lazy(pair)
    X = lazy(lambda: imp(p, "x"))
    CFG = lazy(lambda: imp(t, "load_config")(None, [
        "data.name=synthetic", "data.synthetic_samples=32", "model.hidden=[4]"]))
    unit = lazy(lambda: mlp().units()[0])
    units = lazy(lambda: mlp().units())
    arr = np.linspace(-1, 1, 60)
    return [
        ("formulations.solve", b(f, "solve", P, "bnb", 5.0)),
        ("formulations.get_formulation", b(f, "get_formulation", "bnb")),
        ("formulations.random_instance", b(f, "random_instance", 30, 6, 1, 3, 0)),
        ("formulations.solve_support", b(f, "solve_support", P, (0, 1))),
        ("formulations.LayerPruningProblem", b(f, "LayerPruningProblem", np.ones((5, 2)),
                                               np.ones(5), np.arange(2), 1.0, 0.5, 1.0)),
        ("proofs.certify", b(p, "certify", PAIR)),
        ("proofs.derive_spr", b(p, "derive_spr", 50, 0)),
        ("proofs.get_pair", b(p, "get_pair", "bnn++")),
        ("proofs.make_pair", b(p, "make_pair", "x", "sign(x)")),
        ("proofs.synthesize", b(p, "synthesize", "x", "sign(x)")),
        ("proofs.parse_expression", b(p, "parse_expression", "x", "f")),
        ("proofs.register", b(p, "register", "probe-pair", lambda: None)),
        ("proofs.render_text", b(p, "render_text", [])),
        ("proofs.render_markdown", b(p, "render_markdown", [])),
        ("proofs.to_json", b(p, "to_json", [])),
        ("proofs.CheckOptions", b(p, "CheckOptions")),
        ("proofs.Pair", b(p, "Pair", "probe", X, X, X)),
        ("proofs.build_pair", b(p, "build_pair", "bnn++")),
        ("proofs.signswish", b(p, "signswish", X)),
        ("proofs.Facts", b(p, "Facts")),
        ("proofs.ProxLink", b(p, "ProxLink", "l1")),
        ("training.build_model", b(t, "build_model", "mlp", hidden=(8,))),
        ("training.compute_M", b(t, "compute_M", M, units)),
        ("training.deploy", b(t, "deploy", M, "DIR/dep", D, batch=16)),
        ("training.evaluate", b(t, "evaluate", M, D, 16)),
        ("training.export", b(t, "export", M, "DIR/exp")),
        ("training.generate_speech", b(t, "generate_speech", "DIR/sp")),
        ("training.get_quantizer", b(t, "get_quantizer", "bnn++")),
        ("training.hard_quantization", b(t, "hard_quantization", M)),
        ("training.load_checkpoint", b(t, "load_checkpoint", "DIR/none")),
        ("training.load_config", b(t, "load_config", None, [])),
        ("training.load_dataset", b(t, "load_dataset", "synthetic", None, 0, 32)),
        ("training.load_run", b(t, "load_run", "DIR/none")),
        ("training.load_speech", b(t, "load_speech", "DIR/none")),
        ("training.mask_channels", b(t, "mask_channels", M, unit, [True] * 8)),
        ("training.model_summary", b(t, "model_summary", M, (1, 28, 28))),
        ("training.mulfree_model", b(t, "mulfree_model", M, lazy(
            lambda: imp(t, "MulFreeRecipe")("deepshift")))),
        ("training.prune_channels", b(t, "prune_channels", M, unit, [0, 1])),
        ("training.quantize_model", b(t, "quantize_model", M)),
        ("training.read_idx", b(t, "read_idx", "DIR/none")),
        ("training.save_checkpoint", b(t, "save_checkpoint", "DIR/ck", {}, None, {})),
        ("training.select_channels", b(t, "select_channels", M, unit, 4, "magnitude")),
        ("training.set_mu", b(t, "set_mu", M, 1.0)),
        ("training.set_theta", b(t, "set_theta", M, 1.0)),
        ("training.spr_z", b(t, "spr_z", lazy(lambda: __import__("torch").ones(3)),
                             lazy(lambda: __import__("torch").ones(3)), 0.5, 1.0)),
        ("training.threshold_search", b(t, "threshold_search", M, units, lambda m: 50.0)),
        ("training.train", b(t, "train", lazy(lambda: imp(t, "load_config")(None, [
            "epochs=0", "data.name=synthetic", "data.synthetic_samples=32", "progress=false",
            "model.hidden=[4]"])), "DIR/run")),
        ("training.compare_selections", b(t, "compare_selections", M, unit, 4, D, D,
                                          ("magnitude",))),
        ("training.BinaryLinear", b(t, "BinaryLinear", 4, 3)),
        ("training.BinaryConv2d", b(t, "BinaryConv2d", 2, 3, 3)),
        ("training.ShiftLinear", b(t, "ShiftLinear", 4, 3)),
        ("training.ShiftConv2d", b(t, "ShiftConv2d", 2, 3, 3)),
        ("training.DenseShiftLinear", b(t, "DenseShiftLinear", 4, 3)),
        ("training.DenseShiftConv2d", b(t, "DenseShiftConv2d", 2, 3, 3)),
        ("training.S3Linear", b(t, "S3Linear", 4, 3)),
        ("training.S3Conv2d", b(t, "S3Conv2d", 2, 3, 3)),
        ("training.EuclidLinear", b(t, "EuclidLinear", 4, 3)),
        ("training.EuclidConv2d", b(t, "EuclidConv2d", 2, 3, 3)),
        ("training.AdderLinear", b(t, "AdderLinear", 4, 3)),
        ("training.AdderConv2d", b(t, "AdderConv2d", 2, 3, 3)),
        ("training.SpeechResNet", b(t, "SpeechResNet")),
        ("training.FreezingTracker", b(t, "FreezingTracker", 1)),
        ("training.HomotopySchedule", b(t, "HomotopySchedule")),
        ("training.MuSchedule", b(t, "MuSchedule")),
        ("training.MulFreeRecipe", b(t, "MulFreeRecipe", "deepshift")),
        ("training.QuantRecipe", b(t, "QuantRecipe")),
        ("training.SPRRegularizer", b(t, "SPRRegularizer", units, {"fc0": 1.0})),
        ("training.ProxConnectOptimizer", b(t, "ProxConnectOptimizer", lazy(
            lambda: __import__("torch").optim.SGD(mlp().parameters(), lr=0.1)), M)),
        ("training.MulFreeTraining", b(t, "MulFreeTraining", M, lazy(
            lambda: imp(t, "MulFreeRecipe")("deepshift")), 10)),
        ("training.TrainConfig", b(t, "TrainConfig")),
        ("training.ModelSpec", b(t, "ModelSpec")),
        ("training.Family", b(t, "Family", "probe", lambda: ("a",), None, "quant")),
        ("training.register_family", b(t, "register_family", lazy(
            lambda: imp(t, "Family")("probe", lambda: ("a",), None, "quant")))),
        ("training.register_model", b(t, "register_model", "probe-model", "probe:build")),
        ("training.certify_run", b(t, "certify_run", "DIR/none")),
        ("training.run_data", b(t, "run_data", CFG)),
        ("training.split_validation", b(t, "split_validation", D, 0.1, 0)),
        ("training.Trainer", b(t, "Trainer", lazy(lambda: imp(t, "TrainConfig")()), "DIR/run")),
        ("training.MPOLinear", b(t, "MPOLinear", 16, 8, 2, num_modes=2)),
        ("training.MPSLinear", b(t, "MPSLinear", 16, 8, 2, num_modes=2)),
        ("training.TTLSTM", b(t, "TTLSTM", 4, 8)),
        ("training.TTSpec", b(t, "TTSpec", "mpo", 4)),
        ("training.factor_modes", b(t, "factor_modes", 24, 3)),
        ("training.low_rank_linear", b(t, "low_rank_linear", 8, 6, 2)),
        ("training.spec_for_budget", b(t, "spec_for_budget", 8, 8, lazy(
            lambda: imp(t, "TTSpec")("mps", 2)), 400)),
        ("training.tt_svd", b(t, "tt_svd", lazy(lambda: __import__("torch").ones(4, 4, 4)), 2)),
        ("training.load_corpus", b(t, "load_corpus", "DIR/none")),
        ("training.build_corpus", b(t, "build_corpus", "Ruth1:1 Now it came to pass\n"
                                    "Titus1:1 Paul\nObad1:1 The vision\n", 10)),
        ("kernels.pack_signs", b(k, "pack_signs", np.ones((2, 70)))),
        ("kernels.unpack_signs", b(k, "unpack_signs", np.zeros((2, 2), np.uint64), 70)),
        ("kernels.pack_shift", b(k, "pack_shift", np.ones((2, 4), np.int8),
                                 np.zeros((2, 4), np.int8))),
        ("kernels.unpack_shift", b(k, "unpack_shift", np.zeros((2, 2), np.uint8), 4)),
        ("kernels.shift_weights", b(k, "shift_weights", np.ones((2, 4), np.int8),
                                    np.zeros((2, 4), np.int8))),
        ("kernels.binary_matmul", b(k, "binary_matmul", np.zeros((2, 1), np.uint64),
                                    np.zeros((3, 1), np.uint64), 64)),
        ("kernels.shift_matmul", b(k, "shift_matmul", np.ones((2, 4), np.float32),
                                   np.ones((3, 4), np.int8), np.zeros((3, 4), np.int8))),
        ("kernels.euclid_matmul", b(k, "euclid_matmul", np.ones((2, 4), np.float32),
                                    np.ones((3, 4), np.float32))),
        ("kernels.binary_conv2d", b(k, "binary_conv2d", np.ones((1, 2, 5, 5), np.float32),
                                    np.zeros((3, 1), np.uint64), 3)),
        ("kernels.shift_conv2d", b(k, "shift_conv2d", np.ones((1, 2, 5, 5), np.float32),
                                   np.ones((3, 2, 3, 3), np.int8),
                                   np.zeros((3, 2, 3, 3), np.int8))),
        ("kernels.euclid_conv2d", b(k, "euclid_conv2d", np.ones((1, 2, 5, 5), np.float32),
                                    np.ones((3, 2, 3, 3), np.float32))),
        ("kernels.conv_output_size", b(k, "conv_output_size", (5, 5), 3)),
        ("kernels.load", b(k, "load", lazy(lambda: _exported()))),
        ("causal.causal_direction", b(c, "causal_direction", arr, np.sin(3 * arr))),
        ("causal.causal_directions", b(c, "causal_directions", arr, np.sin(3 * arr),
                                      ("hsic", "likelihood"))),
        ("causal.cluster_mechanisms", b(c, "cluster_mechanisms", arr, np.sin(3 * arr))),
        ("causal.hsic", b(c, "hsic", arr, np.sin(3 * arr))),
        ("causal.simulate_mixture", b(c, "simulate_mixture", 40, 1, seed=0)),
        ("causal.HSICGamma", b(c, "HSICGamma")),
        ("causal.HSICPermutation", b(c, "HSICPermutation")),
        ("causal.HSICMaxBandwidth", b(c, "HSICMaxBandwidth")),
        ("causal.SplineRegressor", b(c, "SplineRegressor")),
        ("causal.PolynomialRegressor", b(c, "PolynomialRegressor")),
    ]


def entry_parameters(fn: Any) -> list[tuple[str, int | None, Any, bool]]:
    """``(name, position, annotation, has default)`` of the parameters a caller gives."""
    from proxcompress.checks import _resolve

    target = fn.__init__ if inspect.isclass(fn) else fn
    target = inspect.unwrap(target)
    out = []
    for i, (name, prm) in enumerate(inspect.signature(target).parameters.items()):
        if name in ("self", "cls") or prm.kind in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD) \
                or name.startswith("_"):
            continue
        position = i - (1 if inspect.isclass(fn) else 0) \
            if prm.kind in (prm.POSITIONAL_ONLY, prm.POSITIONAL_OR_KEYWORD) else None
        out.append((name, position, _resolve(prm.annotation, getattr(target, "__globals__", {})),
                    prm.default is not prm.empty))
    return out


def api_cases(fx: Fixtures) -> list[Case]:
    """For each public function and class: every parameter given three values of the wrong
    type (drawn, seeded, from those its annotation refuses), the other arguments valid; plus
    the issue's value-level cases."""
    import importlib

    cases = []
    for name, build in api_targets():
        wing, attr = name.split(".")
        fn = getattr(importlib.import_module(f"proxcompress.{wing}"), attr)
        for pname, position, annotation, _ in entry_parameters(fn):
            values = hostile_values(annotation)
            for value in random.Random(f"{name}.{pname}").sample(values, min(3, len(values))):
                def call(d: Path, build: Any = build, pname: str = pname,
                         position: int | None = position, value: Any = value) -> Any:
                    func, args, kwargs = build(d)
                    if position is not None and position < len(args):
                        args = (*args[:position], value, *args[position + 1:])
                    else:
                        kwargs = {**kwargs, pname: value}
                    return func, args, kwargs

                cases.append(Case("api", f"{name}({pname}={_short(value)})", pname, call=call,
                                  timeout=60))
    value_cases: list[tuple[str, Callable[[Path], Any], str]] = [
        ("solve(P, time_limit=-1)", lambda d: (imp_("formulations", "solve"),
                                               (_problem(),), {"time_limit": -1.0}),
         "time_limit"),
        ("solve(P, time_limit=nan)", lambda d: (imp_("formulations", "solve"), (_problem(),),
                                                {"time_limit": float("nan")}), "time_limit"),
        ("pack_signs(a, axis=1.5)", lambda d: (imp_("kernels", "pack_signs"),
                                               (np.ones((2, 3)),), {"axis": 1.5}), "axis"),
        ("pack_signs(a, axis=5)", lambda d: (imp_("kernels", "pack_signs"), (np.ones((2, 3)),),
                                             {"axis": 5}), "axis"),
        ("pack_signs(a, axis='0')", lambda d: (imp_("kernels", "pack_signs"),
                                               (np.ones((2, 3)),), {"axis": "0"}), "axis"),
        ("unpack_signs(w, k=1.5)", lambda d: (imp_("kernels", "unpack_signs"),
                                              (np.zeros((2, 1), np.uint64),), {"k": 1.5}), "k"),
        ("random_instance(alpha=1.5)", lambda d: (imp_("formulations", "random_instance"),
                                                  (30, 6, 1, 3, 0), {"alpha": 1.5}), "alpha"),
        ("random_instance(n=10**12)", lambda d: (imp_("formulations", "random_instance"),
                                                 (10**12, 6, 1, 3, 0), {}), "n"),
        ("random_instance(seed=-1)", lambda d: (imp_("formulations", "random_instance"),
                                                (30, 6, 1, 3, -1), {}), "seed"),
        ("random_instance(snr=nan)", lambda d: (imp_("formulations", "random_instance"),
                                                (30, 6, 1, 3, 0), {"snr": float("nan")}),
         "snr"),
        ("solve_support(P, (99,))", lambda d: (imp_("formulations", "solve_support"),
                                               (_problem(), (99,)), {}), "support"),
        ("conv_output_size(k=0)", lambda d: (imp_("kernels", "conv_output_size"),
                                             ((5, 5), 0), {}), "kernel_size"),
        ("simulate_mixture(n=-5)", lambda d: (imp_("causal", "simulate_mixture"), (-5, 1),
                                              {"seed": 0}), "n"),
        ("build_model(hidden=(10**9,))", lambda d: (imp_("training", "build_model"), ("mlp",),
                                                    {"hidden": (10**9,)}), "hidden"),
        ("parse_expression('2^64^64*x')", lambda d: (imp_("proofs", "parse_expression"),
                                                     ("2^64^64*x", "f"), {}), "f"),
    ]
    for label, call, fld in value_cases:
        cases.append(Case("api", label, fld, call=call, timeout=60))
    return cases


def _exported() -> str:
    """A fresh export of a tiny model (the baseline of ``kernels.load``), in the system's
    temporary folder (never the caller's working directory: the tests call this too)."""
    from proxcompress.training import build_model, export

    folder = tempfile.mkdtemp(prefix="proxcompress-export-")
    export(build_model("mlp", hidden=(8,), seed=0).eval(), folder)
    return folder


def imp_(wing: str, name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(f"proxcompress.{wing}"), name)


def _problem() -> Any:
    from proxcompress.formulations import random_instance

    return random_instance(30, 6, 1, 3, seed=0)


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, np.ndarray) else f"array({value.dtype})"
    return text if len(text) <= 20 else text[:17] + "..."


# -------------------------------------------------------------------------------- runner
def _snapshot(folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = Path(root) / name
            rel = str(path.relative_to(folder))
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                out[rel] = ("file", info.st_size, hashlib.sha256(path.read_bytes()).hexdigest()
                            if info.st_size < 50 << 20 else info.st_mtime_ns)
            else:
                out[rel] = (stat.S_IFMT(info.st_mode), info.st_mode & 0o777)
    return out


def _child(case: Case, folder: Path, result: Path) -> None:
    """Run one case in the forked child; writes a JSON result."""
    out_fd = os.open(folder.parent / f"{folder.name}.out", os.O_WRONLY | os.O_CREAT, 0o666)
    err_fd = os.open(folder.parent / f"{folder.name}.err", os.O_WRONLY | os.O_CREAT, 0o666)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    os.chdir(folder)
    report = open(result, "w")  # noqa: SIM115 -- opened before privileges are dropped
    if case.user == "nobody" and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    record: dict[str, Any] = {}
    try:
        if case.argv is not None:
            from proxcompress.cli import main

            target = (folder / "target.txt").read_text() if (folder / "target.txt").exists() \
                else None
            argv = [a.replace("{t}", target) if target is not None else a for a in case.argv]
            try:
                record["rc"] = int(main(argv))
            except SystemExit as exc:
                record["rc"] = exc.code if isinstance(exc.code, int) else 2
        else:
            assert case.call is not None
            fn, args, kwargs = case.call(folder)
            try:
                fn(*args, **kwargs)
                record["returned"] = True
            except Exception as exc:
                from proxcompress.errors import InvalidInputError

                if isinstance(exc, InvalidInputError):
                    record["invalid"] = exc.field
                    record["message"] = str(exc)[:300]
                else:
                    raise
    except BaseException:
        record["traceback"] = traceback.format_exc()[-3000:]
    sys.stdout.flush()
    sys.stderr.flush()
    with report:
        json.dump(record, report)


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def run_case(case: Case, workspace: Path, index: int, timeout: float) -> dict[str, Any]:
    """Run one case; returns its verdict (see the module docstring)."""
    folder = workspace / f"case{index:04d}"
    folder.mkdir(parents=True)
    os.chmod(folder, 0o777)
    if case.setup is not None:
        case.setup(folder)
    if case.user == "nobody":
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                path = Path(root) / name
                if not path.is_symlink() and os.stat(path).st_mode & 0o777 not in (0o555, 0):
                    os.chmod(path, 0o777 if path.is_dir() else 0o666)
    before = _snapshot(folder)
    result = workspace / f"case{index:04d}.json"
    ctx = multiprocessing.get_context("fork")
    process = ctx.Process(target=_child, args=(case, folder, result))
    start = time.monotonic()
    process.start()
    limit = case.timeout or timeout
    died = None
    while process.is_alive():
        process.join(0.05)
        if time.monotonic() - start > limit:
            died = f"hung (> {limit:g} s)"
        elif _rss(process.pid or 0) > MEMORY_LIMIT:
            died = f"memory (> {MEMORY_LIMIT >> 30} GiB)"
        if died:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid or 0, signal.SIGKILL)
            process.join()
    seconds = time.monotonic() - start
    out = _read(workspace / f"case{index:04d}.out")
    err = _read(workspace / f"case{index:04d}.err")
    record = json.loads(result.read_text()) if result.exists() and not died else {}
    after = _snapshot(folder)
    verdict = _judge(case, record, died, out, err, before, after, folder)
    verdict.update(klass=case.klass, name=case.name, seconds=round(seconds, 2))
    if case.user == "nobody":
        for root, dirs, _ in os.walk(folder):
            for name in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(Path(root) / name, 0o777)
    shutil.rmtree(folder, ignore_errors=True)
    return verdict


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _fields(case: Case) -> tuple[str, ...]:
    return case.field if isinstance(case.field, tuple) else (case.field,)


def _judge(case: Case, record: dict[str, Any], died: str | None, out: str, err: str,
           before: dict[str, Any], after: dict[str, Any], folder: Path) -> dict[str, Any]:
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if died or "traceback" in record or "Traceback (most recent call last)" in err:
        reason = died or (record.get("traceback") or err)[-600:]
        return {"outcome": "traceback", "detail": reason}
    if case.argv is None:
        if "invalid" in record:
            ok = record["invalid"] in _fields(case) or any(
                record["invalid"].startswith(f + ".") or record["invalid"].startswith(f + "[")
                for f in _fields(case))
            return {"outcome": "refused" if ok else "wrong_field",
                    "detail": record.get("message", "")}
        return {"outcome": "accepted_hostile" if case.expect == "refuse" else "answered",
                "detail": "returned"}
    rc = record.get("rc")
    if case.check is not None:
        problem = case.check(folder, rc if isinstance(rc, int) else -1, out, err)
        if problem:
            return {"outcome": "wrong_answer", "detail": problem}
    if rc == 2:
        message = err.strip().splitlines()[-1] if err.strip() else ""
        named = any(f"error: {f}:" in message or f"argument {f}" in message
                    or (f and f"error: {f}" in message) for f in _fields(case))
        if changed:
            return {"outcome": "partial_output", "detail": f"{changed[:5]} | {message[:200]}"}
        if not named and case.expect in ("refuse", "either"):
            return {"outcome": "wrong_field", "detail": message[:300]}
        return {"outcome": "refused", "detail": message[:200]}
    if case.expect == "refuse":
        return {"outcome": "accepted_hostile", "detail": f"exit {rc}: {err[-300:]}"}
    if rc not in (0, 1, 3):
        return {"outcome": "traceback", "detail": f"exit {rc}: {err[-300:]}"}
    return {"outcome": "answered", "detail": f"exit {rc}"}


def _machine() -> dict[str, Any]:
    try:
        model = next((line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name")), platform.processor())
    except OSError:
        model = platform.processor()
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "uid": os.geteuid()}


BUILDERS = {"files": file_cases, "configs": config_cases, "checkpoints": checkpoint_cases,
            "data": data_cases, "expressions": expression_cases, "outputs": output_cases,
            "flags": flag_cases, "api": api_cases}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(CLASSES),
                        help=f"comma-separated classes of {', '.join(CLASSES)}")
    parser.add_argument("--out", help="also write the JSON report here")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    parser.add_argument("--list", action="store_true", help="list the cases, run nothing")
    parser.add_argument("--match", default="", help="only the cases whose name contains this")
    parser.add_argument("--show", type=int, default=30, help="failures listed in the report")
    args = parser.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(name, "1")  # the children: one thread per library
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = [c for c in only if c not in CLASSES]
    if unknown:
        parser.error(f"--only: unknown class {unknown[0]!r}; accepted: {', '.join(CLASSES)}")
    import warnings

    warnings.filterwarnings("ignore")
    import proxcompress.cli  # noqa: F401  -- imported once, before the children fork
    import proxcompress.formulations  # noqa: F401
    import proxcompress.proofs  # noqa: F401
    import proxcompress.training.trainer  # noqa: F401

    workspace = Path(tempfile.mkdtemp(prefix="proxcompress-probe-"))
    os.chmod(workspace, 0o755)
    start = time.monotonic()
    try:
        fx = Fixtures(workspace / "fixtures")
        os.chmod(workspace / "fixtures", 0o755)
        cases = [case for klass in only for case in BUILDERS[klass](fx)
                 if args.match in case.name]
        if args.list:
            for case in cases:
                print(f"{case.klass:12s} {case.name}")
            return 0
        verdicts = []
        for index, case in enumerate(cases):
            verdicts.append(run_case(case, workspace / "cases", index, args.timeout))
            if sys.stderr.isatty():
                print(f"\r{index + 1}/{len(cases)}", end="", file=sys.stderr)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    report = summarize(verdicts, args.show)
    report["machine"] = _machine()
    report["seconds"] = round(time.monotonic() - start, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if report["total"]["failures"] == 0 else 1


OUTCOMES = ("refused", "answered", "traceback", "wrong_field", "partial_output",
            "accepted_hostile", "wrong_answer")


def summarize(verdicts: list[dict[str, Any]], show: int) -> dict[str, Any]:
    """Counts per class and in total, and the first ``show`` failures."""
    per: dict[str, Counter[str]] = {}
    for v in verdicts:
        per.setdefault(v["klass"], Counter())[v["outcome"]] += 1

    def counts(c: Counter[str]) -> dict[str, int]:
        out = {"tried": sum(c.values())}
        out.update({k: c.get(k, 0) for k in OUTCOMES})
        out["failures"] = out["tried"] - out["refused"] - out["answered"]
        return out

    total: Counter[str] = Counter()
    for c in per.values():
        total.update(c)
    failures = [v for v in verdicts if v["outcome"] not in ("refused", "answered")]
    return {"total": counts(total), "classes": {k: counts(c) for k, c in per.items()},
            "failures": [{k: v[k] for k in ("klass", "name", "outcome", "detail")}
                         for v in failures[:show]]}


if __name__ == "__main__":
    from proxcompress.cli import quiet_on_closed_pipe

    raise SystemExit(quiet_on_closed_pipe(main))
