"""Measure speed and accuracy on a Rossmann folder; write one JSON file.

    python scripts/benchmark.py --data-dir ../shared/data/rossmann --out bench.json \
        [--only data|train|lightgbm|export]

Stages (each adds keys to the same JSON; keys of stages not run are kept from the file):
  data   rows_train, rows_test, rows_model, features_seconds (read + validate + features)
  train  epoch_seconds, flops_per_epoch, matmul_gflops, epoch_efficiency, val_rmspe (the
         default forecast), network_val_rmspe and boosted_val_rmspe (its parts),
         train_seconds (default configuration, last 48 days as validation), and the baseline
         of the same run on the same split: LightGBM at full strength (boosting.py), with
         lightgbm_val_rmspe, lightgbm_seconds, lightgbm_rounds (picked by early stopping)
  lightgbm  that baseline alone, on the same split (a part of the train stage)
  export  serving speed, under "export": a `fit` run on train.csv with store.csv's columns
          (one epoch: the speed does not depend on the accuracy), exported to ONNX; for
          onnxruntime and for EmbeddingRegressor.predict on the same rows, one row's median
          latency (latency_ms) and rows a second at batch 10,000 (rows_per_second), with
          the export's seconds, the model's size and the largest relative difference
          between the two (run by --only export; not part of a run without --only)

With --compare-plain, the train stage also trains the network of the earlier recipe (one
plain MLP of 1000 and 500 units, continuous columns as one number each: PLAIN_MLP) on the
same split and reports its figures under plain_* keys, beside the default recipe's.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from pytorch_lightning import Callback, LightningModule, Trainer

from rossmann_embed.rossmann.features import build_features, model_rows
from rossmann_embed.rossmann.kaggle_files import read_rossmann
from rossmann_embed.rossmann.train_config import TrainConfig
from rossmann_embed.tabular.files import write_json
from rossmann_embed.tabular.metrics import rmspe
from rossmann_embed.tabular.model import training_flops_per_batch

DEFAULT_DATA = os.environ.get("ROSSMANN_DATA", "../shared/data/rossmann")
EXPORT_BATCH = 10_000  # rows a call in the export stage's throughput
PLAIN_MLP = {"hidden_sizes": [1000, 500], "dropout": [0.0, 0.0], "ensemble_size": 1,
             "numerical_embedding": "none"}


def bench_data(data_dir: str) -> dict:
    """Read + validate + build features for train and test together, timed end to end."""
    start = time.perf_counter()
    table = build_features(read_rossmann(data_dir))
    seconds = time.perf_counter() - start
    _, counts = model_rows(table.frame)
    return {
        "rows_train": table.report["rows_train"],
        "rows_test": table.report["rows_test"],
        "rows_model": counts["rows_model"],
        "features_seconds": round(seconds, 3),
        "rows_dropped": {k: v for k, v in counts.items() if k.startswith("dropped")},
    }


def matmul_gflops_samples(n: int = 4096, repeats: int = 2) -> list[float]:
    """Plain float32 matmul rates (GFLOP/s) of this machine, ``repeats`` samples."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm up
    return [2 * n**3 / _timed(lambda: a @ b) / 1e9 for _ in range(repeats)]


class MatmulProbe(Callback):
    """Samples the matmul rate after every training epoch, and times itself.

    This shared machine's speed drifts by tens of percent within minutes (matmul samples of
    one run ranged 90-162 GFLOP/s), so a rate taken once, before or after training, made
    the efficiency of the same code come out anywhere from 0.63 to 0.99. Sampled beside
    each epoch, the median rate is the one the epochs ran at.
    """

    def __init__(self) -> None:
        self.rates: list[float] = []
        self.seconds = 0.0

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        start = time.perf_counter()
        self.rates += matmul_gflops_samples()
        self.seconds += time.perf_counter() - start


def bench_train(data_dir: str, run_dir: Path, recipe: dict | None = None) -> dict:
    """Training with the last 48 days as validation (the default recipe, or ``recipe``'s
    options over it): speed, and the forecast's and its parts' RMSPE."""
    from rossmann_embed.rossmann.inference import load_train_run
    from rossmann_embed.rossmann.pipeline import fit
    from rossmann_embed.rossmann.training import prepare
    from rossmann_embed.tabular.config import auto_budget

    config = TrainConfig.from_dict({"data_dir": data_dir, "out": str(run_dir), **(recipe or {})})
    probe = MatmulProbe()
    start = time.perf_counter()
    fit(config, callbacks=[probe])
    train_seconds = time.perf_counter() - start - probe.seconds
    validation = json.loads((run_dir / "validation.json").read_text())
    metrics = pl.read_csv(run_dir / "metrics.csv")
    epoch_seconds = float(metrics.get_column("epoch_seconds").drop_nulls().median())

    train, val, preprocessor, _ = prepare(config)
    model = load_train_run(run_dir).models[0]
    batch_size = auto_budget(config, train.height).batch_size
    flops_per_row = training_flops_per_batch(model, batch_size) / batch_size
    flops_per_epoch = flops_per_row * train.height
    gflops = float(np.median(probe.rates))
    result = {
        "epoch_seconds": round(epoch_seconds, 2),
        "flops_per_epoch": int(flops_per_epoch),
        "matmul_gflops": round(gflops, 1),
        "epoch_efficiency": round(flops_per_epoch / epoch_seconds / (gflops * 1e9), 3),
        "matmul_gflops_range": [round(min(probe.rates), 1), round(max(probe.rates), 1)],
        "val_rmspe": round(validation["rmspe"], 5),
        "network_val_rmspe": round(validation["network_rmspe"], 5),
        "boosted_val_rmspe": round(validation.get("lightgbm_rmspe", float("nan")), 5),
        "val_rows": validation["rows"],
        "val_dates": [validation["date_from"], validation["date_to"]],
        "epochs_run": int(metrics.get_column("epoch").max()) + 1,
        "train_seconds": round(train_seconds, 1),
        "batch_size": batch_size,
        "ensemble_size": config.ensemble_size,
        "numerical_embedding": config.numerical_embedding,
        "hidden_sizes": config.hidden_sizes,
    }
    return result


