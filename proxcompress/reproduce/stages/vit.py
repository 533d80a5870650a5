"""Stage ``vit``: the binary vision transformer (BinaryViT, methods.md section 2) next to the
full-precision ViT and the binary DeiT-style model it improves on, trained by the suite's
trainer (``model.name: vit``, docs/training.md "Vision transformers"); BinaryViT certified as
trained (``verify --run``), exported and run on the token kernels (``kernels/transformer.py``)
with every test prediction compared to torch's.

The three runs are the first, second and sixth rungs of the ViT table of docs/results.md
(:data:`proxcompress.reproduce.tables.core.VIT`'s rows ``fp``, ``deit``, ``binaryvit``, whose
ViT switches they take), at the stage's budget.
"""

from __future__ import annotations

from typing import Any

from proxcompress.reproduce.plots import figure, save, training_curves
from proxcompress.reproduce.stage import Context, Outcome, Plot, Table
from proxcompress.reproduce.stages.training import (
    RUN_COLUMNS,
    RunSpec,
    certify_runs,
    data_note,
    data_section,
    run_all,
    run_figures,
    run_row,
)
from proxcompress.reproduce.tables.core import VIT

#: BNN's pair (sign, 1{|x| <= 1}) on weights and activations: BinaryViT's straight-through
#: estimator (methods.md section 2), the binary rows of docs/results.md
BINARY_QUANT = {"weights": "bnn", "activations": "bnn", "keep_first": True, "keep_last": True}
#: the runs: key -> (label, ViT switches, quant section, deployed); BinaryViT first, so that it
#: (the longest run) starts at once when two run side by side
_SWITCHES = {key: switches for key, _, switches, *_ in VIT}
RUNS: dict[str, tuple[str, dict[str, Any], dict[str, Any], bool]] = {
    "binaryvit": ("BinaryViT (avg pooling, multi-pooling, affine, pyramid)",
                  dict(_SWITCHES["binaryvit"]), BINARY_QUANT, True),
    "fp": ("ViT, full precision", {"binary": False, **_SWITCHES["fp"]},
           {"weights": "none", "keep_first": True, "keep_last": True}, False),
    "deit": ("binary DeiT-style (ReActNet blocks, class token)", dict(_SWITCHES["deit"]),
             BINARY_QUANT, False),
}


def _config(ctx: Context, switches: dict[str, Any], quant: dict[str, Any]) -> dict[str, Any]:
    b = ctx.budget
    return {
        "seed": b["seed"], "epochs": b["epochs"], "data": data_section(ctx),
        "model": {"name": "vit", "vit": {
            "patch": 4, "stages": [{"dim": b["dim"], "depth": b["depth"], "heads": b["heads"],
                                    "mlp_ratio": 2, "sr": 1}], **switches}},
        "quant": dict(quant),
        "optim": {"name": "adam", "lr": b["lr"], "schedule": "cosine", "batch_size": 128},
    }


def macs(summary: dict[str, Any]) -> dict[str, int]:
    """MACs per sample of a run (``model_summary``'s counts): ``binary`` (sign x sign),
    ``binary_weight`` (sign weights x float inputs), ``float`` (the rest)."""
    return {"binary": int(summary["binary_macs"]),
            "binary_weight": int(summary["binary_weight_macs"]),
            "float": int(summary["float_macs"])}


def operations(m: dict[str, int]) -> float:
    """OPs per image: float and binary-weight MACs plus binary MACs / 64 (Bi-Real Net's count:
    a 64-bit XNOR-popcount word does 64 sign x sign MACs)."""
    return m["float"] + m["binary_weight"] + m["binary"] / 64


