"""The command line of the results tables (``python benchmarks/results.py ...``, and the
``results`` stage of ``proxcompress reproduce --full``): train what is missing, then render the
page. Its options are described in :mod:`proxcompress.reproduce.tables`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from proxcompress.reproduce.tables import core, tt
from proxcompress.reproduce.tables.archive import archive, restore
from proxcompress.reproduce.tables.core import (
    DOC,
    PREFIXES,
    RECORD,
    ROBUST_ROWS,
    ROOT,
    TABLES,
    WALL,
    Choices,
    _by_name,
    _folders,
    ensure_data,
    read_record,
    repo_path,
    rows,
    run_all,
    weight_rows,
    write_configs,
)
from proxcompress.reproduce.tables.render import (
    SECTIONS,
    existing_section,
    render,
    selection_study,
    splice_section,
)


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/results.py [options]``: 0 when the page was written, 2 on bad
    options or without a repository checkout (an installed wheel has no ``configs/results/``,
    ``docs/results.md`` or run folders to work on)."""
    import proxcompress.reproduce.tables as package

    if core.CHECKOUT is None:
        print("benchmarks/results.py: the results tables work on a repository checkout "
              "(configs/results/, docs/results.md, runs/results); this proxcompress is an "
              "installed wheel: clone the repository and install it with pip install -e .",
              file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(description=package.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds for every row (default: each row's own)")
    parser.add_argument("--tables", default=",".join(TABLES),
                        help=f"comma-separated tables: {', '.join(TABLES)}")
    parser.add_argument("--only", default="",
                        help="only rows whose config name starts with one of these "
                        "comma-separated prefixes (the rows they inherit from run too)")
    default_runs = ROOT / "runs" / "results"
    parser.add_argument("--runs", default=str(default_runs))
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--no-selection", action="store_true")
    parser.add_argument("--out", default=str(DOC))
    parser.add_argument("--record", default=None, metavar="DIR",
                        help="the committed record of finished runs that the runs folder is "
                        "restored from and archived into (default: benchmarks/results/runs/ "
                        "for the default runs folder, none for another)")
    parser.add_argument("--no-record", action="store_true",
                        help="neither restore from nor archive into a record")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        dest="overrides",
                        help="override a config key of every selected row (e.g. the GPU "
                        "configuration of the vit table, docs/training.md); needs --runs and "
                        "--out away from the defaults, and leaves configs/results/ as it is "
                        "(as does any --runs other than the default folder)")
    args = parser.parse_args(argv)
    t0 = time.time()
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    tables = args.tables.split(",")
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        parser.error(f"--tables: unknown {', '.join(unknown)}; accepted: {', '.join(TABLES)}")
    if args.jobs < 1:
        parser.error("--jobs: must be >= 1")
    tables = [t for t in TABLES if t in tables]
    on_default_runs = Path(args.runs).resolve() == default_runs.resolve()
    if args.overrides and (on_default_runs or Path(args.out).resolve() == DOC.resolve()):
        parser.error("--set: give --runs and --out of their own (the committed configs and "
                     "docs/results.md are the default configuration's)")
    if args.record is not None and args.no_record:
        parser.error("--record: not with --no-record")
    record = (None if args.no_record or (args.record is None and (
        not on_default_runs or args.overrides)) else Path(args.record or RECORD))
    if record is not None and record.exists() and not record.is_dir():
        parser.error(f"--record: {record} is not a folder")
    everything = rows()
    prefixes = tuple(args.only.split(","))
    selected = [r for r in everything if r["name"].startswith(prefixes) and r["table"] in tables]
    if args.overrides:
        from proxcompress.errors import InvalidInputError
        from proxcompress.training.config import apply_overrides, config_from_dict

        for row in everything:
            if row["table"] in tables:
                row["config"] = apply_overrides(row["config"], args.overrides)
                try:
                    config_from_dict(row["config"])
                except InvalidInputError as exc:
                    parser.error(f"--set: {exc}")
    names = _by_name(everything)
    needed = list(selected)  # and the rows whose choices (or teacher runs) they use


    robust = "robust" in tables
    if robust:
        selected += [names[n] for n in ROBUST_ROWS if names[n] not in selected]
    needed = list(selected)  # and the rows whose choices they inherit
    for row in needed:
        for source in [*row["inherit"].values(), *([row["teacher"]] if "teacher" in row else [])]:
            if names[source] not in needed:
                needed.append(names[source])
    runs = Path(args.runs)
    load_before = os.getloadavg()[0]

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    selection = not args.no_selection and "binary" in tables and not args.render_only
    os.chdir(ROOT)  # the configs' data folders are relative to the repository
    counts: dict[str, int] = {}
    if record is not None:
        try:
            restored = restore(runs, record)
        except (OSError, ValueError) as exc:  # a damaged record: say which file, exit 2
            parser.error(f"--record: {exc}")
        if restored:
            log(f"restored {len(restored)} finished runs from {repo_path(record)}")
    empty = not any((runs / row["name"]).exists()  # nothing to resume
                    for row in needed) and not (runs / PREFIXES).exists()
    if not args.render_only:
        ensure_data(needed, log)
        counts = run_all(needed, seeds, runs, args.jobs, log, selection, everything, robust,
                         record)
    choices = Choices(everything, runs, read_record())
    tt_timing = None
    if "tt" in tables:  # measured with the workers gone, both cores (kept in the runs folder)
        tt_timing = (tt.timing(choices, seeds, runs, log) if not args.render_only
                     else tt.cached_timing(runs))
    if not args.overrides and on_default_runs:  # the configs describe the default runs
        write_configs(everything, choices)
    extra: dict[str, Any] = {"selection": selection_study(runs, choices)}
    from proxcompress.atomic import write_text_atomic

    wall = runs / WALL
    walls = json.loads(wall.read_text()) if wall.exists() else {}
    if not args.render_only and not args.only:
        walls[",".join(tables)] = {"wall_seconds": time.time() - t0, "jobs": args.jobs,
                                   "load1_before": load_before,
                                   "when": time.strftime("%Y-%m-%d"),
                                   "from_scratch": empty and counts["resumed"] == 0, **counts}
        runs.mkdir(parents=True, exist_ok=True)
        write_text_atomic(wall, json.dumps(walls, indent=1))
    if record is not None:
        archive(runs, record, weight_rows(everything))
    extra["walls"] = walls
    extra["tt_timing"] = tt_timing if tt_timing is not None else tt.cached_timing(runs)
    out = Path(args.out)
    page = out.read_text() if out.exists() else ""
    for key in SECTIONS:  # no runs of the table here: keep what the page has
        kept = existing_section(page, key)
        if kept and not any(_folders(choices, r, seeds) for r in everything
                            if r["table"] == key):
            extra[f"{key}_section"] = kept
    if len(tables) == 1 and tables[0] in SECTIONS and page:  # only this table's section
        key = tables[0]
        section = SECTIONS[key]([r for r in everything if r["table"] == key], seeds, choices,
                                extra, out)
        write_text_atomic(out, splice_section(page, section, key))
        log(f"wrote the {TABLES[key]} section of {out}")
        return 0
    write_text_atomic(out, render(everything, seeds, choices, extra, out))
    log(f"wrote {out}")
    return 0
