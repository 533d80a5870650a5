"""Regenerate docs/results.md: Fashion-MNIST accuracy of binary and SPR-pruned networks.

Every row is a config in ``configs/results/`` (written by this script from the table below, so
the committed configs are exactly what ran) trained for each seed by ``proxcompress train`` in
its own process (one torch thread; ``--jobs`` processes at a time). Finished runs are skipped,
interrupted ones resumed, so the script can be stopped and restarted. The tables report
mean +- sample standard deviation over the seeds found, and say how many there were.

    python benchmarks/results.py [--jobs 2] [--seeds 0,1,2] [--only mlp-] [--render-only]

Sizes (measured on the shared 2-core machine, one thread per job): the MLP 784-512-512-10 takes
about 10 s an epoch, the CNN (3 conv stages of 16/32/64 channels) about 15 s; 3 epochs per row,
SPR 2 + 3 + 2 epochs; about 35 minutes with ``--jobs 2`` for everything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "results"
DOC = ROOT / "docs" / "results.md"

BASE: dict[str, dict[str, Any]] = {
    "mlp": {
        "epochs": 3, "threads": 1, "progress": False,
        "data": {"name": "fashion-mnist"},
        "model": {"name": "mlp", "hidden": [512, 512], "activation": "relu"},
        "quant": {"weights": "none", "keep_first": False, "keep_last": True, "beta": 2.0},
        "mu": {"schedule": "aggregate", "scale": 100.0},
        "optim": {"name": "adam", "lr": 0.001, "schedule": "cosine", "batch_size": 128},
    },
    "cnn": {
        "epochs": 3, "threads": 1, "progress": False,
        "data": {"name": "fashion-mnist"},
        "model": {"name": "vgg", "width": 16, "stages": [1, 1, 1], "activation": "relu"},
        "quant": {"weights": "none", "keep_first": True, "keep_last": True, "beta": 2.0},
        "mu": {"schedule": "aggregate", "scale": 100.0},
        "optim": {"name": "adam", "lr": 0.001, "schedule": "cosine", "batch_size": 128},
    },
}

METHODS: list[tuple[str, str, str | None]] = [
    # key, label, catalogue pair (None: full precision)
    ("fp", "full precision", None),
    ("bc", "BC (BinaryConnect)", "binaryconnect"),
    ("bnn", "BNN", "bnn"),
    ("bnnp", "BNN+", "bnn+"),
    ("pc", "ProxConnect", "proxconnect"),
    ("bnnpp", "BNN++ (beta = 2)", "bnn++"),
]

SPR_LAMBDAS = (2.0, 5.0, 10.0)

# the rows the targets rest on run first, so a partial run still answers them
PRIORITY = ["cnn-fp", "cnn-bc", "cnn-bnnp", "cnn-bnnpp", "cnn-spr-lam5", "mlp-fp", "mlp-bnnp",
            "mlp-bnnpp", "cnn-bnn", "cnn-pc", "mlp-bc", "mlp-bnn", "mlp-pc", "cnn-spr-lam2",
            "cnn-spr-lam10"]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(base))
    for key, value in extra.items():
        if isinstance(value, dict):
            out.setdefault(key, {}).update(value)
        else:
            out[key] = value
    return out


def rows() -> list[dict[str, Any]]:
    """Every row: ``table``, ``name`` (config file stem), ``label``, ``config`` (raw dict)."""
    out = []
    for model in ("mlp", "cnn"):
        for key, label, pair in METHODS:
            quant = {"weights": pair or "none"}
            out.append({"table": "binary", "model": model, "name": f"{model}-{key}",
                        "label": label, "binary": "weights" if pair else "-",
                        "config": _merge(BASE[model], {"quant": quant})})
        out.append({"table": "binary", "model": model, "name": f"{model}-bnnpp-beta5",
                    "label": "BNN++ (beta = 5, larq's)", "binary": "weights",
                    "config": _merge(BASE[model], {"quant": {"weights": "bnn++", "beta": 5.0}})})
        out.append({"table": "binary", "model": model, "name": f"{model}-bnnpp-hard",
                    "label": "BNN++ (beta = 2, mu_0 = 1000: hard from the start)",
                    "binary": "weights",
                    "config": _merge(BASE[model], {"quant": {"weights": "bnn++"},
                                                   "mu": {"start": 1000.0}})})
        for key, label, pair in METHODS[1:]:
            out.append({"table": "binary", "model": model, "name": f"{model}-{key}-act",
                        "label": label, "binary": "weights + activations",
                        "config": _merge(BASE[model], {
                            "model": {"activation": "hardtanh"},
                            "quant": {"weights": pair, "activations": "bnn"}})})
        out.append({"table": "binary", "model": model, "name": f"{model}-bnnpp-hard-act",
                    "label": "BNN++ (beta = 2, mu_0 = 1000: hard from the start)",
                    "binary": "weights + activations",
                    "config": _merge(BASE[model], {
                        "model": {"activation": "hardtanh"},
                        "quant": {"weights": "bnn++", "activations": "bnn"},
                        "mu": {"start": 1000.0}})})
    for lam in SPR_LAMBDAS:
        out.append({"table": "spr", "model": "cnn", "name": f"cnn-spr-lam{lam:g}",
                    "label": f"SPR lambda = {lam:g}", "lam": lam,
                    "config": _merge(BASE["cnn"], {
                        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
                        "spr": {"enabled": True, "lam": lam, "alpha": 0.1,
                                "pretrain_epochs": 2, "finetune_epochs": 2,
                                "tolerance": 0.5, "search_samples": 2000}})})
    return out


def write_configs(selected: list[dict[str, Any]]) -> None:
    """Validate each row's config and write it, resolved, to ``configs/results/NAME.yaml``."""
    sys.path.insert(0, str(ROOT))
    from proxcompress.atomic import write_text_atomic
    from proxcompress.training.config import config_from_dict, dump_config

    for row in selected:
        cfg = config_from_dict(row["config"])
        header = (f"# {row['label']} ({row['model']}), a row of docs/results.md; written by "
                  "benchmarks/results.py.\n# proxcompress train --config "
                  f"configs/results/{row['name']}.yaml --set seed=S --out DIR\n")
        write_text_atomic(CONFIGS / f"{row['name']}.yaml", header + dump_config(cfg))


