"""scripts/table_suite.py on the real public tables ($TABLES_DATA; skipped where absent)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "table_suite.py"


def load_suite() -> ModuleType:
    """The script as a module (it is not part of the package)."""
    spec = importlib.util.spec_from_file_location("table_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["table_suite"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


suite = load_suite()


@pytest.fixture(scope="module")
def tables() -> tuple[Path, dict]:
    path = suite.default_data_dir()
    if not (path / "tables.json").is_file():
        pytest.skip(f"public tables not found at {path} (set TABLES_DATA)")
    return path, suite.load_catalog(path)


def table(tables: tuple[Path, dict], name: str):
    path, catalog = tables
    return suite.load_table(path, name, catalog[name])


@pytest.mark.parametrize("name", ["Computers", "Vocab"])
def test_time_split_puts_the_test_rows_last(tables, name: str) -> None:
    task = suite.make_task(table(tables, name))
    time = task.table.frame.get_column(task.table.time_column)
    assert time[task.test].min() >= time[task.train].max()
    inner = time[task.train]
    assert inner[task.inner_val].min() >= inner[task.inner_train].max()
    n = task.table.frame.height
    assert len(task.test) == round(0.2 * n)
    assert len(np.union1d(task.train, task.test)) == n


def test_random_split_is_seeded_and_a_fifth(tables) -> None:
    slid = table(tables, "SLID")
    assert slid.time_column is None
    assert slid.rows_without_target > 0 and slid.frame.get_column("wages").null_count() == 0
    first, second = suite.make_task(slid), suite.make_task(slid)
    assert np.array_equal(first.test, second.test)
    assert np.array_equal(first.inner_val, second.inner_val)
    n = slid.frame.height
    assert len(first.test) == round(0.2 * n)
    assert len(np.intersect1d(first.train, first.test)) == 0
    assert len(first.train) + len(first.test) == n
    assert len(first.inner_val) == round(0.1 * len(first.train))


def test_date_columns_become_numbers(tables) -> None:
    bundesliga = table(tables, "Bundesliga")
    features = suite.date_features(bundesliga.X)
    assert "Date" not in features.columns
    for part in ("year", "month", "dayofyear", "dayofweek", "days"):
        assert features.get_column(f"Date_{part}").dtype.is_numeric()
    assert suite.categorical_columns(features) == ["HomeTeam", "AwayTeam"]


@pytest.mark.parametrize("model", ["ridge", "lightgbm"])
def test_baselines_score_a_small_table(tables, model: str, monkeypatch) -> None:
    # One thread: OpenMP threads spinning against a busy machine can take minutes here.
    monkeypatch.setattr(suite, "THREADS", 1)
    task = suite.make_task(table(tables, "SLID"))
    result = suite.run_model(model, task, None)
    assert math.isfinite(result["rmse"]) and result["rmse"] > 0, result
    if model == "lightgbm":
        assert result["rounds"] >= 1


def test_json_and_markdown_are_written(tables, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # main sets it; undone after the test
    assert suite.main(["--out", str(tmp_path), "--tables", "SLID", "--models", "ridge"]) == 0
    results = json.loads((tmp_path / "table_suite.json").read_text())
    assert {"commit", "tables", "geomean_ratio", "max_ratio", "fit_config"} <= results.keys()
    entry = results["tables"]["SLID"]
    assert {"rows", "rows_train", "rows_test", "rows_without_target", "target", "time_column",
            "models", "best_gbdt", "ratio"} <= entry.keys()
    assert entry["rows"] == entry["rows_train"] + entry["rows_test"]
    assert math.isfinite(entry["models"]["ridge"]["rmse"])
    assert "| SLID |" in (tmp_path / "table_suite.md").read_text()
    # A second run keeps what is there instead of running it again.
    assert suite.main(["--out", str(tmp_path), "--tables", "SLID", "--models", "ridge"]) == 0
    assert "(kept)" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["--out", "x", "--tables", "Nope"],
    ["--out", "x", "--models", "ridge,xgboost"],
    ["--out", "x", "--rerun", "nope"],
    ["--tables", "SLID"],
])
def test_bad_arguments_are_one_line_and_exit_2(tables, argv: list[str], capsys,
                                               monkeypatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert suite.main(argv) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_missing_data_folder_exits_2(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TABLES_DATA", str(tmp_path / "absent"))
    assert suite.main(["--out", str(tmp_path / "out")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow  # runs the product's fit: minutes on 2 cores
def test_whole_suite_on_one_table(tables, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    argv = ["--out", str(tmp_path), "--tables", "Computers", "--models", "fit,ridge"]
    assert suite.main(argv) == 0
    entry = json.loads((tmp_path / "table_suite.json").read_text())["tables"]["Computers"]
    fit = entry["models"]["fit"]
    assert math.isfinite(fit["rmse"]), fit
    assert fit["seconds"] > 0
