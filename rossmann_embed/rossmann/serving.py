"""A `train` run as one ONNX model over Rossmann's feature rows, served by onnxruntime alone.

A service computes a day's feature rows once (``serving_rows``: the features ``submit``
builds from Kaggle-layout files, plus LightGBM's numeric view of them, each prefixed
``LIGHTGBM_PREFIX``) and calls the model, which holds the rest of the forecast:

- the network's encoding, scaling and members (``tabular.onnx_export``), their mean in log;
- the store levels and the RMSPE shift, looked up by store and weekday;
- the boosted half: the store factors looked up by store, each LightGBM booster (converted
  by ``onnxmltools``, double inputs), their mean, blended with the network in log space;
- 0 on closed days, as ``predict_sales``.

Before anything is written, onnxruntime must predict the validation rows the caller gives
(or the data's test.csv) as ``predict_sales`` does, within ``PARITY_RTOL``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from rossmann_embed.rossmann.boosting import LIGHTGBM_FEATURES, Boosted, lightgbm_features
from rossmann_embed.rossmann.inference import Run, predict_sales, read_target, target_rows
from rossmann_embed.rossmann.kaggle_files import check_stores_known, read_rossmann
from rossmann_embed.rossmann.levels import RMSPE_SHIFT
from rossmann_embed.tabular.columns import ColumnRoles
from rossmann_embed.tabular.files import atomic_write, write_json
from rossmann_embed.tabular.onnx_export import (
    INTERNAL,
    ML_OPSET,
    PARITY_RTOL,
    ExportError,
    ServingInput,
    ServingModule,
    check_model_path,
    describe,
    f64,
    onnx_feed,
    onnx_model,
    onnx_predict,
    relative_difference,
    serving_inputs,
)

LIGHTGBM_PREFIX = "lightgbm_"  # LightGBM's view of a feature row, beside the network's
OPEN = "Open"  # closed days are predicted 0
SCORES = "lightgbm scores"  # the boosters' raw scores, fed into the exported torch graph
LIGHTGBM_OPSET = 15  # the highest onnxmltools converts LightGBM at


def serving_rows(data_dir: str | Path, test: str | Path | None = None, *,
                 weather: bool = True, trends: bool = True) -> pl.DataFrame:
    """The rows an exported `train` run takes for a file in Kaggle's test layout (default: the
    data dir's test.csv), in Id order: every feature ``submit`` builds from the history in
    ``data_dir``, and ``LIGHTGBM_PREFIX`` + each of LightGBM's features. ``weather`` and
    ``trends``: as the run was trained (its exported JSON says)."""
    data = read_rossmann(data_dir, weather=weather, trends=trends)
    target = data.test if test is None else read_target(test)
    check_stores_known(target, data.stores, str(test or Path(data_dir) / "test.csv"))
    rows = pl.concat(rows for rows, _ in target_rows(data, target))
    return with_lightgbm_view(rows).sort("Id")


def with_lightgbm_view(rows: pl.DataFrame) -> pl.DataFrame:
    """Feature rows with ``LIGHTGBM_PREFIX`` + each column of ``lightgbm_features``, as
    float64 (NaN for missing)."""
    view = lightgbm_features(rows).cast(pl.Float64).fill_null(np.nan)
    return rows.hstack(view.select(pl.all().name.prefix(LIGHTGBM_PREFIX)))


def export_train_run(run: Run, path: str | Path, rows: pl.DataFrame) -> Path:
    """Write ``run`` as one ONNX model at ``path`` and its inputs' description beside it (with
    ``.json``), after checking on ``rows`` (``serving_rows``) that onnxruntime predicts as
    ``predict_sales`` does. Returns ``path``."""
    path = check_model_path(path)
    if run.boosted is not None and importlib.util.find_spec("onnxmltools") is None:
        raise ExportError("exporting a boosted half needs onnxmltools: pip install "
                          "'rossmann-embed[export]'")
    inputs = forecast_inputs(run)
    module = ForecastModule(run, inputs)
    if run.boosted is None:
        model = onnx_model(module, inputs)
    else:
        bags = len(run.boosted.forecaster.boosters_)
        model = with_boosted_half(onnx_model(module, inputs,
                                             {SCORES: torch.zeros(1, bags, dtype=torch.float64)}),
                                  run.boosted)
    check_forecast_parity(model, run, inputs, rows)
    atomic_write(path, lambda tmp: tmp.write_bytes(model.SerializeToString()))
    description = {**describe(inputs, path.name, "Sales"),
                   "features": run.feature_options,
                   "serving_rows": "rossmann_embed.rossmann.serving.serving_rows(data_dir, "
                   "test, **features) computes the inputs from Kaggle-layout files"}
    write_json(path.with_suffix(".json"), description)
    return path


def forecast_inputs(run: Run) -> list[ServingInput]:
    """The network's feature columns, ``Open`` and, with a boosted half, LightGBM's view."""
    spec = run.preprocessor.spec
    roles = ColumnRoles(list(spec.categorical), list(spec.continuous))
    inputs = [*serving_inputs(roles, run.preprocessor),
              ServingInput(OPEN, "double", "continuous", "0 on a closed day (predicted 0), "
                           "else 1")]
    if run.boosted is not None:
        inputs += [ServingInput(LIGHTGBM_PREFIX + c, "double", "continuous",
                                f"LightGBM's {c} (boosting.lightgbm_features); NaN when "
                                "missing") for c in LIGHTGBM_FEATURES]
    return inputs


class ForecastModule(nn.Module):
    """``predict_sales`` from the feature rows onward, but for LightGBM's trees, whose raw
    scores come in as the ``SCORES`` input (one column a booster; ``with_boosted_half``
    computes them in the graph)."""

    def __init__(self, run: Run, inputs: list[ServingInput]) -> None:
        super().__init__()
        spec = run.preprocessor.spec
        roles = ColumnRoles(list(spec.categorical), list(spec.continuous))
        network_inputs = [i for i in inputs if i.name in roles.inputs]
        self.network = ServingModule(run.models, run.preprocessor, roles, network_inputs,
                                     inverse=False)
        self.code_columns = self.network.code_columns
        self.value_columns = [*self.network.value_columns, OPEN]
        self.vocabularies = self.network.vocabularies
        self.boosted = run.boosted is not None
        self.weight = run.boosted.weight if run.boosted is not None else 0.0
        self.levels = run.store_levels is not None
        if self.levels:
            if not {"Store", "DayOfWeek"} <= set(self.code_columns):
                raise ExportError("a run with store levels whose network does not take Store "
                                  "and DayOfWeek cannot look them up in the ONNX model")
            level, variance = level_tables(run)
            self.register_buffer("level", level)
            self.register_buffer("variance", variance)
            self.store = self.code_columns.index("Store")
            self.weekday = self.code_columns.index("DayOfWeek")

    def forward(self, codes: list[torch.Tensor], values: list[torch.Tensor],
                scores: torch.Tensor | None = None) -> torch.Tensor:
        """Sales of each row (0 on closed days)."""
        network = self.network(codes, values[:-1])
        shift = torch.zeros_like(network)
        if self.levels:
            at = (codes[self.store], codes[self.weekday])
            shift = -RMSPE_SHIFT * self.variance[at]
            network = network + self.level[at] + shift
        forecast = network
        if self.boosted:
            boosted = torch.log(torch.clamp(torch.expm1(scores.mean(1)), min=1.0)) + shift
            w = f64(self.weight)
            spread = w * (1 - w) * (network - boosted) ** 2
            forecast = (1 - w) * network + w * boosted - f64(RMSPE_SHIFT) * spread
        return torch.where(values[-1] != 0, torch.exp(forecast), f64(0.0))


def level_tables(run: Run) -> tuple[torch.Tensor, torch.Tensor]:
    """The store levels and their variances by (Store code, DayOfWeek code) of the network's
    vocabularies; 0 where a store has none (the unknown code included)."""
    vocabularies = run.preprocessor.vocabularies
    stores, weekdays = vocabularies["Store"], vocabularies["DayOfWeek"]
    shape = (len(stores) + 1, len(weekdays) + 1)
    level, variance = np.zeros(shape), np.zeros(shape)
    store_code = {s: i + 1 for i, s in enumerate(stores)}
    weekday_code = {d: i + 1 for i, d in enumerate(weekdays)}
    for store, day, lev, var in run.store_levels.select(
            "Store", "DayOfWeek", "Level", "Variance").iter_rows():
        if store in store_code and day in weekday_code:
            level[store_code[store], weekday_code[day]] = lev
            variance[store_code[store], weekday_code[day]] = var
    return torch.tensor(level, dtype=torch.float64), torch.tensor(variance, dtype=torch.float64)


def with_boosted_half(model: Any, boosted: Boosted) -> Any:
    """``model`` (``onnx_model`` of a ``ForecastModule``) with its ``SCORES`` input computed in
    the graph: LightGBM's view beside the store factors (looked up by store, NaN for a store
    without them), each booster's raw score."""
    import onnx
    from onnx import TensorProto, helper
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import DoubleTensorType

    graph = model.graph
    nodes, columns = [], []
    axes = helper.make_tensor(f"{INTERNAL}axes", TensorProto.INT64, [1], [1])
    graph.initializer.append(axes)
    for feature in LIGHTGBM_FEATURES:
        out = f"{INTERNAL}column {feature}"
        nodes.append(helper.make_node("Unsqueeze", [LIGHTGBM_PREFIX + feature, axes.name], [out]))
        columns.append(out)
    store = LIGHTGBM_PREFIX + "Store"
    factors = boosted.factors
    keys = [float(s) for s in factors.get_column("Store").to_list()]
    for name in factors.columns[1:]:
        looked_up, out = f"{INTERNAL}{name}", f"{INTERNAL}column {name}"
        nodes.append(helper.make_node(
            "LabelEncoder", [store], [looked_up], domain="ai.onnx.ml",
            keys_tensor=helper.make_tensor("keys", TensorProto.DOUBLE, [len(keys)], keys),
            values_tensor=helper.make_tensor("values", TensorProto.DOUBLE, [len(keys)],
                                             factors.get_column(name).to_list()),
            default_tensor=helper.make_tensor("default", TensorProto.DOUBLE, [1], [np.nan])))
        nodes.append(helper.make_node("Unsqueeze", [looked_up, axes.name], [out]))
        columns.append(out)
    matrix = f"{INTERNAL}lightgbm matrix"
    nodes.append(helper.make_node("Concat", columns, [matrix], axis=1))
    outputs = []
    for i, booster in enumerate(boosted.forecaster.boosters_):
        converted = convert_lightgbm(
            booster, initial_types=[("x", DoubleTensorType([None, len(columns)]))],
            target_opset=LIGHTGBM_OPSET, zipmap=False)
        prefix = f"{INTERNAL}booster {i}/"
        converted = onnx.compose.add_prefix(converted, prefix)
        renames = {converted.graph.input[0].name: matrix}
        for node in converted.graph.node:
            node.input[:] = [renames.get(n, n) for n in node.input]
            nodes.append(node)
        score = f"{INTERNAL}score {i}"
        nodes.append(helper.make_node("Cast", [converted.graph.output[0].name], [score],
                                      to=TensorProto.DOUBLE))
        outputs.append(score)
        graph.initializer.extend(converted.graph.initializer)
    nodes.append(helper.make_node("Concat", outputs, [SCORES], axis=1))
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *rest])
    kept = [i for i in graph.input if i.name != SCORES]
    del graph.input[:]
    graph.input.extend(kept)
    if not any(o.domain == "ai.onnx.ml" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    onnx.checker.check_model(model, full_check=True)
    return model


def check_forecast_parity(model: Any, run: Run, inputs: list[ServingInput],
                          rows: pl.DataFrame) -> None:
    """Raise ``ExportError`` unless onnxruntime predicts ``rows`` as ``predict_sales`` does."""
    expected = predict_sales(run, rows).get_column("Prediction").to_numpy()
    actual = onnx_predict(model, onnx_feed(rows, inputs))
    error = relative_difference(actual, expected)
    if not np.all(np.isfinite(actual)) or float(error.max()) > PARITY_RTOL:
        raise ExportError(f"the ONNX model predicts differently from `predict` (largest "
                          f"relative difference {float(np.nanmax(error)):.2e} on the "
                          f"{rows.height:,} rows checked, allowed {PARITY_RTOL:g}); nothing "
                          "was written")
