"""Data: Fashion-MNIST from IDX files, a small embedded subset, and synthetic data for tests.

**IDX** (LeCun's MNIST format; Fashion-MNIST, Xiao, Rasul, Vollgraf, arXiv:1708.07747, uses it
too): a big-endian header ``0x00 0x00 <type> <ndim>`` then ``ndim`` uint32 sizes, then the raw
values. Images are ``0x00000803`` (uint8, 3 dims ``N x 28 x 28``), labels ``0x00000801``
(uint8, 1 dim ``N``). :func:`read_idx` checks the magic number, the dimension count, and that
the payload has exactly ``prod(sizes)`` bytes; files may be gzip-compressed (``.gz``). IDX is
plain bytes: nothing is unpickled.

Debian's ``dataset-fashion-mnist`` package installs the four files under
``/usr/share/datasets/fashion-mnist/`` (:data:`DEFAULT_ROOT`). The embedded default
(``training/data/fashion_mnist_small.npz``, loaded with ``allow_pickle=False``) holds a class-
balanced subset (4000 train, 1000 test images) of Fashion-MNIST, (c) Zalando SE, MIT license.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from proxcompress.errors import InvalidInputError
from proxcompress.training.config import DEFAULT_STANDARDIZE

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
EMBEDDED = Path(__file__).with_name("data") / "fashion_mnist_small.npz"

#: Fashion-MNIST per-pixel statistics of the training set (scaled to [0, 1])
FMNIST_MEAN = 0.2860
FMNIST_STD = 0.3530
#: the inputs :func:`from_arrays` makes of 8-bit pixels ``p``: ``scale * p + offset`` up to
#: float32 rounding (``(scale, offset, levels)``, as ``export(..., input_grid=)`` takes it)
FMNIST_GRID = (1.0 / (255.0 * FMNIST_STD), -FMNIST_MEAN / FMNIST_STD, 256)

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_TYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"),
                          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass
class Dataset:
    """Images ``x`` (float32, ``N x C x H x W``, normalized), labels ``y`` (int64, ``N``) and,
    where samples come in groups that must not straddle a split (the speakers of the spoken
    commands), ``groups`` (int64, ``N``)."""

    x: Tensor
    y: Tensor
    classes: int = 10
    name: str = ""
    groups: Tensor | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.x.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, n: int | None, seed: int = 0) -> Dataset:
        """The first ``n`` samples of a seeded permutation (all when ``n`` is ``None``)."""
        if n is None or n >= len(self):
            return self
        g = torch.Generator().manual_seed(seed)
        return self.take(torch.randperm(len(self), generator=g)[:n])

    def relabel(self, labels: list[int]) -> Dataset:
        """Only the samples whose label is in ``labels``, relabelled ``labels[i] -> i``.

        Raises:
            InvalidInputError (field ``data.classes``): a label the data set does not have.
        """
        bad = [c for c in labels if not 0 <= c < self.classes]
        if bad:
            raise InvalidInputError("data.classes", f"{bad} are not labels of {self.name} "
                                    f"(0..{self.classes - 1})")
        mapping = torch.full((self.classes,), -1, dtype=torch.int64)
        mapping[torch.tensor(labels)] = torch.arange(len(labels))
        idx = torch.nonzero(mapping[self.y] >= 0).flatten()
        out = self.take(idx)
        return Dataset(out.x, mapping[out.y], len(labels), f"{self.name} classes {labels}",
                       out.groups)

    def take(self, idx: Tensor, name: str | None = None) -> Dataset:
        """The samples ``idx`` (in that order), groups included."""
        groups = None if self.groups is None else self.groups[idx]
        return Dataset(self.x[idx], self.y[idx], self.classes,
                       self.name if name is None else name, groups)


def split_validation(data: Dataset, fraction: float, seed: int = 0
                     ) -> tuple[Dataset, Dataset | None]:
    """``(train, validation)``: a seeded, stratified validation split carved out of ``data``.

    Without groups, each class gives ``round(fraction * n_c)`` of its ``n_c`` samples (chosen
    by a permutation seeded with ``seed``), so the class proportions of both parts are those of
    ``data`` up to rounding. With groups (speakers), whole groups go: ``round(fraction * G)``
    of the ``G`` groups, at least one, chosen by the same seeded permutation, so no group is in
    both parts. ``fraction = 0`` returns ``(data, None)``. Both parts keep ``data``'s order.

    Raises:
        InvalidInputError (field ``data.val_fraction``): a fraction outside ``[0, 1)``, or a
            split that leaves a part empty (too few samples or groups).
    """
    if not 0 <= fraction < 1:
        raise InvalidInputError("data.val_fraction", f"= {fraction!r}; accepted: [0, 1)")
    if fraction == 0:
        return data, None
    g = torch.Generator().manual_seed(seed)
    if data.groups is not None:
        ids = torch.unique(data.groups)
        count = max(1, round(fraction * len(ids)))
        if count >= len(ids):
            raise InvalidInputError("data.val_fraction", f"= {fraction:g} takes {count} of the "
                                    f"{len(ids)} training groups (speakers); at least one must "
                                    "stay for training")
        chosen = ids[torch.randperm(len(ids), generator=g)[:count]]
        val = torch.isin(data.groups, chosen)
    else:
        val = torch.zeros(len(data), dtype=torch.bool)
        for c in torch.unique(data.y):
            members = torch.nonzero(data.y == c).flatten()
            pick = members[torch.randperm(len(members), generator=g)]
            val[pick[: round(fraction * len(members))]] = True
    if not 0 < int(val.sum()) < len(data):
        raise InvalidInputError("data.val_fraction", f"= {fraction:g} of {len(data)} samples "
                                "leaves the training or the validation part empty")
    keep = torch.nonzero(~val).flatten()
    held = torch.nonzero(val).flatten()
    return data.take(keep), data.take(held, f"{data.name} (validation)")


def read_idx(path: str | os.PathLike[str], expected_magic: int | None = None) -> NDArray:
    """Read one IDX file (optionally ``.gz``) into a NumPy array, validating it.

    Raises:
        FileNotFoundError: the file does not exist.
        InvalidInputError (field ``data``): bad magic number, truncated or over-long payload,
            unreadable gzip stream.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data: IDX file {str(p)!r} does not exist")
    try:
        raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidInputError("data", f"{str(p)!r} is not a readable gzip file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise InvalidInputError("data", f"{str(p)!r} is not an IDX file (bad magic number "
                                f"{raw[:4].hex() or 'empty'})")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise InvalidInputError("data", f"{str(p)!r} has magic 0x{magic:08x}, expected "
                                f"0x{expected_magic:08x}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise InvalidInputError("data", f"{str(p)!r} has a truncated IDX header")
    sizes = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_TYPES[raw[2]])
    expected = int(np.prod(sizes)) * dtype.itemsize
    if len(raw) - header != expected:
        raise InvalidInputError("data", f"{str(p)!r} holds {len(raw) - header} payload bytes, "
                                f"expected {expected} for sizes {sizes} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(sizes).copy()


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).exists():
            return root / name
    raise FileNotFoundError(
        f"data.root: {stem}[.gz] not found in {str(root)!r}; install Debian's "
        "'dataset-fashion-mnist' package (apt-get install dataset-fashion-mnist) or set data.root"
    )


def _normalize(images: NDArray) -> Tensor:
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    return ((x - FMNIST_MEAN) / FMNIST_STD).unsqueeze(1)


def input_grid(ds: Dataset) -> tuple[float, float, int] | None:
    """:data:`FMNIST_GRID` for a dataset :func:`from_arrays` normalised (Fashion-MNIST, the
    embedded subset), else ``None``: what ``export(..., input_grid=)`` records for a run's
    model (the reader checks every batch against it anyway)."""
    return FMNIST_GRID if ds.name.split("/")[0] in ("fashion-mnist", "embedded") else None


def from_arrays(images: NDArray, labels: NDArray, name: str) -> Dataset:
    """Validate uint8 ``N x 28 x 28`` images and labels in ``0..9`` and normalize (another image
    size is refused here, before any training)."""
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise InvalidInputError("data", f"{name}: images {images.shape} and labels "
                                f"{labels.shape} do not match (N x H x W and N)")
    if images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise InvalidInputError("data", f"{name}: images are {images.dtype} "
                                f"{images.shape[1]} x {images.shape[2]}; Fashion-MNIST images "
                                "are uint8 28 x 28")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise InvalidInputError("data", f"{name}: labels must lie in 0..9")
    return Dataset(_normalize(images), torch.from_numpy(labels.astype(np.int64)), 10, name)


def load_fashion_mnist(root: str | os.PathLike[str] | None = None) -> tuple[Dataset, Dataset]:
    """The full Fashion-MNIST ``(train, test)`` (60000 / 10000) from IDX files under ``root``
    (default :data:`DEFAULT_ROOT`)."""
    base = Path(root) if root is not None else DEFAULT_ROOT
    out = []
    for split in ("train", "test"):
        img_stem, lab_stem = _FILES[split]
        images = read_idx(_find(base, img_stem), 0x00000803)
        labels = read_idx(_find(base, lab_stem), 0x00000801)
        out.append(from_arrays(images, labels, f"fashion-mnist/{split}"))
    return out[0], out[1]


def load_embedded() -> tuple[Dataset, Dataset]:
    """The embedded Fashion-MNIST subset ``(train, test)`` (4000 / 1000), no install needed."""
    from proxcompress.readers import read_npz

    arrays = read_npz("data", EMBEDDED)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise InvalidInputError("data", f"the embedded subset lacks {missing[0]!r}")
    return (from_arrays(arrays["x_train"], arrays["y_train"], "embedded/train"),
            from_arrays(arrays["x_test"], arrays["y_test"], "embedded/test"))


def synthetic(
    n_train: int = 512,
    n_test: int = 256,
    shape: tuple[int, int, int] = (1, 28, 28),
    classes: int = 10,
    seed: int = 0,
    noise: float = 1.0,
) -> tuple[Dataset, Dataset]:
    """A learnable synthetic task: class ``k`` is a fixed random template plus Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn((classes, *shape), generator=g)
    out = []
    for n, split in ((n_train, "train"), (n_test, "test")):
        y = torch.randint(0, classes, (n,), generator=g)
        x = templates[y] + noise * torch.randn((n, *shape), generator=g)
        out.append(Dataset(x.float(), y, classes, f"synthetic/{split}"))
    return out[0], out[1]


def make_embedded(root: str | os.PathLike[str] | None, out: str | os.PathLike[str],
                  n_train: int = 4000, n_test: int = 1000, seed: int = 0) -> Path:
    """Write the embedded subset (class-balanced, seeded) from the IDX files (maintainers)."""
    from proxcompress.atomic import write_atomic

    base = Path(root) if root is not None else DEFAULT_ROOT
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        img_stem, lab_stem = _FILES[split]
        images = read_idx(_find(base, img_stem), 0x00000803)
        labels = read_idx(_find(base, lab_stem), 0x00000801)
        idx = np.concatenate([rng.choice(np.flatnonzero(labels == k), n // 10, replace=False)
                              for k in range(10)])
        rng.shuffle(idx)
        arrays[f"x_{split}"] = images[idx]
        arrays[f"y_{split}"] = labels[idx]

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    return write_atomic(out, write)


def load_dataset(
    name: str,
    root: str | None = None,
    seed: int = 0,
    synthetic_samples: int = 512,
    image_size: int = 28,
    in_channels: int = 1,
    standardize: str = DEFAULT_STANDARDIZE,
) -> tuple[Dataset, Dataset]:
    """``fashion-mnist`` (IDX files), ``embedded``, ``speech`` (a
    :func:`~proxcompress.training.speech.generate_speech` folder ``root``, as log-mel features)
    or ``synthetic`` as ``(train, test)``.

    Fashion-MNIST images are 1 x 28 x 28; ``image_size = 32`` zero-pads them by 2 pixels
    (and ``in_channels = 3`` repeats the grey channel) for 32x32 models.
    """
    if name == "speech":
        from proxcompress.training.speech import load_speech

        if not root:
            raise InvalidInputError("data.root", "is required for the speech data (a folder "
                                    "made by 'proxcompress data speech --out DIR')")
        return load_speech(root, standardize=standardize)
    if name == "synthetic":
        return synthetic(synthetic_samples, max(synthetic_samples // 2, 16),
                         (in_channels, image_size, image_size), seed=seed)
    if name == "fashion-mnist":
        train, test = load_fashion_mnist(root)
    elif name == "embedded":
        train, test = load_embedded()
    else:
        raise InvalidInputError("data.name", f"= {name!r}; accepted: fashion-mnist, embedded, "
                                "speech, synthetic")
    if image_size not in (28, 32):
        raise InvalidInputError("data.image_size", f"= {image_size}; accepted: 28, 32")
    for ds in (train, test):
        if image_size == 32:
            ds.x = torch.nn.functional.pad(ds.x, (2, 2, 2, 2), value=-FMNIST_MEAN / FMNIST_STD)
        if in_channels == 3:
            ds.x = ds.x.repeat(1, 3, 1, 1)
        elif in_channels != 1:
            raise InvalidInputError("data.in_channels", f"= {in_channels}; accepted: 1, 3")
    return train, test


def read_manifest(root: str | os.PathLike[str], fmt: str, command: str,
                  field: str = "data.root", files: Sequence[str] = ()) -> dict[str, Any]:
    """The ``manifest.json`` of a generated data folder ``root``, checked to be a JSON object of
    format ``fmt`` whose ``sha256`` object gives a hex digest for each of ``files``; ``command``
    (e.g. ``proxcompress data kjv``) is how to make one. Errors name ``field``. The data set's
    own content checks are its loader's (:func:`proxcompress.training.speech.speech_manifest`).

    Raises:
        MissingInputError (also a ``FileNotFoundError``): no manifest in ``root``.
        InvalidInputError: not a JSON object (or over the size limit), another format, or a
            missing digest.
    """
    from proxcompress.errors import MissingInputError
    from proxcompress.readers import read_json

    base = Path(root)
    path = base / "manifest.json"
    if not path.is_file():
        raise MissingInputError(field, f"no manifest.json in {str(base)!r}; make it with "
                                f"'{command} --out DIR'")
    manifest = read_json(field, path)

    def bad(what: str) -> InvalidInputError:
        return InvalidInputError(field, f"{str(path)!r} is not a valid {fmt} manifest: {what}")

    if not isinstance(manifest, dict):
        raise bad(f"a JSON {type(manifest).__name__}, not an object")
    if manifest.get("format") != fmt:
        raise bad(f"format {str(manifest.get('format'))[:40]!r}")
    digests = manifest.get("sha256")
    for name in files:
        if (not isinstance(digests, dict) or not isinstance(digests.get(name), str)
                or len(digests[name]) != 64):
            raise bad(f"sha256 must give the SHA-256 of {name}")
    return manifest


def input_spec(name: str, image_size: int = 28, in_channels: int = 1,
               root: str | None = None, classes: list[int] | None = None
               ) -> tuple[tuple[int, int, int], int]:
    """``(shape of one input, classes)`` of the data set ``name`` without loading it (for the
    speech data, the intents of the manifest in ``root``; ``classes``: a kept subset)."""
    if classes is not None:
        return input_spec(name, image_size, in_channels, root)[0], len(classes)
    if name == "speech":
        from proxcompress.training.speech import feature_shape, intent_count

        return feature_shape(), intent_count(root)
    return (in_channels, image_size, image_size), 10


__all__ = [
    "DEFAULT_ROOT",
    "EMBEDDED",
    "Dataset",
    "from_arrays",
    "input_spec",
    "load_dataset",
    "load_embedded",
    "load_fashion_mnist",
    "make_embedded",
    "read_idx",
    "read_manifest",
    "split_validation",
    "synthetic",
]
