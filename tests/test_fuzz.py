"""Fuzzing the edges: whatever bytes or values come in, the answer is a result or one
``InputError`` / ``OptionError``, never another exception."""

from __future__ import annotations

import csv
import io
import math
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from conftest import TINY, shop_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rossmann_embed.cli import main
from rossmann_embed.rossmann.kaggle_files import read_rossmann
from rossmann_embed.rossmann.states import german_states
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


# --- run directories and the options of commands -------------------------------------------------

QUICK = ["--epochs", "1", "--lightgbm-weight", "0", "--validation-days", "0", "--hidden-sizes",
         "8"]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Exit status and standard error of one command."""
    status, _, err = run_cli_output(argv, capsys)
    return status, err


def run_cli_output(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Exit status, standard output and standard error of one command."""
    try:
        main(argv)
        status = 0
    except SystemExit as stopped:
        status = int(stopped.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_clean_outcome(status: int, err: str, names: list[str]) -> None:
    """Success, or exit 2 whose last line (argparse puts its usage above) names one of
    ``names`` and is not a traceback."""
    assert status in (0, 2), err
    assert "Traceback" not in err
    if status == 2:
        last = err.strip().splitlines()[-1]
        assert last.startswith("rossmann-embed: error:") or "error: argument" in last, err
        assert any(name in last for name in names), last


def assert_nothing_half_written(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A trained one-epoch run on the hand-written tiny data, and that data."""
    root = tmp_path_factory.mktemp("tiny-run")
    for name, lines in TINY.items():
        (root / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "data" / name).write_text("\n".join(lines) + "\n")
    main(["train", "--data-dir", str(root / "data"), "--out", str(root / "run"), *QUICK])
    return root / "data", root / "run"


RUN_FILES = ["checkpoints/seed-0/best.ckpt", "checkpoints/seed-0/last.ckpt", "config.json"]


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 30))
@given(file=st.sampled_from(RUN_FILES), damage=st.sampled_from(["cut", "junk", "text", "gone"]),
       at=st.floats(0, 1), junk=st.binary(min_size=1, max_size=16))
def test_any_damage_to_a_run_directory(tiny_run: tuple[Path, Path],
                                       tmp_path_factory: pytest.TempPathFactory,
                                       capsys: pytest.CaptureFixture, file: str, damage: str,
                                       at: float, junk: bytes) -> None:
    data, run = tiny_run
    work = tmp_path_factory.mktemp("damaged")
    shutil.copytree(run, work / "run")
    path = work / "run" / file
    content = path.read_bytes()
    position = int(at * len(content))
    if damage == "gone":
        path.unlink()
    else:
        path.write_bytes({"cut": content[:position], "junk": content[:position] + junk
                          + content[position:], "text": junk.decode("latin-1").encode()}[damage])
    capsys.readouterr()
    out = work / "out" / "submission.csv"
    status, err = run_cli(["submit", "--run", str(work / "run"), "--data-dir", str(data),
                           "--out", str(out)], capsys)
    assert_clean_outcome(status, err, [str(work / "run"), Path(file).name])
    if status == 2:
        assert not out.exists()
    else:  # a damaged last.ckpt is not read by submit: a whole submission
        assert pl.read_csv(out).height == len(TINY["test.csv"]) - 1
    assert_nothing_half_written(work)


TRAIN_OPTIONS = ["--epochs", "--batch-size", "--learning-rate", "--weight-decay", "--seed",
                 "--seeds", "--embedding-size", "--hidden-sizes", "--dropout",
                 "--embedding-dropout", "--patience", "--validation-days", "--hide-future",
                 "--lightgbm-weight", "--store-factors", "--features", "--drop-features",
                 "--train-rows", "--loss", "--logger"]
OPTION_VALUES = st.one_of(
    st.sampled_from(["0", "-1", "1", "2", "0.5", "1.5", "nan", "inf", "", "x", "Store=3",
                     "Store=0", "Moon=2", "4,4", "0.1,0.1", "paper", "full", "weather", "mae",
                     "1e9", "3,", ",", "tensorboard"]),
    st.integers(-3, 5).map(str))


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 25))
@given(option=st.sampled_from(TRAIN_OPTIONS), value=OPTION_VALUES)
def test_any_value_of_any_train_option(tiny_run: tuple[Path, Path],
                                       tmp_path_factory: pytest.TempPathFactory,
                                       capsys: pytest.CaptureFixture, option: str,
                                       value: str) -> None:
    data, _ = tiny_run
    out = tmp_path_factory.mktemp("options") / "run"
    capsys.readouterr()
    status, err = run_cli(["train", "--data-dir", str(data), "--out", str(out), *QUICK,
                           f"{option}={value}"], capsys)
    assert_clean_outcome(status, err, [option, str(data)])
    if status == 2:
        assert not out.exists()  # refused before anything is written
    else:
        assert list(out.glob("checkpoints/seed-*/best.ckpt"))
    assert_nothing_half_written(out.parent)


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 30))
@given(command=st.sampled_from(["evaluate", "embeddings", "submit"]),
       option=st.sampled_from(["--from", "--to", "--member", "--test", "--reference"]),
       value=OPTION_VALUES)
def test_any_value_of_the_prediction_commands_options(tiny_run: tuple[Path, Path],
                                                      tmp_path_factory: pytest.TempPathFactory,
                                                      capsys: pytest.CaptureFixture,
                                                      command: str, option: str,
                                                      value: str) -> None:
    data, run = tiny_run
    out = tmp_path_factory.mktemp("commands") / ("sub.csv" if command == "submit" else "out")
    options = {"--from": "2015-06-30", "--to": "2015-07-01"} if command == "evaluate" else {}
    options[option] = value  # the fuzzed one, in place of a valid one
    argv = [command, "--run", str(run), "--data-dir", str(data), "--out", str(out),
            *(f"{k}={v}" for k, v in options.items())]
    capsys.readouterr()
    status, err = run_cli(argv, capsys)
    assert status in (0, 2), err
    assert "Traceback" not in err
    if status == 2:
        assert err.strip().splitlines()[-1].count("error") >= 1
    assert_nothing_half_written(out.parent)


FIT_OPTIONS = ["--target", "--categorical", "--continuous", "--drop", "--time-column",
               "--validation-fraction", "--target-transform", "--epochs", "--batch-size",
               "--embedding-size", "--factorization", "--hidden-sizes", "--loss"]
FIT_VALUES = st.one_of(OPTION_VALUES, st.sampled_from(
    ["sales", "shop", "kind", "day", "x", "shop,kind", "shop_name", "nope", "log", "none",
     "auto", "shop=4", "kind,shop", "shop,shop", "0.99"]))


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 25))
@given(option=st.sampled_from(FIT_OPTIONS), value=FIT_VALUES)
def test_any_value_of_any_fit_option(tmp_path_factory: pytest.TempPathFactory,
                                     capsys: pytest.CaptureFixture, option: str,
                                     value: str) -> None:
    folder = tmp_path_factory.mktemp("fit-options")
    table = folder / "shops.csv"
    shop_table(300).write_csv(table)
    options = {"--target": "sales", "--epochs": "1", "--hidden-sizes": "8", option: value}
    capsys.readouterr()
    status, err = run_cli(["fit", "--table", str(table), "--out", str(folder / "run"),
                           *(f"{k}={v}" for k, v in options.items())], capsys)
    assert_clean_outcome(status, err, [option, str(table), "shops.csv", value])
    if status == 2:
        assert not (folder / "run").exists()  # refused before anything is written
    else:
        assert (folder / "run" / "estimator.json").is_file()
    assert_nothing_half_written(folder)


# --- numbers and files of a table of one's own: one rule -----------------------------------------
# A blank or NaN is a missing number, filled and counted; infinity or text is one InputError
# line naming the line and the column. Python's float() spells numbers as polars does here.

NUMBER_CELLS = st.one_of(
    st.sampled_from(["inf", "-inf", "Infinity", "1e309", "NaN", "nan", "", "abc", "1,5", "--1",
                     "0x10", "1.5", "-0.0"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr))


def number_kind(cell: str) -> str:
    """"missing", "bad" or "number", by the rule above."""
    if cell == "" or cell.lower() == "nan":
        return "missing"
    try:
        return "number" if math.isfinite(float(cell)) else "bad"
    except ValueError:
        return "bad"


def with_cells(table: pl.DataFrame, cells: dict[int, str]) -> pl.DataFrame:
    """``table`` with column x as text and ``cells`` (row -> text) written into it."""
    x = table.get_column("x").cast(pl.String).to_list()
    for row, cell in cells.items():
        x[row] = cell
    return table.with_columns(x=pl.Series(x, dtype=pl.String))


def assert_number_rule(cells: dict[int, str], status: int, err: str, out: str) -> None:
    kinds = {row: number_kind(cell) for row, cell in cells.items()}
    bad = sorted(row for row, kind in kinds.items() if kind == "bad")
    if bad:
        assert status == 2, err
        assert f"line {bad[0] + 2}, column 'x'" in err.strip().splitlines()[-1], err
        return
    assert status == 0, err
    missing = sum(kind == "missing" for kind in kinds.values())
    if missing:
        assert f"{missing:,} rows have no x value" in out, out
    else:
        assert "no x value" not in out


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch `fit` run on a generated table of shops."""
    folder = tmp_path_factory.mktemp("shop-run")
    shop_table(300).write_csv(folder / "shops.csv")
    main(["fit", "--table", str(folder / "shops.csv"), "--target", "sales", "--out",
          str(folder / "run"), "--epochs", "1", "--hidden-sizes", "8"])
    return folder / "run"


@FUZZ
@given(cells=st.dictionaries(st.integers(0, 19), NUMBER_CELLS, min_size=1, max_size=3))
def test_any_number_cell_at_predict(shop_run: Path, tmp_path_factory: pytest.TempPathFactory,
                                    capsys: pytest.CaptureFixture, cells: dict[int, str]) -> None:
    folder = tmp_path_factory.mktemp("numbers")
    with_cells(shop_table(20).drop("sales"), cells).write_csv(folder / "new.csv")
    capsys.readouterr()
    status, out, err = run_cli_output(["predict", "--run", str(shop_run), "--table",
                                       str(folder / "new.csv"), "--out", str(folder / "p.csv")],
                                      capsys)
    assert_number_rule(cells, status, err, out)
    assert (folder / "p.csv").exists() == (status == 0)
    assert_nothing_half_written(folder)


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 10))
@given(cells=st.dictionaries(st.integers(0, 199), NUMBER_CELLS, min_size=1, max_size=3))
def test_any_number_cell_at_fit(tmp_path_factory: pytest.TempPathFactory,
                                capsys: pytest.CaptureFixture, cells: dict[int, str]) -> None:
    folder = tmp_path_factory.mktemp("numbers")
    with_cells(shop_table(200), cells).write_csv(folder / "shops.csv")
    capsys.readouterr()
    status, out, err = run_cli_output(["fit", "--table", str(folder / "shops.csv"), "--target",
                                       "sales", "--continuous", "x", "--out", str(folder / "run"),
                                       "--epochs", "1", "--hidden-sizes", "8"], capsys)
    assert_number_rule(cells, status, err, out)
    assert (folder / "run" / "validation.json").exists() == (status == 0)


