"""What the Rossmann network learned: labelled embedding tables, maps, factors, geography.

``write_maps`` turns the embedding matrices of a trained run into files a person can read.
Layout of ``out_dir`` (every file written atomically)::

    geography.json              mantel_r, mantel_p, procrustes_residual, n_states, map
    tables/<Column>.parquet     every embedding matrix with labels, one row per matrix row
    tables/<Column>.csv         (same content; row index 0 is "<unknown>"):
                                Store: + State, StateName, StoreType, Assortment
                                State: + name (German name of the state code)
    projections/Store.csv       2-D positions of the known rows: pca_x, pca_y, tsne_x, tsne_y
    projections/State.csv       (with the same labels as the tables)
    factors/factors_pc<j>.csv   for components 1..3 of the store embeddings: the 15 stores
    factors/factors_pc<j>.md    at each end with State, StoreType, Assortment and the score
    figures/state_pca.png       labelled maps of the state embeddings (PCA, t-SNE)
    figures/state_tsne.png
    figures/store_pca.png       store embeddings coloured by state (PCA, t-SNE)
    figures/store_tsne.png
    figures/store_pc2_pc3.png   component 2 against 3, extreme stores labelled
    figures/geography_alignment.png   Procrustes-aligned state embedding over the real map
    projector/<Column>_vectors.tsv, <Column>_metadata.tsv, projector_config.pbtxt
                                TensorBoard projector (``tensorboard --logdir out_dir/projector``)

Store and State files are written when those columns have embeddings; tables and projector
files are written for every embedding.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rossmann_embed.rossmann.geography import (
    geography_score,
    german_state_coordinates,
    german_states,
)
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.export import (
    embedding_table,
    export_tables,
    factor_tables,
    known_rows,
    principal_components,
    vectors_of,
    write_factor_tables,
)
from rossmann_embed.tabular.files import write_text
from rossmann_embed.tabular.plots import (
    plot_factor_scatter,
    plot_geography_alignment,
    plot_labelled_map,
    plot_points_by_group,
)
from rossmann_embed.tabular.report import (
    METHOD_NAMES,
    component_title,
    projections,
    run_weights,
    with_labels,
    write_projector_files,
)
from rossmann_embed.tabular.spatial import GeographyScore, spatial_score

STORE_ATTRIBUTES = ("State", "StoreType", "Assortment")
FACTOR_COMPONENTS = 3
FACTOR_ROWS = 15


# --- tables ------------------------------------------------------------------------------------


def _require(frame: pl.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError.at(source, f"columns {list(columns)}", column=missing[0])


def state_names() -> pl.DataFrame:
    """State code (``value``) and German ``name``."""
    return german_states().select(value="code", name="name")


def store_labels(stores: pl.DataFrame) -> pl.DataFrame:
    """Store id (as the table's ``value`` text) with State, StateName, StoreType, Assortment."""
    _require(stores, ["Store", *STORE_ATTRIBUTES], "stores frame")
    names = state_names().select(State="value", StateName="name")
    return (
        stores.select("Store", *STORE_ATTRIBUTES)
        .unique("Store", keep="first", maintain_order=True)
        .join(names, on="State", how="left", maintain_order="left")
        .select(pl.col("Store").cast(pl.String).alias("value"), "State", "StateName",
                "StoreType", "Assortment")
    )  # fmt: skip


def build_tables(
    vocabularies: Mapping[str, Sequence[Any]],
    weights: Mapping[str, np.ndarray],
    stores: pl.DataFrame | None = None,
) -> dict[str, pl.DataFrame]:
    """A labelled table per embedding; Store and State get their attributes and names."""
    missing = [c for c in weights if c not in vocabularies]
    if missing:
        raise ValueError(f"embedding {missing[0]!r} has no vocabulary")
    tables = {c: embedding_table(c, vocabularies[c], w) for c, w in weights.items()}
    if "Store" in tables and stores is not None:
        tables["Store"] = with_labels(tables["Store"], store_labels(stores))
    if "State" in tables:
        tables["State"] = with_labels(tables["State"], state_names())
    return tables


def _display(code: pl.Expr, name: pl.Expr) -> pl.Expr:
    """'BY Bayern', or just the code when the name is unknown."""
    return pl.when(name.is_null()).then(code).otherwise(pl.concat_str(code, pl.lit(" "), name))


# --- projections and figures -------------------------------------------------------------------


def _state_figures(proj: pl.DataFrame, axes: dict[str, tuple], figures: Path) -> list[Path]:
    label = pl.coalesce("name", "value").alias("label")
    paths = []
    for m in ("pca", "tsne"):
        points = proj.select(label, x=f"{m}_x", y=f"{m}_y")
        paths.append(plot_labelled_map(
            points, f"State embeddings ({METHOD_NAMES[m]})", figures / f"state_{m}.png", *axes[m],
            equal_aspect=m == "pca",
        ))  # fmt: skip
    return paths


def _store_figures(proj: pl.DataFrame, axes: dict[str, tuple], figures: Path) -> list[Path]:
    group = _display(pl.col("State"), pl.col("StateName")).alias("group")
    n = proj.height
    paths = []
    for m in ("pca", "tsne"):
        points = proj.select(group, x=f"{m}_x", y=f"{m}_y")
        paths.append(plot_points_by_group(
            points, f"{n} store embeddings by state ({METHOD_NAMES[m]})",
            figures / f"store_{m}.png", *axes[m], group_title="State", equal_aspect=m == "pca",
        ))  # fmt: skip
    return paths


def _store_factors(store: pl.DataFrame, factors: Path, figures: Path) -> tuple[list[Path], list]:
    """Factor tables of the store embeddings and the component 2-vs-3 scatter."""
    known = known_rows(store)
    vectors = vectors_of(known)
    attributes = known.select(pl.col("value").alias("Store"), *STORE_ATTRIBUTES)
    scores, explained = principal_components(vectors, FACTOR_COMPONENTS)
    tables = factor_tables(attributes, vectors, FACTOR_COMPONENTS, FACTOR_ROWS)
    paths = write_factor_tables(tables, factors, explained=explained, what="stores")
    if scores.shape[1] >= 3:
        frame = known.select(
            group=_display(pl.col("State"), pl.col("StateName")),
            label=pl.concat_str(pl.lit("Store "), pl.col("value")),
        ).with_columns(pc2=scores[:, 1], pc3=scores[:, 2])
        paths.append(plot_factor_scatter(
            frame, figures / "store_pc2_pc3.png",
            title="Store embeddings: principal components 2 and 3",
            xlabel=component_title(2, explained[1]), ylabel=component_title(3, explained[2]),
            group_title="State",
        ))  # fmt: skip
    return paths, [float(e) for e in explained]


# --- geography ---------------------------------------------------------------------------------


def _reference_points(codes: list[str], reference: pl.DataFrame) -> np.ndarray:
    _require(reference, ["State", "x", "y"], "reference positions")
    ordered = pl.DataFrame({"State": codes}).join(
        reference, on="State", how="left", maintain_order="left"
    )
    missing = ordered.filter(pl.col("x").is_null() | pl.col("y").is_null())
    if missing.height:
        raise InputError.at(
            "reference positions", "x and y for every state", column="State",
            value=missing["State"][0],
        )  # fmt: skip
    return ordered.select("x", "y").to_numpy().astype(np.float64)


def score_states(
    state: pl.DataFrame,
    reference: pl.DataFrame | None = None,
    seed: int = 0,
    permutations: int = 9999,
) -> GeographyScore:
    """Geography score of the state table's known rows: against German capitals (lat/lon,
    great-circle km) or, if given, ``reference`` positions (State, x, y; Euclidean)."""
    known = known_rows(state)
    codes = known["value"].to_list()
    vectors = vectors_of(known)
    if reference is None:
        lat, lon = german_state_coordinates(codes)
        return geography_score(vectors, codes, lat, lon, seed=seed, permutations=permutations)
    points = _reference_points(codes, reference)
    return spatial_score(vectors, codes, points, permutations=permutations, seed=seed)


def _geography(
    state: pl.DataFrame, reference: pl.DataFrame | None, out_dir: Path, seed: int,
    permutations: int,
) -> tuple[dict[str, Any], list[Path]]:  # fmt: skip
    score = score_states(state, reference, seed, permutations)
    result = {
        **score.to_json_dict(),
        "permutations": permutations,
        "map": "German state capitals, great-circle km" if reference is None else "reference",
    }
    path_json = write_text(out_dir / "geography.json", json.dumps(result, indent=2) + "\n")
    names = known_rows(state).select(pl.coalesce("name", "value").alias("label"))
    points = score.points_frame().with_columns(names["label"])
    km = reference is None
    path_png = plot_geography_alignment(
        points, out_dir / "figures" / "geography_alignment.png",
        "State embeddings aligned onto the map (orthogonal Procrustes)",
        score=result, xlabel="km east" if km else "x", ylabel="km north" if km else "y",
    )  # fmt: skip
    return result, [path_json, path_png]


# --- projector ---------------------------------------------------------------------------------


# --- everything --------------------------------------------------------------------------------


def write_maps(
    vocabularies: Mapping[str, Sequence[Any]],
    weights: Mapping[str, np.ndarray],
    stores: pl.DataFrame,
    out_dir: Path,
    seed: int = 0,
    *,
    reference: pl.DataFrame | None = None,
    permutations: int = 9999,
) -> dict[str, Any]:
    """Write every table, projection, factor table, figure, the geography score and the
    projector files of a run's embeddings under ``out_dir`` (layout in the module docstring).

    ``vocabularies[c][i]`` labels row ``i + 1`` of ``weights[c]``. ``stores`` has Store, State,
    StoreType, Assortment. ``reference`` (State, x, y) replaces the German capitals as the map
    the state embeddings are scored against (synthetic data with planted positions).
    Returns a summary: files written (relative to ``out_dir``), geography score, explained
    variance of the store components, seconds taken.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    figures = out_dir / "figures"
    tables = build_tables(vocabularies, weights, stores)
    paths = export_tables(tables, out_dir / "tables")
    summary: dict[str, Any] = {"out_dir": str(out_dir)}
    if "State" in tables:
        proj, axes = projections(tables["State"], seed)
        paths.append(write_text(out_dir / "projections" / "State.csv", proj.write_csv()))
        paths += _state_figures(proj, axes, figures)
        summary["geography"], written = _geography(
            tables["State"], reference, out_dir, seed, permutations
        )
        paths += written
    if "Store" in tables:
        proj, axes = projections(tables["Store"], seed)
        paths.append(write_text(out_dir / "projections" / "Store.csv", proj.write_csv()))
        paths += _store_figures(proj, axes, figures)
        written, summary["explained_variance"] = _store_factors(
            tables["Store"], out_dir / "factors", figures
        )
        paths += written
    paths += write_projector_files(tables, out_dir / "projector")
    summary["files"] = sorted(str(p.relative_to(out_dir)) for p in paths)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


__all__ = ["build_tables", "score_states", "state_names", "store_labels", "write_maps",
           "write_run_maps"]


# --- a trained run -----------------------------------------------------------------------------


def write_run_maps(run: Any, stores: pl.DataFrame, out_dir: Path, *, member: int = 0,
                   reference: pl.DataFrame | None = None, seed: int = 0) -> dict[str, Any]:
    """``write_maps`` for one member of a run (``inference.Run``); with several members,
    geography.json also gets every member's score and their mean and spread."""
    vocabularies = run.preprocessor.vocabularies
    summary = write_maps(vocabularies, run_weights(run.models[member]), stores, out_dir, seed,
                         reference=reference)
    if len(run.models) > 1 and "geography" in summary:
        scores = [
            score_states(build_tables(vocabularies, run_weights(m), stores)["State"],
                         reference, seed).to_json_dict()
            for m in run.models
        ]
        keys = [k for k in scores[0] if k != "n_states"]
        summary["geography"]["member"] = member
        summary["geography"]["members"] = scores
        summary["geography"]["members_mean"] = {k: float(np.mean([s[k] for s in scores]))
                                                for k in keys}
        summary["geography"]["members_std"] = {k: float(np.std([s[k] for s in scores]))
                                               for k in keys}
        write_text(Path(out_dir) / "geography.json",
                   json.dumps(summary["geography"], indent=2) + "\n")
    return summary
