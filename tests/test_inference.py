"""Prediction for Kaggle-layout files: submissions, seed ensembles, several runs, bad input."""

from __future__ import annotations

import dataclasses
import datetime as dt
import runpy
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from rossmann_embed.cli import main
from rossmann_embed.rossmann import boosting
from rossmann_embed.rossmann.inference import (
    Ensemble,
    load_runs,
    load_train_run,
    predict_kaggle,
    submit,
)
from rossmann_embed.rossmann.kaggle_files import read_kaggle_csv
from rossmann_embed.rossmann.levels import (
    RMSPE_SHIFT,
    VARIANCE_PRIOR_ROWS,
    WEEKDAY_PRIOR_ROWS,
    fit_store_levels,
    read_store_levels,
    rmspe_shift_of,
    store_level_of,
)
from rossmann_embed.rossmann.pipeline import fit
from rossmann_embed.rossmann.studies.synthetic import write_synthetic
from rossmann_embed.rossmann.train_config import TrainConfig
from rossmann_embed.rossmann.training import prepare
from rossmann_embed.tabular.encoding import Preprocessor
from rossmann_embed.tabular.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
TEST_COLUMNS = ["Id", "Store", "DayOfWeek", "Date", "Open", "Promo", "StateHoliday",
                "SchoolHoliday"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data dir, run dir): 30 synthetic stores, a two-seed ensemble of tiny models."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on shared cores: a second thread only adds sync
    root = tmp_path_factory.mktemp("inference")
    write_synthetic(root / "data", n_stores=30)
    run = fit(TrainConfig(data_dir=str(root / "data"), out=str(root / "run"), epochs=1,
                          hidden_sizes=[64, 32], batch_size=512, seeds=2))
    yield root / "data", run
    torch.set_num_threads(threads)


def cut_test_file(data_dir: Path, path: Path, days: int = 48) -> pl.DataFrame:
    """The last ``days`` days of train.csv in Kaggle's test layout (Sales removed); returns
    the cut rows with their true Sales and Ids."""
    train = read_kaggle_csv(data_dir / "train.csv", "train.csv")
    first = train.get_column("Date").max() - dt.timedelta(days=days - 1)
    cut = train.filter(pl.col("Date") >= first).with_row_index("Id", offset=1)
    cut = cut.with_columns(pl.col("Id").cast(pl.Int64))
    cut.select(TEST_COLUMNS).write_csv(path)
    return cut


def test_seed_ensemble_is_one_run_averaged_in_log_space(trained: tuple[Path, Path]) -> None:
    data_dir, run_dir = trained
    assert sorted(p.parent.name for p in run_dir.glob("checkpoints/seed-*/best.ckpt")) == [
        "seed-0", "seed-1"]
    run = load_train_run(run_dir)
    assert run.labels == ["seed-0", "seed-1"] and len(run.models) == 2
    rows = predict_kaggle(run, data_dir)[0].drop("Prediction").filter(pl.col("Open") == 1)
    logs = run.member_logs(rows)
    assert not np.allclose(logs["seed-0"], logs["seed-1"])  # different seeds, different models
    shift = rmspe_shift_of(run.store_levels, rows)
    assert (shift < 0).all()  # every store's forecast lies below its mean log forecast
    network = (logs["seed-0"] + logs["seed-1"]) / 2 + store_level_of(run.store_levels, rows)
    parts = run.part_logs(rows)
    np.testing.assert_allclose(parts["network"], network + shift)
    np.testing.assert_allclose(parts["lightgbm"], run.boosted.predict_log(rows) + shift)
    # The forecast: the network's log-space mean blended with the boosted half.
    weight = run.boosted.weight
    assert weight == TrainConfig(data_dir="", out="").lightgbm_weight
    spread = weight * (1 - weight) * (parts["network"] - parts["lightgbm"]) ** 2
    np.testing.assert_allclose(run.predict_log(rows), (1 - weight) * parts["network"]
                               + weight * parts["lightgbm"] - RMSPE_SHIFT * spread)
    single = load_train_run(run_dir / "checkpoints" / "seed-0" / "best.ckpt")  # a checkpoint alone
    np.testing.assert_allclose(single.predict_log(rows), logs["seed-0"])


