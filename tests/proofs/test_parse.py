"""Safe parsing of user expressions: accepted forms and rejected (unsafe or malformed) input."""

from __future__ import annotations

import pytest
import sympy as sp

from proxcompress.errors import InvalidInputError
from proxcompress.proofs import mu, parse_expression, x
from proxcompress.proofs.pairs import hardtanh, signswish


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Piecewise((-1, x < -1), (x, x <= 1), (1, True))", hardtanh(x)),
        ("tanh(2*x) + exp(-x**2)", sp.tanh(2 * x) + sp.exp(-x**2)),
        ("x^2 + mu", x**2 + mu),
        ("(x + mu*sign(x))/(1 + mu)", (x + mu * sp.sign(x)) / (1 + mu)),
        ("Min(Max(x, -1), 1)", sp.Min(sp.Max(x, -1), 1)),
        ("clip(2*x, -1, 1)", sp.Min(sp.Max(2 * x, -1), 1)),
        ("SignSwish(x)", signswish(x)),
        ("SignSwish(x, 3)", signswish(x, 3)),
        ("abs(x) + Abs(x)", 2 * sp.Abs(x)),
        ("Piecewise((0, Eq(x, 0)), (sin(x)/x, True))",
         sp.Piecewise((0, sp.Eq(x, 0)), (sp.sin(x) / x, True))),
        ("0.5*x", sp.Float(0.5) * x),
        ("pi*x", sp.pi * x),
    ],
)
def test_accepted(text: str, expected: sp.Expr) -> None:
    got = parse_expression(text, "--prox")
    assert sp.simplify(got - expected) == 0
    assert got.free_symbols <= {x, mu}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("__import__('os')", "dunder"),
        ("x.__class__", "dunder"),
        ("x.real", "attribute access"),
        ("lambda y: y", "keyword 'lambda'"),
        ("import os", "keyword 'import'"),
        ("open('f')", "unknown name 'open'"),
        ("eval", "unknown name 'eval'"),
        ("y + 1", "unknown name 'y'"),
        ("sin(x, evaluate=False)", "unknown name 'evaluate'"),
        ("x[0]", "'['"),
        ("'x'", "string"),
        ("x == 0", "Eq(a, b)"),
        ("x; x", "';'"),
        ("2x", "malformed"),
        ("(x", "malformed"),
        ("", "empty"),
        ("9**9**9", "nested powers"),
        ("x**1000", "limited to 64"),
        ("x < 1", "not a scalar expression"),
        ("(x, 1)", "not a scalar expression"),
        ("x!", "unexpected character"),
    ],
)
def test_rejected(text: str, why: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_expression(text, "--backward")
    assert err.value.field == "--backward"
    assert why in str(err.value)


def test_rejects_non_strings_and_long_input() -> None:
    with pytest.raises(InvalidInputError):
        parse_expression(3, "--prox")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        parse_expression("x + " * 400 + "x", "--prox")
