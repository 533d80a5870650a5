"""Training stages: a BNN++ network and an SPR-pruned CNN, each trained with the suite's
trainer (the code path of ``proxcompress train``), then exported and run on the kernels with
every test prediction compared to torch's (``proxcompress export``).

The helpers here (data choice, one run, its deploy check, the rows of a run table) serve the
other training stages too (:mod:`.mulfree`).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxcompress.reproduce.plots import figure, save, training_curves
from proxcompress.reproduce.stage import Context, Outcome, Plot, Table

#: the data knob's values: ``auto`` takes Debian's full Fashion-MNIST when it is installed,
#: else the embedded subset; ``synthetic`` is for tests
DATA_CHOICES = ("auto", "fashion-mnist", "embedded", "synthetic")


def resolve_data(choice: str) -> str:
    """The data set ``choice`` names (``auto``: ``fashion-mnist`` when its IDX files are under
    the default root, else ``embedded``)."""
    if choice != "auto":
        return choice
    from proxcompress.training.data import DEFAULT_ROOT

    found = DEFAULT_ROOT.is_dir() and any(DEFAULT_ROOT.glob("train-images-idx3-ubyte*"))
    return "fashion-mnist" if found else "embedded"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(base))
    for key, value in extra.items():
        if isinstance(value, dict):
            out.setdefault(key, {}).update(value)
        else:
            out[key] = value
    return out


def data_section(ctx: Context) -> dict[str, Any]:
    """The config's ``data`` section from the budget (``data``, ``train_subset``,
    ``test_subset``; 0 means all)."""
    b = ctx.budget
    return {"name": resolve_data(b["data"]), "train_subset": b["train_subset"] or None,
            "test_subset": b["test_subset"] or None, "synthetic_samples": 512}


#: the environment of a worker process: one thread per library (the workers share the cores)
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1"}


@dataclass(frozen=True)
class RunSpec:
    """One training run of a stage: its folder name, its config (a dict of
    :class:`~proxcompress.training.config.TrainConfig` keys) and whether to deploy it."""

    name: str
    config: dict[str, Any]
    deploy: bool = False


@dataclass
class RunResult:
    """A finished run: its folder, its ``summary.json`` and, when deployed, the deploy report."""

    folder: Path
    summary: dict[str, Any]
    deployed: dict[str, Any] | None


def _log_to(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line.rstrip("\n") + "\n")


def run_one(folder: str, spec: RunSpec, resuming: bool, threads: int, log_path: str
            ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Train ``spec`` in ``folder / spec.name`` (continuing from its checkpoint when
    ``resuming``; a finished run is not retrained), then, if asked, export it to
    ``folder / (spec.name + "-export")`` and classify its test set on the kernels and with torch
    (``proxcompress export``). Returns ``(summary, deploy report or None)``. Runs in a worker
    process or in the stage's own."""
    from proxcompress.training.checkpoint import has_checkpoint
    from proxcompress.training.config import config_from_dict
    from proxcompress.training.deployment import deploy_run
    from proxcompress.training.trainer import train

    def log(line: str) -> None:
        _log_to(log_path, f"{spec.name}: {line}")

    run = Path(folder) / spec.name
    summary_file = run / "summary.json"
    if resuming and summary_file.is_file():
        log("finished before, not retrained")
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
    else:
        cfg = config_from_dict(_merge(spec.config, {"threads": threads, "progress": False,
                                                    "checkpoint_every": 200}))
        resume = resuming and has_checkpoint(run)
        log(f"training ({'resumed from its checkpoint' if resume else 'from scratch'}, "
            f"{threads} thread(s))")
        summary = train(cfg, run, resume=resume, log=log)
        log(f"test accuracy {summary['test_accuracy']:.2f}% in {summary['seconds']:.1f} s")
    deployed = None
    if spec.deploy:
        deployed = deploy_run(run, Path(folder) / f"{spec.name}-export")
        log(f"kernels ({deployed['backend']}) agree with torch on "
            f"{100 * deployed['agreement']:.2f}% of {deployed['samples']} test images")
    return summary, deployed


