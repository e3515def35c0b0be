"""`rossmann-embed movielens`: collaborative filtering as one configuration of the core's
``EmbeddingRegressor``, on GroupLens' canonical folds, and fast.ai's analysis of the factors.

Two configurations, each trained on every fold's ``u{k}.base`` and scored on its ``.test``:

- ``collaborative filtering``: user and movie only; the dot product of their 40-dimensional
  embeddings plus a bias per user and per movie and a global bias, bounded to 0 .. 5.5
  (``factorization=[("user", "movie")]``, ``mlp=False``): fastai's ``EmbeddingDotBias``;
- ``with side features``: the same plus the user's age, gender and occupation and the
  movie's genres and release year, through a small MLP added to the dot product (DeepFM).

Settings (epochs, learning rate, weight decay, batch size, seeds) were chosen on a random
10% of ``u1.base`` held out from training, never on a test fold. The model of the first
configuration trained on all ratings then gives the analysis: the movies with the lowest and
highest bias among the 1,000 most rated, the principal components of their factors with the
15 titles at each end, a map of the 50 most rated, users by age, and nearest neighbours.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rossmann_embed.movielens.grouplens_files import (
    read_fold,
    read_movies,
    read_ratings,
    read_users,
)
from rossmann_embed.movielens.options import MovieLensOptions
from rossmann_embed.tabular.embedding_tables import (
    factor_tables,
    known_rows,
    markdown_table,
    nearest_neighbours,
    principal_components,
    vectors_of,
    write_factor_tables,
)
from rossmann_embed.tabular.estimator import EmbeddingRegressor
from rossmann_embed.tabular.files import write_csv, write_json, write_text
from rossmann_embed.tabular.metrics import mae, rmse
from rossmann_embed.tabular.plots import plot_labelled_map, plot_points_by_group

CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "collaborative filtering": {"categorical": ["user", "movie"], "mlp": False},
    "with side features": {"categorical": ["user", "movie", "gender", "occupation"],
                           "continuous": ["age", "year"], "mlp": True, "hidden_sizes": (64,)},
}
MOST_RATED = 1000  # the bias ranking and the components look at the movies rated most
ENDS = 15
MAP_MOVIES = 50
WELL_KNOWN = ["Silence of the Lambs, The (1991)", "Star Wars (1977)", "Toy Story (1995)",
              "Godfather, The (1972)", "Fargo (1996)", "Titanic (1997)"]
AGE_BANDS = [(0, 24, "under 25"), (25, 34, "25-34"), (35, 44, "35-44"), (45, 54, "45-54"),
             (55, 200, "55 and over")]


def movielens(options: MovieLensOptions, log=print) -> dict:
    """Score both configurations on every fold, analyse the factors; write movielens.json,
    movielens.md and the analysis under ``options.out``."""
    start = time.perf_counter()
    folder, out = Path(options.data_dir), Path(options.out)
    movies, users = read_movies(folder), read_users(folder)
    results = []
    for fold in options.folds:
        base, test = read_fold(folder, fold)
        for name in CONFIGURATIONS:
            began = time.perf_counter()
            model = _estimator(name, options).fit(_inputs(name, base, movies, users),
                                                  base.get_column("rating").cast(pl.Float64))
            predicted = model.predict(_inputs(name, test, movies, users))
            actual = test.get_column("rating").to_numpy()
            results.append({"fold": fold, "configuration": name, "rmse": rmse(actual, predicted),
                            "mae": mae(actual, predicted),
                            "seconds": round(time.perf_counter() - began, 1)})
            log(f"[movielens] {fold} {name}: RMSE {results[-1]['rmse']:.4f}, MAE "
                f"{results[-1]['mae']:.4f} in {results[-1]['seconds']:.0f} s")
    ratings = read_ratings(folder / "u.data")
    final = _estimator("collaborative filtering", options).fit(
        _inputs("collaborative filtering", ratings, movies, users),
        ratings.get_column("rating").cast(pl.Float64))
    analysis = write_analysis(final, ratings, movies, users, out / "analysis")
    summary = _summary(results, options, analysis, time.perf_counter() - start)
    write_json(out / "movielens.json", summary)
    write_text(out / "movielens.md", summary_markdown(summary))
    log(f"[movielens] done in {summary['seconds']:.0f} s: " + ", ".join(
        f"{c} RMSE {s['rmse_mean']:.4f} +- {s['rmse_std']:.4f}"
        for c, s in summary["configurations"].items()))
    log(f"movielens.json, movielens.md and analysis/ written to {out}")
    return summary


def _estimator(name: str, options: MovieLensOptions) -> EmbeddingRegressor:
    settings = CONFIGURATIONS[name]
    return EmbeddingRegressor(
        **settings, factorization=[("user", "movie")],
        embedding_sizes={"user": options.factors, "movie": options.factors},
        y_range=(0.0, 5.5), target_transform="none", validation_fraction=0.0,
        embedding_dropout=0.0, epochs=options.epochs, learning_rate=options.learning_rate,
        weight_decay=options.weight_decay, batch_size=options.batch_size, seeds=options.seeds)


def _inputs(name: str, ratings: pl.DataFrame, movies: pl.DataFrame,
            users: pl.DataFrame) -> pl.DataFrame:
    """user and movie; with side features, the user's and the movie's columns joined in
    (genres as 0/1 columns, which the estimator finds categorical)."""
    pairs = ratings.select("user", "movie")
    if not CONFIGURATIONS[name]["mlp"]:
        return pairs
    return (pairs.join(users, on="user", how="left", maintain_order="left")
            .join(movies.drop("title"), on="movie", how="left", maintain_order="left"))


# --- the analysis ------------------------------------------------------------------------------


def write_analysis(model: EmbeddingRegressor, ratings: pl.DataFrame, movies: pl.DataFrame,
                   users: pl.DataFrame, out: Path) -> dict:
    """fast.ai's look at the movie factors: biases, components, a map, users, neighbours."""
    counts = ratings.group_by("movie").agg(ratings=pl.len())
    table = known_rows(model.embeddings_["movie"]).with_columns(
        movie=pl.col("value").cast(pl.Int64))
    table = table.join(movies.select("movie", "title"), on="movie", how="left",
                       maintain_order="left").join(counts, on="movie", how="left",
                                                   maintain_order="left")
    top = table.sort("ratings", descending=True).head(MOST_RATED)
    result: dict[str, Any] = {}
    result["bias"] = _bias_ranking(top, out)
    vectors = vectors_of(top)
    _, explained = principal_components(vectors, 3)
    result["explained_variance"] = [float(e) for e in explained]
    tables = factor_tables(top.select("title", "ratings"), vectors, 3, ENDS)
    write_factor_tables(tables, out, explained=explained, what="movies", prefix="movie_factors")
    result["components"] = {
        f"pc{j}": {end: t.filter(pl.col("end") == end).get_column("title").head(5).to_list()
                   for end in ("top", "bottom")} for j, t in tables.items()}
    result["figures"] = [str(p.relative_to(out)) for p in (
        _movie_map(top, vectors, explained, out), _user_map(model, users, out))]
    result["neighbours"] = _neighbours(table, out)
    return result


