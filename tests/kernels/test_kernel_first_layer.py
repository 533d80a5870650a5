"""The certified integer signs of a float first layer on grid inputs (kernels.first_layer):
bit for bit the exact sign of ``x w^T + b`` (``reference_signs``: exact float32 products,
correctly rounded sums), near-threshold entries included; the fallbacks; a model's
predictions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from bench_module import bench_kernels
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxcompress.errors import InvalidInputError
from proxcompress.kernels import cpu_mlp, load
from proxcompress.kernels import first_layer as fl
from proxcompress.kernels.formats import pack_negative_mask

needs_vnni = pytest.mark.skipif(not fl.available(), reason="no AVX-512 VNNI on this CPU")


def _case(seed: int, n: int, k: int, c: int, levels: int, binary: bool, near: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, fl.Grid]:
    """Grid inputs (float32 of ``a p + o`` as a data pipeline computes them), weights (float or
    ``scale * +-1``) and a bias; ``near`` rows get a bias that puts their pre-activation within
    float rounding of 0 (the adversarial entries the bounds must catch)."""
    rng = np.random.default_rng(seed)
    a = float(rng.choice([-1, 1]) * rng.uniform(1e-3, 0.1))
    o = -a * float(rng.uniform(0, levels))  # |x| <= |a| levels: float32 keeps the grid
    grid = fl.Grid(a, o, levels)
    p = rng.integers(0, levels, (n, k)) * (rng.random((n, k)) < 0.6)  # sparse, like images
    x = (np.float32(a) * p.astype(np.float32) + np.float32(o)).astype(np.float32)
    if binary:
        w = (rng.uniform(0.01, 1, (c, 1)) * rng.choice([-1, 1], (c, k))).astype(np.float32)
    else:
        w = (rng.normal(size=(c, k)) * rng.uniform(0.01, 1, (c, 1))).astype(np.float32)
    b = rng.normal(size=c).astype(np.float32)
    for r in range(min(near, n)):
        cols = rng.integers(0, c, max(1, c // 3))
        exact = x[r].astype(np.float64) @ w[cols].astype(np.float64).T
        b[cols] = (-exact).astype(np.float32)  # y within float32 rounding of 0
    return x, w, b, grid


@needs_vnni
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), n=st.integers(1, 9), k=st.integers(1, 70),
       c=st.integers(1, 140), levels=st.sampled_from([2, 17, 255, 256]),
       binary=st.booleans(), near=st.integers(0, 3))
def test_signs_equal_the_exact_sign(seed: int, n: int, k: int, c: int, levels: int,
                                    binary: bool, near: int) -> None:
    x, w, b, grid = _case(seed, n, k, c, levels, binary, near)
    layer = fl.GridSignLayer(w, b, grid)
    words = layer(x)
    want = fl.reference_signs(x, w, b)
    if words is None:  # only for an entry whose exact value is within float64 rounding of 0
        assert layer.last["undecided"] > 0
        exact = [[math.fsum([*(x[r].astype(np.float64) * w[j].astype(np.float64)), float(b[j])])
                  for j in range(c)] for r in range(n)]
        assert np.min(np.abs(exact)) <= 1e-9 * (np.abs(x).max() * np.abs(w).sum(1).max() + 1)
        return
    assert words.shape == (n, (c + 63) // 64)
    np.testing.assert_array_equal(words, pack_negative_mask(want))
    assert layer.last["entries"] == n * c
    assert 0 <= layer.last["level2"] <= n * c and 0 <= layer.last["level3"] <= n * c


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 12), k=st.integers(1, 60),
       c=st.integers(1, 90), binary=st.booleans(), near=st.integers(0, 3))
def test_batch_limits_only_decide_what_each_rows_bound_decides(
        seed: int, n: int, k: int, c: int, binary: bool, near: int) -> None:
    """``level1_limits`` (the batch's largest norms and distance): a product below ``lo`` is
    certified negative, above ``hi`` certified positive, by the row's own level-1 bound
    (``|y| > bound`` in float64, as ``_row_signs`` evaluates it); padding channels are
    neither negative nor open."""
    x, w, b, grid = _case(seed, n, k, c, 256, binary, near)
    layer = fl.GridSignLayer(w, b, grid)
    p = np.rint((x.astype(np.float64) - grid.offset) / grid.scale)
    q1 = layer.q1.view(np.int8).reshape(layer.groups, layer.c_pad, 4).transpose(1, 0, 2)
    acc = p @ q1.reshape(layer.c_pad, -1)[:, :k].T.astype(np.float64)  # exact: small ints
    l1, l2 = p.sum(1), np.sqrt((p * p).sum(1))
    err = np.abs(x - (grid.scale * p + grid.offset)).max(1) + 1e-7 * abs(grid.scale)
    lo, hi = np.empty(layer.c_pad, np.int32), np.empty(layer.c_pad, np.int32)
    cpu_mlp.level1_limits(layer.tab, grid.scale, l1, l2, err, layer.slack, lo, hi)
    assert (lo[c:] == 0).all() and (hi[c:] == -1).all()
    t, aa = layer.tab, abs(grid.scale)
    for r in range(n):
        s1 = t[0] * acc[r, :c]
        y = s1 + t[1]
        bound = (aa * np.minimum(l1[r] * t[2], l2[r] * t[3]) + t[7] * err[r]
                 + layer.slack * (np.abs(s1) + t[9] + aa * l1[r] * t[8]))
        below, above = acc[r, :c] < lo[:c], acc[r, :c] > hi[:c]
        assert (y[below] < -bound[below]).all() and (y[above] > bound[above]).all()


@needs_vnni
def test_batches_of_any_size_reuse_the_scratch_exactly() -> None:
    """Batches of decreasing, equal-when-padded and growing sizes through one layer (its
    per-thread codes and accumulators kept between calls): each equals the reference."""
    x, w, b, grid = _case(4, 11, 57, 90, 256, True, 2)
    layer = fl.GridSignLayer(w, b, grid)
    for n in (11, 9, 12 - fl.ROWS + 1, 1, 11, 3):
        got = layer(x[:n])
        assert got is not None
        np.testing.assert_array_equal(got, pack_negative_mask(fl.reference_signs(x[:n], w, b)))


@needs_vnni
@pytest.mark.parametrize(("seed", "n", "binary"), [(5, 37, True), (6, 64, False), (7, 9, True)])
def test_serial_and_parallel_paths_give_the_exact_signs(monkeypatch: pytest.MonkeyPatch,
                                                         seed: int, n: int, binary: bool) -> None:
    """The grid codes and the fused int8 GEMM + certified signs on their serial twins and in
    parallel at one and two threads (row tiles handed out dynamically, rows in support order,
    a batch that is not a multiple of the tile): the same words, each the exact sign."""
    import numba

    from proxcompress.kernels import cpu

    x, w, b, grid = _case(seed, n, 70, 140, 256, binary, 3)
    layer = fl.GridSignLayer(w, b, grid)
    want = pack_negative_mask(fl.reference_signs(x, w, b))
    threads = numba.get_num_threads()
    try:
        for work, count in ((2**62, threads), (0, 1), (0, min(2, numba.config.NUMBA_NUM_THREADS))):
            monkeypatch.setattr(cpu, "SERIAL_WORK", work)
            numba.set_num_threads(count)
            got = layer(x)
            assert got is not None, (work, count)
            np.testing.assert_array_equal(got, want, err_msg=f"{work} {count}")
    finally:
        numba.set_num_threads(threads)


@needs_vnni
def test_an_exact_zero_has_no_sign_and_takes_the_fallback() -> None:
    """``y = 0`` exactly (a zero weight row, zero bias): torch's ``sign(0) = 0`` cannot be packed,
    so the layer declines and the producer runs the float path."""
    x, w, b, grid = _case(1, 5, 33, 70, 256, False, 0)
    w[7] = 0
    b[7] = 0
    layer = fl.GridSignLayer(w, b, grid)
    assert layer(x) is None and layer.last["undecided"] == 5


@needs_vnni
def test_off_grid_input_declines() -> None:
    x, w, b, grid = _case(2, 6, 40, 30, 256, True, 0)
    layer = fl.GridSignLayer(w, b, grid)
    assert layer(x) is not None
    for bad in (x + np.float32(grid.scale * 0.3), x + np.float32(grid.scale) * 300,
                np.random.default_rng(0).normal(size=x.shape).astype(np.float32)):
        assert layer(np.ascontiguousarray(bad, dtype=np.float32)) is None
        assert layer.last == {"off_grid": 1}
    nudged = x.copy()
    nudged[-1, -1] += np.float32(grid.scale * 0.3)  # one value of the last row
    assert layer(nudged) is None


@needs_vnni
def test_int8_gemm_emits_vpdpbusd_and_equals_numpy() -> None:
    import numba

    @numba.njit
    def gemm(p, q, acc, order):  # type: ignore[no-untyped-def]
        cpu_mlp.tile(p, q, acc, order, 0, 0)

    rng = np.random.default_rng(3)
    p = rng.integers(0, 256, (fl.ROWS, 4 * 9), dtype=np.uint8)
    p[:, 8:12] = 0  # a skipped word group
    q = rng.integers(-127, 128, (9, fl.COLS * fl.LANES, 4), dtype=np.int8)
    acc = np.empty((fl.ROWS, fl.COLS * fl.LANES), np.int32)
    order = np.arange(fl.ROWS)[::-1].copy()  # the tile's rows in any order: its block's row
    gemm(p.view(np.int32), np.ascontiguousarray(q).view(np.int32)[..., 0], acc, order)  # r
    want = p.astype(np.int64) @ q.transpose(0, 2, 1).reshape(36, -1).astype(np.int64)  # reads
    np.testing.assert_array_equal(acc, want[order])  # p's row order[r]
    asm = "\n".join(gemm.inspect_asm().values())
    assert "vpdpbusd" in asm and "zmm" in asm


@given(raw=st.one_of(
    st.none().map(lambda _: [1, 2, 3]),
    st.fixed_dictionaries({"scale": st.sampled_from([0, 0.0, float("nan"), float("inf"), "1",
                                                     True]),
                           "offset": st.just(0.0), "levels": st.just(256)}),
    st.fixed_dictionaries({"scale": st.just(0.5), "offset": st.sampled_from([float("nan"), None]),
                           "levels": st.just(256)}),
    st.fixed_dictionaries({"scale": st.just(0.5), "offset": st.just(0.0),
                           "levels": st.sampled_from([1, 0, 257, 2.5, True, "256", None])})))
def test_bad_grid_is_rejected_naming_the_field(raw: object) -> None:
    with pytest.raises(InvalidInputError, match="input_grid"):
        fl.parse_grid(raw)


def _mlp() -> torch.nn.Module:
    return bench_kernels()._model_case("mlp-binary")


def test_export_rejects_a_bad_grid_before_writing(tmp_path: Path) -> None:
    from proxcompress.training.exporter import export

    with pytest.raises(InvalidInputError, match="input_grid"):
        export(_mlp(), tmp_path / "m", input_grid=(0.0, 1.0, 256))
    with pytest.raises(InvalidInputError, match="input_grid"):
        export(_mlp(), tmp_path / "m", input_grid=(1.0, 2.0))  # type: ignore[arg-type]
    assert not (tmp_path / "m").exists()


def test_model_takes_the_certified_path_on_images_and_the_float_path_otherwise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The binary MLP exported with Fashion-MNIST's grid: on embedded test images its first
    layer runs the certified path (where the CPU has VNNI) and the model predicts as torch and
    returns the logits of the float path; on noise (off the grid) it runs the float path; with
    no grid recorded, or no VNNI, no step has the integer path."""
    from proxcompress.training.data import FMNIST_GRID, load_embedded
    from proxcompress.training.exporter import export
    from proxcompress.training.layers import hard_quantization

    model = _mlp()
    _, test = load_embedded()
    x = test.x[:64]
    export(model, tmp_path / "grid", example=x[:16], input_grid=FMNIST_GRID)
    export(model, tmp_path / "plain", example=x[:16])
    grid, plain = load(tmp_path / "grid"), load(tmp_path / "plain")
    assert plain.input_grid is None and grid.input_grid == fl.Grid(*FMNIST_GRID)
    layers = [fn.layer for _, _, fn in grid.steps if hasattr(fn, "layer")]
    assert len(layers) == (1 if fl.available() else 0)
    assert not any(hasattr(fn, "layer") for _, _, fn in plain.steps)
    xn = np.ascontiguousarray(x.numpy())
    with torch.no_grad(), hard_quantization(model):
        want = model(x).numpy()
    got = grid(xn)
    assert (got.argmax(1) == want.argmax(1)).all()
    np.testing.assert_array_equal(got, plain(xn))
    if layers:
        assert layers[0].last["entries"] == 64 * 512 and layers[0].last["undecided"] == 0
    noise = np.random.default_rng(0).normal(size=xn.shape).astype(np.float32)
    np.testing.assert_array_equal(grid(noise), plain(noise))
    if layers:
        assert layers[0].last == {"off_grid": 1}
    monkeypatch.setattr(fl, "available", lambda: False)
    assert not any(hasattr(fn, "layer") for _, _, fn in load(tmp_path / "grid").steps)


@pytest.mark.slow
def test_mlp_benchmark_case_predicts_as_torch_on_the_whole_test_set(tmp_path: Path) -> None:
    """The export check of ``benchmarks/kernels.py models`` for ``mlp-binary`` with the grid:
    all 10,000 Fashion-MNIST test images predicted as torch eval, every first-layer sign
    certified."""
    from proxcompress.training.data import FMNIST_GRID, load_fashion_mnist
    from proxcompress.training.exporter import export

    try:
        load_fashion_mnist()
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed")
    bench = bench_kernels()
    model = _mlp()
    x, _ = bench._model_input("images", 16)
    export(model, tmp_path, example=x, input_grid=FMNIST_GRID)
    loaded = load(tmp_path)
    agreement = bench._test_set_agreement(model, loaded)
    assert agreement["equal_predictions"] == agreement["samples"] == 10000
    stats = bench._first_layer_stats(loaded)
    assert (stats is not None) == fl.available()
    if stats is not None:
        assert stats["undecided"] == 0 and stats["entries"] == 1000 * 512
