"""Learned embeddings as features for other models: Guo & Berkhahn's comparison, reproduced.

The paper's central claim: entity embeddings learned by a network make other models much
better. On a time split (the latest 10% of days are the test set; 200,000 training rows
sampled from the days before), this module trains

- the entity-embedding network and the same network fed one-hot vectors, on the training
  rows only (so the embeddings never see a test day), and
- k-NN, a random forest and gradient boosting (scikit-learn's HistGradientBoostingRegressor,
  and LightGBM when installed) on (a) the categorical columns as integer codes (one-hot for
  k-NN, as in the paper) and (b) the embeddings of that network (``EmbeddingEncoder`` in a
  ``Pipeline``),

all on log-sales targets, and reports MAPE and RMSPE in sales space on the test rows (open
days with Sales > 0) as ``comparison.csv``, ``comparison.md`` (the paper's table beside ours),
``comparison.png`` and ``comparison.json`` (sizes, dates, options and run times).

Settings: ``paper`` uses the paper's seven features (store, day of week, day, month, year,
promo, state) and its embedding sizes; ``full`` uses the product's full feature set (every
categorical and continuous column of ``features.build_features``).

Choices, and why:

- The one-hot network is ``EntityEmbeddingNetwork`` with, per column, an embedding as wide
  as its cardinality, frozen to the identity: its concatenated "embeddings" are exactly the
  one-hot vectors, fed to the same MLP as the embedding network. Nothing else differs.
- Half of the training rows see the data end within 60 days (``features.hide_future``, as
  in ``train``): the test days come just before the data's end, where the full setting's
  look-ahead columns are often unknown. The paper's seven features have no such columns.
- k-NN predicts a seeded random subset of the test rows (``knn_test_rows``): on 200,000
  training rows a brute-force neighbour search costs ~3 ms a test row for embeddings and
  ~10 ms for sparse one-hot vectors on 2 cores. Both k-NN variants use the same subset.
- k-NN uses Euclidean distance (the paper: Manhattan), because scikit-learn computes
  Euclidean distances with matrix products; on one-hot vectors both give the same neighbours.
- The random forest is the paper's (depth 35, every feature at each split) with 20 trees
  instead of 200, to fit the time budget (on embeddings a tree takes ~2.5 s on 2 cores);
  gradient boosting runs 300 rounds. Every classic model has the same settings with and
  without embeddings, and none was tuned on the test days.
- The networks: the paper's sizes (1000, 500), embedding sizes and MAE of log sales, no
  dropout; embeddings start uniform in +-0.05 as in the paper's Keras code (PyTorch's N(0, 1)
  start stays visible after a few epochs and blurs k-NN distances). 10 epochs of batches of
  512 with a one-cycle schedule peaking at ``LEARNING_RATES`` of the setting (0.03 for the
  paper's, 0.003 for the full setting, where 0.03 saturated the sigmoid output; measured in
  docs/decisions.md). One network each (the paper averaged five).
"""

from __future__ import annotations

import importlib.util
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from sklearn.base import RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from rossmann_embed.rossmann.feature_groups import PAPER_EMBEDDING_SIZES, PAPER_FEATURES
from rossmann_embed.rossmann.features import build_features, hide_future, model_rows
from rossmann_embed.rossmann.kaggle_files import read_rossmann
from rossmann_embed.rossmann.studies.comparison_report import write_outputs
from rossmann_embed.rossmann.train_config import CompareOptions
from rossmann_embed.tabular.config import NetworkConfig
from rossmann_embed.tabular.data import InMemoryData
from rossmann_embed.tabular.embedding_encoder import EmbeddingEncoder
from rossmann_embed.tabular.encoding import ColumnSpec, EncodedTable, Preprocessor
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.metrics import mape, rmspe
from rossmann_embed.tabular.model import EntityEmbeddingNetwork, default_embedding_size
from rossmann_embed.tabular.run_directory import load_member
from rossmann_embed.tabular.trainer import train_members

N_JOBS = 2  # the machine the budget is set for; scikit-learn's -1 would also count busy cores

# Classic models: the paper's choices where the 20-minute budget allows (see module docstring).
KNN_NEIGHBOURS = 10
FOREST = {"n_estimators": 20, "max_depth": 35, "max_features": 1.0}
BOOSTING_ROUNDS = 300
BOOSTING = {"learning_rate": 0.1, "max_leaf_nodes": 63}
LIGHTGBM = {"learning_rate": 0.1, "num_leaves": 63, "subsample": 0.7, "subsample_freq": 1,
            "colsample_bytree": 0.7}
