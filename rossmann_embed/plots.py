"""Seaborn figures of embeddings: labelled maps, points by group, factor scatter, geography.

Every function takes polars frames (or arrays) and a path, writes one PNG atomically and
returns the path. Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, never
pyplot: no GUI backend, no global figure registry to leak into (nothing to close or show),
and safe to call from scripts, tests and servers alike. Seaborn's style is applied inside
each call only, so importing this module changes no global matplotlib settings.

Labels are placed by a small repel (``_repel_labels``): each label starts beside its point,
away from the centre of the cloud, then overlapping labels and labels covering points are
pushed apart in pixel space until nothing overlaps; a thin line joins a moved label to its
point.
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

from rossmann_embed.embeddings import atomic_write

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
def _theme() -> Iterator[None]:
    """Seaborn's white-grid style, for the figures made inside the block only."""
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9):
        yield


def _new_axes(size: tuple[float, float]) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)  # attaches itself: gives savefig and a renderer for text sizes
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> Path:
    """Write the PNG atomically; ``bbox_inches="tight"`` keeps outside legends in frame."""
    path = atomic_write(
        Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    )
    fig.clear()
    return path


def _label_axes(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
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


# --- label repel -------------------------------------------------------------------------------


def _pair_push(delta: np.ndarray, overlap: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Displacement of each box: along the axis of least overlap, away from the other one."""
    axis = np.argmin(overlap, axis=-1)
    push = np.zeros(delta.shape[0::2])
    for a in (0, 1):
        on_axis = hit & (axis == a)
        # Ties (same centre) break by index so two identical boxes move apart, not together.
        tie = np.where(np.arange(delta.shape[0])[:, None] < np.arange(delta.shape[1]), -1, 1)
        sign = np.where(delta[..., a] == 0, tie, np.sign(delta[..., a]))
        push[:, a] = np.sum(on_axis * overlap[..., a] * sign, axis=1)
    return push


def _repel(
    anchors: np.ndarray,
    half: np.ndarray,
    points: np.ndarray,
    bounds: np.ndarray,
    point_px: float,
    iterations: int = 500,
) -> np.ndarray:
    """Label-box centres (pixels) that overlap neither each other nor any point."""
    spread = anchors - anchors.mean(axis=0)
    norm = np.linalg.norm(spread, axis=1, keepdims=True)
    direction = np.where(norm > 0, spread / np.where(norm > 0, norm, 1), [[0.0, 1.0]])
    centres = anchors + direction * (half + point_px)  # start beside the point, facing out
    lo, hi = bounds[0] + half, bounds[1] - half
    for _ in range(iterations):
        d_ll = centres[:, None, :] - centres[None, :, :]
        ov_ll = half[:, None, :] + half[None, :, :] - np.abs(d_ll)
        hit_ll = (ov_ll > 0).all(axis=-1) & ~np.eye(len(centres), dtype=bool)
        d_lp = centres[:, None, :] - points[None, :, :]
        ov_lp = half[:, None, :] + point_px - np.abs(d_lp)
        hit_lp = (ov_lp > 0).all(axis=-1)
        if not hit_ll.any() and not hit_lp.any():
            break
        push = 0.5 * _pair_push(d_ll, ov_ll, hit_ll) + _pair_push(d_lp, ov_lp, hit_lp)
        centres = np.clip(centres + 0.6 * push, lo, hi)  # damped: pairs otherwise oscillate
    return centres


def _repel_labels(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    labels: Sequence[str],
    *,
    obstacles: np.ndarray | None = None,
    fontsize: float = 9.0,
    point_px: float = 6.0,
    colour: str = "0.15",
) -> list[Text]:
    """Write ``labels`` next to the points (x, y) without overlaps; call after limits are final.

    ``obstacles`` are further (m, 2) data points that labels must not cover.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    anchors = to_px(np.column_stack([x, y]).astype(float))
    points = anchors if obstacles is None else np.vstack([anchors, to_px(obstacles)])
    texts = [
        ax.text(0, 0, s, fontsize=fontsize, ha="center", va="center", zorder=6, color=colour,
                bbox={**_LABEL_BOX, "alpha": 0.8})
        for s in labels
    ]  # fmt: skip
    pad_px = 2 * 0.15 * fontsize * fig.dpi / 72 + 2  # the box padding plus 1 px each side
    sizes = np.array([[e.width, e.height] for e in (t.get_window_extent(renderer) for t in texts)])
    half = (sizes + pad_px) / 2
    bbox = ax.get_window_extent(renderer)
    bounds = np.array([[bbox.x0, bbox.y0], [bbox.x1, bbox.y1]])
    centres = _repel(anchors, half, points, bounds, point_px)
    _leader_lines(ax, anchors, centres, half, point_px)
    for text, xy in zip(texts, ax.transData.inverted().transform(centres), strict=True):
        text.set_position(xy)
    return texts


def _leader_lines(
    ax: Axes, anchors: np.ndarray, centres: np.ndarray, half: np.ndarray, point_px: float
) -> None:
    """Thin lines from each point to its label's box edge when the label sits away from it."""
    delta = anchors - centres
    scale = np.min(np.abs(half / np.where(delta == 0, 1e-9, delta)), axis=1, keepdims=True)
    edges = centres + np.minimum(scale, 1.0) * delta
    far = np.linalg.norm(anchors - edges, axis=1) > 1.8 * point_px
    if not far.any():
        return
    inverse = ax.transData.inverted().transform
    segments = np.stack([inverse(anchors[far]), inverse(edges[far])], axis=1)
    ax.add_collection(LineCollection(segments, colors="0.45", linewidths=0.7, zorder=5))


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
    with _theme():
        fig, ax = _new_axes((7.5, 6.5))
        x, y = points["x"].to_numpy(), points["y"].to_numpy()
        sns.scatterplot(x=x, y=y, ax=ax, s=70, color="#1f77b4", edgecolor="white", zorder=4)
        _label_axes(ax, title, xlabel, ylabel)
        _freeze_limits(ax, 0.18, equal_aspect)
        _repel_labels(ax, x, y, points["label"].cast(pl.String).to_list(), fontsize=9.5)
        return _save(fig, path)


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
    with _theme():
        fig, ax = _new_axes((8.0, 6.5))
        _group_scatter(ax, points, "x", "y", "group", group_title, size=22)
        _label_axes(ax, title, xlabel, ylabel)
        _freeze_limits(ax, 0.04, equal_aspect)
        return _save(fig, path)


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
    with _theme():
        fig, ax = _new_axes((8.5, 7.0))
        _group_scatter(ax, scores, x, y, group, group_title or group, size=20)
        _label_axes(ax, title, xlabel or x, ylabel or y)
        _freeze_limits(ax, 0.10, equal_aspect=False)
        extremes = extreme_rows(scores, [x, y], n_labels)
        _repel_labels(
            ax, extremes[x].to_numpy(), extremes[y].to_numpy(),
            extremes[label].cast(pl.String).to_list(), fontsize=8.5, point_px=4.0,
        )  # fmt: skip
        return _save(fig, path)


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
    with _theme():
        fig, ax = _new_axes((8.0, 8.0))
        ax.add_collection(LineCollection(np.stack([real, aligned], axis=1), colors="0.55",
                                         linewidths=1.0, linestyles="--", zorder=2,
                                         label="embedding error"))  # fmt: skip
        sns.scatterplot(x=real[:, 0], y=real[:, 1], ax=ax, s=80, color="#1f77b4",
                        edgecolor="white", zorder=4, label="real position")  # fmt: skip
        sns.scatterplot(x=aligned[:, 0], y=aligned[:, 1], ax=ax, s=70, color="#d62728",
                        marker="X", zorder=4, label="embedding (aligned)")  # fmt: skip
        full_title = title if score is None else f"{title}\n{_score_line(score)}"
        _label_axes(ax, full_title, xlabel, ylabel)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
        _freeze_limits(ax, 0.12, equal_aspect=True)
        _repel_labels(
            ax, real[:, 0], real[:, 1], points["label"].cast(pl.String).to_list(),
            obstacles=aligned, fontsize=9.0,
        )  # fmt: skip
        return _save(fig, path)


__all__ = [
    "DPI",
    "extreme_rows",
    "group_palette",
    "plot_factor_scatter",
    "plot_geography_alignment",
    "plot_labelled_map",
    "plot_points_by_group",
]
