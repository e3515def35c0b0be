"""Labels beside scatter points without overlaps, in pixel space, with no extra dependencies.

Each label first takes the side of its point (of 8) that overlaps least with the labels
already placed, all markers and the frame; two labels whose lines to their points would
cross swap places; then a short repel pushes apart whatever still overlaps. A thin line
joins a label that ended up away from its point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.text import Text

_LABEL_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"}

# Candidate label positions around a point: right, left, above, below, then the diagonals.
_SIDES = np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1)], float)
_UNIT_SIDES = _SIDES / np.linalg.norm(_SIDES, axis=1, keepdims=True)
_REACH = np.where(np.abs(_SIDES).sum(axis=1) == 2, 0.8, 1.0)[:, None] + 0.15


def _overlap_area(centre: np.ndarray, half: np.ndarray, centres: np.ndarray,
                  halves: np.ndarray) -> float:  # fmt: skip
    """Total area by which one box overlaps a set of boxes (all in pixels)."""
    overlap = np.clip(half + halves - np.abs(centre - centres), 0.0, None)
    return float(np.sum(overlap[:, 0] * overlap[:, 1]))


def _outside_area(centre: np.ndarray, half: np.ndarray, bounds: np.ndarray) -> float:
    inside = np.clip(np.minimum(centre + half, bounds[1]) - np.maximum(centre - half, bounds[0]),
                     0.0, None)  # fmt: skip
    return float(4 * half[0] * half[1] - inside[0] * inside[1])


def _towards_neighbour(anchors: np.ndarray, own: np.ndarray) -> np.ndarray:
    """(n, 8): how much each side faces a labelled point within a few marker widths.

    A label on that side would sit between two close points, or its line would run past the
    neighbour, and the reader could not tell whose label it is.
    """
    delta = anchors[None, :, :] - anchors[:, None, :]  # from i to j
    distance = np.linalg.norm(delta, axis=-1)
    np.fill_diagonal(distance, np.inf)
    j = np.argmin(distance, axis=1)
    nearest = distance[np.arange(len(anchors)), j]
    close = nearest < 6 * own
    unit = delta[np.arange(len(anchors)), j] / np.where(close, nearest, 1.0)[:, None]
    return np.clip(unit @ _UNIT_SIDES.T, 0.0, None) * close[:, None]


def _greedy_place(anchors: np.ndarray, half: np.ndarray, own: np.ndarray, points: np.ndarray,
                  radii: np.ndarray, bounds: np.ndarray) -> np.ndarray:  # fmt: skip
    """Put each label on the side of its point that overlaps least with the labels placed so
    far, every point and the frame; ties go to the side facing away from the labelled points'
    centre (a tiny term, in px^2 per px of outward distance)."""
    outward = (anchors - anchors.mean(axis=0)) @ _UNIT_SIDES.T  # (n, 8)
    crowded = _towards_neighbour(anchors, own) * (4 * half.prod(axis=1))[:, None]
    point_halves = np.column_stack([radii, radii])
    centres = np.zeros_like(anchors)
    for i in range(len(anchors)):
        # Sides touch the marker; diagonals put a corner of the box just off it.
        candidates = anchors[i] + _SIDES * (half[i] + own[i] * _REACH)
        cost = [
            _overlap_area(c, half[i], centres[:i], half[:i])
            + _overlap_area(c, half[i], points, point_halves)
            + 10 * _outside_area(c, half[i], bounds)
            + 0.5 * crowded[i, k]
            - 1e-3 * outward[i, k]
            for k, c in enumerate(candidates)
        ]
        centres[i] = candidates[int(np.argmin(cost))]
    return centres


def _cross(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> bool:
    """Whether segment p1-p2 properly crosses segment q1-q2."""

    def turn(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
        return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    return (turn(p1, p2, q1) * turn(p1, p2, q2) < 0) and (turn(q1, q2, p1) * turn(q1, q2, p2) < 0)


def _uncross(anchors: np.ndarray, centres: np.ndarray, sweeps: int = 3) -> np.ndarray:
    """Swap the places of two labels whose point-to-label lines cross (close neighbours)."""
    centres = centres.copy()
    for _ in range(sweeps):
        swapped = False
        for i in range(len(centres)):
            for j in range(i + 1, len(centres)):
                if _cross(anchors[i], centres[i], anchors[j], centres[j]):
                    centres[[i, j]] = centres[[j, i]]
                    swapped = True
        if not swapped:
            break
    return centres


def _pair_push(delta: np.ndarray, overlap: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Displacement of each box: along the axis of least overlap, away from the other one."""
    axis = np.argmin(overlap, axis=-1)
    push = np.zeros(delta.shape[0::2])
    # Ties (same centre) break by index so two identical boxes move apart, not together.
    tie = np.where(np.arange(delta.shape[0])[:, None] < np.arange(delta.shape[1]), -1, 1)
    for a in (0, 1):
        sign = np.where(delta[..., a] == 0, tie, np.sign(delta[..., a]))
        push[:, a] = np.sum((hit & (axis == a)) * overlap[..., a] * sign, axis=1)
    return push


