"""Fitted, serialisable preprocessing: category vocabularies (0 = unknown), continuous
scaling, and the target transform.

A ``ColumnSpec`` says which columns are categorical, which are continuous, which is the
target and how the model sees it (``log``, ``log1p`` or ``none``); a ``Preprocessor`` learns
vocabularies and quantiles from a frame and turns any frame with those columns into tensors.
Continuous values are mapped through their training quantiles onto a standard normal (as
scikit-learn's ``QuantileTransformer``): robust to outliers and skew; beyond the training
range values go on linearly for one more range width, then are clipped.
``to_dict`` / ``from_dict`` round-trip through plain data (JSON-able), so it travels inside a
checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import torch
from scipy.special import ndtri

from rossmann_embed.tabular.config import SCALINGS, TARGET_TRANSFORMS
from rossmann_embed.tabular.tables import as_numbers, require_columns

MAX_QUANTILES, MIN_QUANTILES, ROWS_PER_QUANTILE = 1000, 10, 30  # TabM's choice of n_quantiles
NORMAL_BOUND = 1e-7  # quantile levels clipped to [1e-7, 1 - 1e-7]: outputs within +-5.2
NORMAL_EDGE = float(ndtri(1 - NORMAL_BOUND))


def forward_target(values: np.ndarray, transform: str) -> np.ndarray:
    """The target as the model learns it (log of 0 is -inf: such rows are left out of the loss)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if transform == "log":
            return np.log(values)
        if transform == "log1p":
            return np.log1p(values)
    return values


def inverse_target(values: np.ndarray, transform: str) -> np.ndarray:
    """Predictions in the target's own units from the model's space."""
    values = np.asarray(values, dtype=np.float64)
    if transform == "log":
        return np.exp(values)
    if transform == "log1p":
        return np.expm1(values)
    return values