def _worker_init() -> None:
    os.environ.update(WORKER_ENV)


def run_all(ctx: Context, specs: list[RunSpec]) -> dict[str, RunResult]:
    """Run ``specs``, ``jobs`` at a time (the budget knob; 0: one per usable core), each with
    one torch thread (on a shared 2-core machine two threads per run contend: an epoch once
    took 20x longer, docs/training.md), in worker processes, or in this process when one at a
    time. Ctrl-C / SIGTERM: the workers save their checkpoints and stop; ``--resume``
    continues them."""
    jobs = max(1, min(ctx.budget.get("jobs") or ctx.threads, len(specs)))
    log_path = str(ctx.folder / "log.txt")
    out: dict[str, RunResult] = {}
    if jobs == 1:
        for spec in specs:
            summary, deployed = run_one(str(ctx.folder), spec, ctx.resuming, 1, log_path)
            out[spec.name] = RunResult(ctx.folder / spec.name, summary, deployed)
            ctx.progress.advance()
            ctx.progress.note(f"{spec.name}: {summary['test_accuracy']:.2f}%")
        return out
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init)
    futures = {pool.submit(run_one, str(ctx.folder), spec, ctx.resuming, 1, log_path): spec
               for spec in specs}
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                spec = futures[future]
                summary, deployed = future.result()
                out[spec.name] = RunResult(ctx.folder / spec.name, summary, deployed)
                ctx.progress.advance()
                ctx.progress.note(f"{spec.name}: {summary['test_accuracy']:.2f}%")
    except BaseException:
        _stop_workers(pool)
        raise
    pool.shutdown()
    return out


#: seconds the workers get to save their checkpoints after SIGTERM before they are killed
STOP_GRACE_S = 30.0


def _stop_workers(pool: Any) -> None:
    """Cancel the queued runs, SIGTERM every worker (a training run saves its checkpoint at the
    next step boundary and stops; an idle worker exits), wait up to :data:`STOP_GRACE_S`, then
    kill what is left."""
    import signal
    import time

    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(ProcessLookupError, OSError):
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()


def run_figures(summary: dict[str, Any], deployed: dict[str, Any] | None) -> dict[str, Any]:
    """The figures a training stage records for one run: the test accuracy (the test set
    evaluated once, at the end) and the final validation accuracy (``None`` without a
    validation split), both of the deployed model; sizes, time, and the deploy report."""
    out = {"test_accuracy": summary["test_accuracy"],
           "val_accuracy": summary.get("val_accuracy"), "epochs": summary["epochs"],
           "seconds": summary["seconds"], "parameters": summary["parameters"],
           "model_bytes": summary["model_bytes"], "train_samples": summary["train_samples"],
           "val_samples": summary.get("val_samples", 0),
           "test_samples": summary["test_samples"], "data": summary["data"]}
    if deployed is not None:
        out["deploy"] = {k: deployed[k] for k in (
            "backend", "samples", "torch_accuracy", "kernels_accuracy", "agreement",
            "max_relative_logit_error", "export_bytes", "float32_state_bytes",
            "torch_ms_per_batch", "kernels_ms_per_batch")}
    return out


RUN_COLUMNS = ["run", "test accuracy (%)", "validation accuracy (%)", "epochs",
               "training time (s)", "parameters", "kernels = torch predictions (%)",
               "kernels accuracy (%)", "largest logit difference (relative)",
               "export size (KiB)", "float32 weights (KiB)"]


def run_row(label: str, f: dict[str, Any]) -> list[Any]:
    """A row of :data:`RUN_COLUMNS`."""
    d = f.get("deploy")
    return [label, f["test_accuracy"], f["val_accuracy"], f["epochs"], f["seconds"],
            f["parameters"], 100 * d["agreement"] if d else None,
            d["kernels_accuracy"] if d else None,
            d["max_relative_logit_error"] if d else None,
            d["export_bytes"] / 1024 if d else None,
            d["float32_state_bytes"] / 1024 if d else None]