def _run_dir(runs: Path, row: dict[str, Any], seed: int) -> Path:
    return runs / row["name"] / f"seed-{seed}"


def _done(folder: Path, row: dict[str, Any]) -> bool:
    path = folder / "summary.json"
    if not path.exists():
        return False
    summary = json.loads(path.read_text())
    c = row["config"]
    expected = c["epochs"] + (c["spr"]["pretrain_epochs"] + c["spr"]["finetune_epochs"]
                              if c.get("spr", {}).get("enabled") else 0)
    return bool(summary.get("epochs") == expected)


def run_all(selected: list[dict[str, Any]], seeds: list[int], runs: Path, jobs: int,
            log: Any) -> None:
    """Train every (row, seed) not yet done, ``jobs`` processes at a time."""
    ordered = sorted(selected, key=lambda r: PRIORITY.index(r["name"])
                     if r["name"] in PRIORITY else len(PRIORITY))
    queue = [(row, seed) for row in ordered for seed in seeds
             if not _done(_run_dir(runs, row, seed), row)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    active: list[tuple[subprocess.Popen[bytes], dict[str, Any], int, float]] = []
    while queue or active:
        while queue and len(active) < jobs:
            row, seed = queue.pop(0)
            folder = _run_dir(runs, row, seed)
            folder.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "proxcompress", "train"]
            if (folder / "checkpoint.json").exists():
                cmd += ["--resume", str(folder)]
            else:
                cmd += ["--config", str(CONFIGS / f"{row['name']}.yaml"), "--set",
                        f"seed={seed}", "--out", str(folder)]
            with open(folder / "train.log", "ab") as handle:
                proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env,
                                        cwd=ROOT)
            active.append((proc, row, seed, time.time()))
            log(f"start {row['name']} seed {seed}")
        time.sleep(1.0)
        for item in list(active):
            proc, row, seed, t0 = item
            if proc.poll() is not None:
                active.remove(item)
                status = "ok" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
                log(f"done  {row['name']} seed {seed}: {status} in {time.time() - t0:.0f} s")


def _stats(values: list[float]) -> str:
    if not values:
        return "not run"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.2f} (1 seed)"
    std = statistics.stdev(values)
    suffix = "" if len(values) == 3 else f" ({len(values)} seeds)"
    return f"{mean:.2f} +- {std:.2f}{suffix}"


def _summaries(runs: Path, row: dict[str, Any], seeds: list[int]) -> list[dict[str, Any]]:
    out = []
    for seed in seeds:
        folder = _run_dir(runs, row, seed)
        if _done(folder, row):
            out.append(json.loads((folder / "summary.json").read_text()))
    return out


