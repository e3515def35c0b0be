"""Typed training configuration: one dataclass, saved resolved as JSON in every run directory."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from rossmann_embed.data import DEFAULT_BATCH_SIZE
from rossmann_embed.errors import InputError


@dataclass
class TrainConfig:
    """Everything that decides a training run. The defaults are the product's default model."""

    data_dir: str
    out: str
    epochs: int = 10
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    loss: str = "mse"
    seed: int = 0
    seeds: int = 1  # members of a seed ensemble: seeds seed, seed + 1, ...
    validation_days: int = 48  # 0 trains on everything (a final Kaggle model)
    embedding_sizes: dict[str, int] = field(default_factory=dict)
    hidden_sizes: list[int] = field(default_factory=lambda: [1000, 500])
    dropout: list[float] = field(default_factory=lambda: [0.0, 0.0])  # costly on CPU, little gain
    embedding_dropout: float = 0.04
    batch_norm: bool = False
    # Share of training rows whose look-ahead features are cut as if the data ended 0-59 days
    # later, as it does for the days one predicts (features.hide_future).
    hide_future: float = 0.5
    weather: bool = True
    # Google trends off: the backtest's network alone was 0.1130 with them and 0.1097
    # without (mean RMSPE of 3 windows); on 2014's summer they pushed it 5% too high.
    trends: bool = False
    # Share of the boosted half in the log-space forecast: LightGBM fed with the network's
    # learned store factors (boosting.Boosted); 0 is the network alone.
    lightgbm_weight: float = 0.5
    store_factors: int = 8  # principal components of the Store embedding given to LightGBM
    patience: int = 5  # early stopping on val_rmspe, in epochs (one-cycle: late epochs gain most)
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    precision: str = "32-true"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError.at("config", f"one of {sorted(known)}", column=unknown[0])
        return cls(**data)

    def save(self, path: Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        """Read a JSON or YAML configuration file."""
        text = Path(path).read_text()
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        return cls.from_dict(data)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a temporary file beside the target, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)
