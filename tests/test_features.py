"""Features: per-store elapsed features, the training-row rule with its counts, the time split."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from rossmann_embed.rossmann.features import (
    EASTER_SPAN_DAYS,
    LOOK_AHEAD,
    build_features,
    days_from_easter,
    easter_sunday,
    end_data_after,
    hide_future,
    model_rows,
    time_split,
)
from rossmann_embed.rossmann.kaggle_files import RossmannData, read_rossmann


def one_store(days: int, promo_days: set[int], holiday_days: set[int],
              hole_days: int = 0) -> RossmannData:
    """A single store with ``days`` consecutive labelled days; its test day follows after
    ``hole_days`` days missing from the data (like Kaggle's held-back weeks)."""
    start = date(2015, 1, 1)
    dates = [start + timedelta(days=i) for i in range(days)]
    train = pl.DataFrame({
        "Store": 1, "DayOfWeek": [d.isoweekday() for d in dates], "Date": dates,
        "Sales": 1000, "Customers": 100, "Open": 1,
        "Promo": [int(i in promo_days) for i in range(days)],
        "StateHoliday": ["a" if i in holiday_days else "0" for i in range(days)],
        "SchoolHoliday": 0,
    }).cast({pl.Int32: pl.Int64})
    nxt = start + timedelta(days=days + hole_days)
    test = pl.DataFrame({
        "Id": [1], "Store": [1], "DayOfWeek": [nxt.isoweekday()], "Date": [nxt], "Open": [None],
        "Promo": [1], "StateHoliday": ["0"], "SchoolHoliday": [0],
    }).cast({pl.Int32: pl.Int64, pl.Null: pl.Int64})
    stores = pl.DataFrame({
        "Store": [1], "StoreType": ["a"], "Assortment": ["a"], "CompetitionDistance": [100.0],
        "CompetitionOpenSinceMonth": [1], "CompetitionOpenSinceYear": [2014], "Promo2": [1],
        "Promo2SinceWeek": [1], "Promo2SinceYear": [2015], "PromoInterval": ["Jan,Apr,Jul,Oct"],
        "State": ["HE"],
    }).cast({pl.Int32: pl.Int64})
    return RossmannData(train, test, stores)


def test_elapsed_features_per_store_in_date_order() -> None:
    table = build_features(one_store(20, promo_days={5, 6, 12}, holiday_days={10}))
    frame = table.frame.sort("Date")
    row = frame.row(11, named=True)  # day 11: promo on 5, 6, 12; holiday on 10
    assert row["DaysSincePromo"] == 5 and row["DaysUntilPromo"] == 1
    assert row["DaysSinceStateHoliday"] == 1
    assert row["PromoLast7"] == 2 and row["PromoNext7"] == 1
    assert row["StateHolidayLast7"] == 1 and row["StateHolidayNext7"] == 0
    first = frame.row(0, named=True)
    assert first["DaysSinceStateHoliday"] is None  # no history yet: unknown, not "long ago"
    assert first["PromoLast7"] is None
    assert frame.row(19, named=True)["DaysUntilStateHoliday"] is None
    assert first["DaysUntilStateHoliday"] == 10
    # The test day sees the train days before it, as any other day would.
    last = frame.filter(pl.col("Set") == "test").row(0, named=True)
    assert last["DaysSinceStateHoliday"] == 10 and last["DaysSincePromo"] == 0
    assert last["Open"] == 1 and table.report["test_open_blank_as_open"] == 1


def test_easter_comes_from_the_calendar() -> None:
    # Published dates, the earliest (22 March) and latest (25 April) possible among them.
    known = [date(2013, 3, 31), date(2014, 4, 20), date(2015, 4, 5), date(2016, 3, 27),
             date(2019, 4, 21), date(2038, 4, 25), date(2285, 3, 22)]
    assert [easter_sunday(d.year) for d in known] == known
    days = pl.date_range(date(2015, 3, 1), date(2015, 5, 1), eager=True)
    offsets = pl.select(days_from_easter(pl.lit(days))).to_series().to_list()
    assert offsets[days.to_list().index(date(2015, 4, 3))] == -2  # Good Friday
    assert offsets[0] == -EASTER_SPAN_DAYS and offsets[-1] == EASTER_SPAN_DAYS
    assert offsets == sorted(offsets)


def test_nothing_is_seen_across_a_hole_in_the_data() -> None:
    frame = build_features(one_store(20, promo_days={5}, holiday_days=set(), hole_days=10))
    before_hole = frame.frame.sort("Date").row(19, named=True)
    # The test day (a promo) lies after a 10-day hole: the days until it are unknown.
    assert before_hole["DaysUntilPromo"] is None and before_hole["PromoNext7"] is None
    assert before_hole["DaysSincePromo"] == 14 and before_hole["PromoLast7"] == 0


def test_promo2_and_competition() -> None:
    frame = build_features(one_store(40, set(), set())).frame.sort("Date")
    january, february = frame.row(0, named=True), frame.row(35, named=True)
    assert january["Promo2Active"] == 1 and february["Promo2Active"] == 0
    assert january["CompetitionMonthsOpen"] == 12
    assert january["Promo2Weeks"] == 0 and february["Promo2Weeks"] == 5


def test_target_rows_replace_history(tiny_data: Path) -> None:
    data = read_rossmann(tiny_data)
    target = data.train.filter(pl.col("Date") == date(2015, 7, 1)).select(
        pl.int_range(1, pl.len() + 1).alias("Id").cast(pl.Int64), "Store", "DayOfWeek", "Date",
        "Open", "Promo", "StateHoliday", "SchoolHoliday",
    )
    table = build_features(data, target)
    assert table.report["history_rows_replaced_by_target"] == 2
    assert table.frame.height == 4 + 2  # two history days replaced, test days kept
    assert table.frame.filter(pl.col("Set") == "target").height == 2


def test_model_rows_and_split_account_for_every_row(tiny_data: Path) -> None:
    table = build_features(read_rossmann(tiny_data))
    kept, counts = model_rows(table.frame)
    assert counts == {"rows_labelled": 4, "dropped_closed": 1, "dropped_open_zero_sales": 0,
                      "rows_model": 3}
    train, validation = time_split(kept, validation_days=1)
    assert validation.get_column("Date").unique().to_list() == [date(2015, 7, 1)]
    assert train.height + validation.height == kept.height
    assert time_split(kept, 0)[1].height == 0


def test_real_features_keep_or_count_every_row(real_data: Path) -> None:
    table = build_features(read_rossmann(real_data))
    assert table.frame.height == table.report["rows_train"] + table.report["rows_test"]
    kept, counts = model_rows(table.frame)
    assert counts["rows_labelled"] == 963_689
    assert counts["rows_model"] + counts["dropped_closed"] + counts["dropped_open_zero_sales"] \
        == counts["rows_labelled"]
    assert table.spec.categorical["Store"] == 1115 and table.spec.categorical["State"] == 12
    features = [*table.spec.categorical, *table.spec.continuous]
    # Unknown only where a window runs past the data (edges and holes): elapsed features.
    edge_features = [c for c in features if c.startswith("Days") or c[-5:] in ("Last7", "Next7")]
    nulls = kept.select(pl.col(c).null_count() for c in features
                        if c not in edge_features and c != "CloudCover")
    assert nulls.sum_horizontal().item() == 0
    assert kept.select(pl.col(edge_features).null_count().max()).max_horizontal().item() \
        < 0.05 * kept.height
    # Kaggle's Easter holidays ("b") are Good Friday and Easter Monday of the calendar.
    easter = table.frame.filter(pl.col("StateHoliday") == "b").get_column("DaysFromEaster")
    assert sorted(easter.unique().to_list()) == [-2, 1]
    train, validation = time_split(kept, 48)
    assert validation.get_column("Date").min() == date(2015, 4, 27)
    assert validation.get_column("Date").max() == date(2015, 6, 13)


def test_hidden_future_is_what_features_give_where_the_data_ends() -> None:
    """end_data_after(frame, k) on row r equals build_features of the data cut after r + k."""
    rng = np.random.default_rng(1)
    days = 150
    data = one_store(days, promo_days=set(rng.choice(days, 30).tolist()),
                     holiday_days=set(rng.choice(days, 6).tolist()))
    full = build_features(data).frame.filter(pl.col("Set") == "train").sort("Date")
    for row, left in [(10, 0), (10, 3), (20, 6), (20, 7), (30, 25), (40, 59), (5, 60)]:
        cut = RossmannData(data.train.sort("Date").head(row + left + 1), data.test.clear(),
                           data.stores)
        expected = build_features(cut).frame.sort("Date").row(row, named=True)
        hidden = end_data_after(full, np.full(full.height, left)).row(row, named=True)
        assert {c: hidden[c] for c in LOOK_AHEAD} == {c: expected[c] for c in LOOK_AHEAD}


def test_hide_future_cuts_the_given_share_of_rows() -> None:
    data = one_store(3000, promo_days=set(range(0, 3000, 3)), holiday_days=set())
    frame = build_features(data).frame.filter(pl.col("Set") == "train")
    assert hide_future(frame, 0.0).equals(frame)
    hidden = hide_future(frame, 0.5, seed=3)
    changed = (hidden.get_column("PromoNext7").is_null()
               & frame.get_column("PromoNext7").is_not_null()).mean()
    assert 0.4 * 7 / 60 < changed < 0.6 * 7 / 60  # half the rows, 7 of 60 ends inside a week
    assert hidden.drop(LOOK_AHEAD).equals(frame.drop(LOOK_AHEAD))
