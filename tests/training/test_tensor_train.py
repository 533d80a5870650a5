"""Tensor-train layers: factorization, TT-SVD, MPO / MPS linear layers, contraction order.

References: brute force over all factorizations and all pairwise contraction orders, the
Eckart-Young theorem (two-core trains), TT-SVD's exactness at full rank, ``x @ to_dense().T``.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from proxcompress.errors import InvalidInputError
from proxcompress.training.tensor_train import (
    MPOLinear,
    MPSLinear,
    factor_modes,
    full_ranks,
    low_rank_linear,
    resolve_ranks,
    tt_full,
    tt_svd,
)

f64 = torch.float64

#: a declared dependency (pyproject); an environment installed before it skips cleanly
pytest.importorskip("opt_einsum", reason="opt_einsum is not installed (pip install -e .)")


# ------------------------------------------------------------------------------ factor_modes
def _all_factorizations(n: int, d: int) -> list[tuple[int, ...]]:
    divisors = [k for k in range(1, n + 1) if n % k == 0]
    return [t for t in itertools.product(divisors, repeat=d) if math.prod(t) == n]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 400), st.integers(1, 3))
def test_factor_modes_is_the_most_balanced_factorization(n: int, d: int) -> None:
    got = factor_modes(n, d)
    assert len(got) == d and math.prod(got) == n
    assert list(got) == sorted(got, reverse=True)
    best = min((max(t), sum(t)) for t in _all_factorizations(n, d))
    assert (max(got), sum(got)) == best


def test_factor_modes_golden_values() -> None:
    assert factor_modes(4096, 3) == (16, 16, 16)
    assert factor_modes(1024, 4) == (8, 8, 4, 4)
    assert factor_modes(96, 3) == (6, 4, 4)
    assert factor_modes(37, 3) == (37, 1, 1)
    assert factor_modes(1, 2) == (1, 1)


@pytest.mark.parametrize("n, d", [(0, 2), (-3, 2), (8, 0), (True, 2), (2.5, 2), (2**40, 2)])
def test_factor_modes_bad_input(n: object, d: object) -> None:
    with pytest.raises(InvalidInputError):
        factor_modes(n, d)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ ranks, TT-SVD
@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=5), st.integers(1, 50))
def test_resolve_ranks_caps_each_bond(dims: list[int], r: int) -> None:
    got = resolve_ranks(r, dims)
    caps = full_ranks(dims)
    assert len(got) == len(dims) - 1
    padded = (1, *got, 1)
    for k, rk in enumerate(got):
        assert 1 <= rk <= min(r, caps[k])
        assert rk <= padded[k] * dims[k] and rk <= dims[k + 1] * padded[k + 2]
    # large enough ranks give the full ranks
    assert resolve_ranks(10**9, dims) == caps


def test_full_ranks_and_list_ranks() -> None:
    assert full_ranks((2, 3, 4)) == (2, 4)
    assert resolve_ranks([1, 9], (2, 3, 4)) == (1, 3)  # r_2 <= r_1 * D_2 = 3
    with pytest.raises(InvalidInputError, match="3 values; accepted: 2"):
        resolve_ranks([1, 2, 3], (2, 3, 4))
    with pytest.raises(InvalidInputError, match=r"ranks\[1\]"):
        resolve_ranks([1, 0], (2, 3, 4))
    with pytest.raises(InvalidInputError):
        resolve_ranks("3", (2, 3, 4))  # type: ignore[arg-type]


@pytest.mark.parametrize("dims", [(3,), (2, 5), (4, 3, 5), (2, 3, 2, 4, 3)])
def test_tt_svd_exact_at_full_rank(dims: tuple[int, ...]) -> None:
    t = torch.randn(dims, dtype=f64, generator=torch.Generator().manual_seed(1))
    cores = tt_svd(t, 10**6)
    assert [c.shape[0] for c in cores][1:] == list(full_ranks(dims))
    assert torch.allclose(tt_full(cores), t, atol=1e-12, rtol=0)


def test_tt_svd_two_cores_is_eckart_young() -> None:
    m = torch.randn(9, 7, dtype=f64, generator=torch.Generator().manual_seed(2))
    s = torch.linalg.svdvals(m)
    for r in range(1, 8):
        err = torch.linalg.norm(tt_full(tt_svd(m, r)) - m) ** 2
        assert float(err) == pytest.approx(float((s[r:] ** 2).sum()), rel=1e-9, abs=1e-18)


def test_tt_svd_error_bound() -> None:
    """Oseledets' theorem 2.2: ||T - TT||^2 <= sum over bonds of the discarded energies of the
    unfoldings of T (an upper bound of what the sweep discards)."""
    t = torch.randn(4, 5, 3, 6, dtype=f64, generator=torch.Generator().manual_seed(3))
    r = 3
    bound = 0.0
    for k in range(1, t.dim()):
        s = torch.linalg.svdvals(t.reshape(math.prod(t.shape[:k]), -1))
        bound += float((s[r:] ** 2).sum())
    err = float(torch.linalg.norm(tt_full(tt_svd(t, r)) - t) ** 2)
    assert 0 < err <= bound * (1 + 1e-9)


def test_tt_svd_rejects_non_finite() -> None:
    with pytest.raises(InvalidInputError, match="NaN"):
        tt_svd(torch.tensor([[1.0, float("nan")]]), 1)


# ------------------------------------------------------------------------------ linear layers
LAYOUTS = [(MPOLinear, {}), (MPSLinear, {"layout": "interleaved"}),
           (MPSLinear, {"layout": "blocked"}), (MPSLinear, {"layout": ["i1", "o0", "i0", "o1"]})]


@pytest.mark.parametrize("cls, kw", LAYOUTS)
@pytest.mark.parametrize("out_modes, in_modes", [((2, 3), (4, 5)), ((6, 1), (3, 7)),
                                                 ((5, 4), (2, 2))])
def test_from_dense_exact_at_full_rank(cls: type, kw: dict, out_modes: tuple[int, ...],
                                       in_modes: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(4)
    w = torch.randn(math.prod(out_modes), math.prod(in_modes), dtype=f64, generator=g)
    b = torch.randn(w.shape[0], dtype=f64, generator=g)
    layer = cls.from_dense(w, 10**6, b, out_modes=out_modes, in_modes=in_modes, **kw)
    assert torch.allclose(layer.to_dense(), w, atol=1e-12, rtol=0)
    x = torch.randn(3, 2, w.shape[1], dtype=f64, generator=g)
    assert torch.allclose(layer(x), x @ w.T + b, atol=1e-12, rtol=0)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(range(len(LAYOUTS))), st.lists(st.integers(1, 4), min_size=2, max_size=3),
       st.lists(st.integers(1, 4), min_size=2, max_size=3), st.integers(1, 5),
       st.integers(1, 4), st.booleans())
def test_contracted_forward_equals_dense(which: int, out_modes: list[int], in_modes: list[int],
                                         r: int, batch: int, bias: bool) -> None:
    cls, kw = LAYOUTS[which]
    if cls is MPOLinear or isinstance(kw.get("layout"), list):
        in_modes = (in_modes * 2)[: len(out_modes)]
        if isinstance(kw.get("layout"), list):
            out_modes, in_modes = out_modes[:2], in_modes[:2]
    layer = cls(math.prod(in_modes), math.prod(out_modes), r, out_modes=out_modes,
                in_modes=in_modes, bias=bias, dtype=f64, **kw)
    if bias:
        torch.nn.init.normal_(layer.bias)
    x = torch.randn(batch, layer.in_features, dtype=f64)
    want = x @ layer.to_dense().T + (layer.bias if bias else 0)
    assert torch.allclose(layer(x), want, atol=1e-12, rtol=1e-10)
    layer.path = "dense"
    assert torch.allclose(layer(x), want, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("cls, kw", LAYOUTS[:3])
def test_contracted_gradients_equal_dense_gradients(cls: type, kw: dict) -> None:
    layer = cls(12, 10, 3, out_modes=(5, 2), in_modes=(4, 3), dtype=f64, **kw)
    x = torch.randn(6, 12, dtype=f64, requires_grad=True)
    grads = []
    for path in ("contract", "dense"):
        layer.path = path
        layer.zero_grad()
        x.grad = None
        (layer(x) ** 2).sum().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in layer.parameters()])
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-11, rtol=1e-9)


def test_parameter_count_closed_form() -> None:
    mpo = MPOLinear(20, 6, 3, out_modes=(2, 3), in_modes=(4, 5))
    assert mpo.ranks == (3,)
    assert mpo.num_parameters() == 1 * 2 * 4 * 3 + 3 * 3 * 5 * 1 + 6 == 75
    mps = MPSLinear(20, 6, 3, out_modes=(2, 3), in_modes=(4, 5), layout="interleaved", bias=False)
    # legs (2, 4, 3, 5): full ranks (2, 5, 5) capped at 3 -> (2, 3, 3)
    assert mps.ranks == (2, 3, 3)
    assert mps.num_parameters() == 1 * 2 * 2 + 2 * 4 * 3 + 3 * 3 * 3 + 3 * 5 * 1 == 70
    for layer in (mpo, mps, MPSLinear(1024, 4096, 16, num_modes=4, layout="blocked")):
        assert layer.num_parameters() == sum(p.numel() for p in layer.parameters())
    assert mps.compression() == pytest.approx(120 / 70)


def test_low_rank_linear_is_truncated_svd() -> None:
    g = torch.Generator().manual_seed(5)
    w = torch.randn(12, 9, dtype=f64, generator=g)
    layer = low_rank_linear(w, rank=4, bias=False)
    assert len(layer.cores) == 2 and layer.ranks == (4,)
    assert layer.num_parameters() == 4 * (12 + 9)
    s = torch.linalg.svdvals(w)
    assert float(torch.linalg.norm(layer.to_dense().detach() - w) ** 2) == pytest.approx(
        float((s[4:] ** 2).sum()), rel=1e-9)
    fresh = low_rank_linear(9, 12, rank=4)
    assert fresh.num_parameters() == 4 * 21 + 12


def test_blocked_mps_middle_bond_bounds_the_matrix_rank() -> None:
    layer = MPSLinear(16, 16, [4, 3, 4], out_modes=(4, 4), in_modes=(4, 4), layout="blocked",
                      dtype=f64)
    assert int(torch.linalg.matrix_rank(layer.to_dense())) == 3


def test_initial_weight_variance() -> None:
    """The entries of W have variance init_std^2 (sum of prod r_k uncorrelated products)."""
    torch.manual_seed(6)
    for cls, kw in LAYOUTS[:3]:
        with torch.no_grad():
            samples = torch.cat([cls(64, 64, 4, num_modes=2, init_std=0.5, dtype=f64, **kw)
                                 .to_dense().flatten() for _ in range(300)])
        # 300 independent layers x 4096 entries; entries within a layer are uncorrelated
        assert float(samples.var()) == pytest.approx(0.25, rel=0.1)  # ~4 sd (measured)
        assert float(samples.mean()) == pytest.approx(0.0, abs=0.01)
    default = MPOLinear(300, 30, 2, dtype=f64)
    assert default.in_features == 300  # default init_std = 1 / sqrt(3 N)


# -------------------------------------------------------------------------- contraction order
def _pair_cost(a: str, b: str, keep: set[str], size: dict[str, int]) -> tuple[str, int]:
    union = set(a) | set(b)
    out = "".join(sorted(i for i in union if i in keep))
    inner = len(union) > len(out)
    return out, math.prod(size[i] for i in union) * (2 if inner else 1)


def _brute_force_flops(terms: list[str], output: str, size: dict[str, int]) -> int:
    """The cheapest pairwise contraction of ``terms`` by trying every order."""
    if len(terms) == 1:
        return 0
    best = None
    for i, j in itertools.combinations(range(len(terms)), 2):
        rest = [t for k, t in enumerate(terms) if k not in (i, j)]
        keep = set(output).union(*map(set, rest)) if rest else set(output)
        new, cost = _pair_cost(terms[i], terms[j], keep, size)
        total = cost + _brute_force_flops([*rest, new], output, size)
        best = total if best is None else min(best, total)
    assert best is not None
    return best


@pytest.mark.parametrize("cls, kw, r, batch", [
    (MPOLinear, {}, 3, 1), (MPOLinear, {}, 5, 7),
    (MPSLinear, {"layout": "interleaved"}, 3, 2), (MPSLinear, {"layout": "blocked"}, 4, 9)])
def test_contraction_order_is_flop_optimal(cls: type, kw: dict, r: int, batch: int) -> None:
    layer = cls(4 * 3 * 2, 5 * 2 * 3, r, out_modes=(5, 2, 3) if cls is MPOLinear else (10, 3),
                in_modes=(4, 3, 2) if cls is MPOLinear else (12, 2), **kw)
    equation = layer._equation()
    terms, output = equation.split("->")
    size: dict[str, int] = {}
    for term, shape in zip(terms.split(","), layer._operand_shapes(batch), strict=True):
        size.update(zip(term, shape, strict=True))
    assert layer.flops(batch) == _brute_force_flops(terms.split(","), output, size)
    assert layer.dense_flops(batch) == 2 * batch * 24 * 30


def test_rebuild_flops_closed_form() -> None:
    layer = MPOLinear(20, 6, 3, out_modes=(2, 3), in_modes=(4, 5))
    # (D_1 = 8, r_1 = 3) @ (3, D_2 = 15): 2 * 8 * 3 * 15
    assert layer.rebuild_flops() == 2 * 8 * 3 * 15


def test_auto_path_picks_fewer_flops() -> None:
    layer = MPOLinear(64, 64, 64, num_modes=2, path="auto")  # full rank: contraction is dearer
    assert layer.use_dense(1000) == (layer.rebuild_flops() + layer.dense_flops(1000)
                                     < layer.flops(1000))
    small = MPSLinear(1024, 1024, 4, layout="blocked", path="auto")
    assert not small.use_dense(1)


def test_layer_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="in_modes"):
        MPOLinear(12, 6, 2, in_modes=(3, 5))
    with pytest.raises(InvalidInputError, match="as many input as output"):
        MPOLinear(12, 6, 2, in_modes=(12,), out_modes=(2, 3))
    with pytest.raises(InvalidInputError, match="layout"):
        MPSLinear(12, 6, 2, layout="zigzag")
    with pytest.raises(InvalidInputError, match="layout"):
        MPSLinear(12, 6, 2, in_modes=(3, 4), out_modes=(2, 3), layout=["o0", "o0", "i0", "i1"])
    with pytest.raises(InvalidInputError, match="path"):
        MPSLinear(12, 6, 2, path="fast")
    with pytest.raises(InvalidInputError, match="in_features"):
        MPSLinear(0, 6, 2)
    with pytest.raises(InvalidInputError, match="input"):
        MPSLinear(12, 6, 2)(torch.randn(3, 11))
    with pytest.raises(InvalidInputError, match="weight"):
        MPSLinear.from_dense(torch.randn(3), 2)
    with pytest.raises(InvalidInputError, match="init_std"):
        MPSLinear(12, 6, 2, init_std=float("nan"))
