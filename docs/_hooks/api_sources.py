"""MkDocs hook: the source tree the API reference is generated from.

``pyproject.toml`` maps each wing folder into the one ``proxcompress`` namespace
(``[tool.setuptools] package-dir``: ``proxcompress.formulations`` lives in ``formulations/``).
griffe, which reads the sources for mkdocstrings without importing them, looks for a package's
subpackages inside the package's own folder, so this hook lays out ``build/api-sources/`` as the
installed package looks: ``proxcompress/`` with the front door's modules and every wing folder
under it (folders made, each ``.py`` file copied: griffe resolves a linked file to its real
folder and then looks for subpackages there, where the wing folders are not), read from that
same ``package-dir`` table (one place to change). mkdocs.yml points the Python handler's
``paths`` there.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any

OUT = Path("build") / "api-sources"


def _link_sources(source: Path, target: Path) -> None:
    """``target`` mirrors the Python files under ``source`` (copies), wing folders left out."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        package = entry.is_dir() and (entry / "__init__.py").is_file()
        if package and not (target / entry.name).exists():
            _link_sources(entry, target / entry.name)
        elif entry.suffix == ".py":
            shutil.copy2(entry, target / entry.name)


def lay_out(root: Path) -> None:
    """(Re)build ``root / OUT`` from the ``package-dir`` table of ``root``'s pyproject.toml."""
    mapping = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"]["setuptools"]["package-dir"]
    out = root / OUT
    if out.exists():
        shutil.rmtree(out)
    package = out / "proxcompress"
    for name, folder in mapping.items():
        head, _, sub = name.partition(".")
        if head != "proxcompress" or "." in sub:
            raise ValueError(f"package-dir entry {name!r}: only proxcompress.<wing> is laid out")
        _link_sources(root / folder, package / sub if sub else package)


def on_config(config: Any, **_: Any) -> Any:
    lay_out(Path(config.config_file_path).resolve().parent)
    return config


# Laid out as soon as MkDocs loads this hook, while it validates mkdocs.yml: mkdocstrings reads
# its ``paths`` before the hooks' ``on_config`` runs, and on a clean clone a folder that does
# not exist yet is dropped from griffe's search paths (griffe then finds the repository's own
# ``proxcompress/`` folder, which lacks the wings: the docs build failed on every clean clone).
lay_out(Path(__file__).resolve().parents[2])
