"""Learned embeddings as labelled tables: export, projections, factor tables, projector files.

Generic: works for any categorical column of any dataset (no Rossmann facts here).

An embedding matrix of a column has one row per vocabulary value plus row 0, reserved for
values unseen in training. ``embedding_table`` turns it into a frame with one row per matrix
row, in matrix order::

    value   String   the label: str(vocabulary value); row 0 is UNKNOWN_LABEL ("<unknown>")
    index   Int64    the row of the embedding matrix (0 = unknown, i + 1 = vocabulary[i])
    dim_0 .. dim_{k-1}   Float64, the vector

Exports keep the unknown row (``index == 0``) so a table is the whole matrix; projections,
factor tables and projector files drop it (``known_rows``), since it is not a place or a day.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.utils import Tags
from threadpoolctl import threadpool_limits  # a scikit-learn dependency

if TYPE_CHECKING:  # type hints only: importing torch here would slow every import of this module
    from rossmann_embed.encoding import Preprocessor
    from rossmann_embed.inference import Run
    from rossmann_embed.model import EntityEmbeddingRegressor

UNKNOWN_LABEL = "<unknown>"
DIM_PREFIX = "dim_"


# --- files -------------------------------------------------------------------------------------


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it onto ``path``.

    Readers never see a half-written file; the unique temporary name lets parallel writers of
    one directory coexist. Parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def safe_name(name: str) -> str:
    """A file-name-safe form of a column name (letters, digits, '_', '-', '.')."""
    cleaned = "".join(c if c.isalnum() or c in "_-." else "_" for c in str(name)).strip(".")
    return cleaned or "column"


# --- tables ------------------------------------------------------------------------------------


def embedding_table(column: str, vocabulary: Sequence[Any], weights: np.ndarray) -> pl.DataFrame:
    """One labelled row per embedding-matrix row: ``value``, ``index``, ``dim_0..dim_{k-1}``.

    ``weights`` must have ``len(vocabulary) + 1`` rows; row 0 is labelled ``UNKNOWN_LABEL``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[0] != len(vocabulary) + 1:
        raise ValueError(
            f"embedding of {column!r}: expected a matrix with {len(vocabulary) + 1} rows "
            f"(vocabulary of {len(vocabulary)} plus the unknown row), got shape {weights.shape}"
        )
    labels = [UNKNOWN_LABEL, *(str(v) for v in vocabulary)]
    return pl.DataFrame(
        {
            "value": labels,
            "index": np.arange(len(labels), dtype=np.int64),
            **{f"{DIM_PREFIX}{j}": weights[:, j] for j in range(weights.shape[1])},
        }
    )


def dim_columns(table: pl.DataFrame) -> list[str]:
    """The vector columns ``dim_*`` of an embedding table, in order."""
    return [c for c in table.columns if c.startswith(DIM_PREFIX)]


def label_columns(table: pl.DataFrame) -> list[str]:
    """The non-vector columns of an embedding table (``value``, ``index``, attributes)."""
    return [c for c in table.columns if not c.startswith(DIM_PREFIX)]


def vectors_of(table: pl.DataFrame) -> np.ndarray:
    """The (n, k) float matrix of an embedding table's ``dim_*`` columns."""
    return table.select(dim_columns(table)).to_numpy().astype(np.float64)


def known_rows(table: pl.DataFrame) -> pl.DataFrame:
    """The table without the reserved unknown row (``index == 0``)."""
    return table.filter(pl.col("index") != 0)


def export_tables(tables: Mapping[str, pl.DataFrame], out_dir: Path) -> list[Path]:
    """Write each table as ``out_dir/<column>.parquet`` and ``out_dir/<column>.csv``.

    Both files hold the same rows and columns; CSV quotes text with commas (e.g. ``"HB,NI"``).
    """
    out_dir = Path(out_dir)
    paths: list[Path] = []
    for column, table in tables.items():
        stem = safe_name(column)
        paths.append(atomic_write(out_dir / f"{stem}.parquet", table.write_parquet))
        paths.append(atomic_write(out_dir / f"{stem}.csv", table.write_csv))
    return paths


# --- projections -------------------------------------------------------------------------------


