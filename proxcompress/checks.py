"""Argument checks shared by every wing's Python API and command line.

Three layers, all raising :class:`~proxcompress.errors.InvalidInputError` naming the argument:

* :func:`check_arguments` decorates a public function (or class): on each call, every
  annotated argument is checked against its annotation *before* the body runs, so that
  ``solve(P, "bnb", time_limit="5")`` or ``solve({"X": 1})`` fail with
  ``InvalidInputError("time_limit" / "problem", ...)`` instead of a ``TypeError`` or
  ``AttributeError`` from deep inside. The rules are deliberately few (see
  :func:`annotation_checker`): types only, no coercion; ranges stay in the functions.
* :func:`integer` and :func:`real` check one value's type *and* range, for the bodies.
* :func:`cli_int` and :func:`cli_float` turn the same checks into ``argparse`` types, so a
  bad flag value (``--seed -1``, ``--snr nan``, ``--n 10**12``) exits 2 naming the flag before
  any work.
"""

from __future__ import annotations

import argparse
import collections.abc
import functools
import inspect
import math
import numbers
import os
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from proxcompress.errors import InvalidInputError

F = TypeVar("F", bound=Callable[..., Any])
Check = Callable[[Any], bool]

#: largest value a CLI size flag takes by default (the memory of a real machine ends earlier:
#: commands bound their total work separately)
MAX_SIZE = 2**31 - 1
#: seeds: NumPy and torch both accept [0, 2**32 - 1] everywhere
MAX_SEED = 2**32 - 1


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a hostile value may be huge)."""
    try:
        text = repr(value) if not isinstance(value, np.ndarray) else (
            f"array(shape={value.shape}, dtype={value.dtype})")
    except Exception:  # a hostile __repr__
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- value checks
def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"

    def text(v: float | None, inf: str) -> str:
        return inf if v is None else f"{v:g}" if isinstance(v, float) else str(v)

    return f"{left}{text(low, '-inf')}, {text(high, 'inf')}{right}"


def integer(field: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int``: an integer (not a bool) in ``[low, high]``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(field, f"= {shown(value)} must be an integer in "
                                f"{_bounds(low, high, False, False)}")
    out = int(value)
    if (low is not None and out < low) or (high is not None and out > high):
        raise InvalidInputError(field, f"= {out} is outside the accepted range "
                                f"{_bounds(low, high, False, False)}")
    return out


def real(field: str, value: Any, low: float | None = None, high: float | None = None, *,
         low_open: bool = False, high_open: bool = False, finite: bool = True) -> float:
    """``value`` as a ``float``: a real number (not a bool, not NaN; finite unless
    ``finite=False``) in the range given by ``low`` / ``high`` (closed unless ``*_open``)."""
    accepted = _bounds(low, high, low_open, high_open)
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise InvalidInputError(field, f"= {shown(value)} must be a real number in {accepted}")
    out = float(value)
    if math.isnan(out) or (finite and math.isinf(out)):
        raise InvalidInputError(field, f"= {out} must be a finite number in {accepted}")
    if low is not None and (out < low or (low_open and out == low)):
        raise InvalidInputError(field, f"= {out:g} is outside the accepted range {accepted}")
    if high is not None and (out > high or (high_open and out == high)):
        raise InvalidInputError(field, f"= {out:g} is outside the accepted range {accepted}")
    return out


def choice(field: str, value: Any, accepted: tuple[Any, ...]) -> Any:
    """``value``, which must be one of ``accepted`` (compared by type and value)."""
    if not any(type(value) is type(a) and value == a for a in accepted):
        raise InvalidInputError(field, f"= {shown(value)}; accepted: "
                                f"{', '.join(map(str, accepted))}")
    return value


# ------------------------------------------------------------------------- argparse types
def _cli(parse: Callable[[str], Any], check: Callable[[Any], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        try:
            return check(value)
        except InvalidInputError as exc:
            raise argparse.ArgumentTypeError(exc.detail) from None

    return convert


def cli_int(low: int | None = 0, high: int | None = MAX_SIZE) -> Callable[[str], int]:
    """An ``argparse`` type: an integer in ``[low, high]`` (argparse names the flag)."""
    return _cli(int, lambda v: integer("value", v, low, high))


def cli_float(low: float | None = None, high: float | None = None, *, low_open: bool = False,
              high_open: bool = False) -> Callable[[str], float]:
    """An ``argparse`` type: a finite number in the given range (``nan``/``inf`` refused)."""
    return _cli(float, lambda v: real("value", v, low, high, low_open=low_open,
                                      high_open=high_open))


# ------------------------------------------------------------------- annotation checking
def _describe(tp: Any) -> str:
    if tp is np.ndarray or typing.get_origin(tp) is np.ndarray:
        return "an array of real numbers"
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " | ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "None"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("collections.abc.", "")


def _is_array_like(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf"
    if isinstance(value, str | bytes | dict | set | type(None)) or isinstance(value, complex):
        return False
    return isinstance(value, list | tuple | numbers.Real) or hasattr(value, "__array__") or (
        hasattr(value, "__cuda_array_interface__"))


def _scalar_array(value: Any, kinds: str) -> bool:
    """A 0-d NumPy array of one of the dtype ``kinds`` (what ``np.load`` gives for a scalar)."""
    return isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in kinds


_SEQUENCE_ORIGINS = {list: (list,), tuple: (tuple,),
                     collections.abc.Sequence: (list, tuple, range, np.ndarray),
                     collections.abc.Iterable: None, collections.abc.Collection: None}
_MAX_ITEMS_CHECKED = 10_000


def annotation_checker(tp: Any) -> Check | None:
    """A predicate for values of annotation ``tp``, or ``None`` where nothing is checked.

    Rules: ``int`` an integral number (not a bool); ``float`` a real number (not a bool, not
    NaN); ``bool``; ``str``; ``Literal[...]`` one of its values; unions and ``None``;
    ``list`` / ``tuple`` / ``Sequence`` / ``Iterable`` of checked items (up to 10000 items);
    ``Mapping`` / ``dict``; ``Callable``; ``os.PathLike``; NumPy arrays (``NDArray``: an array
    of a real dtype or a list, tuple or number that converts to one); other classes by
    ``isinstance``. ``Any``, type variables, non-runtime protocols and names that cannot be
    resolved are not checked.
    """
    if tp is Any or isinstance(tp, TypeVar) or tp is None:
        return None if tp is not None else (lambda v: v is None)
    if tp is type(None):
        return lambda v: v is None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [annotation_checker(a) for a in args]
        if any(p is None for p in parts):
            return None
        return lambda v: any(p(v) for p in parts)  # type: ignore[misc]
    if origin is typing.Literal:
        return lambda v: any(type(v) is type(a) and v == a for a in args)
    if origin is typing.Annotated:
        return annotation_checker(args[0])
    if tp is int:
        return lambda v: (isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_)
                          or _scalar_array(v, "iu"))
    if tp is float:
        return lambda v: ((isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)
                           or _scalar_array(v, "iuf")) and not math.isnan(float(v)))
    if tp is bool:
        return lambda v: isinstance(v, bool | np.bool_)
    if tp is str:
        return lambda v: isinstance(v, str)
    if tp is np.ndarray or origin is np.ndarray:
        return _is_array_like
    if origin in _SEQUENCE_ORIGINS:
        kinds = _SEQUENCE_ORIGINS[origin]
        item = None
        if args and not (origin is tuple and len(args) != 2) and args[-1] is not Ellipsis:
            item = annotation_checker(args[0])
        elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            item = annotation_checker(args[0])

        def sequence(v: Any) -> bool:
            if isinstance(v, str | bytes):
                return False
            if kinds is not None and not isinstance(v, kinds):
                return False
            if kinds is None and not isinstance(v, collections.abc.Iterable):
                return False
            if item is None or not isinstance(v, list | tuple):
                return True
            return all(item(x) for x in v[:_MAX_ITEMS_CHECKED])

        return sequence
    if origin in (dict, collections.abc.Mapping) or tp in (dict, collections.abc.Mapping):
        return lambda v: isinstance(v, collections.abc.Mapping)
    if origin is collections.abc.Callable or tp is collections.abc.Callable:
        return callable
    if origin is os.PathLike or tp is os.PathLike:
        return lambda v: isinstance(v, os.PathLike)
    if origin is type:
        return None
    if isinstance(tp, type):
        if getattr(tp, "_is_protocol", False) and not getattr(tp, "_is_runtime_protocol", False):
            return None
        return lambda v: isinstance(v, tp)
    return None


def _resolve(annotation: Any, globalns: dict[str, Any]) -> Any:
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, globalns)  # noqa: S307 -- our own source's annotations
    except Exception:  # a TYPE_CHECKING-only name: not checked
        return Any


def _globals(func: Callable[..., Any]) -> dict[str, Any]:
    """The namespace ``func``'s annotations were written in (through decorators such as
    ``torch.no_grad``, which keep the original as ``__wrapped__``)."""
    return getattr(inspect.unwrap(func), "__globals__", {})


@functools.cache
def _plan(func: Callable[..., Any]) -> tuple[tuple[str, int | None, Check], ...]:
    """(name, positional index or None, predicate) for each checked parameter of ``func``."""
    signature = inspect.signature(func)
    globalns = _globals(func)
    plan = []
    for index, (name, param) in enumerate(signature.parameters.items()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or name in ("self", "cls"):
            continue
        if param.annotation is param.empty or name.startswith("_"):
            continue
        check = annotation_checker(_resolve(param.annotation, globalns))
        if check is None:
            continue
        positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
        plan.append((name, index if positional else None, check))
    return tuple(plan)


def _check_call(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    signature_params = None
    for name, index, check in _plan(func):
        if index is not None and index < len(args):
            value = args[index]
        elif name in kwargs:
            value = kwargs[name]
        else:
            continue  # the default
        if not check(value):
            if signature_params is None:
                signature_params = inspect.signature(func).parameters
            annotation = _resolve(signature_params[name].annotation, _globals(func))
            raise InvalidInputError(name, f"= {shown(value)} ({type(value).__name__}) is not "
                                    f"accepted; expected {_describe(annotation)}")


def check_arguments(obj: F) -> F:
    """Check every annotated argument of a function (or of a class's ``__init__``) against
    its annotation on each call; a mismatch raises ``InvalidInputError`` naming it."""
    if isinstance(obj, type):
        init = obj.__init__  # type: ignore[misc]

        @functools.wraps(init)
        def checked_init(self: Any, *args: Any, **kwargs: Any) -> None:
            _check_call(init, (self, *args), kwargs)
            init(self, *args, **kwargs)

        obj.__init__ = checked_init  # type: ignore[misc]
        return obj

    @functools.wraps(obj)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _check_call(obj, args, kwargs)
        return obj(*args, **kwargs)

    return typing.cast(F, wrapper)


__all__ = [
    "MAX_SEED",
    "MAX_SIZE",
    "annotation_checker",
    "check_arguments",
    "choice",
    "cli_float",
    "cli_int",
    "integer",
    "real",
    "shown",
]
