"""The fused quantizer ops (training/fused.py) against the reference ops they replace.

The reference (``quant_ops("reference")``: ``quantizers._QuantizeFunction`` and the layer's
``vector_norm`` scale, unchanged) is itself tied to the SymPy twin in test_quantizers.py. Here
every catalogue pair is run both ways on the same input: forward values and gradients are
bitwise equal where the fused op does the reference's operations in the same order (every pair
without a scale; BinaryConnect, BNN and ProxConnect with one), and within a few ulp where the
fused op folds the scale into the SignSwish slope. Edge values: 0 and -0, exactly +-1 (BNN's clip
boundary, where the latent clip puts many weights), the floats next to +-1, large values, and
BNN++'s growing sharpness ``beta(mu)``. Then the layers (one step and a few optimizer steps) and
the buffer reuse: an output someone keeps is never overwritten, gradient accumulation over two
graphs, ``retain_graph``, and a caller without ``reuse`` whose gradient is shared.
"""

from __future__ import annotations

import shutil
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from proxcompress.errors import InvalidInputError
from proxcompress.proofs.pairs import pair_names
from proxcompress.training import fused
from proxcompress.training.fused import ChannelScale, fused_forward, quant_ops
from proxcompress.training.layers import BinaryConv2d, BinaryLinear
from proxcompress.training.optim import ProxConnectOptimizer
from proxcompress.training.quantizers import get_quantizer

#: pairs whose fused op folds the scale into the SignSwish slope (a few ulp from the reference)
FOLDED = ("bnn+", "bnn++", "bnn++-prox")
MUS = (0.0, 0.5, 1.0, 37.5, 1000.0)


def _edges(dtype: torch.dtype) -> torch.Tensor:
    eps = float(torch.finfo(dtype).eps)
    one_up, one_down = 1.0 + eps, 1.0 - eps / 2
    vals = [0.0, -0.0, 1.0, -1.0, one_up, -one_up, one_down, -one_down, 0.5, -0.5, 1e-30,
            -1e-30, 3.0, -3.0, 1e3, -1e3, 0.2, -0.7, 2.5, -1.7]
    return torch.tensor(vals, dtype=dtype)


def _run(name: str, x: torch.Tensor, mu: float, mode: str, scale: Any = None,
         upstream: torch.Tensor | None = None, **params: float
         ) -> tuple[torch.Tensor, torch.Tensor]:
    q = get_quantizer(name, **params)
    leaf = x.detach().clone().requires_grad_(True)
    with quant_ops(mode):
        out = q(leaf, mu, scale=scale)
    out.backward(torch.ones_like(out) if upstream is None else upstream)
    assert leaf.grad is not None
    return out.detach().clone(), leaf.grad


def _assert_same(name: str, got: torch.Tensor, want: torch.Tensor, scaled: bool) -> None:
    if name in FOLDED and scaled:  # ((g q t) 2 beta) alpha against g ((q t) (2 beta alpha))
        # a few ulp of each value, or of the tensor's scale where the derivative cancels (the
        # sign-swish slope's 2 - b x tanh(b x / 2) near its root turns a vector lane's one-ulp
        # exp into 10 ulp of a value: bnn++, seed 3, shape (2, 3, 3, 4), 1.25e-6 relative)
        eps = float(torch.finfo(want.dtype).eps)
        scale = float(want.abs().max()) if want.numel() else 0.0
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=8 * eps, atol=8 * eps * scale)
    else:
        # equal as values (a zero gradient may carry the other sign: hardtanh_backward writes
        # +0 where the reference multiplies a negative gradient by 0)
        assert torch.equal(got, want), (name, (got - want).abs().max())


def test_every_named_pair_has_a_kernel_or_runs_the_reference() -> None:
    assert set(fused.KERNELS) <= set(pair_names())
    for name in pair_names():
        q = get_quantizer(name)
        assert (q.kernel is not None) == (name in fused.KERNELS), name
        # another derivative point than the method's: the reference op (no kernel for it)
        other = "prox" if q.derivative_at == "latent" else "latent"
        assert get_quantizer(name, derivative_at=other).kernel is None


