"""Safe parsing of user expressions in ``x`` and ``mu``.

Nothing is evaluated as Python until the text has passed two whitelists:

1. tokens (``tokenize``): no strings, no attribute access (``.`` outside numbers), no dunder
   names, no ``;`` / ``:`` / ``[`` / ``{`` / ``@`` / ``=``-assignment; every name must be a
   symbol (``x``, ``mu``), an allowed function or an allowed constant;
2. syntax tree (``ast``): a single expression built from numbers, the allowed names, arithmetic
   (``+ - * / ** ^``), comparisons (``< <= > >=``), ``& | ~`` between conditions, tuples (for
   ``Piecewise`` pieces) and calls of allowed functions with positional arguments only.
   Exponents must be small constant-free-of-powers expressions (no ``9**9**9``).

Only then :func:`sympy.parse_expr` runs, with a global namespace holding nothing but the allowed
names and SymPy's number constructors (no builtins). Allowed functions: ``Piecewise``, ``Min``,
``Max``, ``Abs`` (also ``abs``), ``sign``, ``Heaviside``, ``Eq``, ``Ne``, ``sqrt``, ``exp``,
``log``, ``sin``, ``cos``, ``tan``, ``sinh``, ``cosh``, ``tanh``, ``atan``, ``erf``, plus the
catalogue's ``SignSwish(u[, beta])``, ``sigmoid(u)``, ``hardtanh(u)`` and ``clip(u, lo, hi)``;
constants ``pi`` and ``E``. ``==`` is rejected (Python would compare structurally); write
``Eq(x, 0)``.
"""

from __future__ import annotations

import ast
import io
import keyword
import tokenize
from collections.abc import Callable
from typing import Any

import sympy as sp

from proxcompress.errors import InvalidInputError
from proxcompress.proofs.analysis import mu, x
from proxcompress.proofs.catalogue import hardtanh, sigmoid, signswish

MAX_LENGTH = 1000
MAX_NODES = 400
MAX_EXPONENT = 64
MAX_DIGITS = 30


def _clip(u: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
    return sp.Min(sp.Max(u, lo), hi)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "Piecewise": sp.Piecewise,
    "Min": sp.Min,
    "Max": sp.Max,
    "Abs": sp.Abs,
    "abs": sp.Abs,
    "sign": sp.sign,
    "Heaviside": sp.Heaviside,
    "Eq": sp.Eq,
    "Ne": sp.Ne,
    "sqrt": sp.sqrt,
    "exp": sp.exp,
    "log": sp.log,
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "atan": sp.atan,
    "erf": sp.erf,
    "SignSwish": signswish,
    "sigmoid": sigmoid,
    "hardtanh": hardtanh,
    "clip": _clip,
}
CONSTANTS: dict[str, sp.Basic] = {"pi": sp.pi, "E": sp.E, "True": sp.true, "False": sp.false}
SYMBOLS: dict[str, sp.Symbol] = {"x": x, "mu": mu}

_BANNED_OPS = {".", ";", ":", "[", "]", "{", "}", "@", "=", "==", "!=", ":=", "->", "**=",
               "+=", "-=", "*=", "/=", "//", "%", "<<", ">>"}
_BIN_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.BitXor, ast.BitAnd, ast.BitOr)
_CMP_OPS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_UNARY_OPS = (ast.UAdd, ast.USub, ast.Invert)


def _reject(field: str, text: str, why: str) -> InvalidInputError:
    shown = text if len(text) <= 60 else text[:57] + "..."
    return InvalidInputError(field, f"cannot use expression {shown!r}: {why}")


def _check_tokens(text: str, field: str) -> None:
    allowed = set(FUNCTIONS) | set(CONSTANTS) | set(SYMBOLS)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError) as exc:
        raise _reject(field, text, f"malformed ({exc})") from None
    for tok in tokens:
        if tok.type == tokenize.STRING:
            raise _reject(field, text, "string literals are not allowed")
        if tok.type == tokenize.NAME:
            if "__" in tok.string:
                raise _reject(field, text, f"dunder name {tok.string!r} is not allowed")
            if tok.string not in allowed and keyword.iskeyword(tok.string):
                raise _reject(field, text, f"Python keyword {tok.string!r} is not allowed")
            if tok.string not in allowed:
                raise _reject(
                    field, text,
                    f"unknown name {tok.string!r}; allowed: x, mu, "
                    f"{', '.join(sorted(set(FUNCTIONS) | set(CONSTANTS)))}",
                )
        if tok.type == tokenize.OP and tok.string in _BANNED_OPS:
            what = "attribute access" if tok.string == "." else f"operator {tok.string!r}"
            hint = " (write Eq(a, b))" if tok.string == "==" else ""
            raise _reject(field, text, f"{what} is not allowed{hint}")
        if tok.type == tokenize.ERRORTOKEN and tok.string.strip():
            raise _reject(field, text, f"unexpected character {tok.string!r}")


