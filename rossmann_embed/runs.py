"""Any run, whichever command wrote it: `fit` (a table of one's own) or `train` (Rossmann).

Both lay out a run directory the same way (``run.json``, naming its kind, ``config.json``,
``columns.json``, ``training.json``, ``validation.json``, ``metrics.csv``,
``checkpoints/seed-S/``, ``logs/``);
a `fit` run adds ``estimator.json`` (the scikit-learn estimator), a `train` run
``data_report.json``, ``store_levels.csv`` and its boosted half (``lightgbm/``).
``load_run``, ``predict`` and ``write_embeddings`` take either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.files import strict_json
from rossmann_embed.tabular.run_directory import run_kind


def is_fit_run(path: str | Path) -> bool:
    """Whether ``path`` is a run directory written by `fit` (or the estimator's ``save``), as
    its manifest says; a checkpoint file is a `train` run's member."""
    return not Path(path).is_file() and run_kind(path) == "fit"


def load_run(path: str | Path) -> Any:
    """A run ready to predict, of the kind its manifest (``run.json``) names: a `fit` run as
    its ``EmbeddingRegressor``, a `train` run as ``rossmann.inference.Run`` (members, store
    levels and boosted half; a ``.ckpt`` file: that member alone). Both ``predict`` a frame
    of the run's input columns (a `train` run's: the feature rows of
    ``rossmann.features``)."""
    if is_fit_run(path):
        from rossmann_embed.tabular.estimator import EmbeddingRegressor

        return EmbeddingRegressor.load(path)
    from rossmann_embed.rossmann.inference import load_train_run

    return load_train_run(path)


def predict(run: str | Path, table: str | Path, out: str | Path, *,
            data_dir: str | Path | None = None, allow_unknown_stores: bool = False
            ) -> dict[str, Any]:
    """Write ``table`` with a ``prediction`` column to ``out`` (CSV or parquet), rows in
    order, for any run: a `fit` run reads the columns it was fitted on; a `train` run reads
    Kaggle's test layout and builds the features from the history in ``data_dir`` (default:
    the run's). Returns the rows written and ``notes``, lines for the user."""
    if is_fit_run(run):
        from rossmann_embed.tabular.estimator import describe_filled
        from rossmann_embed.tabular.workflow import predict_table

        report = predict_table(run, table, out)
        return {**report, "notes": [f"note: {n}" for n in describe_filled(report,
                                                                          report["fill"])]}
    from rossmann_embed.rossmann.inference import predict_kaggle_table, prediction_notes

    loaded = load_run(run)
    report = predict_kaggle_table(loaded, data_dir or training_data_dir(run), table, out,
                           allow_unknown_stores=allow_unknown_stores)
    return {**report, "notes": prediction_notes(report)}


def export(run: str | Path, out: str | Path, *, data_dir: str | Path | None = None) -> Path:
    """Write a run as one ONNX model at ``out`` and its inputs' description beside it: a `fit`
    run through ``EmbeddingRegressor.export_onnx``, a `train` run through
    ``rossmann.serving.export_train_run``, checked on the test.csv rows of ``data_dir``
    (default: the run's)."""
    from rossmann_embed.tabular.onnx_export import check_model_path

    check_model_path(out)  # before the run loads: a bad --out is found at once
    if not is_fit_run(run):
        from rossmann_embed.rossmann.serving import export_train_run, serving_rows

        loaded = load_run(run)
        rows = serving_rows(data_dir or training_data_dir(run), **loaded.feature_options)
        return export_train_run(loaded, out, rows)
    if data_dir is not None:
        raise InputError.at("--data-dir", "a run written by `rossmann-embed train` (a `fit` "
                            "run is checked on probe rows of its own columns)")
    from rossmann_embed.tabular.estimator import EmbeddingRegressor

    columns = Path(run) / "columns.json"
    target = json.loads(columns.read_text())["target"] if columns.is_file() else None
    return EmbeddingRegressor.load(run).export_onnx(out, target)


def training_data_dir(run: str | Path) -> str:
    """The data directory a `train` run was trained on (its ``config.json``)."""
    config = Path(run) / "config.json"
    if not config.is_file():
        raise InputError.at(str(run), "a run directory with config.json (or --data-dir)")
    return json.loads(config.read_text())["data_dir"]


def write_embeddings(run: str | Path, out: str | Path, *, labels: dict[str, str] | None = None,
                     table: str | Path | None = None, data_dir: str | Path | None = None,
                     member: int = 0, reference: str | Path | None = None,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """The embeddings report of any run into ``out``: every categorical column's table, map
    and neighbours; for a `train` run also the geography of the State embedding and the
    store maps (stores from ``data_dir``, default the run's; ``reference`` positions instead
    of the German capitals). ``labels`` and ``table`` name a `fit` run's values."""
    if is_fit_run(run):
        from rossmann_embed.tabular.workflow import embeddings_report

        summary = embeddings_report(run, out, labels, table)
        log(f"{len(summary['files'])} files written to {out}")
        return summary
    if labels or table:
        raise InputError.at("--label", "a run written by `rossmann-embed fit` (a `train` run "
                            "labels stores and states itself)")
    from rossmann_embed.rossmann.kaggle_files import read_stores
    from rossmann_embed.rossmann.maps import write_run_maps
    from rossmann_embed.tabular.tables import read_table

    loaded = load_run(run)
    data_dir = data_dir or training_data_dir(run)
    positions = read_table(reference) if reference else None
    summary = write_run_maps(loaded, read_stores(data_dir), Path(out), member=member,
                             reference=positions)
    shown = {k: summary[k] for k in ("geography", "seconds") if k in summary}
    log(json.dumps(strict_json(shown), indent=2))
    for column, why in summary["skipped"].items():
        log(f"note: no {column} maps or scores ({why})")
    log(f"{len(summary['files'])} files written to {out}")
    return summary
