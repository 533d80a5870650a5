"""Vision transformers for small images: a plain ViT and BinaryViT with its switches.

**Plain ViT** (Dosovitskiy et al., ICLR 2021; DeiT, Touvron et al., ICML 2021): a ``patch x
patch`` stride-``patch`` conv stem, a class token, learned position embeddings, pre-norm blocks
``x + Attn(LN(x))``, ``x + FFN(LN(x))`` with explicit ``nn.Linear`` query, key, value and
output projections (so a recipe can swap them) and a GELU FFN of width ``mlp_ratio * dim``, a
final norm and a linear classifier on the class token.

**Binary ViT** (``binary=True``) in the ReActNet style of BinaryViT's code (Le & Li, *BinaryViT:
Pushing Binary Vision Transformers Towards Convolutional Models*, CVPRW 2023, arXiv:2306.16678;
``Phuoc-Hoan-Le/BinaryViT``, ``transformer/modeling_vit_extra_res_pyramid.py``; methods.md
section 2): every linear becomes :class:`ReActLinear`,
``RPReLU(BN(Linear(x + move)) + shortcut(x))`` (a learnable input shift, BatchNorm over the
tokens, a real-valued shortcut: the identity, the input repeated along channels for an
expansion, the mean over groups of channels for a contraction; RPReLU = shift, PReLU, shift,
Liu et al., ReActNet, ECCV 2020); the recipe makes the linears binary (``quant.weights``,
per-row ``mean |w|`` scale) with binary inputs (``quant.activations``). Attention: Q, K, V are
such linears plus a learnable shift, binarized by :class:`ActivationQuantizer` sites (the
recipe's activation pair); ``softmax(Q K^T / sqrt(d))``; the probabilities on ``{0, alpha}``
with a learnable ``alpha`` (BiT-style, :class:`ProbQuantizer`); the context is
``RPReLU(BN(P V) + Q + K + V)`` (real-valued residuals, K and V upsampled when reduced) and goes
through the output :class:`ReActLinear`.

**BinaryViT's four changes** and two more, each a switch of :class:`~..config.ViTConfig`:

* ``pool="avg"``: global average pooling of the tokens instead of the class token;
* ``multipool``: four average-pooling branches (1x3, 3x1, 1x5, 5x1, stride 1, zero padding
  counted in the mean as ``nn.AvgPool2d``'s default) on the FFN's normalized input, each times
  its own zero-initialized LayerScale, added to the block output;
* ``affine``: LayerScale ``x * gamma + b`` (``gamma = layerscale`` = 0.1, ``b = 0`` at init)
  on the attention and FFN outputs before each main residual add;
* ``pyramid`` / several ``stages``: stages joined by a 2x2 stride-2 patch merging (binary:
  ``BN -> shift -> conv -> BN`` plus a real-valued shortcut ``avgpool 2x2`` with channels
  repeated, then RPReLU; full precision: ``conv -> BN``), new position embeddings per stage,
  and keys / values from ``sr x sr`` average-pooled tokens (``sr > 1``);
* ``norm="batch"``: BatchNorm over the tokens instead of LayerNorm;
* ``fp_patch_embed``: the patch merging convs stay full precision (BinaryViT's ``--some-fp``);
  the stem conv and the classifier always do (the recipe keeps the first and last layer).

Every module a block uses is either a container (its ``forward`` only calls submodules and
adds) or a *leaf* exported as one op of :mod:`proxcompress.kernels.model` (token layout
``(batch, tokens, channels)``), so ``proxcompress export`` runs a trained ViT on the kernels
with each node checked against torch.

[D] Differences from the BinaryViT code, documented in docs/decisions.md: the weights are
binarized by a catalogue pair (``sign`` of the latent, not of the row-centred latent), and the
activations' backward is the pair's (``bnn``: ``1{|x| <= 1}``, not Bi-Real's ApproxSign); the
ReActLinear of the output projection and of the FFN ends with RPReLU as every other one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from proxcompress.errors import InvalidInputError
from proxcompress.training.config import StageConfig, ViTConfig
from proxcompress.training.layers import ActivationQuantizer
from proxcompress.training.models.base import ChannelUnit, ModelSpec, PrunableModel
from proxcompress.training.recipes import keep_full_precision


# ------------------------------------------------------------------------ token leaf modules
class ToTokens(nn.Module):
    """``(B, C, H, W) -> (B, H W, C)`` (row-major token order)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(2).transpose(1, 2)


