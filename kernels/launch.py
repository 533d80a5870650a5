"""Launch arithmetic of the CUDA kernels: pure Python, so it is tested without a GPU.

The tile constants mirror the ``#define`` lines of ``cuda/binary.cu`` and ``cuda/float.cu``
(``tests/kernels/test_launch.py`` parses the sources and checks they agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from proxcompress.errors import InvalidInputError

# cuda/binary.cu
TC_BM = 128
TC_BN = 128
TC_KBYTES = 64
TC_ROW_BYTES = 80
TC_STAGES = 3
TC_THREADS = 128
GEMV_WARPS = 8
GEMV_MAX_M = 16
GEMV_NTILES = 2
SIMT_TILE = 64
SIMT_KWORDS = 8
SIMT_THREADS = 256
POPC_THREADS = 256
PEAK_CHAINS = 8
# cuda/float.cu
FG_TILE = 64
FG_KSTEP = 16
FG_THREADS = 256
FG_PAD = 4

TC_WORD_MULTIPLE = TC_KBYTES // 8  # tensor-core kernels read rows in 64-byte chunks
TC_MIN_CC = 80  # cp.async + mma.m16n8k256 .and.popc
DEFAULT_SMEM_LIMIT = 48 * 1024  # above this a kernel must opt in to dynamic shared memory

BINARY_ALGOS: tuple[str, ...] = ("auto", "tc_and", "tc_xor", "gemv", "simt")


@dataclass(frozen=True)
class Launch:
    """One kernel launch: name, grid and block dimensions, dynamic shared memory in bytes."""

    kernel: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_mem: int = 0


@dataclass(frozen=True)
class BinaryPlan:
    """How ``binary_matmul`` runs on a GPU: the algorithm, the (padded) words per row and the
    launches in order (row popcounts first, for ``tc_and``)."""

    algo: str
    words: int
    launches: tuple[Launch, ...]


def cdiv(a: int, b: int) -> int:
    """``ceil(a / b)`` for non-negative ``a`` and positive ``b``."""
    return -(-a // b)


def padded_words(words: int, multiple: int = TC_WORD_MULTIPLE) -> int:
    """Words per row rounded up to ``multiple`` (the padding words are 0 and change nothing)."""
    return cdiv(words, multiple) * multiple


def tc_shared_bytes() -> int:
    """Dynamic shared memory of the tensor-core GEMM: the cp.async ring of A and B tiles."""
    return TC_STAGES * (TC_BM + TC_BN) * TC_ROW_BYTES


def row_popcount_launch(rows: int) -> Launch:
    """One warp per row."""
    return Launch("row_popcount", (cdiv(rows, POPC_THREADS // 32), 1, 1), (POPC_THREADS, 1, 1))


def choose_binary_algo(m: int, cc: int, algo: str = "auto") -> str:
    """``auto``: ``gemv`` for ``m <= 16`` and ``tc_and`` otherwise on compute capability >= 8.0,
    else ``simt``. An explicit tensor-core choice on an older GPU is an error."""
    if algo not in BINARY_ALGOS:
        raise InvalidInputError("algo", f"{algo!r} is not one of {BINARY_ALGOS}")
    if algo == "auto":
        if cc < TC_MIN_CC:
            return "simt"
        return "gemv" if m <= GEMV_MAX_M else "tc_and"
    if algo != "simt" and cc < TC_MIN_CC:
        raise InvalidInputError("algo", f"{algo!r} needs compute capability >= 8.0, got {cc / 10}")
    if algo == "gemv" and m > GEMV_MAX_M:
        raise InvalidInputError("algo", f"{algo!r} takes at most {GEMV_MAX_M} rows of A, got {m}")
    return algo


def binary_plan(m: int, n: int, words: int, cc: int, algo: str = "auto") -> BinaryPlan:
    """Plan ``binary_matmul`` of (m x words) by (n x words) packed rows on a GPU of compute
    capability ``cc`` (e.g. 90)."""
    algo = choose_binary_algo(m, cc, algo)
    if algo == "simt":
        grid = (cdiv(n, SIMT_TILE), cdiv(m, SIMT_TILE), 1)
        return BinaryPlan(algo, words, (Launch("binary_gemm_simt", grid, (SIMT_THREADS, 1, 1)),))
    w = padded_words(words)
    if algo == "gemv":
        grid = (cdiv(n, 8 * GEMV_NTILES), 1, 1)
        spec = Launch("binary_gemv_tc", grid, (GEMV_WARPS * 32, 1, 1))
        return BinaryPlan(algo, w, (spec,))
    gemm = Launch(
        f"binary_gemm_{algo}",
        (cdiv(n, TC_BN), cdiv(m, TC_BM), 1),
        (TC_THREADS, 1, 1),
        tc_shared_bytes(),
    )
    if algo == "tc_xor":
        return BinaryPlan(algo, w, (gemm,))
    return BinaryPlan(algo, w, (row_popcount_launch(m), row_popcount_launch(n), gemm))


def float_gemm_launch(kernel: Literal["shift_gemm", "euclid_gemm"], m: int, n: int) -> Launch:
    """64 x 64 output tiles, 256 threads."""
    return Launch(kernel, (cdiv(n, FG_TILE), cdiv(m, FG_TILE), 1), (FG_THREADS, 1, 1))


def mma_count(m: int, n: int, words: int) -> int:
    """Number of m16n8k256 tensor-core operations a tile-exact GEMM needs (for roofline ratios)."""
    return cdiv(m, 16) * cdiv(n, 8) * cdiv(words * 64, 256)
