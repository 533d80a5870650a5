"""Packed weight formats: sign bits (binary layers) and 4-bit shift codes.

Sign bits
    ``pack_signs(x, axis)`` maps each element to one bit along ``axis``: bit ``j`` of word ``w``
    (uint64, little-endian bit order) is element ``64*w + j``; a set bit means ``-1`` (``x < 0``),
    a clear bit ``+1`` (``x >= 0``). The last word's bits past ``k`` are 0, so that for two packed
    rows ``a, b`` of length ``k``

    .. math:: \\sum_j a_j b_j = k - 2\\,\\mathrm{popcount}(a \\oplus b)

    holds word by word (padding bits are 0 in both operands and cancel in the xor).

Shift codes
    A shift weight is :math:`s\\,2^{e}` with sign :math:`s \\in \\{-1, +1\\}` (or 0 where the format
    has zero) and integer exponent :math:`e`. ``pack_shift`` stores one 4-bit code per weight, two
    codes per byte along the last axis (element ``2i`` in the low nibble of byte ``i``, element
    ``2i+1`` in the high nibble; an odd length leaves the last high nibble 0). Code bits::

        bit 3      sign (1 = negative)
        bits 0-2   exponent field f in 0..7

    * zero-free (DenseShift, ``zero=False``): value :math:`(-1)^{bit3} 2^{f + e_{min}}`, so
      :math:`e \\in [e_{min}, e_{min} + 7]` (bias :math:`-e_{min}`).
    * with zero (``zero=True``): ``f = 0`` with sign bit 0 is the value 0; ``f = 1..7`` is
      :math:`(-1)^{bit3} 2^{f - 1 + e_{min}}`, so :math:`e \\in [e_{min}, e_{min} + 6]`.
      Code ``0b1000`` (negative zero) is invalid.

    ``e_min`` (default ``-7``, i.e. weights :math:`2^{-7} \\dots 1`) is part of the format and must
    be passed to both ``pack_shift`` and ``unpack_shift``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from proxcompress.errors import InvalidInputError

from ._checks import array_module, check_array, check_k, check_padding_zero, is_cupy, words_for

__all__ = ["pack_signs", "unpack_signs", "pack_shift", "unpack_shift", "shift_weights"]

_BIT_WEIGHTS = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))


def _normalize_axis(field: str, axis: int, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
        raise InvalidInputError(field, f"must be an integer, got {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise InvalidInputError(field, f"= {axis} is out of range for {ndim} dimensions")
    return axis % ndim


def pack_signs(x: Any, axis: int = -1) -> Any:
    """Pack the signs of ``x`` into uint64 words along ``axis``.

    Element ``j`` of the axis goes to bit ``j % 64`` of word ``j // 64``; the bit is 1 where
    ``x < 0`` (value -1) and 0 where ``x >= 0`` (value +1). Padding bits of the last word are 0.

    Args:
        x: real NumPy or CuPy array with at least one dimension; NaN is rejected.
        axis: the axis to pack (length ``k``); it becomes ``ceil(k / 64)`` words long.

    Returns:
        C-contiguous uint64 array of the same rank, on the same device as ``x``.
    """
    check_array("x", x)
    if x.ndim == 0:
        raise InvalidInputError("x", "must have at least one dimension")
    if x.dtype.kind not in "biuf":
        raise InvalidInputError("x", f"dtype must be real (bool, int or float), got {x.dtype}")
    axis = _normalize_axis("axis", axis, x.ndim)
    if x.shape[axis] == 0:
        raise InvalidInputError("x", f"axis {axis} has length 0; k must be >= 1")
    xp = array_module(x)
    if x.dtype.kind == "f" and bool(xp.isnan(x).any()):
        raise InvalidInputError("x", "contains NaN; signs are defined for real numbers only")
    return pack_negative_mask(xp.moveaxis(x < 0, axis, -1), axis)


def pack_negative_mask(neg: Any, axis: int = -1) -> Any:
    """Pack a boolean mask (True = -1) along its last axis, then move the word axis to ``axis``.

    The unchecked core of :func:`pack_signs`, also used on im2col patches.
    """
    xp = array_module(neg)
    k = neg.shape[-1]
    w = words_for(k)
    if k != 64 * w:
        pad = [(0, 0)] * (neg.ndim - 1) + [(0, 64 * w - k)]
        neg = xp.pad(neg, pad, constant_values=False)
    if xp is np:
        packed = np.ascontiguousarray(np.packbits(neg, axis=-1, bitorder="little"))
        words = packed.view("<u8").astype(np.uint64, copy=False)
    else:
        bits = neg.reshape(*neg.shape[:-1], w, 64).astype(xp.uint64)
        words = (bits * xp.asarray(_BIT_WEIGHTS)).sum(axis=-1, dtype=xp.uint64)
    return xp.ascontiguousarray(xp.moveaxis(words, -1, axis))


def unpack_signs(words: Any, k: int, axis: int = -1) -> Any:
    """Inverse of :func:`pack_signs`: int8 array of +-1 with ``k`` elements along ``axis``.

    Raises if ``k`` does not match the number of words (``ceil(k/64)``) or if padding bits are set.
    """
    check_array("words", words, dtype=np.uint64)
    if words.ndim == 0:
        raise InvalidInputError("words", "must have at least one dimension")
    axis = _normalize_axis("axis", axis, words.ndim)
    xp = array_module(words)
    last = xp.moveaxis(words, axis, -1)
    k = check_k(k, last.shape[-1])
    if not is_cupy(words):
        check_padding_zero("words", last, k)
    if xp is np:
        raw = np.ascontiguousarray(last).view(np.uint8)
        bits = np.unpackbits(raw, axis=-1, bitorder="little")[..., :k]
    else:
        shifts = xp.arange(64, dtype=xp.uint64)
        bits = ((last[..., None] >> shifts) & xp.uint64(1)).reshape(*last.shape[:-1], -1)[..., :k]
    signs = (1 - 2 * bits.astype(xp.int8)).astype(xp.int8)
    return xp.ascontiguousarray(xp.moveaxis(signs, -1, axis))


def _check_zero(zero: Any) -> bool:
    if not isinstance(zero, bool | np.bool_):
        raise InvalidInputError("zero", f"must be True or False, got {type(zero).__name__}")
    return bool(zero)


def _check_emin(emin: Any, span: int) -> int:
    if isinstance(emin, bool) or not isinstance(emin, int | np.integer):
        raise InvalidInputError("emin", f"must be an integer, got {type(emin).__name__}")
    if not -128 <= int(emin) <= 127 - span:
        raise InvalidInputError("emin", f"= {emin} is outside [-128, {127 - span}]")
    return int(emin)


def pack_shift(sign: Any, exponent: Any, *, emin: int = -7, zero: bool = False) -> np.ndarray:
    """Pack shift weights ``sign * 2**exponent`` into 4-bit codes (see the module docstring).

    Args:
        sign: int8 array, values in {-1, +1} (``zero=False``) or {-1, 0, +1} (``zero=True``).
        exponent: int8 array of the same shape; for nonzero weights it must lie in
            ``[emin, emin + 7]`` (zero-free) or ``[emin, emin + 6]`` (with zero); it is ignored
            where ``sign == 0``.
        emin: smallest exponent of the format (bias ``-emin``).
        zero: whether the format has a zero code.

    Returns:
        uint8 array, last axis ``ceil(k / 2)`` bytes (NumPy; codes are a storage format).
    """
    check_array("sign", sign, dtype=np.int8)
    check_array("exponent", exponent, dtype=np.int8)
    if sign.shape != exponent.shape or sign.ndim == 0:
        raise InvalidInputError(
            "exponent", f"shape {exponent.shape} must equal sign's shape {sign.shape} (ndim >= 1)"
        )
    span = 6 if _check_zero(zero) else 7
    emin = _check_emin(emin, span)
    sign = np.asarray(sign)
    exponent = np.asarray(exponent)
    allowed = (-1, 0, 1) if zero else (-1, 1)
    if not np.isin(sign, allowed).all():
        raise InvalidInputError("sign", f"values must be in {set(allowed)} (zero={zero})")
    nonzero = sign != 0
    e = exponent.astype(np.int16)
    bad = nonzero & ((e < emin) | (e > emin + span))
    if bad.any():
        raise InvalidInputError(
            "exponent",
            f"{int(e[bad][0])} is outside [{emin}, {emin + span}] (emin={emin}, zero={zero})",
        )
    field = np.where(nonzero, e - emin + (1 if zero else 0), 0).astype(np.uint8)
    codes = (((sign < 0).astype(np.uint8) << 3) | field).astype(np.uint8)
    if codes.shape[-1] % 2:
        codes = np.concatenate([codes, np.zeros((*codes.shape[:-1], 1), np.uint8)], axis=-1)
    return np.ascontiguousarray((codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8))


def unpack_shift(
    codes: Any, k: int, *, emin: int = -7, zero: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_shift`: ``(sign, exponent)`` int8 arrays with ``k`` elements along
    the last axis. Zero weights (``zero=True``) come back as sign 0, exponent 0."""
    check_array("codes", codes, dtype=np.uint8)
    if codes.ndim == 0:
        raise InvalidInputError("codes", "must have at least one dimension")
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InvalidInputError("k", f"must be an integer, got {type(k).__name__}")
    nbytes = codes.shape[-1]
    if not 2 * nbytes - 1 <= k <= 2 * nbytes or k < 1:
        raise InvalidInputError(
            "k",
            f"= {k} does not match {nbytes} code bytes (accepted: {2 * nbytes - 1}..{2 * nbytes})",
        )
    span = 6 if _check_zero(zero) else 7
    emin = _check_emin(emin, span)
    codes = np.asarray(codes)
    nib = np.stack([codes & 0x0F, codes >> 4], axis=-1).reshape(*codes.shape[:-1], 2 * nbytes)
    if k % 2 and np.any(nib[..., k:]):
        raise InvalidInputError("codes", "the padding nibble of an odd-length row must be 0")
    nib = nib[..., :k]
    negative = (nib >> 3).astype(bool)
    field = (nib & 0x07).astype(np.int16)
    if zero:
        is_zero = field == 0
        if np.any(is_zero & negative):
            raise InvalidInputError(
                "codes", "code 0b1000 (negative zero) is not part of the format"
            )
        sign = np.where(is_zero, 0, np.where(negative, -1, 1)).astype(np.int8)
        exponent = np.where(is_zero, 0, field - 1 + emin).astype(np.int8)
    else:
        sign = np.where(negative, -1, 1).astype(np.int8)
        exponent = (field + emin).astype(np.int8)
    return sign, exponent


# 2**e for every int8 exponent, exactly (2**-128 .. 2**-127 are float32 subnormals, still exact).
EXP2_TABLE = np.ldexp(np.float32(1), np.arange(-128, 128)).astype(np.float32)


def shift_weights(sign: Any, exponent: Any) -> Any:
    """Decode shift weights to float32: ``sign * 2.0**exponent``, exact for every int8 exponent."""
    check_array("sign", sign, dtype=np.int8)
    check_array("exponent", exponent, dtype=np.int8)
    if sign.shape != exponent.shape:
        raise InvalidInputError("exponent", f"shape {exponent.shape} must equal {sign.shape}")
    xp = array_module(sign)
    table = xp.asarray(EXP2_TABLE)
    return (sign.astype(xp.float32) * table[exponent.astype(xp.int16) + 128]).astype(xp.float32)
