"""Stage ``tensor_train``: the tensor-train layers (MPO, MPS, low rank) and the TT LSTM checked
against what must hold of them (exact at full rank, TT-SVD within Oseledets' error bound,
truncated SVD optimal) and measured: relative error and forward FLOPs against parameters, on an
incompressible (Gaussian) and a compressible (smooth-kernel) weight matrix.

Then the word-level LSTM language model (``model.name: lstm-lm``) trained with the suite's
trainer on the embedded King James Bible sample (``data.name: kjv-sample``: Ruth, Jonah and
Philemon to train on, Titus to validate, Obadiah to test): dense, and with both LSTM matrices
as MPS and as MPO trains at the rank that keeps ``1 / lm_compression`` of the dense LSTM's
parameters. Measured: validation and test perplexity against the add-one unigram model of the
training words, the LSTM parameters; checked: every trained train's contracted forward equals
its rebuilt-dense forward (float64), the parameter counts equal the closed form and keep the
budget, every model beats the unigram model on validation. The full corpus table is
``benchmarks/results.py --tables tt`` (docs/tensor_train.md).
"""

from __future__ import annotations

import math
from typing import Any

from proxcompress.reproduce.plots import figure, save
from proxcompress.reproduce.stage import Context, Outcome, Plot, Table
from proxcompress.reproduce.stages.training import RunSpec, run_all

#: the modes a size-``n`` dimension is split into for the chain tensors of the bound check
CHAIN_MODES = 2


def matrices(size: int, seed: int) -> dict[str, Any]:
    """The two ``size x size`` weight matrices: i.i.d. Gaussian, and a smooth kernel
    ``exp(-(u - v)^2 / 0.02)`` of the rows' and columns' positions plus 1% noise."""
    import torch

    g = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(size, size, generator=g, dtype=torch.float64) / math.sqrt(size)
    u = torch.linspace(0.0, 1.0, size, dtype=torch.float64)
    smooth = torch.exp(-(u[:, None] - u[None, :]) ** 2 / 0.02)
    smooth = smooth + 0.01 * smooth.norm() / size * torch.randn(size, size, generator=g,
                                                                  dtype=torch.float64)
    return {"Gaussian (incompressible)": gaussian, "smooth kernel (compressible)": smooth}


def tt_bound_check(weight: Any, ranks: list[int]) -> list[dict[str, float]]:
    """TT-SVD of ``weight`` reshaped to a 4-way chain tensor, at each rank: the relative error
    and Oseledets' bound (2011, theorem 2.2): ``||T - TT||^2 <= sum_k sum_{j > r_k}
    sigma_j(T_<k>)^2``, the singular values of the k-th unfolding."""
    import torch

    from proxcompress.training.tensor_train import resolve_ranks, tt_full, tt_svd

    n = int(weight.shape[0])
    side = int(round(math.sqrt(n)))
    dims = (side, side, side, side) if side * side == n else (n, n)
    tensor = weight.reshape(dims)
    norm = float(tensor.norm())
    unfold_sv = [torch.linalg.svdvals(tensor.reshape(math.prod(dims[:k + 1]), -1))
                 for k in range(len(dims) - 1)]
    out = []
    for rank in ranks:
        resolved = resolve_ranks(rank, dims)
        error = float((tt_full(tt_svd(tensor, rank)) - tensor).norm())
        bound = math.sqrt(sum(float((sv[r:] ** 2).sum())
                              for sv, r in zip(unfold_sv, resolved, strict=True)))
        out.append({"rank": rank, "error": error / norm, "bound": bound / norm})
    return out