def data_note(f: dict[str, Any]) -> str:
    return (f"Data: {f['data']} ({f['train_samples']} training / {f['val_samples']} "
            f"validation / {f['test_samples']} test images; the validation split is held out "
            "of the training set, the test set is evaluated once, at the end). Accuracies of "
            "the deployed model (binary layers at their hard limit). Every test image is also "
            "classified by the exported model on the kernels: the share of predictions equal "
            "to torch's and the largest logit difference relative to the batch's largest "
            "logit.")


def certify_runs(ctx: Context, runs: dict[str, Path]) -> tuple[dict[str, Any], Table]:
    """``proxcompress verify --run`` of each run: the pairs it trained with, certified with
    its own parameters, ``mu`` range and latent domain. Returns the figures (run -> pair label
    -> ``{"passed", "checks"}``) and a table."""
    from proxcompress.atomic import write_json_atomic
    from proxcompress.proofs import CHECKS
    from proxcompress.training.certify import certify_run

    figures: dict[str, Any] = {}
    rows = []
    for name, run in runs.items():
        result = certify_run(run)
        figures[name] = {r.name: {"passed": r.passed,
                                  "checks": {c.check: c.status for c in r.certificates}}
                         for r in result["reports"]}
        for report, note in zip(result["reports"], result["notes"], strict=False):
            rows.append([name, report.name, note,
                         *[report.certificate(c).status if any(
                             x.check == c for x in report.certificates) else "-"
                           for c in CHECKS], "PASS" if report.passed else "FAIL"])
        ctx.log(f"verify --run {name}: " + ", ".join(
            f"{k} {'PASS' if v['passed'] else 'FAIL'}" for k, v in figures[name].items()))
    write_json_atomic(ctx.folder / "certified.json", figures)
    table = Table("verify --run: the pairs each run trained with, certified as trained",
                  ["run", "pair", "as trained", *CHECKS, "verdict"], rows,
                  note="The checks of the Certificates stage, at the parameters, mu range and "
                  "latent domain of the run itself (docs/proofs.md, 'Certified = trained').")
    return figures, table


# ------------------------------------------------------------------------------------ BNN++
def _mlp(ctx: Context) -> dict[str, Any]:
    b = ctx.budget
    return {
        "seed": b["seed"], "epochs": b["epochs"], "data": data_section(ctx),
        "model": {"name": "mlp", "hidden": list(b["hidden"]), "activation": "relu"},
        "optim": {"name": "adam", "lr": 0.001, "schedule": "cosine", "batch_size": 128},
    }


#: the two readings of BNN++ the stage trains (docs/proofs.md, docs/decisions.md): key ->
#: (label, quant section, mu section)
BNNPP_READINGS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "bnnpp": ("BNN++ as published (F = B = SignSwish_beta(mu), beta(mu) = 1 + 30 mu)",
              {"weights": "bnn++", "beta": 1.0, "beta_growth": 30.0},
              {"schedule": "aggregate", "scale": 100.0, "start": 0.0}),
    "bnnpp-prox": ("BNN++, reading bnn++-prox (F = SignSwish_2 o P_mu, mu_0 = 1000)",
                   {"weights": "bnn++-prox", "beta": 2.0},
                   {"schedule": "aggregate", "scale": 100.0, "start": 1000.0}),
}


