"""The reports of ``proxcompress reproduce``: ``report.html`` (self-contained: styles inline,
plots as PNG data URIs), ``report.md`` (the same content, plots linked) and ``report.json``
(verdicts and figures for programs), all written atomically from the stages' result records.

Layout: the overall verdict; a summary table (one row per stage: verdict, checks passed,
targets met, time); the machine and versions; then one section per stage: what it runs, its
budget, its checks (what must hold, what was measured, verdict), its targets (the claim, its
source, what was measured, met / missed), its tables and plots, and the files it wrote.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from proxcompress.reproduce.stage import fmt

TITLE = "proxcompress reproduce"

#: after the page loads: replace a plot that did not decode with a visible notice, and record
#: per stage section how many plots were shown and how many tables it holds (the Chromium test
#: of the report reads these from the rendered page)
SCRIPT = """
window.addEventListener("load", function () {
  var broken = 0;
  document.querySelectorAll("section.stage").forEach(function (section) {
    var shown = 0;
    section.querySelectorAll("figure img").forEach(function (img) {
      if (img.complete && img.naturalWidth > 0) { shown += 1; return; }
      broken += 1;
      var notice = document.createElement("p");
      notice.className = "error";
      notice.textContent = "This plot could not be displayed: " + img.alt;
      img.replaceWith(notice);
    });
    section.dataset.plotsShown = String(shown);
    section.dataset.tables = String(section.querySelectorAll("table").length);
  });
  document.body.dataset.brokenImages = String(broken);
  document.body.dataset.loaded = "yes";
});
"""

STATUS_TEXT = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR",
               "interrupted": "INTERRUPTED", "pending": "NOT RUN",
               "unavailable": "NOT MEASURED"}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0 auto; max-width: 1280px; padding: 1.2rem 2rem 3rem; color: #1d2430;
       line-height: 1.45; background: #fbfbfc; }
h1 { font-size: 1.7rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 2px solid #d8dde6;
     padding-bottom: 0.25rem; }
h3 { font-size: 1.02rem; margin: 1.3rem 0 0.4rem; }
.sub { color: #5a6475; margin-top: 0; }
.banner { padding: 0.8rem 1rem; border-radius: 6px; font-size: 1.1rem; font-weight: 600;
          margin: 1rem 0; }
.banner.passed { background: #e3f4e6; color: #17612a; border: 1px solid #9fd3aa; }
.banner.failed { background: #fbe4e4; color: #8a1c1c; border: 1px solid #eba6a6; }
.banner.partial { background: #fff4d6; color: #765400; border: 1px solid #e8cf86; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.3rem 0 0.3rem; font-size: 0.88rem;
        background: #fff; }
th, td { border: 1px solid #d5dae3; padding: 0.28rem 0.55rem; text-align: left;
         vertical-align: top; }
th { background: #eef1f6; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #f8f9fb; }
.v { font-weight: 700; white-space: nowrap; }
.v.pass, .v.met, .v.passed { color: #17612a; }
.v.fail, .v.missed, .v.failed, .v.error { color: #a01c1c; }
.v.notmeasured, .v.pending, .v.interrupted, .v.unavailable { color: #8a6d00; }
.badge { font-size: 0.8rem; padding: 0.12rem 0.5rem; border-radius: 4px; margin-left: 0.5rem;
         vertical-align: middle; color: #fff; }
.badge.passed { background: #2e8540; } .badge.failed, .badge.error { background: #b52a2a; }
.badge.pending, .badge.interrupted, .badge.unavailable { background: #a07c00; }
.note { color: #4d5666; font-size: 0.85rem; margin: 0.2rem 0 0.8rem; max-width: 1100px; }
.runs { max-width: 1100px; }
.budget code { background: #eef1f6; padding: 0.05rem 0.3rem; border-radius: 3px; }
figure { margin: 0.8rem 0 1.2rem; }
figure img { max-width: 100%; border: 1px solid #d5dae3; background: #fff; }
figcaption { color: #4d5666; font-size: 0.85rem; margin-top: 0.3rem; max-width: 1100px; }
.error { background: #fbe4e4; border: 1px solid #eba6a6; padding: 0.6rem 0.8rem;
         border-radius: 5px; white-space: pre-wrap; font-family: monospace; }
ul.outputs { font-size: 0.85rem; color: #4d5666; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _cell(value: Any) -> tuple[str, bool]:
    """``(text, numeric)`` of a table cell."""
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return fmt(value), numeric


def _verdict_class(verdict: str) -> str:
    return verdict.replace(" ", "")


def _overall(stage_names: list[str], results: dict[str, dict[str, Any]],
             interrupted: str | None) -> tuple[str, str]:
    """``(css class, sentence)`` of the whole run."""
    done = [results[n] for n in stage_names if n in results]
    bad = [r["name"] for r in done if r["status"] not in ("passed", "unavailable")]
    unmeasured = [r["name"] for r in done if r["status"] == "unavailable"]
    missing = [n for n in stage_names if n not in results]
    if bad:
        return "failed", (f"{len(bad)} of {len(stage_names)} stages did not pass: "
                          f"{', '.join(bad)}")
    if unmeasured and not missing:
        return "partial", (f"{len(done) - len(unmeasured)} of {len(stage_names)} stages ran "
                           f"and passed; not measured (data unavailable): "
                           f"{', '.join(unmeasured)}")
    if missing:
        why = f"interrupted in stage {interrupted}; " if interrupted else ""
        also = (f"; not measured (data unavailable): {', '.join(unmeasured)}" if unmeasured
                else "")
        return "partial", (f"{why}{len(done) - len(unmeasured)} of {len(stage_names)} stages "
                           f"ran and passed; not run: {', '.join(missing)}{also}")
    return "passed", f"all {len(stage_names)} stages passed"


def _status(name: str, results: dict[str, dict[str, Any]], interrupted: str | None) -> str:
    if name in results:
        return str(results[name]["status"])
    return "interrupted" if name == interrupted else "pending"


# ------------------------------------------------------------------------------------ HTML
def _html_table(columns: list[str], rows: list[list[Any]], verdict_column: int | None = None
                ) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            text, numeric = _cell(value)
            if i == verdict_column:
                cells.append(f'<td class="v {_verdict_class(text)}">{_esc(text)}</td>')
            else:
                cells.append(f'<td class="num">{_esc(text)}</td>' if numeric
                             else f"<td>{_esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _data_uri(path: Path) -> str | None:
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_stage(i: int, name: str, result: dict[str, Any] | None, status: str, out: Path,
                title: str, runs: str) -> str:
    parts = [f'<section class="stage" id="stage-{_esc(name)}" data-status="{_esc(status)}">',
             f"<h2>{i}. {_esc(title)}<span class=\"badge {_esc(status)}\">"
             f"{STATUS_TEXT.get(status, status.upper())}</span></h2>",
             f'<p class="runs"><b>What it runs:</b> {_esc(runs)}</p>']
    if result is None:
        parts.append('<p class="note">This stage has not run yet '
                     "(<code>--resume</code> runs it).</p></section>")
        return "\n".join(parts)
    budget = ", ".join(f"<code>{_esc(k)} = {_esc(v)}</code>" for k, v in result["budget"].items())
    parts.append(f'<p class="budget"><b>Budget</b> (--{_esc(result["mode"])}): {budget}. '
                 f"Time: {result['seconds']:.1f} s. Stage name: <code>{_esc(name)}</code>, "
                 f"folder <code>{_esc(name)}/</code>.</p>")
    if result.get("error"):
        parts.append(f'<h3>Error</h3><div class="error">{_esc(result["error"])}</div>'
                     f'<p class="note">Traceback: <code>{_esc(name)}/error.txt</code>; log: '
                     f"<code>{_esc(name)}/log.txt</code>. <code>--resume</code> runs the stage "
                     "again.</p>")
    if result["checks"]:
        parts.append("<h3>Checks (must hold)</h3>")
        parts.append(_html_table(["check", "what must hold", "measured", "verdict"],
                                 [[c["name"], c["statement"], c["measured"], c["verdict"]]
                                  for c in result["checks"]], verdict_column=3))
    if result["targets"]:
        parts.append("<h3>Targets (claims; reported, never fail the run)</h3>")
        parts.append(_html_table(["target", "claim", "source", "measured", "verdict"],
                                 [[t["name"], t["statement"], t["source"], t["measured"],
                                   t["verdict"]] for t in result["targets"]],
                                 verdict_column=4))
    for table in result["tables"]:
        parts.append(f"<h3>{_esc(table['title'])}</h3>")
        parts.append(_html_table(table["columns"], table["rows"]))
        if table.get("note"):
            parts.append(f'<p class="note">{_esc(table["note"])}</p>')
    for plot in result["plots"]:
        uri = _data_uri(out / name / plot["file"])
        if uri is None:
            parts.append(f'<p class="note">(plot {_esc(plot["file"])} missing)</p>')
            continue
        parts.append(f'<figure><img src="{uri}" alt="{_esc(plot["caption"])}">'
                     f"<figcaption>{_esc(plot['caption'])} "
                     f"(<code>{_esc(name)}/{_esc(plot['file'])}</code>)</figcaption></figure>")
    for note in result.get("notes", []):
        parts.append(f'<p class="note">{_esc(note)}</p>')
    if result["outputs"]:
        parts.append('<p class="note">Files of this stage (in its folder): ' + ", ".join(
            f"<code>{_esc(o)}</code>" for o in [*result["outputs"], "log.txt", "result.json"])
            + "</p>")
    parts.append("</section>")
    return "\n".join(parts)


def render_html(out: Path, mode: str, stage_names: list[str],
                results: dict[str, dict[str, Any]], machine: dict[str, Any],
                state: dict[str, Any], interrupted: str | None) -> str:
    """The whole self-contained page."""
    from proxcompress.reproduce.registry import STAGES

    known = {s.name: s for s in STAGES}
    verdict_class, sentence = _overall(stage_names, results, interrupted)
    summary_rows = []
    for i, name in enumerate(stage_names, 1):
        r = results.get(name)
        status = _status(name, results, interrupted)
        checks = (f"{sum(c['verdict'] == 'pass' for c in r['checks'])} / {len(r['checks'])}"
                  if r else "-")
        targets = (f"{sum(t['verdict'] == 'met' for t in r['targets'])} / {len(r['targets'])}"
                   if r and r["targets"] else "-")
        title = known[name].title if name in known else name
        summary_rows.append(
            f'<tr><td>{i}</td><td><a href="#stage-{_esc(name)}">{_esc(name)}</a></td>'
            f"<td>{_esc(title)}</td>"
            f'<td class="v {_esc(status)}">{STATUS_TEXT.get(status, status)}</td>'
            f'<td class="num">{checks}</td><td class="num">{targets}</td>'
            f'<td class="num">{fmt(r["seconds"], 3) if r else "-"}</td></tr>')
    summary = ('<div class="scroll"><table><thead><tr><th>#</th><th>stage</th><th>what</th>'
               "<th>verdict</th><th>checks passed</th><th>targets met</th>"
               "<th>time (s)</th></tr></thead><tbody>" + "".join(summary_rows)
               + "</tbody></table></div>")
    machine_rows: list[list[Any]] = [
        ["CPU", machine.get("cpu_model")],
        ["cores", f"{machine.get('cores')} ({machine.get('usable_cores')} usable by this run; "
                  f"{machine.get('threads_per_core') or '?'} thread(s) per core)"],
        ["memory", f"{machine.get('memory_gib')} GiB"],
        ["accelerator", machine.get("accelerator")],
        ["operating system", machine.get("os")],
        ["Python", machine.get("python")],
        ["repository commit", machine.get("commit") or "unknown (not a git checkout)"],
    ]
    others = sorted({f"{r['machine']['cpu_model']} ({r['machine']['cores']} cores)"
                     for r in results.values() if "machine" in r}
                    - {f"{machine.get('cpu_model')} ({machine.get('cores')} cores)"})
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items())
    sections = [_html_stage(i, name, results.get(name), _status(name, results, interrupted),
                            out, known[name].title if name in known else name,
                            known[name].runs if name in known else "")
                for i, name in enumerate(stage_names, 1)]
    overrides = state.get("overrides") or []
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{TITLE}: {_esc(mode)} run</title>
<style>{CSS}</style></head>
<body>
<h1>{TITLE} &mdash; the main job, --{_esc(mode)}</h1>
<p class="sub">Neural-network compression with guarantees: certified quantizers, exact pruning,
binary / pruned / multiplication-free networks trained and run on the kernels, and a causal
test, in one run. Started {_esc(state.get('created', ''))}; this report written
{_esc(_now())}.{' Budget overrides: ' + _esc(', '.join(overrides)) + '.' if overrides else ''}</p>
<div class="banner {verdict_class}" id="verdict">Verdict: {_esc(sentence)}.</div>
<p class="note">A stage <b>passes</b> when every one of its checks holds. <b>Targets</b> are
published or issued claims (accuracy gaps, speed-ups); they are reported as met or missed and
never fail the run, since they depend on the budget and the machine. Exit code: 0 all stages
passed, 1 a check failed or a stage raised, 2 bad input, 130 interrupted.</p>
<h2>Summary</h2>
{summary}
<h2>Machine and versions</h2>
{_html_table(["", "value"], machine_rows)}
<p class="note">Packages: {_esc(versions)}.{' Some stages ran on another machine: '
 + _esc('; '.join(others)) + '.' if others else ''}</p>
{''.join(sections)}
<script>{SCRIPT}</script>
</body></html>
"""