def run(ctx: Context) -> Outcome:
    """Decompose both matrices at every rank of the budget with every form; check the
    theorems; the TT LSTM at full rank against ``nn.LSTM``."""
    import torch

    from proxcompress.training.tensor_train import (
        TTLSTM,
        MPOLinear,
        MPSLinear,
        TTSpec,
        low_rank_linear,
    )

    b = ctx.budget
    size, ranks = b["size"], sorted(set(b["ranks"]))
    weights = matrices(size, b["seed"])
    forms = {"MPO": lambda w, r: MPOLinear.from_dense(w, r, num_modes=CHAIN_MODES),
             "MPS": lambda w, r: MPSLinear.from_dense(w, r, num_modes=CHAIN_MODES),
             "low rank": lambda w, r: low_rank_linear(w, rank=r, bias=None)}
    ctx.progress.total(len(weights) + 2 + len(LM_FORMS) * b["lm_seeds"])
    rows, curves, exact_errors, bound_ok, svd_ok = [], {}, {}, True, True
    bounds: dict[str, list[dict[str, float]]] = {}
    for label, w in weights.items():
        norm = float(w.norm())
        sv = torch.linalg.svdvals(w)
        for form, make in forms.items():
            points = []
            for rank in [*ranks, size]:
                layer = make(w, rank)
                with torch.no_grad():
                    error = float((layer.to_dense().to(torch.float64) - w).norm()) / norm
                params = layer.num_parameters()
                if rank == size:
                    exact_errors[f"{label} / {form}"] = error
                    continue
                points.append((params, error))
                rows.append([label, form, rank, params, size * size / params, error,
                             layer.flops(1), layer.dense_flops(1)])
                if form == "low rank":  # Eckart-Young: the best rank-r error
                    best = float(torch.sqrt((sv[rank:] ** 2).sum())) / norm
                    svd_ok &= abs(error - best) <= 1e-4 * max(best, 1e-12)
            curves[(label, form)] = points
        bounds[label] = tt_bound_check(w, ranks)
        bound_ok &= all(p["error"] ** 2 <= p["bound"] ** 2 * (1 + 1e-9) + 1e-24
                        for p in bounds[label])
        ctx.log(f"{label}: decomposed at ranks {ranks}")
        ctx.progress.advance()
    lstm = torch.nn.LSTM(b["lstm_input"], b["lstm_hidden"], num_layers=1).double()
    full = TTLSTM.from_lstm(lstm, ih=TTSpec(form="mps", ranks=10**6),
                            hh=TTSpec(form="mps", ranks=10**6)).double()
    x = torch.randn(7, 3, b["lstm_input"], dtype=torch.float64,
                    generator=torch.Generator().manual_seed(b["seed"]))
    with torch.no_grad():
        ref, _ = lstm(x)
        got, _ = full(x)
    lstm_error = float((got - ref).abs().max() / ref.abs().max())
    ctx.progress.advance()
    figures = {
        "size": size, "ranks": ranks, "full_rank_error": exact_errors,
        "lstm_full_rank_error": lstm_error, "tt_svd_bounds": bounds,
        "tt_svd_within_bound": bool(bound_ok), "low_rank_optimal": bool(svd_ok),
        "points": {f"{label} / {form}": pts for (label, form), pts in curves.items()},
    }
    table = Table(
        f"{size} x {size} weight matrices decomposed at each rank",
        ["matrix", "form", "rank", "parameters", "compression (x)", "relative error",
         "forward FLOPs (batch 1)", "dense FLOPs (batch 1)"], rows,
        note=f"MPO / MPS: {CHAIN_MODES} modes per dimension (TT-SVD from the dense matrix); "
        "low rank: the truncated SVD. Relative error = ||W - W_tt||_F / ||W||_F. Forward FLOPs "
        "of the contracted layer in its FLOP-optimal order (opt_einsum).")
    bound_table = Table(
        "TT-SVD against its error bound (Oseledets 2011, theorem 2.2), 4-way chain tensors",
        ["matrix", "rank", "relative error", "bound: sqrt(sum of the discarded squared "
         "singular values of every unfolding) / ||W||"],
        [[label, p["rank"], p["error"], p["bound"]] for label, pts in bounds.items()
         for p in pts])
    exact = Table(
        "At full rank every form is exact",
        ["what", "largest relative difference"],
        [*[[k, v] for k, v in exact_errors.items()],
         [f"TT LSTM ({b['lstm_input']} -> {b['lstm_hidden']}) vs nn.LSTM, outputs",
          lstm_error]])
    lm_figures, lm_tables, lm_plot = language_models(ctx)
    figures["lm"] = lm_figures
    return Outcome(figures, [table, bound_table, exact, *lm_tables],
                   [_plot(ctx, curves, size), lm_plot])


