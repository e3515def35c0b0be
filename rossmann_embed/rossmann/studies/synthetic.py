"""Kaggle-shaped synthetic Rossmann data with a planted geography (for tests and the demo).

``write_synthetic`` writes ``train.csv``, ``test.csv``, ``store.csv`` and
``external/store_states.csv`` laid out byte for byte like Kaggle's files (quoted header and
text columns, unquoted dates, newest day first, blanks in ``store.csv`` and in test ``Open``),
plus the hidden truth the embeddings should recover: ``locations_states.csv`` (State,x,y) and
``locations_stores.csv`` (Store,State,x,y).

The generative model, in log sales of an open store-day::

    log(Sales) = log(6000) + geo(x, y) + type + assortment + store_noise + trend * years
                 + day_of_week + promo + school_holiday + month + pre_christmas
                 + holiday_eve + season(state x, y; day) + weather(state x, y; week) + noise

``geo`` is a broad smooth random function of the store's hidden 2-D location (a sum of
random Fourier features, ``GEO_CYCLES`` waves across the map, like a rich-poor gradient); a
store sits close to its state's location, so nearby stores sell alike and states differ.
``geo`` is constant over time: a model learns it as one number per store or state, which says
little about which states are neighbours. What teaches a State embedding the map (as in the
real data, where neighbouring states share weather, regional seasons and tourism) are two
effects that change over time, are shared by every store of a state and are smooth in the
state's location (u, v) = 2 * (x, y) - 1, centred on the map:

- ``season``: a yearly and a weekly curve whose shape turns with the position:
  ``SEASON_SIZE * (v * cos(year angle - summer) + u * sin(year angle - summer))``, so the
  north (v = 1) peaks in summer (tourism), the south in winter, the east in autumn and the
  west in spring, by up to +-25% at the map's edges (about +-10% for a typical state); plus
  ``WEEK_SIZE * (u * east_week[dow] + v * north_week[dow])`` (Saturday shopping in the east,
  Monday in the west, ...; up to +-10%);
- ``weather``: a random smooth field of location per week (random Fourier features, sd
  ``WEATHER_SD`` = 5% across states), like a week of regional weather.

A network fits them only by letting the State embedding interact with the calendar
(Month, WeekOfYear, DayOfWeek, ...), and the cheapest way to share them between states is to
place neighbours close together. ``write_synthetic(regional=False)`` leaves both out (drawing
the same random numbers, so all else is equal).

Holidays follow the real German rules per state (which is why states can also be told apart
by their closing days), school holidays are drawn per state and year. Everything comes from
one ``np.random.default_rng(seed)``, so a seed gives identical bytes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from rossmann_embed.rossmann.features import easter_sunday
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.files import atomic_write

# The 12 state codes of Guo & Berkhahn's store_states.csv (Bremen and Niedersachsen share one).
STATES: tuple[str, ...] = (
    "BW", "BY", "BE", "HB,NI", "HE", "HH", "NW", "RP", "SH", "SN", "ST", "TH",
)  # fmt: skip
PROMO_INTERVALS = ("Jan,Apr,Jul,Oct", "Feb,May,Aug,Nov", "Mar,Jun,Sept,Dec")
HOLIDAY_CODES = ("0", "a", "b", "c")  # Kaggle's StateHoliday values; index 0 = no holiday
HOLIDAY_INDEX = dict(enumerate(HOLIDAY_CODES))

# Effect sizes, all on log sales (0.1 ~ +10%).
BASE_SALES = 6000.0
GEO_SD = 0.2  # spread of the (constant) location effect across states
GEO_CYCLES = 0.6  # waves of the location effect across the map: a broad rich-poor gradient
STORE_SD = 0.12  # per-store level not explained by anything observable
TYPE_EFFECT = {"a": 0.0, "b": 0.35, "c": 0.03, "d": -0.05}
ASSORTMENT_EFFECT = {"a": 0.0, "b": -0.10, "c": 0.08}
DOW_EFFECT = np.array([0.0, 0.12, 0.03, -0.01, -0.03, 0.02, -0.10, 0.05])  # index 1=Mon..7=Sun
MONTH_EFFECT = np.array(
    [0.0, -0.06, -0.07, -0.02, 0.0, 0.0, -0.01, 0.01, -0.02, -0.03, -0.02, 0.02, 0.12]
)  # index 1=Jan..12=Dec: December peak
PRE_CHRISTMAS = 0.12  # extra on 14..23 December
PROMO_MEAN, PROMO_SD = 0.22, 0.03  # per-store promo lift: about +20..30%
SCHOOL_EFFECT = 0.04
EVE_EFFECT = 0.08  # the open day before a state holiday
TREND_MEAN, TREND_SD = 0.02, 0.03  # per-store yearly trend
NOISE_SD = 0.09  # multiplicative day noise (~9%)
STORE_XY_SD = 0.03  # store location around its state's location (states ~0.3 apart)
# Time-varying effects of the state's location (u, v in [-1, 1]): what a State embedding learns.
SEASON_SIZE = 0.25  # yearly curve at the map's edge: north peaks in summer, south in winter
SUMMER_PEAK_DAY = 196  # day of the year (mid July) of the north's peak
WEEK_SIZE = 0.10  # weekly curve at the map's edge
EAST_WEEK = np.array([0.0, -1.0, -0.5, 0.0, 0.0, 0.5, 1.0, 0.0])  # index 1=Mon..7=Sun
NORTH_WEEK = np.array([0.0, 0.5, 0.5, 0.0, -0.5, -1.0, 0.5, 0.0])
WEATHER_SD = 0.05  # a week's regional weather: smooth in location, sd across states
WEATHER_FEATURES = 6  # random Fourier features per week's field
WEATHER_CYCLES = 0.7  # waves across the map per field: neighbours share their weather


@dataclass(frozen=True)
class SyntheticInfo:
    """Where ``write_synthetic`` wrote what, and how much."""

    out_dir: Path
    train: Path
    test: Path
    store: Path
    store_states: Path
    locations_states: Path
    locations_stores: Path
    n_stores: int
    n_test_stores: int
    n_train_rows: int
    n_test_rows: int
    seed: int


@dataclass(frozen=True)
class _Geography:
    state_xy: np.ndarray  # [n_states, 2]
    store_state: np.ndarray  # [n_stores] index into STATES
    store_xy: np.ndarray  # [n_stores, 2]
    store_geo: np.ndarray  # [n_stores] location effect on log sales


@dataclass(frozen=True)
class _Calendar:
    days: np.ndarray  # datetime64[D], oldest first, train and test days
    holiday: np.ndarray  # int8 [n_days, n_states], index into HOLIDAY_CODES
    school: np.ndarray  # bool [n_days, n_states]
    promo: np.ndarray  # bool [n_days]


def write_synthetic(
    out_dir: Path,
    *,
    n_stores: int = 60,
    start: str = "2013-01-01",
    end: str = "2015-07-31",
    test_days: int = 48,
    seed: int = 0,
    regional: bool = True,
) -> SyntheticInfo:
    """Write Kaggle-shaped Rossmann files with a planted geography into ``out_dir``.

    Train covers ``start``..``end`` (inclusive), test the ``test_days`` days after ``end``.
    ``regional=False`` leaves out the time-varying effects of the states' locations (season
    and weather; the control where state embeddings cannot learn the map), all else equal.
    The same arguments always give identical bytes. Raises ``InputError`` for bad arguments.
    """
    first, last = _check_arguments(n_stores, start, end, test_days)
    rng = np.random.default_rng(seed)
    geo = _plant_geography(rng, n_stores)
    stores = _draw_stores(rng, n_stores, last)
    calendar = _draw_calendar(rng, first, last + np.timedelta64(test_days, "D"))
    regional = _regional_effects(rng, geo.state_xy, calendar.days) * float(regional)
    days = _simulate_days(rng, geo, stores, calendar, regional)
    split = _days(first, last) + 1  # train days come first, then test days
    train = _train_frame(calendar.days[:split], {k: v[:split] for k, v in days.items()})
    test = _test_frame(rng, calendar.days[split:], {k: v[split:] for k, v in days.items()})

    out_dir = Path(out_dir)
    (out_dir / "external").mkdir(parents=True, exist_ok=True)
    info = SyntheticInfo(
        out_dir=out_dir,
        train=out_dir / "train.csv",
        test=out_dir / "test.csv",
        store=out_dir / "store.csv",
        store_states=out_dir / "external" / "store_states.csv",
        locations_states=out_dir / "locations_states.csv",
        locations_stores=out_dir / "locations_stores.csv",
        n_stores=n_stores,
        n_test_stores=test["Store"].n_unique(),
        n_train_rows=train.height,
        n_test_rows=test.height,
        seed=seed,
    )
    _write_kaggle_csv(train, info.train, quoted=["StateHoliday", "SchoolHoliday"])
    _write_kaggle_csv(test, info.test, quoted=["StateHoliday", "SchoolHoliday"])
    _write_kaggle_csv(stores, info.store, quoted=["StoreType", "Assortment", "PromoInterval"])
    _write_plain_csv(_store_states_frame(geo), info.store_states)
    _write_plain_csv(_state_locations_frame(geo), info.locations_states)
    _write_plain_csv(_store_locations_frame(geo), info.locations_stores)
    return info


def _check_arguments(
    n_stores: int, start: str, end: str, test_days: int
) -> tuple[np.datetime64, np.datetime64]:
    if n_stores < 1:
        raise InputError(f"synthetic data: n_stores must be at least 1, got {n_stores}")
    if test_days < 0:
        raise InputError(f"synthetic data: test_days must be 0 or more, got {test_days}")
    try:
        first, last = np.datetime64(start, "D"), np.datetime64(end, "D")
    except ValueError as err:
        raise InputError(
            f"synthetic data: start/end must be dates like 2013-01-01, got {start!r}, {end!r}"
        ) from err
    if first > last:
        raise InputError(f"synthetic data: start {start} is after end {end}")
    return first, last


# --- geography ------------------------------------------------------------------------------


def _plant_geography(rng: np.random.Generator, n_stores: int) -> _Geography:
    """Hidden state and store locations, and a smooth sales effect of location."""
    state_xy = _spread_points(rng, len(STATES))
    store_state = _assign_states(rng, n_stores)
    store_xy = state_xy[store_state] + rng.normal(0.0, STORE_XY_SD, size=(n_stores, 2))
    field = _random_smooth_field(rng, cycles=GEO_CYCLES)
    # Standardise over the state locations so every seed plants the same between-state spread.
    at_states = field(state_xy)
    store_geo = GEO_SD * (field(store_xy) - at_states.mean()) / at_states.std()
    return _Geography(state_xy, store_state, store_xy, store_geo)


def _spread_points(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` points in the unit square, one per cell of a jittered grid, so none are close."""
    cols = int(np.ceil(np.sqrt(n * 4 / 3)))
    rows = int(np.ceil(n / cols))
    cells = rng.permutation(cols * rows)[:n]
    jitter = 0.2 + 0.6 * rng.random((n, 2))  # keep to the middle of a cell
    return np.column_stack(
        [(cells % cols + jitter[:, 0]) / cols, (cells // cols + jitter[:, 1]) / rows]
    )


def _assign_states(rng: np.random.Generator, n_stores: int) -> np.ndarray:
    """A state index per store: every state gets a store (when there are enough), sizes vary."""
    n_states = len(STATES)
    first = rng.permutation(n_states)[: min(n_stores, n_states)]
    weights = rng.dirichlet(np.full(n_states, 2.0))
    rest = rng.choice(n_states, size=max(n_stores - n_states, 0), p=weights)
    return rng.permutation(np.concatenate([first, rest]))


def _random_smooth_field(rng: np.random.Generator, n_features: int = 8, cycles: float = 1.2):
    """A random smooth function of 2-D location: a sum of random Fourier features.

    About ``cycles`` waves across the unit square: neighbouring states are related,
    distant ones independent.
    """
    freq = rng.normal(0.0, 2 * np.pi * cycles, size=(n_features, 2))
    phase = rng.uniform(0.0, 2 * np.pi, size=n_features)
    amplitude = rng.normal(0.0, 1.0, size=n_features)

    def field(xy: np.ndarray) -> np.ndarray:
        return np.cos(xy @ freq.T + phase) @ amplitude

    return field


def _regional_effects(
    rng: np.random.Generator, state_xy: np.ndarray, days: np.ndarray
) -> np.ndarray:
    """Season and weather of each state on each day, [n_days, n_states], on log sales.

    Both change over time, are shared by the stores of a state and depend smoothly on its
    location, so only a model that knows which states are near each other can share them.
    """
    u, v = (2.0 * state_xy - 1.0).T  # east, north in [-1, 1]
    angle = 2 * np.pi * (_day_of_year(days) - SUMMER_PEAK_DAY) / 365.25
    season = SEASON_SIZE * (np.cos(angle)[:, None] * v + np.sin(angle)[:, None] * u)
    dow = _day_of_week(days)
    season += WEEK_SIZE * (EAST_WEEK[dow][:, None] * u + NORTH_WEEK[dow][:, None] * v)

    week = (days.astype(np.int64) + 3) // 7  # Monday-based weeks
    week -= week[0]
    n_weeks = int(week[-1]) + 1
    freq = rng.normal(0.0, 2 * np.pi * WEATHER_CYCLES, size=(n_weeks, WEATHER_FEATURES, 2))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n_weeks, WEATHER_FEATURES, 1))
    amplitude = rng.normal(0.0, 1.0, size=(n_weeks, 1, WEATHER_FEATURES))
    fields = (amplitude @ np.cos(freq @ state_xy.T + phase))[:, 0]  # [n_weeks, n_states]
    fields -= fields.mean(axis=1, keepdims=True)  # the chain-wide part of a week is not regional
    weather = WEATHER_SD * fields / max(fields.std(), 1e-12)
    return season + weather[week]


