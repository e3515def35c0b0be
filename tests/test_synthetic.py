"""Synthetic Rossmann data: Kaggle's layout, consistency, determinism and a real planted signal."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rossmann_embed.rossmann.studies import synthetic
from rossmann_embed.rossmann.studies.synthetic import STATES, SyntheticInfo, write_synthetic
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.spatial import euclidean_distances, mantel_test

TEXT = {"StateHoliday": pl.String, "SchoolHoliday": pl.String}
SMALL = {"n_stores": 15, "start": "2015-01-01", "end": "2015-03-31", "test_days": 10}


@pytest.fixture(scope="module")
def info(tmp_path_factory: pytest.TempPathFactory) -> SyntheticInfo:
    return write_synthetic(tmp_path_factory.mktemp("synthetic"), seed=0)


def read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, schema_overrides=TEXT, try_parse_dates=True)


def test_files_have_kaggle_headers_and_quoting(info: SyntheticInfo) -> None:
    expected = {
        info.train: (
            '"Store","DayOfWeek","Date","Sales","Customers","Open","Promo",'
            '"StateHoliday","SchoolHoliday"',
            r'\d+,[1-7],\d{4}-\d\d-\d\d,\d+,\d+,[01],[01],"[0abc]","[01]"',
        ),
        info.test: (
            '"Id","Store","DayOfWeek","Date","Open","Promo","StateHoliday","SchoolHoliday"',
            r'\d+,\d+,[1-7],\d{4}-\d\d-\d\d,[01]?,[01],"[0abc]","[01]"',
        ),
        info.store: (
            '"Store","StoreType","Assortment","CompetitionDistance",'
            '"CompetitionOpenSinceMonth","CompetitionOpenSinceYear","Promo2",'
            '"Promo2SinceWeek","Promo2SinceYear","PromoInterval"',
            r'\d+,"[abcd]","[abc]",\d*,\d*,\d*,[01],\d*,\d*,"[A-Za-z,]*"',
        ),
        info.store_states: ("Store,State", r'\d+,([A-Z]{2}|"HB,NI")'),
        info.locations_states: ("State,x,y", r'([A-Z]{2}|"HB,NI"),[-\d.]+,[-\d.]+'),
        info.locations_stores: ("Store,State,x,y", r'\d+,([A-Z]{2}|"HB,NI"),[-\d.]+,[-\d.]+'),
    }
    for path, (header, row) in expected.items():
        lines = path.read_text().splitlines()
        assert lines[0] == header, path.name
        bad = [line for line in lines[1:] if not re.fullmatch(row, line)]
        assert not bad, f"{path.name}: {bad[:3]}"


def test_train_is_newest_first_over_the_whole_period(info: SyntheticInfo) -> None:
    train = read(info.train)
    n_days = (dt.date(2015, 7, 31) - dt.date(2013, 1, 1)).days + 1
    assert train.height == info.n_train_rows == n_days * info.n_stores
    assert train["Date"][0] == dt.date(2015, 7, 31)
    assert train["Date"][-1] == dt.date(2013, 1, 1)
    expected_order = train.sort(["Date", "Store"], descending=[True, False])
    assert train.select("Date", "Store").equals(expected_order.select("Date", "Store"))
    assert (train["DayOfWeek"] == train["Date"].dt.weekday()).all()


def test_test_ids_are_contiguous_and_follow_train(info: SyntheticInfo) -> None:
    test = read(info.test)
    assert test["Id"].to_list() == list(range(1, info.n_test_rows + 1))
    assert test["Date"].max() == dt.date(2015, 7, 31) + dt.timedelta(days=48)
    assert test["Date"].min() == dt.date(2015, 8, 1)
    assert test["Date"].is_sorted(descending=True)
    blank = test.filter(pl.col("Open").is_null())
    assert 1 <= blank.height <= 11
    assert blank["Store"].n_unique() == 1
    assert (blank["DayOfWeek"] != 7).all()


def test_every_store_is_described(info: SyntheticInfo) -> None:
    stores = set(read(info.store)["Store"])
    states = read(info.store_states)
    assert set(states["Store"]) == stores == set(range(1, info.n_stores + 1))
    assert set(read(info.train)["Store"]) == stores
    assert set(read(info.test)["Store"]) <= stores
    assert set(states["State"]) == set(STATES)  # 60 stores cover all 12 codes
    assert '"HB,NI"' in info.store_states.read_text()


def test_store_csv_has_kaggle_like_blanks(info: SyntheticInfo) -> None:
    store = read(info.store)
    no_promo2 = store.filter(pl.col("Promo2") == 0)
    promo2 = store.filter(pl.col("Promo2") == 1)
    assert no_promo2.height > 0 and promo2.height > 0
    assert no_promo2["Promo2SinceWeek"].is_null().all()
    assert no_promo2["Promo2SinceYear"].is_null().all()
    assert (no_promo2["PromoInterval"] == "").all()
    assert set(promo2["PromoInterval"]) <= set(synthetic.PROMO_INTERVALS)
    assert promo2["Promo2SinceWeek"].is_not_null().all()
    assert store["CompetitionOpenSinceYear"].null_count() > 0
    assert store["CompetitionDistance"].null_count() >= 1
    assert (store["CompetitionOpenSinceMonth"].drop_nulls().is_between(1, 12)).all()


def test_closed_days_sell_nothing(info: SyntheticInfo) -> None:
    train = read(info.train)
    closed = train.filter(pl.col("Open") == 0)
    assert (closed["Sales"] == 0).all() and (closed["Customers"] == 0).all()
    selling = train.filter(pl.col("Sales") > 0)
    assert (selling["Customers"] > 0).all()
    sunday_open = train.filter(pl.col("DayOfWeek") == 7)["Open"].mean()
    assert sunday_open < 0.1
    assert train.filter(pl.col("StateHoliday") != "0")["Open"].mean() < 0.2


def test_promo_lifts_sales_by_a_fifth_to_a_third(info: SyntheticInfo) -> None:
    means = (
        read(info.train)
        .filter(pl.col("Sales") > 0)
        .group_by("Promo")
        .agg(pl.col("Sales").log().mean())
        .sort("Promo")["Sales"]
    )
    assert 1.15 < np.exp(means[1] - means[0]) < 1.40


def test_holidays_differ_between_states(info: SyntheticInfo) -> None:
    train = read(info.train).join(read(info.store_states), on="Store")
    holidays = (
        train.filter(pl.col("StateHoliday") != "0")
        .group_by("State")
        .agg(pl.col("Date").unique().sort().alias("days"))
    )
    # Real German rules: BW/BY, ST, SN, TH, HE, NW/RP and the rest differ.
    assert holidays["days"].n_unique() >= 6


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    files = ["train.csv", "test.csv", "store.csv", "external/store_states.csv"]
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        write_synthetic(tmp_path / name, seed=seed, **SMALL)
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a/train.csv").read_bytes() != (tmp_path / "c/train.csv").read_bytes()


def geography_signal(info: SyntheticInfo) -> tuple[float, float]:
    """How much of the per-store mean log sales the hidden geography explains.

    Returns (share of variance between states, correlation of each store's mean with the
    mean of its 3 nearest stores by hidden location).
    """
    means = (
        read(info.train)
        .filter(pl.col("Sales") > 0)
        .group_by("Store")
        .agg(pl.col("Sales").log().mean().alias("level"))
    )
    stores = read(info.locations_stores).join(means, on="Store").sort("Store")
    level = stores["level"].to_numpy()
    within = stores.group_by("State").agg((pl.col("level") - pl.col("level").mean()).pow(2).sum())
    between_share = 1 - within["level"].sum() / ((level - level.mean()) ** 2).sum()

    xy = stores.select("x", "y").to_numpy()
    distance = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    neighbours = np.argsort(distance, axis=1)[:, :3]
    nearby_corr = np.corrcoef(level[neighbours].mean(axis=1), level)[0, 1]
    return float(between_share), float(nearby_corr)


def test_geography_is_planted(info: SyntheticInfo) -> None:
    between_share, nearby_corr = geography_signal(info)
    # Without geography, 12 random groups of 60 stores explain ~0.19 of the variance.
    assert between_share > 0.5
    assert nearby_corr > 0.5


def test_geography_check_fails_without_geography(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(synthetic, "GEO_SD", 0.0)
    between_share, nearby_corr = geography_signal(write_synthetic(tmp_path, seed=0))
    assert between_share < 0.5
    assert nearby_corr < 0.5


def regional_signal(info: SyntheticInfo) -> float:
    """Mantel r between the states' seasonal profiles and their hidden locations.

    A state's profile: the mean log sales of its stores per month and per weekday (Monday to
    Saturday), each net of the store's level and of the chain's month or weekday, so only
    what differs between states over time remains: what a State embedding can learn.
    """
    sales = (
        read(info.train)
        .filter((pl.col("Sales") > 0) & (pl.col("DayOfWeek") < 7))
        .join(read(info.store_states), on="Store")
        .with_columns(Month=pl.col("Date").dt.month(), log=pl.col("Sales").log())
        .with_columns(pl.col("log") - pl.col("log").mean().over("Store"))
    )
    profiles = [
        sales.with_columns(pl.col("log") - pl.col("log").mean().over(period))
        .group_by("State", period)
        .agg(pl.col("log").mean())
        .pivot(period, index="State", values="log", sort_columns=True)
        .sort("State")
        for period in ("Month", "DayOfWeek")
    ]
    states = profiles[0]["State"]
    assert states.equals(profiles[1]["State"])
    profile = np.hstack([p.drop("State").to_numpy() for p in profiles])
    where = read(info.locations_states).join(states.to_frame(), on="State").sort("State")
    r, _ = mantel_test(
        euclidean_distances(profile),
        euclidean_distances(where.select("x", "y").to_numpy()),
        permutations=99,
    )
    return r


def test_seasons_and_weekdays_follow_the_states_locations(info: SyntheticInfo) -> None:
    assert regional_signal(info) > 0.9


def test_regional_check_fails_without_regional_effects(tmp_path: Path) -> None:
    assert regional_signal(write_synthetic(tmp_path, seed=0, regional=False)) < 0.5


def test_regional_effects_change_nothing_else(tmp_path: Path) -> None:
    on = write_synthetic(tmp_path / "on", seed=3, **SMALL)
    off = write_synthetic(tmp_path / "off", seed=3, regional=False, **SMALL)
    for name in ["test.csv", "store.csv", "external/store_states.csv", "locations_states.csv"]:
        assert (on.out_dir / name).read_bytes() == (off.out_dir / name).read_bytes(), name
    a, b = read(on.train), read(off.train)
    assert a.drop("Sales", "Customers").equals(b.drop("Sales", "Customers"))
    assert not a["Sales"].equals(b["Sales"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_stores": 0},
        {"test_days": -1},
        {"start": "2015-02-01", "end": "2015-01-01"},
        {"end": "x"},
    ],
)
def test_bad_arguments_raise_input_error(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(InputError, match="synthetic data"):
        write_synthetic(tmp_path, **kwargs)
