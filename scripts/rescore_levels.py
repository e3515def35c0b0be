"""Re-score a finished backtest with this version's store levels, without training again.

Store levels and the variances of the RMSPE shift are computed after training from the
trained members (rossmann/levels.py), so
a backtest's saved networks and boosted halves give exactly the figures a new backtest would,
up to the boosted half's run-to-run noise. This rewrites each window's
``run/store_levels.csv`` and writes ``rescore.json`` (RMSPE of the forecast and of the
network alone per window, and their means) into the backtest folder.

    python scripts/rescore_levels.py --backtest OUT --data-dir ../shared/data/rossmann
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

from rossmann_embed.rossmann.inference import load_train_run, predict_kaggle
from rossmann_embed.rossmann.kaggle_files import read_kaggle_csv
from rossmann_embed.rossmann.levels import write_store_levels
from rossmann_embed.rossmann.train_config import TrainConfig
from rossmann_embed.rossmann.training import prepare, store_levels
from rossmann_embed.tabular.files import write_json
from rossmann_embed.tabular.metrics import rmspe


def rescore_window(window: Path, sales: pl.DataFrame) -> dict[str, float]:
    """RMSPE of a window's forecast and network alone with this version's store levels."""
    run_dir = window / "run"
    config = TrainConfig.load(run_dir / "config.json")
    write_store_levels(run_dir, store_levels(run_dir, prepare(config)[0], config.level_days))
    predicted, _ = predict_kaggle(load_train_run(run_dir), window / "data", members=True)
    scored = (predicted.drop("Sales").join(sales, on=["Store", "Date"])
              .filter(pl.col("Sales") > 0))
    truth = scored.get_column("Sales").to_numpy()
    return {name: rmspe(truth, scored.get_column(column).to_numpy())
            for name, column in [("forecast", "Prediction"), ("network", "Prediction[network]")]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backtest", required=True, help="a `rossmann-embed backtest` folder")
    parser.add_argument("--data-dir", required=True, help="Kaggle's files (train.csv scores)")
    args = parser.parse_args()
    sales = read_kaggle_csv(Path(args.data_dir) / "train.csv", "train.csv").select(
        "Store", "Date", "Sales")
    windows = sorted(p for p in (Path(args.backtest) / "windows").iterdir() if p.is_dir())
    result = {w.name: rescore_window(w, sales) for w in windows}
    result["mean"] = {k: float(np.mean([r[k] for r in result.values()]))
                      for k in ("forecast", "network")}
    write_json(Path(args.backtest) / "rescore.json", result)
    for name, scores in result.items():
        print(name, ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
