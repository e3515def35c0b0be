"""Embedding export, projections, factor tables, projector files and the maps of a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rossmann_embed.rossmann.maps import write_maps
from rossmann_embed.rossmann.states import german_state_coordinates
from rossmann_embed.tabular.embedding_tables import (
    UNKNOWN_LABEL,
    embedding_table,
    export_tables,
    factor_tables,
    known_rows,
    markdown_table,
    principal_components,
    project,
    tsne_perplexity,
    vectors_of,
    write_projector,
)
from rossmann_embed.tabular.spatial import map_coordinates

STATES = ["BW", "BY", "BE", "HB,NI", "HE", "HH", "NW", "RP", "SH", "SN", "ST", "TH"]


# --- planted data ------------------------------------------------------------------------------


def planted_run(
    seed: int = 0, n_stores: int = 120, dim: int = 8, geography: bool = True,
    german: bool = False,
) -> dict:
    """Embeddings of a run whose state and store vectors are a random linear image of planted
    2-D positions plus small noise (or, with ``geography=False``, unrelated random vectors);
    ``german``: the positions are the state capitals' (in units of 500 km)."""
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, 1, size=(len(STATES), 2))
    if german:
        positions = map_coordinates(*german_state_coordinates(STATES)) / 500.0
    lift = rng.normal(size=(2, dim))
    store_state = np.arange(n_stores) % len(STATES)
    store_positions = positions[store_state] + rng.normal(0, 0.03, size=(n_stores, 2))

    def embed(points: np.ndarray) -> np.ndarray:
        if not geography:
            return rng.normal(size=(len(points), dim))
        return points @ lift + rng.normal(0, 0.02, size=(len(points), dim))

    stores = pl.DataFrame(
        {
            "Store": np.arange(1, n_stores + 1),
            "State": [STATES[i] for i in store_state],
            "StoreType": rng.choice(list("abcd"), n_stores).tolist(),
            "Assortment": rng.choice(list("abc"), n_stores).tolist(),
        }
    )
    unknown = rng.normal(size=(1, dim))
    vocabularies = {
        "Store": list(range(1, n_stores + 1)),
        "State": STATES,
        "DayOfWeek": list(range(1, 8)),
        "Month": list(range(1, 13)),
        "StoreType": list("abcd"),
    }
    weights = {
        "Store": np.vstack([unknown, embed(store_positions)]),
        "State": np.vstack([unknown, embed(positions)]),
        "DayOfWeek": rng.normal(size=(8, 4)),
        "Month": rng.normal(size=(13, 6)),
        "StoreType": rng.normal(size=(5, 3)),
    }
    reference = pl.DataFrame({"State": STATES, "x": positions[:, 0], "y": positions[:, 1]})
    return {"vocabularies": vocabularies, "weights": weights, "stores": stores,
            "reference": reference}  # fmt: skip


# --- tables and exports ------------------------------------------------------------------------


def test_embedding_table_labels_rows_in_matrix_order():
    weights = np.arange(12, dtype=float).reshape(4, 3)
    table = embedding_table("StoreType", ["a", "b", "c"], weights)
    assert table.columns == ["value", "index", "dim_0", "dim_1", "dim_2"]
    assert table["value"].to_list() == [UNKNOWN_LABEL, "a", "b", "c"]
    assert table["index"].to_list() == [0, 1, 2, 3]
    np.testing.assert_array_equal(vectors_of(table), weights)
    assert known_rows(table)["value"].to_list() == ["a", "b", "c"]


def test_embedding_table_rejects_wrong_row_count():
    with pytest.raises(ValueError, match="expected a matrix with 4 rows"):
        embedding_table("StoreType", ["a", "b", "c"], np.zeros((3, 2)))


def test_export_round_trip_parquet_equals_csv(tmp_path: Path):
    rng = np.random.default_rng(1)
    tables = {
        "State": embedding_table("State", STATES, rng.normal(size=(13, 5))),
        "DayOfWeek": embedding_table("DayOfWeek", list(range(1, 8)), rng.normal(size=(8, 4))),
    }
    paths = export_tables(tables, tmp_path)
    assert sorted(p.name for p in paths) == [
        "DayOfWeek.csv", "DayOfWeek.parquet", "State.csv", "State.parquet",
    ]  # fmt: skip
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    for name, table in tables.items():
        parquet = pl.read_parquet(tmp_path / f"{name}.parquet")
        csv = pl.read_csv(tmp_path / f"{name}.csv", schema=table.schema)
        assert parquet.equals(table)
        np.testing.assert_allclose(vectors_of(csv), vectors_of(table), rtol=1e-12)
        assert csv["value"].to_list() == table["value"].to_list()
    assert '"HB,NI"' in (tmp_path / "State.csv").read_text()  # comma in a label is quoted


