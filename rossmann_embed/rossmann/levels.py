"""The network's store levels: what it still misses of each store's recent sales level.

A store's Store embedding learns its level over the whole history, but levels drift (a
competitor opens, a store is refitted), and the network keeps missing the latest one. On the
backtest the network's forecasts were off by 4% per store (root mean square of the stores'
mean log errors) against 3.5% for LightGBM, which can split a store's history by date. So
after training, each store's mean log residual over the training period's last days, plus a
shrunk share of what each of its weekdays misses beyond that, is saved in the run directory
and added to the network's log forecast (docs/decisions.md).

Kaggle scores RMSPE, and the forecast that minimises the expected squared percentage error
is not the expected log sales: with log-normal errors of variance s2 it lies 1.5 * s2 below
(E[1/y] / E[1/y^2]). So each store's variance of those residuals, beyond its level and
shrunk toward every store's, is saved too, and every part of the forecast is lowered by it;
the blend of the two parts also by their spread (``boosting.Boosted.blend``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from rossmann_embed.tabular.files import write_csv

# Store, DayOfWeek, Level (log), Variance (log residuals'), Rows: the run directory's
LEVELS_FILE = "store_levels.csv"
# A mean of fewer days is more noise than level (a --train-rows sample leaves a few a store).
MIN_ROWS = 14
# A store's weekday has 8 days in 56: its own mean counts 8 / (8 + 20) (docs/decisions.md).
WEEKDAY_PRIOR_ROWS = 20
# A store's variance counts as a mean with this many more rows of every store's variance: a
# store's 56 days give it as much weight as the chain's (docs/decisions.md).
VARIANCE_PRIOR_ROWS = 56
# The log forecast that minimises the expected squared percentage error, for log-normal errors
# of variance s2, is the mean log forecast minus RMSPE_SHIFT * s2.
RMSPE_SHIFT = 1.5


def recent_rows(rows: pl.DataFrame, days: int) -> pl.DataFrame:
    """The rows of the last ``days`` calendar days of ``rows``."""
    first = rows.get_column("Date").max() - pl.duration(days=days - 1)
    return rows.filter(pl.col("Date") >= pl.select(first).item())


def fit_store_levels(rows: pl.DataFrame, logs: np.ndarray) -> pl.DataFrame:
    """Per store with at least ``MIN_ROWS`` rows and per weekday: the store's level, the
    mean of log(Sales) minus the network's log prediction ``logs`` over ``rows`` (model rows,
    Sales > 0), plus what the weekday misses beyond it, shrunk toward 0 as a mean of
    ``WEEKDAY_PRIOR_ROWS`` more rows of 0 would be; the store's variance of the residuals
    beyond that level (mean square, shrunk toward every store's as a mean of
    ``VARIANCE_PRIOR_ROWS`` more rows of it would be); and how many rows each store averages."""
    residual = np.log(rows.get_column("Sales").to_numpy()) - logs
    frame = rows.select("Store", "DayOfWeek").with_columns(Residual=pl.Series(residual))
    store = (frame.group_by("Store").agg(StoreLevel=pl.col("Residual").mean(), Rows=pl.len())
             .filter(pl.col("Rows") >= MIN_ROWS))
    weekday = (frame.join(store, on="Store")
               .group_by("Store", "DayOfWeek")
               .agg(WeekdayLevel=(pl.col("Residual") - pl.col("StoreLevel")).sum()
                    / (pl.len() + WEEKDAY_PRIOR_ROWS)))
    every_day = pl.DataFrame({"DayOfWeek": range(1, 8)}, schema={"DayOfWeek": pl.Int64})
    levels = (store.join(every_day, how="cross")
              .join(weekday, on=["Store", "DayOfWeek"], how="left")
              .with_columns(Level=pl.col("StoreLevel") + pl.col("WeekdayLevel").fill_null(0.0)))
    beyond = (frame.join(levels.select("Store", "DayOfWeek", "Level"), on=["Store", "DayOfWeek"])
              .select("Store", Square=(pl.col("Residual") - pl.col("Level")).pow(2)))
    chain = beyond.select(pl.col("Square").mean().fill_null(0.0)).item()  # 0: no store has one
    variance = beyond.group_by("Store").agg(
        Variance=(pl.col("Square").sum() + VARIANCE_PRIOR_ROWS * chain)
        / (pl.len() + VARIANCE_PRIOR_ROWS))
    return (levels.join(variance, on="Store", how="left")
            .select("Store", "DayOfWeek", "Level", "Variance", "Rows")
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
    levels = pl.read_csv(path, schema_overrides={"Store": pl.Int64, "DayOfWeek": pl.Int64,
                                                 "Level": pl.Float64, "Variance": pl.Float64,
                                                 "Rows": pl.Int64})
    if "Variance" not in levels.columns:  # a run of a version before the RMSPE shift
        levels = levels.with_columns(Variance=pl.lit(0.0))
    return levels


def store_level_of(levels: pl.DataFrame, frame: pl.DataFrame) -> np.ndarray:
    """Each row's level for its store and weekday (0 for a store without one)."""
    return _of_rows(levels, frame, "Level")


def rmspe_shift_of(levels: pl.DataFrame, frame: pl.DataFrame) -> np.ndarray:
    """What each row's log forecast moves by to minimise the expected squared percentage
    error: ``-RMSPE_SHIFT`` times its store's variance (0 for a store without one)."""
    return -RMSPE_SHIFT * _of_rows(levels, frame, "Variance")


def _of_rows(levels: pl.DataFrame, frame: pl.DataFrame, column: str) -> np.ndarray:
    keys = ["Store", "DayOfWeek"]
    levels = levels.select(*[pl.col(k).cast(frame.schema[k]) for k in keys], column)
    joined = frame.select(keys).join(levels, on=keys, how="left", maintain_order="left")
    return joined.get_column(column).fill_null(0.0).to_numpy()
