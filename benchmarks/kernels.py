"""Kernel benchmarks: binary / shift / Euclid GEMMs against float baselines from the same run.

    python benchmarks/kernels.py cpu [--size 2048] [--rounds 7] [--threads N] [--out FILE]
    python benchmarks/kernels.py paths [--size 2048] [--rounds 7] [--threads N] [--paths avx2,...]
    python benchmarks/kernels.py models [--batch 256] [--threads N]
    python benchmarks/kernels.py gpu [--out FILE]

Prints one JSON document (device, shapes, dtypes, medians, baselines, ratios) to stdout and,
with ``--out``, writes it atomically to FILE; a short table goes to stderr.

CPU: the numba backend against float32 ``torch.matmul`` and NumPy (OpenBLAS) ``@`` on the same
inputs, round-robin (one call of each per round) so that load from other processes hits all
candidates alike; each function's turn is a pause (the previous function's thread pools go
idle), an untimed call, then timed calls back to back (``round_robin``); medians of all timed
calls. Packing of the activations is timed apart. The device entry names the CPU model, the
binary GEMM's inner loop (``kernels.simd``: path, tile, counting) and numba's target; the
popcount roofline is the rate of register-only vector popcounts on that path (one task per
thread), and the GEMM's bit products per second are reported as a fraction of it.

``paths`` runs the binary GEMM and torch once per inner loop this CPU can execute, each in a
fresh process that numba compiles for that path (``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``
from ``kernels.simd.forced_env``), so one machine measures the AVX-512 VPOPCNTDQ, AVX-512 and
AVX2 code. ``--threads N``
sets numba's and torch's thread counts (set ``OPENBLAS_NUM_THREADS=N`` too, for NumPy): on a
machine shared with other work, one thread per side avoids barrier stalls that make short
parallel calls (the binary GEMM) look slower than they are.

GPU: ceilings first (device-to-device copy bandwidth; the tensor-core b1 mma rate from a
register-only probe), then the binary GEMM at 8192^3 against cuBLAS fp16 / bf16 (torch), the
batched binary GEMV (batch 1..16, 8192 x 8192) against cuBLAS fp16, and shift / Euclid against
cuBLAS fp32. Timed with CUDA events after warm-up; GEMV time is per launch from a replayed CUDA
graph of many launches over rotating weight copies (more bytes than L2 holds), so neither
Python launch overhead nor L2 residency flatters either side; plain-loop times are reported too.
Two GEMV floors are measured the same way: an empty kernel (the launch cost in a graph) and a
kernel that only reads the packed weights (what moving those bytes in one launch costs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from proxcompress.atomic import write_json_atomic
from proxcompress.kernels import launch

Timer = Callable[[], None]
ROOT = Path(__file__).resolve().parents[1]


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e3, 4)


#: a function's turn in a round (see round_robin): seconds idle first, then timed calls
PAUSE_S = 0.3
REPEATS = 3


def round_robin(
    fns: dict[str, Timer], rounds: int, repeats: int = REPEATS, pause: float = PAUSE_S
) -> dict[str, dict[str, float]]:
    """Time the functions in turns, interleaved so that load from other processes hits them
    alike; medians and minima of all timed calls in ms.

    A function's turn: ``pause`` seconds idle, one untimed call, then ``repeats`` timed calls
    back to back -- the function in a loop, which is what a kernel's speed means. Both guards
    were measured to matter on the 2-core machine. The pause: thread pools keep spinning after
    a call returns (OpenBLAS workers about 0.1 s, OpenMP briefly), and would take the cores from
    the next function (the binary GEMM 256 x 1024 x 1024: 0.13 ms in a loop, 2.4-6.0 ms right
    after a NumPy sgemm). The untimed call: after the pause the first parallel call waits for
    idle threads and CPUs to wake (the same GEMM: 7.8 ms after a 0.3 s sleep).
    """
    for fn in fns.values():
        fn()  # warm-up (numba compile / cache load, BLAS threads)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(pause)
            fn()
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    return {
        name: {"median_ms": _median_ms(s), "min_ms": round(min(s) * 1e3, 4)}
        for name, s in samples.items()
    }


def _cpu_device() -> dict[str, Any]:
    import llvmlite.binding as llvm
    import numba
    import torch

    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if "model name" in line)
    except (OSError, StopIteration):
        pass
    from proxcompress.kernels import cpu, simd

    features = llvm.get_host_cpu_features()
    target, _ = simd.target_features()
    return {
        "kind": "cpu",
        "model": model,
        "llvm_cpu": llvm.get_host_cpu_name(),
        "cores": os.cpu_count(),
        "avx512_vpopcntdq": bool(features.get("avx512vpopcntdq", False)),
        "numba_target_cpu": target,
        "numba_cpu_features_env": os.environ.get("NUMBA_CPU_FEATURES"),
        "binary_path": {"name": cpu.PATH.name, "lanes": cpu.PATH.lanes, "tile_rows": cpu.PATH.rows,
                        "tile_cols": cpu.PATH.tile_cols, "count": cpu.PATH.count,
                        "shared_loop": cpu.PATH.shared_loop, "byte_lut": cpu.PATH.byte_lut,
                        "peel_first": cpu.PATH.peel_first},
        "numba_threads": numba.get_num_threads(),
        "torch_threads": torch.get_num_threads(),
        "openblas_num_threads_env": os.environ.get("OPENBLAS_NUM_THREADS"),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": torch.__version__,
        "load_average_at_start": os.getloadavg()[0],
    }


def _euclid_precision(k: int = 2048) -> dict[str, Any]:
    """Max error vs the float64 twin for random and for nearly equal vectors."""
    from proxcompress import kernels as K

    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, k)).astype(np.float32)
    cases = {
        "random": rng.standard_normal((256, k)).astype(np.float32),
        "nearly_equal": (x + 1e-3 * rng.standard_normal(x.shape)).astype(np.float32),
    }
    out: dict[str, Any] = {}
    for case, w in cases.items():
        ref = K.euclid_matmul(x, w, backend="numpy").astype(np.float64)
        scale = (x.astype(np.float64) ** 2).sum(1)[:, None] + (w.astype(np.float64) ** 2).sum(1)
        for method in ("expand", "direct"):
            got = K.euclid_matmul(x, w, backend="numba", method=method).astype(np.float64)
            err = np.abs(got - ref)
            out[f"{case}/{method}"] = {
                "max_abs_err": float(err.max()),
                "max_rel_err": float((err / np.maximum(np.abs(ref), 1e-300)).max()),
                "max_err_over_norms": float((err / scale).max()),
            }
    return out


def popcount_roofline(threads: int, seconds: float = 0.3) -> dict[str, Any]:
    """Bits per second the CPU popcounts on the binary GEMM's path (``cpu.popcount_probe``:
    registers only, one task per thread): the roofline of a GEMM that popcounts every word."""
    from proxcompress.kernels import cpu, simd

    out = np.zeros(threads, np.uint64)
    cpu.popcount_probe(10, out)  # compile / load
    iters = 1 << 16
    while True:
        t0 = time.perf_counter()
        cpu.popcount_probe(iters, out)
        elapsed = time.perf_counter() - t0
        if elapsed > seconds:
            break
        iters *= 2
    vectors = threads * iters * simd.PROBE_CHAINS
    return {
        "vector_popcounts_per_s": round(vectors / elapsed, 1),
        "bits_per_s": round(vectors * 64 * cpu.PATH.lanes / elapsed, 1),
        "threads": threads,
    }


def _binary_roofline(ms: float, size: int, roofline: dict[str, Any]) -> dict[str, Any]:
    bit_products = float(size) ** 3
    rate = bit_products / (ms / 1e3)
    return {"bit_products_per_s": round(rate, 1),
            "fraction_of_popcount_roofline": round(rate / roofline["bits_per_s"], 3)}


def bench_binary(size: int, rounds: int, threads: int | None) -> dict[str, Any]:
    """The binary GEMM alone against torch float32 (same run), and its popcount roofline: what
    ``paths`` runs once per forced inner loop."""
    import numba
    import torch

    if threads is not None:
        numba.set_num_threads(threads)
        torch.set_num_threads(threads)
    from proxcompress import kernels as K

    rng = np.random.default_rng(0)
    x = rng.standard_normal((size, size)).astype(np.float32)
    w = rng.standard_normal((size, size)).astype(np.float32)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    aw, bw = K.pack_signs(x), K.pack_signs(w)
    exact = np.array_equal(K.binary_matmul(aw[:64], bw, size, backend="numba"),
                           K.binary_matmul(aw[:64], bw, size, backend="numpy"))
    timings = round_robin({
        "torch_fp32_matmul": lambda: torch.matmul(tx, tw.T),
        "binary_matmul": lambda: K.binary_matmul(aw, bw, size, backend="numba"),
    }, rounds)
    roofline = popcount_roofline(numba.get_num_threads())
    ms = timings["binary_matmul"]["median_ms"]
    return {
        "benchmark": "kernels-binary",
        "device": _cpu_device(),
        "shapes": {"M": size, "N": size, "K": size},
        "timings": timings,
        "equals_numpy_twin": exact,
        "speedup_vs_torch_fp32": round(timings["torch_fp32_matmul"]["median_ms"] / ms, 3),
        "popcount_roofline": roofline,
        **_binary_roofline(ms, size, roofline),
    }


def path_names() -> list[str]:
    """What ``paths`` can run: the native choice, then every ``kernels.simd.PATHS`` entry."""
    from proxcompress.kernels import simd

    return ["native", *simd.PATHS]


def bench_paths(size: int, rounds: int, threads: int | None,
                names: list[str] | None = None) -> dict[str, Any]:
    """:func:`bench_binary` once per inner loop of ``kernels.simd.PATHS`` that this CPU can run
    (or those of ``names``, in :func:`path_names` order), each in a fresh process compiled for
    it (``simd.forced_env``: ``NUMBA_CPU_NAME`` and ``NUMBA_CPU_FEATURES``), the native choice
    first."""
    import subprocess

    from proxcompress.kernels import simd

    _, host = target_features_host()
    runs: dict[str, Any] = {}
    for name in path_names():
        if names is not None and name not in names:
            continue
        if name != "native" and not all(f in host for f in simd.PATHS[name].requires):
            runs[name] = {"skipped": "this CPU lacks " + ", ".join(simd.PATHS[name].requires)}
            continue
        env = dict(os.environ, **(simd.forced_env(name) if name != "native" else {}))
        argv = [sys.executable, __file__, "binary", "--size", str(size), "--rounds", str(rounds)]
        if threads is not None:
            argv += ["--threads", str(threads)]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            runs[name] = {"error": proc.stderr[-2000:]}
            continue
        runs[name] = json.loads(proc.stdout)
        print(f"[{name}] {runs[name]['timings']['binary_matmul']['median_ms']} ms,"
              f" x{runs[name]['speedup_vs_torch_fp32']} torch", file=sys.stderr, flush=True)
    return {"benchmark": "kernels-paths", "device": _cpu_device(), "size": size, "runs": runs}


def target_features_host() -> tuple[str, set[str]]:
    """This machine's CPU name and features, whatever numba is told to compile for."""
    import llvmlite.binding as llvm

    return llvm.get_host_cpu_name(), {f for f, on in llvm.get_host_cpu_features().items() if on}


