"""A `fit` run as one ONNX model: the table's columns in, the prediction in the target's units
out, served by onnxruntime alone (no torch, Lightning, polars or this package).

The graph holds everything ``predict`` does after reading a table:

- categorical columns mapped to the run's codes, unknown values to the reserved code 0
  (ONNX-ML ``LabelEncoder``);
- date columns, given as days since 1970-01-01, turned into their calendar parts;
- missing numbers filled as ``predict`` fills them, then the quantile or standard scaling;
- every seed member's network (embeddings, numerical embeddings, the TabM members), their
  mean, and the inverse target transform.

The export is checked before it is written: onnxruntime must predict what ``predict`` does
(``PARITY_RTOL``) on probe rows that hold unknown categories, blanks and values beyond the
training range; otherwise nothing is written and the error says so. ``PATH.json`` beside
the model names each input, its type and its meaning.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import logging
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import torch
from torch import nn

import rossmann_embed
from rossmann_embed.tabular.columns import DATE_PARTS, ColumnRoles, part_name
from rossmann_embed.tabular.encoding import NORMAL_BOUND, NORMAL_EDGE, Preprocessor
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.files import atomic_write, write_json

if TYPE_CHECKING:
    from rossmann_embed.tabular.estimator import EmbeddingRegressor
    from rossmann_embed.tabular.model import EntityEmbeddingNetwork

OPSET = 20  # ONNX's default domain
ML_OPSET = 4  # ai.onnx.ml: LabelEncoder with keys of any type (double keys need 4)
OUTPUT = "prediction"  # the output's name, unless a column takes it (``output_name``)
INTERNAL = "rossmann_embed/"  # prefix of the graph's own names, so no column name collides
PARITY_RTOL = 1e-5  # onnxruntime against `predict`, relative
PROBE_ROWS = 512
INPUTS_FORMAT = 1
EPOCH_DAY_SHIFT = 719_468  # days from 0000-03-01 to 1970-01-01 (Hinnant's civil calendar)


class ExportError(InputError):
    """A run that cannot become an ONNX model that predicts as ``predict`` does."""


@dataclass(frozen=True)
class ServingInput:
    """One input of the exported model: a column of the table, as onnxruntime takes it."""

    name: str
    type: str  # "string" or "double", one value a row
    role: str  # "categorical", "continuous" or "date"
    meaning: str
    missing: str = "NaN"  # what stands for a missing value: NaN, or a text never seen


def export_estimator(estimator: EmbeddingRegressor, path: str | Path,
                     target: str | None = None) -> Path:
    """Write ``estimator``'s run as one ONNX model at ``path`` (``.onnx``) and the description
    of its inputs at ``path`` with ``.json``, after checking that onnxruntime predicts as
    ``estimator.predict`` does. ``target``: the target's name, for the description. Returns
    ``path``."""
    path = check_model_path(path)
    run, roles = estimator.run_, estimator.roles_
    inputs = serving_inputs(roles, run.preprocessor)
    model = onnx_model(ServingModule(run.models, run.preprocessor, roles, inputs), inputs)
    check_parity(model, estimator, inputs)
    atomic_write(path, lambda tmp: tmp.write_bytes(model.SerializeToString()))
    write_json(path.with_suffix(".json"), describe(inputs, path.name, target))
    return path


def check_model_path(path: str | Path) -> Path:
    """``path`` if it names an ONNX file and the libraries to write it are installed, else
    the ``InputError`` that says what to change."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise InputError.at(str(path), "an output path ending in .onnx (the description of "
                            "the inputs is written beside it, with .json)")
    if path.is_dir():
        raise InputError.at(str(path), "a file path for the ONNX model, not a directory")
    require_export_libraries()
    return path


