"""Load runs (one model, a seed ensemble, or several runs) and predict: from checkpoints alone.

A checkpoint carries the fitted preprocessing and the column spec as plain data, so
``load_train_run(path).predict(frame)`` needs nothing but the run directory and a frame with the
model's columns. Checkpoints are loaded with weights-only loading: no pickles are executed.

For files in Kaggle's test layout (``Id,Store,DayOfWeek,Date,Open,Promo,StateHoliday,
SchoolHoliday``), ``predict_kaggle`` builds the features exactly as training did: on the
union of the data directory's train.csv and test.csv with the file's rows, so look-back and
look-ahead features of a store's first days see the same history as any other day.
``predict_sales`` is the one function that turns feature rows into sales (0 on closed days);
``submit`` and ``evaluation.evaluate`` both use it, so a submission for a labelled period
scores exactly the RMSPE that ``evaluate`` reports for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from rossmann_embed.rossmann.boosting import Boosted
from rossmann_embed.rossmann.kaggle_files import (
    RossmannData,
    check_stores_known,
    check_unique,
    read_kaggle_csv,
    read_rossmann,
)
from rossmann_embed.rossmann.levels import read_store_levels, rmspe_shift_of, store_level_of
from rossmann_embed.rossmann.shards import add_counts, feature_blocks
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.files import write_csv
from rossmann_embed.tabular.run_directory import Logs, TabularRun, load_tabular_run
from rossmann_embed.tabular.tables import write_table
from rossmann_embed.tabular.workflow import PREDICTION

KAGGLE_TEST_SCHEMA = "test.csv"  # io's schema of a file in Kaggle's test layout


class _Predicts:
    """What a run and an ensemble of runs share: predictions from their members' log ones."""

    known_stores: set  # stores the model(s) were trained on

    def part_logs(self, frame: pl.DataFrame, source: str = "input frame") -> Logs:
        """The forecast's parts in log space: each member, ``network`` (the members' mean plus
        the store's level) and ``lightgbm`` (the boosted half) where there is one."""
        raise NotImplementedError

    def forecast_log(self, parts: Logs) -> np.ndarray:
        """The forecast made of ``part_logs``' parts, so that a caller who wants both
        predicts each part once (a boosted half of thousands of trees is slow to predict)."""
        raise NotImplementedError

    def predict_log(self, frame: pl.DataFrame, source: str = "input frame") -> np.ndarray:
        """The forecast in log space for each row of ``frame`` (feature rows)."""
        return self.forecast_log(self.part_logs(frame, source))

    def predict(self, frame: pl.DataFrame, source: str = "input frame") -> np.ndarray:
        """Sales of each row of ``frame`` (feature rows): the forecast (``predict_log``)."""
        return np.exp(self.predict_log(frame, source))

    def predict_kaggle(self, data_dir: str | Path,
                       test: str | Path | pl.DataFrame | None = None, *,
                       allow_unknown_stores: bool = False) -> pl.DataFrame:
        """Sales for a file or frame in Kaggle's test layout (default: the data dir's
        test.csv), in Id order, 0 on closed days; see the module function ``predict_kaggle``."""
        return predict_kaggle(self, data_dir, test,
                              allow_unknown_stores=allow_unknown_stores)[0]


