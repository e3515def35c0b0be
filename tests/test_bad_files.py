"""Rossmann files that are present but wrong: one InputError line each, before anything is
written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TINY

from rossmann_embed.cli import main
from rossmann_embed.rossmann.kaggle_files import read_rossmann
from rossmann_embed.tabular.errors import InputError


def _replace_train_with_a_directory(folder: Path) -> None:
    (folder / "train.csv").unlink()
    (folder / "train.csv").mkdir()


BROKEN: dict[str, tuple[Callable[[Path], object], str]] = {
    "empty table": (lambda d: (d / "train.csv").write_text(TINY["train.csv"][0] + "\n"),
                    "train.csv: expected at least one data row below the header"),
    "not UTF-8": (lambda d: (d / "store.csv").write_bytes(
        "\n".join(TINY["store.csv"]).replace('"c","a"', '"c","\xe4"').encode("latin-1")),
        "store.csv line 2: got 'byte 0xe4', expected UTF-8 text"),
    "repeated Id": (lambda d: (d / "test.csv").write_text(
        "\n".join([*TINY["test.csv"], '1,1,5,2015-07-03,1,1,"0","0"']) + "\n"),
        "test.csv line 4, column 'Id': got '1', expected one row per (Id); it repeats line 2"),
    "unknown state": (lambda d: (d / "external" / "store_states.csv").write_text(
        "Store,State\n1,XX\n2,HE\n"),
        "store_states.csv line 2, column 'State': got 'XX', expected one of BW, BY"),
    "a directory": (_replace_train_with_a_directory,
                    "train.csv: expected train.csv to be a file, not a directory"),
    "parquet named .csv": (lambda d: (d / "train.csv").write_bytes(b"PAR1\x00\x15\x04junk"),
                           "train.csv: got 'a parquet file', expected CSV text"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_present_but_wrong_files(case: str, tiny_data: Path) -> None:
    breaks, message = BROKEN[case]
    breaks(tiny_data)
    with pytest.raises(InputError) as error:
        read_rossmann(tiny_data, weather=False, trends=False)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_cli_says_it_in_one_line_and_writes_nothing(tiny_data: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    BROKEN["unknown state"][0](tiny_data)
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--data-dir", str(tiny_data), "--out", str(tmp_path / "run")])
    assert stopped.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_too_few_rows_for_the_boosted_half(tiny_data: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--data-dir", str(tiny_data), "--out", str(tmp_path / "run"),
              "--validation-days", "1"])
    assert stopped.value.code == 2
    assert "--lightgbm-weight: got 0.5, expected a boosted half fitted on at least 100 " \
           "training rows; there are 1 (0: the network alone)" in capsys.readouterr().err