def run_bnnpp(ctx: Context) -> Outcome:
    """Both BNN++ readings as MLPs with binary weights (configs/fmnist-mlp-bnnpp.yaml's
    recipe) and their full-precision twin at the same budget; each binary network certified
    as trained (``verify --run``), exported and run on the binary kernels."""
    base = _mlp(ctx)
    specs = [RunSpec(key, _merge(base, {"quant": {"keep_first": False, "keep_last": True,
                                                  **quant}, "mu": mu}), deploy=True)
             for key, (_, quant, mu) in BNNPP_READINGS.items()]
    specs.append(RunSpec("fp", _merge(base, {"quant": {"weights": "none"}})))
    ctx.progress.total(len(specs))
    runs = run_all(ctx, specs)
    certified, cert_table = certify_runs(ctx, {k: runs[k].folder for k in BNNPP_READINGS})
    figures: dict[str, Any] = {
        key: run_figures(r.summary, r.deployed) for key, r in runs.items()}
    figures["certified"] = certified
    figures["binary_parameters"] = runs["bnnpp"].summary["binary_parameters"]
    table = Table(
        f"MLP 784-{'-'.join(map(str, ctx.budget['hidden']))}-10, "
        f"{ctx.budget['epochs']} epochs, Adam lr 1e-3 cosine, batch 128",
        RUN_COLUMNS,
        [*[run_row(label, figures[key]) for key, (label, _, _) in BNNPP_READINGS.items()],
         run_row("full precision (same recipe)", figures["fp"])],
        note=data_note(figures["fp"]) + f" {figures['binary_parameters']} of "
        f"{figures['fp']['parameters']} weights are binary (the classifier stays float).")
    curves = training_curves({"BNN++ (published)": runs["bnnpp"].folder,
                              "BNN++ (bnn++-prox)": runs["bnnpp-prox"].folder,
                              "full precision": runs["fp"].folder},
                             ctx.folder / "curves.png", "BNN++ MLPs vs full precision",
                             accuracy_key="val_accuracy_hard")
    schedule = _mu_plot(ctx, {key: runs[key].folder for key in BNNPP_READINGS})
    return Outcome(figures, [table, cert_table], [
        Plot(curves.name, "Training loss at every step and validation accuracy per epoch "
             "(binary networks with every binary layer at its hard limit, as deployed)."),
        schedule])


def _mu_plot(ctx: Context, runs: dict[str, Path]) -> Plot:
    from proxcompress.training.trainer import STEPS, read_log

    fig, axes = figure(len(runs), 1, width=4.6, height=3.2)
    for ax, (key, run) in zip(axes, runs.items(), strict=True):
        steps = read_log(run / STEPS)
        ax.plot([s["epoch"] for s in steps], [s["mu"] for s in steps], color="C3", label="mu")
        ax.set_xlabel("epoch (each step plotted)")
        ax.set_ylabel("mu")
        ax.set_title(f"{key}: mu = mu_0 + 100 x (sum of lr)", fontsize=9)
        twin = ax.twinx()
        twin.plot([s["epoch"] for s in steps], [s["lr"] for s in steps], color="C2",
                  label="learning rate")
        twin.set_ylabel("learning rate")
        ax.legend(loc="upper left", fontsize=8)
        twin.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
    return Plot(save(fig, ctx.folder / "mu.png").name,
                "The annealing of each BNN++ run: mu grows with the aggregated learning rate "
                "(cosine schedule). Published reading: SignSwish sharpens as beta(mu) = "
                "1 + 30 mu grows; bnn++-prox: P_mu approaches sign.")