def require_export_libraries() -> None:
    """Raise ``ExportError`` naming the extra to install when an exporting library is absent."""
    absent = [name for name in ("onnx", "onnxscript", "onnxruntime")
              if importlib.util.find_spec(name) is None]
    if absent:
        raise ExportError(f"exporting needs {', '.join(absent)}: pip install "
                          "'rossmann-embed[export]'")


def serving_inputs(roles: ColumnRoles, preprocessor: Preprocessor) -> list[ServingInput]:
    """The model's inputs, one per column the run reads (categorical, continuous, dates)."""
    inputs = []
    scaled = preprocessor.spec.continuous
    fill = f"NaN when missing (then the training {preprocessor.fill})"
    for column in roles.inputs:
        vocabulary = preprocessor.vocabularies.get(column)
        if column in roles.dates:
            inputs.append(ServingInput(column, "double", "date", (
                "a date as days since 1970-01-01 (a time: fractional days, on the column's own "
                "clock); NaN when missing. Its calendar parts (" + ", ".join(DATE_PARTS)
                + ") are computed in the model")))
        elif vocabulary is not None and is_text(vocabulary) and column not in roles.numbers:
            missing = missing_text(vocabulary)
            inputs.append(ServingInput(column, "string", "categorical", (
                f"categorical: one of the {len(vocabulary)} values seen in training; any other, "
                f"or {missing!r} when missing, takes the unknown row"), missing))
        elif vocabulary is not None:
            number = part_name(column, "number") in scaled
            inputs.append(ServingInput(column, "double", "categorical", (
                f"categorical, as a number (booleans as 0 and 1): one of the {len(vocabulary)} "
                "values seen in training; any other, or NaN when missing, takes the unknown row"
                + ("; also read as a number" if number else ""))))
        else:
            inputs.append(ServingInput(column, "double", "continuous", f"a number; {fill}"))
    return inputs


def missing_text(vocabulary: list[Any]) -> str:
    """What stands for a missing text: "", or a text the vocabulary does not hold."""
    candidates = itertools.chain(["", "<missing>"], (f"<missing {i}>" for i in itertools.count()))
    known = set(vocabulary)
    return next(c for c in candidates if c not in known)


def output_name(inputs: list[ServingInput]) -> str:
    """``OUTPUT``, or with a suffix when a column of the table has that name."""
    names = {i.name for i in inputs}
    candidates = itertools.chain([OUTPUT], (f"{OUTPUT}_{i}" for i in itertools.count(1)))
    return next(c for c in candidates if c not in names)


def is_text(vocabulary: list[Any]) -> bool:
    """Whether a vocabulary holds text (else numbers or booleans); an empty one counts as text."""
    return not vocabulary or isinstance(vocabulary[0], str)


def describe(inputs: list[ServingInput], model_file: str, target: str | None = None
             ) -> dict[str, Any]:
    """The JSON written beside the model: its inputs and output, for whoever serves it."""
    what = f"the prediction of {target!r}" if target else "the prediction"
    return {
        "format": INPUTS_FORMAT,
        "model": model_file,
        "rossmann_embed": rossmann_embed.__version__,
        "opsets": {"ai.onnx": OPSET, "ai.onnx.ml": ML_OPSET},
        "rows": "every input and the output are 1-D, one value a row",
        "inputs": [asdict(i) for i in inputs],
        "output": {"name": output_name(inputs), "type": "double",
                   "meaning": f"{what}, in its own units"},
    }


# --- the prediction in torch ops that export ------------------------------------------------


