"""Seaborn figures of embeddings: labelled maps, points by group, factor scatter, geography.

Every function takes polars frames (or arrays) and a path, writes one PNG atomically and
returns the path. Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, never
pyplot: no GUI backend, no global figure registry to leak into (nothing to close or show),
and safe to call from scripts, tests and servers alike. Seaborn's style is applied inside
each call only, so importing this module changes no global matplotlib settings.

Labels are placed in pixel space without extra dependencies (``_repel_labels``): each label
first takes the side of its point (of 8) that overlaps least with the labels already placed,
all markers and the frame; two labels whose lines to their points would cross swap places;
then a short repel pushes apart whatever still overlaps. A thin line joins a label that ended
up away from its point.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.text import Text

from rossmann_embed.tabular.files import atomic_write

DPI = 150
# 12 clearly distinct colours (tab10 plus black and gold); markers cycle too, so groups stay
# apart for colour-blind readers and in greyscale.
GROUP_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#e6ab02",
)  # fmt: skip
GROUP_MARKERS = ("o", "s", "^", "D", "v", "P")
_LABEL_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"}


# --- figure plumbing ---------------------------------------------------------------------------


@contextmanager
def theme() -> Iterator[None]:
    """Seaborn's white-grid style, for the figures made inside the block only."""
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9):
        yield


def new_axes(size: tuple[float, float]) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)  # attaches itself: gives savefig and a renderer for text sizes
    return fig, fig.add_subplot()


def save_figure(fig: Figure, path: Path) -> Path:
    """Write the PNG atomically; ``bbox_inches="tight"`` keeps outside legends in frame."""
    path = atomic_write(
        Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    )
    fig.clear()
    return path


def label_axes(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize="large", fontweight="bold")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _freeze_limits(ax: Axes, margin: float, equal_aspect: bool) -> None:
    """Fix the data limits (with room for labels) so pixel positions are final."""
    ax.margins(margin)
    ax.autoscale_view()
    if equal_aspect:
        ax.set_aspect("equal", adjustable="datalim")
        ax.apply_aspect()
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())