def bench_lightgbm(train: pl.DataFrame, val: pl.DataFrame) -> dict:
    """The full-strength LightGBM baseline on the same training rows and validation days:
    its own features, rounds by early stopping on the training rows' last 48 days, refit."""
    from rossmann_embed.rossmann.boosting import LightGBMForecaster

    forecaster = LightGBMForecaster().fit(train)
    prediction = forecaster.predict(val)
    return {
        "lightgbm_val_rmspe": round(rmspe(val.get_column("Sales").to_numpy(), prediction), 5),
        "lightgbm_seconds": round(forecaster.seconds_, 1),
        "lightgbm_rounds": forecaster.rounds_,
        "lightgbm_stop_metric": forecaster.stop_metric,
        "lightgbm_inner_score": round(forecaster.inner_score_, 5),
    }


def bench_export(data_dir: str, run_dir: Path) -> dict:
    """Serving speed of an exported `fit` run against ``predict`` (the module's docstring)."""
    import onnxruntime

    from rossmann_embed.tabular.estimator import EmbeddingRegressor
    from rossmann_embed.tabular.onnx_export import onnx_feed, read_inputs

    stores = pl.read_csv(Path(data_dir) / "store.csv")
    sales = pl.read_csv(Path(data_dir) / "train.csv", try_parse_dates=True,
                        schema_overrides={"StateHoliday": pl.String})
    table = (sales.filter((pl.col("Open") == 1) & (pl.col("Sales") > 0))
             .drop("Customers", "Open").join(stores, on="Store"))
    estimator = EmbeddingRegressor(epochs=1, time_column="Date", out=str(run_dir / "fit"))
    estimator.fit(table.drop("Sales"), table.get_column("Sales"))
    start = time.perf_counter()
    model = estimator.export_onnx(run_dir / "model.onnx", target="Sales")
    export_seconds = time.perf_counter() - start
    rows = table.drop("Sales").sample(EXPORT_BATCH, seed=0)
    feed = onnx_feed(rows, read_inputs(model.with_suffix(".json")))
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def served(start: int, stop: int) -> np.ndarray:
        return session.run(None, {k: v[start:stop] for k, v in feed.items()})[0]

    def predicted(start: int, stop: int) -> np.ndarray:
        return estimator.predict(rows[start:stop])

    difference = np.abs(served(0, EXPORT_BATCH) - predicted(0, EXPORT_BATCH))
    result = {"export_seconds": round(export_seconds, 1), "rows": table.height,
              "model_mb": round(model.stat().st_size / 2**20, 2),
              "max_relative_difference": float(
                  (difference / np.abs(predicted(0, EXPORT_BATCH))).max())}
    for name, run, repeats in (("onnxruntime", served, 2000), ("predict", predicted, 200)):
        one_row = [_timed(lambda i=i, run=run: run(i % EXPORT_BATCH, i % EXPORT_BATCH + 1))
                   for i in range(repeats)]
        batch = [_timed(lambda run=run: run(0, EXPORT_BATCH)) for _ in range(5)]
        result[name] = {"latency_ms": round(1000 * float(np.median(one_row)), 3),
                        "rows_per_second": round(EXPORT_BATCH / float(np.median(batch)))}
    return result


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--only", choices=["data", "train", "lightgbm", "export"],
                        help="run one stage")
    parser.add_argument("--run-dir", type=Path, help="where the train stage writes its run")
    parser.add_argument("--compare-plain", action="store_true",
                        help="also train the earlier recipe's plain MLP (plain_* keys)")
    args = parser.parse_args()
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result.update({"data_dir": str(args.data_dir), "cpu_count": os.cpu_count(),
                   "torch_threads": torch.get_num_threads()})
    if args.only in (None, "data"):
        result.update(bench_data(args.data_dir))
        write_json(args.out, result)
    if args.only == "lightgbm":
        from rossmann_embed.rossmann.training import prepare

        train, val, _, _ = prepare(TrainConfig(data_dir=args.data_dir, out=""))
        result.update(bench_lightgbm(train, val))
        write_json(args.out, result)
    if args.only == "export":
        run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="rossmann-bench-"))
        result["export"] = bench_export(args.data_dir, run_dir)
        write_json(args.out, result)
    if args.only in (None, "train"):
        run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="rossmann-bench-"))
        result.update(bench_train(args.data_dir, run_dir))
        write_json(args.out, result)
        if args.compare_plain:
            plain = bench_train(args.data_dir, run_dir / "plain", PLAIN_MLP)
            result.update({f"plain_{k}": v for k, v in plain.items()})
            write_json(args.out, result)
        from rossmann_embed.rossmann.training import prepare

        train, val, _, _ = prepare(TrainConfig(data_dir=args.data_dir, out=""))
        result.update(bench_lightgbm(train, val))
        write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
