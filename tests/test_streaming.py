"""The streamed data path: row groups sharded by rank and worker, statistics by polars'
streaming engine, bad values found before training, streamed predict and fit."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from rossmann_embed.tabular import statistics
from rossmann_embed.tabular.encoding import ColumnSpec, Preprocessor
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.estimator import EmbeddingRegressor
from rossmann_embed.tabular.streaming import (
    ROW_INDEX,
    EpochLoader,
    Split,
    StreamedBatches,
    StreamedTable,
    batches_per_worker,
    row_groups,
)
from rossmann_embed.tabular.workflow import predict_table

ROWS = 5000


pytestmark = pytest.mark.usefixtures("one_thread")


def _planted(rows: int = ROWS, seed: int = 0) -> pl.DataFrame:
    """shop effect + weekday effect + 0.5 * x, with noise; ``id`` numbers the rows."""
    rng = np.random.default_rng(seed)
    shop = rng.integers(0, 30, rows)
    weekday = rng.integers(0, 7, rows)
    x = rng.normal(size=rows)
    y = (10 + np.linspace(-2, 2, 30)[shop] + 0.3 * np.sin(weekday) + 0.5 * x
         + rng.normal(0, 0.1, rows))
    return pl.DataFrame({"id": np.arange(rows), "shop": [f"s{s}" for s in shop],
                         "weekday": weekday, "x": x, "day": np.arange(rows) // 50, "y": y})


def _parquet(frame: pl.DataFrame, path: Path, group_rows: int = 400) -> Path:
    frame.write_parquet(path, row_group_size=group_rows)
    return path


def unchanged(frame: pl.LazyFrame) -> pl.LazyFrame:
    """The rows as read (a module-level function: spawned data-loader workers import it)."""
    return frame


def _ids(path: Path, split: Split) -> tuple[StreamedTable, Preprocessor]:
    """A table whose only input is the row id, embedded: a batch's codes minus one are its
    rows' ids (the vocabulary is the sorted ids)."""
    table = StreamedTable(row_groups([path]), ["id", "y"], unchanged, split).count()
    spec = ColumnSpec({"id": ROWS}, [], "y", "none")
    whole = pl.read_parquet(path)
    return table, Preprocessor(spec).fit(whole)


def _held(path: Path, split: Split) -> np.ndarray:
    frame = pl.read_parquet(path).with_row_index(ROW_INDEX)
    return frame.select(split.held()).to_series().to_numpy()


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_a_streamed_epoch_visits_every_training_row_exactly_once(tmp_path, world_size):
    path = _parquet(_planted(), tmp_path / "t.parquet")
    split = Split(0.2, seed=3)
    table, preprocessor = _ids(path, split)
    expected = np.flatnonzero(~_held(path, split))
    orders = []
    for epoch in range(2):
        seen, lengths = [], set()
        for rank in range(world_size):
            batches = StreamedBatches(table, "train", preprocessor, 64, shuffle=True, seed=1,
                                      epoch=epoch, rank=rank, world_size=world_size,
                                      buffer_rows=1000)
            rank_batches = list(batches)
            lengths.add((len(rank_batches), len(batches)))
            assert all(len(b[0]) <= 64 + 1 for b in rank_batches)
            seen.append(torch.cat([b[0][:, 0] for b in rank_batches]).numpy() - 1)
        assert len(lengths) == 1 and len({n for pair in lengths for n in pair}) == 1, (
            "every rank must run the same number of batches, as it says")
        every = np.concatenate(seen)
        assert len(every) == len(expected)  # none repeated ...
        np.testing.assert_array_equal(np.sort(every), expected)  # ... none missed
        orders.append(every)
    assert not np.array_equal(orders[0], orders[1]), "each epoch has its own order"
    window = orders[0][:1000]
    assert np.abs(np.diff(window)).mean() > 100, "rows are shuffled across row groups"


