"""A `train` run as one ONNX model: the network, the store levels, the RMSPE shift and the
boosted half over the feature rows of ``serving.serving_rows``, predicting as `submit` does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxmltools")

from rossmann_embed.cli import main  # noqa: E402
from rossmann_embed.rossmann import boosting, serving  # noqa: E402
from rossmann_embed.rossmann.inference import (  # noqa: E402
    load_train_run,
    predict_kaggle,
    predict_sales,
)
from rossmann_embed.rossmann.kaggle_files import read_rossmann  # noqa: E402
from rossmann_embed.rossmann.pipeline import fit  # noqa: E402
from rossmann_embed.rossmann.shards import feature_blocks  # noqa: E402
from rossmann_embed.rossmann.studies.synthetic import write_synthetic  # noqa: E402
from rossmann_embed.rossmann.train_config import TrainConfig  # noqa: E402
from rossmann_embed.tabular.onnx_export import (  # noqa: E402
    PARITY_RTOL,
    onnx_feed,
    read_inputs,
    relative_difference,
)

ROUNDS = 300  # the boosted half's rounds in these tests: its trees, not their number, matter


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data dir, run dir): 12 synthetic stores, two tiny members, levels, a boosted half."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("rossmann-export")
    write_synthetic(root / "data", n_stores=12, start="2014-06-01", seed=3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(boosting, "BOOSTED_ROUNDS", ROUNDS)
        run = fit(TrainConfig(data_dir=str(root / "data"), out=str(root / "run"), epochs=1,
                              hidden_sizes=[64, 32], batch_size=512, seeds=2))
    yield root / "data", run
    torch.set_num_threads(threads)


def onnx_sales(model: Path, rows: pl.DataFrame) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, onnx_feed(rows, read_inputs(model.with_suffix(".json"))))[0]


def validation_rows(data_dir: Path, options: dict, days: int = 48) -> pl.DataFrame:
    """The feature rows of train.csv's last ``days`` days, as a service would build them for
    a run of these feature ``options``."""
    data = read_rossmann(data_dir, **options)
    last = data.train.get_column("Date").max()
    period = pl.col("Date") > pl.lit(last) - pl.duration(days=days)
    rows = pl.concat(frame.filter((pl.col("Set") == "train") & period)
                     for frame, _ in feature_blocks(data))
    return serving.with_lightgbm_view(rows)


def test_an_exported_train_run_forecasts_as_submit_does(trained, tmp_path, capsys) -> None:
    data_dir, run_dir = trained
    model = tmp_path / "forecast.onnx"
    main(["export", "--run", str(run_dir), "--out", str(model)])
    assert "ONNX model written" in capsys.readouterr().out
    description = json.loads(model.with_suffix(".json").read_text())
    names = [i["name"] for i in description["inputs"]]
    assert {"Store", "DayOfWeek", "Open", "lightgbm_Store", "lightgbm_DaysUntilPromo"} <= set(names)
    assert description["features"] == load_train_run(run_dir).feature_options
    # Kaggle's test rows (closed days among them), through the public feature-row builder.
    rows = serving.serving_rows(data_dir, **description["features"])
    expected = predict_kaggle(load_train_run(run_dir), data_dir)[0]
    assert rows.get_column("Id").equals(expected.get_column("Id"))
    actual = onnx_sales(model, rows)
    assert (actual[expected.get_column("Open").to_numpy() == 0] == 0).all()
    assert relative_difference(actual, expected.get_column("Prediction").to_numpy()).max() \
        <= PARITY_RTOL
    # The validation days, whose sales are known.
    run = load_train_run(run_dir)
    labelled = validation_rows(data_dir, run.feature_options)
    expected = predict_sales(run, labelled).get_column("Prediction").to_numpy()
    assert relative_difference(onnx_sales(model, labelled), expected).max() <= PARITY_RTOL


def test_one_member_exports_without_levels_or_boosted_half(trained, tmp_path) -> None:
    data_dir, run_dir = trained
    member = load_train_run(run_dir / "checkpoints" / "seed-0" / "best.ckpt")
    assert member.boosted is None and member.store_levels is None
    rows = serving.serving_rows(data_dir, **member.feature_options)
    model = serving.export_train_run(member, tmp_path / "member.onnx", rows)
    assert not any(i.name.startswith(serving.LIGHTGBM_PREFIX)
                   for i in read_inputs(model.with_suffix(".json")))
    expected = predict_kaggle(member, data_dir)[0].get_column("Prediction").to_numpy()
    assert relative_difference(onnx_sales(model, rows), expected).max() <= PARITY_RTOL


def test_a_model_that_would_forecast_differently_is_not_written(trained, tmp_path, capsys,
                                                               monkeypatch) -> None:
    data_dir, run_dir = trained
    monkeypatch.setattr(serving, "PARITY_RTOL", -1.0)  # no model can pass
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--run", str(run_dir), "--out", str(tmp_path / "m.onnx")])
    assert "predicts differently" in capsys.readouterr().err
    assert exit_info.value.code == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # about 100 s: Kaggle's features are built twice
def test_a_run_on_kaggles_data_exports_and_forecasts_its_validation_days(real_data, tmp_path,
                                                                         monkeypatch) -> None:
    # A small network on a sample, but Kaggle's stores, features, levels and boosted half.
    monkeypatch.setattr(boosting, "BOOSTED_ROUNDS", ROUNDS)
    run_dir = fit(TrainConfig(data_dir=str(real_data), out=str(tmp_path / "run"), epochs=1,
                              train_rows=50_000, hidden_sizes=[64, 32], seeds=1))
    run = load_train_run(run_dir)
    labelled = validation_rows(real_data, run.feature_options)
    model = serving.export_train_run(run, tmp_path / "rossmann.onnx", labelled)
    expected = predict_sales(run, labelled).get_column("Prediction").to_numpy()
    assert relative_difference(onnx_sales(model, labelled), expected).max() <= PARITY_RTOL