#: the fused paths: numba's SignSwish pass (``fused``) and torch only (``eager``)
FUSED = ("fused", "eager")


@pytest.mark.parametrize("name", pair_names())
@pytest.mark.parametrize("mu", MUS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", FUSED)
def test_edge_values_equal_the_reference(name: str, mu: float, dtype: torch.dtype, mode: str
                                         ) -> None:
    x = _edges(dtype).reshape(4, 5)
    upstream = torch.linspace(-2.0, 3.0, 20, dtype=dtype).reshape(4, 5)
    for scale in (None, torch.tensor([[0.5], [1.25], [2.0], [0.1]], dtype=dtype)):
        got = _run(name, x, mu, mode, scale, upstream)
        want = _run(name, x, mu, "reference", scale, upstream)
        for g, w in zip(got, want, strict=True):
            _assert_same(name, g, w, scale is not None)


def test_bnn_passes_the_gradient_exactly_at_the_clip_boundary() -> None:
    """``B' = 1{|w| <= 1}``: +-1 pass, the next floats out do not (hardtanh_backward alone
    would drop +-1)."""
    for dtype in (torch.float32, torch.float64):
        x = _edges(dtype)[2:8]  # 1, -1, 1 + eps, -(1 + eps), 1 - eps/2, -(1 - eps/2)
        _, grad = _run("bnn", x, 0.0, "fused")
        assert grad.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("mu", [0.0, 2.0, 50.0, 400.0])
def test_bnn_plus_plus_sharpness_grows_with_mu(mu: float) -> None:
    """BNN++'s ``beta(mu) = beta + growth mu`` reaches the fused op through ``mu``: at a large
    ``mu`` the forward is sign-like and the slope vanishes off 0, as in the reference."""
    x = torch.linspace(-1.5, 1.5, 61, dtype=torch.float64)
    for params, mode in zip(({}, {"beta": 3.0, "beta_growth": 0.5}), FUSED, strict=True):
        got = _run("bnn++", x, mu, mode, **params)
        want = _run("bnn++", x, mu, "reference", **params)
        for g, w in zip(got, want, strict=True):
            assert torch.equal(g, w)


@st.composite
def _cases(draw: Any) -> tuple[torch.Tensor, float, str, torch.dtype]:
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    n = int(np.prod(shape))
    pool = st.one_of(st.floats(-4.0, 4.0, allow_nan=False, width=32),
                     st.sampled_from(_edges(dtype).tolist()))
    values = draw(st.lists(pool, min_size=n, max_size=n))
    mu = draw(st.sampled_from(MUS))
    scale = draw(st.sampled_from(["none", "row", "channel"]))
    return torch.tensor(values, dtype=dtype).reshape(shape), mu, scale, dtype


@settings(max_examples=80, deadline=None)
@given(case=_cases(), name=st.sampled_from(pair_names()), mode=st.sampled_from(FUSED))
def test_fused_equals_reference_on_any_shape(case: Any, name: str, mode: str) -> None:
    x, mu, kind, dtype = case
    rows = x.shape[0]
    upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(rows), dtype=dtype)
    scale: Any = None
    reference_scale: Any = None
    if kind == "row":
        scale = reference_scale = torch.rand((rows, *([1] * (x.dim() - 1))), dtype=dtype) + 0.05
    elif kind == "channel":  # the layers' path: the scale computed inside the op
        extra = torch.rand(rows, dtype=dtype)
        scale = ChannelScale(extra, float(x[0].numel() + 3))
        kernel = get_quantizer(name).kernel
        if kernel is not None and mode != "reference":
            with quant_ops(mode):
                alpha = fused_forward(kernel, x, mu, scale)[2]
            assert alpha is not None
            want = scale.reference(x)  # the fused scale: the reference's up to summation order
            n = max(2, x[0].numel())
            eps = float(torch.finfo(dtype).eps)
            np.testing.assert_allclose(alpha.numpy(), want.numpy(), rtol=n * eps, atol=0)
            reference_scale = alpha  # then F and B' as the reference computes them from it
        else:
            reference_scale = scale
    got = _run(name, x, mu, mode, scale, upstream)
    want = _run(name, x, mu, "reference", reference_scale, upstream)
    for g, w in zip(got, want, strict=True):
        _assert_same(name, g, w, scale is not None)


