"""Safe parsing of user expressions in ``x`` and ``mu``.

Nothing is evaluated as Python until the text has passed two whitelists:

1. tokens (``tokenize``): no strings, no attribute access (``.`` outside numbers), no dunder
   names, no ``;`` / ``:`` / ``[`` / ``{`` / ``@`` / ``=``-assignment; every name must be a
   symbol (``x``, ``mu``), an allowed function or an allowed constant;
2. syntax tree (``ast``): a single expression built from numbers, the allowed names, arithmetic
   (``+ - * / ** ^``), comparisons (``< <= > >=``), ``& | ~`` between conditions, tuples (for
   ``Piecewise`` pieces) and calls of allowed functions with positional arguments only.
   ``^`` is read as ``**`` *before* this check (SymPy's ``convert_xor``), so ``2^64^64`` is the
   nested power ``2**(64**64)`` it evaluates to, not ``(2^64)^64``.
3. work bound (:func:`work_bound`): before SymPy sees the text, an upper bound of what evaluating
   it can build is computed on the tree: every constant exponent is evaluated exactly (exponents
   hold no powers) and must lie in ``[-MAX_EXPONENT, MAX_EXPONENT]``; the number of decimal
   digits of every constant subexpression (``((10**64)**64)**64`` has 262145) must stay below
   ``MAX_RESULT_DIGITS`` and the polynomial degree in ``x`` and ``mu`` of every subexpression
   (``((x**64)**64)**64``) below ``MAX_DEGREE``.

Only then :func:`sympy.parse_expr` runs, with a global namespace holding nothing but the allowed
names and SymPy's number constructors (no builtins). Allowed functions: ``Piecewise``, ``Min``,
``Max``, ``Abs`` (also ``abs``), ``sign``, ``Heaviside``, ``Eq``, ``Ne``, ``sqrt``, ``exp``,
``log``, ``sin``, ``cos``, ``tan``, ``sinh``, ``cosh``, ``tanh``, ``atan``, ``erf``, plus the
catalogue's ``SignSwish(u[, beta])``, ``sigmoid(u)``, ``hardtanh(u)`` and ``clip(u, lo, hi)``;
constants ``pi`` and ``E``. ``==`` is rejected (Python would compare structurally); write
``Eq(x, 0)``. After parsing, conditions (``Piecewise`` conditions, operands of ``& | ~``)
must be relations or ``True`` / ``False``, never a bare number or ``x`` (``Piecewise((1, x))``).

The analysis of a parsed pair (``proxcompress verify``) has a time budget as well
(:func:`time_budget`).
"""

from __future__ import annotations

import ast
import contextlib
import io
import keyword
import math
import signal
import threading
import tokenize
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import sympy as sp

from proxcompress.errors import InvalidInputError
from proxcompress.proofs.analysis import mu, x
from proxcompress.proofs.pairs import hardtanh, sigmoid, signswish

MAX_LENGTH = 1000
MAX_NODES = 400
MAX_EXPONENT = 64
MAX_DIGITS = 30
MAX_RESULT_DIGITS = 400
MAX_DEGREE = 4096


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
            if node.func.id == "Piecewise":
                _check_pieces(node, field, text)
            continue
        raise _reject(field, text, f"{type(node).__name__} is not allowed")


_RELATIONS = ("Eq", "Ne")


def _is_condition(node: ast.AST) -> bool:
    """Syntactically a condition: a comparison, ``Eq`` / ``Ne``, ``True`` / ``False``, or
    ``& | ~`` of conditions."""
    if isinstance(node, ast.Compare):
        return True
    if isinstance(node, ast.Constant):
        return isinstance(node.value, bool)
    if isinstance(node, ast.Name):
        return node.id in ("True", "False")
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Name) and node.func.id in _RELATIONS
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd | ast.BitOr):
        return _is_condition(node.left) and _is_condition(node.right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
        return _is_condition(node.operand)
    return False


def _check_pieces(node: ast.Call, field: str, text: str) -> None:
    """``Piecewise`` takes ``(value, condition)`` pairs whose conditions are relations."""
    if not node.args:
        raise _reject(field, text, "Piecewise needs at least one (value, condition) pair")
    for piece in node.args:
        if not isinstance(piece, ast.Tuple) or len(piece.elts) != 2:
            raise _reject(field, text, "Piecewise takes (value, condition) pairs")
        if not _is_condition(piece.elts[1]):
            shown = ast.unparse(piece.elts[1])[:40]
            raise _reject(field, text, f"the condition {shown!r} is not a relation (write e.g. "
                          "x < 1, Eq(x, 0) or True)")


def _check_exponent(node: ast.AST, field: str, text: str) -> None:
    for sub in ast.walk(node):
        if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Pow | ast.BitXor):
            raise _reject(field, text, "nested powers in an exponent are not allowed")
        if isinstance(sub, ast.Constant) and isinstance(sub.value, int | float) and (
            abs(sub.value) > MAX_EXPONENT
        ):
            raise _reject(field, text, f"exponent constants are limited to {MAX_EXPONENT}")


