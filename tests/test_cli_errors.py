"""Bad options and unexpected failures at the command line: one line, the right exit status,
nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from rossmann_embed import cli
from rossmann_embed.cli import main
from rossmann_embed.tabular.errors import InputError, TrainingFailed, TrainingInterrupted


@pytest.mark.parametrize(("options", "message"), [
    (["--epochs", "0"], "argument --epochs: expected a whole number of at least 1, got 0"),
    (["--seeds", "0"], "argument --seeds: expected a whole number of at least 1, got 0"),
    (["--lr", "nan"], "argument --learning-rate: expected a finite number > 0, got nan"),
    (["--dropout", "1.5"], "argument --dropout: expected rates in [0, 1), got 1.5"),
    (["--hidden-sizes", "32", "--dropout", "0.1,0.2"],
     "argument --dropout: expected one rate per hidden layer (1), got 0.1,0.2"),
    (["--embedding-size", "Store=0"], "argument --embedding-size: expected sizes of at least 1"),
    (["--validation-days", "-3"], "argument --validation-days: expected a whole number of days"),
    (["--logger", "wandb"], "argument --logger: invalid choice: 'wandb'"),
    (["--drop-features", "weather,moon"], "argument --drop-features: expected groups among "
                                          "calendar, promo, state_holidays"),
    (["--features", "some"], "argument --features: invalid choice: 'some'"),
])
def test_bad_train_options_are_usage_errors(options: list[str], message: str, tiny_data: Path,
                                            tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--data-dir", str(tiny_data), "--out", str(out), *options])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_config_file_value_names_the_file_and_key(tiny_data: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("epochs: 0\nlearning_rate: 0.01\n")
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--data-dir", str(tiny_data), "--out", str(tmp_path / "run"),
              "--config", str(config)])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{config} column 'epochs': got 0, expected a whole number of at "
                        "least 1") and len(err.splitlines()) == 1


@pytest.mark.parametrize(("options", "message"), [
    (["--embedding-size", "Foo=3", "--validation-days", "1", "--lightgbm-weight", "0"],
     "--embedding-size: got 'Foo', expected a categorical column"),
    (["--validation-days", "500"], "--validation-days: got 500, expected fewer days than the "
                                   "data's 2"),
])
def test_options_checked_against_the_data(options: list[str], message: str, tiny_data: Path,
                                          tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--data-dir", str(tiny_data), "--out", str(out), *options])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing half-written


def test_out_that_is_a_file_is_an_input_error(tiny_data: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--data-dir", str(tiny_data), "--out", str(tmp_path / "taken")])
    assert stopped.value.code == 2
    assert "expected a directory to write the run into (--out)" in capsys.readouterr().err


def test_unexpected_failures_are_one_line_with_status_1(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    def broken(args) -> None:
        raise RuntimeError("the disk fell off\nsecond line")

    monkeypatch.setitem(cli.COMMANDS, "demo", broken)
    with pytest.raises(SystemExit) as stopped:
        main(["demo", "--out", str(tmp_path)])
    assert stopped.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err == ("rossmann-embed: error: demo failed: RuntimeError: the disk fell off (set "
                   "ROSSMANN_EMBED_DEBUG=1 to see the traceback)")
    monkeypatch.setenv("ROSSMANN_EMBED_DEBUG", "1")
    with pytest.raises(RuntimeError, match="the disk fell off"):
        main(["demo", "--out", str(tmp_path)])


def test_bad_fit_options_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    table = tmp_path / "t.csv"
    table.write_text("a,y\nx,1\ny,2\n")
    with pytest.raises(SystemExit) as stopped:
        main(["fit", "--table", str(table), "--target", "y", "--out", str(tmp_path / "r"),
              "--batch-size", "0"])
    assert stopped.value.code == 2
    assert "argument --batch-size: expected a whole number of at least 1, got 0" in \
        capsys.readouterr().err



@pytest.mark.parametrize(("error", "status"), [
    (TrainingFailed("training diverged (member seed 0: ...)"), 1),
    (TrainingInterrupted("training stopped by SIGTERM"), 143),
    (InputError("t.csv line 2, column 'x': got 'a', expected a number"), 2),
])
def test_each_failure_has_its_exit_status(error: Exception, status: int,
                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    def failing(args) -> None:
        raise error

    monkeypatch.setitem(cli.COMMANDS, "demo", failing)
    with pytest.raises(SystemExit) as ended:
        main(["demo", "--out", str(tmp_path)])
    assert ended.value.code == status
    assert capsys.readouterr().err.strip() == f"rossmann-embed: error: {error}"


# --- a table of one's own: faults found by trying it as a new user would -----------------------


def _fit(table: Path, out: Path, *extra: str) -> None:
    main(["fit", "--table", str(table), "--target", "sales", "--out", str(out), "--epochs", "1",
          "--hidden-sizes", "16", "--ensemble-size", "2", *extra])


def test_any_column_name_a_csv_can_hold_fits_predicts_and_reports(tmp_path: Path) -> None:
    from conftest import shop_table

    frame = shop_table(600).rename({"shop": "Filiale Nr.", "kind": "training"})
    frame.write_csv(tmp_path / "t.csv")
    _fit(tmp_path / "t.csv", tmp_path / "run", "--categorical", "Filiale Nr.")
    main(["predict", "--run", str(tmp_path / "run"), "--table", str(tmp_path / "t.csv"),
          "--out", str(tmp_path / "p.csv")])
    main(["embeddings", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "maps")])
    assert (tmp_path / "p.csv").is_file()
    tables = {p.name for p in (tmp_path / "maps").rglob("*.csv")}
    assert {"Filiale_Nr.csv", "training.csv"} <= tables  # names made safe for files


def test_a_header_that_names_a_column_twice_is_one_line(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "t.csv").write_text("shop,x,shop,sales\n1,0.5,2,10\n2,0.1,3,12\n")
    with pytest.raises(SystemExit) as stopped:
        _fit(tmp_path / "t.csv", tmp_path / "run")
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and len(err.splitlines()) == 1
    assert "line 1, column 'shop'" in err and "each column named once" in err


def test_a_damaged_run_description_or_a_blocked_output_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from conftest import shop_table

    shop_table(300).write_csv(tmp_path / "t.csv")
    _fit(tmp_path / "t.csv", tmp_path / "run")
    (tmp_path / "a-file").write_text("")
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(["predict", "--run", str(tmp_path / "run"), "--table", str(tmp_path / "t.csv"),
              "--out", str(tmp_path / "a-file" / "p.csv")])
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and "a-file is a file" in err and len(err.splitlines()) == 1
    (tmp_path / "run" / "estimator.json").write_text('{"params": [1, 2]}')
    with pytest.raises(SystemExit) as stopped:
        main(["predict", "--run", str(tmp_path / "run"), "--table", str(tmp_path / "t.csv"),
              "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and "estimator.json" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p.csv").exists()


def test_version_is_the_package_version(capsys: pytest.CaptureFixture) -> None:
    import rossmann_embed

    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"rossmann-embed {rossmann_embed.__version__}"