# The network of the paper: two hidden layers, sigmoid-bounded log output, MAE of log sales.
HIDDEN_SIZES = (1000, 500)
EMBEDDING_INIT = 0.05  # Keras' default uniform range, which the paper's embeddings started from
Y_RANGE_HEADROOM = 1.2


@dataclass
class Split:
    """Training rows (sampled from the days before the test days) and test rows."""

    train: pl.DataFrame
    test: pl.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


# --- data ----------------------------------------------------------------------------------------


def comparison_split(rows: pl.DataFrame, test_fraction: float, train_rows: int,
                     seed: int) -> Split:
    """The latest ``test_fraction`` of the days present are test; ``train_rows`` rows sampled
    (seeded, without replacement) from the earlier days are training."""
    if not 0 < test_fraction < 1:
        raise InputError.at("--test-fraction", "a number between 0 and 1", value=test_fraction)
    days = rows.get_column("Date").unique().sort()
    n_test = max(1, round(test_fraction * days.len()))
    if n_test >= days.len():
        raise InputError.at("train.csv", f"more than {n_test} days with sales for a time split",
                            column="Date", value=f"{days.len()} days")
    first_test = days[days.len() - n_test]
    earlier = rows.filter(pl.col("Date") < first_test)
    test = rows.filter(pl.col("Date") >= first_test)
    train = earlier.sample(n=min(train_rows, earlier.height), seed=seed)
    info = {
        "rows_before_test": earlier.height, "rows_train": train.height, "rows_test": test.height,
        "test_days": n_test, "test_from": str(first_test), "test_to": str(days[-1]),
        "train_from": str(earlier.get_column("Date").min()),
    }
    return Split(train, test, info)


def setting_spec(setting: str, full: ColumnSpec) -> ColumnSpec:
    """The columns of a setting: the paper's seven categorical features, or everything."""
    if setting == "paper":
        return ColumnSpec({c: full.categorical[c] for c in PAPER_FEATURES}, [], full.target)
    return full


def embedding_sizes(preprocessor: Preprocessor) -> dict[str, int]:
    """The paper's sizes for its seven columns, the product's rule of thumb for the others."""
    return {name: PAPER_EMBEDDING_SIZES.get(name, default_embedding_size(n))
            for name, n in preprocessor.cardinalities.items()}


def inputs_frame(frame: pl.DataFrame, tensors: EncodedTable,
                 preprocessor: Preprocessor) -> pl.DataFrame:
    """Categorical columns as they are (the encoder looks them up), continuous columns scaled
    as the network saw them (so k-NN distances weigh them like the embeddings)."""
    categorical = frame.select(list(preprocessor.vocabularies))
    if not preprocessor.spec.continuous:
        return categorical
    scaled = pl.DataFrame(tensors.continuous.numpy(), schema=preprocessor.spec.continuous,
                          orient="row")
    return pl.concat([categorical, scaled], how="horizontal")


def codes_matrix(tensors: EncodedTable) -> np.ndarray:
    """Category codes (vocabulary order, 0 = unknown) then scaled continuous columns."""
    return np.hstack([tensors.categorical.numpy(), tensors.continuous.numpy()]).astype(np.float32)


# --- networks ------------------------------------------------------------------------------------


def train_paper_network(preprocessor: Preprocessor, train: EncodedTable, options: CompareOptions,
                  learning_rate: float, *, one_hot: bool) -> EntityEmbeddingNetwork:
    """The paper's network on the training rows: learned embeddings, or frozen one-hot ones.
    Trained as every network is (``trainer.train_members``), in a run directory of its own
    that is removed once the trained member is loaded."""
    config = NetworkConfig(
        epochs=options.epochs, batch_size=options.batch_size, learning_rate=learning_rate,
        loss="mae", seed=options.seed, hidden_sizes=list(HIDDEN_SIZES), dropout=[0.0, 0.0],
        embedding_dropout=0.0, ensemble_size=1, numerical_embedding="none",
        embedding_sizes=dict(preprocessor.cardinalities) if one_hot
        else embedding_sizes(preprocessor), accelerator="cpu", devices="1")
    y_range = (0.0, Y_RANGE_HEADROOM * float(train.target.max()))
    start = PaperStart(float(train.target.mean()), one_hot)
    with tempfile.TemporaryDirectory(prefix="compare-network-") as run_dir:
        train_members(config, Path(run_dir), preprocessor, InMemoryData(train), y_range,
                      callbacks=[start], summary=False)
        return load_member(Path(run_dir) / "checkpoints" / f"seed-{options.seed}" / "best.ckpt")