@dataclass
class Run(_Predicts, TabularRun):
    """A trained ``train`` run: the core's members plus the feature options they were trained
    with, the store levels and the boosted half, if any."""

    boosted: Boosted | None = None  # LightGBM on the store factors, blended in log space
    store_levels: pl.DataFrame | None = None  # levels and RMSPE shifts (``levels``)

    @property
    def feature_options(self) -> dict:
        """The Rossmann features the run was trained with (weather, trends)."""
        return self.metadata["features"]

    @property
    def known_stores(self) -> set:
        """Stores the model was trained on (others get the untrained unknown embedding)."""
        return set(self.preprocessor.vocabularies.get("Store", []))

    def part_logs(self, frame: pl.DataFrame, source: str = "input frame") -> Logs:
        """Each member's log predictions, ``network`` (their mean plus the store's level) and
        ``lightgbm``; both of the latter moved by the store's RMSPE shift (``levels``)."""
        logs = self.member_logs(frame, source)
        network, shift = _mean_log(logs, len(frame)), np.zeros(len(frame))
        if self.store_levels is not None:
            network = network + store_level_of(self.store_levels, frame)
            shift = rmspe_shift_of(self.store_levels, frame)
        parts = {**logs, "network": network + shift}
        if self.boosted is not None:
            parts["lightgbm"] = self.boosted.predict_log(frame) + shift
        return parts

    def forecast_log(self, parts: Logs) -> np.ndarray:
        """The network's log prediction, blended with the boosted half if there is one."""
        if self.boosted is None:
            return parts["network"]
        return self.boosted.blend(parts["network"], parts["lightgbm"])



@dataclass
class Ensemble(_Predicts):
    """Several runs predicting together: the mean of all their members' log predictions.

    The runs must have been trained with the same feature options (weather, trends), since
    one feature frame feeds them all; each run encodes it with its own preprocessing.
    """

    runs: list[Run]

    def __post_init__(self) -> None:
        first = self.runs[0]
        for run in self.runs[1:]:
            if run.feature_options != first.feature_options:
                raise InputError.at(
                    str(run.path), f"the feature options of {first.path} "
                    f"({_options(first.feature_options)}) to combine the runs",
                    value=_options(run.feature_options),
                )

    @property
    def feature_options(self) -> dict:
        return self.runs[0].feature_options

    @property
    def known_stores(self) -> set:
        """Stores every run was trained on."""
        return set.intersection(*(run.known_stores for run in self.runs))

    def member_logs(self, frame: pl.DataFrame, source: str = "input frame") -> Logs:
        """Log predictions of every member of every run; with several runs, labels start with
        the run's place in ``runs`` ("run2:seed-0"), since two runs may share seeds or paths."""
        logs: Logs = {}
        for i, run in enumerate(self.runs, start=1):
            prefix = f"run{i}:" if len(self.runs) > 1 else ""
            logs.update({prefix + k: v for k, v in run.member_logs(frame, source).items()})
        return logs

    def part_logs(self, frame: pl.DataFrame, source: str = "input frame") -> Logs:
        """Every run's parts; with several runs, labels start with the run's place."""
        if len(self.runs) == 1:
            return self.runs[0].part_logs(frame, source)
        return {f"run{i}:{k}": v for i, run in enumerate(self.runs, start=1)
                for k, v in run.part_logs(frame, source).items()}

    def forecast_log(self, parts: Logs) -> np.ndarray:
        """The mean of the runs' forecasts in log space."""
        if len(self.runs) == 1:
            return self.runs[0].forecast_log(parts)
        return np.mean([run.forecast_log({k.removeprefix(f"run{i}:"): v for k, v in parts.items()
                                          if k.startswith(f"run{i}:")})
                        for i, run in enumerate(self.runs, start=1)], axis=0)



Predictor = Run | Ensemble


def load_train_run(path: str | Path) -> Run:
    """Load every member of a ``train`` run directory, its store levels and its boosted half
    (a single ``.ckpt`` file: that member alone, without either)."""
    core = load_tabular_run(path)
    if "features" not in core.metadata:
        raise InputError.at(str(path), "a run written by `rossmann-embed train` (this one has "
                            "no Rossmann feature options: use `rossmann-embed predict`)")
    boosted_dir = core.path / "lightgbm"
    boosted = Boosted.load(boosted_dir) if (boosted_dir / "blend.json").is_file() else None
    return Run(**vars(core), boosted=boosted, store_levels=read_store_levels(core.path))


def load_runs(paths: list[str | Path]) -> Ensemble:
    """Load several runs as one ensemble (their feature options must agree)."""
    if not paths:
        raise InputError.at("--run", "at least one run directory")
    return Ensemble([load_train_run(p) for p in paths])


# --- Kaggle-layout files ------------------------------------------------------------------