def bench_cpu(size: int, rounds: int, threads: int | None) -> dict[str, Any]:
    """M = N = K = size on the CPU (numba backend vs float32 torch / NumPy)."""
    import numba
    import torch

    if threads is not None:
        numba.set_num_threads(threads)
        torch.set_num_threads(threads)

    from proxcompress import kernels as K

    m = n = k = size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    aw, bw = K.pack_signs(x), K.pack_signs(w)
    sign = np.where(w < 0, -1, 1).astype(np.int8)
    exponent = rng.integers(-7, 1, (n, k)).astype(np.int8)
    from proxcompress.kernels import intmul

    xq, _ = intmul.quantize_int8(x)
    wq, _ = intmul.quantize_int8(w)
    fns: dict[str, Timer] = {
        "torch_fp32_matmul": lambda: torch.matmul(tx, tw.T),
        "numpy_fp32_matmul": lambda: np.matmul(x, w.T),
        "binary_matmul": lambda: K.binary_matmul(aw, bw, k, backend="numba"),
        "pack_signs_activations": lambda: K.pack_signs(x),
        "shift_matmul": lambda: K.shift_matmul(x, sign, exponent, backend="numba"),
        "euclid_matmul_expand": lambda: K.euclid_matmul(x, w, backend="numba", method="expand"),
        "euclid_matmul_direct": lambda: K.euclid_matmul(x, w, backend="numba", method="direct"),
        "shift_matmul_int": lambda: intmul.shift_matmul_int(xq, sign, exponent, -7),
        "euclid_matmul_int": lambda: intmul.euclid_matmul_int(xq, wq),
        "l1_matmul_int": lambda: intmul.l1_matmul_int(xq, wq),
    }
    timings = round_robin(fns, rounds)
    base_t = timings["torch_fp32_matmul"]["median_ms"]
    base_n = timings["numpy_fp32_matmul"]["median_ms"]
    for t in timings.values():
        t["speedup_vs_torch_fp32"] = round(base_t / t["median_ms"], 3)
        t["speedup_vs_numpy_fp32"] = round(base_n / t["median_ms"], 3)
    binary_s = timings["binary_matmul"]["median_ms"] / 1e3
    roofline = popcount_roofline(numba.get_num_threads())
    return {
        "benchmark": "kernels-cpu",
        "device": _cpu_device(),
        "shapes": {"M": m, "N": n, "K": k},
        "dtypes": {
            "baseline": "float32",
            "binary": "uint64 packed signs -> int32",
            "shift": "float32 x, int8 sign/exponent -> float32",
            "euclid": "float32 -> float32",
            "integer (kernels.intmul)": "int8 x, int8 codes / weights -> int32, exact",
        },
        "rounds": rounds,
        "turn": f"{PAUSE_S} s pause, 1 untimed call, {REPEATS} timed calls",
        "timings": timings,
        "ops": {
            "flops_per_gemm": 2 * m * n * k,
            "binary_gops_per_s": round(2 * m * n * k / binary_s / 1e9, 1),
        },
        "popcount_roofline": roofline,
        "binary_roofline": _binary_roofline(binary_s * 1e3, size, roofline),
        "targets": {
            "binary_vs_torch_fp32_at_least": 10.0,
            "shift_euclid_time_vs_fp32_at_most": 1.5,
        },
        "euclid_precision_vs_float64_twin": _euclid_precision(),
    }


