"""Rossmann's features beyond memory: built a block of stores at a time into parquet files,
whose row groups ``tabular.streaming`` streams to every process.

Every feature is a function of one store's days (``features.features_of``), so a block of
stores gets the same features as the whole table, and memory is bound by the block. Only the
model rows are written (``features.model_rows``), each block's rows in a seeded random order,
so that a row group is a sample of its block's days and a buffer of several groups mixes
stores and days as a shuffled table would.

The training rows' look-ahead features are hidden as they are read (``HideFuture``): which
rows and how far are drawn from a seeded hash of the row's index, so any process hides any
row alike, and the rows on disk stay whole for the store levels and the boosted half.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from rossmann_embed.rossmann.features import (
    ELAPSED_CAP_DAYS,
    blank_counts,
    end_data_after,
    farthest_competitor,
    feature_columns,
    features_of,
    model_rows,
    stack_rows,
)
from rossmann_embed.rossmann.kaggle_files import RossmannData
from rossmann_embed.tabular.encoding import ColumnSpec
from rossmann_embed.tabular.files import write_parquet
from rossmann_embed.tabular.streaming import HASH_SCALE, ROW_INDEX

BLOCK_ROWS = 500_000  # rows whose features are built at a time (about 2 KB a row while built)
ROW_GROUP_ROWS = 32_768  # several groups fill a shuffle buffer (streaming.BUFFER_ROWS)
# train.csv's bytes a row (Kaggle's: 38 MB for 1,017,209 rows) and the features a row
# becomes: the estimate of what the in-memory path would hold.
CSV_ROW_BYTES = 37
FEATURE_CELLS_PER_ROW = 60


@dataclass
class FeatureShards:
    """The model rows of every store, with their features, in parquet files."""

    paths: list[str]
    spec: ColumnSpec  # its categories counted over the model rows
    report: dict[str, int]


def feature_cells(data_dir: str | Path) -> int:
    """About how many cells the in-memory feature table of ``data_dir`` would hold."""
    train = Path(data_dir) / "train.csv"
    rows = train.stat().st_size // CSV_ROW_BYTES if train.is_file() else 0
    return rows * FEATURE_CELLS_PER_ROW


def feature_blocks(data: RossmannData, target: pl.DataFrame | None = None, *,
                   stores: pl.Series | None = None, block_rows: int = BLOCK_ROWS
                   ) -> Iterator[tuple[pl.DataFrame, dict[str, int]]]:
    """The rows of ``build_features(data, target)`` a block of about ``block_rows`` rows of
    stores at a time, in the order of its frame, each with the block's row counts (add them
    with ``add_counts``; ``features.blank_counts`` are the whole data's). ``stores``: the
    stores whose rows are wanted (default: every store)."""
    tables = [data.train, data.test, *([target] if target is not None else [])]
    everyone = pl.concat([t.get_column("Store") for t in tables]).unique().sort()
    farthest = farthest_competitor(data, everyone.to_frame())
    wanted = everyone if stores is None else everyone.filter(everyone.is_in(stores.implode()))
    rows_per_store = sum(t.height for t in tables) / max(1, len(everyone))
    per_block = max(1, math.floor(block_rows / rows_per_store))
    for start in range(0, len(wanted), per_block):
        chosen = pl.col("Store").is_in(wanted.slice(start, per_block).implode())
        part = RossmannData(data.train.filter(chosen), data.test.filter(chosen), data.stores,
                            data.weather, data.trends)
        rows, counts = stack_rows(part, target.filter(chosen) if target is not None else None)
        frame = features_of(rows.lazy(), part, farthest).collect()
        yield frame, {**counts, "rows_features": frame.height}


def write_feature_shards(data: RossmannData, directory: Path, seed: int = 0,
                         block_rows: int = BLOCK_ROWS) -> FeatureShards:
    """The model rows of train.csv with their features (built from train.csv and test.csv
    together, as ``build_features``), one parquet file per block of about ``block_rows``
    rows, into ``directory``."""
    categorical, continuous = feature_columns(data)
    paths, report = [], blank_counts(data)
    levels: dict[str, pl.Series] = {}  # each categorical column's values in the model rows
    for block, (frame, counts) in enumerate(feature_blocks(data, block_rows=block_rows)):
        kept, kept_counts = model_rows(frame)
        add_counts(report, {**counts, **kept_counts})
        del frame
        for column in categorical:  # a block at a time: a pass over every shard costs more
            seen = kept.get_column(column).unique()
            levels[column] = seen if block == 0 else pl.concat([levels[column], seen]).unique()
        order = np.random.default_rng((seed, block)).permutation(kept.height)
        path = directory / f"features-{block:05d}.parquet"
        write_parquet(kept[order], path, ROW_GROUP_ROWS)
        paths.append(str(path))
    spec = ColumnSpec({c: len(levels[c]) for c in categorical}, continuous, target="Sales")
    return FeatureShards(paths, spec, report)


def add_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    """Add a block's row counts into the run's."""
    for key, value in counts.items():
        total[key] = total.get(key, 0) + int(value)


@dataclass(frozen=True)
class HideFuture:
    """``features.hide_future`` as rows are read: a ``fraction`` of the rows before
    ``before`` (days since 1970: the training rows) see the data end 0..59 days after them,
    both drawn from a seeded hash of the row's index (``ROW_INDEX``)."""

    fraction: float
    seed: int
    before: int

    def __call__(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        if self.fraction <= 0:
            return frame
        index = pl.col(ROW_INDEX).cast(pl.Int64)
        training = pl.col("Date").cast(pl.Int64) < self.before
        cut = index.hash(self.seed).cast(pl.Float64) < self.fraction * HASH_SCALE
        days = (index.hash(self.seed + 1) % ELAPSED_CAP_DAYS).cast(pl.Int64)
        left = pl.when(training & cut).then(days).otherwise(pl.lit(ELAPSED_CAP_DAYS, pl.Int64))
        return end_data_after(frame, left)


def day_number(day: dt.date) -> int:
    """Days since 1970-01-01, as polars stores a date."""
    return (day - dt.date(1970, 1, 1)).days
