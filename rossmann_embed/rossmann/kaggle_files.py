"""Read and validate the Rossmann files: one explicit schema per file, typed polars frames.

Every file is read as text first and then parsed column by column, so that a bad value is
reported with its file, line, column and what was expected (``InputError``), never as a
stack trace from deep inside a CSV parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from rossmann_embed.rossmann.states import german_states
from rossmann_embed.tabular.errors import NUMBER_RULE, InputError, first_line
from rossmann_embed.tabular.tables import check_kind

HELP = "see data/README.md for where to get the Rossmann files"
STATE_HOLIDAYS = ["0", "a", "b", "c"]
PROMO_INTERVALS = ["Jan,Apr,Jul,Oct", "Feb,May,Aug,Nov", "Mar,Jun,Sept,Dec"]


@dataclass(frozen=True)
class Column:
    """How to parse one column: kind is int, float, date or str; nullable allows blanks."""

    kind: str
    nullable: bool = False
    allowed: tuple | None = None
    minimum: float | None = None


BINARY = Column("int", allowed=(0, 1))

# The schemas of every input file, in one place.
SCHEMAS: dict[str, dict[str, Column]] = {
    "train.csv": {
        "Store": Column("int", minimum=1),
        "DayOfWeek": Column("int", allowed=tuple(range(1, 8))),
        "Date": Column("date"),
        "Sales": Column("int", minimum=0),
        "Customers": Column("int", minimum=0),
        "Open": BINARY,
        "Promo": BINARY,
        "StateHoliday": Column("str", allowed=tuple(STATE_HOLIDAYS)),
        "SchoolHoliday": BINARY,
    },
    "test.csv": {
        "Id": Column("int", minimum=1),
        "Store": Column("int", minimum=1),
        "DayOfWeek": Column("int", allowed=tuple(range(1, 8))),
        "Date": Column("date"),
        "Open": Column("int", nullable=True, allowed=(0, 1)),
        "Promo": BINARY,
        "StateHoliday": Column("str", allowed=tuple(STATE_HOLIDAYS)),
        "SchoolHoliday": BINARY,
    },
    "store.csv": {
        "Store": Column("int", minimum=1),
        "StoreType": Column("str", allowed=("a", "b", "c", "d")),
        "Assortment": Column("str", allowed=("a", "b", "c")),
        "CompetitionDistance": Column("float", nullable=True, minimum=0),
        "CompetitionOpenSinceMonth": Column("int", nullable=True, allowed=tuple(range(1, 13))),
        "CompetitionOpenSinceYear": Column("int", nullable=True, minimum=1900),
        "Promo2": BINARY,
        "Promo2SinceWeek": Column("int", nullable=True, allowed=tuple(range(1, 54))),
        "Promo2SinceYear": Column("int", nullable=True, minimum=1900),
        "PromoInterval": Column("str", nullable=True, allowed=tuple(PROMO_INTERVALS)),
    },
    "store_states.csv": {
        "Store": Column("int", minimum=1),
        "State": Column("str", allowed=tuple(german_states().get_column("code"))),
    },
    "weather": {
        "Date": Column("date"),
        "Max_TemperatureC": Column("float", nullable=True),
        "Mean_TemperatureC": Column("float", nullable=True),
        "Min_TemperatureC": Column("float", nullable=True),
        "Mean_Humidity": Column("float", nullable=True),
        "Mean_Wind_SpeedKm_h": Column("float", nullable=True),
        "Precipitationmm": Column("float", nullable=True),
        "CloudCover": Column("float", nullable=True),
        "Events": Column("str", nullable=True),
    },
}
KEYS = {"train.csv": ["Store", "Date"], "test.csv": ["Store", "Date"], "store.csv": ["Store"],
        "store_states.csv": ["Store"], "weather": ["Date"]}


@dataclass
class RossmannData:
    """The validated inputs. ``weather`` and ``trends`` are None when absent or switched off."""

    train: pl.DataFrame
    test: pl.DataFrame
    stores: pl.DataFrame  # store.csv joined with store_states.csv
    weather: pl.DataFrame | None = None  # State, Date, weather columns
    trends: pl.DataFrame | None = None  # State ("DE" for Germany), WeekStart, Trend


def read_rossmann(
    data_dir: str | Path,
    *,
    test_path: str | Path | None = None,
    weather: bool = True,
    trends: bool = True,
) -> RossmannData:
    """Read and validate a Rossmann data directory (Kaggle files + the solution's external files).

    ``test_path`` replaces the directory's ``test.csv`` (any file in Kaggle's test layout).
    Weather and Google-trend files are optional: they are used when present and requested.
    """
    data_dir = Path(data_dir)
    train = read_kaggle_csv(data_dir / "train.csv", "train.csv")
    test = read_kaggle_csv(Path(test_path) if test_path else data_dir / "test.csv", "test.csv")
    stores = read_stores(data_dir)
    for name, table in (("train.csv", train), ("test.csv", test)):
        check_stores_known(table, stores, name)
    return RossmannData(
        train=train,
        test=test,
        stores=stores,
        weather=read_weather(data_dir / "external" / "weather") if weather else None,
        trends=read_trends(data_dir / "external" / "googletrend") if trends else None,
    )


def read_stores(data_dir: str | Path) -> pl.DataFrame:
    """store.csv joined with store_states.csv; both must list the same stores."""
    data_dir = Path(data_dir)
    stores = read_kaggle_csv(data_dir / "store.csv", "store.csv")
    states = read_kaggle_csv(data_dir / "external" / "store_states.csv", "store_states.csv")
    _check_stores_known(stores, states, "store_states.csv", "store.csv")
    return stores.join(states, on="Store", how="left")


def check_stores_known(table: pl.DataFrame, stores: pl.DataFrame, file: str) -> None:
    """Every store of ``table`` (read from ``file``) is in store.csv and store_states.csv."""
    _check_stores_known(table, stores, "store.csv and store_states.csv", file)


def read_kaggle_csv(path: Path, schema_name: str, separator: str = ",") -> pl.DataFrame:
    """Read one CSV and parse it against ``SCHEMAS[schema_name]``.

    A typed read is tried first (fast); if any value does not parse, the file is read again
    as text so that the error can name the first bad line.
    """
    if not path.is_file():
        if path.is_dir():
            raise InputError.at(str(path), f"{path.name} to be a file, not a directory")
        raise InputError.at(str(path), f"the file {path.name} to exist", hint=HELP)
    check_utf8(path)
    schema = SCHEMAS[schema_name]
    header = read_csv(path, n_rows=0, separator=separator).columns
    for column in schema:
        if column not in header:
            raise InputError.at(
                str(path), f"a column named {column!r} in the header", line=1, column=column,
                value=",".join(header),
            )
    options = {"separator": separator, "null_values": ["", "NA"], "columns": list(schema)}
    try:
        dtypes = {c: DTYPES[spec.kind] for c, spec in schema.items()}
        table = pl.read_csv(path, schema_overrides=dtypes, **options)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
        raw = read_csv(path, infer_schema=False, **options)
        table = raw.select(_parse(raw.get_column(c), spec, str(path)) for c, spec in schema.items())
    if table.is_empty():
        raise InputError.at(str(path), "at least one data row below the header")
    table = table.with_columns(_finite(table.get_column(c), str(path))
                               for c, spec in schema.items() if spec.kind == "float")
    for column, spec in schema.items():
        _validate(table.get_column(column), spec, str(path))
    check_unique(table, KEYS[schema_name], str(path))
    if "Id" in schema:
        check_unique(table, ["Id"], str(path))
    return table


def read_csv(path: Path, **options: Any) -> pl.DataFrame:
    """``pl.read_csv``; what polars cannot read (a ragged row, a broken quote) is one
    ``InputError`` line with polars' reason."""
    try:
        return pl.read_csv(path, **options)
    # A panic of polars' reader on some broken bytes is not an Exception: caught by name.
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as error:
        reason = first_line(error) or type(error).__name__
        raise InputError.at(str(path), f"a CSV file polars can read ({reason})") from None