# -------------------------------------------------------------------------------------- SPR
def run_spr(ctx: Context) -> Outcome:
    """An SPR-pruned CNN (pretrain a reference, train with CE + SPR, threshold search, physical
    removal, fine-tune), exported and run on the kernels."""
    b = ctx.budget
    raw = {
        "seed": b["seed"], "epochs": b["epochs"], "data": data_section(ctx),
        "model": {"name": "vgg", "width": b["width"], "stages": [1, 1, 1],
                  "activation": "relu"},
        "quant": {"weights": "none", "keep_first": True, "keep_last": True},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "schedule": "cosine",
                  "batch_size": 128},
        "spr": {"enabled": True, "lam": b["lam"], "alpha": 0.1,
                "pretrain_epochs": b["pretrain_epochs"],
                "finetune_epochs": b["finetune_epochs"], "tolerance": 0.5,
                "search_samples": 2000},
    }
    ctx.progress.total(1)
    result = run_all(ctx, [RunSpec("spr", raw, deploy=True)])["spr"]
    run, summary, deployed = result.folder, result.summary, result.deployed
    spr = summary["spr"]
    certified, cert_table = certify_runs(ctx, {"spr": run})
    figures = {"spr": run_figures(summary, deployed), **{k: spr[k] for k in (
        "pretrain_val_accuracy", "val_accuracy_before_pruning", "val_accuracy_after_pruning",
        "channels_before", "channels_after", "pruned_fraction", "parameters_before",
        "parameters_after", "kept", "inference_ms_unpruned", "inference_ms_pruned")},
        "lam": b["lam"], "epochs_in_all": summary["epochs"], "certified": certified}
    before = _channels_before(run)
    units = Table(
        "Channels per layer, before and after SPR",
        ["layer", "channels before", "channels kept", "removed (%)"],
        [[unit, before.get(unit), kept,
          100 * (1 - kept / before[unit]) if before.get(unit) else None]
         for unit, kept in spr["kept"].items()],
        note="Pruned channels are removed physically (the layers are smaller), not masked.")
    stages = Table(
        f"SPR (lambda = {b['lam']:g}, alpha = 0.1) on a VGG-style CNN (width {b['width']})",
        ["step", "validation accuracy (%)", "channels", "parameters"],
        [["reference (pretrained, unpruned)", spr["pretrain_val_accuracy"],
          spr["channels_before"], spr["parameters_before"]],
         ["trained with SPR, before removal", spr["val_accuracy_before_pruning"],
          spr["channels_before"], spr["parameters_before"]],
         ["after threshold search and removal", spr["val_accuracy_after_pruning"],
          spr["channels_after"], spr["parameters_after"]],
         ["after fine-tuning (final)", summary.get("val_accuracy"), spr["channels_after"],
          spr["parameters_after"]]],
        note=f"Epochs: {b['pretrain_epochs']} pretraining, {b['epochs']} with SPR, "
        f"{b['finetune_epochs']} fine-tuning; the final network's test accuracy is "
        f"{summary['test_accuracy']:.2f}% (the test set evaluated once). Inference of a batch "
        "of 256: "
        f"{spr['inference_ms_unpruned']:.2f} ms unpruned, {spr['inference_ms_pruned']:.2f} ms "
        "pruned (torch, this process).")
    deploy_table = Table("The pruned CNN on the kernels", RUN_COLUMNS,
                         [run_row("SPR-pruned CNN", figures["spr"])],
                         note=data_note(figures["spr"]))
    curves = training_curves({"SPR CNN": run}, ctx.folder / "curves.png",
                             "SPR: pretrain, train with the SPR penalty, remove, fine-tune")
    return Outcome(figures, [stages, units, deploy_table, cert_table], [
        Plot(curves.name, "Training loss at every step through the three phases (dotted lines) "
             "and validation accuracy per epoch."),
        _channels_plot(ctx, before, spr["kept"])])


def _channels_before(run: Path) -> dict[str, int]:
    """Channels of each prunable unit of the run's unpruned model."""
    from proxcompress.training.data import input_spec
    from proxcompress.training.pruning import channel_count
    from proxcompress.training.trainer import config_for_resume, run_model

    cfg = config_for_resume(run, [])
    _, classes = input_spec(cfg.data.name, cfg.data.image_size, cfg.data.in_channels)
    model = run_model(cfg, classes, "train")
    return {u.name: channel_count(model, u) for u in model.units()}


def _channels_plot(ctx: Context, before: dict[str, int], kept: dict[str, int]) -> Plot:
    fig, (ax,) = figure(1, 1, width=6.4, height=3.2)
    names = list(kept)
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [before.get(n, 0) for n in names], 0.4, label="before")
    ax.bar([i + 0.2 for i in x], [kept[n] for n in names], 0.4, label="kept")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("channels")
    ax.set_title("channels per layer before and after SPR pruning")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return Plot(save(fig, ctx.folder / "channels.png").name,
                "Output channels of each prunable layer before SPR and kept after removal.")