def group_palette(groups: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Colour and marker per group: ``GROUP_COLOURS`` up to 12 groups, else husl colours."""
    n = len(groups)
    colours = list(GROUP_COLOURS) if n <= len(GROUP_COLOURS) else sns.color_palette("husl", n)
    colour = {g: colours[i] for i, g in enumerate(groups)}
    marker = {g: GROUP_MARKERS[i % len(GROUP_MARKERS)] for i, g in enumerate(groups)}
    return colour, marker


# --- label placement ---------------------------------------------------------------------------

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


def _marker_radius_px(size: float, dpi: float) -> float:
    """Radius in pixels of a scatter marker of area ``size`` (points squared), plus 1 px."""
    return float(np.sqrt(size) / 2 * dpi / 72 + 1)


def _repel_labels(
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
    own = np.full(len(anchors), _marker_radius_px(marker_size, fig.dpi))
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


def _along(segments: np.ndarray, k: int = 6) -> np.ndarray:
    """Points spaced along line segments (s, 2, 2), so labels can avoid the lines."""
    t = np.linspace(0.15, 0.85, k)[None, :, None]
    return (segments[:, :1] * (1 - t) + segments[:, 1:] * t).reshape(-1, 2)


# --- figures -----------------------------------------------------------------------------------


def plot_labelled_map(
    points: pl.DataFrame,
    title: str,
    path: Path,
    xlabel: str = "component 1",
    ylabel: str = "component 2",
    *,
    equal_aspect: bool = False,
) -> Path:
    """A few labelled points (``label``, ``x``, ``y``), e.g. the 12 state embeddings."""
    with theme():
        fig, ax = new_axes((7.5, 6.5))
        x, y = points["x"].to_numpy(), points["y"].to_numpy()
        sns.scatterplot(x=x, y=y, ax=ax, s=70, color="#1f77b4", edgecolor="white", zorder=4)
        label_axes(ax, title, xlabel, ylabel)
        _freeze_limits(ax, 0.18, equal_aspect)
        _repel_labels(ax, x, y, points["label"].cast(pl.String).to_list(), marker_size=70,
                      fontsize=9.5)  # fmt: skip
        return save_figure(fig, path)


def _group_scatter(
    ax: Axes, points: pl.DataFrame, x: str, y: str, group: str, group_title: str, size: float
) -> None:
    """Points coloured and shaped by ``group``, legend outside the axes on the right."""
    groups = points[group].cast(pl.String).fill_null("(none)")
    order = sorted(groups.unique().to_list())
    colour, marker = group_palette(order)
    sns.scatterplot(
        x=points[x].to_numpy(), y=points[y].to_numpy(), hue=groups.to_list(),
        style=groups.to_list(), hue_order=order, style_order=order, palette=colour,
        markers=marker, s=size, alpha=0.85, edgecolor="white", linewidth=0.3, ax=ax, zorder=3,
    )  # fmt: skip
    ax.legend(
        title=group_title, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
        frameon=False, markerscale=1.3, fontsize="small", title_fontsize="medium",
    )  # fmt: skip


def plot_points_by_group(
    points: pl.DataFrame,
    title: str,
    path: Path,
    xlabel: str = "component 1",
    ylabel: str = "component 2",
    *,
    group_title: str = "group",
    equal_aspect: bool = False,
) -> Path:
    """Many points (``x``, ``y``, ``group``), e.g. ~1115 stores coloured by their state."""
    with theme():
        fig, ax = new_axes((8.0, 6.5))
        _group_scatter(ax, points, "x", "y", "group", group_title, size=22)
        label_axes(ax, title, xlabel, ylabel)
        _freeze_limits(ax, 0.04, equal_aspect)
        return save_figure(fig, path)


def extreme_rows(frame: pl.DataFrame, columns: Sequence[str], n: int) -> pl.DataFrame:
    """The rows with the ``n`` highest and ``n`` lowest values of each column (no repeats)."""
    indexed = frame.with_row_index("_row")
    ends = [
        indexed.sort(c, descending=desc).head(n) for c in columns for desc in (True, False)
    ]
    return pl.concat(ends).unique("_row", maintain_order=True).drop("_row")


def plot_factor_scatter(
    scores: pl.DataFrame,
    path: Path,
    *,
    x: str = "pc2",
    y: str = "pc3",
    group: str = "group",
    label: str = "label",
    n_labels: int = 3,
    title: str = "Components 2 and 3",
    xlabel: str | None = None,
    ylabel: str | None = None,
    group_title: str | None = None,
) -> Path:
    """Scores on two components coloured by ``group``, with the ``n_labels`` most extreme
    rows at each end of each component labelled by their ``label``."""
    with theme():
        fig, ax = new_axes((8.5, 7.0))
        _group_scatter(ax, scores, x, y, group, group_title or group, size=20)
        label_axes(ax, title, xlabel or x, ylabel or y)
        _freeze_limits(ax, 0.15, equal_aspect=False)  # room for labels beyond the extremes
        extremes = extreme_rows(scores, [x, y], n_labels)
        ax.scatter(extremes[x], extremes[y], s=70, facecolors="none", edgecolors="0.1",
                   linewidths=1.0, zorder=5)  # ring the labelled stores  # fmt: skip
        _repel_labels(
            ax, extremes[x].to_numpy(), extremes[y].to_numpy(),
            extremes[label].cast(pl.String).to_list(), marker_size=70, fontsize=8.5,
            background=[(scores.select(x, y).to_numpy(), _marker_radius_px(20, DPI))],
        )  # fmt: skip
        return save_figure(fig, path)


def _score_line(score: Mapping[str, float]) -> str:
    return (
        f"Mantel r = {score['mantel_r']:.2f} (p = {score['mantel_p']:.2g}), "
        f"Procrustes residual = {score['procrustes_residual']:.2f}"
    )


def plot_geography_alignment(
    points: pl.DataFrame,
    path: Path,
    title: str = "State embeddings aligned onto the map",
    *,
    score: Mapping[str, float] | None = None,
    xlabel: str = "km east",
    ylabel: str = "km north",
) -> Path:
    """Procrustes-aligned embedding over the real positions, as ``GeographyScore.points_frame()``
    gives them (``label``, ``x``, ``y``, ``map_x``, ``map_y``): map positions labelled, a line
    from each to its aligned embedding point; the score, if given, under the title."""
    real = points.select("map_x", "map_y").to_numpy()
    aligned = points.select("x", "y").to_numpy()
    pairs = np.stack([real, aligned], axis=1)
    with theme():
        fig, ax = new_axes((8.0, 8.0))
        ax.add_collection(LineCollection(pairs, colors="0.55", linewidths=1.0, linestyles="--",
                                         zorder=2, label="offset"))  # fmt: skip
        sns.scatterplot(x=real[:, 0], y=real[:, 1], ax=ax, s=80, color="#1f77b4",
                        edgecolor="white", zorder=4, label="real position")  # fmt: skip
        sns.scatterplot(x=aligned[:, 0], y=aligned[:, 1], ax=ax, s=70, color="#d62728",
                        marker="X", zorder=4, label="embedding (aligned)")  # fmt: skip
        full_title = title if score is None else f"{title}\n{_score_line(score)}"
        label_axes(ax, full_title, xlabel, ylabel)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
        _freeze_limits(ax, 0.12, equal_aspect=True)
        _repel_labels(
            ax, real[:, 0], real[:, 1], points["label"].cast(pl.String).to_list(),
            marker_size=80, fontsize=9.0,
            obstacles=[(aligned, _marker_radius_px(70, DPI)), (_along(pairs), 3.0)],
        )  # fmt: skip
        return save_figure(fig, path)


__all__ = [
    "DPI",
    "extreme_rows",
    "group_palette",
    "plot_factor_scatter",
    "plot_geography_alignment",
    "plot_labelled_map",
    "plot_points_by_group",
]
