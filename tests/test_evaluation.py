"""Evaluation on labelled periods: the RMSPE a submission of that period would score, tables,
evaluation.json, figures, and clear errors for bad periods."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import polars as pl
import pytest
import torch

from rossmann_embed.cli import main
from rossmann_embed.rossmann.evaluation import evaluate, parse_date, rmspe_by
from rossmann_embed.rossmann.inference import load_runs, load_train_run, submit
from rossmann_embed.rossmann.kaggle_files import read_kaggle_csv
from rossmann_embed.rossmann.pipeline import fit
from rossmann_embed.rossmann.studies.synthetic import write_synthetic
from rossmann_embed.rossmann.train_config import TrainConfig
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.metrics import rmspe

TEST_COLUMNS = ["Id", "Store", "DayOfWeek", "Date", "Open", "Promo", "StateHoliday",
                "SchoolHoliday"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data dir, run dir): 30 synthetic stores, one tiny model."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on shared cores: a second thread only adds sync
    root = tmp_path_factory.mktemp("evaluation")
    write_synthetic(root / "data", n_stores=30)
    run = fit(TrainConfig(data_dir=str(root / "data"), out=str(root / "run"), epochs=1,
                          hidden_sizes=[64, 32], batch_size=512))
    yield root / "data", run
    torch.set_num_threads(threads)


def cut_period(data_dir: Path, first: dt.date, last: dt.date, path: Path) -> pl.DataFrame:
    """train.csv's rows from ``first`` to ``last`` in Kaggle's test layout (no Sales), in a
    shuffled order with Ids; returns the rows with their true Sales."""
    train = read_kaggle_csv(data_dir / "train.csv", "train.csv")
    cut = train.filter(pl.col("Date").is_between(first, last)).sample(fraction=1.0, seed=1)
    cut = cut.with_columns(Id=pl.int_range(1, pl.len() + 1, dtype=pl.Int64))
    cut.select(TEST_COLUMNS).write_csv(path)
    return cut


@pytest.mark.parametrize("period", [
    ("2015-06-14", "2015-07-31"),  # the last 48 days: look-ahead features reach into test.csv
    ("2014-03-03", "2014-03-23"),  # mid-history: the target replaces days with history after
])  # fmt: skip
def test_submission_of_a_labelled_period_scores_what_evaluate_reports(
    trained: tuple[Path, Path], tmp_path: Path, period: tuple[str, str]
) -> None:
    data_dir, run_dir = trained
    first, last = (dt.date.fromisoformat(d) for d in period)
    truth = cut_period(data_dir, first, last, tmp_path / "cut.csv")
    submit(load_runs([run_dir]), data_dir, tmp_path / "sub.csv", tmp_path / "cut.csv")
    scored = pl.read_csv(tmp_path / "sub.csv").join(truth.select("Id", "Sales"), on="Id",
                                                    suffix="_true")
    assert scored.height == truth.height
    kaggle = rmspe(scored.get_column("Sales_true").to_numpy(),
                   scored.get_column("Sales").to_numpy())
    result = evaluate(load_train_run(run_dir), data_dir, first, last, tmp_path / "eval")
    assert result["rows"] == truth.height
    assert result["rmspe"] == pytest.approx(kaggle, abs=1e-9)


def test_evaluate_writes_json_tables_and_figures(trained: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    data_dir, run_dir = trained
    first, last = dt.date(2015, 6, 14), dt.date(2015, 7, 31)
    result = evaluate(load_runs([run_dir]), data_dir, first, last, tmp_path)
    stored = json.loads((tmp_path / "evaluation.json").read_text())
    assert stored["rmspe"] == pytest.approx(result["rmspe"]) and 0 < stored["rmspe"] < 1
    train = read_kaggle_csv(data_dir / "train.csv", "train.csv").filter(
        pl.col("Date").is_between(first, last))
    assert stored["rows"] == train.height  # every labelled row, closed days included
    assert stored["rows_scored"] == train.filter(pl.col("Sales") != 0).height
    assert [m["member"] for m in stored["members"]] == ["seed-0"]
    assert set(stored["parts"]) == {"network", "lightgbm"}  # the forecast's halves alone
    # The network alone is its member plus the store levels, which one epoch leaves much to.
    assert stored["parts"]["network"] < stored["members"][0]["rmspe"]
    assert sum(r["rows"] for r in stored["by_store_type"]) == train.height
    assert sum(r["rows"] for r in stored["by_state"]) == train.height
    weeks = [r["WeekStart"] for r in stored["by_week"]]
    assert weeks == sorted(weeks) and all(dt.date.fromisoformat(w).weekday() == 0 for w in weeks)
    worst = [r["rmspe"] for r in stored["worst_stores"]]
    assert len(worst) == 10 and worst == sorted(worst, reverse=True)
    for name in ("daily_sales.png", "store_rmspe.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "daily_sales.png", "evaluation.json", "store_rmspe.png"]  # no temporary files left


def test_rmspe_by_skips_zero_sales_like_kaggle() -> None:
    rows = pl.DataFrame({
        "g": ["a", "a", "a", "b"],
        "Sales": [100, 200, 0, 0],
        "Prediction": [110.0, 150.0, 0.0, 5.0],
    })  # fmt: skip
    table = rmspe_by(rows, "g")
    a, b = table.row(0, named=True), table.row(1, named=True)
    assert a["rows"] == 3 and a["scored"] == 2
    assert a["rmspe"] == pytest.approx(math.sqrt((0.1**2 + 0.25**2) / 2))
    assert a["rmspe"] == pytest.approx(rmspe([100, 200, 0], [110, 150, 0]))
    assert b["scored"] == 0 and b["rmspe"] is None


def test_bad_periods_are_input_errors(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data_dir, run_dir = trained
    run = load_train_run(run_dir)
    with pytest.raises(InputError, match=r"--from: got '2015-07-31', expected a date on or "
                                         r"before --to"):
        evaluate(run, data_dir, dt.date(2015, 7, 31), dt.date(2015, 7, 1), tmp_path)
    with pytest.raises(InputError, match=r"train\.csv: got '2016-01-01 \.\. 2016-01-31', "
                                         r"expected labelled rows .*covers 2013-01-01 \.\. "
                                         r"2015-07-31"):
        evaluate(run, data_dir, dt.date(2016, 1, 1), dt.date(2016, 1, 31), tmp_path)
    with pytest.raises(InputError, match=r"--to: got '2015-13-01', expected a date like"):
        parse_date("2015-13-01", "--to")


def test_cli_evaluate_prints_tables(trained: tuple[Path, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    data_dir, run_dir = trained
    main(["evaluate", "--run", str(run_dir), "--data-dir", str(data_dir), "--from", "2015-07-01",
          "--to", "2015-07-31", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    rmspe_value = json.loads((tmp_path / "evaluation.json").read_text())["rmspe"]
    assert printed.startswith(f"RMSPE {rmspe_value:.5f}")
    for heading in ("by store type", "by state", "by week", "worst stores"):
        assert f"\n{heading}\n" in printed


def test_evaluate_says_how_much_of_the_period_has_labels(trained: tuple[Path, Path],
                                                         tmp_path: Path, capsys) -> None:
    from rossmann_embed.cli import main

    data_dir, run_dir = trained
    last = read_kaggle_csv(data_dir / "train.csv", "train.csv").get_column("Date").max()
    first = last - dt.timedelta(days=4)
    main(["evaluate", "--run", str(run_dir), "--data-dir", str(data_dir), "--from", str(first),
          "--to", str(last + dt.timedelta(days=5)), "--out", str(tmp_path)])
    stored = json.loads((tmp_path / "evaluation.json").read_text())
    assert (stored["days_requested"], stored["days_with_labels"]) == (10, 5)
    assert "note: train.csv has labelled rows on 5 of the 10 days asked" in capsys.readouterr().out