@settings(max_examples=60, deadline=None)
@given(shape=st.tuples(st.integers(1, 4), st.integers(2, 5), st.integers(1, 4),
                       st.integers(1, 4)),
       name=st.sampled_from(pair_names()), mode=st.sampled_from(FUSED),
       seed=st.integers(0, 2**16), reuse=st.booleans())
def test_a_channels_last_input_gives_the_same_values_in_its_own_layout(
        shape: tuple[int, int, int, int], name: str, mode: str, seed: int, reuse: bool) -> None:
    """A channels-last activation (VGGSmall's layout) is quantized on its NHWC storage: the
    same output and gradient values as the contiguous tensor, bit for bit, and the output keeps
    the channels-last layout (so the next convolution stays in it)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 2
    upstream = torch.randn(shape, generator=g)
    q = get_quantizer(name)
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        leaf = x.clone(memory_format=layout).requires_grad_(True)
        with quant_ops(mode):
            out = q(leaf, 0.7, reuse=reuse)
        out.backward(upstream.contiguous(memory_format=layout).clone())
        assert leaf.grad is not None
        results.append((out.detach(), leaf.grad, out.is_contiguous(memory_format=layout)))
    (out0, grad0, _), (out1, grad1, kept) = results
    for got, want in ((out1, out0), (grad1, grad0)):  # SignSwish passes: a few ulp (vector lanes)
        _assert_same(name, got, want, scaled=True)
    if get_quantizer(name).kernel is not None and mode != "reference":
        assert kept


# ----------------------------------------------------------------------------------- layers
def _layer(kind: str, method: str, activations: str | None) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "linear":
        return BinaryLinear(24, 16, weight_quantizer=method, input_quantizer=activations)
    return BinaryConv2d(3, 8, 3, padding=1, weight_quantizer=method,
                        input_quantizer=activations)


def _train(kind: str, method: str, activations: str | None, mode: str, steps: int = 3
           ) -> tuple[list[torch.Tensor], torch.Tensor]:
    layer = _layer(kind, method, activations)
    opt = ProxConnectOptimizer(torch.optim.SGD(layer.parameters(), lr=0.05), layer)
    g = torch.Generator().manual_seed(1)
    shape = (5, 24) if kind == "linear" else (2, 3, 6, 6)
    grads = []
    with quant_ops(mode):
        for _ in range(steps):
            x = torch.randn(shape, generator=g)
            loss = (layer(x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            grads.append(layer.weight.grad.clone())
            opt.step()
    return grads, layer.weight.detach().clone()


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("method", ["binaryconnect", "bnn", "bnn+", "proxconnect", "bnn++"])
@pytest.mark.parametrize("activations", [None, "bnn"])
@pytest.mark.parametrize("mode", FUSED)
def test_layer_steps_equal_the_reference(kind: str, method: str, activations: str | None,
                                         mode: str) -> None:
    """A few ProxConnect steps (mu grows, the latent clip binds) of a binary layer: gradients
    and latents as with the reference ops, up to the scale's summation order."""
    got, w_got = _train(kind, method, activations, mode)
    want, w_want = _train(kind, method, activations, "reference")
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(w_got, w_want, rtol=1e-5, atol=1e-6)


def test_a_kept_output_is_never_overwritten() -> None:
    layer = _layer("linear", "bnn+", None)
    with torch.no_grad():
        kept = layer.quantized_weight()
        copy = kept.clone()
        layer.weight.mul_(-2.0)
        again = layer.quantized_weight()
    assert torch.equal(kept, copy)
    assert not torch.equal(again, copy)
    out = layer.quantized_weight()  # with autograd: the kept graph output is not reused either
    saved = out.detach().clone()
    with torch.no_grad():
        layer.weight.mul_(0.5)
    layer.quantized_weight().sum().backward()
    assert torch.equal(out.detach(), saved)