class ToMap(nn.Module):
    """``(B, H W, C) -> (B, C, H, W)`` for a ``grid = (H, W)`` token map."""

    def __init__(self, grid: tuple[int, int]) -> None:
        super().__init__()
        self.grid = (int(grid[0]), int(grid[1]))

    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *self.grid)


class ClassToken(nn.Module):
    """Prepend a learned token: ``(B, T, C) -> (B, T + 1, C)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.token, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=1)


class PositionEmbedding(nn.Module):
    """Add a learned ``(T, C)`` table (truncated normal, std 0.02, as DeiT)."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(1, tokens, dim))
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.table


class TokenBatchNorm(nn.Module):
    """BatchNorm over the tokens (statistics over batch and tokens, per channel; the last
    axis): BinaryViT's ``--replace-ln-bn`` and the BatchNorm of every :class:`ReActLinear`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class ChannelBias(nn.Module):
    """A learnable per-channel shift (ReActNet's "move"), channels on ``axis`` (-1 tokens, 1
    maps), zero at init."""

    def __init__(self, dim: int, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis
        self.bias = nn.Parameter(torch.zeros(dim))

    def _shape(self, x: Tensor) -> tuple[int, ...]:
        return (-1,) if self.axis == -1 else (-1,) + (1,) * (x.dim() - 2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bias.reshape(self._shape(x))


class LayerScale(nn.Module):
    """``x * gamma + b`` per channel (last axis), ``gamma = init``, ``b = 0`` (``bias=False``:
    no ``b``): BinaryViT's affine transform (CaiT's LayerScale plus a bias)."""

    def __init__(self, dim: int, init: float, bias: bool = True) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        y = x * self.gamma
        return y + self.bias if self.bias is not None else y


class RPReLU(nn.Module):
    """ReActNet's RPReLU: ``PReLU(x - gamma) + zeta`` per channel (``axis`` as
    :class:`ChannelBias`), written as shift, PReLU (slope 0.25 at init), shift."""

    def __init__(self, dim: int, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis
        self.shift_in = nn.Parameter(torch.zeros(dim))
        self.slope = nn.Parameter(torch.full((dim,), 0.25))
        self.shift_out = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        shape = (-1,) if self.axis == -1 else (-1,) + (1,) * (x.dim() - 2)
        y = x + self.shift_in.reshape(shape)
        # max(y, 0) + slope min(y, 0), written with two ReLUs (their backward is the cheapest)
        y = functional.relu(y) - functional.relu(-y) * self.slope.reshape(shape)
        return y + self.shift_out.reshape(shape)


class ChannelRepeat(nn.Module):
    """The shortcut of an expanding linear / conv: the channels (on ``axis``) repeated
    ``times`` times (``[x, x, ...]``)."""

    def __init__(self, times: int, axis: int = -1) -> None:
        super().__init__()
        self.times, self.axis = int(times), axis

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x] * self.times, dim=self.axis)


class ChannelGroupMean(nn.Module):
    """The shortcut of a contracting linear: channel ``j`` is the mean of channels
    ``j, j + C/g, ..., j + (g - 1) C/g`` (``g = groups``; the inverse of :class:`ChannelRepeat`
    on a repeated input)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = int(groups)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(*x.shape[:-1], self.groups, x.shape[-1] // self.groups).mean(-2)


class TokenPool(nn.Module):
    """Average pooling on the token grid (``(B, H W, C)`` in and out), zero padding counted in
    the mean (``nn.AvgPool2d``'s ``count_include_pad``)."""

    def __init__(self, grid: tuple[int, int], kernel: tuple[int, int],
                 stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0)) -> None:
        super().__init__()
        self.grid, self.kernel, self.stride, self.padding = grid, kernel, stride, padding

    def out_grid(self) -> tuple[int, int]:
        return tuple((g + 2 * p - k) // s + 1 for g, k, s, p in  # type: ignore[return-value]
                     zip(self.grid, self.kernel, self.stride, self.padding, strict=True))

    def forward(self, x: Tensor) -> Tensor:
        m = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *self.grid)
        y = functional.avg_pool2d(m, self.kernel, self.stride, self.padding)
        return y.flatten(2).transpose(1, 2)


