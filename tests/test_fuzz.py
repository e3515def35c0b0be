"""Fuzzing the edges: whatever bytes or values come in, the answer is a result or one
``InputError`` / ``OptionError``, never another exception."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl
import pytest
from conftest import TINY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rossmann_embed.rossmann.io import read_rossmann
from rossmann_embed.tabular.columns import infer_roles
from rossmann_embed.tabular.config import NetworkConfig, OptionError
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.tables import read_table

FUZZ = settings(max_examples=60, deadline=None,
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
