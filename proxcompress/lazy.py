"""Lazy public names for a package: ``import proxcompress.X`` stays cheap (no torch, SymPy or
solver import) until a name is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, public: dict[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` resolving ``name`` from ``package.public[name]``."""

    def __getattr__(name: str) -> Any:
        module = public.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
