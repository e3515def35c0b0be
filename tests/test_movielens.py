"""Collaborative filtering on the core: the factorization head, and `rossmann-embed movielens`
on a generated ml-100k-shaped folder (CI) and on GroupLens' files (where ../shared has them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rossmann_embed.cli import main
from rossmann_embed.tabular.estimator import EmbeddingRegressor

ROOT = Path(__file__).resolve().parents[1]
GENRES = ["unknown", "Action", "Comedy"]


def ratings_table(users: int = 60, movies: int = 80, rows: int = 4000, seed: int = 0):
    """Ratings from planted taste: user u likes movie m by the sign of their hidden factors."""
    rng = np.random.default_rng(seed)
    user_taste, movie_kind = rng.normal(size=users), rng.normal(size=movies)
    quality = rng.normal(scale=0.5, size=movies)
    user, movie = rng.integers(0, users, rows), rng.integers(0, movies, rows)
    rating = 3 + quality[movie] + user_taste[user] * movie_kind[movie]
    rating = np.clip(np.round(rating + rng.normal(scale=0.3, size=rows)), 1, 5).astype(int)
    return user + 1, movie + 1, rating, quality


def write_folder(folder: Path) -> np.ndarray:
    """An ml-100k-shaped folder (u.data, u.item in latin-1, u.user, u.genre, u1..u2 folds)."""
    user, movie, rating, quality = ratings_table()
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{u}\t{m}\t{r}\t{880000000 + i}" for i, (u, m, r) in
             enumerate(zip(user, movie, rating, strict=True))]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    for k in (1, 2):
        test = np.arange(len(lines)) % 5 == k
        (folder / f"u{k}.base").write_text("\n".join(np.array(lines)[~test]) + "\n")
        (folder / f"u{k}.test").write_text("\n".join(np.array(lines)[test]) + "\n")
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)))
    items = [f"{m}|Film {m} d\xe9j\xe0 vu (199{m % 10})|01-Jan-199{m % 10}||http://x|0|{m % 2}|"
             f"{1 - m % 2}" for m in range(1, 81)]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (folder / "u.user").write_text("".join(
        f"{u}|{20 + u % 40}|{'MF'[u % 2]}|{['student', 'writer'][u % 2]}|0000{u}\n"
        for u in range(1, 61)))
    return quality


def test_the_factorization_head_alone_is_collaborative_filtering() -> None:
    user, movie, rating, quality = ratings_table()
    X = pl.DataFrame({"user": user, "movie": movie})
    model = EmbeddingRegressor(categorical=["user", "movie"], factorization=[("user", "movie")],
                               mlp=False, embedding_sizes={"user": 8, "movie": 8},
                               y_range=(0.0, 5.5), target_transform="none", epochs=10,
                               batch_size=128, learning_rate=0.01, weight_decay=0.01,
                               validation_fraction=0.0).fit(X, rating.astype(float))
    error = np.sqrt(np.mean((model.predict(X) - rating) ** 2))
    assert error < 0.75 * rating.std()
    movies = model.embeddings_["movie"].filter(pl.col("index") > 0)
    assert movies.columns[:3] == ["value", "index", "bias"]
    learned = movies.sort(pl.col("value").cast(pl.Int64))["bias"].to_numpy()
    assert np.corrcoef(learned, quality)[0, 1] > 0.7  # the bias is the planted quality
    near = model.neighbours("movie", k=3)
    assert near.height == 3 * movies.height and near["rank"].max() == 3


def test_mlp_off_needs_a_factorization() -> None:
    X = pl.DataFrame({"a": ["x", "y"] * 5})
    with pytest.raises(ValueError, match="mlp must be on unless factorization pairs"):
        EmbeddingRegressor(mlp=False, epochs=1).fit(X, np.arange(10.0))


def test_movielens_command_on_a_generated_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ml"
    write_folder(folder)
    out = tmp_path / "out"
    main(["movielens", "--data-dir", str(folder), "--out", str(out), "--folds", "u1,u2",
          "--seeds", "1", "--epochs", "3", "--factors", "8"])
    summary = json.loads((out / "movielens.json").read_text())
    assert {r["fold"] for r in summary["folds"]} == {"u1", "u2"}
    assert set(summary["configurations"]) == {"collaborative filtering", "with side features"}
    assert summary["rmse_mean"] < 1.2 and "rmse_std" in summary
    analysis = out / "analysis"
    for name in ("movie_bias.md", "movie_factors_pc1.md", "movie_neighbours.csv",
                 "movie_pc1_pc2.png", "users_by_age.png"):
        assert (analysis / name).is_file(), name
    assert "déjà vu" in (analysis / "movie_bias.md").read_text()  # latin-1 titles read right
    assert "| u1 |" in (out / "movielens.md").read_text()


def test_a_broken_ratings_line_is_one_input_error(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "ml"
    write_folder(folder)
    with (folder / "u1.base").open("a") as f:
        f.write("7\t3\tfive\t880000000\n")
    with pytest.raises(SystemExit) as stopped:
        main(["movielens", "--data-dir", str(folder), "--out", str(tmp_path / "o"),
              "--folds", "u1"])
    assert stopped.value.code == 2
    assert "u1.base line 3201, column 'rating': got 'five', expected a whole number" in \
        capsys.readouterr().err


@pytest.fixture(scope="session")
def movielens_data() -> Path:
    path = Path(os.environ.get("MOVIELENS_DATA", ROOT.parent / "shared" / "data" /
                               "movielens-100k"))
    if not (path / "u.data").is_file():
        pytest.skip(f"MovieLens 100K not found at {path} (set MOVIELENS_DATA)")
    return path


def test_real_movielens_files_read_with_their_quirks(movielens_data: Path) -> None:
    from rossmann_embed.movielens.grouplens_files import (
        read_fold,
        read_movies,
        read_ratings,
        read_users,
    )

    assert read_ratings(movielens_data / "u.data").height == 100_000
    movies = read_movies(movielens_data)
    assert movies.height == 1682
    assert movies.filter(pl.col("movie") == 267).row(0, named=True)["title"] == "unknown"
    assert movies.filter(pl.col("movie") == 267)["year"].item() is None
    assert read_users(movielens_data).height == 943
    base, test = read_fold(movielens_data, "u1")
    assert base.height == 80_000 and test.height == 20_000
