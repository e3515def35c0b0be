"""`rossmann-embed fit`, `predict` and `embeddings` on any table: a generated one and Kaggle's."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import shop_table

from rossmann_embed.cli import main
from rossmann_embed.tabular.files import write_json

FAST = ["--epochs", "3", "--hidden-sizes", "32", "--batch-size", "128", "--lr", "0.01"]


@pytest.fixture(scope="module")
def table_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("table") / "shops.csv"
    shop_table().write_csv(path)
    return path


@pytest.fixture(scope="module")
def fit_run(table_file: Path) -> Path:
    run = table_file.parent / "run"
    main(["fit", "--table", str(table_file), "--target", "sales", "--time-column", "day",
          "--drop", "shop_name", "--out", str(run), *FAST])
    return run


def test_fit_writes_a_run_with_its_columns_and_scores(fit_run: Path) -> None:
    columns = json.loads((fit_run / "columns.json").read_text())
    assert columns["target"] == "sales" and columns["dropped"] == ["shop_name"]
    assert "shop" in columns["categorical"] and columns["dates"] == ["day"]
    validation = json.loads((fit_run / "validation.json").read_text())
    assert validation["rows"] > 0 and validation["rmspe"] < 1
    config = json.loads((fit_run / "config.json").read_text())
    assert config["time_column"] == "day" and config["epochs"] == 3
    assert (fit_run / "metrics.csv").is_file()


def test_predict_keeps_every_row_in_order(fit_run: Path, table_file: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    table = pl.read_csv(table_file, try_parse_dates=True)
    new = table.head(50).with_columns(pl.when(pl.int_range(50) < 5).then(999)
                                      .otherwise(pl.col("shop")).alias("shop"))
    new.drop("sales").write_parquet(tmp_path / "new.parquet")
    main(["predict", "--run", str(fit_run), "--table", str(tmp_path / "new.parquet"),
          "--out", str(tmp_path / "predicted.csv")])
    predicted = pl.read_csv(tmp_path / "predicted.csv", try_parse_dates=True)
    assert predicted.columns == [*new.drop("sales").columns, "prediction"]
    assert predicted["shop"].to_list() == new["shop"].to_list()
    assert predicted["prediction"].is_finite().all()
    assert "note: 5 rows have a shop value the model never saw" in capsys.readouterr().out


def test_embeddings_of_a_fit_run_with_labels(fit_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "embeddings"
    main(["embeddings", "--run", str(fit_run), "--out", str(out), "--label", "shop=shop_name"])
    shop = pl.read_parquet(out / "tables" / "shop.parquet")
    assert shop.columns[:3] == ["value", "index", "shop_name"]
    assert shop.filter(pl.col("value") == "7")["shop_name"].item() == "shop-07"
    factors = (out / "factors" / "shop_pc1.md").read_text()
    assert "the 15 shop values at each end" in factors and "shop-" in factors
    for name in ("shop_pca.png", "shop_tsne.png", "kind_pca.png"):
        assert (out / "figures" / name).stat().st_size > 0
    summary = json.loads((out / "embeddings.json").read_text())
    assert summary["columns"]["shop"]["values"] == 30
    assert (out / "projector" / "projector_config.pbtxt").is_file()


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t, "column 'price': expected a target column named 'price'"),
    (lambda t: t.with_columns(price=pl.lit("cheap")), "column 'price': got 'String', expected "
                                                      "a numeric target"),
    (lambda t: t.head(0).with_columns(price=pl.lit(1.0)), "expected at least one data row"),
    (lambda t: t.with_columns(price=pl.when(pl.int_range(pl.len()) == 3).then(None)
                              .otherwise(1.0)), "line 5, column 'price'"),
])
def test_bad_tables_are_one_line_and_exit_2(change, message: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "bad.csv"
    change(shop_table(200)).write_csv(path)
    with pytest.raises(SystemExit) as stopped:
        main(["fit", "--table", str(path), "--target", "price", "--out", str(tmp_path / "r"),
              "--epochs", "1"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r" / "estimator.json").exists()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("latin.csv", "a,b\n\xe9t\xe9,1\n".encode("latin-1"), "expected a readable UTF-8 CSV file"),
    ("table.txt", b"a,b\n1,2\n", "got '.txt', expected a file ending in .csv or .parquet"),
    ("fake.parquet", b"a,b\n1,2\n", "got 'text', expected a parquet file, as the name says"),
])
def test_unreadable_files_are_one_line(name: str, content: bytes, message: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(SystemExit) as stopped:
        main(["fit", "--table", str(tmp_path / name), "--target", "b", "--out",
              str(tmp_path / "r")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_predict_names_a_missing_column(fit_run: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    shop_table(20).drop("kind").write_csv(tmp_path / "t.csv")
    with pytest.raises(SystemExit) as stopped:
        main(["predict", "--run", str(fit_run), "--table", str(tmp_path / "t.csv"),
              "--out", str(tmp_path / "p.csv")])
    assert stopped.value.code == 2
    assert "column 'kind': expected the columns the model was fitted with" in \
        capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.slow
def test_kaggle_train_csv_as_any_table(real_data: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    """Kaggle's train.csv with nothing said about its columns: Store, DayOfWeek, the
    holidays and Open are found categorical, Date becomes calendar parts. A slice of 40 stores
    and one epoch keep it fast; the whole file works the same (README)."""
    sliced = tmp_path / "train_40_stores.csv"
    table = pl.read_csv(real_data / "train.csv", infer_schema_length=None, try_parse_dates=True)
    table.filter(pl.col("Store") <= 40).write_csv(sliced)
    run, out = tmp_path / "run", tmp_path / "embeddings"
    main(["fit", "--table", str(sliced), "--target", "Sales", "--time-column", "Date",
          "--drop", "Customers", "--out", str(run), "--epochs", "1", "--hidden-sizes", "64"])
    report = capsys.readouterr().out
    for line in ("Store: categorical (integer, 40 distinct", "StateHoliday: categorical (string)",
                 "Date: date -> calendar parts"):
        assert line in report
    columns = json.loads((run / "columns.json").read_text())
    assert columns["target_transform"] == "log1p"  # closed days sell 0
    main(["predict", "--run", str(run), "--table", str(sliced), "--out",
          str(tmp_path / "p.parquet")])
    assert pl.read_parquet(tmp_path / "p.parquet").height == table.filter(
        pl.col("Store") <= 40).height
    main(["embeddings", "--run", str(run), "--out", str(out)])
    assert pl.read_csv(out / "tables" / "Store.csv").height == 41  # 40 stores + unknown
    assert (out / "factors" / "Store_pc1.md").is_file()
    assert (out / "figures" / "Store_pca.png").is_file()


def test_tensorboard_logger_writes_events_beside_the_csv_log(table_file: Path,
                                                             tmp_path: Path) -> None:
    run = tmp_path / "run"
    main(["fit", "--table", str(table_file), "--target", "sales", "--out", str(run),
          "--logger", "tensorboard", "--epochs", "1", "--hidden-sizes", "8"])
    logs = run / "logs" / "seed-0"
    assert list(logs.glob("events.out.tfevents.*"))
    assert "val_rmse" in (logs / "metrics.csv").read_text()
    assert "val_rmse" in (run / "metrics.csv").read_text()


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_unreadable_checkpoints_are_one_line(damage: str, fit_run: Path, table_file: Path,
                                             tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    import torch

    run = tmp_path / "run"
    shutil.copytree(fit_run, run)
    checkpoint = run / "checkpoints" / "seed-0" / "best.ckpt"
    if damage == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    else:  # a pickle of an object: refused by weights-only loading
        torch.save({"state_dict": {}, "hyper_parameters": {"x": object()}}, checkpoint)
    with pytest.raises(SystemExit) as stopped:
        main(["predict", "--run", str(run), "--table", str(table_file),
              "--out", str(tmp_path / "p.csv")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "best.ckpt: expected a checkpoint written by this package" in err
    assert len(err.splitlines()) == 1


def test_a_date_column_taken_as_categorical_trains_and_predicts(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture):
    table = tmp_path / "shops.csv"
    shop_table(400).write_csv(table)
    main(["fit", "--table", str(table), "--target", "sales", "--categorical", "day,shop",
          "--out", str(tmp_path / "run"), "--epochs", "1", "--hidden-sizes", "8"])
    later = shop_table(50, seed=9).with_columns(pl.col("day").dt.offset_by("3y"))
    later.write_csv(tmp_path / "later.csv")
    capsys.readouterr()
    main(["predict", "--run", str(tmp_path / "run"), "--table", str(tmp_path / "later.csv"),
          "--out", str(tmp_path / "predicted.csv")])
    out = capsys.readouterr().out
    assert "note: 50 rows have a day value the model never saw" in out  # three years on
    assert pl.read_csv(tmp_path / "predicted.csv").height == 50


def _fail(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Status and stderr of a command that must stop."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return stopped.value.code, err


def test_infinity_in_a_continuous_column_is_an_input_error(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    table = shop_table(400).with_columns(
        x=pl.when(pl.int_range(pl.len()).is_in([5, 40])).then(float("inf")).otherwise("x"))
    table.write_csv(tmp_path / "inf.csv")
    status, err = _fail(["fit", "--table", str(tmp_path / "inf.csv"), "--target", "sales",
                         "--out", str(tmp_path / "run"), *FAST], capsys)
    assert status == 2
    assert "inf.csv line 7, column 'x': got inf, expected a number" in err
    assert not (tmp_path / "run").exists()


def test_a_model_that_trained_to_nan_is_never_a_success(fit_run: Path, table_file: Path,
                                                        tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    shutil.copytree(fit_run, run)  # an earlier, good run in the same --out
    status, err = _fail(["fit", "--table", str(table_file), "--target", "sales", "--out",
                         str(run), "--epochs", "2", "--hidden-sizes", "32", "--lr", "1e30",
                         "--seeds", "2"], capsys)
    assert status == 1 and "training diverged" in err and "--lr" in err
    assert not list(run.rglob("*.ckpt")) and not (run / "validation.json").exists()
    assert not (run / "estimator.json").exists()


def test_every_json_of_a_run_is_strict(fit_run: Path) -> None:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    for path in fit_run.rglob("*.json"):
        json.loads(path.read_text(), parse_constant=refuse)


def test_text_in_a_continuous_column_at_predict_is_an_input_error(
        fit_run: Path, table_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    new = pl.read_csv(table_file).head(30).drop("sales").with_columns(
        x=pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("abc"))
        .otherwise(pl.col("x").cast(pl.String)))
    new.write_csv(tmp_path / "text.csv")
    status, err = _fail(["predict", "--run", str(fit_run), "--table", str(tmp_path / "text.csv"),
                         "--out", str(tmp_path / "p.csv")], capsys)
    assert status == 2 and "text.csv line 9, column 'x': got 'abc', expected a number" in err
    assert not (tmp_path / "p.csv").exists()


def test_blank_and_nan_numbers_at_predict_are_counted(fit_run: Path, table_file: Path,
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    index = pl.int_range(pl.len())
    new = pl.read_csv(table_file).head(100).drop("sales").with_columns(
        x=pl.when(index < 6).then(None).when(index == 50).then(float("nan")).otherwise("x"))
    new.write_csv(tmp_path / "blank.csv")
    capsys.readouterr()
    main(["predict", "--run", str(fit_run), "--table", str(tmp_path / "blank.csv"),
          "--out", str(tmp_path / "p.csv")])
    assert "note: 7 rows have no x value (blank or NaN: they take the training median)" in \
        capsys.readouterr().out
    assert pl.read_csv(tmp_path / "p.csv")["prediction"].is_finite().all()


@pytest.mark.parametrize(("content", "kind"), [
    (None, "got 'a parquet file', expected CSV text"),
    (b"PK\x03\x04" + b"\x00" * 40, "got 'a zip archive"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "got 'a PNG image'"),
])
def test_a_file_that_is_not_what_its_name_says(content: bytes | None, kind: str,
                                               fit_run: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "table.csv"
    if content is None:
        shop_table(20).write_parquet(path)
    else:
        path.write_bytes(content)
    for argv in (["fit", "--target", "sales", "--out", str(tmp_path / "run")],
                 ["predict", "--run", str(fit_run), "--out", str(tmp_path / "p.csv")]):
        status, err = _fail([*argv, "--table", str(path)], capsys)
        assert status == 2 and kind in err and "table.csv" in err


def test_json_is_written_strict(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {"a": math.nan, "b": [np.float64("inf"), 1.5]})
    assert json.loads((tmp_path / "a.json").read_text(),
                      parse_constant=lambda name: pytest.fail(name)) == {"a": None,
                                                                         "b": [None, 1.5]}


def test_numbers_written_as_text_stay_numbers_and_a_typo_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    table = shop_table(400).with_columns(x=pl.col("x").cast(pl.String))
    index = pl.int_range(pl.len())
    table.with_columns(x=pl.when(index == 3).then(pl.lit("nan")).otherwise("x")) \
        .write_csv(tmp_path / "nan.csv")
    main(["fit", "--table", str(tmp_path / "nan.csv"), "--target", "sales", "--out",
          str(tmp_path / "run"), *FAST])
    assert "x" in json.loads((tmp_path / "run" / "columns.json").read_text())["continuous"]
    assert "1 rows have no x value" in capsys.readouterr().out
    table.with_columns(x=pl.when(index == 9).then(pl.lit("1.2.3")).otherwise("x")) \
        .write_csv(tmp_path / "typo.csv")
    status, err = _fail(["fit", "--table", str(tmp_path / "typo.csv"), "--target", "sales",
                         "--out", str(tmp_path / "run2"), *FAST], capsys)
    assert status == 2 and "typo.csv line 11, column 'x': got '1.2.3', expected a number" in err
