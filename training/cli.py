"""``proxcompress train`` and ``proxcompress select``.

::

    proxcompress train --config configs/fmnist-mlp-bnnpp.yaml [--set epochs=1 ...] --out DIR
    proxcompress train --resume DIR [--set epochs=3]
    proxcompress train --config FILE --out P --stop-after pretrain    # a shared first phase
    proxcompress train --config FILE2 --out DIR --fork-from P         # ... continued per run
    proxcompress train --config FILE --dry-run            # validate, print the model summary
    torchrun --nproc_per_node 2 -m proxcompress train --config FILE --out DIR
    proxcompress select --run DIR --unit conv0_0 --keep 8 [--select mip|spr|magnitude|all]

Exit codes: 0 done, 2 bad input (config errors name the field), 130 interrupted (a checkpoint
was saved; continue with ``--resume DIR``). torch is imported inside the commands only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from proxcompress.errors import InvalidInputError

_EPILOG = """\
configs: YAML with the keys of proxcompress.training.config.TrainConfig (see docs/training.md);
--set takes dotted keys, values parsed as YAML: --set optim.lr=0.01 --set model.hidden=[256,256]
On --resume only epochs, progress, threads, checkpoint_every and spr.finetune_epochs may change.
"""


def add_parsers(subparsers: Any) -> None:
    """Register ``train``, ``select`` and ``export``."""
    from proxcompress.checks import MAX_SIZE, cli_float, cli_int
    from proxcompress.outputs import add_output

    p = subparsers.add_parser(
        "train", help="train a (binary / SPR-pruned) network from a YAML config",
        description="Train a network from a validated YAML config; writes config.yaml, "
        "metrics.jsonl, summary.json, checkpoints and curves.png into --out.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE.yaml", help="the run's config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config key (repeatable)")
    add_output(p, "--out", kind="folder", metavar="DIR", help="run folder (created)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    p.add_argument("--stop-after", metavar="PHASE",
                   help="stop once this phase (pretrain or train of a pruning run) has "
                   "finished and its checkpoint is saved; --fork-from starts other runs there")
    p.add_argument("--fork-from", metavar="DIR",
                   help="start the new run --out from the phase-boundary checkpoint in DIR "
                   "(written by --stop-after); the config may differ from DIR's only in keys "
                   "no finished phase read (e.g. spr.lam after pretrain)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the config, print the model summary, train nothing")
    p.set_defaults(func=run_train)

    s = subparsers.add_parser(
        "select", help="compare MIP, SPR and magnitude channel selection on one layer",
        description="Load a trained run, and for one channel unit keep --keep channels chosen "
        "by the exact layer-wise MIP (formulations, bnb) on recorded activations, by the SPR "
        "score, or by magnitude; report accuracy and reconstruction error (no fine-tuning).")
    s.add_argument("--run", required=True, metavar="DIR", help="a finished run folder")
    s.add_argument("--unit", required=True, help="unit name (e.g. conv0_0, fc0)")
    s.add_argument("--keep", required=True, type=cli_int(1, MAX_SIZE), help="channels to keep")
    s.add_argument("--select", default="all", choices=("mip", "spr", "magnitude", "all"))
    s.add_argument("--samples", type=cli_int(1, 1 << 20), default=256,
                   help="images recorded for the MIP")
    s.add_argument("--positions", type=cli_int(1, 1 << 16), default=16,
                   help="spatial positions per image (conv consumers)")
    s.add_argument("--time-limit", type=cli_float(0.0, None, low_open=True), default=60.0,
                   help="MIP seconds")
    add_output(s, "--json", metavar="OUT.json", help="write the rows as JSON (atomically)")
    s.set_defaults(func=run_select)

    e = subparsers.add_parser(
        "export", help="export a trained run to the kernels and check it on the test set",
        description="Load a run's latest checkpoint, write it in the kernels' packed formats "
        "(safetensors + JSON manifest) into --out, load it back on the kernels and classify "
        "the run's whole test set with both the kernels and torch: accuracies, agreement, "
        "largest logit difference, sizes and one batch's time. Nothing is written when the "
        "export's own check on test samples fails (exit 2).")
    e.add_argument("--run", required=True, metavar="DIR", help="a run folder with a checkpoint")
    add_output(e, "--out", kind="folder", required=True, metavar="DIR",
               help="export folder (created)")
    e.add_argument("--backend", default="auto", choices=("auto", "numba", "numpy", "cupy"),
                   help="the kernels' backend (cupy: on the GPU)")
    e.add_argument("--batch", type=int, default=256, help="samples per call, >= 1")
    add_output(e, "--json", metavar="OUT.json", help="also write the report (atomically)")
    e.set_defaults(func=run_export)

    r = subparsers.add_parser(
        "robustness", help="a run's test accuracy under rotation, translation, scaling, noise "
        "and contrast changes",
        description="Load a finished Fashion-MNIST run and classify its test set under each "
        "transformation of proxcompress.training.robustness.TRANSFORMS at graded strengths "
        "(test set only; nothing is trained or chosen).")
    r.add_argument("--run", required=True, metavar="DIR", help="a run folder with a checkpoint")
    r.add_argument("--seed", type=int, default=0, help="seed of the additive noise (default 0)")
    add_output(r, "--json", metavar="OUT.json", help="also write the report (atomically)")
    r.set_defaults(func=run_robustness)


def _resolve(args: argparse.Namespace) -> tuple[Any, str, bool]:
    from proxcompress.training.config import load_config
    from proxcompress.training.runchecks import RESUME_KEYS, without_keys
    from proxcompress.training.trainer import config_for_resume

    if args.fork_from and (args.resume or args.dry_run):
        raise InvalidInputError("--fork-from", "starts a new run: not with --resume or "
                                "--dry-run")
    if args.resume:
        if args.out and args.out != args.resume:
            raise InvalidInputError("--out", "must be omitted or equal --resume DIR")
        cfg = config_for_resume(args.resume, args.overrides, "--resume")
        if args.config:
            given = load_config(args.config, args.overrides)
            if without_keys(given.to_dict(), RESUME_KEYS) != without_keys(cfg.to_dict(),
                                                                            RESUME_KEYS):
                raise InvalidInputError("--config", "differs from the run's config.yaml; omit "
                                        "--config when resuming")
        return cfg, args.resume, True
    if not args.config:
        raise InvalidInputError("--config", "is required (or --resume DIR)")
    cfg = load_config(args.config, args.overrides)
    if not args.out and not args.dry_run:
        raise InvalidInputError("--out", "is required")
    return cfg, args.out, False


def run_train(args: argparse.Namespace) -> int:
    cfg, out, resume = _resolve(args)
    from proxcompress.training.trainer import stop_index

    stop_index(cfg, args.stop_after)  # checked before any work
    if args.fork_from:
        from proxcompress.training.fork import fork_run
        from proxcompress.training.runchecks import preflight

        preflight(cfg, initial=False)  # the model-level checks, before the fork is written
        fork_run(args.fork_from, cfg, out)
        resume = True
    if args.dry_run:
        from proxcompress.training.data import input_spec
        from proxcompress.training.quantize import model_summary
        from proxcompress.training.runchecks import preflight
        from proxcompress.training.tasks import task_kind
        from proxcompress.training.tensor_train.recipe import lstm_counts
        from proxcompress.training.trainer import build_run_model, run_classes

        preflight(cfg, initial=not resume)
        model = build_run_model(cfg, run_classes(cfg), cfg.seed)
        if task_kind(cfg.data.name) == "classification":
            shape, _ = input_spec(cfg.data.name, cfg.data.image_size,
                                  cfg.data.in_channels, cfg.data.root)
            print(model_summary(model, shape).text())
        else:
            print(model)
            print(f"parameters: {sum(p.numel() for p in model.parameters())}")
        counts = lstm_counts(model)
        if counts:
            print(", ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
                            for k, v in counts.items()))
        return 0
    from proxcompress.training.trainer import EXIT_INTERRUPTED, HardStop, Interrupted, train

    try:
        summary = train(cfg, out, resume=resume, stop_after=args.stop_after)
    except (Interrupted, HardStop, KeyboardInterrupt) as exc:
        print(f"proxcompress train: {exc or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if summary:
        m = "perplexity" if summary.get("task") == "language-model" else "accuracy"
        keys = ("stopped_after", f"val_{m}", f"test_{m}", "epochs", "parameters",
                "model_bytes", "seconds")
        print(json.dumps({k: summary[k] for k in keys if k in summary}))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # After a clean distributed finish (process group destroyed, files closed), gloo's
        # threads still aborted a rank at interpreter teardown in about 1 run in 8 on 2 CPUs
        # ("terminate called without an active exception"): skip the C++ static destructors.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def run_select(args: argparse.Namespace) -> int:
    from pathlib import Path

    from proxcompress.atomic import write_json_atomic
    from proxcompress.training.pruning import unit_by_name
    from proxcompress.training.select import METHODS, compare_selections
    from proxcompress.training.trainer import load_run, run_data

    cfg, model = load_run(args.run, "--run", ("classification",))
    train_data, _, test = run_data(cfg)
    unit = unit_by_name(model, args.unit)
    methods = METHODS if args.select == "all" else (args.select,)
    train = train_data.subset(4096, cfg.seed)
    rows = compare_selections(model, unit, args.keep, train, test, methods,
                              samples=args.samples, positions=args.positions,
                              time_limit=args.time_limit)
    print(f"{'method':<10} {'acc refit':>9} {'acc plain':>9} {'rec.err refit':>13} "
          f"{'rec.err plain':>13} {'seconds':>8}  kept")
    for r in rows:
        print(f"{r['method']:<10} {r['test_accuracy']:>9.2f} {r['test_accuracy_no_refit']:>9.2f} "
              f"{r['reconstruction_error']:>13.4f} {r['reconstruction_error_no_refit']:>13.4f} "
              f"{r['seconds']:>8.2f}  {r['kept']}")
    if args.json:
        write_json_atomic(Path(args.json), {"run": args.run, "unit": args.unit,
                                            "keep": args.keep, "rows": rows})
    return 0


def run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from proxcompress.atomic import write_json_atomic
    from proxcompress.training.deployment import deploy_run

    if args.batch < 1:
        raise InvalidInputError("--batch", f"= {args.batch} must be >= 1")
    report = deploy_run(args.run, args.out, backend=args.backend, batch=args.batch)
    print(json.dumps(report, indent=2))
    if args.json:
        write_json_atomic(Path(args.json), report)
    return 0


def run_robustness(args: argparse.Namespace) -> int:
    from pathlib import Path

    from proxcompress.atomic import write_json_atomic
    from proxcompress.training.robustness import robustness

    if args.seed < 0:
        raise InvalidInputError("--seed", f"= {args.seed} must be >= 0")
    report = {"run": args.run, **robustness(args.run, seed=args.seed)}
    print(json.dumps(report, indent=2))
    if args.json:
        write_json_atomic(Path(args.json), report)
    return 0


__all__ = ["add_parsers", "run_export", "run_robustness", "run_select", "run_train"]
