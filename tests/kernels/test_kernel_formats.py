"""Packed formats: layout, round trips (Hypothesis) and rejected input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from proxcompress.errors import InvalidInputError
from proxcompress.kernels import pack_shift, pack_signs, shift_weights, unpack_shift, unpack_signs

SIGN_ARRAYS = hnp.arrays(
    np.int8,
    hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=140),
    elements=st.sampled_from([-1, 1]),
)


def test_sign_bit_layout() -> None:
    x = np.ones(130)
    x[[0, 5, 63, 64, 129]] = -1.0
    words = pack_signs(x)
    assert words.dtype == np.uint64 and words.shape == (3,)
    assert words[0] == (1 << 0) | (1 << 5) | (1 << 63)
    assert words[1] == 1
    assert words[2] == 1 << 1  # element 129 = bit 1 of word 2; bits 2..63 are padding (0)


def test_zero_is_plus_one_and_negative_zero_too() -> None:
    words = pack_signs(np.array([0.0, -0.0, 1e-30, -1e-30]))
    assert int(words[0]) == 0b1000
    assert unpack_signs(words, 4).tolist() == [1, 1, 1, -1]


@settings(max_examples=60, deadline=None)
@given(SIGN_ARRAYS, st.data())
def test_pack_unpack_round_trip(x: np.ndarray, data: st.DataObject) -> None:
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    words = pack_signs(x, axis=axis)
    k = x.shape[axis]
    assert words.shape[axis] == -(-k // 64)
    assert words.flags.c_contiguous
    np.testing.assert_array_equal(unpack_signs(words, k, axis=axis), x)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.uint64, st.tuples(st.integers(1, 5), st.integers(1, 4))),
    st.integers(0, 63),
)
def test_unpack_pack_round_trip_on_words(words: np.ndarray, drop: int) -> None:
    k = 64 * words.shape[1] - drop
    if drop:
        words[:, -1] &= np.uint64((1 << (64 - drop)) - 1)  # clear the padding bits
    np.testing.assert_array_equal(pack_signs(unpack_signs(words, k)), words)


@settings(max_examples=60, deadline=None)
@given(SIGN_ARRAYS)
def test_pack_matches_sign_of_reals(x: np.ndarray) -> None:
    reals = x * np.random.default_rng(0).uniform(0.0, 3.0, x.shape)
    reals.flat[::3] = 0.0  # zero counts as +1
    expect = np.where(reals < 0, -1, 1).astype(np.int8)
    np.testing.assert_array_equal(unpack_signs(pack_signs(reals), x.shape[-1]), expect)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: pack_signs(np.array([1.0, np.nan])), "x"),
        (lambda: pack_signs(np.array(1.0)), "x"),
        (lambda: pack_signs(np.zeros((3, 0))), "x"),
        (lambda: pack_signs(np.ones(3), axis=2), "axis"),
        (lambda: pack_signs(np.array(["a"])), "x"),
        (lambda: unpack_signs(np.zeros(2, np.uint64), 129), "k"),
        (lambda: unpack_signs(np.zeros(2, np.uint64), 64), "k"),
        (lambda: unpack_signs(np.zeros(2, np.int64), 100), "words"),
        (lambda: unpack_signs(np.full(1, 1 << 40, np.uint64), 10), "words"),
    ],
)
def test_sign_format_rejects(call, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError) as info:
        call()
    assert info.value.field == field


def test_shift_code_layout() -> None:
    sign = np.array([[1, -1, 1]], np.int8)
    exponent = np.array([[-7, 0, -3]], np.int8)
    codes = pack_shift(sign, exponent)  # emin = -7: f = e + 7
    assert codes.shape == (1, 2)
    assert codes[0, 0] == (0b0000 | (0b1111 << 4))  # +2^-7 -> 0x0, -2^0 -> 0xF
    assert codes[0, 1] == 0b0100  # +2^-3 -> 0x4, padding nibble 0


def test_shift_code_layout_with_zero() -> None:
    sign = np.array([0, 1, -1, -1], np.int8)
    exponent = np.array([99, -7, -1, -4], np.int8)  # exponent ignored where sign is 0
    codes = pack_shift(sign, exponent, zero=True)
    assert codes.tolist() == [0x10, 0xCF]  # 0 -> 0x0, +2^-7 -> 0x1, -2^-1 -> 0xF, -2^-4 -> 0xC


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_shift_round_trip(data: st.DataObject) -> None:
    zero = data.draw(st.booleans())
    emin = data.draw(st.integers(-128, 120))
    span = 6 if zero else 7
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=33))
    signs = [-1, 0, 1] if zero else [-1, 1]
    sign = data.draw(hnp.arrays(np.int8, shape, elements=st.sampled_from(signs)))
    exponent = data.draw(hnp.arrays(np.int8, shape, elements=st.integers(emin, emin + span)))
    codes = pack_shift(sign, exponent, emin=emin, zero=zero)
    s2, e2 = unpack_shift(codes, shape[-1], emin=emin, zero=zero)
    np.testing.assert_array_equal(s2, sign)
    np.testing.assert_array_equal(shift_weights(s2, e2), shift_weights(sign, exponent))
    np.testing.assert_array_equal(e2[sign != 0], exponent[sign != 0])


def test_shift_weights_exact_for_every_int8_exponent() -> None:
    e = np.arange(-128, 128, dtype=np.int8)
    w = shift_weights(np.ones_like(e), e)
    assert w.dtype == np.float32
    np.testing.assert_array_equal(w.astype(np.float64), np.ldexp(1.0, e.astype(np.int64)))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sign": np.array([0], np.int8), "exponent": np.array([0], np.int8)}, "sign"),
        (
            {"sign": np.array([2], np.int8), "exponent": np.array([0], np.int8), "zero": True},
            "sign",
        ),
        ({"sign": np.array([1], np.int8), "exponent": np.array([1], np.int8)}, "exponent"),
        ({"sign": np.array([1], np.int8), "exponent": np.array([-8], np.int8)}, "exponent"),
        (
            {"sign": np.array([1], np.int8), "exponent": np.array([0], np.int8), "zero": True},
            "exponent",
        ),
        ({"sign": np.array([1], np.int8), "exponent": np.array([0, 0], np.int8)}, "exponent"),
        ({"sign": np.array([1], np.int32), "exponent": np.array([0], np.int8)}, "sign"),
        ({"sign": np.array([1], np.int8), "exponent": np.array([0], np.int8), "emin": 121}, "emin"),
    ],
)
def test_pack_shift_rejects(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        pack_shift(**kwargs)
    assert info.value.field == field


def test_unpack_shift_rejects() -> None:
    with pytest.raises(InvalidInputError, match="negative zero"):
        unpack_shift(np.array([0x08], np.uint8), 2, zero=True)
    with pytest.raises(InvalidInputError) as info:
        unpack_shift(np.array([0x00], np.uint8), 3)
    assert info.value.field == "k"
    with pytest.raises(InvalidInputError, match="padding nibble"):
        unpack_shift(np.array([0x10], np.uint8), 1)
