"""Structured pruning for real: channel masks, *physical* removal, and the shared helpers.

Removing channel ``j`` of a :class:`~proxcompress.training.models.ChannelUnit` deletes row ``j``
of the producer (weight and bias), entry ``j`` of its BatchNorm (``gamma``, ``beta``, running
statistics) and the matching input slice of every consumer. :func:`mask_channels` is the
reference: it zeroes the producer row, its bias and ``gamma``, ``beta``, so the channel's output
after BatchNorm is exactly 0, and after any activation with ``act(0) = 0`` (ReLU, hard-tanh,
``sign``) the consumers read 0 from it. :func:`prune_channels` then yields a smaller model whose
outputs equal the masked model's (tested), the principle of Torch-Pruning (Fang et al., CVPR
2023): prune for real, not with masks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from proxcompress.errors import InvalidInputError
from proxcompress.training.layers import QuantizedMixin
from proxcompress.training.models import ChannelUnit


def unit_by_name(model: nn.Module, name: str) -> ChannelUnit:
    """The unit called ``name`` of a :class:`~proxcompress.training.models.PrunableModel`."""
    units = model.units()  # type: ignore[operator]
    for unit in units:
        if unit.name == name:
            return unit
    raise InvalidInputError("unit", f"{name!r} is not a unit; accepted: "
                            f"{', '.join(u.name for u in units)}")


def group_tensors(model: nn.Module, unit: ChannelUnit, with_norm: bool = True) -> list[Tensor]:
    """The tensors of the unit's groups, one row per channel: the producer's weight rows
    (flattened), its bias, and (``with_norm``) the BatchNorm ``gamma`` and ``beta``.

    Each returned tensor has shape ``(C, k)``; the group of channel ``j`` is the concatenation
    of row ``j`` of all of them. Gradients flow (they are views of the parameters).
    """
    producer = model.get_submodule(unit.producer)
    parts = [producer.weight.reshape(producer.weight.shape[0], -1)]
    if getattr(producer, "bias", None) is not None:
        parts.append(producer.bias.reshape(-1, 1))
    if with_norm and unit.norm is not None:
        norm = model.get_submodule(unit.norm)
        if isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.affine:
            parts += [norm.weight.reshape(-1, 1), norm.bias.reshape(-1, 1)]
    return parts


def channel_count(model: nn.Module, unit: ChannelUnit) -> int:
    """Current number of output channels of the unit's producer."""
    return int(model.get_submodule(unit.producer).weight.shape[0])


@torch.no_grad()
def mask_channels(model: nn.Module, unit: ChannelUnit, keep: Tensor | Sequence[bool]) -> None:
    """Zero, in place, the groups of the channels with ``keep[j] == False`` (weights, bias,
    BatchNorm ``gamma`` and ``beta``)."""
    keep_t = torch.as_tensor(keep, dtype=torch.bool)
    if keep_t.numel() != channel_count(model, unit):
        raise InvalidInputError("keep", f"has {keep_t.numel()} entries; the unit has "
                                f"{channel_count(model, unit)} channels")
    drop = ~keep_t
    for tensor in group_tensors(model, unit):
        tensor[drop] = 0.0


def _slice_param(module: nn.Module, name: str, index: Tensor, dim: int) -> None:
    old = getattr(module, name)
    if old is None:
        return
    new = old.detach().index_select(dim, index.to(old.device)).clone()
    if isinstance(old, nn.Parameter):
        setattr(module, name, nn.Parameter(new, requires_grad=old.requires_grad))
    else:
        module.register_buffer(name, new)


@torch.no_grad()
def prune_channels(model: nn.Module, unit: ChannelUnit, keep: Iterable[int]) -> list[int]:
    """Physically remove every channel of ``unit`` not in ``keep`` (indices into the current
    channels); returns the sorted kept indices. At least one channel is kept.

    The producer (``nn.Linear`` / ``nn.Conv2d`` or their binary twins) loses output rows, the
    BatchNorm its entries, the consumers input columns (``spatial`` columns per channel for a
    linear layer after a flatten). Any optimizer over the old parameters must be rebuilt.

    Raises:
        InvalidInputError: an index out of range or an empty ``keep``.
    """
    n = channel_count(model, unit)
    kept = sorted({int(i) for i in keep})
    if not kept:
        raise InvalidInputError("keep", "is empty; at least one channel must be kept")
    if kept[0] < 0 or kept[-1] >= n:
        raise InvalidInputError("keep", f"indices must lie in 0..{n - 1}")
    index = torch.tensor(kept, dtype=torch.long)
    producer = model.get_submodule(unit.producer)
    _slice_param(producer, "weight", index, 0)
    _slice_param(producer, "bias", index, 0)
    if isinstance(producer, QuantizedMixin):
        _slice_param(producer, "scale_extra", index, 0)
    if isinstance(producer, nn.Conv2d):
        producer.out_channels = len(kept)
    else:
        producer.out_features = len(kept)
    if unit.norm is not None:
        norm = model.get_submodule(unit.norm)
        if isinstance(norm, nn.modules.batchnorm._BatchNorm):
            for name in ("weight", "bias", "running_mean", "running_var"):
                _slice_param(norm, name, index, 0)
            norm.num_features = len(kept)
    for consumer_name, spatial in zip(unit.consumers, unit.spatial, strict=True):
        consumer = model.get_submodule(consumer_name)
        cols = (index[:, None] * spatial + torch.arange(spatial)[None, :]).reshape(-1)
        if isinstance(consumer, QuantizedMixin):
            # keep the per-channel scale of the removed columns (see layers.QuantizedMixin)
            removed = torch.ones(consumer.weight.shape[1], dtype=torch.bool)
            removed[cols] = False
            extra = consumer.weight.detach()[:, removed].abs()
            consumer.scale_extra += extra.reshape(extra.shape[0], -1).sum(dim=1)
        _slice_param(consumer, "weight", cols, 1)
        if isinstance(consumer, nn.Conv2d):
            if consumer.groups != 1:
                raise InvalidInputError("unit", "grouped convolutions are not supported")
            consumer.in_channels = len(kept)
        else:
            consumer.in_features = len(kept) * spatial
    return kept


def apply_pruning(model: nn.Module, kept: Mapping[str, Sequence[int]]) -> None:
    """Re-apply a recorded pruning ``{unit name: kept indices}`` (e.g. from a checkpoint)."""
    for name, indices in kept.items():
        prune_channels(model, unit_by_name(model, name), indices)


def total_channels(model: nn.Module) -> int:
    """Sum of the units' current channel counts."""
    return sum(channel_count(model, u) for u in model.units())  # type: ignore[operator]


__all__ = [
    "apply_pruning",
    "channel_count",
    "group_tensors",
    "mask_channels",
    "prune_channels",
    "total_channels",
    "unit_by_name",
]
