"""Fuzzing the edges: whatever bytes or values come in, the answer is a result or one
``InputError`` / ``OptionError``, never another exception."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import polars as pl
import pytest
from conftest import TINY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rossmann_embed.rossmann.geography import german_states
from rossmann_embed.rossmann.io import read_rossmann
from rossmann_embed.tabular.columns import infer_roles
from rossmann_embed.tabular.config import NetworkConfig, OptionError
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.tables import read_table

# 60 cases a test in CI; FUZZ_EXAMPLES=1000 for a longer hunt.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
CELL_TEXT = st.one_of(st.text(max_size=12), st.sampled_from(
    ["", "NA", "-1", "1e309", "2015-02-30", "0x1F", " 5", "5 ", "a,b", '"', "\u00e9", "nan"]))


def write_tiny(folder: Path, file: str, row: int, column: int, value: str) -> None:
    for name, lines in TINY.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name != file:
            path.write_text("\n".join(lines) + "\n")
            continue
        rows = list(csv.reader(lines))
        rows[1 + row % (len(rows) - 1)][column % len(rows[0])] = value
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        path.write_text(text.getvalue())


@FUZZ
@given(file=st.sampled_from(["train.csv", "test.csv", "store.csv", "external/store_states.csv"]),
       row=st.integers(0, 10), column=st.integers(0, 10), value=CELL_TEXT)
def test_any_cell_of_the_rossmann_files(tmp_path_factory: pytest.TempPathFactory, file: str,
                                        row: int, column: int, value: str) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    write_tiny(folder, file, row, column, value)
    try:
        read_rossmann(folder, weather=False, trends=False)
    except InputError as error:
        message = str(error)
        assert "\n" not in message and any(Path(name).name in message for name in TINY)


@FUZZ
@given(content=st.binary(max_size=200), suffix=st.sampled_from([".csv", ".parquet", ".txt"]))
def test_any_bytes_as_a_table(tmp_path_factory: pytest.TempPathFactory, content: bytes,
                              suffix: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / f"table{suffix}"
    path.write_bytes(content)
    try:
        frame = read_table(path)
    except InputError as error:
        assert "\n" not in str(error)
    else:
        assert frame.height > 0


COLUMNS = st.one_of(
    st.lists(st.integers(-5, 5), min_size=4, max_size=4),
    st.lists(st.floats(allow_nan=True), min_size=4, max_size=4),
    st.lists(st.text(max_size=3), min_size=4, max_size=4),
    st.lists(st.booleans(), min_size=4, max_size=4),
    st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=4, max_size=4),
)


@FUZZ
@given(columns=st.lists(COLUMNS, min_size=1, max_size=4))
def test_any_frame_gets_roles(columns: list[list]) -> None:
    frame = pl.DataFrame({f"c{i}": values for i, values in enumerate(columns)}, strict=False)
    try:
        roles = infer_roles(frame)
    except InputError as error:  # a column without any value
        assert "every one is empty" in str(error)
        return
    assert set(roles.reasons) == set(frame.columns)
    assert set(roles.categorical).isdisjoint(roles.continuous)


VALUES = st.one_of(st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True),
                   st.booleans(), st.text(max_size=4), st.none(),
                   st.lists(st.integers(-2, 2), max_size=3))


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(
    ["epochs", "batch_size", "learning_rate", "weight_decay", "seed", "seeds", "dropout",
     "hidden_sizes", "embedding_dropout", "patience", "loss", "logger"]), VALUES, max_size=3))
def test_any_option_values(changes: dict) -> None:
    config = NetworkConfig(**changes)
    try:
        config.check()
    except OptionError as error:
        assert error.option in changes or error.option == "dropout"


# --- headers, bytes, weather and trend files -----------------------------------------------------

WEATHER_HEADER = ("Date;Max_TemperatureC;Mean_TemperatureC;Min_TemperatureC;Dew_PointC;"
                  "MeanDew_PointC;Min_DewpointC;Max_Humidity;Mean_Humidity;Min_Humidity;"
                  "Max_Sea_Level_PressurehPa;Mean_Sea_Level_PressurehPa;"
                  "Min_Sea_Level_PressurehPa;Max_VisibilityKm;Mean_VisibilityKm;"
                  "Min_VisibilitykM;Max_Wind_SpeedKm_h;Mean_Wind_SpeedKm_h;Max_Gust_SpeedKm_h;"
                  "Precipitationmm;CloudCover;Events;WindDirDegrees")
WEATHER_ROW = ";21;16;11;10;8;6;94;70;43;1021;1019;1017;31;12;10;19;8;NA;0.00;5;Rain;239"


def external_files(folder: Path) -> list[Path]:
    """Valid weather (12 states) and Google-trend (13 series) files for TINY's days."""
    states = german_states()
    paths = []
    for stem in states["weather_file"].to_list():
        rows = [f"2015-0{d}{WEATHER_ROW}" for d in ("6-30", "7-01", "7-02")]
        paths.append(folder / "external" / "weather" / f"{stem}.csv")
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        paths[-1].write_text("\n".join([WEATHER_HEADER, *rows]) + "\n")
    for code in ["", *(c.split(",")[-1] for c in states["code"].to_list())]:
        paths.append(folder / "external" / "googletrend" / f"Rossmann_DE{'_' * bool(code)}"
                     f"{code}.csv")
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        paths[-1].write_text("Woche,Rossmann\n2015-06-28 - 2015-07-04,61\n")
    return paths


def write_valid(folder: Path) -> None:
    for name, lines in TINY.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("\n".join(lines) + "\n")
    external_files(folder)


def assert_one_line_naming(error: InputError, path: Path) -> None:
    message = str(error)
    assert "\n" not in message and path.name in message, message


FILES = [*TINY, "external/weather/Bayern.csv", "external/googletrend/Rossmann_DE.csv",
         "external/googletrend/Rossmann_DE_NI.csv"]


@FUZZ
@given(file=st.sampled_from(FILES), row=st.integers(0, 5), column=st.integers(0, 30),
       value=CELL_TEXT, header=st.booleans())
def test_any_cell_or_header_of_any_input_file(tmp_path_factory: pytest.TempPathFactory,
                                              file: str, row: int, column: int, value: str,
                                              header: bool) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    write_valid(folder)
    path = folder / file
    separator = ";" if "weather" in file else ","
    rows = list(csv.reader(path.read_text().splitlines(), delimiter=separator))
    target = rows[0] if header else rows[1 + row % (len(rows) - 1)]
    target[column % len(target)] = value
    text = io.StringIO()
    csv.writer(text, delimiter=separator, lineterminator="\n").writerows(rows)
    path.write_text(text.getvalue())
    try:
        read_rossmann(folder)
    except InputError as error:
        assert_one_line_naming(error, path)


@FUZZ
@given(file=st.sampled_from(FILES), at=st.floats(0, 1), cut=st.booleans(),
       junk=st.binary(min_size=1, max_size=8))
def test_any_bytes_in_any_input_file(tmp_path_factory: pytest.TempPathFactory, file: str,
                                     at: float, cut: bool, junk: bytes) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    write_valid(folder)
    path = folder / file
    content = path.read_bytes()
    position = int(at * len(content))
    path.write_bytes(content[:position] if cut else content[:position] + junk
                     + content[position:])
    try:
        read_rossmann(folder)
    except InputError as error:
        assert_one_line_naming(error, path)
