"""German state facts and the geography score (Mantel test, Procrustes alignment)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rossmann_embed.rossmann.geography import geography_score
from rossmann_embed.rossmann.states import (
    german_state_coordinates,
    german_state_former_east,
    german_states,
)
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.spatial import (
    ensemble_vectors,
    euclidean_distances,
    geographic_distances,
    group_test,
    grouped_points_score,
    mantel_test,
    map_coordinates,
    map_degrees,
    pca_2d,
    procrustes_align,
    spatial_score,
)

CODES = ["BW", "BY", "BE", "HB,NI", "HE", "HH", "NW", "RP", "SH", "SN", "ST", "TH"]


def _random_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q


# --- facts -------------------------------------------------------------------------------------


def test_states_table_has_the_12_rossmann_codes():
    states = german_states()
    assert states.height == 12
    assert sorted(states["code"].to_list()) == sorted(CODES)
    assert states.columns == ["code", "name", "capital", "latitude", "longitude", "weather_file",
                              "former_east"]
    assert states.drop("former_east").null_count().sum_horizontal().item() == 0


def test_coordinates_are_plausible():
    states = german_states()
    assert states["latitude"].is_between(47.2, 55.1).all()
    assert states["longitude"].is_between(5.8, 15.1).all()
    lat, lon = german_state_coordinates(["BE", "HH", "BY"])
    assert lon[0] > lon[1]  # Berlin east of Hamburg
    assert lat[2] < lat[1]  # Bayern south of Hamburg


def test_bremen_niedersachsen_is_one_region_with_niedersachsen_weather():
    row = german_states().filter(code="HB,NI").row(0, named=True)
    assert row["capital"] == "Hannover"
    assert row["weather_file"] == "Niedersachsen"


def test_weather_files_exist_in_reference_data():
    root = Path(os.environ.get("ROSSMANN_DATA", Path(__file__).parents[2] / "shared/data/rossmann"))
    weather = root / "external" / "weather"
    if not weather.is_dir():
        pytest.skip("reference data not available")
    for stem in german_states()["weather_file"]:
        assert (weather / f"{stem}.csv").is_file(), stem


def test_state_coordinates_follow_the_order_given_and_reject_unknown_codes():
    lat, _ = german_state_coordinates(["SH", "BY"])
    assert lat[0] > lat[1]
    with pytest.raises(InputError, match="'XX'"):
        german_state_coordinates(["BE", "XX"])


# --- distances ---------------------------------------------------------------------------------


def test_haversine_berlin_munich():
    lat, lon = german_state_coordinates(["BE", "BY"])
    d = geographic_distances(lat, lon)
    assert d[0, 1] == pytest.approx(504, abs=10)
    assert np.allclose(d, d.T) and np.allclose(np.diag(d), 0)


def test_map_coordinates_keep_distances_within_germany():
    states = german_states()
    lat, lon = states["latitude"].to_numpy(), states["longitude"].to_numpy()
    planar = euclidean_distances(map_coordinates(lat, lon))
    great_circle = geographic_distances(lat, lon)
    off_diagonal = ~np.eye(len(lat), dtype=bool)
    ratio = planar[off_diagonal] / great_circle[off_diagonal]
    assert np.all(np.abs(ratio - 1) < 0.05)


# --- Mantel ------------------------------------------------------------------------------------


def test_mantel_noisy_copy_is_strongly_correlated():
    rng = np.random.default_rng(0)
    d = euclidean_distances(rng.normal(size=(12, 2)))
    noise = rng.normal(scale=0.05, size=d.shape)
    noisy = np.abs(d + (noise + noise.T) / 2) * ~np.eye(12, dtype=bool)
    r, p = mantel_test(noisy, d, permutations=999)
    assert r > 0.95
    assert p == pytest.approx(1 / 1000)


def test_mantel_unrelated_points_are_not_significant():
    rng = np.random.default_rng(1)
    a = euclidean_distances(rng.normal(size=(12, 2)))
    b = euclidean_distances(rng.normal(size=(12, 2)))
    r, p = mantel_test(a, b, permutations=999)
    assert abs(r) < 0.3
    assert p > 0.1


def test_mantel_is_reproducible_and_validates_shapes():
    d = euclidean_distances(np.random.default_rng(2).normal(size=(8, 3)))
    e = euclidean_distances(np.random.default_rng(3).normal(size=(8, 3)))
    assert mantel_test(d, e, 99, seed=5) == mantel_test(d, e, 99, seed=5)
    with pytest.raises(ValueError, match="square"):
        mantel_test(d, d[:7, :7])


# --- Procrustes --------------------------------------------------------------------------------


def test_procrustes_recovers_a_similarity_transform():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(12, 2)) * 300
    transform = _random_orthogonal(2, rng) @ np.diag([1.0, -1.0])  # rotation + reflection
    points = 0.01 * reference @ transform + np.array([5.0, -7.0])
    aligned, residual = procrustes_align(points, reference)
    assert residual < 1e-12
    np.testing.assert_allclose(aligned, reference, atol=1e-8)


def test_procrustes_random_points_leave_a_large_residual():
    rng = np.random.default_rng(4)
    _, residual = procrustes_align(rng.normal(size=(12, 2)), rng.normal(size=(12, 2)))
    assert 0.5 < residual <= 1.0


# --- score -------------------------------------------------------------------------------------


def test_geography_score_of_an_embedding_that_encodes_the_map():
    rng = np.random.default_rng(0)
    states = german_states()
    lat, lon = states["latitude"].to_numpy(), states["longitude"].to_numpy()
    planted = np.column_stack([map_coordinates(lat, lon), np.zeros((12, 3))])
    vectors = planted @ _random_orthogonal(5, rng) / 100 + rng.normal(scale=0.1, size=(12, 5))
    score = geography_score(vectors, states["code"].to_list(), lat, lon, permutations=999)
    assert score.mantel_r > 0.9 and score.mantel_p < 0.01
    assert score.procrustes_residual < 0.05
    assert score.aligned.shape == (12, 2)
    payload = score.to_json_dict()
    assert set(payload) == {"mantel_r", "mantel_p", "procrustes_residual", "n_states",
                            "east_west_r", "east_west_p"}
    assert json.loads(json.dumps(payload))["n_states"] == 12
    frame = score.points_frame()
    assert frame.columns == ["label", "x", "y", "map_x", "map_y"]
    assert frame["label"].to_list() == states["code"].to_list()


def test_spatial_score_on_planted_planar_locations_and_random_vectors():
    rng = np.random.default_rng(1)
    locations = rng.uniform(size=(10, 2))
    labels = [f"s{i}" for i in range(10)]
    good = spatial_score(
        np.column_stack([locations, 0.01 * rng.normal(size=(10, 2))]),
        labels,
        locations,
        permutations=999,
    )
    bad = spatial_score(rng.normal(size=(10, 4)), labels, locations, permutations=999)
    assert good.mantel_r > 0.95 and good.procrustes_residual < 0.05
    assert bad.mantel_p > good.mantel_p and bad.procrustes_residual > 0.3


def test_pca_2d_pads_one_dimensional_vectors():
    projected = pca_2d(np.arange(5.0)[:, None])
    assert projected.shape == (5, 2) and np.allclose(projected[:, 1], 0)


# --- East and West -----------------------------------------------------------------------------


def test_former_east_facts():
    flags = german_state_former_east(CODES)
    assert dict(zip(CODES, flags, strict=True)) == {
        "BW": 0, "BY": 0, "BE": None, "HB,NI": 0, "HE": 0, "HH": 0, "NW": 0, "RP": 0, "SH": 0,
        "SN": 1, "ST": 1, "TH": 1,
    }


def test_group_test_finds_separated_groups_and_not_random_ones():
    rng = np.random.default_rng(0)
    groups = german_state_former_east(CODES)
    east = np.array([g == 1 for g in groups])
    apart = rng.normal(scale=0.1, size=(12, 4)) + np.where(east[:, None], 1.0, 0.0)
    r, p = group_test(apart, groups, permutations=2999)
    assert r == pytest.approx(1.0) and p < 0.02  # 165 ways to pick 3 of 11: p >= ~1/165
    r_random, p_random = group_test(rng.normal(size=(12, 4)), groups, permutations=2999)
    assert abs(r_random) < 0.5 and p_random > 0.05
    # Berlin (None) is left out: moving it anywhere changes nothing.
    moved = apart.copy()
    moved[CODES.index("BE")] = 100.0
    assert group_test(moved, groups, permutations=99) == group_test(apart, groups, 99)


# --- ensembles, grouped points, degrees --------------------------------------------------------


def test_map_degrees_inverts_map_coordinates():
    states = german_states()
    lat, lon = states["latitude"].to_numpy(), states["longitude"].to_numpy()
    back = map_degrees(map_coordinates(lat, lon), lat, lon)
    np.testing.assert_allclose(back, np.column_stack([lon, lat]), atol=1e-9)


def test_ensemble_vectors_ignore_each_members_rotation_and_scale():
    rng = np.random.default_rng(4)
    points = rng.normal(size=(12, 5))
    rotated = [points @ _random_orthogonal(5, rng) * scale + shift
               for scale, shift in [(1.0, 0.0), (30.0, 5.0), (0.01, -2.0)]]
    distances = euclidean_distances(ensemble_vectors(rotated))
    # Each member is the same shape: side by side they keep it (up to one overall scale).
    expected = euclidean_distances(points)
    np.testing.assert_allclose(distances / distances.max(), expected / expected.max(), atol=1e-9)


def test_grouped_points_score_finds_stores_that_sit_with_their_state():
    rng = np.random.default_rng(5)
    lat, lon = german_state_coordinates(CODES)
    places = map_coordinates(lat, lon)
    groups = np.repeat(np.arange(12), 15)  # 15 stores a state
    group_distances = geographic_distances(lat[groups], lon[groups])
    near = places[groups] @ rng.normal(size=(2, 6)) + rng.normal(0, 20.0, size=(180, 6))
    score = grouped_points_score(near, [CODES[g] for g in groups], group_distances, 199)
    assert score["group_r"] > 0.5 and score["group_p"] < 0.01
    assert score["mantel_r"] > 0.8 and score["mantel_p"] < 0.01
    assert (score["n_points"], score["n_groups"]) == (180, 12)
    random = grouped_points_score(rng.normal(size=(180, 6)), [CODES[g] for g in groups],
                                  group_distances, 199)
    assert random["group_p"] > 0.05 and random["mantel_p"] > 0.05
