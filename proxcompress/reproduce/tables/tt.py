"""The tensor-train table of docs/results.md (``python benchmarks/results.py --tables tt``;
formerly ``benchmarks/results_tt.py``).

Rows (all on the Recipe protocol: ``tt`` section of the config; :mod:`proxcompress.training.
tensor_train`):

* word-level language model on the King James Bible (``proxcompress data kjv``; 10000 words,
  split by book), ``lstm-lm``: embedding 256, one LSTM layer of 256, adaptive softmax; the dense
  LSTM (learning rate swept on the validation perplexity) and the low-rank, MPO and MPS LSTMs at
  10x, MPO and MPS also at 30x (ranks chosen for the budget: equal parameter counts across
  forms), MPS's leg order (``interleaved`` / ``blocked``, [U]) swept on the
  validation split at the first budget and inherited at the others;
* spoken-command intents (``proxcompress data speech``, the speech table's data) with
  ``speech-lstm`` (4 stacked log-mel frames per step, one LSTM layer of 128; learning rate
  fixed at 3e-3, not swept; MPS's leg order swept on this task's own validation split;
  features standardized over each utterance's own frames -- over all frames, padding
  included, the dense LSTM reached 28% validation in 8 epochs against 98.8% with
  ``own-frames``, same seed): dense, low-rank, MPO and MPS at the first budget.

After the training runs, :func:`timing` measures one LSTM step of every LM row's architecture
(contracted and rebuilt-dense paths, batch 1 and 64, under the script's slots, nothing else
of it running; one torch thread) with ``benchmarks/tensor_train.py``'s
``lstm_step_times`` (loaded from the checkout), and :func:`plot` draws test perplexity against
LSTM parameters.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

Row = dict[str, Any]

#: the LM corpus, built by this script when missing
KJV_DATA = "runs/kjv/data"
KJV_VOCAB = 10000
KJV_ARGS = ["--vocab", str(KJV_VOCAB)]
#: compression budgets (dense LSTM parameters / TT LSTM parameters, biases included); the
#: first (the issue's 10x target) for every form, the others for MPO and MPS (the paper's
#: comparison at a second size; the compute budget of the table leaves no room for more)
BUDGETS = (10, 30)
#: the LSTM forms compared: key, label, tt section
FORMS: list[tuple[str, str, dict[str, Any]]] = [
    ("lowrank", "low-rank (SVD form U V)", {"form": "lowrank"}),
    ("mpo", "MPO (TT-matrix), 3 modes", {"form": "mpo", "num_modes": 3}),
    ("mps", "MPS, 3 modes per dimension", {"form": "mps", "num_modes": 3}),
]
LM_LR_GRID = [1e-3, 3e-3]
MPS_LAYOUTS = ["interleaved", "blocked"]

LM_BASE: dict[str, Any] = {
    "epochs": 3, "threads": 1, "progress": False,
    "data": {"name": "kjv", "root": KJV_DATA, "bptt": 35, "eval_streams": 10},
    "model": {"name": "lstm-lm", "lstm": {"embedding": 256, "hidden": 256, "layers": 1,
                                          "dropout": 0.2, "cutoffs": [1000, 4000]}},
    "optim": {"name": "adam", "lr": 0.003, "schedule": "cosine", "batch_size": 64,
              "clip_norm": 0.5},
}
SPEECH_BASE: dict[str, Any] = {
    "epochs": 8, "threads": 1, "progress": False,
    "data": {"name": "speech", "root": "runs/speech/data", "val_fraction": 0.1,
             "standardize": "own-frames"},
    "model": {"name": "speech-lstm", "lstm": {"hidden": 128, "layers": 1, "dropout": 0.0,
                                              "frame_stack": 4}},
    "optim": {"name": "adam", "lr": 0.003, "schedule": "cosine", "batch_size": 64,
              "clip_norm": 1.0},
}
#: the comments the section sits between (``render.markers("tt")``: ``--tables tt`` alone
#: rewrites only this section of docs/results.md)
BEGIN, END = "<!-- table:tt -->", "<!-- /table:tt -->"
#: timing: batches of one LSTM step, rounds, torch threads (one: on the shared 2-core machine
#: two threads made even nn.Linear slower than one, docs/benchmarks.md)
TIMING_BATCHES = [1, 64]
TIMING_THREADS = 1
TIMING_REPEATS = 40
TIMING = "tt-timing.json"
PLOT = "tt_perplexity.png"


def rows() -> list[Row]:
    """The table's rows (``core.rows`` format; ``metric``, ``lower_is_better`` for the
    sweeps' choice on validation)."""
    from proxcompress.reproduce.tables.core import _merge

    out: list[Row] = [
        {"table": "tt", "task": "lm", "model": "lstm-lm", "name": "tt-lm-dense",
         "label": "dense LSTM", "form": "dense", "compression": 1, "config": LM_BASE,
         "sweep": {"optim.lr": LM_LR_GRID}, "inherit": {}, "metric": "perplexity"},
    ]
    for budget in BUDGETS:
        for key, label, tt in FORMS:
            if budget != BUDGETS[0] and key not in ("mps", "mpo"):
                continue
            name = f"tt-lm-{key}-c{budget}"
            inherit = {"optim.lr": "tt-lm-dense"}
            sweep: dict[str, list[Any]] = {}
            if key == "mps":
                if budget == BUDGETS[0]:
                    sweep = {"tt.layout": MPS_LAYOUTS}
                else:
                    inherit["tt.layout"] = f"tt-lm-mps-c{BUDGETS[0]}"
            out.append({"table": "tt", "task": "lm", "model": "lstm-lm", "name": name,
                        "label": label, "form": key, "compression": budget,
                        "config": _merge(LM_BASE, {"tt": {**tt, "compression": budget,
                                                          "ranks": None}}),
                        "sweep": sweep, "inherit": inherit, "metric": "perplexity"})
    out.append({"table": "tt", "task": "speech", "model": "speech-lstm",
                "name": "tt-speech-dense", "label": "dense LSTM", "form": "dense",
                "compression": 1, "config": SPEECH_BASE, "sweep": {}, "inherit": {},
                "metric": "accuracy"})
    for key, label, tt in FORMS:
        budget = BUDGETS[0]
        # MPS's leg order is chosen on this task's own validation split (it was inherited from
        # the language model's choice: a choice made on another task's data)
        sweep = {"tt.layout": MPS_LAYOUTS} if key == "mps" else {}
        out.append({"table": "tt", "task": "speech", "model": "speech-lstm",
                    "name": f"tt-speech-{key}-c{budget}", "label": label, "form": key,
                    "compression": budget,
                    "config": _merge(SPEECH_BASE, {"tt": {**tt, "compression": budget,
                                                          "ranks": None}}),
                    "sweep": sweep, "inherit": {}, "metric": "accuracy"})
    for row in out:
        row["lower_is_better"] = row["metric"] == "perplexity"
    return out