# ----------------------------------------------------------------------------------------- GPU


def _events_ms(cp: Any, fn: Timer, reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end))
    return round(statistics.median(times), 5)


def _torch_events_ms(torch: Any, fn: Timer, reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return round(statistics.median(times), 5)


def _gpu_device(cp: Any) -> dict[str, Any]:
    import torch

    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"]
    return {
        "kind": "gpu",
        "name": name.decode() if isinstance(name, bytes) else str(name),
        "compute_capability": int(cp.cuda.Device().compute_capability),
        "sms": int(props["multiProcessorCount"]),
        "l2_bytes": int(props["l2CacheSize"]),
        "memory_bytes": int(props["totalGlobalMem"]),
        "cupy": cp.__version__,
        "torch": torch.__version__,
        "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
    }


def _copy_bandwidth(cp: Any) -> dict[str, Any]:
    src = cp.ones(1 << 28, cp.float32)  # 1 GiB
    dst = cp.empty_like(src)
    ms = _events_ms(cp, lambda: cp.copyto(dst, src), reps=10)
    return {
        "bytes_moved": 2 * src.nbytes,
        "median_ms": ms,
        "gbytes_per_s": round(2 * src.nbytes / ms / 1e6, 1),
    }


def _mma_peak(cp: Any, gpu: Any, sms: int) -> dict[str, Any]:
    from proxcompress.kernels import launch

    blocks, threads, iters = sms * 8, 256, 2048
    count = blocks * (threads // 32) * iters * launch.PEAK_CHAINS
    out: dict[str, Any] = {}
    for op in ("and", "xor"):
        ms = _events_ms(
            cp,
            lambda op=op: gpu.mma_peak(f"binary_mma_peak_{op}", blocks, threads, iters),
            reps=5,
            warmup=1,
        )
        out[op] = {
            "mma_m16n8k256": count,
            "median_ms": ms,
            "mma_per_s": count / ms * 1e3,
            "binary_tops": round(count * 2 * 16 * 8 * 256 / ms / 1e9, 1),
        }
    return out


def _gemm(cp: Any, gpu: Any, peak: dict[str, Any], size: int) -> dict[str, Any]:
    import torch

    from proxcompress import kernels as K
    from proxcompress.kernels import launch

    m = n = k = size
    rng = cp.random.RandomState(0)
    a = rng.standard_normal((m, k), dtype=cp.float32)
    b = rng.standard_normal((n, k), dtype=cp.float32)
    aw, bw = K.pack_signs(a), K.pack_signs(b)
    res: dict[str, Any] = {"shapes": {"M": m, "N": n, "K": k}}
    ref = gpu.binary_matmul(aw, bw, k, algo="simt")
    for algo in ("tc_and", "tc_xor", "simt"):
        ms = _events_ms(cp, lambda algo=algo: gpu.binary_matmul(aw, bw, k, algo=algo), reps=10)
        entry = {"median_ms": ms, "binary_tops": round(2 * m * n * k / ms / 1e9, 1)}
        if algo != "simt":
            got = gpu.binary_matmul(aw, bw, k, algo=algo)
            entry["equals_simt"] = bool(cp.array_equal(got, ref))
            rate = launch.mma_count(m, n, aw.shape[1]) / ms * 1e3
            entry["fraction_of_mma_peak"] = round(rate / peak["and"]["mma_per_s"], 3)
        res[f"binary_{algo}"] = entry
    block = K.binary_matmul(cp.asnumpy(aw[:64]), cp.asnumpy(bw[:64]), k, backend="numpy")
    res["binary_tc_and"]["corner_equals_numpy_twin"] = bool(
        np.array_equal(cp.asnumpy(gpu.binary_matmul(aw, bw, k)[:64, :64]), block)
    )
    ta = torch.as_tensor(a, device="cuda")
    tb = torch.as_tensor(b, device="cuda")
    for dt in ("float16", "bfloat16"):
        xa, xb = ta.to(getattr(torch, dt)), tb.to(getattr(torch, dt))
        ms = _torch_events_ms(torch, lambda xa=xa, xb=xb: torch.matmul(xa, xb.T), reps=10)
        res[f"cublas_{dt}"] = {"median_ms": ms, "tflops": round(2 * m * n * k / ms / 1e9, 1)}
    best = res["binary_tc_and"]["median_ms"]
    res["speedup_vs_cublas_fp16"] = round(res["cublas_float16"]["median_ms"] / best, 3)
    res["speedup_vs_cublas_bf16"] = round(res["cublas_bfloat16"]["median_ms"] / best, 3)
    res["target_speedup_vs_fp16_at_least"] = 2.0
    return res


def _graph_ms_per_call(cp: Any, launches: list[Timer], replays: int = 20) -> float:
    """Capture ``launches`` into one CUDA graph, replay it, return ms per launch (median)."""
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        for fn in launches:
            fn()
        stream.synchronize()
        stream.begin_capture()
        for fn in launches:
            fn()
        graph = stream.end_capture()
    times = []
    for _ in range(replays):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record(stream)
        graph.launch(stream)
        end.record(stream)
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end) / len(launches))
    return round(statistics.median(times), 5)


