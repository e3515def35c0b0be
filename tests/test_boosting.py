"""LightGBM: the full-strength baseline's features and fit, and the product's boosted half."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rossmann_embed.rossmann.boosting import (
    BOOSTED_ROUNDS,
    LIGHTGBM_FEATURES,
    LIGHTGBM_INPUTS,
    SINCE_CAP_DAYS,
    UNTIL_CAP_DAYS,
    Boosted,
    LightGBMForecaster,
    lightgbm_features,
    store_factors,
)
from rossmann_embed.rossmann.features import build_features, model_rows
from rossmann_embed.rossmann.kaggle_files import read_rossmann
from rossmann_embed.rossmann.levels import RMSPE_SHIFT
from rossmann_embed.rossmann.studies.synthetic import write_synthetic


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    root = tmp_path_factory.mktemp("boosting")
    write_synthetic(root, n_stores=8, start="2014-09-01")
    return build_features(read_rossmann(root)).frame


def test_the_features_need_only_their_inputs(frame) -> None:
    # The boosted half reads these columns alone from the feature rows (a sample of a
    # streamed run's shards): the features must come out the same.
    assert lightgbm_features(frame.select(LIGHTGBM_INPUTS)).equals(lightgbm_features(frame))
    with pytest.raises(pl.exceptions.ColumnNotFoundError):
        lightgbm_features(frame.select(LIGHTGBM_INPUTS[1:]))


def test_features_are_row_by_row_numbers_with_clipped_event_distances(frame) -> None:
    features = lightgbm_features(frame)
    assert features.columns == LIGHTGBM_FEATURES and features.height == frame.height
    assert all(dtype.is_numeric() for dtype in features.dtypes)
    # The same values for a row whatever rows come with it.
    picked = np.random.default_rng(1).choice(frame.height, 50, replace=False)
    assert lightgbm_features(frame[picked]).equals(features[picked])
    for event in ("StateHoliday", "SchoolHoliday", "Promo"):
        since, until = features.get_column(f"DaysSince{event}"), features.get_column(
            f"DaysUntil{event}")
        assert since.null_count() == 0 and since.max() <= SINCE_CAP_DAYS
        assert until.max() <= UNTIL_CAP_DAYS
    # Until is unknown only where the data ends before the next event (test.csv's last days).
    last_days = frame.get_column("Date") > frame.get_column("Date").max() - pl.duration(days=14)
    unknown = features.get_column("DaysUntilPromo").is_null()
    assert unknown.any() and not (unknown & ~pl.select(last_days).to_series()).any()
    codes = features.get_column("StateHoliday").unique().to_list()
    assert set(codes) <= {0, 1, 2, 3}


def test_forecaster_stops_early_refits_and_round_trips(frame, tmp_path: Path) -> None:
    rows, _ = model_rows(frame)
    forecaster = LightGBMForecaster(max_rounds=400, patience=20).fit(rows)
    assert 1 <= forecaster.rounds_ <= 400 and forecaster.boosters_[0].current_iteration() == (
        forecaster.rounds_)
    assert 0 < forecaster.inner_score_ < 0.5
    predicted = forecaster.predict(rows)
    assert predicted.shape == (rows.height,) and (predicted > 0).all()
    np.testing.assert_allclose(forecaster.predict_log(rows), np.log(predicted))
    forecaster.save(tmp_path / "gbm")
    loaded = LightGBMForecaster.load(tmp_path / "gbm")
    np.testing.assert_array_equal(loaded.predict(rows), predicted)
    assert loaded.rounds_ == forecaster.rounds_
    assert sorted(p.name for p in (tmp_path / "gbm").iterdir()) == ["model.txt", "settings.json"]


def test_store_factors_are_principal_components_of_the_known_rows() -> None:
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(6, 4))  # row 0: the unknown store
    factors = store_factors([3, 5, 8, 9, 11], weights, k=2)
    assert factors.columns == ["Store", "StoreFactor0", "StoreFactor1"]
    assert factors.get_column("Store").to_list() == [3, 5, 8, 9, 11]
    values = factors.drop("Store").to_numpy()
    np.testing.assert_allclose(values.mean(axis=0), 0, atol=1e-12)
    assert values[:, 0].var() >= values[:, 1].var()  # ordered by explained variance
    assert store_factors([1, 2], weights[:3], k=8).width == 1 + 2  # at most as many as rows


def test_boosted_half_blends_in_log_space_and_round_trips(frame, tmp_path: Path) -> None:
    rows, _ = model_rows(frame)
    stores = sorted(rows.get_column("Store").unique().to_list())
    rng = np.random.default_rng(0)
    factors = store_factors(stores, rng.normal(size=(len(stores) + 1, 5)), k=3)
    boosted = Boosted.fit(rows, factors, weight=0.25)
    assert boosted.forecaster.extra == ["StoreFactor0", "StoreFactor1", "StoreFactor2"]
    # Fixed rounds, no early stopping: one fit on all rows.
    assert boosted.forecaster.boosters_[0].current_iteration() == BOOSTED_ROUNDS
    assert boosted.forecaster.inner_score_ is None
    network = np.full(rows.height, 8.0)
    lightgbm = boosted.predict_log(rows)
    # The weighted mean, lowered for RMSPE by 1.5 times the two-point mixture's variance.
    spread = 0.25 * 0.75 * (8.0 - lightgbm) ** 2
    assert spread.max() > 1e-3
    np.testing.assert_allclose(boosted.blend(network, lightgbm),
                               0.75 * 8.0 + 0.25 * lightgbm - RMSPE_SHIFT * spread)
    np.testing.assert_allclose(boosted.blend(lightgbm, lightgbm), lightgbm)  # halves agree
    boosted.save(tmp_path / "half")
    loaded = Boosted.load(tmp_path / "half")
    np.testing.assert_array_equal(loaded.predict_log(rows), boosted.predict_log(rows))
    assert Boosted.saved_matches(tmp_path / "half", 0.25, 8, 0.5)
    assert not Boosted.saved_matches(tmp_path / "half", 0.5, 8, 0.5)
    settings = tmp_path / "half" / "settings.json"
    settings.write_text(settings.read_text().replace(f'"fixed_rounds": {BOOSTED_ROUNDS}',
                                                     '"fixed_rounds": 10'))
    assert not Boosted.saved_matches(tmp_path / "half", 0.25, 8, 0.5)  # other rounds: refit
    # A store without factors (never trained on) still gets a forecast.
    unknown = rows.head(3).with_columns(pl.lit(10_000, dtype=rows.schema["Store"]).alias(
        "Store"))
    assert np.isfinite(loaded.predict_log(unknown)).all()


def test_bags_average_boosters_of_different_seeds_in_log_space(frame, tmp_path: Path) -> None:
    rows, _ = model_rows(frame)
    bagged = LightGBMForecaster(fixed_rounds=30, bags=2).fit(rows)
    assert [b.current_iteration() for b in bagged.boosters_] == [30, 30]
    one = LightGBMForecaster(fixed_rounds=30).fit(rows)
    matrix = lightgbm_features(rows).cast(pl.Float64).to_numpy()
    first, second = (b.predict(matrix) for b in bagged.boosters_)
    np.testing.assert_allclose(first, one.boosters_[0].predict(matrix))  # bag 1 is seed 0's
    assert not np.allclose(first, second)  # bag 2 drew other rows
    np.testing.assert_allclose(bagged.predict(rows), np.expm1((first + second) / 2))
    bagged.save(tmp_path / "bags")
    assert sorted(p.name for p in (tmp_path / "bags").iterdir()) == [
        "model-2.txt", "model.txt", "settings.json"]
    np.testing.assert_array_equal(LightGBMForecaster.load(tmp_path / "bags").predict(rows),
                                  bagged.predict(rows))
