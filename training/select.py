"""Choosing the kept channels of one unit: exact layer-wise MIP, SPR score, or magnitude.

``--select mip`` states the layer-wise pruning problem of :mod:`proxcompress.formulations` on
recorded activations and solves it exactly (``solve(problem, "bnb")``): with ``X`` the inputs of
the unit's consumer (its im2col patches for a convolution, sampled positions) and
``Y = X W^T`` the consumer's current (linear) outputs, channel ``c`` of the unit is the group of
the consumer's input columns it feeds, and

.. math::

    \\min_{W, z}\\; \\tfrac12 \\|Y - XW\\|_F^2 + \\lambda \\sum_g [\\alpha\\|W_g\\|^2
        + (1-\\alpha) z_g] \\;\\text{s.t.}\\; |W_{ij}| \\le M z_g,\\; \\textstyle\\sum_g z_g \\le k

keeps the ``k`` channels from which the consumer's output is best reconstructed, and refits the
consumer's weights on them (Cacciola, Frangioni, Li, Lodi, arXiv:2206.14056, the MIP SPR relaxes;
the layer-wise reconstruction view of ThiNet, Luo et al., ICCV 2017). ``spr`` ranks channels by
the SPR minimizer ``y*_j = clip(c ||W_j||_2, ||W_j||_inf / M, 1)`` of the producer's groups,
``magnitude`` by ``||W_j||_2``. :func:`compare_selections` applies all three to the same unit
of the same model at the same ``k`` and reports reconstruction error and accuracy.

Formulations (Pyomo, CVXPY) are imported only when ``mip`` runs.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from proxcompress.errors import InvalidInputError
from proxcompress.training.data import Dataset
from proxcompress.training.layers import QuantizedMixin
from proxcompress.training.models import ChannelUnit
from proxcompress.training.pruning import group_tensors, prune_channels

Method = Literal["mip", "spr", "magnitude"]
METHODS: tuple[str, ...] = ("mip", "spr", "magnitude")


@dataclass(frozen=True)
class ConsumerData:
    """Recorded inputs ``X`` (``n x d``) and linear outputs ``Y = X W^T`` (``n x m``) of one
    consumer, and the channel (group) of each input column."""

    X: np.ndarray
    Y: np.ndarray
    groups: np.ndarray
    consumer: str


@torch.no_grad()
def record_consumer(model: nn.Module, unit: ChannelUnit, data: Dataset, samples: int = 256,
                    positions: int = 16, seed: int = 0) -> ConsumerData:
    """Record the first consumer's inputs and its outputs without bias: ``positions`` random
    spatial positions of each of ``samples`` images for a convolution, and ``samples *
    positions`` images (at most all of ``data``) for a linear consumer, so that both give the
    same number of rows (a linear consumer with fewer rows than inputs, e.g. 256 images for the
    576 inputs of the results CNN's head, makes the layer-wise problem degenerate: many channel
    subsets then fit the outputs exactly)."""
    consumer = model.get_submodule(unit.consumers[0])
    if isinstance(consumer, QuantizedMixin):
        raise InvalidInputError("unit", f"consumer {unit.consumers[0]!r} is quantized; "
                                "channel selection works on full-precision layers")
    images = samples if isinstance(consumer, nn.Conv2d) else samples * positions
    captured: list[Tensor] = []
    handle = consumer.register_forward_hook(lambda m, i, o: captured.append(i[0].detach()))
    was = model.training
    model.eval()
    try:
        model(data.x[:images])
    finally:
        handle.remove()
        model.train(was)
    inputs = captured[0]
    g = torch.Generator().manual_seed(seed)
    if isinstance(consumer, nn.Conv2d):
        cols = functional.unfold(inputs, consumer.kernel_size, consumer.dilation,
                                 consumer.padding, consumer.stride)  # (B, C*kh*kw, L)
        b, d, L = cols.shape
        pick = torch.randint(0, L, (b, min(positions, L)), generator=g)
        X = torch.gather(cols, 2, pick[:, None, :].expand(b, d, pick.shape[1]))
        X = X.permute(0, 2, 1).reshape(-1, d)
        per = consumer.kernel_size[0] * consumer.kernel_size[1]
        W = consumer.weight.reshape(consumer.weight.shape[0], -1)
    else:
        X = inputs.reshape(inputs.shape[0], -1)
        per = unit.spatial[0]
        W = consumer.weight
    groups = np.arange(X.shape[1]) // per
    Y = X @ W.T
    return ConsumerData(X.double().numpy(), Y.double().numpy(), groups, unit.consumers[0])


def _spr_scores(model: nn.Module, unit: ChannelUnit, alpha: float, M: float | None) -> Tensor:
    flat = torch.cat([p.detach() for p in group_tensors(model, unit)], dim=1)
    r = flat.norm(dim=1)
    t = flat.abs().amax(dim=1)
    m = M if M is not None else float(t.max())
    c = math.sqrt(alpha / (1 - alpha))
    return torch.clamp(torch.maximum(c * r, t / m), max=1.0) + 1e-12 * r  # ties by norm


def _problem(rec: ConsumerData, keep: int) -> Any:
    from proxcompress.formulations import LayerPruningProblem

    scale = float(np.mean(np.sum(rec.X**2, axis=0)))
    W_now = np.linalg.lstsq(rec.X, rec.Y, rcond=None)[0]
    # a tiny ridge and count price (relative to the data scale): the budget k decides
    return LayerPruningProblem(
        X=rec.X, Y=rec.Y, groups=rec.groups, lam=2e-4 * max(scale, 1e-12), alpha=0.5,
        M=4.0 * float(np.abs(W_now).max()), k=keep)


def _refit(problem: Any, rec: ConsumerData, kept: list[int]) -> np.ndarray:
    from proxcompress.formulations import solve_support

    W, _ = solve_support(problem, tuple(kept))
    rows = np.sort(np.concatenate([np.flatnonzero(rec.groups == g) for g in kept]))
    return W[rows].T.copy()


def select_channels(model: nn.Module, unit: ChannelUnit, keep: int, method: Method,
                    data: Dataset | None = None, *, refit: bool = False, alpha: float = 0.1,
                    M: float | None = None, samples: int = 256, positions: int = 16,
                    time_limit: float = 60.0, seed: int = 0) -> dict[str, Any]:
    """The ``keep`` channels ``method`` chooses.

    Returns ``{"kept": [...], "seconds": s}``; for ``mip`` also ``"status"``, ``"gap"``,
    ``"nodes"``, ``"objective"``, ``"bound"``: the exact layer-wise problem solved by ``bnb``
    warm-started from the SPR and magnitude choices (its incumbent is never worse than either,
    in the MIP's objective). With ``refit`` (always for ``mip``) also ``"weights"``: the
    consumer's weights refit on the kept channels by the exact restricted problem
    (:func:`proxcompress.formulations.solve_support`, a box-constrained ridge regression).
    ``alpha`` and ``M`` are the SPR parameters of the ``spr`` score (``M``: default the largest
    ``||W_j||_inf`` of the unit).
    """
    n = int(model.get_submodule(unit.producer).weight.shape[0])
    if not 1 <= keep <= n:
        raise InvalidInputError("keep", f"= {keep} must lie in 1..{n}")
    if method not in METHODS:
        raise InvalidInputError("select", f"= {method!r}; accepted: {', '.join(METHODS)}")
    if (method == "mip" or refit) and data is None:
        raise InvalidInputError("data", "mip selection and refit need data to record activations")
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    rec = problem = None
    if method == "mip" or refit:
        rec = record_consumer(model, unit, data, samples, positions, seed)  # type: ignore[arg-type]
        problem = _problem(rec, keep)
    norms = torch.cat([p.detach() for p in group_tensors(model, unit)], dim=1).norm(dim=1)
    by_magnitude = sorted(torch.topk(norms, keep).indices.tolist())
    by_spr = sorted(torch.topk(_spr_scores(model, unit, alpha, M), keep).indices.tolist())
    if method == "magnitude":
        kept = by_magnitude
    elif method == "spr":
        kept = by_spr
    else:
        from proxcompress.formulations import solve

        # the SPR and magnitude choices are the MIP's first incumbents and local-search starts
        sol = solve(problem, "bnb", time_limit=time_limit, warm_start=[by_spr, by_magnitude])
        kept = sorted(int(g) for g in sol.support)
        out.update(status=sol.status, gap=sol.gap, nodes=sol.nodes, objective=sol.objective,
                   bound=sol.bound)
        refit = True
    out["kept"] = kept
    if refit:
        out["weights"] = _refit(problem, rec, kept)  # type: ignore[arg-type]
    out["seconds"] = time.perf_counter() - t0
    return out


@torch.no_grad()
def apply_selection(model: nn.Module, unit: ChannelUnit, selection: dict[str, Any]) -> nn.Module:
    """A pruned copy of ``model`` keeping ``selection["kept"]``; with ``"weights"`` the first
    consumer's weights are replaced by the refit ones."""
    pruned = copy.deepcopy(model)
    prune_channels(pruned, unit, selection["kept"])
    if "weights" in selection:
        consumer = pruned.get_submodule(unit.consumers[0])
        w = torch.as_tensor(selection["weights"], dtype=consumer.weight.dtype)
        consumer.weight.copy_(w.reshape(consumer.weight.shape))
    return pruned


def compare_selections(model: nn.Module, unit: ChannelUnit, keep: int, data: Dataset,
                       test: Dataset, methods: tuple[str, ...] = METHODS, **kwargs: Any
                       ) -> list[dict[str, Any]]:
    """Each method on the same unit at the same ``keep``, without fine-tuning: kept channels,
    selection seconds, and, both with the consumer's original weights and with the exact refit
    on the kept channels, the test accuracy and the relative reconstruction error
    ``||Y - Y_pruned||_F / ||Y||_F`` of the consumer's outputs on recorded *test* inputs."""
    from proxcompress.training.trainer import evaluate

    held = record_consumer(model, unit, test, samples=min(len(test), 256), seed=1)
    rows = []
    for method in methods:
        sel = select_channels(model, unit, keep, method, data, refit=True,  # type: ignore[arg-type]
                              **kwargs)
        row: dict[str, Any] = {"method": method, "kept": sel["kept"], "seconds": sel["seconds"]}
        for key in ("status", "gap", "nodes"):
            if key in sel:
                row[key] = sel[key]
        cols = np.isin(held.groups, sel["kept"])
        for label, selection in (("", sel), ("_no_refit", {"kept": sel["kept"]})):
            pruned = apply_selection(model, unit, selection)
            consumer = pruned.get_submodule(unit.consumers[0])
            W = consumer.weight.detach().double().reshape(consumer.weight.shape[0], -1).numpy()
            err = np.linalg.norm(held.Y - held.X[:, cols] @ W.T) / max(
                float(np.linalg.norm(held.Y)), 1e-30)
            row[f"test_accuracy{label}"] = evaluate(pruned, test)[0]
            row[f"reconstruction_error{label}"] = float(err)
        rows.append(row)
    return rows


__all__ = ["METHODS", "ConsumerData", "apply_selection", "compare_selections",
           "record_consumer", "select_channels"]
