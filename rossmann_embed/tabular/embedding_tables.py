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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits  # a scikit-learn dependency

from rossmann_embed.tabular.files import atomic_write, write_text

if TYPE_CHECKING:  # type hints only: importing torch here would slow every import of this module
    pass

UNKNOWN_LABEL = "<unknown>"
DIM_PREFIX = "dim_"


# --- tables ------------------------------------------------------------------------------------


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
    "dim_columns",
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
]


# --- neighbours --------------------------------------------------------------------------------


def nearest_neighbours(table: pl.DataFrame, k: int = 10) -> pl.DataFrame:
    """For every known row of an embedding table, its ``k`` nearest known rows by cosine
    similarity of their vectors: value, rank (1 = closest), neighbour, similarity, and the
    neighbour's label columns (as ``neighbour_<label>``)."""
    known = known_rows(table)
    vectors = vectors_of(known)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1.0, norms)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    k = min(k, known.height - 1)
    order = np.argsort(-similarity, axis=1)[:, :k]
    rows = np.repeat(np.arange(known.height), k)
    labels = [c for c in label_columns(known) if c not in ("value", "index")]
    neighbour = known.select("value", *labels)[order.ravel()]
    return pl.DataFrame({
        "value": known.get_column("value").gather(rows),
        "rank": np.tile(np.arange(1, k + 1), known.height),
        "neighbour": neighbour.get_column("value"),
        "similarity": similarity[rows, order.ravel()],
    }).with_columns(neighbour.select(pl.col(c).alias(f"neighbour_{c}") for c in labels))
