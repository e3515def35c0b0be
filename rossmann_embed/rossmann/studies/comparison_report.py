"""The comparison's outputs: the paper's table beside ours, the with/without table, the chart.

``write_outputs`` writes ``comparison.csv``, ``comparison.md``, ``comparison.png`` and
``comparison.json`` from the results of ``comparison.compare``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rossmann_embed.tabular.embedding_tables import markdown_table
from rossmann_embed.tabular.files import atomic_write, write_json, write_text
from rossmann_embed.tabular.plots import save_figure, theme

# Guo & Berkhahn (2016), Table: MAPE on the time-based split, without -> with embeddings.
PAPER_MAPE = {
    ("k-NN", "one-hot"): 0.290, ("k-NN", "embeddings"): 0.116,
    ("random forest", "codes"): 0.158, ("random forest", "embeddings"): 0.108,
    ("gradient boosting", "codes"): 0.152, ("gradient boosting", "embeddings"): 0.115,
    ("LightGBM", "codes"): 0.152, ("LightGBM", "embeddings"): 0.115,  # the paper's GBT row
    ("neural network", "one-hot"): 0.101, ("neural network", "embeddings"): 0.093,
}  # fmt: skip
MODELS = ["k-NN", "random forest", "gradient boosting", "LightGBM", "neural network"]

def write_outputs(out: Path, results: pl.DataFrame, report: dict[str, Any]) -> list[Path]:
    """``comparison.csv``, ``comparison.md``, ``comparison.png`` and ``comparison.json``."""
    out.mkdir(parents=True, exist_ok=True)
    csv = atomic_write(out / "comparison.csv", results.write_csv)
    markdown = write_text(out / "comparison.md", comparison_markdown(results, report))
    figure = plot_comparison(results, out / "comparison.png")
    write_json(out / "comparison.json", report)
    return [csv, markdown, figure, out / "comparison.json"]


# --- the table -----------------------------------------------------------------------------------


def paper_layout(results: pl.DataFrame, setting: str) -> pl.DataFrame:
    """One setting's rows as the paper lays them out: every model without embeddings, then
    every model "with EE", each beside the paper's MAPE."""
    ours = results.filter(pl.col("setting") == setting)
    rows = []
    for with_ee in (False, True):
        for model in MODELS:
            found = ours.filter((pl.col("model") == model)
                                & ((pl.col("features") == "embeddings") == with_ee))
            if found.height:
                row = found.row(0, named=True)
                rows.append({
                    "method": f"{model} with EE" if with_ee else model,
                    "features": row["features"],
                    "MAPE": row["mape"],
                    "RMSPE": row["rmspe"],
                    "paper MAPE": PAPER_MAPE.get((model, row["features"])),
                })
    return pl.DataFrame(rows, schema={"method": pl.String, "features": pl.String,
                                      "MAPE": pl.Float64, "RMSPE": pl.Float64,
                                      "paper MAPE": pl.Float64})


def with_and_without(results: pl.DataFrame, setting: str) -> pl.DataFrame:
    """Per model: MAPE without and with embeddings, the relative change, the paper's pair."""
    ours = results.filter(pl.col("setting") == setting).sort(
        pl.col("model").replace_strict(MODELS, list(range(len(MODELS))), default=len(MODELS)),
        maintain_order=True)
    without = ours.filter(pl.col("features") != "embeddings").select(
        "model", without=pl.col("features"), **{"MAPE without": pl.col("mape")})
    with_ee = ours.filter(pl.col("features") == "embeddings").select(
        "model", **{"MAPE with EE": pl.col("mape")})
    joined = without.join(with_ee, on="model", how="inner", maintain_order="left")
    paper = [f"{PAPER_MAPE[(m, w)]:.3f} -> {PAPER_MAPE[(m, 'embeddings')]:.3f}"
             for m, w in zip(joined["model"], joined["without"], strict=True)]
    return joined.with_columns(
        change=(pl.col("MAPE with EE") / pl.col("MAPE without") - 1).map_elements(
            lambda v: f"{v:+.0%}", return_dtype=pl.String),
        **{"better with EE": pl.when(pl.col("MAPE with EE") < pl.col("MAPE without"))
           .then(pl.lit("yes")).otherwise(pl.lit("no"))},
        paper=pl.Series(paper, dtype=pl.String),
    )


