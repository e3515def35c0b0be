"""EmbeddingRegressor: entity embeddings for any table, as a scikit-learn estimator.

``fit(X, y)`` infers which columns are categorical (``columns.infer_roles``), learns an
embedding per categorical column together with an MLP (``model.EntityEmbeddingNetwork``,
trained by Lightning through ``trainer.train_members``) into ``out`` or, without it, a
temporary directory that is removed (the run is kept in memory until ``save``). ``predict``
returns an array, ``transform`` the learned embedding features (``EmbeddingEncoder``),
``embeddings_`` one labelled frame per categorical column, and ``save`` / ``load`` a run
directory of plain JSON plus weights-only checkpoints.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted, column_or_1d

from rossmann_embed.tabular import statistics
from rossmann_embed.tabular.columns import ColumnRoles, infer_roles
from rossmann_embed.tabular.config import FitConfig, NetworkConfig, per_layer_dropout
from rossmann_embed.tabular.console import quiet_libraries
from rossmann_embed.tabular.data import InMemoryData
from rossmann_embed.tabular.encoding import (
    ColumnSpec,
    Preprocessor,
    forward_target,
)
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.files import atomic_write, write_json
from rossmann_embed.tabular.frames import to_frame
from rossmann_embed.tabular.metrics import mae, rmse, rmspe
from rossmann_embed.tabular.run_directory import load_tabular_run, write_manifest
from rossmann_embed.tabular.streaming import (
    Split,
    StreamedData,
    StreamedTable,
    row_groups,
)
from rossmann_embed.tabular.tables import (
    ROWS_PER_GROUP,
    check_numbers,
    missing_numbers,
    require_columns,
)
from rossmann_embed.tabular.trainer import TRAINING_FILE, train_members


def estimator_parameters() -> dict[str, Any]:
    """The estimator's parameters and their defaults: ``FitConfig``'s options (but the file,
    the target and ``out``), immutable (lists as tuples, one dropout rate for every layer,
    empty containers as None), then ``y_range`` and ``out``; stated once, in the config."""
    defaults = FitConfig(table="", target="", out="")
    parameters: dict[str, Any] = {}
    for name in CONFIG_FIELDS:
        value = getattr(defaults, name)
        if name == "dropout":
            value = value[0]
        elif isinstance(value, list | dict):
            value = tuple(value) if value else None
        parameters[name] = value
    return {**parameters, "y_range": "auto", "out": None}


# The table's options first (``drop``: X is the columns to use), then the network's.
FILE_OPTIONS = ("table", "target", "out", "drop", "stream")  # `fit`'s, not the estimator's
CONFIG_FIELDS = [*(f.name for f in fields(FitConfig) if f.name not in FILE_OPTIONS
                   and f.name not in NetworkConfig.__dataclass_fields__),
                 *NetworkConfig.__dataclass_fields__]
ESTIMATOR_FILE = "estimator.json"
TARGET = "__target__"  # the target's column inside the model's frames
Y_RANGE_MARGIN = 0.1  # auto y_range: the training targets' span, widened by 10% each side


@dataclass(frozen=True)
class ModelColumns:
    """A table's rows as the model sees them: dates as calendar parts, codes also as numbers,
    the target renamed (a function object, so data-loader workers can take a copy)."""

    roles: ColumnRoles
    target: str

    def __call__(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return self.roles.expand(frame).rename({self.target: TARGET})


class FilledValuesWarning(UserWarning):
    """``predict`` filled in values: unseen or missing categories, missing numbers."""


class EmbeddingRegressor(RegressorMixin, TransformerMixin, BaseEstimator):
    """Entity-embedding regressor (Guo & Berkhahn 2016) for any table.

    The defaults are ``FitConfig``'s, the options of `rossmann-embed fit` (a test checks
    that the two agree); the parameters are stored as given and checked by ``fit``.

    Args:
        categorical: columns to embed; the others' roles are inferred (strings, booleans and
            integers with few values are categorical, other numbers continuous, dates become
            calendar parts). ``roles_`` holds the decision and why.
        continuous: columns taken as numbers.
        time_column: with it, the latest ``validation_fraction`` of its span is validation
            (the way a forecast is checked); without, a seeded random fraction of the rows.
        validation_fraction: share held out for early stopping and the best checkpoint;
            0 trains on every row for ``epochs`` epochs.
        target_transform: ``"log"`` (targets > 0; validation reports RMSPE), ``"log1p"``
            (targets >= 0), ``"none"``, or ``"auto"``: ``log1p`` for counts (whole numbers
            >= 0), ``none`` otherwise, since the reported score is RMSE in the target's units.
        epochs: training epochs at most (early stopping may end sooner); None: enough for
            2,000 optimizer steps (8 to 200).
        batch_size: rows a step; None: from 256 to 2048 as the table grows.
        learning_rate: peak of the one-cycle schedule (AdamW).
        weight_decay: AdamW's decoupled weight decay.
        loss: ``"mse"`` or ``"mae"`` of the target as the network sees it.
        seed: seed of the first member (and of the random validation split).
        seeds: members of a seed ensemble: ``seed``, ``seed + 1``, ...
        embedding_sizes: a column's embedding size instead of fastai's rule, e.g.
            ``{"shop": 16}``.
        hidden_sizes: widths of the MLP's hidden layers.
        dropout: dropout of each hidden layer (one rate: every layer).
        embedding_dropout: dropout of the embedded columns.
        batch_norm: batch normalisation after each hidden layer.
        ensemble_size: members of the TabM ensemble that share weights inside one network
            (1: a plain MLP).
        numerical_embedding: how continuous columns enter the network: ``"piecewise"``
            (linear on bins of the training quantiles), ``"periodic"`` or ``"none"``.
        continuous_scaling: ``"quantile"`` (through training quantiles onto a normal) or
            ``"standard"`` (mean and standard deviation).
        numerical_bins: bins of the piecewise-linear embedding.
        numerical_embedding_size: width of each continuous column's embedding.
        factorization: pairs of categorical columns (same embedding size) whose dot product,
            plus a learned bias per category and a global bias, joins the output: fastai's
            ``EmbeddingDotBias``; with ``mlp=False`` it is the whole model (collaborative
            filtering), with the MLP beside it a DeepFM-like model.
        mlp: False: the factorization alone.
        monitor: ``"val_rmse"`` or ``"val_rmspe"``: what early stopping and the best
            checkpoint follow.
        patience: epochs without a better validation score before stopping; None: a quarter
            of the epochs, at least 5.
        accelerator: Lightning's.
        devices: Lightning's.
        strategy: Lightning's (``"ddp"``: with a bounded wait on collectives).
        precision: Lightning's.
        logger: ``"csv"`` or ``"tensorboard"``, under the run's ``logs/``.
        num_nodes: Lightning's: machines the run trains on (torchrun, SLURM).
        loader_workers: data-loader worker processes of a streamed table.
        y_range: ``(lo, hi)`` bounds of the output in the transformed space, ``"auto"`` (the
            training targets' span widened by 10%) or ``None`` (unbounded).
        out: the run directory to train into; default a temporary one (``save`` keeps it).
    """

    def __init__(
        self,
        *,
        categorical: Sequence[str] | None = None,
        continuous: Sequence[str] | None = None,
        time_column: str | None = None,
        validation_fraction: float = 0.1,
        target_transform: str = "auto",
        epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate: float = 0.003,
        weight_decay: float = 1e-05,
        loss: str = "mse",
        seed: int = 0,
        seeds: int = 1,
        embedding_sizes: dict[str, int] | None = None,
        hidden_sizes: Sequence[int] = (256, 256),
        dropout: float | Sequence[float] = 0.0,
        embedding_dropout: float = 0.04,
        batch_norm: bool = False,
        ensemble_size: int = 8,
        numerical_embedding: str = "piecewise",
        continuous_scaling: str = "quantile",
        numerical_bins: int = 48,
        numerical_embedding_size: int = 16,
        factorization: Sequence[Sequence[str]] | None = None,
        mlp: bool = True,
        monitor: str = "val_rmse",
        patience: int | None = None,
        accelerator: str = "auto",
        devices: str = "auto",
        strategy: str = "auto",
        precision: str = "32-true",
        logger: str = "csv",
        num_nodes: int = 1,
        loader_workers: int = 0,
        y_range: str | tuple[float, float] | None = "auto",
        out: str | None = None,
    ) -> None:
        # scikit-learn convention: store the parameters untouched, check them in fit.
        self.categorical, self.continuous = categorical, continuous
        self.time_column, self.validation_fraction = time_column, validation_fraction
        self.target_transform = target_transform
        self.epochs, self.batch_size = epochs, batch_size
        self.learning_rate, self.weight_decay, self.loss = learning_rate, weight_decay, loss
        self.seed, self.seeds = seed, seeds
        self.embedding_sizes, self.hidden_sizes = embedding_sizes, hidden_sizes
        self.dropout, self.embedding_dropout = dropout, embedding_dropout
        self.batch_norm, self.ensemble_size = batch_norm, ensemble_size
        self.numerical_embedding, self.continuous_scaling = numerical_embedding, continuous_scaling
        self.numerical_bins = numerical_bins
        self.numerical_embedding_size = numerical_embedding_size
        self.factorization, self.mlp = factorization, mlp
        self.monitor, self.patience = monitor, patience
        self.accelerator, self.devices, self.strategy = accelerator, devices, strategy
        self.precision, self.logger = precision, logger
        self.num_nodes, self.loader_workers = num_nodes, loader_workers
        self.y_range, self.out = y_range, out

    # ---- scikit-learn API ----------------------------------------------------------------------

    def fit(self, X: Any, y: Any, *, resume: bool = False) -> EmbeddingRegressor:
        """Infer the columns' roles, split off validation rows, train into the run directory.

        ``X`` is a table in memory (polars, pandas, numpy) and ``y`` its target; or, for a
        table too large for memory, a parquet path (or list of paths) or a polars
        ``LazyFrame`` and ``y`` the name of its target column (``fit_parquet``). ``resume``
        continues an interrupted fit into the same ``out`` from its last checkpoints."""
        if _is_parquet_source(X):
            if not isinstance(y, str):
                raise ValueError("with a parquet path or a LazyFrame as X, y must be the name "
                                 f"of its target column, got {type(y).__name__}")
            if isinstance(X, pl.LazyFrame):
                with tempfile.TemporaryDirectory(prefix="embreg-rows-") as directory:
                    path = Path(directory) / "rows.parquet"
                    X.sink_parquet(path, row_group_size=ROWS_PER_GROUP)
                    return self.fit_parquet(path, y, source="X", resume=resume)
            return self.fit_parquet(X, y, resume=resume)
        config = self.check_params()
        frame = to_frame(X, type(self).__name__)
        target = _target_array(y, frame.height)
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.width
        self.roles_ = infer_roles(frame, categorical=self.categorical,
                                  continuous=self.continuous, source="X",
                                  time_column=self.time_column)
        check_numbers(frame, self._continuous_inputs(frame), "X")
        self.target_transform_ = _choose_transform(
            self.target_transform, float(target.min()) if len(target) else 1.0,
            bool(np.all(target == np.round(target))))
        rows = self.roles_.expand(frame).with_columns(pl.Series(TARGET, target))
        train, validation = self._split(frame, rows)
        spec = ColumnSpec(
            {c: train.get_column(c).n_unique() for c in self.roles_.categorical},
            list(self.roles_.continuous), TARGET, self.target_transform_)
        preprocessor = Preprocessor(spec, scaling=config.continuous_scaling).fit(train)
        transformed = forward_target(train.get_column(TARGET).to_numpy(), spec.target_transform)
        self.y_range_ = _y_range(self.y_range, transformed.min(), transformed.max())
        val_tensors = preprocessor.transform(validation) if validation.height else None
        data = InMemoryData(preprocessor.transform(train), val_tensors)
        if not self._train(config, preprocessor, data, resume):
            return self
        self.validation_ = self._scores(validation) if validation.height else {}
        self.validation_["rows"] = validation.height
        self.validation_["rows_train"] = train.height
        if self.out:
            self._write_description(Path(self.out))
        return self

    def fit_parquet(self, paths: str | Path | Sequence[str | Path], target: str,
                    columns: Sequence[str] | None = None, *, source: str | None = None,
                    first_line: int | None = None, resume: bool = False
                    ) -> EmbeddingRegressor:
        """Fit on parquet files without holding them in memory: the statistics (roles from
        the first rows, vocabularies, scaling, the split) by polars' streaming engine, then
        batches streamed from the files' row groups, each process its own
        (``streaming.StreamedData``). ``columns``: the inputs (default: all but the target);
        ``source`` and ``first_line`` name the file and line of row 0 in messages."""
        config = self.check_params()
        paths = [str(paths)] if isinstance(paths, str | Path) else [str(p) for p in paths]
        source = source or paths[0]
        schema = pl.scan_parquet(paths).collect_schema()
        if target not in schema:
            raise InputError.at(source, f"a target column named {target!r} (columns: "
                                f"{', '.join(schema)})", column=target)
        if not schema[target].is_numeric():
            raise InputError.at(source, "a numeric target", column=target,
                                value=str(schema[target]))
        inputs = list(columns) if columns is not None else [c for c in schema if c != target]
        head = statistics.streamed(pl.scan_parquet(paths).select(inputs)
                                   .head(statistics.INFER_ROWS))
        self.feature_names_in_ = np.asarray(inputs, dtype=object)
        self.n_features_in_ = len(inputs)
        self.roles_ = infer_roles(head, categorical=self.categorical,
                                  continuous=self.continuous, source=source,
                                  time_column=self.time_column, first_line=first_line)
        table = StreamedTable(row_groups(paths), [*inputs, target],
                              ModelColumns(self.roles_, target), Split(0.0))
        whole = table.lazy(part=None)
        statistics.check_streamed_numbers(whole, self._continuous_inputs(head), source, first_line)
        summary = statistics.target_summary(whole, TARGET, source, first_line)
        self.target_transform_ = _choose_transform(self.target_transform, summary["lowest"],
                                                   summary["whole"])
        table = replace(table, split=self._streamed_split(table, summary["rows"])).count()
        train_rows = sum(table.rows("train"))
        lazy_train = table.lazy("train")
        sample = statistics.training_sample(lazy_train, train_rows, self.seed)
        spec = ColumnSpec({c: 0 for c in self.roles_.categorical},
                          list(self.roles_.continuous), TARGET, self.target_transform_)
        preprocessor = Preprocessor(spec, scaling=config.continuous_scaling).fit_streamed(
            lazy_train, sample)
        span = statistics.target_summary(lazy_train, TARGET, source, first_line)
        low, high = forward_target(np.array([span["lowest"], span["highest"]]),
                                   spec.target_transform)
        self.y_range_ = _y_range(self.y_range, low, high)
        data = StreamedData(table, preprocessor, preprocessor.transform(sample),
                            workers=config.loader_workers)
        if not self._train(config, preprocessor, data, resume):
            return self
        self.validation_ = self._streamed_scores(table) if data.validated else {}
        self.validation_["rows"] = sum(table.rows("validation"))
        self.validation_["rows_train"] = train_rows
        if self.out:
            self._write_description(Path(self.out))
        return self

    def _train(self, config: NetworkConfig, preprocessor: Preprocessor,
               data: InMemoryData | StreamedData, resume: bool = False) -> bool:
        """Train the members into ``out`` (or a temporary directory); keep the models and the
        run's files. Returns whether this process reports (the only one, or DDP's rank 0):
        the others stop here."""
        if self.out:
            return self._train_into(config, Path(self.out), preprocessor, data, resume)
        with tempfile.TemporaryDirectory(prefix="embreg-") as run_dir:
            return self._train_into(config, Path(run_dir), preprocessor, data)

    def _train_into(self, config: NetworkConfig, run_dir: Path, preprocessor: Preprocessor,
                    data: InMemoryData | StreamedData, resume: bool = False) -> bool:
        earlier = sorted((run_dir / "checkpoints").glob("seed-*"))
        if earlier and not resume:
            warnings.warn(f"{type(self).__name__}.fit: replacing the checkpoints of an earlier "
                          f"fit in {run_dir / 'checkpoints'}", stacklevel=4)
            shutil.rmtree(run_dir / "checkpoints")
        run_dir.mkdir(parents=True, exist_ok=True)
        with quiet_libraries():
            reports = train_members(config, run_dir, preprocessor, data, self.y_range_,
                                    resume=resume, summary=False)
        if reports:
            self.run_ = load_tabular_run(run_dir)
            self.run_files_ = run_files(run_dir)
            self.training_ = json.loads(self.run_files_[TRAINING_FILE])
        return reports

    def predict(self, X: Any) -> np.ndarray:
        """Predictions in the target's units: the members' mean in the transformed space. A
        warning counts the values filled in (``filled_values``)."""
        frame = self._model_frame(X)
        notes = describe_filled(self._filled(frame), self.run_.preprocessor.fill)
        if notes:
            warnings.warn(f"{type(self).__name__}.predict: {'; '.join(notes)}",
                          FilledValuesWarning, stacklevel=2)
        return self.run_.predict(frame, "X")

    def filled_values(self, X: Any) -> dict[str, dict[str, int]]:
        """What prediction fills in, per column, non-zero counts only: ``unknown_categories``
        (values not seen in training, or missing: they take the embedding's unknown row) and
        ``missing_numbers`` (blank or NaN continuous values: they take the training median,
        or the mean under ``continuous_scaling="standard"``)."""
        return self._filled(self._model_frame(X))

    def _filled(self, frame: pl.DataFrame) -> dict[str, dict[str, int]]:
        unknown = self.run_.preprocessor.unknown_counts(frame)
        missing = missing_numbers(frame, list(self.run_.preprocessor.spec.continuous))
        return {"unknown_categories": {c: n for c, n in unknown.items() if n},
                "missing_numbers": {c: n for c, n in missing.items() if n}}

    def transform(self, X: Any) -> np.ndarray:
        """The learned embedding features: each categorical input (date parts included)
        replaced by its vectors, continuous inputs passed through (first member's vectors)."""
        from rossmann_embed.tabular.embedding_encoder import EmbeddingEncoder

        frame = self._model_frame(X)
        columns = [*self.roles_.categorical, *self.roles_.continuous]
        encoder = EmbeddingEncoder.from_model(self.run_.models[0], self.run_.preprocessor,
                                              columns=columns)
        return encoder.transform(frame.select(columns))

    def unknown_categories(self, X: Any) -> dict[str, int]:
        """Per categorical column, how many rows of ``X`` hold a value not seen in training
        (missing values included): they take the embedding's unknown row."""
        return self.run_.preprocessor.unknown_counts(self._model_frame(X))

    @property
    def embeddings_(self) -> dict[str, pl.DataFrame]:
        """One labelled frame per categorical column (``embedding_tables.embedding_table``:
        value, index, dim_0 ..), from the first member: each seed learns its own embedding
        space."""
        from rossmann_embed.tabular.embedding_tables import embedding_table

        check_is_fitted(self, "run_")
        model, vocabularies = self.run_.models[0], self.run_.preprocessor.vocabularies
        tables = {c: embedding_table(c, vocabularies[c],
                                     model.embeddings[c].weight.detach().cpu().numpy())
                  for c in vocabularies}
        for c, bias in getattr(model, "biases", {}).items():  # factorization: bias after index
            values = bias.weight.detach().cpu().numpy()[:, 0].astype(np.float64)
            table = tables[c].with_columns(bias=pl.Series(values))
            tables[c] = table.select("value", "index", "bias", *table.columns[2:-1])
        return tables

    def neighbours(self, column: str, k: int = 10) -> pl.DataFrame:
        """Each category of ``column`` with its ``k`` nearest categories by cosine similarity
        of their embeddings (``embedding_tables.nearest_neighbours``), e.g. the shops most
        like shop 7."""
        from rossmann_embed.tabular.embedding_tables import nearest_neighbours

        tables = self.embeddings_
        if column not in tables:
            raise ValueError(f"{column!r} is not a categorical column; they are {list(tables)}")
        return nearest_neighbours(tables[column], k)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True  # a missing category takes the unknown row
        tags.regressor_tags.poor_score = True  # a few epochs on tiny random checks
        return tags

    # ---- persistence ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the run directory to ``path``: ``estimator.json`` (parameters, column roles,
        validation scores), each member's weights-only checkpoint, the metrics and the
        training budget."""
        check_is_fitted(self, "run_")
        path = Path(path)
        members = {Path(name).parent.name for name in self.run_files_}
        for stale in sorted((path / "checkpoints").glob("seed-*")):
            if stale.name not in members:  # another run's member: load must not mix it in
                warnings.warn(f"{type(self).__name__}.save: removing {stale}, a member of an "
                              "earlier run", stacklevel=2)
                shutil.rmtree(stale)
        for name, content in self.run_files_.items():
            atomic_write(path / name, lambda tmp, content=content: tmp.write_bytes(content))
        self._write_description(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingRegressor:
        """An estimator saved by ``save`` (or trained with ``out``); weights-only loading. A
        damaged ``estimator.json`` is an ``InputError`` naming it and what it should hold."""
        path = Path(path)
        description = path / ESTIMATOR_FILE
        if not description.is_file():
            raise InputError.at(str(path), f"a run directory with {ESTIMATOR_FILE} (written by "
                                "`rossmann-embed fit` or EmbeddingRegressor.save)")
        try:
            data = json.loads(description.read_text(encoding="utf-8"))
            estimator = cls(**data["params"])
            estimator.feature_names_in_ = np.asarray(data["feature_names_in"], dtype=object)
            estimator.n_features_in_ = len(data["feature_names_in"])
            estimator.roles_ = ColumnRoles.from_dict(data["roles"])
            estimator.target_transform_ = data["target_transform"]
            estimator.y_range_ = tuple(data["y_range"]) if data["y_range"] else None
            estimator.validation_ = dict(data["validation"])
        # Valid JSON of another shape fails in any of these ways; the file is the cause.
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise InputError.at(str(description), "the estimator's description as `fit` or "
                                "EmbeddingRegressor.save writes it (params, feature_names_in, "
                                f"roles, target_transform, y_range, validation): "
                                f"{type(error).__name__}: {error}") from None
        estimator.run_ = load_tabular_run(path)
        estimator.run_files_ = run_files(path)
        training = estimator.run_files_.get(TRAINING_FILE)
        estimator.training_ = json.loads(training) if training else {}
        return estimator

    def export_onnx(self, path: str | Path, target: str | None = None) -> Path:
        """Write the fitted model as one ONNX model at ``path`` (``.onnx``): the table's
        columns in (text, float64 numbers with NaN when missing, dates as days since
        1970-01-01), the prediction in the target's units out, with the encoding, the
        scaling, every member and the inverse target transform inside. ``path`` with
        ``.json`` describes each input. Checked first: onnxruntime must predict as
        ``predict`` does, or nothing is written (``onnx_export.ExportError``). ``target``
        names the target in that description. Needs the ``export`` extra."""
        from rossmann_embed.tabular.onnx_export import export_estimator

        check_is_fitted(self, "run_")
        return export_estimator(self, path, target)

    # ---- helpers -------------------------------------------------------------------------------

    def check_params(self) -> NetworkConfig:
        """The network and Trainer options, checked (``fit`` does it first) by ``FitConfig``:
        an ``OptionError`` (a ValueError) names the parameter, the value and what is
        allowed."""
        hidden = list(np.atleast_1d(self.hidden_sizes).tolist())
        options = {name: getattr(self, name) for name in CONFIG_FIELDS}
        config = FitConfig(**{
            **options, "table": "", "target": "", "out": "", "hidden_sizes": hidden,
            "categorical": list(self.categorical or []),
            "continuous": list(self.continuous or []),
            "dropout": per_layer_dropout(list(np.atleast_1d(self.dropout).tolist()), len(hidden)),
            "embedding_sizes": dict(self.embedding_sizes or {}),
            "factorization": [list(pair) for pair in self.factorization or []]})
        config.check()
        return NetworkConfig(**{name: getattr(config, name)
                                for name in NetworkConfig.__dataclass_fields__})

    def _split(self, frame: pl.DataFrame, rows: pl.DataFrame) -> tuple[pl.DataFrame, ...]:
        """(train, validation): the latest share of the time column's span, or random rows."""
        fraction = self.validation_fraction
        if fraction == 0 or rows.height < 2:
            return rows, rows.clear()
        if self.time_column is not None:
            if self.time_column not in frame.columns:
                raise ValueError(f"time_column {self.time_column!r} is not a column of X "
                                 f"(columns: {frame.columns})")
            column = frame.get_column(self.time_column)
            if not (column.dtype.is_temporal() or column.dtype.is_numeric()):
                raise ValueError(f"time_column {self.time_column!r} must hold dates, times or "
                                 f"numbers, got {column.dtype}")
            time = column.to_physical().cast(pl.Float64)
            start, end = time.min(), time.max()
            # Rows without a time train: a null would drop them from both sides.
            held = ((time >= end - fraction * (end - start)).fill_null(False)
                    if end is not None and end > start else None)
            if held is None or held.all():
                raise ValueError(f"time_column {self.time_column!r} spans too little time to "
                                 "hold out its latest part: use a random split (no "
                                 "time_column) or more history")
        else:
            rng = np.random.default_rng(self.seed)
            held = pl.Series(rng.random(rows.height) < fraction)
        return rows.filter(~held), rows.filter(held)

    def _streamed_split(self, table: StreamedTable, rows: int) -> Split:
        """The split of ``fit_parquet``: as ``_split``, by the time column or by a seeded
        hash of each row's index."""
        fraction = self.validation_fraction if rows >= 2 else 0.0
        if fraction == 0 or self.time_column is None:
            return Split(fraction, self.seed)
        if self.time_column not in table.columns:
            raise ValueError(f"time_column {self.time_column!r} is not a column of X "
                             f"(columns: {table.columns})")
        cut = statistics.time_cut(table.lazy(part=None), self.time_column, fraction)
        return Split(fraction, self.seed, self.time_column, cut)

    def _model_frame(self, X: Any) -> pl.DataFrame:
        """``X`` checked against the fitted columns, with dates expanded."""
        check_is_fitted(self, "run_")
        names = [str(n) for n in self.feature_names_in_]
        frame = to_frame(X, type(self).__name__, names)
        require_columns(frame, self.roles_.inputs, "X")
        check_numbers(frame, self._continuous_inputs(frame), "X")
        return self.roles_.expand(frame)

    def _continuous_inputs(self, frame: pl.DataFrame) -> list[str]:
        """The continuous columns of ``frame`` as given (not those derived from dates)."""
        return [c for c in self.roles_.continuous if c in frame.columns]

    def _scores(self, validation: pl.DataFrame) -> dict[str, float]:
        actual = validation.get_column(TARGET).to_numpy()
        predicted = self.run_.predict(validation)
        scores = {"rmse": rmse(actual, predicted), "mae": mae(actual, predicted)}
        if (actual > 0).all():
            scores["rmspe"] = rmspe(actual, predicted)
        return scores

    def _streamed_scores(self, table: StreamedTable) -> dict[str, float]:
        """``_scores`` over the validation rows of every row group, one group at a time."""
        sums = np.zeros(4)  # squared errors, absolute errors, squared pct errors, rows
        positive = True
        for group, rows in zip(table.groups, table.rows("validation"), strict=True):
            if rows:
                validation = table.read(group, "validation")
                actual = validation.get_column(TARGET).to_numpy()
                error = self.run_.predict(validation) - actual
                positive = positive and bool((actual > 0).all())
                with np.errstate(divide="ignore", invalid="ignore"):
                    pct = error / actual
                sums += [np.square(error).sum(), np.abs(error).sum(),
                         np.square(pct).sum() if positive else 0.0, len(actual)]
        scores = {"rmse": float(np.sqrt(sums[0] / sums[3])), "mae": float(sums[1] / sums[3])}
        if positive:
            scores["rmspe"] = float(np.sqrt(sums[2] / sums[3]))
        return scores

    def _write_description(self, run_dir: Path) -> None:
        write_manifest(run_dir, "fit")
        write_json(run_dir / ESTIMATOR_FILE, {
            "params": _plain(self.get_params()),
            "feature_names_in": [str(n) for n in self.feature_names_in_],
            "roles": self.roles_.to_dict(),
            "target_transform": self.target_transform_,
            "y_range": list(self.y_range_) if self.y_range_ else None,
            "validation": self.validation_,
        })


def describe_filled(filled: dict[str, dict[str, int]], fill: str) -> list[str]:
    """One phrase per column of ``EmbeddingRegressor.filled_values``, for a user to read."""
    unknown = [f"{n:,} rows have a {c} value the model never saw (they take the unknown "
               "embedding)" for c, n in filled.get("unknown_categories", {}).items()]
    missing = [f"{n:,} rows have no {c} value (blank or NaN: they take the training {fill})"
               for c, n in filled.get("missing_numbers", {}).items()]
    return unknown + missing


def run_files(run_dir: Path) -> dict[str, bytes]:
    """What ``save`` writes of a run, by path in the run directory: each member's best
    checkpoint, the metrics and the training budget."""
    paths = [*sorted(run_dir.glob("checkpoints/seed-*/best.ckpt")),
             *(run_dir / name for name in ("metrics.csv", TRAINING_FILE))]
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in paths if p.is_file()}