def read_target(path: str | Path) -> pl.DataFrame:
    """Read and validate a file in Kaggle's test layout: schema, one row per (Store, Date) and
    per Id. Stores are checked against a data directory later (``predict_kaggle``)."""
    path = Path(path)
    target = read_kaggle_csv(path, KAGGLE_TEST_SCHEMA)
    check_unique(target, ["Id"], str(path))
    return target


def check_known_stores(rows: pl.DataFrame, known: set, file: str,
                       allow_unknown: bool = False) -> dict[str, int]:
    """Stores of ``rows`` (in file order, first row = line 2) the model was trained on.

    A store the model never saw would be predicted with the unknown-store embedding row,
    which training never updates: a poor guess. So it is an error unless ``allow_unknown``,
    in which case the stores and rows are counted (for a warning) and predicted anyway.
    """
    unknown = ~rows.get_column("Store").is_in(sorted(known))
    counts = {"unknown_stores": 0, "unknown_store_rows": 0}
    if not unknown.any():
        return counts
    if not allow_unknown:
        row = int(unknown.arg_true()[0])
        raise InputError.at(
            file, "a store the model was trained on (--allow-unknown-stores predicts such "
            "stores with the untrained unknown-store embedding)",
            line=int(rows[row, "_line"]) if "_line" in rows.columns else row + 2,
            column="Store", value=rows[row, "Store"],
        )
    counts["unknown_stores"] = rows.filter(unknown).get_column("Store").n_unique()
    counts["unknown_store_rows"] = int(unknown.sum())
    return counts


def unseen_categories(predictor: Predictor, rows: pl.DataFrame) -> dict[str, int]:
    """Rows per categorical column whose value no run saw in training (encoded as unknown)."""
    runs = predictor.runs if isinstance(predictor, Ensemble) else [predictor]
    counts: dict[str, int] = {}
    for run in runs:
        for name, n in run.preprocessor.unknown_counts(rows).items():
            if n and name != "Store":  # stores are checked and reported on their own
                counts[name] = max(counts.get(name, 0), n)
    return counts


def predict_sales(predictor: Predictor, rows: pl.DataFrame, *, members: bool = False,
                  source: str = "input frame") -> pl.DataFrame:
    """``rows`` (feature rows) with ``Prediction``: 0 where Open is 0, else the forecast (the
    network's log prediction, blended with a boosted half), exponentiated. With ``members``,
    also ``Prediction[part]`` per part (``part_logs``). The one prediction path of both
    submissions and evaluations."""
    is_open = rows.get_column("Open") != 0
    open_rows = rows.filter(is_open)
    columns = {"Prediction": np.zeros(0)}
    if open_rows.height:
        parts = predictor.part_logs(open_rows, source)
        columns["Prediction"] = predictor.forecast_log(parts)
        if members:
            columns.update({f"Prediction[{label}]": log for label, log in parts.items()})
    index = np.flatnonzero(is_open.to_numpy())
    out = []
    for name, log in columns.items():
        sales = np.zeros(rows.height)
        sales[index] = np.exp(log)
        out.append(pl.Series(name, sales))
    return rows.with_columns(out)


def predict_kaggle(predictor: Predictor, data_dir: str | Path,
                   test: str | Path | pl.DataFrame | None = None, *,
                   allow_unknown_stores: bool = False,
                   members: bool = False) -> tuple[pl.DataFrame, dict]:
    """Predict sales for a file in Kaggle's test layout (default: the data dir's test.csv).

    Returns the target's feature rows with ``Prediction`` (one row per Id, in Id order) and a
    report: rows, blank Open values taken as open, stores the model never saw, values of
    other columns it never saw. History for the features comes from ``data_dir``. With
    ``members``, also the parts of the forecast (``predict_sales``).
    """
    if isinstance(test, pl.DataFrame):
        target, name = test, "test frame"
    else:
        name = str(test) if test is not None else str(Path(data_dir) / "test.csv")
        target = read_target(test) if test is not None else None
    options = predictor.feature_options
    data = read_rossmann(data_dir, weather=options.get("weather", True),
                         trends=options.get("trends", True))
    target = data.test if target is None else target
    check_stores_known(target, data.stores, name)
    report = check_known_stores(target, predictor.known_stores, name, allow_unknown_stores)
    predicted, counts, unseen = [], {}, {}
    for rows, block_counts in target_rows(data, target):
        add_counts(counts, block_counts)
        add_counts(unseen, unseen_categories(predictor, rows))
        predicted.append(predict_sales(predictor, rows, members=members,
                                       source=f"features built from {data_dir}"))
    predicted = pl.concat(predicted)
    report = {"rows": predicted.height, "open_blank_as_open": counts["target_open_blank_as_open"],
              **report, "unseen_values": unseen}
    return predicted.sort("Id"), report


