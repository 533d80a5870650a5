"""Packed binary activations (kernels.packed): thresholds exact against brute force, numba equal
to the NumPy twins, max-pooling of packed words equal to max of the +-1 values, and the packed
conv equal to conv + BatchNorm-style affine + sign computed in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from proxcompress.errors import InvalidInputError
from proxcompress.kernels import cpu, packed, unpack_signs


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-5, 5, allow_nan=False), st.floats(-300, 300)),
                min_size=1, max_size=6))
def test_thresholds_equal_the_sign_of_the_affine_map(pairs: list[tuple[float, float]]) -> None:
    alpha = np.array([a for a, _ in pairs])
    beta = np.array([b for _, b in pairs])
    alpha[::3] = np.round(alpha[::3])  # integer slopes and exact ties too
    beta[1::2] = np.round(beta[1::2])
    t, flip = packed.sign_thresholds(alpha, beta)
    acc = np.arange(-400, 401)[:, None]
    np.testing.assert_array_equal((acc < t) ^ flip, alpha * acc + beta < 0)


def test_thresholds_reject_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="beta"):
        packed.sign_thresholds(np.ones(3), np.ones(2))
    with pytest.raises(InvalidInputError, match="alpha"):
        packed.sign_thresholds(np.array([np.inf]), np.zeros(1))


@pytest.mark.parametrize("channels", [1, 63, 64, 65, 200])
def test_threshold_pack_numba_equals_twin(channels: int) -> None:
    rng = np.random.default_rng(channels)
    acc = rng.integers(-50, 50, (3, 5, channels)).astype(np.int32)
    t = rng.integers(-20, 20, channels).astype(np.int32)
    flip = rng.random(channels) < 0.5
    twin = packed.threshold_pack(acc, t, flip, backend="numpy")
    np.testing.assert_array_equal(packed.threshold_pack(acc, t, flip), twin)
    signs = unpack_signs(twin, channels)
    np.testing.assert_array_equal(signs == -1, (acc < t) ^ flip)


@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 1), (2, 1)])
def test_max_pool_of_packed_words_is_the_max_of_signs(kernel: int, stride: int) -> None:
    rng = np.random.default_rng(kernel * 10 + stride)
    x = rng.standard_normal((2, 70, 7, 6)).astype(np.float32)  # N, C, H, W
    neg = x < 0
    words = np.empty((2, 7, 6, 2), np.uint64)
    cpu.pack_channels(neg, words)
    want = torch.nn.functional.max_pool2d(torch.from_numpy(np.where(neg, -1.0, 1.0)), kernel,
                                          stride).numpy()
    for backend in ("numpy", "numba"):
        got = packed.max_pool_packed(words, kernel, stride, backend=backend)
        signs = unpack_signs(got, 70).astype(np.float64).transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(signs, want)
    with pytest.raises(InvalidInputError, match="kernel"):
        packed.max_pool_packed(words, 9)


CONV_CASES = [(16, 32, 1, 1), (70, 5, 0, 2), (3, 65, 2, 1)]


@pytest.mark.parametrize(("c", "o", "pad", "stride"), CONV_CASES)
def test_packed_conv_equals_float64_conv_affine_sign(c: int, o: int, pad: int,
                                                    stride: int) -> None:
    rng = np.random.default_rng(c + o)
    x = np.where(rng.random((2, c, 9, 8)) < 0.5, -1.0, 1.0)
    w = np.where(rng.random((o, c, 3, 3)) < 0.5, -1.0, 1.0)
    alpha = rng.standard_normal(o)
    beta = rng.standard_normal(o) * 5
    alpha[0] = 0.0
    xw = np.empty((2, 9, 8, -(-c // 64)), np.uint64)
    cpu.pack_channels(x < 0, xw)
    from proxcompress.kernels.formats import pack_negative_mask

    w_taps = np.ascontiguousarray(pack_negative_mask(w.transpose(2, 3, 0, 1) < 0)
                                  .transpose(0, 1, 3, 2))
    pad_sum = np.zeros((3, 3, o), np.int64)
    t, flip = packed.sign_thresholds(alpha, beta)
    y = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), None, stride,
                                   pad).numpy()
    want = alpha[None, :, None, None] * y + beta[None, :, None, None] < 0
    for backend in ("numpy", "numba"):
        got = packed.binary_conv2d_packed(xw, w_taps, c, (stride, stride), (pad, pad), (1, 1),
                                          pad_sum, t, flip, backend=backend)
        np.testing.assert_array_equal(unpack_signs(got, o).transpose(0, 3, 1, 2) == -1, want)


@pytest.mark.parametrize(("n", "h", "w", "o", "pad"), [(3, 28, 28, 16, 1), (2, 13, 11, 70, 1),
                                                      (3, 9, 9, 5, 0), (2, 10, 7, 130, 2),
                                                      (2, 3, 40, 3, 1), (1, 2, 1, 4, 1)])
def test_grey_3x3_first_conv_equals_the_generic_sign_conv(n: int, h: int, w: int, o: int,
                                                          pad: int) -> None:
    """The first-layer conv with pixels as lanes (one input channel, 3 x 3) writes the same
    packed signs and zero flags as the generic direct conv, bit for bit (same float
    operations in the same order): several words of channels, every padding, rows of an
    exact 0 output (a zero image with a zero bias); tasks of one row, of blocks of rows and of
    whole images; with the epilogue's max-pool, the NumPy twin's pooling of those signs."""
    from proxcompress.kernels import cpu_packed

    rng = np.random.default_rng(h * w + o)
    x = rng.standard_normal((n, 1, h, w)).astype(np.float32)
    x[0] = 0
    wt = rng.standard_normal((3, 3, 1, o)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    b[0] = 0
    ho, wo = h + 2 * pad - 2, w + 2 * pad - 2
    got, want = (np.empty((n, ho, wo, (o + 63) // 64), np.uint64) for _ in range(2))
    got_zero, want_zero = (np.empty(n * ho, np.int8) for _ in range(2))
    cpu_packed.float_conv_sign(x, wt, b, (1, 1), (pad, pad), (1, 1), want, want_zero)
    assert want_zero[:ho].all()
    for rows in sorted({1, 3, ho, ho + 5}):  # tasks of one row, of blocks, of whole images
        got[:], got_zero[:] = 0, 0
        cpu_packed.float_conv3x3_sign(x, wt, b, (pad, pad), rows, 1, got, got_zero)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_zero, want_zero)
    for pool in (2, 3):  # the epilogue's max-pool: the NumPy twin's pooling of the signs
        if pool > min(ho, wo):
            continue
        pooled = packed.max_pool_packed(want, pool, backend="numpy")
        for rows in sorted({pool, 2 * pool, -(-ho // pool) * pool}):
            got_pooled = np.zeros_like(pooled)
            got_zero[:] = 0
            cpu_packed.float_conv3x3_sign(x, wt, b, (pad, pad), rows, pool, got_pooled,
                                          got_zero)
            np.testing.assert_array_equal(got_pooled, pooled)
            np.testing.assert_array_equal(got_zero, want_zero)


ROW_CASES = [(2, 16, 32, 14, 14, 3, 1, 1, 1), (2, 32, 64, 7, 7, 3, 1, 1, 1),
             (1, 70, 5, 9, 8, 3, 0, 2, 1), (2, 3, 65, 9, 8, 3, 2, 1, 1),
             (1, 130, 7, 6, 11, 3, 1, 2, 2), (3, 5, 9, 5, 4, 5, 2, 1, 1),
             (1, 21, 3, 1, 1, 3, 1, 1, 1), (1, 40, 70, 8, 3, 2, 1, 3, 1)]


@pytest.mark.parametrize(("n", "c", "o", "h", "w", "k", "pad", "stride", "dil"), ROW_CASES)
def test_tap_row_conv_equals_the_per_tap_direct_conv(n: int, c: int, o: int, h: int, w: int,
                                                     k: int, pad: int, stride: int,
                                                     dil: int) -> None:
    """The conv with a kernel row's taps packed into one run of words (``RowConv``) gives the
    accumulators of ``cpu.binary_conv_direct`` and the packed bits of its threshold twin, bit
    for bit: borders, odd sizes, channel counts off multiples of 16 and 64 (a row window
    straddling words), strides, dilation, zero and +-1 padding terms, one and two threads
    (row blocks per image when images are few)."""
    import numba

    rng = np.random.default_rng(n * c + o * h + w)
    xw = np.empty((n, h, w, -(-c // 64)), np.uint64)
    cpu.pack_channels(rng.random((n, c, h, w)) < 0.5, xw)
    from proxcompress.kernels.formats import pack_negative_mask

    w_taps = np.ascontiguousarray(pack_negative_mask(rng.random((k, k, o, c)) < 0.5)
                                  .transpose(0, 1, 3, 2))
    t = rng.integers(-3 * c, 3 * c, o).astype(np.int32)
    flip = rng.random(o) < 0.3
    threads = numba.get_num_threads()
    for pad_sum in (np.zeros((k, k, o), np.int64), rng.integers(-c, c + 1, (k, k, o))):
        geometry = ((stride, stride), (pad, pad), (dil, dil))
        rows = packed.RowConv(w_taps, c, *geometry, pad_sum)
        ho, wo = rows.out_size(h, w)
        want = np.empty((n, o, ho, wo), np.int32)
        cpu.binary_conv_direct(xw, w_taps, c, *geometry, pad_sum, want)
        bits = packed.threshold_pack(np.ascontiguousarray(want.transpose(0, 2, 3, 1)), t, flip,
                                     backend="numpy")
        for count in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(count)
            try:
                np.testing.assert_array_equal(rows.acc(xw), want)
                np.testing.assert_array_equal(rows.threshold(xw, t, flip), bits)
            finally:
                numba.set_num_threads(threads)


@pytest.mark.parametrize(("n", "c", "o", "h", "w", "pool"), [(3, 32, 64, 7, 7, 2),
                                                            (2, 21, 70, 9, 6, 3),
                                                            (1, 64, 5, 4, 4, 2)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_tap_row_float_epilogues_equal_the_float_steps(n: int, c: int, o: int, h: int, w: int,
                                                      pool: int, with_bias: bool) -> None:
    """``RowConv.affine`` writes ``float32(acc) * scale + bias`` bit for bit (signed zeros
    included); ``affine_pool`` equals ``np.clip`` then max-pooling with NumPy tap by tap (odd
    sizes: the last row and column dropped), for channels pooled on the accumulators (scale
    of either sign) and for those pooled as floats (a zero or subnormal scale)."""
    from proxcompress.kernels.formats import pack_negative_mask

    rng = np.random.default_rng(c * o + h)
    xw = np.empty((n, h, w, -(-c // 64)), np.uint64)
    cpu.pack_channels(rng.random((n, c, h, w)) < 0.5, xw)
    w_taps = np.ascontiguousarray(pack_negative_mask(rng.random((3, 3, o, c)) < 0.5)
                                  .transpose(0, 1, 3, 2))
    pad_sum = np.zeros((3, 3, o), np.int64)
    rows = packed.RowConv(w_taps, c, (1, 1), (1, 1), (1, 1), pad_sum)
    acc = np.empty((n, o, h, w), np.int32)
    cpu.binary_conv_direct(xw, w_taps, c, (1, 1), (1, 1), (1, 1), pad_sum, acc)
    scale = (rng.standard_normal(o) * 0.1).astype(np.float32)
    scale[:2] = 0.0, 1e-40  # channels pooled as floats (no integer pooling: zeros' signs)
    bias = (rng.standard_normal(o) * 2).astype(np.float32) if with_bias else None
    y = acc.astype(np.float32) * scale[None, :, None, None]
    if bias is not None:
        y = y + bias[None, :, None, None]
    got = rows.affine(xw, scale, bias)
    np.testing.assert_array_equal(got.view(np.uint32), y.view(np.uint32))
    clipped = y.clip(np.float32(-1), np.float32(1))
    hp, wp = h // pool, w // pool
    want = clipped[:, :, :hp * pool:pool, :wp * pool:pool].copy()
    for i in range(pool):
        for j in range(pool):
            np.maximum(want, clipped[:, :, i:hp * pool:pool, j:wp * pool:pool], out=want)
    got = rows.affine_pool(xw, scale, bias, -1.0, 1.0, pool)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[:, 2:].view(np.uint32), want[:, 2:].view(np.uint32))
