"""The network's and the Trainer's options: one dataclass, shared by every command that trains.

No torch here, so reading options (``--help``, a config file) stays fast. Dataset commands
extend ``NetworkConfig`` with their own fields (``rossmann.train_config.TrainConfig``,
``FitConfig``); a run directory saves the resolved whole as ``config.json``.
"""

from __future__ import annotations

import copy
import json
import math
import numbers
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rossmann_embed.tabular.errors import InputError, first_line
from rossmann_embed.tabular.files import write_json

# The training budget follows the table (``batch_size``, ``epochs`` and ``patience`` None):
# batches grow with the rows, from 256 (small tables need many small steps) to 2048 (on
# Rossmann's ~800k rows, 2048-row matmuls run near the CPU's peak rate and per-step overheads
# stay small), and epochs are as many as it takes for MIN_STEPS optimizer steps.
MIN_BATCH_SIZE, DEFAULT_BATCH_SIZE = 256, 2048
ROWS_PER_BATCH_ROW = 128  # batch = rows / 128, as a power of two between the two bounds
MIN_STEPS = 2000
MIN_EPOCHS, MAX_EPOCHS = 8, 200

LOGGERS = ("csv", "tensorboard")
TARGET_TRANSFORMS = ("log", "log1p", "none")  # how the model sees the target

LOSSES = ("mse", "mae")
NUMERICAL_EMBEDDINGS = ("piecewise", "periodic", "none")
MONITORS = ("val_rmse", "val_rmspe")  # validation metrics in the target's own units
SCALINGS = ("quantile", "standard")  # how continuous columns are scaled (encoding.Preprocessor)

Config = TypeVar("Config", bound="NetworkConfig")


class OptionError(ValueError):
    """An option outside what is allowed: ``option`` names the field, ``value`` what it got."""

    def __init__(self, option: str, value: Any, expected: str) -> None:
        super().__init__(f"{option} must be {expected}, got {value!r}")
        self.option, self.value, self.expected = option, value, expected


def option(default: Any = MISSING, help: str = "", *, factory: Any = MISSING,
           flag: str | None = None, aliases: tuple[str, ...] = (), metavar: str | None = None,
           choices: tuple[str, ...] | None = None) -> Any:
    """A config field and what its command-line option says: ``help``, the ``flag`` when it
    is not the field's name, more ``aliases``, and ``choices``. The CLI generates its options
    from these (``rossmann_embed.arguments``), so a default is stated once, here."""
    metadata = {"help": help, "flag": flag, "aliases": aliases, "metavar": metavar,
                "choices": choices}
    return field(default=default, default_factory=factory, metadata=metadata)


def stream_option(what: str) -> Any:
    """The ``--stream`` / ``--no-stream`` option of a command that trains on ``what``."""
    return option(None, f"stream {what} from parquet row groups (bounded memory, each process "
                  "its own groups) or hold it in memory; unset: stream when it would hold more "
                  "than 100 million cells")


