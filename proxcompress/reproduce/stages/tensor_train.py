"""Stage ``tensor_train``: the tensor-train layers (MPO, MPS, low rank) and the TT LSTM checked
against what must hold of them (exact at full rank, TT-SVD within Oseledets' error bound,
truncated SVD optimal) and measured: relative error and forward FLOPs against parameters, on an
incompressible (Gaussian) and a compressible (smooth-kernel) weight matrix.

The LSTM training of the tensor-train issue (language model, spoken commands) is not part of
this stage: it adds its own stage when it lands (docs/reproduce.md).
"""

from __future__ import annotations

import math
from typing import Any

from proxcompress.reproduce.plots import figure, save
from proxcompress.reproduce.stage import Context, Outcome, Plot, Table

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
    ctx.progress.total(len(weights) + 1)
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
    return Outcome(figures, [table, bound_table, exact], [_plot(ctx, curves, size)])


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


__all__ = ["matrices", "run", "tt_bound_check"]
