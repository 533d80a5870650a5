"""Stage ``kernels``: the CPU kernels checked against exact references on odd shapes, then
``benchmarks/kernels.py cpu`` (binary, shift and Euclid GEMMs against float32 torch and NumPy,
measured in the same run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np

from proxcompress.reproduce.plots import figure, save
from proxcompress.reproduce.stage import Context, Outcome, Plot, Table

EPS32 = float(np.finfo(np.float32).eps)
#: shapes (M, N, K) of the correctness checks: odd sizes, K across word boundaries
SHAPES = ((7, 5, 63), (33, 17, 130), (64, 96, 1000))

#: kernels of the benchmark's JSON shown in the report, with a reader's name
TIMED = {
    "torch_fp32_matmul": "torch float32 matmul (baseline)",
    "numpy_fp32_matmul": "NumPy float32 matmul (OpenBLAS)",
    "binary_matmul": "binary XNOR-popcount GEMM (packed signs -> int32)",
    "pack_signs_activations": "packing the activations' signs",
    "shift_matmul": "shift GEMM (float32 x, int8 sign / exponent)",
    "euclid_matmul_expand": "Euclid GEMM, expanded form",
    "euclid_matmul_direct": "Euclid GEMM, direct form",
}


def _correctness(backend: str) -> dict[str, Any]:
    """Largest error of each kernel on :data:`SHAPES` relative to its worst-case float32 bound
    (<= 1 means within the bound; binary must be exact)."""
    from proxcompress import kernels as K

    rng = np.random.default_rng(0)
    binary_exact, shift_ratio, euclid_ratio = True, 0.0, 0.0
    for m, n, k in SHAPES:
        x = rng.standard_normal((m, k)).astype(np.float32)
        w = rng.standard_normal((n, k)).astype(np.float32)
        signs = np.where(x < 0, -1.0, 1.0) @ np.where(w < 0, -1.0, 1.0).T
        got = K.binary_matmul(K.pack_signs(x), K.pack_signs(w), k, backend=backend)
        binary_exact &= bool(np.array_equal(np.asarray(got, dtype=np.float64), signs))
        sign = np.where(w < 0, -1, 1).astype(np.int8)
        exponent = rng.integers(-7, 1, (n, k)).astype(np.int8)
        weights = sign.astype(np.float64) * np.exp2(exponent.astype(np.float64))
        ref = x.astype(np.float64) @ weights.T
        bound = 2 * k * EPS32 * (np.abs(x.astype(np.float64)) @ np.abs(weights).T) + 1e-37
        out = np.asarray(K.shift_matmul(x, sign, exponent, backend=backend), dtype=np.float64)
        shift_ratio = max(shift_ratio, float((np.abs(out - ref) / bound).max()))
        x64, w64 = x.astype(np.float64), w.astype(np.float64)
        ref = -((x64[:, None, :] - w64[None, :, :]) ** 2).sum(-1)
        bound = 2 * k * EPS32 * ((x64**2).sum(1)[:, None] + (w64**2).sum(1)[None, :]) + 1e-37
        out = np.asarray(K.euclid_matmul(x, w, backend=backend), dtype=np.float64)
        euclid_ratio = max(euclid_ratio, float((np.abs(out - ref) / bound).max()))
    return {"backend": backend, "shapes": [list(s) for s in SHAPES],
            "binary_exact": binary_exact, "shift_error_over_bound": shift_ratio,
            "euclid_error_over_bound": euclid_ratio}


def run(ctx: Context) -> Outcome:
    """Check the kernels, then run the CPU benchmark script at the budget's size."""
    from proxcompress.atomic import write_json_atomic
    from proxcompress.reproduce.machine import checkout

    ctx.progress.total(2)
    checks = _correctness("numba")
    write_json_atomic(ctx.folder / "correctness.json", checks)
    ctx.log(f"correctness: {checks}")
    ctx.progress.advance()
    root = checkout()
    if root is None:
        raise FileNotFoundError("benchmarks/kernels.py: the benchmark scripts come with the "
                                "repository checkout, not with an installed wheel")
    out = ctx.folder / "kernels.json"
    threads = str(ctx.threads)
    command = [sys.executable, str(root / "benchmarks" / "kernels.py"), "cpu",
               "--size", str(ctx.budget["size"]), "--rounds", str(ctx.budget["rounds"]),
               "--threads", threads, "--out", str(out)]
    ctx.log("running " + " ".join(command))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads,
           "NUMBA_NUM_THREADS": threads}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                          check=False)
    ctx.log(done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"benchmarks/kernels.py exited {done.returncode}: "
                           f"{done.stderr.strip().splitlines()[-1:]}")
    ctx.progress.advance()
    bench = json.loads(out.read_text(encoding="utf-8"))
    timings = bench["timings"]
    figures = {
        "correctness": checks,
        "size": bench["shapes"]["M"],
        "threads": ctx.threads,
        "device": bench["device"],
        "median_ms": {k: v["median_ms"] for k, v in timings.items()},
        "speedup_vs_torch_fp32": {k: v["speedup_vs_torch_fp32"] for k, v in timings.items()},
        "binary_gops_per_s": bench["ops"]["binary_gops_per_s"],
    }
    size = figures["size"]
    correctness = Table(
        "Kernels against exact references (numba backend)",
        ["kernel", "shapes (M, N, K)", "result"],
        [["binary GEMM", "; ".join(map(str, SHAPES)),
          "exact" if checks["binary_exact"] else "DIFFERS from sign(x) @ sign(w).T"],
         ["shift GEMM", "", f"largest error = {checks['shift_error_over_bound']:.3g} x the "
          "worst-case float32 bound (<= 1 passes)"],
         ["Euclid GEMM", "", f"largest error = {checks['euclid_error_over_bound']:.3g} x the "
          "worst-case float32 bound (<= 1 passes)"]],
        note="References in float64: sign(x) @ sign(w).T, x @ (sign 2^e).T, "
        "-sum_k (x_k - w_k)^2. Bound: 2 K eps32 times the sum of the magnitudes involved.")
    speed = Table(
        f"CPU GEMM {size} x {size} x {size}, {ctx.threads} thread(s), "
        f"{bench['rounds']} rounds",
        ["kernel", "median (ms)", "fastest (ms)", "speed-up over torch float32"],
        [[TIMED.get(k, k), v["median_ms"], v["min_ms"], v["speedup_vs_torch_fp32"]]
         for k, v in timings.items()],
        note=f"benchmarks/kernels.py cpu on {bench['device']['model']} "
        f"({bench['device']['llvm_cpu']}); {bench['turn']}, round-robin across kernels so "
        "that other load hits them alike. Raw JSON: kernels.json.")
    return Outcome(figures, [correctness, speed], [_plot(ctx, timings, size)])


def _plot(ctx: Context, timings: dict[str, Any], size: int) -> Plot:
    fig, (ax,) = figure(1, 1, width=7.5, height=3.6)
    keys = list(timings)
    values = [timings[k]["median_ms"] for k in keys]
    colours = ["grey" if "fp32" in k else "C0" for k in keys]
    bars = ax.barh(range(len(keys)), values, color=colours)
    ax.bar_label(bars, [f"{timings[k]['speedup_vs_torch_fp32']:.3g}x" for k in keys],
                 fontsize=8, padding=2)
    ax.set_yticks(range(len(keys)), [k.replace("_", " ") for k in keys], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median time per call (ms, log scale)")
    ax.set_title(f"{size}^3 GEMMs on the CPU; labels: speed-up over torch float32")
    ax.grid(alpha=0.3, axis="x")
    return Plot(save(fig, ctx.folder / "kernels.png").name,
                "Median time of each kernel (grey: the float32 baselines measured in the same "
                "run); the label is the speed-up over torch float32.")