class TokenUpsample(nn.Module):
    """Nearest-neighbour upsampling of a ``grid`` token map by ``factor``."""

    def __init__(self, grid: tuple[int, int], factor: int) -> None:
        super().__init__()
        self.grid, self.factor = grid, int(factor)

    def forward(self, x: Tensor) -> Tensor:
        m = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *self.grid)
        m = m.repeat_interleave(self.factor, 2).repeat_interleave(self.factor, 3)
        return m.flatten(2).transpose(1, 2)


class TokenMean(nn.Module):
    """Global average pooling of the tokens: ``(B, T, C) -> (B, C)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(1)


class SelectToken(nn.Module):
    """The class token: ``(B, T, C) -> (B, C)``, token ``index``."""

    def __init__(self, index: int = 0) -> None:
        super().__init__()
        self.index = int(index)

    def forward(self, x: Tensor) -> Tensor:
        return x[:, self.index]


class AttentionScores(nn.Module):
    """``softmax(Q K^T * scale)`` per head: ``(B, T, C), (B, T', C) -> (B, h, T, T')``.

    ``operands`` (set by the model) are the activation sites feeding ``Q`` and ``K``: the
    summary counts the product's MACs as binary when both quantize."""

    def __init__(self, heads: int, scale: float) -> None:
        super().__init__()
        self.heads, self.scale = int(heads), float(scale)
        self.operands: tuple[Any, ...] = ()

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        b, t, c = q.shape
        d = c // self.heads
        qh = q.reshape(b, t, self.heads, d).transpose(1, 2)
        kh = k.reshape(b, k.shape[1], self.heads, d).transpose(1, 2)
        return torch.softmax((qh @ kh.transpose(-2, -1)) * self.scale, dim=-1)

    def count_macs(self, inputs: tuple[Tensor, ...], output: Tensor) -> tuple[int, bool]:
        """MACs per sample and whether both operands are binary."""
        q, k = inputs
        return int(q.shape[1] * k.shape[1] * q.shape[2]), _binary(self.operands)


class AttentionContext(nn.Module):
    """``P V`` per head, heads merged: ``(B, h, T, T'), (B, T', C) -> (B, T, C)``."""

    def __init__(self, heads: int) -> None:
        super().__init__()
        self.heads = int(heads)
        self.operands: tuple[Any, ...] = ()

    def forward(self, p: Tensor, v: Tensor) -> Tensor:
        b, h, t, _ = p.shape
        vh = v.reshape(b, v.shape[1], h, v.shape[2] // h).transpose(1, 2)
        return (p @ vh).transpose(1, 2).reshape(b, t, v.shape[2])

    def count_macs(self, inputs: tuple[Tensor, ...], output: Tensor) -> tuple[int, bool]:
        p, v = inputs
        return int(p.shape[2] * p.shape[3] * v.shape[2]), _binary(self.operands)


def _binary(sites: tuple[Any, ...]) -> bool:
    return bool(sites) and all(getattr(s, "quantizer", None) is not None for s in sites)


class _RoundClamp(torch.autograd.Function):
    """``round(clamp(r, 0, 1))`` with the straight-through gradient of ``clamp(r, 0, 1)``."""

    @staticmethod
    def forward(ctx: Any, r: Tensor) -> Tensor:
        ctx.save_for_backward(r)
        return torch.round(torch.clamp(r, 0.0, 1.0))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (r,) = ctx.saved_tensors
        return grad * ((r >= 0) & (r <= 1)).to(grad.dtype)


class ProbQuantizer(nn.Module):
    """Attention probabilities on ``{0, alpha}``: ``alpha round(clamp(p / alpha, 0, 1))``
    (BiT, Liu et al., NeurIPS 2022; BinaryViT), ``alpha`` learnable (``init``), the gradient to
    ``p`` straight through on ``[0, alpha]`` and to ``alpha`` LSQ's ``round(r) - r`` inside, 1
    above (Esser et al., ICLR 2020). [D] ``alpha = exp(log_alpha)``: an optimizer step moves it
    by a factor, never through 0 (with Adam, a step of ``lr`` on ``alpha`` itself would cross 0
    from its initial 0.005 in a few steps at the learning rates used here)."""

    def __init__(self, init: float = 0.005) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(float(init))))

    def step(self) -> Tensor:
        """``alpha``."""
        return self.log_alpha.exp()

    def forward(self, p: Tensor) -> Tensor:
        alpha = self.step()
        return alpha * _RoundClamp.apply(p / alpha)