#: the rows the targets rest on first
PRIORITY = ["tt-lm-dense", *[f"tt-lm-{k}-c{BUDGETS[0]}" for k, _, _ in FORMS],
            *[f"tt-lm-{k}-c{b}" for b in BUDGETS[1:] for k in ("mpo", "mps")],
            "tt-speech-dense", *[f"tt-speech-{k}-c{BUDGETS[0]}" for k, _, _ in FORMS]]


# ------------------------------------------------------------------------------- reading
def _lm_rows(choices: Any) -> list[Row]:
    return [r for r in choices.rows.values() if r["table"] == "tt" and r["task"] == "lm"]


def _specs(choices: Any, seeds: list[int] | None) -> dict[str, Any]:
    """Each LM row's TT spec as trained (ranks from its first finished run's summary)."""
    from proxcompress.reproduce.tables.core import _summaries
    from proxcompress.training.config import config_from_dict
    from proxcompress.training.tensor_train import TTSpec

    out = {}
    for row in _lm_rows(choices):
        if row["form"] == "dense":
            continue
        sums = _summaries(choices, row, seeds)
        if not sums:
            continue
        tt = config_from_dict(choices.config(row)).tt  # resolved: the defaults filled in
        ranks = sums[0]["tt_ranks"][0]["hh"]
        out[row["name"]] = TTSpec(tt.form, ranks if isinstance(ranks, int) else tuple(ranks),
                                  tt.num_modes, tt.layout, tt.split)
    return out