class PaperStart(Callback):
    """The paper's start, before the optimiser is made: the output near the mean log target,
    and embeddings small (or one-hot and frozen)."""

    def __init__(self, mean_log: float, one_hot: bool) -> None:
        self.mean_log, self.one_hot = mean_log, one_hot

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        start_at_mean(pl_module, self.mean_log)
        if self.one_hot:
            freeze_one_hot(pl_module)
        else:
            start_small(pl_module)


def start_at_mean(model: EntityEmbeddingNetwork, mean_log: float) -> None:
    """Set the output bias so that the first predictions are near the mean log target.

    Otherwise the bounded output starts mid-range, far from typical sales, and the first
    large steps of a short run can push the sigmoid into saturation, where it stays.
    """
    lo, hi = model.hparams.y_range
    share = min(max((mean_log - lo) / (hi - lo), 1e-3), 1 - 1e-3)
    with torch.no_grad():
        model.mlp[-1].bias.fill_(math.log(share / (1 - share)))


def start_small(model: EntityEmbeddingNetwork, scale: float = EMBEDDING_INIT) -> None:
    """Start every embedding uniform in ``[-scale, scale]``, as the paper's Keras embeddings.

    PyTorch starts them N(0, 1): after a few epochs the vectors are still mostly that random
    start, which is all k-NN then measures. Starting small lets what is learned dominate.
    """
    with torch.no_grad():
        for embedding in model.embeddings.values():
            embedding.weight.uniform_(-scale, scale)


def freeze_one_hot(model: EntityEmbeddingNetwork) -> None:
    """Turn every (square) embedding into a fixed identity: a lookup becomes a one-hot vector."""
    with torch.no_grad():
        for embedding in model.embeddings.values():
            embedding.weight.copy_(torch.eye(embedding.num_embeddings))
            # No gradient: the optimiser skips it, and autograd skips the input gradient.
            embedding.weight.requires_grad_(False)


# --- classic models ------------------------------------------------------------------------------


def classic_models(options: CompareOptions) -> dict[str, Callable[[], RegressorMixin]]:
    """Fresh regressors by name; LightGBM only when installed and asked for."""
    models: dict[str, Callable[[], RegressorMixin]] = {
        "k-NN": lambda: KNeighborsRegressor(KNN_NEIGHBOURS, weights="distance",
                                            algorithm="brute", n_jobs=N_JOBS),
        "random forest": lambda: RandomForestRegressor(**FOREST, n_jobs=N_JOBS,
                                                       random_state=options.seed),
        "gradient boosting": lambda: HistGradientBoostingRegressor(
            max_iter=BOOSTING_ROUNDS, early_stopping=False, random_state=options.seed,
            **BOOSTING),
    }
    if options.lightgbm and importlib.util.find_spec("lightgbm") is not None:
        from lightgbm import LGBMRegressor

        # One thread: LightGBM shares torch's OpenMP runtime, whose idle threads spin, and
        # was many times slower on 2 threads with other work on the cores (docs/decisions.md).
        models["LightGBM"] = lambda: LGBMRegressor(
            n_estimators=BOOSTING_ROUNDS, n_jobs=1, random_state=options.seed, verbose=-1,
            **LIGHTGBM)
    return models


def one_hot_pipeline(regressor: RegressorMixin, n_categorical: int) -> Pipeline:
    """Sparse one-hot vectors of the codes (unknown codes: all zeros), continuous unchanged."""
    one_hot = ColumnTransformer(
        [("one-hot", OneHotEncoder(handle_unknown="ignore"), list(range(n_categorical)))],
        remainder="passthrough", sparse_threshold=1.0,
    )
    return make_pipeline(one_hot, regressor)


# --- one setting ---------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """Test sales and the rows every model is scored on; collects results and timings."""

    setting: str
    sales: np.ndarray
    knn_rows: np.ndarray  # indices of the test rows k-NN predicts
    results: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, dict[str, float]] = field(default_factory=dict)

    def record(self, model: str, features: str, predicted: np.ndarray, fit_seconds: float,
               predict_seconds: float, rows: np.ndarray | None = None) -> None:
        """Score predictions of the test rows (or of ``rows`` of them) in sales space."""
        sales = self.sales if rows is None else self.sales[rows]
        self.results.append({"setting": self.setting, "model": model, "features": features,
                             "mape": mape(sales, predicted), "rmspe": rmspe(sales, predicted)})
        self.timing[f"{model} ({features})"] = {
            "fit_seconds": round(fit_seconds, 2), "predict_seconds": round(predict_seconds, 2),
            "test_rows": int(len(sales)),
        }
        print(f"[{self.setting}] {model} ({features}): MAPE {self.results[-1]['mape']:.4f}, "
              f"RMSPE {self.results[-1]['rmspe']:.4f}, fit {fit_seconds:.1f} s, "
              f"predict {predict_seconds:.1f} s", flush=True)


