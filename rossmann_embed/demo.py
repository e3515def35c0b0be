"""The README's main job: synthetic Kaggle-shaped data -> a trained run, in under 2 minutes."""

from __future__ import annotations

from pathlib import Path

from rossmann_embed.config import TrainConfig
from rossmann_embed.inference import load_runs, submit
from rossmann_embed.synthetic import write_synthetic
from rossmann_embed.training import fit

DEMO_STORES = 60


def demo(out: Path, seed: int = 0) -> Path:
    """Write synthetic data to ``out/data``, train a small run into ``out/run`` and write its
    Kaggle submission for the synthetic test.csv to ``out/submission.csv``."""
    info = write_synthetic(out / "data", n_stores=DEMO_STORES, seed=seed)
    print(f"synthetic data: {info.n_train_rows:,} train rows, {info.n_stores} stores "
          f"-> {info.out_dir}")
    config = TrainConfig(data_dir=str(out / "data"), out=str(out / "run"), epochs=6,
                         batch_size=512, seed=seed, hidden_sizes=[256, 128])
    run_dir = fit(config)
    print(f"run written to {run_dir} (validation RMSPE in {run_dir / 'validation.json'})")
    submission = out / "submission.csv"
    report = submit(load_runs([run_dir]), out / "data", submission)
    print(f"submission for the synthetic test.csv ({report['rows']:,} rows) -> {submission}")
    return run_dir
