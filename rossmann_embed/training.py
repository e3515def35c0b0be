"""fit(config) -> run directory: data, preprocessing, one Trainer per seed, validation report.

Run directory layout::

    config.json            the resolved TrainConfig
    data_report.json       row counts: read, used for features, kept for the model, dropped why
    checkpoints/seed-S/    best.ckpt and last.ckpt of each ensemble member
    logs/seed-S/           Lightning's CSV logs
    metrics.csv            every member's per-epoch metrics, with a seed column
    lightgbm/              the boosted half (``lightgbm_weight`` > 0): LightGBM fed with the
                           first member's store factors (model.txt, settings.json,
                           store_factors.csv, blend.json)
    validation.json        RMSPE of the forecast, of the network alone, of the boosted half
                           and of each member on the validation days
"""

from __future__ import annotations

import math
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from pytorch_lightning import Callback, LightningModule, Trainer, seed_everything
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from rossmann_embed.boosting import Boosted, store_factors
from rossmann_embed.config import TrainConfig, write_json
from rossmann_embed.data import TensorDataModule
from rossmann_embed.encoding import Preprocessor
from rossmann_embed.features import build_features, hide_future, model_rows, time_split
from rossmann_embed.inference import load_member, load_run
from rossmann_embed.io import read_rossmann
from rossmann_embed.model import EntityEmbeddingRegressor, rmspe

Y_RANGE_HEADROOM = 1.2  # log-sales output bounded to [0, 1.2 * log(max sales)], as fastai


class ResumableEarlyStopping(EarlyStopping):
    """EarlyStopping whose decision survives ``--resume``: Lightning restores its counters but
    not the trainer's ``should_stop``, so a member that had stopped would train another epoch."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.stopped_epoch:  # restored from a checkpoint written after it stopped
            trainer.should_stop = True


class EpochTimer(Callback):
    """Logs ``epoch_seconds``: first to last training batch of each epoch (no validation, which
    Lightning runs before ``on_train_epoch_end``)."""

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.start = self.end = time.perf_counter()

    def on_train_batch_end(self, trainer: Trainer, *args: object) -> None:
        self.end = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.log("epoch_seconds", self.end - self.start, sync_dist=True)


def prepare(config: TrainConfig) -> tuple[pl.DataFrame, pl.DataFrame, Preprocessor, dict]:
    """Read, build features, choose the model rows and split: (train, validation, fitted
    preprocessing, report of row counts). ``fit`` hides the training rows' future."""
    data = read_rossmann(config.data_dir, weather=config.weather, trends=config.trends)
    table = build_features(data)
    rows, counts = model_rows(table.frame)
    train, validation = time_split(rows, config.validation_days)
    report = {**table.report, **counts, "rows_fit": train.height,
              "rows_validation": validation.height}
    preprocessor = Preprocessor(table.spec).fit(train)
    return train, validation, preprocessor, report


def fit(config: TrainConfig, resume: bool = False, callbacks: Sequence[Callback] = ()) -> Path:
    """Train ``config.seeds`` models into ``config.out`` and write the validation report;
    ``callbacks`` join each member's Trainer."""
    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.json")
    train, validation, preprocessor, report = prepare(config)
    write_json(run_dir / "data_report.json", report)
    print(", ".join(f"{k}={v:,}" for k, v in report.items()))
    train_tensors = preprocessor.transform(hide_future(train, config.hide_future, config.seed))
    val_tensors = preprocessor.transform(validation) if validation.height else None
    max_log = math.log(train.get_column("Sales").max())
    is_global_zero = True
    for member in range(config.seeds):
        seed = config.seed + member
        trainer = _train_member(config, run_dir, seed, preprocessor, train_tensors, val_tensors,
                                (0.0, Y_RANGE_HEADROOM * max_log), resume, callbacks)
        is_global_zero = trainer.is_global_zero
    if is_global_zero:
        if config.lightgbm_weight > 0:
            fit_boosted(config, run_dir, train, preprocessor, resume)
        else:  # the network alone: a boosted half of an earlier recipe must not be loaded
            shutil.rmtree(run_dir / "lightgbm", ignore_errors=True)
        _merge_metrics(run_dir)
        if validation.height:
            write_json(run_dir / "validation.json", validation_report(run_dir, validation))
    return run_dir


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


