"""Any table from files to files: what `rossmann-embed fit` and `predict` do.

``fit_table`` reads a CSV or parquet table, trains an ``EmbeddingRegressor`` on it into a run
directory and writes ``config.json`` (the resolved ``FitConfig``), ``columns.json`` (each
column's role and why) and ``validation.json``. ``predict_table`` writes every row of a table,
in its order, with a ``prediction`` column, and counts the categories the model never saw.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from rossmann_embed.tabular.columns import infer_roles
from rossmann_embed.tabular.config import FitConfig, NetworkConfig
from rossmann_embed.tabular.errors import InputError, TrainingFailed
from rossmann_embed.tabular.files import write_json
from rossmann_embed.tabular.tables import (
    arrow_frame,
    as_parquet,
    check_numbers,
    missing_numbers,
    read_table,
    require_column,
    require_columns,
)

PREDICTION = "prediction"
PREDICT_ROWS = 100_000  # rows predicted and written at a time
# Tables of more cells than this are streamed unless --no-stream (measured: docs/speed.md).
STREAM_CELLS = 100_000_000
CSV_CELL_BYTES = 8  # a CSV's bytes per cell, roughly, for that estimate
FIRST_DATA_LINE = 2  # a CSV's row 0 is on line 2, below the header
REPORTS = ("config.json", "columns.json", "validation.json", "estimator.json", "run.json")


def fit_table(config: FitConfig, log=print, resume: bool = False) -> Path:
    """Train on ``config.table`` into ``config.out``; returns the run directory. ``resume``
    continues an interrupted run from its members' last checkpoints."""
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
    stream = config.stream if config.stream is not None else in_memory_cells(
        config.table) > STREAM_CELLS
    try:
        if stream:
            fit_streamed(estimator, config, log, resume)
        else:
            fit_in_memory(estimator, config, log, resume)
    except TrainingFailed:  # the reports of an earlier run in --out must not claim success
        for name in REPORTS:
            (run_dir / name).unlink(missing_ok=True)
        raise
    except ValueError as error:
        if isinstance(error, InputError):
            raise
        raise InputError.at(config.table, f"a table the model can learn from ({error})") from None
    if not hasattr(estimator, "validation_"):  # a DDP rank other than 0: rank 0 reports
        return run_dir
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


def fit_in_memory(estimator: Any, config: FitConfig, log=print, resume: bool = False) -> None:
    """``fit_table`` of a table read into memory: its columns reported, then fitted."""
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
    estimator.fit(X, y, resume=resume)


def fit_streamed(estimator: Any, config: FitConfig, log=print, resume: bool = False) -> None:
    """``fit_table`` of a table streamed from parquet row groups (a CSV is written as parquet
    first, in a temporary folder): the statistics by polars' streaming engine, then batches
    read by each process from its own row groups."""
    with tempfile.TemporaryDirectory(prefix="fit-") as directory:
        path = as_parquet(config.table, directory)
        schema = pl.scan_parquet(path).collect_schema()
        header = pl.DataFrame(schema=schema)
        require_column(header, config.target, config.table, "target")
        for column in config.drop:
            require_column(header, column, config.table, "--drop")
        inputs = [c for c in schema if c != config.target and c not in config.drop]
        if not inputs:
            raise InputError.at(config.table, "at least one input column beside the target")
        rows = pq.ParquetFile(path).metadata.num_rows
        log(f"{config.table}: {rows:,} rows, streamed from parquet row groups")
        estimator.fit_parquet(path, config.target, inputs, source=config.table,
                              first_line=data_line(config.table), resume=resume)
    if hasattr(estimator, "validation_"):
        log("columns (--categorical / --continuous to change):")
        for line in estimator.roles_.report():
            log(f"  {line}")


