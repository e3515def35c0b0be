"""The README's main job: synthetic Kaggle-shaped data -> a trained run, in under 2 minutes."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rossmann_embed.rossmann.inference import load_runs, load_train_run, submit
from rossmann_embed.rossmann.kaggle_files import read_stores
from rossmann_embed.rossmann.maps import write_run_maps
from rossmann_embed.rossmann.pipeline import fit
from rossmann_embed.rossmann.studies.synthetic import write_synthetic
from rossmann_embed.rossmann.train_config import TrainConfig

DEMO_STORES = 60


def demo(out: Path, seed: int = 0) -> Path:
    """Write synthetic data to ``out/data``, train a small run into ``out/run``, write its
    Kaggle submission for the synthetic test.csv to ``out/submission.csv`` and its embedding
    maps (scored against the planted geography) to ``out/maps``."""
    info = write_synthetic(out / "data", n_stores=DEMO_STORES, seed=seed)
    print(f"synthetic data: {info.n_train_rows:,} train rows, {info.n_stores} stores "
          f"-> {info.out_dir}")
    # Batches of 128: the ~2,000 steps it takes the State embedding to learn the planted map
    # (tests/test_learned_geography.py); 512 gives too few steps in 6 epochs.
    config = TrainConfig(data_dir=str(out / "data"), out=str(out / "run"), epochs=6,
                         batch_size=128, seed=seed, hidden_sizes=[256, 128])
    run_dir = fit(config)
    print(f"run written to {run_dir} (validation RMSPE in {run_dir / 'validation.json'})")
    submission = out / "submission.csv"
    report = submit(load_runs([run_dir]), out / "data", submission)
    print(f"submission for the synthetic test.csv ({report['rows']:,} rows) -> {submission}")
    # Score the state embeddings against the planted positions the data was made from.
    maps = write_run_maps(load_train_run(run_dir), read_stores(out / "data"), out / "maps",
                          reference=pl.read_csv(info.locations_states))
    geography = maps["geography"]
    print(f"embedding maps -> {out / 'maps'}: state embeddings vs planted map: Mantel r "
          f"{geography['mantel_r']:.2f} (p {geography['mantel_p']:.4f}), Procrustes residual "
          f"{geography['procrustes_residual']:.2f}")
    return run_dir
