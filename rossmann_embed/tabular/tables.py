"""Read and write a user's table (CSV or parquet) with one clear line for anything wrong."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rossmann_embed.tabular.errors import InputError, first_line
from rossmann_embed.tabular.files import write_csv, write_parquet

SUFFIXES = (".csv", ".parquet")


def read_table(path: str | Path) -> pl.DataFrame:
    """A CSV (types inferred from every row, dates parsed) or parquet file with at least one
    row; anything else is an ``InputError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        what = "a directory" if path.is_dir() else "missing"
        raise InputError.at(str(path), f"a CSV or parquet file (this path is {what})")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError.at(str(path), "a file ending in .csv or .parquet", value=path.suffix)
    try:
        if suffix == ".parquet":
            frame = pl.read_parquet(path)
        else:
            frame = pl.read_csv(path, try_parse_dates=True, infer_schema_length=None)
    # A panic of polars' reader on some broken bytes is not an Exception: caught by name.
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError,
            UnicodeDecodeError) as error:
        kind = "parquet" if suffix == ".parquet" else "UTF-8 CSV"
        first = first_line(error) or type(error).__name__
        raise InputError.at(str(path), f"a readable {kind} file ({first})") from None
    if frame.height == 0:
        raise InputError.at(str(path), "at least one data row (the table is empty)")
    return frame


def write_table(frame: pl.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` atomically as CSV or parquet, by the file's suffix."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise InputError.at(str(path), "an output file ending in .csv or .parquet",
                            value=path.suffix)
    if path.is_dir():
        raise InputError.at(str(path), "a file to write (this path is a directory)")
    if path.suffix.lower() == ".parquet":
        return write_parquet(frame, path)
    return write_csv(frame, path)


def require_column(frame: pl.DataFrame, column: str, source: str, what: str) -> None:
    """An ``InputError`` naming the columns there are when ``column`` is not one of them."""
    if column not in frame.columns:
        raise InputError.at(source, f"a {what} column named {column!r} (columns: "
                            f"{', '.join(frame.columns)})", column=column)
