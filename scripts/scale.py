"""Measure `fit --epochs 1` and `predict` on M5-like tables of growing size; write JSON.

    python scripts/scale.py --rows 2000000,20000000 --out scale.json [--work DIR]

The table is generated (no download): M5's shape, an item of about 30,000 levels sold in 10
stores over days, with its department, the weekday, a price and a promotion, and unit sales
drawn from a Poisson whose log mean adds item, store, weekday, promotion and price effects.
For each size it runs, as separate processes, one after the other (never two at once):

- `fit --stream --epochs 1` and `predict` of the same table (the streamed paths);
- `fit --no-stream --epochs 1` beside it, at the sizes where the in-memory path fits
  (``--in-memory-up-to``, default 5,000,000 rows).

With ``--rossmann-stores 1115,11150`` it also runs `train --epochs 1` on Kaggle-shaped
synthetic Rossmann data (``rossmann.studies.synthetic``, 2013-01-01 to 2015-07-31 as Kaggle's)
with that many stores: in memory at Kaggle's 1,115 stores, streamed (features built a block
of stores at a time) at every size, then `submit` of its test.csv by the streamed run, under
``rossmann`` in the JSON.

Each entry reports peak resident memory of the command and its children (polled every 0.1 s,
summed over the process tree), wall seconds, rows a second (training rows of the epoch, or
rows predicted), and the run's validation RMSE. The JSON file is rewritten after each
command, so a long run can be read while it goes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ITEMS, STORES, DEPARTMENTS = 30_490, 10, 7
CHUNK_ROWS = 1_000_000
POLL_SECONDS = 0.1
# The default network but for the item's embedding: 32 wide instead of fastai's rule's 517,
# whose dense gradient and optimizer update (16M parameters a step) would measure the
# optimizer rather than the data path.
MODEL = ["--embedding-size", "item=32"]
KAGGLE_STORES = 1_115


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """An M5-like parquet file of ``rows`` rows, written a million rows at a time."""
    rng = np.random.default_rng(seed)
    item_effect = rng.normal(0, 1.0, ITEMS)
    item_price = np.exp(rng.normal(1.2, 0.7, ITEMS))
    item_department = rng.integers(0, DEPARTMENTS, ITEMS)
    store_effect = rng.normal(0, 0.3, STORES)
    weekday_effect = np.array([0.0, -0.1, -0.15, -0.1, 0.05, 0.3, 0.35])
    items = np.array([f"ITEM_{i:05d}" for i in range(ITEMS)])
    stores = np.array([f"STORE_{s}" for s in range(STORES)])
    departments = np.array([f"DEPT_{d}" for d in range(DEPARTMENTS)])
    writer = None
    for start in range(0, rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, rows - start)
        index = np.arange(start, start + n)
        item = rng.integers(0, ITEMS, n)
        store = rng.integers(0, STORES, n)
        day = index * 1941 // rows  # days in order, as M5's 1,941
        weekday = day % 7
        promo = (rng.random(n) < 0.1).astype(np.int8)
        price = item_price[item] * np.where(promo == 1, 0.8, 1.0) * rng.lognormal(0, 0.05, n)
        log_mean = (0.3 + item_effect[item] + store_effect[store] + weekday_effect[weekday]
                    + 0.4 * promo - 0.8 * np.log(price / item_price[item]) + day / 4000)
        table = pa.table({
            "item": items[item], "store": stores[store], "department": departments[
                item_department[item]], "day": day.astype(np.int32),
            "weekday": weekday.astype(np.int8), "price": price.round(2), "promo": promo,
            "sales": rng.poisson(np.exp(log_mean)).astype(np.float64)})
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=131_072)
    writer.close()


def peak_run(command: list[str]) -> tuple[float, float, int]:
    """(seconds, peak MB over the process tree, exit status) of ``command``."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        time.sleep(POLL_SECONDS)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode:
        print(stderr[-2000:], file=sys.stderr)
    return time.perf_counter() - start, peak / 2**20, process.returncode


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants (from /proc)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    pending += [int(child) for child in handle.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def fit_command(table: Path, out: Path, stream: bool) -> list[str]:
    return [sys.executable, "-m", "rossmann_embed.cli", "fit", "--table", str(table),
            "--target", "sales", "--out", str(out), "--epochs", "1", "--time-column", "day",
            "--stream" if stream else "--no-stream", "--accelerator", "cpu", "--devices", "1",
            *MODEL]


def measure(rows: int, work: Path, in_memory_up_to: int, results: dict, out: Path) -> None:
    table = work / f"m5-{rows}.parquet"
    if not table.exists():
        started = time.perf_counter()
        generate(table, rows)
        print(f"{rows:,} rows generated in {time.perf_counter() - started:.0f} s")
    entry = results.setdefault(str(rows), {"rows": rows})
    paths = [("streamed", True)] + ([("in_memory", False)] if rows <= in_memory_up_to else [])
    for name, stream in paths:
        run = work / f"run-{name}-{rows}"
        seconds, peak, status = peak_run(fit_command(table, run, stream))
        report = read_json(run / "validation.json")
        epoch = epoch_seconds(run)
        entry[f"fit_{name}"] = {
            "seconds": round(seconds, 1), "peak_mb": round(peak), "status": status,
            "epoch_seconds": epoch, "rows_train": report.get("rows_train"),
            "rows_per_second": round(report["rows_train"] / epoch) if epoch else None,
            "val_rmse": report.get("rmse")}
        print(f"{rows:,} fit {name}: {entry[f'fit_{name}']}")
        write(out, results)
        if stream:
            predictions = work / f"predictions-{rows}.parquet"
            command = [sys.executable, "-m", "rossmann_embed.cli", "predict", "--run", str(run),
                       "--table", str(table), "--out", str(predictions)]
            seconds, peak, status = peak_run(command)
            entry["predict_streamed"] = {"seconds": round(seconds, 1), "peak_mb": round(peak),
                                         "status": status,
                                         "rows_per_second": round(rows / seconds)}
            print(f"{rows:,} predict: {entry['predict_streamed']}")
            predictions.unlink(missing_ok=True)
            write(out, results)


def measure_rossmann(stores: int, work: Path, results: dict, out: Path) -> None:
    """`train --epochs 1` on synthetic Rossmann data of ``stores`` stores: streamed, and in
    memory at Kaggle's size or below."""
    from rossmann_embed.rossmann.studies.synthetic import write_synthetic

    data = work / f"rossmann-{stores}"
    if not (data / "train.csv").is_file():
        started = time.perf_counter()
        write_synthetic(data, n_stores=stores, seed=0)
        print(f"{stores:,} stores generated in {time.perf_counter() - started:.0f} s")
    entry = results.setdefault("rossmann", {}).setdefault(str(stores), {"stores": stores})
    paths = [("streamed", True)] + ([("in_memory", False)] if stores <= KAGGLE_STORES else [])
    for name, stream in paths:
        run = work / f"rossmann-run-{name}-{stores}"
        command = [sys.executable, "-m", "rossmann_embed.cli", "train", "--data-dir", str(data),
                   "--out", str(run), "--epochs", "1",
                   "--stream" if stream else "--no-stream"]
        seconds, peak, status = peak_run(command)
        rows = read_json(run / "data_report.json").get("rows_fit")
        epoch = epoch_seconds(run)
        report = read_json(run / "validation.json")
        entry[f"train_{name}"] = {
            "seconds": round(seconds, 1), "peak_mb": round(peak), "status": status,
            "epoch_seconds": epoch, "rows_train": rows,
            "rows_per_second": round(rows / epoch) if epoch and rows else None,
            "val_rmspe": report.get("rmspe"), "val_network_rmspe": report.get("network_rmspe")}
        print(f"{stores:,} stores, train {name}: {entry[f'train_{name}']}")
        write(out, results)
    # Kaggle's test.csv of the same stores, forecast by the streamed run: the features of its
    # stores are built a block at a time.
    submission = work / f"rossmann-submission-{stores}.csv"
    seconds, peak, status = peak_run([
        sys.executable, "-m", "rossmann_embed.cli", "submit", "--run",
        str(work / f"rossmann-run-streamed-{stores}"), "--data-dir", str(data),
        "--out", str(submission)])
    rows = sum(1 for _ in submission.open()) - 1 if submission.is_file() else None
    entry["submit"] = {"seconds": round(seconds, 1), "peak_mb": round(peak), "status": status,
                       "rows": rows}
    print(f"{stores:,} stores, submit: {entry['submit']}")
    write(out, results)


def epoch_seconds(run: Path) -> float | None:
    """The training epoch's seconds, first to last batch (``training.EpochTimer``)."""
    metrics = run / "metrics.csv"
    if not metrics.is_file():
        return None
    import polars as pl

    seconds = pl.read_csv(metrics).get_column("epoch_seconds").drop_nulls()
    return round(float(seconds[0]), 1) if len(seconds) else None


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def write(path: Path, results: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="2000000,20000000",
                        help="table sizes, comma-separated")
    parser.add_argument("--out", type=Path, default=Path("scale.json"))
    parser.add_argument("--work", type=Path, help="folder for tables and runs (default: a "
                        "temporary one, removed)")
    parser.add_argument("--in-memory-up-to", type=int, default=5_000_000,
                        help="largest table also fitted in memory")
    parser.add_argument("--rossmann-stores", default="",
                        help="stores of synthetic Rossmann data to train on, comma-separated "
                        "(like 1115,11150; default: none)")
    args = parser.parse_args()
    sizes = [int(r) for r in args.rows.split(",") if r]
    stores = [int(s) for s in args.rossmann_stores.split(",") if s]
    results = read_json(args.out) if args.out.is_file() else {}
    results["command"] = " ".join(["python", "scripts/scale.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="scale-") as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        for rows in sizes:
            measure(rows, work, args.in_memory_up_to, results, args.out)
        for count in stores:
            measure_rossmann(count, work, results, args.out)


if __name__ == "__main__":
    main()
