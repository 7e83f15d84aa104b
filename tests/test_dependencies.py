"""Every third-party module the package imports is a declared dependency (or in an extra):
an undeclared one works in the development environment and fails after `pip install`."""

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)).lower()


def declared() -> set:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf8"))["project"]
    names = {_name(r) for r in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        names.update(_name(r) for r in extra)
    return names


def imported_modules() -> dict:
    """{top-level module: a file importing it} over spacy_threephase/, stdlib left out."""
    found = {}
    for path in sorted((REPO / "spacy_threephase").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "spacy_threephase":
                    found.setdefault(top, path.relative_to(REPO))
    return found


def test_every_import_is_declared():
    dists = packages_distributions()
    names = declared()
    missing = []
    for module, where in imported_modules().items():
        candidates = {_name(d) for d in dists.get(module, [module])}
        if not candidates & names:
            missing.append(f"{module} ({where}; distribution {', '.join(sorted(candidates))})")
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(missing)
