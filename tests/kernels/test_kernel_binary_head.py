"""The fused binary layer -> clip -> float head of a binary MLP (kernels.binary_head): its
tail against the NumPy formula, the exported MLP against the unfused NumPy twin and torch, the
float fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from bench_module import bench_kernels
from hypothesis import given, settings
from hypothesis import strategies as st

from proxcompress.kernels import cpu, cpu_mlp, load
from proxcompress.kernels.model import _Packed


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 11), k=st.integers(1, 300),
       o=st.integers(1, 12), clip=st.booleans())
def test_tail_equals_the_numpy_formula(seed: int, n: int, k: int, o: int, clip: bool) -> None:
    rng = np.random.default_rng(seed)
    acc = rng.integers(-k, k + 1, (n, k)).astype(np.int32)
    scale = rng.normal(size=k).astype(np.float32) / np.float32(k)
    bias = rng.normal(size=k).astype(np.float32)
    lo, hi = (np.float32(-1), np.float32(1)) if clip else (np.float32(-np.inf), np.float32(np.inf))
    wh = rng.normal(size=(o, k))
    bh = rng.normal(size=o)
    out = np.empty((n, o), np.float32)
    cpu_mlp.head_tail(acc, scale, bias, lo, hi, wh, bh, out)
    alone = np.empty_like(out)  # the serial twin (a batch-1 call): the same sums, bit for bit
    cpu.serial(cpu_mlp.head_tail)(acc, scale, bias, lo, hi, wh, bh, alone)
    np.testing.assert_array_equal(alone.view(np.uint32), out.view(np.uint32))
    h = (acc.astype(np.float32) * scale + bias).clip(lo, hi)  # the unfused steps' float32
    want = h.astype(np.float64) @ wh.T + bh
    np.testing.assert_allclose(out, want.astype(np.float32), rtol=2e-7,
                               atol=1e-12 * float(np.abs(h).sum() * np.abs(wh).max() + 1))


def test_mlp_fuses_its_tail_and_equals_the_twin_and_torch(tmp_path: Path) -> None:
    from proxcompress.training.data import load_embedded
    from proxcompress.training.exporter import export
    from proxcompress.training.layers import hard_quantization

    model = bench_kernels()._model_case("mlp-binary")
    _, test = load_embedded()
    x = test.x[:200]
    export(model, tmp_path, example=x[:16])
    fused, twin = load(tmp_path, backend="numba"), load(tmp_path, backend="numpy")
    assert fused.fused == {"head": ("fc1", "bn1", "act1", "drop1")}
    xn = np.ascontiguousarray(x.numpy())
    got, ref = fused(xn), twin(xn)
    with torch.no_grad(), hard_quantization(model):
        want = model(x).numpy()
    assert (got.argmax(1) == want.argmax(1)).all() and (got.argmax(1) == ref.argmax(1)).all()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))
    # the group's step on a float batch (a producer's exact 0 keeps floats): the unfused steps
    values = {twin.input_name: xn}
    for name, inputs, fn in twin.steps:
        values[name] = fn(*(values[i] for i in inputs))
    step = dict((name, fn) for name, _, fn in fused.steps)["head"]
    floats = values["drop0"]
    assert not isinstance(floats, _Packed)
    np.testing.assert_allclose(step(floats), values["head"], rtol=1e-5,
                               atol=1e-5 * float(np.abs(values["head"]).max()))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), size=st.integers(0, 300),
       special=st.sampled_from([None, np.nan, np.inf, -np.inf]), big=st.booleans())
def test_all_finite_equals_numpy(seed: int, size: int, special: float | None, big: bool) -> None:
    """``cpu.all_finite`` (the numba backend's input check) against ``np.isfinite().all()``:
    a NaN or an infinity anywhere, float32 extremes (whose ``v - v`` is still 0)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=size).astype(np.float32)
    if big and size:
        x[rng.integers(size)] = np.finfo(np.float32).max * rng.choice([-1, 1])
    if special is not None and size:
        x[rng.integers(size)] = special
    assert cpu.all_finite(x) == bool(np.isfinite(x).all())


def test_model_rejects_nan_and_inf_naming_x(tmp_path: Path) -> None:
    from proxcompress.errors import InvalidInputError
    from proxcompress.training.exporter import export

    model = bench_kernels()._model_case("mlp-binary")
    x = torch.zeros(3, 1, 28, 28)
    export(model, tmp_path, example=x)
    for backend in ("numba", "numpy"):
        loaded = load(tmp_path, backend=backend)
        for bad in (np.nan, np.inf, -np.inf):
            xn = np.zeros((3, 1, 28, 28), np.float32)
            xn[2, 0, 27, 27] = bad
            with pytest.raises(InvalidInputError, match="x"):
                loaded(xn)
        assert loaded(np.zeros((3, 1, 28, 28), np.float32)).shape == (3, 10)
