"""EntityEmbeddingNetwork: shapes, bounds, metric, learning, checkpoints; rmspe; FLOP count."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from rossmann_embed.tabular.config import NetworkConfig
from rossmann_embed.tabular.data import TensorDataModule
from rossmann_embed.tabular.encoding import EncodedTable
from rossmann_embed.tabular.metrics import rmspe
from rossmann_embed.tabular.model import (
    CheapDropout,
    EmbeddingLookups,
    EntityEmbeddingNetwork,
    default_embedding_size,
    training_flops_per_batch,
)

CARDINALITIES = {"store": 21, "weekday": 8}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: a second OpenMP thread only adds sync cost, badly so on shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


PLAIN = {"hidden_sizes": [32, 16], "learning_rate": 1e-2, "ensemble_size": 1,
         "numerical_embedding": "none"}  # a small plain MLP: fast to train in a test


def _model(y_range=None, preprocessing=None, **options) -> EntityEmbeddingNetwork:
    config = NetworkConfig(**{**PLAIN, **options})
    return EntityEmbeddingNetwork(config, CARDINALITIES, 2, "log", y_range,
                                    preprocessing=preprocessing)


def _planted(n: int, seed: int) -> EncodedTable:
    """log(sales) = 8 + store effect + weekday effect + 0.3 * x0, exactly learnable."""
    g = torch.Generator().manual_seed(seed)
    store_effect = torch.linspace(-0.8, 0.8, 21)
    weekday_effect = torch.tensor([0.0, 0.4, 0.1, 0.0, -0.2, 0.3, -0.5, 0.2])
    store = torch.randint(1, 21, (n,), generator=g)
    weekday = torch.randint(1, 8, (n,), generator=g)
    cont = torch.randn(n, 2, generator=g)
    log_sales = 8 + store_effect[store] + weekday_effect[weekday] + 0.3 * cont[:, 0]
    return EncodedTable(torch.stack([store, weekday], 1), cont, log_sales)


def _trainer(**kwargs) -> Trainer:
    defaults = {
        "accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
        "enable_progress_bar": False, "enable_model_summary": False,
    }
    return Trainer(**{**defaults, **kwargs})


def test_forward_shape_and_embedding_sizes():
    model = _model(embedding_sizes={"weekday": 3})
    assert model.embeddings["store"].embedding_dim == default_embedding_size(21)
    assert model.embeddings["weekday"].embedding_dim == 3
    table = _planted(10, seed=0)
    assert model(table.categorical, table.continuous).shape == (10,)
    assert default_embedding_size(1116) == 81


def test_y_range_bounds_output():
    torch.manual_seed(0)
    model = _model(y_range=(5.0, 6.0))
    cat, cont = torch.randint(0, 8, (50, 2)), torch.randn(50, 2)
    pred = model(cat, cont)
    assert ((pred > 5.0) & (pred < 6.0)).all()
    for bias, bound in ((1e4, 6.0), (-1e4, 5.0)):  # saturate the sigmoid both ways
        with torch.no_grad():
            model.mlp[-1].bias.fill_(bias)
        assert torch.equal(model(cat, cont), torch.full((50,), bound))


def test_unknown_category_index_zero_predicts():
    model = _model()
    pred = model.predict_log(torch.zeros(4, 2, dtype=torch.int64), torch.zeros(4, 2))
    assert pred.shape == (4,) and torch.isfinite(pred).all()


def test_embedding_lookups_match_nn_embedding_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    tables = [torch.nn.Embedding(n, d) for n, d in ((50, 7), (3, 2), (9, 4))]
    columns = torch.stack([torch.randint(0, t.num_embeddings, (300,), generator=g)
                           for t in tables])
    upstream = torch.randn(300, 13, generator=g)
    torch.cat([t(columns[i]) for i, t in enumerate(tables)], dim=1).backward(upstream)
    expected = [t.weight.grad.clone() for t in tables]
    for t in tables:
        t.weight.grad = None
    tables[1].weight.requires_grad_(False)  # frozen tables get no gradient

    out = EmbeddingLookups.apply(columns, *[t.weight for t in tables])
    torch.testing.assert_close(out, torch.cat([t.weight[columns[i]] for i, t in
                                               enumerate(tables)], dim=1))
    out.backward(upstream)
    torch.testing.assert_close(tables[0].weight.grad, expected[0])
    assert tables[1].weight.grad is None
    torch.testing.assert_close(tables[2].weight.grad, expected[2])


@pytest.mark.parametrize("p", [0.04, 0.5])
def test_cheap_dropout_drops_share_p_and_keeps_the_mean(p):
    torch.manual_seed(0)
    dropout, x = CheapDropout(p), torch.ones(1000, 1000)
    out = dropout(x)
    kept = out != 0
    assert abs(1 - kept.float().mean().item() - p) < 0.002
    assert abs(out.mean().item() - 1) < 0.005  # survivors scaled by 1 / (1 - p)
    assert torch.equal(out[kept], torch.full_like(out[kept], out[kept][0].item()))
    assert not torch.equal(dropout(x), out)  # a fresh mask every call
    assert torch.equal(dropout.eval()(x), x)
    for bad in (1.0, 0.99999, -0.1):
        with pytest.raises(ValueError, match="dropout probability"):
            CheapDropout(bad)


def test_rmspe_matches_kaggle_and_ignores_zero_sales():
    y = np.array([100.0, 0.0, 200.0])
    yhat = np.array([110.0, 50.0, 180.0])
    assert rmspe(y, yhat) == pytest.approx(math.sqrt((0.1**2 + 0.1**2) / 2))
    assert math.isnan(rmspe(np.zeros(2), np.ones(2)))


def test_training_flops_are_three_times_the_forward_matmuls():
    config = NetworkConfig(embedding_sizes={"a": 4, "b": 2}, hidden_sizes=[16, 8],
                           ensemble_size=1, numerical_embedding="none")
    model = EntityEmbeddingNetwork(config, {"a": 10, "b": 5}, 3, "log")
    widths = [4 + 2 + 3, 16, 8, 1]
    forward = sum(2 * 64 * a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    assert training_flops_per_batch(model, 64) == 3 * forward
    assert all(p.grad is None for p in model.parameters())


def test_training_on_planted_problem_reduces_val_rmspe():
    torch.manual_seed(0)
    dm = TensorDataModule(_planted(4000, seed=1), _planted(1000, seed=2), batch_size=128)
    model = _model(y_range=(6.0, 10.0))
    before = _trainer().validate(model, dm, verbose=False)[0]["val_rmspe"]
    trainer = _trainer(max_epochs=6)
    trainer.fit(model, dm)
    after = float(trainer.callback_metrics["val_rmspe"])
    assert before > 0.5  # an untrained net is far from exp(8 +- 1.5)
    assert after < 0.1 and after < before / 5


def test_val_rmspe_is_exact_and_skips_zero_sales():
    val = _planted(300, seed=3)
    val.target[::3] = -math.inf  # log of zero sales: excluded, as in Kaggle's metric
    model = _model()
    logged = _trainer().validate(model, TensorDataModule(val, val, batch_size=16),
                                 verbose=False)[0]["val_rmspe"]
    pred = model.predict_log(val.categorical, val.continuous, batch_size=7).numpy()
    expected = rmspe(np.exp(val.target.double().numpy()), np.exp(pred.astype(np.float64)))
    assert logged == pytest.approx(expected, rel=1e-4)


def test_predict_step_matches_predict_log():
    table = _planted(100, seed=4)
    model = _model()
    batches = _trainer().predict(model, TensorDataModule(table, table).val_dataloader())
    assert torch.allclose(torch.cat(batches), model.predict_log(table.categorical,
                                                                table.continuous))


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    train, val = _planted(600, seed=5), _planted(200, seed=6)
    preprocessing = {"spec": {"categorical": {"store": 20}}, "means": {"x0": 0.5}}
    model = _model(y_range=(6.0, 10.0), batch_norm=True, preprocessing=preprocessing)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="last")  # every epoch
    trainer = _trainer(max_epochs=2, enable_checkpointing=True, default_root_dir=tmp_path,
                       callbacks=[checkpoint, EarlyStopping("val_rmspe", patience=3)])
    trainer.fit(model, TensorDataModule(train, val, batch_size=64))

    raw = torch.load(checkpoint.best_model_path, weights_only=True)  # nothing unpicklable
    assert raw["lr_schedulers"] and raw["hyper_parameters"]["preprocessing"] == preprocessing
    loaded = EntityEmbeddingNetwork.from_checkpoint(checkpoint.best_model_path)
    assert loaded.hparams.preprocessing == preprocessing
    assert torch.equal(
        loaded.predict_log(val.categorical, val.continuous),
        model.predict_log(val.categorical, val.continuous),
    )


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="loss"):
        _model(loss="huber")
    with pytest.raises(ValueError, match="dropout"):
        _model(dropout=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="not in cardinalities"):
        _model(embedding_sizes={"nope": 2})


def test_the_model_is_built_from_its_config_alone():
    """Every architecture option comes from NetworkConfig: its defaults are the model's."""
    from tabm import LinearBatchEnsemble

    from rossmann_embed.tabular.model import numerical_bins

    config = NetworkConfig()
    bins = numerical_bins(torch.randn(300, 2), config.numerical_bins)
    model = EntityEmbeddingNetwork(config, CARDINALITIES, 2, "log", bins=bins)
    assert model.hparams.network == config.to_dict()
    widths = [m.weight.shape[0] for m in model.mlp.modules()
              if isinstance(m, LinearBatchEnsemble)]
    assert widths == config.hidden_sizes
    members = model.forward_members(torch.ones(3, 2, dtype=torch.int64), torch.zeros(3, 2))
    assert members.shape == (3, config.ensemble_size)
    assert type(model.numerical).__name__ == "PiecewiseLinearEmbeddings"
    assert model.embedding_dropout.p == config.embedding_dropout


def test_a_checkpoint_of_flat_hyperparameters_still_loads(tmp_path):
    """Checkpoints written before the model took a NetworkConfig keep predicting alike."""
    model = _model(y_range=(6.0, 10.0), embedding_sizes={"store": 3})
    hparams = {**model.hparams.network, **{k: v for k, v in model.hparams.items()
                                           if k != "network"}}
    torch.save({"hyper_parameters": hparams, "state_dict": model.state_dict()},
               tmp_path / "old.ckpt")
    loaded = EntityEmbeddingNetwork.from_checkpoint(tmp_path / "old.ckpt")
    table = _planted(50, seed=9)
    assert loaded.config == model.config
    assert torch.equal(loaded.predict_log(table.categorical, table.continuous),
                       model.predict_log(table.categorical, table.continuous))
