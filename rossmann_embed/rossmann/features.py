"""Rossmann features as polars expressions: one frame for every day the data knows, and a spec.

Features are computed on the union of the data directory's train.csv and test.csv, plus an
optional target file (any file in Kaggle's test layout, which takes precedence on the
same (Store, Date)). So a day gets the same features whether it is trained on, validated,
evaluated or predicted, and a store's first test days see the same history as any other day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import polars as pl

from rossmann_embed.rossmann.feature_groups import (
    FEATURE_GROUPS,
    PAPER_FEATURES,
    WEATHER_COLUMNS,
)
from rossmann_embed.rossmann.kaggle_files import RossmannData
from rossmann_embed.tabular.encoding import ColumnSpec

ELAPSED_CAP_DAYS = 60  # days since/until an event, beyond this "long ago" is all the same
COMPETITION_CAP_MONTHS = 24
PROMO2_CAP_WEEKS = 25
WINDOW_DAYS = 7
# Days from Easter Sunday, from the calendar (always known, unlike the data's next holiday):
# the days around it sell like no other holiday's; beyond two weeks they are all the same.
EASTER_SPAN_DAYS = 15
Year = TypeVar("Year", int, pl.Expr)
Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)
EVENTS = {  # per store: the days these hold are the events that elapsed features count
    "StateHoliday": pl.col("StateHoliday") != "0",
    "SchoolHoliday": pl.col("SchoolHoliday") == 1,
    "Promo": pl.col("Promo") == 1,
}
MONTH_ABBREVIATIONS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun",
                       "Jul", "Aug", "Sept", "Oct", "Nov", "Dec"]
CATEGORICAL = [
    "Store", "DayOfWeek", "Year", "Month", "Day", "WeekOfYear", "StateHoliday", "Promo",
    "SchoolHoliday", "StoreType", "Assortment", "PromoInterval", "CompetitionMonthsOpen",
    "CompetitionOpenSinceYear", "Promo2", "Promo2Weeks", "Promo2SinceYear", "Promo2Active",
    "State", "DaysFromEaster",
    *[f"{event}{side}7" for event in EVENTS for side in ("Last", "Next")],
    # Categories, not numbers: the day before a holiday differs from the day before that
    # in ways no smooth function of the distance captures.
    *[f"Days{side}{event}" for event in EVENTS for side in ("Since", "Until")],
]
CONTINUOUS = ["LogCompetitionDistance", "DayOfYear"]
LOOK_AHEAD = [  # features that need days after the row's day: unknown near the data's end
    *[f"DaysUntil{event}" for event in EVENTS], *[f"{event}Next7" for event in EVENTS],
]


def select_features(spec: ColumnSpec, features: str = "full",
                    drop: list[str] | tuple[str, ...] = ()) -> ColumnSpec:
    """The columns a model sees: every feature (``full``) or the paper's seven (``paper``),
    without the columns of the ``drop`` groups (``FEATURE_GROUPS``)."""
    dropped = {c for group in drop for c in FEATURE_GROUPS[group]}
    keep = (lambda c: c in PAPER_FEATURES) if features == "paper" else (lambda c: True)
    return ColumnSpec({c: n for c, n in spec.categorical.items() if keep(c) and c not in dropped},
                      [c for c in spec.continuous if keep(c) and c not in dropped],
                      spec.target, spec.target_transform)


@dataclass
class FeatureTable:
    """All rows with their features, the column spec, and counts of what happened to rows."""

    frame: pl.DataFrame  # sorted by Store, Date; column "Set": "train", "test" or "target"
    spec: ColumnSpec
    report: dict[str, int] = field(default_factory=dict)


def build_features(data: RossmannData, target: pl.DataFrame | None = None) -> FeatureTable:
    """Build the feature frame for train.csv, test.csv and an optional target file together."""
    rows, report = stack_rows(data, target)
    frame = features_of(rows.lazy(), data, farthest_competitor(data, rows)).collect()
    categorical, continuous = feature_columns(data)
    cardinality = frame.select(pl.col(c).n_unique() for c in categorical).row(0)
    spec = ColumnSpec(dict(zip(categorical, cardinality, strict=True)), continuous, target="Sales")
    return FeatureTable(frame, spec, {**report, **blank_counts(data),
                                      "rows_features": frame.height})


def features_of(rows: pl.LazyFrame, data: RossmannData, farthest: float | None
                ) -> pl.LazyFrame:
    """Every feature of stacked rows (``stack_rows``). Each is a function of one store's
    days, so the rows of a block of stores get the same features as in the whole table;
    ``farthest`` (``farthest_competitor``) is the one value taken across stores."""
    return (
        rows.sort("Store", "Date")  # the order every per-store feature below relies on
        .join(data.stores.lazy(), on="Store", how="left", maintain_order="left")
        .with_columns(_calendar())
        .with_columns(*_competition(farthest), *_promo2())
        .with_columns(_promo2_active())
        .pipe(_elapsed_events)
        .pipe(_join_weather, data.weather)
        .pipe(_join_trends, data.trends)
    )


def feature_columns(data: RossmannData) -> tuple[list[str], list[str]]:
    """The categorical and continuous feature columns that ``data``'s files give."""
    categorical = [*CATEGORICAL, *(["Events"] if data.weather is not None else [])]
    continuous = [
        *CONTINUOUS,
        *(WEATHER_COLUMNS if data.weather is not None else []),
        *(["Trend", "TrendDE"] if data.trends is not None else []),
    ]
    return categorical, continuous


