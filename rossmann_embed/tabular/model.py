"""EntityEmbeddingNetwork: one embedding per categorical column, concatenated with the
embedded continuous columns, through an efficient ensemble of MLPs to a prediction of the
transformed target.

Continuous columns are embedded piecewise-linearly or periodically (``rtdl_num_embeddings``);
the MLP is a TabM ensemble of ``ensemble_size`` members that share their weights
(BatchEnsemble layers of ``tabm``), trained on the mean of the members' losses and predicting
their mean.

Inputs are the tensors of ``encoding.EncodedTable`` (category index 0 = unknown); the output
is in the target transform's space (log for sales); validation reports RMSE, and RMSPE for a
log target, in the target's own units, exact under DDP.
"""

from __future__ import annotations

import copy
import ctypes
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_lightning import LightningModule
from rtdl_num_embeddings import PeriodicEmbeddings, PiecewiseLinearEmbeddings, compute_bins
from tabm import BatchNorm1dEnsemble, EnsembleView, LinearBatchEnsemble, LinearEnsemble
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rossmann_embed.tabular.config import LOSSES, NetworkConfig, network_of, per_layer_dropout


def default_embedding_size(cardinality: int) -> int:
    """fastai's rule of thumb, ``min(600, round(1.6 * n ** 0.56))``: grows sub-linearly, so
    1116 stores get 81 dimensions and 8 weekdays get 5."""
    return int(min(600, round(1.6 * cardinality**0.56)))


# Rows a prediction pass takes at once: the ensemble's first layer sees every member's copy
# of the input, in float64, so 65,536 rows of a 600-wide input held 2.5 GB; 8,192 hold 0.3 GB
# at the same speed.
PREDICT_BATCH_ROWS = 8192