def _repel(centres: np.ndarray, half: np.ndarray, points: np.ndarray, radii: np.ndarray,
           bounds: np.ndarray, iterations: int = 300) -> np.ndarray:  # fmt: skip
    """Push label boxes (pixels) apart, and off the points, until nothing overlaps."""
    lo, hi = bounds[0] + half, bounds[1] - half
    others = ~np.eye(len(centres), dtype=bool)
    for _ in range(iterations):
        d_ll = centres[:, None, :] - centres[None, :, :]
        ov_ll = half[:, None, :] + half[None, :, :] - np.abs(d_ll)
        hit_ll = (ov_ll > 0).all(axis=-1) & others
        d_lp = centres[:, None, :] - points[None, :, :]
        ov_lp = half[:, None, :] + radii[None, :, None] - np.abs(d_lp)
        hit_lp = (ov_lp > 0).all(axis=-1)
        if not hit_ll.any() and not hit_lp.any():
            break
        push = 0.5 * _pair_push(d_ll, ov_ll, hit_ll) + _pair_push(d_lp, ov_lp, hit_lp)
        centres = np.clip(centres + 0.6 * push, lo, hi)  # damped: pairs otherwise oscillate
    return centres


def marker_radius_px(size: float, dpi: float) -> float:
    """Radius in pixels of a scatter marker of area ``size`` (points squared), plus 1 px."""
    return float(np.sqrt(size) / 2 * dpi / 72 + 1)


def repel_labels(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    labels: Sequence[str],
    *,
    marker_size: float = 40.0,
    obstacles: Sequence[tuple[np.ndarray, float]] = (),
    background: Sequence[tuple[np.ndarray, float]] = (),
    fontsize: float = 9.0,
) -> list[Text]:
    """Write ``labels`` next to the points (x, y) without overlaps; call after limits are final.

    ``marker_size`` is the scatter ``s`` of the labelled points. ``obstacles`` and
    ``background`` are (data points (m, 2), radius in pixels) pairs: labels must not cover
    obstacles; they prefer the side of their point with the least background (a dense cloud
    cannot always be avoided, so it only steers the first choice).
    """
    if len(labels) == 0:
        return []
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    anchors = to_px(np.column_stack([x, y]).astype(float))
    own = np.full(len(anchors), marker_radius_px(marker_size, fig.dpi))
    points = np.vstack([anchors, *(to_px(p) for p, _ in obstacles)])
    radii = np.concatenate([own, *(np.full(len(p), r) for p, r in obstacles)])
    soft = np.vstack([points, *(to_px(p) for p, _ in background)])
    soft_radii = np.concatenate([radii, *(np.full(len(p), r) for p, r in background)])
    texts = [
        ax.text(0, 0, s, fontsize=fontsize, ha="center", va="center", zorder=6, color="0.15",
                bbox={**_LABEL_BOX, "alpha": 0.8})
        for s in labels
    ]  # fmt: skip
    pad_px = 2 * 0.15 * fontsize * fig.dpi / 72 + 2  # the box padding plus 1 px each side
    sizes = np.array([[e.width, e.height] for e in (t.get_window_extent(renderer) for t in texts)])
    half = (sizes + pad_px) / 2
    frame = ax.get_window_extent(renderer)
    bounds = np.array([[frame.x0, frame.y0], [frame.x1, frame.y1]])
    centres = _greedy_place(anchors, half, own, soft, soft_radii, bounds)
    centres = _uncross(anchors, centres)
    centres = _repel(centres, half, points, radii, bounds)
    _leader_lines(ax, anchors, centres, half, own)
    for text, xy in zip(texts, ax.transData.inverted().transform(centres), strict=True):
        text.set_position(xy)
    return texts


def _leader_lines(
    ax: Axes, anchors: np.ndarray, centres: np.ndarray, half: np.ndarray, own: np.ndarray
) -> None:
    """Thin lines from each point to its label's box edge when the label sits away from it."""
    delta = anchors - centres
    scale = np.min(np.abs(half / np.where(delta == 0, 1e-9, delta)), axis=1, keepdims=True)
    edges = centres + np.minimum(scale, 1.0) * delta
    far = np.linalg.norm(anchors - edges, axis=1) > own + 6
    if not far.any():
        return
    inverse = ax.transData.inverted().transform
    segments = np.stack([inverse(anchors[far]), inverse(edges[far])], axis=1)
    ax.add_collection(LineCollection(segments, colors="0.45", linewidths=0.7, zorder=5))


def points_along(segments: np.ndarray, k: int = 6) -> np.ndarray:
    """Points spaced along line segments (s, 2, 2), so labels can avoid the lines."""
    t = np.linspace(0.15, 0.85, k)[None, :, None]
    return (segments[:, :1] * (1 - t) + segments[:, 1:] * t).reshape(-1, 2)