def render(selected: list[dict[str, Any]], seeds: list[int], runs: Path,
           extra: dict[str, Any]) -> str:
    """docs/results.md from the run folders (never from anything else)."""
    lines = [
        "# Results: binary and SPR-pruned networks on Fashion-MNIST",
        "",
        "Generated by `python benchmarks/results.py` from the run folders it trains; every "
        "number below was measured by that script (mean +- sample standard deviation over the "
        "seeds listed; a cell says when fewer than 3 seeds finished, and `not run` when none "
        "did). Each row's config is `configs/results/<config>.yaml`; reproduce one run with "
        "`proxcompress train --config configs/results/<config>.yaml --set seed=S --out DIR`.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs), "
        "one torch thread per run. Data: Fashion-MNIST (Xiao, Rasul, Vollgraf 2017; MIT "
        "license), 60000 training / 10000 test images, from Debian's `dataset-fashion-mnist`. "
        f"Seeds: {', '.join(map(str, seeds))}.",
        "",
        "Test accuracy is that of the *deployed* model: every quantized layer at "
        "`lim_(mu->oo) F` (e.g. `sign` times the per-channel scale); the first layer of the CNN "
        "and the classifier of both models stay full precision; the MLP's first layer is binary. "
        "Binary activations use `bnn` (sign forward, `1{|x| <= 1}` backward) on the inputs of "
        "every binary layer but the model's first, with hard-tanh activations.",
        "",
    ]
    for model, title in (("mlp", "MLP 784-512-512-10"),
                         ("cnn", "CNN (VGG-style: conv 16 / 32 / 64, 3x3, BN, max-pool; "
                                 "linear classifier)")):
        lines += [f"## {title}, {BASE[model]['epochs']} epochs, Adam lr 1e-3 cosine, batch 128",
                  "", "| method | binary | test accuracy (%) | model bytes | seconds / run | "
                  "config |", "|---|---|---|---|---|---|"]
        for row in selected:
            if row["table"] != "binary" or row["model"] != model:
                continue
            sums = _summaries(runs, row, seeds)
            acc = _stats([s["test_accuracy"] for s in sums])
            size = str(sums[0]["model_bytes"]) if sums else "-"
            secs = f"{statistics.fmean(s['seconds'] for s in sums):.0f}" if sums else "-"
            lines.append(f"| {row['label']} | {row['binary']} | {acc} | {size} | {secs} | "
                         f"`{row['name']}` |")
        lines.append("")
    spr_rows = [r for r in selected if r["table"] == "spr"]
    if spr_rows:
        lines += [
            "## SPR structured pruning of the CNN",
            "",
            "Cacciola, Frangioni, Li, Lodi (arXiv:2206.14056): pre-train 2 epochs (for `M`), "
            "train 3 epochs from a fresh init with cross-entropy + SPR (alpha = 0.1, SGD lr 0.05, "
            "momentum 0.9), bisection thresholds within 0.5 accuracy points on 2000 training "
            "images, physical removal of the pruned channels, fine-tune 2 epochs (lr 0.005). "
            "Channels: the 16 + 32 + 64 conv output channels. Inference: median CPU time of "
            "one eval forward pass on a batch of 256, one thread, measured at the end of each "
            "run for the pruned model and then the unpruned architecture (same process; the "
            "absolute values move with the shared machine's load, compare within a row). The "
            "pre-trained reference is the full-precision network SPR takes `M` from.",
            "",
            "| lambda | channels pruned (%) | parameters (pruned / unpruned) | inference ms "
            "(pruned / unpruned) | pre-trained reference (2 epochs) | accuracy before pruning "
            "| after pruning | after fine-tuning | config |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in spr_rows:
            sums = _summaries(runs, row, seeds)
            sp = [s["spr"] for s in sums]
            if not sp:
                lines.append(f"| {row['lam']:g} | not run | | | | | | | `{row['name']}` |")
                continue
            frac = _stats([100 * s["pruned_fraction"] for s in sp])
            params = (f"{statistics.fmean(s['parameters_after'] for s in sp):.0f} / "
                      f"{sp[0]['parameters_before']}")
            ms = (f"{statistics.fmean(s['inference_ms_pruned'] for s in sp):.1f} / "
                  f"{statistics.fmean(s['inference_ms_unpruned'] for s in sp):.1f}")
            lines.append(
                f"| {row['lam']:g} | {frac} | {params} | {ms} | "
                f"{_stats([s['pretrain_accuracy'] for s in sp])} | "
                f"{_stats([s['accuracy_before_pruning'] for s in sp])} | "
                f"{_stats([s['accuracy_after_pruning'] for s in sp])} | "
                f"{_stats([s['test_accuracy'] for s in sums])} | `{row['name']}` |")
        lines.append("")
    sel = extra.get("selection")
    if sel:
        lines += [
            "## Choosing one layer's channels: exact MIP vs SPR score vs magnitude",
            "",
            f"`proxcompress select --run {sel['run']} --unit {sel['unit']} --keep {sel['keep']}`"
            f" on the full-precision CNN (seed {sel['seed']}): keep {sel['keep']} of the "
            f"unit's channels, no fine-tuning. `mip` solves the layer-wise problem of "
            "`proxcompress.formulations` exactly (`bnb`) on the next layer's recorded inputs "
            "(256 images x 16 positions) with a budget; every method is also shown with the "
            "next layer refit exactly on the kept channels (`solve_support`). Reconstruction "
            "error: relative Frobenius error of the next layer's outputs on test images.",
            "",
            "| method | test acc. refit | test acc. plain | rec. error refit | rec. error plain "
            "| seconds | MIP status |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in sel["rows"]:
            lines.append(
                f"| {r['method']} | {r['test_accuracy']:.2f} | {r['test_accuracy_no_refit']:.2f}"
                f" | {r['reconstruction_error']:.4f} | {r['reconstruction_error_no_refit']:.4f} "
                f"| {r['seconds']:.1f} | {r.get('status', '-')} |")
        lines += ["", f"Unpruned test accuracy: {sel['unpruned_accuracy']:.2f}%.", ""]
    lines += [
        "## Reading the tables",
        "",
        "* BNN and BC give identical numbers: with the latents clipped to `[-1, 1]`, BNN's "
        "backward `1{|w| <= 1}` is always 1, so both take the same steps (the proofs wing's "
        "`bnn` verdict says the same).",
        "* BNN++ with larq's `beta = 5` collapses: under the adopted reading `B'` is taken at "
        "`P(w) -> +-1`, where `SS_5'(+-1) = -0.195 < 0`, which reverses every gradient once `mu` "
        "is large; `beta = 2` keeps `B' > 0` on `[-1, 1]` (docs/training.md).",
        "* The default `mu` schedule starts soft (`mu_0 = 0`); in these 3-epoch runs that soft "
        "start costs BNN++ and ProxConnect accuracy, and the hard-start rows (`mu_0 = 1000`) "
        "remove the cost; in the hard phase BNN++ steps almost like BC (docs/training.md).",
        "",
    ]
    lines += _targets(selected, seeds, runs)
    if extra.get("wall_seconds"):
        lines += [f"Wall time of the last full `benchmarks/results.py` run: "
                  f"{extra['wall_seconds'] / 60:.1f} minutes with `--jobs {extra.get('jobs', '?')}`"
                  " (niced, on the shared machine)"
                  + (f"; {extra['note']}" if extra.get("note") else "") + ".", ""]
    return "\n".join(lines)


def _mean(runs: Path, rows_: list[dict[str, Any]], name: str, seeds: list[int],
          key: Any = lambda s: s["test_accuracy"]) -> tuple[float, int] | None:
    row = next((r for r in rows_ if r["name"] == name), None)
    if row is None:
        return None
    values = [key(s) for s in _summaries(runs, row, seeds)]
    return (statistics.fmean(values), len(values)) if values else None


def _targets(rows_: list[dict[str, Any]], seeds: list[int], runs: Path) -> list[str]:
    """The issue's targets, checked on the measured means (never asserted by hand)."""
    out = ["## Targets (computed from the tables above)", ""]

    def fmt(m: tuple[float, int] | None) -> str:
        return "not run" if m is None else f"{m[0]:.2f} ({m[1]} seeds)"

    fp = _mean(runs, rows_, "cnn-fp", seeds)
    for name, label in (("cnn-bc", "BC"), ("cnn-bnn", "BNN"), ("cnn-bnnp", "BNN+"),
                        ("cnn-pc", "ProxConnect"), ("cnn-bnnpp", "BNN++"),
                        ("cnn-bnnpp-hard", "BNN++ hard start")):
        m = _mean(runs, rows_, name, seeds)
        if fp is None or m is None:
            out.append(f"* binary-weight CNN within 3 points of full precision, {label}: "
                       "not measured")
            continue
        verdict = "met" if fp[0] - m[0] <= 3.0 else "missed"
        out.append(f"* binary-weight CNN within 3 points of full precision, {label}: "
                   f"{fmt(m)} vs {fmt(fp)}, gap {fp[0] - m[0]:.2f}: **{verdict}**")
    for model in ("mlp", "cnn"):
        plus = _mean(runs, rows_, f"{model}-bnnp", seeds)
        for suffix, label in (("", "default soft start"), ("-hard", "hard start, mu_0 = 1000"),
                              ("-act", "weights + activations"),
                              ("-hard-act", "weights + activations, hard start")):
            pp = _mean(runs, rows_, f"{model}-bnnpp{suffix}", seeds)
            ref = (_mean(runs, rows_, f"{model}-bnnp-act", seeds) if suffix.endswith("act")
                   else plus)
            if pp is None or ref is None:
                out.append(f"* BNN++ >= BNN+ on the mean, {model}, {label}: not measured")
                continue
            verdict = "met" if pp[0] >= ref[0] else "missed"
            out.append(f"* BNN++ >= BNN+ on the mean, {model}, {label}: {fmt(pp)} vs "
                       f"{fmt(ref)}: **{verdict}**")
    for lam in SPR_LAMBDAS:
        name = f"cnn-spr-lam{lam:g}"
        acc = _mean(runs, rows_, name, seeds)
        frac = _mean(runs, rows_, name, seeds, lambda s: 100 * s["spr"]["pruned_fraction"])
        if fp is None or acc is None or frac is None:
            out.append(f"* SPR lambda = {lam:g}: not measured")
            continue
        verdict = "met" if frac[0] >= 50 and fp[0] - acc[0] <= 1.0 else "missed"
        out.append(f"* SPR removes >= 50% of the CNN's channels for <= 1 point, lambda = "
                   f"{lam:g}: {frac[0]:.1f}% pruned, {fmt(acc)} vs full precision {fmt(fp)} "
                   f"(drop {fp[0] - acc[0]:.2f}): **{verdict}** (note: the SPR runs train 7 "
                   "epochs in all, the full-precision row 3)")
    out += ["", "The training-step cost target (binary <= 1.5x full precision) is measured by "
            "`benchmarks/training_step.py` (docs/training.md).", ""]
    return out


def selection_study(runs: Path, seed: int, unit: str, keep: int) -> dict[str, Any] | None:
    """MIP / SPR / magnitude on one unit of the finished full-precision CNN run."""
    folder = runs / "cnn-fp" / f"seed-{seed}"
    if not (folder / "summary.json").exists():
        return None
    out = folder / f"select-{unit}-{keep}.json"
    if not out.exists():
        subprocess.run([sys.executable, "-m", "proxcompress", "select", "--run", str(folder),
                        "--unit", unit, "--keep", str(keep), "--time-limit", "300",
                        "--json", str(out)], check=True, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    data = json.loads(out.read_text())
    summary = json.loads((folder / "summary.json").read_text())
    return {"run": str(folder.relative_to(ROOT)) if folder.is_relative_to(ROOT) else str(folder),
            "unit": unit, "keep": keep, "seed": seed, "rows": data["rows"],
            "unpruned_accuracy": summary["test_accuracy"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--only", default="", help="only rows whose config name starts so")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "results"))
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--no-selection", action="store_true")
    parser.add_argument("--out", default=str(DOC))
    args = parser.parse_args(argv)
    t0 = time.time()
    seeds = [int(s) for s in args.seeds.split(",")]
    everything = rows()
    selected = [r for r in everything if r["name"].startswith(args.only)]
    runs = Path(args.runs)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    write_configs(everything)
    if not args.render_only:
        run_all(selected, seeds, runs, args.jobs, log)
    extra: dict[str, Any] = {}
    if not args.no_selection:
        extra["selection"] = selection_study(runs, seeds[0], "conv1_0", 16)
    wall = runs / "wall.json"
    if not args.render_only and not args.only:
        extra["wall_seconds"] = time.time() - t0
        wall.parent.mkdir(parents=True, exist_ok=True)
        wall.write_text(json.dumps({"wall_seconds": extra["wall_seconds"], "jobs": args.jobs}))
    elif wall.exists():
        extra.update(json.loads(wall.read_text()))
    from proxcompress.atomic import write_text_atomic

    write_text_atomic(args.out, render(everything, seeds, runs, extra))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
