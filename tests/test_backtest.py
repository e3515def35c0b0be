"""backtest: the windows, the cut, the models of one run, resuming, and the reports."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import polars.selectors as cs
import pytest
import torch

from rossmann_embed.cli import main
from rossmann_embed.rossmann.kaggle_files import read_kaggle_csv
from rossmann_embed.rossmann.studies.backtest import (
    BacktestOptions,
    backtest,
    cut_data,
    default_windows,
    median_forecast,
)
from rossmann_embed.rossmann.studies.synthetic import write_synthetic
from rossmann_embed.tabular.errors import InputError

TINY_NETWORK = {"epochs": 1, "hidden_sizes": [32, 16], "batch_size": 512}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only adds sync
    root = tmp_path_factory.mktemp("backtest") / "data"
    write_synthetic(root, n_stores=10, start="2014-03-01")
    yield root
    torch.set_num_threads(threads)


def test_default_windows_are_last_previous_and_the_season_a_year_earlier() -> None:
    last, previous, season, earlier = default_windows(dt.date(2015, 6, 13), count=4)
    assert (last.first, last.last) == (dt.date(2015, 4, 27), dt.date(2015, 6, 13))
    assert (previous.first, previous.last) == (dt.date(2015, 3, 10), dt.date(2015, 4, 26))
    # The period one forecasts next (2015-06-14 .. 07-31), one year earlier.
    assert (season.first, season.last) == (dt.date(2014, 6, 14), dt.date(2014, 7, 31))
    assert earlier.last == previous.first - dt.timedelta(days=1)
    assert all((w.last - w.first).days == 47 for w in (last, previous, season, earlier))
    assert [w.name for w in default_windows(dt.date(2015, 6, 13), count=2, horizon=7)] == [
        "last", "previous"]


def test_cut_is_kaggles_cut(data_dir: Path, tmp_path: Path) -> None:
    train = read_kaggle_csv(data_dir / "train.csv", "train.csv")
    window = default_windows(train.get_column("Date").max())[1]
    actual = cut_data(data_dir, train, window, tmp_path / "cut")
    history = read_kaggle_csv(tmp_path / "cut" / "train.csv", "train.csv")
    test = read_kaggle_csv(tmp_path / "cut" / "test.csv", "test.csv")
    assert history.get_column("Date").max() == window.first - dt.timedelta(days=1)
    assert history.height == train.filter(pl.col("Date") < window.first).height
    assert "Sales" not in test.columns and "Customers" not in test.columns
    assert test.get_column("Id").to_list() == list(range(1, test.height + 1))
    assert (test.get_column("Date").min(), test.get_column("Date").max()) == (
        window.first, window.last)
    expected = train.filter(pl.col("Date").is_between(window.first, window.last))
    assert actual.height == test.height == expected.height
    truth = actual.join(expected, on=["Store", "Date"], suffix="_train")
    assert (truth.get_column("Sales") == truth.get_column("Sales_train")).all()
    assert (tmp_path / "cut" / "store.csv").is_file()


def test_cut_outside_the_data_is_one_clear_error(data_dir: Path, tmp_path: Path) -> None:
    train = read_kaggle_csv(data_dir / "train.csv", "train.csv")
    window = default_windows(dt.date(2030, 1, 1))[0]
    with pytest.raises(InputError, match=r"train.csv: expected rows in the backtest window"):
        cut_data(data_dir, train, window, tmp_path / "cut")


def test_median_forecast_by_store_weekday_and_promo() -> None:
    history = pl.DataFrame({"Store": [1, 1, 1, 1, 2], "DayOfWeek": [1, 1, 1, 2, 1],
                            "Promo": [0, 0, 0, 1, 0], "Sales": [10, 30, 20, 50, 7]})
    rows = pl.DataFrame({"Store": [1, 1, 2, 3], "DayOfWeek": [1, 3, 1, 1],
                         "Promo": [0, 0, 0, 0]})
    # Seen combination; store 1 on an unseen weekday: its median; store 3: the overall one.
    np.testing.assert_allclose(median_forecast(history, rows), [20, 25, 7, 20])


@pytest.mark.slow
def test_backtest_scores_every_model_and_continues_where_it_stopped(
        data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bt"
    options = BacktestOptions(data_dir=str(data_dir), out=str(out), windows=2, horizon=14,
                              network=TINY_NETWORK)
    lines: list[str] = []
    result = backtest(options, log=lines.append)
    assert result["windows_done"] == 2 and len(result["windows"]) == 2
    for window in result["windows"]:
        assert {"from", "to", "rows", "rmspe", "lightgbm_rmspe", "median_rmspe",
                "network_rmspe", "boosted_rmspe"} <= set(window)
        assert all(0 < window[k] < 1 for k in ("rmspe", "lightgbm_rmspe", "median_rmspe"))
        assert set(window["seconds"]) == {"network", "lightgbm", "median"}
        assert window["info"]["lightgbm"]["rounds"] >= 1
    assert result["mean_rmspe"] == pytest.approx(np.mean([w["rmspe"] for w in
                                                          result["windows"]]))
    saved = json.loads((out / "backtest.json").read_text())
    assert saved["mean_lightgbm_rmspe"] == result["mean_lightgbm_rmspe"]
    assert (out / "backtest.md").read_text().count("\n") == 2 + 2 + 1
    assert (out / "backtest.png").stat().st_size > 10_000
    assert any("window 2/2" in line and "lightgbm" in line for line in lines)
    # A rerun finds every model done and trains nothing.
    again: list[str] = []
    assert backtest(options, log=again.append)["windows"] == result["windows"]
    steps, (summary,) = again[:-1], again[-1:]
    assert len(steps) == 6 and all(line.endswith("done before, kept") for line in steps)
    assert summary.startswith("mean RMSPE over 2 windows: forecast ")
    # Another network recipe reruns the network only.
    other = BacktestOptions(**{**options.__dict__, "network": {**TINY_NETWORK,
                                                               "lightgbm_weight": 0.0}})
    third: list[str] = []
    changed = backtest(other, log=third.append)
    assert sum("done before" in line for line in third) == 4
    assert all("boosted_rmspe" not in w for w in changed["windows"])
    assert all(w["rmspe"] == w["network_rmspe"] for w in changed["windows"])


def test_backtest_command_checks_its_options(capsys: pytest.CaptureFixture) -> None:
    for option in ("--windows", "--horizon", "--seeds"):
        with pytest.raises(SystemExit) as exit_info:
            main(["backtest", "--data-dir", "d", "--out", "o", option, "0"])
        assert exit_info.value.code == 2
        assert f"argument {option}: expected a whole number of at least 1, got 0" in (
            capsys.readouterr().err)


def test_real_data_cut_of_the_season_window(real_data: Path, tmp_path: Path) -> None:
    from rossmann_embed.rossmann.boosting import LIGHTGBM_FEATURES, lightgbm_features
    from rossmann_embed.rossmann.studies.backtest import baseline_rows

    train = read_kaggle_csv(real_data / "train.csv", "train.csv")
    season = default_windows(train.get_column("Date").max())[2]
    actual = cut_data(real_data, train, season, tmp_path / "cut")
    assert actual.height == train.filter(pl.col("Date").is_between(season.first,
                                                                    season.last)).height
    history, rows = baseline_rows(tmp_path / "cut")
    assert history.get_column("Date").max() < season.first <= rows.get_column("Date").min()
    assert rows.height == actual.height
    features = lightgbm_features(rows)
    assert features.columns == LIGHTGBM_FEATURES
    # Known for every row but "days until", which is unknown only at the window's end.
    known = features.drop(["CompetitionMonths", "CompetitionOpen", "Promo2WeeksSince",
                           "CompetitionDistance"]).drop(cs.starts_with("DaysUntil"))
    assert known.null_count().sum_horizontal().item() == 0
    until = features.select(pl.col("^DaysUntil.*$").is_null()).to_numpy().any(axis=1)
    unknown_until = rows.filter(pl.Series(until))
    assert unknown_until.height > 0  # no state holiday after the window's last days
    # Unknown only where build_features' 60-day look-ahead runs past the data's end.
    assert unknown_until.get_column("Date").min() > season.last - dt.timedelta(days=60)