# --- projections and factors -------------------------------------------------------------------


def test_tsne_works_with_12_points():
    vectors = np.random.default_rng(2).normal(size=(12, 6))
    assert tsne_perplexity(12) < 12
    first = project(vectors, "tsne", seed=3)
    assert first.shape == (12, 2) and np.isfinite(first).all()
    np.testing.assert_allclose(project(vectors, "tsne", seed=3), first)  # seeded


def test_pca_projection_and_small_inputs():
    vectors = np.random.default_rng(4).normal(size=(10, 1))
    assert project(vectors, "pca").shape == (10, 2)  # 1-D vectors are padded
    with pytest.raises(ValueError, match="at least 3 points"):
        project(vectors[:2], "tsne")
    with pytest.raises(ValueError, match="unknown projection"):
        project(vectors, "umap")  # type: ignore[arg-type]


def test_factor_tables_hold_the_extremes():
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(100, 8))
    attributes = pl.DataFrame({"Store": np.arange(100), "State": rng.choice(STATES, 100)})
    tables = factor_tables(attributes, vectors, k=3, n=15)
    scores, explained = principal_components(vectors, 3)
    assert sorted(tables) == [1, 2, 3] and explained.shape == (3,)
    for j, table in tables.items():
        assert table.columns == ["end", "rank", "score", "Store", "State"]
        top, bottom = table.filter(end="top"), table.filter(end="bottom")
        assert top.height == bottom.height == 15
        expected = np.sort(scores[:, j - 1])
        np.testing.assert_allclose(top["score"], expected[::-1][:15])
        np.testing.assert_allclose(bottom["score"], expected[:15])
        # each row's attributes belong to that row's score
        np.testing.assert_allclose(table["score"], scores[table["Store"].to_numpy(), j - 1])


def test_markdown_table_escapes_and_rounds():
    text = markdown_table(pl.DataFrame({"a": ["x|y"], "b": [1.23456]}))
    assert text.splitlines() == ["| a | b |", "|:---|---:|", "| x\\|y | 1.235 |"]


# --- projector ---------------------------------------------------------------------------------


def test_projector_files_are_consistent(tmp_path: Path):
    rng = np.random.default_rng(6)
    state = known_rows(embedding_table("State", STATES, rng.normal(size=(13, 4))))
    day = known_rows(embedding_table("DayOfWeek", list(range(1, 8)), rng.normal(size=(8, 3))))
    meta = {"State": state.select(State="value", name=pl.lit("x, y"))}
    write_projector(tmp_path, {"State": state, "DayOfWeek": day}, meta)

    config = (tmp_path / "projector_config.pbtxt").read_text()
    assert config.count("embeddings {") == 2
    assert 'tensor_path: "State_vectors.tsv"' in config
    assert 'metadata_path: "DayOfWeek_metadata.tsv"' in config
    state_vectors = np.loadtxt(tmp_path / "State_vectors.tsv", delimiter="\t")
    assert state_vectors.shape == (12, 4)
    np.testing.assert_allclose(state_vectors, vectors_of(state), rtol=1e-5)
    state_meta = (tmp_path / "State_metadata.tsv").read_text().splitlines()
    assert state_meta[0] == "State\tname" and len(state_meta) == 13  # header: several columns
    assert state_meta[4] == "HB,NI\tx, y"
    day_meta = (tmp_path / "DayOfWeek_metadata.tsv").read_text().splitlines()
    assert day_meta == [str(d) for d in range(1, 8)]  # one column: no header


def test_projector_rejects_misaligned_metadata(tmp_path: Path):
    table = known_rows(embedding_table("State", STATES, np.zeros((13, 2))))
    with pytest.raises(ValueError, match="12 vectors but 3 metadata rows"):
        write_projector(tmp_path, {"State": table}, {"State": table.head(3).select("value")})


# --- the maps of a run -------------------------------------------------------------------------

EXPECTED_FILES = {
    "geography.json",
    *(f"tables/{c}.{ext}" for c in ["Store", "State", "DayOfWeek", "Month", "StoreType"]
      for ext in ["parquet", "csv"]),
    "projections/Store.csv",
    "projections/State.csv",
    *(f"factors/factors_pc{j}.{ext}" for j in (1, 2, 3) for ext in ["csv", "md"]),
    *(f"figures/{f}.png" for f in ["state_pca", "state_tsne", "store_pca", "store_tsne",
                                    "store_pca_by_type", "store_tsne_by_type",
                                    "store_pc2_pc3", "geography_alignment"]),
    *(f"projector/{c}_{kind}.tsv" for c in ["Store", "State", "DayOfWeek", "Month", "StoreType"]
      for kind in ["vectors", "metadata"]),
    "projector/projector_config.pbtxt",
}  # fmt: skip


