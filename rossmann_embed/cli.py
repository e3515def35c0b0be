"""`rossmann-embed` command line: thin subcommands over the package.

Options come from the options' dataclasses (``rossmann_embed.arguments``), which hold their
defaults. Bad input (an ``InputError``, or a bad option) prints one line and exits with
status 2; a training that diverges, or any other failure, prints one line naming it and exits
with status 1 (``ROSSMANN_EMBED_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import rossmann_embed
from rossmann_embed.arguments import add_options, column_pair, resolve, typed
from rossmann_embed.movielens.options import MovieLensOptions
from rossmann_embed.rossmann.studies.geography_study import StudyOptions
from rossmann_embed.rossmann.train_config import BacktestOptions, CompareOptions, TrainConfig
from rossmann_embed.tabular.config import FitConfig, read_settings
from rossmann_embed.tabular.console import quiet_libraries
from rossmann_embed.tabular.errors import (
    InputError,
    TrainingFailed,
    TrainingInterrupted,
    first_line,
)

DEBUG_VARIABLE = "ROSSMANN_EMBED_DEBUG"
# Exit statuses: bad input 2, stopped by SIGTERM 128 + 15 (as the shell reports it); a
# training that diverged or any other failure 1.
STATUS = {InputError: 2, TrainingInterrupted: 143}


def run_train(args: argparse.Namespace) -> None:
    from rossmann_embed.rossmann.pipeline import fit

    run_dir = fit(resolve(TrainConfig, args, args.subparser), resume="resume" in args)
    print(f"run written to {run_dir}")


def run_fit(args: argparse.Namespace) -> None:
    from rossmann_embed.tabular.workflow import fit_table

    run_dir = fit_table(resolve(FitConfig, args, args.subparser), resume="resume" in args)
    print(f"run written to {run_dir}")


def run_predict(args: argparse.Namespace) -> None:
    from rossmann_embed.runs import predict

    report = predict(args.run, args.table, args.out,
                     **typed(args, "data_dir", "allow_unknown_stores"))
    print_notes(report["notes"])
    print(f"{report['rows']:,} rows with a prediction column written to {args.out}")


def run_embeddings(args: argparse.Namespace) -> None:
    from rossmann_embed.runs import write_embeddings

    labels = dict(args.label) if "label" in args else {}
    options = typed(args, "table", "data_dir", "member", "reference")
    write_embeddings(args.run, args.out, labels=labels, **options)


def run_submit(args: argparse.Namespace) -> None:
    from rossmann_embed.rossmann.inference import load_runs, prediction_notes, submit

    start = time.perf_counter()
    runs = load_runs(args.run)
    report = submit(runs, args.data_dir, args.out, **typed(args, "test", "allow_unknown_stores"))
    print_notes(prediction_notes(report))
    members = sum(len(run.models) for run in runs.runs)
    print(f"{report['rows']:,} rows ({members} model{'s' * (members > 1)}) written to "
          f"{args.out} in {time.perf_counter() - start:.1f} s")


def run_evaluate(args: argparse.Namespace) -> None:
    from rossmann_embed.rossmann.evaluation import evaluate, format_tables, parse_date
    from rossmann_embed.rossmann.inference import load_runs, prediction_notes

    dates = parse_date(args.date_from, "--from"), parse_date(args.date_to, "--to")
    result = evaluate(load_runs(args.run), args.data_dir, *dates,
                      **typed(args, "out_dir", "allow_unknown_stores"))
    print_notes(prediction_notes(result))
    print(format_tables(result))
    print(f"\nevaluation.json, daily_sales.png and store_rmspe.png written to {result['out']}")


def run_export(args: argparse.Namespace) -> None:
    from rossmann_embed.runs import export

    path = export(args.run, args.out, **typed(args, "data_dir"))
    print(f"ONNX model written to {path}, its inputs described in {path.with_suffix('.json')}")


def run_demo(args: argparse.Namespace) -> None:
    from rossmann_embed.rossmann.studies.demo import demo

    demo(Path(args.out), **typed(args, "seed"))


def run_compare(args: argparse.Namespace) -> None:
    from rossmann_embed.rossmann.studies.comparison import compare

    compare(resolve(CompareOptions, args, args.subparser))


def run_movielens(args: argparse.Namespace) -> None:
    from rossmann_embed.movielens.study import movielens

    movielens(resolve(MovieLensOptions, args, args.subparser))


def run_geography_study(args: argparse.Namespace) -> None:
    from rossmann_embed.rossmann.studies.geography_study import geography_study

    geography_study(resolve(StudyOptions, args, args.subparser))


def run_backtest(args: argparse.Namespace) -> None:
    from rossmann_embed.rossmann.studies.backtest import backtest

    network = read_settings(args.network_config) if "network_config" in args else {}
    backtest(resolve(BacktestOptions, args, args.subparser, network=network))


# The handler of each command: run_train for `train`, run_geography_study for
# `geography-study`, ...
COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    name.removeprefix("run_").replace("_", "-"): handler
    for name, handler in list(globals().items()) if name.startswith("run_")}


# Each command: its help, the options' dataclass (or None), and its other options as
# (flags, argparse keywords); none has a default (argparse.SUPPRESS: the library's decides).
RUN = (["--run"], {"required": True, "help": "run directory (or a .ckpt file)"})
RUNS = (["--run"], {"required": True, "action": "append",
                    "help": "run directory or .ckpt file; repeat to average runs in log space"})
DATA_DIR = (["--data-dir"], {"required": True, "help": "folder with Kaggle's Rossmann files"})
UNKNOWN = (["--allow-unknown-stores"], {"action": "store_true", "help": "predict stores the "
           "model never saw (with the untrained unknown-store embedding) instead of stopping"})
CONFIG = (["--config"], {"type": Path, "metavar": "FILE",
                         "help": "JSON or YAML file of the options; flags override"})
RESUME = (["--resume"], {"action": "store_true", "help": "continue an interrupted run from "
                         "its last checkpoints"})
PARSERS = {
    "train": ("train an entity-embedding regressor on Kaggle's Rossmann files", TrainConfig, [
        CONFIG, RESUME]),
    "fit": ("train on a table of one's own (CSV or parquet)", FitConfig, [CONFIG, RESUME]),
    "predict": ("any run's predictions for every row of a table", None, [
        RUN, (["--table"], {"required": True, "help": "CSV or parquet file to predict (a "
                            "`train` run: in Kaggle's test layout)"}),
        (["--out"], {"required": True, "help": "CSV or parquet file to write: the table with a "
                     "prediction column"}),
        (["--data-dir"], {"help": "`train` runs: the history for the features (default: the "
                          "run's)"}), UNKNOWN]),
    "demo": ("synthetic data -> trained run, in under 2 minutes", None, [
        (["--out"], {"required": True, "help": "folder for the data and the run"}),
        (["--seed"], {"type": int, "help": "seed of the data and the run"})]),
    "embeddings": ("export embeddings; maps, factor tables, geography score", None, [
        RUN, (["--out"], {"required": True, "help": "folder to write"}),
        (["--data-dir"], {"help": "`train` runs: folder with store.csv (default: the run's)"}),
        (["--member"], {"type": int, "help": "`train` runs: ensemble member to draw"}),
        (["--reference"], {"type": Path, "help": "`train` runs: State,x,y positions to score "
                           "against instead of German capitals"}),
        (["--label"], {"action": "append", "metavar": "COLUMN=LABEL_COLUMN", "type": column_pair,
                       "help": "`fit` runs: show LABEL_COLUMN of the training table beside "
                       "each value of COLUMN (repeatable)"}),
        (["--table"], {"type": Path, "help": "`fit` runs: the table --label reads (default: "
                       "the training table)"})]),
    "export": ("a run as one ONNX model for serving without Python's stack: a `fit` run takes "
               "the table's columns, a `train` run the feature rows of "
               "rossmann.serving.serving_rows; the prediction out", None, [
        (["--run"], {"required": True, "help": "run directory written by `fit` or `train`"}),
        (["--out"], {"required": True, "type": Path, "help": "ONNX file to write (.onnx); "
                     "OUT with .json beside it names each input, its type and meaning"}),
        (["--data-dir"], {"type": Path, "help": "`train` runs: Kaggle's files whose test.csv "
                          "rows check the model (default: the run's)"})]),
    "submit": ("Kaggle submission (Id,Sales) from one or more runs", None, [
        RUNS, DATA_DIR, (["--test"], {"type": Path, "help": "file in Kaggle's test layout "
                                      "(default: DATA_DIR/test.csv)"}),
        (["--out"], {"required": True, "type": Path, "help": "submission CSV to write"}),
        UNKNOWN]),
    "evaluate": ("RMSPE of a run on a labelled period: tables, evaluation.json, figures", None, [
        RUNS, DATA_DIR,
        (["--from"], {"dest": "date_from", "required": True, "metavar": "DATE",
                      "help": "first day, like 2015-06-14"}),
        (["--to"], {"dest": "date_to", "required": True, "metavar": "DATE",
                    "help": "last day (inclusive), like 2015-07-31"}),
        (["--out"], {"type": Path, "dest": "out_dir",
                     "help": "output folder (default: RUN/evaluation/FROM_TO)"}),
        UNKNOWN]),
    "compare": ("k-NN, random forest and gradient boosting with and without learned "
                "embeddings, and the networks, on a time split (the paper's table)",
                CompareOptions, []),
    "movielens": ("collaborative filtering on MovieLens 100K: RMSE on the canonical folds and "
                  "fast.ai's analysis of the movie factors", MovieLensOptions, []),
    "backtest": ("rolling-origin backtest: the final-model recipe against a full-strength "
                 "LightGBM and a per-store median, on several windows", BacktestOptions,
                 [(["--config"], {"type": Path, "dest": "network_config", "metavar": "FILE",
                                  "help": "JSON or YAML TrainConfig of the network (default: "
                                  "train's)"})]),
    "geography-study": ("which feature groups absorb the map the State embedding learns: "
                        "settings x seeds, Mantel r, East/West, RMSPE", StudyOptions, []),
}


def print_notes(notes: list[str]) -> None:
    """A prediction's notes on standard output, its warnings on standard error."""
    for note in notes:
        warning = note.startswith("warning")
        print(f"rossmann-embed: {note}" if warning else note, file=sys.stderr if warning else None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rossmann-embed", argument_default=argparse.SUPPRESS,
        description="Entity embeddings for Rossmann store sales (Guo & Berkhahn): train, "
                    "predict, and see what the embeddings learned.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {rossmann_embed.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, options, extra) in PARSERS.items():
        subparser = sub.add_parser(name, help=help_text, description=help_text,
                                   argument_default=argparse.SUPPRESS)
        if options is not None:
            add_options(subparser, options, skip=("network",))
        for flags, keywords in extra:
            subparser.add_argument(*flags, **keywords)
        subparser.add_argument("--verbose", action="store_true", help="also Lightning's notes, "
                               "model summaries and the libraries' warnings")
        subparser.set_defaults(subparser=subparser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `rossmann-embed` console script."""
    args = build_parser().parse_args(argv)
    try:
        with quiet_libraries("verbose" in args):
            COMMANDS[args.command](args)
    except (InputError, TrainingFailed) as error:
        print(f"rossmann-embed: error: {error}", file=sys.stderr)
        sys.exit(next((code for kind, code in STATUS.items() if isinstance(error, kind)), 1))
    except KeyboardInterrupt:
        print("rossmann-embed: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # the last line of defence: one line, not a traceback
        if os.environ.get(DEBUG_VARIABLE) == "1":
            raise
        first = first_line(error)
        print(f"rossmann-embed: error: {args.command} failed: {type(error).__name__}"
              f"{': ' + first if first else ''} (set {DEBUG_VARIABLE}=1 to see the traceback)",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