def timing(choices: Any, seeds: list[int] | None, runs: Path,
           log: Callable[[str], None]) -> dict[str, Any] | None:
    """One LSTM step of every LM row's architecture, measured once all of them have finished
    and kept in ``runs/tt-timing.json`` (measured again when the rows' ranks change)."""
    path = runs / TIMING
    specs = _specs(choices, seeds)
    expected = [r["name"] for r in _lm_rows(choices) if r["form"] != "dense"]
    if set(specs) != set(expected):  # measured once every LM row has finished
        return cached_timing(runs)
    key = {name: [s.form, s.ranks, s.layout] for name, s in specs.items()}
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("key") == json.loads(json.dumps(key)):
            return dict(cached)
    import torch

    from proxcompress.atomic import write_json_atomic

    bench = _tensor_train_benchmark()
    cpu_device, lstm_step_times = bench.cpu_device, bench.lstm_step_times

    lstm = LM_BASE["model"]["lstm"]
    log(f"timing one LSTM step of {len(specs)} architectures (batches {TIMING_BATCHES})")
    torch.set_num_threads(TIMING_THREADS)
    rows_ = lstm_step_times(lstm["embedding"], lstm["hidden"], specs, TIMING_BATCHES,
                            TIMING_REPEATS)
    result = {"key": key, "device": cpu_device(), "batches": TIMING_BATCHES,
              "repeats": TIMING_REPEATS, "rows": rows_}
    write_json_atomic(path, result)
    return result


def _tensor_train_benchmark() -> ModuleType:
    """``benchmarks/tensor_train.py`` of the checkout (its ``lstm_step_times`` and
    ``cpu_device``), loaded from its file: the benchmark scripts are not part of the package."""
    import importlib.util

    from proxcompress.reproduce.tables.core import ROOT

    path = ROOT / "benchmarks" / "tensor_train.py"
    spec = importlib.util.spec_from_file_location("proxcompress_benchmarks_tensor_train", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"{path}: the tensor-train benchmark comes with the repository "
                                "checkout, not with an installed wheel")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cached_timing(runs: Path) -> dict[str, Any] | None:
    """The last :func:`timing` measurement in ``runs`` (``None`` when there is none)."""
    path = runs / TIMING
    return dict(json.loads(path.read_text())) if path.exists() else None