def test_each_data_loader_worker_reads_its_own_row_groups(tmp_path):
    path = _parquet(_planted(), tmp_path / "t.parquet")
    table, preprocessor = _ids(path, Split(0.0))
    batches = StreamedBatches(table, "train", preprocessor, 100, shuffle=True, seed=2)
    loader = EpochLoader(batches, workers=2)
    epochs = [torch.cat([b[0][:, 0] for b in loader]).numpy() - 1 for _ in range(2)]
    for ids in epochs:
        np.testing.assert_array_equal(np.sort(ids), np.arange(ROWS))
    assert not np.array_equal(*epochs), "the workers' copies move to the next epoch too"
    assert loader.epoch == 2


def test_batches_dealt_to_workers_add_up_to_the_ranks():
    assert batches_per_worker([400, 400, 0], 10) == [5, 5, 0]
    assert sum(batches_per_worker([1000, 37, 1], 13)) == 13
    with pytest.raises(ValueError, match="fewer workers"):
        batches_per_worker([5, 5, 5], 2)


def test_too_few_row_groups_for_the_processes_is_one_clear_error(tmp_path):
    path = _parquet(_planted(800), tmp_path / "t.parquet", group_rows=800)
    table, preprocessor = _ids(path, Split(0.0))
    with pytest.raises(ValueError, match="smaller row groups"):
        StreamedBatches(table, "train", preprocessor, 64, shuffle=True, world_size=2)


@pytest.mark.parametrize("scaling", ["quantile", "standard"])
def test_streamed_statistics_equal_the_in_memory_ones(tmp_path, scaling):
    frame = _planted().with_columns(pl.col("x").cast(pl.Float64))
    lazy = pl.scan_parquet(_parquet(frame, tmp_path / "t.parquet")).with_row_index(ROW_INDEX)
    spec = ColumnSpec({"shop": 30, "weekday": 7}, ["x", "day"], "y", "none")
    in_memory = Preprocessor(spec, scaling=scaling).fit(frame)
    sample = statistics.training_sample(lazy, frame.height, seed=0)
    streamed = Preprocessor(spec, scaling=scaling).fit_streamed(lazy, sample)
    assert streamed.vocabularies == in_memory.vocabularies
    assert streamed.quantiles == in_memory.quantiles  # every row: exactly the same
    assert streamed.means == pytest.approx(in_memory.means)
    assert streamed.stds == pytest.approx(in_memory.stds)


def test_sampled_quantiles_lie_within_the_stated_bound(tmp_path, monkeypatch):
    """With more training rows than SAMPLE_ROWS, each quantile's rank in the whole column is
    within the DKW bound of its level."""
    rows, sample_rows = 200_000, 5_000
    monkeypatch.setattr(statistics, "SAMPLE_ROWS", sample_rows)
    values = np.random.default_rng(1).lognormal(0, 1.5, rows)
    lazy = pl.LazyFrame({"x": values}).with_row_index(ROW_INDEX)
    sample = statistics.training_sample(lazy, rows, seed=0)
    assert abs(sample.height - sample_rows) < 5 * math.sqrt(sample_rows)
    spec = ColumnSpec({}, ["x"], None, "none")
    quantiles = np.array(Preprocessor(spec).fit_streamed(lazy, sample).quantiles["x"])
    levels = np.linspace(0, 1, len(quantiles))
    ranks = np.searchsorted(np.sort(values), quantiles, side="right") / rows
    bound = math.sqrt(math.log(2 / 1e-3) / (2 * sample.height))  # 99.9% of samples
    assert np.abs(ranks - levels)[1:-1].max() < bound


