"""Conv2d for the three layer kinds, by im2col + the GEMMs of :mod:`.ops`; on the numba backend
the binary conv is direct (:func:`.cpu.binary_conv_direct`, no im2col) and the shift conv decodes
its weights exactly and runs torch's float conv (:func:`.cpu.conv2d_float`).

Layout is PyTorch's: input (N, C, H, W), weight (O, C, kh, kw), output (N, O, Ho, Wo) with
``Ho = floor((H + 2 p_h - d_h (kh - 1) - 1) / s_h) + 1`` (likewise ``Wo``). A patch is flattened
in (C, kh, kw) order, so a weight tensor ``w`` becomes the GEMM's B matrix ``w.reshape(O, -1)``,
and a binary weight is stored as ``pack_signs(w.reshape(O, -1))``.

Binary padding: zero is not a +-1 value. The patches are padded with +1 (bit 0), and with
``padding_mode="zero"`` (default) the result is corrected to what zero padding gives:

.. math:: y_{o,l} = y^{(+1)}_{o,l} - \\sum_{(i,j)\\ \\text{padded at}\\ l} \\sum_c w_{o,c,i,j},

an integer GEMM of the (H_o W_o) x (kh kw) padding mask with the channel sums of the weights
(the larq compute-engine approach). ``padding_mode="one"`` returns the +1-padded result unchanged
(larq's ``pad_values=1``). Either way the output is exact (int32). The direct numba path needs no
correction: a tap in the padding adds 0 (zero) or the channel sum of its weights (one).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from proxcompress.errors import InvalidInputError

from ._checks import Backend, array_module, check_array, resolve_backend, words_for
from .formats import pack_negative_mask, shift_weights, unpack_signs
from .ops import EuclidMethod, binary_matmul, check_sign_values, euclid_matmul, shift_matmul

__all__ = ["binary_conv2d", "shift_conv2d", "euclid_conv2d", "conv_output_size"]

IntPair = int | tuple[int, int]
PaddingMode = Literal["zero", "one"]


def _pair(field: str, v: Any, low: int) -> tuple[int, int]:
    pair = (v, v) if isinstance(v, int | np.integer) and not isinstance(v, bool) else v
    ok = (
        isinstance(pair, tuple | list)
        and len(pair) == 2
        and all(isinstance(p, int | np.integer) and not isinstance(p, bool) for p in pair)
    )
    if not ok or min(pair) < low:
        raise InvalidInputError(field, f"= {v!r}: expected an int or a pair of ints >= {low}")
    return int(pair[0]), int(pair[1])


def conv_output_size(
    size: tuple[int, int],
    kernel_size: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> tuple[int, int]:
    """``(Ho, Wo)`` of a conv2d; raises if the (dilated) kernel does not fit the padded input."""
    size = _pair("size", size, 1)
    kh, kw = _pair("kernel_size", kernel_size, 1)
    s, p, d = (
        _pair("stride", stride, 1),
        _pair("padding", padding, 0),
        _pair("dilation", dilation, 1),
    )
    out = tuple(
        (n + 2 * p[i] - d[i] * (k - 1) - 1) // s[i] + 1
        for i, (n, k) in enumerate(zip(size, (kh, kw), strict=True))
    )
    if min(out) < 1:
        raise InvalidInputError(
            "kernel_size", f"({kh}, {kw}) with dilation {d} does not fit input {size} + padding {p}"
        )
    return out[0], out[1]


def im2col(
    x: Any,
    kernel_size: tuple[int, int],
    stride: IntPair,
    padding: IntPair,
    dilation: IntPair,
    pad_value: Any = 0,
) -> tuple[Any, int, int]:
    """Patches of ``x`` (N, C, H, W) as rows: ``(N*Ho*Wo, C*kh*kw)``, plus ``Ho, Wo``.

    ``cols[(n*Ho + oy)*Wo + ox, (c*kh + i)*kw + j] = xpad[n, c, oy*s_h + i*d_h, ox*s_w + j*d_w]``.
    Works on NumPy and CuPy arrays.
    """
    xp = array_module(x)
    n, c, h, w = x.shape
    kh, kw = kernel_size
    (sh, sw), (ph, pw), (dh, dw) = (
        _pair("stride", stride, 1),
        _pair("padding", padding, 0),
        _pair("dilation", dilation, 1),
    )
    ho, wo = conv_output_size((h, w), kernel_size, stride, padding, dilation)
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    cols = xp.empty((n, ho, wo, c, kh, kw), x.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = xpad[
                :,
                :,
                i * dh : i * dh + sh * (ho - 1) + 1 : sh,
                j * dw : j * dw + sw * (wo - 1) + 1 : sw,
            ]
            cols[..., i, j] = patch.transpose(0, 2, 3, 1)
    return cols.reshape(n * ho * wo, c * kh * kw), ho, wo


def to_nchw(y: Any, n: int, ho: int, wo: int) -> Any:
    """Rows of ``im2col`` order ``(n, ho, wo)`` by channels, back to contiguous NCHW."""
    xp = array_module(y)
    return xp.ascontiguousarray(y.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2))


def binary_conv2d(
    x: Any,
    w_words: Any,
    kernel_size: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    padding_mode: PaddingMode = "zero",
    backend: Backend = "auto",
) -> Any:
    """Binary conv2d: ``conv2d(sign(x), W)`` with +-1 weights, exactly, as int32.

    .. math:: y_{n,o,l} = \\sum_{c,i,j} \\mathrm{sign}(x)_{n,c,\\,l+(i,j)}\\; W_{o,c,i,j}

    Args:
        x: real (N, C, H, W); ``x < 0`` is -1, ``x >= 0`` is +1.
        w_words: uint64 (O, ceil(C*kh*kw / 64)), ``pack_signs(W.reshape(O, -1))``.
        kernel_size: ``kh`` or ``(kh, kw)``.
        stride: int or pair, as in ``torch.nn.functional.conv2d``.
        padding: int or pair, as in ``torch.nn.functional.conv2d``.
        dilation: int or pair, as in ``torch.nn.functional.conv2d``.
        padding_mode: ``"zero"`` (padded inputs count 0, via the +1-pad correction in the module
            docstring) or ``"one"`` (padded inputs count +1).
        backend: as for :func:`~proxcompress.kernels.binary_matmul`.

    Returns:
        int32 (N, O, Ho, Wo).
    """
    check_array("x", x, ndim=4)
    check_array("w_words", w_words, ndim=2, dtype=np.uint64)
    if padding_mode not in ("zero", "one"):
        raise InvalidInputError("padding_mode", f"{padding_mode!r} is not 'zero' or 'one'")
    kh, kw = _pair("kernel_size", kernel_size, 1)
    n, c = x.shape[:2]
    k = c * kh * kw
    if w_words.shape[1] != words_for(k):
        raise InvalidInputError(
            "w_words", f"has {w_words.shape[1]} words per row; C*kh*kw = {k} needs {words_for(k)}"
        )
    if x.dtype.kind not in "biuf":
        raise InvalidInputError("x", f"dtype must be real, got {x.dtype}")
    xp = array_module(x)
    if resolve_backend(backend, x=x, w_words=w_words) == "numba":  # direct, no im2col
        from . import cpu

        signs = unpack_signs(w_words, k).reshape(-1, c, kh, kw)
        taps = pack_negative_mask(signs.transpose(2, 3, 0, 1) < 0)  # (kh, kw, O, Q)
        pad_sum = np.zeros((kh, kw, signs.shape[0]), np.int64)
        if padding_mode == "one":
            pad_sum += signs.sum(axis=1, dtype=np.int64).transpose(1, 2, 0)
        return cpu.binary_conv2d(
            x < 0,
            np.ascontiguousarray(taps.transpose(0, 1, 3, 2)),
            c,
            _pair("stride", stride, 1),
            _pair("padding", padding, 0),
            _pair("dilation", dilation, 1),
            pad_sum,
            conv_output_size(x.shape[2:], (kh, kw), stride, padding, dilation),
        )
    cols, ho, wo = im2col(x < 0, (kh, kw), stride, padding, dilation, pad_value=False)
    y = binary_matmul(pack_negative_mask(cols), w_words, k, backend=backend)
    if padding_mode == "zero" and max(_pair("padding", padding, 0)) > 0:
        ones = xp.ones((1, 1, *x.shape[2:]), xp.float32)
        inside, _, _ = im2col(ones, (kh, kw), stride, padding, dilation, pad_value=0)
        w_sum = unpack_signs(w_words, k).reshape(-1, c, kh * kw).sum(axis=1, dtype=xp.int32)
        correction = ((1 - inside) @ w_sum.T.astype(xp.float32)).astype(xp.int32)
        y = y.reshape(n, ho * wo, -1)
        y -= correction[None]  # y is this call's own int32 array
    return to_nchw(y, n, ho, wo)


def shift_conv2d(
    x: Any,
    sign: Any,
    exponent: Any,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    backend: Backend = "auto",
) -> Any:
    """Shift conv2d: ``conv2d(x, sign * 2.0**exponent)`` with zero padding, float32.

    Args:
        x: float32 (N, C, H, W).
        sign: int8 (O, C, kh, kw), as in :func:`~proxcompress.kernels.shift_matmul`.
        exponent: int8 (O, C, kh, kw), as in :func:`~proxcompress.kernels.shift_matmul`.
        stride: int or pair.
        padding: int or pair.
        dilation: int or pair.
        backend: as for :func:`~proxcompress.kernels.shift_matmul`.

    Returns:
        float32 (N, O, Ho, Wo).
    """
    check_array("x", x, ndim=4, dtype=np.float32)
    check_array("sign", sign, ndim=4, dtype=np.int8)
    check_array("exponent", exponent, ndim=4, dtype=np.int8)
    if sign.shape[1] != x.shape[1]:
        raise InvalidInputError("sign", f"has {sign.shape[1]} input channels, x has {x.shape[1]}")
    if resolve_backend(backend, x=x, sign=sign, exponent=exponent) == "numba":
        from . import cpu

        conv_output_size(x.shape[2:], sign.shape[2:], stride, padding, dilation)  # validates
        check_sign_values(sign)
        return cpu.conv2d_float(x, shift_weights(sign, exponent), _pair("stride", stride, 1),
                                _pair("padding", padding, 0), _pair("dilation", dilation, 1))
    cols, ho, wo = im2col(x, sign.shape[2:], stride, padding, dilation)
    o = sign.shape[0]
    xp = array_module(x)
    y = shift_matmul(
        cols,
        xp.ascontiguousarray(sign.reshape(o, -1)),
        xp.ascontiguousarray(exponent.reshape(o, -1)),
        backend=backend,
    )
    return to_nchw(y, x.shape[0], ho, wo)


def euclid_conv2d(
    x: Any,
    w: Any,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    backend: Backend = "auto",
    method: EuclidMethod = "expand",
) -> Any:
    """Euclid (AdderNet-style) conv2d with zero padding, float32.

    .. math:: y_{n,o,l} = -\\sum_{c,i,j} (x_{n,c,\\,l+(i,j)} - w_{o,c,i,j})^2

    Padded positions are inputs equal to 0 and so contribute :math:`-w^2`.

    Args:
        x: float32 (N, C, H, W).
        w: float32 (O, C, kh, kw).
        stride: int or pair.
        padding: int or pair.
        dilation: int or pair.
        backend: as for :func:`~proxcompress.kernels.euclid_matmul`.
        method: as for :func:`~proxcompress.kernels.euclid_matmul`.

    Returns:
        float32 (N, O, Ho, Wo).
    """
    check_array("x", x, ndim=4, dtype=np.float32)
    check_array("w", w, ndim=4, dtype=np.float32)
    if w.shape[1] != x.shape[1]:
        raise InvalidInputError("w", f"has {w.shape[1]} input channels, x has {x.shape[1]}")
    cols, ho, wo = im2col(x, w.shape[2:], stride, padding, dilation)
    xp = array_module(x)
    y = euclid_matmul(
        cols, xp.ascontiguousarray(w.reshape(w.shape[0], -1)), backend=backend, method=method
    )
    return to_nchw(y, x.shape[0], ho, wo)
