"""Stage ``mulfree``: the multiplication-free layers (DeepShift-Q, DenseShift, S3, EuclidNet,
AdderNet) trained in a VGG-style CNN next to its full-precision twins, each exported and run on
the kernels with its test predictions compared to torch's."""

from __future__ import annotations

from typing import Any

from proxcompress.reproduce.plots import figure, save, training_curves
from proxcompress.reproduce.stage import Context, Outcome, Plot, Table
from proxcompress.reproduce.stages.training import (
    RUN_COLUMNS,
    RunSpec,
    _merge,
    data_note,
    data_section,
    run_all,
    run_figures,
    run_row,
)

#: the distance layers' learning rate (docs/results.md: -1/2 ||x - w||^2 separates the output
#: channels only once ||w|| is of the order of the input patches' norm)
DISTANCE_LR = 0.01

#: key -> (label, quant.weights, mulfree section, learning rate, full-precision reference key)
METHODS: dict[str, tuple[str, str, dict[str, Any], float, str]] = {
    "fp": ("full precision, Adam lr 1e-3", "none", {}, 0.001, "fp"),
    "fp-lr1e-2": ("full precision, Adam lr 1e-2 (the distance layers' recipe)", "none", {},
                  DISTANCE_LR, "fp-lr1e-2"),
    "deepshift": ("DeepShift-Q, power-of-two 3-bit with zero", "deepshift", {"bits": 3},
                  0.001, "fp"),
    "denseshift": ("DenseShift, 3-bit zero-free", "denseshift", {"bits": 3}, 0.001, "fp"),
    "s3": ("S3, 3-bit", "s3", {"bits": 3}, 0.001, "fp"),
    "euclid": ("EuclidNet (homotopy 0 -> 1 over the first half)", "euclid", {}, DISTANCE_LR,
               "fp-lr1e-2"),
    "adder": ("AdderNet L1 (homotopy 0 -> 1 over the first half)", "adder", {}, DISTANCE_LR,
              "fp-lr1e-2"),
}


def run(ctx: Context) -> Outcome:
    """Train every method of :data:`METHODS` named in the ``methods`` knob, deploy each
    multiplication-free one on the kernels."""
    b = ctx.budget
    wanted = [m.strip() for m in b["methods"].split(",") if m.strip()]
    base = {
        "seed": b["seed"], "epochs": b["epochs"], "data": data_section(ctx),
        "model": {"name": "vgg", "width": b["width"], "stages": [1, 1, 1],
                  "activation": "relu"},
        "quant": {"keep_first": True, "keep_last": True},
        "optim": {"name": "adam", "schedule": "cosine", "batch_size": 128},
    }
    needed = list(dict.fromkeys([METHODS[m][4] for m in wanted] + wanted))
    specs = []
    for key in needed:
        _, weights, section, lr, _ = METHODS[key]
        specs.append(RunSpec(key, _merge(base, {"quant": {"weights": weights},
                                                "mulfree": section, "optim": {"lr": lr}}),
                             deploy=weights != "none"))
    ctx.progress.total(len(specs))
    done = run_all(ctx, specs)
    runs = {key: done[key].folder for key in needed}
    figures = {key: run_figures(done[key].summary, done[key].deployed) for key in needed}
    gaps = {key: figures[METHODS[key][4]]["test_accuracy"] - figures[key]["test_accuracy"]
            for key in needed if METHODS[key][1] != "none"}
    table = Table(
        f"VGG-style CNN (width {b['width']}), {b['epochs']} epoch(s), Adam cosine, batch 128",
        [*RUN_COLUMNS[:2], "gap to its full-precision twin (points)", *RUN_COLUMNS[2:]],
        [_with_gap(run_row(METHODS[k][0], figures[k]), gaps.get(k)) for k in needed],
        note=data_note(figures[needed[0]]) + " Each multiplication-free network is compared "
        "with the full-precision network trained at its own learning rate.")
    curves = training_curves({METHODS[k][0].split(",")[0].split(" (")[0]
                              + (" lr 1e-2" if k == "fp-lr1e-2" else ""): runs[k]
                              for k in needed}, ctx.folder / "curves.png",
                             "Multiplication-free CNNs and their full-precision twins")
    return Outcome({"methods": figures, "gap_to_fp": gaps, "epochs": b["epochs"]}, [table], [
        Plot(curves.name, "Training loss at every step and validation accuracy per epoch of every "
             "method."),
        _accuracy_plot(ctx, needed, figures)])


def _with_gap(row: list[Any], gap: float | None) -> list[Any]:
    return [*row[:2], gap, *row[2:]]


def _accuracy_plot(ctx: Context, keys: list[str], figures: dict[str, Any]) -> Plot:
    fig, (ax,) = figure(1, 1, width=7.0, height=3.4)
    values = [figures[k]["test_accuracy"] for k in keys]
    bars = ax.barh(range(len(keys)), values,
                   color=["grey" if k.startswith("fp") else "C0" for k in keys])
    ax.bar_label(bars, [f"{v:.2f}" for v in values], fontsize=8, padding=2)
    ax.set_yticks(range(len(keys)), keys)
    ax.invert_yaxis()
    low = min(values)
    ax.set_xlim(max(0.0, low - 10), min(100.0, max(values) + 4))
    ax.set_xlabel("test accuracy (%)")
    ax.set_title("test accuracy of each method (grey: full precision)")
    ax.grid(alpha=0.3, axis="x")
    return Plot(save(fig, ctx.folder / "accuracy.png").name,
                "Final test accuracy of each network, the full-precision twins in grey.")
