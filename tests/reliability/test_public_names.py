"""A public name of a wing is never also the name of one of its submodules.

Importing a submodule sets the package attribute of that name to the module (the import
system's ``setattr(parent, child, module)``), which would silently replace a lazily resolved
public function of the same name, depending on import order: ``proxcompress.training.deploy``
was the module once ``training.deploy`` had been imported, and the function otherwise.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

WINGS = ["proxcompress", "proxcompress.formulations", "proxcompress.proofs",
         "proxcompress.training", "proxcompress.kernels", "proxcompress.causal"]


@pytest.mark.parametrize("wing", WINGS)
def test_no_public_name_is_a_submodule(wing: str) -> None:
    package = importlib.import_module(wing)
    submodules = {m.name for m in pkgutil.iter_modules(package.__path__)}
    public = set(getattr(package, "__all__", []))
    assert not public & submodules, f"{wing}: rename the module(s) {sorted(public & submodules)}"


@pytest.mark.parametrize("wing", WINGS)
def test_public_names_resolve_after_every_submodule_is_imported(wing: str) -> None:
    package = importlib.import_module(wing)
    for info in pkgutil.iter_modules(package.__path__):
        if info.name == "__main__":
            continue
        try:
            importlib.import_module(f"{wing}.{info.name}")
        except ImportError as exc:  # an optional dependency (CuPy) that is absent
            if "cupy" not in str(exc):
                raise
    for name in getattr(package, "__all__", []):
        obj = getattr(package, name)
        assert not isinstance(obj, type(importlib)), f"{wing}.{name} resolves to a module"
