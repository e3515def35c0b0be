"""Tables beyond memory: parquet row groups streamed as batches, each rank and worker its own.

A ``StreamedTable`` is one or more parquet files read one row group at a time, each group
turned into the model's columns (``prepare``) and split into training and validation rows
(``Split``: the latest share of a time column, or a seeded hash of the row's index, so any
process can split any group alone). Its statistics come from polars' streaming engine
(``lazy``); its batches from ``StreamedBatches``:

- every epoch the row groups are reordered by ``(seed, epoch)`` and cut into ``world_size``
  contiguous parts of near-equal rows, one per DDP rank; a rank's part is dealt round-robin
  to its data-loader workers, so every group is read by exactly one process an epoch;
- rows are shuffled within a buffer of ``BUFFER_ROWS`` that mixes several groups;
- every rank yields the same number of batches (DDP requires it), of near-equal size, and no
  row is dropped or repeated in an epoch.

What a process holds is the model, the fitted encoding and the buffer: memory does not grow
with the table's rows. Why not litdata: see the decisions page (its wheel requires
torchvision, which replaces the CPU build of torch these machines run).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from rossmann_embed.tabular.data import VALIDATION_BATCH_FACTOR, Batch
from rossmann_embed.tabular.encoding import EncodedTable, Preprocessor
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.tables import arrow_frame

ROW_INDEX = "__row__"  # the row's place in the whole table, for the random split
BUFFER_ROWS = 262_144  # rows shuffled together: several row groups of a usual parquet file
HASH_SCALE = float(2**64)


@dataclass(frozen=True)
class RowGroup:
    """One row group of a parquet file, and the whole table's index of its first row."""

    path: str
    index: int
    rows: int
    offset: int


def row_groups(paths: Sequence[str | Path]) -> list[RowGroup]:
    """The row groups of ``paths``, in order, from the files' footers (no data is read)."""
    groups, offset = [], 0
    for path in paths:
        metadata = pq.ParquetFile(path).metadata
        for index in range(metadata.num_row_groups):
            rows = metadata.row_group(index).num_rows
            groups.append(RowGroup(str(path), index, rows, offset))
            offset += rows
    return groups


@dataclass(frozen=True)
class Split:
    """Which rows are held out for validation: with a ``time_column``, those at or after
    ``cut`` (its latest share); without, a ``fraction`` of the rows chosen by a seeded hash of
    their index (the same rows whichever process reads them, in whatever order)."""

    fraction: float
    seed: int = 0
    time_column: str | None = None
    cut: float | None = None

    def held(self) -> pl.Expr:
        """True for validation rows, on a frame with ``ROW_INDEX``."""
        if self.fraction <= 0:
            return pl.lit(False)
        if self.time_column is not None:
            time = pl.col(self.time_column).to_physical().cast(pl.Float64)
            return (time >= self.cut).fill_null(False)
        hashed = pl.col(ROW_INDEX).cast(pl.Int64).hash(self.seed).cast(pl.Float64)
        return hashed < self.fraction * HASH_SCALE


@dataclass
class StreamedTable:
    """Parquet row groups as the model sees their rows: ``columns`` read, ``prepare`` applied
    (e.g. dates to calendar parts, the target renamed), and ``split`` into parts."""

    groups: list[RowGroup]
    columns: list[str]
    prepare: Callable[[pl.LazyFrame], pl.LazyFrame]
    split: Split
    train_rows: list[int] | None = None  # per group, counted by ``count``
    validation_rows: list[int] | None = None

    @property
    def paths(self) -> list[str]:
        return list(dict.fromkeys(group.path for group in self.groups))

    def lazy(self, part: str | None = "train") -> pl.LazyFrame:
        """All rows of a part (``train``, ``validation``, or None: both) as a LazyFrame, for
        statistics by polars' streaming engine."""
        frame = pl.scan_parquet(self.paths).select(self.columns).with_row_index(ROW_INDEX)
        return self._part(frame, part)

    def read(self, group: RowGroup, part: str) -> pl.DataFrame:
        """The rows of one row group in ``part``, prepared."""
        table = pq.ParquetFile(group.path).read_row_group(group.index, columns=self.columns)
        frame = arrow_frame(table).lazy().with_row_index(ROW_INDEX, offset=group.offset)
        return self._part(frame, part).collect()

    def _part(self, frame: pl.LazyFrame, part: str | None) -> pl.LazyFrame:
        if part is not None:
            held = self.split.held()
            frame = frame.filter(held if part == "validation" else ~held)
        return self.prepare(frame)

    def count(self) -> StreamedTable:
        """The table with its training and validation rows counted per row group (read from
        the time column alone, or from the row indices)."""
        train, validation = [], []
        for group in self.groups:
            frame = pl.select(pl.int_range(group.offset, group.offset + group.rows,
                                           dtype=pl.Int64).alias(ROW_INDEX))
            if self.split.time_column is not None:
                table = pq.ParquetFile(group.path).read_row_group(
                    group.index, columns=[self.split.time_column])
                frame = frame.hstack(arrow_frame(table))
            held = frame.select(self.split.held().sum()).item()
            validation.append(int(held))
            train.append(group.rows - int(held))
        return replace(self, train_rows=train, validation_rows=validation)

    def rows(self, part: str) -> list[int]:
        counted = self.train_rows if part == "train" else self.validation_rows
        if counted is None:
            raise RuntimeError("StreamedTable.rows needs count() first")
        return counted


