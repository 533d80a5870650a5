"""Serial calls below a work threshold (``cpu.launch``, issue 17): every kernel that a model
call runs through ``launch`` gives the same output, bit for bit, on its serial twin and on the
parallel kernel (one and two threads); the serial twin is a separately cached function; the
float head's ``linear_f64`` equals its NumPy twin (float64 products summed in order) bit for
bit; an exported binary CNN gives each image the same logits alone (batch 1, serial) as inside
a batch run serially, and its parallel run's predictions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytest
import torch

from proxcompress.kernels import cpu, cpu_packed, packed
from proxcompress.kernels.formats import pack_negative_mask

NEVER = 2**62  # a threshold no call reaches: always serial


def _paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Yield once per path (serial; parallel at one and at two threads), with
    ``cpu.SERIAL_WORK`` and numba's thread count set for it."""
    threads = numba.get_num_threads()
    try:
        monkeypatch.setattr(cpu, "SERIAL_WORK", NEVER)
        yield "serial"
        monkeypatch.setattr(cpu, "SERIAL_WORK", 0)
        for count in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(count)
            yield f"parallel-{count}"
    finally:
        numba.set_num_threads(threads)


def _same_on_every_path(monkeypatch: pytest.MonkeyPatch, run: Callable[[], Any]) -> None:
    outs = {path: run() for path in _paths(monkeypatch)}
    want = outs.pop("serial")
    for path, got in outs.items():
        for g, w in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,), strict=True):
            assert g.dtype == w.dtype, path
            np.testing.assert_array_equal(g.view(np.uint8), w.view(np.uint8), err_msg=path)