@pytest.mark.parametrize("method", ["binaryconnect", "bnn", "bnn+", "bnn++"])
def test_two_graphs_then_two_backwards(method: str) -> None:
    """Gradient accumulation with both forwards before the backwards: the second forward must
    not reuse the buffers the first graph still holds."""
    results = []
    for mode in ("fused", "reference"):
        layer = _layer("linear", method, None)
        x1, x2 = torch.randn(4, 24, generator=torch.Generator().manual_seed(3)).chunk(2)
        with quant_ops(mode):
            l1 = (layer(x1) ** 2).sum()
            l2 = (layer(x2) ** 3).sum()
            l1.backward()
            l2.backward()
        results.append(layer.weight.grad.clone())
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)


def test_retain_graph_backward_twice_doubles_the_gradient() -> None:
    layer = _layer("linear", "bnn", None)
    loss = (layer(torch.randn(3, 24)) ** 2).sum()
    loss.backward(retain_graph=True)
    once = layer.weight.grad.clone()
    loss.backward()
    torch.testing.assert_close(layer.weight.grad, 2 * once)


@pytest.mark.parametrize("name", ["binaryconnect", "bnn", "bnn+"])
def test_a_shared_gradient_is_not_overwritten_without_reuse(name: str) -> None:
    """``q(w) + w``: the add passes one gradient tensor to both branches; the public op (no
    ``reuse``) must not write into it."""
    grads = []
    for mode in ("fused", "reference"):
        w = torch.linspace(-1.5, 1.5, 12).reshape(3, 4).requires_grad_(True)
        with quant_ops(mode):
            (get_quantizer(name)(w, 1.0, scale=torch.full((3, 1), 0.5)) + w).backward(
                torch.full((3, 4), 2.0))
        grads.append(w.grad)
    assert torch.equal(grads[0], grads[1])


# ------------------------------------------------------------------------------- the switch
def test_mode_switch_validates_and_restores() -> None:
    before = fused.get_mode()
    with quant_ops("reference"):
        assert fused.get_mode() == "reference"
    assert fused.get_mode() == before
    with pytest.raises(InvalidInputError, match="mode"):
        fused.set_mode("fast")
    with pytest.raises(InvalidInputError, match="mode"), quant_ops("slow"):
        pass  # pragma: no cover


def test_environment_variable_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fused._state, "mode", None)
    monkeypatch.setenv("PROXCOMPRESS_QUANT_OPS", "Reference")
    assert fused.get_mode() == "reference"
    monkeypatch.setitem(fused._state, "mode", None)
    monkeypatch.setenv("PROXCOMPRESS_QUANT_OPS", "turbo")
    with pytest.raises(InvalidInputError, match="PROXCOMPRESS_QUANT_OPS"):
        fused.get_mode()
    monkeypatch.setitem(fused._state, "mode", None)


def test_scale_of_another_shape_is_refused() -> None:
    w = torch.randn(3, 4, requires_grad=True)
    with quant_ops("fused"), pytest.raises(InvalidInputError, match="scale"):
        get_quantizer("bnn")(w, 0.0, scale=torch.ones(1, 4))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile's CPU backend needs a C++ compiler")
