"""``verify`` expressions: the work of every expression is bounded before SymPy evaluates it
(issue 13). ``^`` counts as ``**`` (right-associative, as SymPy reads it), nested powers of any
shape are refused or stay within the digit and degree bounds, conditions must be relations,
and anything SymPy cannot analyse is refused naming the flag, never a traceback.

Generated: power towers of any height with random exponents, operators (``^`` / ``**``) and
nesting; random expressions from the accepted grammar; non-relational conditions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import refused_here, run

from proxcompress.errors import InvalidInputError
from proxcompress.proofs import mu, parse_expression, x
from proxcompress.proofs.parse import MAX_DEGREE, MAX_EXPONENT, MAX_RESULT_DIGITS

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _size_ok(expr: sp.Basic) -> bool:
    """Every number in ``expr`` has at most MAX_RESULT_DIGITS digits and every power of a
    symbol at most degree MAX_DEGREE."""
    for sub in sp.preorder_traversal(expr):
        if isinstance(sub, sp.Integer) and len(str(abs(int(sub)))) > MAX_RESULT_DIGITS + 1:
            return False
        if isinstance(sub, sp.Rational) and not isinstance(sub, sp.Integer) and max(
                len(str(abs(sub.p))), len(str(sub.q))) > MAX_RESULT_DIGITS + 1:
            return False
        if isinstance(sub, sp.Pow) and sub.exp.is_Number and abs(sub.exp) > MAX_DEGREE:
            return False
    return True


@st.composite
def towers(draw: st.DrawFn) -> str:
    base = draw(st.sampled_from(["x", "2", "10", "(x + 1)", "mu", "(2*x)"]))
    text = base
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["^", "**"]))
        exponent = str(draw(st.integers(-99, 99)))
        exponent = f"({exponent})" if exponent.startswith("-") else exponent
        if draw(st.booleans()):
            text = f"({text}){op}{exponent}"  # left-nested: (a^b)^c
        else:
            text = f"{text}{op}{exponent}"  # right-nested as written: a^(b^c)
    return f"{text}*x"


@SETTINGS
@given(text=towers())
def test_power_towers_are_refused_or_bounded(text: str) -> None:
    try:
        result = parse_expression(text, "--prox")
    except InvalidInputError as err:
        assert err.field == "--prox"
        return
    assert _size_ok(result), text


@pytest.mark.parametrize("text", ["2^64^64*x", "2**64**64*x", "x^64^64", "((10**64)**64)**64*x",
                                  "(((10**64)**64)**64)**64*x", "((x**64)**64)**64",
                                  "x**(64*64*64*64)", "x**(2**6)**9", "10^(10^10)",
                                  f"x**{MAX_EXPONENT + 1}", "1e400*x"])
def test_issue_towers_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_expression(text, "--backward")
    assert err.value.field == "--backward"


LEAVES = st.sampled_from(["x", "mu", "1", "2", "0.5", "64", "pi", "E", "-1", "True", "10**30"])
FUNCTIONS = ["sin", "exp", "log", "sqrt", "tanh", "Abs", "sign", "Heaviside", "erf",
             "sigmoid", "hardtanh", "SignSwish"]


def _grammar(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**", "^", "<", "&"]),
                       children).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
    call = st.tuples(st.sampled_from(FUNCTIONS), children).map(lambda t: f"{t[0]}({t[1]})")
    pair = st.tuples(st.sampled_from(["Min", "Max", "Eq", "Ne"]), children, children).map(
        lambda t: f"{t[0]}({t[1]}, {t[2]})")
    piecewise = st.tuples(children, children, children).map(
        lambda t: f"Piecewise(({t[0]}, {t[1]}), ({t[2]}, True))")
    return binary | call | pair | piecewise


EXPRESSIONS = st.recursive(LEAVES, _grammar, max_leaves=12)


@SETTINGS
@given(text=EXPRESSIONS)
def test_random_expressions_parse_or_are_refused(text: str) -> None:
    try:
        result = parse_expression(text, "--prox")
    except InvalidInputError as err:
        assert err.field == "--prox"
        return
    assert isinstance(result, sp.Expr) and result.free_symbols <= {x, mu}
    assert _size_ok(result)


@SETTINGS
@given(condition=st.sampled_from(["x", "mu", "1", "2*x", "x + 1", "pi", "sin(x)"]),
       value=st.sampled_from(["1", "x", "0"]))
def test_conditions_must_be_relations(condition: str, value: str) -> None:
    with pytest.raises(InvalidInputError, match="condition|Boolean"):
        parse_expression(f"Piecewise(({value}, {condition}), (0, True))", "--prox")


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=towers(), flag=st.sampled_from(["--prox", "--backward"]))
def test_cli_refuses_before_writing(tmp_path: Path, text: str, flag: str) -> None:
    other = "--backward" if flag == "--prox" else "--prox"
    argv = ["verify", flag, text, other, "x", "--json", "v.json", "--markdown", "v.md"]
    try:
        parse_expression(text, flag)
    except InvalidInputError:
        refused_here(argv, flag, tmp_path)


def test_piecewise_without_relation_from_the_cli(tmp_path: Path) -> None:
    refused_here(["verify", "--prox", "Piecewise((1, x))", "--backward", "x", "--json",
                  "v.json"], "--prox", tmp_path)


def test_time_budget_refuses_naming_the_pair(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An analysis past ``--time-limit`` is refused (exit 2) and writes nothing. The slow
    analysis is simulated: certify sleeps longer than the budget."""
    import time

    import proxcompress.proofs.checks as checks

    monkeypatch.setattr(checks, "certify", lambda *a, **k: time.sleep(5))
    answer = refused_here(["verify", "--prox", "x", "--backward", "x", "--time-limit", "0.3",
                           "--json", "v.json"], "--prox/--backward", tmp_path)
    assert "budget" in answer.message


def test_valid_pair_still_certifies(tmp_path: Path) -> None:
    answer = run(["verify", "--prox", "(x + mu*sign(x))/(1 + mu)", "--backward", "tanh(x)",
                  "--json", "v.json"], tmp_path)
    assert answer.exception is None and answer.code in (0, 1)
    assert json.loads((tmp_path / "v.json").read_text())["pairs"]