# ------------------------------------------------------------------------ composite modules
class ReActLinear(nn.Module):
    """``RPReLU(BN(Linear(x + move)) + shortcut(x))`` over tokens; the shortcut is the
    identity, :class:`ChannelRepeat` (``out = k in``) or :class:`ChannelGroupMean`
    (``in = k out``). The recipe makes ``linear`` binary (weights and inputs)."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.move = ChannelBias(d_in)
        self.linear = nn.Linear(d_in, d_out, bias=False)
        self.norm = TokenBatchNorm(d_out)
        self.shortcut: nn.Module
        if d_out == d_in:
            self.shortcut = nn.Identity()
        elif d_out % d_in == 0:
            self.shortcut = ChannelRepeat(d_out // d_in)
        elif d_in % d_out == 0:
            self.shortcut = ChannelGroupMean(d_in // d_out)
        else:
            raise InvalidInputError("model.vit", f"a binary linear {d_in} -> {d_out} needs one "
                                    "width to divide the other (real-valued shortcut)")
        self.act = RPReLU(d_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.linear(self.move(x))) + self.shortcut(x))


class Attention(nn.Module):
    """Multi-head self-attention with explicit ``q``, ``k``, ``v``, ``proj`` linears; keys and
    values from ``sr x sr`` average-pooled tokens when ``sr > 1`` (the class token, if any, is
    not in the map: pyramids use average pooling).

    Full precision: ``proj(softmax(q k^T / sqrt d) v)`` (reduced: ``k``, ``v`` of
    ``LN(Linear(pool(x)))``). Binary (``binary=True``): see the module docstring."""

    def __init__(self, dim: int, heads: int, grid: tuple[int, int], sr: int, binary: bool,
                 prob_alpha: float) -> None:
        super().__init__()
        self.binary, self.sr = binary, sr
        scale = (dim // heads) ** -0.5
        self.reduce: nn.Module | None = None
        self.reduce_proj: nn.Module | None = None
        self.up: nn.Module | None = None
        if sr > 1:
            self.reduce = TokenPool(grid, (sr, sr), (sr, sr))
            self.reduce_proj = ReActLinear(dim, dim) if binary else nn.Sequential(
                nn.Linear(dim, dim), nn.LayerNorm(dim))
            if binary:
                self.up = TokenUpsample((grid[0] // sr, grid[1] // sr), sr)
        self.scores = AttentionScores(heads, scale)
        self.context = AttentionContext(heads)
        self.q: nn.Module
        self.k: nn.Module
        self.v: nn.Module
        self.proj: nn.Module
        if not binary:
            self.q = nn.Linear(dim, dim)
            self.k = nn.Linear(dim, dim)
            self.v = nn.Linear(dim, dim)
            self.proj = nn.Linear(dim, dim)
            return
        self.q = ReActLinear(dim, dim)
        self.k = ReActLinear(dim, dim)
        self.v = ReActLinear(dim, dim)
        self.q_shift, self.k_shift, self.v_shift = ChannelBias(dim), ChannelBias(dim), \
            ChannelBias(dim)
        self.q_sign, self.k_sign, self.v_sign = ActivationQuantizer(), ActivationQuantizer(), \
            ActivationQuantizer()
        self.probs = ProbQuantizer(prob_alpha)
        self.context_norm = TokenBatchNorm(dim)
        self.context_act = RPReLU(dim)
        self.proj = ReActLinear(dim, dim)
        object.__setattr__(self.scores, "operands", (self.q_sign, self.k_sign))
        object.__setattr__(self.context, "operands", (self.v_sign,))

    def forward(self, x: Tensor) -> Tensor:
        kv = x
        if self.reduce is not None and self.reduce_proj is not None:
            kv = self.reduce_proj(self.reduce(x))
        if not self.binary:
            p = self.scores(self.q(x), self.k(kv))
            return self.proj(self.context(p, self.v(kv)))
        q = self.q_shift(self.q(x))
        k = self.k_shift(self.k(kv))
        v = self.v_shift(self.v(kv))
        p = self.probs(self.scores(self.q_sign(q), self.k_sign(k)))
        ctx = self.context_norm(self.context(p, self.v_sign(v)))
        if self.up is not None:
            k, v = self.up(k), self.up(v)
        ctx = self.context_act(ctx + q + k + v)
        return self.proj(ctx)


class FeedForward(nn.Module):
    """``fc2(GELU(fc1(x)))`` (full precision) or two :class:`ReActLinear` (binary: expansion
    with a repeated-input shortcut, contraction with a group-mean shortcut)."""

    def __init__(self, dim: int, ratio: int, binary: bool) -> None:
        super().__init__()
        hidden = dim * ratio
        if binary:
            self.fc1: nn.Module = ReActLinear(dim, hidden)
            self.act: nn.Module = nn.Identity()
            self.fc2: nn.Module = ReActLinear(hidden, dim)
        else:
            self.fc1 = nn.Linear(dim, hidden)
            self.act = nn.GELU()
            self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _norm(kind: str, dim: int) -> nn.Module:
    return nn.LayerNorm(dim) if kind == "layer" else TokenBatchNorm(dim)


#: BinaryViT's multi-pooling branches (kernel sizes; stride 1, "same" zero padding)
MULTIPOOL_KERNELS: tuple[tuple[int, int], ...] = ((1, 3), (3, 1), (1, 5), (5, 1))


class MultiPool(nn.Module):
    """``sum_i gamma_i * avgpool_i(x)`` over the patch tokens (:data:`MULTIPOOL_KERNELS`),
    each ``gamma_i`` a zero-initialized LayerScale (no bias); a class token (``cls``) gets 0."""

    def __init__(self, dim: int, grid: tuple[int, int], cls: bool) -> None:
        super().__init__()
        self.cls = cls
        self.patches = SelectPatches() if cls else nn.Identity()
        self.pools = nn.ModuleList(
            TokenPool(grid, k, (1, 1), (k[0] // 2, k[1] // 2)) for k in MULTIPOOL_KERNELS)
        self.scales = nn.ModuleList(LayerScale(dim, 0.0, bias=False) for _ in MULTIPOOL_KERNELS)
        self.pad = PrependZeroToken() if cls else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.patches(x)
        total = self.scales[0](self.pools[0](h))
        for pool, scale in zip(list(self.pools)[1:], list(self.scales)[1:], strict=True):
            total = total + scale(pool(h))
        return self.pad(total)


class SelectPatches(nn.Module):
    """Drop the class token: ``(B, 1 + T, C) -> (B, T, C)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x[:, 1:]


