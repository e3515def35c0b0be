"""Training a Rossmann run: data, preprocessing, one Trainer per seed, the boosted half.

``pipeline.fit`` calls ``train_network`` and then scores the validation days. The rows are
held in memory, or, past ``STREAM_CELLS`` feature cells (or with ``--stream``), built into
parquet shards a block of stores at a time (``shards``) and streamed, as a ``fit`` run
streams a large table: the same members, Trainer and run. Run directory layout::

    config.json            the resolved TrainConfig
    columns.json           the target and each feature's role, as a `fit` run's
    data_report.json       row counts: read, used for features, kept for the model, dropped why
    checkpoints/seed-S/    best.ckpt and last.ckpt of each ensemble member
    logs/seed-S/           Lightning's CSV logs
    metrics.csv            every member's per-epoch metrics, with a seed column
    store_levels.csv       the network's mean log residual per store and weekday over the
                           last ``level_days`` training days, added to its forecast, and
                           the variance beyond it, which lowers every part (``levels``)
    lightgbm/              the boosted half (``lightgbm_weight`` > 0): LightGBM fed with the
                           first member's store factors (model.txt, model-2.txt, settings.json,
                           store_factors.csv, blend.json)
    validation.json        RMSPE of the forecast, of the network alone, of the boosted half
                           and of each member on the validation days
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
from pytorch_lightning import Callback

from rossmann_embed.rossmann.boosting import LIGHTGBM_INPUTS, MIN_ROWS, Boosted, store_factors
from rossmann_embed.rossmann.features import (
    LOOK_AHEAD,
    FeatureTable,
    build_features,
    hide_future,
    model_rows,
    select_features,
    time_split,
)
from rossmann_embed.rossmann.kaggle_files import read_rossmann
from rossmann_embed.rossmann.levels import fit_store_levels, recent_rows, write_store_levels
from rossmann_embed.rossmann.shards import (
    HideFuture,
    day_number,
    feature_cells,
    write_feature_shards,
)
from rossmann_embed.rossmann.train_config import TrainConfig
from rossmann_embed.tabular.columns import ColumnRoles
from rossmann_embed.tabular.data import InMemoryData
from rossmann_embed.tabular.encoding import ColumnSpec, Preprocessor
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.files import write_json
from rossmann_embed.tabular.run_directory import load_member, load_tabular_run, write_manifest
from rossmann_embed.tabular.statistics import streamed, training_sample
from rossmann_embed.tabular.streaming import (
    ROW_INDEX,
    Split,
    StreamedData,
    StreamedTable,
    row_groups,
)
from rossmann_embed.tabular.trainer import TrainingData, train_members
from rossmann_embed.tabular.workflow import STREAM_CELLS

Y_RANGE_HEADROOM = 1.2  # log-sales output bounded to [0, 1.2 * log(max sales)], as fastai
# The boosted half's training rows at most (a seeded sample beyond): LightGBM holds them in
# memory. Kaggle's 800,000 are all kept.
BOOSTED_ROWS = 1_000_000


def read_features(config: TrainConfig) -> FeatureTable:
    """Kaggle's files under ``config.data_dir`` (with weather and trends as configured) and
    every feature built from them."""
    return build_features(read_rossmann(config.data_dir, weather=config.weather,
                                        trends=config.trends))


def prepare(config: TrainConfig, table: FeatureTable | None = None
            ) -> tuple[pl.DataFrame, pl.DataFrame, Preprocessor, dict]:
    """Read (unless ``table``, from ``read_features``, is given), choose the model rows and
    split: (train, validation, fitted preprocessing, report of row counts). ``fit`` hides the
    training rows' future."""
    table = table or read_features(config)
    rows, counts = model_rows(table.frame)
    train, validation = time_split(rows, config.validation_days)
    if config.train_rows is not None and config.train_rows < train.height:
        counts["rows_not_sampled"] = train.height - config.train_rows  # --train-rows
        train = sample_rows(train, config.train_rows, config.seed)
    if train.is_empty():
        days = rows.get_column("Date").n_unique()
        raise InputError.at("--validation-days", f"fewer days than the data's {days} (none "
                            "would be left to train on)", value=config.validation_days)
    check_boosted_rows(config, train.height)
    spec = select_features(table.spec, config.features, config.drop_features)
    check_embedding_sizes(config, spec)
    report = {**table.report, **counts, "rows_fit": train.height,
              "rows_validation": validation.height}
    preprocessor = Preprocessor(spec, scaling=config.continuous_scaling).fit(train)
    return train, validation, preprocessor, report


def check_boosted_rows(config: TrainConfig, rows: int) -> None:
    """A boosted half needs ``MIN_ROWS`` training rows: an ``InputError`` if there are fewer."""
    if config.lightgbm_weight > 0 and rows < MIN_ROWS:
        sampled = " after --train-rows" if config.train_rows is not None else ""
        raise InputError.at("--lightgbm-weight", f"a boosted half fitted on at least {MIN_ROWS} "
                            f"training rows; there are {rows}{sampled} (0: the network "
                            "alone)", value=config.lightgbm_weight)


