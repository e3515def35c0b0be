"""Train the members of a run: one Lightning ``Trainer`` per seed, into a run directory.

Run directory layout written here (dataset commands add their own files)::

    checkpoints/seed-S/    best.ckpt and last.ckpt of each ensemble member
    logs/seed-S/           Lightning's CSV (or TensorBoard) logs
    metrics.csv            every member's per-epoch metrics, with a seed column
    training.json          the budget (batch size, epochs, patience) and each member's steps

A checkpoint alone can predict: ``metadata`` (the fitted preprocessing and whatever the
dataset needs) travels in its hyperparameters as plain data, and loads weights-only.
"""

from __future__ import annotations

import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import torch
from pytorch_lightning import Callback, LightningModule, Trainer, seed_everything
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.utilities.exceptions import SIGTERMException

from rossmann_embed.tabular.config import Budget, NetworkConfig, auto_budget
from rossmann_embed.tabular.data import InMemoryData
from rossmann_embed.tabular.encoding import Preprocessor
from rossmann_embed.tabular.errors import TrainingFailed, TrainingInterrupted
from rossmann_embed.tabular.files import write_csv, write_json
from rossmann_embed.tabular.model import EntityEmbeddingNetwork, numerical_bins
from rossmann_embed.tabular.streaming import StreamedData

TRAINING_FILE = "training.json"
# How long a DDP process waits for the others at a collective (a step's gradient sum, the
# start): past it the run fails with one line rather than hang on a dead peer.
COLLECTIVE_TIMEOUT_SECONDS = 600
TrainingData = InMemoryData | StreamedData  # the two data paths: same run, model and Trainer