def run_setting(setting: str, spec: ColumnSpec, split: Split,
                options: CompareOptions) -> Evaluation:
    """Both networks, then every classic model without and with the learned embeddings."""
    preprocessor = Preprocessor(spec).fit(split.train)
    train, test = preprocessor.transform(split.train), preprocessor.transform(split.test)
    y = train.target.numpy().astype(np.float64)
    sales = split.test.get_column(spec.target).to_numpy().astype(np.float64)
    rng = np.random.default_rng(options.seed)
    n_knn = options.knn_test_rows or len(sales)
    knn_rows = np.sort(rng.choice(len(sales), min(n_knn, len(sales)), replace=False))
    evaluation = Evaluation(setting, sales, knn_rows)

    networks = {}
    for features in ("one-hot", "embeddings"):
        start = time.perf_counter()
        networks[features] = train_paper_network(preprocessor, train, options,
                                           options.network_learning_rate(setting),
                                           one_hot=features == "one-hot")
        fitted = time.perf_counter()
        log_pred = networks[features].predict_log(test.categorical, test.continuous).numpy()
        evaluation.record("neural network", features, np.exp(log_pred), fitted - start,
                          time.perf_counter() - fitted)
    # The classic models get the embeddings of the network trained on their training rows.
    encoder = EmbeddingEncoder.from_model(networks["embeddings"], preprocessor)

    codes_train, codes_test = codes_matrix(train), codes_matrix(test)
    frame_train = inputs_frame(split.train, train, preprocessor)
    frame_test = inputs_frame(split.test, test, preprocessor)
    n_categorical = len(preprocessor.vocabularies)
    for name, make in classic_models(options).items():
        rows = knn_rows if name == "k-NN" else None
        without = one_hot_pipeline(make(), n_categorical) if name == "k-NN" else make()
        _fit_predict(evaluation, name, "one-hot" if name == "k-NN" else "codes", without,
                     codes_train, y, codes_test, rows)
        with_embeddings = make_pipeline(encoder, make())
        _fit_predict(evaluation, name, "embeddings", with_embeddings, frame_train, y,
                     frame_test, rows)
    return evaluation


def _fit_predict(evaluation: Evaluation, name: str, features: str, model: RegressorMixin,
                 x_train: Any, y: np.ndarray, x_test: Any, rows: np.ndarray | None) -> None:
    start = time.perf_counter()
    model.fit(x_train, y)
    fitted = time.perf_counter()
    if rows is not None:
        x_test = x_test[rows] if isinstance(x_test, np.ndarray) else x_test[rows.tolist()]
    predicted = np.exp(model.predict(x_test))
    evaluation.record(name, features, predicted, fitted - start, time.perf_counter() - fitted,
                      rows)


# --- the command ---------------------------------------------------------------------------------


def compare(options: CompareOptions) -> pl.DataFrame:
    """Run the comparison and write its table, figure and timings into ``options.out``."""
    settings = options.settings()
    start = time.perf_counter()
    full = "full" in settings  # weather and trends only matter to the full feature set
    data = read_rossmann(options.data_dir, weather=full, trends=full)
    table = build_features(data)
    rows, counts = model_rows(table.frame)
    split = comparison_split(rows, options.test_fraction, options.train_rows, options.seed)
    split.train = hide_future(split.train, options.hide_future, options.seed)
    data_seconds = time.perf_counter() - start
    print(", ".join(f"{k}={v}" for k, v in split.info.items()), flush=True)

    evaluations = []
    for setting in settings:
        setting_start = time.perf_counter()
        evaluation = run_setting(setting, setting_spec(setting, table.spec), split, options)
        evaluation.timing["total"] = {"seconds": round(time.perf_counter() - setting_start, 1)}
        evaluations.append(evaluation)
    results = pl.DataFrame([r for e in evaluations for r in e.results])
    report = {
        "options": asdict(options),
        "network_learning_rates": {s: options.network_learning_rate(s) for s in settings},
        "data": {**counts, **split.info, "rows_knn_test": int(len(evaluations[0].knn_rows))},
        "timing": {
            "total_seconds": round(time.perf_counter() - start, 1),
            "data_seconds": round(data_seconds, 1),
            "settings": {e.setting: e.timing for e in evaluations},
        },
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine()},
        "results": results.to_dicts(),
    }
    write_outputs(Path(options.out), results, report)
    print(f"comparison.md, .csv, .png and .json written to {options.out}", flush=True)
    return results