class EntityEmbeddingNetwork(LightningModule):
    """Entity embeddings (Guo & Berkhahn 2016) + MLP regressor of the transformed target,
    built from one ``NetworkConfig`` (its architecture, loss and optimiser; the model has no
    defaults of its own) and what the data decided.

    Args:
        config: the network's options (``NetworkConfig``; a command's config may be passed,
            its other fields are ignored).
        cardinalities: embedding rows per categorical column, including the unknown row 0.
        n_continuous: number of continuous input columns.
        target_transform: how targets were transformed (``encoding.TARGET_TRANSFORMS``):
            validation undoes it to report errors in the target's units.
        y_range: ``(lo, hi)`` in the model's space; the output becomes
            ``lo + (hi - lo) * sigmoid(x)``.
        bins: per continuous column, the bin edges of the piecewise-linear embedding
            (``numerical_bins`` on the training rows).
        preprocessing: opaque plain data (e.g. ``Preprocessor.to_dict()``) stored in the
            hyperparameters so that a checkpoint alone can predict; never read here.
    """

    def __init__(
        self,
        config: NetworkConfig,
        cardinalities: dict[str, int],
        n_continuous: int,
        target_transform: str,
        y_range: tuple[float, float] | None = None,
        bins: Sequence[Sequence[float]] | None = None,
        preprocessing: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        config = network_of(config)  # commands check every option; the model, its shape
        config.dropout = per_layer_dropout(config.dropout, len(config.hidden_sizes))
        if config.loss not in LOSSES or len(config.dropout) != len(config.hidden_sizes):
            raise ValueError(f"loss must be one of {LOSSES} and dropout one rate per hidden "
                             f"layer, got {config.loss!r} and {config.dropout}")
        unknown = set(config.embedding_sizes) - set(cardinalities)
        if unknown:
            raise ValueError(f"embedding_sizes names columns not in cardinalities: {unknown}")
        numerical = config.numerical_embedding if n_continuous else "none"
        if numerical == "piecewise" and (bins is None or len(bins) != n_continuous):
            raise ValueError("numerical_embedding='piecewise' needs bins for each continuous "
                             "column (numerical_bins)")
        self.config = config
        # Plain containers only, so checkpoints load with weights_only=True.
        self.save_hyperparameters(
            {
                "network": config.to_dict(),
                "cardinalities": dict(cardinalities),
                "n_continuous": int(n_continuous),
                "target_transform": target_transform,
                "y_range": [float(v) for v in y_range] if y_range is not None else None,
                "bins": ([[float(v) for v in edges] for edges in bins]
                         if numerical == "piecewise" else None),
                "preprocessing": preprocessing,
            }
        )
        sizes = {name: default_embedding_size(n) for name, n in cardinalities.items()}
        sizes.update(config.embedding_sizes)
        self.embeddings = ColumnModules(
            {name: nn.Embedding(n, sizes[name]) for name, n in cardinalities.items()}
        )
        for embedding in self.embeddings.values():
            # fastai's small start: with PyTorch's N(0, 1) the random start still dominates
            # the vectors after a short training, and maps of them show noise.
            nn.init.trunc_normal_(embedding.weight, std=0.01, a=-0.02, b=0.02)
        self.embedding_dropout = (
            CheapDropout(config.embedding_dropout) if config.embedding_dropout
            else nn.Identity())
        self.numerical = _numerical_embeddings(
            numerical, n_continuous, config.numerical_embedding_size, self.hparams.bins)
        numerical_width = config.numerical_embedding_size if self.numerical is not None else 1
        chunks = [*sizes.values(), *[numerical_width] * n_continuous]  # one per input column
        self.mlp = _ensemble_mlp(
            chunks, config.hidden_sizes, config.dropout, config.batch_norm,
            config.ensemble_size,
        ) if config.mlp else None
        self._factorization([tuple(pair) for pair in config.factorization], sizes)
        self._val_sums: torch.Tensor | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> EntityEmbeddingNetwork:
        """The model a checkpoint holds, on the CPU, loaded weights-only. Checkpoints written
        before the model took a ``NetworkConfig`` (flat hyperparameters) load too."""
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        hparams = dict(checkpoint["hyper_parameters"])
        network = hparams.pop("network", None)
        if network is None:  # format 1: the network's options beside the data's
            names = {f.name for f in fields(NetworkConfig)}
            network = {k: hparams.pop(k) for k in list(hparams) if k in names}
            network["embedding_sizes"] = network.get("embedding_sizes") or {}
            network.pop("preprocessing", None)
        model = cls(NetworkConfig.from_dict(network), **hparams)
        model.load_state_dict(checkpoint["state_dict"])
        return model

    def _factorization(self, pairs: list[tuple[str, ...]], sizes: dict[str, int]) -> None:
        """fastai's EmbeddingDotBias for each pair: the dot product of the two columns'
        embeddings (of one size), one learned bias per category, and a global bias."""
        names = list(sizes)
        for pair in pairs:
            if len(pair) != 2 or not set(pair) <= set(names) or pair[0] == pair[1]:
                raise ValueError(f"factorization pairs are two categorical columns, got {pair}")
            if sizes[pair[0]] != sizes[pair[1]]:
                raise ValueError(f"factorization pair {pair} needs embeddings of one size, got "
                                 f"{sizes[pair[0]]} and {sizes[pair[1]]} (set embedding_sizes)")
        offsets = np.cumsum([0, *sizes.values()])
        self._slices = {n: (int(offsets[i]), int(offsets[i + 1])) for i, n in enumerate(names)}
        self._pairs = [(names.index(a), names.index(b)) for a, b in pairs]
        biased = sorted({c for pair in pairs for c in pair}, key=names.index)
        self.biases = ColumnModules(
            {c: nn.Embedding(self.hparams.cardinalities[c], 1) for c in biased})
        for bias in self.biases.values():
            nn.init.zeros_(bias.weight)
        self.global_bias = nn.Parameter(torch.zeros(1)) if pairs else None

    # ---- model ---------------------------------------------------------------------------

    def forward(self, categorical: torch.Tensor, continuous: torch.Tensor) -> torch.Tensor:
        """Log predictions [rows] from category indices [rows, n_cat] and continuous
        values [rows, n_cont] (columns in the order of ``cardinalities``): the mean of the
        ensemble's members."""
        return self.forward_members(categorical, continuous).mean(dim=1)

    def forward_members(self, categorical: torch.Tensor, continuous: torch.Tensor
                        ) -> torch.Tensor:
        """Each ensemble member's log predictions [rows, members]."""
        weights = [emb.weight for emb in self.embeddings.values()]
        embedded = None
        if self.numerical is not None:
            continuous = self.numerical(continuous).flatten(1)
        if weights:
            columns = categorical.t().contiguous()  # one copy, not one per strided column
            embedded = EmbeddingLookups.apply(columns, *weights)
            x = torch.cat([self.embedding_dropout(embedded), continuous], dim=1)
        else:  # a table of numbers only
            x = continuous
        out = self.mlp(x).squeeze(2) if self.mlp is not None else x.new_zeros(len(x), 1)
        if self._pairs:
            out = out + self._dot_and_biases(categorical, embedded).unsqueeze(1)
        if self.hparams.y_range is not None:
            lo, hi = self.hparams.y_range
            out = lo + (hi - lo) * torch.sigmoid(out)
        return out

    def _dot_and_biases(self, categorical: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        names = list(self.embeddings)
        out = self.global_bias  # broadcast by the first pair's [rows]
        for a, b in self._pairs:
            (a0, a1), (b0, b1) = self._slices[names[a]], self._slices[names[b]]
            out = out + (embedded[:, a0:a1] * embedded[:, b0:b1]).sum(dim=1)
        for name, bias in self.biases.items():
            out = out + bias.weight[categorical[:, names.index(name)], 0]
        return out

    def _loss_sum(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Sum of the loss over rows with finite targets, and their count (no host sync).
        ``pred`` [rows] or [rows, members]: each member's loss counts (TabM's mean of the
        members' losses), so the count is of rows times members."""
        if pred.ndim == 2:
            target = target.unsqueeze(1).expand_as(pred)
        finite = torch.isfinite(target)
        diff = torch.where(finite, pred - target, 0.0)
        per_row = diff.square() if self.config.loss == "mse" else diff.abs()
        return per_row.sum(), finite.sum()

    # ---- Lightning loop ------------------------------------------------------------------

    def on_fit_start(self) -> None:
        if self.device.type == "cpu":
            reuse_freed_memory()

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        categorical, continuous, target = batch
        members = self.forward_members(categorical, continuous)
        loss_sum, count = self._loss_sum(members, target)
        loss = loss_sum / count.clamp_min(1)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        # [sum of squared pct errors, sum of loss, rows with a finite target, sum of squared
        # errors in the target's units]
        dtype = torch.float32 if self.device.type == "mps" else torch.float64  # MPS: no f64
        self._val_sums = torch.zeros(4, dtype=dtype, device=self.device)

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        categorical, continuous, target = batch
        pred = self(categorical, continuous)
        loss_sum, count = self._loss_sum(pred, target)
        finite = torch.isfinite(target)
        dtype = self._val_sums.dtype
        # (y - yhat) / y = 1 - exp(log yhat - log y): no overflow from exp of large logs.
        pct = torch.where(finite, 1.0 - torch.exp(pred - target), 0.0)
        error = self._inverse(pred.to(dtype)) - self._inverse(target.to(dtype))
        error = torch.where(finite, error, 0.0)
        sums = torch.stack([pct.square().sum().to(dtype), loss_sum.to(dtype),
                            count.to(dtype), error.square().sum()])
        self._val_sums += sums

    def on_validation_epoch_end(self) -> None:
        # Sum over ranks first, then divide: exact metrics over all validation rows.
        sums = self.trainer.strategy.reduce(self._val_sums, reduce_op="sum")
        sq_pct, loss_sum, count, sq_error = sums.float().unbind()  # count 0 -> NaN
        # Identical on every rank after the reduce; sync_dist just keeps Lightning quiet.
        if self.hparams.target_transform == "log":
            self.log("val_rmspe", (sq_pct / count).sqrt(), prog_bar=True, sync_dist=True)
        self.log("val_rmse", (sq_error / count).sqrt(),
                 prog_bar=self.hparams.target_transform != "log", sync_dist=True)
        self.log("val_loss", loss_sum / count, sync_dist=True)

    def _inverse(self, values: torch.Tensor) -> torch.Tensor:
        transform = self.hparams.target_transform
        if transform == "log":
            return torch.exp(values)
        return torch.expm1(values) if transform == "log1p" else values

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        """Log predictions for a ``(categorical, continuous, ...)`` batch."""
        return self(batch[0], batch[1])

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW under a one-cycle schedule over all of the trainer's optimizer steps."""
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
            # One fused kernel per parameter: ~3x faster than the default loop on CPU.
            fused=self.device.type in ("cpu", "cuda") or None,
        )
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.config.learning_rate,
            total_steps=max(1, int(self.trainer.estimated_stepping_batches)),
        )
        schedule = {"scheduler": scheduler, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    # ---- inference without a Trainer -----------------------------------------------------

    def predict_log(
        self, categorical: torch.Tensor, continuous: torch.Tensor,
        batch_size: int = PREDICT_BATCH_ROWS,
    ) -> torch.Tensor:
        """Log predictions [rows] in eval mode, in chunks of ``batch_size`` rows, on CPU.

        Computed in float64 by a copy of the model: in float32 the ensemble's batched matmuls
        round differently for different numbers of rows, so a row's prediction would depend
        (by ~1e-7) on which rows it is predicted with."""
        model = copy.deepcopy(self).eval().double()
        with torch.inference_mode():
            chunks = [
                model(categorical[i : i + batch_size].to(self.device),
                      continuous[i : i + batch_size].to(self.device, torch.float64)).float().cpu()
                for i in range(0, len(categorical), batch_size)
            ]
        return torch.cat(chunks) if chunks else torch.empty(0)


MODULE_ATTRIBUTES = frozenset(dir(nn.ModuleDict()))  # names torch will not take for a module


class ColumnModules(nn.ModuleDict):
    """A ``ModuleDict`` keyed by column names, which may be any text. torch refuses module
    names with a dot, an empty one, or one of ``nn.Module``'s attributes ("training"), so those
    are stored under an escaped key (``module_key``); other names are kept, and with them the
    checkpoints of earlier versions."""

    def __init__(self, modules: dict[str, nn.Module]) -> None:
        super().__init__({module_key(name): module for name, module in modules.items()})
        self.names = list(modules)

    def __getitem__(self, name: str) -> nn.Module:
        return super().__getitem__(module_key(name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and module_key(name) in self._modules

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(self.names)

    def items(self) -> list[tuple[str, nn.Module]]:  # type: ignore[override]
        return [(name, self[name]) for name in self.names]


def module_key(name: str) -> str:
    """``name`` as a module name torch accepts: itself when it is one, else escaped (a dot as
    U+2024, the one-dot leader, and a prefix no column name needs)."""
    if name and "." not in name and name not in MODULE_ATTRIBUTES:
        return name
    return "column\u2024" + name.replace(".", "\u2024")


class EmbeddingLookups(torch.autograd.Function):
    """Rows of many embedding tables, concatenated: ``[rows, sum of embedding sizes]`` from
    ``columns`` ``[tables, rows]`` and one weight per table.

    The same values and gradients as ``nn.Embedding`` per table, but the backward pass is one
    ``index_add_`` per table: on CPU, ``nn.Embedding``'s backward (sort, count, then add)
    took ~9 ms of a ~110 ms step for Rossmann's 32 small tables, this takes ~3 ms.
    """

    @staticmethod
    def forward(ctx: Any, columns: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(columns)
        ctx.shapes = [w.shape for w in weights]
        return torch.cat([w.index_select(0, columns[i]) for i, w in enumerate(weights)], dim=1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (columns,) = ctx.saved_tensors
        parts = grad.split([dim for _, dim in ctx.shapes], dim=1)
        grads = [
            grad.new_zeros(shape).index_add_(0, columns[i], part)
            if ctx.needs_input_grad[i + 1] else None  # frozen tables (one-hot) get none
            for i, (shape, part) in enumerate(zip(ctx.shapes, parts, strict=True))
        ]
        return (None, *grads)


class CheapDropout(nn.Module):
    """``nn.Dropout`` whose mask costs a third as much on CPU.

    PyTorch's CPU dropout draws one 32-bit random number per element (~11 ns each: 6% of a
    training step of the default network). Here each 32-bit draw yields two 15-bit uniforms,
    so ``p`` is resolved to 1/32768. Other devices keep ``nn.functional.dropout``.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.dropped = round(p * 32768) if 0 <= p < 1 else 32768  # of 32768 equal values
        if self.dropped == 32768:
            raise ValueError(f"dropout probability must be in [0, 1 - 2**-16), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, training=True)
        draws = torch.empty((x.numel() + 1) // 2, dtype=torch.int32, device=x.device).random_()
        # random_() on int32 fills [0, 2**31): the low 15 bits of each 16-bit half are uniform.
        halves = draws.view(torch.int16)[: x.numel()].view(x.shape).bitwise_and_(0x7FFF)
        keep = halves >= self.dropped
        return x * keep.to(x.dtype).mul_(32768 / (32768 - self.dropped))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS.

    Each step allocates fresh multi-MB activations; by default glibc serves them with mmap
    and unmaps them on free, so every step page-faults them in again (~8k faults, ~15% of a
    CPU step). Keeping blocks up to 32 MB in the heap removes that. Process-wide; returns
    False (and does nothing) where the C library is not glibc.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 32 << 20) and mallopt(m_trim_threshold, 1 << 30))


def training_flops_per_batch(model: EntityEmbeddingNetwork, batch_size: int) -> int:
    """FLOPs (as counted by ``FlopCounterMode``: matmuls) of one forward + backward pass on a
    random batch of ``batch_size`` rows. Times batches per epoch = the model's epoch FLOPs."""
    n_cat = len(model.embeddings)
    categorical = torch.stack(
        [torch.randint(0, emb.num_embeddings, (batch_size,)) for emb in model.embeddings.values()],
        dim=1,
    ) if n_cat else torch.zeros(batch_size, 0, dtype=torch.int64)
    continuous = torch.randn(batch_size, model.hparams.n_continuous)
    was_training = model.training
    model.train()
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            model(categorical.to(model.device), continuous.to(model.device)).sum().backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return int(counter.get_total_flops())


def _ensemble_mlp(chunks: Sequence[int], hidden: Sequence[int], dropout: Sequence[float],
                  batch_norm: bool, k: int) -> nn.Module:
    """TabM's backbone for hidden layers of any widths: ``k`` views of the input, BatchEnsemble
    layers (shared weights, per-member scalings and biases), and one output per member:
    ``[rows, n_in]`` -> ``[rows, k, 1]``. The first layer's input scaling starts random per
    input column (``chunks``: each column's width), the others at one, as in TabM."""
    n_in = sum(chunks)
    layers: list[nn.Module] = [EnsembleView(k=k)]
    for index, (width, p) in enumerate(zip(hidden, dropout, strict=True)):
        first = index == 0
        layers += [LinearBatchEnsemble(n_in, width, k=k,
                                       scaling_init=("random-signs", "ones") if first else "ones",
                                       first_scaling_init_chunks=list(chunks) if first else None),
                   nn.ReLU(inplace=True)]
        if batch_norm:
            layers.append(BatchNorm1dEnsemble(width, k=k))
        if p > 0:  # skip the layer entirely: even a no-op Dropout costs a pass over memory
            layers.append(CheapDropout(p))
        n_in = width
    layers.append(LinearEnsemble(n_in, 1, k=k))
    return nn.Sequential(*layers)


def _numerical_embeddings(kind: str, n_continuous: int, size: int,
                          bins: Sequence[Sequence[float]] | None) -> nn.Module | None:
    if kind == "piecewise":
        edges = [torch.tensor(b, dtype=torch.float32) for b in bins or []]
        with warnings.catch_warnings():  # a column of two values has one bin: that is fine
            warnings.filterwarnings("ignore", message=".*just two bin edges")
            return PiecewiseLinearEmbeddings(edges, size, activation=False, version="B")
    if kind == "periodic":  # RealMLP's PBLD: periodic, then a linear layer and a ReLU each
        return PeriodicEmbeddings(n_continuous, size, lite=False)
    return None


def numerical_bins(continuous: torch.Tensor, n_bins: int) -> list[list[float]]:
    """Bin edges of each continuous column for the piecewise-linear embedding: quantiles of
    the given (training) rows, by ``rtdl_num_embeddings.compute_bins``. A column with one
    value gets one bin around it (compute_bins needs two distinct values)."""
    edges: list[list[float]] = []
    for column in continuous.t():
        values = column[torch.isfinite(column)]
        if values.unique().numel() < 2 or len(values) < 3:
            low = float(values.min()) if values.numel() else 0.0
            high = float(values.max()) if values.numel() else 0.0
            edges.append([low, high] if high > low else [low - 1.0, low + 1.0])
            continue
        n = max(2, min(n_bins, len(values) - 1))
        edges.append(compute_bins(values.unsqueeze(1), n)[0].tolist())
    return edges


__all__ = [
    "CheapDropout",
    "EmbeddingLookups",
    "EntityEmbeddingNetwork",
    "default_embedding_size",
    "numerical_bins",
    "reuse_freed_memory",
    "training_flops_per_batch",
]