def test_launch_picks_the_serial_twin_below_the_threshold(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Below ``SERIAL_WORK`` the call runs the twin (its own dispatcher, compiled without
    ``parallel``, cached under ``<name>_serial``), at or above it the parallel kernel."""
    twin = cpu.serial(cpu_packed.max_pool_words)
    assert twin is cpu.serial(cpu_packed.max_pool_words)  # one twin per kernel
    assert twin.py_func.__qualname__ == "max_pool_words_serial"
    assert not twin.targetoptions.get("parallel")
    assert cpu_packed.max_pool_words.targetoptions.get("parallel")
    calls: list[str] = []
    monkeypatch.setattr(cpu, "serial", lambda k: lambda *a: calls.append("serial"))
    cpu.launch(lambda *a: calls.append("parallel"), cpu.SERIAL_WORK - 1, 4)
    cpu.launch(lambda *a: calls.append("parallel"), cpu.SERIAL_WORK, 4)
    cpu.launch(lambda *a: calls.append("parallel"), cpu.SERIAL_WORK, None)
    assert calls == ["serial", "parallel", "parallel"]


@pytest.mark.parametrize(("n", "c", "o", "h", "w", "k", "pad", "stride"),
                         [(3, 16, 32, 14, 14, 3, 1, 1), (2, 70, 5, 9, 8, 3, 0, 2),
                          (1, 3, 65, 7, 7, 3, 2, 1), (5, 32, 64, 7, 7, 3, 1, 1)])
def test_row_conv_serial_equals_parallel(monkeypatch: pytest.MonkeyPatch, n: int, c: int,
                                         o: int, h: int, w: int, k: int, pad: int,
                                         stride: int) -> None:
    """``RowConv``'s accumulators, float finish, pooled finish and packed thresholds: whole
    images per task (serial) against row blocks (parallel, few images)."""
    rng = np.random.default_rng(n * c + o)
    xw = np.empty((n, h, w, -(-c // 64)), np.uint64)
    cpu.pack_channels(rng.random((n, c, h, w)) < 0.5, xw)
    w_taps = np.ascontiguousarray(pack_negative_mask(rng.random((k, k, o, c)) < 0.5)
                                  .transpose(0, 1, 3, 2))
    pad_sum = rng.integers(-c, c + 1, (k, k, o))
    rows = packed.RowConv(w_taps, c, (stride, stride), (pad, pad), (1, 1), pad_sum)
    scale = (rng.standard_normal(o) * 0.1).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    t = rng.integers(-3 * c, 3 * c, o).astype(np.int32)
    flip = rng.random(o) < 0.3
    _same_on_every_path(monkeypatch, lambda: (
        rows.acc(xw), rows.affine(xw, scale, bias), rows.affine(xw, scale, None),
        rows.affine_pool(xw, scale, bias, -1.0, 1.0, 2), rows.threshold(xw, t, flip)))


@pytest.mark.parametrize(("n", "o", "pad", "rows"), [(3, 16, 1, 13), (2, 70, 0, 4), (1, 5, 2, 1)])
def test_float_sign_convs_serial_equal_parallel(monkeypatch: pytest.MonkeyPatch, n: int, o: int,
                                                pad: int, rows: int) -> None:
    """The first layer's float convs with the sign epilogue (grey 3 x 3, tasks of ``rows``
    output rows, and generic), rows with an exact 0 output included (a zero image, a zero
    bias)."""
    rng = np.random.default_rng(o + pad)
    x = rng.standard_normal((n, 1, 13, 11)).astype(np.float32)
    x[0] = 0
    wt = rng.standard_normal((3, 3, 1, o)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    b[0] = 0
    ho, wo = 13 + 2 * pad - 2, 11 + 2 * pad - 2

    def run() -> tuple[np.ndarray, ...]:
        outs = []
        for kernel, args in ((cpu_packed.float_conv3x3_sign, (x, wt, b, (pad, pad), rows, 1)),
                             (cpu_packed.float_conv_sign, (x, wt, b, (1, 1), (pad, pad), (1, 1)))):
            words = np.empty((n, ho, wo, -(-o // 64)), np.uint64)
            zero = np.empty(n * ho, np.int8)
            cpu.launch(kernel, 1 if cpu.SERIAL_WORK == NEVER else 0, n * ho, *args, words, zero)
            outs += [words, zero]
        return tuple(outs)

    _same_on_every_path(monkeypatch, run)


def test_packed_steps_and_binary_gemm_serial_equal_parallel(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Max-pooling and threshold packing of words, the binary GEMM (a binary MLP's layers)
    and the direct binary conv of an NCHW mask."""
    rng = np.random.default_rng(5)
    words = rng.integers(0, 2**63, (2, 9, 8, 2), dtype=np.uint64)
    acc = rng.integers(-50, 50, (7, 130)).astype(np.int32)
    t = rng.integers(-20, 20, 130).astype(np.int32)
    flip = rng.random(130) < 0.5
    a = rng.integers(0, 2**63, (9, 13), dtype=np.uint64)
    b = rng.integers(0, 2**63, (70, 13), dtype=np.uint64)
    neg = rng.random((2, 20, 9, 9)) < 0.5
    w_taps = np.ascontiguousarray(pack_negative_mask(rng.random((3, 3, 24, 20)) < 0.5)
                                  .transpose(0, 1, 3, 2))
    pad_sum = np.zeros((3, 3, 24), np.int64)

    def run() -> tuple[np.ndarray, ...]:
        out = np.empty((9, 70), np.int32)
        cpu.binary_matmul(a, b, 13 * 64 - 5, out)
        conv = cpu.binary_conv2d(neg, w_taps, 20, (1, 1), (1, 1), (1, 1), pad_sum, (9, 9))
        return (packed.max_pool_packed(words, 2), packed.max_pool_packed(words, 3, 1),
                packed.threshold_pack(acc, t, flip), out, conv)

    _same_on_every_path(monkeypatch, run)


