"""The ``numba`` backend: parallel, cached CPU kernels.

Binary
    Register-tiled xor/popcount GEMM whose micro-kernel is chosen from the CPU numba compiles
    for and written as LLVM vector IR (:mod:`.simd`: ``vpopcntq`` on zmm with AVX-512
    VPOPCNTDQ, a Harley-Seal carry-save-adder tree otherwise). B is repacked into panels
    (:func:`pack_panels`) so that a vector holds one word of consecutive output columns; each
    parallel task computes one tile. The direct binary conv keeps the scalar ``ctpop``
    intrinsic (:func:`_popcount`), which LLVM vectorises over its output channels.

Shift
    The weights ``sign * 2**e`` are decoded exactly to a float32 matrix (a 256-entry table, in
    parallel), then one BLAS sgemm (NumPy's) multiplies. Decoding costs ``O(NK)`` against the
    GEMM's ``O(MNK)``.

Euclid
    ``method="expand"``: :math:`-\\|x\\|^2 + 2\\,x \\cdot w - \\|w\\|^2` with one float32 BLAS GEMM
    and float64 norms. Fast, but the GEMM's rounding error (about
    :math:`\\sqrt{K}\\,\\epsilon_{32}\\,\\|x\\|\\|w\\|`) is not relative to the (small) result for
    nearly equal vectors. ``method="direct"``: register-tiled direct differences
    :math:`-\\sum_k (x_k - w_k)^2` in float32 (every term is >= 0: relative error about
    :math:`K \\epsilon_{32}` at worst), several times slower than BLAS.
"""

from __future__ import annotations

import functools
import types as pytypes
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import get_num_threads, njit, parallel_chunksize, prange, types
from numba.extending import intrinsic

from . import simd
from .formats import EXP2_TABLE
from .numba_cache import key_on_package, key_on_package_source