def test_a_bad_value_in_the_last_row_group_stops_the_fit_before_training(tmp_path):
    frame = _planted().with_columns(pl.col("x").cast(pl.String))
    frame = frame.with_columns(pl.when(pl.col("id") == ROWS - 3).then(pl.lit("n/a"))
                               .otherwise(pl.col("x")).alias("x"))
    path = _parquet(frame, tmp_path / "t.parquet")
    estimator = EmbeddingRegressor(continuous=("x",), out=str(tmp_path / "run"), epochs=1)
    with pytest.raises(InputError, match=rf"row {ROWS - 3}, column 'x': got 'n/a'"):
        estimator.fit(str(path), "y")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_streamed_and_in_memory_fits_score_alike_and_predict_alike(tmp_path):
    frame = _planted(seed=4)
    path = _parquet(frame, tmp_path / "t.parquet", group_rows=500)
    options = {"epochs": 4, "time_column": "day", "ensemble_size": 2, "hidden_sizes": (32,),
               "validation_fraction": 0.2}
    X = frame.drop("y", "id")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        in_memory = EmbeddingRegressor(**options).fit(X, frame.get_column("y"))
        streamed = EmbeddingRegressor(**options).fit(pl.scan_parquet(path).drop("id"), "y")
    assert streamed.validation_["rows"] == in_memory.validation_["rows"] == 1000
    assert streamed.roles_ == in_memory.roles_
    a, b = streamed.validation_["rmse"], in_memory.validation_["rmse"]
    assert abs(a - b) < 0.1 * b, (a, b)
    spread = frame.get_column("y").std()
    assert a < 0.5 * spread, "the streamed fit learned the planted effects"


def test_streamed_predict_writes_every_row_in_order_or_nothing(tmp_path, monkeypatch):
    import rossmann_embed.tabular.workflow as workflow

    frame = _planted(seed=5)
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = EmbeddingRegressor(epochs=1, hidden_sizes=(16,), out=str(run)).fit(
            frame.drop("y"), frame.get_column("y"))
    monkeypatch.setattr(workflow, "PREDICT_ROWS", 700)  # several chunks
    table = frame.drop("y").with_columns(pl.col("x").cast(pl.String))
    table.write_csv(tmp_path / "t.csv")
    for out in (tmp_path / "p.csv", tmp_path / "p.parquet"):
        report = predict_table(run, tmp_path / "t.csv", out)
        written = pl.read_parquet(out) if out.suffix == ".parquet" else pl.read_csv(out)
        assert report["rows"] == written.height == ROWS
        np.testing.assert_array_equal(written.get_column("id"), np.arange(ROWS))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = estimator.predict(frame.drop("y"))
        np.testing.assert_allclose(written.get_column("prediction"), expected, rtol=1e-6)
    bad = table.with_columns(pl.when(pl.col("id") == ROWS - 10).then(pl.lit("oops"))
                             .otherwise(pl.col("x")).alias("x"))
    bad.write_csv(tmp_path / "bad.csv")
    with pytest.raises(InputError, match=rf"line {ROWS - 10 + 2}, column 'x': got 'oops'"):
        predict_table(run, tmp_path / "bad.csv", tmp_path / "q.parquet")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".q", "q"))) == []


def test_a_killed_streamed_fit_resumes_and_ends_where_the_whole_run_ends(tmp_path):
    """SIGKILL as the third epoch starts, then `fit --resume`: the same weights as a run
    that was never stopped (the epoch's order of row groups and its shuffle are seeded)."""
    import signal
    import subprocess
    import sys
    import textwrap

    from rossmann_embed.cli import main

    path = _parquet(_planted(seed=6), tmp_path / "t.parquet")
    options = ["--table", str(path), "--target", "y", "--drop", "id", "--stream",
               "--epochs", "4", "--hidden-sizes", "16", "--ensemble-size", "2"]
    main(["fit", *options, "--out", str(tmp_path / "whole")])
    killed = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import os, signal
        from rossmann_embed.tabular import streaming
        from rossmann_embed.cli import main

        iterate = streaming.StreamedBatches.__iter__

        def kill_at_the_third_epoch(self):
            if self.part == "train" and self.epoch == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return iterate(self)

        streaming.StreamedBatches.__iter__ = kill_at_the_third_epoch
        main(["fit", *{options!r}, "--out", {str(killed)!r}])
    """)
    stopped = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert stopped.returncode == -signal.SIGKILL, stopped.stderr.decode()[-2000:]
    last = killed / "checkpoints" / "seed-0" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1
    main(["fit", *options, "--out", str(killed), "--resume"])
    expected, got = (torch.load(run / "checkpoints" / "seed-0" / "last.ckpt", weights_only=True)
                     for run in (tmp_path / "whole", killed))
    assert got["global_step"] == expected["global_step"]
    for name, weight in expected["state_dict"].items():
        torch.testing.assert_close(got["state_dict"][name], weight, msg=name)
