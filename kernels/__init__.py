"""Kernels for binary, shift and Euclid layers: packed formats, GEMM and conv2d.

Formats (:mod:`.formats`): :func:`pack_signs` / :func:`unpack_signs` (1 bit per +-1 value in
uint64 words), :func:`pack_shift` / :func:`unpack_shift` (4-bit sign + exponent codes),
:func:`shift_weights` (exact float32 decode).

Operations, each with backends ``numpy`` (reference twin), ``numba`` (CPU) and ``cupy`` (GPU):

* :func:`binary_matmul` -- ``A @ B.T`` of +-1 matrices from packed words, exact int32;
* :func:`shift_matmul` -- ``x @ (sign * 2**exponent).T``;
* :func:`euclid_matmul` -- ``-sum_k (x[m,k] - w[n,k])**2``;
* :func:`binary_conv2d`, :func:`shift_conv2d`, :func:`euclid_conv2d` -- the conv2d forms.

:func:`load` (:mod:`.model`) runs a model exported by ``proxcompress.training.export`` on them.

Importing this package loads neither numba nor cupy; each backend is imported on first use.
See ``docs/kernels.md`` for the formats and the design of each backend.
"""

from __future__ import annotations

from .conv import binary_conv2d, conv_output_size, euclid_conv2d, shift_conv2d
from .formats import pack_shift, pack_signs, shift_weights, unpack_shift, unpack_signs
from .model import ExportedModel, load
from .ops import binary_matmul, euclid_matmul, shift_matmul

__all__ = [
    "pack_signs",
    "unpack_signs",
    "pack_shift",
    "unpack_shift",
    "shift_weights",
    "binary_matmul",
    "shift_matmul",
    "euclid_matmul",
    "binary_conv2d",
    "shift_conv2d",
    "euclid_conv2d",
    "conv_output_size",
    "load",
    "ExportedModel",
]
