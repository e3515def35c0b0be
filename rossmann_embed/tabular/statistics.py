"""The statistics pass of a streamed fit: what ``fit`` learns of a table before its first
step, in bounded memory, by polars' streaming engine.

Bad values are found here, so that a wrong value in the last row group stops the run before
it trains, with one line naming the file, the row, the column and the value. Rows are named
by their index in the whole table (``streaming.ROW_INDEX``), or by the CSV line when the
table came from one (``first_line``).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from rossmann_embed.tabular.errors import NUMBER_RULE, InputError
from rossmann_embed.tabular.streaming import HASH_SCALE, ROW_INDEX
from rossmann_embed.tabular.tables import bad_number

INFER_ROWS = 100_000  # the first rows, whose types and distinct values decide the roles
# Training rows the quantiles and bins come from: all of them up to this many, else a seeded
# sample. The sample's empirical distribution is within 0.002 of the table's at every value
# (in rank) with probability 0.9993 (the Dvoretzky-Kiefer-Wolfowitz inequality).
SAMPLE_ROWS = 1_000_000


def streamed(lazy: pl.LazyFrame) -> pl.DataFrame:
    """``lazy`` collected by polars' streaming engine (in batches, bounded memory)."""
    return lazy.collect(engine="streaming")


def check_streamed_numbers(lazy: pl.LazyFrame, columns: list[str], source: str,
                  first_line: int | None = None) -> None:
    """``tables.check_numbers`` over every row of ``lazy``, in one streaming pass: an
    ``InputError`` names the first bad row of the first column that has one."""
    if not columns:
        return
    schema = lazy.collect_schema()
    firsts = streamed(lazy.select(pl.col(ROW_INDEX).filter(bad_number(c, schema[c])).min()
                                  .alias(c) for c in columns)).row(0)
    for column, row in zip(columns, firsts, strict=True):
        if row is not None:
            value = streamed(lazy.filter(pl.col(ROW_INDEX) == row).select(column)).item()
            raise InputError.at(source, NUMBER_RULE, column=column, value=value, row=int(row),
                                first_line=first_line)


def target_summary(lazy: pl.LazyFrame, target: str, source: str,
                   first_line: int | None = None) -> dict[str, Any]:
    """The target's rows, lowest and highest value and whether all are whole numbers; an
    ``InputError`` for the first row without a finite target."""
    number = pl.col(target).cast(pl.Float64)
    missing = pl.col(target).is_null() | number.is_nan() | number.is_infinite()
    summary = streamed(lazy.select(
        rows=pl.len(), lowest=number.min(), highest=number.max(),
        whole=(number == number.round()).all(),
        first_missing=pl.col(ROW_INDEX).filter(missing).min())).row(0, named=True)
    if summary["first_missing"] is not None:
        row = int(summary["first_missing"])
        value = streamed(lazy.filter(pl.col(ROW_INDEX) == row).select(target)).item()
        raise InputError.at(source, "a finite target value on every row (drop or fill the "
                            "rows without one)", column=target,
                            value=value if value is not None else "", row=row,
                            first_line=first_line)
    return summary


def time_cut(lazy: pl.LazyFrame, time_column: str, fraction: float) -> float:
    """Where validation starts: the latest ``fraction`` of the time column's span (as the
    in-memory split; the same errors)."""
    dtype = lazy.collect_schema()[time_column]
    if not (dtype.is_temporal() or dtype.is_numeric()):
        raise ValueError(f"time_column {time_column!r} must hold dates, times or numbers, got "
                         f"{dtype}")
    time = pl.col(time_column).to_physical().cast(pl.Float64)
    start, end = streamed(lazy.select(time.min(), time.max().alias("end"))).row(0)
    if start is None or not end > start:
        raise ValueError(f"time_column {time_column!r} spans too little time to hold out its "
                         "latest part: use a random split (no time_column) or more history")
    return end - fraction * (end - start)


def training_sample(lazy: pl.LazyFrame, rows: int, seed: int, limit: int | None = None
                    ) -> pl.DataFrame:
    """Every training row when there are at most ``limit`` (default ``SAMPLE_ROWS``), else
    about that many, chosen by a seeded hash of their index (the same rows in every
    process)."""
    limit = SAMPLE_ROWS if limit is None else limit
    if rows > limit:
        hashed = pl.col(ROW_INDEX).cast(pl.Int64).hash(seed + 1).cast(pl.Float64)
        lazy = lazy.filter(hashed < limit / rows * HASH_SCALE)
    return streamed(lazy)