def farthest_competitor(data: RossmannData, rows: pl.DataFrame) -> float | None:
    """The farthest competitor of the stores that ``rows`` hold: what a store without one
    is taken to have."""
    stores = data.stores.filter(pl.col("Store").is_in(rows.get_column("Store").implode()))
    return stores.get_column("CompetitionDistance").max()


def model_rows(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """The one place that decides which rows the model learns from: open days with Sales > 0.

    Returns the rows and the counts of labelled rows kept and removed, by reason.
    """
    labelled = frame.filter(pl.col("Sales").is_not_null())
    counts = labelled.select(
        rows_labelled=pl.len(),
        dropped_closed=(pl.col("Open") == 0).sum(),
        dropped_open_zero_sales=((pl.col("Open") == 1) & (pl.col("Sales") <= 0)).sum(),
    ).row(0, named=True)
    kept = labelled.filter((pl.col("Open") == 1) & (pl.col("Sales") > 0))
    counts["rows_model"] = kept.height
    return kept, counts


def time_split(frame: pl.DataFrame, validation_days: int = 48) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The last ``validation_days`` calendar days are validation, the rest train (0: none)."""
    if validation_days <= 0:
        return frame, frame.clear()
    last = frame.get_column("Date").max()
    first_validation = last - pl.duration(days=validation_days - 1)
    is_validation = pl.col("Date") >= pl.select(first_validation).item()
    return frame.filter(~is_validation), frame.filter(is_validation)


def hide_future(frame: pl.DataFrame, fraction: float, seed: int = 0) -> pl.DataFrame:
    """Training rows as prediction rows see them: the data ends soon after them.

    A day to predict lies within weeks of the data's last day (a validation period, Kaggle's
    test.csv), so its look-ahead features are often unknown. Training rows almost never are,
    and a model then meets "unknown" only at prediction time (on the shared data it pushed
    the last week of validation 10% too high). So a random ``fraction`` of rows gets a data
    end 0..59 days later, and each look-ahead feature is recomputed as ``_elapsed_events``
    would give it there: "days until" stays known only if the event falls before that end,
    a 7-day count only if the whole week does.
    """
    if fraction <= 0 or frame.is_empty():
        return frame
    rng = np.random.default_rng(seed)
    cut = rng.random(frame.height) < fraction
    days_left = rng.integers(0, ELAPSED_CAP_DAYS, frame.height)
    return end_data_after(frame, np.where(cut, days_left, ELAPSED_CAP_DAYS))


def end_data_after(frame: Frame, days_left: np.ndarray | pl.Expr) -> Frame:
    """Look-ahead features of each row as if the store's data ended ``days_left`` days after
    it (``ELAPSED_CAP_DAYS`` or more: unchanged); ``days_left`` is an array, one value a
    row, or an expression of the row."""
    left = (days_left if isinstance(days_left, pl.Expr)
            else pl.lit(pl.Series(np.asarray(days_left, dtype=np.int64))))
    hidden = [
        pl.when(pl.col(c) <= left).then(pl.col(c)) if c.startswith("DaysUntil")
        else pl.when(left >= WINDOW_DAYS).then(pl.col(c))
        for c in LOOK_AHEAD
    ]
    return frame.with_columns(h.alias(c) for h, c in zip(hidden, LOOK_AHEAD, strict=True))


def blank_counts(data: RossmannData) -> dict[str, int]:
    """Blanks of the store and weather tables, filled by the features: a competition distance
    as the farthest competitor, weather by the scaling."""
    counts = {"stores_competition_distance_blank":
              data.stores.get_column("CompetitionDistance").null_count()}
    if data.weather is not None:
        counts["weather_state_days_with_a_blank"] = data.weather.select(
            pl.any_horizontal(pl.col(WEATHER_COLUMNS).is_null()).sum()).item()
    return counts


def stack_rows(data: RossmannData, target: pl.DataFrame | None) -> tuple[pl.DataFrame, dict]:
    """Union of train, test and target rows (a target row replaces history on the same day),
    and their row counts."""
    train = data.train.with_columns(Set=pl.lit("train"), Id=pl.lit(None, pl.Int64))
    test = data.test.with_columns(Set=pl.lit("test"), Sales=pl.lit(None, pl.Int64))
    report = {"rows_train": data.train.height, "rows_test": data.test.height}
    report["test_open_blank_as_open"] = data.test.get_column("Open").null_count()
    parts = [train, test]
    if target is not None:
        keys = target.select("Store", "Date")
        report["rows_target"] = target.height
        report["target_open_blank_as_open"] = target.get_column("Open").null_count()
        before = train.height + test.height
        parts = [p.join(keys, on=["Store", "Date"], how="anti") for p in parts]
        report["history_rows_replaced_by_target"] = before - sum(p.height for p in parts)
        parts.append(target.with_columns(Set=pl.lit("target"), Sales=pl.lit(None, pl.Int64)))
    columns = ["Set", "Id", "Store", "DayOfWeek", "Date", "Sales", "Open", "Promo",
               "StateHoliday", "SchoolHoliday"]
    stacked = pl.concat([p.select(columns) for p in parts])
    # Kaggle's test.csv has blank Open values: a blank is taken as open (and counted above).
    return stacked.with_columns(pl.col("Open").fill_null(1)), report


def easter_month_day(year: Year) -> tuple[Year, Year]:
    """Month and day of Easter Sunday (the anonymous Gregorian algorithm), of a year or of a
    polars expression of years: the arithmetic is the same."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    weekday = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday) // 451
    n = h + weekday - 7 * m + 114
    return n // 31, n % 31 + 1


