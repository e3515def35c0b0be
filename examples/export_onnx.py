"""A table of one's own, fitted, exported to ONNX, and predicted by onnxruntime.

    python examples/export_onnx.py [--table TABLE.csv --target COLUMN] [--out DIR]

Without --table, the Bundesliga table of the shared public tables ($TABLES_DATA, default
../shared/data/tables): home goals from the two teams, the round, the season and the date.
Prints onnxruntime's predictions beside the estimator's for a few held-out rows, and draws
them against each other for every held-out row (DIR/export_parity.png).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import polars as pl  # noqa: E402

from rossmann_embed.tabular import EmbeddingRegressor  # noqa: E402
from rossmann_embed.tabular.onnx_export import onnx_feed, read_inputs  # noqa: E402

TABLES = Path(os.environ.get("TABLES_DATA", Path(__file__).resolve().parents[2] / "shared"
                             / "data" / "tables"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=TABLES / "Bundesliga.csv")
    parser.add_argument("--target", default="HomeGoals")
    parser.add_argument("--drop", default=",AwayGoals", help="columns to leave out")
    parser.add_argument("--out", type=Path, default=Path("export-example"))
    args = parser.parse_args()
    table = pl.read_csv(args.table, null_values="NA", try_parse_dates=True)
    table = table.drop([c for c in args.drop.split(",") if c in table.columns])
    train, later = table.head(int(0.9 * table.height)), table.tail(table.height // 10)

    estimator = EmbeddingRegressor(epochs=5, out=str(args.out / "run"))
    estimator.fit(train.drop(args.target), train.get_column(args.target))
    start = time.perf_counter()
    model = estimator.export_onnx(args.out / "model.onnx", target=args.target)
    print(f"exported to {model} in {time.perf_counter() - start:.0f} s")

    # Serving: onnxruntime and the inputs' JSON; the feed is numpy arrays, one per column
    # (onnx_feed builds them from a polars frame; a service builds them as the JSON says).
    session = onnxruntime.InferenceSession(str(model))
    feed = onnx_feed(later.drop(args.target), read_inputs(model.with_suffix(".json")))
    (served,) = session.run(None, feed)
    predicted = estimator.predict(later.drop(args.target))
    print(pl.DataFrame({"onnxruntime": served[:5], "predict": predicted[:5],
                        "actual": later.get_column(args.target)[:5]}))
    print(f"largest relative difference: {np.max(np.abs(served / predicted - 1)):.1e}")

    figure, axes = plt.subplots(figsize=(4, 4))
    axes.scatter(predicted, served, s=4)
    axes.set(xlabel="EmbeddingRegressor.predict", ylabel="onnxruntime",
             title="the exported model predicts as the run does")
    figure.tight_layout()
    figure.savefig(args.out / "export_parity.png", dpi=80)


if __name__ == "__main__":
    main()
