"""A table of one's own from `fit` to `predict`: train, save, load, predict the months after.

    python examples/own_table.py [--table Computers.csv] [--out own_table.png]

The shared Computers table ($TABLES_DATA): US personal computer prices 1993-1995 from speed,
memory, disk, screen, maker flags and the month (``trend``). The last six months are kept
back, as a forecast would meet them; the run is saved to a folder and loaded again, as a
service would load it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from rossmann_embed.runs import load_run  # noqa: E402
from rossmann_embed.tabular import EmbeddingRegressor  # noqa: E402

TABLES = Path(os.environ.get("TABLES_DATA", Path(__file__).resolve().parents[2] / "shared"
                             / "data" / "tables"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=TABLES / "Computers.csv")
    parser.add_argument("--out", type=Path, default=Path("own_table.png"))
    args = parser.parse_args()
    table = pl.read_csv(args.table).drop("")
    later = pl.col("trend") > table.get_column("trend").max() - 6
    train, test = table.filter(~later), table.filter(later)

    # The columns' roles are inferred and reported; hd (disk MB) and ads (the month's
    # adverts) are whole numbers with many values, which the inference would embed, but a
    # later month brings values never seen: named as numbers. time_column holds out the
    # latest months for early stopping.
    model = EmbeddingRegressor(continuous=["hd", "ads"], time_column="trend", epochs=10, seed=0)
    model.fit(train.drop("price"), train.get_column("price"))
    print("columns:", "; ".join(model.roles_.report()))
    with tempfile.TemporaryDirectory() as folder:
        model.save(folder)
        predicted = load_run(folder).predict(test.drop("price"))
    actual = test.get_column("price").to_numpy()
    error = np.sqrt(np.mean((predicted - actual) ** 2))
    print(f"the last 6 months ({test.height:,} computers): RMSE {error:.1f} dollars")

    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    axes.scatter(actual, predicted, s=4, alpha=0.4, color="tab:blue")
    low, high = actual.min(), actual.max()
    axes.plot([low, high], [low, high], color="gray", linewidth=1)
    axes.set_xlabel("price (dollars)")
    axes.set_ylabel("predicted")
    axes.set_title(f"The last 6 months: RMSE {error:.0f}")
    figure.tight_layout()
    figure.savefig(args.out, dpi=80)
    print(f"figure -> {args.out}")


if __name__ == "__main__":
    main()