def _exact(node: ast.AST) -> Fraction | None:
    """The exact value of a power-free constant subtree (``None`` when it holds a name)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, float) and not math.isfinite(node.value):
            return None
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        inner = _exact(node.operand)
        return None if inner is None else (inner if isinstance(node.op, ast.UAdd) else -inner)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
        a, b = _exact(node.left), _exact(node.right)
        if a is None or b is None:
            return None
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        return None if b == 0 else a / b
    return None


def _digits(value: Fraction) -> float:
    return max(len(str(abs(value.numerator))), len(str(value.denominator)))


def work_bound(tree: ast.AST, field: str, text: str) -> tuple[float, float]:
    """Upper bounds ``(digits, degree)`` of what SymPy can build from a checked tree (module
    docstring, point 3); raises when either passes its limit or an exponent its range."""

    def bound(node: ast.AST) -> tuple[float, float]:
        if isinstance(node, ast.Expression):
            return bound(node.body)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, int | float) and not isinstance(node.value, bool):
                value = node.value
                if isinstance(value, float):
                    if not math.isfinite(value):
                        raise _reject(field, text, "number literals must be finite floats "
                                      "(|v| < 1.8e308)")
                    return abs(math.log10(abs(value))) + 1 if value else 1.0, 0.0
                return float(_digits(Fraction(value))), 0.0
            return 1.0, 0.0
        if isinstance(node, ast.Name):
            return (0.0, 1.0) if node.id in SYMBOLS else (1.0, 0.0)
        children = [c for c in ast.iter_child_nodes(node)
                    if not isinstance(c, ast.operator | ast.unaryop | ast.cmpop | ast.Load
                                      | ast.boolop | ast.expr_context)]
        if isinstance(node, ast.Call):
            children = list(node.args)
        parts = [bound(c) for c in children]
        digits = max((p[0] for p in parts), default=0.0)
        degree = max((p[1] for p in parts), default=0.0)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Div):
            digits, degree = parts[0][0] + parts[1][0], parts[0][1] + parts[1][1]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
            digits += 1
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            exponent = _exact(node.right)
            if exponent is not None:
                if abs(exponent) > MAX_EXPONENT:
                    raise _reject(field, text, f"exponents are limited to [-{MAX_EXPONENT}, "
                                  f"{MAX_EXPONENT}] (this one is {float(exponent):.6g})")
                scale = max(float(abs(exponent)), 1.0)
                digits, degree = parts[0][0] * scale, parts[0][1] * scale
            else:
                digits, degree = parts[0][0], parts[0][1]
        if digits > MAX_RESULT_DIGITS:
            raise _reject(field, text, f"a constant would have about {digits:.3g} digits; "
                          f"accepted: at most {MAX_RESULT_DIGITS}")
        if degree > MAX_DEGREE:
            raise _reject(field, text, f"a power of x or mu of degree about {degree:.3g}; "
                          f"accepted: at most {MAX_DEGREE}")
        return digits, degree

    return bound(tree)


def _check_conditions(result: sp.Basic, field: str, text: str) -> None:
    """Conditions must be relations or booleans, never numbers or symbols."""
    from sympy.logic.boolalg import Boolean, BooleanFunction

    def condition(c: sp.Basic) -> None:
        if not isinstance(c, Boolean) or isinstance(c, sp.Symbol):
            raise _reject(field, text, f"the condition {str(c)[:40]!r} is not a relation "
                          "(write e.g. x < 1, Eq(x, 0) or True)")

    for sub in sp.preorder_traversal(result):
        if isinstance(sub, sp.Piecewise):
            for pair in sub.args:
                condition(pair.cond)
        elif isinstance(sub, BooleanFunction):
            for arg in sub.args:
                condition(arg)


@contextlib.contextmanager
def time_budget(seconds: float | None, field: str, what: str) -> Iterator[None]:
    """Raise ``InvalidInputError(field, ...)`` when the block runs longer than ``seconds``
    (wall clock; a SIGALRM timer, so only in the main thread of the process; elsewhere, or with
    ``None``, no limit). SymPy is pure Python, so the timer interrupts it between bytecodes."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise InvalidInputError(field, f"{what} took longer than the budget of {seconds:g} s; "
                                "simplify the expression or raise the budget (--time-limit)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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
    source = stripped.replace("^", "**")  # what convert_xor does, before the tree is checked
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise _reject(field, stripped, f"malformed ({exc.msg})") from None
    _check_tree(tree, field, stripped)
    work_bound(tree, field, stripped)
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
            source,
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
    _check_conditions(result, field, stripped)
    return result


__all__ = ["CONSTANTS", "FUNCTIONS", "SYMBOLS", "parse_expression", "time_budget", "work_bound"]
