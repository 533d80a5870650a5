"""numpy twin and numba backend over the shape grid (k = 1, 63, 64, 65, 1000; M, N = 1, 7, 129)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from kernel_tolerances import EPS32, assert_within, euclid_bound, matmul_bound

from proxcompress.errors import InvalidInputError
from proxcompress.kernels import (
    binary_matmul,
    euclid_matmul,
    pack_signs,
    shift_matmul,
    shift_weights,
    unpack_signs,
)

KS = (1, 63, 64, 65, 1000)
MNS = (1, 7, 129)
GRID = [(m, n, k) for k in KS for m, n in itertools.product(MNS, MNS)]


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def _binary_case(m: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = _rng(m, n, k)
    a = rng.standard_normal((m, k))
    b = rng.standard_normal((n, k))
    return a, b, pack_signs(a), pack_signs(b)


@pytest.mark.parametrize(("m", "n", "k"), GRID)
def test_binary_twin_equals_float_matmul_and_numba_equals_twin(m: int, n: int, k: int) -> None:
    a, b, aw, bw = _binary_case(m, n, k)
    signs_a = unpack_signs(aw, k).astype(np.float64)
    signs_b = unpack_signs(bw, k).astype(np.float64)
    np.testing.assert_array_equal(signs_a, np.where(a < 0, -1.0, 1.0))
    twin = binary_matmul(aw, bw, k, backend="numpy")
    assert twin.dtype == np.int32 and twin.shape == (m, n)
    np.testing.assert_array_equal(twin, signs_a @ signs_b.T)
    fast = binary_matmul(aw, bw, k, backend="numba")
    assert fast.dtype == np.int32
    np.testing.assert_array_equal(fast, twin)
    np.testing.assert_array_equal(binary_matmul(aw, bw, k), twin)  # auto -> numba


def _shift_case(m: int, n: int, k: int, zero: bool) -> tuple[np.ndarray, ...]:
    rng = _rng(m, n, k, zero)
    x = rng.standard_normal((m, k)).astype(np.float32)
    sign = rng.choice(np.array([-1, 0, 1] if zero else [-1, 1], np.int8), (n, k))
    exponent = rng.integers(-8, 3, (n, k)).astype(np.int8)
    return x, sign, exponent


@pytest.mark.parametrize("zero", [False, True])
@pytest.mark.parametrize(("m", "n", "k"), GRID)
def test_shift_numba_matches_twin(m: int, n: int, k: int, zero: bool) -> None:
    x, sign, exponent = _shift_case(m, n, k, zero)
    w = shift_weights(sign, exponent)
    exact = x.astype(np.float64) @ w.astype(np.float64).T
    twin = shift_matmul(x, sign, exponent, backend="numpy")
    assert twin.dtype == np.float32
    assert_within(twin, exact, np.abs(exact) * EPS32 + 1e-37)  # float64 then one rounding
    fast = shift_matmul(x, sign, exponent, backend="numba")
    assert fast.dtype == np.float32 and fast.shape == (m, n)
    assert_within(fast, twin, matmul_bound(x, w))


@pytest.mark.parametrize("method", ["expand", "direct"])
@pytest.mark.parametrize(("m", "n", "k"), GRID)
def test_euclid_numba_matches_twin(m: int, n: int, k: int, method: str) -> None:
    rng = _rng(m, n, k)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    d = x.astype(np.float64)[:, None, :] - w.astype(np.float64)[None, :, :]
    exact = -(d * d).sum(-1)
    twin = euclid_matmul(x, w, backend="numpy")
    assert_within(twin, exact, np.abs(exact) * EPS32 + 1e-37)
    fast = euclid_matmul(x, w, backend="numba", method=method)
    assert fast.dtype == np.float32 and fast.shape == (m, n)
    assert_within(fast, twin, euclid_bound(x, w, twin, method) + np.abs(twin) * EPS32)


def test_euclid_nearly_equal_vectors_expand_vs_direct() -> None:
    """The documented precision trade-off: for w = x + tiny, ``expand`` loses the small result
    (error relative to |x|^2), ``direct`` keeps it (error relative to the result)."""
    rng = _rng(7)
    k = 512
    x = (rng.standard_normal((16, k)) * 10).astype(np.float32)
    w = (x + rng.standard_normal((16, k)).astype(np.float32) * 1e-3).astype(np.float32)
    exact = euclid_matmul(x, w, backend="numpy").astype(np.float64)
    diag = np.diag(exact)
    direct = np.diag(euclid_matmul(x, w, backend="numba", method="direct"))
    expand = np.diag(euclid_matmul(x, w, backend="numba", method="expand"))
    assert np.max(np.abs(direct - diag) / np.abs(diag)) < 2 * k * EPS32
    assert_within(
        np.diag(euclid_matmul(x, w, method="expand")),
        diag,
        np.diag(euclid_bound(x, w, exact, "expand")),
    )
    assert np.max(np.abs(expand - diag) / np.abs(diag)) > 1e-3  # the cancellation is real


def test_binary_edge_values() -> None:
    k = 200
    ones = pack_signs(np.ones((3, k)))
    negs = pack_signs(-np.ones((2, k)))
    np.testing.assert_array_equal(binary_matmul(ones, ones, k), np.full((3, 3), k))
    np.testing.assert_array_equal(binary_matmul(ones, negs, k), np.full((3, 2), -k))


def test_empty_rows() -> None:
    aw = np.zeros((0, 2), np.uint64)
    bw = np.zeros((3, 2), np.uint64)
    for backend in ("numpy", "numba"):
        assert binary_matmul(aw, bw, 100, backend=backend).shape == (0, 3)


def test_numba_rejects_non_contiguous_but_twin_accepts() -> None:
    aw = pack_signs(_rng(1).standard_normal((8, 300)))
    view = aw[::2]
    with pytest.raises(InvalidInputError, match="C-contiguous") as info:
        binary_matmul(view, aw, 300, backend="numba")
    assert info.value.field == "a_words"
    np.testing.assert_array_equal(
        binary_matmul(view, aw, 300, backend="numpy"),
        binary_matmul(np.ascontiguousarray(view), aw, 300, backend="numba"),
    )


def test_sgemm_nt_equals_numpy_on_any_layout() -> None:
    """The numba backend's float GEMM (torch's BLAS): read-only, strided and reversed inputs."""
    from proxcompress.kernels import cpu

    rng = np.random.default_rng(3)
    a = rng.standard_normal((9, 33)).astype(np.float32)
    b = rng.standard_normal((5, 33)).astype(np.float32)
    b.setflags(write=False)
    for x, w in ((a, b), (a[:, ::2], b[:, ::2]), (a[::-1], b[::-1])):
        got = cpu.sgemm_nt(x, w)
        assert got.dtype == np.float32 and got.flags.writeable
        np.testing.assert_allclose(got, x.astype(np.float64) @ w.T.astype(np.float64),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("m", "n", "k"), [(1, 1, 1), (7, 129, 65), (129, 7, 1000), (2, 4, 3)])
def test_l1_distance_kernel_equals_float64(m: int, n: int, k: int) -> None:
    """The AdderNet distance of exported models: every term is >= 0, so the float32 sum is
    within about K eps of the float64 one, relative to itself."""
    from proxcompress.kernels import cpu

    rng = np.random.default_rng([m, n, k])
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    out = np.empty((m, n), np.float32)
    cpu.l1_distance(x, w, out)
    ref = -np.abs(x.astype(np.float64)[:, None, :] - w.astype(np.float64)[None]).sum(-1)
    assert np.all(np.abs(out - ref) <= (k + 2) * EPS32 * np.abs(ref) + 1e-30)
