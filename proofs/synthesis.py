"""Synthesis: build ``F = B o P`` from a backward quantizer and a proximal quantizer, certified.

The decomposition criterion (Lu, Yu, Li, Partovi Nia, NeurIPS 2023, arXiv:2402.17710; the
suite's working formalization, methods.md section 1) says a pair ``(F, B)`` inherits
ProxConnect's guarantees when ``P`` is a proximal quantizer, ``B`` is admissible and
``F = B o P``. Choosing ``B`` and ``P`` and *defining* ``F = B o P`` therefore yields a pair with
an automatic guarantee, provided the checks on ``P`` and ``B`` pass -- which
:func:`synthesize` runs. BNN++ is the catalogue's example (``B = SignSwish``,
``P = ProxConnect``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from proxcompress.errors import InvalidInputError
from proxcompress.proofs.analysis import mu, x
from proxcompress.proofs.certificate import Report
from proxcompress.proofs.checks import CheckOptions, certify
from proxcompress.proofs.pairs import DerivativePoint, Facts, Pair
from proxcompress.proofs.parse import parse_expression


@dataclass(frozen=True)
class Synthesis:
    """A synthesized (or user-given) pair and its report."""

    forward: sp.Expr
    pair: Pair
    report: Report

    @property
    def passed(self) -> bool:
        return self.report.passed


def as_expression(value: str | sp.Expr, field: str) -> sp.Expr:
    """A string is parsed safely (:func:`~proxcompress.proofs.parse.parse_expression`); a SymPy
    expression has its symbols named ``x`` / ``mu`` replaced by the suite's (real ``x``,
    positive ``mu``).

    Raises:
        InvalidInputError: naming ``field``, for other types or other symbols.
    """
    if isinstance(value, str):
        return parse_expression(value, field)
    if isinstance(value, int | float):
        return sp.nsimplify(value)
    if not isinstance(value, sp.Expr):
        raise InvalidInputError(field, f"must be a string or a SymPy expression, got {value!r}")
    mapping = {s: {"x": x, "mu": mu}[s.name] for s in value.free_symbols
               if s.name in ("x", "mu")}
    expr = value.xreplace(mapping)
    extra = expr.free_symbols - {x, mu}
    if extra:
        raise InvalidInputError(field, f"unknown symbols {sorted(map(str, extra))}; use x and mu")
    return expr


def make_pair(
    backward: str | sp.Expr,
    prox: str | sp.Expr,
    *,
    forward: str | sp.Expr | None = None,
    name: str = "custom",
    levels: Sequence[float | int | sp.Expr] | None = None,
    method_derivative_at: DerivativePoint = "prox",
    options: CheckOptions | None = None,
) -> Pair:
    """A :class:`~proxcompress.proofs.pairs.Pair` from user expressions.

    Without ``forward``, ``F`` is synthesized as ``B o P`` (or ``P o B`` when
    ``options.composition == "PoB"``). ``levels`` declares the value set of
    ``lim_{mu -> oo} P`` (checked); no other facts are declared, so ``facts`` and
    ``prox_numeric`` report ``n/a``.
    """
    opts = options or CheckOptions()
    B = as_expression(backward, "backward")
    P = as_expression(prox, "prox")
    if forward is None:
        F = B.subs(x, P) if opts.composition == "BoP" else P.subs(x, B)
    else:
        F = as_expression(forward, "forward")
    if method_derivative_at not in ("prox", "latent"):
        raise InvalidInputError(
            "method_derivative_at", f"{method_derivative_at!r}; accepted: prox, latent")
    declared = None if levels is None else tuple(sp.nsimplify(v) for v in levels)
    if declared is not None and (not declared or not all(v.is_real for v in declared)):
        raise InvalidInputError("levels", "must be a non-empty list of real numbers")
    given = "given" if forward is not None else f"synthesized {opts.composition}"
    return Pair(
        name=name,
        forward=F,
        backward=B,
        prox=P,
        facts=Facts(levels=declared),
        method_derivative_at=method_derivative_at,
        summary=f"F {given}; B = {B}; P = {P}",
        doc="User-defined pair.",
    )


def synthesize(
    backward: str | sp.Expr,
    prox: str | sp.Expr,
    *,
    forward: str | sp.Expr | None = None,
    name: str = "synthesized",
    levels: Sequence[float | int | sp.Expr] | None = None,
    method_derivative_at: DerivativePoint = "prox",
    options: CheckOptions | None = None,
) -> Synthesis:
    """``F = B o P`` with its certificate (or the certificate of a given ``F``).

    Example::

        >>> s = synthesize(backward="tanh(2*x)", prox="(x + mu*sign(x))/(1 + mu)")
        >>> s.forward            # tanh(2 (x + mu sign x)/(1 + mu))
        >>> s.passed             # True: P proximal, B 2-Lipschitz, F = B o P

    Args:
        backward: ``B`` (string or SymPy expression in ``x``, optionally ``mu``).
        prox: ``P``.
        forward: ``F`` to check instead of synthesizing it.
        name: the pair's name in reports.
        levels: declared value set of ``lim_{mu -> oo} P``.
        method_derivative_at: where the method evaluates ``B'`` (``"prox"`` default).
        options: the checks' options (formalization, ``mu`` grid, tolerances).
    """
    opts = options or CheckOptions()
    pair = make_pair(backward, prox, forward=forward, name=name, levels=levels,
                     method_derivative_at=method_derivative_at, options=opts)
    return Synthesis(forward=pair.forward, pair=pair, report=certify(pair, opts))


__all__ = ["Synthesis", "as_expression", "make_pair", "synthesize"]