def _plot(ctx: Context, curves: dict[tuple[str, str], list[tuple[int, float]]],
          size: int) -> Plot:
    labels = sorted({label for label, _ in curves})
    fig, axes = figure(len(labels), 1, width=5.4, height=3.8)
    for ax, label in zip(axes, labels, strict=True):
        for (lab, form), points in curves.items():
            if lab != label:
                continue
            params, errors = zip(*points, strict=True)
            ax.plot(params, errors, "o-", label=form)
        ax.axvline(size * size, color="grey", ls=":", lw=1)
        ax.text(size * size, 0.98, " dense", transform=ax.get_xaxis_transform(), fontsize=8,
                color="grey", va="top")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("parameters (log scale)")
        ax.set_ylabel("relative error ||W - W_tt|| / ||W||")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return Plot(save(fig, ctx.folder / "tensor_train.png").name,
                "Relative error against parameter count for each form, on a matrix that does "
                "not compress (left) and one that does (right); the dotted line is the dense "
                "matrix's parameter count.")


#: the language-model runs: key -> (label, ``tt`` section)
LM_FORMS: dict[str, tuple[str, dict[str, Any]]] = {
    "dense": ("dense LSTM", {}),
    "mps": ("MPS (blocked legs)", {"form": "mps", "layout": "blocked"}),
    "mpo": ("MPO", {"form": "mpo"}),
}


def lm_specs(ctx: Context) -> list[RunSpec]:
    """One run per form of :data:`LM_FORMS` and seed (``seed``, ``seed + 1``, ...)."""
    b = ctx.budget
    specs = []
    for i in range(b["lm_seeds"]):
        for key, (_, tt) in LM_FORMS.items():
            config = {
                "seed": b["seed"] + i, "epochs": b["lm_epochs"],
                "data": {"name": "kjv-sample", "bptt": 20, "eval_streams": 4},
                "model": {"name": "lstm-lm", "lstm": {
                    "embedding": b["lm_embedding"], "hidden": b["lm_hidden"], "dropout": 0.1,
                    "cutoffs": [200, 600]}},
                "optim": {"name": "adam", "lr": 3e-3, "batch_size": 16, "clip_norm": 1.0},
            }
            if tt:
                config["tt"] = {**tt, "compression": b["lm_compression"]}
            specs.append(RunSpec(f"lm-{key}-seed{b['seed'] + i}", config))
    return specs


def unigram_perplexity() -> dict[str, float]:
    """Validation and test perplexity of the add-one unigram model of the sample's training
    words (the floor a language model must beat)."""
    import torch

    from proxcompress.training.text import load_corpus

    data = load_corpus(None)
    counts = torch.bincount(data.train, minlength=data.classes).double() + 1.0
    logp = (counts / counts.sum()).log()
    return {split: math.exp(-float(logp[tokens].mean()))
            for split, tokens in (("val", data.valid), ("test", data.test))}


def path_check(run: Any) -> dict[str, Any]:
    """Load a finished run, in float64: the largest difference between the contracted and the
    rebuilt-dense forward of its tensor-train LSTM on the validation text (relative to the
    largest output), and its LSTM parameters counted and in closed form."""
    import torch

    from proxcompress.training.tensor_train import TTLSTM
    from proxcompress.training.text import load_corpus, stream_batches
    from proxcompress.training.trainer import load_run

    cfg, model = load_run(run)
    model = model.double().eval()
    lstms = [m for m in model.modules() if isinstance(m, TTLSTM)]
    rows = stream_batches(load_corpus(None).valid, cfg.data.eval_streams)
    steps = min(int(rows.shape[1]) - 1, 3 * cfg.data.bptt)
    x, y = rows[:, :steps].T, rows[:, 1:steps + 1].T
    outputs = {}
    for path in ("dense", "contract"):
        for m in lstms:
            m.path = path
        with torch.no_grad():
            outputs[path], _, _ = model(x, None, y)
    diff = float((outputs["contract"] - outputs["dense"]).abs().max()
                 / outputs["dense"].abs().max())
    return {"contract_vs_dense": diff,
            "counted": sum(p.numel() for m in lstms for p in m.parameters()),
            "closed_form": sum(m.num_parameters() for m in lstms)}