def _bias_ranking(top: pl.DataFrame, out: Path) -> dict:
    ranked = top.select("title", "ratings", "bias").sort("bias")
    ends = pl.concat([ranked.head(ENDS).with_columns(end=pl.lit("lowest")),
                      ranked.tail(ENDS).reverse().with_columns(end=pl.lit("highest"))])
    ends = ends.select("end", "title", "ratings", "bias")
    write_csv(ends, out / "movie_bias.csv")
    write_text(out / "movie_bias.md", f"# Movie bias: the {ENDS} lowest and highest among the "
               f"{MOST_RATED} most rated\n\n" + markdown_table(ends))
    return {end: ends.filter(pl.col("end") == end).get_column("title").to_list()
            for end in ("lowest", "highest")}


def _movie_map(top: pl.DataFrame, vectors: np.ndarray, explained: np.ndarray, out: Path) -> Path:
    scores, _ = principal_components(vectors, 3)
    order = np.argsort(-top.get_column("ratings").to_numpy())[:MAP_MOVIES]
    points = pl.DataFrame({"label": top.get_column("title").gather(order),
                           "x": scores[order, 0], "y": scores[order, 1]})
    return plot_labelled_map(
        points, f"Movie factors: the {MAP_MOVIES} most rated movies", out / "movie_pc1_pc2.png",
        (f"principal component 1 ({explained[0]:.1%} of variance)",
         f"principal component 2 ({explained[1]:.1%} of variance)"), size=(13.0, 10.5),
        fontsize=8.0)


