"""``TTLSTM``: an ``nn.LSTM`` whose weight matrices are tensor trains (MPS or MPO).

Layer ``l`` (direction ``s``) of an LSTM has ``W_ih`` ``(4H, D_l)`` and ``W_hh`` ``(4H, H)``, the
gates stacked in PyTorch's order ``(i, f, g, o)``:

    i, f, g, o = split(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g),   h_t = sigmoid(o) * tanh(c_t).

Each of the two matrices follows a :class:`TTSpec`: ``form`` ``mps``, ``mpo``, ``lowrank`` (the
two-core factorization ``W = U V``) or ``dense`` (kept as it is); ``split`` ``stack`` (one train
for the ``4H`` rows) or ``gate`` (one train per gate, ``H`` rows each); ranks and modes. The
biases stay dense. Everything else -- arguments, input and output shapes, ``batch_first``,
multiple layers, inter-layer dropout, bidirectional, ``PackedSequence`` -- is ``nn.LSTM``'s.

Two forward paths, same values (tested):

* ``dense``: rebuild ``W_ih`` and ``W_hh`` from the cores (differentiably) and run PyTorch's
  fused LSTM with them (``torch.func.functional_call`` on a parameterless ``nn.LSTM``); the
  rebuild costs one ``to_dense`` per matrix and forward, whatever the sequence length.
* ``contract``: ``W_ih x_t`` for all time steps at once and ``W_hh h_{t-1}`` step by step by
  contracting the cores with the inputs (no dense matrix anywhere).

``path = "auto"`` (default) takes ``dense`` in training mode (the fused kernel's backward) and,
in eval mode, the path with fewer FLOPs for the input at hand (``contract`` for one token at a
time, ``dense`` for long sequences at large ranks). ``PackedSequence`` inputs always take
``dense``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as functional
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from proxcompress.errors import InvalidInputError
from proxcompress.training.tensor_train.linear import MPS_LAYOUTS, PATHS, TT_FORMS, TTLinear

#: matrix forms of a TTSpec (``lowrank``: the two-core blocked MPS ``W = U V``)
SPEC_FORMS = ("mps", "mpo", "lowrank", "dense")
#: how the four gates' rows are factorized: one train for the stack or one per gate
SPLITS = ("stack", "gate")
GATES = 4


@dataclass(frozen=True)
class TTSpec:
    """How one LSTM matrix is parametrized (module docstring).

    Attributes:
        form: ``mps`` (default), ``mpo``, ``lowrank`` or ``dense``.
        ranks: bond ranks (one integer, or one per bond), capped per bond.
        num_modes: modes per dimension when ``in_modes`` / ``out_modes`` are ``None``.
        layout: MPS leg order (``interleaved`` or ``blocked``, [U]; docs/decisions.md).
        split: ``stack`` (one train for ``4H`` rows) or ``gate`` (one per gate).
        in_modes, out_modes: explicit modes (``out_modes`` of the rows of one train: ``4H`` with
            ``stack``, ``H`` with ``gate``); ``None`` factors the sizes (``factor_modes``).
    """

    form: str = "mps"
    ranks: int | tuple[int, ...] = 8
    num_modes: int = 3
    layout: str = "interleaved"
    split: str = "stack"
    in_modes: tuple[int, ...] | None = None
    out_modes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.form not in SPEC_FORMS:
            raise InvalidInputError("form", f"= {self.form!r}; accepted: {', '.join(SPEC_FORMS)}")
        if self.split not in SPLITS:
            raise InvalidInputError("split", f"= {self.split!r}; accepted: {', '.join(SPLITS)}")
        if self.layout not in MPS_LAYOUTS:
            raise InvalidInputError("layout", f"= {self.layout!r}; accepted: "
                                    f"{', '.join(MPS_LAYOUTS)}")
        if not isinstance(self.ranks, int):
            object.__setattr__(self, "ranks", tuple(self.ranks))
        for name in ("in_modes", "out_modes"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))

    def layer_kwargs(self, in_features: int, rows: int) -> tuple[type[TTLinear], dict[str, Any]]:
        """The TT class and its keyword arguments for a ``rows x in_features`` train."""
        if self.form == "lowrank":
            return TT_FORMS["mps"], {"in_modes": (in_features,), "out_modes": (rows,),
                                     "layout": "blocked"}
        kwargs: dict[str, Any] = {"num_modes": self.num_modes, "in_modes": self.in_modes,
                                  "out_modes": self.out_modes}
        if self.form == "mps":
            kwargs["layout"] = self.layout
        return TT_FORMS[self.form], kwargs


#: ``TTLSTM(input_size, hidden_size)``'s default for both matrices: MPS, interleaved layout,
#: 3 modes per dimension, ranks 8, one train per gate stack
DEFAULT_SPEC = TTSpec()


class GateMatrix(nn.Module):
    """One LSTM matrix ``(4H, D)``: dense, one train for the stack, or one train per gate."""

    def __init__(self, in_features: int, hidden: int, spec: TTSpec, init_std: float,
                 factory: dict[str, Any]) -> None:
        super().__init__()
        self.in_features = in_features
        self.hidden = hidden
        self.spec = spec
        self.weight: nn.Parameter | None = None
        self.trains = nn.ModuleList()
        if spec.form == "dense":
            self.weight = nn.Parameter(torch.empty(GATES * hidden, in_features, **factory))
            nn.init.uniform_(self.weight, -math.sqrt(3.0) * init_std, math.sqrt(3.0) * init_std)
            return
        rows = GATES * hidden if spec.split == "stack" else hidden
        cls, kwargs = spec.layer_kwargs(in_features, rows)
        for _ in range(1 if spec.split == "stack" else GATES):
            self.trains.append(cls(in_features, rows, spec.ranks, bias=False, init_std=init_std,
                                   **factory, **kwargs))

    @classmethod
    def from_dense(cls, weight: Tensor, spec: TTSpec) -> GateMatrix:
        """The TT-SVD of ``weight`` ``(4H, D)`` (per stack or per gate) at ``spec``'s ranks."""
        rows, in_features = (int(s) for s in weight.shape)
        hidden = rows // GATES
        out = cls(in_features, hidden, replace(spec), 0.0,
                  {"device": weight.device, "dtype": weight.dtype})
        if spec.form == "dense":
            assert out.weight is not None
            with torch.no_grad():
                out.weight.copy_(weight)
            return out
        blocks = [weight] if spec.split == "stack" else list(weight.chunk(GATES, 0))
        tt_cls, kwargs = spec.layer_kwargs(in_features, blocks[0].shape[0])
        out.trains = nn.ModuleList(tt_cls.from_dense(b, spec.ranks, **kwargs) for b in blocks)
        return out

    def _trains(self) -> list[TTLinear]:
        return [t for t in self.trains if isinstance(t, TTLinear)]

    def to_dense(self) -> Tensor:
        """``W`` ``(4H, D)``."""
        if self.weight is not None:
            return self.weight
        mats = [t.to_dense() for t in self._trains()]
        return mats[0] if len(mats) == 1 else torch.cat(mats, 0)

    def contract(self, x: Tensor) -> Tensor:
        """``x W^T`` for ``x`` ``(B, D)`` without ``W`` (a dense matrix multiplies)."""
        if self.weight is not None:
            return x @ self.weight.T
        outs = [t.contract(x) for t in self._trains()]
        return outs[0] if len(outs) == 1 else torch.cat(outs, -1)

    def flops(self, batch: int) -> int:
        if self.weight is not None:
            return 2 * batch * self.weight.numel()
        return sum(t.flops(batch) for t in self._trains())

    def rebuild_flops(self) -> int:
        return sum(t.rebuild_flops() for t in self._trains())

    def num_parameters(self) -> int:
        if self.weight is not None:
            return self.weight.numel()
        return sum(t.num_parameters() for t in self._trains())