class PrependZeroToken(nn.Module):
    """Prepend a zero token: ``(B, T, C) -> (B, 1 + T, C)``."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x.new_zeros(x.shape[0], 1, x.shape[2]), x], dim=1)


class Block(nn.Module):
    """A pre-norm transformer block with BinaryViT's optional affine transforms and
    multi-pooling branches."""

    def __init__(self, stage: StageConfig, grid: tuple[int, int], vit: ViTConfig,
                 cls: bool) -> None:
        super().__init__()
        dim = stage.dim
        self.norm1 = _norm(vit.norm, dim)
        self.attn = Attention(dim, stage.heads, grid, stage.sr, vit.binary, vit.prob_alpha)
        self.scale1: nn.Module = LayerScale(dim, vit.layerscale) if vit.affine else nn.Identity()
        self.norm2 = _norm(vit.norm, dim)
        self.ffn = FeedForward(dim, stage.mlp_ratio, vit.binary)
        self.scale2: nn.Module = LayerScale(dim, vit.layerscale) if vit.affine else nn.Identity()
        self.multipool = MultiPool(dim, grid, cls) if vit.multipool else None

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.scale1(self.attn(self.norm1(x)))
        h = self.norm2(x)
        out = x + self.scale2(self.ffn(h))
        if self.multipool is not None:
            out = out + self.multipool(h)
        return out


class PatchMerge(nn.Module):
    """2x2 stride-2 patch merging between stages: ``(B, H W, C) -> (B, H W / 4, C')``, new
    position embeddings. Binary: ``RPReLU(BN(conv(BN(x) + move)) + repeat(avgpool(x)))``;
    full precision: ``BN(conv(x))``. ``fp``: the conv is pinned to full precision."""

    def __init__(self, d_in: int, d_out: int, grid: tuple[int, int], binary: bool,
                 fp: bool) -> None:
        super().__init__()
        out_grid = (grid[0] // 2, grid[1] // 2)
        self.to_map = ToMap(grid)
        self.binary = binary
        self.pre_norm: nn.Module = nn.BatchNorm2d(d_in) if binary else nn.Identity()
        self.move: nn.Module = ChannelBias(d_in, axis=1) if binary else nn.Identity()
        self.conv = nn.Conv2d(d_in, d_out, 2, stride=2, bias=False)
        if fp:
            keep_full_precision(self.conv)
        self.norm = nn.BatchNorm2d(d_out)
        self.shortcut: nn.Module | None = None
        self.act: nn.Module = nn.Identity()
        if binary:
            self.shortcut = nn.Sequential(nn.AvgPool2d(2), ChannelRepeat(d_out // d_in, axis=1))
            self.act = RPReLU(d_out, axis=1)
        self.to_tokens = ToTokens()
        self.pos = PositionEmbedding(out_grid[0] * out_grid[1], d_out)

    def forward(self, x: Tensor) -> Tensor:
        m = self.to_map(x)
        y = self.norm(self.conv(self.move(self.pre_norm(m))))
        if self.shortcut is not None:
            y = y + self.shortcut(m)
        return self.pos(self.to_tokens(self.act(y)))


class VisionTransformer(PrunableModel):
    """A ViT / BinaryViT for ``image_size x image_size`` inputs (module docstring).

    Args:
        in_channels, image_size, classes: the data.
        vit: the architecture and its switches (:class:`~..config.ViTConfig`).
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, classes: int = 10,
                 vit: ViTConfig | None = None) -> None:
        super().__init__()
        self.config = vit = vit or ViTConfig()
        patch, stages = vit.resolved()
        if image_size % patch:
            raise InvalidInputError("model.vit.patch", f"= {patch} must divide the image size "
                                    f"{image_size}")
        grid = (image_size // patch, image_size // patch)
        cls = vit.pool == "cls"
        if cls and len(stages) > 1:
            raise InvalidInputError("model.vit.pool", "a pyramid needs pool: avg")
        dim = stages[0].dim
        self.stem = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.stem_tokens = ToTokens()
        self.cls_token: nn.Module = ClassToken(dim) if cls else nn.Identity()
        self.pos = PositionEmbedding(grid[0] * grid[1] + int(cls), dim)
        self.grids: list[tuple[int, int]] = []
        layers: list[nn.Module] = []
        for i, stage in enumerate(stages):
            if i:
                layers.append(PatchMerge(stages[i - 1].dim, stage.dim, grid, vit.binary,
                                         vit.fp_patch_embed))
                grid = (grid[0] // 2, grid[1] // 2)
            self.grids.append(grid)
            layers += [Block(stage, grid, vit, cls) for _ in range(stage.depth)]
        self.blocks = nn.Sequential(*layers)
        last = stages[-1].dim
        self.norm = _norm(vit.norm, last)
        self.pool: nn.Module = SelectToken(0) if cls else TokenMean()
        self.head = nn.Linear(last, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pos(self.cls_token(self.stem_tokens(self.stem(x))))
        x = self.blocks(x)
        return self.head(self.pool(self.norm(x)))

    def units(self) -> list[ChannelUnit]:
        """No SPR channel units (structured pruning of attention is not wired)."""
        return []


def _options(raw: Any) -> ViTConfig:
    if raw is None:
        return ViTConfig()
    if isinstance(raw, ViTConfig):
        return raw
    if isinstance(raw, Mapping):
        from proxcompress.training.config import _build

        return _build("model.vit", dict(raw), ViTConfig)  # type: ignore[no-any-return]
    raise InvalidInputError("model.vit", f"must be a mapping, got {type(raw).__name__}")


def build(spec: ModelSpec) -> VisionTransformer:
    """``model.name: vit`` (the ``model.vit`` section, ``spec.options["vit"]``)."""
    return VisionTransformer(spec.in_channels, spec.image_size, spec.classes,
                             _options(spec.options.get("vit")))


__all__ = ["MULTIPOOL_KERNELS", "Attention", "AttentionContext", "AttentionScores", "Block",
           "ChannelBias", "ChannelGroupMean", "ChannelRepeat", "ClassToken", "FeedForward",
           "LayerScale", "MultiPool", "PatchMerge", "PositionEmbedding", "PrependZeroToken",
           "ProbQuantizer", "RPReLU", "ReActLinear", "SelectPatches", "SelectToken", "ToMap",
           "ToTokens", "TokenBatchNorm", "TokenMean", "TokenPool", "TokenUpsample",
           "VisionTransformer", "build"]