def in_memory_cells(table: str | Path) -> int:
    """The table's cells, from a parquet file's footer or a CSV's size (``CSV_CELL_BYTES``
    a cell): what the in-memory path would hold."""
    path = Path(table)
    if path.suffix.lower() == ".parquet" and path.is_file():
        try:
            metadata = pq.ParquetFile(path).metadata
        except (OSError, ValueError):
            return 0  # read_table names what is wrong with it
        return metadata.num_rows * metadata.num_columns
    return path.stat().st_size // CSV_CELL_BYTES if path.is_file() else 0


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
    order, ``PREDICT_ROWS`` at a time: memory stays flat in rows. Returns the rows and what
    was filled in per column (``unknown_categories``, ``missing_numbers``:
    ``EmbeddingRegressor.filled_values``) and what missing numbers became (``fill``: median
    or mean). Text or infinity in a continuous column is an ``InputError`` naming its line,
    and nothing is written: the output is renamed into place only when complete."""
    from rossmann_embed.tabular.estimator import EmbeddingRegressor

    estimator = EmbeddingRegressor.load(run_dir)
    out = check_output(out)
    filled: dict[str, dict[str, int]] = {}
    rows = 0
    with tempfile.TemporaryDirectory(prefix="predict-") as directory:
        path = as_parquet(table, directory)
        schema = pl.scan_parquet(path).collect_schema()
        require_columns(pl.DataFrame(schema=schema), estimator.roles_.inputs, str(table))
        if PREDICTION in schema:
            raise InputError.at(str(table), f"no column named {PREDICTION!r} (it is written)",
                                column=PREDICTION)
        first = data_line(table)
        with PredictionWriter(out) as writer:
            for frame in pq.ParquetFile(path).iter_batches(batch_size=PREDICT_ROWS):
                chunk = arrow_frame(frame)
                writer.write(predict_chunk(estimator, chunk, str(table), first, rows, filled))
                rows += chunk.height
    return {"rows": rows, **filled, "fill": estimator.run_.preprocessor.fill}


def predict_chunk(estimator: Any, frame: pl.DataFrame, source: str, first_line: int | None,
                  offset: int, filled: dict[str, dict[str, int]]) -> pl.DataFrame:
    """``frame`` (rows ``offset`` on of the table) with its predictions; adds what was filled
    in to ``filled``."""
    from rossmann_embed.tabular.estimator import FilledValuesWarning

    inputs = frame.select(estimator.roles_.inputs)
    given = [c for c in estimator.roles_.continuous if c in inputs.columns]
    check_numbers(inputs, given, source, first_line=first_line, offset=offset)
    for kind, counts in estimator.filled_values(inputs).items():
        for column, n in counts.items():
            filled.setdefault(kind, {})
            filled[kind][column] = filled[kind].get(column, 0) + n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FilledValuesWarning)  # counted in the report instead
        return frame.with_columns(pl.Series(PREDICTION, estimator.predict(inputs)))


class PredictionWriter:
    """Chunks of a table appended to a temporary sibling of ``path`` (parquet by a streaming
    writer, CSV with one header), renamed onto ``path`` when all are written; on any failure
    the temporary file goes and nothing is left at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.parquet = path.suffix.lower() == ".parquet"
        self.writer: pq.ParquetWriter | None = None
        self.handle: Any = None

    def __enter__(self) -> PredictionWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.parquet:
            self.handle = open(self.tmp, "wb")  # noqa: SIM115 (closed in __exit__)
        return self

    def write(self, frame: pl.DataFrame) -> None:
        if self.parquet:
            table = frame.to_arrow()
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.tmp, table.schema)
            self.writer.write_table(table)
        else:
            frame.write_csv(self.handle, include_header=self.handle.tell() == 0)

    def __exit__(self, kind: type | None, *args: object) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.handle is not None:
            self.handle.close()
        if kind is None and self.tmp.exists():
            os.replace(self.tmp, self.path)
        self.tmp.unlink(missing_ok=True)


def check_output(out: str | Path) -> Path:
    """``out`` as a path a table can be written to: CSV or parquet, in a directory that is
    one (or can be made); else an ``InputError`` naming it and why."""
    out = Path(out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise InputError.at(str(out), "an output file ending in .csv or .parquet",
                            value=out.suffix)
    if out.is_dir():
        raise InputError.at(str(out), "a file to write (this path is a directory)")
    blocking = next((p for p in out.parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise InputError.at(str(out), f"an output path whose folder can be made ({blocking} "
                            "is a file)")
    return out


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
