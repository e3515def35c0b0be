"""German states as facts, read from ``german_states.csv`` (written by the team from public
facts): state code as used by the Rossmann solution's ``store_states.csv``, German name,
capital, the capital's coordinates and the stem of that state's weather file.

The region ``"HB,NI"`` (Bremen and Niedersachsen, one code there) is placed at Hannover, the
capital of Niedersachsen, which holds nearly all of the region's area and stores; Bremen is
about 100 km to the north-west. Its weather file is ``Niedersachsen``. Plain data only: the
readers use it without the map-scoring code of ``geography``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import numpy as np
import polars as pl

from rossmann_embed.tabular.errors import InputError

_STATES_SCHEMA = {
    "code": pl.String,
    "name": pl.String,
    "capital": pl.String,
    "latitude": pl.Float64,
    "longitude": pl.Float64,
    "weather_file": pl.String,
    "former_east": pl.Int8,  # 1: in the former GDR; blank for Berlin, which was divided
}


def german_states() -> pl.DataFrame:
    """The 12 state codes of the Rossmann data with name, capital, coordinates, weather file."""
    data = (resources.files("rossmann_embed.rossmann") / "german_states.csv").read_bytes()
    return pl.read_csv(data, schema=_STATES_SCHEMA)


def german_state_former_east(codes: Sequence[str]) -> list[int | None]:
    """1 for states of the former GDR, 0 for the west, None for Berlin; in the order given."""
    states = german_states()
    former_east = dict(zip(states["code"], states["former_east"], strict=True))
    return [former_east.get(c) for c in codes]


def german_state_coordinates(codes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (degrees) of each state code's capital, in the order given."""
    states = german_states()
    unknown = sorted(set(codes) - set(states["code"]))
    if unknown:
        raise InputError.at(
            "german_states.csv",
            f"one of {states['code'].to_list()}",
            column="code",
            value=unknown[0],
        )
    ordered = pl.DataFrame({"code": list(codes)}).join(
        states, on="code", how="left", maintain_order="left"
    )
    return ordered["latitude"].to_numpy(), ordered["longitude"].to_numpy()
