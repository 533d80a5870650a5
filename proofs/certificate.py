"""Certificates: what one check assumed, proved (or refuted), how, and with which expressions.

A :class:`Certificate` is the result of one check on one subject (a quantizer pair or a
derivation). A :class:`Report` groups the certificates of one subject; it passes when none of
them fails. Both serialize to plain JSON-able dictionaries (:meth:`Certificate.to_dict`,
:meth:`Report.to_dict`); SymPy expressions are written with ``str``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import sympy as sp

Status = Literal["pass", "fail", "n/a"]


def _plain(value: Any) -> Any:
    """JSON-able copy: SymPy objects as strings (exact numbers as floats), containers recursed."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, sp.Basic):
        if value.is_number and value.is_finite and value.is_real:
            return float(value)
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


@dataclass(frozen=True)
class Counterexample:
    """A concrete point where a claimed property fails.

    Attributes:
        point: coordinates, e.g. ``{"x": 1.0}`` or ``{"x": 0.5, "mu": 4.0}``.
        values: what was evaluated there, e.g. ``{"F(x)": 1.0, "B(P(x))": 1.0531}``.
        explanation: one sentence saying why these values refute the claim.
    """

    point: Mapping[str, float]
    values: Mapping[str, float]
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "point": _plain(self.point),
            "values": _plain(self.values),
            "explanation": self.explanation,
        }

    def describe(self) -> str:
        at = ", ".join(f"{k} = {_fmt(v)}" for k, v in self.point.items())
        vals = ", ".join(f"{k} = {_fmt(v)}" for k, v in self.values.items())
        return f"at {at}: {vals}" + (f" ({self.explanation})" if self.explanation else "")


def _fmt(value: float) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Certificate:
    """Outcome of one check.

    Attributes:
        check: the check's name (e.g. ``"decomposition"``).
        subject: what was checked (a pair name, ``"spr"``).
        status: ``"pass"``, ``"fail"`` or ``"n/a"`` (the check does not apply).
        assumptions: what was assumed (domains, the formalization's choices, tolerances).
        statements: what was established, one sentence each (or what was refuted).
        expressions: the SymPy expressions involved, by name.
        method: how it was established: ``"symbolic"`` (SymPy reduced it exactly) or a
            description of the numeric evidence (points, maximal error).
        detail: a one-line summary for tables.
        counterexample: for a failure, a point that refutes the claim.
        data: machine-readable by-products (computed constants, per-``mu`` facts).
    """

    check: str
    subject: str
    status: Status
    assumptions: tuple[str, ...]
    statements: tuple[str, ...]
    expressions: Mapping[str, sp.Basic]
    method: str
    detail: str
    counterexample: Counterexample | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """``True`` unless the status is ``"fail"`` (``"n/a"`` counts as passed)."""
        return self.status != "fail"

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "passed": self.passed,
            "status": self.status,
            "detail": self.detail,
            "method": self.method,
            "assumptions": list(self.assumptions),
            "statements": list(self.statements),
            "expressions": {k: str(v) for k, v in self.expressions.items()},
            "counterexample": None if self.counterexample is None
            else self.counterexample.to_dict(),
            "data": _plain(self.data),
        }


@dataclass(frozen=True)
class Report:
    """All certificates of one subject; ``passed`` when no certificate fails."""

    name: str
    certificates: tuple[Certificate, ...]
    kind: Literal["pair", "derivation"] = "pair"
    summary: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.certificates)

    def certificate(self, check: str) -> Certificate:
        """The certificate of the named check (``KeyError`` if it was not run)."""
        for cert in self.certificates:
            if cert.check == check:
                return cert
        raise KeyError(check)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "passed": self.passed,
            "summary": self.summary,
            "checks": [c.to_dict() for c in self.certificates],
        }


__all__ = ["Certificate", "Counterexample", "Report", "Status"]
