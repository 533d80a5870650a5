"""The documentation site's sources: every public module of the package has its place in the
API reference, every page of docs/ is in the navigation, and the hook that lays out the
sources for the API reference mirrors the installed package."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _public_modules() -> set[str]:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"]
    out = set()
    for package, folder in mapping.items():
        base = ROOT / folder
        for path in base.rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            if any(p.startswith("_") and p != "__init__" for p in parts):
                continue
            if package == "proxcompress" and parts[0] in {
                    p.split(".")[1] for p in mapping if "." in p}:
                continue  # a wing: listed under its own mapping
            name = ".".join((package, *[p for p in parts if p != "__init__"]))
            out.add(name)
    return out


def test_every_public_module_is_in_the_api_reference() -> None:
    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)$", page.read_text(), re.M))
    missing = sorted(_public_modules() - documented)
    assert not missing, f"add to docs/api/*.md: {missing}"
    assert not documented - _public_modules(), "docs/api names a module that does not exist"


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return []


def test_every_page_is_in_the_navigation() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = set(_nav_pages(config["nav"]))
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")
               if "_hooks" not in p.parts}
    assert pages == on_disk


def test_api_sources_mirror_the_installed_package(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("api_sources",
                                                  ROOT / "docs" / "_hooks" / "api_sources.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    (tmp_path / "mkdocs.yml").touch()
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    for folder in ("proxcompress", "formulations", "proofs", "training", "kernels", "causal"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    hook.on_config(SimpleNamespace(config_file_path=str(tmp_path / "mkdocs.yml")))
    laid = tmp_path / "build" / "api-sources" / "proxcompress"
    found = {".".join(("proxcompress", *p.relative_to(laid).with_suffix("").parts))
             .replace(".__init__", "") for p in laid.rglob("*.py")}
    assert _public_modules() <= found
    assert (laid / "formulations" / "problem.py").read_bytes() == \
        (ROOT / "formulations" / "problem.py").read_bytes()


@pytest.mark.slow
def test_the_site_builds_from_a_clean_checkout(tmp_path: Path) -> None:
    """`mkdocs build --strict` on a checkout without `build/` (what CI gets): the API sources
    must be laid out before mkdocstrings fixes its search paths (the build once failed on every
    clean clone while passing in a working copy)."""
    import shutil
    import subprocess
    import sys

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    for name in ("docs", "mkdocs.yml", "pyproject.toml", "CHANGELOG.md", "README.md"):
        source, target = ROOT / name, clone / name  # the working tree, not only what is committed
        if source.is_dir():
            shutil.rmtree(target)
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    assert not (clone / "build").exists()
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                           "-d", str(tmp_path / "site")], cwd=clone, capture_output=True,
                          text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
