"""GroupLens' MovieLens 100K files, read and checked: ratings, movies (latin-1), users, folds.

The files are not redistributable: users download ``ml-100k.zip`` from GroupLens
(https://grouplens.org/datasets/movielens/100k/) and point ``--data-dir`` at the folder.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rossmann_embed.tabular.errors import InputError

HELP = "download ml-100k.zip from https://grouplens.org/datasets/movielens/100k/"
RATING_COLUMNS = ["user", "movie", "rating", "timestamp"]


def read_ratings(path: Path) -> pl.DataFrame:
    """``user \\t movie \\t rating \\t timestamp`` lines (u.data, u1.base, ...), checked."""
    frame = _read(path, "\t", RATING_COLUMNS, "utf-8")
    for column in RATING_COLUMNS:
        bad = frame.get_column(column).cast(pl.Int64, strict=False).is_null()
        if bad.any():
            row = int(bad.arg_true()[0])
            raise InputError.at(str(path), "a whole number", line=row + 1, column=column,
                                value=frame[row, column])
    frame = frame.select(pl.col(c).cast(pl.Int64) for c in RATING_COLUMNS)
    outside = ~frame.get_column("rating").is_between(1, 5)
    if outside.any():
        row = int(outside.arg_true()[0])
        raise InputError.at(str(path), "a rating from 1 to 5", line=row + 1, column="rating",
                            value=frame[row, "rating"])
    return frame


def read_movies(folder: Path) -> pl.DataFrame:
    """movie, title, year (of release; null for the movie named ``unknown``) and one 0/1
    column per genre of ``u.genre``, from the latin-1 ``u.item``."""
    genres = _read(folder / "u.genre", "|", ["genre", "code"], "utf-8").get_column("genre")
    columns = ["movie", "title", "release", "video_release", "url", *genres]
    frame = _read(folder / "u.item", "|", columns, "latin-1")
    year = pl.col("release").str.strptime(pl.Date, "%d-%b-%Y", strict=False).dt.year()
    return frame.select(
        pl.col("movie").cast(pl.Int64), "title", year.alias("year"),
        *[pl.col(g).cast(pl.Int8).alias(f"genre_{g}") for g in genres],
    )


def read_users(folder: Path) -> pl.DataFrame:
    """user, age, gender, occupation (the zip code is left out)."""
    frame = _read(folder / "u.user", "|", ["user", "age", "gender", "occupation", "zip"],
                  "utf-8")
    return frame.select(pl.col("user").cast(pl.Int64), pl.col("age").cast(pl.Int64),
                        "gender", "occupation")


def read_fold(folder: Path, fold: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The ``.base`` (training) and ``.test`` ratings of one canonical fold."""
    return read_ratings(folder / f"{fold}.base"), read_ratings(folder / f"{fold}.test")


def _read(path: Path, separator: str, columns: list[str], encoding: str) -> pl.DataFrame:
    if not path.is_file():
        raise InputError.at(str(path), f"the MovieLens 100K file {path.name}", hint=HELP)
    text = path.read_bytes().decode(encoding, errors="strict" if encoding == "utf-8"
                                    else "replace")
    lines = [line for line in text.splitlines() if line.strip()]
    rows = [line.split(separator) for line in lines]
    for i, row in enumerate(rows):
        if len(row) != len(columns):
            raise InputError.at(str(path), f"{len(columns)} fields separated by {separator!r}",
                                line=i + 1, value=lines[i][:60])
    if not rows:
        raise InputError.at(str(path), "at least one line")
    return pl.DataFrame(rows, schema=columns, orient="row")