def target_rows(data: RossmannData, target: pl.DataFrame
                ) -> Iterator[tuple[pl.DataFrame, dict[str, int]]]:
    """The feature rows of ``target`` (Kaggle's test layout) with the history of ``data``, a
    block of its stores at a time (memory is bound by a block), each with the block's row
    counts."""
    for frame, counts in feature_blocks(data, target, stores=target.get_column("Store")):
        yield frame.filter(pl.col("Set") == "target"), counts


def submission(predicted: pl.DataFrame) -> pl.DataFrame:
    """Kaggle's ``Id,Sales`` from ``predict_kaggle``'s rows."""
    return predicted.select("Id", Sales=pl.col("Prediction")).sort("Id")


def predict_kaggle_table(predictor: Predictor, data_dir: str | Path, table: str | Path,
                  out: str | Path, *, allow_unknown_stores: bool = False) -> dict:
    """Write ``table`` (Kaggle's test layout) with a ``prediction`` column, the forecast's
    sales (0 on closed days), to ``out`` (CSV or parquet), rows in the table's order: what
    `rossmann-embed predict` writes for a `train` run. Returns ``predict_kaggle``'s report."""
    predicted, report = predict_kaggle(predictor, data_dir, table,
                                       allow_unknown_stores=allow_unknown_stores)
    prediction = predicted.select("Id", pl.col("Prediction").alias(PREDICTION))
    write_table(read_target(table).join(prediction, on="Id", how="left", maintain_order="left"),
                out)
    return report


def submit(predictor: Predictor, data_dir: str | Path, out: str | Path,
           test: str | Path | None = None, *, allow_unknown_stores: bool = False) -> dict:
    """Write Kaggle's ``Id,Sales`` for ``test`` (default: the data dir's test.csv) to ``out``,
    atomically. Returns ``predict_kaggle``'s report."""
    predicted, report = predict_kaggle(predictor, data_dir, test,
                                       allow_unknown_stores=allow_unknown_stores)
    write_csv(submission(predicted), Path(out))
    return report


def _mean_log(logs: Logs, rows: int) -> np.ndarray:
    if not logs:
        return np.zeros(rows)
    return np.mean(list(logs.values()), axis=0)


def _options(options: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(options.items()))


def prediction_notes(report: dict) -> list[str]:
    """What a prediction counted, as lines for its user: blank Open taken as open, days
    without labels, values the model never saw; stores it never saw start with "warning"."""
    notes = []
    if report.get("open_blank_as_open"):
        notes.append(f"note: {report['open_blank_as_open']:,} rows with a blank Open were "
                     "taken as open")
    if report.get("unknown_store_rows"):
        notes.append(f"warning: {report['unknown_stores']:,} stores the model was not trained "
                     f"on ({report['unknown_store_rows']:,} rows) were predicted with the "
                     "untrained unknown-store embedding")
    if report.get("days_with_labels", 0) < report.get("days_requested", 0):
        notes.append(f"note: train.csv has labelled rows on {report['days_with_labels']} of "
                     f"the {report['days_requested']} days asked; the others are not scored")
    notes += [f"note: {rows:,} rows have a {column} value the model never saw (encoded as "
              "unknown)" for column, rows in report.get("unseen_values", {}).items()]
    return notes