def share_of_rank(rows: Sequence[int], order: Sequence[int], rank: int, world_size: int
                  ) -> list[int]:
    """The groups (indices, in ``order``) of rank ``rank``: ``order`` cut into ``world_size``
    contiguous parts by cumulative rows, each group to the part where its first row falls."""
    total = sum(rows)
    start, share = 0, []
    for group in order:
        if rows[group] and rank * total <= start * world_size < (rank + 1) * total:
            share.append(group)
        start += rows[group]
    return share


def batches_per_worker(rows: Sequence[int], batches: int) -> list[int]:
    """``batches`` dealt to workers: one to each worker with rows, the rest in proportion to
    their rows (largest remainder), so that together they yield exactly the rank's number of
    batches; a worker with no rows gets none."""
    holding = [i for i, r in enumerate(rows) if r]
    if len(holding) > batches:
        raise ValueError(f"{len(holding)} data-loader workers for {batches} batches: use "
                         "fewer workers")
    counts = [1 if r else 0 for r in rows]
    spare, total = batches - len(holding), sum(rows)
    exact = [spare * r / total if total else 0.0 for r in rows]
    extra = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(rows)), key=lambda i: extra[i] - exact[i])
    for i in by_remainder[:spare - sum(extra)]:
        extra[i] += 1
    return [c + e for c, e in zip(counts, extra, strict=True)]


class StreamedBatches(IterableDataset):
    """Batches of one part of a ``StreamedTable``, for one DDP rank (and, inside it, each
    data-loader worker); the same contract as ``data.PermutationBatches``."""

    def __init__(self, table: StreamedTable, part: str, preprocessor: Preprocessor,
                 batch_size: int, *, shuffle: bool, seed: int = 0, epoch: int = 0,
                 rank: int = 0, world_size: int = 1, buffer_rows: int = BUFFER_ROWS) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.table, self.part, self.preprocessor = table, part, preprocessor
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, epoch
        self.rank, self.world_size, self.buffer_rows = rank, world_size, buffer_rows
        self.group_rows = table.rows(part)
        holding = sum(1 for r in self.group_rows if r)
        if holding < world_size and part == "train":
            raise InputError.at(table.paths[0], f"a row group with training rows for each of "
                                f"the {world_size} processes (there are {holding}): write the "
                                "table with smaller row groups (polars: "
                                "write_parquet(row_group_size=...))")

    def order(self, epoch: int) -> list[int]:
        """Every row group, in the order of ``epoch``."""
        n = len(self.group_rows)
        if not self.shuffle:
            return list(range(n))
        return np.random.default_rng((self.seed, epoch)).permutation(n).tolist()

    def rank_groups(self, epoch: int | None = None, rank: int | None = None) -> list[int]:
        """The row groups a rank reads in ``epoch`` (default: this rank, the next epoch)."""
        epoch = self.epoch if epoch is None else epoch
        rank = self.rank if rank is None else rank
        return share_of_rank(self.group_rows, self.order(epoch), rank, self.world_size)

    def __len__(self) -> int:
        """Batches per epoch, the same on every rank and every epoch. A rank's rows differ
        from an even share by less than the largest row group (its groups change with the
        epoch's order), so the count is for an even share plus one group, and no batch is
        larger than ``batch_size``."""
        total, largest = sum(self.group_rows), max(self.group_rows, default=0)
        slack = largest if self.world_size > 1 else 0
        batches = max(1, math.ceil((math.ceil(total / self.world_size) + slack)
                                   / self.batch_size))
        if self.part == "train" and total // self.world_size - slack < batches:
            least = max(0, total // self.world_size - slack)
            raise InputError.at(self.table.paths[0], f"row groups small enough that each of "
                                f"the {self.world_size} processes gets a row for each of its "
                                f"{batches} batches (one could get {least}): write the table "
                                "with smaller row groups (polars: "
                                "write_parquet(row_group_size=...))")
        return batches

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        self.epoch += 1
        groups = self.rank_groups(epoch)
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        dealt = [groups[w::workers] for w in range(workers)]
        rows = [sum(self.group_rows[g] for g in d) for d in dealt]
        # Training: every rank the same number of batches (DDP). Validation: its own rows'.
        batches = (len(self) if self.part == "train"
                   else math.ceil(sum(rows) / self.batch_size))
        counts = batches_per_worker(rows, batches if groups else 0)
        mine, batches = dealt[worker], counts[worker]
        rng = np.random.default_rng((self.seed, epoch, self.rank, worker))
        yield from self._batches(mine, batches, rng)

    def _batches(self, groups: list[int], batches: int, rng: np.random.Generator
                 ) -> Iterator[Batch]:
        """``batches`` near-equal batches of the rows of ``groups``, shuffled in a buffer."""
        total = sum(self.group_rows[g] for g in groups)
        bounds = np.linspace(0, total, batches + 1).round().astype(np.int64)
        sizes = np.diff(bounds).tolist()
        buffer: Batch | None = None
        pending = list(groups)
        for size in sizes:
            while pending and (buffer is None or len(buffer[0]) < max(size, self.buffer_rows)):
                buffer = self._refill(buffer, pending.pop(0), rng)
            if buffer is None or len(buffer[0]) < size:
                raise RuntimeError(f"{self.table.paths[0]}: the row groups hold fewer "
                                   f"{self.part} rows than counted; was the file changed?")
            yield tuple(t[:size] for t in buffer)
            buffer = tuple(t[size:] for t in buffer)

    def _refill(self, buffer: Batch | None, group: int, rng: np.random.Generator) -> Batch:
        encoded = self.preprocessor.transform(
            self.table.read(self.table.groups[group], self.part), self.table.paths[0])
        tensors = (encoded.categorical, encoded.continuous, encoded.target)
        if buffer is not None:
            tensors = tuple(torch.cat(pair) for pair in zip(buffer, tensors, strict=True))
        if not self.shuffle:
            return tensors
        order = torch.from_numpy(rng.permutation(len(tensors[0])))
        return tuple(t[order] for t in tensors)


class EpochLoader:
    """Data-loader workers over ``StreamedBatches``. The workers are started once, by spawning
    (polars' thread pool does not survive a fork), and kept: each holds a copy of the
    dataset whose epoch counter advances with every iteration, as the copy here does."""

    def __init__(self, batches: StreamedBatches, workers: int) -> None:
        self.batches, self.workers = batches, workers
        self.loader: DataLoader | None = None

    @property
    def epoch(self) -> int:
        return self.batches.epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Batch]:
        if self.loader is None:
            self.loader = DataLoader(self.batches, batch_size=None, num_workers=self.workers,
                                     multiprocessing_context="spawn", persistent_workers=True)
        iterator = iter(self.loader)  # the workers' copies start from this epoch
        self.batches.epoch += 1
        return iterator


