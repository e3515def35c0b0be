"""Any table from files to files: what `rossmann-embed fit` and `predict` do.

``fit_table`` reads a CSV or parquet table, trains an ``EmbeddingRegressor`` on it into a run
directory and writes ``config.json`` (the resolved ``FitConfig``), ``columns.json`` (each
column's role and why) and ``validation.json``. ``predict_table`` writes every row of a table,
in its order, with a ``prediction`` column, and counts the categories the model never saw.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

from rossmann_embed.tabular.columns import infer_roles
from rossmann_embed.tabular.config import FitConfig, NetworkConfig
from rossmann_embed.tabular.errors import InputError, TrainingFailed
from rossmann_embed.tabular.files import write_json
from rossmann_embed.tabular.tables import (
    check_numbers,
    missing_numbers,
    read_table,
    require_column,
    require_columns,
    write_table,
)

PREDICTION = "prediction"
FIRST_DATA_LINE = 2  # a CSV's row 0 is on line 2, below the header
REPORTS = ("config.json", "columns.json", "validation.json", "estimator.json")  # a fit run's


def fit_table(config: FitConfig, log=print) -> Path:
    """Train on ``config.table`` into ``config.out``; returns the run directory."""
    from rossmann_embed.tabular.estimator import EmbeddingRegressor

    start = time.perf_counter()
    run_dir = Path(config.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError.at(str(run_dir), "a directory to write the run into (--out)")
    network = {k: getattr(config, k) for k in NetworkConfig.__dataclass_fields__}
    estimator = EmbeddingRegressor(
        categorical=config.categorical or None, continuous=config.continuous or None,
        target_transform=config.target_transform, time_column=config.time_column,
        validation_fraction=config.validation_fraction, out=str(run_dir), **network,
    )
    try:
        estimator.check_params()
    except ValueError as error:
        raise InputError.at("options", f"valid network options ({error})") from None
    frame = read_table(config.table)
    X, y = split_target(frame, config)
    first_line = data_line(config.table)
    roles = infer_roles(X, categorical=config.categorical, continuous=config.continuous,
                        source=config.table, time_column=config.time_column,
                        first_line=first_line)  # as the estimator
    log(f"{config.table}: {frame.height:,} rows; columns (--categorical / --continuous to "
        "change):")
    for line in roles.report():
        log(f"  {line}")
    given = [c for c in roles.continuous if c in X.columns]
    check_numbers(X, given, config.table, first_line=first_line)
    fill = "median" if config.continuous_scaling == "quantile" else "mean"
    for column, rows in missing_numbers(X, given).items():
        if rows:
            log(f"note: {rows:,} rows have no {column} value (blank or NaN: they take the "
                f"training {fill})")
    try:
        estimator.fit(X, y)
    except TrainingFailed:  # the reports of an earlier run in --out must not claim success
        for name in REPORTS:
            (run_dir / name).unlink(missing_ok=True)
        raise
    except ValueError as error:
        if isinstance(error, InputError):
            raise
        raise InputError.at(config.table, f"a table the model can learn from ({error})") from None
    config.save(run_dir / "config.json")
    write_json(run_dir / "columns.json", {
        "target": config.target, "target_transform": estimator.target_transform_,
        "dropped": config.drop, **estimator.roles_.to_dict()})
    budget = estimator.training_
    steps = sum(member["steps"] for member in budget["members"])
    report = {**estimator.validation_, "steps": steps, "batch_size": budget["batch_size"],
              "epochs": budget["epochs"], "seconds": round(time.perf_counter() - start, 1)}
    write_json(run_dir / "validation.json", report)
    log(f"trained {steps:,} steps in batches of {budget['batch_size']:,} (budget "
        f"{budget['epochs']} epochs, {budget['planned_steps']:,} steps a member; best epoch kept)")
    scores = ", ".join(f"{k} {v:.4g}" for k, v in estimator.validation_.items()
                       if k in ("rmse", "mae", "rmspe"))
    log(f"validation ({estimator.validation_['rows']:,} rows): {scores or 'none held out'}")
    return run_dir


def split_target(frame: pl.DataFrame, config: FitConfig) -> tuple[pl.DataFrame, np.ndarray]:
    """The input columns (without the target and ``drop``) and the target as numbers."""
    require_column(frame, config.target, config.table, "target")
    for column in config.drop:
        require_column(frame, column, config.table, "--drop")
    target = frame.get_column(config.target)
    if not target.dtype.is_numeric():
        raise InputError.at(config.table, "a numeric target", column=config.target,
                            value=str(target.dtype))
    numbers = target.cast(pl.Float64)
    missing = target.is_null() | numbers.is_nan() | numbers.is_infinite()
    if missing.any():
        row = int(missing.arg_max())
        raise InputError.at(config.table, "a finite target value on every row (drop or fill "
                            "the rows without one)", column=config.target,
                            value=target[row] if target[row] is not None else "", row=row,
                            first_line=data_line(config.table))
    X = frame.drop(config.target, *config.drop)
    if X.width == 0:
        raise InputError.at(config.table, "at least one input column beside the target")
    return X, target.cast(pl.Float64).to_numpy()


def data_line(path: str | Path) -> int | None:
    """The line of a CSV's first data row, below the header; None for parquet (rows)."""
    return FIRST_DATA_LINE if str(path).lower().endswith(".csv") else None


