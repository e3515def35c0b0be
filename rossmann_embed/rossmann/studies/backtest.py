"""Rolling-origin backtest: forecasts scored on periods nobody tuned on, against baselines.

For each window the data is cut at the window's first day exactly as Kaggle cut train.csv
from test.csv: ``train.csv`` keeps every row before it, ``test.csv`` is the window's rows in
Kaggle's test layout (``Id``, no Sales or Customers), and the window's sales are kept aside.
Then, in the same run and on the same cut:

- ``network``: the product's final-model recipe (``train --validation-days 0``) trained on
  the cut and predicted through ``inference.predict_kaggle``, the code of ``submit``;
- ``lightgbm``: LightGBM at full strength (``boosting.LightGBMForecaster``, plain codes);
- ``median``: each store's median sales by day of week and promo.

Each window writes into ``OUT/windows/FROM_TO/``: the cut (``data/``), the network's run
(``run/``), each model's predictions (``<model>.parquet``) and ``result.json``. A model whose
result is there with the same settings is not run again, so a stopped backtest continues
where it was. ``OUT/backtest.json``, ``backtest.md`` and ``backtest.png`` (daily RMSPE of each
window) are rewritten after every model.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rossmann_embed.rossmann.kaggle_files import read_kaggle_csv
from rossmann_embed.rossmann.train_config import BacktestOptions, TrainConfig
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.files import atomic_write, write_csv, write_json, write_text
from rossmann_embed.tabular.metrics import rmspe, rmspe_expr

MODELS = ("network", "lightgbm", "median")
TEST_COLUMNS = ["Id", "Store", "DayOfWeek", "Date", "Open", "Promo", "StateHoliday",
                "SchoolHoliday"]


@dataclass(frozen=True)
class Window:
    """A forecast period: the days ``first`` .. ``last``, inclusive."""

    name: str
    first: dt.date
    last: dt.date

    @property
    def label(self) -> str:
        return f"{self.first}_{self.last}"


def default_windows(data_end: dt.date, count: int = 3, horizon: int = 48) -> list[Window]:
    """The last ``horizon`` days; the ``horizon`` days before them; the ``horizon`` days after
    the data's end one year earlier (the season one forecasts next); then further windows of
    ``horizon`` days going back from the second. The first ``count`` of these."""
    days = dt.timedelta(days=horizon)

    def ending(last: dt.date, name: str) -> Window:
        return Window(name, last - days + dt.timedelta(days=1), last)

    season_first = _year_earlier(data_end + dt.timedelta(days=1))
    windows = [ending(data_end, "last"), ending(data_end - days, "previous"),
               Window("season", season_first, season_first + days - dt.timedelta(days=1))]
    k = 2
    while len(windows) < count:
        windows.append(ending(data_end - k * days, f"earlier-{k - 1}"))
        k += 1
    return windows[:count]


def _year_earlier(day: dt.date) -> dt.date:
    return day.replace(year=day.year - 1) if (day.month, day.day) != (2, 29) else \
        day.replace(year=day.year - 1, day=28)


# --- the cut ------------------------------------------------------------------------------


def cut_data(data_dir: Path, train: pl.DataFrame, window: Window, out: Path) -> pl.DataFrame:
    """Write the cut of ``data_dir`` at ``window`` into ``out`` (train.csv before the window,
    test.csv of the window in Kaggle's layout; store.csv and external/ linked) and return the
    window's ``Id, Store, Date, Sales``. An existing complete cut is reused."""

    in_window = pl.col("Date").is_between(window.first, window.last)
    target = (train.filter(in_window).sort("Date", "Store")
              .with_row_index("Id", offset=1).with_columns(pl.col("Id").cast(pl.Int64)))
    if target.is_empty():
        raise InputError.at(str(data_dir / "train.csv"), f"rows in the backtest window "
                            f"{window.first} .. {window.last}", hint="fewer --windows or a "
                            "shorter --horizon")
    marker = out / "cut.json"
    if not marker.is_file():
        write_csv(train.filter(pl.col("Date") < window.first), out / "train.csv")
        write_csv(target.select(TEST_COLUMNS), out / "test.csv")
        for name in ("store.csv", "external"):
            link = out / name
            if not link.exists():
                link.symlink_to((data_dir / name).resolve())
        write_json(marker, {"data_dir": str(data_dir), "from": window.first, "to": window.last})
    return target.select("Id", "Store", "Date", "Sales")


# --- the models -----------------------------------------------------------------------------


def network_config(options: BacktestOptions, cut: Path, run_dir: Path) -> TrainConfig:
    """The product's final-model recipe on a cut: everything before the window, no validation."""
    settings = {**options.network, "data_dir": str(cut), "out": str(run_dir),
                "validation_days": 0, "seeds": options.seeds}
    return TrainConfig.from_dict(settings)


def predict_network(config: TrainConfig, cut: Path) -> pl.DataFrame:
    """Train (or resume) the run, then predict the cut's test.csv as ``submit`` would."""
    from rossmann_embed.rossmann.inference import load_runs, predict_kaggle
    from rossmann_embed.rossmann.pipeline import fit

    run_dir = Path(config.out)
    saved = run_dir / "config.json"
    if saved.is_file() and json.loads(saved.read_text()) != json.loads(
            json.dumps(config.to_dict(), default=str)):
        shutil.rmtree(run_dir)  # another recipe: its checkpoints must not be resumed
    fit(config, resume=True)
    predicted, _ = predict_kaggle(load_runs([run_dir]), cut, cut / "test.csv",
                                  allow_unknown_stores=True, members=True)
    parts = [c for c in predicted.columns if c.startswith("Prediction")]
    return predicted.select("Id", *parts)


def baseline_rows(cut: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The cut's model rows (open days with Sales > 0 before the window) and the window's
    feature rows, without weather or trends (the baselines use neither)."""
    from rossmann_embed.rossmann.features import build_features, model_rows
    from rossmann_embed.rossmann.kaggle_files import read_rossmann

    frame = build_features(read_rossmann(cut, weather=False, trends=False)).frame
    history, _ = model_rows(frame.filter(pl.col("Set") == "train"))
    return history, frame.filter(pl.col("Set") == "test")


def predict_lightgbm(history: pl.DataFrame, rows: pl.DataFrame, params: dict | None = None,
                     threads: int = 0) -> tuple[pl.DataFrame, dict]:
    """LightGBM at full strength (``params``: the baseline's own unless given): fit on the
    history, predict the window (0 when closed)."""
    from rossmann_embed.rossmann.boosting import LIGHTGBM_PARAMS, LightGBMForecaster

    forecaster = LightGBMForecaster(params=dict(params or LIGHTGBM_PARAMS),
                                    threads=threads).fit(history)
    info = {"rounds": forecaster.rounds_,
            f"inner_{forecaster.stop_metric}": forecaster.inner_score_}
    return _closed_zero(rows, forecaster.predict(rows)), info


def median_forecast(history: pl.DataFrame, rows: pl.DataFrame) -> np.ndarray:
    """Each store's median Sales by (DayOfWeek, Promo) over ``history``; a combination never
    seen falls back to the store's median, then to the overall median."""
    keys = ["Store", "DayOfWeek", "Promo"]
    by_day = history.group_by(keys).agg(Median=pl.col("Sales").median())
    by_store = history.group_by("Store").agg(StoreMedian=pl.col("Sales").median())
    overall = float(history.get_column("Sales").median())
    return (
        rows.select(keys)
        .join(by_day, on=keys, how="left", maintain_order="left")
        .join(by_store, on="Store", how="left", maintain_order="left")
        .select(pl.coalesce("Median", "StoreMedian", pl.lit(overall)))
        .to_series().to_numpy().astype(np.float64)
    )


def _closed_zero(rows: pl.DataFrame, sales: np.ndarray) -> pl.DataFrame:
    is_open = rows.get_column("Open").to_numpy() != 0
    return rows.select("Id", Prediction=pl.Series(np.where(is_open, sales, 0.0)))


# --- scoring and reports --------------------------------------------------------------------


def score(actual: pl.DataFrame, predicted: pl.DataFrame, column: str = "Prediction") -> float:
    """Kaggle's RMSPE of one prediction column over the window (rows with Sales != 0)."""
    joined = actual.join(predicted.select("Id", column), on="Id", how="left")
    return rmspe(joined.get_column("Sales").to_numpy(), joined.get_column(column).to_numpy())


def daily_rmspe(actual: pl.DataFrame, predictions: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Date, model, rmspe: each model's RMSPE on each day of the window."""
    frames = []
    for model, predicted in predictions.items():
        joined = actual.join(predicted.select("Id", "Prediction"), on="Id").filter(
            pl.col("Sales") != 0)  # a day without any scored row has no RMSPE
        frames.append(joined.group_by("Date").agg(rmspe=rmspe_expr("Sales", "Prediction"))
                      .with_columns(model=pl.lit(model)))
    return pl.concat(frames).sort("model", "Date") if frames else pl.DataFrame()


def summary(windows: list[dict], options: BacktestOptions, seconds: float) -> dict:
    """backtest.json: the windows and the mean RMSPE of each model over the finished ones."""
    done = [w for w in windows if all(_key(m) in w for m in MODELS)]
    means = {
        "mean_rmspe": _mean([w["rmspe"] for w in done]),
        "mean_lightgbm_rmspe": _mean([w["lightgbm_rmspe"] for w in done]),
        "mean_median_rmspe": _mean([w["median_rmspe"] for w in done]),
    }
    for part in ("network_rmspe", "boosted_rmspe"):  # the forecast's parts, where present
        if any(part in w for w in done):
            means[f"mean_{part}"] = _mean([w[part] for w in done if part in w])
    return {
        "windows": windows,
        **means,
        "windows_done": len(done),
        "seeds": options.seeds,
        "horizon": options.horizon,
        "network_config": options.network,
        "seconds": round(seconds, 1),
        # Seconds of each model over every window, as measured when it ran (a resumed
        # backtest's ``seconds`` counts only its own session).
        "timings": {f"{m}_seconds": round(sum(w["seconds"].get(m, 0.0) for w in windows), 1)
                    for m in MODELS},
    }


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def backtest_markdown(result: dict) -> str:
    """The backtest table: one row per window, then the means. "forecast" is the product's
    (``rmspe``); "network" and "boosted" are its two halves alone."""
    columns = [("forecast", "rmspe"), ("network", "network_rmspe"),
               ("boosted", "boosted_rmspe"), ("LightGBM", "lightgbm_rmspe"),
               ("median", "median_rmspe")]

    def cell(value: float | None) -> str:
        return f"{value:.4f}" if value is not None else "-"

    lines = ["| window | from | to | rows | " + " | ".join(c for c, _ in columns)
             + " | minutes |", "|---" * (len(columns) + 5) + "|"]
    for w in result["windows"]:
        minutes = sum(w.get("seconds", {}).values()) / 60
        lines.append(f"| {w['name']} | {w['from']} | {w['to']} | {w['rows']:,} | "
                     + " | ".join(cell(w.get(k)) for _, k in columns) + f" | {minutes:.1f} |")
    means = [cell(result.get(f"mean_{k}")) for _, k in columns]
    total = sum(result["timings"].values()) / 60  # as measured, over resumed sessions too
    lines.append("| **mean** | | | | " + " | ".join(f"**{m}**" for m in means)
                 + f" | {total:.1f} |")
    return "\n".join(lines) + "\n"


def plot_daily(daily: dict[str, pl.DataFrame], path: Path) -> Path:
    """One panel per window: the daily RMSPE of the forecast and of the LightGBM baseline."""
    fig = Figure(figsize=(5.5 * max(1, len(daily)), 4.2), dpi=110)
    FigureCanvasAgg(fig)
    with sns.axes_style("whitegrid"):
        axes = fig.subplots(1, max(1, len(daily)), squeeze=False)[0]
        for ax, (name, frame) in zip(axes, daily.items(), strict=False):
            shown = frame.filter(pl.col("model").is_in(["network", "lightgbm"]))
            for model, label, color in (("network", "forecast", "#d62728"),
                                        ("lightgbm", "LightGBM baseline", "#1f77b4")):
                part = shown.filter(pl.col("model") == model)
                if part.height:
                    sns.lineplot(x=part.get_column("Date").to_numpy(),
                                 y=part.get_column("rmspe").to_numpy(), ax=ax, label=label,
                                 color=color, marker="o", markersize=3)
            ax.set_title(name, fontweight="bold")
            ax.set_xlabel("date")
            ax.set_ylabel("RMSPE of the day")
            ax.tick_params(axis="x", labelrotation=45)
        fig.suptitle("Backtest: daily RMSPE per window")
        fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))


# --- the command ----------------------------------------------------------------------------


def backtest(options: BacktestOptions, log: Callable[[str], None] = print) -> dict:
    """Run every window and model not done yet; write and return backtest.json's content."""
    start = time.perf_counter()
    data_dir, out = Path(options.data_dir), Path(options.out)
    if out.exists() and not out.is_dir():
        raise InputError.at(str(out), "a directory to write the backtest into (--out)")
    train = read_kaggle_csv(data_dir / "train.csv", "train.csv")
    windows = default_windows(train.get_column("Date").max(), options.windows, options.horizon)
    results: list[dict] = []
    daily: dict[str, pl.DataFrame] = {}
    for i, window in enumerate(windows, start=1):
        where = out / "windows" / window.label
        actual = cut_data(data_dir, train, window, where / "data")
        result = _window_result(where, window, actual)
        baseline = functools.cache(lambda where=where: baseline_rows(where / "data"))
        predictions = {}
        for model in MODELS:
            step = f"[backtest] window {i}/{len(windows)} ({window.name}, {window.label}): {model}"
            settings = _settings(model, options)
            saved = where / f"{model}.parquet"
            if result["settings"].get(model) == settings and saved.is_file():
                log(f"{step}: done before, kept")
                predictions[model] = pl.read_parquet(saved)
                continue
            log(f"{step} ...")
            model_start = time.perf_counter()
            predicted, info = _run_model(model, options, where, baseline)
            atomic_write(saved, predicted.write_parquet)
            predictions[model] = predicted
            result["settings"][model] = settings
            result["seconds"][model] = round(time.perf_counter() - model_start, 1)
            result["info"][model] = info
            _record_scores(result, model, actual, predicted)
            write_json(where / "result.json", result)
            log(f"{step}: RMSPE {result[_key(model)]:.4f} in {result['seconds'][model]:.0f} s")
            _write_reports(out, [*results, result], options, time.perf_counter() - start,
                           {**daily, window.name: daily_rmspe(actual, predictions)})
        daily[window.name] = daily_rmspe(actual, predictions)
        results.append(result)
    summary = _write_reports(out, results, options, time.perf_counter() - start, daily)
    log(f"mean RMSPE over {summary['windows_done']} windows: forecast "
        f"{summary['mean_rmspe']:.4f}, LightGBM {summary['mean_lightgbm_rmspe']:.4f}, median "
        f"{summary['mean_median_rmspe']:.4f}; backtest.json, .md and .png written to {out}")
    return summary


def _window_result(where: Path, window: Window, actual: pl.DataFrame) -> dict:
    saved = where / "result.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    return {"name": window.name, "from": str(window.first), "to": str(window.last),
            "rows": actual.height, "rows_scored": int((actual.get_column("Sales") != 0).sum()),
            "settings": {}, "seconds": {}, "info": {}}


def _settings(model: str, options: BacktestOptions) -> dict:
    from rossmann_embed.rossmann.boosting import (
        BOOSTED_BAGS,
        BOOSTED_PARAMS,
        BOOSTED_ROUNDS,
        LIGHTGBM_PARAMS,
        LightGBMForecaster,
    )

    if model == "network":  # the resolved recipe (defaults included); its boosted half too
        recipe = network_config(options, Path(), Path()).to_dict()
        for where_or_how in ("data_dir", "out", "logger"):  # not what the model learns
            recipe.pop(where_or_how)
        return {**recipe, "lightgbm": BOOSTED_PARAMS,  # the boosted half's
                "lightgbm_rounds": BOOSTED_ROUNDS, "lightgbm_bags": BOOSTED_BAGS}
    if model == "lightgbm":
        return {"params": LIGHTGBM_PARAMS, "patience": LightGBMForecaster.patience}
    return {}


def _run_model(model: str, options: BacktestOptions, where: Path,
               baseline: Callable[[], tuple[pl.DataFrame, pl.DataFrame]]
               ) -> tuple[pl.DataFrame, dict]:
    """One model's predictions of the window; ``baseline`` gives the baselines' rows (built
    once a window, shared by both)."""
    cut = where / "data"
    if model == "network":
        return predict_network(network_config(options, cut, where / "run"), cut), {}
    history, rows = baseline()
    if model == "lightgbm":
        return predict_lightgbm(history, rows)
    return _closed_zero(rows, median_forecast(history, rows)), {}


def _key(model: str) -> str:
    return "rmspe" if model == "network" else f"{model}_rmspe"


def _record_scores(result: dict, model: str, actual: pl.DataFrame,
                   predicted: pl.DataFrame) -> None:
    result[_key(model)] = score(actual, predicted)
    if model != "network":
        return
    # The forecast's parts: the network alone, the boosted half, each seed.
    result.pop("boosted_rmspe", None)  # from an earlier recipe that had one
    parts = {c.removeprefix("Prediction[").removesuffix("]"): score(actual, predicted, c)
             for c in predicted.columns if c.startswith("Prediction[")}
    result["network_rmspe"] = parts.pop("network")
    if "lightgbm" in parts:
        result["boosted_rmspe"] = parts.pop("lightgbm")
    result["member_rmspe"] = parts


def _write_reports(out: Path, windows: list[dict], options: BacktestOptions, seconds: float,
                   daily: dict[str, pl.DataFrame]) -> dict:
    result = summary(windows, options, seconds)
    write_json(out / "backtest.json", result)
    write_text(out / "backtest.md", backtest_markdown(result))
    if daily:
        plot_daily(daily, out / "backtest.png")
    return result
