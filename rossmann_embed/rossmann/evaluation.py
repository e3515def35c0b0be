"""Evaluate a run on any labelled period: RMSPE overall and by store type, state, week, store.

What is scored is exactly what Kaggle would score for a submission of that period: every
labelled row of train.csv in the period, predicted by ``inference.predict_sales`` (the
function submissions use; 0 on closed days) from the features those days had in training,
with rows whose true Sales is 0 left out by RMSPE's definition.

``evaluate`` writes into its output directory::

    evaluation.json      overall ``rmspe``, rows, period, per member, and the grouped tables
    daily_sales.png      daily total actual versus predicted sales
    store_rmspe.png      distribution of per-store RMSPE, the worst stores named
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import seaborn as sns

from rossmann_embed.rossmann.inference import Predictor, check_known_stores, predict_sales
from rossmann_embed.rossmann.kaggle_files import read_rossmann
from rossmann_embed.rossmann.shards import feature_blocks
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.files import write_json
from rossmann_embed.tabular.metrics import rmspe, rmspe_expr
from rossmann_embed.tabular.plots import label_axes, new_axes, save_figure, theme

GROUPS = {"by_store_type": "StoreType", "by_state": "State", "by_week": "WeekStart"}
WORST_STORES = 10  # named in the figure, the JSON and the printed summary


def parse_date(text: str, option: str) -> dt.date:
    """A date like 2015-07-31 from a command-line option, or an InputError naming it."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError.at(option, "a date like 2015-07-31", value=text) from None


def labelled_predictions(predictor: Predictor, data_dir: str | Path, date_from: dt.date,
                         date_to: dt.date, *, allow_unknown_stores: bool = False
                         ) -> tuple[pl.DataFrame, dict]:
    """Every labelled row of train.csv from ``date_from`` to ``date_to`` (inclusive) with its
    features, ``Sales`` and ``Prediction`` (and one ``Prediction[member]`` per member)."""
    if date_from > date_to:
        raise InputError.at("--from", f"a date on or before --to ({date_to})", value=str(date_from))
    options = predictor.feature_options
    data = read_rossmann(data_dir, weather=options.get("weather", True),
                         trends=options.get("trends", True))
    in_period = pl.col("Date").is_between(date_from, date_to)
    period = data.train.with_row_index("_line", offset=2).filter(in_period)
    if period.is_empty():
        first, last = data.train.select(pl.col("Date").min().alias("first"),
                                        pl.col("Date").max().alias("last")).row(0)
        raise InputError.at(
            str(Path(data_dir) / "train.csv"), f"labelled rows between --from and --to "
            f"(train.csv covers {first} .. {last})", value=f"{date_from} .. {date_to}",
        )
    report = check_known_stores(period, predictor.known_stores,
                                str(Path(data_dir) / "train.csv"), allow_unknown_stores)
    # The period's stores, a block at a time: memory is bound by a block's features.
    predicted = pl.concat(
        predict_sales(predictor, frame.filter((pl.col("Set") == "train") & in_period),
                      members=True, source=f"features built from {data_dir}")
        for frame, _ in feature_blocks(data, stores=period.get_column("Store")))
    days = {"days_requested": (date_to - date_from).days + 1,
            "days_with_labels": period.get_column("Date").n_unique()}
    return predicted, {"rows": predicted.height, **days, **report}


def rmspe_by(rows: pl.DataFrame, key: str) -> pl.DataFrame:
    """RMSPE per group of ``key``, with labelled rows, scored rows (Sales != 0) and totals."""
    return (
        rows.group_by(key)
        .agg(
            rows=pl.len(),
            scored=(pl.col("Sales") != 0).sum(),
            rmspe=rmspe_expr("Sales", "Prediction"),
            sales=pl.col("Sales").sum(),
            predicted=pl.col("Prediction").sum().round(0),  # a total: cents mean nothing
        )
        .sort(key)
    )