@pytest.mark.parametrize("name", FOLDED)
def test_compiled_mode_matches_up_to_the_rounding_of_q(name: str) -> None:
    """``compiled`` (optional): inductor fuses the SignSwish passes and may contract
    ``s - s^2`` into a multiply-add, so it differs from the reference by the absolute rounding
    of ``q`` (relative near 0, absolute in the tails where ``q`` cancels)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(7, 9, generator=g) * 1.5
    scale = torch.rand(7, 1, generator=g) + 0.5
    upstream = torch.randn(7, 9, generator=g)
    for mu in (0.0, 3.0, 9.0):  # mu changes: no recompilation (mu is a tensor input)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            got = _run(name, x, mu, "compiled", scale, upstream)
        if "compile_error" in fused._state:  # the fallback ran (and equals the reference)
            pytest.skip(f"torch.compile failed here: {fused._state['compile_error']}")
        want = _run(name, x, mu, "reference", scale, upstream)
        beta = 5.0 + mu if name == "bnn++" else 5.0
        bound = 64 * float(torch.finfo(torch.float32).eps) * 2 * beta * 1.5 * (2 + beta * 7)
        torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=bound * 3)


@pytest.mark.parametrize("zero", [True, False])
@pytest.mark.parametrize("rounding", ["log", "linear"])
def test_deepshift_rounding_pass_equals_the_reference(zero: bool, rounding: str) -> None:
    """DeepShift-Q's forward (``kernels.trainstep.shift_round_pass`` in ``fused`` mode): the
    layer output and the gradients bitwise those of the torch ops, over two steps (the reused
    buffer is refilled)."""
    from proxcompress.training.shift import ShiftConv2d, ShiftLinear

    results = []
    for mode in ("fused", "reference"):
        torch.manual_seed(0)
        layers = [ShiftLinear(24, 16, bits=4, zero=zero, rounding=rounding),
                  ShiftConv2d(3, 8, 3, bits=3, zero=zero, rounding=rounding)]
        got = []
        for layer, x in zip(layers, (torch.randn(5, 24), torch.randn(2, 3, 6, 6)), strict=True):
            opt = torch.optim.SGD(layer.parameters(), lr=0.05)
            with quant_ops(mode):
                for _ in range(2):
                    out = layer(x)
                    opt.zero_grad()
                    (out ** 2).mean().backward()
                    got += [out.detach().clone(), layer.weight.grad.clone()]
                    opt.step()
        results.append(got)
    for g, w in zip(*results, strict=True):
        assert torch.equal(g, w)


def test_a_failing_compiler_falls_back_to_the_fused_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    """``compiled`` mode never breaks training: a compiler error warns once and the kernel runs
    uncompiled (same values as ``fused``)."""
    def broken(fn: Any, **kwargs: Any) -> Any:
        def call(*args: Any) -> None:
            raise RuntimeError("no C++ compiler")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(fused, "_compiled", {})
    monkeypatch.setitem(fused._state, "compile_error", None)
    x = torch.linspace(-2.0, 2.0, 12).reshape(3, 4)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        got = _run("bnn+", x, 1.0, "compiled")
    assert "no C++ compiler" in fused._state["compile_error"]
    want = _run("bnn+", x, 1.0, "fused")
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)
    fused._state.pop("compile_error")


@pytest.mark.parametrize("name", FOLDED)
@pytest.mark.parametrize("threads", [1, 2])
def test_one_pass_signswish_equals_the_pass_after_torchs_sigmoid(
        name: str, threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A float32 latent past ``_INLINE_SIGMOID_MIN`` (a 320 x 256 weight with its channel scale)
    takes the one pass (scale, ``u``, sigmoid, outputs; rows split over torch's threads):
    outputs, gradients and scale equal those of the smaller latents' path (torch's sigmoid,
    then the numba pass) bit for bit where torch's sigmoid runs its vector path (each
    thread's range a multiple of 32 elements here), and within the FOLDED tolerance of the
    reference ops."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(320, 256, generator=g) * 0.8
    x[0, :4] = torch.tensor([0.0, -0.0, 1.0, -1.0])
    upstream = torch.randn(320, 256, generator=g)
    scale = ChannelScale(torch.rand(320, generator=g), 300.0)
    assert x.numel() >= fused._INLINE_SIGMOID_MIN
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for mu in (0.0, 3.0):
            got = _run(name, x, mu, "fused", scale, upstream)
            with monkeypatch.context() as m:
                m.setattr(fused, "_INLINE_SIGMOID_MIN", 1 << 40)
                before = _run(name, x, mu, "fused", scale, upstream)
            # the reference from the fused scale (the reference's up to summation order, which
            # differs with the CPU's vector width: torch sums 256 floats in another order on an
            # AVX-512 Xeon than on Zen)
            with quant_ops("fused"):
                alpha = fused_forward(get_quantizer(name).kernel, x, mu, scale)[2]
            assert alpha is not None
            np.testing.assert_allclose(alpha.numpy(), scale.reference(x).numpy(),
                                       rtol=256 * float(torch.finfo(x.dtype).eps), atol=0)
            want = _run(name, x, mu, "reference", alpha, upstream)
            for a, b, c in zip(got, before, want, strict=True):
                if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
                    assert torch.equal(a, b), (name, mu, (a - b).abs().max())
                _assert_same(name, a, c, True)
    finally:
        torch.set_num_threads(previous)
