"""Learned embeddings as features for other models: a scikit-learn transformer.

Guo & Berkhahn's point: vectors learned by a network make other models (k-NN, random forests,
gradient boosting) better. ``EmbeddingEncoder`` replaces each categorical column by its
vectors and passes every other column through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags

from rossmann_embed.tabular.frames import array_series, as_array, frame_columns

if TYPE_CHECKING:  # type hints only: importing torch here would slow every import of this module
    from rossmann_embed.tabular.encoding import Preprocessor
    from rossmann_embed.tabular.model import EntityEmbeddingNetwork
    from rossmann_embed.tabular.run_directory import TabularRun


class EmbeddingEncoder(TransformerMixin, BaseEstimator):
    """Replace categorical columns by their learned embedding vectors: a scikit-learn transformer.

    Guo & Berkhahn's point: vectors learned by a network make other models (k-NN, random
    forests, gradient boosting) much better. This transformer is that step in a ``Pipeline``.

    Args:
        embeddings: column -> embedding matrix with ``len(vocabularies[column]) + 1`` rows.
        vocabularies: column -> known values; ``vocabularies[column][i]`` is row ``i + 1``,
            row 0 is for values unseen in training (and missing values).
        columns: names of the input columns in order, needed for numpy input that holds more
            than the embedded columns. Default: a data frame's own columns, or for numpy input
            the embedded columns in the order of ``embeddings``.

    Input is a polars (or pandas) data frame, whose columns are taken by name, or a 2-D array
    whose columns are in ``columns`` order. Each embedded column becomes ``<column>_0 ..
    <column>_{k-1}`` in its place; every other column is passed through (it must be numeric),
    like ``ColumnTransformer(remainder="passthrough")`` but keeping the column order. The output
    is a float64 array; ``set_output(transform="polars")`` gives a frame instead.

    The learned state is given at construction, so the encoder is usable without ``fit``;
    ``fit`` checks the input's columns and records ``n_features_in_`` (and
    ``feature_names_in_`` for data frames), as a step of a ``Pipeline`` needs.
    """

    def __init__(
        self,
        embeddings: Mapping[str, np.ndarray] | None = None,
        vocabularies: Mapping[str, Sequence[Any]] | None = None,
        columns: Sequence[str] | None = None,
    ) -> None:
        # scikit-learn convention: store the parameters untouched, check them in fit/transform.
        self.embeddings = embeddings
        self.vocabularies = vocabularies
        self.columns = columns

    @classmethod
    def from_model(
        cls,
        model: EntityEmbeddingNetwork,
        preprocessor: Preprocessor,
        *,
        embed: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
    ) -> EmbeddingEncoder:
        """An encoder with ``model``'s embeddings of the columns in ``embed`` (default: all of
        the model's categorical columns), looked up through ``preprocessor``'s vocabularies."""
        names = list(embed) if embed is not None else list(preprocessor.vocabularies)
        missing = [n for n in names if n not in model.embeddings]
        if missing:
            raise ValueError(f"the model has no embedding for {missing}; "
                             f"it has {list(model.embeddings)}")
        weights = {n: model.embeddings[n].weight.detach().cpu().numpy().copy() for n in names}
        vocabularies = {n: list(preprocessor.vocabularies[n]) for n in names}
        return cls(weights, vocabularies, list(columns) if columns is not None else None)

    @classmethod
    def from_run(
        cls,
        run: TabularRun,
        member: int = 0,
        *,
        embed: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
    ) -> EmbeddingEncoder:
        """An encoder with the embeddings of one member of a trained run (``inference.Run``).

        One member, not an average over a seed ensemble: each seed learns its own embedding
        space (rotated, permuted dimensions), so averaging vectors across members is
        meaningless. ``member`` indexes ``run.models`` (0: the first seed).
        """
        if not 0 <= member < len(run.models):
            raise ValueError(f"member must be in [0, {len(run.models)}), got {member}")
        return cls.from_model(run.models[member], run.preprocessor, embed=embed, columns=columns)

    # ---- scikit-learn API ----------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> EmbeddingEncoder:
        """Check the input's columns and record them; the embeddings themselves are given."""
        self._check_params()
        for attribute in ("feature_names_in_", "n_features_in_"):  # a refit starts afresh
            self.__dict__.pop(attribute, None)
        frame = self._to_frame(X)
        if frame.height == 0:
            raise ValueError(f"Found array with 0 sample(s) (shape={frame.shape}) while a "
                             "minimum of 1 is required by EmbeddingEncoder.")
        if frame_columns(X) is not None:
            self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.width
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The input with every embedded column replaced by its vectors (float64 array)."""
        self._check_params()
        frame = self._to_frame(X)
        parts = [self._encode(frame.get_column(name)) for name in frame.columns]
        return np.hstack(parts) if parts else np.empty((frame.height, 0))

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        """Output names: ``<column>_<j>`` for embedded columns, other names unchanged."""
        self._check_params()
        names = self._input_names(getattr(self, "n_features_in_", None))
        if input_features is not None:
            if len(input_features) != len(names):
                raise ValueError(f"input_features has {len(input_features)} names, "
                                 f"expected {len(names)}: {names}")
            names = [str(n) for n in input_features]
        out: list[str] = []
        for name in names:
            if name in (self.embeddings or {}):
                out += [f"{name}_{j}" for j in range(np.shape(self.embeddings[name])[1])]
            else:
                out.append(name)
        return np.asarray(out, dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return True  # the learned state is the constructor's arguments

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True  # a missing category takes the unknown row
        return tags

    # ---- helpers -------------------------------------------------------------------------------

    def _check_params(self) -> None:
        embeddings, vocabularies = self.embeddings or {}, self.vocabularies or {}
        if set(embeddings) != set(vocabularies):
            raise ValueError(
                f"embeddings and vocabularies must name the same columns, got "
                f"{sorted(embeddings)} and {sorted(vocabularies)}"
            )
        for name, weights in embeddings.items():
            shape = np.shape(weights)
            if len(shape) != 2 or shape[0] != len(vocabularies[name]) + 1:
                raise ValueError(
                    f"embedding of {name!r}: expected {len(vocabularies[name]) + 1} rows "
                    f"(vocabulary plus the unknown row 0), got shape {shape}"
                )

    def _input_names(self, n_columns: int | None) -> list[str]:
        """The input columns: as fitted on a frame, else ``columns``, else the embedded
        columns, else (a passthrough-only encoder) scikit-learn's ``x0, x1, ...``."""
        if hasattr(self, "feature_names_in_"):
            return [str(n) for n in self.feature_names_in_]
        if self.columns is not None:
            return [str(n) for n in self.columns]
        if self.embeddings:
            return list(self.embeddings)
        n = getattr(self, "n_features_in_", n_columns)
        return [f"x{j}" for j in range(n or 0)]

    def _to_frame(self, X: Any) -> pl.DataFrame:
        """A polars frame of the input columns, in order, whatever the input's type."""
        names = frame_columns(X)
        if names is not None:
            frame = X if isinstance(X, pl.DataFrame) else pl.from_pandas(X)
            if hasattr(self, "feature_names_in_") or self.columns is not None:
                names = self._input_names(None)
            missing = [n for n in names if n not in frame.columns]
            if missing:
                raise ValueError(f"input is missing columns {missing}; it has {frame.columns}")
            return frame.select(names)
        array = as_array(X)
        names = self._input_names(array.shape[1])
        if array.shape[1] != len(names):
            raise ValueError(
                f"X has {array.shape[1]} features, but EmbeddingEncoder is expecting "
                f"{len(names)} features as input: {names} (name an array's columns with "
                "columns=[...])"
            )
        return pl.DataFrame([array_series(n, array[:, j]) for j, n in enumerate(names)],
                            height=array.shape[0])

    def _encode(self, values: pl.Series) -> np.ndarray:
        """(rows, k) vectors of an embedded column, or the (rows, 1) numeric passthrough."""
        name = values.name
        if name in (self.embeddings or {}):
            rows = embedding_rows(values, self.vocabularies[name])
            return np.asarray(self.embeddings[name], dtype=np.float64)[rows]
        try:
            # Text is accepted when it holds numbers: a numpy array with one string column
            # turns all of its columns to text.
            numbers = values.cast(pl.Float64, strict=True)
        except pl.exceptions.PolarsError as error:
            raise ValueError(
                f"column {name!r} ({values.dtype}) is passed through and must be numeric; "
                "embed it or drop it before the encoder"
            ) from error
        return numbers.fill_null(np.nan).to_numpy().reshape(-1, 1)


def embedding_rows(values: pl.Series, vocabulary: Sequence[Any]) -> np.ndarray:
    """The embedding-matrix row of each value: ``i + 1`` for ``vocabulary[i]``, 0 for unknown
    or missing values. Numbers match numbers; otherwise values match by their text."""
    known = pl.Series(list(vocabulary))
    if values.dtype == pl.Boolean:
        values = values.cast(pl.Int64)
    if not (values.dtype.is_numeric() and known.dtype.is_numeric()):
        # e.g. a numpy array holding a string column turns every column to text.
        values, known = values.cast(pl.String), known.cast(pl.String)
    rows = values.replace_strict(known, list(range(1, len(known) + 1)), default=0,
                                 return_dtype=pl.Int64)
    return rows.fill_null(0).to_numpy()