def _now() -> str:
    from proxcompress.reproduce.runner import now

    return now()


# -------------------------------------------------------------------------------- Markdown
def _md_cell(value: Any) -> str:
    return fmt(value).replace("|", "\\|").replace("\n", " ")


def _md_table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(_md_cell(c) for c in columns) + " |",
            "|" + "---|" * len(columns),
            *["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows], ""]


def render_markdown(mode: str, stage_names: list[str], results: dict[str, dict[str, Any]],
                    machine: dict[str, Any], state: dict[str, Any],
                    interrupted: str | None) -> str:
    """The report as Markdown (plots linked as files of the stage folders)."""
    from proxcompress.reproduce.registry import STAGES

    known = {s.name: s for s in STAGES}
    _, sentence = _overall(stage_names, results, interrupted)
    lines = [f"# {TITLE}: --{mode}", "", f"**Verdict: {sentence}.**", "",
             f"Started {state.get('created', '')}; written {_now()}. A stage passes when all "
             "its checks hold; targets are claims reported as met or missed.", "",
             "## Summary", ""]
    rows = []
    for name in stage_names:
        r = results.get(name)
        status = _status(name, results, interrupted)
        rows.append([name, STATUS_TEXT.get(status, status),
                     f"{sum(c['verdict'] == 'pass' for c in r['checks'])}/{len(r['checks'])}"
                     if r else "-",
                     f"{sum(t['verdict'] == 'met' for t in r['targets'])}/{len(r['targets'])}"
                     if r and r["targets"] else "-",
                     round(r["seconds"], 1) if r else "-"])
    lines += _md_table(["stage", "verdict", "checks passed", "targets met", "time (s)"], rows)
    lines += ["## Machine", "",
              f"{machine.get('cpu_model')}, {machine.get('cores')} cores "
              f"({machine.get('usable_cores')} usable), {machine.get('memory_gib')} GiB, "
              f"accelerator: {machine.get('accelerator')}; {machine.get('os')}; Python "
              f"{machine.get('python')}; commit {machine.get('commit')}.", "",
              "Packages: " + ", ".join(f"{k} {v}" for k, v in
                                       machine.get("versions", {}).items()) + ".", ""]
    for i, name in enumerate(stage_names, 1):
        r = results.get(name)
        title = known[name].title if name in known else name
        status = _status(name, results, interrupted)
        lines += [f"## {i}. {title} ({STATUS_TEXT.get(status, status)})", ""]
        if name in known:
            lines += [f"What it runs: {known[name].runs}", ""]
        if r is None:
            lines += ["Not run yet.", ""]
            continue
        lines += ["Budget (--" + r["mode"] + "): " + ", ".join(
            f"`{k} = {v}`" for k, v in r["budget"].items()) + f"; {r['seconds']:.1f} s.", ""]
        if r.get("error"):
            lines += [f"**Error:** `{r['error']}` (traceback: `{name}/error.txt`)", ""]
        if r["checks"]:
            lines += ["Checks:", ""] + _md_table(
                ["check", "what must hold", "measured", "verdict"],
                [[c["name"], c["statement"], c["measured"], c["verdict"]]
                 for c in r["checks"]])
        if r["targets"]:
            lines += ["Targets:", ""] + _md_table(
                ["target", "claim", "source", "measured", "verdict"],
                [[t["name"], t["statement"], t["source"], t["measured"], t["verdict"]]
                 for t in r["targets"]])
        for table in r["tables"]:
            lines += [f"### {table['title']}", ""] + _md_table(table["columns"], table["rows"])
            if table.get("note"):
                lines += [table["note"], ""]
        for plot in r["plots"]:
            lines += [f"![{plot['caption']}]({name}/{plot['file']})", "", plot["caption"], ""]
        lines += [note + "\n" for note in r.get("notes", [])]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ JSON
def render_json(mode: str, stage_names: list[str], results: dict[str, dict[str, Any]],
                machine: dict[str, Any], state: dict[str, Any], interrupted: str | None
                ) -> dict[str, Any]:
    """Verdicts and figures for programs: ``verdict`` (passed / failed / partial),
    ``stages`` (each with ``status``, ``checks``, ``targets``, ``figures``, ``tables``,
    ``budget``, ``seconds``)."""
    from proxcompress.reproduce.runner import FORMAT, VERSION

    verdict, sentence = _overall(stage_names, results, interrupted)
    return {
        "format": FORMAT, "version": VERSION, "mode": mode, "verdict": verdict,
        "summary": sentence, "created": state.get("created"), "written": _now(),
        "interrupted": interrupted, "overrides": state.get("overrides", []),
        "machine": machine,
        "stages": [results.get(name, {"name": name,
                                      "status": _status(name, results, interrupted)})
                   for name in stage_names],
    }


def write_reports(out: Path, mode: str, stage_names: list[str],
                  results: dict[str, dict[str, Any]], machine: dict[str, Any],
                  state: dict[str, Any], interrupted: str | None = None) -> None:
    """Write ``report.html``, ``report.md`` and ``report.json`` into ``out`` (atomically)."""
    from proxcompress.atomic import write_json_atomic, write_text_atomic

    args = (mode, stage_names, results, machine, state, interrupted)
    write_json_atomic(out / "report.json", render_json(*args))
    write_text_atomic(out / "report.md", render_markdown(*args))
    write_text_atomic(out / "report.html", render_html(out, *args))


__all__ = ["render_html", "render_json", "render_markdown", "write_reports"]