def _torch_graph_ms_per_call(torch: Any, launches: list[Timer], replays: int = 20) -> float:
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for fn in launches:
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for fn in launches:
            fn()
    times = []
    for _ in range(replays):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / len(launches))
    return round(statistics.median(times), 5)


def _gemv_batch(
    cp: Any,
    gpu: Any,
    weights: list[Any],
    half: list[Any],
    batch: int,
    copy_gbps: float,
    read_floor_ms: float,
) -> dict[str, Any]:
    import torch

    from proxcompress import kernels as K

    n, k = half[0].shape
    copies = len(weights)
    rng = cp.random.RandomState(batch)
    acts = [K.pack_signs(rng.standard_normal((batch, k), dtype=cp.float32)) for _ in range(copies)]
    outs = [cp.empty((batch, n), cp.int32) for _ in range(copies)]
    order = [j % copies for j in range(4 * copies)]
    entry: dict[str, Any] = {}
    xs = [torch.randn(batch, k, device="cuda", dtype=torch.float16) for _ in range(len(half))]
    tl = [(lambda i=i: torch.matmul(xs[i], half[i].T)) for i in [j % len(half) for j in range(8)]]
    entry["cublas_fp16_graph_ms"] = _torch_graph_ms_per_call(torch, tl)
    entry["cublas_fp16_loop_ms"] = round(
        _torch_events_ms(torch, lambda: [f() for f in tl], 5) / len(tl), 5
    )
    entry["cublas_fraction_of_copy_bw"] = round(
        2 * n * k / entry["cublas_fp16_graph_ms"] / 1e6 / copy_gbps, 3
    )
    try:  # a probe, not a result: its failure must not lose the GEMV's numbers
        entry["loads_only_graph_ms"] = _gemv_loads_only_ms(cp, gpu, acts, weights, order)
    except Exception:
        entry["loads_only_error"] = traceback.format_exc(limit=4)
    twin = K.binary_matmul(cp.asnumpy(acts[0]), cp.asnumpy(weights[0][:256]), k, backend="numpy")
    moved = n * k // 8 + batch * k // 8 + 4 * batch * n  # weights, activations, int32 out
    calls = [
        (lambda i=i: gpu.binary_matmul(acts[i], weights[i], k, algo="gemv", out=outs[i]))
        for i in order
    ]
    got = gpu.binary_matmul(acts[0], weights[0], k, algo="gemv")
    entry["corner_equals_numpy_twin"] = bool(np.array_equal(cp.asnumpy(got[:, :256]), twin))
    entry["binary_graph_ms"] = _graph_ms_per_call(cp, calls)
    entry["binary_loop_ms"] = round(
        _events_ms(cp, lambda: [f() for f in calls], reps=5) / len(calls), 5
    )
    entry["speedup_vs_cublas_fp16_graph"] = round(
        entry["cublas_fp16_graph_ms"] / entry["binary_graph_ms"], 3
    )
    entry["speedup_vs_cublas_fp16_loop"] = round(
        entry["cublas_fp16_loop_ms"] / entry["binary_loop_ms"], 3
    )
    entry["binary_fraction_of_copy_bw"] = round(
        moved / entry["binary_graph_ms"] / 1e6 / copy_gbps, 3
    )
    entry["binary_fraction_of_read_floor"] = round(read_floor_ms / entry["binary_graph_ms"], 3)
    return entry


