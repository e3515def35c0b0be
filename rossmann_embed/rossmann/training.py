"""Training a Rossmann run: data, preprocessing, one Trainer per seed, the boosted half.

``pipeline.fit`` calls ``train_network`` and then scores the validation days. Run directory
layout::

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

import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from pytorch_lightning import Callback

from rossmann_embed.rossmann.boosting import MIN_ROWS, Boosted, store_factors
from rossmann_embed.rossmann.config import TrainConfig
from rossmann_embed.rossmann.features import (
    FeatureTable,
    build_features,
    hide_future,
    model_rows,
    select_features,
    time_split,
)
from rossmann_embed.rossmann.io import read_rossmann
from rossmann_embed.rossmann.levels import fit_store_levels, recent_rows, write_store_levels
from rossmann_embed.tabular.columns import ColumnRoles
from rossmann_embed.tabular.data import InMemoryData
from rossmann_embed.tabular.encoding import Preprocessor
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.files import write_json
from rossmann_embed.tabular.runs import load_member, load_tabular_run, write_manifest
from rossmann_embed.tabular.training import train_members

Y_RANGE_HEADROOM = 1.2  # log-sales output bounded to [0, 1.2 * log(max sales)], as fastai


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
    if config.lightgbm_weight > 0 and train.height < MIN_ROWS:
        sampled = " after --train-rows" if config.train_rows is not None else ""
        raise InputError.at("--lightgbm-weight", f"a boosted half fitted on at least {MIN_ROWS} "
                            f"training rows; there are {train.height}{sampled} (0: the network "
                            "alone)", value=config.lightgbm_weight)
    spec = select_features(table.spec, config.features, config.drop_features)
    unknown = sorted(set(config.embedding_sizes) - set(spec.categorical))
    if unknown:
        raise InputError.at("--embedding-size", "a categorical column of the features trained "
                            f"on: {', '.join(spec.categorical)}", value=unknown[0])
    report = {**table.report, **counts, "rows_fit": train.height,
              "rows_validation": validation.height}
    preprocessor = Preprocessor(spec, scaling=config.continuous_scaling).fit(train)
    return train, validation, preprocessor, report


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


def train_network(config: TrainConfig, resume: bool = False,
                  callbacks: Sequence[Callback] = (),
                  table: FeatureTable | None = None) -> tuple[Path, pl.DataFrame]:
    """Train ``config.seeds`` members (and the boosted half) into ``config.out``; returns the
    run directory and the validation rows, which ``pipeline.fit`` scores. ``callbacks`` join
    each member's Trainer; ``table`` (``read_features(config)``) saves reading the files
    again when one process trains many runs."""
    run_dir = Path(config.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError.at(str(run_dir), "a directory to write the run into (--out)")
    train, validation, preprocessor, report = prepare(config, table)  # bad input stops here
    run_dir.mkdir(parents=True, exist_ok=True)
    write_store_levels(run_dir, None)  # an earlier run's, until this run's members are done
    write_manifest(run_dir, "train")
    config.save(run_dir / "config.json")
    write_json(run_dir / "columns.json", columns_report(preprocessor))
    write_json(run_dir / "data_report.json", report)
    print(", ".join(f"{k}={v:,}" for k, v in report.items()))
    train_tensors = preprocessor.transform(hide_future(train, config.hide_future, config.seed))
    val_tensors = preprocessor.transform(validation) if validation.height else None
    y_range = (0.0, Y_RANGE_HEADROOM * math.log(train.get_column("Sales").max()))
    features = {"features": {"weather": config.weather, "trends": config.trends}}
    data = InMemoryData(train_tensors, val_tensors)
    if train_members(config, run_dir, preprocessor, data, y_range,
                     resume=resume, callbacks=callbacks, metadata=features):
        write_store_levels(run_dir, store_levels(run_dir, train, config.level_days))
        if config.lightgbm_weight > 0:
            fit_boosted(config, run_dir, train, preprocessor, resume)
        else:  # the network alone: a boosted half of an earlier recipe must not be loaded
            shutil.rmtree(run_dir / "lightgbm", ignore_errors=True)
        return run_dir, validation
    return run_dir, validation.clear()  # not the rank that writes reports


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
