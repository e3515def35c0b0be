"""LightGBM on Rossmann rows: the full-strength baseline, and the product's boosted half.

``lightgbm_features`` is the feature preparation that suits trees, the way Kaggle's Rossmann
competitors ran gradient boosting: calendar parts as numbers, the raw competition distance,
uncapped months of competition and weeks of Promo2, codes for the few string columns,
``Store`` as a LightGBM categorical, and days since / until state holidays, school holidays
and promos clipped at 30 / 14 days. The short "until" clip keeps the end of a forecast
period, where the next event lies beyond the data, from looking different from its start.
It is computed row by row from ``features.build_features``' columns, so any feature rows
(training, validation, a test file) get it the same way.

``LightGBMForecaster`` learns log1p(Sales). Its number of rounds is picked by early stopping
on RMSPE over the last ``inner_days`` days of its rows, then it is refit on all of them with
that number (or it is given ``fixed_rounds``). With no ``extra`` columns and
``LIGHTGBM_PARAMS`` (tuned over the backtest's windows by ``scripts/tune_lightgbm.py``) it is
the baseline every accuracy claim is measured against (``backtest``,
``scripts/benchmark.py``); with the network's learned store factors as ``extra`` columns,
``BOOSTED_PARAMS`` and ``BOOSTED_ROUNDS`` it is the boosted half of the product's forecaster
(``pipeline.fit``), whose settings the backtest kept (see ``BOOSTED_PARAMS``).
A fitted forecaster saves as LightGBM's own text model plus JSON: no pickles.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from rossmann_embed.rossmann.kaggle_files import PROMO_INTERVALS, SCHEMAS, STATE_HOLIDAYS
from rossmann_embed.rossmann.levels import RMSPE_SHIFT
from rossmann_embed.rossmann.states import german_states
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.files import atomic_write, write_csv, write_json
from rossmann_embed.tabular.metrics import rmspe

SINCE_CAP_DAYS = 30
UNTIL_CAP_DAYS = 14
EVENTS = ["StateHoliday", "SchoolHoliday", "Promo"]
LIGHTGBM_FEATURES = [
    "Store", "DayOfWeek", "Day", "Month", "Year", "WeekOfYear", "DayOfYear", "Promo",
    "StateHoliday", "SchoolHoliday", "StoreType", "Assortment", "CompetitionDistance",
    "CompetitionMonths", "CompetitionOpen", "Promo2", "Promo2Active", "Promo2WeeksSince",
    "PromoInterval", "State", "DaysFromEaster",
    *[f"Days{side}{event}" for event in EVENTS for side in ("Since", "Until")],
]
# The feature-row columns ``lightgbm_features`` reads.
LIGHTGBM_INPUTS = [
    "Store", "DayOfWeek", "Day", "Month", "Year", "WeekOfYear", "DayOfYear", "Promo",
    "StateHoliday", "SchoolHoliday", "StoreType", "Assortment", "CompetitionDistance",
    "CompetitionOpenSinceYear", "CompetitionOpenSinceMonth", "Promo2", "Promo2Active",
    "Promo2SinceYear", "Promo2SinceWeek", "PromoInterval", "State", "DaysFromEaster",
    *[f"Days{side}{event}" for event in EVENTS for side in ("Since", "Until")],
]
FALLBACK_ROUNDS = 100  # a history shorter than the early-stopping window cannot pick them
MIN_ROWS = 100  # fewer rows than two leaves' minimum: LightGBM cannot grow a tree
# Public Rossmann practice (the tuned LightGBM); the rounds come from early stopping.
PUBLIC_PARAMS = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 127,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "verbose": -1,
    "seed": 0,
}
# The baseline's settings: the public ones with the change that scripts/tune_lightgbm.py chose
# over the backtest's three windows, 63 leaves (docs/decisions.md).
LIGHTGBM_PARAMS = {**PUBLIC_PARAMS, "num_leaves": 63}
# The boosted half's settings: the baseline's; at fixed rounds they forecast as well as 127
# leaves in 2/3 of the time (docs/decisions.md).
BOOSTED_PARAMS = LIGHTGBM_PARAMS
# The boosted half's rounds, fixed: the same forecast as early stopping in half the time, since
# no fit on all but the last 48 days is needed before the refit (docs/decisions.md).
BOOSTED_ROUNDS = 3500
# Two boosters of different bagging seeds, averaged: better in every backtest window, for a
# second fit's time (docs/decisions.md).
BOOSTED_BAGS = 2


def lightgbm_features(rows: pl.DataFrame) -> pl.DataFrame:
    """``LIGHTGBM_FEATURES``, all numeric, for feature rows of ``features.build_features``
    (one output row per input row, in order)."""
    codes = {
        "StateHoliday": STATE_HOLIDAYS,
        "StoreType": list(SCHEMAS["store.csv"]["StoreType"].allowed),
        "Assortment": list(SCHEMAS["store.csv"]["Assortment"].allowed),
        "PromoInterval": ["none", *PROMO_INTERVALS],
        "State": german_states().get_column("code").to_list(),
    }
    opened = pl.col("CompetitionOpenSinceYear") > 0  # build_features writes -1 for unknown
    months = (pl.col("Year") - pl.col("CompetitionOpenSinceYear")) * 12 + (
        pl.col("Month") - pl.col("CompetitionOpenSinceMonth"))
    promo2_weeks = (pl.col("Year") - pl.col("Promo2SinceYear")) * 52 + (
        pl.col("WeekOfYear") - pl.col("Promo2SinceWeek"))
    # build_features' distances are capped at 60 and unknown (null) where the data ends
    # before the next event. "Since" unknown (a store's first days) is "long ago"; "until"
    # unknown stays missing, which LightGBM learns from rows whose data end is hidden.
    distances = {
        **{f"DaysSince{e}": pl.col(f"DaysSince{e}").clip(0, SINCE_CAP_DAYS)
           .fill_null(SINCE_CAP_DAYS) for e in EVENTS},
        **{f"DaysUntil{e}": pl.col(f"DaysUntil{e}").clip(0, UNTIL_CAP_DAYS) for e in EVENTS},
    }
    return rows.select(
        *[pl.col(c).replace_strict(values, list(range(len(values))), default=None)
          for c, values in codes.items()],
        *[c for c in ("Store", "DayOfWeek", "Day", "Month", "Year", "WeekOfYear", "DayOfYear",
                      "Promo", "SchoolHoliday", "CompetitionDistance", "Promo2",
                      "Promo2Active", "DaysFromEaster")],
        CompetitionMonths=pl.when(opened).then(months),
        CompetitionOpen=pl.when(opened).then(months >= 0).cast(pl.Int8),
        Promo2WeeksSince=pl.when(pl.col("Promo2") == 1).then(promo2_weeks),
        **distances,
    ).select(LIGHTGBM_FEATURES)


@dataclass
class LightGBMForecaster:
    """LightGBM of log1p(Sales) on ``lightgbm_features`` plus optional ``extra`` numeric
    columns; rounds by early stopping on the last ``inner_days`` days, then a refit on all.

    ``fit`` takes model rows (open days with Sales > 0) of ``features.build_features``;
    ``predict`` returns sales for any feature rows. With ``fixed_rounds``, ``fit`` trains
    that many rounds on all rows, without early stopping.
    """

    params: dict = field(default_factory=lambda: dict(LIGHTGBM_PARAMS))
    inner_days: int = 48
    # Share of rows whose look-ahead features are cut as at the end of a forecast period
    # (features.hide_future): the last days of every window to predict have an unknown
    # "days until"; without it those days were predicted 8% too high (shared data).
    hide_future: float = 0.5
    # What early stopping watches: "rmspe" (Kaggle's score) or "l2" (of log1p, the objective).
    stop_metric: str = "rmspe"
    max_rounds: int = 5000
    # Rounds without a better inner RMSPE before stopping. 300, not 100: the inner days can be
    # unusual, and 100 stopped too early there (docs/decisions.md).
    patience: int = 300
    fixed_rounds: int | None = None  # rounds without early stopping (the boosted half's)
    bags: int = 1  # boosters averaged in log space, with bagging seeds seed, seed + 1, ...
    threads: int = 0  # 0: every core
    extra: list[str] = field(default_factory=list)
    rounds_: int | None = None
    inner_score_: float | None = None
    seconds_: float | None = None

    def fit(self, rows: pl.DataFrame) -> LightGBMForecaster:
        """Early stopping on the last ``inner_days`` days of ``rows`` (unless ``fixed_rounds``),
        then a fit on all of them with that many rounds."""
        import lightgbm as lgb

        from rossmann_embed.rossmann.features import hide_future

        start = time.perf_counter()
        rows = hide_future(rows, self.hide_future, int(self.params.get("seed", 0)))
        if self.fixed_rounds is not None:
            self.rounds_, self.inner_score_ = self.fixed_rounds, None
        else:
            self.rounds_, self.inner_score_ = self._stop_early(rows)
        dataset = self._dataset(rows)
        seed = int(self.params.get("seed", 0))
        self.boosters_ = [lgb.train({**self._params(), "seed": seed + i}, dataset,
                                    num_boost_round=self.rounds_) for i in range(self.bags)]
        self.seconds_ = time.perf_counter() - start
        return self

    def _stop_early(self, rows: pl.DataFrame) -> tuple[int, float | None]:
        """The best number of rounds on the last ``inner_days`` days, and its inner score."""
        import lightgbm as lgb

        last = rows.get_column("Date").max()
        inner = pl.col("Date") > pl.lit(last) - pl.duration(days=self.inner_days)
        before, inner_rows = rows.filter(~inner), rows.filter(inner)
        if before.is_empty() or inner_rows.is_empty():  # too short a history to stop early
            return FALLBACK_ROUNDS, None
        history: dict = {}
        booster = lgb.train(
            self._params(), self._dataset(before), num_boost_round=self.max_rounds,
            valid_sets=[self._dataset(inner_rows)],
            feval=_rmspe_of_log1p if self.stop_metric == "rmspe" else None,
            callbacks=[lgb.early_stopping(self.patience, verbose=False),
                       lgb.record_evaluation(history)],
        )
        rounds = booster.best_iteration or booster.current_iteration()
        return rounds, float(history["valid_0"][self.stop_metric][rounds - 1])

    def predict_log(self, rows: pl.DataFrame) -> np.ndarray:
        """log(Sales) of ``rows`` (the same space as the network's predictions)."""
        return np.log(np.maximum(self.predict(rows), 1.0))  # sales below 1 are 1

    def predict(self, rows: pl.DataFrame) -> np.ndarray:
        """Sales of ``rows``."""
        matrix = self._matrix(rows)
        return np.expm1(np.mean([b.predict(matrix) for b in self.boosters_], axis=0))

    def save(self, directory: Path) -> None:
        """``model.txt`` (LightGBM's text format; ``model-2.txt`` .. for further bags) and
        ``settings.json``, each atomically."""
        for i, booster in enumerate(self.boosters_):
            atomic_write(directory / _model_file(i), booster.save_model)
        write_json(directory / "settings.json", {
            "params": self.params, "inner_days": self.inner_days,
            "hide_future": self.hide_future, "extra": self.extra,
            "stop_metric": self.stop_metric, "patience": self.patience,
            "fixed_rounds": self.fixed_rounds, "bags": self.bags, "rounds": self.rounds_,
            "inner_score": self.inner_score_, "seconds": self.seconds_,
        })

    @classmethod
    def load(cls, directory: Path) -> LightGBMForecaster:
        """A forecaster saved by ``save`` (LightGBM parses its text model: no pickles)."""
        import lightgbm as lgb

        settings = json.loads((directory / "settings.json").read_text())
        forecaster = cls(params=settings["params"], inner_days=settings["inner_days"],
                         hide_future=settings["hide_future"], extra=settings["extra"],
                         stop_metric=settings["stop_metric"],
                         patience=settings.get("patience", cls.patience),
                         fixed_rounds=settings.get("fixed_rounds"),
                         bags=settings.get("bags", 1),
                         rounds_=settings["rounds"],
                         inner_score_=settings["inner_score"], seconds_=settings["seconds"])
        trained_on = trained_features(directory)
        if trained_on != forecaster.features:  # a run of an earlier version's features
            lacks = sorted(set(forecaster.features) - set(trained_on))
            differs = f"without {lacks[0]!r}" if lacks else "on other features"
            raise InputError.at(str(directory), "a LightGBM trained on this version's features "
                                f"(this one was trained {differs}: retrain the run)")
        forecaster.boosters_ = [lgb.Booster(model_file=str(directory / _model_file(i)))
                                for i in range(forecaster.bags)]
        return forecaster

    @property
    def features(self) -> list[str]:
        return [*LIGHTGBM_FEATURES, *self.extra]

    def _params(self) -> dict:
        threads = self.threads or os.cpu_count() or 2
        metric = "None" if self.stop_metric == "rmspe" else self.stop_metric
        return {**self.params, "num_threads": threads, "metric": metric}

    def _matrix(self, rows: pl.DataFrame) -> np.ndarray:
        extra = rows.select(self.extra) if self.extra else None
        frame = lightgbm_features(rows)
        if extra is not None:
            frame = frame.hstack(extra)
        return frame.cast(pl.Float64).to_numpy()

    def _dataset(self, rows: pl.DataFrame):
        import lightgbm as lgb

        return lgb.Dataset(self._matrix(rows), np.log1p(rows.get_column("Sales").to_numpy()),
                           feature_name=self.features, categorical_feature=["Store"],
                           free_raw_data=True)


def _model_file(bag: int) -> str:
    return "model.txt" if bag == 0 else f"model-{bag + 1}.txt"


def _rmspe_of_log1p(predicted: np.ndarray, data) -> tuple[str, float, bool]:
    return "rmspe", rmspe(np.expm1(data.get_label()), np.expm1(predicted)), False


# --- the boosted half of the product's forecaster ----------------------------------------------

FACTOR_PREFIX = "StoreFactor"


def store_factors(stores: list, weights: np.ndarray, k: int) -> pl.DataFrame:
    """Store, StoreFactor0 .. k-1: the first ``k`` principal components of the network's Store
    embedding (``weights`` row i + 1 is ``stores[i]``; row 0, the unknown store, is left out).

    Few columns, not the whole vector: LightGBM's time grows with its columns, and the
    leading components carry what the network learned to tell stores apart.
    """
    known = np.asarray(weights[1:], dtype=np.float64)
    centred = known - known.mean(axis=0)
    k = min(k, *centred.shape)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    factors = centred @ components[:k].T
    return pl.DataFrame({"Store": stores}).with_columns(
        pl.Series(f"{FACTOR_PREFIX}{i}", factors[:, i]) for i in range(k))


@dataclass
class Boosted:
    """LightGBM fed with the network's learned store factors, blended with the network: the
    forecast is ``(1 - weight) * network + weight * lightgbm`` in log space, lowered for RMSPE
    by ``RMSPE_SHIFT`` times the two halves' spread (``blend``)."""

    forecaster: LightGBMForecaster
    factors: pl.DataFrame  # Store, StoreFactor0 ..
    weight: float
    factors_requested: int = 8  # may exceed the columns of a narrow Store embedding

    @classmethod
    def fit(cls, rows: pl.DataFrame, factors: pl.DataFrame, weight: float,
            hide_future: float = 0.5, factors_requested: int = 8) -> Boosted:
        """Fit on model rows (the network's training rows before it hides their future)."""
        extra = [c for c in factors.columns if c != "Store"]
        forecaster = LightGBMForecaster(params=dict(BOOSTED_PARAMS), extra=extra,
                                        hide_future=hide_future, fixed_rounds=BOOSTED_ROUNDS,
                                        bags=BOOSTED_BAGS)
        forecaster.fit(_with_factors(rows, factors))
        return cls(forecaster, factors, weight, factors_requested)

    def predict_log(self, rows: pl.DataFrame) -> np.ndarray:
        """log(Sales) of any feature rows; a store without factors gets missing ones."""
        return self.forecaster.predict_log(_with_factors(rows, self.factors))

    def blend(self, network_log: np.ndarray, lightgbm_log: np.ndarray) -> np.ndarray:
        """The forecast in log space from the network's and this half's log predictions: their
        weighted mean, lowered by ``RMSPE_SHIFT`` times the variance of the two-point mixture
        they make (where the halves disagree, the forecast is less sure; ``levels``)."""
        w = self.weight
        spread = w * (1 - w) * (network_log - lightgbm_log) ** 2
        return (1 - w) * network_log + w * lightgbm_log - RMSPE_SHIFT * spread

    def save(self, directory: Path) -> None:
        self.forecaster.save(directory)
        write_csv(self.factors, directory / "store_factors.csv")
        write_json(directory / "blend.json", {
            "weight": self.weight, "store_factors": self.factors_requested,
            "hide_future": self.forecaster.hide_future})

    @staticmethod
    def saved_matches(directory: Path, weight: float, factors: int, hide_future: float) -> bool:
        """Whether ``directory`` holds a complete boosted half made with these settings."""
        if not (directory / "blend.json").is_file():
            return False
        settings = json.loads((directory / "settings.json").read_text())
        blend = json.loads((directory / "blend.json").read_text())
        return (settings["params"] == BOOSTED_PARAMS
                and trained_features(directory) == [*LIGHTGBM_FEATURES, *settings["extra"]]
                and settings.get("fixed_rounds") == BOOSTED_ROUNDS
                and settings.get("bags", 1) == BOOSTED_BAGS and blend == {
            "weight": weight, "store_factors": factors, "hide_future": hide_future})

    @classmethod
    def load(cls, directory: Path) -> Boosted:
        blend = json.loads((directory / "blend.json").read_text())
        factors = pl.read_csv(directory / "store_factors.csv")
        return cls(LightGBMForecaster.load(directory), factors, blend["weight"],
                   blend["store_factors"])


def trained_features(directory: Path) -> list[str]:
    """The feature names a saved forecaster's first booster was trained on (its text model's
    ``feature_names`` line)."""
    with open(directory / _model_file(0), encoding="utf-8") as model:
        for line in model:
            if line.startswith("feature_names="):
                return line.removeprefix("feature_names=").split()
    return []


def _with_factors(rows: pl.DataFrame, factors: pl.DataFrame) -> pl.DataFrame:
    return rows.join(factors.with_columns(pl.col("Store").cast(rows.schema["Store"])),
                     on="Store", how="left", maintain_order="left")
