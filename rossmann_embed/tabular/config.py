"""The network's and the Trainer's options: one dataclass, shared by every command that trains.

No torch here, so reading options (``--help``, a config file) stays fast. Dataset commands
extend ``NetworkConfig`` with their own fields (``rossmann.config.TrainConfig``,
``tabular.table.FitConfig``); a run directory saves the resolved whole as ``config.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.files import write_json

# 2048 rows a step: the (2048 x ~250) @ (250 x 1000) and (2048 x 1000) @ (1000 x 500) matmuls
# run near the CPU's peak matmul rate on 2 cores, so fixed per-step costs (optimizer step,
# Lightning hooks, embedding lookups) stay a few percent of a step, while ~400 steps an epoch
# on Rossmann's ~800k rows is still plenty for AdamW + OneCycle to converge in a few epochs.
# Smaller batches spend a growing share of the epoch in per-step overhead (see README/benchmark).
DEFAULT_BATCH_SIZE = 2048

LOGGERS = ("csv", "tensorboard")
TARGET_TRANSFORMS = ("log", "log1p", "none")  # how the model sees the target

Config = TypeVar("Config", bound="NetworkConfig")


@dataclass
class NetworkConfig:
    """The model and how Lightning trains it. The defaults are the product's default model."""

    epochs: int = 10
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    loss: str = "mse"
    seed: int = 0
    seeds: int = 1  # members of a seed ensemble: seeds seed, seed + 1, ...
    embedding_sizes: dict[str, int] = field(default_factory=dict)
    hidden_sizes: list[int] = field(default_factory=lambda: [1000, 500])
    dropout: list[float] = field(default_factory=lambda: [0.0, 0.0])  # costly on CPU, little gain
    embedding_dropout: float = 0.04
    batch_norm: bool = False
    patience: int = 5  # early stopping on validation, in epochs (one-cycle: late epochs gain most)
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    logger: str = "csv"  # or "tensorboard"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[Config], data: dict[str, Any]) -> Config:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError.at("config", f"one of {sorted(known)}", column=unknown[0])
        return cls(**data)

    def save(self, path: Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls: type[Config], path: Path) -> Config:
        """Read a JSON or YAML configuration file."""
        text = Path(path).read_text()
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        return cls.from_dict(data)
