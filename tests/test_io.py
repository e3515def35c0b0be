"""Reading and validation: the real quirks pass, every kind of bad input names where and what."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from rossmann_embed.rossmann.kaggle_files import read_rossmann
from rossmann_embed.tabular.errors import InputError


def replace_line(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_tiny_folder_reads_with_quirks(tiny_data: Path) -> None:
    data = read_rossmann(tiny_data)
    assert data.train.height == 4 and data.test.height == 2
    assert data.train.get_column("StateHoliday").to_list() == ["0", "0", "a", "a"]
    assert data.train.schema["Date"] == pl.Date
    assert data.test.get_column("Open").null_count() == 1
    assert data.stores.filter(pl.col("Store") == 2).item(0, "State") == "HB,NI"
    assert data.stores.filter(pl.col("Store") == 1).item(0, "PromoInterval") is None
    assert data.weather is None and data.trends is None


def test_missing_file_points_to_readme(tiny_data: Path) -> None:
    (tiny_data / "store.csv").unlink()
    with pytest.raises(InputError, match=r"store\.csv.*expected the file store\.csv to exist"
                                         r".*data/README\.md"):
        read_rossmann(tiny_data)


def test_missing_column(tiny_data: Path) -> None:
    replace_line(tiny_data / "train.csv", '"Promo",', '"Promotion",')
    with pytest.raises(InputError, match=r"train\.csv line 1, column 'Promo'.*expected a column "
                                         r"named 'Promo'"):
        read_rossmann(tiny_data)


def test_bad_date(tiny_data: Path) -> None:
    replace_line(tiny_data / "train.csv", "2015-06-30,4000", "2015-13-30,4000")
    with pytest.raises(InputError, match=r"train\.csv line 4, column 'Date': got '2015-13-30', "
                                         r"expected a date"):
        read_rossmann(tiny_data)


def test_bad_integer(tiny_data: Path) -> None:
    replace_line(tiny_data / "train.csv", "6000,600", "6k,600")
    with pytest.raises(InputError, match=r"train\.csv line 3, column 'Sales': got '6k', "
                                         r"expected a whole number"):
        read_rossmann(tiny_data)


def test_unknown_state_holiday(tiny_data: Path) -> None:
    replace_line(tiny_data / "test.csv", '1,1,"0","0"', '1,1,"x","0"')
    with pytest.raises(InputError, match=r"test\.csv line 2, column 'StateHoliday': got 'x', "
                                         r"expected one of 0, a, b, c"):
        read_rossmann(tiny_data)


def test_duplicate_store_date(tiny_data: Path) -> None:
    replace_line(tiny_data / "train.csv", "2,2,2015-06-30", "1,2,2015-06-30")
    with pytest.raises(InputError, match=r"train\.csv line 5, column 'Store,Date': got "
                                         r"'1, 2015-06-30', expected one row per \(Store, Date\); "
                                         r"it repeats line 4"):
        read_rossmann(tiny_data)


def test_store_missing_from_store_csv(tiny_data: Path) -> None:
    replace_line(tiny_data / "test.csv", "2,2,4,", "2,7,4,")
    with pytest.raises(InputError, match=r"test\.csv line 3, column 'Store': got 7, expected a "
                                         r"store listed in store\.csv and store_states\.csv"):
        read_rossmann(tiny_data)


def test_store_missing_from_store_states(tiny_data: Path) -> None:
    replace_line(tiny_data / "external" / "store_states.csv", '2,"HB,NI"', '3,"HB,NI"')
    with pytest.raises(InputError, match=r"store\.csv line 3, column 'Store': got 2, expected a "
                                         r"store listed in store_states\.csv"):
        read_rossmann(tiny_data)


def test_negative_sales(tiny_data: Path) -> None:
    replace_line(tiny_data / "train.csv", "4000,400", "-4000,400")
    with pytest.raises(InputError, match=r"train\.csv line 4, column 'Sales': got -4000, "
                                         r"expected a value >= 0"):
        read_rossmann(tiny_data)


def test_real_files_read_whole(real_data: Path) -> None:
    data = read_rossmann(real_data)
    assert data.train.height == 963_689
    assert data.test.height == 41_088
    assert data.stores.height == 1_115
    assert data.stores.get_column("State").null_count() == 0
    assert data.test.get_column("Open").null_count() == 11
    assert set(data.train.get_column("StateHoliday").unique()) == {"0", "a", "b", "c"}
    assert data.weather is not None and data.weather.get_column("State").n_unique() == 12
    assert data.trends is not None and set(data.trends.get_column("State")) >= {"DE", "HB,NI"}