def _target_array(y: Any, rows: int) -> np.ndarray:
    if y is None:
        raise ValueError("EmbeddingRegressor requires y to be passed, but the target y is None")
    values = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    if values.ndim == 2 and values.shape[1] == 1:
        values = column_or_1d(values, warn=True)  # scikit-learn's DataConversionWarning
    if values.ndim != 1:
        raise ValueError(f"y must be one column of numbers, got shape {values.shape}")
    if len(values) != rows:
        raise ValueError(f"X has {rows} rows but y has {len(values)}")
    try:
        values = values.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError("y must hold numbers (a regression target), got values such as "
                         f"{values[:3].tolist()}") from None
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"y has {int(bad.sum())} missing or infinite values (first at row "
                         f"{int(np.argmax(bad))}): drop those rows or fill them before fit")
    return values


def _is_parquet_source(X: Any) -> bool:
    """Whether ``X`` names parquet files (a path, a list of ``.parquet`` paths) or is a polars
    ``LazyFrame``, rather than a table in memory."""
    if isinstance(X, str | Path | pl.LazyFrame):
        return True
    return (isinstance(X, list | tuple) and bool(X)
            and all(isinstance(p, str | Path) and str(p).endswith(".parquet") for p in X))


def _choose_transform(requested: str, lowest: float, whole: bool) -> str:
    """The target transform for targets whose smallest is ``lowest`` (all ``whole``
    numbers, or not)."""
    if requested == "auto":  # counts are learned on a log scale, anything else as it is
        return "log1p" if lowest >= 0 and whole else "none"
    if requested == "log" and lowest <= 0:
        raise ValueError(f"target_transform='log' needs every target > 0, but the smallest "
                         f"is {lowest:g}: use 'log1p' for targets >= 0, or 'none'")
    if requested == "log1p" and lowest < 0:
        raise ValueError(f"target_transform='log1p' needs every target >= 0, but the "
                         f"smallest is {lowest:g}: use 'none'")
    return requested


def _y_range(requested: Any, low: float, high: float) -> tuple[float, float] | None:
    """The output's bounds in the model's space: ``requested``, or with ``"auto"`` the
    training targets' span (``low`` to ``high``, transformed) widened."""
    if requested is None:
        return None
    if isinstance(requested, str):
        if requested != "auto":
            raise ValueError(f"y_range must be 'auto', None or (low, high), got {requested!r}")
        low, high = float(low), float(high)
        margin = Y_RANGE_MARGIN * (high - low) or 1.0
        return (low - margin, high + margin)
    low, high = (float(v) for v in requested)
    if not low < high:
        raise ValueError(f"y_range must be (low, high) with low < high, got {requested!r}")
    return (low, high)


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON: tuples as lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
