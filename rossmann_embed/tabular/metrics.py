"""Regression metrics in the target's own units, as Kaggle and the papers report them."""

from __future__ import annotations

import numpy as np
import polars as pl


def rmspe(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Kaggle's root mean squared percentage error over rows with ``y_true != 0``."""
    y_true, y_pred = _pair(y_true, y_pred)
    keep = y_true != 0
    if not keep.any():
        return float("nan")
    pct = (y_true[keep] - y_pred[keep]) / y_true[keep]
    return float(np.sqrt(np.mean(pct**2)))


def rmspe_expr(actual: str, predicted: str) -> pl.Expr:
    """``rmspe`` as a polars aggregation (per group in ``group_by``): over the rows whose
    ``actual`` is not 0."""
    error = (pl.col(actual) - pl.col(predicted)) / pl.col(actual)
    return error.filter(pl.col(actual) != 0).pow(2).mean().sqrt()


def mape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute percentage error over rows with ``y_true != 0`` (as ``rmspe``)."""
    y_true, y_pred = _pair(y_true, y_pred)
    keep = y_true != 0
    if not keep.any():
        return float("nan")
    return float(np.mean(np.abs((y_true[keep] - y_pred[keep]) / y_true[keep])))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2))) if len(y_true) else float("nan")


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred))) if len(y_true) else float("nan")


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Flat: a model's (n, 1) column against (n,) targets must not broadcast to (n, n).
    return (np.asarray(y_true, dtype=np.float64).ravel(),
            np.asarray(y_pred, dtype=np.float64).ravel())
