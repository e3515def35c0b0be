"""One run format: a `train` run and a `fit` run have the same layout, and `load_run`,
`predict` and `embeddings` take either."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import torch
from conftest import shop_table

from rossmann_embed.cli import main
from rossmann_embed.rossmann.studies.synthetic import write_synthetic
from rossmann_embed.runs import is_fit_run, load_run

SHARED = {"config.json", "columns.json", "training.json", "validation.json", "metrics.csv",
          "checkpoints", "logs"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only adds sync
    root = tmp_path_factory.mktemp("runs")
    write_synthetic(root / "data", n_stores=10, start="2014-09-01", end="2015-03-31", seed=1)
    main(["train", "--data-dir", str(root / "data"), "--out", str(root / "train"),
          "--epochs", "1", "--hidden-sizes", "16", "--batch-size", "512",
          "--lightgbm-weight", "0", "--validation-days", "14"])
    shop_table(800).write_csv(root / "shops.csv")
    main(["fit", "--table", str(root / "shops.csv"), "--target", "sales", "--out",
          str(root / "fit"), "--epochs", "2", "--hidden-sizes", "16", "--ensemble-size", "2"])
    torch.set_num_threads(threads)
    return {"train": root / "train", "fit": root / "fit", "data": root / "data",
            "table": root / "shops.csv"}


def test_both_runs_have_the_same_layout(runs: dict[str, Path]) -> None:
    for kind in ("train", "fit"):
        assert {p.name for p in runs[kind].iterdir()} >= SHARED, kind
    train, fit = (json.loads((runs[k] / "columns.json").read_text()) for k in ("train", "fit"))
    assert set(train) == set(fit)
    assert train["target"] == "Sales" and "Store" in train["categorical"]
    assert is_fit_run(runs["fit"]) and not is_fit_run(runs["train"])


def test_predict_takes_either_run(runs: dict[str, Path], tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    test = runs["data"] / "test.csv"
    main(["predict", "--run", str(runs["train"]), "--table", str(test),
          "--out", str(tmp_path / "rossmann.csv")])
    written, given = pl.read_csv(tmp_path / "rossmann.csv"), pl.read_csv(test)
    assert written.drop("prediction").columns == given.columns
    assert written["Id"].to_list() == given["Id"].to_list()  # the table's order
    closed = written.filter(pl.col("Open") == 0)["prediction"]
    assert closed.len() == 0 or (closed == 0).all()
    assert (written.filter(pl.col("Open") == 1)["prediction"] > 0).all()
    main(["predict", "--run", str(runs["fit"]), "--table", str(runs["table"]),
          "--out", str(tmp_path / "shops.csv")])
    assert pl.read_csv(tmp_path / "shops.csv")["prediction"].is_finite().all()


def test_submit_is_predict_in_kaggle_layout(runs: dict[str, Path], tmp_path: Path) -> None:
    main(["predict", "--run", str(runs["train"]), "--table", str(runs["data"] / "test.csv"),
          "--out", str(tmp_path / "predicted.csv")])
    main(["submit", "--run", str(runs["train"]), "--data-dir", str(runs["data"]),
          "--out", str(tmp_path / "submission.csv")])
    predicted = pl.read_csv(tmp_path / "predicted.csv").sort("Id")
    submitted = pl.read_csv(tmp_path / "submission.csv")
    assert submitted["Id"].to_list() == predicted["Id"].to_list()
    assert (submitted["Sales"] - predicted["prediction"]).abs().max() < 1e-6


def test_load_run_and_embeddings_take_either_run(runs: dict[str, Path], tmp_path: Path) -> None:
    assert load_run(runs["fit"]).predict(shop_table(20).drop("sales")).shape == (20,)
    assert len(load_run(runs["train"]).models) == 1
    for kind in ("train", "fit"):
        main(["embeddings", "--run", str(runs[kind]), "--out", str(tmp_path / kind)])
        assert any((tmp_path / kind).rglob("*.csv")), kind


def test_the_manifest_names_the_kind_and_an_old_run_says_what_to_do(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    for kind in ("fit", "train"):
        manifest = json.loads((runs[kind] / "run.json").read_text())
        assert manifest["kind"] == kind and manifest["format"] == 2
    old = tmp_path / "old-fit-run"
    shutil.copytree(runs["fit"], old)
    (old / "run.json").unlink()
    with pytest.raises(SystemExit) as stopped:
        main(["predict", "--run", str(old), "--table", str(tmp_path / "x.csv"),
              "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and len(err.splitlines()) == 1
    assert 'add run.json holding {"kind": "fit", "format": 1}' in err
    (old / "run.json").write_text('{"kind": "fit", "format": 1}')
    assert load_run(old).predict(shop_table(5).drop("sales")).shape == (5,)


def test_a_run_path_that_is_missing_says_so(tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["predict", "--run", str(tmp_path / "nowhere"), "--table", str(tmp_path / "t.csv"),
              "--out", str(tmp_path / "p.csv")])
    assert stopped.value.code == 2
    assert "expected a run directory (this path is missing)" in capsys.readouterr().err
