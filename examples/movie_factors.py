"""Collaborative filtering on MovieLens 100K, and what its movie factors learned.

    python examples/movie_factors.py [--data ml-100k] [--out movie_factors.png]

A dot product of user and movie embeddings plus their biases (the factorization head alone,
no MLP), trained on GroupLens' u1.base and scored on u1.test. Then fast.ai's look at the
factors: the movies at both ends of the first principal component of the most rated movies'
vectors, and a map of the 40 most rated along the first two. ``--data`` defaults to
$MOVIELENS_DATA, else ../shared/data/movielens-100k.
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
from sklearn.decomposition import PCA  # noqa: E402

from rossmann_embed.movielens.grouplens_files import read_fold, read_movies  # noqa: E402
from rossmann_embed.tabular import EmbeddingRegressor  # noqa: E402

DATA = Path(os.environ.get("MOVIELENS_DATA", Path(__file__).resolve().parents[2] / "shared"
                           / "data" / "movielens-100k"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("movie_factors.png"))
    args = parser.parse_args()
    folder = args.data / "ml-100k" if (args.data / "ml-100k").is_dir() else args.data
    train, test = read_fold(folder, "u1")
    movies = read_movies(folder)

    model = EmbeddingRegressor(
        categorical=["user", "movie"], factorization=[("user", "movie")], mlp=False,
        embedding_sizes={"user": 40, "movie": 40}, y_range=(0.0, 5.5),
        target_transform="none", validation_fraction=0.0, embedding_dropout=0.0,
        epochs=5, learning_rate=5e-3, weight_decay=0.3, batch_size=256, seeds=1)
    model.fit(train.select("user", "movie"), train.get_column("rating").cast(pl.Float64))
    error = model.predict(test.select("user", "movie")) - test.get_column("rating").to_numpy()
    print(f"u1.test RMSE {np.sqrt(np.mean(error ** 2)):.4f}")

    # The 1,000 most rated movies' vectors, labelled with their titles.
    counts = train.group_by("movie").agg(ratings=pl.len())
    vectors = model.embeddings_["movie"].filter(pl.col("index") > 0).with_columns(
        movie=pl.col("value").cast(pl.Int64)).join(counts, on="movie").join(
        movies.select("movie", "title"), on="movie").sort("ratings", descending=True).head(1000)
    dims = vectors.select(pl.col("^dim_.*$")).to_numpy()
    components = PCA(2).fit_transform(dims)
    order = np.argsort(components[:, 0])
    titles = vectors.get_column("title")
    print("one end of component 1:", "; ".join(titles.gather(order[:5])))
    print("the other end:         ", "; ".join(titles.gather(order[-5:])))

    figure, axes = plt.subplots(figsize=(9, 7))
    shown = slice(0, 40)  # the 40 most rated
    axes.scatter(components[shown, 0], components[shown, 1], color="tab:blue", s=12)
    for title, (x, y) in zip(titles[shown], components[shown], strict=True):
        axes.annotate(title, (x, y), fontsize=7, xytext=(2, 2), textcoords="offset points")
    axes.set_xlabel("principal component 1")
    axes.set_ylabel("principal component 2")
    axes.set_title("Movie factors: the 40 most rated movies")
    figure.tight_layout()
    figure.savefig(args.out, dpi=80)
    print(f"figure -> {args.out}")


if __name__ == "__main__":
    main()