class TTLSTM(nn.Module):
    """A drop-in ``nn.LSTM`` with tensor-train weight matrices (module docstring).

    Args:
        input_size: as ``nn.LSTM``.
        hidden_size: as ``nn.LSTM``.
        num_layers: as ``nn.LSTM``.
        bias: as ``nn.LSTM``.
        batch_first: as ``nn.LSTM``.
        dropout: as ``nn.LSTM``.
        bidirectional: as ``nn.LSTM``.
        proj_size: as ``nn.LSTM`` (must be 0).
        device: as ``nn.LSTM``.
        dtype: as ``nn.LSTM``.
        ih: :class:`TTSpec` of the input-to-hidden matrices (default :data:`DEFAULT_SPEC`;
            ``TTSpec(form="dense")`` keeps it dense).
        hh: :class:`TTSpec` of the hidden-to-hidden matrices (default as ``ih``).
        path: ``auto`` (default), ``dense`` or ``contract``.

    Initial weights have ``nn.LSTM``'s variance (entries of std ``1 / sqrt(3 H)``); biases are
    ``U(-1/sqrt(H), 1/sqrt(H))`` as in ``nn.LSTM``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device: Any = None,
                 dtype: torch.dtype | None = None, *, ih: TTSpec | None = None,
                 hh: TTSpec | None = None, path: str = "auto") -> None:
        super().__init__()
        for name, v, low in (("input_size", input_size, 1), ("hidden_size", hidden_size, 1),
                             ("num_layers", num_layers, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise InvalidInputError(name, f"= {v!r}; accepted: an integer >= {low}")
        if proj_size != 0:
            raise InvalidInputError("proj_size", f"= {proj_size!r}; TTLSTM supports 0 only")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout <= 1):
            raise InvalidInputError("dropout", f"= {dropout!r}; accepted: a number in [0, 1]")
        if path not in PATHS:
            raise InvalidInputError("path", f"= {path!r}; accepted: {', '.join(PATHS)}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = 0
        self.ih_spec = ih or DEFAULT_SPEC
        self.hh_spec = hh or DEFAULT_SPEC
        self.path = path
        factory = {"device": device, "dtype": dtype}
        std = 1.0 / math.sqrt(3.0 * hidden_size)
        self.matrices = nn.ModuleDict()
        bound = 1.0 / math.sqrt(hidden_size)
        for layer in range(num_layers):
            in_l = input_size if layer == 0 else hidden_size * self.directions
            for suffix in self._suffixes(layer):
                self.matrices["ih" + suffix] = GateMatrix(in_l, hidden_size, self.ih_spec, std,
                                                          factory)
                self.matrices["hh" + suffix] = GateMatrix(hidden_size, hidden_size,
                                                          self.hh_spec, std, factory)
                if bias:
                    for kind in ("ih", "hh"):
                        b = nn.Parameter(torch.empty(4 * hidden_size, **factory))
                        nn.init.uniform_(b, -bound, bound)
                        self.register_parameter(f"bias_{kind}{suffix}", b)
        skeleton = nn.LSTM(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                           bidirectional, device="meta")
        self._skeleton = [skeleton]  # a list: not a submodule (no parameters, no state)

    def _matrix(self, name: str) -> GateMatrix:
        m = self.matrices[name]
        assert isinstance(m, GateMatrix)
        return m

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}"] + ([f"_l{layer}_reverse"] if self.bidirectional else [])

    # ------------------------------------------------------------------------ construction
    @classmethod
    def from_lstm(cls, lstm: nn.LSTM, ih: TTSpec | None = None, hh: TTSpec | None = None,
                  path: str = "auto") -> TTLSTM:
        """The TT-SVD of every matrix of ``lstm`` at the specs' ranks (equal to ``lstm``, up to
        round-off, at the full ranks), biases copied."""
        if not isinstance(lstm, nn.LSTM):
            raise InvalidInputError("lstm", "must be an nn.LSTM")
        if lstm.proj_size:
            raise InvalidInputError("lstm", "has proj_size > 0, which TTLSTM does not support")
        p = next(lstm.parameters())
        out = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bias,
                  lstm.batch_first, lstm.dropout, lstm.bidirectional, device="meta",
                  dtype=p.dtype, ih=ih, hh=hh, path=path)
        for layer in range(lstm.num_layers):
            for suffix in out._suffixes(layer):
                for kind, spec in (("ih", out.ih_spec), ("hh", out.hh_spec)):
                    w = getattr(lstm, f"weight_{kind}{suffix}").detach()
                    out.matrices[kind + suffix] = GateMatrix.from_dense(w, spec)
                    if lstm.bias:
                        b = getattr(lstm, f"bias_{kind}{suffix}").detach().clone()
                        out.register_parameter(f"bias_{kind}{suffix}", nn.Parameter(b))
        return out

    def dense_weights(self) -> dict[str, Tensor]:
        """``nn.LSTM``'s parameters by name, the weights rebuilt from the cores."""
        out: dict[str, Tensor] = {}
        for layer in range(self.num_layers):
            for suffix in self._suffixes(layer):
                for kind in ("ih", "hh"):
                    out[f"weight_{kind}{suffix}"] = self._matrix(kind + suffix).to_dense()
                if self.bias:
                    out[f"bias_ih{suffix}"] = getattr(self, f"bias_ih{suffix}")
                    out[f"bias_hh{suffix}"] = getattr(self, f"bias_hh{suffix}")
        return out

    def to_lstm(self) -> nn.LSTM:
        """An ``nn.LSTM`` holding the rebuilt weights (deployment as a dense model)."""
        p = next(self.parameters())
        lstm = nn.LSTM(self.input_size, self.hidden_size, self.num_layers, self.bias,
                       self.batch_first, self.dropout, self.bidirectional, device=p.device,
                       dtype=p.dtype)
        with torch.no_grad():
            for name, value in self.dense_weights().items():
                getattr(lstm, name).copy_(value)
        return lstm.train(self.training)

    # ------------------------------------------------------------------------------ counts
    def num_parameters(self) -> int:
        """Closed form: the matrices' parameters plus ``8 H`` biases per layer and direction."""
        biases = 8 * self.hidden_size * self.num_layers * self.directions if self.bias else 0
        return sum(m.num_parameters() for m in self.matrices.values()) + biases  # type: ignore[operator]

    @staticmethod
    def dense_parameters(input_size: int, hidden_size: int, num_layers: int = 1,
                         bias: bool = True, bidirectional: bool = False) -> int:
        """``nn.LSTM``'s parameter count for the same arguments."""
        d = 2 if bidirectional else 1
        total = 0
        for layer in range(num_layers):
            in_l = input_size if layer == 0 else hidden_size * d
            total += d * 4 * hidden_size * (in_l + hidden_size + (2 if bias else 0))
        return total

    def flops_per_step(self, batch: int, path: str = "contract") -> int:
        """FLOPs of the matrix products of one time step for ``batch`` sequences (``contract``:
        the contracted products; ``dense``: with rebuilt matrices, rebuild excluded)."""
        total = 0
        for m in self.matrices.values():
            assert isinstance(m, GateMatrix)
            total += m.flops(batch) if path == "contract" else \
                2 * batch * GATES * self.hidden_size * m.in_features
        return total

    def _use_dense(self, steps: int, batch: int) -> bool:
        if self.path != "auto":
            return self.path == "dense"
        if self.training:
            return True
        contract = rebuild = 0
        for name, m in self.matrices.items():
            assert isinstance(m, GateMatrix)
            if name.startswith("ih"):
                contract += m.flops(steps * batch)
            else:
                contract += steps * m.flops(batch)
            rebuild += m.rebuild_flops() + 2 * steps * batch * GATES * self.hidden_size \
                * m.in_features
        return rebuild < contract

    # ----------------------------------------------------------------------------- forward
    def forward(self, input: Tensor | PackedSequence,
                hx: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor | PackedSequence, tuple[Tensor, Tensor]]:
        skeleton = self._skeleton[0]
        if isinstance(input, PackedSequence):
            skeleton.train(self.training)
            return torch.func.functional_call(skeleton, self.dense_weights(), (input, hx))
        if input.dim() not in (2, 3) or input.shape[-1] != self.input_size:
            raise InvalidInputError("input", f"has shape {tuple(input.shape)}; accepted: "
                                    f"(L, {self.input_size}) or 3-D with last dimension "
                                    f"{self.input_size}")
        batch_dim = 0 if self.batch_first else 1
        steps = input.shape[1 - batch_dim] if input.dim() == 3 else input.shape[0]
        batch = input.shape[batch_dim] if input.dim() == 3 else 1
        if self._use_dense(int(steps), int(batch)):
            skeleton.train(self.training)
            return torch.func.functional_call(skeleton, self.dense_weights(), (input, hx))
        return self._contract_forward(input, hx)

    def _contract_forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None
                          ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        unbatched = input.dim() == 2
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first
                                                  else input)
        batch = int(x.shape[1])
        n_states = self.num_layers * self.directions
        if hx is None:
            zeros = x.new_zeros(n_states, batch, self.hidden_size)
            h0, c0 = zeros, zeros
        else:
            h0, c0 = hx
            if unbatched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
            expected = (n_states, batch, self.hidden_size)
            if tuple(h0.shape) != expected or tuple(c0.shape) != expected:
                raise InvalidInputError("hx", f"shapes {tuple(h0.shape)}, {tuple(c0.shape)}; "
                                        f"expected {expected} each")
        h_out, c_out = [], []
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(self._suffixes(layer)):
                k = layer * self.directions + d
                seq, (h, c) = self._run_direction(layer_in, suffix, h0[k], c0[k], reverse=d == 1)
                outs.append(seq)
                h_out.append(h)
                c_out.append(c)
            layer_in = outs[0] if len(outs) == 1 else torch.cat(outs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_in = functional.dropout(layer_in, self.dropout, True)
        output = layer_in
        hn, cn = torch.stack(h_out), torch.stack(c_out)
        if unbatched:
            return output.squeeze(1), (hn.squeeze(1), cn.squeeze(1))
        if self.batch_first:
            output = output.transpose(0, 1)
        return output, (hn, cn)

    def _run_direction(self, x: Tensor, suffix: str, h: Tensor, c: Tensor, reverse: bool
                       ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        steps, batch = int(x.shape[0]), int(x.shape[1])
        ih, hh = self._matrix("ih" + suffix), self._matrix("hh" + suffix)
        gx = ih.contract(x.reshape(steps * batch, -1)).reshape(steps, batch, -1)
        if self.bias:
            gx = gx + getattr(self, f"bias_ih{suffix}") + getattr(self, f"bias_hh{suffix}")
        outs: list[Tensor] = [x.new_empty(0)] * steps
        order: Sequence[int] = range(steps - 1, -1, -1) if reverse else range(steps)
        for t in order:
            gates = gx[t] + hh.contract(h)
            i, f, g, o = gates.chunk(GATES, -1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs[t] = h
        return torch.stack(outs), (h, c)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bias={self.bias}, batch_first={self.batch_first}, dropout={self.dropout}, "
                f"bidirectional={self.bidirectional}, ih={self.ih_spec}, hh={self.hh_spec}, "
                f"path={self.path!r}")


def spec_for_budget(input_size: int, hidden_size: int, spec: TTSpec, budget: int,
                    num_layers: int = 1, matrices: tuple[str, ...] = ("ih", "hh"),
                    max_rank: int = 4096) -> tuple[TTSpec, int]:
    """``(spec with the largest uniform rank, its parameter count)`` such that the
    ``TTLSTM(input_size, hidden_size, num_layers)`` whose ``matrices`` follow it (the others
    dense) holds at most ``budget`` parameters (biases included); the rank-1 spec when even it
    does not fit. Parameter counts grow with the rank, so a bisection finds it (counted in
    closed form on the ``meta`` device, nothing allocated)."""
    dense = TTSpec("dense")

    def count(rank: int) -> int:
        s = replace(spec, ranks=rank)
        model = TTLSTM(input_size, hidden_size, num_layers, device="meta",
                       ih=s if "ih" in matrices else dense, hh=s if "hh" in matrices else dense)
        return model.num_parameters()

    low, high = 1, max_rank
    if count(low) > budget:
        return replace(spec, ranks=low), count(low)
    while low < high:  # count(low) <= budget
        mid = (low + high + 1) // 2
        if count(mid) <= budget:
            low = mid
        else:
            high = mid - 1
    return replace(spec, ranks=low), count(low)


__all__ = ["DEFAULT_SPEC", "GATES", "SPEC_FORMS", "SPLITS", "GateMatrix", "TTLSTM", "TTSpec",
           "spec_for_budget"]
