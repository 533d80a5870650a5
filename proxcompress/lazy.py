"""Lazy public names for a package: ``import proxcompress.X`` stays cheap (no torch, SymPy or
solver import) until a name is used.

A public function or class resolved here is also the checked entry point of the Python API:
functions are wrapped and classes' ``__init__`` patched with
:func:`proxcompress.checks.check_arguments`, so a wrong-typed argument raises
``InvalidInputError`` naming it. Result and record types (what the API returns, listed in
``results``) and protocols are left as they are. A resolved name is cached in the package.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Iterable
from typing import Any


def checked(obj: Any) -> Any:
    """``obj`` as an argument-checked entry point (functions wrapped once, classes patched
    once; anything else unchanged)."""
    from proxcompress.checks import check_arguments

    if inspect.isclass(obj):
        if "__proxcompress_checked__" in vars(obj) or getattr(obj, "_is_protocol", False):
            return obj
        check_arguments(obj)
        obj.__proxcompress_checked__ = True  # type: ignore[attr-defined]
        return obj
    if inspect.isfunction(obj) and not getattr(obj, "__proxcompress_checked__", False):
        wrapped = check_arguments(obj)
        wrapped.__proxcompress_checked__ = True  # type: ignore[attr-defined]
        return wrapped
    return obj


def lazy_getattr(package: str, public: dict[str, str], results: Iterable[str] = ()
                 ) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` resolving ``name`` from ``package.public[name]``; every
    resolved function or class except those in ``results`` is :func:`checked`."""
    unchecked = frozenset(results)

    def __getattr__(name: str) -> Any:
        module = public.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        obj = getattr(importlib.import_module(f"{package}.{module}"), name)
        if name not in unchecked:
            obj = checked(obj)
        setattr(sys.modules[package], name, obj)
        return obj

    return __getattr__
