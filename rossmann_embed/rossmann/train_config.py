"""The Rossmann training run: the core's network options plus where the data is and what it adds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rossmann_embed.rossmann.feature_groups import (
    FEATURE_GROUPS,
    FEATURE_SETS,
    PAPER_EMBEDDING_SIZES,
    PAPER_FEATURES,
)
from rossmann_embed.tabular.config import (
    DEFAULT_BATCH_SIZE,
    NetworkConfig,
    OptionError,
    is_whole,
    option,
    require,
    stream_option,
)
from rossmann_embed.tabular.errors import InputError

# `--features paper` trains the paper's network as its authors did (MAE of log sales, a peak
# learning rate of 0.03, no dropout; the network alone) with the paper's embedding sizes, in
# the product's batches of 2048 (the paper's 512 take longer on a CPU; both learned the map).
# It is the setting whose State embedding learns the map (docs/decisions.md).
# Its 10 epochs are those its map was measured with.
# It pins the network its map was measured with (one plain MLP of 1000 and 500 units, any
# continuous column as one number).
PAPER_RECIPE: dict[str, Any] = {"loss": "mae", "learning_rate": 0.03, "embedding_dropout": 0.0,
                                "lightgbm_weight": 0.0, "epochs": 10, "ensemble_size": 1,
                                "hidden_sizes": [1000, 500], "dropout": [0.0, 0.0],
                                "numerical_embedding": "none", "level_days": 0}


@dataclass(kw_only=True)
class TrainConfig(NetworkConfig):
    """Everything that decides a ``train`` run. The defaults are the product's default model."""

    data_dir: str = option(help="folder with Kaggle's Rossmann files")
    out: str = option(help="run directory to write")
    # 8 epochs, not 10, for time: the default backtest within 45 minutes on 2 cores
    # (docs/decisions.md).
    epochs: int | None = 8
    batch_size: int | None = DEFAULT_BATCH_SIZE  # what the recipe was measured with
    # Rossmann: one 1000 x 500 MLP (the TabM ensemble did not beat it on the backtest and took
    # 40% longer an epoch), standardised continuous columns (quantile scaling cost the demo's
    # map), each embedded piecewise-linearly: on the backtest the network alone went from
    # 0.1094 to 0.1037 (the tuned LightGBM: 0.1025; docs/decisions.md).
    hidden_sizes: list[int] = field(default_factory=lambda: [1000, 500])
    ensemble_size: int = 1
    numerical_embedding: str = "piecewise"
    continuous_scaling: str = "standard"
    monitor: str = "val_rmspe"  # Kaggle's score
    validation_days: int = option(48, "the last N days are validation; 0 trains on everything "
                                  "(a final Kaggle model)")
    hide_future: float = option(
        0.5, "share of training rows whose look-ahead features are cut as if the data ended "
        "0-59 days later, as it does for the days one predicts", metavar="FRACTION")
    # 56 days, the whole residual (and a weekday's beyond it, shrunk): the best of 28/56/91/182
    # days and shares 0.5/1 on the backtest's windows, two seeds (docs/decisions.md).
    level_days: int = option(
        56, "add to the network's forecast each store's mean log residual over its last N "
        "training days, the level it still misses, and its weekdays' beyond it; lower every "
        "part of the forecast by 1.5 times the variance beyond that level, for RMSPE (0: "
        "neither)",
        metavar="DAYS")
    weather: bool = option(True, "the weather of the store's state")
    # Google trends off: the backtest was worse with them (docs/decisions.md).
    trends: bool = option(False, "Google Trends of Rossmann, per state")
    # 0.5: the middle of the backtest's flat best range since the network caught up with
    # LightGBM (docs/decisions.md).
    lightgbm_weight: float = option(
        0.5, "share of LightGBM fed with the learned store factors (the boosted half) in "
        "the log-space forecast (0: the network alone)", metavar="SHARE")
    store_factors: int = option(8, "principal components of the Store embedding LightGBM gets")
    features: str = option(
        "full", "full: every feature; paper: the paper's seven (" + ", ".join(PAPER_FEATURES)
        + ") with the paper's embedding sizes and recipe (MAE, lr 0.03, no dropout, network "
        "alone) for every option not typed: the model whose State embedding learns the map",
        choices=FEATURE_SETS)
    drop_features: list[str] = option(
        factory=list, metavar="GROUP[,GROUP...]",
        help="feature groups to leave out: " + ", ".join(FEATURE_GROUPS)
        + " (the network's; the boosted half keeps its own)")
    stream: bool | None = stream_option("the feature table")
    train_rows: int | None = option(
        None, "train on a random sample (drawn with --seed) of N rows of the training period "
        "(unset: every row); for studies that train many networks", metavar="N")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A config of the options in ``data``; with ``features: paper``, the paper's recipe
        (``PAPER_RECIPE``, ``PAPER_EMBEDDING_SIZES``) for every option ``data`` leaves out."""
        groups, given = data.get("drop_features") or [], data.get("embedding_sizes") or {}
        # Values of the wrong type are left for check() to name.
        usable = isinstance(groups, list) and isinstance(given, dict)
        if data.get("features") == "paper" and usable:
            dropped = {c for g in groups if isinstance(g, str) for c in FEATURE_GROUPS.get(g, [])}
            sizes = {c: n for c, n in PAPER_EMBEDDING_SIZES.items()
                     if c in PAPER_FEATURES and c not in dropped}
            data = {**PAPER_RECIPE, **data, "embedding_sizes": {**sizes, **given}}
        return super().from_dict(data)

    def check(self) -> None:
        """The core's checks, then the Rossmann options' (``OptionError`` for the first)."""
        super().check()
        require(self, "validation_days", isinstance(self.validation_days, int)
                and self.validation_days >= 0, "a whole number of days >= 0 (0: no validation)")
        require(self, "level_days", is_whole(self.level_days, 0), "a whole number of days >= 0")
        for share in ("hide_future", "lightgbm_weight"):
            value = getattr(self, share)
            require(self, share, isinstance(value, int | float) and 0 <= value <= 1,
                    "a share between 0 and 1")
        require(self, "features", self.features in FEATURE_SETS,
                f"one of {', '.join(FEATURE_SETS)}")
        require(self, "drop_features", isinstance(self.drop_features, list) and all(
            g in FEATURE_GROUPS for g in self.drop_features),
            f"groups among {', '.join(FEATURE_GROUPS)}")
        require(self, "train_rows", self.train_rows is None or isinstance(self.train_rows, int)
                and not isinstance(self.train_rows, bool) and self.train_rows >= 1,
                "a whole number of at least 1 (or null: every row)")
        require(self, "store_factors", isinstance(self.store_factors, int)
                and self.store_factors >= 1, "a whole number of at least 1")


# Settings of `compare` and the networks' peak learning rate in each (comparison's docstring).
COMPARE_SETTINGS = ("paper", "full")
LEARNING_RATES = {"paper": 3e-2, "full": 3e-3}


@dataclass
class CompareOptions:
    """What ``compare`` runs; the defaults are the paper's setting."""

    data_dir: str = option(help="folder with Kaggle's Rossmann files")
    out: str = option(help="folder for comparison.{md,csv,png,json}")
    setting: str = option("paper", "paper: the paper's 7 features; full: every feature; both",
                          choices=(*COMPARE_SETTINGS, "both"))
    train_rows: int = option(200_000, "training rows sampled from the days before the test days")
    test_fraction: float = option(0.1, "the latest share of the days, as test")
    epochs: int = option(10, "epochs of both networks")
    batch_size: int = option(512, "rows a step of both networks")
    learning_rate: float | None = option(
        None, "peak of the networks' one-cycle schedule (unset: paper 0.03, full 0.003)",
        aliases=("--lr",))
    knn_test_rows: int = option(10_000, "test rows k-NN predicts (a seeded sample; 0: all)")
    hide_future: float = option(0.5, "share of training rows that see the data end within 60 "
                                "days, as in `train`", metavar="FRACTION")
    lightgbm: bool = option(True, "also LightGBM, when installed")
    seed: int = option(0, "seed of the sample and the networks")

    def network_learning_rate(self, setting: str) -> float:
        """The peak learning rate of the networks in ``setting``."""
        return LEARNING_RATES[setting] if self.learning_rate is None else self.learning_rate

    def settings(self) -> list[str]:
        """The settings to run, in order."""
        return list(COMPARE_SETTINGS) if self.setting == "both" else [self.setting]

    def check(self) -> None:
        """``OptionError`` for the first option outside what is allowed."""
        require(self, "setting", self.setting in (*COMPARE_SETTINGS, "both"),
                "paper, full or both")
        for name in ("train_rows", "epochs", "batch_size"):
            require(self, name, is_whole(getattr(self, name), 1), "a whole number of at least 1")
        require(self, "knn_test_rows", is_whole(self.knn_test_rows, 0), "a whole number >= 0")
        require(self, "test_fraction", 0 < self.test_fraction < 1, "a share in (0, 1)")
        require(self, "hide_future", 0 <= self.hide_future <= 1, "a share between 0 and 1")


