"""The cupy backend against the numpy twin (run by ``pytest -m gpu``; skipped without CUDA)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from kernel_tolerances import EPS32, assert_within, euclid_bound, matmul_bound

from proxcompress import kernels as K

pytestmark = pytest.mark.gpu

KS = (1, 63, 64, 65, 1000)
MNS = (1, 7, 129)
GRID = [(m, n, k) for k in KS for m, n in itertools.product(MNS, MNS)]
# several block tiles, several cp.async stages, ragged everything
LARGE = [(300, 260, 3000), (17, 1000, 4097), (16, 515, 2048), (257, 129, 512)]


@pytest.fixture(scope="module")
def cp():  # type: ignore[no-untyped-def]
    import cupy

    return cupy


@pytest.fixture(scope="module")
def gpu():  # type: ignore[no-untyped-def]
    from proxcompress.kernels import gpu

    return gpu


def _algos(m: int, cc: int) -> list[str]:
    if cc < 80:
        return ["auto", "simt"]
    return ["auto", "simt", "tc_and", "tc_xor"] + (["gemv"] if m <= 16 else [])


@pytest.mark.parametrize(("m", "n", "k"), GRID + LARGE)
def test_binary_all_algorithms_equal_twin(cp, gpu, m: int, n: int, k: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng([m, n, k])
    aw = K.pack_signs(rng.standard_normal((m, k)))
    bw = K.pack_signs(rng.standard_normal((n, k)))
    twin = K.binary_matmul(aw, bw, k, backend="numpy")
    da, db = cp.asarray(aw), cp.asarray(bw)
    for algo in _algos(m, gpu.compute_capability()):
        got = gpu.binary_matmul(da, db, k, algo=algo)
        np.testing.assert_array_equal(cp.asnumpy(got), twin, err_msg=f"algo={algo}")
    public = K.binary_matmul(da, db, k)
    assert isinstance(public, cp.ndarray) and public.dtype == cp.int32
    np.testing.assert_array_equal(cp.asnumpy(public), twin)


# the GEMV's row cases (M <= 8, 8 < M < 16: all-ones spare rows; M = 16: counted popcounts),
# ragged blocks, several K passes (k = 16385, 20000), passes that leave warps without a chunk
GEMV = [(8, 200, 8192), (9, 200, 20000), (15, 67, 4100), (16, 130, 16385), (2, 8, 511)]


@pytest.mark.parametrize(("m", "n", "k"), GEMV)
def test_gemv_cases_equal_twin(cp, gpu, m: int, n: int, k: int) -> None:  # type: ignore[no-untyped-def]
    if gpu.compute_capability() < 80:
        pytest.skip("the GEMV needs sm_80")
    rng = np.random.default_rng([m, n, k, 2])
    aw = K.pack_signs(rng.standard_normal((m, k)))
    bw = K.pack_signs(rng.standard_normal((n, k)))
    twin = K.binary_matmul(aw, bw, k, backend="numpy")
    da, db = cp.asarray(aw), cp.asarray(bw)
    out = cp.full((m, n), -(k + 1), cp.int32)  # poison: every result is >= -k
    got = gpu.binary_matmul(da, db, k, algo="gemv", out=out)
    assert got is out
    np.testing.assert_array_equal(cp.asnumpy(got), twin)
    # rows 8 bytes into an allocation: copied to 16-byte alignment, not misread
    buf = cp.empty(db.size + 1, cp.uint64)
    shifted = buf[1:].reshape(db.shape)
    shifted[...] = db
    assert shifted.data.ptr % 16 == 8
    np.testing.assert_array_equal(cp.asnumpy(gpu.binary_matmul(da, shifted, k, algo="gemv")), twin)


@pytest.mark.parametrize(("m", "n", "k"), GRID + LARGE)
def test_shift_and_euclid_match_twin(cp, m: int, n: int, k: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng([m, n, k, 1])
    x = rng.standard_normal((m, k)).astype(np.float32)
    sign = rng.choice(np.array([-1, 0, 1], np.int8), (n, k))
    exponent = rng.integers(-8, 3, (n, k)).astype(np.int8)
    got = K.shift_matmul(cp.asarray(x), cp.asarray(sign), cp.asarray(exponent))
    twin = K.shift_matmul(x, sign, exponent, backend="numpy")
    assert_within(cp.asnumpy(got), twin, matmul_bound(x, K.shift_weights(sign, exponent)))
    w = rng.standard_normal((n, k)).astype(np.float32)
    got = K.euclid_matmul(cp.asarray(x), cp.asarray(w))
    twin = K.euclid_matmul(x, w, backend="numpy")
    bound = euclid_bound(x, w, twin, "direct") + np.abs(twin) * EPS32
    assert_within(cp.asnumpy(got), twin, bound)


def test_formats_on_gpu_match_cpu(cp) -> None:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(3).standard_normal((5, 3, 130))
    for axis in (0, 1, 2):
        words = K.pack_signs(cp.asarray(x), axis=axis)
        np.testing.assert_array_equal(cp.asnumpy(words), K.pack_signs(x, axis=axis))
        back = K.unpack_signs(words, x.shape[axis], axis=axis)
        np.testing.assert_array_equal(cp.asnumpy(back), np.where(x < 0, -1, 1))


@pytest.mark.parametrize("padding_mode", ["zero", "one"])
def test_conv2d_on_gpu_matches_cpu(cp, padding_mode: str) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 7, 11, 10)).astype(np.float32)
    w = rng.standard_normal((5, 7, 3, 3)).astype(np.float32)
    args = ((2, 1), 2, (2, 1))
    words = K.pack_signs(w.reshape(5, -1))
    got = K.binary_conv2d(cp.asarray(x), cp.asarray(words), 3, *args, padding_mode=padding_mode)
    ref = K.binary_conv2d(x, words, 3, *args, padding_mode=padding_mode, backend="numpy")
    np.testing.assert_array_equal(cp.asnumpy(got), ref)
    sign = np.where(w < 0, -1, 1).astype(np.int8)
    exponent = rng.integers(-4, 1, w.shape).astype(np.int8)
    got = K.shift_conv2d(cp.asarray(x), cp.asarray(sign), cp.asarray(exponent), *args)
    ref = K.shift_conv2d(x, sign, exponent, *args, backend="numpy")
    np.testing.assert_allclose(cp.asnumpy(got), ref, rtol=1e-4, atol=1e-4)
    got = K.euclid_conv2d(cp.asarray(x), cp.asarray(w), *args)
    ref = K.euclid_conv2d(x, w, *args, backend="numpy")
    np.testing.assert_allclose(cp.asnumpy(got), ref, rtol=1e-4, atol=1e-3)


def test_mixed_devices_rejected(cp) -> None:  # type: ignore[no-untyped-def]
    from proxcompress.errors import InvalidInputError

    aw = np.zeros((2, 1), np.uint64)
    with pytest.raises(InvalidInputError) as info:
        K.binary_matmul(cp.asarray(aw), aw, 10)
    assert info.value.field == "arrays"
    with pytest.raises(InvalidInputError) as info:
        K.binary_matmul(cp.asarray(aw), cp.asarray(aw), 10, backend="numba")
    assert info.value.field == "backend"


def test_mma_peak_probe_runs(cp, gpu) -> None:  # type: ignore[no-untyped-def]
    if gpu.compute_capability() < 80:
        pytest.skip("tensor-core probe needs sm_80")
    out = gpu.mma_peak("binary_mma_peak_and", 4, 128, 8)
    cp.cuda.Device().synchronize()
    assert out.shape == (512,)
