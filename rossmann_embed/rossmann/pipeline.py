"""fit(config) -> run directory: train the network and the boosted half
(``training.train_network``), then score the validation days with the saved run, as any
later prediction is made (``inference.load_train_run``), into ``validation.json``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from pytorch_lightning import Callback

from rossmann_embed.rossmann.features import FeatureTable
from rossmann_embed.rossmann.inference import load_train_run
from rossmann_embed.rossmann.train_config import TrainConfig
from rossmann_embed.rossmann.training import train_network
from rossmann_embed.tabular.errors import TrainingFailed
from rossmann_embed.tabular.files import write_json
from rossmann_embed.tabular.metrics import rmspe


def fit(config: TrainConfig, resume: bool = False, callbacks: Sequence[Callback] = (),
        table: FeatureTable | None = None) -> Path:
    """Train ``config.seeds`` models into ``config.out`` and write the validation report;
    ``callbacks`` join each member's Trainer. ``table`` (``training.read_features(config)``)
    saves reading the files again when one process trains many runs."""
    try:
        run_dir, validation = train_network(config, resume, callbacks, table)
    except TrainingFailed:  # an earlier run's report in --out must not claim success
        (Path(config.out) / "validation.json").unlink(missing_ok=True)
        raise
    if validation.height:
        write_json(run_dir / "validation.json", validation_report(run_dir, validation))
    return run_dir


def validation_report(run_dir: Path, validation: pl.DataFrame) -> dict:
    """RMSPE on the validation rows: the run's forecast (the network, blended with the boosted
    half if there is one), the network alone (members' mean plus store levels), the boosted
    half, each member (without levels)."""
    run = load_train_run(run_dir)
    sales = validation.get_column("Sales").to_numpy()
    parts = run.part_logs(validation)
    members = [{"seed": int(label.removeprefix("seed-")),
                "rmspe": rmspe(sales, np.exp(parts[label]))} for label in run.labels]
    dates = validation.get_column("Date")
    report = {
        "rmspe": rmspe(sales, np.exp(run.forecast_log(parts))),
        "network_rmspe": rmspe(sales, np.exp(parts["network"])),
        "rows": validation.height,
        "date_from": dates.min(),
        "date_to": dates.max(),
        "members": members,
        "mean_member_rmspe": float(np.mean([m["rmspe"] for m in members])),
    }
    if run.boosted is not None:
        report["lightgbm_rmspe"] = rmspe(sales, np.exp(parts["lightgbm"]))
        report["lightgbm_weight"] = run.boosted.weight
    return report
