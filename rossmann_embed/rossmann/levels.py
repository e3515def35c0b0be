"""The network's store levels: what it still misses of each store's recent sales level.

A store's Store embedding learns its level over the whole history, but levels drift (a
competitor opens, a store is refitted), and the network keeps missing the latest one. On the
backtest the network's forecasts were off by 4% per store (root mean square of the stores'
mean log errors) against 3.5% for LightGBM, which can split a store's history by date. So
after training, each store's mean log residual over the training period's last days is
saved in the run directory and added to the network's log forecast (docs/decisions.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from rossmann_embed.tabular.files import write_csv

LEVELS_FILE = "store_levels.csv"  # Store, Level (log), Rows, in the run directory


def recent_rows(rows: pl.DataFrame, days: int) -> pl.DataFrame:
    """The rows of the last ``days`` calendar days of ``rows``."""
    first = rows.get_column("Date").max() - pl.duration(days=days - 1)
    return rows.filter(pl.col("Date") >= pl.select(first).item())


def fit_store_levels(rows: pl.DataFrame, logs: np.ndarray) -> pl.DataFrame:
    """Per store: the mean of log(Sales) minus the network's log prediction ``logs`` over
    ``rows`` (model rows, Sales > 0), and how many rows it averages."""
    residual = np.log(rows.get_column("Sales").to_numpy()) - logs
    return (rows.select("Store").with_columns(Level=pl.Series(residual))
            .group_by("Store").agg(pl.col("Level").mean(), Rows=pl.len()).sort("Store"))


def write_store_levels(run_dir: Path, levels: pl.DataFrame | None) -> None:
    """Save ``levels`` into the run directory; None removes an earlier recipe's levels."""
    path = Path(run_dir) / LEVELS_FILE
    if levels is None:
        path.unlink(missing_ok=True)
    else:
        write_csv(levels, path)


def read_store_levels(run_dir: Path) -> pl.DataFrame | None:
    """The run's store levels, or None for a run without them."""
    path = Path(run_dir) / LEVELS_FILE
    if not path.is_file():
        return None
    return pl.read_csv(path, schema={"Store": pl.Int64, "Level": pl.Float64, "Rows": pl.Int64})


def store_level_of(levels: pl.DataFrame, frame: pl.DataFrame) -> np.ndarray:
    """Each row's store level (0 for a store without one)."""
    joined = frame.select("Store").join(levels.select("Store", "Level"), on="Store",
                                        how="left", maintain_order="left")
    return joined.get_column("Level").fill_null(0.0).to_numpy()