@pytest.mark.parametrize(("n", "k", "o"), [(1, 288, 10), (7, 512, 10), (3, 5, 130)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_f64_equals_its_twin(monkeypatch: pytest.MonkeyPatch, n: int, k: int, o: int,
                                    with_bias: bool) -> None:
    """The small float layer: float64 products (exact) summed from +0.0 over ``k`` in order
    (NumPy's ``cumsum``), rounded once, plus the float32 bias, bit for bit (signed zeros included),
    serial and parallel; within float32 rounding of the float64 product."""
    rng = np.random.default_rng(k + o)
    x = rng.standard_normal((n, k)).astype(np.float32)
    x[0, :] = 0  # a zero row: +0.0 without a bias
    w = rng.standard_normal((o, k)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    wt = np.ascontiguousarray(w.T, dtype=np.float64)
    prod = x.astype(np.float64)[:, :, None] * wt[None]
    start = np.zeros((n, 1, o))  # the sum starts at +0.0 (then 0 * -w sums to +0.0)
    want = np.cumsum(np.concatenate([start, prod], axis=1), axis=1)[:, -1].astype(np.float32)
    if with_bias:
        want = want + bias

    def run() -> np.ndarray:
        out = np.empty((n, o), np.float32)
        cpu.launch(cpu.linear_f64, 1 if cpu.SERIAL_WORK == NEVER else 0, n, x, wt, bias,
                   with_bias, out)
        return out

    _same_on_every_path(monkeypatch, run)
    got = run()
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    exact = x.astype(np.float64) @ w.T.astype(np.float64) + (bias if with_bias else 0)
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-6 * np.abs(exact).max())


def test_binary_cnn_batch_one_equals_its_rows_in_a_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exported binary CNN (numba backend): each image alone (batch 1: every step serial,
    the numba head) gives the logits, bit for bit, of its row in a batch run with every step
    serial and with every step parallel; with the head on torch's sgemm the logits agree to
    float32 rounding, with the same predictions."""
    from proxcompress.kernels.model import load
    from proxcompress.training.exporter import export
    from proxcompress.training.models import build_model, calibrate_batchnorm
    from proxcompress.training.quantize import QuantRecipe, quantize_model

    model = build_model("vgg", width=16, stages=(1, 1, 1), activation="hardtanh", seed=0)
    model = quantize_model(model, QuantRecipe("bnn", "bnn"))
    model = calibrate_batchnorm(model, (1, 28, 28), samples=128, seed=3).eval()
    x = torch.randn(12, 1, 28, 28, generator=torch.Generator().manual_seed(2)).numpy()
    export(model, tmp_path / "cnn", example=torch.from_numpy(x[:8]))
    fast = load(tmp_path / "cnn", backend="numba")
    alone = np.concatenate([fast(x[i:i + 1]) for i in range(len(x))])
    monkeypatch.setattr(cpu, "SERIAL_WORK", NEVER)
    np.testing.assert_array_equal(fast(x).view(np.uint32), alone.view(np.uint32))
    monkeypatch.setattr(cpu, "SERIAL_WORK", 0)
    np.testing.assert_array_equal(fast(x).view(np.uint32), alone.view(np.uint32))
    monkeypatch.setattr(cpu, "SMALL_LINEAR_WORK", 0)  # the head on torch's sgemm
    sgemm = fast(x)
    np.testing.assert_allclose(sgemm, alone, rtol=1e-5, atol=1e-5 * np.abs(alone).max())
    assert (sgemm.argmax(1) == alone.argmax(1)).all()


def test_vit_token_kernels_serial_equal_parallel(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's binary ViT: every fused token step (ReAct linears, attentions,
    multi-poolings) and the layer norms give the same values, bit for bit, serially and in
    parallel (one and two threads), each fed the same inputs; the predictions agree."""
    from bench_module import bench_kernels

    from proxcompress.kernels.model import load
    from proxcompress.training.data import load_embedded
    from proxcompress.training.exporter import export

    model = bench_kernels()._model_case("vit-binary")
    _, test = load_embedded()
    x = np.ascontiguousarray(test.x[:6].numpy())
    export(model, tmp_path, example=torch.from_numpy(x))
    fused = load(tmp_path, backend="numba")
    ops = {n["name"]: n["op"] for n in fused.manifest["nodes"]}
    token_steps = [(name, inputs, fn) for name, inputs, fn in fused.steps
                   if name in fused.fused or ops[name] == "layernorm"]
    assert len(token_steps) > 25
    monkeypatch.setattr(cpu, "SERIAL_WORK", NEVER)
    values = {fused.input_name: x}
    for name, inputs, fn in fused.steps:
        values[name] = fn(*(values[i] for i in inputs))
    serial_logits = values[fused.output_name]

    def run() -> tuple[np.ndarray, ...]:
        return tuple(fn(*(values[i] for i in inputs)) for _, inputs, fn in token_steps)

    _same_on_every_path(monkeypatch, run)
    assert (fused(x).argmax(1) == serial_logits.argmax(1)).all()