_READ_SRC = r"""
template <int U>
__device__ void read_once(const uint4* __restrict__ x, unsigned* __restrict__ out) {
  const size_t i0 = (size_t)blockIdx.x * blockDim.x * U + threadIdx.x;
  uint4 v[U];
#pragma unroll
  for (int u = 0; u < U; ++u) v[u] = __ldcs(x + i0 + (size_t)u * blockDim.x);
  unsigned acc = 0;
#pragma unroll
  for (int u = 0; u < U; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  if (acc == 0x9e3779b9u) out[0] = acc;  // keeps the loads; practically never stores
}
extern "C" __global__ void read_u2(const uint4* x, unsigned* out) { read_once<2>(x, out); }
extern "C" __global__ void read_u4(const uint4* x, unsigned* out) { read_once<4>(x, out); }
extern "C" __global__ void read_u8(const uint4* x, unsigned* out) { read_once<8>(x, out); }
"""


#: binary_gemv's reads and nothing else (appended to cuda/binary.cu): the same rows, chunks and
#: 16-byte loads (gemv_rows, gemv_chunks), folded by xor -- no mma, popcount or reduction. Its time
#: minus the read floor is what the GEMV's access pattern, activation rows included, adds to
#: reading the weights; a GEMV's time minus its time is the arithmetic and the tail.
_GEMV_LOADS_SRC = r"""
__device__ __forceinline__ unsigned gemv_fold(const GemvChunk& v) {
  unsigned x = v.x0.x ^ v.x0.y ^ v.x0.z ^ v.x0.w ^ v.x1.x ^ v.x1.y ^ v.x1.z ^ v.x1.w;
#pragma unroll
  for (int t = 0; t < GEMV_NTILES; ++t) x ^= v.b[t].x ^ v.b[t].y ^ v.b[t].z ^ v.b[t].w;
  return x;
}
extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32, 8 / GEMV_NTILES)
    gemv_loads_only(const uint4* __restrict__ A, const uint4* __restrict__ B, int M, int N, int W,
                    unsigned* __restrict__ out) {
  unsigned acc = 0;
  gemv_chunks(gemv_rows(A, B, M, N, W), threadIdx.x >> 5,
              [&](const GemvChunk& v) { acc ^= gemv_fold(v); });
  if (acc == 0x9e3779b9u) out[0] = acc;  // keeps the loads; practically never stores
}
"""


def _gemv_loads_only_ms(
    cp: Any, gpu: Any, acts: list[Any], weights: list[Any], order: list[int]
) -> float:
    """Per-launch time of ``_GEMV_LOADS_SRC`` with the GEMV's launch, same calls and copies."""
    module = cp.RawModule(code=gpu.source("binary") + _GEMV_LOADS_SRC)
    fn = module.get_function("gemv_loads_only")
    (m, words), n = acts[0].shape, weights[0].shape[0]
    plan = launch.binary_plan(m, n, words, gpu.compute_capability(), "gemv")
    if plan.words != words:
        raise ValueError(f"the probe needs rows of a multiple of 8 words, got {words}")
    (spec,) = plan.launches
    sink = cp.empty(1, cp.uint32)
    args = [(acts[i], weights[i], np.int32(m), np.int32(n), np.int32(words), sink) for i in order]
    calls = [(lambda a=a: fn(spec.grid, spec.block, a)) for a in args]
    return _graph_ms_per_call(cp, calls)


