"""The ``cupy`` backend: CUDA kernels from ``cuda/*.cu`` compiled by NVRTC through CuPy.

Imported only when a CuPy array reaches a kernel (or by the GPU tests and benchmarks). Inputs
are assumed checked by :mod:`.ops` (shapes, dtypes, contiguity); nothing here synchronises the
device. The launch geometry comes from :mod:`.launch`.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import cupy as cp
import numpy as np

from . import launch


def source(name: str) -> str:
    """The CUDA source ``cuda/<name>.cu`` (``"binary"`` or ``"float"``)."""
    return resources.files("proxcompress.kernels").joinpath("cuda", f"{name}.cu").read_text()


@functools.cache
def _module(name: str) -> Any:
    return cp.RawModule(code=source(name))


@functools.cache
def _kernel(module: str, name: str, shared_mem: int) -> Any:
    kernel = _module(module).get_function(name)
    if shared_mem > launch.DEFAULT_SMEM_LIMIT:  # opt in to more dynamic shared memory
        kernel.max_dynamic_shared_size_bytes = shared_mem
    return kernel


def _run(module: str, spec: launch.Launch, *args: Any) -> None:
    kernel = _kernel(module, spec.kernel, spec.shared_mem)
    kernel(spec.grid, spec.block, args, shared_mem=spec.shared_mem)


def compute_capability() -> int:
    """Compute capability of the current device as an int (e.g. 90 for Hopper)."""
    return int(cp.cuda.Device().compute_capability)


def _pad_words(x: Any, words: int) -> Any:
    """Rows of ``words`` words (zero padding), 16-byte aligned (the tensor-core kernels load rows
    in 16-byte pieces)."""
    if x.shape[1] == words and x.data.ptr % 16 == 0:
        return x
    out = cp.zeros((x.shape[0], words), cp.uint64)
    out[:, : x.shape[1]] = x
    return out


def binary_matmul(
    a: Any,
    b: Any,
    k: int,
    algo: str = "auto",
    out: Any = None,
) -> Any:
    """``k - 2 popcount(a xor b)`` on the GPU; ``algo`` as in :func:`.launch.binary_plan`.

    ``out`` (int32, (M, N), C-contiguous) may be given to avoid an allocation; the ``gemv`` and
    ``tc_xor`` paths with rows a multiple of 64 bytes (and 16-byte-aligned data) then allocate
    nothing (CUDA-graph capturable).
    """
    m, n = a.shape[0], b.shape[0]
    if out is None:
        out = cp.empty((m, n), cp.int32)
    if m == 0 or n == 0:
        return out
    plan = launch.binary_plan(m, n, a.shape[1], compute_capability(), algo)
    if plan.algo != "simt":
        a, b = _pad_words(a, plan.words), _pad_words(b, plan.words)
    dims = (np.int32(m), np.int32(n), np.int32(plan.words), np.int32(k))
    if plan.algo == "tc_and":
        pa, pb = cp.empty(m, cp.int32), cp.empty(n, cp.int32)
        _run("binary", plan.launches[0], a, np.int32(m), np.int32(plan.words), pa)
        _run("binary", plan.launches[1], b, np.int32(n), np.int32(plan.words), pb)
        _run("binary", plan.launches[2], a, b, *dims, pa, pb, out)
    else:
        (spec,) = plan.launches
        _run("binary", spec, a, b, *dims, out)
    return out


def shift_matmul(x: Any, sign: Any, exponent: Any) -> Any:
    """``x @ (sign * 2**exponent).T``, weights decoded in shared memory."""
    m, kk = x.shape
    n = sign.shape[0]
    out = cp.empty((m, n), cp.float32)
    if m and n:
        spec = launch.float_gemm_launch("shift_gemm", m, n)
        _run("float", spec, x, sign, exponent, np.int32(m), np.int32(n), np.int32(kk), out)
    return out


def euclid_matmul(x: Any, w: Any) -> Any:
    """``-sum_k (x[m, k] - w[n, k])**2`` by direct differences in float32."""
    m, kk = x.shape
    n = w.shape[0]
    out = cp.empty((m, n), cp.float32)
    if m and n:
        spec = launch.float_gemm_launch("euclid_gemm", m, n)
        _run("float", spec, x, w, np.int32(m), np.int32(n), np.int32(kk), out)
    return out


def mma_peak(kernel: str, blocks: int, threads: int, iters: int) -> Any:
    """Launch the tensor-core throughput probe (``binary_mma_peak_and`` / ``_xor``); returns the
    output buffer (so the work cannot be optimised away). Each warp issues
    ``iters * launch.PEAK_CHAINS`` mma."""
    out = cp.empty(blocks * threads, cp.int32)
    spec = launch.Launch(kernel, (blocks, 1, 1), (threads, 1, 1))
    _run("binary", spec, np.int32(iters), out)
    return out
