"""Linear layers whose weight is a tensor train: MPO (TT-matrix) and MPS forms.

The weight ``W`` of ``y = x W^T + b`` (``W`` of shape ``(M, N)``, ``M = out_features``,
``N = in_features``) is viewed as a tensor with one *leg* per output mode
``m_1, ..., m_p`` (``M = m_1 ... m_p``, row-major: ``i = i_1 m_2 ... m_p + ... + i_p``) and one
per input mode ``n_1, ..., n_q``. A train of ``d`` cores holds these legs in a *chain order*;
core ``k`` has shape ``(r_{k-1}, <its legs>, r_k)``, ``r_0 = r_d = 1`` (methods.md section 9):

* **MPO / TT-matrix** (:class:`MPOLinear`; Novikov et al., "Tensorizing neural networks",
  NeurIPS 2015): ``p = q = d`` and core ``k`` holds the pair ``(m_k, n_k)``:
  ``W[(i_1..i_d), (j_1..j_d)] = G_1[i_1, j_1] ... G_d[i_d, j_d]``, parameters
  ``sum_k r_{k-1} m_k n_k r_k``.
* **MPS / TT-vector** (:class:`MPSLinear`; Murua, Ramakrishnan, Li, Yang, Partovi Nia,
  arXiv:2006.05442): ``W`` reshaped to one order-``(p + q)`` tensor, one leg per core, cores
  ``(r_{k-1}, d_k, r_k)``, parameters ``sum_k r_{k-1} d_k r_k``. The *layout* (the order of the
  legs along the chain) is a [U] choice (docs/decisions.md): ``interleaved``
  ``(m_1, n_1, m_2, n_2, ...)`` -- each MPO core split in two -- or ``blocked``
  ``(m_1, ..., m_p, n_1, ..., n_q)``, the row-major vectorization of ``W`` (its middle bond
  bounds the matrix rank of ``W``); ``blocked`` with ``p = q = 1`` is the rank-``r``
  factorization ``W = U V`` (the low-rank baseline, :func:`low_rank_linear`).

The forward pass contracts the input with the cores **without building W**: the network
``x, G_1, ..., G_d`` is one einsum whose pairwise contraction order is chosen by FLOP count
(``opt_einsum``'s dynamic programme, optimal over all orders, computed once per batch size and
cached); :meth:`TTLinear.flops` reports it beside the dense ``2 B M N``. The rebuilt-dense path
(``path = "dense"``: ``to_dense()`` then ``F.linear``) is kept as the reference.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from itertools import zip_longest
from typing import Any, ClassVar

import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from proxcompress.errors import InvalidInputError
from proxcompress.training.tensor_train.decomposition import (
    factor_modes,
    resolve_ranks,
    tt_full,
    tt_svd,
)

#: a leg: ("o", k) the k-th output mode, ("i", k) the k-th input mode
Leg = tuple[str, int]
Plan = tuple[tuple[Leg, ...], ...]

#: forward paths: contract the input with the cores, rebuild W, or pick the cheaper by FLOPs
PATHS = ("contract", "dense", "auto")
_CACHE_SIZE = 16


def _modes(name: str, modes: Sequence[int] | None, features: int, d: int) -> tuple[int, ...]:
    if modes is None:
        return factor_modes(features, d)
    try:
        out = tuple(int(m) for m in modes)
    except (TypeError, ValueError):
        raise InvalidInputError(name, f"= {modes!r}; accepted: a list of positive integers") \
            from None
    if not out or min(out) < 1 or any(isinstance(m, bool) for m in modes):
        raise InvalidInputError(name, f"= {modes!r}; accepted: a non-empty list of integers >= 1")
    if math.prod(out) != features:
        raise InvalidInputError(name, f"= {list(out)} multiplies to {math.prod(out)}, not "
                                f"{features}")
    return out


def _letters() -> Callable[[], str]:
    import opt_einsum

    count = iter(range(10_000))
    return lambda: opt_einsum.get_symbol(next(count))


class TTLinear(nn.Module):
    """A linear layer ``y = x W^T + b`` whose weight ``W`` is a tensor train (module docstring).

    Subclasses define the chain order of the legs (:meth:`plan`). Arguments common to the forms:

    Args:
        in_features: ``N``.
        out_features: ``M``.
        ranks: bond ranks, one integer or one per bond, capped (:func:`resolve_ranks`).
        in_modes: the input mode sizes (product ``N``); default :func:`factor_modes` of the
            features into ``num_modes`` near-equal modes.
        out_modes: the output mode sizes (product ``M``), likewise.
        num_modes: modes per dimension when ``in_modes`` / ``out_modes`` are not given.
        bias: learn an additive bias.
        init_std: standard deviation of the entries of the initial ``W`` (default
            ``1 / sqrt(3 N)``, that of ``nn.Linear``'s uniform init). The cores are Gaussian
            with one common std ``s``, ``s^{2d} prod_k r_k = init_std^2`` (a sum of
            ``prod r_k`` uncorrelated products of ``d`` independent entries).
        path: ``contract`` (default), ``dense`` (rebuild ``W`` every call) or ``auto`` (the
            cheaper by FLOPs for the batch at hand).
    """

    form: ClassVar[str] = ""

    def __init__(self, in_features: int, out_features: int, ranks: int | Sequence[int] = 8, *,
                 in_modes: Sequence[int] | None = None, out_modes: Sequence[int] | None = None,
                 num_modes: int = 3, bias: bool = True, init_std: float | None = None,
                 path: str = "contract", device: Any = None, dtype: torch.dtype | None = None,
                 **plan_options: Any) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features),
                        ("num_modes", num_modes)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidInputError(name, f"= {v!r}; accepted: an integer >= 1")
        self.in_features = in_features
        self.out_features = out_features
        self.in_modes = _modes("in_modes", in_modes, in_features, num_modes)
        self.out_modes = _modes("out_modes", out_modes, out_features, num_modes)
        self.legs: Plan = self.plan(self.out_modes, self.in_modes, **plan_options)
        self.plan_options = dict(plan_options)
        self.core_dims = tuple(math.prod(self._leg_size(g) for g in core) for core in self.legs)
        self.ranks = resolve_ranks(ranks, self.core_dims)
        self.path = path
        if path not in PATHS:
            raise InvalidInputError("path", f"= {path!r}; accepted: {', '.join(PATHS)}")
        factory = {"device": device, "dtype": dtype}
        self.cores = nn.ParameterList(
            nn.Parameter(torch.empty(shape, **factory)) for shape in self.core_shapes())
        self.bias = nn.Parameter(torch.zeros(out_features, **factory)) if bias else None
        std = 1.0 / math.sqrt(3.0 * in_features) if init_std is None else float(init_std)
        if not (math.isfinite(std) and std >= 0):
            raise InvalidInputError("init_std", f"= {init_std!r}; accepted: a finite value >= 0")
        self.reset_parameters(std)
        self._expressions: OrderedDict[int, Any] = OrderedDict()

    # ------------------------------------------------------------------------------ structure
    @classmethod
    def plan(cls, out_modes: tuple[int, ...], in_modes: tuple[int, ...], **options: Any) -> Plan:
        """The legs of each core in chain order."""
        raise NotImplementedError

    def _leg_size(self, leg: Leg) -> int:
        kind, k = leg
        return self.out_modes[k] if kind == "o" else self.in_modes[k]

    def core_shapes(self) -> list[tuple[int, ...]]:
        """``(r_{k-1}, <leg sizes>, r_k)`` of every core."""
        r = (1, *self.ranks, 1)
        return [(r[k], *(self._leg_size(g) for g in core), r[k + 1])
                for k, core in enumerate(self.legs)]

    def num_parameters(self) -> int:
        """``sum_k r_{k-1} (prod of core k's leg sizes) r_k`` (+ ``M`` with a bias): closed form,
        equal to ``sum(p.numel() for p in self.parameters())``."""
        r = (1, *self.ranks, 1)
        cores = sum(r[k] * dk * r[k + 1] for k, dk in enumerate(self.core_dims))
        return cores + (self.out_features if self.bias is not None else 0)

    def compression(self) -> float:
        """Dense weight entries ``M N`` over the cores' parameters (bias excluded on both sides)."""
        return self.in_features * self.out_features / (
            self.num_parameters() - (self.out_features if self.bias is not None else 0))

    def reset_parameters(self, std: float) -> None:
        """Gaussian cores making ``Var(W_ij) = std^2`` (class docstring)."""
        d = len(self.cores)
        s = (std**2 / math.prod(self.ranks)) ** (1.0 / (2 * d)) if std > 0 else 0.0
        with torch.no_grad():
            for core in self.cores:
                core.normal_(0.0, s)
            if self.bias is not None:
                self.bias.zero_()

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"out_modes={self.out_modes}, in_modes={self.in_modes}, ranks={self.ranks}, "
                f"bias={self.bias is not None}, path={self.path!r}")

    # ---------------------------------------------------------------------------- conversion
    def _permutation(self) -> list[int]:
        """Positions, in chain order, of the output legs then the input legs."""
        chain = [g for core in self.legs for g in core]
        order = [("o", k) for k in range(len(self.out_modes))] + \
            [("i", k) for k in range(len(self.in_modes))]
        return [chain.index(g) for g in order]

    def to_dense(self) -> Tensor:
        """The weight ``W`` ``(out_features, in_features)`` rebuilt from the cores (left-to-right
        contraction, then the legs permuted to ``(m_1..m_p, n_1..n_q)``)."""
        flat = [c.reshape(c.shape[0], -1, c.shape[-1]) for c in self.cores]
        full = tt_full(flat)
        chain_sizes = [self._leg_size(g) for core in self.legs for g in core]
        perm = self._permutation()
        return full.reshape(chain_sizes).permute(perm).reshape(self.out_features,
                                                               self.in_features)

    @classmethod
    def from_dense(cls, weight: Tensor, ranks: int | Sequence[int],
                   bias: Tensor | bool | None = None, **kwargs: Any) -> TTLinear:
        """The layer whose cores are the TT-SVD of ``weight`` ``(M, N)`` at ``ranks`` (exact, up
        to round-off, at the full ranks). ``bias``: a tensor (copied), ``True`` (zeros) or
        ``None`` / ``False`` (no bias). Other ``kwargs`` as in the class."""
        if not isinstance(weight, Tensor) or weight.dim() != 2:
            raise InvalidInputError("weight", "must be a 2-D tensor (out_features, in_features)")
        out_f, in_f = (int(s) for s in weight.shape)
        if isinstance(bias, Tensor) and tuple(bias.shape) != (out_f,):
            raise InvalidInputError("bias", f"has shape {tuple(bias.shape)}; accepted: "
                                    f"({out_f},)")
        layer = cls(in_f, out_f, ranks, bias=bias is not None and bias is not False,
                    device=weight.device, dtype=weight.dtype, **kwargs)
        chain_sizes = [layer._leg_size(g) for core in layer.legs for g in core]
        perm = layer._permutation()
        inverse = [perm.index(i) for i in range(len(perm))]
        shaped = weight.detach().reshape(*layer.out_modes, *layer.in_modes).permute(inverse)
        cores = tt_svd(shaped.reshape(chain_sizes).reshape(layer.core_dims), layer.ranks)
        with torch.no_grad():
            for param, core, shape in zip(layer.cores, cores, layer.core_shapes(), strict=True):
                param.copy_(core.reshape(shape))
            if isinstance(bias, Tensor) and layer.bias is not None:
                layer.bias.copy_(bias.detach())
        return layer

    # ------------------------------------------------------------------------------- forward
    def _equation(self) -> str:
        letter = _letters()
        batch = letter()
        legs = {g: letter() for core in self.legs for g in core}
        bonds = [letter() for _ in range(len(self.legs) + 1)]
        terms = [batch + "".join(legs[("i", k)] for k in range(len(self.in_modes)))]
        last = len(self.legs) - 1
        for k, core in enumerate(self.legs):
            left = bonds[k] if k > 0 else ""
            right = bonds[k + 1] if k < last else ""
            terms.append(left + "".join(legs[g] for g in core) + right)
        out = batch + "".join(legs[("o", k)] for k in range(len(self.out_modes)))
        return ",".join(terms) + "->" + out

    def _operand_shapes(self, batch: int) -> list[tuple[int, ...]]:
        """Shapes of ``x`` and of the cores without their boundary bonds ``r_0 = r_d = 1``."""
        shapes: list[tuple[int, ...]] = [(batch, *self.in_modes)]
        core_shapes = self.core_shapes()
        last = len(core_shapes) - 1
        for k, shape in enumerate(core_shapes):
            shapes.append(shape[(1 if k == 0 else 0): len(shape) - (1 if k == last else 0)])
        return shapes

    def contraction(self, batch: int) -> Any:
        """``opt_einsum``'s path information for a batch of ``batch`` inputs (``opt_cost`` is the
        FLOP count, multiply and add counted apart; ``path`` the pairwise order)."""
        import opt_einsum

        _, info = opt_einsum.contract_path(self._equation(), *self._operand_shapes(batch),
                                           shapes=True, optimize="dp")
        return info

    def flops(self, batch: int) -> int:
        """FLOPs of the contracted forward for ``batch`` inputs (chosen order, bias excluded)."""
        return int(self.contraction(batch).opt_cost)

    def dense_flops(self, batch: int) -> int:
        """FLOPs of the dense product ``x W^T``: ``2 B M N``."""
        return 2 * batch * self.in_features * self.out_features

    def rebuild_flops(self) -> int:
        """FLOPs of :meth:`to_dense` (left to right: ``sum_k 2 D_1..D_{k-1} r_{k-1} D_k r_k``)."""
        r = (1, *self.ranks, 1)
        total, left = 0, self.core_dims[0]
        for k in range(1, len(self.core_dims)):
            total += 2 * left * r[k] * self.core_dims[k] * r[k + 1]
            left *= self.core_dims[k]
        return total

    def _expression(self, batch: int) -> Any:
        expr = self._expressions.get(batch)
        if expr is None:
            import opt_einsum

            path, _ = opt_einsum.contract_path(self._equation(), *self._operand_shapes(batch),
                                               shapes=True, optimize="dp")
            expr = opt_einsum.contract_expression(self._equation(),
                                                  *self._operand_shapes(batch), optimize=path)
            self._expressions[batch] = expr
            if len(self._expressions) > _CACHE_SIZE:
                self._expressions.popitem(last=False)
        else:
            self._expressions.move_to_end(batch)
        return expr

    def contract(self, x: Tensor) -> Tensor:
        """``x W^T`` for ``x`` of shape ``(B, N)`` by contracting with the cores (no ``W``)."""
        batch = int(x.shape[0])
        cores = list(self.cores)
        cores[0] = cores[0][0]
        cores[-1] = cores[-1][..., 0]
        y = self._expression(batch)(x.reshape(batch, *self.in_modes), *cores, backend="torch")
        return y.reshape(batch, self.out_features)

    def use_dense(self, batch: int) -> bool:
        """Whether the forward on ``batch`` inputs rebuilds ``W`` (``path``; ``auto`` compares
        :meth:`flops` with :meth:`rebuild_flops` + :meth:`dense_flops`)."""
        if self.path == "auto":
            return self.rebuild_flops() + self.dense_flops(batch) < self.flops(batch)
        return self.path == "dense"

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise InvalidInputError("input", f"last dimension is {x.shape[-1]}; the layer takes "
                                    f"{self.in_features}")
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        if self.use_dense(int(flat.shape[0])):
            return functional.linear(x, self.to_dense(), self.bias)
        y = self.contract(flat).reshape(*lead, self.out_features)
        return y if self.bias is None else y + self.bias


class MPOLinear(TTLinear):
    """MPO / TT-matrix weight: core ``k`` has shape ``(r_{k-1}, m_k, n_k, r_k)``; needs as many
    output as input modes (module docstring; arguments in :class:`TTLinear`)."""

    form = "mpo"

    @classmethod
    def plan(cls, out_modes: tuple[int, ...], in_modes: tuple[int, ...], **options: Any) -> Plan:
        if options:
            raise InvalidInputError(next(iter(options)), "is not an option of the MPO form")
        if len(out_modes) != len(in_modes):
            raise InvalidInputError("in_modes", f"MPO needs as many input as output modes "
                                    f"(got {len(in_modes)} and {len(out_modes)})")
        return tuple(((("o", k), ("i", k))) for k in range(len(out_modes)))


def _interleaved(p: int, q: int) -> list[Leg]:
    pairs = zip_longest([("o", k) for k in range(p)], [("i", k) for k in range(q)])
    return [g for pair in pairs for g in pair if g is not None]


def _blocked(p: int, q: int) -> list[Leg]:
    return [("o", k) for k in range(p)] + [("i", k) for k in range(q)]


#: MPS layouts: the chain order of the legs, from the numbers of output and input modes
MPS_LAYOUTS: dict[str, Callable[[int, int], list[Leg]]] = {
    "interleaved": _interleaved,
    "blocked": _blocked,
}


class MPSLinear(TTLinear):
    """MPS weight: ``W`` reshaped to one order-``(p + q)`` tensor whose legs are ordered by
    ``layout`` (``interleaved`` or ``blocked``, :data:`MPS_LAYOUTS`; or an explicit order such
    as ``["o0", "i0", "i1", "o1"]``); core ``k`` has shape ``(r_{k-1}, d_k, r_k)`` (module
    docstring; other arguments in :class:`TTLinear`)."""

    form = "mps"

    @classmethod
    def plan(cls, out_modes: tuple[int, ...], in_modes: tuple[int, ...], **options: Any) -> Plan:
        layout = options.pop("layout", "interleaved")
        if options:
            raise InvalidInputError(next(iter(options)), "is not an option of the MPS form")
        p, q = len(out_modes), len(in_modes)
        if isinstance(layout, str):
            if layout not in MPS_LAYOUTS:
                raise InvalidInputError("layout", f"= {layout!r}; accepted: "
                                        f"{', '.join(MPS_LAYOUTS)} or a list of legs 'o<k>' / "
                                        "'i<k>'")
            order = MPS_LAYOUTS[layout](p, q)
        else:
            wanted = sorted(_blocked(p, q))
            try:
                order = [(str(s)[0], int(str(s)[1:])) for s in layout]
            except (ValueError, IndexError):
                order = []
            if sorted(order) != wanted:
                raise InvalidInputError("layout", f"= {list(layout)!r}; accepted: a permutation "
                                        f"of o0..o{p - 1} and i0..i{q - 1}")
        return tuple((g,) for g in order)


def low_rank_linear(weight_or_in: Tensor | int, out_features: int | None = None,
                    rank: int = 8, bias: bool | Tensor | None = True, **kwargs: Any) -> MPSLinear:
    """The rank-``rank`` factorization ``W = U V`` (``U`` ``M x r``, ``V`` ``r x N``) as the
    two-core blocked MPS: from a dense ``weight`` (truncated SVD, the best rank-``r``
    approximation in Frobenius norm) or fresh for ``(in_features, out_features)``."""
    if isinstance(weight_or_in, Tensor):
        if weight_or_in.dim() != 2:
            raise InvalidInputError("weight", "must be a 2-D tensor (out_features, in_features)")
        m, n = (int(s) for s in weight_or_in.shape)
        return MPSLinear.from_dense(weight_or_in, rank, bias, in_modes=(n,), out_modes=(m,),
                                    layout="blocked", **kwargs)  # type: ignore[return-value]
    if out_features is None:
        raise InvalidInputError("out_features", "is required with in_features")
    return MPSLinear(weight_or_in, out_features, rank, in_modes=(weight_or_in,),
                     out_modes=(out_features,), layout="blocked", bias=bool(bias), **kwargs)


#: the TT forms by name (``lowrank``: :func:`low_rank_linear`'s factorization)
TT_FORMS: dict[str, type[TTLinear]] = {"mpo": MPOLinear, "mps": MPSLinear}


__all__ = ["MPOLinear", "MPSLinear", "MPS_LAYOUTS", "PATHS", "TTLinear", "TT_FORMS",
           "low_rank_linear"]
