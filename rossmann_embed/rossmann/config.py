"""The Rossmann training run: the core's network options plus where the data is and what it adds."""

from __future__ import annotations

from dataclasses import dataclass, field

from rossmann_embed.rossmann.feature_groups import FEATURE_GROUPS, FEATURE_SETS
from rossmann_embed.tabular.config import NetworkConfig, require


@dataclass(kw_only=True)
class TrainConfig(NetworkConfig):
    """Everything that decides a ``train`` run. The defaults are the product's default model."""

    data_dir: str
    out: str
    validation_days: int = 48  # 0 trains on everything (a final Kaggle model)
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
    features: str = "full"  # or "paper": the paper's seven features (features.PAPER_FEATURES)
    drop_features: list[str] = field(default_factory=list)  # features.FEATURE_GROUPS to leave out
    # A random sample (drawn with ``seed``) of this many training rows; None: all of them.
    # For studies that train many networks (geography-study); validation keeps every row.
    train_rows: int | None = None

    def check(self) -> None:
        """The core's checks, then the Rossmann options' (``OptionError`` for the first)."""
        super().check()
        require(self, "validation_days", isinstance(self.validation_days, int)
                and self.validation_days >= 0, "a whole number of days >= 0 (0: no validation)")
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