def run(ctx: Context) -> Outcome:
    """Train the three ViTs (``jobs`` at a time), certify BinaryViT's quantizer pairs with its
    own parameters, export it and classify the test set on the kernels and with torch."""
    specs = [RunSpec(key, _config(ctx, switches, quant), deploy=deployed)
             for key, (_, switches, quant, deployed) in RUNS.items()]
    ctx.progress.total(len(specs))
    runs = run_all(ctx, specs)
    certified, cert_table = certify_runs(ctx, {"binaryvit": runs["binaryvit"].folder})
    figures: dict[str, Any] = {}
    for key, r in runs.items():
        figures[key] = {**run_figures(r.summary, r.deployed), "macs": macs(r.summary),
                        "operations": operations(macs(r.summary)),
                        "binary_parameters": int(r.summary["binary_parameters"])}
    figures["certified"] = certified
    fp, deit, bvit = (figures[k]["test_accuracy"] for k in ("fp", "deit", "binaryvit"))
    figures["gap_to_fp"] = fp - bvit
    figures["gap_closed"] = (bvit - deit) / (fp - deit) if fp > deit else None
    b = ctx.budget
    runs_table = Table(
        f"ViTs on 28 x 28 images: patch 4, {b['depth']} blocks of {b['dim']} channels, "
        f"{b['heads']} heads, FFN 2x; {b['epochs']} epochs, Adam lr {b['lr']:g} cosine, batch "
        "128",
        RUN_COLUMNS, [run_row(label, figures[key]) for key, (label, *_) in RUNS.items()],
        note=data_note(figures["fp"]) + " Binary runs: weights and activations with BNN's "
        "pair (sign, 1{|x| <= 1}); the stem conv and the classifier stay full precision. Only "
        "BinaryViT is exported; with binary activations a pre-activation within float rounding "
        "of zero can flip between torch and the kernels, so a few samples' logits differ by "
        "a step (share of samples within 1e-4: "
        f"{_close(figures['binaryvit'])}). The export holds the weights as packed sign bits; "
        "at this width its float parts (position embeddings, norms, shifts, RPReLU) and its "
        "manifest outweigh them.")
    size_rows = []
    for key, (label, *_) in RUNS.items():
        f = figures[key]
        m = f["macs"]
        total = sum(m.values())
        size_rows.append([label, f["test_accuracy"], f["test_accuracy"] - fp, f["parameters"],
                          f["binary_parameters"], m["binary"], m["binary_weight"], m["float"],
                          100 * m["binary"] / total if total else None, operations(m)])
    size_table = Table(
        "Accuracy against full precision, parameters and MACs per image",
        ["model", "test accuracy (%)", "vs full precision (points)", "parameters",
         "binary parameters", "binary MACs (sign x sign)", "binary-weight MACs",
         "float MACs", "binary share of MACs (%)", "OPs (float + binary / 64)"], size_rows,
        note="MACs per image as model_summary counts them: a token linear's MACs per token, "
        "and the attention products Q K^T and P V (binary when both operands are binarized). "
        "OPs: float and binary-weight MACs plus binary MACs / 64 (one 64-bit XNOR-popcount "
        "word does 64; Bi-Real Net's count, which BinaryViT's paper reports). "
        "Parameters count latent weights once. BinaryViT's pyramid works on 14 x 14 tokens in "
        "its first stage (half the patch), hence more MACs than the DeiT-style model. "
        f"BinaryViT closes {_closed(figures['gap_closed'])} of the gap between the binary "
        "DeiT-style model and full precision.")
    curves = training_curves({RUNS[k][0].split(" (")[0]: runs[k].folder for k in RUNS},
                             ctx.folder / "curves.png",
                             "ViTs: full precision, binary DeiT-style, BinaryViT",
                             accuracy_key="val_accuracy_hard")
    return Outcome(figures, [runs_table, size_table, cert_table], [
        Plot(curves.name, "Training loss at every step and validation accuracy per epoch "
             "(binary models with every binary layer at its hard limit, as deployed)."),
        _macs_plot(ctx, figures)])


def _close(f: dict[str, Any]) -> str:
    d = f.get("deploy") or {}
    return f"{100 * d['close_logits']:.2f}%" if "close_logits" in d else "not measured"


def _closed(value: float | None) -> str:
    return "none" if value is None else f"{100 * value:.0f}%"


def _macs_plot(ctx: Context, figures: dict[str, Any]) -> Plot:
    fig, (ax,) = figure(1, 1, width=6.4, height=3.8)
    labels = [RUNS[k][0].split(" (")[0] for k in RUNS]
    bottom = [0.0] * len(RUNS)
    for part, colour, name in (("float", "C0", "float MACs"),
                               ("binary_weight", "C1", "binary-weight MACs"),
                               ("binary", "C2", "binary MACs (sign x sign)")):
        values = [figures[k]["macs"][part] / 1e6 for k in RUNS]
        ax.barh(labels, values, left=bottom, color=colour, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    for i, k in enumerate(RUNS):
        ax.text(bottom[i], i, f"  {figures[k]['test_accuracy']:.1f}%", va="center", fontsize=8)
    ax.set_xlabel("million MACs per image (label: test accuracy)")
    ax.set_xlim(0, max(bottom) * 1.25 if max(bottom) > 0 else 1)
    ax.set_title("where the arithmetic is: float against binary", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3,
              frameon=False)
    ax.grid(alpha=0.3, axis="x")
    return Plot(save(fig, ctx.folder / "macs.png").name,
                "MACs per image of each model split into float, binary-weight and binary "
                "(sign x sign: XNOR-popcount on the kernels) operations, with its test accuracy.")
