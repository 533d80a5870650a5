"""Scoring direction decisions against the truth: the 95% Wilson interval of a share, and the
accuracies of one method over a set of pairs (all pairs, pairs answered, weighted, split by the
weak-evidence note). Used by ``benchmarks/causal.py`` and the causal stages of
``proxcompress reproduce``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: the two answers; anything else (``undecided``, ``refused``) counts as not answered
DIRECTIONS = ("x->y", "y->x")


def wilson(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (unrounded; ``z`` the normal
    quantile)."""
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    spread = (p * (1 - p) / trials + z * z / (4 * trials * trials)) ** 0.5
    half = z * spread / (1 + z * z / trials)
    return (centre - half, centre + half)


def score(records: Sequence[Mapping[str, Any]], method: str,
          weights: Mapping[int, float] | None) -> dict[str, Any]:
    """Accuracy of ``method`` over ``records`` (each ``{"pair", "truth", method: {"direction",
    optionally "weak"}}``): over all pairs (undecided and refused count as wrong), over the
    pairs answered, and weighted by ``weights`` (pair -> weight, over all pairs) where given;
    with the weak-evidence notes of this package's test, the pairs and right answers with and
    without the note."""
    right = [r for r in records if r[method]["direction"] == r["truth"]]
    decided = [r for r in records if r[method]["direction"] in DIRECTIONS]
    out: dict[str, Any] = {
        "pairs": len(records), "correct": len(right), "decided": len(decided),
        "accuracy": round(len(right) / len(records), 4),
        "wilson95": [round(b, 4) for b in wilson(len(right), len(records))],
        "accuracy_decided": round(len(right) / len(decided), 4) if decided else None,
    }
    if weights is not None:
        total = sum(weights[r["pair"]] for r in records)
        out["weighted_accuracy"] = round(sum(weights[r["pair"]] for r in right) / total, 4)
    if all("weak" in r[method] for r in records):  # this package's evidence notes
        for flag, key in ((True, "weak_evidence"), (False, "strong_evidence")):
            group = [r for r in records if r[method]["weak"] is flag]
            out[key] = {"pairs": len(group),
                        "correct": sum(r[method]["direction"] == r["truth"] for r in group)}
    return out


__all__ = ["DIRECTIONS", "score", "wilson"]
