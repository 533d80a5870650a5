"""One training step with binary layers vs the same step in full precision.

A step is forward + cross-entropy + backward + optimizer step (+ the ProxConnect wrapper's
``mu`` update and latent clipping for the binary model), on one batch, for the models of the
results tables: the MLP and the CNN. Multiplication-free methods (``deepshift``, ``denseshift``,
``s3``, ``euclid``, ``adder``; ``--mulfree``) are timed the same way with their per-step hooks
(S3's regularizer, the homotopy ``theta``, here at 1: the pure distance layers). The
full-precision baseline is the same architecture with
``nn.Linear`` / ``nn.Conv2d`` (torch's BLAS / oneDNN kernels), measured in the same process,
interleaved, with the same thread count. Binary methods are stepped twice more, interleaved
with it: with the fused quantizer ops (``training/fused.py``, the default; ``binary_step_ms``,
``ratio``) and with the reference ops they replace (``reference_step_ms``, ``reference_ratio``):
before and after in the same run. Reports the median of ``--repeats`` timed steps after
``--warmup`` untimed ones, and the ratio binary / full precision (target: at most 1.3, issue 17
part 4), for each thread count of ``--threads``; the CPU (``lscpu``: model, vector flags) and the
load average at the start and the end of each row. With one thread it also reports the median
CPU time of the steps (``*_cpu_ms``, ``cpu_ratio``): on a shared machine the wall time counts the
time other processes hold the core, the thread's CPU time does not.

    python benchmarks/training_step.py [--threads 1,2] [--batch 128] [--json OUT.json]
    python benchmarks/training_step.py --cases cnn --mulfree deepshift,denseshift,s3,euclid,adder
    python benchmarks/training_step.py --cases cnn --layout-ab   # channels-last vs NCHW CNN

``--layout-ab`` times the CNN rows' full-precision and binary steps a second time with the
activations in NCHW (``VGGSmall.channels_last`` off), interleaved with the rest
(``*_nchw_step_ms``, ``*_layout_speedup``: NCHW / channels-last; ``*_layout_cpu_speedup``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as functional

from proxcompress.reproduce.machine import describe, simd_flags
from proxcompress.training.euclid import set_theta
from proxcompress.training.fused import quant_ops
from proxcompress.training.models import build_model
from proxcompress.training.mulfree import MulFreeRecipe, MulFreeTraining
from proxcompress.training.optim import ProxConnectOptimizer
from proxcompress.training.quantize import QuantRecipe, model_summary, quantize_model

#: issue 17 part 4: every method's step at most this times the full-precision step
TARGET = 1.3
#: multiplication-free methods with a fused pass (the others have no reference path to time)
FUSED_MULFREE = ("deepshift",)
MULFREE = ("deepshift", "denseshift", "s3", "euclid", "adder")
CASES: dict[str, dict[str, Any]] = {
    "mlp": {"name": "mlp", "hidden": (512, 512)},
    "mlp-1024": {"name": "mlp", "hidden": (1024, 1024)},
    "cnn": {"name": "vgg", "width": 16, "stages": (1, 1, 1)},
}


def _step_fn(case: dict[str, Any], recipe: QuantRecipe | MulFreeRecipe | None, batch: int,
             seed: int, mode: str = "fused") -> Any:
    kwargs = {k: v for k, v in case.items() if k != "name"}
    model = build_model(case["name"], seed=seed, **kwargs)
    if recipe is not None:
        quantize_model(model, recipe)
    inner = torch.optim.Adam(model.parameters(), lr=1e-3)
    opt: Any = ProxConnectOptimizer(inner, model) if isinstance(recipe, QuantRecipe) else inner
    hooks = None
    if isinstance(recipe, MulFreeRecipe):
        hooks = MulFreeTraining(model, recipe, total_steps=1)
        set_theta(model, 1.0)  # pure distance layers (the homotopy's end)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, 1, 28, 28), generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)

    def step() -> tuple[float, float]:
        with quant_ops(mode):
            c0 = time.thread_time()
            wall = timed()
            return wall, time.thread_time() - c0

    def timed() -> float:
        t0 = time.perf_counter()
        loss = functional.cross_entropy(model(x), y)
        if hooks is not None:
            extra = hooks.regularizer()
            if extra is not None:
                loss = loss + extra
        opt.zero_grad()
        loss.backward()
        opt.step()
        if hooks is not None:
            hooks.after_step(1)
        return time.perf_counter() - t0

    return model, step


def measure(case_name: str, weights: str, activations: str | None, batch: int, warmup: int,
            repeats: int, threads: int = 1, layout_ab: bool = False) -> dict[str, Any]:
    # set again for every row: the AdderNet gradient kernels run numba's OpenMP layer, which
    # can change the thread count of torch's (same) OpenMP runtime
    torch.set_num_threads(threads)
    case = CASES[case_name]
    recipe: QuantRecipe | MulFreeRecipe
    if weights in MULFREE:
        recipe = MulFreeRecipe(weights, keep_first=case["name"] != "mlp")
    else:
        recipe = QuantRecipe(weights, activations, keep_first=case["name"] != "mlp",
                             beta=2.0 if weights == "bnn++" else 5.0)
    load_start = os.getloadavg()[0]
    fp_model, fp_step = _step_fn(case, None, batch, 0)
    bin_model, bin_step = _step_fn(case, recipe, batch, 0)
    steps = {"fp": fp_step, "binary": bin_step}
    if isinstance(recipe, QuantRecipe) or weights in FUSED_MULFREE:
        steps["reference"] = _step_fn(case, recipe, batch, 0, mode="reference")[1]
    if layout_ab and case["name"] == "vgg":  # the CNN with NCHW activations (before)
        for key, rec in (("fp_nchw", None), ("binary_nchw", recipe)):
            model, fn = _step_fn(case, rec, batch, 0)
            model.channels_last = False
            steps[key] = fn
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    cpu: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):  # interleaved: all see the same machine load
        for k, fn in steps.items():
            wall, used = fn()
            times[k].append(wall)
            cpu[k].append(used)
    fp_times, bin_times = times["fp"], times["binary"]
    fp = statistics.median(fp_times)
    binary = statistics.median(bin_times)
    summary = model_summary(bin_model, (1, 28, 28))
    extra: dict[str, Any] = {}
    if "reference" in times:
        ref = statistics.median(times["reference"])
        extra = {"reference_step_ms": 1000 * ref, "reference_ratio": ref / fp,
                 "reference_step_ms_iqr": [1000 * q for q in
                                           statistics.quantiles(times["reference"], n=4)[::2]]}
    for key in ("fp", "binary"):
        if f"{key}_nchw" in times:
            nchw = statistics.median(times[f"{key}_nchw"])
            extra[f"{key}_nchw_step_ms"] = 1000 * nchw
            extra[f"{key}_layout_speedup"] = nchw / statistics.median(times[key])
    if torch.get_num_threads() == 1:
        # one thread: the step runs on this thread, and its CPU time does not count the time
        # other processes of a loaded machine hold the core (memory contention still does)
        med = {k: statistics.median(v) for k, v in cpu.items()}
        extra.update({f"{k}_cpu_ms": 1000 * v for k, v in med.items()})
        extra["cpu_ratio"] = med["binary"] / med["fp"]
        for key in ("fp", "binary"):
            if f"{key}_nchw" in med:
                extra[f"{key}_layout_cpu_speedup"] = med[f"{key}_nchw"] / med[key]
        if "reference" in med:
            extra["reference_cpu_ratio"] = med["reference"] / med["fp"]
    return {
        "case": case_name,
        "model": case,
        "weights": weights,
        "activations": activations,
        "batch": batch,
        "parameters": summary.parameters,
        "binary_parameters": summary.binary_parameters,
        "fp_step_ms": 1000 * fp,
        "binary_step_ms": 1000 * binary,
        "ratio": binary / fp,
        "fp_step_ms_iqr": [1000 * q for q in statistics.quantiles(fp_times, n=4)[::2]],
        "binary_step_ms_iqr": [1000 * q for q in statistics.quantiles(bin_times, n=4)[::2]],
        **extra,
        "threads": torch.get_num_threads(),
        "load_average": [load_start, os.getloadavg()[0]],
    }


def _rows(args: argparse.Namespace, n_threads: int) -> list[dict[str, Any]]:
    """The binary rows of every case, then the multiplication-free ones (AdderNet's numba
    kernels leave OpenMP threads behind: they run last)."""
    rows = []
    for case in args.cases.split(","):
        for method in filter(None, args.methods.split(",")):
            for act in args.activations.split(","):
                row = measure(case, method, None if act == "none" else act, args.batch,
                              args.warmup, args.repeats, n_threads, args.layout_ab)
                rows.append(row)
                cpu = (f"; CPU time {row['cpu_ratio']:.2f} (reference "
                       f"{row['reference_cpu_ratio']:.2f})" if "cpu_ratio" in row else "")
                print(f"t={n_threads} {case:<9} {method:<14} a={act:<5} "
                      f"fp {row['fp_step_ms']:7.2f} ms  binary {row['binary_step_ms']:7.2f} ms "
                      f"ratio {row['ratio']:.2f} (reference {row['reference_ratio']:.2f}){cpu}",
                      flush=True)
    for case in args.cases.split(","):
        for method in filter(None, args.mulfree.split(",")):
            row = measure(case, method, None, args.batch, args.warmup, args.repeats, n_threads,
                          args.layout_ab)
            rows.append(row)
            cpu = f"; CPU time {row['cpu_ratio']:.2f}" if "cpu_ratio" in row else ""
            ref = (f" (reference {row['reference_ratio']:.2f})" if "reference_ratio" in row
                   else "")
            print(f"t={n_threads} {case:<9} {method:<14} fp {row['fp_step_ms']:7.2f} ms  "
                  f"{method} {row['binary_step_ms']:7.2f} ms  ratio {row['ratio']:.2f}{ref}{cpu}",
                  flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1",
                        help="torch thread counts, comma-separated (e.g. 1,2)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--cases", default="mlp,mlp-1024,cnn")
    parser.add_argument("--methods", default="binaryconnect,bnn,bnn+,proxconnect,bnn++")
    parser.add_argument("--activations", default="none,bnn",
                        help="activation pairs to combine with each method (none: fp)")
    parser.add_argument("--mulfree", default="",
                        help="multiplication-free methods to time too (comma-separated: "
                        f"{', '.join(MULFREE)}; their default bits)")
    parser.add_argument("--split-passes", action="store_true",
                        help="split the SignSwish pass over torch's threads (A/B; the default "
                        "runs it on the calling thread)")
    parser.add_argument("--layout-ab", action="store_true",
                        help="CNN rows: also time the full-precision and binary steps with the "
                        "CNN's activations in NCHW (VGGSmall.channels_last off; interleaved)")
    parser.add_argument("--json", metavar="OUT.json")
    args = parser.parse_args(argv)
    if args.split_passes:
        from proxcompress.kernels import trainstep

        trainstep.SPLIT_PASSES = True
    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        parser.error(f"--threads = {args.threads!r}: positive integers, comma-separated")
    rows = []
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        rows.extend(_rows(args, n_threads))
    machine = describe()
    result = {
        "benchmark": "training_step",
        "device": f"cpu ({machine['cpu_model']}), {args.threads} torch thread(s)",
        "cpu_model": machine["cpu_model"],
        "simd_flags": simd_flags(),
        "machine": machine,
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "batch": args.batch,
        "input_shape": [1, 28, 28],
        "baseline": "same architecture in full precision (nn.Linear/nn.Conv2d), Adam, "
                    "interleaved in the same process; reference_*: the binary step with the "
                    "reference (unfused) quantizer ops, interleaved too",
        "target_ratio": TARGET,
        "signswish_pass_split": args.split_passes,
        "layout_ab": args.layout_ab,
        "max_ratio": max((r["ratio"] for r in rows if r["weights"] not in MULFREE),
                         default=None),
        "rows": rows,
    }
    if args.json:
        from proxcompress.atomic import write_json_atomic

        write_json_atomic(args.json, result)
    print(json.dumps({"max_ratio": result["max_ratio"], "target_ratio": TARGET,
                      **{r["weights"]: round(r["ratio"], 3) for r in rows
                         if r["weights"] in MULFREE}}))
    return 0


if __name__ == "__main__":
    from proxcompress.cli import quiet_on_closed_pipe

    raise SystemExit(quiet_on_closed_pipe(main))