class ResumableEarlyStopping(EarlyStopping):
    """EarlyStopping whose decision survives ``--resume``: Lightning restores its counters but
    not the trainer's ``should_stop``, so a member that had stopped would train another epoch."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.stopped_epoch:  # restored from a checkpoint written after it stopped
            trainer.should_stop = True


class RandomStates(Callback):
    """Saves torch's random state (CPU, and CUDA when in use) with every checkpoint and puts
    it back on resume, so that dropout masks after a kill are those the uninterrupted run
    drew: a resumed run then ends where it would have. (The batch order needs nothing: it is
    seeded by epoch.)"""

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint["torch_random_state"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            checkpoint["cuda_random_states"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if "torch_random_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_random_state"])
        if "cuda_random_states" in checkpoint and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["cuda_random_states"])


class EpochTimer(Callback):
    """Logs ``epoch_seconds``: first to last training batch of each epoch (no validation, which
    Lightning runs before ``on_train_epoch_end``)."""

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.start = self.end = time.perf_counter()

    def on_train_batch_end(self, trainer: Trainer, *args: object) -> None:
        self.end = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.log("epoch_seconds", self.end - self.start, sync_dist=True)


def monitored_metric(config: NetworkConfig, preprocessor: Preprocessor) -> str:
    """What early stopping and the best checkpoint watch: ``config.monitor``, in the target's
    own units (RMSPE exists only for a log target)."""
    if config.monitor == "val_rmspe" and preprocessor.spec.target_transform != "log":
        raise ValueError("monitor 'val_rmspe' needs a log target transform")
    return config.monitor


def train_members(config: NetworkConfig, run_dir: Path, preprocessor: Preprocessor,
                  data: TrainingData, y_range: tuple[float, float] | None, *,
                  resume: bool = False,
                  callbacks: Sequence[Callback] = (),
                  metadata: dict[str, Any] | None = None, summary: bool = True) -> bool:
    """Train ``config.seeds`` members into ``run_dir``, merge their metrics and write
    ``training.json``; returns whether this process is the global rank 0 (the one that
    writes reports under DDP). ``data`` is the in-memory or the streamed data path: the
    rest is the same for both."""
    budget = auto_budget(config, data.rows)
    # Bins of the piecewise-linear embeddings: from the training rows only, one set per run.
    bins = (numerical_bins(data.continuous_sample(), config.numerical_bins)
            if config.numerical_embedding == "piecewise" else None)
    is_global_zero, members = True, []
    for member in range(config.seeds):
        seed = config.seed + member
        try:
            trainer = train_member(config, budget, run_dir, seed, preprocessor, data,
                                   y_range, bins, resume=resume,
                                   callbacks=callbacks, metadata=metadata, summary=summary)
        except TrainingFailed as error:  # no member of the run may claim success
            if not isinstance(error, TrainingInterrupted):  # kept for --resume
                shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
            (run_dir / TRAINING_FILE).unlink(missing_ok=True)
            raise
        is_global_zero = trainer.is_global_zero
        members.append({"seed": seed, "steps": int(trainer.global_step),
                        "epochs": int(trainer.current_epoch)})
    if is_global_zero:
        merge_metrics(run_dir)
        write_json(run_dir / TRAINING_FILE, {
            "rows": data.rows, "batch_size": budget.batch_size, "epochs": budget.epochs,
            "patience": budget.patience, "planned_steps": budget.steps(data.rows),
            "members": members})
    return is_global_zero


def train_member(config: NetworkConfig, budget: Budget, run_dir: Path, seed: int,
                 preprocessor: Preprocessor, data: TrainingData,
                 y_range: tuple[float, float] | None,
                 bins: list[list[float]] | None, *, resume: bool = False,
                 callbacks: Sequence[Callback] = (),
                 metadata: dict[str, Any] | None = None, summary: bool = True) -> Trainer:
    """One member: seeded model, checkpoints, early stopping on validation, resume from
    ``last.ckpt`` when asked and present."""
    seed_everything(seed, workers=True, verbose=False)
    model = EntityEmbeddingNetwork(
        config, preprocessor.cardinalities, len(preprocessor.spec.continuous),
        preprocessor.spec.target_transform, y_range, bins,
        preprocessing={"preprocessor": preprocessor.to_dict(), **(metadata or {})})
    checkpoints = run_dir / "checkpoints" / f"seed-{seed}"
    monitor = monitored_metric(config, preprocessor) if data.validated else None
    best, last_checkpoint = _checkpoints(checkpoints, monitor)
    all_callbacks: list[Callback] = [EpochTimer(), RandomStates(), best, last_checkpoint]
    if monitor:
        all_callbacks.append(ResumableEarlyStopping(monitor=monitor, mode="min",
                                                    patience=budget.patience))
    all_callbacks += callbacks
    trainer = Trainer(
        max_epochs=budget.epochs,
        accelerator=config.accelerator,
        devices=_devices(config.devices),
        num_nodes=config.num_nodes,
        strategy=_strategy(config.strategy),
        precision=config.precision,
        callbacks=all_callbacks,
        logger=make_logger(config.logger, run_dir, seed),
        # A progress bar redrawn into a log file floods it: only on a terminal.
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=summary,
        num_sanity_val_steps=0,
        log_every_n_steps=50,
        deterministic=False,
    )
    last = checkpoints / "last.ckpt"
    resuming = resume and last.is_file()
    log_file = _csv_log(run_dir, seed)
    # Lightning's CSVLogger starts its file afresh: keep what the interrupted run logged.
    earlier = pl.read_csv(log_file) if resuming and log_file.is_file() else None
    datamodule = data.datamodule(budget.batch_size, seed)
    with warnings.catch_warnings():
        if earlier is not None:  # "previous log files will be deleted": put back below
            warnings.filterwarnings("ignore", message="Experiment logs directory")
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=last if resuming else None,
                        weights_only=True)
        except SIGTERMException:  # a SystemExit with status 0: it must not pass for success
            raise TrainingInterrupted(
                f"training stopped by SIGTERM (member seed {seed}, epoch "
                f"{trainer.current_epoch}); --resume continues from its last checkpoint",
            ) from None
    if earlier is not None and trainer.is_global_zero:  # the rank that logs
        _put_back_earlier_epochs(log_file, earlier)
    # Rank 0 holds the checkpoints; every rank learns its verdict, so that all stop together.
    problem = (divergence(checkpoints, best.best_model_score if monitor else None)
               if trainer.is_global_zero else None)
    problem = trainer.strategy.broadcast(problem, src=0)
    if problem:
        if trainer.is_global_zero:
            shutil.rmtree(checkpoints, ignore_errors=True)
        raise TrainingFailed(f"training diverged (member seed {seed}: {problem}): try a lower "
                             "learning rate (--lr), or look for extreme values in the inputs "
                             "and the target")
    return trainer


def divergence(checkpoints: Path, score: torch.Tensor | None) -> str | None:
    """Why a member is no model, or None: its best validation score or its weights are not
    finite, or it wrote no checkpoint. A diverged member's checkpoints are removed, so that
    nothing claims success, and ``TrainingFailed`` says what happened and what to try."""
    path = checkpoints / "best.ckpt"
    if not path.is_file():
        return "no checkpoint was written"
    if score is not None and not torch.isfinite(score):
        return f"its best validation score is not finite ({float(score)})"
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    broken = [name for name, value in state.items()
              if value.is_floating_point() and not torch.isfinite(value).all()]
    return f"weights {broken[0]!r} are not finite" if broken else None


def make_logger(kind: str, run_dir: Path, seed: int) -> Logger | list[Logger]:
    """Lightning's CSV or TensorBoard logger, writing to ``run_dir/logs/seed-S``. With
    TensorBoard, a CSV log is kept beside it, since ``metrics.csv`` is merged from it."""
    if kind == "tensorboard":
        return [TensorBoardLogger(run_dir / "logs", name=f"seed-{seed}", version=""),
                CSVLogger(run_dir / "logs", name=f"seed-{seed}", version="")]
    return CSVLogger(run_dir / "logs", name=f"seed-{seed}", version="")


def merge_metrics(run_dir: Path) -> None:
    """Every member's logged epochs in one ``metrics.csv``, with a seed column."""
    frames = [
        pl.read_csv(path).with_columns(seed=pl.lit(int(path.parent.name.removeprefix("seed-"))))
        for path in sorted((run_dir / "logs").glob("seed-*/metrics.csv"))
    ]
    if frames:
        write_csv(pl.concat(frames, how="diagonal_relaxed"), run_dir / "metrics.csv")


