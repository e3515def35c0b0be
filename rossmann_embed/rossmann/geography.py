"""German states as facts, and how well a state embedding reproduces their map.

- German facts: ``german_states()`` reads ``german_states.csv`` (written by the team from
  public facts): state code as used by the Rossmann solution's ``store_states.csv``, German
  name, capital, the capital's coordinates and the stem of that state's weather file. The
  region ``"HB,NI"`` (Bremen and Niedersachsen, one code there) is placed at Hannover, the
  capital of Niedersachsen, which holds nearly all of the region's area and stores; Bremen is
  about 100 km to the north-west. Its weather file is ``Niedersachsen``.
- ``geography_score``: the core's ``spatial_score`` on great-circle distances, plus whether
  the former East's states group apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from importlib import resources

import numpy as np
import polars as pl

from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.spatial import (
    GeographyScore,
    geographic_distances,
    group_test,
    map_coordinates,
    spatial_score,
)

_STATES_SCHEMA = {
    "code": pl.String,
    "name": pl.String,
    "capital": pl.String,
    "latitude": pl.Float64,
    "longitude": pl.Float64,
    "weather_file": pl.String,
    "former_east": pl.Int8,  # 1: in the former GDR; blank for Berlin, which was divided
}


# --- German facts ------------------------------------------------------------------------------


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


def geography_score(
    state_vectors: np.ndarray,
    state_codes: Sequence[str],
    lat: np.ndarray,
    lon: np.ndarray,
    seed: int = 0,
    permutations: int = 9999,
) -> GeographyScore:
    """Score state embeddings against the map: great-circle distances, km map for Procrustes,
    and whether the former East's states group apart (``group_test``)."""
    score = spatial_score(
        state_vectors,
        state_codes,
        map_coordinates(lat, lon),
        map_distances=geographic_distances(lat, lon),
        permutations=permutations,
        seed=seed,
    )
    r, p = group_test(state_vectors, german_state_former_east(state_codes), permutations, seed)
    return replace(score, east_west_r=r, east_west_p=p)
