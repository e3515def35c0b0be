"""What the Rossmann network learned: labelled embedding tables, maps, factors, geography.

``write_maps`` turns the embedding matrices of a trained run into files a person can read.
Layout of ``out_dir`` (every file written atomically)::

    geography.json              the State embedding against the map: mantel_r, mantel_p,
                                procrustes_residual, east_west_r/p of the ensemble (the
                                members side by side) at the top, ``members`` (seed,
                                mantel_r, mantel_p, ...) and their mean and sd; ``stores``:
                                ANOSIM of store embeddings by state and a Mantel test
                                against the distances of their states' capitals
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
    figures/store_pca_by_type.png   ... and by StoreType
    figures/store_tsne_by_type.png
    figures/store_pc2_pc3.png   component 2 against 3, extreme stores labelled
    figures/geography_alignment.png   Procrustes-aligned state embedding over the real map
    figures/geography_map.png   the same as a map: longitude, latitude, names at both ends
                                (German capitals only, not for a ``reference`` map)
    projector/<Column>_vectors.tsv, <Column>_metadata.tsv, projector_config.pbtxt
                                TensorBoard projector (``tensorboard --logdir out_dir/projector``)

Store and State files are written when those columns have embeddings; tables and projector
files are written for every embedding.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rossmann_embed.rossmann.geography import geography_score
from rossmann_embed.rossmann.states import german_state_coordinates, german_states
from rossmann_embed.tabular.embedding_tables import (
    embedding_table,
    export_tables,
    factor_tables,
    known_rows,
    principal_components,
    vectors_of,
    write_factor_tables,
)
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.files import write_csv, write_json
from rossmann_embed.tabular.plots import (
    plot_factor_scatter,
    plot_geography_alignment,
    plot_geography_map,
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
from rossmann_embed.tabular.spatial import (
    GeographyScore,
    ensemble_vectors,
    euclidean_distances,
    geographic_distances,
    grouped_points_score,
    map_degrees,
    spatial_score,
)
from rossmann_embed.tabular.tables import require_columns

STORE_ATTRIBUTES = ("State", "StoreType", "Assortment")
FACTOR_COMPONENTS = 3
FACTOR_ROWS = 15
# 1,115 stores: 621k pairs a permutation; p can reach 0.001, well below the 0.01 one asks for.
STORE_PERMUTATIONS = 999
MIN_POINTS = 3


# --- tables ------------------------------------------------------------------------------------


def state_names() -> pl.DataFrame:
    """State code (``value``) and German ``name``."""
    return german_states().select(value="code", name="name")


def store_labels(stores: pl.DataFrame) -> pl.DataFrame:
    """Store id (as the table's ``value`` text) with State, StateName, StoreType, Assortment."""
    require_columns(stores, ["Store", *STORE_ATTRIBUTES], "stores frame", "store.csv's columns")
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
            points, f"State embeddings ({METHOD_NAMES[m]})", figures / f"state_{m}.png", axes[m],
            equal_aspect=m == "pca",
        ))  # fmt: skip
    return paths