class ServingModule(nn.Module):
    """``predict`` from the columns onward: ``forward(codes, values)`` takes the codes of the
    categorical input columns (``code_columns``, 1-D int64) and the values of the numeric ones
    (``value_columns``, 1-D float64: continuous columns, categorical ones given as numbers,
    dates as days), and returns the prediction in the target's units."""

    def __init__(self, models: list[EntityEmbeddingNetwork], preprocessor: Preprocessor,
                 roles: ColumnRoles, inputs: list[ServingInput], inverse: bool = True) -> None:
        super().__init__()
        self.inverse = inverse  # False: the members' mean in the model's space (log for log)
        # Copies, so that exporting changes nothing of the run. Each member's output bounds
        # are applied here, as float64 constants: the exporter writes Python floats as float32.
        self.members = nn.ModuleList(copy.deepcopy(m) for m in models)
        self.bounds = []
        for member in self.members:
            self.bounds.append(member.hparams.y_range)
            member.hparams.y_range = None
        self.roles, self.transform = roles, preprocessor.spec.target_transform
        named = {i.name: i for i in inputs}
        self.code_columns = [c for c in preprocessor.vocabularies if c in named]
        self.value_columns = [c for c, i in named.items() if i.type == "double"]
        self.vocabularies = preprocessor.vocabularies
        self.categorical = list(self.vocabularies)
        self.continuous = list(preprocessor.spec.continuous)
        self.derived_codes = [c for c in self.categorical if c not in named]  # date parts
        for i, column in enumerate(self.derived_codes):  # constants as buffers, for export
            vocabulary = [float(v) for v in preprocessor.vocabularies[column]]
            self.register_buffer(f"vocabulary_{i}", torch.tensor(vocabulary, dtype=torch.float64))
        self.scaling = ContinuousScaling(preprocessor)

    def forward(self, codes: list[torch.Tensor], values: list[torch.Tensor]) -> torch.Tensor:
        """The prediction of each row (see the class)."""
        given = dict(zip(self.value_columns, values, strict=True))
        numbers = dict(given)
        for date in self.roles.dates:
            numbers.update({part_name(date, part): value
                            for part, value in calendar_parts(given[date]).items()})
        for code in self.roles.numbers:
            numbers[part_name(code, "number")] = given[code]
        categories = dict(zip(self.code_columns, codes, strict=True))
        for i, column in enumerate(self.derived_codes):
            categories[column] = vocabulary_codes(numbers[column],
                                                  self.get_buffer(f"vocabulary_{i}"))
        rows = (values or codes)[0].shape[0]
        categorical = torch.stack([categories[c] for c in self.categorical], 1) \
            if self.categorical else torch.zeros(rows, 0, dtype=torch.int64)
        continuous = self.scaling(torch.stack([numbers[c] for c in self.continuous], 1)) \
            if self.continuous else torch.zeros(rows, 0, dtype=torch.float64)
        # Rounded to float32 where `predict` rounds: its encoding and each member's output.
        continuous = continuous.float().double()
        mean = torch.stack([
            bounded(m.forward_members(categorical, continuous), bounds).mean(1).float().double()
            for m, bounds in zip(self.members, self.bounds, strict=True)]).mean(0)
        if not self.inverse:
            return mean
        if self.transform == "log":
            return torch.exp(mean)
        return torch.expm1(mean) if self.transform == "log1p" else mean


def bounded(out: torch.Tensor, bounds: list[float] | None) -> torch.Tensor:
    """The model's output range, ``low + (high - low) * sigmoid(out)``, as the model applies
    it: to each TabM member's output, before their mean."""
    if bounds is None:
        return out
    low, high = bounds
    return f64(low) + f64(high - low) * torch.sigmoid(out)