def _user_map(model: EmbeddingRegressor, users: pl.DataFrame, out: Path) -> Path:
    table = known_rows(model.embeddings_["user"]).with_columns(
        user=pl.col("value").cast(pl.Int64)).join(users, on="user", how="left")
    scores, explained = principal_components(vectors_of(table), 2)
    band = pl.lit(None, pl.String)
    for low, high, name in reversed(AGE_BANDS):
        band = pl.when(pl.col("age").is_between(low, high)).then(pl.lit(name)).otherwise(band)
    points = table.select(band.alias("group")).with_columns(x=scores[:, 0], y=scores[:, 1])
    return plot_points_by_group(
        points, f"{table.height} user embeddings by age", out / "users_by_age.png",
        (f"principal component 1 ({explained[0]:.1%} of variance)",
         f"principal component 2 ({explained[1]:.1%} of variance)"), group_title="age")


def _neighbours(table: pl.DataFrame, out: Path) -> dict:
    frequent = table.filter(pl.col("ratings") >= 50).select(
        "value", "index", "title", *[c for c in table.columns if c.startswith("dim_")])
    near = nearest_neighbours(frequent, 10).filter(
        pl.col("value").is_in(frequent.filter(pl.col("title").is_in(WELL_KNOWN))
                              .get_column("value").implode()))
    near = near.join(frequent.select("value", "title"), on="value", how="left").select(
        "title", "rank", pl.col("neighbour_title").alias("neighbour"), "similarity")
    write_csv(near, out / "movie_neighbours.csv")
    write_text(out / "movie_neighbours.md", "# The 10 nearest movies by cosine similarity of "
               "their factors (movies with at least 50 ratings)\n\n" + markdown_table(near))
    return {t: near.filter(pl.col("title") == t).get_column("neighbour").to_list()
            for t in WELL_KNOWN if near.filter(pl.col("title") == t).height}


# --- the report --------------------------------------------------------------------------------


def _summary(results: list[dict], options: MovieLensOptions, analysis: dict,
             seconds: float) -> dict:
    configurations = {}
    for name in CONFIGURATIONS:
        scores = [r for r in results if r["configuration"] == name]
        errors = np.array([r["rmse"] for r in scores])
        configurations[name] = {
            "rmse_mean": float(errors.mean()), "rmse_std": float(errors.std(ddof=1))
            if len(errors) > 1 else 0.0, "mae_mean": float(np.mean([r["mae"] for r in scores]))}
    return {"folds": results, "configurations": configurations,
            "rmse_mean": min(c["rmse_mean"] for c in configurations.values()),
            "rmse_std": min(configurations.values(), key=lambda c: c["rmse_mean"])["rmse_std"],
            "settings": {**asdict(options), "configurations": {
                k: {**v, "hidden_sizes": list(v.get("hidden_sizes", ()))}
                for k, v in CONFIGURATIONS.items()}},
            "analysis": analysis, "seconds": round(seconds, 1)}


def summary_markdown(summary: dict) -> str:
    """The per-fold table of both configurations and their means."""
    folds = pl.DataFrame(summary["folds"]).pivot("configuration", index="fold", values="rmse")
    means = pl.DataFrame([{"configuration": k, **v}
                          for k, v in summary["configurations"].items()])
    return ("# MovieLens 100K: RMSE per canonical fold\n\n" + markdown_table(folds, 4)
            + "\n\n## Means over the folds\n\n" + markdown_table(means, 4) + "\n")