def _at_least_2d(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2:
        raise ValueError(f"expected an (n, d) matrix of vectors, got shape {vectors.shape}")
    return np.pad(vectors, ((0, 0), (0, max(0, 2 - vectors.shape[1]))))


def tsne_perplexity(n: int) -> float:
    """A perplexity valid for ``n`` points: about a third of the neighbours, at most 30.

    t-SNE requires perplexity < n; 12 states get 11/3 = 3.7.
    """
    return float(min(30.0, max(2.0, (n - 1) / 3)))


def project(
    vectors: np.ndarray, method: Literal["pca", "tsne"] = "pca", seed: int = 0
) -> np.ndarray:
    """A 2-D projection (n, 2) of the rows of ``vectors`` by PCA or t-SNE (fixed seed).

    t-SNE uses PCA initialisation and ``tsne_perplexity(n)``; it needs at least 3 points.
    It runs on one thread: for a few thousand points OpenMP threads cost more than they gain
    (several times slower on a busy 2-core machine) and the result then cannot depend on the
    number of cores.
    """
    vectors = _at_least_2d(vectors)
    n = vectors.shape[0]
    if method == "pca":
        if n < 2:
            raise ValueError(f"PCA needs at least 2 points, got {n}")
        return PCA(n_components=2, svd_solver="full").fit_transform(vectors)
    if method == "tsne":
        if n < 3:
            raise ValueError(f"t-SNE needs at least 3 points, got {n}")
        tsne = TSNE(
            n_components=2,
            perplexity=tsne_perplexity(n),
            init="pca",
            learning_rate="auto",
            random_state=seed,
        )
        with threadpool_limits(limits=1, user_api="openmp"):
            return tsne.fit_transform(vectors)
    raise ValueError(f"unknown projection method {method!r}; expected 'pca' or 'tsne'")


def principal_components(vectors: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Scores (n, k') on the first k' = min(k, n, d) principal components and their
    explained-variance ratios (k',). Signs follow scikit-learn's deterministic convention."""
    vectors = np.asarray(vectors, dtype=np.float64)
    k = min(k, *vectors.shape)
    pca = PCA(n_components=k, svd_solver="full")
    return pca.fit_transform(vectors), pca.explained_variance_ratio_


# --- factor tables -----------------------------------------------------------------------------


def factor_tables(
    attributes: pl.DataFrame, vectors: np.ndarray, k: int = 3, n: int = 15
) -> dict[int, pl.DataFrame]:
    """For components 1..k, the ``n`` rows with the highest and ``n`` with the lowest score.

    Each frame has ``end`` ("top" first, most extreme first, then "bottom"), ``rank`` (1 = most
    extreme at that end), ``score`` and the columns of ``attributes`` (row-aligned with
    ``vectors``). ``n`` is capped at half the rows so the two ends never share a row.
    """
    if attributes.height != len(vectors):
        raise ValueError(
            f"attributes have {attributes.height} rows but there are {len(vectors)} vectors"
        )
    scores, _ = principal_components(vectors, k)
    n = min(n, attributes.height // 2)
    tables = {}
    for j in range(scores.shape[1]):
        scored = attributes.with_columns(score=pl.Series(scores[:, j]))
        ends = [
            scored.sort("score", descending=True).head(n).with_columns(end=pl.lit("top")),
            scored.sort("score").head(n).with_columns(end=pl.lit("bottom")),
        ]
        tables[j + 1] = pl.concat(
            [e.with_row_index("rank", offset=1) for e in ends]
        ).select("end", "rank", "score", *attributes.columns)
    return tables


def markdown_table(frame: pl.DataFrame, float_digits: int = 3) -> str:
    """A GitHub-flavoured markdown table of ``frame`` (floats rounded, '|' escaped)."""

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.{float_digits}f}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    numeric = [dtype.is_numeric() for dtype in frame.dtypes]
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---:" if num else ":---" for num in numeric) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows]) + "\n"


def write_factor_tables(
    tables: Mapping[int, pl.DataFrame],
    out_dir: Path,
    *,
    explained: Sequence[float] | None = None,
    what: str = "rows",
    prefix: str = "factors",
) -> list[Path]:
    """Write ``<prefix>_pc<j>.csv`` and ``<prefix>_pc<j>.md`` per component.

    The markdown file has a heading naming the component, its share of variance (when
    ``explained`` is given) and ``what`` the rows are, e.g. "stores".
    """
    out_dir = Path(out_dir)
    paths: list[Path] = []
    for j, table in tables.items():
        share = f" ({explained[j - 1]:.1%} of variance)" if explained is not None else ""
        n = table.filter(pl.col("end") == "top").height
        heading = f"# Principal component {j}{share}: the {n} {what} at each end\n\n"
        paths.append(atomic_write(out_dir / f"{prefix}_pc{j}.csv", table.write_csv))
        paths.append(write_text(out_dir / f"{prefix}_pc{j}.md", heading + markdown_table(table)))
    return paths


# --- TensorBoard projector ---------------------------------------------------------------------


def _metadata_tsv(metadata: pl.DataFrame) -> str:
    """TensorBoard metadata: a header row only when there are several columns."""
    text = metadata.select(
        pl.all().cast(pl.String).fill_null("").str.replace_all(r"[\t\r\n]", " ")
    )
    rows = ["\t".join(row) for row in text.iter_rows()]
    if metadata.width > 1:
        rows.insert(0, "\t".join(metadata.columns))
    return "\n".join(rows) + "\n"


def write_projector(
    out_dir: Path,
    tables: Mapping[str, pl.DataFrame],
    metadata: Mapping[str, pl.DataFrame] | None = None,
) -> list[Path]:
    """TensorBoard projector files: per embedding ``<name>_vectors.tsv`` (no header) and
    ``<name>_metadata.tsv``, and ``projector_config.pbtxt`` listing them (relative paths).

    ``metadata[name]`` must be row-aligned with ``tables[name]``; without it the table's
    ``value`` column is used. Point TensorBoard's ``--logdir`` at ``out_dir``.
    """
    out_dir = Path(out_dir)
    metadata = metadata or {}
    paths: list[Path] = []
    entries: list[str] = []
    for name, table in tables.items():
        meta = metadata.get(name, table.select("value"))
        if meta.height != table.height:
            raise ValueError(
                f"projector {name!r}: {table.height} vectors but {meta.height} metadata rows"
            )
        stem = safe_name(name)
        vectors = vectors_of(table)
        vec_path = atomic_write(
            out_dir / f"{stem}_vectors.tsv",
            lambda tmp, v=vectors: np.savetxt(tmp, v, fmt="%.6g", delimiter="\t"),
        )
        meta_path = write_text(out_dir / f"{stem}_metadata.tsv", _metadata_tsv(meta))
        paths += [vec_path, meta_path]
        entries.append(
            "embeddings {\n"
            f"  tensor_name: {json.dumps(str(name), ensure_ascii=False)}\n"
            f"  tensor_path: {json.dumps(vec_path.name, ensure_ascii=False)}\n"
            f"  metadata_path: {json.dumps(meta_path.name, ensure_ascii=False)}\n"
            "}\n"
        )
    paths.append(write_text(out_dir / "projector_config.pbtxt", "".join(entries)))
    return paths


__all__ = [
    "UNKNOWN_LABEL",
    "EmbeddingEncoder",
    "atomic_write",
    "dim_columns",
    "embedding_rows",
    "embedding_table",
    "export_tables",
    "factor_tables",
    "known_rows",
    "label_columns",
    "markdown_table",
    "principal_components",
    "project",
    "safe_name",
    "tsne_perplexity",
    "vectors_of",
    "write_factor_tables",
    "write_projector",
    "write_text",
]


# --- scikit-learn transformer ------------------------------------------------------------------


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
        model: EntityEmbeddingRegressor,
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
        run: Run,
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
        if _frame_columns(X) is not None:
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
        names = _frame_columns(X)
        if names is not None:
            frame = X if isinstance(X, pl.DataFrame) else pl.from_pandas(X)
            if hasattr(self, "feature_names_in_") or self.columns is not None:
                names = self._input_names(None)
            missing = [n for n in names if n not in frame.columns]
            if missing:
                raise ValueError(f"input is missing columns {missing}; it has {frame.columns}")
            return frame.select(names)
        array = _as_array(X)
        names = self._input_names(array.shape[1])
        if array.shape[1] != len(names):
            raise ValueError(
                f"X has {array.shape[1]} features, but EmbeddingEncoder is expecting "
                f"{len(names)} features as input: {names} (name an array's columns with "
                "columns=[...])"
            )
        return pl.DataFrame([_series(n, array[:, j]) for j, n in enumerate(names)],
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


def _frame_columns(X: Any) -> list[str] | None:
    """Column names of a polars or pandas data frame; None for arrays."""
    if isinstance(X, pl.DataFrame):
        return list(X.columns)
    columns = getattr(X, "columns", None)
    if columns is not None and hasattr(X, "iloc"):  # pandas, without importing it
        return [str(c) for c in columns]
    return None


def _as_array(X: Any) -> np.ndarray:
    """A 2-D numpy array of array-like input, with scikit-learn's messages for bad input."""
    if sp.issparse(X):
        raise TypeError("EmbeddingEncoder takes a dense array or a data frame, not a sparse "
                        "matrix: categories are looked up by value")
    array = np.asarray(X)
    if np.iscomplexobj(array):
        raise ValueError("Complex data not supported")
    if array.ndim != 2:
        raise ValueError(f"Expected 2D array, got shape {array.shape}. Reshape your data: "
                         "array.reshape(-1, 1) for a single column")
    if array.shape[1] == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={array.shape}) while a "
                         "minimum of 1 is required by EmbeddingEncoder.")
    return array


def _series(name: str, column: np.ndarray) -> pl.Series:
    # Object columns (mixed numpy input) go through Python values, which polars can type.
    values = column.tolist() if column.dtype == object else column
    return pl.Series(name, values, strict=False)
