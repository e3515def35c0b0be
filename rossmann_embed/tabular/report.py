"""What the embeddings of any run learned: labelled tables, 2-D maps, factor tables, projector.

``write_embedding_report`` is `rossmann-embed embeddings` for a run of any table. For every
categorical column it writes::

    tables/<column>.parquet, .csv     the labelled embedding (value, index, labels, dim_*)
    projections/<column>.csv          PCA and t-SNE positions of the known values
    figures/<column>_pca.png, _tsne.png   the 2-D maps (labelled when there are few values)
    factors/<column>_pc<j>.csv, .md   the 15 values at each end of principal components 1-3
    neighbours/<column>.csv           each value's 10 nearest values by cosine similarity
    projector/                        TensorBoard projector files of every column
    embeddings.json                   what was written, with each column's explained variance

The pieces (``with_labels``, ``projections``, ...) are shared with the Rossmann maps.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rossmann_embed.tabular.embedding_tables import (
    export_tables,
    factor_tables,
    known_rows,
    label_columns,
    nearest_neighbours,
    principal_components,
    project,
    safe_name,
    vectors_of,
    write_factor_tables,
    write_projector,
)
from rossmann_embed.tabular.files import write_csv, write_json
from rossmann_embed.tabular.plots import plot_labelled_map, plot_points_by_group

FACTOR_COMPONENTS = 3
FACTOR_ROWS = 15
LABELLED_POINTS = 40  # up to this many values, each point on a map gets its label
NEIGHBOURS = 10
GROUPS = 12  # a label column with at most this many values colours the points of a big map


def with_labels(table: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Join label columns (keyed by ``value``) in after ``index``, before the vectors."""
    joined = table.join(labels, on="value", how="left", maintain_order="left")
    extra = [c for c in labels.columns if c != "value"]
    return joined.select("value", "index", *extra, *[c for c in table.columns[2:]])


def projections(table: pl.DataFrame, seed: int) -> tuple[pl.DataFrame, dict[str, tuple]]:
    """Known rows' labels with PCA and t-SNE positions, and axis titles for each method."""
    known = known_rows(table)
    vectors = vectors_of(known)
    pca, explained = principal_components(vectors, 2)
    pca = np.pad(pca, ((0, 0), (0, 2 - pca.shape[1])))
    explained = np.pad(explained, (0, 2 - len(explained)))
    tsne = project(vectors, "tsne", seed)
    frame = known.select(label_columns(known)).with_columns(
        pca_x=pca[:, 0], pca_y=pca[:, 1], tsne_x=tsne[:, 0], tsne_y=tsne[:, 1]
    )
    axes = {
        "pca": tuple(component_title(j, explained[j - 1]) for j in (1, 2)),
        "tsne": ("t-SNE dimension 1", "t-SNE dimension 2"),
    }
    return frame, axes


def component_title(j: int, share: float) -> str:
    shown = f"{share:.1%}" if share >= 0.001 else "<0.1%"
    return f"principal component {j} ({shown} of variance)"


METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE"}


def write_projector_files(tables: Mapping[str, pl.DataFrame], out_dir: Path) -> list[Path]:
    """Known rows of every embedding; metadata = its labels with ``value`` named as the column."""
    known = {c: known_rows(t) for c, t in tables.items()}
    metadata = {
        c: t.select([pl.col("value").alias(c), *[x for x in label_columns(t)[2:]]])
        for c, t in known.items()
    }
    return write_projector(out_dir, known, metadata)


def run_weights(model: Any) -> dict[str, np.ndarray]:
    """Embedding matrices of one EntityEmbeddingNetwork, by column."""
    return {name: emb.weight.detach().cpu().numpy() for name, emb in model.embeddings.items()}




def write_embedding_report(tables: Mapping[str, pl.DataFrame], out_dir: Path,
                           seed: int = 0) -> dict[str, Any]:
    """Tables, maps, factor tables and projector files of labelled embedding ``tables``
    (``embedding_tables.embedding_table``, with label columns joined in by ``with_labels``)."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    paths = export_tables(tables, out_dir / "tables")
    summary: dict[str, Any] = {"out_dir": str(out_dir), "columns": {}}
    for column, table in tables.items():
        known = known_rows(table)
        entry: dict[str, Any] = {"values": known.height, "dimensions": len(vectors_of(known)[0])
                                 if known.height else 0}
        if known.height >= 3:  # t-SNE needs 3 points, a factor table 2 ends
            written, entry["explained_variance"] = _column_report(column, table, out_dir, seed)
            paths += written
        summary["columns"][column] = entry
    paths += write_projector_files(tables, out_dir / "projector")
    summary["files"] = sorted(str(p.relative_to(out_dir)) for p in paths)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    write_json(out_dir / "embeddings.json", summary)
    return summary


def _column_report(column: str, table: pl.DataFrame, out_dir: Path,
                   seed: int) -> tuple[list[Path], list[float]]:
    stem = safe_name(column)
    proj, axes = projections(table, seed)
    paths = [write_csv(proj, out_dir / "projections" / f"{stem}.csv")]
    labels = [c for c in label_columns(table) if c not in ("value", "index")]
    for method in ("pca", "tsne"):
        title = f"{column} embeddings ({METHOD_NAMES[method]})"
        path = out_dir / "figures" / f"{stem}_{method}.png"
        xy = {"x": f"{method}_x", "y": f"{method}_y"}
        if proj.height <= LABELLED_POINTS:
            label = pl.concat_str("value", *[pl.col(c).cast(pl.String) for c in labels[:1]],
                                  separator=" ", ignore_nulls=True)
            paths.append(plot_labelled_map(proj.select(label.alias("label"), **xy), title, path,
                                           axes[method], equal_aspect=method == "pca"))
            continue
        group = next((c for c in labels if proj.get_column(c).n_unique() <= GROUPS), None)
        points = proj.select(pl.col(group).cast(pl.String).alias("group") if group
                             else pl.lit(column).alias("group"), **xy)
        paths.append(plot_points_by_group(points, title, path, axes[method],
                                          group_title=group or "", equal_aspect=method == "pca"))
    known = known_rows(table)
    vectors = vectors_of(known)
    _, explained = principal_components(vectors, FACTOR_COMPONENTS)
    attributes = known.select(pl.col("value").alias(column), *labels)
    factors = factor_tables(attributes, vectors, FACTOR_COMPONENTS, FACTOR_ROWS)
    paths += write_factor_tables(factors, out_dir / "factors", explained=explained,
                                 what=f"{column} values", prefix=stem)
    neighbours = nearest_neighbours(table, NEIGHBOURS)
    paths.append(write_csv(neighbours, out_dir / "neighbours" / f"{stem}.csv"))
    return paths, [float(e) for e in explained]