def language_models(ctx: Context) -> tuple[dict[str, Any], list[Table], Plot]:
    """Train :func:`lm_specs`, check the trained trains (:func:`path_check`), summarize."""
    b = ctx.budget
    specs = lm_specs(ctx)
    done = run_all(ctx, specs)
    unigram = unigram_perplexity()
    runs: dict[str, dict[str, Any]] = {}
    for spec in specs:
        summary = done[spec.name].summary
        record = {k: summary.get(k) for k in (
            "seed", "test_perplexity", "val_perplexity", "lstm_parameters",
            "lstm_dense_parameters", "lstm_compression", "tt_ranks", "parameters", "seconds",
            "epochs")}
        record["form"] = spec.name.split("-")[1]
        record["seed"] = spec.config["seed"]
        if spec.config.get("tt"):
            record.update(path_check(done[spec.name].folder))
        runs[spec.name] = record
    ctx.progress.advance()
    forms: dict[str, dict[str, Any]] = {}
    for key in LM_FORMS:
        mine = [r for r in runs.values() if r["form"] == key]
        forms[key] = {
            "test_perplexity": sum(r["test_perplexity"] for r in mine) / len(mine),
            "val_perplexity": sum(r["val_perplexity"] for r in mine) / len(mine),
            "lstm_parameters": mine[0]["lstm_parameters"],
            "lstm_compression": mine[0]["lstm_compression"],
            "tt_ranks": mine[0]["tt_ranks"], "seeds": len(mine)}
    figures = {"runs": runs, "forms": forms, "unigram": unigram,
               "compression": b["lm_compression"], "epochs": b["lm_epochs"],
               "dense_lstm_parameters": next(iter(runs.values()))["lstm_dense_parameters"]}
    rows = [[LM_FORMS[k][0], f["lstm_parameters"], f["lstm_compression"],
             ", ".join(f"{r['ih']}/{r['hh']}" for r in f["tt_ranks"]) if f["tt_ranks"] else "-",
             f["val_perplexity"], f["test_perplexity"], f["seeds"]] for k, f in forms.items()]
    rows.append(["add-one unigram model (training words)", 0, None, "-", unigram["val"],
                 unigram["test"], None])
    table = Table(
        f"LSTM language model on the embedded KJV sample, {b['lm_epochs']} epoch(s), "
        f"embedding {b['lm_embedding']}, hidden {b['lm_hidden']}, tensor trains at "
        f"{b['lm_compression']:g}x fewer LSTM parameters",
        ["model", "LSTM parameters", "compression (x)", "ranks (ih/hh)",
         "validation perplexity", "test perplexity", "seeds"], rows,
        note="Perplexity = exp(mean negative log-likelihood per token), the validation and test "
        "books read as 4 contiguous streams with the state carried through; mean over the "
        "seeds. The sample is about 4 500 training words (Ruth, Jonah, Philemon; validation "
        "Titus, test Obadiah), so these are smoke-test figures, not the paper's comparison "
        "(docs/results.md, tensor-train section).")
    checks = Table(
        "Trained tensor-train LSTMs: contracted forward against the rebuilt dense weights "
        "(float64), parameters counted against the closed form",
        ["run", "largest relative difference", "LSTM parameters (counted)",
         "closed form", "dense LSTM"],
        [[name, r["contract_vs_dense"], r["counted"], r["closed_form"],
          r["lstm_dense_parameters"]] for name, r in runs.items() if "counted" in r])
    return figures, [table, checks], _lm_plot(ctx, forms, unigram)


def _lm_plot(ctx: Context, forms: dict[str, dict[str, Any]], unigram: dict[str, float]) -> Plot:
    fig, axes = figure(1, 1, width=6.0, height=3.8)
    ax = axes[0]
    for key, f in forms.items():
        ax.plot([f["lstm_parameters"]], [f["test_perplexity"]], "o", label=LM_FORMS[key][0])
        ax.plot([f["lstm_parameters"]], [f["val_perplexity"]], "s", mfc="none",
                color=ax.lines[-1].get_color())
    ax.axhline(unigram["test"], color="grey", ls=":", lw=1, label="unigram, test")
    ax.axhline(unigram["val"], color="grey", ls="--", lw=1, label="unigram, validation")
    ax.set_xscale("log")
    ax.set_xlabel("LSTM parameters (log scale)")
    ax.set_ylabel("perplexity")
    ax.set_title("test (filled) and validation (open) perplexity", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return Plot(save(fig, ctx.folder / "tensor_train_lm.png").name,
                "Perplexity of the dense, MPS and MPO LSTM language models against their LSTM "
                "parameters, with the unigram model's for reference (lower is better).")


__all__ = ["LM_FORMS", "language_models", "lm_specs", "matrices", "path_check", "run",
           "tt_bound_check", "unigram_perplexity"]