def plot(choices: Any, seeds: list[int] | None, out: Path) -> Path | None:
    """Test perplexity against LSTM parameters (mean +- sd over seeds), one line per form."""
    from proxcompress.reproduce.tables.core import _summaries

    points: dict[str, list[tuple[float, float, float]]] = {}
    for row in _lm_rows(choices):
        sums = _summaries(choices, row, seeds)
        if not sums:
            continue
        ppl = [s["test_perplexity"] for s in sums]
        label = row["form"] if row["form"] != "mps" else \
            f"mps ({choices.config(row)['tt']['layout']})"
        points.setdefault(label, []).append(
            (statistics.fmean(s["lstm_parameters"] for s in sums), statistics.fmean(ppl),
             statistics.stdev(ppl) if len(ppl) > 1 else 0.0))
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, pts in sorted(points.items()):
        pts.sort()
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                    marker="o" if label != "dense" else "*", markersize=9 if label == "dense"
                    else 6, capsize=3, label=label)
    dense = points.get("dense")
    if dense:
        ax.axhline(dense[0][1] * 1.1, color="grey", ls=":", lw=1,
                   label="dense + 10% (the target)")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    # labels at 1, 2, 5 x 10^k written out (the default minor labels collide)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("LSTM parameters (biases included)")
    ax.set_ylabel("test perplexity (KJV)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    from proxcompress.atomic import write_atomic

    write_atomic(out, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    return out


def section(choices: Any, seeds: list[int] | None, timing_: dict[str, Any] | None,
            png: Path | None) -> list[str]:
    """The markdown of the tensor-train section."""
    from proxcompress.reproduce.tables.core import _paired, _stats, _summaries
    from proxcompress.reproduce.tables.render import _sweep_section, _swept

    tt_rows = [r for r in choices.rows.values() if r["table"] == "tt"]
    if not tt_rows:
        return []
    lstm = LM_BASE["model"]["lstm"]
    pending = not any(_summaries(choices, r, seeds) for r in tt_rows)
    lines = [
        BEGIN,
        "## Tensor-train LSTMs: MPS vs MPO (Murua et al., arXiv:2006.05442)",
        "",
        *(["**Pending regeneration.** No run of this table is in the runs folder yet: every "
           "'not run' / 'not measured' below is pending, not a failure (the swept values "
           "shown are those recorded in `configs/results/sweeps.json`). `python "
           "benchmarks/results.py --tables tt` trains and renders it (about 90 minutes on 2 "
           "cores); the layer timings measured so far are in docs/benchmarks.md and "
           "docs/tensor_train.md.", ""] if pending else []),
        f"Word-level language model on the King James Bible (`proxcompress data kjv --out "
        f"{KJV_DATA} --vocab {KJV_VOCAB}`: Debian's `bible-kjv-text`, lowercased words, `<eos>` "
        "per verse, split by book: 633604 training / 95982 validation / 91149 test tokens, "
        f"{KJV_VOCAB} words with `<unk>`): embedding {lstm['embedding']}, one LSTM layer of "
        f"{lstm['hidden']}, dropout {lstm['dropout']}, adaptive softmax (cutoffs "
        f"{lstm['cutoffs']}); {LM_BASE['epochs']} epochs of truncated BPTT "
        f"({LM_BASE['data']['bptt']} tokens, batch {LM_BASE['optim']['batch_size']}, state "
        "carried), Adam with cosine decay, gradient norm clipped at "
        f"{LM_BASE['optim']['clip_norm']}. Only the LSTM is compressed (the embedding and the "
        "softmax stay dense): both of its matrices `W_ih` (1024 x 256) and `W_hh` (1024 x 256) "
        "become one train each per gate stack, trained from scratch (fresh cores with "
        "`nn.LSTM`'s weight variance). *Compression* is dense LSTM parameters / LSTM "
        "parameters, biases included on both sides; at each budget the ranks are the largest "
        "uniform ones within it, so the forms are compared at (nearly) equal parameter counts. "
        "Perplexity: `exp` of the mean negative log-likelihood per token over the split cut "
        "into 10 contiguous streams (state carried); the validation perplexity chooses the "
        "swept values, the test perplexity is computed once per finished run.",
        "",
        "| LSTM | budget | ranks (W_ih, W_hh) | LSTM parameters | compression | swept | "
        "validation perplexity | test perplexity | test vs dense | config |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    dense_sums = _summaries(choices, choices.rows["tt-lm-dense"], seeds)
    dense_test = statistics.fmean(s["test_perplexity"] for s in dense_sums) \
        if dense_sums else None
    for row in [r for r in tt_rows if r["task"] == "lm"]:
        sums = _summaries(choices, row, seeds)
        label = row["label"]
        if row["form"] == "mps" and choices.chosen(row) is not None:
            label += f", {choices.config(row)['tt']['layout']}"
        if not sums:
            lines.append(f"| {label} | {row['compression']}x | | | | {_swept(choices, row)} | "
                         f"not run | not run | | `{row['name']}` |")
            continue
        ranks = sums[0].get("tt_ranks", [{"ih": "-", "hh": "-"}])[0]
        test = [s["test_perplexity"] for s in sums]
        rel = f"{100 * (statistics.fmean(test) / dense_test - 1):+.1f}%" \
            if dense_test and row["form"] != "dense" else "-"
        lines.append(
            f"| {label} | {'-' if row['form'] == 'dense' else str(row['compression']) + 'x'} | "
            f"{ranks['ih']}, {ranks['hh']} | {sums[0]['lstm_parameters']} | "
            f"{sums[0]['lstm_compression']:.1f} | {_swept(choices, row)} | "
            f"{_stats([s['val_perplexity'] for s in sums])} | {_stats(test)} | {rel} | "
            f"`{row['name']}` |")
    lines += ["", *_sweep_section(choices, [r for r in tt_rows if r["task"] == "lm"],
                                  "validation perplexity, lower is better")]
    if png is not None:
        lines += [f"![test perplexity vs LSTM parameters]({png.name})", ""]
    lines += _timing_lines(choices, timing_)
    lines += _claim_lines(choices, seeds, timing_, _paired)
    speech = [r for r in tt_rows if r["task"] == "speech"]
    if speech:
        lines += [
            "Spoken-command intents (the speech table's data: 26 intents, 40 espeak-ng "
            "speakers; validation: 3 of the 32 training speakers) with `speech-lstm`: "
            f"{SPEECH_BASE['model']['lstm']['frame_stack']} log-mel frames (40 values each; "
            "each utterance standardized over its own frames, the padding 0) per step, one "
            "LSTM layer of "
            f"{SPEECH_BASE['model']['lstm']['hidden']}, the mean of its outputs, a linear "
            f"classifier; {SPEECH_BASE['epochs']} epochs, Adam cosine at "
            f"{SPEECH_BASE['optim']['lr']:g} (not swept), batch "
            f"{SPEECH_BASE['optim']['batch_size']}.",
            "",
            "| LSTM | budget | ranks (W_ih, W_hh) | LSTM parameters | compression | swept | "
            "validation accuracy (%) | test accuracy (%) | config |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in speech:
            sums = _summaries(choices, row, seeds)
            label = row["label"]
            if not sums:
                budget = "-" if row["form"] == "dense" else f"{row['compression']}x"
                lines.append(f"| {label} | {budget} | | | | {_swept(choices, row)} | not run | "
                             f"not run | `{row['name']}` |")
                continue
            ranks = sums[0].get("tt_ranks", [{"ih": "-", "hh": "-"}])[0]
            lines.append(
                f"| {label} | {'-' if row['form'] == 'dense' else str(row['compression']) + 'x'}"
                f" | {ranks['ih']}, {ranks['hh']} | {sums[0]['lstm_parameters']} | "
                f"{sums[0]['lstm_compression']:.1f} | {_swept(choices, row)} | "
                f"{_stats([s['val_accuracy'] for s in sums])} | "
                f"{_stats([s['test_accuracy'] for s in sums])} | `{row['name']}` |")
        lines += ["", *_sweep_section(choices, speech)]
    return [*lines, END, ""]


def _timing_lines(choices: Any, timing_: dict[str, Any] | None) -> list[str]:
    if timing_ is None:
        return ["One LSTM step: not measured (no finished LM row).", ""]
    rows_ = timing_["rows"]
    dev = timing_["device"]
    b1, b2 = timing_["batches"]
    lines = [
        f"One LSTM step (one token for each of B sequences; `W_ih x + W_hh h` and the gates) on "
        f"{dev.get('model_name', 'the CPU')}, {dev['torch_threads']} "
        f"thread{'' if dev['torch_threads'] == 1 else 's'}, median of "
        f"{timing_['repeats']} interleaved rounds, the dense `nn.LSTM` measured in the same "
        "run; *contracted*: the input contracted with the cores in the FLOP-optimal order "
        "(no dense matrix); *rebuilt*: the weights rebuilt once (`to_lstm()`, time in the last "
        "column) and run by PyTorch's fused LSTM; FLOPs of the matrix products per step.",
        "",
        f"| LSTM | FLOPs / step (B = 1) | contracted, B = {b1} (ms) | rebuilt, B = {b1} (ms) | "
        f"contracted, B = {b2} (ms) | rebuilt, B = {b2} (ms) | rebuild once (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    d = rows_["dense"]
    lines.append(f"| dense `nn.LSTM` | {d[f'flops_b{b1}']} | - | {d[f'dense_ms_b{b1}']:.3f} | - "
                 f"| {d[f'dense_ms_b{b2}']:.3f} | - |")
    for name, row in rows_.items():
        if name == "dense":
            continue
        layout = f" ({row['layout']})" if row["form"] == "mps" else ""
        lines.append(
            f"| `{name}`: {row['form']}{layout}, ranks {row['ranks']} | {row[f'flops_b{b1}']} | "
            f"{row[f'contract_ms_b{b1}']:.3f} | {row[f'dense_ms_b{b1}']:.3f} | "
            f"{row[f'contract_ms_b{b2}']:.3f} | {row[f'dense_ms_b{b2}']:.3f} | "
            f"{row['rebuild_ms']:.2f} |")
    return lines + [""]


def _claim_lines(choices: Any, seeds: list[int] | None, timing_: dict[str, Any] | None,
                 paired: Callable[..., str]) -> list[str]:
    from proxcompress.reproduce.tables.core import _mean

    lines = ["**The paper's claim, side by side** (at equal parameter count, MPS at least as "
             "accurate as MPO, and faster at inference):", ""]
    for budget in BUDGETS:
        mps, mpo = f"tt-lm-mps-c{budget}", f"tt-lm-mpo-c{budget}"
        a = _mean(choices, mps, seeds, lambda s: s["test_perplexity"])
        b = _mean(choices, mpo, seeds, lambda s: s["test_perplexity"])
        if a is None or b is None:
            lines.append(f"* {budget}x: not measured")
            continue
        diff = paired(choices, mps, mpo, seeds, "test_perplexity")
        verdict = "MPS at least as accurate" if a[0] <= b[0] else "MPO more accurate"
        speed = ""
        if timing_ is not None and mps in timing_["rows"] and mpo in timing_["rows"]:
            t = timing_["rows"]
            parts = [f"B = {bb}: MPS {t[mps][f'contract_ms_b{bb}']:.3f} ms vs MPO "
                     f"{t[mpo][f'contract_ms_b{bb}']:.3f} ms" for bb in timing_["batches"]]
            faster = all(t[mps][f"contract_ms_b{bb}"] < t[mpo][f"contract_ms_b{bb}"]
                         for bb in timing_["batches"])
            speed = (f"; contracted step {'; '.join(parts)}: "
                     f"**MPS {'faster' if faster else 'not faster at every batch'}**")
        lines.append(f"* {budget}x: test perplexity MPS {a[0]:.2f} vs MPO {b[0]:.2f}{diff}: "
                     f"**{verdict}**{speed}")
    return lines + [""]


def targets(choices: Any, seeds: list[int] | None) -> list[str]:
    """The issue's accuracy target on the measured means."""
    from proxcompress.reproduce.tables.core import _mean

    dense = _mean(choices, "tt-lm-dense", seeds, lambda s: s["test_perplexity"])
    best: tuple[float, str] | None = None
    for budget in BUDGETS:
        for form in ("mps", "mpo"):
            name = f"tt-lm-{form}-c{budget}"
            m = _mean(choices, name, seeds, lambda s: s["test_perplexity"])
            if m is not None and (best is None or m[0] < best[0]):
                best = (m[0], name)
    if dense is None or best is None:
        return ["* >= 10x fewer LSTM parameters for <= 10% higher test perplexity (best of MPS "
                "and MPO): not measured"]
    eligible = []
    for budget in BUDGETS:
        for form in ("mps", "mpo"):
            name = f"tt-lm-{form}-c{budget}"
            m = _mean(choices, name, seeds, lambda s: s["test_perplexity"])
            if m is not None and budget >= 10:
                eligible.append((m[0] / dense[0] - 1, name, budget))
    if not eligible:
        return ["* >= 10x fewer LSTM parameters for <= 10% higher test perplexity: not measured"]
    rel, name, budget = min(eligible)
    verdict = "met" if rel <= 0.10 else "missed"
    return [f"* >= 10x fewer LSTM parameters for <= 10% higher test perplexity than the dense "
            f"LSTM, best of MPS and MPO: `{name}` ({budget}x) at {100 * rel:+.1f}% (test "
            f"perplexity {dense[0] * (1 + rel):.2f} vs dense {dense[0]:.2f}): **{verdict}**"]


__all__ = ["BUDGETS", "FORMS", "KJV_ARGS", "KJV_DATA", "LM_BASE", "PRIORITY", "SPEECH_BASE",
           "cached_timing", "plot", "rows", "section", "targets", "timing"]