def _csv_log(run_dir: Path, seed: int) -> Path:
    return run_dir / "logs" / f"seed-{seed}" / "metrics.csv"


def _put_back_earlier_epochs(log_file: Path, earlier: pl.DataFrame) -> None:
    """Prepend the logged rows of the epochs before the one a resumed run started with (an
    interrupted epoch was run again, so its old rows go)."""
    if not log_file.is_file():  # nothing left to train: nothing new logged
        write_csv(earlier, log_file)
        return
    resumed = pl.read_csv(log_file)
    kept = earlier.filter(pl.col("epoch") < resumed.get_column("epoch").min())
    write_csv(pl.concat([kept, resumed], how="diagonal_relaxed"), log_file)


def _checkpoints(directory: Path, monitor: str | None) -> list[ModelCheckpoint]:
    """best.ckpt (lowest ``monitor``; without validation, the latest) and last.ckpt (every
    epoch).

    Not ``save_last=True``: since Lightning 2.x it rewrites last.ckpt only when a best
    checkpoint is saved, so after an epoch without improvement ``--resume`` would go back.
    """
    best = ModelCheckpoint(
        dirpath=directory, filename="best", enable_version_counter=False,
        # "step" always grows: the monitor that makes the latest epoch the best one.
        monitor=monitor or "step", mode="min" if monitor else "max",
    )
    last = ModelCheckpoint(dirpath=directory, filename="last", enable_version_counter=False)
    return [best, last]


def _strategy(strategy: str) -> str | DDPStrategy:
    """Lightning's strategy; DDP's with a bounded wait on collectives, so that a process that
    died ends the others with an error instead of a hang."""
    if strategy == "ddp":
        return DDPStrategy(timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_SECONDS))
    return strategy


def _devices(devices: str) -> int | str:
    return int(devices) if str(devices).isdigit() else devices
