"""Load a run (one model or a seed ensemble) and predict: from checkpoints alone.

A checkpoint carries the fitted preprocessing and the column spec as plain data, so
``load_run(path).predict(frame)`` needs nothing but the run directory and a frame with the
model's columns. Checkpoints are loaded with weights-only loading: no pickles are executed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from rossmann_embed.encoding import Preprocessor
from rossmann_embed.errors import InputError
from rossmann_embed.model import EntityEmbeddingRegressor


def member_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(seed, best checkpoint) of every ensemble member of a run, by seed."""
    paths = Path(run_dir).glob("checkpoints/seed-*/best.ckpt")
    return sorted((int(p.parent.name.removeprefix("seed-")), p) for p in paths)


def load_member(path: str | Path) -> EntityEmbeddingRegressor:
    """One model from a checkpoint, on the CPU, in eval mode, weights-only loading."""
    model = EntityEmbeddingRegressor.load_from_checkpoint(path, map_location="cpu",
                                                          weights_only=True)
    return model.eval()


@dataclass
class Run:
    """A trained run: its members (one per seed) and the preprocessing they share."""

    path: Path
    models: list[EntityEmbeddingRegressor]
    preprocessor: Preprocessor
    feature_options: dict

    def predict_log(self, frame: pl.DataFrame, source: str = "input frame") -> np.ndarray:
        """Mean of the members' log predictions for each row of ``frame``."""
        tensors = self.preprocessor.transform(frame, source)
        logs = [m.predict_log(tensors.categorical, tensors.continuous).numpy()
                for m in self.models]
        return np.mean(logs, axis=0).astype(np.float64)

    def predict(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with a ``Prediction`` column (sales; the ensemble's mean in log space)."""
        return frame.with_columns(Prediction=pl.Series(np.exp(self.predict_log(frame))))


def load_run(path: str | Path) -> Run:
    """Load every member of a run directory (or a single ``.ckpt`` file)."""
    path = Path(path)
    checkpoints = [path] if path.is_file() else [p for _, p in member_checkpoints(path)]
    if not checkpoints:
        raise InputError.at(str(path), "a run directory with checkpoints/seed-*/best.ckpt "
                            "(written by `rossmann-embed train`) or a .ckpt file")
    models = [load_member(p) for p in checkpoints]
    stored = models[0].hparams.preprocessing
    return Run(path, models, Preprocessor.from_dict(stored["preprocessor"]), stored["features"])
