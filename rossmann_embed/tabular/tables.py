"""Read and write a user's table (CSV or parquet), and check its numbers, with one clear line
for anything wrong."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from rossmann_embed.tabular.errors import NUMBER_RULE, InputError, first_line
from rossmann_embed.tabular.files import write_csv, write_parquet

SUFFIXES = (".csv", ".parquet")
# The first bytes of kinds of file that turn up named .csv: what to call them.
SIGNATURES = {
    b"\xff\xfe": "UTF-16 text",  # Excel's "Unicode text"
    b"\xfe\xff": "UTF-16 text",
    b"PAR1": "a parquet file",
    b"PK\x03\x04": "a zip archive (an .xlsx workbook is one)",
    b"\xd0\xcf\x11\xe0": "an old Office document (.xls?)",
    b"\x1f\x8b": "a gzip archive",
    b"BZh": "a bzip2 archive",
    b"\x28\xb5\x2f\xfd": "a zstd archive",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"SQLite format 3": "an SQLite database",
    b"ARROW1": "an Arrow IPC file",
}
SNIFF_BYTES = 8192
ROWS_PER_GROUP = 131_072  # row groups of a CSV written as parquet: units of streaming
READ_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError,
               UnicodeDecodeError, pa.ArrowException)


def file_kind(path: Path) -> str:
    """What a file's first bytes say it is: a known kind (``SIGNATURES``), "binary data" (NUL
    bytes, which no UTF-8 CSV holds), or "text"."""
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    for signature, kind in SIGNATURES.items():
        if head.startswith(signature):
            return kind
    return "binary data" if b"\x00" in head else "text"


def check_kind(path: Path, expected: str) -> None:
    """An ``InputError`` when the bytes of ``path`` are not what its name says: ``expected``
    is "text" for a CSV or "a parquet file"."""
    kind = file_kind(path)
    if kind != expected:
        wanted = "CSV text" if expected == "text" else expected
        hint = {"text": "a CSV: rename it to .csv", "a parquet file": "rename it to .parquet",
                "UTF-16 text": "save the file as UTF-8"}
        raise InputError.at(str(path), f"{wanted}, as the name says", value=kind,
                            hint=hint.get(kind, "export the table as CSV or parquet"))


def read_table(path: str | Path) -> pl.DataFrame:
    """A CSV (types inferred from every row, dates parsed) or parquet file with at least one
    row; anything else is an ``InputError`` naming the file."""
    path = check_table_file(path)
    check_header(path)
    try:
        if path.suffix.lower() == ".parquet":
            frame = pl.read_parquet(path)
        else:
            frame = pl.read_csv(path, try_parse_dates=True, infer_schema_length=None)
    # A panic of polars' reader on some broken bytes is not an Exception: caught by name.
    except READ_ERRORS as error:
        raise unreadable(path, error) from None
    if frame.height == 0:
        raise InputError.at(str(path), "at least one data row (the table is empty)")
    return frame


def as_parquet(path: str | Path, directory: str | Path) -> Path:
    """``path`` itself when it is a parquet file; a CSV written as parquet into ``directory``
    by polars' streaming engine (types inferred from every row and dates parsed, as
    ``read_table``), in row groups of ``ROWS_PER_GROUP``. Memory stays flat in rows."""
    path = source = check_table_file(path)
    if path.suffix.lower() == ".parquet":
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError) as error:
            raise unreadable(path, error) from None
    else:
        check_header(path)
        copy = Path(directory) / f"{path.stem}.parquet"
        try:
            (pl.scan_csv(path, try_parse_dates=True, infer_schema_length=None)
             .sink_parquet(copy, row_group_size=ROWS_PER_GROUP))
            rows = pq.ParquetFile(copy).metadata.num_rows
        except READ_ERRORS as error:
            raise unreadable(path, error) from None
        path = copy
    if rows == 0:
        raise InputError.at(str(source), "at least one data row (the table is empty)")
    return path


def arrow_frame(data: pa.Table | pa.RecordBatch) -> pl.DataFrame:
    """A polars frame of arrow data, with its column names kept (polars' ``from_arrow``
    renames a blank header, which CSVs of R's exports have, to ``column_0``)."""
    frame = pl.from_arrow(data)
    frame.columns = data.schema.names
    return frame


def check_header(path: Path) -> None:
    """An ``InputError`` naming a column that a CSV's header names twice (polars would
    rename the second silently, and a model trained on it would read the wrong column)."""
    if path.suffix.lower() != ".csv":
        return
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), [])
    except (UnicodeDecodeError, csv.Error):
        return  # the reader names what is wrong with the file
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise InputError.at(str(path), "each column named once in the header", line=1,
                                column=name, value=name)
        seen.add(name)