def test_the_network_adds_what_it_missed_of_each_store_in_the_last_days(
        trained: tuple[Path, Path]) -> None:
    data_dir, run_dir = trained
    run, config = load_train_run(run_dir), TrainConfig.load(run_dir / "config.json")
    train = prepare(config)[0]
    recent = train.filter(pl.col("Date") > train.get_column("Date").max()
                          - dt.timedelta(days=config.level_days))
    assert config.level_days > 0 and recent.get_column("Date").n_unique() == config.level_days
    residual = np.log(recent.get_column("Sales").to_numpy()) - np.mean(
        list(run.member_logs(recent).values()), axis=0)
    levels = read_store_levels(run_dir)
    assert levels.height == 7 * recent.get_column("Store").n_unique()  # every store, weekday
    for store, weekday in [(1, 1), (2, 3), (30, 6)]:
        of_store = recent.get_column("Store").to_numpy() == store
        on_day = of_store & (recent.get_column("DayOfWeek").to_numpy() == weekday)
        store_level = residual[of_store].mean()
        beyond = (residual[on_day] - store_level).sum() / (on_day.sum() + WEEKDAY_PRIOR_ROWS)
        row = levels.filter((pl.col("Store") == store) & (pl.col("DayOfWeek") == weekday))
        assert row.get_column("Level").item() == pytest.approx(store_level + beyond, abs=1e-9)
    assert levels.get_column("Level").abs().max() > 1e-3  # one epoch leaves levels to fix
    unknown = recent.head(1).with_columns(Store=pl.lit(10_000, pl.Int64))
    assert store_level_of(levels, unknown).tolist() == [0.0]
    assert rmspe_shift_of(levels, unknown).tolist() == [0.0]


def test_each_store_forecast_moves_below_its_log_mean_by_its_variance() -> None:
    """The RMSPE shift: a noisy store moves further down than a steady one, each by 1.5 times
    its residuals' variance beyond its level, shrunk toward every store's variance."""
    days = pl.date_range(dt.date(2015, 1, 5), dt.date(2015, 3, 1), eager=True)  # 8 weeks
    rows = pl.DataFrame({"Store": np.repeat([1, 2], len(days)), "Date": pl.concat([days, days]),
                         "Sales": 1000}).with_columns(DayOfWeek=pl.col("Date").dt.weekday())
    rng = np.random.default_rng(0)
    residual = np.concatenate([rng.normal(0.1, 0.02, len(days)), rng.normal(0, 0.2, len(days))])
    levels = fit_store_levels(rows, np.log(1000) - residual)
    level = store_level_of(levels, rows)
    square = (residual - level) ** 2
    chain, n = square.mean(), len(days)
    steady, noisy = (square[:n].sum() + VARIANCE_PRIOR_ROWS * chain) / (n + VARIANCE_PRIOR_ROWS), (
        square[n:].sum() + VARIANCE_PRIOR_ROWS * chain) / (n + VARIANCE_PRIOR_ROWS)
    shift = rmspe_shift_of(levels, rows)
    np.testing.assert_allclose(shift[:n], -RMSPE_SHIFT * steady)
    np.testing.assert_allclose(shift[n:], -RMSPE_SHIFT * noisy)
    assert shift[n] < 2 * shift[0] < 0  # the noisy store moves further down
    few = fit_store_levels(rows.head(5), np.log(1000) - residual[:5])  # a sample's few days
    assert few.height == 0 and rmspe_shift_of(few, rows).tolist() == [0.0] * len(rows)


