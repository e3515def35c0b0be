"""Seaborn figures of embeddings: labelled maps, points by group, factor scatter, geography.

Every function takes polars frames (or arrays) and a path, writes one PNG atomically and
returns the path. Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, never
pyplot: no GUI backend, no global figure registry to leak into (nothing to close or show),
and safe to call from scripts, tests and servers alike. Seaborn's style is applied inside
each call only, so importing this module changes no global matplotlib settings.

Labels are placed by ``labels.repel_labels``.
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

from rossmann_embed.tabular.files import atomic_write
from rossmann_embed.tabular.labels import marker_radius_px, points_along, repel_labels

DPI = 150
# 12 clearly distinct colours (tab10 plus black and gold); markers cycle too, so groups stay
# apart for colour-blind readers and in greyscale.
GROUP_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#e6ab02",
)  # fmt: skip
GROUP_MARKERS = ("o", "s", "^", "D", "v", "P")


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


def _freeze_limits(ax: Axes, margin: float, equal_aspect: bool, aspect: float = 1.0) -> None:
    """Fix the data limits (with room for labels) so pixel positions are final; with
    ``equal_aspect``, a y unit is ``aspect`` x units long on screen."""
    ax.margins(margin)
    ax.autoscale_view()
    if equal_aspect:
        ax.set_aspect(aspect, adjustable="datalim")
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


COMPONENTS = ("component 1", "component 2")  # a projection's axes, unless named


# --- figures -----------------------------------------------------------------------------------


def plot_labelled_map(
    points: pl.DataFrame,
    title: str,
    path: Path,
    axis_labels: tuple[str, str] = COMPONENTS,
    *,
    equal_aspect: bool = False,
    size: tuple[float, float] = (7.5, 6.5),
    fontsize: float = 9.5,
) -> Path:
    """A few labelled points (``label``, ``x``, ``y``), e.g. the 12 state embeddings."""
    with theme():
        fig, ax = new_axes(size)
        x, y = points["x"].to_numpy(), points["y"].to_numpy()
        sns.scatterplot(x=x, y=y, ax=ax, s=70, color="#1f77b4", edgecolor="white", zorder=4)
        label_axes(ax, title, *axis_labels)
        _freeze_limits(ax, 0.18, equal_aspect)
        repel_labels(ax, x, y, points["label"].cast(pl.String).to_list(), marker_size=70,
                     fontsize=fontsize)
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
    axis_labels: tuple[str, str] = COMPONENTS,
    *,
    group_title: str = "group",
    equal_aspect: bool = False,
) -> Path:
    """Many points (``x``, ``y``, ``group``), e.g. ~1115 stores coloured by their state."""
    with theme():
        fig, ax = new_axes((8.0, 6.5))
        _group_scatter(ax, points, "x", "y", "group", group_title, size=22)
        label_axes(ax, title, *axis_labels)
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
        repel_labels(
            ax, extremes[x].to_numpy(), extremes[y].to_numpy(),
            extremes[label].cast(pl.String).to_list(), marker_size=70, fontsize=8.5,
            background=[(scores.select(x, y).to_numpy(), marker_radius_px(20, DPI))],
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
        repel_labels(
            ax, real[:, 0], real[:, 1], points["label"].cast(pl.String).to_list(),
            marker_size=80, fontsize=9.0,
            obstacles=[(aligned, marker_radius_px(70, DPI)), (points_along(pairs), 3.0)],
        )  # fmt: skip
        return save_figure(fig, path)


def plot_geography_map(
    points: pl.DataFrame,
    path: Path,
    title: str = "State embeddings on the map",
    *,
    score: Mapping[str, float] | None = None,
) -> Path:
    """The aligned embedding drawn as a map: ``GeographyScore.points_frame()`` in degrees
    (``x``, ``map_x``: longitude; ``y``, ``map_y``: latitude). Each place's name stands at its
    real position and, in red, at its embedding's; axes are longitude and latitude, with the
    aspect of a map at that latitude."""
    real = points.select("map_x", "map_y").to_numpy()
    aligned = points.select("x", "y").to_numpy()
    pairs = np.stack([real, aligned], axis=1)
    labels = points["label"].cast(pl.String).to_list()
    with theme():
        fig, ax = new_axes((7.5, 9.0))
        ax.add_collection(LineCollection(pairs, colors="0.6", linewidths=0.9, linestyles=":",
                                         zorder=2))  # fmt: skip
        sns.scatterplot(x=real[:, 0], y=real[:, 1], ax=ax, s=60, color="#1f77b4",
                        edgecolor="white", zorder=4, label="capital")  # fmt: skip
        sns.scatterplot(x=aligned[:, 0], y=aligned[:, 1], ax=ax, s=60, color="#d62728",
                        marker="X", zorder=4, label="embedding (Procrustes)")  # fmt: skip
        full_title = title if score is None else f"{title}\n{_score_line(score)}"
        label_axes(ax, full_title, "longitude (°E)", "latitude (°N)")
        ax.legend(loc="lower left", frameon=True, fontsize="small")
        # A degree of longitude is cos(latitude) degrees of latitude long.
        _freeze_limits(ax, 0.15, equal_aspect=True,
                       aspect=1 / np.cos(np.radians(real[:, 1].mean())))
        line_points = (points_along(pairs), 3.0)
        texts = repel_labels(ax, real[:, 0], real[:, 1], labels, marker_size=60, fontsize=8.5,
                             obstacles=[(aligned, marker_radius_px(60, DPI)), line_points])
        texts += repel_labels(ax, aligned[:, 0], aligned[:, 1], labels, marker_size=60,
                              fontsize=8.5, obstacles=[(real, marker_radius_px(60, DPI)),
                                                       line_points])
        for text in texts[len(labels):]:
            text.set_color("#b2182b")
            text.set_fontstyle("italic")
        return save_figure(fig, path)


def plot_spread(values: pl.DataFrame, path: Path, title: str, xlabel: str) -> Path:
    """Repeated measurements by label (``label``, ``value``), e.g. one score per seed: each
    value as a dot, and the label's mean with +- one standard deviation, one row per label
    in order of first appearance."""
    order = list(dict.fromkeys(values["label"].cast(pl.String).to_list()))
    stats = values.group_by("label", maintain_order=True).agg(
        mean=pl.col("value").mean(), sd=pl.col("value").std().fill_null(0.0))
    with theme():
        fig, ax = new_axes((8.0, 0.55 * len(order) + 1.6))
        sns.stripplot(x=values["value"].to_numpy(), y=values["label"].to_list(), order=order,
                      ax=ax, color="0.55", size=5, jitter=0.15, zorder=2)  # fmt: skip
        ax.errorbar(stats["mean"].to_numpy(), np.arange(len(order)), xerr=stats["sd"].to_numpy(),
                    fmt="D", color="#d62728", ecolor="#d62728", capsize=4, zorder=3,
                    label="mean ± sd")  # fmt: skip
        ax.axvline(0.0, color="0.3", linewidth=0.8)
        label_axes(ax, title, xlabel, "")
        # Outside the axes: inside, it can cover a label's dots.
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")
        return save_figure(fig, path)


__all__ = [
    "DPI",
    "extreme_rows",
    "group_palette",
    "plot_factor_scatter",
    "plot_geography_alignment",
    "plot_geography_map",
    "plot_labelled_map",
    "plot_points_by_group",
    "plot_spread",
]
