"""A Rossmann `train` beyond memory: features built a block of stores at a time into parquet
shards, the future hidden as rows are read, the same run as in memory."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from rossmann_embed.cli import main
from rossmann_embed.rossmann import training
from rossmann_embed.rossmann.features import LOOK_AHEAD, blank_counts, build_features, model_rows
from rossmann_embed.rossmann.kaggle_files import read_rossmann
from rossmann_embed.rossmann.shards import (
    HideFuture,
    add_counts,
    day_number,
    feature_blocks,
    write_feature_shards,
)
from rossmann_embed.rossmann.studies.synthetic import write_synthetic
from rossmann_embed.rossmann.train_config import TrainConfig
from rossmann_embed.tabular.streaming import ROW_INDEX


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "data"
    write_synthetic(root, n_stores=30, start="2014-09-01", end="2015-07-31", seed=4)
    return root


def test_shards_hold_the_model_rows_with_the_whole_tables_features(synthetic: Path,
                                                                   tmp_path: Path) -> None:
    data = read_rossmann(synthetic)
    table = build_features(data)
    expected, counts = model_rows(table.frame)
    shards = write_feature_shards(data, tmp_path, seed=0, block_rows=2_000)  # blocks of 5 stores
    assert len(shards.paths) > 3
    got = pl.read_parquet(shards.paths).sort("Store", "Date")
    assert got.equals(expected.sort("Store", "Date").select(got.columns))
    assert list(shards.spec.categorical) == list(table.spec.categorical)
    assert (shards.spec.continuous, shards.spec.target) == (table.spec.continuous, "Sales")
    assert shards.report == {**table.report, **counts}
    # Each block's rows in a random order: a row group is a sample of its days.
    first = pl.read_parquet(shards.paths[0]).get_column("Date")
    assert not first.is_sorted() and not first.is_sorted(descending=True)


def test_the_future_is_hidden_on_training_rows_alone_and_alike_in_every_process() -> None:
    days = pl.date_range(pl.date(2015, 1, 1), pl.date(2015, 3, 31), eager=True)
    frame = pl.DataFrame({"Date": pl.concat([days, days]), **{c: pl.Series([5] * (2 * len(days)),
                                                                   dtype=pl.Int32)
                                                      for c in LOOK_AHEAD}})
    frame = frame.with_row_index(ROW_INDEX)
    before = day_number(pl.select(pl.date(2015, 3, 1)).item())
    hide = HideFuture(0.5, seed=3, before=before)
    hidden = hide(frame.lazy()).collect()
    assert hidden.equals(hide(frame.lazy()).collect())
    training = hidden.filter(pl.col("Date") < pl.date(2015, 3, 1))
    later = hidden.filter(pl.col("Date") >= pl.date(2015, 3, 1))
    assert later.select(pl.col(LOOK_AHEAD).null_count()).sum_horizontal().item() == 0
    cut = training.get_column("DaysUntilPromo").is_null().mean()
    # Half the rows see an end 0..59 days on; "until 5 days" is lost when it ends before.
    assert 0.02 < cut < 0.1
    weeks = training.get_column("PromoNext7").is_null().mean()
    assert 0.03 < weeks < 0.1  # an end within 7 days: 7/60 of the half
    assert HideFuture(0.0, 3, before)(frame.lazy()).collect().equals(frame)


def run(arguments: list[str]) -> None:
    try:
        main(arguments)
    except SystemExit as error:
        assert error.code in (0, None), error.code


def test_a_streamed_run_learns_as_the_in_memory_run(synthetic: Path, tmp_path: Path,
                                                    one_thread: None) -> None:
    common = ["train", "--data-dir", str(synthetic), "--epochs", "2", "--lightgbm-weight", "0",
              "--hidden-sizes", "64,32", "--validation-days", "28"]
    run([*common, "--out", str(tmp_path / "memory"), "--no-stream"])
    run([*common, "--out", str(tmp_path / "streamed"), "--stream"])
    read = {name: {file: json.loads((tmp_path / name / file).read_text()) for file in
                   ("validation.json", "training.json", "data_report.json")}
            for name in ("memory", "streamed")}
    memory, streamed = read["memory"], read["streamed"]
    assert streamed["data_report.json"] == memory["data_report.json"]
    assert streamed["training.json"] == memory["training.json"]  # every row, every epoch
    assert streamed["validation.json"]["rows"] == memory["validation.json"]["rows"]
    assert abs(streamed["validation.json"]["rmspe"] - memory["validation.json"]["rmspe"]) < 0.02
    assert (tmp_path / "streamed" / "store_levels.csv").is_file()


def test_a_large_feature_table_streams_unless_told(synthetic: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    config = TrainConfig(data_dir=str(synthetic), out="unused")
    assert not training.streams(config)
    monkeypatch.setattr(training, "STREAM_CELLS", 1_000)
    assert training.streams(config)
    config.stream = False
    assert not training.streams(config)


def test_a_sample_of_a_streamed_run_is_refused_with_one_line(
        synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data-dir", str(synthetic), "--out", str(tmp_path / "run"),
              "--stream", "--train-rows", "1000"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "--train-rows" in error and "--no-stream" in error
    assert not (tmp_path / "run").exists()


def test_the_boosted_half_holds_a_bounded_sample_of_its_own_columns(
        synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shards = write_feature_shards(read_rossmann(synthetic), tmp_path, seed=0)
    train = pl.scan_parquet(shards.paths)
    every = train.select(pl.len()).collect().item()
    monkeypatch.setattr(training, "BOOSTED_ROWS", every // 4)
    rows = training.boosted_rows(train, seed=0)
    assert abs(rows.height - every // 4) < every // 20  # a sample of about the limit
    assert set(rows.columns) < set(train.collect_schema())  # no feature the half does not read
    assert rows.equals(training.boosted_rows(train, seed=0))  # the same in every process


def test_predictions_build_features_a_block_of_stores_at_a_time(synthetic: Path) -> None:
    # submit, predict and evaluate of a train run take their feature rows from these blocks.
    data = read_rossmann(synthetic)
    target = data.test.head(300).with_columns(pl.col("Date") - pl.duration(days=7))
    whole = build_features(data, target)
    frames, counts = [], blank_counts(data)
    for frame, block_counts in feature_blocks(data, target, block_rows=2_000):
        frames.append(frame)
        add_counts(counts, block_counts)
    assert len(frames) > 3 and counts == whole.report
    assert pl.concat(frames).equals(whole.frame)
    some = pl.Series([3, 17, 22])
    wanted = pl.concat(frame for frame, _ in feature_blocks(data, target, stores=some,
                                                             block_rows=2_000))
    assert wanted.equals(whole.frame.filter(pl.col("Store").is_in(some.implode())))
