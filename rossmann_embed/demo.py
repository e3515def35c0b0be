"""The README's main job: synthetic Kaggle-shaped data -> a trained run, in under 2 minutes."""

from __future__ import annotations

from pathlib import Path

from rossmann_embed.config import TrainConfig
from rossmann_embed.synthetic import write_synthetic
from rossmann_embed.training import fit

DEMO_STORES = 60


def demo(out: Path, seed: int = 0) -> Path:
    """Write synthetic data to ``out/data`` and train a small run into ``out/run``."""
    info = write_synthetic(out / "data", n_stores=DEMO_STORES, seed=seed)
    print(f"synthetic data: {info.n_train_rows:,} train rows, {info.n_stores} stores "
          f"-> {info.out_dir}")
    config = TrainConfig(data_dir=str(out / "data"), out=str(out / "run"), epochs=6,
                         batch_size=512, seed=seed, hidden_sizes=[256, 128])
    run_dir = fit(config)
    print(f"run written to {run_dir} (validation RMSPE in {run_dir / 'validation.json'})")
    return run_dir
