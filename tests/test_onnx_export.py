"""ONNX export of `fit` runs: the graph's parts against the package's own code, and
onnxruntime's predictions against `predict` on every table of the table suite, on a table of
one's own with unknown categories, blanks and values beyond the training range, and through
the command line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from scipy.special import ndtri

from rossmann_embed.cli import main
from rossmann_embed.tabular.columns import DATE_PARTS
from rossmann_embed.tabular.encoding import ColumnSpec, Preprocessor
from rossmann_embed.tabular.estimator import EmbeddingRegressor
from rossmann_embed.tabular.onnx_export import (
    OUTPUT,
    ContinuousScaling,
    ExportError,
    calendar_parts,
    normal_quantile,
    onnx_feed,
    read_inputs,
    relative_difference,
)
from tests.conftest import shop_table
from tests.test_table_suite import suite

onnxruntime = pytest.importorskip("onnxruntime", reason="the `export` extra is not installed")
RTOL = 1e-6  # `export` refuses above 1e-5; the graph rounds where `predict` does, so the two
# agree to about 1e-15, but for a float32 rounding that may fall either way


def served(model: Path, frame: pl.DataFrame) -> np.ndarray:
    """onnxruntime's predictions for ``frame``, fed as the inputs' JSON describes."""
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    inputs = read_inputs(model.with_suffix(".json"))
    return session.run(None, onnx_feed(frame, inputs))[0]


def predicted(estimator: EmbeddingRegressor, frame: pl.DataFrame) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # filled values are the point of some rows
        return estimator.predict(frame)


def assert_parity(actual: np.ndarray, expected: np.ndarray) -> None:
    error = relative_difference(actual, expected)
    assert float(error.max()) <= RTOL, f"largest relative difference {error.max():.2e}"


# --- the graph's parts ----------------------------------------------------------------------


def test_calendar_parts_equal_polars_on_every_day_of_two_centuries() -> None:
    days = pl.date_range(pl.date(1899, 12, 20), pl.date(2101, 1, 10), eager=True)
    expanded = pl.DataFrame({"d": days}).select(
        expression(pl.col("d")).alias(part) for part, (_, expression) in DATE_PARTS.items())
    number = days.cast(pl.Int32).cast(pl.Float64).to_numpy()
    for offset in (0.0, 0.75):  # a time of day: the date is the day's floor
        parts = calendar_parts(torch.from_numpy(number + offset))
        for part in DATE_PARTS:
            np.testing.assert_array_equal(parts[part].numpy(), expanded[part].to_numpy(),
                                          err_msg=part)
    missing = calendar_parts(torch.tensor([np.nan, np.inf], dtype=torch.float64))
    assert all(torch.isnan(v).all() for v in missing.values())


def test_normal_quantile_matches_scipy() -> None:
    p = np.concatenate([np.geomspace(1e-7, 0.5, 400), 1 - np.geomspace(1e-7, 0.5, 400)])
    approximation = normal_quantile(torch.from_numpy(p)).numpy()
    np.testing.assert_allclose(approximation, ndtri(p), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("scaling", ["quantile", "standard"])
def test_continuous_scaling_equals_the_preprocessor(scaling: str) -> None:
    rng = np.random.default_rng(0)
    train = pl.DataFrame({
        "skewed": rng.lognormal(size=5000),
        "ties": rng.integers(0, 4, 5000).astype(float),  # repeated quantiles
        "few": np.resize(rng.normal(size=12), 5000),
        "one value": np.full(5000, 3.0),
    })
    preprocessor = Preprocessor(ColumnSpec({}, train.columns), scaling=scaling).fit(train)
    probe = np.concatenate([train.to_numpy()[:500], rng.normal(scale=20, size=(300, 4)),
                            np.array([[np.nan] * 4, [np.inf] * 4, [0, 1, 2, 3.0]])])
    expected = np.stack([preprocessor.scale(probe[:, j], c)
                         for j, c in enumerate(train.columns)], 1)
    actual = ContinuousScaling(preprocessor)(torch.from_numpy(probe)).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


# --- parity on real tables ------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog() -> tuple[Path, dict]:
    path = suite.default_data_dir()
    if not (path / "tables.json").is_file():
        pytest.skip(f"public tables not found at {path} (set TABLES_DATA)")
    return path, suite.load_catalog(path)


# Two tables in the default run (a date column; many entities and numbers), all nine slow.
@pytest.mark.parametrize("name", ["Bundesliga", "SLID", *[
    pytest.param(name, marks=pytest.mark.slow) for name in
    ["BudgetFood", "Computers", "movies", "rwm5yr", "Vocab", "VietNamI", "Snmesp"]]])
def test_onnxruntime_predicts_as_predict_on_every_suite_table(catalog, name, tmp_path,
                                                              one_thread) -> None:
    path, specs = catalog
    table = suite.load_table(path, name, specs[name])
    task = suite.make_task(table)
    estimator = EmbeddingRegressor(epochs=1, time_column=table.time_column)
    estimator.fit(task.X_train, task.y_train)
    model = estimator.export_onnx(tmp_path / f"{name}.onnx", target=table.target)
    assert_parity(served(model, task.X_test), predicted(estimator, task.X_test))


# --- a table of one's own -------------------------------------------------------------------


def own_table(rows: int, seed: int) -> pl.DataFrame:
    """``shop_table`` with a column name CSVs allow and torch does not, a flag and blanks."""
    frame = shop_table(rows, seed).rename({"shop_name": "Filiale Nr."})
    rng = np.random.default_rng(seed)
    return frame.with_columns(open=pl.Series(rng.random(rows) < 0.8),
                              x=pl.when(pl.Series(rng.random(rows) < 0.05)).then(None)
                              .otherwise(pl.col("x")))


def later_rows() -> pl.DataFrame:
    """Rows after training: shops and kinds never seen, numbers and dates beyond the
    training range, and blanks in every column."""
    later = own_table(600, 1).drop("sales").with_columns(
        shop=pl.col("shop") + 10,  # a third of the shops never seen
        kind=pl.when(pl.col("shop") % 5 == 0).then(pl.lit("new")).otherwise(pl.col("kind")),
        x=pl.col("x") * 4,  # beyond the training range
        day=pl.col("day").dt.offset_by("3y"),  # later years
    )
    return later.with_columns(pl.when(pl.col("shop") % 7 == 0).then(None)
                              .otherwise(pl.col(c)).alias(c) for c in later.columns)


@pytest.fixture(scope="module")
def own_run(tmp_path_factory) -> Path:
    """A `fit` run with the defaults on ``own_table``, as `fit` leaves it on disk."""
    run = tmp_path_factory.mktemp("own") / "run"
    train = own_table(2000, 0)
    EmbeddingRegressor(epochs=1, out=str(run)).fit(train.drop("sales"),
                                                   train.get_column("sales")).save(run)
    return run


@pytest.fixture(scope="module")
def own_model(own_run, tmp_path_factory) -> Path:
    """``own_run`` exported by the command."""
    out = tmp_path_factory.mktemp("exported") / "model.onnx"
    main(["export", "--run", str(own_run), "--out", str(out)])
    return out


def test_export_command_serves_unknowns_blanks_and_values_beyond_the_range(
        own_run, own_model) -> None:
    later = later_rows()
    assert_parity(served(own_model, later), predicted(EmbeddingRegressor.load(own_run), later))
    described = json.loads(own_model.with_suffix(".json").read_text())
    assert described["model"] == "model.onnx"
    assert sorted(i["name"] for i in described["inputs"]) == sorted(later.columns)
    assert {i["name"]: i["type"] for i in described["inputs"]}["Filiale Nr."] == "string"


def test_the_other_network_settings_predict_alike(tmp_path, one_thread) -> None:
    """Standard scaling, periodic embeddings, a log target, batch normalisation, a
    factorization pair beside the MLP and a seed ensemble, at once (``own_run`` has the
    defaults: quantile scaling, piecewise-linear embeddings, no target transform)."""
    train = own_table(2000, 0)
    estimator = EmbeddingRegressor(
        epochs=1, continuous_scaling="standard", numerical_embedding="periodic",
        target_transform="log", seeds=2, batch_norm=True, categorical=["shop"],
        embedding_sizes={"shop": 4, "kind": 4}, factorization=[("shop", "kind")])
    estimator.fit(train.drop("sales"), train.get_column("sales"))
    model = estimator.export_onnx(tmp_path / "own.onnx")
    assert_parity(served(model, later_rows()), predicted(estimator, later_rows()))


def test_a_model_that_would_predict_differently_is_not_written(own_run, own_model, tmp_path,
                                                                monkeypatch) -> None:
    import onnx

    from rossmann_embed.tabular import onnx_export

    model = onnx.load(own_model)
    last = model.graph.node[-1]  # the same model 0.1% off: its output times 1.001
    last.output[0] = "unscaled"
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(1.001), "factor"))
    model.graph.node.append(onnx.helper.make_node("Mul", ["unscaled", "factor"], [OUTPUT]))
    monkeypatch.setattr(onnx_export, "onnx_model", lambda *args: model)
    with pytest.raises(ExportError, match="predicts differently"):
        EmbeddingRegressor.load(own_run).export_onnx(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# --- the command ----------------------------------------------------------------------------


def test_export_names_a_bad_out_an_empty_run_and_a_data_dir_for_a_fit_run(own_run, tmp_path,
                                                                          capsys) -> None:
    (tmp_path / "folder.onnx").mkdir()
    for out in ("model.onnyx", "model", str(tmp_path / "folder.onnx")):
        with pytest.raises(SystemExit) as exit_status:
            main(["export", "--run", str(own_run), "--out", out])
        assert exit_status.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    train_run = tmp_path / "train-run"
    train_run.mkdir()
    (train_run / "run.json").write_text('{"kind": "train", "format": 2}')
    with pytest.raises(SystemExit) as exit_status:
        main(["export", "--run", str(train_run), "--out", "m.onnx"])
    assert exit_status.value.code == 2
    assert "checkpoints" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_status:
        main(["export", "--run", str(own_run), "--out", "m.onnx", "--data-dir", "data"])
    assert exit_status.value.code == 2
    assert "`rossmann-embed train`" in capsys.readouterr().err


@pytest.mark.slow
def test_odd_tables_export_and_predict_alike(tmp_path, one_thread) -> None:
    """Categories only (with "" and "<missing>" among the values), numbers only with a
    column named like the output, float categories, a zoned datetime with times of day,
    and feeds of one row."""
    rng = np.random.default_rng(0)
    rows = 1500
    stamps = pl.datetime_range(pl.datetime(2021, 1, 1), pl.datetime(2022, 12, 31),
                               interval="7h", eager=True, time_zone="Europe/Berlin")
    tables = {
        "categories": pl.DataFrame({
            "shop": rng.choice(["", "<missing>", "a", "b", "c"], rows),
            "size": rng.choice([0.5, 1.5, 2.25], rows)}),
        "numbers": pl.DataFrame({"prediction": rng.normal(size=rows),
                                 "x": rng.lognormal(size=rows)}),
        "zoned": pl.DataFrame({"when": stamps.gather(rng.integers(0, len(stamps), rows)),
                               "x": rng.normal(size=rows)}),
    }
    for name, X in tables.items():
        y = np.exp(rng.normal(size=rows)) + (X.get_column(X.columns[0]).hash() % 3).to_numpy()
        estimator = EmbeddingRegressor(epochs=1, hidden_sizes=(32,),
                                       categorical=["size"] if name == "categories" else None)
        estimator.fit(X, y)
        model = estimator.export_onnx(tmp_path / f"{name}.onnx")
        probe = X.head(200).with_columns(pl.when(pl.int_range(pl.len()) % 9 == 0).then(None)
                                         .otherwise(pl.col(c)).alias(c) for c in X.columns)
        assert_parity(served(model, probe), predicted(estimator, probe))
        one = probe.head(1)
        assert_parity(served(model, one), predicted(estimator, one))