def easter_sunday(year: int) -> dt.date:
    """Easter Sunday of ``year``."""
    return dt.date(year, *easter_month_day(year))


def days_from_easter(date: pl.Expr) -> pl.Expr:
    """Days from the year's Easter Sunday, clipped to +-``EASTER_SPAN_DAYS`` (Easter falls
    between 22 March and 25 April, so the nearest Easter is always the year's own)."""
    year = date.dt.year()
    easter = pl.date(year, *easter_month_day(year))
    return (date - easter).dt.total_days().clip(-EASTER_SPAN_DAYS, EASTER_SPAN_DAYS)


def _calendar() -> list[pl.Expr]:
    date = pl.col("Date")
    return [
        date.dt.year().alias("Year"),
        date.dt.month().alias("Month"),
        date.dt.day().alias("Day"),
        date.dt.week().alias("WeekOfYear"),
        date.dt.ordinal_day().alias("DayOfYear"),
        days_from_easter(date).alias("DaysFromEaster"),
    ]


def _competition(farthest: float | None) -> list[pl.Expr]:
    months = (pl.col("Year") - pl.col("CompetitionOpenSinceYear")) * 12 + (
        pl.col("Month") - pl.col("CompetitionOpenSinceMonth")
    )
    return [
        # -1: no opening date known; 0: not open yet; capped at two years.
        months.clip(0, COMPETITION_CAP_MONTHS).fill_null(-1).alias("CompetitionMonthsOpen"),
        pl.col("CompetitionOpenSinceYear").fill_null(-1),
        # No competitor known: as far away as the farthest one.
        pl.col("CompetitionDistance").fill_null(farthest).log1p().alias("LogCompetitionDistance"),
        pl.col("PromoInterval").fill_null("none"),
    ]


def _promo2() -> list[pl.Expr]:
    # Monday of ISO week Promo2SinceWeek: Monday of the week holding 4 January, plus weeks.
    jan4 = pl.date(pl.col("Promo2SinceYear"), 1, 4)
    week1 = jan4 - pl.duration(days=jan4.dt.weekday() - 1)
    since = week1 + pl.duration(weeks=pl.col("Promo2SinceWeek") - 1)
    weeks = (pl.col("Date") - since).dt.total_days() // 7
    return [
        weeks.clip(0, PROMO2_CAP_WEEKS).fill_null(-1).alias("Promo2Weeks"),
        (pl.col("Date") >= since).fill_null(False).alias("Promo2Started"),
        pl.col("Promo2SinceYear").fill_null(-1),
    ]


def _promo2_active() -> pl.Expr:
    """Promo2 runs this month: the store takes part, it has started, the month is in its cycle."""
    month_name = pl.col("Month").replace_strict(
        list(range(1, 13)), MONTH_ABBREVIATIONS, return_dtype=pl.String
    )
    in_interval = pl.col("PromoInterval").str.contains(month_name, literal=True)
    return ((pl.col("Promo2") == 1) & pl.col("Promo2Started") & in_interval).cast(pl.Int8).alias(
        "Promo2Active"
    )


