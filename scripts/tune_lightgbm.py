"""Tune the LightGBM baseline over the backtest's windows, never over one; write one JSON file.

    python scripts/tune_lightgbm.py --data-dir ../shared/data/rossmann --out tune \
        [--windows 3] [--horizon 48] [--candidates base,leaves-255] [--part 1/2 --threads 1]

Each candidate is ``boosting.PUBLIC_PARAMS`` with a few settings changed (``CANDIDATES``).
It is fitted exactly as ``backtest`` fits the baseline (rounds by early stopping on the last
48 days before the window, then a refit on everything before it) on each window's cut, and
scored on the window. ``OUT/lightgbm_tuning.json`` lists every candidate's RMSPE per window,
its mean over the windows done, rounds and seconds, best first; it is rewritten after every
fit. A fit whose result is in ``OUT/fits/`` is not run again, so a stopped search continues.
``--part K/N`` runs every N-th fit (from the K-th): N processes share the search.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import polars as pl

from rossmann_embed.rossmann.boosting import PUBLIC_PARAMS
from rossmann_embed.rossmann.kaggle_files import read_kaggle_csv
from rossmann_embed.rossmann.studies.backtest import (
    Window,
    baseline_rows,
    cut_data,
    default_windows,
    predict_lightgbm,
    score,
)
from rossmann_embed.tabular.files import write_json

DEFAULT_DATA = os.environ.get("ROSSMANN_DATA", "../shared/data/rossmann")
# One setting changed at a time from the public recipe, the lower learning rate that more
# rounds allow, then the two changes that helped most on the first window, together.
CANDIDATES: dict[str, dict] = {
    "base": {},
    "leaves-255": {"num_leaves": 255},
    "leaves-63": {"num_leaves": 63},
    "features-0.5": {"feature_fraction": 0.5},
    "min-leaf-200": {"min_data_in_leaf": 200},
    "min-leaf-20": {"min_data_in_leaf": 20},
    "l2-10": {"lambda_l2": 10.0},
    "rate-0.03": {"learning_rate": 0.03},
    "leaves-63-features-0.5": {"num_leaves": 63, "feature_fraction": 0.5},
}


def fit_and_score(name: str, overrides: dict, window: Window, actual: pl.DataFrame,
                  history: pl.DataFrame, rows: pl.DataFrame, threads: int) -> dict:
    """One candidate on one window: the backtest's baseline with these parameters."""
    params = {**PUBLIC_PARAMS, **overrides}
    start = time.perf_counter()
    predicted, info = predict_lightgbm(history, rows, params=params, threads=threads)
    return {"candidate": name, "params": params, "window": window.name,
            "from": str(window.first), "to": str(window.last), "rmspe": score(actual, predicted),
            "rounds": info["rounds"], "seconds": round(time.perf_counter() - start, 1)}


def summarise(fits_dir: Path, names: list[str], windows: list[Window]) -> dict:
    """Every candidate's scores per window and their mean over the windows done; those with
    every window done first, best first."""
    fits = [json.loads(p.read_text()) for p in sorted(fits_dir.glob("*.json"))]
    # Candidates of earlier calls too: a search narrowed after a screen keeps what it dropped.
    shown = [*names, *sorted({f["candidate"] for f in fits} - set(names))]
    table = []
    for name in shown:
        mine = {f["window"]: f for f in fits if f["candidate"] == name}
        done = [mine[w.name] for w in windows if w.name in mine]
        table.append({
            "candidate": name,
            "params": done[0]["params"] if done else {**PUBLIC_PARAMS, **CANDIDATES[name]},
            "windows": done, "windows_done": len(done),
            "mean_rmspe": float(np.mean([f["rmspe"] for f in done])) if done else None,
            "seconds": round(sum(f["seconds"] for f in done), 1),
        })
    complete = sorted((c for c in table if c["windows_done"] == len(windows)),
                      key=lambda c: c["mean_rmspe"])
    return {"windows": [{"name": w.name, "from": str(w.first), "to": str(w.last)}
                        for w in windows],
            "best": complete[0]["candidate"] if complete else None,
            "candidates": complete + [c for c in table if c not in complete]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(DEFAULT_DATA))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--horizon", type=int, default=48)
    parser.add_argument("--candidates", default=",".join(CANDIDATES),
                        help=f"comma-separated, among {', '.join(CANDIDATES)}")
    parser.add_argument("--part", default="1/1", help="K/N: every N-th fit, from the K-th")
    parser.add_argument("--threads", type=int, default=0, help="LightGBM threads (0: all)")
    args = parser.parse_args()
    names = args.candidates.split(",")
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidate {unknown[0]!r}; known: {', '.join(CANDIDATES)}")
    k, slash, n = args.part.partition("/")
    if not (slash and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        parser.error(f"--part: K/N with 1 <= K <= N, not {args.part!r}")
    k, n = int(k), int(n)

    train = read_kaggle_csv(args.data_dir / "train.csv", "train.csv")
    windows = default_windows(train.get_column("Date").max(), args.windows, args.horizon)
    fits_dir = args.out / "fits"
    fits_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(w, c) for w in windows for c in names]  # window-major: features built once each
    built = None
    for i, (window, name) in enumerate(jobs):
        path = fits_dir / f"{name}__{window.label}.json"
        if i % n != k - 1 or path.is_file():
            continue
        cut = args.out / "windows" / window.label
        actual = cut_data(args.data_dir, train, window, cut)
        if built != window:
            history, rows = baseline_rows(cut)
            built = window
        print(f"[tune] {window.name} ({window.label}): {name} ...", flush=True)
        fit = fit_and_score(name, CANDIDATES[name], window, actual, history, rows, args.threads)
        write_json(path, fit)
        print(f"[tune] {window.name}: {name} RMSPE {fit['rmspe']:.4f}, {fit['rounds']} rounds, "
              f"{fit['seconds']:.0f} s", flush=True)
        write_json(args.out / "lightgbm_tuning.json", summarise(fits_dir, names, windows))
    result = summarise(fits_dir, names, windows)
    write_json(args.out / "lightgbm_tuning.json", result)
    print(json.dumps({"best": result["best"], "mean_rmspe": {
        c["candidate"]: c["mean_rmspe"] for c in result["candidates"]
        if c["windows_done"] == len(windows)}}, indent=2))


if __name__ == "__main__":
    main()