def predict_table(run_dir: str | Path, table: str | Path, out: str | Path) -> dict:
    """Write ``table`` with a ``prediction`` column to ``out`` (CSV or parquet), rows in
    order; returns the rows and what was filled in per column (``unknown_categories``,
    ``missing_numbers``: ``EmbeddingRegressor.filled_values``) and what missing numbers
    became (``fill``: median or mean). Text or infinity in a
    continuous column is an ``InputError`` naming its line, and nothing is written."""
    from rossmann_embed.tabular.estimator import EmbeddingRegressor, FilledValuesWarning

    estimator = EmbeddingRegressor.load(run_dir)
    frame = read_table(table)
    require_columns(frame, estimator.roles_.inputs, str(table))
    if PREDICTION in frame.columns:
        raise InputError.at(str(table), f"no column named {PREDICTION!r} (it is written)",
                            column=PREDICTION)
    inputs = frame.select(estimator.roles_.inputs)
    given = [c for c in estimator.roles_.continuous if c in inputs.columns]
    check_numbers(inputs, given, str(table), first_line=data_line(table))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FilledValuesWarning)  # counted in the report instead
        predicted = frame.with_columns(pl.Series(PREDICTION, estimator.predict(inputs)))
    write_table(predicted, out)
    return {"rows": frame.height, **estimator.filled_values(inputs),
            "fill": estimator.run_.preprocessor.fill}


def embeddings_report(run_dir: str | Path, out: str | Path, labels: dict[str, str] | None = None,
                      table: str | Path | None = None, seed: int = 0) -> dict:
    """``report.write_embedding_report`` for a ``fit`` run. ``labels`` maps a categorical
    column to another column of the training table (``table``, default the one the run was
    fitted on) shown beside each value, e.g. a name for an id."""
    import json

    from rossmann_embed.tabular.estimator import EmbeddingRegressor
    from rossmann_embed.tabular.report import with_labels, write_embedding_report

    estimator = EmbeddingRegressor.load(run_dir)
    tables = estimator.embeddings_
    labels = labels or {}
    for column in labels:
        if column not in tables:
            raise InputError.at("--label", f"a categorical column of the run ({', '.join(tables)})",
                                value=column)
    if labels:
        if table is None:
            table = json.loads((Path(run_dir) / "config.json").read_text())["table"]
        frame = read_table(table)
        for column, label in labels.items():
            require_column(frame, column, str(table), "--label")
            require_column(frame, label, str(table), "--label")
            names = (frame.select(pl.col(column).cast(pl.String).alias("value"), label)
                     .unique("value", keep="first", maintain_order=True))
            tables[column] = with_labels(tables[column], names)
    return write_embedding_report(tables, Path(out), seed)