def _check_tree(tree: ast.AST, field: str, text: str) -> None:
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise _reject(field, text, f"more than {MAX_NODES} syntax nodes")
    for node in nodes:
        if isinstance(node, ast.Expression | ast.Load | ast.Tuple | ast.Name | ast.Compare):
            continue
        if isinstance(node, _BIN_OPS + _CMP_OPS + _UNARY_OPS):
            continue
        if isinstance(node, ast.BinOp):
            if not isinstance(node.op, _BIN_OPS):
                raise _reject(field, text, f"operator {type(node.op).__name__} is not allowed")
            if isinstance(node.op, ast.Pow | ast.BitXor):
                _check_exponent(node.right, field, text)
            continue
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, _UNARY_OPS):
                raise _reject(field, text, f"operator {type(node.op).__name__} is not allowed")
            continue
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                continue
            if not isinstance(value, int | float):
                raise _reject(field, text, f"constant {value!r} is not allowed")
            if isinstance(value, int) and len(str(abs(value))) > MAX_DIGITS:
                raise _reject(field, text, f"integer literals are limited to {MAX_DIGITS} digits")
            continue
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise _reject(field, text, "only calls of the allowed functions are allowed")
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise _reject(field, text, "function calls take positional arguments only")
            continue
        raise _reject(field, text, f"{type(node).__name__} is not allowed")


def _check_exponent(node: ast.AST, field: str, text: str) -> None:
    for sub in ast.walk(node):
        if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Pow | ast.BitXor):
            raise _reject(field, text, "nested powers in an exponent are not allowed")
        if isinstance(sub, ast.Constant) and isinstance(sub.value, int | float) and (
            abs(sub.value) > MAX_EXPONENT
        ):
            raise _reject(field, text, f"exponent constants are limited to {MAX_EXPONENT}")


def parse_expression(text: str, field: str = "expression") -> sp.Expr:
    """Parse a SymPy expression in ``x`` (and optionally ``mu``) safely.

    Args:
        text: e.g. ``"Piecewise((-1, x < -1), (x, x <= 1), (1, True))"`` or ``"tanh(2*x)"``.
        field: the name reported in errors (e.g. ``"--prox"``).

    Returns:
        the expression, with ``x`` real and ``mu`` positive (the symbols of
        :mod:`proxcompress.proofs.analysis`).

    Raises:
        InvalidInputError: naming ``field``, for non-strings, empty or over-long text, anything
            outside the whitelists (dunder names, attribute access, ``lambda``, imports, strings,
            unknown names, keyword arguments), malformed syntax, a result that is not a scalar
            expression, or symbols other than ``x`` and ``mu``.
    """
    if not isinstance(text, str):
        raise InvalidInputError(field, f"must be a string, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise InvalidInputError(field, "is empty")
    if len(stripped) > MAX_LENGTH:
        raise InvalidInputError(field, f"is longer than {MAX_LENGTH} characters")
    if "__" in stripped:
        raise _reject(field, stripped, "dunder names are not allowed")
    _check_tokens(stripped, field)
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        raise _reject(field, stripped, f"malformed ({exc.msg})") from None
    _check_tree(tree, field, stripped)
    from sympy.parsing.sympy_parser import (
        convert_xor,
        parse_expr,
        standard_transformations,
    )

    namespace: dict[str, Any] = {
        "__builtins__": {},
        "Integer": sp.Integer,
        "Float": sp.Float,
        "Rational": sp.Rational,
        "Symbol": sp.Symbol,
        **FUNCTIONS,
        **CONSTANTS,
    }
    try:
        result = parse_expr(
            stripped,
            local_dict=dict(SYMBOLS),
            global_dict=namespace,
            transformations=(*standard_transformations, convert_xor),
        )
    except (SyntaxError, TypeError, ValueError, AttributeError, NameError,
            sp.SympifyError) as exc:
        raise _reject(field, stripped, f"SymPy rejected it ({exc})") from None
    if not isinstance(result, sp.Expr) or isinstance(result, sp.Tuple):
        raise _reject(field, stripped, f"is a {type(result).__name__}, not a scalar expression")
    extra = result.free_symbols - {x, mu}
    if extra:
        raise _reject(field, stripped, f"unknown symbols {sorted(map(str, extra))}")
    return result


__all__ = ["CONSTANTS", "FUNCTIONS", "SYMBOLS", "parse_expression"]
