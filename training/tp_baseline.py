"""Torch-Pruning's group magnitude pruner as the baseline of SPR (the optional ``bench``
extra: ``pip install proxcompress[bench]``).

Torch-Pruning (Fang, Ma, Song, Mi, Wang, *DepGraph: Towards Any Structural Pruning*, CVPR 2023;
``VainF/Torch-Pruning``) groups the parameters that must be pruned together with a channel (the
producer's rows, its BatchNorm entries, the consumers' input slices) by tracing the model
(``DependencyGraph``), and ranks channels with ``GroupMagnitudeImportance(p=2)``: the L2 norms of
the channel's slices in every member of the group, averaged over the group (its default
"group norm"). :func:`magnitude_keep` ranks each unit's channels with exactly that importance and
keeps the ``k`` best; the trainer removes the others with the suite's own
:func:`~proxcompress.training.pruning.prune_channels` (the same physical removal as SPR's, so
checkpoints and ``--resume`` work unchanged). Tested: the kept channels are those that
Torch-Pruning's own ``MagnitudePruner`` keeps at the same per-layer ratios, and the two pruned
models compute the same outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from proxcompress.errors import InvalidInputError
from proxcompress.training.models import ChannelUnit


def torch_pruning() -> Any:
    """The ``torch_pruning`` module, or a clear error naming the extra that installs it."""
    try:
        import torch_pruning as tp
    except ImportError:
        raise InvalidInputError("spr.method", "= magnitude needs Torch-Pruning, an optional "
                                "dependency: pip install 'proxcompress[bench]' (or "
                                "torch-pruning)") from None
    return tp


def _out_channels_fn(tp: Any, module: nn.Module) -> Any:
    if isinstance(module, nn.modules.conv._ConvNd):
        return tp.prune_conv_out_channels
    if isinstance(module, nn.Linear):
        return tp.prune_linear_out_channels
    raise InvalidInputError("spr.units", f"{type(module).__name__} is not a conv or linear "
                            "producer")


def magnitude_scores(model: nn.Module, units: Sequence[ChannelUnit], example: torch.Tensor
                     ) -> dict[str, torch.Tensor]:
    """Torch-Pruning's group-norm importance (``GroupMagnitudeImportance(p=2)``) of every
    channel of each unit."""
    tp = torch_pruning()
    was = model.training
    model.eval()
    with torch.enable_grad():
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    importance = tp.importance.GroupMagnitudeImportance(p=2)
    out = {}
    for unit in units:
        producer = model.get_submodule(unit.producer)
        weight = producer.weight
        assert isinstance(weight, torch.Tensor)
        n = int(weight.shape[0])
        group = graph.get_pruning_group(producer, _out_channels_fn(tp, producer),
                                        idxs=list(range(n)))
        out[unit.name] = importance(group).detach().cpu()
    model.train(was)
    return out


def magnitude_keep(model: nn.Module, units: Sequence[ChannelUnit], counts: Sequence[int],
                   example: torch.Tensor) -> dict[str, list[int]]:
    """The ``counts[i]`` channels of ``units[i]`` with the largest group-norm importance, in
    increasing order (ties: the lower index).

    Raises:
        InvalidInputError (field ``spr.keep_counts``): a count per unit, each in ``[1, C]``.
    """
    if len(counts) != len(units):
        raise InvalidInputError("spr.keep_counts", f"has {len(counts)} entries for "
                                f"{len(units)} units ({', '.join(u.name for u in units)})")
    scores = magnitude_scores(model, units, example)
    keep = {}
    for unit, k in zip(units, counts, strict=True):
        s = scores[unit.name]
        if not 1 <= k <= s.numel():
            raise InvalidInputError("spr.keep_counts", f"{k} for {unit.name} is outside "
                                    f"[1, {s.numel()}]")
        order = sorted(range(s.numel()), key=lambda j: (-float(s[j]), j))
        keep[unit.name] = sorted(order[:k])
    return keep


__all__ = ["magnitude_keep", "magnitude_scores", "torch_pruning"]