def _store_figures(proj: pl.DataFrame, axes: dict[str, tuple], figures: Path) -> list[Path]:
    """Store maps coloured by state (store_<method>.png) and by StoreType (…_by_type.png)."""
    groups = {"": ("State", _display(pl.col("State"), pl.col("StateName"))),
              "_by_type": ("StoreType", pl.col("StoreType"))}
    n = proj.height
    paths = []
    for suffix, (title, group) in groups.items():
        for m in ("pca", "tsne"):
            points = proj.select(group.alias("group"), x=f"{m}_x", y=f"{m}_y")
            paths.append(plot_points_by_group(
                points, f"{n} store embeddings by {title} ({METHOD_NAMES[m]})",
                figures / f"store_{m}{suffix}.png", axes[m], group_title=title,
                equal_aspect=m == "pca",
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
    require_columns(reference, ["State", "x", "y"], "reference positions",
                    "a position per state")
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


def score_state_vectors(
    codes: list[str], vectors: np.ndarray, reference: pl.DataFrame | None = None,
    seed: int = 0, permutations: int = 9999,
) -> GeographyScore:  # fmt: skip
    """Geography score of state vectors: against German capitals (lat/lon, great-circle km)
    or, if given, ``reference`` positions (State, x, y; Euclidean)."""
    if reference is None:
        lat, lon = german_state_coordinates(codes)
        return geography_score(vectors, codes, lat, lon, seed=seed, permutations=permutations)
    points = _reference_points(codes, reference)
    return spatial_score(vectors, codes, points, permutations=permutations, seed=seed)


def score_states(
    state: pl.DataFrame,
    reference: pl.DataFrame | None = None,
    seed: int = 0,
    permutations: int = 9999,
) -> GeographyScore:
    """``score_state_vectors`` of a labelled State table's known rows."""
    known = known_rows(state)
    return score_state_vectors(known["value"].to_list(), vectors_of(known), reference, seed,
                               permutations)


def _state_distances(codes: list[str], reference: pl.DataFrame | None) -> np.ndarray:
    """Distances between the places of ``codes`` (repeats allowed): capitals' great-circle km,
    or Euclidean between ``reference`` positions."""
    if reference is None:
        return geographic_distances(*german_state_coordinates(codes))
    return euclidean_distances(_reference_points(codes, reference))


def score_stores(
    stores: Sequence[pl.DataFrame], reference: pl.DataFrame | None = None, seed: int = 0,
    permutations: int = STORE_PERMUTATIONS,
) -> dict[str, Any]:  # fmt: skip
    """Do a state's stores lie together in the store embedding (ANOSIM by state), and do
    store distances follow the distances of their states' capitals (Mantel)? Scored on the
    members' store embeddings side by side (``ensemble_vectors``)."""
    known = [known_rows(t).filter(pl.col("State").is_not_null()) for t in stores]
    states = known[0]["State"].to_list()
    vectors = ensemble_vectors([vectors_of(k) for k in known])
    score = grouped_points_score(vectors, states, _state_distances(states, reference),
                                 permutations, seed)
    return {"state_anosim_r": score["group_r"], "state_anosim_p": score["group_p"],
            "mantel_r": score["mantel_r"], "mantel_p": score["mantel_p"],
            "n_stores": score["n_points"], "n_states": score["n_groups"],
            "permutations": permutations}


def _several_states(store: pl.DataFrame) -> bool:
    """Whether the stores' test is defined: 3 stores or more, in 2 states or more."""
    known = known_rows(store).filter(pl.col("State").is_not_null())
    return known.height >= MIN_POINTS and known.get_column("State").n_unique() >= 2


def geography_report(
    states: Sequence[pl.DataFrame], seeds: Sequence[int], reference: pl.DataFrame | None = None,
    seed: int = 0, permutations: int = 9999,
) -> tuple[dict[str, Any], GeographyScore]:  # fmt: skip
    """Each member's State embedding scored against the map, and the ensemble's: the members'
    embeddings side by side (``ensemble_vectors``; a single member is its own ensemble)."""
    known = [known_rows(t) for t in states]
    codes = known[0]["value"].to_list()
    members = [score_state_vectors(codes, vectors_of(k), reference, seed, permutations)
               for k in known]
    ensemble = members[0] if len(known) == 1 else score_state_vectors(
        codes, ensemble_vectors([vectors_of(k) for k in known]), reference, seed, permutations)
    scores = [m.to_json_dict() for m in members]
    keys = [k for k in scores[0] if k != "n_states"]
    result = {
        **ensemble.to_json_dict(),
        "scored": "the only member" if len(known) == 1 else
                  f"the {len(known)} members' embeddings side by side",
        "permutations": permutations,
        "map": "German state capitals, great-circle km" if reference is None else "reference",
        "members": [{"seed": s, **score} for s, score in zip(seeds, scores, strict=True)],
        "members_mean": {k: float(np.mean([s[k] for s in scores])) for k in keys},
        "members_sd": {k: float(np.std([s[k] for s in scores], ddof=1)) if len(scores) > 1
                       else None for k in keys},  # the sample sd, as geography-study's
    }  # fmt: skip
    return result, ensemble


def _geography_figures(
    score: GeographyScore, result: dict[str, Any], labels: pl.Series, km: bool, figures: Path
) -> list[Path]:  # fmt: skip
    points = score.points_frame().with_columns(labels.alias("label"))
    paths = [plot_geography_alignment(
        points, figures / "geography_alignment.png",
        "State embeddings aligned onto the map (orthogonal Procrustes)",
        score=result, xlabel="km east" if km else "x", ylabel="km north" if km else "y",
    )]  # fmt: skip
    if km:  # the German map: back to degrees, drawn as a map
        lat, lon = german_state_coordinates(list(score.labels))
        aligned, capitals = map_degrees(score.aligned, lat, lon), np.column_stack([lon, lat])
        degrees = points.with_columns(x=aligned[:, 0], y=aligned[:, 1], map_x=capitals[:, 0],
                                      map_y=capitals[:, 1])
        paths.append(plot_geography_map(
            degrees, figures / "geography_map.png",
            "Where the network puts the states (embedding aligned by Procrustes)", score=result,
        ))  # fmt: skip
    return paths


# --- projector ---------------------------------------------------------------------------------


# --- everything --------------------------------------------------------------------------------


def write_maps(
    vocabularies: Mapping[str, Sequence[Any]],
    members: Sequence[Mapping[str, np.ndarray]],
    stores: pl.DataFrame,
    out_dir: Path,
    seed: int = 0,
    *,
    seeds: Sequence[int] | None = None,
    shown: int = 0,
    reference: pl.DataFrame | None = None,
    permutations: int = 9999,
) -> dict[str, Any]:
    """Write every table, projection, factor table, figure, the geography scores and the
    projector files of a run's embeddings under ``out_dir`` (layout in the module docstring).

    ``members`` holds each member's embedding matrices (``run_weights``), ``seeds`` their
    seeds (default 0, 1, ...); tables, projections and factors are of member ``shown``, the
    geography scores of every member and of the ensemble. ``vocabularies[c][i]`` labels row
    ``i + 1`` of each matrix. ``stores`` has Store, State, StoreType, Assortment.
    ``reference`` (State, x, y) replaces the German capitals as the map the state embeddings
    are scored against (synthetic data with planted positions). Returns a summary: files
    written (relative to ``out_dir``), geography, explained variance of the store components,
    seconds taken.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    figures = out_dir / "figures"
    member_tables = [build_tables(vocabularies, w, stores) for w in members]
    tables = member_tables[shown]
    paths = export_tables(tables, out_dir / "tables")
    summary: dict[str, Any] = {"out_dir": str(out_dir), "skipped": {}}
    for column in ("State", "Store"):  # t-SNE, a Mantel test and factor ends need 3 points
        if column in tables and known_rows(tables[column]).height < MIN_POINTS:
            summary["skipped"][column] = (f"{known_rows(tables[column]).height} known values: "
                                          f"maps and scores need {MIN_POINTS}")
    if "State" in tables and "State" not in summary["skipped"]:
        proj, axes = projections(tables["State"], seed)
        paths.append(write_csv(proj, out_dir / "projections" / "State.csv"))
        paths += _state_figures(proj, axes, figures)
        geography, ensemble = geography_report(
            [t["State"] for t in member_tables], seeds or range(len(members)), reference,
            seed, permutations)  # fmt: skip
        if "Store" in tables and _several_states(tables["Store"]):
            geography["stores"] = score_stores([t["Store"] for t in member_tables], reference,
                                               seed)
        if len(members) > 1:
            geography["member_shown"] = shown
        paths.append(write_json(out_dir / "geography.json", geography))
        names = known_rows(tables["State"]).select(pl.coalesce("name", "value"))
        paths += _geography_figures(ensemble, geography, names.to_series(), reference is None,
                                    figures)
        summary["geography"] = geography
    if "Store" in tables and "Store" not in summary["skipped"]:
        proj, axes = projections(tables["Store"], seed)
        paths.append(write_csv(proj, out_dir / "projections" / "Store.csv"))
        paths += _store_figures(proj, axes, figures)
        written, summary["explained_variance"] = _store_factors(
            tables["Store"], out_dir / "factors", figures
        )
        paths += written
    paths += write_projector_files(tables, out_dir / "projector")
    summary["files"] = sorted(str(p.relative_to(out_dir)) for p in paths)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


__all__ = ["build_tables", "geography_report", "score_state_vectors", "score_states",
           "score_stores", "state_names", "store_labels", "write_maps", "write_run_maps"]


# --- a trained run -----------------------------------------------------------------------------


def write_run_maps(run: Any, stores: pl.DataFrame, out_dir: Path, *, member: int = 0,
                   reference: pl.DataFrame | None = None, seed: int = 0) -> dict[str, Any]:
    """``write_maps`` for a run (``inference.Run``): tables of member ``member``, geography
    of every member and of the ensemble."""
    if not 0 <= member < len(run.models):
        raise InputError.at("--member", f"a member index in [0, {len(run.models)})",
                            value=member)
    seeds = [int(label.removeprefix("seed-")) if label.startswith("seed-") else i
             for i, label in enumerate(run.labels or [f"member-{i}" for i in
                                                      range(len(run.models))])]
    return write_maps(run.preprocessor.vocabularies, [run_weights(m) for m in run.models],
                      stores, out_dir, seed, seeds=seeds, shown=member, reference=reference)