def _elapsed_events(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Per store in date order: days since/until each event, and counts in the last/next 7 days.

    The frame is sorted by (Store, Date). Instead of per-store windows, one key
    ``Store * 2**20 + day`` orders every day of every store on one line, so fills and
    windows are single passes that never cross into another store.

    Where the window runs past the days the data holds for the store (its first and last
    days, and days beside a hole such as the weeks between train.csv and test.csv), the
    value is unknown (null), not "no event": a count of 0 promos in the next 7 days never
    happens in a complete week, and the model must not learn it from the edges.
    """
    day = pl.col("Date").cast(pl.Int64)
    key = pl.col("Store").cast(pl.Int64) * STORE_STRIDE + day
    rows = pl.col("_key").is_not_null()  # every row: a day the data holds
    complete = {  # every day of the window is in the data
        "last7": _window_count(rows, -WINDOW_DAYS, 0) == WINDOW_DAYS,
        "next7": _window_count(rows, 1, WINDOW_DAYS + 1) == WINDOW_DAYS,
        "since": _window_count(rows, -ELAPSED_CAP_DAYS, 0) == ELAPSED_CAP_DAYS,
        "until": _window_count(rows, 1, ELAPSED_CAP_DAYS + 1) == ELAPSED_CAP_DAYS,
    }
    columns = []
    for name, holds in EVENTS.items():
        event_key = pl.when(holds).then(pl.col("_key"))
        since = pl.col("_key") - event_key.forward_fill()
        until = event_key.backward_fill() - pl.col("_key")
        # An event counts only if every day between it and today is in the data.
        since_seen = _window_count(rows, -since, 0) == since
        until_seen = _window_count(rows, 1, until + 1) == until
        columns += [
            _elapsed(since, since_seen, complete["since"]).alias(f"DaysSince{name}"),
            _elapsed(until, until_seen, complete["until"]).alias(f"DaysUntil{name}"),
            pl.when(complete["last7"]).then(_window_count(holds, -WINDOW_DAYS, 0))
            .alias(f"{name}Last7"),
            pl.when(complete["next7"]).then(_window_count(holds, 1, WINDOW_DAYS + 1))
            .alias(f"{name}Next7"),
        ]
    return frame.with_columns(_key=key).with_columns(columns).drop("_key")


STORE_STRIDE = 2**20  # more days than any calendar holds, so store blocks never overlap


def _window_count(holds: pl.Expr, start: int | pl.Expr, stop: int | pl.Expr) -> pl.Expr:
    """Rows of the same store within days [day + start, day + stop) where ``holds``."""
    before = pl.concat([pl.lit(0, pl.Int64), holds.cast(pl.Int64).cum_sum()])
    at = pl.col("_key").search_sorted
    return before.gather(at(pl.col("_key") + stop, side="left")) - before.gather(
        at(pl.col("_key") + start, side="left")
    )


def _elapsed(gap: pl.Expr, seen: pl.Expr, window_complete: pl.Expr) -> pl.Expr:
    """Days to the event when within the cap and every day between is in the data; else the
    cap when every day of the capped window is in the data; else unknown."""
    return (
        pl.when((gap <= ELAPSED_CAP_DAYS) & seen).then(gap)
        .when(window_complete).then(ELAPSED_CAP_DAYS)
        .cast(pl.Int32)
    )


def _join_weather(frame: pl.LazyFrame, weather: pl.DataFrame | None) -> pl.LazyFrame:
    if weather is None:
        return frame
    columns = ["State", "Date", *WEATHER_COLUMNS, "Events"]
    joined = frame.join(weather.lazy().select(columns), on=["State", "Date"], how="left",
                        maintain_order="left")
    return joined.with_columns(pl.col("Events").fill_null("none"))


def _join_trends(frame: pl.LazyFrame, trends: pl.DataFrame | None) -> pl.LazyFrame:
    """Weekly trends (weeks start on Sunday), for the store's state and for Germany."""
    if trends is None:
        return frame
    week_start = pl.col("Date") - pl.duration(days=pl.col("Date").dt.weekday() % 7)
    trend = trends.lazy()
    return (
        frame.with_columns(WeekStart=week_start)
        .join(trend, on=["State", "WeekStart"], how="left", maintain_order="left")
        .join(trend.filter(pl.col("State") == "DE").select("WeekStart", TrendDE="Trend"),
              on="WeekStart", how="left", maintain_order="left")
        .drop("WeekStart")
    )