class ContinuousScaling(nn.Module):
    """``Preprocessor.scale`` of every continuous column at once, in torch ops: ``[rows,
    columns]`` in and out. The columns' quantiles are padded to one length (a multiple of
    ``BLOCK``) by repeating their last, which leaves the interpolation unchanged."""

    BLOCK = 32

    def __init__(self, preprocessor: Preprocessor) -> None:
        super().__init__()
        columns = preprocessor.spec.continuous
        self.quantile = preprocessor.scaling == "quantile"
        if not columns:  # a table of categories only: never called
            return
        if not self.quantile:
            self.register_buffer("means", f64([preprocessor.means[c] for c in columns]))
            self.register_buffer("stds", f64([preprocessor.stds[c] for c in columns]))
            return
        quantiles = [preprocessor.quantiles[c] for c in columns]
        width = -(-max(len(q) for q in quantiles) // self.BLOCK) * self.BLOCK
        levels = [np.linspace(0, 1, len(q)).tolist() for q in quantiles]
        self.register_buffer("knots", f64([padded(q, width) for q in quantiles]))
        self.register_buffer("levels", f64([padded(v, width) for v in levels]))
        self.register_buffer("medians", f64([float(np.interp(0.5, v, q))
                                             for q, v in zip(quantiles, levels, strict=True)]))
        self.register_buffer("low", f64([q[0] for q in quantiles]))
        self.register_buffer("high", f64([q[-1] for q in quantiles]))
        span = [q[-1] - q[0] for q in quantiles]  # 0: a column of one value, never beyond
        self.register_buffer("span", f64([d if d > 0 else 1.0 for d in span]))
        self.register_buffer("extends", f64([2 * NORMAL_EDGE if d > 0 else 0.0 for d in span]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The scaled numbers of ``x`` (missing ones filled first)."""
        finite = torch.isfinite(x)
        if not self.quantile:
            return (torch.where(finite, x, self.means) - self.means) / self.stds
        x = torch.where(finite, x, self.medians)
        level = 0.5 * (self.interpolate(x, self.knots, self.levels)
                       - self.interpolate(-x, -self.knots.flip(1), -self.levels.flip(1)))
        level = torch.minimum(torch.maximum(level, f64(NORMAL_BOUND)), f64(1 - NORMAL_BOUND))
        # Beyond the training range values go on linearly for one more range, as in encoding.
        above = ((x - self.high) / self.span).clamp(0, 1)
        below = ((self.low - x) / self.span).clamp(0, 1)
        return normal_quantile(level) + (above - below) * self.extends

    def interpolate(self, x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
        """``np.interp`` of each column ``c`` of ``x`` on ascending knots ``xp[c]`` with
        ties, as numpy computes it: the segment after the last knot at or below the value,
        and a knot itself gives its own value. That knot is found among the blocks' first
        knots, then within its block: two small comparisons instead of one with every knot."""
        columns, width = xp.shape
        offsets = torch.arange(columns) * width  # of each column in the flattened knots
        starts = (x.unsqueeze(-1) >= xp[:, :: self.BLOCK]).to(torch.int64).sum(-1)
        block = (starts - 1).clamp(min=0) * self.BLOCK
        within = (block + offsets).unsqueeze(-1) + torch.arange(self.BLOCK)
        flat_x, flat_f = xp.flatten(), fp.flatten()
        inside = (x.unsqueeze(-1) >= flat_x[within]).to(torch.int64).sum(-1)
        last = torch.where(starts == 0, -1, block + inside - 1)
        j = last.clamp(0, width - 2) + offsets
        x0, x1, y0, y1 = flat_x[j], flat_x[j + 1], flat_f[j], flat_f[j + 1]
        inner = torch.where(x == x0, y0, (y1 - y0) / (x1 - x0) * (x - x0) + y0)
        return torch.where(last < 0, fp[:, 0],
                           torch.where(x >= xp[:, -1], fp[:, -1], inner))


def padded(values: list[float], width: int) -> list[float]:
    """``values`` repeating their last up to ``width``."""
    return [*values, *[values[-1]] * (width - len(values))]


def f64(value: float | list) -> torch.Tensor:
    """A float64 constant: torch's ONNX exporter writes a Python float as float32."""
    return torch.tensor(value, dtype=torch.float64)


def vocabulary_codes(values: torch.Tensor, vocabulary: torch.Tensor) -> torch.Tensor:
    """Each value's index in ``vocabulary`` + 1, or 0 for any other value (NaN included)."""
    index = torch.arange(1, len(vocabulary) + 1, dtype=torch.float64)
    return ((values.unsqueeze(1) == vocabulary) * index).sum(1).to(torch.int64)


# Wichura's algorithm AS 241 (PPND16), relative error about 1e-16: ONNX has no inverse error
# function. Coefficients lowest power first; the tail's third region (p below 1e-11) is never
# reached, since levels are clamped to [NORMAL_BOUND, 1 - NORMAL_BOUND].
AS241_A = (3.3871328727963666080, 133.14166789178437745, 1971.5909503065514427,
           13731.693765509461125, 45921.953931549871457, 67265.770927008700853,
           33430.575583588128105, 2509.0809287301226727)
AS241_B = (1.0, 42.313330701600911252, 687.18700749205790830, 5394.1960214247511077,
           21213.794301586595867, 39307.895800092710610, 28729.085735721942674,
           5226.4952788528545610)
AS241_C = (1.42343711074968357734, 4.63033784615654529590, 5.76949722146069140550,
           3.64784832476320460504, 1.27045825245236838258, 0.241780725177450611770,
           0.0227238449892691845833, 7.74545014278341407640e-4)
AS241_D = (1.0, 2.05319162663775882187, 1.67638483018380384940, 0.689767334985100004550,
           0.148103976427480074590, 0.0151986665636164571966, 5.47593808499534494600e-4,
           1.05075007164441684324e-9)


def normal_quantile(p: torch.Tensor) -> torch.Tensor:
    """The standard normal's quantile of ``p`` in [1e-11, 1 - 1e-11]
    (``scipy.special.ndtri``)."""
    q = p - 0.5
    r = f64(0.180625) - q * q
    central = q * polynomial(AS241_A, r) / polynomial(AS241_B, r)
    t = torch.sqrt(-torch.log(torch.minimum(p, 1 - p))) - f64(1.6)
    tail = polynomial(AS241_C, t) / polynomial(AS241_D, t)
    return torch.where(q.abs() <= f64(0.425), central, torch.where(q < 0, -tail, tail))


def polynomial(coefficients: tuple[float, ...], x: torch.Tensor) -> torch.Tensor:
    """The polynomial of ``coefficients`` (lowest power first) at ``x``, as one product of
    ``x``'s powers with them: a handful of operations to trace, not two a coefficient."""
    exponents = f64([float(k) for k in range(len(coefficients))])
    return (x.unsqueeze(-1) ** exponents) @ f64(list(coefficients))


def calendar_parts(days: torch.Tensor) -> dict[str, torch.Tensor]:
    """``DATE_PARTS`` of dates given as (fractional) days since 1970-01-01, as polars computes
    them (weekday 1 = Monday, ISO week), float64, NaN where ``days`` is missing."""
    missing = ~torch.isfinite(days)
    day_number = torch.floor(torch.where(missing, 0.0, days)).to(torch.int64)
    year, month, day = civil_date(day_number)
    weekday = torch.remainder(day_number + 3, 7) + 1  # 1970-01-01 was a Thursday
    ordinal = day_number - first_of_january(year) + 1
    week = torch.div(ordinal - weekday + 10, 7, rounding_mode="floor")
    week = torch.where(week < 1, iso_weeks(year - 1),
                       torch.where(week > iso_weeks(year), 1, week))
    parts = {"year": year, "month": month, "day": day, "weekday": weekday, "week": week,
             "dayofyear": ordinal}
    return {name: torch.where(missing, math.nan, parts[name].to(torch.float64))
            for name in DATE_PARTS}


def floor_div(a: torch.Tensor, b: int) -> torch.Tensor:
    """Integer division rounding down, also for negative days (before 1970)."""
    return torch.div(a, b, rounding_mode="floor")


def civil_date(days: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(year, month, day) of days since 1970-01-01, proleptic Gregorian (Howard Hinnant's
    ``civil_from_days``)."""
    z = days + EPOCH_DAY_SHIFT
    era = floor_div(z, 146_097)
    day_of_era = z - era * 146_097
    year_of_era = floor_div(day_of_era - floor_div(day_of_era, 1460)
                            + floor_div(day_of_era, 36_524)
                            - floor_div(day_of_era, 146_096), 365)
    day_of_year = day_of_era - (365 * year_of_era + floor_div(year_of_era, 4)
                                - floor_div(year_of_era, 100))
    month_from_march = floor_div(5 * day_of_year + 2, 153)
    day = day_of_year - floor_div(153 * month_from_march + 2, 5) + 1
    month = torch.where(month_from_march < 10, month_from_march + 3, month_from_march - 9)
    year = year_of_era + era * 400 + (month <= 2).to(torch.int64)
    return year, month, day


def first_of_january(year: torch.Tensor) -> torch.Tensor:
    """Days since 1970-01-01 of each year's 1 January (``days_from_civil``)."""
    before = year - 1  # January counts in the previous March-based year
    era = floor_div(before, 400)
    year_of_era = before - era * 400
    day_of_era = (365 * year_of_era + floor_div(year_of_era, 4) - floor_div(year_of_era, 100)
                  + 306)  # 306: days from 1 March to 1 January
    return era * 146_097 + day_of_era - EPOCH_DAY_SHIFT


def iso_weeks(year: torch.Tensor) -> torch.Tensor:
    """ISO weeks in each year: 53 when it starts on a Thursday, or is a leap year starting on
    a Wednesday; else 52."""
    def p(y: torch.Tensor) -> torch.Tensor:
        return torch.remainder(y + floor_div(y, 4) - floor_div(y, 100) + floor_div(y, 400), 7)

    return 52 + ((p(year) == 4) | (p(year - 1) == 3)).to(torch.int64)


# --- the ONNX model -------------------------------------------------------------------------


def onnx_model(module: nn.Module, inputs: list[ServingInput],
               extra: dict[str, torch.Tensor] | None = None) -> Any:
    """``module`` (a ``ServingModule``, or a module with its ``code_columns``,
    ``value_columns`` and ``vocabularies``) exported by torch's ONNX exporter, in float64,
    with the table's columns as inputs: a ``LabelEncoder`` in front of each categorical one.
    ``extra``: further tensors ``forward`` takes after the values, by the name their input
    gets (an example of each, rows first), for the caller to compute in the graph."""
    import onnx

    extra = extra or {}
    module = module.double().eval()
    rows = 16  # an example of 0 or 1 rows would be specialised by torch.export, not dynamic
    codes = [torch.zeros(rows, dtype=torch.int64) for _ in module.code_columns]
    values = [torch.zeros(rows, dtype=torch.float64) for _ in module.value_columns]
    examples = [e.expand(rows, *e.shape[1:]).contiguous() for e in extra.values()]
    dim = torch.export.Dim("rows")
    with torch.no_grad(), warnings.catch_warnings(), quiet_exporter():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, (codes, values, *examples), dynamo=True, opset_version=OPSET,
            verbose=False, dynamic_shapes=([{0: dim}] * len(codes), [{0: dim}] * len(values),
                                           *[{0: dim}] * len(examples)))
    model = onnx.compose.add_prefix(program.model_proto, INTERNAL)
    graph = model.graph
    exported = [i.name for i in graph.input]
    by_name = {i.name: i for i in inputs}
    encoders = [label_encoder(by_name[c], module.vocabularies[c], inner)
                for c, inner in zip(module.code_columns, exported[:len(codes)], strict=True)]
    renames = dict(zip(exported[len(codes):], [*module.value_columns, *extra], strict=True))
    extra_inputs = [onnx.helper.make_tensor_value_info(name, i.type.tensor_type.elem_type,
                                                       ["rows", *example.shape[1:]])
                    for name, i, example in zip(extra, graph.input[len(exported) - len(extra):],
                                                examples, strict=True)]
    output = output_name(inputs)
    renames[graph.output[0].name] = output
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    nodes = [*encoders, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.input[:]
    graph.input.extend(onnx.helper.make_tensor_value_info(
        i.name, onnx.TensorProto.STRING if i.type == "string" else onnx.TensorProto.DOUBLE,
        ["rows"]) for i in inputs)
    graph.input.extend(extra_inputs)
    graph.output[0].name = output
    del graph.value_info[:]  # shapes inferred under the old names
    model.opset_import.append(onnx.helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    model.producer_name, model.producer_version = "rossmann-embed", rossmann_embed.__version__
    onnx.checker.check_model(model, full_check=True)
    return model


def label_encoder(column: ServingInput, vocabulary: list[Any], output: str) -> Any:
    """ONNX-ML's ``LabelEncoder`` from a column to its codes: 1.. for the vocabulary, 0 for
    anything else."""
    import onnx

    codes = list(range(1, len(vocabulary) + 1))
    if column.type == "string":
        keys = vocabulary or ["\0"]  # an empty vocabulary: every value is unknown
        return onnx.helper.make_node(
            "LabelEncoder", [column.name], [output], domain="ai.onnx.ml",
            name=f"{INTERNAL}codes of {column.name}", keys_strings=keys,
            values_int64s=codes or [0], default_int64=0)
    numbers = [float(v) for v in vocabulary]
    if not numbers:  # no value seen in training: every value is unknown
        numbers, codes = [0.0], [0]
    if any(math.isnan(v) for v in numbers) or any(float(v) != v for v in vocabulary):
        raise ExportError(f"column {column.name!r}: categorical values that are NaN or not "
                          "exact as float64 numbers cannot be matched in the ONNX model; "
                          "name the column in --categorical as text, or drop it")
    keys = onnx.helper.make_tensor("keys", onnx.TensorProto.DOUBLE, [len(numbers)], numbers)
    return onnx.helper.make_node(
        "LabelEncoder", [column.name], [output], domain="ai.onnx.ml",
        name=f"{INTERNAL}codes of {column.name}", keys_tensor=keys,
        values_tensor=onnx.helper.make_tensor("values", onnx.TensorProto.INT64, [len(codes)],
                                              codes),
        default_tensor=onnx.helper.make_tensor("default", onnx.TensorProto.INT64, [1], [0]))


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence torch's ONNX exporter's progress lines and the registry's notes about
    torchvision, which the model does not use."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# --- parity ---------------------------------------------------------------------------------


def onnx_feed(frame: pl.DataFrame, inputs: list[ServingInput]) -> dict[str, np.ndarray]:
    """The arrays onnxruntime takes for the rows of ``frame``, as the inputs' JSON describes
    them: text (a missing one as the input's ``missing``), numbers and booleans as float64
    with NaN for missing, dates as days since 1970-01-01."""
    feed = {}
    for i in inputs:
        column = frame.get_column(i.name)
        if i.type == "string":
            feed[i.name] = column.cast(pl.String).fill_null(i.missing).to_numpy().astype(object)
        elif i.role == "date":
            if isinstance(column.dtype, pl.Datetime) and column.dtype.time_zone is not None:
                column = column.dt.replace_time_zone(None)  # its wall clock, as `predict` reads
            days = (column.cast(pl.Datetime("us")).dt.epoch("us").cast(pl.Float64)
                    / 86_400_000_000)
            feed[i.name] = days.fill_null(np.nan).to_numpy()
        else:
            feed[i.name] = column.cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy()
    return feed


def probe_frame(estimator: EmbeddingRegressor, rows: int = PROBE_ROWS, seed: int = 0
                ) -> pl.DataFrame:
    """Rows of the estimator's input columns that cover what prediction meets: known and
    unknown categories, blanks, numbers inside and beyond the training range, dates of the
    training years and after."""
    rng = np.random.default_rng(seed)
    preprocessor, roles = estimator.run_.preprocessor, estimator.roles_
    columns = []
    for column in roles.inputs:
        vocabulary = preprocessor.vocabularies.get(column)
        if column in roles.dates:
            years = preprocessor_range(preprocessor, part_name(column, "year"), (1970, 2030))
            days = rng.integers((int(years[0]) - 1970) * 365, (int(years[1]) + 2 - 1970) * 365,
                                rows)
            values = pl.Series(column, days, pl.Int32).cast(pl.Date)
        elif vocabulary is not None:
            values = pl.Series(column, probe_categories(vocabulary, rows, rng))
        else:
            low, high = preprocessor_range(preprocessor, column, (0.0, 1.0))
            span = (high - low) or 1.0
            values = pl.Series(column, rng.uniform(low - span, high + 2 * span, rows))
        blank = pl.Series(rng.random(rows) < 0.1)
        columns.append(values.zip_with(~blank, pl.Series([None] * rows, dtype=values.dtype)))
    return pl.DataFrame(columns)


def probe_categories(vocabulary: list[Any], rows: int, rng: np.random.Generator) -> list[Any]:
    """Values of the vocabulary, and every seventh row one it does not hold."""
    if not vocabulary:
        return ["a value never seen"] * rows
    values = [vocabulary[k] for k in rng.integers(0, len(vocabulary), rows)]
    if isinstance(vocabulary[0], bool):
        return values
    unseen = "a value never seen" if is_text(vocabulary) else max(vocabulary) + 1
    return [unseen if k % 7 == 3 else v for k, v in enumerate(values)]


def preprocessor_range(preprocessor: Preprocessor, column: str, default: tuple[float, float]
                       ) -> tuple[float, float]:
    """A continuous column's training range (its quantiles' ends, or mean -+ 3 sd)."""
    if column in preprocessor.quantiles:
        q = preprocessor.quantiles[column]
        return float(q[0]), float(q[-1])
    if column in preprocessor.means:
        mean, sd = preprocessor.means[column], preprocessor.stds[column]
        return mean - 3 * sd, mean + 3 * sd
    return default


def check_parity(model: Any, estimator: EmbeddingRegressor, inputs: list[ServingInput]) -> None:
    """Raise ``ExportError`` unless onnxruntime predicts the probe rows as ``predict`` does."""
    frame = probe_frame(estimator)
    expected = predict_quietly(estimator, frame)
    actual = onnx_predict(model, onnx_feed(frame, inputs))
    error = relative_difference(actual, expected)
    if not np.all(np.isfinite(actual)) or float(error.max()) > PARITY_RTOL:
        raise ExportError(f"the ONNX model predicts differently from `predict` (largest "
                          f"relative difference {float(np.nanmax(error)):.2e} on probe rows, "
                          f"allowed {PARITY_RTOL:g}); nothing was written")


def relative_difference(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """|actual - expected| relative to ``expected``, or to a thousandth of its largest value
    where it is nearer zero (a prediction of 0.001 beside ones of 1 is not held to 1e-5 of
    itself)."""
    scale = max(float(np.max(np.abs(expected))), 1e-12) if len(expected) else 1.0
    return np.abs(actual - expected) / np.maximum(np.abs(expected), 1e-3 * scale)


def predict_quietly(estimator: EmbeddingRegressor, frame: pl.DataFrame) -> np.ndarray:
    """``estimator.predict`` without the warnings about values it fills in."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the probe rows fill values on purpose
        return np.asarray(estimator.predict(frame), dtype=np.float64)


def onnx_predict(model: Any, feed: dict[str, np.ndarray]) -> np.ndarray:
    """onnxruntime's predictions of an in-memory model."""
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def read_inputs(path: str | Path) -> list[ServingInput]:
    """The inputs an exported model's JSON describes."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [ServingInput(**i) for i in data["inputs"]]
