"""Plots of the report: matplotlib (Agg) figures written as PNG files, atomically.

Every plot shows the run itself: training curves are the loss at every step (from the run's
``steps.jsonl``) with a moving average, not one point per epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

DPI = 100


def figure(columns: int = 1, rows: int = 1, width: float = 6.0, height: float = 3.6) -> Any:
    """``(fig, axes)`` with the Agg backend; ``axes`` a flat list."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows),
                             squeeze=False)
    return fig, [ax for row in axes for ax in row]


def save(fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` (PNG, atomically) and close it."""
    import matplotlib.pyplot as plt

    from proxcompress.atomic import write_atomic

    fig.tight_layout()
    try:
        write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    finally:
        plt.close(fig)
    return path


def training_curves(runs: Mapping[str, Path], path: Path, title: str,
                    accuracy_key: str = "val_accuracy") -> Path:
    """Two panels for one or more training runs (label -> run folder): the training loss at
    every step (light) with its moving average over a tenth of an epoch, and the validation
    accuracy at each epoch's end (``accuracy_key`` of ``metrics.jsonl``; the hard-quantized one
    for binary runs; the test set is evaluated once, at the end of a run). SPR phase changes
    are marked."""
    from proxcompress.training.trainer import STEPS, read_log, smooth

    fig, (loss_ax, acc_ax) = figure(2, 1, width=6.2, height=3.8)
    colours = [f"C{i}" for i in range(10)]
    for i, (label, run) in enumerate(runs.items()):
        colour = colours[i % len(colours)]
        steps = read_log(run / STEPS)
        metrics = read_log(run / "metrics.jsonl")
        if steps:
            x = [s["epoch"] for s in steps]
            losses = [s["loss"] for s in steps]
            per_epoch = max(1, round(len(steps) / max(steps[-1]["epoch"], 1e-9)))
            loss_ax.plot(x, losses, color=colour, alpha=0.18, lw=0.5)
            loss_ax.plot(x, smooth(losses, max(1, per_epoch // 10)), color=colour, lw=1.3,
                         label=label)
            for prev, step in zip(steps, steps[1:], strict=False):
                if step["phase"] != prev["phase"]:
                    for ax in (loss_ax, acc_ax):
                        ax.axvline(prev["epoch"], color=colour, ls=":", lw=0.8)
                    loss_ax.text(prev["epoch"], 1.0, f" {step['phase']}", fontsize=7,
                                 color=colour, va="top",
                                 transform=loss_ax.get_xaxis_transform())
        if metrics:
            values = [m.get(accuracy_key, m.get("val_accuracy")) for m in metrics]
            if any(v is not None for v in values):
                acc_ax.plot([m["epoch"] for m in metrics], values, "o-", color=colour,
                            label=label)
    loss_ax.set_xlabel("epoch (each step plotted)")
    loss_ax.set_ylabel("training cross-entropy")
    loss_ax.set_title("training loss per step (light) and its 0.1-epoch moving average")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("validation accuracy (%)")
    acc_ax.set_title("validation accuracy at each epoch's end")
    for ax in (loss_ax, acc_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return save(fig, path)


__all__ = ["DPI", "figure", "save", "training_curves"]
