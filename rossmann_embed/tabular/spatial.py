"""How well embedding vectors of places reproduce a map: for any points, any dataset.

Great-circle distances, the Mantel test between two distance matrices, a permutation test
of whether two groups of places lie apart, Procrustes alignment of a 2-D projection onto a
map, and a score that combines them (``spatial_score``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.spatial import procrustes
from scipy.spatial.distance import cdist

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)

# --- distances and maps ------------------------------------------------------------------------


def geographic_distances(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Great-circle (haversine) distance matrix in km between points given in degrees."""
    phi, lam = np.radians(np.asarray(lat, float)), np.radians(np.asarray(lon, float))
    dphi = phi[:, None] - phi[None, :]
    dlam = lam[:, None] - lam[None, :]
    h = np.sin(dphi / 2) ** 2 + np.cos(phi[:, None]) * np.cos(phi[None, :]) * np.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def map_coordinates(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Planar (n, 2) map in km east and north of the mean point (equirectangular projection).

    Longitude is scaled by cos(mean latitude): distances between German capitals are within 5%.
    """
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    km_per_degree = np.radians(1.0) * EARTH_RADIUS_KM
    east = (lon - lon.mean()) * np.cos(np.radians(lat.mean())) * km_per_degree
    north = (lat - lat.mean()) * km_per_degree
    return np.column_stack([east, north])


def map_degrees(points: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Inverse of ``map_coordinates(lat, lon)``: planar km points back to (longitude, latitude)."""
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    km_per_degree = np.radians(1.0) * EARTH_RADIUS_KM
    points = np.asarray(points, float)
    lon_out = points[:, 0] / (np.cos(np.radians(lat.mean())) * km_per_degree) + lon.mean()
    return np.column_stack([lon_out, points[:, 1] / km_per_degree + lat.mean()])


def euclidean_distances(points: np.ndarray) -> np.ndarray:
    """Euclidean distance matrix between the rows of ``points``."""
    points = np.asarray(points, float)
    return cdist(points, points)  # no (n, n, d) intermediate: 1,115 stores x 400 dimensions


# --- Mantel test -------------------------------------------------------------------------------


def _check_square_pair(a: np.ndarray, b: np.ndarray) -> int:
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape != b.shape:
        raise ValueError(
            f"expected two square matrices of the same shape, got {a.shape}, {b.shape}"
        )
    if a.shape[0] < 3:
        raise ValueError(f"need at least 3 points for a Mantel test, got {a.shape[0]}")
    return a.shape[0]


def _row_correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``x`` (k, m) with the vector ``y`` (m,)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean()
    denom = np.linalg.norm(xc, axis=-1) * np.linalg.norm(yc)
    if np.any(denom == 0):
        raise ValueError("a distance matrix is constant; correlation is undefined")
    return (xc @ yc) / denom


def mantel_test(
    a: np.ndarray, b: np.ndarray, permutations: int = 9999, seed: int = 0
) -> tuple[float, float]:
    """Mantel test: Pearson r of the upper triangles of two distance matrices, and its p-value.

    The p-value is one-sided (positive association): (#{r_perm >= r} + 1) / (permutations + 1),
    where each r_perm permutes rows and columns of ``a`` together. Permutations are drawn in
    vectorised chunks, so 9999 permutations of a 12 x 12 matrix take milliseconds.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = _check_square_pair(a, b)
    rows, cols = np.triu_indices(n, k=1)
    y = b[rows, cols]
    r = float(_row_correlations(a[rows, cols][None, :], y)[0])

    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // rows.size)  # bound memory to ~16 MB per chunk
    at_least = 0
    for start in range(0, permutations, chunk):
        k = min(chunk, permutations - start)
        perms = rng.permuted(np.tile(np.arange(n), (k, 1)), axis=1)
        r_perm = _row_correlations(a[perms[:, rows], perms[:, cols]], y)
        at_least += int(np.count_nonzero(r_perm >= r - 1e-12))  # tolerance: ties from rounding
    return r, (at_least + 1) / (permutations + 1)


def group_test(
    vectors: np.ndarray, groups: Sequence[Hashable | None], permutations: int = 9999,
    seed: int = 0,
) -> tuple[float, float]:
    """ANOSIM (Clarke 1993): do points of one group lie closer to each other than to the rest?

    R = (mean rank of between-group distances - mean rank of within-group distances) / (M/2),
    M the number of pairs: 1 when every within-group pair is closer than every between-group
    pair, about 0 for unrelated groups. One-sided permutation p-value as in ``mantel_test``.
    Points whose group is None are left out.
    """
    keep = [i for i, g in enumerate(groups) if g is not None]
    labels = np.asarray([groups[i] for i in keep])
    distances = euclidean_distances(np.asarray(vectors, float)[keep])
    rows, cols = np.triu_indices(len(keep), k=1)
    ranks = np.argsort(np.argsort(distances[rows, cols], kind="stable")).astype(float)

    def statistic(lab: np.ndarray) -> np.ndarray:  # lab: (k, n) label rows -> (k,) R values
        within = lab[:, rows] == lab[:, cols]
        mean_within = (ranks * within).sum(1) / within.sum(1)
        mean_between = (ranks * ~within).sum(1) / (~within).sum(1)
        return (mean_between - mean_within) / (len(ranks) / 2)

    r = float(statistic(labels[None, :])[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // max(rows.size, 1))  # bound memory: 1,115 stores, 621k pairs
    at_least = 0
    for start in range(0, permutations, chunk):
        shuffled = rng.permuted(np.tile(labels, (min(chunk, permutations - start), 1)), axis=1)
        at_least += int(np.count_nonzero(statistic(shuffled) >= r - 1e-12))
    return r, (at_least + 1) / (permutations + 1)


def ensemble_vectors(members: Sequence[np.ndarray]) -> np.ndarray:
    """One space for a seed ensemble's embeddings of the same rows: each member's vectors
    centred, scaled to unit Frobenius norm and placed side by side.

    Members learn rotated, permuted spaces, so their vectors cannot be averaged; side by side,
    a squared distance is the mean of the members' (scaled) squared distances, which any
    rotation leaves alone, and no member weighs more for having larger vectors.
    """
    scaled = []
    for vectors in members:
        centred = np.asarray(vectors, float) - np.mean(vectors, axis=0)
        norm = np.linalg.norm(centred)
        scaled.append(centred / norm if norm > 0 else centred)
    return np.hstack(scaled)


def grouped_points_score(
    vectors: np.ndarray, groups: Sequence[Hashable], group_distances: np.ndarray,
    permutations: int = 999, seed: int = 0,
) -> dict[str, float | int]:
    """Do points of one group (the stores of a state) lie together, and do the distances
    between points follow the distances between their groups' places?

    ``group_r``/``group_p``: ``group_test`` by group. ``mantel_r``/``mantel_p``: Mantel test
    of the points' embedding distances against ``group_distances`` (n, n), the distance
    between the places of each pair's groups (0 within a group).
    """
    vectors = np.asarray(vectors, float)
    group_r, group_p = group_test(vectors, groups, permutations, seed)
    mantel_r, mantel_p = mantel_test(euclidean_distances(vectors), group_distances,
                                     permutations, seed)
    return {"group_r": group_r, "group_p": group_p, "mantel_r": mantel_r, "mantel_p": mantel_p,
            "n_points": len(vectors), "n_groups": len(set(groups)),
            "permutations": permutations}


# --- Procrustes --------------------------------------------------------------------------------


def procrustes_align(points: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
    """Align ``points`` onto ``reference`` by translation, uniform scale and rotation/reflection.

    Returns the aligned points in the reference's units and the residual: scipy's Procrustes
    disparity, the sum of squared differences after both sets are centred and scaled to unit
    Frobenius norm and optimally rotated; in [0, 1], 0 = same shape, near 1 = unrelated.
    """
    points, reference = np.asarray(points, float), np.asarray(reference, float)
    if points.shape != reference.shape or points.ndim != 2:
        raise ValueError(
            f"expected two (n, d) arrays of one shape, got {points.shape}, {reference.shape}"
        )
    _, aligned, disparity = procrustes(reference, points)
    centre = reference.mean(axis=0)
    aligned = aligned * np.linalg.norm(reference - centre) + centre  # back to reference units
    return aligned, float(disparity)


# --- score of an embedding ---------------------------------------------------------------------


@dataclass(frozen=True)
class GeographyScore:
    """How well embedding vectors of places reproduce their map.

    ``mantel_r``/``mantel_p``: Mantel test between embedding distances and map distances.
    ``procrustes_residual``: disparity of the 2-D PCA of the vectors aligned onto the map.
    ``aligned`` and ``reference`` are (n, 2) arrays in map units, for plotting only.
    """

    mantel_r: float
    mantel_p: float
    procrustes_residual: float
    n_states: int
    labels: tuple[str, ...]
    aligned: np.ndarray
    reference: np.ndarray
    east_west_r: float | None = None  # group_test of former East vs West (German map only)
    east_west_p: float | None = None

    def to_json_dict(self) -> dict[str, float | int]:
        """The scalar scores, JSON-ready (no arrays)."""
        scores = {
            "mantel_r": self.mantel_r,
            "mantel_p": self.mantel_p,
            "procrustes_residual": self.procrustes_residual,
            "n_states": self.n_states,
        }
        if self.east_west_r is not None:
            scores |= {"east_west_r": self.east_west_r, "east_west_p": self.east_west_p}
        return scores

    def points_frame(self) -> pl.DataFrame:
        """One row per place: label, aligned embedding position (x, y) and map position."""
        return pl.DataFrame(
            {
                "label": list(self.labels),
                "x": self.aligned[:, 0],
                "y": self.aligned[:, 1],
                "map_x": self.reference[:, 0],
                "map_y": self.reference[:, 1],
            }
        )


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """First two principal components of the rows of ``vectors`` (zero-padded if d < 2)."""
    centred = np.asarray(vectors, float) - np.mean(vectors, axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    scores = (u * s)[:, :2]
    return np.pad(scores, ((0, 0), (0, 2 - scores.shape[1])))


def spatial_score(
    vectors: np.ndarray,
    labels: Sequence[str],
    map_points: np.ndarray,
    *,
    map_distances: np.ndarray | None = None,
    permutations: int = 9999,
    seed: int = 0,
) -> GeographyScore:
    """Score embedding ``vectors`` (n, d) of places against planar ``map_points`` (n, 2).

    Embedding distances are Euclidean in the full space; map distances default to Euclidean
    distances of ``map_points`` (pass ``map_distances`` for e.g. great-circle km).
    """
    vectors, map_points = np.asarray(vectors, float), np.asarray(map_points, float)
    if vectors.ndim != 2 or len(vectors) != len(labels) or map_points.shape != (len(labels), 2):
        raise ValueError(
            f"expected vectors (n, d), n labels and map points (n, 2); got "
            f"{vectors.shape}, {len(labels)} labels, {map_points.shape}"
        )
    if map_distances is None:
        map_distances = euclidean_distances(map_points)
    r, p = mantel_test(euclidean_distances(vectors), map_distances, permutations, seed)
    aligned, residual = procrustes_align(pca_2d(vectors), map_points)
    return GeographyScore(r, p, residual, len(labels), tuple(labels), aligned, map_points)
