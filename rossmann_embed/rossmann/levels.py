"""The network's store levels: what it still misses of each store's recent sales level.

A store's Store embedding learns its level over the whole history, but levels drift (a
competitor opens, a store is refitted), and the network keeps missing the latest one. On the
backtest the network's forecasts were off by 4% per store (root mean square of the stores'
mean log errors) against 3.5% for LightGBM, which can split a store's history by date. So
after training, each store's mean log residual over the training period's last days, plus a
shrunk share of what each of its weekdays misses beyond that, is saved in the run directory
and added to the network's log forecast (docs/decisions.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from rossmann_embed.tabular.files import write_csv

LEVELS_FILE = "store_levels.csv"  # Store, DayOfWeek, Level (log), Rows: the run directory's
# A mean of fewer days is more noise than level (a --train-rows sample leaves a few a store).
MIN_ROWS = 14
# A store's weekday has 8 days in 56: its own mean counts 8 / (8 + 20) (docs/decisions.md).
WEEKDAY_PRIOR_ROWS = 20


def recent_rows(rows: pl.DataFrame, days: int) -> pl.DataFrame:
    """The rows of the last ``days`` calendar days of ``rows``."""
    first = rows.get_column("Date").max() - pl.duration(days=days - 1)
    return rows.filter(pl.col("Date") >= pl.select(first).item())


def fit_store_levels(rows: pl.DataFrame, logs: np.ndarray) -> pl.DataFrame:
    """Per store with at least ``MIN_ROWS`` rows and per weekday: the store's level, the
    mean of log(Sales) minus the network's log prediction ``logs`` over ``rows`` (model rows,
    Sales > 0), plus what the weekday misses beyond it, shrunk toward 0 as a mean of
    ``WEEKDAY_PRIOR_ROWS`` more rows of 0 would be; and how many rows each store averages."""
    residual = np.log(rows.get_column("Sales").to_numpy()) - logs
    frame = rows.select("Store", "DayOfWeek").with_columns(Residual=pl.Series(residual))
    store = (frame.group_by("Store").agg(StoreLevel=pl.col("Residual").mean(), Rows=pl.len())
             .filter(pl.col("Rows") >= MIN_ROWS))
    weekday = (frame.join(store, on="Store")
               .group_by("Store", "DayOfWeek")
               .agg(WeekdayLevel=(pl.col("Residual") - pl.col("StoreLevel")).sum()
                    / (pl.len() + WEEKDAY_PRIOR_ROWS)))
    every_day = pl.DataFrame({"DayOfWeek": range(1, 8)}, schema={"DayOfWeek": pl.Int64})
    return (store.join(every_day, how="cross")
            .join(weekday, on=["Store", "DayOfWeek"], how="left")
            .select("Store", "DayOfWeek",
                    Level=pl.col("StoreLevel") + pl.col("WeekdayLevel").fill_null(0.0), Rows="Rows")
            .sort("Store", "DayOfWeek"))


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
    return pl.read_csv(path, schema={"Store": pl.Int64, "DayOfWeek": pl.Int64,
                                     "Level": pl.Float64, "Rows": pl.Int64})


def store_level_of(levels: pl.DataFrame, frame: pl.DataFrame) -> np.ndarray:
    """Each row's level for its store and weekday (0 for a store without one)."""
    keys = ["Store", "DayOfWeek"]
    levels = levels.select(*[pl.col(k).cast(frame.schema[k]) for k in keys], "Level")
    joined = frame.select(keys).join(levels, on=keys, how="left", maintain_order="left")
    return joined.get_column("Level").fill_null(0.0).to_numpy()
