"""The scripts under examples/ run to the end on the shared data and draw their figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_table_suite import suite

ROOT = Path(__file__).resolve().parents[1]


def test_the_export_example_serves_the_run_with_onnxruntime(tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="the `export` extra is not installed")
    tables = suite.default_data_dir()
    if not (tables / "Bundesliga.csv").is_file():
        pytest.skip(f"public tables not found at {tables} (set TABLES_DATA)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "export_onnx.py"), "--table",
         str(tables / "Bundesliga.csv"), "--out", str(tmp_path)],
        capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    difference = float(done.stdout.strip().splitlines()[-1].rsplit(" ", 1)[1])
    assert difference <= 1e-5
    assert (tmp_path / "export_parity.png").stat().st_size > 1000