@FUZZ
@given(cell=NUMBER_CELLS, row=st.integers(0, 10),
       file=st.sampled_from(["store.csv", "external/weather/Bayern.csv",
                             "external/googletrend/Rossmann_DE.csv"]))
def test_any_number_cell_of_the_rossmann_files(tmp_path_factory: pytest.TempPathFactory,
                                               cell: str, row: int, file: str) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    write_valid(folder)
    path = folder / file
    separator = ";" if "weather" in file else ","
    rows = list(csv.reader(path.read_text().splitlines(), delimiter=separator))
    column = {"store.csv": "CompetitionDistance", "Bayern.csv": "Mean_TemperatureC",
              "Rossmann_DE.csv": "Rossmann"}[path.name]
    line = 1 + row % (len(rows) - 1)
    rows[line][rows[0].index(column)] = cell
    text = io.StringIO()
    csv.writer(text, delimiter=separator, lineterminator="\n").writerows(rows)
    path.write_text(text.getvalue())
    kind = number_kind(cell)
    try:
        data = read_rossmann(folder)
    except InputError as error:
        message = str(error)
        assert_one_line_naming(error, path)
        # a missing trend is refused too: the trend column takes no blanks
        assert (kind == "bad" or (kind == "missing" and "Rossmann" in path.name)
                or (kind == "number" and "expected a value >= 0" in message)), message
        if kind == "bad" and float_or_none(cell) is not None:  # a number, but infinite
            assert f"line {line + 1}" in message and "infinity does not" in message
        return
    assert kind != "bad" and not (kind == "missing" and "Rossmann" in path.name), cell
    for frame in (data.stores, data.weather, data.trends):
        numbers = frame.select(pl.selectors.float())
        assert not numbers.select(pl.all().is_nan().any() | pl.all().is_infinite().any()) \
            .to_numpy().any()


def float_or_none(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


KINDS = [b"PAR1", b"PK\x03\x04", b"\x89PNG\r\n\x1a\n", b"\x1f\x8b\x08", b"%PDF-1.4",
         b"\xff\xd8\xff", b"SQLite format 3\x00", b"a,b\x00\x01"]


@FUZZ
@given(head=st.sampled_from(KINDS), tail=st.binary(max_size=64),
       file=st.sampled_from([*FILES, "own.csv"]))
def test_any_file_of_the_wrong_kind(tmp_path_factory: pytest.TempPathFactory, head: bytes,
                                    tail: bytes, file: str) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    write_valid(folder)
    path = folder / file
    path.write_bytes(head + tail)
    with pytest.raises(InputError) as raised:
        read_table(path) if file == "own.csv" else read_rossmann(folder)
    assert_one_line_naming(raised.value, path)
    assert "expected CSV text, as the name says" in str(raised.value)
