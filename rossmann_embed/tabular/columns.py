"""Which columns of a table are categorical, continuous or dates: named, or inferred and reported.

Columns named by the user keep the role given. Every other column is inferred from its type:

- strings, categoricals and booleans are categorical;
- integers with few distinct values are codes (a store id, a weekday, a year, a size):
  embedded as categories and also given to the network as numbers (``COLUMN_number``), so
  that a value never seen in training still says where it lies; other integers and all
  floats are continuous;
- the time column, when it holds numbers, is continuous only: its later values are new.
- a date or datetime becomes calendar parts: the year (continuous, so a later year is not an
  unknown category), month, day, day of week and week of year (categorical) and the day of
  the year (continuous).

``ColumnRoles`` records the decision and the reason for each column, travels as plain data
inside a run, and applies the same date expansion to any later table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import polars as pl

from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.tables import as_numbers, given, require_column

FEW_CODES = 20  # at most this many distinct integers: always categorical
MAX_CODES = 2000  # more distinct integers than this: continuous (a count, an amount)
CODE_SHARE = 0.01  # ... and so are integers with more distinct values than 1% of the rows
NUMBER_SHARE = 0.95  # text of which this share or more are numbers: a number column, typos named
DATE_PARTS: dict[str, tuple[str, Callable[[pl.Expr], pl.Expr]]] = {
    # part -> (role, expression on the date)
    "year": ("continuous", lambda date: date.dt.year()),
    "month": ("categorical", lambda date: date.dt.month()),
    "day": ("categorical", lambda date: date.dt.day()),
    "weekday": ("categorical", lambda date: date.dt.weekday()),
    "week": ("categorical", lambda date: date.dt.week()),
    "dayofyear": ("continuous", lambda date: date.dt.ordinal_day()),
}


@dataclass
class ColumnRoles:
    """The model's input columns: categorical and continuous ones (date parts included), the
    date columns they came from, and why each input column got its role."""

    categorical: list[str]
    continuous: list[str]
    dates: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    numbers: list[str] = field(default_factory=list)  # codes also given as numbers

    @property
    def inputs(self) -> list[str]:
        """The columns a table must have: non-date inputs and the date columns."""
        derived = {part_name(d, p) for d in self.dates for p in DATE_PARTS}
        derived |= {part_name(c, "number") for c in self.numbers}
        return [c for c in [*self.categorical, *self.continuous] if c not in derived] + self.dates

    def expand(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with each date column replaced by its calendar parts."""
        parts = [
            expression(pl.col(d)).alias(part_name(d, part))
            for d in self.dates for part, (_, expression) in DATE_PARTS.items()
        ] + [pl.col(c).alias(part_name(c, "number")) for c in self.numbers]
        return frame.with_columns(parts).drop(self.dates) if parts else frame

    def report(self) -> list[str]:
        """One line per input column: its role and why."""
        return [f"{column}: {reason}" for column, reason in self.reasons.items()]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ColumnRoles:
        return cls(**data)


def part_name(date_column: str, part: str) -> str:
    return f"{date_column}_{part}"


def infer_roles(frame: pl.DataFrame, *, categorical: Sequence[str] | None = None,
                continuous: Sequence[str] | None = None,
                source: str = "table", time_column: str | None = None,
                first_line: int | None = None) -> ColumnRoles:
    """Roles for every column of ``frame`` (the inputs, without the target): the named ones as
    given, a numeric ``time_column`` continuous, the others inferred from their type and
    number of distinct values. ``first_line``: the file line of row 0, for messages (else
    rows are named)."""
    named_categorical, named_continuous = list(categorical or []), list(continuous or [])
    for column in [*named_categorical, *named_continuous]:
        require_column(frame, column, source, "--categorical or --continuous")
    both = set(named_categorical) & set(named_continuous)
    if both:
        name = sorted(both)[0]
        raise InputError.at(source, "each column either categorical or continuous, not both",
                            column=name)
    roles = ColumnRoles([], [])
    for column in frame.columns:
        dtype = frame.schema[column]
        if column in named_categorical:
            role, reason = "categorical", "categorical (named)"
        elif column in named_continuous:
            if not dtype.is_numeric() and dtype not in (pl.Boolean, pl.String):
                raise InputError.at(source, "numbers in a continuous column", column=column,
                                    value=str(dtype))
            # Text is read as numbers: tables.check_numbers names any line that is none.
            role, reason = "continuous", "continuous (named)"
        elif column == time_column and dtype.is_numeric():
            role, reason = "continuous", "continuous (the time column: later values are new)"
        else:
            role, reason = _inferred_role(frame.get_column(column), source, first_line)
        if role == "code":
            roles.categorical.append(column)
            roles.numbers.append(column)
            roles.continuous.append(part_name(column, "number"))
        elif role == "date":
            roles.dates.append(column)
            for part, (part_role, _) in DATE_PARTS.items():
                getattr(roles, part_role).append(part_name(column, part))
        else:
            getattr(roles, role).append(column)
        roles.reasons[column] = reason
    return roles


def _numbers_as_text(values: pl.Series, source: str, first_line: int | None) -> str:
    """The reason to take a text column as numbers ("" if not): every value given is a
    number, as when a CSV spells a missing one ``nan``. When nearly all are and they take
    many values, the first that is not is an ``InputError``: a typo must not turn a number
    column into categories."""
    present = given(values)
    numbers = as_numbers(values)
    bad = present & numbers.is_null()
    count = int(present.sum())
    if not count or int(bad.sum()) > (1 - NUMBER_SHARE) * count:
        return ""
    if bad.any() and numbers.drop_nulls().n_unique() <= FEW_CODES:
        return ""  # codes with a few letters among them (Kaggle's StateHoliday: 0, a, b, c)
    if bad.any():
        row = int(bad.arg_true()[0])
        raise InputError.at(source, f"a number, as {1 - bad.sum() / count:.0%} of the column's "
                            "values are (--categorical to embed it as text)",
                            column=values.name, value=values[row], row=row,
                            first_line=first_line)
    return "continuous (numbers written as text)"


def _inferred_role(values: pl.Series, source: str,
                   first_line: int | None = None) -> tuple[str, str]:
    dtype = values.dtype
    if dtype == pl.String and (numbers := _numbers_as_text(values, source, first_line)):
        return "continuous", numbers
    if dtype in (pl.String, pl.Categorical, pl.Boolean) or isinstance(dtype, pl.Enum):
        return "categorical", f"categorical ({_type_name(dtype)})"
    if dtype in (pl.Date, pl.Datetime) or isinstance(dtype, pl.Datetime):
        parts = ", ".join(DATE_PARTS)
        return "date", f"date -> calendar parts ({parts})"
    if dtype.is_integer():
        distinct = values.n_unique()
        limit = max(FEW_CODES, min(MAX_CODES, int(CODE_SHARE * len(values))))
        if distinct <= limit:
            return "code", (f"categorical (integer, {distinct} distinct <= {limit}), and as a "
                            f"number ({part_name(values.name, 'number')})")
        return "continuous", f"continuous (integer, {distinct} distinct > {limit})"
    if dtype.is_float():
        return "continuous", "continuous (float)"
    if dtype == pl.Null:
        raise InputError.at(source, "a column with values (every one is empty: drop it with "
                            "--drop)", column=values.name)
    raise InputError.at(source, "a string, boolean, number or date column (name it in --drop "
                        "to leave it out)", column=values.name, value=str(dtype))


def _type_name(dtype: pl.DataType) -> str:
    return "string" if dtype == pl.String else str(dtype).lower()