def check_utf8(path: Path) -> None:
    """An ``InputError`` for an empty file, one whose bytes are no text (a parquet file, an
    archive), or naming the first line that is not UTF-8 text (Kaggle's files are)."""
    data = path.read_bytes()
    if not data.strip():
        raise InputError.at(str(path), "a header and data rows (the file is empty)")
    check_kind(path, "text")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputError.at(str(path), "UTF-8 text (save the file as UTF-8)", line=line,
                            value=f"byte 0x{data[error.start]:02x}") from None


def read_weather(folder: Path) -> pl.DataFrame | None:
    """Daily weather per state code, from the solution's per-state files (None if absent)."""
    if not folder.is_dir():
        return None
    frames = []
    for row in german_states().iter_rows(named=True):
        path = folder / f"{row['weather_file']}.csv"
        if not path.is_file():
            raise InputError.at(str(path), f"a weather file for state {row['code']}", hint=HELP)
        table = read_kaggle_csv(path, "weather", separator=";")
        frames.append(table.with_columns(State=pl.lit(row["code"])))
    return pl.concat(frames)


def read_trends(folder: Path) -> pl.DataFrame | None:
    """Weekly Google trends: State ("DE": Germany), WeekStart (a Sunday), Trend; None if absent."""
    if not folder.is_dir():
        return None
    frames = []
    codes = ["DE", *german_states().get_column("code").to_list()]
    for code in codes:
        # HB,NI shares Niedersachsen's trend file, as in the original solution.
        suffix = "" if code == "DE" else "_" + code.split(",")[-1]
        path = folder / f"Rossmann_DE{suffix}.csv"
        if not path.is_file():
            raise InputError.at(str(path), f"a Google-trend file for {code}", hint=HELP)
        check_utf8(path)
        raw = read_csv(path, infer_schema=False)
        if raw.width < 2 or raw.is_empty():
            raise InputError.at(str(path), "a week column and a trend column, with rows",
                                line=1, value=",".join(raw.columns))
        week, value = raw.columns[:2]
        start = _parse(raw.get_column(week).str.slice(0, 10), Column("date"), str(path))
        trend = _finite(_parse(raw.get_column(value), Column("float"), str(path)), str(path))
        for series, kind in ((start, "date"), (trend, "float")):
            _validate(series, Column(kind), str(path))
        frames.append(pl.DataFrame({"State": code, "WeekStart": start, "Trend": trend}))
    return pl.concat(frames)