def unreadable(path: Path, error: BaseException) -> InputError:
    """The one line for a file its reader fails on."""
    kind = "parquet" if path.suffix.lower() == ".parquet" else "UTF-8 CSV"
    first = first_line(error) or type(error).__name__
    return InputError.at(str(path), f"a readable {kind} file ({first})")


def check_table_file(path: str | Path) -> Path:
    """``path`` as a ``Path`` if it is a CSV or parquet file whose bytes are what its name
    says; else an ``InputError`` naming it."""
    path = Path(path)
    if not path.is_file():
        what = "a directory" if path.is_dir() else "missing"
        raise InputError.at(str(path), f"a CSV or parquet file (this path is {what})")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError.at(str(path), "a file ending in .csv or .parquet", value=path.suffix)
    if path.stat().st_size:  # an empty file is said to be empty by its reader's caller
        check_kind(path, "a parquet file" if suffix == ".parquet" else "text")
    return path


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


def require_columns(frame: pl.DataFrame, columns: Sequence[str], source: str,
                    why: str = "the columns the model was fitted with") -> None:
    """An ``InputError`` naming the first of ``columns`` that ``frame`` lacks, all of them
    and ``why`` they are needed: the one missing-columns message."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError.at(source, f"{why} ({', '.join(columns)})", column=missing[0])


def check_numbers(frame: pl.DataFrame, columns: list[str], source: str, *,
                  first_line: int | None = None, offset: int = 0) -> None:
    """Each of ``columns`` holds numbers, blanks or NaN (the last two are missing values, which
    the scaling fills). Text that is not a number, or an infinite value, is an ``InputError``
    naming the file's line (``first_line`` is row 0's) or else the frame's row, the column
    and the value: infinity is no measurement but a division by zero upstream. ``offset``:
    the table's row of the frame's first (a chunk of a larger table)."""
    for column in columns:
        values = frame.get_column(column)
        bad = frame.select(bad_number(column, values.dtype)).to_series()
        if bad.any():
            row = int(bad.arg_true()[0])
            raise InputError.at(source, NUMBER_RULE, column=column, value=values[row],
                                row=offset + row, first_line=first_line)


def bad_number(column: str, dtype: pl.DataType) -> pl.Expr:
    """True where a value is given but is no number, or is infinite: the rule of
    ``check_numbers`` as an expression, for a frame or a streamed ``LazyFrame``."""
    values = pl.col(column)
    number = values.cast(pl.Float64, strict=False)
    present = values.is_not_null()
    if dtype == pl.String:
        present = present & (values.str.strip_chars() != "")
    return (present & number.is_null()) | number.is_infinite()


def missing_numbers(frame: pl.DataFrame, columns: list[str]) -> dict[str, int]:
    """Per column of ``columns``, the rows whose value is blank or NaN (filled by the scaling)."""
    return {c: int(as_numbers(frame.get_column(c)).fill_nan(None).null_count())
            for c in columns}


def as_numbers(values: pl.Series) -> pl.Series:
    """A column as float64: blank text is missing (null), as is text that is no number
    (``check_numbers`` refuses that first)."""
    return values.cast(pl.Float64, strict=False)


def given(values: pl.Series) -> pl.Series:
    """Which values are there: not null, and, for text, not blank."""
    if values.dtype == pl.String:
        return (values.str.strip_chars() != "").fill_null(False)
    return values.is_not_null()
