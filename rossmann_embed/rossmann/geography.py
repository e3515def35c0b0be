"""How well a state embedding reproduces the map of Germany: ``geography_score``, the core's
``spatial_score`` on great-circle distances between the states' capitals (``states``), plus
whether the former East's states group apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from rossmann_embed.rossmann.states import german_state_former_east
from rossmann_embed.tabular.spatial import (
    GeographyScore,
    geographic_distances,
    group_test,
    map_coordinates,
    spatial_score,
)


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