class StreamedDataModule(LightningDataModule):
    """A ``StreamedTable``'s training (and validation) rows as ``(categorical, continuous,
    target)`` batches; shards by the attached Trainer's rank, so DDP works unchanged."""

    def __init__(self, table: StreamedTable, preprocessor: Preprocessor, batch_size: int,
                 seed: int = 0, workers: int = 0) -> None:
        super().__init__()
        self.table, self.preprocessor = table, preprocessor
        self.batch_size, self.seed, self.workers = batch_size, seed, workers
        self._train_batches: StreamedBatches | EpochLoader | None = None
        self._next_epoch = 0

    def train_dataloader(self) -> StreamedBatches | EpochLoader:
        """Shuffled batches; after a resume, the epochs' orders continue where they stopped."""
        self._train_batches = self._loader("train", self.batch_size, shuffle=True)
        return self._train_batches

    def val_dataloader(self) -> StreamedBatches | EpochLoader | list:
        if not sum(self.table.rows("validation")):
            return []
        return self._loader("validation", self.batch_size * VALIDATION_BATCH_FACTOR,
                            shuffle=False)

    def state_dict(self) -> dict[str, int]:
        """Saved in checkpoints: the epoch of the next training order."""
        batches = self._train_batches
        return {"next_epoch": batches.epoch if batches is not None else self._next_epoch}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._next_epoch = int(state_dict["next_epoch"])

    def _loader(self, part: str, batch_size: int, shuffle: bool
                ) -> StreamedBatches | EpochLoader:
        trainer = self.trainer
        batches = StreamedBatches(
            self.table, part, self.preprocessor, batch_size, shuffle=shuffle, seed=self.seed,
            epoch=self._next_epoch if shuffle else 0,
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1)
        return EpochLoader(batches, self.workers) if self.workers else batches


@dataclass
class StreamedData:
    """The streamed data path of a run: what ``trainer.train_members`` needs of it."""

    table: StreamedTable
    preprocessor: Preprocessor
    sample: EncodedTable  # training rows (all of them, or a seeded sample) for the bins
    workers: int = 0

    @property
    def rows(self) -> int:
        return sum(self.table.rows("train"))

    @property
    def validated(self) -> bool:
        return sum(self.table.rows("validation")) > 0

    def continuous_sample(self) -> torch.Tensor:
        return self.sample.continuous

    def datamodule(self, batch_size: int, seed: int) -> StreamedDataModule:
        return StreamedDataModule(self.table, self.preprocessor, batch_size, seed,
                                  self.workers)