@dataclass(frozen=True)
class ColumnSpec:
    """Which columns the model sees: categorical (name -> cardinality seen), continuous, the
    target, and the target's transform (one of ``TARGET_TRANSFORMS``)."""

    categorical: dict[str, int]
    continuous: list[str]
    target: str | None = None
    target_transform: str = "log"

    def __post_init__(self) -> None:
        if self.target_transform not in TARGET_TRANSFORMS:
            raise ValueError(f"target_transform must be one of {TARGET_TRANSFORMS}, "
                             f"got {self.target_transform!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "categorical": dict(self.categorical),
            "continuous": list(self.continuous),
            "target": self.target,
            "target_transform": self.target_transform,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSpec:
        return cls(dict(data["categorical"]), list(data["continuous"]), data.get("target"),
                   data.get("target_transform", "log"))


@dataclass
class EncodedTable:
    """Tensors for one frame: category indices, scaled continuous values, log target (or None)."""

    categorical: torch.Tensor  # int64 [rows, n_categorical]
    continuous: torch.Tensor  # float32 [rows, n_continuous]
    target: torch.Tensor | None = None  # float32 [rows], the transformed target

    def __len__(self) -> int:
        return self.categorical.shape[0]


def _categories(schema: pl.Schema, name: str, vocabulary: list[Any] | None = None
                ) -> pl.Expr:
    """A categorical column's values as the vocabulary holds them: dates and times as ISO
    text, so that vocabularies stay plain data (checkpoints load weights-only). Against a
    vocabulary of text, any column is read as text: a later file whose codes all look like
    numbers ("0", "1") is typed as integers by the CSV reader, yet holds the same codes."""
    column = pl.col(name)
    dtype = schema[name]
    text_vocabulary = bool(vocabulary) and isinstance(vocabulary[0], str)
    if dtype.is_temporal() or (text_vocabulary and dtype != pl.String):
        return column.cast(pl.String)
    if vocabulary and not text_vocabulary and dtype == pl.String:
        return column.cast(pl.Float64, strict=False)  # numbers typed as text; others unknown
    return column


def training_quantiles(values: np.ndarray) -> list[float]:
    """Evenly spaced quantiles of a column's finite training values (one 0 if there are
    none): ``max(10, min(1000, rows // 30))`` of them."""
    values = values[np.isfinite(values)]
    if not len(values):
        return [0.0]
    n = max(MIN_QUANTILES, min(MAX_QUANTILES, len(values) // ROWS_PER_QUANTILE))
    return np.quantile(values, np.linspace(0, 1, n)).tolist()


def quantile_normal(values: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """``values`` mapped through the training ``quantiles`` onto a standard normal; missing
    values take the median's (0). Ties average the interpolation from both ends, as
    scikit-learn's ``QuantileTransformer`` does, so a repeated value maps to its middle."""
    q = np.asarray(quantiles, dtype=np.float64)
    levels = np.linspace(0, 1, len(q))
    x = np.where(np.isfinite(values), values, np.interp(0.5, levels, q))
    level = 0.5 * (np.interp(x, q, levels) - np.interp(-x, -q[::-1], -levels[::-1]))
    normal = ndtri(np.clip(level, NORMAL_BOUND, 1 - NORMAL_BOUND))
    # Beyond the training range, values go on linearly for up to one more range (a later
    # year, a higher price), so the network can extrapolate a trend; then they are clipped.
    span = q[-1] - q[0]
    if span > 0:
        beyond = np.clip((x - q[-1]) / span, 0, 1) - np.clip((q[0] - x) / span, 0, 1)
        normal = normal + beyond * 2 * NORMAL_EDGE
    return normal


@dataclass
class Preprocessor:
    """Category vocabularies (index 0 reserved for unknown) and the continuous columns'
    scaling: ``"quantile"`` (training quantiles onto a normal, ``quantile_normal``) or
    ``"standard"`` (training mean and standard deviation; missing values take the mean)."""

    spec: ColumnSpec
    vocabularies: dict[str, list[Any]] = field(default_factory=dict)
    quantiles: dict[str, list[float]] = field(default_factory=dict)
    scaling: str = "quantile"
    means: dict[str, float] = field(default_factory=dict)
    stds: dict[str, float] = field(default_factory=dict)

    @property
    def cardinalities(self) -> dict[str, int]:
        """Embedding rows per categorical column: known values plus the unknown row."""
        return {name: len(vocab) + 1 for name, vocab in self.vocabularies.items()}

    def fit(self, frame: pl.DataFrame) -> Preprocessor:
        """Learn vocabularies and scaling from ``frame`` (normally the training rows only)."""
        require_columns(frame, [*self.spec.categorical, *self.spec.continuous], "fit frame",
                        "the columns the spec names")
        self.vocabularies = {
            name: frame.select(_categories(frame.schema, name)).to_series().drop_nulls().unique()
            .sort().to_list()
            for name in self.spec.categorical
        }
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        columns = {c: _numbers(frame, c) for c in self.spec.continuous}
        if self.scaling == "quantile":
            self.quantiles = {c: training_quantiles(v) for c, v in columns.items()}
        else:
            finite = {c: v[np.isfinite(v)] for c, v in columns.items()}
            self.means = {c: float(v.mean()) if len(v) else 0.0 for c, v in finite.items()}
            self.stds = {c: float(v.std(ddof=1)) if len(v) > 1 and v.std() > 0 else 1.0
                         for c, v in finite.items()}
        return self

    def fit_streamed(self, lazy: pl.LazyFrame, sample: pl.DataFrame) -> Preprocessor:
        """Learn from training rows too many for memory: the vocabularies, means and standard
        deviations from every row of ``lazy`` (polars' streaming engine), the quantiles from
        ``sample`` (all the rows when there are few enough: then exactly as ``fit``)."""
        schema = lazy.collect_schema()
        missing = [c for c in [*self.spec.categorical, *self.spec.continuous] if c not in schema]
        if missing:
            raise ValueError(f"the training rows lack the columns {missing}")
        self.vocabularies = {
            name: lazy.select(_categories(schema, name)).unique().collect(engine="streaming")
            .to_series().drop_nulls().sort().to_list()
            for name in self.spec.categorical
        }
        if self.scaling == "quantile":
            self.quantiles = {c: training_quantiles(_numbers(sample, c))
                              for c in self.spec.continuous}
        elif self.spec.continuous:
            numbers = [pl.col(c).cast(pl.Float64, strict=False).fill_nan(None)
                       for c in self.spec.continuous]
            moments = lazy.select(
                *(n.mean().alias(f"mean {i}") for i, n in enumerate(numbers)),
                *(n.std().alias(f"std {i}") for i, n in enumerate(numbers)),
            ).collect(engine="streaming").row(0)
            k = len(numbers)
            self.means = {c: moments[i] if moments[i] is not None else 0.0
                          for i, c in enumerate(self.spec.continuous)}
            self.stds = {c: moments[k + i] if moments[k + i] else 1.0
                         for i, c in enumerate(self.spec.continuous)}
        return self

    @property
    def fill(self) -> str:
        """What a missing continuous value becomes: the training median or mean."""
        return "median" if self.scaling == "quantile" else "mean"

    def scale(self, values: np.ndarray, column: str) -> np.ndarray:
        """One continuous column's values as the network sees them."""
        if self.scaling == "quantile":
            return quantile_normal(values, self.quantiles[column])
        mean = self.means[column]
        return (np.where(np.isfinite(values), values, mean) - mean) / self.stds[column]

    def transform(self, frame: pl.DataFrame, source: str = "input frame") -> EncodedTable:
        """Encode ``frame``: unknown or missing categories -> 0, continuous values through
        their training quantiles (missing -> the median)."""
        if not self.vocabularies and self.spec.categorical:
            raise RuntimeError("Preprocessor.transform called before fit")
        require_columns(frame, [*self.spec.categorical, *self.spec.continuous], source)
        categorical = torch.from_numpy(
            self.codes(frame).to_numpy().astype(np.int64)
        ).reshape(len(frame), len(self.vocabularies))
        columns = [self.scale(_numbers(frame, c), c) for c in self.spec.continuous]
        continuous = torch.from_numpy(
            np.stack(columns, axis=1).astype(np.float32) if columns
            else np.zeros((len(frame), 0), np.float32))
        target = None
        if self.spec.target is not None and self.spec.target in frame.columns:
            values = frame.get_column(self.spec.target).cast(pl.Float64).to_numpy()
            transformed = forward_target(values, self.spec.target_transform)
            target = torch.from_numpy(transformed.astype(np.float32))
        return EncodedTable(categorical.contiguous(), continuous.contiguous(), target)

    def codes(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Each categorical column's vocabulary index: 1.. for values seen in training, 0 for
        any other value or a missing one (the embedding's unknown row)."""
        return frame.select(
            _categories(frame.schema, name, vocab)
            .replace_strict(vocab, list(range(1, len(vocab) + 1)), default=0,
                            return_dtype=pl.Int64)
            .fill_null(0)
            .alias(name)
            for name, vocab in self.vocabularies.items()
        )

    def unknown_counts(self, frame: pl.DataFrame, source: str = "input frame") -> dict[str, int]:
        """Rows per categorical column that take the unknown row: counted from the encoding
        itself, so a value is unknown here exactly when the model treats it so."""
        require_columns(frame, list(self.vocabularies), source)
        codes = self.codes(frame)
        return {name: int((codes.get_column(name) == 0).sum()) for name in codes.columns}

    def fit_transform(self, frame: pl.DataFrame) -> EncodedTable:
        return self.fit(frame).transform(frame)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, numbers, strings) that ``from_dict`` restores."""
        return {
            "spec": self.spec.to_dict(),
            "vocabularies": {k: list(vocab) for k, vocab in self.vocabularies.items()},
            "quantiles": {c: list(q) for c, q in self.quantiles.items()},
            "scaling": self.scaling,
            "means": dict(self.means),
            "stds": dict(self.stds),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        return cls(
            ColumnSpec.from_dict(data["spec"]),
            {k: list(v) for k, v in data["vocabularies"].items()},
            {c: list(q) for c, q in data["quantiles"].items()},
            data["scaling"], dict(data["means"]), dict(data["stds"]),
        )


def _numbers(frame: pl.DataFrame, column: str) -> np.ndarray:
    """A continuous column as float64 numbers, missing values as NaN."""
    return as_numbers(frame.get_column(column)).fill_null(np.nan).to_numpy()
