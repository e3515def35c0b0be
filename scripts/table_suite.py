"""The product's generic `fit` / `predict` against tuned baselines on seven public tables.

    python scripts/table_suite.py --out DIR [--tables A,B] \
        [--models fit,lightgbm,catboost,ridge,realmlp] [--fit-config PATH] [--rerun MODEL,...]

The tables are read from $TABLES_DATA (default ../shared/data/tables beside the repository),
with its tables.json naming each table's target, the columns to drop and the time column.
Nothing read from there is ever written into the repository.

Per table: rows without a target are dropped (counted), then one fixed outer split: the latest
20% of rows by the time column (stable sort) or a seeded random 20% (numpy default_rng(0)).
Every model learns from the same outer training rows and features and is scored by RMSE on
the target's own scale on the outer test rows:

  fit       `rossmann-embed fit` then `predict`, run as a user runs them (subprocesses, CSV
            files in a temporary folder), with the product's defaults (its own inner split:
            the latest 10% of the time column's span, or a seeded random 10% of rows)
  lightgbm  LGBMRegressor, 10,000 rounds at most, early stopping (100) on an inner split:
            the latest 10% of the training rows by time, or a seeded random 10%
  catboost  CatBoostRegressor, 10,000 iterations at most, early stopping (100) on the same
            inner split, string columns as cat_features
  ridge     median-imputed, standardized numbers and one-hot categories into RidgeCV,
            fitted on all training rows (its leave-one-out CV picks alpha)
  realmlp   pytabkit's RealMLP_TD_Regressor with its defaults (it holds out its own
            validation rows); numbers median-imputed, as it takes no missing numbers.
            pytabkit is not a dependency; install it without replacing the CPU torch:
                pip install pytabkit -c scripts/constraints-torch.txt
            (check `pip install --dry-run ...` first). Without it the model is recorded
            as {"skipped": "..."}.

For the baselines, date and datetime columns become year, month, day of year, day of week
and days since 1970-01-01; strings and booleans are categories.

DIR/table_suite.json and DIR/table_suite.md are rewritten after every model. A model already
in DIR/table_suite.json for a table is kept unless named in --rerun; --fit-config results go
under the same "fit" key, so use another DIR (or --rerun fit) for another config.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import polars as pl

from rossmann_embed.tabular.files import write_json, write_text
from rossmann_embed.tabular.metrics import rmse

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("fit", "lightgbm", "catboost", "ridge", "realmlp")
GBDTS = ("lightgbm", "catboost")
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.1
SEED = 0
THREADS = 2
# OpenMP's threads (LightGBM's, torch's) spin while they wait: on 2 cores busy with other work
# that made LightGBM with n_jobs=2 up to 60x slower (121 s against 2 s on SLID). Waiting
# passively changes no result; `main` sets it for this process only, before lightgbm or torch
# load, and the product's `fit` subprocesses get the environment as the user has it.
USER_OMP_WAIT = os.environ.get("OMP_WAIT_POLICY")
JSON_NAME = "table_suite.json"
MD_NAME = "table_suite.md"


class UsageError(Exception):
    """A bad argument or a missing data folder: one line, exit 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are a single line (and exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


@dataclass
class Table:
    """One table after its drops: the input columns, the target, and where it came from."""

    name: str
    frame: pl.DataFrame  # inputs and target, rows with a target only
    target: str
    time_column: str | None
    rows_without_target: int

    @property
    def X(self) -> pl.DataFrame:
        return self.frame.drop(self.target)

    @property
    def y(self) -> np.ndarray:
        return self.frame.get_column(self.target).cast(pl.Float64).to_numpy()


@dataclass
class Task:
    """The outer split of a table, and the baselines' inner split of its training rows."""

    table: Table
    train: np.ndarray  # row indices of table.frame
    test: np.ndarray
    inner_train: np.ndarray  # positions within ``train``
    inner_val: np.ndarray

    @property
    def X_train(self) -> pl.DataFrame:
        return self.table.X[self.train]

    @property
    def X_test(self) -> pl.DataFrame:
        return self.table.X[self.test]

    @property
    def y_train(self) -> np.ndarray:
        return self.table.y[self.train]

    @property
    def y_test(self) -> np.ndarray:
        return self.table.y[self.test]


# ---------------------------------------------------------------- arguments and data


def default_data_dir() -> Path:
    """$TABLES_DATA, else ../shared/data/tables beside the repository."""
    given = os.environ.get("TABLES_DATA")
    return Path(given) if given else ROOT.parent / "shared" / "data" / "tables"


def load_catalog(data_dir: Path) -> dict[str, dict[str, Any]]:
    """tables.json of the data folder; a UsageError when the folder or file is absent."""
    path = data_dir / "tables.json"
    if not path.is_file():
        raise UsageError(f"tables data not found: no {path} (set TABLES_DATA)")
    return json.loads(path.read_text())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with --tables / --models / --rerun split into lists."""
    parser = OneLineParser(prog="table_suite.py", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the results")
    parser.add_argument("--tables", type=_names, help="tables to run (default: all)")
    parser.add_argument("--models", type=_names, default=list(MODELS),
                        help=f"models to run (default: {','.join(MODELS)})")
    parser.add_argument("--fit-config", type=Path, help="a FitConfig file for `fit --config`")
    parser.add_argument("--rerun", type=_names, default=[],
                        help="models to run again where already in the JSON")
    args = parser.parse_args(argv)
    for model in [*args.models, *args.rerun]:
        if model not in MODELS:
            raise UsageError(f"unknown model {model!r} (models: {', '.join(MODELS)})")
    if args.fit_config is not None and not args.fit_config.is_file():
        raise UsageError(f"--fit-config {args.fit_config} is not a file")
    return args


def check_tables(names: list[str] | None, catalog: dict[str, Any]) -> list[str]:
    """The tables to run, in the order given (default: the catalog's order)."""
    if names is None:
        return list(catalog)
    for name in names:
        if name not in catalog:
            raise UsageError(f"unknown table {name!r} (tables: {', '.join(catalog)})")
    return names


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def load_table(data_dir: Path, name: str, spec: dict[str, Any]) -> Table:
    """Read a table with polars, drop its ``drop`` columns and the rows without a target."""
    frame = pl.read_csv(data_dir / f"{name}.csv", null_values="NA", infer_schema_length=None,
                        try_parse_dates=True)
    frame = frame.drop(spec.get("drop", []))
    target = spec["target"]
    values = frame.get_column(target).cast(pl.Float64)
    missing = values.is_null() | values.is_nan()
    return Table(name=name, frame=frame.filter(~missing), target=target,
                 time_column=spec.get("time_column"), rows_without_target=int(missing.sum()))


def split_rows(frame: pl.DataFrame, time_column: str | None, fraction: float,
               seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held) row indices, each ascending. With ``time_column``: the last ``fraction``
    of the rows after a stable sort by it (missing times sort first, so they are kept);
    without: a seeded random ``fraction`` of the rows."""
    n = frame.height
    n_held = int(round(fraction * n))
    if time_column is not None:
        order = (frame.select(pl.col(time_column)).with_row_index("row")
                 .sort(time_column, maintain_order=True, nulls_last=False)
                 .get_column("row").to_numpy().astype(np.int64))
    else:
        order = np.random.default_rng(seed).permutation(n)
    held = order[n - n_held:]
    return np.sort(order[: n - n_held]), np.sort(held)


def make_task(table: Table) -> Task:
    """The outer 80/20 split and, inside its training rows, the baselines' 90/10 split."""
    train, test = split_rows(table.frame, table.time_column, TEST_FRACTION)
    inner_train, inner_val = split_rows(table.frame[train], table.time_column,
                                        VALIDATION_FRACTION)
    return Task(table=table, train=train, test=test, inner_train=inner_train,
                inner_val=inner_val)


# ---------------------------------------------------------------- features for the baselines


def date_features(X: pl.DataFrame) -> pl.DataFrame:
    """Each date or datetime column as year, month, day of year, day of week and days since
    1970-01-01 (fractional for datetimes); other temporal columns as their raw numbers."""
    exprs = []
    for name, dtype in X.schema.items():
        if dtype == pl.Date or isinstance(dtype, pl.Datetime):
            col = pl.col(name)
            days = (col.dt.epoch("s") / 86400.0 if dtype != pl.Date
                    else col.cast(pl.Int32).cast(pl.Float64))
            exprs += [col.dt.year().cast(pl.Float64).alias(f"{name}_year"),
                      col.dt.month().cast(pl.Float64).alias(f"{name}_month"),
                      col.dt.ordinal_day().cast(pl.Float64).alias(f"{name}_dayofyear"),
                      col.dt.weekday().cast(pl.Float64).alias(f"{name}_dayofweek"),
                      days.alias(f"{name}_days")]
        elif dtype.is_temporal():
            exprs.append(pl.col(name).to_physical().cast(pl.Float64))
        else:
            exprs.append(pl.col(name))
    return X.select(exprs)


def categorical_columns(X: pl.DataFrame) -> list[str]:
    """Strings, categoricals and booleans: the columns the baselines treat as categories."""
    return [name for name, dtype in X.schema.items()
            if dtype in (pl.String, pl.Boolean, pl.Categorical) or isinstance(dtype, pl.Enum)]


def as_strings(X: pl.DataFrame, columns: list[str], fill: str | None = None) -> pl.DataFrame:
    """``columns`` cast to strings, their nulls filled with ``fill`` when given."""
    exprs = [pl.col(c).cast(pl.String) for c in columns]
    if fill is not None:
        exprs = [e.fill_null(fill) for e in exprs]
    return X.with_columns(exprs)


def to_pandas_categories(frames: list[pl.DataFrame], columns: list[str]) -> list[Any]:
    """pandas frames whose ``columns`` are `category` dtype with the first frame's levels
    (levels unseen there become missing)."""
    import pandas as pd

    frames = [as_strings(f, columns) for f in frames]
    levels = {c: sorted(frames[0].get_column(c).drop_nulls().unique().to_list()) for c in columns}
    known = [pl.when(pl.col(c).is_in(levels[c])).then(pl.col(c)) for c in columns]
    out = []
    for frame in frames:
        df = frame.with_columns(known).to_pandas()
        for c in columns:
            df[c] = pd.Categorical(df[c].astype(object), categories=levels[c])
        out.append(df)
    return out


def median_fill(train: pl.DataFrame, others: list[pl.DataFrame],
                columns: list[str]) -> list[pl.DataFrame]:
    """``train`` and ``others`` with numeric nulls (and NaN) filled by ``train``'s medians."""
    medians = {c: train.get_column(c).cast(pl.Float64).fill_nan(None).median() for c in columns}
    exprs = [pl.col(c).cast(pl.Float64).fill_nan(None).fill_null(medians[c] or 0.0)
             for c in columns]
    return [frame.with_columns(exprs) for frame in [train, *others]]


# ---------------------------------------------------------------- models


def run_lightgbm(task: Task) -> dict[str, Any]:
    """LightGBM defaults, 10,000 rounds at most, early stopping (100) on the inner split."""
    import lightgbm

    X_train, X_test = date_features(task.X_train), date_features(task.X_test)
    cats = categorical_columns(X_train)
    fit_df, val_df, test_df = to_pandas_categories(
        [X_train[task.inner_train], X_train[task.inner_val], X_test], cats)
    y = task.y_train
    model = lightgbm.LGBMRegressor(n_estimators=10_000, n_jobs=THREADS, verbose=-1)
    # LightGBM >= 4.6 names the validation set eval_X / eval_y (eval_set is deprecated).
    if "eval_X" in inspect.signature(model.fit).parameters:
        validation = {"eval_X": (val_df,), "eval_y": (y[task.inner_val],)}
    else:
        validation = {"eval_set": [(val_df, y[task.inner_val])]}
    model.fit(fit_df, y[task.inner_train], **validation,
              callbacks=[lightgbm.early_stopping(100, verbose=False)])
    predicted = model.predict(test_df, num_iteration=model.best_iteration_)
    return {"rmse": rmse(task.y_test, predicted), "rounds": int(model.best_iteration_)}


def run_catboost(task: Task) -> dict[str, Any]:
    """CatBoost defaults, 10,000 iterations at most, early stopping (100) on the inner split
    with the best model kept; string columns as cat_features (missing as the text "NA")."""
    from catboost import CatBoostRegressor

    X_train, X_test = date_features(task.X_train), date_features(task.X_test)
    cats = categorical_columns(X_train)
    X_train, X_test = as_strings(X_train, cats, "NA"), as_strings(X_test, cats, "NA")
    y = task.y_train
    model = CatBoostRegressor(iterations=10_000, early_stopping_rounds=100, use_best_model=True,
                              thread_count=THREADS, verbose=False, allow_writing_files=False)
    model.fit(X_train[task.inner_train].to_pandas(), y[task.inner_train], cat_features=cats,
              eval_set=(X_train[task.inner_val].to_pandas(), y[task.inner_val]))
    predicted = model.predict(X_test.to_pandas())
    return {"rmse": rmse(task.y_test, predicted), "rounds": int(model.tree_count_)}


def run_ridge(task: Task) -> dict[str, Any]:
    """RidgeCV over 13 alphas on median-imputed, standardized numbers and one-hot categories,
    fitted on all the outer training rows."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X_train, X_test = date_features(task.X_train), date_features(task.X_test)
    cats = categorical_columns(X_train)
    numbers = [c for c in X_train.columns if c not in cats]
    X_train, X_test = as_strings(X_train, cats, "NA"), as_strings(X_test, cats, "NA")
    columns = ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers),
        ("categories", OneHotEncoder(handle_unknown="ignore"), cats),
    ])
    model = make_pipeline(columns, RidgeCV(alphas=np.logspace(-3, 3, 13)))
    model.fit(X_train.to_pandas(), task.y_train)
    predicted = model.predict(X_test.to_pandas())
    return {"rmse": rmse(task.y_test, predicted), "alpha": float(model[-1].alpha_)}


def run_realmlp(task: Task) -> dict[str, Any]:
    """pytabkit's RealMLP_TD_Regressor with its defaults on the outer training rows
    (numbers median-imputed); {"skipped": why} without pytabkit."""
    try:
        from pytabkit import RealMLP_TD_Regressor
    except ImportError as error:
        return {"skipped": f"pytabkit not importable ({error}); install: pip install pytabkit "
                           "-c scripts/constraints-torch.txt"}
    X_train, X_test = date_features(task.X_train), date_features(task.X_test)
    cats = categorical_columns(X_train)
    numbers = [c for c in X_train.columns if c not in cats]
    X_train, X_test = median_fill(X_train, [X_test], numbers)
    train_df, test_df = to_pandas_categories([X_train, X_test], cats)
    model = RealMLP_TD_Regressor(n_threads=THREADS, random_state=SEED)
    model.fit(train_df, task.y_train)
    return {"rmse": rmse(task.y_test, model.predict(test_df))}


def cli_command() -> list[str]:
    """How a user runs `rossmann-embed` with this interpreter: ``python -m
    rossmann_embed.cli`` when the module has a main guard, else the console script."""
    spec = importlib.util.find_spec("rossmann_embed.cli")
    if spec is not None and spec.origin and "__main__" in Path(spec.origin).read_text():
        return [sys.executable, "-m", "rossmann_embed.cli"]
    return [str(Path(sys.executable).with_name("rossmann-embed"))]


def run_fit(task: Task, fit_config: Path | None = None) -> dict[str, Any]:
    """`rossmann-embed fit` on the outer training rows, then `predict` on the test rows
    without their target, as subprocesses in a temporary folder; RMSE, wall seconds, and the
    steps and epochs the run reports."""
    table = task.table
    with tempfile.TemporaryDirectory(prefix="table-suite-") as tmp:
        folder = Path(tmp)
        table.frame[task.train].write_csv(folder / "train.csv")
        table.frame[task.test].drop(table.target).write_csv(folder / "test_without_target.csv")
        fit = [*cli_command(), "fit", "--table", "train.csv", "--target", table.target,
               "--out", "run"]
        if table.time_column is not None:
            fit += ["--time-column", table.time_column]
        if fit_config is not None:
            fit += ["--config", str(fit_config.resolve())]
        predict = [*cli_command(), "predict", "--run", "run", "--table",
                   "test_without_target.csv", "--out", "pred.csv"]
        start = time.perf_counter()
        for command in (fit, predict):
            error = _run(command, folder)
            if error is not None:
                return {"error": error, "seconds": round(time.perf_counter() - start, 1)}
        seconds = time.perf_counter() - start
        predicted = pl.read_csv(folder / "pred.csv").get_column("prediction").to_numpy()
        return {"rmse": rmse(task.y_test, predicted), "seconds": round(seconds, 1),
                **run_budget(folder / "run"),
                "config": str(fit_config) if fit_config is not None else None}


def _run(command: list[str], cwd: Path) -> str | None:
    """Run ``command``; None when it succeeds, else the last line it wrote."""
    env = dict(os.environ)
    if USER_OMP_WAIT is None:
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = USER_OMP_WAIT
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.splitlines() if line.strip()] or [
        line for line in done.stdout.splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit code {done.returncode}"


def run_budget(run_dir: Path) -> dict[str, Any]:
    """Optimizer steps (validation.json, else metrics.csv) and epochs trained (metrics.csv's
    highest epoch + 1, the most of any member), where the run says."""
    found: dict[str, Any] = {}
    report = run_dir / "validation.json"
    if report.is_file():
        data = json.loads(report.read_text())
        if isinstance(data.get("steps"), int):
            found["steps"] = data["steps"]
        if isinstance(data.get("epochs"), int):
            found["epoch_budget"] = data["epochs"]
    epochs, steps = [], []
    for path in sorted(run_dir.rglob("metrics.csv")):
        metrics = pl.read_csv(path, infer_schema_length=None)
        if "epoch" in metrics.columns and metrics.get_column("epoch").drop_nulls().len():
            epochs.append(int(metrics.get_column("epoch").max()) + 1)
        if "step" in metrics.columns and metrics.get_column("step").drop_nulls().len():
            steps.append(int(metrics.get_column("step").max()) + 1)
    if epochs:
        found["epochs"] = max(epochs)
    if steps and "steps" not in found:
        found["steps"] = sum(steps)
    return found


BASELINES: dict[str, Callable[[Task], dict[str, Any]]] = {
    "lightgbm": run_lightgbm, "catboost": run_catboost, "ridge": run_ridge,
    "realmlp": run_realmlp,
}


def run_model(model: str, task: Task, fit_config: Path | None) -> dict[str, Any]:
    """One model on one task, timed; an exception becomes {"error": its last line}."""
    start = time.perf_counter()
    try:
        if model == "fit":
            return run_fit(task, fit_config)
        result = BASELINES[model](task)
    except Exception as error:  # one failing model must not end the suite
        text = str(error).strip().splitlines()
        result = {"error": f"{type(error).__name__}: {text[-1] if text else ''}"}
    if "skipped" not in result:
        result["seconds"] = round(time.perf_counter() - start, 1)
    return result


# ---------------------------------------------------------------- results


def commit_id() -> str:
    """git rev-parse HEAD, with "-dirty" when tracked files have changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def read_fit_config(path: Path | None) -> Any:
    """The --fit-config file's contents (parsed JSON or YAML, else its text), or None."""
    if path is None:
        return None
    text = path.read_text()
    try:
        import yaml

        return yaml.safe_load(text)
    except Exception:
        return text


def table_entry(task: Task, models: dict[str, Any]) -> dict[str, Any]:
    """A table's counts, its models' results, the better GBDT and fit's ratio to it."""
    table = task.table
    entry: dict[str, Any] = {
        "rows": table.frame.height, "rows_train": len(task.train), "rows_test": len(task.test),
        "rows_without_target": table.rows_without_target, "target": table.target,
        "time_column": table.time_column, "models": models,
        "best_gbdt": None, "ratio": None,
    }
    scored = {m: models[m]["rmse"] for m in GBDTS if _score(models.get(m)) is not None}
    if scored:
        entry["best_gbdt"] = min(scored, key=scored.get)
        fit = _score(models.get("fit"))
        if fit is not None:
            entry["ratio"] = fit / scored[entry["best_gbdt"]]
    return entry


def _score(result: dict[str, Any] | None) -> float | None:
    value = (result or {}).get("rmse")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` with geomean_ratio and max_ratio over the tables that have a ratio."""
    ratios = [t["ratio"] for t in results["tables"].values() if t.get("ratio")]
    results["geomean_ratio"] = (float(np.exp(np.mean(np.log(ratios)))) if ratios else None)
    results["max_ratio"] = max(ratios) if ratios else None
    return results


def suite_markdown(results: dict[str, Any]) -> str:
    """The results as a markdown table: RMSE (seconds) per model and fit / best GBDT."""
    lines = ["| table | rows | fit | LightGBM | CatBoost | ridge | RealMLP | fit / best GBDT |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, entry in results["tables"].items():
        cells = [_cell(entry["models"].get(m)) for m in MODELS]
        ratio = entry.get("ratio")
        best = {"lightgbm": "LightGBM", "catboost": "CatBoost"}.get(entry.get("best_gbdt"), "")
        ratio_cell = f"{ratio:.3f} (vs {best})" if ratio else "—"
        lines.append(f"| {name} | {entry['rows']:,} | {' | '.join(cells)} | {ratio_cell} |")
    geomean, worst = results.get("geomean_ratio"), results.get("max_ratio")
    count = sum(1 for t in results["tables"].values() if t.get("ratio"))
    lines += ["", "Cells: test RMSE on the target's scale (seconds of fit + predict)."]
    if geomean is not None:
        lines.append(f"Geometric mean of fit / best GBDT over {count} tables: {geomean:.3f} "
                     f"(max {worst:.3f}).")
    else:
        lines.append("Geometric mean of fit / best GBDT: — (no table has both).")
    lines.append(f"Commit: {results['commit']}.")
    return "\n".join(lines) + "\n"


def _cell(result: dict[str, Any] | None) -> str:
    if not result:
        return "—"
    if "skipped" in result:
        return "skipped"
    if "error" in result:
        return "error"
    return f"{result['rmse']:.4g} ({result.get('seconds', 0):.0f} s)"


def write_results(out: Path, results: dict[str, Any]) -> None:
    """DIR/table_suite.json and DIR/table_suite.md, each replaced atomically."""
    summarize(results)
    write_json(out / JSON_NAME, results)
    write_text(out / MD_NAME, suite_markdown(results))


def load_results(out: Path) -> dict[str, Any]:
    """The results already in DIR/table_suite.json, or an empty set."""
    path = out / JSON_NAME
    if path.is_file():
        return json.loads(path.read_text())
    return {"tables": {}}


def progress(table: str, model: str, result: dict[str, Any], kept: bool = False) -> str:
    """One short line: table, model, RMSE (or why none), seconds."""
    if "rmse" in result:
        what = f"rmse {result['rmse']:.4g}"
    else:
        what = f"skipped: {result['skipped']}" if "skipped" in result else (
            f"error: {result.get('error')}")
    seconds = f"  {result['seconds']:.1f} s" if "seconds" in result else ""
    return f"{table:<11} {model:<9} {what}{seconds}{'  (kept)' if kept else ''}"


# ---------------------------------------------------------------- main


def run_suite(args: argparse.Namespace, data_dir: Path, catalog: dict[str, Any]) -> dict:
    """Every chosen model on every chosen table, results written after each model."""
    args.out.mkdir(parents=True, exist_ok=True)
    results = load_results(args.out)
    results["commit"] = commit_id()
    results["fit_config"] = read_fit_config(args.fit_config)
    results.setdefault("tables", {})
    for name in check_tables(args.tables, catalog):
        task = make_task(load_table(data_dir, name, catalog[name]))
        models = results["tables"].get(name, {}).get("models", {})
        for model in args.models:
            if model in models and model not in args.rerun:
                print(progress(name, model, models[model], kept=True), flush=True)
                continue
            models[model] = run_model(model, task, args.fit_config)
            results["tables"][name] = table_entry(task, models)
            write_results(args.out, results)
            print(progress(name, model, models[model]), flush=True)
        results["tables"][name] = table_entry(task, models)
    write_results(args.out, results)
    return results


def main(argv: list[str] | None = None) -> int:
    """Parse, check, run; 2 with one line on stderr for bad arguments or missing data."""
    try:
        args = parse_args(argv)
        data_dir = default_data_dir()
        catalog = load_catalog(data_dir)
        check_tables(args.tables, catalog)
    except UsageError as error:
        print(f"table_suite.py: {error}", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    run_suite(args, data_dir, catalog)
    return 0


if __name__ == "__main__":
    sys.exit(main())