# --- stores ---------------------------------------------------------------------------------


def _draw_stores(rng: np.random.Generator, n_stores: int, last: np.datetime64) -> pl.DataFrame:
    """store.csv: type, assortment, competition and Promo2 fields with Kaggle-like blanks."""
    store_type = rng.choice(
        np.array(["a", "b", "c", "d"]), size=n_stores, p=[0.54, 0.02, 0.13, 0.31]
    )
    assortment = rng.choice(np.array(["a", "c"]), size=n_stores, p=[0.53, 0.47])
    assortment[(store_type == "b") & (rng.random(n_stores) < 0.6)] = "b"

    distance = np.clip(np.round(np.exp(rng.normal(np.log(2300), 1.2, n_stores)), -1), 20, 75860)
    no_distance = np.zeros(n_stores, dtype=bool)
    # Kaggle has a handful of stores without any competition data; keep at least one.
    k = max(int(n_stores >= 10), round(0.003 * n_stores))
    no_distance[rng.choice(n_stores, size=k, replace=False)] = True
    no_since = no_distance | (rng.random(n_stores) < 0.32)
    opened = last - np.minimum(rng.exponential(6 * 365.25, n_stores), 25 * 365).astype(int)

    promo2 = rng.random(n_stores) < 0.5
    promo2_day = last - rng.integers(0, _days(np.datetime64("2009-08-01"), last) + 1, n_stores)
    promo2_week = np.minimum(_day_of_year(promo2_day) // 7 + 1, 52)
    interval = rng.choice(np.array(PROMO_INTERVALS), size=n_stores, p=[0.58, 0.25, 0.17])

    return pl.DataFrame(
        {
            "Store": np.arange(1, n_stores + 1),
            "StoreType": store_type,
            "Assortment": assortment,
            "CompetitionDistance": _blank_where(distance.astype(np.int64), no_distance),
            "CompetitionOpenSinceMonth": _blank_where(_month(opened), no_since),
            "CompetitionOpenSinceYear": _blank_where(_year(opened), no_since),
            "Promo2": promo2.astype(np.int64),
            "Promo2SinceWeek": _blank_where(promo2_week, ~promo2),
            "Promo2SinceYear": _blank_where(_year(promo2_day), ~promo2),
            # Kaggle writes an empty quoted string here, not a blank.
            "PromoInterval": np.where(promo2, interval, ""),
        }
    )


def _blank_where(values: np.ndarray, blank: np.ndarray) -> pl.Series:
    return pl.Series(values.astype(np.int64)).scatter(np.flatnonzero(blank), None)


# --- calendar -------------------------------------------------------------------------------


def _draw_calendar(
    rng: np.random.Generator, first: np.datetime64, last: np.datetime64
) -> _Calendar:
    """Days, per-state holidays and school holidays, and the chain-wide promo weeks."""
    days = np.arange(first, last + np.timedelta64(1, "D"))
    years = range(int(_year(first)) - 1, int(_year(last)) + 1)
    holiday = np.zeros((len(days), len(STATES)), dtype=np.int8)
    school = np.zeros((len(days), len(STATES)), dtype=bool)
    for year in years:
        for day, code, states in _german_holidays(year):
            i = _days(first, day)
            if 0 <= i < len(days):
                holiday[i, [STATES.index(s) for s in states]] = code
    for s in range(len(STATES)):
        for year in years:
            for start, length in _school_holidays(rng, year):
                i = _days(first, start)
                school[max(i, 0) : max(i + length, 0), s] = True
    # Promo runs Monday..Friday every other week, the same days for every store (as in Kaggle).
    week = (days.astype(np.int64) + 3) // 7
    promo = (week % 2 == rng.integers(2)) & (_day_of_week(days) <= 5)
    return _Calendar(days, holiday, school, promo)


def _german_holidays(year: int) -> list[tuple[np.datetime64, int, tuple[str, ...]]]:
    """Public holidays of ``year`` as (day, code index, states), by today's German rules.

    Codes as in Kaggle: a = public holiday, b = Easter, c = Christmas.
    """
    a, b, c = 1, 2, 3
    easter = easter_sunday(year)
    nov23 = dt.date(year, 11, 23)
    repentance = nov23 - dt.timedelta(days=(nov23.weekday() - 2) % 7 or 7)  # Wed before 23 Nov
    reformation = STATES if year == 2017 else ("SN", "ST", "TH")  # 500th anniversary
    rules = [
        (dt.date(year, 1, 1), a, STATES),
        (dt.date(year, 1, 6), a, ("BW", "BY", "ST")),
        (easter - dt.timedelta(days=2), b, STATES),
        (easter + dt.timedelta(days=1), b, STATES),
        (dt.date(year, 5, 1), a, STATES),
        (easter + dt.timedelta(days=39), a, STATES),
        (easter + dt.timedelta(days=50), a, STATES),
        (easter + dt.timedelta(days=60), a, ("BW", "BY", "HE", "NW", "RP")),
        (dt.date(year, 10, 3), a, STATES),
        (dt.date(year, 10, 31), a, reformation),
        (dt.date(year, 11, 1), a, ("BW", "BY", "NW", "RP")),
        (repentance, a, ("SN",)),
        (dt.date(year, 12, 25), c, STATES),
        (dt.date(year, 12, 26), c, STATES),
    ]
    return [(np.datetime64(day, "D"), code, states) for day, code, states in rules]


def _school_holidays(rng: np.random.Generator, year: int) -> list[tuple[np.datetime64, int]]:
    """One state's school holidays in ``year`` as (first day, length): dates vary by state."""
    easter = np.datetime64(easter_sunday(year), "D")
    return [
        (easter - 7 + int(rng.integers(-7, 8)), 14),
        (np.datetime64(f"{year}-06-20") + int(rng.integers(0, 42)), 42),
        (np.datetime64(f"{year}-10-01") + int(rng.integers(0, 24)), int(rng.integers(7, 15))),
        (np.datetime64(f"{year}-12-21") + int(rng.integers(0, 4)), int(rng.integers(14, 18))),
    ]


# --- daily simulation -----------------------------------------------------------------------


def _simulate_days(
    rng: np.random.Generator,
    geo: _Geography,
    stores: pl.DataFrame,
    cal: _Calendar,
    regional: np.ndarray,
) -> dict[str, np.ndarray]:
    """Open, Sales and Customers for every (day, store), as [n_days, n_stores] arrays."""
    n_days, n_stores = len(cal.days), len(geo.store_state)
    dow = _day_of_week(cal.days)
    holiday = cal.holiday[:, geo.store_state]
    school = cal.school[:, geo.store_state]
    open_ = _draw_open(rng, dow, holiday)

    level = (
        np.log(BASE_SALES)
        + geo.store_geo
        + _effect(stores["StoreType"], TYPE_EFFECT)
        + _effect(stores["Assortment"], ASSORTMENT_EFFECT)
        + rng.normal(0.0, STORE_SD, n_stores)
    )
    promo_lift = rng.normal(PROMO_MEAN, PROMO_SD, n_stores)
    trend = rng.normal(TREND_MEAN, TREND_SD, n_stores)
    years = (cal.days - cal.days[len(cal.days) // 2]).astype(np.float64) / 365.25
    month, day_of_month = _month(cal.days), _day_of_month(cal.days)
    calendar_effect = (
        DOW_EFFECT[dow]
        + MONTH_EFFECT[month]
        + PRE_CHRISTMAS * ((month == 12) & (day_of_month >= 14) & (day_of_month <= 23))
    )
    eve = np.zeros_like(holiday, dtype=bool)
    eve[:-1] = holiday[1:] > 0
    log_sales = (
        level
        + trend * years[:, None]
        + calendar_effect[:, None]
        + promo_lift * cal.promo[:, None]
        + SCHOOL_EFFECT * school
        + EVE_EFFECT * eve
        + regional[:, geo.store_state]
        + rng.normal(0.0, NOISE_SD, (n_days, n_stores))
    )
    # Kaggle has a few dozen open days with no sales in ~850k; keep that rate.
    sold = open_ & (rng.random((n_days, n_stores)) >= 6e-5)
    sales = np.where(sold, np.round(np.exp(log_sales)), 0).astype(np.int64)
    customers = _draw_customers(rng, sales, stores["StoreType"])
    return {
        "Open": open_.astype(np.int64),
        "Sales": sales,
        "Customers": customers,
        "Promo": np.broadcast_to(cal.promo[:, None], (n_days, n_stores)).astype(np.int64),
        "StateHoliday": holiday,
        "SchoolHoliday": school.astype(np.int64),
    }


def _draw_open(rng: np.random.Generator, dow: np.ndarray, holiday: np.ndarray) -> np.ndarray:
    """Which store-days are open: Sundays and holidays mostly closed, refits, rare closures."""
    n_days, n_stores = holiday.shape
    # A few stores (think railway stations) open on Sundays and most holidays.
    always_open = rng.random(n_stores) < 0.03
    holiday_open = rng.random((n_days, n_stores)) < np.where(always_open, 0.8, 0.02)
    closed = ((dow == 7)[:, None] & ~always_open) | ((holiday > 0) & ~holiday_open)
    closed |= rng.random((n_days, n_stores)) < 0.002
    # Some stores close for a refit of weeks or months, as several Kaggle stores do.
    for s in np.flatnonzero(rng.random(n_stores) < 0.05):
        begin = int(rng.integers(n_days))
        closed[begin : begin + int(rng.integers(20, 151)), s] = True
    return ~closed


def _draw_customers(
    rng: np.random.Generator, sales: np.ndarray, store_type: pl.Series
) -> np.ndarray:
    """Customers ~ Sales / average ticket; type b stores sell small baskets to many people."""
    ticket = 9.5 * np.exp(rng.normal(0.0, 0.1, sales.shape[1]))
    ticket = np.where(store_type.to_numpy() == "b", 0.55 * ticket, ticket)
    customers = np.round(sales / ticket * np.exp(rng.normal(0.0, 0.04, sales.shape)))
    return np.where(sales > 0, np.maximum(customers, 1), 0).astype(np.int64)


def _effect(values: pl.Series, effects: dict[str, float]) -> np.ndarray:
    return values.replace_strict(effects, return_dtype=pl.Float64).to_numpy()


# --- output frames --------------------------------------------------------------------------


def _long(days: np.ndarray, grids: dict[str, np.ndarray], stores: np.ndarray) -> pl.DataFrame:
    """Stack [day, store] grids into rows: newest day first, stores ascending within a day."""
    newest_first = slice(None, None, -1)
    grid_rows = {name: grid[newest_first][:, stores - 1].ravel() for name, grid in grids.items()}
    return pl.DataFrame(
        {
            "Store": np.tile(stores, len(days)),
            "DayOfWeek": np.repeat(_day_of_week(days)[newest_first], len(stores)),
            "Date": pl.Series(np.repeat(days[newest_first], len(stores))),
            **grid_rows,
        }
    ).with_columns(
        pl.col("StateHoliday").replace_strict(HOLIDAY_INDEX, return_dtype=pl.String),
        pl.col("SchoolHoliday").cast(pl.String),
    )


def _train_frame(days: np.ndarray, grids: dict[str, np.ndarray]) -> pl.DataFrame:
    n_stores = grids["Open"].shape[1]
    frame = _long(days, grids, np.arange(1, n_stores + 1))
    columns = ["Store", "DayOfWeek", "Date", "Sales", "Customers", "Open", "Promo"]
    return frame.select(*columns, "StateHoliday", "SchoolHoliday")


def _test_frame(
    rng: np.random.Generator, days: np.ndarray, grids: dict[str, np.ndarray]
) -> pl.DataFrame:
    """Test rows for about 3/4 of the stores, Ids from 1, one store with a few blank Open."""
    n_stores = grids["Open"].shape[1]
    chosen = rng.random(n_stores) < 0.77
    chosen[rng.integers(n_stores)] = True  # never an empty store list
    stores = np.flatnonzero(chosen) + 1
    frame = _long(days, grids, stores).with_row_index("Id", offset=1)
    frame = frame.with_columns(pl.col("Id").cast(pl.Int64))
    # Kaggle's test.csv has 11 blank Open values, all for one store and not on Sundays.
    candidates = frame.filter(
        (pl.col("Store") == int(rng.choice(stores))) & (pl.col("DayOfWeek") != 7)
    )["Id"].to_numpy()
    blank = rng.choice(candidates, size=min(11, len(candidates)), replace=False) - 1
    frame = frame.with_columns(frame["Open"].scatter(blank, None))
    columns = ["Id", "Store", "DayOfWeek", "Date", "Open", "Promo"]
    return frame.select(*columns, "StateHoliday", "SchoolHoliday")


def _store_states_frame(geo: _Geography) -> pl.DataFrame:
    states = np.array(STATES)[geo.store_state]
    return pl.DataFrame({"Store": np.arange(1, len(states) + 1), "State": states})


def _state_locations_frame(geo: _Geography) -> pl.DataFrame:
    return pl.DataFrame({"State": list(STATES), "x": geo.state_xy[:, 0], "y": geo.state_xy[:, 1]})


def _store_locations_frame(geo: _Geography) -> pl.DataFrame:
    return _store_states_frame(geo).with_columns(
        x=pl.Series(geo.store_xy[:, 0]), y=pl.Series(geo.store_xy[:, 1])
    )


# --- writing --------------------------------------------------------------------------------


def _write_kaggle_csv(frame: pl.DataFrame, path: Path, *, quoted: list[str]) -> None:
    """Write like Kaggle: header and text columns quoted, numbers and dates bare, nulls blank.

    polars' ``non_numeric`` style would also quote the dates, so quote by hand instead.
    """
    frame = frame.with_columns(pl.format('"{}"', pl.col(c)).alias(c) for c in quoted)
    frame = frame.rename(lambda name: f'"{name}"')
    atomic_write(path, lambda tmp: frame.write_csv(tmp, quote_style="never"))


def _write_plain_csv(frame: pl.DataFrame, path: Path) -> None:
    """Write with quotes only where needed (the state code "HB,NI")."""
    atomic_write(path, lambda tmp: frame.write_csv(tmp, quote_style="necessary",
                                                   float_precision=6))


# --- numpy date helpers ---------------------------------------------------------------------


def _days(first: np.datetime64, day: np.datetime64) -> int:
    return int((np.datetime64(day, "D") - first).astype(np.int64))


def _day_of_week(days: np.ndarray) -> np.ndarray:
    """1 = Monday .. 7 = Sunday (1970-01-01 was a Thursday)."""
    return (days.astype("datetime64[D]").astype(np.int64) + 3) % 7 + 1


def _year(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[Y]").astype(np.int64) + 1970


def _month(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[M]").astype(np.int64) % 12 + 1


def _day_of_month(days: np.ndarray) -> np.ndarray:
    return (days - days.astype("datetime64[M]")).astype(np.int64) + 1


def _day_of_year(days: np.ndarray) -> np.ndarray:
    return (days - days.astype("datetime64[Y]")).astype(np.int64)
