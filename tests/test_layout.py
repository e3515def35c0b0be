"""The architecture, enforced: the generic core imports no dataset package, and no module
imports another module's private names."""

from __future__ import annotations

import ast
import re
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


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_names_imported_across_modules(path: Path) -> None:
    for module, names in imported_modules(path):
        if module.startswith("rossmann_embed"):
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            assert not private, f"{path.name} imports {private} from {module}"


def module_path(module: str) -> Path | None:
    """The file of a ``rossmann_embed`` module (None for a package's ``__init__`` names)."""
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    return path if path.is_file() else None


def imported_closure(module: str) -> set[str]:
    """Every ``rossmann_embed`` module that importing ``module`` can reach, at any depth and
    including imports inside functions."""
    seen, todo = set(), [module]
    while todo:
        path = module_path(todo.pop())
        if path is None:
            continue
        for name, names in imported_modules(path):
            candidates = [name] + [f"{name}.{n}" for n in names]
            for candidate in candidates:
                if candidate.startswith("rossmann_embed.") and module_path(candidate) \
                        and candidate not in seen:
                    seen.add(candidate)
                    todo.append(candidate)
    return seen


SCORING = {"rossmann_embed.rossmann.geography", "rossmann_embed.tabular.spatial",
           "rossmann_embed.tabular.metrics", "rossmann_embed.rossmann.evaluation",
           "rossmann_embed.rossmann.maps"}


@pytest.mark.parametrize("reader", ["rossmann_embed.rossmann.kaggle_files",
                                    "rossmann_embed.tabular.tables",
                                    "rossmann_embed.movielens.grouplens_files"])
def test_readers_never_import_scoring_code(reader: str) -> None:
    assert not imported_closure(reader) & SCORING


def test_training_never_imports_inference() -> None:
    reached = imported_closure("rossmann_embed.tabular.trainer")
    assert not reached & {"rossmann_embed.tabular.run_directory",
                          "rossmann_embed.tabular.estimator", "rossmann_embed.rossmann.inference"}


def test_rossmann_training_never_imports_inference() -> None:
    assert "rossmann_embed.rossmann.inference" not in imported_closure(
        "rossmann_embed.rossmann.training")


@pytest.mark.parametrize("path", sorted((PACKAGE / "rossmann").glob("*.py")),
                         ids=lambda p: p.name)
def test_the_pipeline_imports_no_study(path: Path) -> None:
    """Studies (backtest, compare, geography study, synthetic data, demo) sit on top of the
    Rossmann pipeline; the pipeline never reaches into them."""
    module = f"rossmann_embed.rossmann.{path.stem}"
    studies = {m for m in imported_closure(module)
               if m.startswith("rossmann_embed.rossmann.studies")}
    assert not studies, f"{path.name} imports {sorted(studies)}"


def test_the_command_line_starts_without_torch() -> None:
    """Reading options and --help stay fast: the options' dataclasses are light modules, and
    each handler imports what it runs."""
    import subprocess
    import sys

    code = "import sys, rossmann_embed.cli; print('torch' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert loaded.stdout.strip() == "False"


def test_one_load_run_in_the_package() -> None:
    """One loader of runs: the kind comes from the run's manifest, not from a second loader."""
    found = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
             if re.search(r"^def load_run\(", p.read_text(encoding="utf-8"), re.MULTILINE)]
    assert found == ["runs.py"]