def test_members_and_forecast_predict_the_boosted_half_once(
        trained: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir, run_dir = trained
    run = load_train_run(run_dir)
    calls = []
    predict_log = run.boosted.predict_log
    monkeypatch.setattr(run.boosted, "predict_log",
                        lambda rows: calls.append(rows.height) or predict_log(rows))
    predicted, _ = predict_kaggle(run, data_dir, members=True)
    assert len(calls) == 1  # thousands of trees: the forecast reuses the part's prediction
    opened = predicted.filter(pl.col("Open") != 0)
    blend = run.boosted.blend(np.log(opened.get_column("Prediction[network]").to_numpy()),
                              np.log(opened.get_column("Prediction[lightgbm]").to_numpy()))
    np.testing.assert_allclose(opened.get_column("Prediction"), np.exp(blend), rtol=1e-12)


def test_submission_for_test_csv(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data_dir, run_dir = trained
    out = tmp_path / "sub" / "submission.csv"
    report = submit(load_runs([run_dir]), data_dir, out)
    submission = pl.read_csv(out)
    test = read_kaggle_csv(data_dir / "test.csv", "test.csv")
    assert submission.columns == ["Id", "Sales"]
    assert submission.get_column("Id").to_list() == sorted(test.get_column("Id").to_list())
    joined = submission.join(test, on="Id")
    assert (joined.filter(pl.col("Open") == 0).get_column("Sales") == 0).all()
    assert (joined.filter(pl.col("Open") != 0).get_column("Sales") > 0).all()
    blank = joined.filter(pl.col("Open").is_null())
    assert report["open_blank_as_open"] == blank.height > 0  # counted, and predicted as open
    assert (blank.get_column("Sales") > 0).all()
    assert [p.name for p in out.parent.iterdir()] == ["submission.csv"]  # no temporary files


def test_python_api_predicts_kaggle_layout_and_feature_frames(trained: tuple[Path, Path]) -> None:
    data_dir, run_dir = trained
    run = load_train_run(run_dir)
    predicted = run.predict_kaggle(data_dir)
    assert isinstance(predicted, pl.DataFrame) and predicted.get_column("Id").is_sorted()
    opened = predicted.filter(pl.col("Open") == 1)
    again = run.predict(opened.drop("Prediction"))
    # Same rows, other batch shapes: equal up to float32 rounding of the matmuls.
    np.testing.assert_allclose(again, opened.get_column("Prediction"), rtol=1e-5)


def test_several_runs_average_all_members(trained: tuple[Path, Path]) -> None:
    data_dir, run_dir = trained
    run = load_train_run(run_dir)
    both = load_runs([run_dir, run_dir])
    rows = predict_kaggle(run, data_dir)[0].drop("Prediction")
    assert len(both.member_logs(rows)) == 4
    np.testing.assert_allclose(both.predict_log(rows), run.predict_log(rows), rtol=1e-12)


def test_runs_with_other_feature_options_are_refused(trained: tuple[Path, Path]) -> None:
    run = load_train_run(trained[1])
    features = {**run.feature_options, "weather": False}
    other = dataclasses.replace(run, path=Path("other"),
                                metadata={**run.metadata, "features": features})
    with pytest.raises(InputError, match=r"other: got '.*weather=False.*expected the feature "
                                         r"options of"):
        Ensemble([run, other])


def test_unknown_store_is_an_error_or_a_counted_fallback(trained: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    data_dir, run_dir = trained
    run = load_train_run(run_dir)
    stores = run.preprocessor.vocabularies["Store"]
    missing = stores[0]
    preprocessor = Preprocessor.from_dict(run.preprocessor.to_dict())
    preprocessor.vocabularies["Store"] = stores[1:]  # as if store `missing` was never trained
    blind = dataclasses.replace(run, preprocessor=preprocessor)
    test = read_kaggle_csv(data_dir / "test.csv", "test.csv")
    rows = test.filter(pl.col("Store") == missing).height
    assert rows > 0
    line = int((test.get_column("Store") == missing).arg_true()[0]) + 2  # header is line 1
    with pytest.raises(InputError, match=rf"test\.csv line {line}, column 'Store': got "
                                         rf"{missing}, expected a store the model was trained"):
        submit(blind, data_dir, tmp_path / "s.csv")
    report = submit(blind, data_dir, tmp_path / "s.csv", allow_unknown_stores=True)
    assert report["unknown_stores"] == 1 and report["unknown_store_rows"] == rows
    assert pl.read_csv(tmp_path / "s.csv").height == test.height


def test_store_missing_from_store_csv(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data_dir, run_dir = trained
    path = tmp_path / "t.csv"
    path.write_text(",".join(TEST_COLUMNS) + "\n1,999,4,2015-08-06,1,0,0,0\n")
    with pytest.raises(InputError, match=r"t\.csv line 2, column 'Store': got 999, expected "
                                         r"a store listed in store\.csv"):
        submit(load_train_run(run_dir), data_dir, tmp_path / "s.csv", path)


def test_repeated_id_is_an_error(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data_dir, run_dir = trained
    path = tmp_path / "t.csv"
    path.write_text(",".join(TEST_COLUMNS) + "\n7,1,4,2015-08-06,1,0,0,0\n"
                    "7,2,4,2015-08-06,1,0,0,0\n")
    with pytest.raises(InputError, match=r"t\.csv line 3, column 'Id': got '7'.*repeats line 2"):
        submit(load_train_run(run_dir), data_dir, tmp_path / "s.csv", path)


def test_cli_bad_state_holiday_exits_2_with_one_line(trained: tuple[Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    data_dir, run_dir = trained
    path = tmp_path / "t.csv"
    path.write_text(",".join(TEST_COLUMNS) + '\n1,1,4,2015-08-06,1,0,"x","0"\n')
    out = tmp_path / "s.csv"
    with pytest.raises(SystemExit) as exit_info:
        main(["submit", "--run", str(run_dir), "--data-dir", str(data_dir), "--test", str(path),
              "--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"rossmann-embed: error: {path} line 2, column 'StateHoliday': "
                          "got 'x', expected one of 0, a, b, c")
    assert not out.exists()


def test_cli_and_script_write_the_same_submission(trained: tuple[Path, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir, run_dir = trained
    args = ["--run", str(run_dir), "--data-dir", str(data_dir)]
    main(["submit", *args, "--out", str(tmp_path / "cli.csv")])
    monkeypatch.setattr(sys, "argv", ["make_submission.py", *args, "--out",
                                      str(tmp_path / "script.csv")])
    runpy.run_path(str(ROOT / "scripts" / "make_submission.py"), run_name="__main__")
    assert (tmp_path / "cli.csv").read_bytes() == (tmp_path / "script.csv").read_bytes()


@pytest.mark.parametrize(("value", "expected"), [
    ("2", "expected a share between 0 and 1, got 2.0"),
    ("-0.1", "expected a share between 0 and 1, got -0.1"),
    ("abc", "invalid float value: 'abc'"),
    ("nan", "expected a share between 0 and 1, got nan"),
])
def test_hide_future_outside_0_1_is_refused(value: str, expected: str,
                                            capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train", "--data-dir", "x", "--out", "y", "--hide-future", value])
    assert stop.value.code == 2
    assert f"argument --hide-future: {expected}" in capsys.readouterr().err


def test_negative_level_days_are_refused(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train", "--data-dir", "x", "--out", "y", "--level-days", "-1"])
    assert stop.value.code == 2
    assert "argument --level-days: expected a whole number of days >= 0, got -1" \
        in capsys.readouterr().err


def test_a_boosted_half_of_other_features_is_refused(trained: tuple[Path, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _, run_dir = trained
    monkeypatch.setattr(boosting, "LIGHTGBM_FEATURES", [*boosting.LIGHTGBM_FEATURES, "Newer"])
    with pytest.raises(InputError, match="trained on this version's features.*'Newer'"):
        load_train_run(run_dir)