def _read_floor(cp: Any, weights: list[Any]) -> dict[str, float]:
    """Per-launch time (CUDA graph, rotating copies) of a kernel that only reads one weight
    matrix with 16-byte loads, 2, 4 or 8 per thread, the whole matrix in one wave: what reading
    these bytes in one launch costs on this device, with no arithmetic."""
    module = cp.RawModule(code=_READ_SRC)
    sink = cp.empty(1, cp.uint32)
    vectors = weights[0].nbytes // 16
    out = {}
    for u in (2, 4, 8):
        fn = module.get_function(f"read_u{u}")
        grid = (vectors // (256 * u),)
        calls = [(lambda w=w, f=fn, g=grid: f(g, (256,), (w, sink))) for w in weights * 4]
        out[f"u{u}"] = _graph_ms_per_call(cp, calls)
    return out


def _gemv(cp: Any, gpu: Any, copy_gbps: float, size: int, batches: list[int]) -> dict[str, Any]:
    import torch

    from proxcompress import kernels as K

    n = k = size
    rng = cp.random.RandomState(1)
    l2 = int(cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["l2CacheSize"])
    copies = max(2, -(-4 * l2 // (n * k // 8)))  # rotate over > 4x L2 of packed weights
    weights = [K.pack_signs(rng.standard_normal((n, k), dtype=cp.float32)) for _ in range(copies)]
    half = [torch.randn(n, k, device="cuda", dtype=torch.float16) for _ in range(2)]
    noop = cp.RawKernel('extern "C" __global__ void noop(int* p) {}', "noop")
    sink = cp.empty(1, cp.int32)
    empty = [(lambda: noop((256,), (256,), (sink,))) for _ in range(4 * copies)]
    floors = _read_floor(cp, weights)
    floor = min(floors.values())
    return {
        "shapes": {"N": n, "K": k},
        "empty_kernel_graph_ms": _graph_ms_per_call(cp, empty),
        "read_weights_graph_ms": floors,
        "read_weights_gbytes_per_s": round(n * k / 8 / floor / 1e6, 1),
        "weight_copies": copies,
        "fp16_weight_copies": len(half),
        "batches": {
            str(b): _gemv_batch(cp, gpu, weights, half, b, copy_gbps, floor) for b in batches
        },
        "target_speedup_vs_fp16_at_least": 8.0,
    }


def _float_kernels(cp: Any, size: int) -> dict[str, Any]:
    import torch

    from proxcompress import kernels as K

    m = n = k = size
    rng = cp.random.RandomState(2)
    x = rng.standard_normal((m, k), dtype=cp.float32)
    w = rng.standard_normal((n, k), dtype=cp.float32)
    sign = cp.where(w < 0, -1, 1).astype(cp.int8)
    exponent = rng.randint(-7, 1, size=(n, k)).astype(cp.int8)
    torch.backends.cuda.matmul.allow_tf32 = False
    tx, tw = torch.as_tensor(x, device="cuda"), torch.as_tensor(w, device="cuda")
    base = _torch_events_ms(torch, lambda: torch.matmul(tx, tw.T), reps=10)
    shift = _events_ms(cp, lambda: K.shift_matmul(x, sign, exponent), reps=10)
    euclid = _events_ms(cp, lambda: K.euclid_matmul(x, w), reps=10)
    return {
        "shapes": {"M": m, "N": n, "K": k},
        "cublas_fp32_no_tf32_ms": base,
        "shift_ms": shift,
        "euclid_ms": euclid,
        "shift_time_over_fp32": round(shift / base, 3),
        "euclid_time_over_fp32": round(euclid / base, 3),
    }


def bench_gpu(size: int, gemv_batches: list[int], float_size: int) -> dict[str, Any]:
    import cupy as cp

    from proxcompress.kernels import gpu

    result: dict[str, Any] = {"benchmark": "kernels-gpu", "device": _gpu_device(cp)}
    sections: list[tuple[str, Callable[[], Any]]] = [
        ("copy_bandwidth", lambda: _copy_bandwidth(cp)),
        ("mma_peak", lambda: _mma_peak(cp, gpu, result["device"]["sms"])),
        ("binary_gemm", lambda: _gemm(cp, gpu, result["mma_peak"], size)),
        (
            "binary_gemv",
            lambda: _gemv(cp, gpu, result["copy_bandwidth"]["gbytes_per_s"], size, gemv_batches),
        ),
        ("shift_euclid", lambda: _float_kernels(cp, float_size)),
    ]
    for name, run in sections:
        t0 = time.perf_counter()
        try:
            result[name] = run()
        except Exception:  # one failed section must not lose the others' numbers
            result[name] = {"error": traceback.format_exc(limit=8)}
        result.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t0, 1)
        print(f"[{name}] {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
        cp.get_default_memory_pool().free_all_blocks()
    return result


#: exported-model cases: the architectures of the result tables' configs (configs/results/
#: mlp-bnn-act, cnn-bnn-act, cnn-denseshift, cnn-adder, vit-binaryvit), untrained weights with
#: calibrated BatchNorm
MODEL_CASES = ("mlp-binary", "cnn-binary", "cnn-denseshift", "cnn-adder", "vit-binary")
#: cases built from a committed results config, through the trainer's own model builder
CONFIG_CASES = {"vit-binary": ROOT / "configs" / "results" / "vit-binaryvit.yaml"}


def _config_case(path: Path) -> Any:
    """The run model of a results config (``trainer.build_run_model``: the model and recipe
    a training run of that config builds, so the case cannot drift from the table), seed 0."""
    from proxcompress.training.config import load_config
    from proxcompress.training.trainer import build_run_model, run_classes

    cfg = load_config(path)
    return build_run_model(cfg, run_classes(cfg), seed=0)


def _model_case(name: str) -> Any:
    from proxcompress.training.euclid import HomotopySchedule
    from proxcompress.training.models import build_model, calibrate_batchnorm
    from proxcompress.training.mulfree import MulFreeRecipe, mulfree_model
    from proxcompress.training.quantize import QuantRecipe, quantize_model

    if name in CONFIG_CASES:
        model = _config_case(CONFIG_CASES[name])
    elif name == "mlp-binary":
        model = build_model("mlp", hidden=(512, 512), activation="hardtanh", seed=0)
        model = quantize_model(model, QuantRecipe("bnn", "bnn", keep_first=False))
    elif name == "cnn-binary":
        model = build_model("vgg", width=16, stages=(1, 1, 1), activation="hardtanh", seed=0)
        model = quantize_model(model, QuantRecipe("bnn", "bnn"))
    else:
        model = build_model("vgg", width=16, stages=(1, 1, 1), activation="relu", seed=0)
        method = name.split("-")[1]  # distance layers at theta = 1, as after training
        recipe = MulFreeRecipe(method, homotopy=HomotopySchedule("step"))
        model = mulfree_model(model, recipe, seed=0)
    return calibrate_batchnorm(model, (1, 28, 28), samples=256)


def _test_set_agreement(model: Any, loaded: Any) -> dict[str, Any]:
    """Predictions of the exported model (kernels) and of torch eval on the whole Fashion-MNIST
    test set (10,000 images, batches of 1000): the export check's criterion. With its logits'
    closeness as the deploy check reports it (``close_logits``: the share of images whose
    logits lie within ``LOGIT_TOLERANCE`` of the batch's largest torch logit; with binary
    activations a pre-activation within float rounding of zero can flip a sign, a step in that
    image's logits, which this share counts and nothing hides)."""
    import torch

    from proxcompress.training.data import load_fashion_mnist
    from proxcompress.training.deployment import LOGIT_TOLERANCE, logit_error
    from proxcompress.training.layers import hard_quantization

    try:
        _, test = load_fashion_mnist()
    except FileNotFoundError as exc:
        return {"skipped": str(exc)}
    equal = close = 0
    worst = 0.0
    for i in range(0, test.x.shape[0], 1000):
        xb = test.x[i:i + 1000]
        with torch.no_grad(), hard_quantization(model):
            want = model(xb).numpy()
        got = loaded(np.ascontiguousarray(xb.numpy()))
        equal += int((got.argmax(1) == want.argmax(1)).sum())
        error = logit_error(want, got)
        close += int((error <= LOGIT_TOLERANCE).sum())
        worst = max(worst, float(error.max()))
    n = int(test.x.shape[0])
    return {"samples": n, "equal_predictions": equal, "fraction_equal": round(equal / n, 6),
            "close_logits": round(close / n, 6), "logit_tolerance": LOGIT_TOLERANCE,
            "max_relative_logit_error": worst}


INPUTS = ("images", "randn")


def _model_input(kind: str, batch: int) -> tuple[Any, str]:
    """The timed batch: the first ``batch`` Fashion-MNIST test images (``images``, repeated
    past 10,000; what these models classify, 8-bit pixels on the data pipeline's grid) or
    standard normal noise (``randn``, off any grid: every layer takes its float path); with a
    description for the JSON. ``images`` falls back to noise where the dataset is missing."""
    import torch

    if kind == "images":
        from proxcompress.training.data import load_fashion_mnist

        try:
            _, test = load_fashion_mnist()
        except FileNotFoundError:
            kind = "randn (Fashion-MNIST not installed)"
        else:
            idx = torch.arange(batch) % test.x.shape[0]
            return test.x[idx].contiguous(), f"Fashion-MNIST test images [0, {batch})"
    return torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(1)), kind


def _first_layer_stats(loaded: Any) -> dict[str, Any] | None:
    """The certified first layer's counts on the last call (``kernels.first_layer``): entries,
    those the second int8 level and the float64 recomputation decided; ``None`` if no step
    has that path."""
    for _, _, fn in loaded.steps:
        layer = getattr(fn, "layer", None)
        if layer is not None:
            return dict(layer.last)
    return None


def bench_models(batch: int, rounds: int, threads: int | None,
                 names: tuple[str, ...] = MODEL_CASES, inputs: str = "images") -> dict[str, Any]:
    """Exported models on the kernels (``kernels.load``, numba) against the same model in torch
    eval mode, one batch of Fashion-MNIST-sized inputs (:func:`_model_input`), round-robin with
    pauses. Every case is exported with Fashion-MNIST's ``input_grid``."""
    import tempfile

    import numba
    import torch

    from proxcompress.kernels import load
    from proxcompress.training.data import FMNIST_GRID
    from proxcompress.training.exporter import export
    from proxcompress.training.layers import hard_quantization

    if threads is not None:
        numba.set_num_threads(threads)
        torch.set_num_threads(threads)
    x, described = _model_input(inputs, batch)
    xn = np.ascontiguousarray(x.numpy())
    cases: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            model = _model_case(name)
            export(model, f"{folder}/{name}", example=x[:16], input_grid=FMNIST_GRID)
            loaded = load(f"{folder}/{name}", backend="numba")

            def torch_forward(model: Any = model) -> None:
                with torch.no_grad(), hard_quantization(model):
                    model(x)

            timings = round_robin(
                {"torch_eval": torch_forward, "kernels": lambda m=loaded: m(xn)}, rounds
            )
            cases[name] = {
                "packed_nodes": sorted(loaded.packed),
                "test_set": _test_set_agreement(model, loaded),
                "torch_eval_ms": timings["torch_eval"],
                "kernels_ms": timings["kernels"],
                "speedup_vs_torch": round(
                    timings["torch_eval"]["median_ms"] / timings["kernels"]["median_ms"], 3
                ),
                "ops": sorted({node["op"] for node in loaded.manifest["nodes"]}),
            }
            stats = _first_layer_stats(loaded)
            if stats is not None:
                loaded(xn)
                cases[name]["first_layer_certified"] = _first_layer_stats(loaded)
    return {
        "benchmark": "kernels-models",
        "device": _cpu_device(),
        "batch": batch,
        "input": described,
        "rounds": rounds,
        "turn": f"{PAUSE_S} s pause, 1 untimed call, {REPEATS} timed calls",
        "env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "MALLOC_MMAP_THRESHOLD_",
                                                 "MALLOC_TRIM_THRESHOLD_")},
        "cases": cases,
    }


