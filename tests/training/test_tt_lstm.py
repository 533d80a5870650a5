"""TTLSTM: a drop-in nn.LSTM with tensor-train matrices (reference: nn.LSTM itself)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from proxcompress.errors import InvalidInputError
from proxcompress.training.tensor_train import TTLSTM, TTSpec

f64 = torch.float64
FULL = 10**6
SPECS = [TTSpec("mpo", FULL, 2), TTSpec("mps", FULL, 2, split="gate"),
         TTSpec("mps", FULL, 3, layout="blocked"), TTSpec("lowrank", FULL), TTSpec("dense")]

#: a declared dependency (pyproject); an environment installed before it skips cleanly
pytest.importorskip("opt_einsum", reason="opt_einsum is not installed (pip install -e .)")


def _lstm(**kw: object) -> nn.LSTM:
    torch.manual_seed(0)
    return nn.LSTM(**kw).double()  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.form}-{s.split}-{s.layout}")
@pytest.mark.parametrize("layers, bidirectional, batch_first",
                         [(1, False, False), (2, True, True)])
@pytest.mark.parametrize("path", ["dense", "contract"])
def test_full_rank_equals_nn_lstm(spec: TTSpec, layers: int, bidirectional: bool,
                                  batch_first: bool, path: str) -> None:
    ref = _lstm(input_size=12, hidden_size=6, num_layers=layers, bidirectional=bidirectional,
                batch_first=batch_first)
    tt = TTLSTM.from_lstm(ref, spec, spec, path=path)
    g = torch.Generator().manual_seed(1)
    x = torch.randn((3, 5, 12) if batch_first else (5, 3, 12), dtype=f64, generator=g)
    d = 2 if bidirectional else 1
    hx = (torch.randn(layers * d, 3, 6, dtype=f64, generator=g),
          torch.randn(layers * d, 3, 6, dtype=f64, generator=g))
    want, (h, c) = ref(x, hx)
    got, (h2, c2) = tt(x, hx)
    for a, b in ((got, want), (h2, h), (c2, c)):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-12, rtol=0)


def test_mixed_forms_and_one_dense_matrix() -> None:
    ref = _lstm(input_size=8, hidden_size=4)
    tt = TTLSTM.from_lstm(ref, TTSpec("mpo", FULL, 2), TTSpec("dense"))
    x = torch.randn(7, 2, 8, dtype=f64)
    assert torch.allclose(tt(x)[0], ref(x)[0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("form", ["mps", "mpo"])
def test_contract_path_equals_dense_path_at_low_rank(form: str) -> None:
    torch.manual_seed(2)
    tt = TTLSTM(16, 12, num_layers=2, dropout=0.0, ih=TTSpec(form, 3, 2),
                hh=TTSpec(form, 2, 2, split="gate"), dtype=f64)
    x = torch.randn(6, 4, 16, dtype=f64, requires_grad=True)
    outs = []
    for path in ("dense", "contract"):
        tt.path = path
        tt.zero_grad()
        x.grad = None
        y, (h, c) = tt(x)
        (y.sum() + h.square().sum() + c.sum()).backward()
        outs.append([y, h, c, x.grad] + [p.grad for p in tt.parameters()])
    for a, b in zip(*outs, strict=True):
        assert torch.allclose(a, b, atol=1e-11, rtol=1e-9)


def test_unbatched_packed_and_default_hidden_state() -> None:
    ref = _lstm(input_size=6, hidden_size=5)
    tt = TTLSTM.from_lstm(ref, TTSpec("mps", FULL, 2), TTSpec("mpo", FULL, 2), path="contract")
    x = torch.randn(4, 6, dtype=f64)  # (L, H_in): unbatched
    want, (h, _) = ref(x)
    got, (h2, _) = tt(x)
    assert got.shape == want.shape and h2.shape == h.shape == (1, 5)
    assert torch.allclose(got, want, atol=1e-12, rtol=0)
    seqs = torch.randn(5, 3, 6, dtype=f64)
    packed = pack_padded_sequence(seqs, torch.tensor([5, 3, 2]))
    a, (ha, _) = ref(packed)
    b, (hb, _) = tt(packed)
    assert torch.allclose(a.data, b.data, atol=1e-12) and torch.allclose(ha, hb, atol=1e-12)


def test_defaults_counts_and_export() -> None:
    torch.manual_seed(3)
    tt = TTLSTM(64, 32)  # documented defaults: MPS, interleaved, 3 modes, ranks 8
    assert tt.ih_spec == TTSpec() and tt.hh_spec == TTSpec()
    assert tt.num_parameters() == sum(p.numel() for p in tt.parameters())
    assert TTLSTM.dense_parameters(64, 32, 2, bidirectional=True) == sum(
        p.numel() for p in nn.LSTM(64, 32, 2, bidirectional=True).parameters())
    assert tt.num_parameters() < TTLSTM.dense_parameters(64, 32)
    x = torch.randn(5, 2, 64)
    out, (h, c) = tt(x)
    assert out.shape == (5, 2, 32) and h.shape == c.shape == (1, 2, 32)
    dense = tt.to_lstm()
    assert torch.allclose(dense(x)[0], out, atol=1e-5)
    # the FLOP rule of path="auto" in eval mode: one token -> contract
    tt.eval()
    assert not tt._use_dense(1, 1)
    tt.train()
    assert tt._use_dense(1, 1)


def test_gradients_reach_every_core() -> None:
    tt = TTLSTM(12, 8, ih=TTSpec("mpo", 3, 2), hh=TTSpec("mps", 3, 2))
    tt.train()
    out, _ = tt(torch.randn(4, 3, 12))
    out.square().sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in tt.parameters())


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="proj_size"):
        TTLSTM(4, 4, proj_size=2)
    with pytest.raises(InvalidInputError, match="form"):
        TTSpec("cp")
    with pytest.raises(InvalidInputError, match="split"):
        TTSpec(split="rows")
    with pytest.raises(InvalidInputError, match="layout"):
        TTSpec(layout="zigzag")
    with pytest.raises(InvalidInputError, match="hidden_size"):
        TTLSTM(4, 0)
    with pytest.raises(InvalidInputError, match="dropout"):
        TTLSTM(4, 4, dropout=2.0)
    with pytest.raises(InvalidInputError, match="path"):
        TTLSTM(4, 4, path="fast")
    with pytest.raises(InvalidInputError, match="input"):
        TTLSTM(4, 4)(torch.randn(3, 2, 5))
    with pytest.raises(InvalidInputError, match="hx"):
        TTLSTM(4, 4, path="contract")(torch.randn(3, 2, 4),
                                      (torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)))
    with pytest.raises(InvalidInputError, match="lstm"):
        TTLSTM.from_lstm(nn.GRU(4, 4))  # type: ignore[arg-type]
