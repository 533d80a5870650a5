"""Rendering of reports: a plain-text table, Markdown, and a JSON-able dictionary.

Pairs are shown one row per pair and one column per check (:data:`~proxcompress.proofs.checks.
CHECKS`); derivations (the SPR closed form) in a table of their own. Every failure is listed
under the tables with its counterexample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from proxcompress import __version__
from proxcompress.proofs.certificate import Certificate, Report
from proxcompress.proofs.checks import CHECKS, CheckOptions

_CELL = {"pass": "pass", "fail": "FAIL", "n/a": "n/a"}


def _cell(report: Report, check: str) -> str:
    try:
        return _CELL[report.certificate(check).status]
    except KeyError:
        return "-"


def _columns(reports: Sequence[Report]) -> list[str]:
    seen: list[str] = []
    for report in reports:
        for cert in report.certificates:
            if cert.check not in seen:
                seen.append(cert.check)
    order = {c: i for i, c in enumerate(CHECKS)}
    return sorted(seen, key=lambda c: order.get(c, len(order)))


def _rows(reports: Sequence[Report]) -> tuple[list[str], list[list[str]]]:
    columns = _columns(reports)
    header = ["name", *columns, "verdict"]
    rows = [[r.name, *(_cell(r, c) for c in columns), "PASS" if r.passed else "FAIL"]
            for r in reports]
    return header, rows


def _failures(reports: Sequence[Report]) -> list[tuple[Report, Certificate]]:
    return [(r, c) for r in reports for c in r.certificates if c.status == "fail"]


def _plain_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_text(reports: Sequence[Report], options: CheckOptions | None = None) -> str:
    """Tables (pairs, then derivations) and one line per failed check."""
    opts = options or CheckOptions()
    pairs = [r for r in reports if r.kind == "pair"]
    derivations = [r for r in reports if r.kind == "derivation"]
    parts = [f"proxcompress verify ({opts.describe()})"]
    if pairs:
        parts += ["", _plain_table(*_rows(pairs))]
    if derivations:
        parts += ["", _plain_table(*_rows(derivations))]
    failures = _failures(reports)
    if failures:
        parts += ["", "failures:"]
        parts += [f"  {r.name} / {c.check}: {c.detail}" for r, c in failures]
    return "\n".join(parts) + "\n"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def fmt(cell: str) -> str:
        return f"**{cell}**" if cell == "FAIL" else cell.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(reports: Sequence[Report], options: CheckOptions | None = None) -> str:
    """Markdown: verdict tables, each failure with its counterexample, and for each pair that
    decomposes, whether the convex ProxConnect rate applies."""
    opts = options or CheckOptions()
    pairs = [r for r in reports if r.kind == "pair"]
    derivations = [r for r in reports if r.kind == "derivation"]
    out = [f"Produced by `proxcompress verify` (proxcompress {__version__}); "
           f"{opts.describe()}, mu grid {{{', '.join(str(m) for m in opts.mu_values)}}}.", ""]
    if pairs:
        header, rows = _rows(pairs)
        header.insert(1, "pair")
        for row, report in zip(rows, pairs, strict=True):
            row.insert(1, report.summary)
        out += [_md_table(header, rows), ""]
    if derivations:
        out += [_md_table(*_rows(derivations)), ""]
    failures = _failures(reports)
    if failures:
        out += ["**Failures** (check: counterexample):", ""]
        out += [f"- `{r.name}` / `{c.check}`: {c.detail}" for r, c in failures]
        out.append("")
    inherited = [(r.name, r.certificate("decomposition").data) for r in pairs
                 if "decomposition" in _columns([r])]
    inherited = [(name, data) for name, data in inherited if "r" in data]
    if inherited:
        out += ["**Inherited guarantee where F = B o P holds** (PC++ step = ProxConnect step on "
                "l o B; the convex rate needs r convex and l o B convex):", ""]
        rows = [[name, str(data["r"]), "yes" if data["B_affine"] else "no",
                 str(data["guarantee"])] for name, data in inherited]
        out += [_md_table(["name", "r", "B affine", "guarantee"], rows), ""]
    return "\n".join(out)


def to_json(reports: Sequence[Report], options: CheckOptions | None = None) -> dict[str, Any]:
    """``{"passed", "formalization", "pairs": [...], "derivations": [...]}``; each record has
    ``name``, ``passed`` and ``checks`` (each with ``check``, ``passed``, ``detail``, ...)."""
    opts = options or CheckOptions()
    return {
        "tool": "proxcompress verify",
        "version": __version__,
        "passed": all(r.passed for r in reports),
        "formalization": {
            "composition": opts.composition,
            "derivative_at": opts.derivative_at,
            "mu_values": [str(m) for m in opts.mu_values],
        },
        "pairs": [r.to_dict() for r in reports if r.kind == "pair"],
        "derivations": [r.to_dict() for r in reports if r.kind == "derivation"],
    }


__all__ = ["render_markdown", "render_text", "to_json"]