@dataclass
class BacktestOptions:
    """What ``backtest`` runs: the windows, and the network's training configuration."""

    data_dir: str = option(help="folder with Kaggle's Rossmann files")
    out: str = option(help="folder for backtest.{json,md,png} and the windows' cuts, runs and "
                      "predictions (a rerun continues)")
    windows: int = option(3, "the last HORIZON days, the HORIZON days before, the same season "
                          "a year earlier, then further back")
    horizon: int = option(48, "days per window (Kaggle's test.csv: 48)", metavar="DAYS")
    seeds: int = option(1, "seed ensemble of the network per window")
    network: dict = field(default_factory=dict)  # TrainConfig fields (a --config file)

    # What a window's run sets itself: a network setting of these is ignored.
    SET_BY_WINDOW = ("data_dir", "out", "validation_days", "seeds")

    def check(self) -> None:
        """``OptionError`` for the first option outside what is allowed; an ``InputError``
        naming the key for a network setting that ``train`` would refuse."""
        for name in ("windows", "horizon", "seeds"):
            require(self, name, is_whole(getattr(self, name), 1), "a whole number of at least 1")
        network = {k: v for k, v in self.network.items() if k not in self.SET_BY_WINDOW}
        try:
            TrainConfig.from_dict({**network, "data_dir": self.data_dir, "out": self.out}).check()
        except OptionError as error:
            raise InputError.at("--config", error.expected, column=error.option,
                                value=error.value) from None
        self.network = network
