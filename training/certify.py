"""The quantizer pairs a training run used, as the proofs wing certifies them.

``proxcompress verify --run DIR`` reads the run's resolved ``config.yaml`` (and, for the range
of ``mu`` it visited, its ``summary.json``) and certifies exactly the pairs it trained with:

* ``quant.weights`` and ``quant.activations`` when they are catalogue pairs, built with the
  parameters the trainer passed them (each numeric parameter of the catalogue factory that the
  ``quant`` section holds, e.g. ``beta``) and ``B'`` at ``quant.derivative_at`` when set;
* the analysis grid of ``mu``: the run's own range ``[mu.start, final mu]`` (its end points
  and the powers of 4 in between; ``mu = 0``, the identity, is not a quantizer and is skipped);
* the latents' domain for the ``descent`` check: ``[-c, c]`` with ``c = quant.latent_clip`` for
  the weights (the trainer clips them), the real line for activations;
* with SPR pruning, the SPR closed form's derivation as well.

Multiplication-free methods (DeepShift, DenseShift, S3, Euclid, adder) and full precision have
no catalogue pair: nothing is certified for them, and the report says so.

This module imports neither torch nor, at import time, SymPy.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from proxcompress.errors import InvalidInputError
from proxcompress.training.config import TrainConfig, read_run_config

#: grid points (beside the run's end points) used inside the run's ``mu`` range
_MU_GRID = tuple(Fraction(4) ** k for k in range(-1, 9))  # 1/4, 1, 4, ..., 65536


@dataclass(frozen=True)
class RunPair:
    """One quantizer pair of a run, with everything its certificate depends on.

    Attributes:
        role: ``"weights"`` or ``"activations"``.
        name: the catalogue name.
        parameters: the factory's numeric parameters as the trainer set them.
        derivative_at: ``quant.derivative_at`` (``None``: the method's own point).
        latent_bound: the latents' clipping ``c`` (``None``: unbounded).
        mu_values: the ``mu`` at which ``mu``-dependent maps are analysed (the run's range).
    """

    role: str
    name: str
    parameters: dict[str, float]
    derivative_at: str | None
    latent_bound: float | None
    mu_values: tuple[Fraction, ...]

    def label(self) -> str:
        """``bnn++(beta=2) [weights]``: the pair, its parameters and its role."""
        params = ", ".join(f"{k}={v:g}" for k, v in sorted(self.parameters.items()))
        return f"{self.name}{f'({params})' if params else ''} [{self.role}]"

    def describe(self) -> str:
        """Everything the certificate assumed, in words."""
        parts = [f"{self.role}: {self.label().rsplit(' [', 1)[0]}"]
        if self.derivative_at:
            parts.append(f"B' at {'P(w)' if self.derivative_at == 'prox' else 'w'} "
                         "(quant.derivative_at)")
        parts.append("latents in R" if self.latent_bound is None
                     else f"latents in [-{self.latent_bound:g}, {self.latent_bound:g}]")
        if self.mu_values:
            parts.append("mu in {" + ", ".join(_fmt(m) for m in self.mu_values) + "}")
        return "; ".join(parts)


def _fmt(m: Fraction) -> str:
    return str(m) if m.denominator == 1 or m < 1 else f"{float(m):g}"


def _rational(value: float) -> Fraction:
    """``value`` to 6 significant digits, as an exact fraction (the grid SymPy analyses)."""
    return Fraction(f"{value:.6g}")


def mu_values(start: float, end: float) -> tuple[Fraction, ...]:
    """The analysis grid of a run whose ``mu`` went from ``start`` to ``end``: both end points
    (when positive) and the powers of 4 strictly between them."""
    lo, hi = sorted((start, end))
    points = {_rational(v) for v in (lo, hi) if v > 0}
    points |= {g for g in _MU_GRID if lo < g < hi}
    if not points:
        raise InvalidInputError("mu", f"the run's mu stayed at {start:g}: no mu > 0 to analyse")
    return tuple(sorted(points))


def run_config(run_dir: str | os.PathLike[str]) -> TrainConfig:
    """The run's resolved config (``config.yaml``), validated.

    Raises:
        FileNotFoundError: no ``config.yaml`` in ``run_dir``.
        InvalidInputError: an invalid config.
    """
    from proxcompress.training.checkpoint import read_record
    from proxcompress.training.runchecks import check_recorded_config

    cfg = read_run_config(run_dir, "--run")
    record = read_record(run_dir, "--run")
    if record is not None:  # config.yaml must still be the config the run trained with
        check_recorded_config(cfg, record["meta"], "--run")
    return cfg


def _final_mu(run_dir: Path) -> float:
    path = run_dir / "summary.json"
    if not path.is_file():
        raise InvalidInputError("--run", f"{str(run_dir)!r} has no summary.json: the run has "
                                "not finished, so the range of mu it trained over is unknown")
    from proxcompress.readers import read_json

    summary = read_json("--run", path)
    value = summary.get("mu") if isinstance(summary, dict) else None
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InvalidInputError("--run", f"{str(path)!r} records no final mu")
    return float(value)


def run_pairs(cfg: TrainConfig, run_dir: str | os.PathLike[str] | None = None
              ) -> list[RunPair]:
    """The catalogue pairs of the run with ``cfg`` (folder ``run_dir``, needed only when a pair
    depends on ``mu``: its ``summary.json`` gives the final ``mu``)."""
    from proxcompress.proofs.pairs import build_pair, pair_names, pair_parameters

    q = cfg.quant
    out: list[RunPair] = []
    for role, name, bound in (("weights", q.weights, q.latent_clip),
                              ("activations", q.activations, None)):
        if name is None or name not in pair_names():
            continue
        given = {p: float(getattr(q, p)) for p in pair_parameters(name)
                 if getattr(q, p, None) is not None}
        pair = build_pair(name, derivative_at=q.derivative_at, **given)
        parameters = {k: float(v) for k, v in pair.parameters.items()}  # defaults included
        grid: tuple[Fraction, ...] = ()
        if pair.annealed:
            if run_dir is None:
                raise InvalidInputError("run_dir", f"{name!r} depends on mu: the run folder is "
                                        "needed for its range")
            grid = mu_values(cfg.mu.start, _final_mu(Path(run_dir)))
        out.append(RunPair(role, name, parameters, q.derivative_at, bound, grid))
    return out


def certify_run(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Certify the pairs of the run in ``run_dir`` (and SPR's derivation for an SPR run).

    Returns ``{"config": TrainConfig, "pairs": [RunPair], "reports": [Report],
    "options": [CheckOptions], "notes": [str]}``; a report per pair (named by
    :meth:`RunPair.label`), then SPR's.
    """
    from dataclasses import replace

    import sympy as sp

    from proxcompress.proofs.checks import CheckOptions, certify
    from proxcompress.proofs.pairs import build_pair
    from proxcompress.proofs.spr import derive_spr

    cfg = run_config(run_dir)
    pairs = run_pairs(cfg, run_dir)
    reports, options, notes = [], [], []
    for rp in pairs:
        pair = build_pair(rp.name, derivative_at=rp.derivative_at, **rp.parameters)
        opts = CheckOptions(
            mu_values=tuple(sp.Rational(m.numerator, m.denominator) for m in rp.mu_values)
            or CheckOptions().mu_values,
            latent_bound=rp.latent_bound)
        report = certify(pair, opts)
        reports.append(replace(report, name=rp.label(), summary=f"{pair.summary}; "
                               f"{rp.describe()}"))
        options.append(opts)
        notes.append(rp.describe())
    if cfg.spr.enabled:
        reports.append(derive_spr())
        notes.append("SPR pruning: the closed form of the perspective term (derive_spr)")
    if not pairs:
        what = cfg.quant.weights
        notes.append("full precision: no quantizer pair" if what == "none" else
                     f"{what}: not a catalogue pair (no PC++ certificate applies)")
    return {"config": cfg, "pairs": pairs, "reports": reports, "options": options,
            "notes": notes}


__all__ = ["RunPair", "certify_run", "mu_values", "run_config", "run_pairs"]