def check_embedding_sizes(config: TrainConfig, spec: ColumnSpec) -> None:
    """Every ``--embedding-size`` names a categorical column of ``spec``."""
    unknown = sorted(set(config.embedding_sizes) - set(spec.categorical))
    if unknown:
        raise InputError.at("--embedding-size", "a categorical column of the features trained "
                            f"on: {', '.join(spec.categorical)}", value=unknown[0])


def as_read(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Feature shards' rows as the model takes them: the features are built already."""
    return frame


def columns_report(preprocessor: Preprocessor) -> dict:
    """``columns.json``, as a `fit` run writes it: the target, how the network sees it, and
    each input column's role (the features of ``rossmann.features``) and why."""
    spec = preprocessor.spec
    reasons = {**{c: "categorical: a Rossmann feature (embedded)" for c in spec.categorical},
               **{c: "continuous: a Rossmann feature" for c in spec.continuous}}
    return {"target": spec.target, "target_transform": spec.target_transform, "dropped": [],
            **ColumnRoles(list(spec.categorical), list(spec.continuous),
                          reasons=reasons).to_dict()}


def sample_rows(frame: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """``n`` rows drawn at random without replacement, in their original order."""
    chosen = np.sort(np.random.default_rng(seed).choice(frame.height, n, replace=False))
    return frame[chosen]


@dataclass
class PreparedData:
    """A run's rows as training needs them, from memory or from feature shards."""

    data: TrainingData  # the network's batches (training rows with their future hidden)
    preprocessor: Preprocessor
    report: dict  # row counts: read, used for features, kept for the model, dropped why
    train: pl.LazyFrame  # the training rows, their future not hidden
    validation: pl.LazyFrame


def streams(config: TrainConfig, table: FeatureTable | None = None) -> bool:
    """Whether a run builds its features into shards and streams them: ``config.stream``,
    or (unset) whether the feature table would hold more than ``STREAM_CELLS`` cells."""
    if table is not None:  # features built in memory already
        return False
    if config.stream is not None:
        return config.stream
    return feature_cells(config.data_dir) > STREAM_CELLS


def in_memory(config: TrainConfig, table: FeatureTable | None = None) -> PreparedData:
    """Every feature row in memory (``prepare``), batches sliced from tensors."""
    train, validation, preprocessor, report = prepare(config, table)
    hidden = hide_future(train, config.hide_future, config.seed)
    data = InMemoryData(preprocessor.transform(hidden),
                        preprocessor.transform(validation) if validation.height else None)
    return PreparedData(data, preprocessor, report, train.lazy(), validation.lazy())


def from_shards(config: TrainConfig, directory: Path) -> PreparedData:
    """Features built a block of stores at a time into parquet shards under ``directory``
    (``shards``), statistics by polars' streaming engine, batches streamed from the shards'
    row groups, each process its own (``tabular.streaming``)."""
    if config.train_rows is not None:
        raise InputError.at("--train-rows", "no sample of a streamed run (--no-stream to "
                            "train on a sample in memory)", value=config.train_rows)
    shards = write_feature_shards(read_rossmann(config.data_dir, weather=config.weather,
                                                trends=config.trends), directory, config.seed)
    spec = select_features(shards.spec, config.features, config.drop_features)
    check_embedding_sizes(config, spec)
    everything = list(pl.scan_parquet(shards.paths).collect_schema())
    whole = StreamedTable(row_groups(shards.paths), everything, as_read, Split(0.0))
    last = streamed(whole.lazy(None).select(pl.col("Date").max())).item()
    if last is None:
        raise InputError.at(str(Path(config.data_dir) / "train.csv"), "open days with sales "
                            "above 0 to learn from")
    first_validation = day_number(last) - config.validation_days + 1
    split = Split(float(config.validation_days > 0), time_column="Date",
                  cut=float(first_validation))
    table = replace(whole, split=split).count()
    rows = sum(table.rows("train"))
    if not rows:
        raise InputError.at("--validation-days", "fewer days than the data's (none would be "
                            "left to train on)", value=config.validation_days)
    check_boosted_rows(config, rows)
    train, validation = table.lazy("train"), table.lazy("validation")
    sample = training_sample(train, rows, config.seed)
    preprocessor = Preprocessor(spec, scaling=config.continuous_scaling).fit_streamed(
        train, sample)
    # Batches read the model's columns alone; the levels, the boosted half and the
    # validation report read every column.
    hide = HideFuture(config.hide_future, config.seed, first_validation)
    hidden = replace(table, columns=["Date", *spec.categorical, *spec.continuous, "Sales"],
                     prepare=hide)
    data = StreamedData(hidden, preprocessor, preprocessor.transform(hide(sample.lazy()).collect()),
                        workers=config.loader_workers)
    report = {**shards.report, "rows_fit": rows,
              "rows_validation": sum(table.rows("validation"))}
    return PreparedData(data, preprocessor, report, train, validation)


def train_network(config: TrainConfig, resume: bool = False,
                  callbacks: Sequence[Callback] = (),
                  table: FeatureTable | None = None) -> tuple[Path, pl.DataFrame]:
    """Train ``config.seeds`` members (and the boosted half) into ``config.out``; returns the
    run directory and the validation rows, which ``pipeline.fit`` scores. ``callbacks`` join
    each member's Trainer; ``table`` (``read_features(config)``) saves reading the files
    again when one process trains many runs. Large data is streamed (``streams``)."""
    run_dir = Path(config.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError.at(str(run_dir), "a directory to write the run into (--out)")
    if not streams(config, table):
        return train_prepared(config, in_memory(config, table), resume, callbacks)
    with tempfile.TemporaryDirectory(prefix="rossmann-features-") as directory:
        return train_prepared(config, from_shards(config, Path(directory)), resume, callbacks)


def train_prepared(config: TrainConfig, prepared: PreparedData, resume: bool = False,
                   callbacks: Sequence[Callback] = ()) -> tuple[Path, pl.DataFrame]:
    """``train_network`` once the data is read and checked (bad input stops before this)."""
    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_store_levels(run_dir, None)  # an earlier run's, until this run's members are done
    write_manifest(run_dir, "train")
    config.save(run_dir / "config.json")
    write_json(run_dir / "columns.json", columns_report(prepared.preprocessor))
    write_json(run_dir / "data_report.json", prepared.report)
    print(", ".join(f"{k}={v:,}" for k, v in prepared.report.items()))
    most = streamed(prepared.train.select(pl.col("Sales").max())).item()
    y_range = (0.0, Y_RANGE_HEADROOM * math.log(most))
    features = {"features": {"weather": config.weather, "trends": config.trends}}
    if not train_members(config, run_dir, prepared.preprocessor, prepared.data, y_range,
                         resume=resume, callbacks=callbacks, metadata=features):
        return run_dir, pl.DataFrame()  # not the rank that writes reports
    recent = last_training_days(prepared.train, config.level_days)
    write_store_levels(run_dir, store_levels(run_dir, recent, config.level_days))
    if config.lightgbm_weight > 0:
        rows = boosted_rows(prepared.train, config.seed)
        fit_boosted(config, run_dir, rows, prepared.preprocessor, resume)
    else:  # the network alone: a boosted half of an earlier recipe must not be loaded
        shutil.rmtree(run_dir / "lightgbm", ignore_errors=True)
    return run_dir, streamed(prepared.validation)


def last_training_days(train: pl.LazyFrame, days: int) -> pl.DataFrame:
    """The training rows of the last ``days`` days (0: none)."""
    if days <= 0:
        return pl.DataFrame()
    last = streamed(train.select(pl.col("Date").max())).item()
    return streamed(train.filter(pl.col("Date") > last - dt.timedelta(days=days)))


def boosted_rows(train: pl.LazyFrame, seed: int) -> pl.DataFrame:
    """The boosted half's rows, with the columns it reads alone: every training row up to
    ``BOOSTED_ROWS``, else a seeded sample of about that many (LightGBM holds its rows in
    memory)."""
    rows = streamed(train.select(pl.len())).item()
    columns = list(dict.fromkeys([*LIGHTGBM_INPUTS, *LOOK_AHEAD, "Date", "Sales"]))
    if rows <= BOOSTED_ROWS:
        return streamed(train.select(columns))
    indexed = train if ROW_INDEX in train.collect_schema() else train.with_row_index(ROW_INDEX)
    return training_sample(indexed.select(ROW_INDEX, *columns), rows, seed,
                           limit=BOOSTED_ROWS).drop(ROW_INDEX)


def store_levels(run_dir: Path, train: pl.DataFrame, days: int) -> pl.DataFrame | None:
    """The trained members' store levels over the last ``days`` training days (0: None)."""
    if days <= 0:
        return None
    recent = recent_rows(train, days)
    logs = load_tabular_run(run_dir).member_logs(recent, "the training rows")
    return fit_store_levels(recent, np.mean(list(logs.values()), axis=0))


def fit_boosted(config: TrainConfig, run_dir: Path, train: pl.DataFrame,
                preprocessor: Preprocessor, resume: bool = False) -> None:
    """The boosted half: LightGBM on the network's training rows plus the first member's
    store factors, saved into ``run_dir / "lightgbm"`` (kept on ``resume`` when complete)."""
    directory = run_dir / "lightgbm"
    if resume and Boosted.saved_matches(directory, config.lightgbm_weight, config.store_factors,
                                        config.hide_future):
        return
    member = load_member(run_dir / "checkpoints" / f"seed-{config.seed}" / "best.ckpt")
    weights = member.embeddings["Store"].weight.detach().cpu().numpy()
    factors = store_factors(preprocessor.vocabularies["Store"], weights, config.store_factors)
    start = time.perf_counter()
    Boosted.fit(train, factors, config.lightgbm_weight, config.hide_future,
                config.store_factors).save(directory)
    print(f"boosted half: LightGBM with {factors.width - 1} store factors in "
          f"{time.perf_counter() - start:.0f} s -> {directory}")