DTYPES = {"int": pl.Int64, "float": pl.Float64, "date": pl.Date, "str": pl.String}
EXPECTED = {"int": "a whole number", "float": "a number", "date": "a date like 2015-07-31",
            "str": "a value"}


def _parse(raw: pl.Series, spec: Column, file: str) -> pl.Series:
    """Parse a text column; the first value that does not parse raises an InputError."""
    text = raw.str.strip_chars()
    if spec.kind == "date":
        parsed = text.str.to_date("%Y-%m-%d", strict=False)
    else:
        parsed = text.cast(DTYPES[spec.kind], strict=False)
    _fail_first(raw, raw.is_not_null() & parsed.is_null(), file, EXPECTED[spec.kind])
    return parsed.alias(raw.name)


def _finite(numbers: pl.Series, file: str) -> pl.Series:
    """The one rule for numbers: NaN spelled out is a blank (missing), infinity an error."""
    _fail_first(numbers, numbers.is_infinite(), file, NUMBER_RULE)
    return numbers.fill_nan(None)


def _validate(parsed: pl.Series, spec: Column, file: str) -> None:
    """Blanks, allowed values and minimums; the first bad value raises an InputError."""
    if not spec.nullable:
        _fail_first(parsed, parsed.is_null(), file, f"{EXPECTED[spec.kind]}, not a blank")
    if spec.allowed is not None:
        allowed = ", ".join(str(v) for v in spec.allowed)
        bad = parsed.is_not_null() & ~parsed.is_in(list(spec.allowed))
        _fail_first(parsed, bad, file, f"one of {allowed}")
    if spec.minimum is not None:
        _fail_first(parsed, parsed < spec.minimum, file, f"a value >= {spec.minimum:g}")


def _fail_first(raw: pl.Series, bad: pl.Series, file: str, expected: str) -> None:
    if bad.any():
        row = int(bad.arg_true()[0])
        raise InputError.at(file, expected, line=row + 2, column=raw.name, value=raw[row])


def check_unique(table: pl.DataFrame, keys: list[str], file: str) -> None:
    repeated = ~table.select(pl.struct(keys).is_first_distinct()).to_series()
    if repeated.any():
        row = int(repeated.arg_true()[0])
        key = table.row(row, named=True)
        first = table.with_row_index().filter(
            pl.all_horizontal(pl.col(k) == key[k] for k in keys)
        ).item(0, "index")
        raise InputError.at(
            file, f"one row per ({', '.join(keys)}); it repeats line {first + 2}",
            line=row + 2, column=",".join(keys), value=", ".join(str(key[k]) for k in keys),
        )


def _check_stores_known(table: pl.DataFrame, stores: pl.DataFrame, stores_file: str,
                        file: str) -> None:
    unknown = ~table.get_column("Store").is_in(stores.get_column("Store").implode())
    if unknown.any():
        row = int(unknown.arg_true()[0])
        raise InputError.at(
            file, f"a store listed in {stores_file}", line=row + 2, column="Store",
            value=table[row, "Store"],
        )
