"""Learned embeddings as features for another model: `EmbeddingEncoder` in a `Pipeline`.

    python examples/embedding_encoder_pipeline.py [--table VietNamI.csv] [--out knn.png]

Guo & Berkhahn's point: k-nearest neighbours on one-hot columns knows no distance between two
communes, but on the vectors a network learned, communes that spend alike are close. The
table (default: the shared VietNamI survey, $TABLES_DATA) has log household expenditure
(``lnhhexp``) and a commune of 194 levels; 80% of the rows train, the rest test.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.neighbors import KNeighborsRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from rossmann_embed.tabular import EmbeddingRegressor  # noqa: E402
from rossmann_embed.tabular.embedding_encoder import EmbeddingEncoder  # noqa: E402

TABLES = Path(os.environ.get("TABLES_DATA", Path(__file__).resolve().parents[2] / "shared"
                             / "data" / "tables"))
ENTITIES = ["commune", "sex"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=TABLES / "VietNamI.csv")
    parser.add_argument("--out", type=Path, default=Path("embedding_encoder.png"))
    args = parser.parse_args()
    table = pl.read_csv(args.table).drop("").sample(fraction=1.0, shuffle=True, seed=0)
    X, y = table.drop("lnhhexp"), table.get_column("lnhhexp").to_numpy()
    cut = int(0.8 * table.height)
    X_train, X_test, y_train, y_test = X[:cut], X[cut:], y[:cut], y[cut:]

    network = EmbeddingRegressor(categorical=ENTITIES, epochs=6, seed=0).fit(X_train, y_train)
    models = {
        "k-NN, one-hot": make_pipeline(
            ColumnTransformer([("one_hot", OneHotEncoder(handle_unknown="ignore"), ENTITIES)],
                              remainder="passthrough"),
            StandardScaler(with_mean=False), KNeighborsRegressor(20)),
        "k-NN, learned embeddings": make_pipeline(
            EmbeddingEncoder.from_run(network.run_, embed=ENTITIES), StandardScaler(),
            KNeighborsRegressor(20)),
    }
    errors = {}
    for name, model in models.items():
        model.fit(X_train.to_pandas(), y_train)
        errors[name] = np.sqrt(np.mean((model.predict(X_test.to_pandas()) - y_test) ** 2))
    errors["the network itself"] = np.sqrt(np.mean((network.predict(X_test) - y_test) ** 2))
    for name, error in errors.items():
        print(f"{name:26s} test RMSE {error:.4f}")

    figure, axes = plt.subplots(figsize=(6, 2.6))
    axes.barh(list(errors), list(errors.values()), color=["tab:gray", "tab:blue", "tab:green"])
    axes.invert_yaxis()
    axes.set_xlabel("test RMSE of log household expenditure")
    axes.set_xlim(0.9 * min(errors.values()), 1.02 * max(errors.values()))
    figure.tight_layout()
    figure.savefig(args.out, dpi=80)
    print(f"figure -> {args.out}")


if __name__ == "__main__":
    main()
