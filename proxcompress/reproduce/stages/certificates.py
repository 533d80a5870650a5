"""Stage ``certificates``: every catalogue pair certified against the PC++ criterion, and the
SPR derivation (what ``proxcompress verify --all`` does), with the maps plotted."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from proxcompress.reproduce.plots import figure, save
from proxcompress.reproduce.stage import Context, Outcome, Plot, Table

#: mu at which the annealed pairs are drawn (P_mu between the identity and its limit)
PLOT_MU = 2.0


def run(ctx: Context) -> Outcome:
    """Certify every pair of :func:`proxcompress.proofs.pair_names` and the SPR derivation."""
    from proxcompress.atomic import write_json_atomic, write_text_atomic
    from proxcompress.proofs import (
        CHECKS,
        CheckOptions,
        certify,
        derive_spr,
        get_pair,
        pair_names,
        render_markdown,
        to_json,
    )

    options = CheckOptions()
    names = list(pair_names())
    ctx.progress.total(len(names) + 1)
    reports = []
    for name in names:
        report = certify(get_pair(name), options)
        reports.append(report)
        ctx.log(f"{name}: {'PASS' if report.passed else 'FAIL'}")
        ctx.progress.advance()
    spr = derive_spr(samples=ctx.budget["spr_samples"])
    reports.append(spr)
    ctx.log(f"spr derivation: {'PASS' if spr.passed else 'FAIL'}")
    ctx.progress.advance()
    write_json_atomic(ctx.folder / "certificates.json", to_json(reports, options))
    write_text_atomic(ctx.folder / "certificates.md", render_markdown(reports, options))

    pairs = [r for r in reports if r.kind == "pair"]
    figures: dict[str, Any] = {
        "pairs": {r.name: {"passed": r.passed,
                           "checks": {c.check: c.status for c in r.certificates}}
                  for r in pairs},
        "failing": sorted(r.name for r in pairs if not r.passed),
        "spr": {"passed": spr.passed, "checks": {c.check: c.status for c in spr.certificates}},
        "formalization": {"composition": options.composition,
                          "derivative_at": options.derivative_at},
    }
    pair_table = Table(
        "PC++ criterion, one row per catalogue pair",
        ["pair", *CHECKS, "verdict", "first failure (counterexample)"],
        [[r.name, *[r.certificate(c).status for c in CHECKS],
          "PASS" if r.passed else "FAIL", _first_failure(r)] for r in pairs],
        note="Each column is one symbolic check (SymPy) of the criterion F = B o P, P a "
        "proximal quantizer: prox = P is monotone for every mu and tends to the declared "
        "levels; backward = B is continuous and Lipschitz; decomposition = F equals B(P(x)); "
        "derivative = the published method's B' is the criterion's; facts = the declared "
        "oddness and boundedness; prox_numeric = P solves its proximal problem (checked "
        f"numerically). Formalization: F = {options.composition}, B' evaluated at "
        f"{'P(w)' if options.derivative_at == 'prox' else 'w'} (docs/proofs.md). Full "
        "certificates with expressions: certificates.md / certificates.json.")
    spr_table = Table(
        "SPR closed form = its defining minimization",
        ["check", "status", "method", "what it shows"],
        [[c.check, c.status, c.method, c.detail] for c in spr.certificates])
    plot = _plot_pairs(ctx, [(r.name, r.passed, get_pair(r.name)) for r in pairs])
    return Outcome(figures, [pair_table, spr_table], [plot])


def _first_failure(report: Any) -> str:
    for cert in report.certificates:
        if not cert.passed and cert.counterexample is not None:
            return f"{cert.check}: {cert.counterexample.describe()}"
        if not cert.passed:
            return f"{cert.check}: {cert.detail}"
    return ""


def _plot_pairs(ctx: Context, pairs: list[tuple[str, bool, Any]]) -> Plot:
    columns = 5
    rows = math.ceil(len(pairs) / columns)
    fig, axes = figure(columns, rows, width=2.9, height=2.4)
    x = np.linspace(-2.0, 2.0, 801)
    mu = PLOT_MU
    for ax, (name, passed, pair) in zip(axes, pairs, strict=False):
        twin = pair.numeric()
        ax.plot(x, twin.forward(x, mu), color="C0", lw=1.4, label=f"F (mu = {mu:g})")
        ax.plot(x, twin.backward(x, mu), color="C1", ls="--", lw=1.2, label="B")
        ax.set_title(f"{name}: {'PASS' if passed else 'FAIL'}", fontsize=9,
                     color="darkgreen" if passed else "firebrick")
        ax.set_ylim(-2.2, 2.2)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes[len(pairs):]:
        ax.axis("off")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Forward map F (what the network uses) and backward map B (whose derivative "
                 "replaces F') of each pair, on the latent weight x")
    return Plot(save(fig, ctx.folder / "pairs.png").name,
                "Each catalogue pair's forward map F and backward map B; the title gives the "
                "PC++ verdict.")
