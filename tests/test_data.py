"""PermutationBatches and TensorDataModule: coverage, shuffling, determinism, DDP sharding."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning import Trainer

from rossmann_embed.tabular.config import NetworkConfig
from rossmann_embed.tabular.data import (
    VALIDATION_BATCH_FACTOR,
    PermutationBatches,
    TensorDataModule,
)
from rossmann_embed.tabular.encoding import EncodedTable
from rossmann_embed.tabular.model import EntityEmbeddingNetwork


def _rows_seen(batches: PermutationBatches) -> torch.Tensor:
    """Row ids in visiting order, read from the first tensor (which holds the row ids)."""
    return torch.cat([batch[0] for batch in batches])


def _loader(n: int, batch_size: int = 16, **kwargs) -> PermutationBatches:
    ids = torch.arange(n)
    return PermutationBatches((ids, ids.float() * 2, ids[:, None].repeat(1, 3)), batch_size,
                              **kwargs)


def test_every_row_exactly_once_per_epoch_and_tensors_stay_aligned():
    loader = _loader(103, batch_size=10)
    batches = list(loader)
    assert len(batches) == len(loader) == 11
    seen = _rows_seen(loader.__class__(loader.tensors, 10))
    assert sorted(seen.tolist()) == list(range(103))
    for ids, doubled, repeated in batches:
        assert torch.equal(doubled, ids.float() * 2)
        assert torch.equal(repeated, ids[:, None].repeat(1, 3))
    sizes = [len(b[0]) for b in batches]
    assert max(sizes) <= 10 and max(sizes) - min(sizes) <= 1  # no tiny last batch


def test_new_permutation_each_epoch_and_set_epoch_replays():
    loader = _loader(200)
    first, second = _rows_seen(loader), _rows_seen(loader)
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(200))
    assert not torch.equal(first, second)
    loader.set_epoch(0)
    assert torch.equal(_rows_seen(loader), first)
    assert torch.equal(loader.rank_rows(epoch=1), second)


def test_permutation_is_deterministic_given_seed():
    same = [_rows_seen(_loader(200, seed=7)) for _ in range(2)]
    other = _rows_seen(_loader(200, seed=8))
    assert torch.equal(same[0], same[1])
    assert not torch.equal(same[0], other)


def test_no_shuffle_keeps_order_and_returns_views():
    loader = _loader(50, batch_size=8, shuffle=False)
    assert torch.equal(_rows_seen(loader), torch.arange(50))
    first = next(iter(loader))[0]
    assert first.data_ptr() == loader.tensors[0].data_ptr()  # a slice, not a copy


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize(("n", "world_size", "batch_size"), [(101, 2, 8), (100, 3, 7), (5, 4, 2)])
def test_ddp_shards_are_disjoint_cover_all_rows_and_have_equal_batch_counts(
    n, world_size, batch_size, shuffle
):
    shards = [
        list(_loader(n, batch_size, shuffle=shuffle, seed=3, rank=r, world_size=world_size))
        for r in range(world_size)
    ]
    counts = {len(batches) for batches in shards}
    assert len(counts) == 1  # DDP needs the same number of steps on every rank
    assert counts == {len(_loader(n, batch_size, rank=0, world_size=world_size))}
    rows = [torch.cat([b[0] for b in batches]).tolist() for batches in shards]
    flat = [row for shard in rows for row in shard]
    assert sorted(flat) == list(range(n))  # disjoint and complete
    assert max(map(len, rows)) - min(map(len, rows)) <= 1
    assert all(len(b[0]) <= batch_size for batches in shards for b in batches)


def test_rejects_misaligned_tensors_and_bad_rank():
    with pytest.raises(ValueError, match="same number of rows"):
        PermutationBatches((torch.zeros(3), torch.zeros(4)), 2)
    with pytest.raises(ValueError, match="rank"):
        PermutationBatches((torch.zeros(3),), 2, rank=2, world_size=2)


def _table(n: int) -> EncodedTable:
    return EncodedTable(
        torch.arange(n)[:, None].repeat(1, 2), torch.randn(n, 3), torch.randn(n)
    )


def test_datamodule_loaders_shard_by_trainer_rank():
    dm = TensorDataModule(_table(100), _table(40), batch_size=8, seed=1)
    train, val = dm.train_dataloader(), dm.val_dataloader()
    assert train.shuffle and not val.shuffle
    assert val.batch_size == 8 * VALIDATION_BATCH_FACTOR
    cat, cont, target = next(iter(train))
    assert cat.dtype == torch.int64 and cont.shape[1] == 3 and target.ndim == 1
    assert dm.state_dict() == {"next_epoch": 1}  # what a checkpoint saves

    dm.load_state_dict({"next_epoch": 3})  # what resuming from it restores
    dm.trainer = SimpleNamespace(global_rank=1, world_size=2)
    sharded = dm.train_dataloader()
    assert (sharded.rank, sharded.world_size, sharded.epoch) == (1, 2, 3)
    assert len(torch.cat([b[0][:, 0] for b in sharded])) == 50


def test_datamodule_without_validation_has_no_val_batches():
    dm = TensorDataModule(_table(10))
    assert dm.val_dataloader() == []
    with pytest.raises(ValueError, match="no target"):
        TensorDataModule(EncodedTable(torch.zeros(2, 1, dtype=torch.int64), torch.zeros(2, 0)))


class _RowRecorder(EntityEmbeddingNetwork):
    """Records the row ids (categorical column 0) of every training batch, per epoch."""

    def on_train_epoch_start(self) -> None:
        self.epoch_rows.append([])

    def training_step(self, batch, batch_idx):
        self.epoch_rows[-1].append(batch[0][:, 0])
        return super().training_step(batch, batch_idx)


def test_trainer_iterates_once_per_epoch_with_that_epochs_permutation():
    n = 64
    table = EncodedTable(torch.arange(n)[:, None], torch.zeros(n, 1), torch.zeros(n))
    config = NetworkConfig(hidden_sizes=[4], dropout=[0.0], ensemble_size=1,
                           numerical_embedding="none")
    model = _RowRecorder(config, {"row": n}, 1, "log")
    model.epoch_rows = []
    Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False).fit(model, TensorDataModule(table, batch_size=16, seed=5))
    expected = PermutationBatches((table.categorical,), 16, seed=5)
    assert len(model.epoch_rows) == 3
    for epoch, rows in enumerate(model.epoch_rows):
        assert torch.equal(torch.cat(rows), expected.rank_rows(epoch))