@pytest.fixture(scope="module")
def planted_maps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("maps")
    run = planted_run(seed=0)
    summary = write_maps(
        run["vocabularies"], [run["weights"]], run["stores"], out, seed=0,
        reference=run["reference"], permutations=999,
    )  # fmt: skip
    return out, summary


def test_write_maps_finds_planted_geography(planted_maps: tuple[Path, dict]):
    out, summary = planted_maps
    score = json.loads((out / "geography.json").read_text())
    assert score["mantel_r"] > 0.8
    assert score["mantel_p"] < 0.01
    assert score["procrustes_residual"] < 0.15
    assert score["n_states"] == 12
    assert summary["geography"] == score


def test_write_maps_writes_every_expected_file(planted_maps: tuple[Path, dict]):
    out, summary = planted_maps
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == EXPECTED_FILES  # nothing missing, no temporary files left
    assert set(summary["files"]) == EXPECTED_FILES
    for png in out.glob("figures/*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_maps_labels_tables(planted_maps: tuple[Path, dict]):
    out, _ = planted_maps
    store = pl.read_parquet(out / "tables" / "Store.parquet")
    assert store.columns[:6] == ["value", "index", "State", "StateName", "StoreType", "Assortment"]
    assert store.height == 121 and store["value"][0] == UNKNOWN_LABEL
    assert store.filter(value="12")["State"].item() == "TH"  # store 12 -> state index 11
    state = pl.read_csv(out / "tables" / "State.csv")
    assert state.filter(value="BY")["name"].item() == "Bayern"
    assert state.filter(value="HB,NI").height == 1
    factors = pl.read_csv(out / "factors" / "factors_pc1.csv")
    assert factors.height == 30
    assert factors.columns == ["end", "rank", "score", "Store", "State", "StoreType", "Assortment"]
    assert (out / "factors" / "factors_pc1.md").read_text().startswith("# Principal component 1")
    config = (out / "projector" / "projector_config.pbtxt").read_text()
    assert config.count("embeddings {") == 5
    meta = (out / "projector" / "Store_metadata.tsv").read_text().splitlines()
    assert len(meta) == 121 and meta[0].startswith("Store\tState")  # header + 120 stores


def test_unrelated_vectors_score_low(tmp_path: Path):
    run = planted_run(seed=1, geography=False)
    summary = write_maps(
        run["vocabularies"], [{"State": run["weights"]["State"]}], run["stores"], tmp_path,
        reference=run["reference"], permutations=999,
    )  # fmt: skip
    score = summary["geography"]
    assert score["mantel_r"] < 0.4
    assert score["mantel_p"] > 0.05
    assert score["procrustes_residual"] > 0.3


def test_an_ensemble_is_scored_on_the_german_map_member_by_member(tmp_path: Path):
    runs = [planted_run(seed=s, german=True) for s in (0, 1, 2)]
    summary = write_maps(runs[0]["vocabularies"], [r["weights"] for r in runs],
                         runs[0]["stores"], tmp_path, seeds=[7, 8, 9], shown=1,
                         permutations=999)
    geography = json.loads((tmp_path / "geography.json").read_text())
    assert summary["geography"] == geography
    assert geography["map"].startswith("German state capitals")
    assert [m["seed"] for m in geography["members"]] == [7, 8, 9]
    assert all(m["mantel_r"] > 0.7 and m["mantel_p"] < 0.01 for m in geography["members"])
    # The ensemble (members side by side) at the top; the members' mean beside it.
    assert geography["mantel_r"] > 0.8 and geography["mantel_p"] < 0.01
    assert geography["scored"] == "the 3 members' embeddings side by side"
    assert geography["members_mean"]["mantel_r"] == pytest.approx(
        np.mean([m["mantel_r"] for m in geography["members"]]))
    assert geography["member_shown"] == 1
    stores = geography["stores"]  # each store sits near its capital: both tests find it
    assert stores["n_stores"] == 120 and stores["n_states"] == 12
    assert stores["state_anosim_p"] < 0.01 and stores["mantel_r"] > 0.5
    assert stores["mantel_p"] < 0.01
    assert (tmp_path / "figures" / "geography_map.png").read_bytes()[:4] == b"\x89PNG"
    # Tables are the shown member's.
    shown = pl.read_parquet(tmp_path / "tables" / "State.parquet")
    np.testing.assert_allclose(vectors_of(shown), runs[1]["weights"]["State"])


def test_unrelated_store_vectors_do_not_group_by_state(tmp_path: Path):
    run = planted_run(seed=3, geography=False, german=True)
    stores = write_maps(run["vocabularies"], [run["weights"]], run["stores"], tmp_path,
                        permutations=99)["geography"]["stores"]
    assert stores["state_anosim_p"] > 0.05 and stores["mantel_p"] > 0.05
