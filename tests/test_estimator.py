"""EmbeddingRegressor: the generic core as a scikit-learn estimator, on a generated table."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import SHOP_LEVELS, shop_table
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import check_estimator

from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.estimator import EmbeddingRegressor, FilledValuesWarning

FAST = {"epochs": 8, "hidden_sizes": (32,), "batch_size": 128, "learning_rate": 0.01}


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    return shop_table()


@pytest.fixture(scope="module")
def fitted(table: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> EmbeddingRegressor:
    out = tmp_path_factory.mktemp("run")
    X = table.drop("sales", "shop_name")
    return EmbeddingRegressor(**FAST, time_column="day", out=str(out)).fit(X, table["sales"])


def test_columns_are_inferred_and_reported(fitted: EmbeddingRegressor) -> None:
    roles = fitted.roles_
    assert {"shop", "kind", "day_month", "day_weekday"} <= set(roles.categorical)
    assert {"x", "day_year", "day_dayofyear"} <= set(roles.continuous)
    assert roles.dates == ["day"]
    assert roles.reasons["shop"].startswith("categorical (integer, 30 distinct")
    assert roles.reasons["x"] == "continuous (float)"
    assert fitted.target_transform_ == "none"  # not counts: learned as it is


def test_it_learns_the_planted_effects(fitted: EmbeddingRegressor, table: pl.DataFrame) -> None:
    X = table.drop("sales", "shop_name")
    predicted = fitted.predict(X)
    assert predicted.shape == (table.height,)
    error = np.log(predicted) - np.log(table["sales"].to_numpy())
    spread = np.log(table["sales"].to_numpy()).std()
    assert np.sqrt(np.mean(error**2)) < 0.5 * spread  # far better than the mean
    # The learned shop embedding orders shops by their planted level.
    shop = fitted.embeddings_["shop"].filter(pl.col("index") > 0)
    vectors = shop.select(pl.col("^dim_.*$")).to_numpy()
    first = np.linalg.svd(vectors - vectors.mean(0))[0][:, 0]
    levels = SHOP_LEVELS[shop["value"].cast(pl.Int64).to_numpy()]
    assert abs(np.corrcoef(first, levels)[0, 1]) > 0.8


def test_time_split_holds_out_the_latest_days(fitted: EmbeddingRegressor) -> None:
    validation = fitted.validation_
    assert 0 < validation["rows"] < 0.2 * (validation["rows"] + validation["rows_train"])
    assert {"rmse", "mae", "rmspe"} <= set(validation)


def test_embeddings_transform_and_unknown_categories(fitted: EmbeddingRegressor,
                                                     table: pl.DataFrame) -> None:
    tables = fitted.embeddings_
    assert set(tables) == set(fitted.roles_.categorical)
    assert tables["kind"]["value"].to_list() == ["<unknown>", "a", "b", "c"]
    X = table.drop("sales", "shop_name")
    features = fitted.transform(X)
    widths = sum(len([c for c in t.columns if c.startswith("dim_")]) for t in tables.values())
    assert features.shape == (table.height, widths + len(fitted.roles_.continuous))
    unseen = X.head(10).with_columns(shop=pl.col("shop") + 100, kind=pl.lit(None, pl.String))
    counts = fitted.unknown_categories(unseen)
    assert counts["shop"] == 10 and counts["kind"] == 10
    with pytest.warns(FilledValuesWarning, match="10 rows have a shop value the model never"):
        assert np.isfinite(fitted.predict(unseen)).all()


def test_missing_numbers_are_counted_and_infinity_refused(fitted: EmbeddingRegressor,
                                                         table: pl.DataFrame) -> None:
    X = table.drop("sales", "shop_name").head(20)
    gaps = X.with_columns(x=pl.when(pl.int_range(20) < 3).then(None).when(pl.int_range(20) == 9)
                          .then(float("nan")).otherwise("x"))
    assert fitted.filled_values(gaps) == {"unknown_categories": {},
                                          "missing_numbers": {"x": 4}}
    with pytest.warns(FilledValuesWarning, match="4 rows have no x value"):
        assert np.isfinite(fitted.predict(gaps)).all()
    infinite = X.with_columns(x=pl.when(pl.int_range(20) == 4).then(float("-inf")).otherwise("x"))
    with pytest.raises(InputError, match="X row 4, column 'x': got -inf, expected a number"):
        fitted.predict(infinite)
    with pytest.raises(InputError, match="X row 4, column 'x'"):
        clone(fitted).set_params(epochs=1).fit(infinite, np.ones(20))


def test_save_and_load_give_the_same_predictions(fitted: EmbeddingRegressor, table: pl.DataFrame,
                                                 tmp_path: Path) -> None:
    fitted.save(tmp_path / "copy")
    description = json.loads((tmp_path / "copy" / "estimator.json").read_text())
    assert description["roles"]["dates"] == ["day"]
    assert (tmp_path / "copy" / "checkpoints" / "seed-0" / "best.ckpt").is_file()
    loaded = EmbeddingRegressor.load(tmp_path / "copy")
    X = table.drop("sales", "shop_name")
    np.testing.assert_allclose(loaded.predict(X), fitted.predict(X), rtol=1e-6)
    assert loaded.get_params() == {**fitted.get_params(), "hidden_sizes": [32]}
    assert loaded.training_ == fitted.training_


def test_a_fit_without_out_keeps_its_run_in_memory(table: pl.DataFrame, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    X = table.drop("sales", "shop_name").head(300)
    estimator = EmbeddingRegressor(**{**FAST, "epochs": 1}).fit(X, table["sales"].head(300))
    assert list((tmp_path / "tmp").iterdir()) == []
    estimator.save(tmp_path / "saved")
    loaded = EmbeddingRegressor.load(tmp_path / "saved")
    np.testing.assert_allclose(loaded.predict(X), estimator.predict(X), rtol=1e-6)
    assert (tmp_path / "saved" / "metrics.csv").is_file()


def test_a_refit_says_it_replaces_earlier_checkpoints(table: pl.DataFrame,
                                                      tmp_path: Path) -> None:
    X, y = table.drop("sales", "shop_name").head(300), table["sales"].head(300)
    estimator = EmbeddingRegressor(**{**FAST, "epochs": 1}, out=str(tmp_path / "run"))
    estimator.fit(X, y)
    with pytest.warns(UserWarning, match="replacing the checkpoints of an earlier fit"):
        estimator.fit(X, y)


def test_clone_pipeline_and_cross_validation(table: pl.DataFrame) -> None:
    X, y = table.drop("sales", "shop_name", "day").to_pandas(), table["sales"].to_numpy()
    estimator = EmbeddingRegressor(**{**FAST, "epochs": 3})
    assert clone(estimator).get_params() == estimator.get_params()
    pipeline = make_pipeline(estimator)
    assert pipeline.fit(X, y).predict(X).shape == (len(y),)
    scores = cross_val_score(clone(estimator), X, y, cv=2)
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_scikit_learn_estimator_checks(tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where fits could leave files
    results = check_estimator(EmbeddingRegressor(epochs=2, hidden_sizes=(8,), batch_size=64),
                              on_fail=None)
    # fit has no side effects on disk; scikit-learn's own memmap folders go at exit (atexit)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("sklearn_testing_")] \
        == []
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert failed == []
    # The only check skipped: array API input, which runs only with SCIPY_ARRAY_API=1 set and
    # would need torch-free array namespaces end to end; the estimator converts input to polars.
    assert skipped <= {"check_array_api_input"}


@pytest.mark.parametrize(("transform", "target", "message"), [
    ("log", [0.0, 1.0, 2.0], "target_transform='log' needs every target > 0.*use 'log1p'"),
    ("log1p", [-1.0, 1.0, 2.0], "needs every target >= 0.*use 'none'"),
    ("auto", [np.nan, 1.0, 2.0], "1 missing or infinite values.*drop those rows or fill them"),
    ("cube", [1.0, 2.0, 3.0], "target_transform must be 'auto' or one of log, log1p, none"),
])
def test_bad_targets_and_options_say_what_to_do(transform: str, target: list, message: str) -> None:
    X = pl.DataFrame({"a": ["x", "y", "z"]})
    with pytest.raises(ValueError, match=message):
        EmbeddingRegressor(target_transform=transform, epochs=1).fit(X, target)


def test_auto_transform_follows_the_target(tmp_path: Path) -> None:
    X = pl.DataFrame({"a": ["x", "y"] * 20})
    zeros = EmbeddingRegressor(epochs=1, hidden_sizes=(4,), validation_fraction=0)
    assert zeros.fit(X, [0.0, 3.0] * 20).target_transform_ == "log1p"  # counts
    assert clone(zeros).fit(X, [0.5, 3.0] * 20).target_transform_ == "none"
    negative = clone(zeros).fit(X, [-1.0, 3.0] * 20)
    assert negative.target_transform_ == "none"
    low, high = negative.y_range_  # the output's bounds hold the targets' span, in their units
    assert low < -1.0 and high > 3.0
    assert ((low <= negative.predict(X)) & (negative.predict(X) <= high)).all()


def test_the_signature_states_every_parameter_with_fits_defaults():
    """One source of defaults: the explicit signature agrees with FitConfig's options."""
    import inspect

    from rossmann_embed.tabular.estimator import estimator_parameters

    signature = inspect.signature(EmbeddingRegressor.__init__).parameters
    shown = {name: p.default for name, p in signature.items() if name != "self"}
    assert shown == estimator_parameters()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.annotation is not p.empty
               for name, p in signature.items() if name != "self")
    documented = EmbeddingRegressor.__doc__
    assert all(f"        {name}:" in documented for name in shown), "every parameter explained"
