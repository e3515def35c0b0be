"""The architecture, enforced: the generic core imports no dataset package, and no module
imports another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rossmann_embed"
CORE = PACKAGE / "tabular"


def imported_modules(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import statement in ``path``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_imports_no_dataset_package(path: Path) -> None:
    for module, names in imported_modules(path):
        if module == "rossmann_embed":
            assert all(name == "tabular" for name in names), f"{path.name} imports {names}"
        elif module.startswith("rossmann_embed."):
            assert module.startswith("rossmann_embed.tabular"), f"{path.name} imports {module}"


def test_the_core_has_the_modules_the_design_names() -> None:
    modules = {p.stem for p in CORE.glob("*.py")}
    assert {"encoding", "data", "model", "training", "runs", "estimator", "export", "spatial",
            "plots", "files", "metrics"} <= modules


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_names_imported_across_modules(path: Path) -> None:
    for module, names in imported_modules(path):
        if module.startswith("rossmann_embed"):
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            assert not private, f"{path.name} imports {private} from {module}"