def _summary(result: dict[str, Any]) -> str:
    lines = [f"device: {json.dumps(result.get('device'))}"]
    if result["benchmark"] == "kernels-models":
        for name, c in result["cases"].items():
            lines.append(
                f"{name:16s} torch {c['torch_eval_ms']['median_ms']:8.2f} ms  kernels"
                f" {c['kernels_ms']['median_ms']:8.2f} ms  x{c['speedup_vs_torch']:.2f}"
                f"  test-set equal {c['test_set'].get('fraction_equal')}"
            )
        return "\n".join(lines)
    if result["benchmark"] == "kernels-paths":
        for name, r in result["runs"].items():
            if "timings" not in r:
                lines.append(f"{name:18s} {next(iter(r.values()))[:200]}")
                continue
            lines.append(
                f"{name:18s} {r['device']['binary_path']['name']:17s} binary"
                f" {r['timings']['binary_matmul']['median_ms']:8.2f} ms  torch"
                f" {r['timings']['torch_fp32_matmul']['median_ms']:8.2f} ms"
                f"  x{r['speedup_vs_torch_fp32']:.2f}  roofline"
                f" {r['fraction_of_popcount_roofline']:.2f}"
            )
        return "\n".join(lines)
    if result["benchmark"] == "kernels-binary":
        return f"binary x{result['speedup_vs_torch_fp32']} torch, {json.dumps(result['device'])}"
    if result["benchmark"] == "kernels-cpu":
        for name, t in result["timings"].items():
            lines.append(
                f"{name:26s} {t['median_ms']:10.2f} ms  x{t['speedup_vs_torch_fp32']:.2f}"
                f" vs torch  x{t['speedup_vs_numpy_fp32']:.2f} vs numpy"
            )
        return "\n".join(lines)
    for key in ("copy_bandwidth", "mma_peak", "binary_gemm", "binary_gemv", "shift_euclid"):
        lines.append(f"{key}: {json.dumps(result.get(key))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["cpu", "gpu", "models", "paths", "binary"])
    parser.add_argument(
        "--size", type=int, default=None, help="M = N = K (default 2048 on CPU, 8192 on GPU)"
    )
    parser.add_argument("--rounds", type=int, default=7, help="CPU rounds (round-robin)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for numba/torch")
    parser.add_argument("--gemv-batches", default="1,2,4,8,16")
    parser.add_argument("--batch", type=int, default=256, help="models: inputs per call")
    parser.add_argument("--cases", default=",".join(MODEL_CASES),
                        help="models: the cases to run, comma-separated "
                        f"({', '.join(MODEL_CASES)})")
    parser.add_argument("--input", choices=INPUTS, default="images",
                        help="models: the timed batch (Fashion-MNIST test images, or noise)")
    parser.add_argument("--paths", default=None,
                        help="paths: the inner loops to run, comma-separated (default all: "
                        "native and every kernels.simd path)")
    parser.add_argument("--float-size", type=int, default=4096, help="GPU shift/Euclid size")
    parser.add_argument("--out", default=None, help="also write the JSON here (atomically)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        import numba

        most = numba.config.NUMBA_NUM_THREADS  # NUMBA_NUM_THREADS or the usable cores
        if not 1 <= args.threads <= most:
            parser.error(f"--threads: {args.threads} is outside [1, {most}] (the threads numba "
                         "may start here; NUMBA_NUM_THREADS raises the limit)")
    cases = tuple(c for c in args.cases.split(",") if c)
    unknown = sorted(set(cases) - set(MODEL_CASES))
    if unknown or not cases:
        parser.error(f"--cases: {', '.join(unknown) or 'none given'}; accepted: "
                     f"{', '.join(MODEL_CASES)}")
    paths = None if args.paths is None else [p for p in args.paths.split(",") if p]
    if paths is not None and (not paths or set(paths) - set(path_names())):
        parser.error(f"--paths: {', '.join(sorted(set(paths) - set(path_names()))) or 'none given'}"
                     f"; accepted: {', '.join(path_names())}")
    if args.mode == "cpu":
        result = bench_cpu(args.size or 2048, args.rounds, args.threads)
    elif args.mode == "paths":
        result = bench_paths(args.size or 2048, args.rounds, args.threads, paths)
    elif args.mode == "binary":
        result = bench_binary(args.size or 2048, args.rounds, args.threads)
    elif args.mode == "models":
        result = bench_models(args.batch, args.rounds, args.threads, cases, args.input)
    else:
        batches = [int(b) for b in args.gemv_batches.split(",")]
        result = bench_gpu(args.size or 8192, batches, args.float_size)
    result["argv"] = sys.argv[1:]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        write_json_atomic(args.out, result)
    print(_summary(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    from proxcompress.cli import quiet_on_closed_pipe

    raise SystemExit(quiet_on_closed_pipe(main))