@dataclass
class NetworkConfig:
    """The model and how Lightning trains it. The defaults are the product's default model."""

    epochs: int | None = option(
        None, "training epochs at most (early stopping may end sooner); unset: enough for "
        f"{MIN_STEPS:,} optimizer steps ({MIN_EPOCHS} to {MAX_EPOCHS})")
    batch_size: int | None = option(
        None, f"rows a step; unset: from {MIN_BATCH_SIZE} to {DEFAULT_BATCH_SIZE} as the "
        "table grows")
    learning_rate: float = option(3e-3, "peak of the one-cycle schedule", aliases=("--lr",))
    weight_decay: float = option(1e-5, "AdamW's")
    loss: str = option("mse", "loss of the target as the network sees it", choices=LOSSES)
    seed: int = option(0, "seed of the first member")
    seeds: int = option(1, "train a seed ensemble of this many members: seed, seed + 1, ...")
    embedding_sizes: dict[str, int] = option(
        factory=dict, flag="embedding-size", metavar="COLUMN=SIZE",
        help="override one column's embedding size (repeatable)")
    hidden_sizes: list[int] = option(factory=lambda: [256, 256], metavar="1000,500",
                                     help="widths of the MLP's hidden layers")
    dropout: list[float] = option(  # costly on CPU, little gain
        factory=lambda: [0.0, 0.0], metavar="0.001,0.01",
        help="dropout of each hidden layer (one rate: every layer)")
    embedding_dropout: float = option(0.04, "dropout of the embedded columns")
    batch_norm: bool = option(False, "batch normalisation after each hidden layer")
    ensemble_size: int = option(
        8, "members of the TabM ensemble that share weights inside one network (1: plain MLP)")
    numerical_embedding: str = option(
        "piecewise", "how continuous columns enter the network: embedded piecewise-linearly "
        "(bins: training quantiles), periodically (RealMLP's PBLD) or as one number each",
        choices=NUMERICAL_EMBEDDINGS)
    continuous_scaling: str = option(
        "quantile", "quantile: through training quantiles onto a normal (robust to outliers "
        "and skew); standard: mean and standard deviation", choices=SCALINGS)
    numerical_bins: int = option(48, "bins of the piecewise-linear embedding")
    numerical_embedding_size: int = option(16, "width of each continuous column's embedding")
    factorization: list[list[str]] = option(
        factory=list, metavar="A,B",
        help="add the dot product of two columns' embeddings (same --embedding-size) plus "
        "per-category biases and a global bias, as collaborative filtering (repeatable)")
    mlp: bool = option(True, "--no-mlp: the factorization alone")
    # RMSE in the target's own units is what a table of one's own is judged by, whatever the
    # transform the network learns in; Rossmann follows Kaggle's RMSPE.
    monitor: str = option("val_rmse", "validation score for early stopping and the best "
                          "checkpoint (whose weights a run predicts with)",
                          choices=MONITORS)
    patience: int | None = option(
        None, "epochs without a better validation score before stopping; unset: a quarter "
        "of the epochs, at least 5")
    accelerator: str = option("auto", "Lightning's")
    devices: str = option("auto", "Lightning's")
    strategy: str = option("auto", "Lightning's")
    precision: str = option("32-true", "Lightning's")
    logger: str = option("csv", "Lightning logger under RUN/logs (a CSV log is always kept)",
                         choices=LOGGERS)
    num_nodes: int = option(1, "Lightning's: machines the run trains on (torchrun --nnodes, "
                            "SLURM's nodes)")
    loader_workers: int = option(0, "data-loader worker processes of a streamed table "
                                 "(each reads its own row groups)")

    def check(self) -> None:
        """Raise ``OptionError`` for the first option outside what is allowed."""
        for name in ("seeds", "ensemble_size", "numerical_embedding_size", "num_nodes"):
            require(self, name, _is_int(getattr(self, name)) and getattr(self, name) >= 1,
                     "a whole number of at least 1")
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            require(self, name, value is None or _is_int(value) and value >= 1,
                    "a whole number of at least 1")
        require(self, "loader_workers", _is_int(self.loader_workers) and self.loader_workers >= 0,
                "a whole number >= 0")
        require(self, "numerical_bins", _is_int(self.numerical_bins)
                and self.numerical_bins >= 2, "a whole number of at least 2")
        require(self, "monitor", self.monitor in MONITORS, f"one of {', '.join(MONITORS)}")
        require(self, "continuous_scaling", self.continuous_scaling in SCALINGS,
                f"one of {', '.join(SCALINGS)}")
        require(self, "numerical_embedding", self.numerical_embedding in NUMERICAL_EMBEDDINGS,
                f"one of {', '.join(NUMERICAL_EMBEDDINGS)}")
        require(self, "seed", _is_int(self.seed) and self.seed >= 0, "a whole number >= 0")
        require(self, "learning_rate", _is_number(self.learning_rate) and self.learning_rate > 0,
                 "a finite number > 0")
        require(self, "weight_decay", _is_number(self.weight_decay) and self.weight_decay >= 0,
                 "a finite number >= 0")
        require(self, "loss", self.loss in LOSSES, f"one of {', '.join(LOSSES)}")
        widths = _is_list(self.hidden_sizes) and bool(self.hidden_sizes) and all(
            _is_int(h) and h >= 1 for h in self.hidden_sizes)
        require(self, "hidden_sizes", widths, "widths of at least 1, like 1000,500")
        require(self, "dropout", _is_list(self.dropout) and bool(self.dropout) and all(
            _is_number(p) and 0 <= p < 1 for p in self.dropout), "rates in [0, 1)")
        require(self, "dropout", len(self.dropout) == len(self.hidden_sizes),
                 f"one rate per hidden layer ({len(self.hidden_sizes)})")
        require(self, "embedding_dropout", _is_number(self.embedding_dropout)
                 and 0 <= self.embedding_dropout < 1, "a rate in [0, 1)")
        require(self, "embedding_sizes", isinstance(self.embedding_sizes, dict) and all(
            _is_int(v) and v >= 1 for v in self.embedding_sizes.values()),
                 "sizes of at least 1, like Store=50")
        require(self, "factorization", _is_list(self.factorization) and all(
            _is_list(p) and len(p) == 2 and p[0] != p[1] for p in self.factorization),
                 "pairs of two different columns, like user,movie")
        require(self, "mlp", self.mlp is not False or bool(self.factorization),
                 "on unless factorization pairs are given (nothing would predict)")
        require(self, "logger", self.logger in LOGGERS, f"one of {', '.join(LOGGERS)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[Config], data: dict[str, Any]) -> Config:
        """A config of the options in ``data`` (the rest at their defaults); one dropout rate
        stands for every hidden layer (``per_layer_dropout``)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError.at("config", f"one of {sorted(known)}", column=unknown[0])
        missing = [f.name for f in fields(cls) if f.name not in data
                   and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise InputError.at("config", f"a value for {', '.join(missing)}")
        config = cls(**data)
        if isinstance(config.dropout, list) and isinstance(config.hidden_sizes, list):
            config.dropout = per_layer_dropout(config.dropout, len(config.hidden_sizes))
        return config

    def save(self, path: Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls: type[Config], path: Path) -> Config:
        """Read a JSON or YAML configuration file."""
        return cls.from_dict(read_settings(path))


@dataclass(kw_only=True)
class FitConfig(NetworkConfig):
    """Everything that decides a ``fit`` run: the table, its target, the columns' roles, the
    validation split, and the network and Trainer options."""

    table: str = option(help="CSV or parquet file to learn from")
    target: str = option(help="the numeric column to predict")
    out: str = option(help="run directory to write")
    categorical: list[str] = option(factory=list, metavar="A,B", help="columns to embed "
                                    "(the others' roles are inferred and reported)")
    continuous: list[str] = option(factory=list, metavar="C,D", help="columns taken as numbers")
    drop: list[str] = option(factory=list, metavar="COLUMNS",
                             help="columns to leave out (ids, leaks)")
    time_column: str | None = option(None, "validation is the latest share of this column's "
                                     "span (unset: a seeded random share of the rows)")
    validation_fraction: float = option(0.1, "share held out for early stopping (0: none)",
                                        metavar="F")
    target_transform: str = option("auto", "auto: log1p for counts (whole numbers >= 0), "
                                   "else none", choices=("auto", *TARGET_TRANSFORMS))
    stream: bool | None = stream_option("the table")

    def check(self) -> None:
        """The core's checks, then the split's (``OptionError`` for the first)."""
        super().check()
        require(self, "validation_fraction", _is_number(self.validation_fraction)
                and 0 <= self.validation_fraction < 1, "a share in [0, 1)")
        require(self, "target_transform", self.target_transform in ("auto", *TARGET_TRANSFORMS),
                f"'auto' or one of {', '.join(TARGET_TRANSFORMS)}")


@dataclass(frozen=True)
class Budget:
    """How long a run trains: rows a step, epochs, and epochs without improvement before
    early stopping."""

    batch_size: int
    epochs: int
    patience: int

    def steps(self, rows: int) -> int:
        """Optimizer steps of the whole budget on ``rows`` training rows."""
        return self.epochs * math.ceil(rows / self.batch_size)


def auto_budget(config: NetworkConfig, rows: int) -> Budget:
    """The config's batch size, epochs and patience, each chosen from the number of training
    rows where the config leaves it None: a 5,000-row table gets batches of 256 and 100 epochs
    (2,000 steps), Rossmann's 800,000 rows batches of 2048."""
    batch = config.batch_size
    if batch is None:
        power = 2 ** max(0, math.floor(math.log2(max(1, rows) / ROWS_PER_BATCH_ROW)))
        batch = min(DEFAULT_BATCH_SIZE, max(MIN_BATCH_SIZE, power))
    epochs = config.epochs
    if epochs is None:
        per_epoch = math.ceil(max(1, rows) / batch)
        epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(MIN_STEPS / per_epoch)))
    patience = config.patience if config.patience is not None else max(5, epochs // 4)
    return Budget(batch, epochs, patience)


def network_of(config: NetworkConfig) -> NetworkConfig:
    """The network's and the Trainer's options alone, of any command's config (a copy)."""
    return NetworkConfig(**copy.deepcopy(
        {f.name: getattr(config, f.name) for f in fields(NetworkConfig)}))


def per_layer_dropout(dropout: list[float], n_layers: int) -> list[float]:
    """One rate (or the same rate for every layer) for however many hidden layers there are;
    a list of different rates is kept as it is (``check`` wants one per layer)."""
    same = bool(dropout) and all(p == dropout[0] for p in dropout)  # no hashing: any values
    return dropout[:1] * n_layers if same else dropout


def require(config: Any, name: str, ok: bool, expected: str) -> None:
    """``OptionError`` for ``config.name`` unless ``ok``."""
    if not ok:
        raise OptionError(name, getattr(config, name), expected)


def is_whole(value: Any, least: int) -> bool:
    """Whether ``value`` is a whole number (not a bool) of at least ``least``."""
    return _is_int(value) and value >= least


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def read_settings(path: Path) -> dict[str, Any]:
    """The key-value pairs of a JSON or YAML configuration file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        first = first_line(error) or type(error).__name__
        raise InputError.at(str(path), f"a readable JSON or YAML file of settings ({first})",
                            ) from None
    if not isinstance(data, dict):
        raise InputError.at(str(path), "a mapping of option names to values",
                            value=type(data).__name__)
    return data
