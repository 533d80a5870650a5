"""Forward time of tensor-train linear layers against the dense ``nn.Linear`` (same run).

For one layer shape (default 1024 -> 4096, the issue's), every case is timed at each batch size
on its contracted path (input contracted with the cores in the FLOP-optimal order, no dense
weight) and on its rebuilt-dense path (``to_dense()`` every call, then ``F.linear``), beside the
dense ``nn.Linear`` baseline and TensorLy-Torch's block-TT ``FactorizedLinear`` (optional
``bench`` extra) at the same modes, ``implementation="factorized"`` and ``"reconstructed"``.
Rounds are interleaved (every case once per round, in turn) and the median of ``--repeats``
rounds after ``--warmup`` is reported, with the FLOP count of the chosen contraction order and
the parameters. Run it on a quiet machine (both cores free).

    python benchmarks/tensor_train.py [--in 1024 --out 4096] [--batches 1,64] [--repeats 40]
                                      [--threads N] [--json OUT.json] [--no-tltorch]
    python benchmarks/tensor_train.py --lstm 256,256 [--compression 10] ...

``--lstm E,H`` times one LSTM step (one token for each of ``B`` sequences: what generation
costs per token) of a dense ``nn.LSTM`` and of ``TTLSTM`` s at ``--compression`` (MPS
interleaved and blocked, MPO, low-rank; ranks chosen for the budget), each on its contracted
path and on the rebuilt-dense path (``to_lstm()``: the rebuilt weights in PyTorch's fused LSTM;
the rebuild itself is timed apart): :func:`lstm_step_times`.

Target (issue 20): a TT layer holding at most 5% of the dense parameters runs its contracted
forward at least 2x faster than ``nn.Linear`` at batch 1 and 64.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as functional

from proxcompress.atomic import write_json_atomic
from proxcompress.training.tensor_train import (
    TTLSTM,
    MPOLinear,
    MPSLinear,
    TTLinear,
    TTSpec,
    low_rank_linear,
    spec_for_budget,
)

#: (label, constructor of a (in, out) -> TTLinear); 4 modes per dimension
CASES: list[tuple[str, Callable[[int, int], TTLinear]]] = [
    *[(f"mpo r={r}", lambda n, m, r=r: MPOLinear(n, m, r, num_modes=4)) for r in (4, 8, 16, 32)],
    *[(f"mps-interleaved r={r}",
       lambda n, m, r=r: MPSLinear(n, m, r, num_modes=4, layout="interleaved"))
      for r in (8, 16, 32, 64)],
    *[(f"mps-blocked r={r}",
       lambda n, m, r=r: MPSLinear(n, m, r, num_modes=4, layout="blocked"))
      for r in (16, 32, 64)],
    *[(f"lowrank r={r}", lambda n, m, r=r: low_rank_linear(n, m, rank=r)) for r in (20, 40)],
]
TARGET_FRACTION = 0.05
TARGET_SPEEDUP = 2.0


def cpu_device() -> dict[str, Any]:
    """The machine as ``lscpu`` describes it, with the torch build and thread count."""
    info: dict[str, Any] = {"kind": "cpu", "machine": platform.machine(),
                            "cores": os.cpu_count(), "torch": torch.__version__,
                            "torch_threads": torch.get_num_threads(),
                            "load_average_at_start": os.getloadavg()[0]}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("Model name", "Vendor ID", "Thread(s) per core", "L3 cache",
                           "Flags"):
            value = value.strip()
            if key.strip() == "Flags":
                value = " ".join(f for f in value.split() if f.startswith(("avx", "fma")))
            info[key.strip().lower().replace(" ", "_").replace("(s)", "s")] = value
    return info


def time_rounds(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int,
                inner: int = 1) -> dict[str, float]:
    """Median wall time (ms) of each function: ``warmup`` + ``repeats`` interleaved rounds,
    each timing ``inner`` back-to-back calls of every function in turn (divided by ``inner``)."""
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(warmup + repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            dt = (time.perf_counter() - t0) / inner
            if i >= warmup:
                samples[name].append(dt)
    return {k: round(1e3 * statistics.median(v), 4) for k, v in samples.items()}


def _tltorch_layers(n: int, m: int, in_modes: tuple[int, ...], out_modes: tuple[int, ...]
                    ) -> dict[str, torch.nn.Module]:
    try:
        import tltorch
    except ImportError:
        return {}
    out = {}
    for impl in ("factorized", "reconstructed"):
        torch.manual_seed(0)
        out[impl] = tltorch.FactorizedLinear(in_modes, out_modes, factorization="blocktt",
                                             rank=TARGET_FRACTION, implementation=impl)
    return out


def run(n: int, m: int, batches: list[int], repeats: int, warmup: int,
        tltorch: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    dense = torch.nn.Linear(n, m)
    dense_params = n * m + m
    layers = {label: make(n, m) for label, make in CASES}
    rows: dict[str, dict[str, Any]] = {"dense": {"parameters": dense_params, "fraction": 1.0}}
    for label, layer in layers.items():
        layer.eval()
        rows[label] = {"form": layer.form, "ranks": list(layer.ranks),
                       "in_modes": list(layer.in_modes), "out_modes": list(layer.out_modes),
                       "parameters": layer.num_parameters(),
                       "fraction": round(layer.num_parameters() / dense_params, 5),
                       "rebuild_flops": layer.rebuild_flops()}
    peers = _tltorch_layers(n, m, layers["mpo r=4"].in_modes, layers["mpo r=4"].out_modes) \
        if tltorch else {}
    for impl, layer in peers.items():
        params = sum(p.numel() for p in layer.parameters())
        rows[f"tltorch-blocktt {impl}"] = {
            "form": "mpo (TensorLy-Torch BlockTT)", "ranks": list(layer.weight.rank[1:-1]),
            "parameters": params, "fraction": round(params / dense_params, 5)}
    per_batch: dict[str, Any] = {}
    with torch.inference_mode():
        for b in batches:
            x = torch.randn(b, n)
            ref = dense(x)
            fns: dict[str, Callable[[], Any]] = {"dense": lambda x=x: dense(x)}
            for label, layer in layers.items():
                got = layer(x)
                assert torch.allclose(got, functional.linear(x, layer.to_dense(), layer.bias),
                                      atol=1e-4, rtol=1e-3), label
                fns[f"{label}|contract"] = lambda x=x, layer=layer: layer(x)
                fns[f"{label}|dense"] = (
                    lambda x=x, layer=layer: functional.linear(x, layer.to_dense(), layer.bias))
                rows[label][f"flops_b{b}"] = layer.flops(b)
                rows[label][f"flops_ratio_b{b}"] = round(layer.flops(b) / layer.dense_flops(b), 4)
            for impl, layer in peers.items():
                assert layer(x).shape == ref.shape
                fns[f"tltorch-blocktt {impl}|forward"] = lambda x=x, layer=layer: layer(x)
            times = time_rounds(fns, repeats, warmup, inner=5 if b == 1 else 1)
            base = times["dense"]
            per_batch[str(b)] = {"dense_ms": base, "dense_flops": 2 * b * n * m}
            for key, ms in times.items():
                if key == "dense":
                    continue
                label, path = key.split("|")
                rows[label][f"{path}_ms_b{b}"] = ms
                rows[label][f"{path}_speedup_b{b}"] = round(base / ms, 3)
    meeting = [label for label, row in rows.items() if label in layers
               and row["fraction"] <= TARGET_FRACTION
               and all(row[f"contract_speedup_b{b}"] >= TARGET_SPEEDUP for b in batches)]
    return {"benchmark": "tensor_train_linear", "device": cpu_device(),
            "shape": {"in_features": n, "out_features": m}, "batches": batches,
            "repeats": repeats, "warmup": warmup, "baseline": "torch.nn.Linear, same run",
            "per_batch": per_batch, "rows": rows,
            "target": {"fraction_at_most": TARGET_FRACTION, "speedup_at_least": TARGET_SPEEDUP,
                       "cases_meeting_it": meeting}}


#: the LSTM forms timed by ``--lstm``: label -> spec
LSTM_FORMS: dict[str, TTSpec] = {
    "mps": TTSpec("mps", layout="interleaved"),
    "mps-blocked": TTSpec("mps", layout="blocked"),
    "mpo": TTSpec("mpo"),
    "lowrank": TTSpec("lowrank"),
}


def lstm_step_times(input_size: int, hidden_size: int, specs: dict[str, TTSpec],
                    batches: list[int], repeats: int = 40, warmup: int = 5,
                    seed: int = 0) -> dict[str, Any]:
    """Per-token time of one LSTM step for each spec (``dense``: ``nn.LSTM``), at each batch
    size: ``{label: {"parameters", "ranks", "flops_b<B>" (contracted, per step),
    "contract_ms_b<B>", "dense_ms_b<B>", "rebuild_ms"}, "dense": {...}}``; times are per step
    of ``B`` tokens (divide by ``B`` for per token), medians of interleaved rounds."""
    torch.manual_seed(seed)
    dense = torch.nn.LSTM(input_size, hidden_size).eval()
    models: dict[str, TTLSTM] = {}
    out: dict[str, Any] = {"dense": {"parameters": sum(p.numel() for p in dense.parameters())}}
    for label, spec in specs.items():
        model = TTLSTM(input_size, hidden_size, ih=spec, hh=spec, path="contract").eval()
        models[label] = model
        rebuilt = model.to_lstm().eval()
        with torch.inference_mode():
            rebuild = time_rounds({"rebuild": lambda m=model: m.to_lstm()}, 10, 2)["rebuild"]
        out[label] = {"form": spec.form, "layout": spec.layout,
                      "ranks": spec.ranks, "parameters": model.num_parameters(),
                      "rebuild_ms": rebuild}
        models[label + "|rebuilt"] = rebuilt  # type: ignore[assignment]
    with torch.inference_mode():
        for b in batches:
            x = torch.randn(1, b, input_size)
            h = (torch.randn(1, b, hidden_size), torch.randn(1, b, hidden_size))
            fns: dict[str, Callable[[], Any]] = {"dense": lambda x=x, h=h: dense(x, h)}
            for label in specs:
                model = models[label]
                want = models[label + "|rebuilt"](x, h)[0]
                assert torch.allclose(model(x, h)[0], want, atol=1e-4), label
                fns[f"{label}|contract"] = lambda x=x, h=h, m=model: m(x, h)
                fns[f"{label}|dense"] = (
                    lambda x=x, h=h, m=models[label + "|rebuilt"]: m(x, h))
                out[label][f"flops_b{b}"] = model.flops_per_step(b)
            times = time_rounds(fns, repeats, warmup, inner=5 if b <= 4 else 1)
            out["dense"][f"dense_ms_b{b}"] = times["dense"]
            out["dense"][f"flops_b{b}"] = 2 * b * 4 * hidden_size * (input_size + hidden_size)
            for key, ms in times.items():
                if key != "dense":
                    label, path = key.split("|")
                    out[label][f"{path}_ms_b{b}"] = ms
    return out


def run_lstm(input_size: int, hidden_size: int, compression: float, batches: list[int],
             repeats: int, warmup: int) -> dict[str, Any]:
    budget = int(TTLSTM.dense_parameters(input_size, hidden_size) / compression)
    specs = {label: spec_for_budget(input_size, hidden_size, spec, budget)[0]
             for label, spec in LSTM_FORMS.items()}
    return {"benchmark": "tensor_train_lstm_step", "device": cpu_device(),
            "shape": {"input_size": input_size, "hidden_size": hidden_size},
            "compression": compression, "batches": batches, "repeats": repeats,
            "baseline": "torch.nn.LSTM (fused), same run",
            "rows": lstm_step_times(input_size, hidden_size, specs, batches, repeats, warmup)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--in", dest="n", type=int, default=1024)
    p.add_argument("--out", dest="m", type=int, default=4096)
    p.add_argument("--batches", default="1,64")
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    p.add_argument("--no-tltorch", action="store_true")
    p.add_argument("--lstm", default=None, metavar="E,H",
                   help="time one LSTM step of input size E and hidden size H instead")
    p.add_argument("--compression", type=float, default=10.0,
                   help="with --lstm: the TT LSTMs' parameter budget, dense / TT (default 10)")
    args = p.parse_args(argv)
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        p.error("--batches: a comma-separated list of integers")
    if min(batches) < 1 or args.repeats < 1 or args.warmup < 0 or args.n < 1 or args.m < 1:
        p.error("--batches, --repeats, --in and --out must be >= 1, --warmup >= 0")
    if args.json is not None and not args.json.parent.is_dir():
        p.error(f"--json: folder {str(args.json.parent)!r} does not exist")
    lstm: tuple[int, int] | None = None
    if args.lstm is not None:
        try:
            e, h = (int(v) for v in args.lstm.split(","))
        except ValueError:
            p.error("--lstm: two comma-separated integers E,H")
        if min(e, h) < 1 or not args.compression > 1:
            p.error("--lstm sizes must be >= 1 and --compression > 1")
        lstm = (e, h)
    if args.threads:
        torch.set_num_threads(args.threads)
    if lstm is not None:
        result = run_lstm(lstm[0], lstm[1], args.compression, batches, args.repeats,
                          args.warmup)
    else:
        result = run(args.n, args.m, batches, args.repeats, args.warmup, not args.no_tltorch)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json is not None:
        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    from proxcompress.cli import quiet_on_closed_pipe

    raise SystemExit(quiet_on_closed_pipe(main))
