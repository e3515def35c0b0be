"""Shared fixtures: the real Rossmann folder (skip when absent) and a tiny hand-written one;
and the one rule for slow tests: ``@pytest.mark.slow`` runs only with ``RUN_SLOW=1``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (minutes each, or a case that others of its kind cover in the
    default run) are skipped unless ``RUN_SLOW=1``."""
    if os.environ.get("RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set RUN_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def rossmann_dir() -> Path:
    """The real data folder: $ROSSMANN_DATA, defaulting to ../shared/data/rossmann."""
    return Path(os.environ.get("ROSSMANN_DATA", ROOT.parent / "shared" / "data" / "rossmann"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    path = rossmann_dir()
    if not (path / "train.csv").is_file():
        pytest.skip(f"real Rossmann data not found at {path} (set ROSSMANN_DATA)")
    return path


TINY = {
    "train.csv": [
        '"Store","DayOfWeek","Date","Sales","Customers","Open","Promo","StateHoliday","SchoolHoliday"',
        '1,3,2015-07-01,5000,500,1,1,"0","0"',
        '2,3,2015-07-01,6000,600,1,1,"0","1"',
        '1,2,2015-06-30,4000,400,1,0,"a","0"',
        '2,2,2015-06-30,0,0,0,0,"a","1"',
    ],
    "test.csv": [
        '"Id","Store","DayOfWeek","Date","Open","Promo","StateHoliday","SchoolHoliday"',
        '1,1,4,2015-07-02,1,1,"0","0"',
        '2,2,4,2015-07-02,,1,"0","0"',
    ],
    "store.csv": [
        '"Store","StoreType","Assortment","CompetitionDistance","CompetitionOpenSinceMonth",'
        '"CompetitionOpenSinceYear","Promo2","Promo2SinceWeek","Promo2SinceYear","PromoInterval"',
        '1,"c","a",1270,9,2008,0,,,""',
        '2,"a","a",570,11,2007,1,13,2010,"Jan,Apr,Jul,Oct"',
    ],
    "external/store_states.csv": ["Store,State", "1,HE", '2,"HB,NI"'],
}


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A valid four-row Rossmann folder written by hand (no weather or trend files)."""
    for name, lines in TINY.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    return tmp_path


SHOP_LEVELS = np.random.default_rng(30).permutation(np.linspace(4.0, 6.0, 30))


def shop_table(rows: int = 3000, seed: int = 0):
    """A generated table with planted effects: each shop has its own level (``SHOP_LEVELS``,
    in no order of the ids, as with real ids), kind "b" sells 35% more, ``x`` adds a slope;
    ``day`` is a date and ``shop_name`` a label."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    shop = rng.integers(0, 30, rows)
    kind = rng.choice(["a", "b", "c"], rows)
    x = rng.normal(size=rows)
    days = pl.date_range(pl.date(2020, 1, 1), pl.date(2021, 12, 31), eager=True)
    day = days.gather(rng.integers(0, len(days), rows))
    level = SHOP_LEVELS[shop] + 0.3 * (kind == "b") + 0.2 * x
    sales = np.exp(level + rng.normal(scale=0.05, size=rows))
    return pl.DataFrame({"shop": shop, "shop_name": [f"shop-{i:02d}" for i in shop],
                         "day": day, "kind": kind, "x": x, "sales": sales})


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: a second OpenMP thread only adds sync cost, badly so on shared cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
