"""Load a trained run from its checkpoints alone, and predict with its members.

A checkpoint carries the fitted preprocessing as plain data, so a run directory (or one
``.ckpt`` file) and a frame with the model's columns are all a prediction needs.
Checkpoints are loaded weights-only: no pickles are executed.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from rossmann_embed.tabular.encoding import Preprocessor, inverse_target
from rossmann_embed.tabular.errors import InputError, first_line
from rossmann_embed.tabular.files import write_json
from rossmann_embed.tabular.model import EntityEmbeddingNetwork

Logs = dict[str, np.ndarray]  # member label -> predictions in the model's space
MANIFEST = "run.json"  # what kind of run a directory holds, and in which format
RUN_FORMAT = 2  # 1: the runs of version 0.1, without a manifest


def write_manifest(run_dir: str | Path, kind: str) -> Path:
    """Say in ``run.json`` which command wrote the run (``kind``: ``fit`` or ``train``), in
    which format and by which version, so that loading need not guess."""
    import rossmann_embed

    return write_json(Path(run_dir) / MANIFEST, {"kind": kind, "format": RUN_FORMAT,
                                                 "version": rossmann_embed.__version__})


def run_kind(path: str | Path) -> str:
    """The kind of run ``path`` holds, from its manifest; an ``InputError`` saying what to do
    when there is none (a run of version 0.1) or it is damaged."""
    if not Path(path).is_dir():
        what = "missing" if not Path(path).exists() else "a file"
        raise InputError.at(str(path), f"a run directory (this path is {what})")
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        raise InputError.at(str(path), f"a run directory with {MANIFEST} (a run written before "
                            f"its format {RUN_FORMAT} lacks it: add {MANIFEST} holding "
                            '{"kind": "fit", "format": 1} for a `fit` run, one with '
                            'estimator.json, else {"kind": "train", "format": 1})')
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        kind, version = data["kind"], int(data["format"])
    except (ValueError, TypeError, KeyError) as error:
        raise InputError.at(str(manifest), 'a run manifest like {"kind": "fit", "format": 2} '
                            f"({type(error).__name__}: {error})") from None
    if version > RUN_FORMAT:
        raise InputError.at(str(manifest), f"a run of format {RUN_FORMAT} or older (this one is "
                            f"{version}: upgrade rossmann-embed to load it)")
    return kind


def member_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(seed, best checkpoint) of every ensemble member of a run, by seed."""
    paths = Path(run_dir).glob("checkpoints/seed-*/best.ckpt")
    return sorted((int(p.parent.name.removeprefix("seed-")), p) for p in paths)


def load_member(path: str | Path) -> EntityEmbeddingNetwork:
    """One model from a checkpoint, on the CPU, in eval mode, weights-only loading."""
    try:
        model = EntityEmbeddingNetwork.from_checkpoint(path)
    # Whatever a damaged or foreign file makes the zip reader, torch or the model's
    # constructor raise (the fuzz suite found OSError, RuntimeError, KeyError, ...), the file
    # is the cause: one line naming it.
    except Exception as error:  # noqa: BLE001
        first = first_line(error)
        reason = ("it holds objects other than weights and plain data"
                  if isinstance(error, pickle.UnpicklingError)
                  else f"it fails: {type(error).__name__}: {first}")
        raise InputError.at(str(path), "a checkpoint written by this package, loadable "
                            f"weights-only ({reason})") from None
    return model.eval()


@dataclass
class TabularRun:
    """A trained run: its members (one per seed) and the preprocessing they share."""

    path: Path
    models: list[EntityEmbeddingNetwork]
    preprocessor: Preprocessor
    labels: list[str] = field(default_factory=list)  # one per member, e.g. "seed-0"
    metadata: dict = field(default_factory=dict)  # what the dataset stored beside it

    def member_logs(self, frame: pl.DataFrame, source: str = "input frame") -> Logs:
        """Each member's predictions for the rows of ``frame`` in the model's space (log for a
        log target), by member label."""
        tensors = self.preprocessor.transform(frame, source)
        labels = self.labels or [f"member-{i}" for i in range(len(self.models))]
        return {
            label: m.predict_log(tensors.categorical, tensors.continuous).numpy()
            .astype(np.float64)
            for label, m in zip(labels, self.models, strict=True)
        }

    def predict(self, frame: pl.DataFrame, source: str = "input frame") -> np.ndarray:
        """The members' mean in the model's space, in the target's own units."""
        logs = self.member_logs(frame, source)
        mean = np.mean(list(logs.values()), axis=0) if logs else np.zeros(frame.height)
        return inverse_target(mean, self.preprocessor.spec.target_transform)


def load_tabular_run(path: str | Path) -> TabularRun:
    """Every member of a run directory (or a single ``.ckpt`` file)."""
    path = Path(path)
    if path.is_file():
        checkpoints = [(path.stem, path)]
    else:
        checkpoints = [(f"seed-{seed}", p) for seed, p in member_checkpoints(path)]
    if not checkpoints:
        raise InputError.at(str(path), "a run directory with checkpoints/seed-*/best.ckpt "
                            "or a .ckpt file")
    models = [load_member(p) for _, p in checkpoints]
    stored = dict(models[0].hparams.preprocessing or {})
    if "preprocessor" not in stored:
        raise InputError.at(str(checkpoints[0][1]), "a checkpoint with its preprocessing")
    preprocessor = Preprocessor.from_dict(stored.pop("preprocessor"))
    return TabularRun(path, models, preprocessor, [label for label, _ in checkpoints], stored)