def comparison_markdown(results: pl.DataFrame, report: dict[str, Any]) -> str:
    """The report: what was run, the paper-style table per setting, and the run times."""
    data, timing = report["data"], report["timing"]
    options = report["options"]
    lines = [
        "# Entity embeddings as features for other models",
        "",
        "Guo & Berkhahn (2016), time-based split, reproduced on this data. Test: the latest "
        f"{data['test_days']} days with sales ({data['test_from']} .. {data['test_to']}, "
        f"{data['rows_test']:,} rows). Training: {data['rows_train']:,} rows sampled from "
        f"{data['rows_before_test']:,} rows of the earlier days ({data['train_from']} on). "
        "Targets: log sales; scores in sales space on open days with Sales > 0. "
        f"k-NN is scored on {data['rows_knn_test']:,} random test rows (the same for both "
        "inputs); every other model on all test rows. The embeddings the classic models use "
        "are those of the network trained on the same training rows "
        f"({options['epochs']} epochs).",
        "",
    ]
    for setting in timing["settings"]:
        title = ("paper's features: store, day of week, day, month, year, promo, state"
                 if setting == "paper" else "the full feature set")
        seconds = timing["settings"][setting]["total"]["seconds"]
        lines += [
            f"## Setting `{setting}`: {title}",
            "",
            markdown_table(paper_layout(results, setting)),
            markdown_table(with_and_without(results, setting)),
            f"Run time of this setting: {seconds / 60:.1f} min.",
            "",
        ]
    lines += [
        "## Run time",
        "",
        f"{timing['total_seconds'] / 60:.1f} min in all on {report['machine']['cpu_count']} "
        f"cores (reading and features: {timing['data_seconds']:.0f} s). Per model "
        "(seconds):",
        "",
        markdown_table(_timing_table(timing), float_digits=1),
    ]
    return "\n".join(lines)


def _timing_table(timing: dict[str, Any]) -> pl.DataFrame:
    rows = [
        {"setting": setting, "model (features)": name, **values}
        for setting, models in timing["settings"].items()
        for name, values in models.items() if name != "total"
    ]
    return pl.DataFrame(rows)


# --- the figure ----------------------------------------------------------------------------------


def plot_comparison(results: pl.DataFrame, path: Path) -> Path:
    """Grouped bars of MAPE per model, without and with embeddings, one panel per setting;
    the paper's numbers as black bars across the bars they correspond to."""
    frame = results.with_columns(
        input=pl.when(pl.col("features") == "embeddings").then(pl.lit("with embeddings"))
        .otherwise(pl.lit("without (codes or one-hot)")),
    )
    settings = frame.get_column("setting").unique(maintain_order=True).to_list()
    order = [m for m in MODELS if m in frame.get_column("model").to_list()]
    hue_order = ["without (codes or one-hot)", "with embeddings"]
    top = 1.1 * max(frame.get_column("mape").max(), *PAPER_MAPE.values())
    with theme():
        fig = Figure(figsize=(1.0 + 1.5 * len(order) * len(settings), 5.5), dpi=150)
        FigureCanvasAgg(fig)  # Agg canvas: no pyplot, no GUI backend
        axes = fig.subplots(1, len(settings), sharey=True, squeeze=False)[0]
        for ax, setting in zip(axes, settings, strict=True):
            part = frame.filter(pl.col("setting") == setting)
            sns.barplot(part.to_pandas(), x="model", y="mape", hue="input", order=order,
                        hue_order=hue_order, palette=["#9e9e9e", "#1f77b4"], ax=ax,
                        legend=ax is axes[-1])
            for container in ax.containers:
                ax.bar_label(container, fmt="%.3f", label_type="center", rotation=90,
                             color="white", fontsize=8, fontweight="bold")
            _mark_paper(ax, part, order, hue_order)
            ax.set_xticks(range(len(order)), [m.replace(" ", "\n") for m in order])
            ax.set_ylim(0, top)
            ax.set_title(f"setting: {setting}")
            ax.set_xlabel("model")
            ax.set_ylabel("MAPE on the test days (lower is better)")
        axes[-1].legend(title=None, fontsize="small", loc="upper right")
        fig.suptitle("MAPE with and without the network's entity embeddings (time split)",
                     fontweight="bold")
        return save_figure(fig, path)


def _mark_paper(ax: Any, part: pl.DataFrame, order: list[str], hue_order: list[str]) -> None:
    """A black bar across each of our bars at the paper's MAPE for the same model and input."""
    xs, ys, widths = [], [], []
    for container, label in zip(ax.containers, hue_order, strict=False):
        for patch, model in zip(container.patches, order, strict=False):
            features = part.filter((pl.col("model") == model)
                                   & (pl.col("input") == label)).get_column("features")
            paper = PAPER_MAPE.get((model, features[0])) if features.len() else None
            if paper is not None and not math.isnan(patch.get_height()):
                xs.append(patch.get_x() + patch.get_width() / 2)
                ys.append(paper)
                widths.append(patch.get_width())
    if xs:
        ax.hlines(ys, np.array(xs) - np.array(widths) / 2, np.array(xs) + np.array(widths) / 2,
                  colors="black", linewidth=2.5, zorder=5, label="paper (time split)")
