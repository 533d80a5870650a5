"""Conv2d forms against torch.nn.functional.conv2d in float64 (an independent reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kernel_tolerances import EPS32, assert_within

from proxcompress.errors import InvalidInputError
from proxcompress.kernels import (
    binary_conv2d,
    conv_output_size,
    euclid_conv2d,
    pack_signs,
    shift_conv2d,
    shift_weights,
)

# (N, C, H, W, O, kh, kw, stride, padding, dilation)
CASES = [
    (1, 1, 5, 5, 1, 3, 3, 1, 0, 1),
    (2, 3, 9, 7, 4, 3, 3, 1, 1, 1),
    (1, 5, 8, 8, 3, 3, 2, 2, (1, 2), 1),
    (2, 7, 11, 10, 5, 3, 3, (2, 1), 2, (2, 1)),
    (1, 20, 6, 6, 2, 5, 5, 1, 2, 1),  # K = 500: several words, ragged last word
    (1, 64, 4, 4, 3, 1, 1, 1, 0, 1),  # 1x1 conv, K = 64 exactly
    (2, 70, 5, 6, 3, 3, 3, 1, 1, 1),  # C > 64: two channel words per pixel (numba direct)
    (1, 130, 4, 5, 2, 2, 3, 2, (1, 2), (1, 2)),  # three channel words, ragged, every option
]
CPU_BACKENDS = ("numpy", "numba")


def _torch_conv(x: np.ndarray, w: np.ndarray, stride, padding, dilation) -> np.ndarray:  # type: ignore[no-untyped-def]
    return F.conv2d(
        torch.from_numpy(x.astype(np.float64)),
        torch.from_numpy(w.astype(np.float64)),
        stride=stride,
        padding=padding,
        dilation=dilation,
    ).numpy()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_binary_conv2d_zero_padding_is_exact(case: tuple, backend: str) -> None:
    n, c, h, w_, o, kh, kw, stride, padding, dilation = case
    rng = np.random.default_rng(list(case[:7]))
    x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
    w = np.where(rng.standard_normal((o, c, kh, kw)) < 0, -1.0, 1.0)
    words = pack_signs(w.reshape(o, -1))
    y = binary_conv2d(x, words, (kh, kw), stride, padding, dilation, backend=backend)
    ref = _torch_conv(np.where(x < 0, -1.0, 1.0), w, stride, padding, dilation)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, ref)


@pytest.mark.parametrize("case", CASES)
def test_binary_conv2d_one_padding(case: tuple) -> None:
    n, c, h, w_, o, kh, kw, stride, padding, dilation = case
    rng = np.random.default_rng(list(case[:7]))
    x = rng.standard_normal((n, c, h, w_))
    w = np.where(rng.standard_normal((o, c, kh, kw)) < 0, -1.0, 1.0)
    words = pack_signs(w.reshape(o, -1))
    y = binary_conv2d(x, words, (kh, kw), stride, padding, dilation, padding_mode="one")
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    x_pad = np.pad(
        np.where(x < 0, -1.0, 1.0), ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=1.0
    )
    np.testing.assert_array_equal(y, _torch_conv(x_pad, w, stride, 0, dilation))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_shift_conv2d(case: tuple, backend: str) -> None:
    n, c, h, w_, o, kh, kw, stride, padding, dilation = case
    rng = np.random.default_rng(list(case[:7]))
    x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
    sign = rng.choice(np.array([-1, 0, 1], np.int8), (o, c, kh, kw))
    exponent = rng.integers(-6, 2, (o, c, kh, kw)).astype(np.int8)
    y = shift_conv2d(x, sign, exponent, stride, padding, dilation, backend=backend)
    w = shift_weights(sign, exponent)
    ref = _torch_conv(x, w, stride, padding, dilation)
    scale = _torch_conv(np.abs(x), np.abs(w), stride, padding, dilation)
    assert y.dtype == np.float32
    assert_within(y, ref, 2 * c * kh * kw * EPS32 * scale + 1e-37)


@pytest.mark.parametrize("method", ["expand", "direct"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_euclid_conv2d(case: tuple, backend: str, method: str) -> None:
    n, c, h, w_, o, kh, kw, stride, padding, dilation = case
    rng = np.random.default_rng(list(case[:7]))
    x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
    w = rng.standard_normal((o, c, kh, kw)).astype(np.float32)
    y = euclid_conv2d(x, w, stride, padding, dilation, backend=backend, method=method)
    # -(x - w)^2 summed = -(x^2 conv 1) + 2 (x conv w) - sum w^2, in float64 through torch
    x2 = _torch_conv(x.astype(np.float64) ** 2, np.ones((1, c, kh, kw)), stride, padding, dilation)
    xw = _torch_conv(x, w, stride, padding, dilation)
    w2 = (w.astype(np.float64) ** 2).reshape(o, -1).sum(1)[None, :, None, None]
    ref = -x2 + 2 * xw - w2
    bound = 2 * c * kh * kw * EPS32 * (x2 + w2) + 1e-6
    assert_within(y, ref, bound)


def test_conv_output_size_and_errors() -> None:
    assert conv_output_size((9, 7), 3, stride=2, padding=1) == (5, 4)
    assert conv_output_size((11, 10), (3, 3), (2, 1), 2, (2, 1)) == (6, 12)
    with pytest.raises(InvalidInputError) as info:
        conv_output_size((2, 2), 3)
    assert info.value.field == "kernel_size"
    with pytest.raises(InvalidInputError) as info:
        conv_output_size((5, 5), 3, stride=0)
    assert info.value.field == "stride"
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(InvalidInputError) as info:
        binary_conv2d(x, np.zeros((1, 2), np.uint64), 3)  # 2*3*3 = 18 bits need 1 word
    assert info.value.field == "w_words"
    with pytest.raises(InvalidInputError) as info:
        binary_conv2d(x, np.zeros((1, 1), np.uint64), 3, padding_mode="reflect")  # type: ignore[arg-type]
    assert info.value.field == "padding_mode"
    with pytest.raises(InvalidInputError) as info:
        euclid_conv2d(x, np.zeros((1, 3, 3, 3), np.float32))
    assert info.value.field == "w"
    with pytest.raises(InvalidInputError) as info:
        shift_conv2d(
            x.astype(np.float64), np.zeros((1, 2, 3, 3), np.int8), np.zeros((1, 2, 3, 3), np.int8)
        )
    assert info.value.field == "x"
    sign, exponent = np.zeros((1, 2, 3, 3), np.int8), np.zeros((1, 2, 3, 3), np.int8)
    for backend in CPU_BACKENDS:
        bad = sign.copy()
        bad[0, 1, 2, 2] = 2
        for args, field in (((x, bad, exponent), "sign"), ((x, sign, exponent[:, :, :2]),
                                                            "exponent"),
                            ((x[:, :, :2, :2], sign, exponent), "kernel_size")):
            with pytest.raises(InvalidInputError) as info:
                shift_conv2d(*args, backend=backend)  # type: ignore[arg-type]
            assert info.value.field == field, (backend, field)
