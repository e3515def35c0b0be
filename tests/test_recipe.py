"""The core network's recipe: TabM ensemble, numerical embeddings, quantile preprocessing,
a training budget that follows the table, integer codes given as numbers too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from rossmann_embed.tabular.columns import infer_roles
from rossmann_embed.tabular.config import NetworkConfig, auto_budget
from rossmann_embed.tabular.encoding import (
    ColumnSpec,
    Preprocessor,
    quantile_normal,
    training_quantiles,
)
from rossmann_embed.tabular.model import EntityEmbeddingNetwork, numerical_bins


def _model(**kwargs) -> EntityEmbeddingNetwork:
    x = torch.randn(500, 2)
    bins = kwargs.pop("bins", numerical_bins(x, 8))
    target_transform = kwargs.pop("target_transform", "log")
    options = {"hidden_sizes": [32, 16], "ensemble_size": 4, "numerical_embedding": "piecewise"}
    config = NetworkConfig(**{**options, **kwargs})
    return EntityEmbeddingNetwork(config, {"store": 11}, 2, target_transform, bins=bins)


def test_the_ensemble_members_differ_and_the_prediction_is_their_mean() -> None:
    torch.manual_seed(0)
    model = _model().eval()
    categorical, continuous = torch.randint(0, 11, (64, 1)), torch.randn(64, 2)
    members = model.forward_members(categorical, continuous)
    assert members.shape == (64, 4)
    spread = members.std(dim=1)
    assert (spread > 1e-4).all(), "members sharing weights must still predict differently"
    assert torch.allclose(model(categorical, continuous), members.mean(dim=1))


def test_training_loss_is_the_mean_of_the_members_losses() -> None:
    torch.manual_seed(0)
    model = _model()
    categorical, continuous = torch.randint(0, 11, (32, 1)), torch.randn(32, 2)
    target = torch.randn(32)
    members = model.forward_members(categorical, continuous)
    loss_sum, count = model._loss_sum(members, target)
    each = [((members[:, i] - target) ** 2).mean() for i in range(4)]
    assert torch.isclose(loss_sum / count, torch.stack(each).mean())
    # A loss of the mean prediction would be smaller (Jensen): not what TabM trains on.
    assert loss_sum / count > ((members.mean(1) - target) ** 2).mean()


@pytest.mark.parametrize("kind", ["piecewise", "periodic", "none"])
def test_every_numerical_embedding_trains_and_round_trips(kind: str, tmp_path: Path) -> None:
    from pytorch_lightning import Trainer

    from rossmann_embed.tabular.data import TensorDataModule
    from rossmann_embed.tabular.encoding import EncodedTable

    torch.manual_seed(0)
    rows = 400
    continuous = torch.randn(rows, 2)
    categorical = torch.randint(1, 11, (rows, 1))
    target = 2 + torch.sin(2 * continuous[:, 0]) + 0.1 * categorical[:, 0].float()
    table = EncodedTable(categorical, continuous, target)
    model = _model(numerical_embedding=kind, bins=numerical_bins(continuous, 16),
                   target_transform="none", learning_rate=1e-2)
    trainer = Trainer(max_epochs=30, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)
    before = ((model.predict_log(categorical, continuous) - target) ** 2).mean()
    trainer.fit(model, datamodule=TensorDataModule(table, None, 64))
    after = ((model.predict_log(categorical, continuous) - target) ** 2).mean()
    assert after < 0.2 * before
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = EntityEmbeddingNetwork.from_checkpoint(tmp_path / "m.ckpt").eval()
    assert torch.allclose(loaded.predict_log(categorical, continuous),
                          model.predict_log(categorical, continuous), atol=1e-5)


def test_bins_and_quantiles_come_from_the_training_rows_only() -> None:
    train = pl.DataFrame({"x": np.arange(100.0), "c": ["a"] * 100})
    later = pl.DataFrame({"x": np.arange(1000.0, 1100.0), "c": ["a"] * 100})
    preprocessor = Preprocessor(ColumnSpec({"c": 1}, ["x"], None, "none")).fit(train)
    quantiles = preprocessor.quantiles["x"]
    assert min(quantiles) == 0.0 and max(quantiles) == 99.0
    edges = numerical_bins(preprocessor.transform(train).continuous, 8)[0]
    encoded_later = preprocessor.transform(later).continuous[:, 0]
    assert max(edges) < float(encoded_later.min()), "later values lie beyond the bins"


def test_quantile_normal_is_robust_and_extrapolates_a_bounded_way() -> None:
    values = np.concatenate([np.random.default_rng(0).normal(size=999), [1e9]])
    quantiles = training_quantiles(values)
    z = quantile_normal(values, quantiles)
    assert abs(np.median(z)) < 0.05 and 0.8 < np.std(z[:-1]) < 1.3  # one outlier does no harm
    q = training_quantiles(np.linspace(0, 10, 300))
    up = quantile_normal(np.array([10.0, 15.0, 20.0, 1e6, np.nan]), q)
    assert up[0] < up[1] < up[2] == up[3], "linear for one range beyond the end, then clipped"
    assert up[4] == pytest.approx(0.0, abs=1e-6), "missing values take the median"


@pytest.mark.parametrize(("rows", "batch", "at_least_steps"),
                         [(5_000, 256, 2_000), (60_000, 256, 2_000), (800_000, 2048, 3_000)])
def test_the_budget_follows_the_table(rows: int, batch: int, at_least_steps: int) -> None:
    budget = auto_budget(NetworkConfig(), rows)
    assert budget.batch_size == batch
    assert budget.steps(rows) >= at_least_steps
    assert budget.patience >= 5
    fixed = auto_budget(NetworkConfig(epochs=3, batch_size=100, patience=2), rows)
    assert (fixed.batch_size, fixed.epochs, fixed.patience) == (100, 3, 2)


def test_a_small_table_gets_enough_optimizer_steps(tmp_path: Path) -> None:
    from rossmann_embed.tabular.estimator import EmbeddingRegressor

    rng = np.random.default_rng(0)
    X = pl.DataFrame({"x": rng.normal(size=1500), "kind": rng.choice(["a", "b"], 1500)})
    y = np.exp(1 + 0.3 * X["x"].to_numpy() + 0.2 * (X["kind"] == "b").to_numpy())
    model = EmbeddingRegressor(hidden_sizes=(16,), ensemble_size=2, patience=1000,
                               out=str(tmp_path / "run")).fit(X, y)
    training = json.loads((tmp_path / "run" / "training.json").read_text())
    # ~1,350 training rows: batches of 256, 6 a epoch, and the most epochs (200), where
    # Rossmann's old defaults (10 epochs of 2048 rows) made 10 steps.
    assert (training["batch_size"], training["epochs"]) == (256, 200)
    assert training["members"][0]["steps"] == training["planned_steps"] == 1_200
    assert model.validation_["rmse"] < 0.5 * float(np.std(y))


def test_integer_codes_are_embedded_and_given_as_numbers_and_the_time_column_is_a_number(
) -> None:
    frame = pl.DataFrame({"size": [1, 2, 4, 8] * 25, "year": list(range(2000, 2020)) * 5,
                          "x": np.linspace(0, 1, 100)})
    roles = infer_roles(frame, time_column="year")
    assert "size" in roles.categorical and "size_number" in roles.continuous
    assert "year" in roles.continuous and "year" not in roles.categorical
    assert roles.inputs == ["size", "year", "x"]
    assert roles.expand(frame).get_column("size_number").to_list() == frame["size"].to_list()


def test_codes_typed_differently_in_a_later_file_are_the_same_codes() -> None:
    # A later CSV whose holiday codes are all "0" is read as integers; its stores as text.
    train = pl.DataFrame({"holiday": ["0", "a", "b", "0"], "store": [1, 2, 3, 1]})
    preprocessor = Preprocessor(ColumnSpec({"holiday": 3, "store": 3}, [], None, "none"))
    preprocessor.fit(train)
    later = pl.DataFrame({"holiday": [0, 0, 1], "store": ["1", "2", "x"]})
    codes = preprocessor.transform(later).categorical
    assert codes[:, 0].tolist() == [1, 1, 0]  # "1" was never a holiday code: unknown
    assert codes[:, 1].tolist() == [1, 2, 0]


def test_rows_without_a_time_are_trained_on_not_dropped(tmp_path: Path) -> None:
    from rossmann_embed.tabular.estimator import EmbeddingRegressor

    rng = np.random.default_rng(0)
    X = pl.DataFrame({"t": [None, None, *range(98)], "x": rng.normal(size=100)})
    y = np.exp(1 + 0.1 * X["x"].to_numpy())
    model = EmbeddingRegressor(time_column="t", epochs=1, hidden_sizes=(4,), ensemble_size=1,
                               out=str(tmp_path / "run")).fit(X, y)
    assert model.validation_["rows"] + model.validation_["rows_train"] == 100