@intrinsic
def _popcount(typingctx, x):  # type: ignore[no-untyped-def]
    """``llvm.ctpop.i64``: the hardware popcount (popcnt / vpopcntq after vectorisation)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


#: the binary GEMM's inner loop for the CPU numba compiles for (:mod:`.simd`)
PATH = simd.detect()
TILE_ROWS = PATH.rows
TILE_COLS = PATH.tile_cols
_tile = simd.make_tile(PATH, PATH.rows)
_tile_row = simd.make_tile(PATH, 1)


_probe = simd.make_popcount_probe(PATH)


@njit(parallel=True, cache=True, nogil=True)
def popcount_probe(iters, out):  # type: ignore[no-untyped-def]
    """``out[t]``: thread task ``t`` runs ``iters`` rounds of :data:`.simd.PROBE_CHAINS`
    dependent vector popcounts (the benchmark's popcount roofline; one task per thread)."""
    for t in prange(out.shape[0]):
        out[t] = _probe(iters + t * 0)


@njit(parallel=True, cache=True, nogil=True)
def pack_panels(b, panels):  # type: ignore[no-untyped-def]
    """``panels[t * W + w, c] = b[t * TILE_COLS + c, w]`` (0 past the last row of ``b``): the
    GEMM's B operand, word-major within panels of ``TILE_COLS`` rows, so that one vector load
    holds one word of consecutive output columns and a tile reads one contiguous panel."""
    n_rows, n_words = b.shape
    for t in prange(panels.shape[0] // n_words):
        for w in range(n_words):
            for c in range(TILE_COLS):
                n = t * TILE_COLS + c
                panels[t * n_words + w, c] = b[n, w] if n < n_rows else np.uint64(0)


def panels_for(b: np.ndarray) -> np.ndarray:
    """:func:`pack_panels` of uint64 (N, W) ``b`` into a new array."""
    n_rows, n_words = b.shape
    tiles = -(-n_rows // TILE_COLS)
    panels = np.empty((tiles * n_words, TILE_COLS), np.uint64)
    pack_panels(b, panels)
    return panels


@njit(parallel=True, cache=True, nogil=True)
def binary_gemm(a, panels, k, out):  # type: ignore[no-untyped-def]
    """``out[m, n] = k - 2 * sum_w popcount(a[m, w] ^ b[n, w])`` (int32, C-contiguous), ``b``
    given as :func:`pack_panels`. Tiles of ``TILE_ROWS`` x ``TILE_COLS`` outputs (the
    :mod:`.simd` micro-kernel of this CPU) are the parallel tasks; the last ``M % TILE_ROWS``
    rows take one-row tiles."""
    m_rows, n_cols = out.shape
    n_tiles = (n_cols + TILE_COLS - 1) // TILE_COLS
    m_full = m_rows // TILE_ROWS
    for t in prange(m_full * n_tiles):
        _tile(a, panels, k, out, (t // n_tiles) * TILE_ROWS, (t % n_tiles) * TILE_COLS)
    rest = m_rows - m_full * TILE_ROWS
    if rest == 0:  # no second parallel region (and barrier) when the tiles cover it all
        return
    for t in prange(rest * n_tiles):
        _tile_row(a, panels, k, out, m_full * TILE_ROWS + t // n_tiles,
                  (t % n_tiles) * TILE_COLS)


def sgemm_nt(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """float32 ``x @ w.T`` by torch's BLAS, on zero-copy views of the NumPy arrays.

    Not NumPy's OpenBLAS: its worker threads (pthreads) spin for about 0.1 s after a call, and
    numba's OpenMP threads spin after a parallel region, so on few cores a numba kernel right
    after an OpenBLAS call, or the reverse, waits milliseconds for a core (measured on 2 cores,
    256 x 1024 x 1024: the binary GEMM 0.13 ms in a loop, 2.4-6.0 ms right after an OpenBLAS
    sgemm; that sgemm 1.7 ms in a loop, 5.5 ms right after the binary GEMM). torch runs its
    threads on the same OpenMP runtime as numba's ``omp`` layer (one libgomp in the process,
    whichever is imported first), and the same pairs showed no such wait (0.17 and 2.0 ms).
    """
    import torch

    tx, tw = _torch_views(x, w)
    with torch.no_grad():
        return torch.matmul(tx, tw.T).numpy()


def conv2d_float(x: np.ndarray, w: np.ndarray, stride: tuple[int, int],
                 padding: tuple[int, int], dilation: tuple[int, int]) -> np.ndarray:
    """float32 conv2d (NCHW, zero padding) by torch (oneDNN) on zero-copy views: the float
    and decoded-shift convs of the numba backend, on the same threads as :func:`sgemm_nt`.
    Against im2col + GEMM here (N = 256, 3 x 3): 0.44-0.64 vs 4.5 ms (C = 1, 28 x 28, O = 16),
    1.5 vs 16.5 ms (C = 16, 14 x 14, O = 32), once glibc serves the output from its heap (see
    docs/kernels.md, "CPU float GEMMs": freshly mapped buffers page-fault on every call)."""
    import torch

    tx, tw = _torch_views(x, w)
    with torch.no_grad():
        return torch.nn.functional.conv2d(tx, tw, None, stride, padding, dilation).numpy()


def _torch_views(*arrays: np.ndarray) -> list[Any]:
    """Zero-copy torch tensors of contiguous arrays (copies only where the layout needs it:
    torch refuses negative strides)."""
    import torch

    with warnings.catch_warnings():  # read-only inputs: torch only reads them here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


#: tile chunks per thread that :func:`binary_matmul` hands out
CHUNKS_PER_THREAD = 8


def binary_matmul(a, b, k, out, panels=None) -> None:  # type: ignore[no-untyped-def]
    """:func:`binary_gemm` of uint64 (M, W) ``a`` and (N, W) ``b`` (``panels``, if given, is
    :func:`panels_for` of ``b``, e.g. packed once for a model's weights), with the tiles
    handed to threads dynamically, about ``CHUNKS_PER_THREAD`` chunks each: numba's default
    static split stalls whenever another process takes one of the cores (measured 2-3x slower
    medians on a shared 2-core machine), and one tile per chunk costs a scheduling step per
    tile, which dominates when rows are short (M = 50176, N = 32, K = 144, an im2col'd conv:
    1.83 ms at one tile per chunk, 0.82 ms at 64). ``parallel_chunksize`` inside the jitted
    function would defeat ``cache=True``, hence this wrapper."""
    if panels is None:
        panels = panels_for(b)
    tiles = -(-a.shape[0] // TILE_ROWS) * -(-b.shape[0] // TILE_COLS)
    launch(binary_gemm, a.shape[0] * b.shape[0] * a.shape[1], tiles, a, panels, k, out)


@njit(cache=True, nogil=True)
def all_finite(x):  # type: ignore[no-untyped-def]
    """Whether every value of the 1-d float array ``x`` is finite (``v - v == 0`` fails for
    NaN and +-inf only); one vectorised pass, without ``np.isfinite``'s boolean array (9 us
    against 19 us for a batch of 256 Fashion-MNIST images)."""
    ok = True
    for i in range(x.shape[0]):
        v = x[i]
        ok &= (v - v) == 0
    return ok


@njit(parallel=True, cache=True, nogil=True)
def linear_f64(x, wt, bias, has_bias, out):  # type: ignore[no-untyped-def]
    """float32 ``out`` (N, O) of a small float layer (a binary network's head): per output
    the float64 sum of ``x[r, j] * wt[j, o]`` over ``j`` in order (float32 ``x``, ``wt`` the
    float32 weights as float64 (K, O): every product is exact, so a fused multiply-add rounds
    the same) starting from +0.0, rounded once to float32, then ``+ bias[o]`` in float32
    (``has_bias``). The outputs are the vector lanes; rows are the parallel tasks. Its twin:
    ``cumsum`` over ``j`` of +0.0 and the float64 products, last column, to float32, plus
    the bias."""
    n_rows, k = x.shape
    n_out = wt.shape[1]
    for r in prange(n_rows):
        acc = np.zeros(n_out, np.float64)
        for j in range(k):
            v = np.float64(x[r, j])
            for o in range(n_out):
                acc[o] += v * wt[j, o]
        for o in range(n_out):
            y = np.float32(acc[o])
            out[r, o] = y + bias[o] if has_bias else y


@njit(parallel=True, cache=True, nogil=True)
def pack_channels(neg, out):  # type: ignore[no-untyped-def]
    """NHWC sign words of an NCHW mask: bit ``c % 64`` of ``out[n, h, w, c // 64]`` is
    ``neg[n, c, h, w]`` (True = -1); padding bits 0. ``out`` is (N, H, W, ceil(C / 64))."""
    n_img, n_ch, height, width = neg.shape
    for t in prange(n_img * height):
        n, h = t // height, t % height
        for w in range(width):
            for q in range(out.shape[3]):  # one word in a register, branch-free
                word = np.uint64(0)
                for c in range(64 * q, min(n_ch, 64 * q + 64)):
                    word |= np.uint64(neg[n, c, h, w]) << np.uint64(c - 64 * q)
                out[n, h, w, q] = word


@njit(inline="always")
def conv_pixel(xw, wt, n_ch, stride, padding, dilation, pad_sum, n, oy, ox, acc):  # type: ignore[no-untyped-def]
    """``acc[o]`` = the binary conv's output (channel ``o``) at pixel ``(n, oy, ox)`` of NHWC
    words ``xw``, taps ``wt`` (kh, kw, Q, O) and padding term ``pad_sum`` (kh, kw, O): a tap
    inside the image adds ``n_ch - 2 popcount(x ^ w)`` over its words, one in the padding adds
    ``pad_sum``. The inner loop runs over the O outputs (contiguous in ``wt``), vectorised."""
    height, width, n_words = xw.shape[1], xw.shape[2], xw.shape[3]
    kh, kw, _, n_out = wt.shape
    acc[:] = 0
    inside = 0
    for i in range(kh):
        iy = oy * stride[0] - padding[0] + i * dilation[0]
        for j in range(kw):
            ix = ox * stride[1] - padding[1] + j * dilation[1]
            if iy < 0 or iy >= height or ix < 0 or ix >= width:
                for o in range(n_out):
                    acc[o] -= pad_sum[i, j, o]
                continue
            inside += 1
            for q in range(n_words):
                v = xw[n, iy, ix, q]
                for o in range(n_out):
                    acc[o] += 2 * np.int64(_popcount(v ^ wt[i, j, q, o]))
    for o in range(n_out):
        acc[o] = n_ch * inside - acc[o]


@njit(parallel=True, cache=True, nogil=True)
def binary_conv_direct(xw, wt, n_ch, stride, padding, dilation, pad_sum, out):  # type: ignore[no-untyped-def]
    """Direct binary conv2d on NHWC channel words, no im2col.

    ``xw``: (N, H, W, Q) from :func:`pack_channels`; ``wt``: (kh, kw, Q, O), the weights' sign
    words over channels for each tap; ``pad_sum``: (kh, kw, O), what a tap in the padding adds
    (0 for zero padding, ``sum_c w`` for +1 padding); ``out``: int32 (N, O, Ho, Wo)
    (:func:`conv_pixel` per output pixel). Rows (n, oy) are the parallel tasks.
    """
    ho, wo = out.shape[2], out.shape[3]
    for t in prange(xw.shape[0] * ho):
        n, oy = t // ho, t % ho
        acc = np.empty(wt.shape[3], np.int64)
        for ox in range(wo):
            conv_pixel(xw, wt, n_ch, stride, padding, dilation, pad_sum, n, oy, ox, acc)
            for o in range(wt.shape[3]):
                out[n, o, oy, ox] = acc[o]


def _chunked(tasks: int) -> int:
    """``parallel_chunksize`` that hands out about ``CHUNKS_PER_THREAD`` chunks per thread."""
    return max(1, tasks // (CHUNKS_PER_THREAD * get_num_threads()))


def rows_per_task(images: int, height: int) -> int:
    """Output rows per parallel task of a kernel whose tasks are blocks of an image's rows:
    whole images once there are ``CHUNKS_PER_THREAD`` images per thread (the least per-task
    setup), else blocks small enough that every thread still gets about that many tasks."""
    blocks = min(height, -(-CHUNKS_PER_THREAD * get_num_threads() // max(1, images)))
    return -(-height // blocks)


#: below this many operations a kernel call runs serially (:func:`launch`); an operation is
#: one float multiply-add or one 64-bit word's xor + popcount + add, per output and tap
SERIAL_WORK = 1 << 20
#: below this many multiply-adds a float linear layer of a model runs :func:`linear_f64`
#: serially rather than torch's sgemm: that call's fixed cost (about 20 us: tensor views, the
#: no-grad context, the dispatch) is the time of about 2^17 float64 multiply-adds, while at
#: this size the sgemm itself takes a few microseconds
SMALL_LINEAR_WORK = 1 << 17


@functools.cache
def serial(kernel: Any) -> Any:
    """The serial twin of a ``parallel=True`` kernel: the same Python source compiled without
    ``parallel`` (``prange`` runs as ``range``), so the same operations in the same order per
    output, without numba's parallel launch. Cached on disk under its own name (``<name>_serial``:
    numba's cache index is keyed by name and signature, not by the ``parallel`` flag)."""
    f = kernel.py_func
    twin = pytypes.FunctionType(f.__code__, f.__globals__, f"{f.__name__}_serial",
                                f.__defaults__, f.__closure__)
    twin.__qualname__ = f"{f.__qualname__}_serial"
    twin.__module__, twin.__doc__ = f.__module__, f.__doc__
    return key_on_package_source(njit(cache=True, nogil=True)(twin))


def launch(kernel: Callable[..., Any], work: int, tasks: int | None, *args: Any) -> Any:
    """``kernel(*args)`` serially (:func:`serial`) when ``work`` (operations, see
    :data:`SERIAL_WORK`) is below ``SERIAL_WORK``; else the parallel kernel, its ``tasks``
    parallel iterations handed out about ``CHUNKS_PER_THREAD`` per thread (``None``: numba's
    static split). Below the threshold a parallel launch (waking the pool, a barrier at the
    end: microseconds with idle cores, far more when another process holds one) costs more
    than the work it splits: a single-image call of a small binary CNN is about 10^5
    operations per layer."""
    if work < SERIAL_WORK:
        return serial(kernel)(*args)
    if tasks is None:
        return kernel(*args)
    with parallel_chunksize(_chunked(tasks)):
        return kernel(*args)


def binary_conv2d(neg, w_taps, n_ch, stride, padding, dilation, pad_sum, out_hw):  # type: ignore[no-untyped-def]
    """int32 (N, O, Ho, Wo) binary conv of the NCHW mask ``neg`` (True = -1) by
    :func:`binary_conv_direct`; ``w_taps`` (kh, kw, Q, O) and ``pad_sum`` as there."""
    n, _, h, w = neg.shape
    xw = np.empty((n, h, w, w_taps.shape[2]), np.uint64)
    pack_channels(neg, xw)
    out = np.empty((n, w_taps.shape[3], *out_hw), np.int32)
    launch(binary_conv_direct, out.size * w_taps.shape[0] * w_taps.shape[1] * w_taps.shape[2],
           n * out_hw[0], xw, w_taps, n_ch, stride, padding, dilation, pad_sum, out)
    return out


@njit(parallel=True, cache=True, nogil=True)
def decode_shift(sign, exponent, out):  # type: ignore[no-untyped-def]
    """``out = sign * 2.0**exponent`` as float32 (exact: a table of the 256 int8 powers)."""
    n_rows, n_cols = sign.shape
    for n in prange(n_rows):
        for j in range(n_cols):
            out[n, j] = sign[n, j] * EXP2_TABLE[np.int64(exponent[n, j]) + 128]


@njit(parallel=True, cache=True, nogil=True)
def squared_norms(x, out):  # type: ignore[no-untyped-def]
    """``out[m] = sum_k x[m, k]**2`` accumulated in float64."""
    for m in prange(x.shape[0]):
        s = 0.0
        for j in range(x.shape[1]):
            v = np.float64(x[m, j])
            s += v * v
        out[m] = s


@njit(parallel=True, cache=True, nogil=True)
def euclid_finish(g, x_norms, w_norms):  # type: ignore[no-untyped-def]
    """In place: ``g[m, n] <- 2 g[m, n] - x_norms[m] - w_norms[n]`` (float64 arithmetic)."""
    for m in prange(g.shape[0]):
        xm = x_norms[m]
        for n in range(g.shape[1]):
            g[m, n] = 2.0 * np.float64(g[m, n]) - xm - w_norms[n]


@njit(parallel=True, cache=True, nogil=True, fastmath={"reassoc"})
def l1_distance(x, w, out):  # type: ignore[no-untyped-def]
    """``out[m, n] = -sum_k |x[m, k] - w[n, k]|`` in float32 (AdderNet layers of exported
    models). Every term is >= 0, so the relative error is at most about ``K * 6e-8``; the sum
    over ``k`` is vectorised (``reassoc``), rows are the parallel tasks."""
    for m in prange(x.shape[0]):
        for n in range(w.shape[0]):
            s = np.float32(0)
            for q in range(x.shape[1]):
                s += abs(x[m, q] - w[n, q])
            out[m, n] = -s


@njit(parallel=True, cache=True, nogil=True, fastmath={"reassoc", "contract"})
def euclid_direct(x, w, out):  # type: ignore[no-untyped-def]
    """``out[m, n] = -sum_k (x[m, k] - w[n, k])**2`` with 2x4 register tiles, float32."""
    m_rows, n_cols = x.shape
    n_rows = w.shape[0]
    tiles_n = (n_rows + 3) // 4
    tiles_m = (m_rows + 1) // 2
    for t in prange(tiles_m * tiles_n):
        i = (t // tiles_n) * 2
        j = (t % tiles_n) * 4
        if i + 2 <= m_rows and j + 4 <= n_rows:
            s00 = s01 = s02 = s03 = np.float32(0)
            s10 = s11 = s12 = s13 = np.float32(0)
            for q in range(n_cols):
                x0, x1 = x[i, q], x[i + 1, q]
                w0, w1, w2, w3 = w[j, q], w[j + 1, q], w[j + 2, q], w[j + 3, q]
                d = x0 - w0
                s00 += d * d
                d = x0 - w1
                s01 += d * d
                d = x0 - w2
                s02 += d * d
                d = x0 - w3
                s03 += d * d
                d = x1 - w0
                s10 += d * d
                d = x1 - w1
                s11 += d * d
                d = x1 - w2
                s12 += d * d
                d = x1 - w3
                s13 += d * d
            out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3] = -s00, -s01, -s02, -s03
            out[i + 1, j], out[i + 1, j + 1] = -s10, -s11
            out[i + 1, j + 2], out[i + 1, j + 3] = -s12, -s13
        else:
            for ii in range(i, min(i + 2, m_rows)):
                for jj in range(j, min(j + 4, n_rows)):
                    s = np.float32(0)
                    for q in range(n_cols):
                        d = x[ii, q] - w[jj, q]
                        s += d * d
                    out[ii, jj] = -s


key_on_package(globals())  # cached kernels recompile when any kernels source changes