def _train_member(config: TrainConfig, run_dir: Path, seed: int, preprocessor: Preprocessor,
                  train_tensors, val_tensors, y_range: tuple[float, float],
                  resume: bool, extra_callbacks: Sequence[Callback]) -> Trainer:
    seed_everything(seed, workers=True, verbose=False)
    model = EntityEmbeddingRegressor(
        cardinalities=preprocessor.cardinalities,
        n_continuous=len(preprocessor.spec.continuous),
        embedding_sizes=config.embedding_sizes or None,
        hidden_sizes=config.hidden_sizes,
        dropout=config.dropout,
        embedding_dropout=config.embedding_dropout,
        batch_norm=config.batch_norm,
        y_range=y_range,
        loss=config.loss,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        preprocessing={"preprocessor": preprocessor.to_dict(),
                       "features": {"weather": config.weather, "trends": config.trends}},
    )
    checkpoints = run_dir / "checkpoints" / f"seed-{seed}"
    has_validation = val_tensors is not None
    callbacks: list[Callback] = [EpochTimer(), *_checkpoints(checkpoints, has_validation)]
    if has_validation:
        callbacks.append(ResumableEarlyStopping(monitor="val_rmspe", mode="min",
                                                patience=config.patience))
    callbacks += extra_callbacks
    trainer = Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=_devices(config.devices),
        strategy=config.strategy,
        precision=config.precision,
        callbacks=callbacks,
        logger=CSVLogger(run_dir / "logs", name=f"seed-{seed}", version=""),
        num_sanity_val_steps=0,
        log_every_n_steps=50,
        deterministic=False,
    )
    last = checkpoints / "last.ckpt"
    resuming = resume and last.is_file()
    log_file = Path(trainer.logger.log_dir) / "metrics.csv"
    # Lightning's CSVLogger starts its file afresh: keep what the interrupted run logged.
    earlier = pl.read_csv(log_file) if resuming and log_file.is_file() else None
    data = TensorDataModule(train_tensors, val_tensors, config.batch_size, seed)
    with warnings.catch_warnings():
        if earlier is not None:  # "previous log files will be deleted": put back below
            warnings.filterwarnings("ignore", message="Experiment logs directory")
        trainer.fit(model, datamodule=data, ckpt_path=last if resuming else None,
                    weights_only=True)
    if earlier is not None and trainer.is_global_zero:  # the rank that logs
        _put_back_earlier_epochs(log_file, earlier)
    return trainer


def _put_back_earlier_epochs(log_file: Path, earlier: pl.DataFrame) -> None:
    """Prepend the logged rows of the epochs before the one a resumed run started with (an
    interrupted epoch was run again, so its old rows go)."""
    if not log_file.is_file():  # nothing left to train: nothing new logged
        earlier.write_csv(log_file)
        return
    resumed = pl.read_csv(log_file)
    kept = earlier.filter(pl.col("epoch") < resumed.get_column("epoch").min())
    pl.concat([kept, resumed], how="diagonal_relaxed").write_csv(log_file)


def _checkpoints(directory: Path, has_validation: bool) -> list[ModelCheckpoint]:
    """best.ckpt (lowest val_rmspe; without validation, the latest) and last.ckpt (every epoch).

    Not ``save_last=True``: since Lightning 2.x it rewrites last.ckpt only when a best
    checkpoint is saved, so after an epoch without improvement ``--resume`` would go back.
    """
    best = ModelCheckpoint(
        dirpath=directory, filename="best", enable_version_counter=False,
        # "step" always grows: the monitor that makes the latest epoch the best one.
        monitor="val_rmspe" if has_validation else "step",
        mode="min" if has_validation else "max",
    )
    last = ModelCheckpoint(dirpath=directory, filename="last", enable_version_counter=False)
    return [best, last]


def validation_report(run_dir: Path, validation: pl.DataFrame) -> dict:
    """RMSPE on the validation rows: the run's forecast (members' log-space mean, blended with
    the boosted half if there is one), the network alone, the boosted half, each member."""
    run = load_run(run_dir)
    sales = validation.get_column("Sales").to_numpy()
    logs = run.member_logs(validation)
    members = [{"seed": int(label.removeprefix("seed-")), "rmspe": rmspe(sales, np.exp(log))}
               for label, log in logs.items()]
    network = np.mean(list(logs.values()), axis=0)
    dates = validation.get_column("Date")
    report = {
        "rmspe": rmspe(sales, np.exp(run.predict_log(validation))),
        "network_rmspe": rmspe(sales, np.exp(network)),
        "rows": validation.height,
        "date_from": dates.min(),
        "date_to": dates.max(),
        "members": members,
        "mean_member_rmspe": float(np.mean([m["rmspe"] for m in members])),
    }
    if run.boosted is not None:
        report["lightgbm_rmspe"] = rmspe(sales, np.exp(run.boosted.predict_log(validation)))
        report["lightgbm_weight"] = run.boosted.weight
    return report


def _merge_metrics(run_dir: Path) -> None:
    frames = [
        pl.read_csv(path).with_columns(seed=pl.lit(int(path.parent.name.removeprefix("seed-"))))
        for path in sorted((run_dir / "logs").glob("seed-*/metrics.csv"))
    ]
    if frames:
        pl.concat(frames, how="diagonal_relaxed").write_csv(run_dir / "metrics.csv")


def _devices(devices: str) -> int | str:
    return int(devices) if str(devices).isdigit() else devices
