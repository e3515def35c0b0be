"""Atomic writes: readers never see a half-written file, whatever writes it."""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it onto ``path``.

    The unique temporary name lets parallel writers of one directory coexist. Parent
    directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, data: Any) -> Path:
    """Write indented, strict JSON atomically: dates and paths as strings, a figure that is
    not finite (NaN, infinity) as ``null``, which every JSON reader takes."""
    return write_text(path, json.dumps(strict_json(data), indent=2, default=str,
                                       allow_nan=False) + "\n")


def strict_json(data: Any) -> Any:
    """``data`` with every float that is not finite replaced by None, at any depth."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: strict_json(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict_json(value) for value in data]
    return data


def write_csv(frame: pl.DataFrame, path: Path) -> Path:
    """Write a CSV atomically."""
    return atomic_write(path, frame.write_csv)


def write_parquet(frame: pl.DataFrame, path: Path, row_group_size: int | None = None) -> Path:
    """Write a parquet file atomically (row groups of ``row_group_size`` rows: polars'
    default when None)."""
    return atomic_write(path, lambda tmp: frame.write_parquet(tmp, row_group_size=row_group_size))
