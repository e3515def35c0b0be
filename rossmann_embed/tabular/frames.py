"""Inputs as scikit-learn takes them (polars or pandas frames, 2-D arrays) turned into polars."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp


def frame_columns(X: Any) -> list[str] | None:
    """Column names of a polars or pandas data frame; None for arrays."""
    if isinstance(X, pl.DataFrame):
        return list(X.columns)
    columns = getattr(X, "columns", None)
    if columns is not None and hasattr(X, "iloc"):  # pandas, without importing it
        return [str(c) for c in columns]
    return None


def as_array(X: Any, who: str = "EmbeddingEncoder") -> np.ndarray:
    """A 2-D numpy array of array-like input, with scikit-learn's messages for bad input."""
    if sp.issparse(X):
        raise TypeError(f"{who} takes a dense array or a data frame, not a sparse "
                        "matrix: categories are looked up by value")
    array = np.asarray(X)
    if np.iscomplexobj(array):
        raise ValueError("Complex data not supported")
    if array.ndim != 2:
        raise ValueError(f"Expected 2D array, got shape {array.shape}. Reshape your data: "
                         "array.reshape(-1, 1) for a single column")
    if array.shape[1] == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={array.shape}) while a "
                         f"minimum of 1 is required by {who}.")
    return array


def array_series(name: str, column: np.ndarray) -> pl.Series:
    """A named polars column of one numpy column."""
    # Object columns (mixed numpy input) go through Python values, which polars can type.
    values = column.tolist() if column.dtype == object else column
    return pl.Series(name, values, strict=False)


def to_frame(X: Any, who: str, names: list[str] | None = None) -> pl.DataFrame:
    """A polars frame of ``X``: a polars or pandas frame as it is, a 2-D array with columns
    ``names`` (default scikit-learn's ``x0, x1, ...``)."""
    if isinstance(X, pl.DataFrame):
        return X
    if frame_columns(X) is not None:
        return pl.from_pandas(X)
    array = as_array(X, who)
    names = names or [f"x{j}" for j in range(array.shape[1])]
    if array.shape[1] != len(names):
        raise ValueError(f"X has {array.shape[1]} features, but {who} is expecting "
                         f"{len(names)} features as input")
    return pl.DataFrame([array_series(n, array[:, j]) for j, n in enumerate(names)],
                        height=array.shape[0])
