"""Synthetic stand-ins for cdt's wheel: a zip of the same layout (no network, no real data)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from proxcompress.causal import tuebingen


def fake_wheel(path: Path, columns: list[tuple[np.ndarray, np.ndarray]],
               labels: list[str] | None = None) -> Path:
    """A zip laid out like cdt's wheel: one row per pair, each cell a whole variable as
    space-separated numbers."""
    rows = ["SampleID,A,B"] + [f"pair{i},{' '.join(map(repr, a.tolist()))},"
                               f"{' '.join(map(repr, b.tolist()))}"
                               for i, (a, b) in enumerate(columns, start=1)]
    labels = labels or ["1.0"] * len(columns)
    targets = ["SampleID,Target"] + [f"pair{i},{t}" for i, t in enumerate(labels, start=1)]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(tuebingen.PAIRS_CSV, "\n".join(rows) + "\n")
        archive.writestr(tuebingen.TARGETS_CSV, "\n".join(targets) + "\n")
    return path


def synthetic(n_pairs: int = 99, shared: bool = False, points: int = 40
              ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs with a known direction (b = a^2 + noise, ``points`` + i samples for pair i); with
    ``shared`` the pairs of each of cdt's shared-column groups share their cause column, as the
    real ones do, so that cdt's numbering is confirmed."""
    rng = np.random.default_rng(0)
    first = {i: group[0] for group in tuebingen.SHARED_COLUMN_GROUPS for i in group}
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(1, n_pairs + 1):
        owner = first.get(i, i) if shared else i
        a = out[owner - 1][0] if owner < i else np.round(rng.uniform(0, 10, points + i), 3)
        out.append((a, np.round(a**2 + rng.standard_normal(a.size), 3)))
    return out