def rmspe_tables(rows: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The grouped tables: by store type, by state, by week (starting Monday), by store."""
    with_week = rows.with_columns(WeekStart=pl.col("Date").dt.truncate("1w"))
    tables = {name: rmspe_by(with_week, key) for name, key in GROUPS.items()}
    tables["by_store"] = rmspe_by(rows, "Store").join(
        rows.select("Store", "StoreType", "State").unique("Store"), on="Store", how="left"
    )
    return tables


def evaluate(predictor: Predictor, data_dir: str | Path, date_from: dt.date, date_to: dt.date,
             out_dir: str | Path | None = None, *, allow_unknown_stores: bool = False) -> dict:
    """Score ``predictor`` on the labelled days ``date_from`` .. ``date_to`` of ``data_dir``;
    write ``evaluation.json`` and the figures into ``out_dir`` (default: the first run's
    ``evaluation/FROM_TO``); return the JSON's content and ``out``, the folder."""
    if out_dir is None:
        first = getattr(predictor, "runs", [predictor])[0].path
        out_dir = (first if first.is_dir() else first.parent) / "evaluation" / \
            f"{date_from}_{date_to}"
    out_dir = Path(out_dir)
    rows, report = labelled_predictions(predictor, data_dir, date_from, date_to,
                                        allow_unknown_stores=allow_unknown_stores)
    sales = rows.get_column("Sales").to_numpy()
    tables = rmspe_tables(rows)
    worst = tables["by_store"].drop_nulls("rmspe").sort("rmspe", descending=True)
    labelled = [c for c in rows.columns if c.startswith("Prediction[")]
    parts = [c for c in labelled if _label(c).rsplit(":", 1)[-1] in HALVES]
    members = [c for c in labelled if c not in parts]
    result = {
        "rmspe": rmspe(sales, rows.get_column("Prediction").to_numpy()),
        "date_from": str(date_from),
        "date_to": str(date_to),
        "runs": [str(run.path) for run in getattr(predictor, "runs", [predictor])],
        **report,
        "rows_scored": int((sales != 0).sum()),
        "members": [{"member": _label(c), "rmspe": rmspe(sales, rows.get_column(c).to_numpy())}
                    for c in members],
        # The forecast's halves alone: the network (members' mean plus store levels) and the
        # boosted half.
        "parts": {_label(c): rmspe(sales, rows.get_column(c).to_numpy()) for c in parts},
        **{name: _records(tables[name]) for name in GROUPS},
        "worst_stores": _records(worst.head(WORST_STORES)),
    }
    write_json(out_dir / "evaluation.json", result)
    plot_daily_totals(rows, out_dir / "daily_sales.png", result["rmspe"])
    plot_store_rmspe(tables["by_store"], out_dir / "store_rmspe.png", result["rmspe"],
                     f"{date_from} .. {date_to}")
    return {**result, "out": str(out_dir)}


def format_tables(result: dict) -> str:
    """The printed summary: overall RMSPE, then one table per grouping and the worst stores."""
    lines = [f"RMSPE {result['rmspe']:.5f} over {result['rows_scored']:,} scored rows "
             f"({result['rows']:,} labelled) from {result['date_from']} to {result['date_to']}"]
    lines += [f"  {label} alone: {value:.5f}" for label, value in result["parts"].items()]
    lines += [f"  member {m['member']}: {m['rmspe']:.5f}" for m in result["members"]
              if len(result["members"]) > 1]
    with pl.Config(tbl_rows=-1, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
                   tbl_formatting="ASCII_MARKDOWN", float_precision=4, tbl_width_chars=120,
                   thousands_separator=True):
        for name in [*GROUPS, "worst_stores"]:
            lines += ["", name.replace("_", " "), str(pl.DataFrame(result[name]))]
    return "\n".join(lines)


def plot_daily_totals(rows: pl.DataFrame, path: Path, overall: float) -> Path:
    """Line plot of the daily total of actual and of predicted sales over all stores."""
    daily = rows.group_by("Date").agg(pl.col("Sales").sum(), pl.col("Prediction").sum()).sort(
        "Date")
    dates = daily.get_column("Date").to_numpy()
    with theme():
        fig, ax = new_axes((10.0, 4.8))
        sns.lineplot(x=dates, y=daily.get_column("Sales").to_numpy(), ax=ax, label="actual",
                     color="#1f77b4", marker="o", markersize=4)
        sns.lineplot(x=dates, y=daily.get_column("Prediction").to_numpy(), ax=ax,
                     label="predicted", color="#d62728", marker="X", markersize=4,
                     linestyle="--")
        label_axes(ax, f"Daily total sales, actual vs predicted (RMSPE {overall:.4f})",
                    "date", "total sales of all stores")
        ax.yaxis.set_major_formatter(lambda value, _: f"{value:,.0f}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
        fig.autofmt_xdate()
        return save_figure(fig, path)


def plot_store_rmspe(by_store: pl.DataFrame, path: Path, overall: float, period: str) -> Path:
    """Histogram of per-store RMSPE, the overall RMSPE marked, the worst stores named."""
    scored = by_store.drop_nulls("rmspe")
    worst = scored.sort("rmspe", descending=True).head(WORST_STORES)
    values = scored.get_column("rmspe").to_numpy()
    with theme():
        fig, ax = new_axes((9.0, 5.0))
        sns.histplot(x=values, ax=ax, bins=min(50, max(10, len(values) // 10)), color="#1f77b4")
        ax.axvline(overall, color="0.2", linestyle="--", linewidth=1.2,
                   label=f"all rows: {overall:.4f}")
        sns.rugplot(x=worst.get_column("rmspe").to_numpy(), ax=ax, color="#d62728", height=0.05,
                    linewidth=1.5, label=f"worst {worst.height} stores")
        label_axes(ax, f"Per-store RMSPE, {period} ({len(values):,} stores)",
                    "RMSPE of a store's days", "stores")
        names = "\n".join(f"{r['Store']:>5} ({r['StoreType']}, {r['State']}): {r['rmspe']:.3f}"
                          for r in worst.iter_rows(named=True))
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
        ax.text(1.02, 0.78, f"worst stores\n(type, state): RMSPE\n{names}",
                transform=ax.transAxes, va="top",
                ha="left", family="monospace", fontsize="small")
        return save_figure(fig, path)


HALVES = ("network", "lightgbm")  # inference.Run.part_logs' labels that are not members


def _label(column: str) -> str:
    return column.removeprefix("Prediction[").removesuffix("]")


def _records(table: pl.DataFrame) -> list[dict]:
    """JSON-ready rows; dates as text, NaN (no scored rows) as None."""
    table = table.with_columns(pl.col(pl.Date).cast(pl.String), pl.col(pl.Float64).fill_nan(None))
    return table.to_dicts()


__all__ = ["evaluate", "format_tables", "labelled_predictions", "parse_date", "rmspe_by",
           "rmspe_tables"]
