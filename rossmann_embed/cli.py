"""`rossmann-embed` command line: thin subcommands over the package.

Bad input (an ``InputError``, or a bad option) prints one line and exits with status 2; any
other failure prints one line naming it and exits with status 1 (``ROSSMANN_EMBED_DEBUG=1``
shows the traceback).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rossmann_embed.rossmann.config import TrainConfig
from rossmann_embed.rossmann.feature_groups import FEATURE_GROUPS, FEATURE_SETS, PAPER_FEATURES
from rossmann_embed.tabular.config import (
    LOGGERS,
    MONITORS,
    NUMERICAL_EMBEDDINGS,
    SCALINGS,
    TARGET_TRANSFORMS,
    Config,
    NetworkConfig,
    OptionError,
    read_settings,
)
from rossmann_embed.tabular.console import quiet_libraries
from rossmann_embed.tabular.errors import InputError, TrainingFailed, first_line
from rossmann_embed.tabular.files import strict_json
from rossmann_embed.tabular.workflow import FitConfig

COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {}
DEBUG_VARIABLE = "ROSSMANN_EMBED_DEBUG"
OPTION_NAMES = {"embedding_sizes": "embedding-size"}  # config fields named unlike their flag
class _NotGiven:
    """The parsed value of an option left out (not a string: argparse would convert it)."""

    def __repr__(self) -> str:  # what a help text showing defaults prints
        return "the configuration's"


NOT_GIVEN = _NotGiven()


def command(function: Callable[[argparse.Namespace], None]) -> Callable:
    COMMANDS[function.__name__.removeprefix("run_").replace("_", "-")] = function
    return function


def add_network_options(parser: argparse.ArgumentParser) -> None:
    """The network's and the Trainer's options, shared by `train` and `fit`."""
    d = NetworkConfig()
    parser.add_argument("--epochs", type=int, default=d.epochs,
                        help="default: enough for 2,000 optimizer steps (8 to 200)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size,
                        help="default: from 256 to 2048 rows as the table grows")
    parser.add_argument("--learning-rate", "--lr", type=float, default=d.learning_rate)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--loss", choices=["mse", "mae"], default=d.loss)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--seeds", type=int, default=d.seeds,
                        help="train a seed ensemble of this many members")
    parser.add_argument("--embedding-size", action="append", default=[], metavar="COLUMN=SIZE",
                        type=_column_size,
                        help="override one column's embedding size (repeatable)")
    parser.add_argument("--hidden-sizes", type=_ints, default=d.hidden_sizes, metavar="1000,500")
    parser.add_argument("--dropout", type=_floats, default=d.dropout, metavar="0.001,0.01")
    parser.add_argument("--embedding-dropout", type=float, default=d.embedding_dropout)
    parser.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=d.batch_norm)
    parser.add_argument("--factorization", type=_names, action="append", default=[],
                        metavar="A,B", help="add the dot product of two columns' embeddings "
                        "(same --embedding-size) plus per-category biases (repeatable)")
    parser.add_argument("--mlp", action=argparse.BooleanOptionalAction, default=d.mlp,
                        help="--no-mlp: the factorization alone (collaborative filtering)")
    parser.add_argument("--ensemble-size", type=int, default=d.ensemble_size,
                        help="members of the TabM ensemble that share weights (1: plain MLP)")
    parser.add_argument("--numerical-embedding", choices=NUMERICAL_EMBEDDINGS,
                        default=d.numerical_embedding,
                        help="how continuous columns enter the network")
    parser.add_argument("--numerical-bins", type=int, default=d.numerical_bins,
                        help="bins of the piecewise-linear embedding (training quantiles)")
    parser.add_argument("--numerical-embedding-size", type=int,
                        default=d.numerical_embedding_size)
    parser.add_argument("--continuous-scaling", choices=SCALINGS, default=d.continuous_scaling,
                        help="quantile: through training quantiles onto a normal; standard: "
                             "mean and standard deviation")
    parser.add_argument("--monitor", choices=MONITORS, default=d.monitor,
                        help="validation score for early stopping and the best checkpoint")
    parser.add_argument("--patience", type=int, default=d.patience,
                        help="epochs without a better validation score before stopping")
    parser.add_argument("--accelerator", default=d.accelerator)
    parser.add_argument("--devices", default=d.devices)
    parser.add_argument("--strategy", default=d.strategy)
    parser.add_argument("--precision", default=d.precision)
    parser.add_argument("--logger", choices=LOGGERS, default=d.logger,
                        help="Lightning logger under RUN/logs (a CSV log is always kept)")


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """Options of `train` (and the scripts mirroring it), defaulting to TrainConfig's."""
    d = TrainConfig(data_dir="", out="")
    parser.add_argument("--data-dir", required=True, help="folder with Kaggle's Rossmann files")
    parser.add_argument("--out", required=True, help="run directory to write")
    parser.add_argument("--config", type=Path, help="JSON or YAML TrainConfig; flags override")
    add_network_options(parser)
    parser.add_argument("--validation-days", type=int, default=d.validation_days,
                        help="last N days are validation; 0 trains on everything")
    parser.add_argument("--hide-future", type=_fraction, default=d.hide_future, metavar="FRACTION",
                        help="share of training rows that see the data end within 60 days")
    parser.add_argument("--weather", action=argparse.BooleanOptionalAction, default=d.weather)
    parser.add_argument("--trends", action=argparse.BooleanOptionalAction, default=d.trends)
    parser.add_argument("--lightgbm-weight", type=_fraction, default=d.lightgbm_weight,
                        metavar="SHARE", help="share of LightGBM fed with the learned store "
                        "factors in the log-space forecast (0: the network alone)")
    parser.add_argument("--store-factors", type=_positive, default=d.store_factors,
                        help="principal components of the Store embedding LightGBM gets")
    parser.add_argument("--features", choices=FEATURE_SETS, default=d.features,
                        help="full: every feature; paper: the paper's seven ("
                             f"{', '.join(PAPER_FEATURES)}) with the paper's embedding sizes "
                             "and recipe (MAE, lr 0.03, no dropout, network alone) for every "
                             "option not typed: the model whose State embedding learns the map")
    parser.add_argument("--drop-features", type=_names, default=d.drop_features,
                        metavar="GROUP[,GROUP...]",
                        help=f"feature groups to leave out: {', '.join(FEATURE_GROUPS)} "
                             "(the network's; the boosted half keeps its own)")
    parser.add_argument("--train-rows", type=_positive, default=d.train_rows, metavar="N",
                        help="train on a random sample of N rows of the training period "
                             "(default: every row)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last checkpoints")


def add_fit_options(parser: argparse.ArgumentParser) -> None:
    """Options of `fit`: a table of one's own, its target and columns, and the network."""
    d = FitConfig(table="", target="", out="")
    parser.add_argument("--table", required=True, help="CSV or parquet file to learn from")
    parser.add_argument("--target", required=True, help="the numeric column to predict")
    parser.add_argument("--out", required=True, help="run directory to write")
    parser.add_argument("--categorical", type=_names, default=[], metavar="A,B",
                        help="columns to embed (others are inferred and reported)")
    parser.add_argument("--continuous", type=_names, default=[], metavar="C,D",
                        help="columns taken as numbers")
    parser.add_argument("--drop", type=_names, default=[], metavar="COLUMNS",
                        help="columns to leave out (ids, leaks)")
    parser.add_argument("--time-column", help="validation is the latest share of this "
                        "column's span (default: a seeded random share of the rows)")
    parser.add_argument("--validation-fraction", type=_share_below_one,
                        default=d.validation_fraction, metavar="F",
                        help="share held out for early stopping (0: none)")
    parser.add_argument("--target-transform", choices=["auto", *TARGET_TRANSFORMS],
                        default=d.target_transform,
                        help="auto: log1p for counts (whole numbers >= 0), else none")
    parser.add_argument("--config", type=Path, help="JSON or YAML FitConfig; flags override")
    add_network_options(parser)


def train_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> TrainConfig:
    """The TrainConfig of parsed `train` options: a --config file, overridden by given flags."""
    return resolved_config(TrainConfig, args, parser)


def given_only(parser: argparse.ArgumentParser, kind: type[Config]) -> None:
    """Keep the options of ``kind``'s fields out of the parsed namespace unless typed, so the
    config's own defaults decide the rest (``--features paper`` brings the paper's recipe;
    ``--loss mse`` typed with it must still win)."""
    # Repeatable options (append) keep their [] to append to; [] counts as not typed.
    parser.set_defaults(**{f: NOT_GIVEN for f in kind.__dataclass_fields__
                           if parser.get_default(f) != []})


def resolved_config(kind: type[Config], args: argparse.Namespace,
                    parser: argparse.ArgumentParser) -> Config:
    """A config of parsed options: a --config file, overridden by the flags given; checked,
    with a usage error naming the option (or the config file and its key)."""
    changed = {k: v for k, v in vars(args).items()  # given_only: the options typed
               if k in kind.__dataclass_fields__ and v is not NOT_GIVEN and v != []}
    if args.embedding_size:
        changed["embedding_sizes"] = dict(args.embedding_size)
    # Only what was said: options left out take the config's defaults (which may depend on
    # what was said, as `--features paper` does).
    settings = {**(read_settings(args.config) if args.config else {}), **changed}
    config = kind.from_dict(settings)
    try:
        config.check()
    except OptionError as error:
        if args.config and error.option not in changed:
            raise InputError.at(str(args.config), error.expected, column=error.option,
                                value=error.value) from None
        option = OPTION_NAMES.get(error.option, error.option.replace("_", "-"))
        parser.error(f"argument --{option}: expected {error.expected}, "
                     f"got {_shown(error.value)}")
    return config


def _shown(value: object) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


@command
def run_train(args: argparse.Namespace) -> None:
    from rossmann_embed.rossmann.pipeline import fit

    config = train_config(args, args.subparser)
    run_dir = fit(config, resume=args.resume)
    print(f"run written to {run_dir}")


@command
def run_fit(args: argparse.Namespace) -> None:
    from rossmann_embed.tabular.workflow import fit_table

    run_dir = fit_table(resolved_config(FitConfig, args, args.subparser))
    print(f"run written to {run_dir}")


@command
def run_predict(args: argparse.Namespace) -> None:
    from rossmann_embed.tabular.estimator import describe_filled
    from rossmann_embed.tabular.workflow import predict_table

    report = predict_table(args.run, args.table, args.out)
    for note in describe_filled(report, report["fill"]):
        print(f"note: {note}")
    print(f"{report['rows']:,} rows with a prediction column written to {args.out}")


@command
def run_movielens(args: argparse.Namespace) -> None:
    from rossmann_embed.movielens.study import MovieLensOptions, movielens

    known = MovieLensOptions.__dataclass_fields__
    movielens(MovieLensOptions(**{k: v for k, v in vars(args).items() if k in known}))
    print(f"movielens.json, movielens.md and analysis/ written to {args.out}")


@command
def run_demo(args: argparse.Namespace) -> None:
    from rossmann_embed.rossmann.demo import demo

    demo(Path(args.out), seed=args.seed)


@command
def run_embeddings(args: argparse.Namespace) -> None:
    import json

    from rossmann_embed.rossmann.inference import load_run
    from rossmann_embed.rossmann.io import read_stores
    from rossmann_embed.rossmann.maps import write_run_maps
    from rossmann_embed.tabular.tables import read_table

    if (Path(args.run) / "estimator.json").is_file():  # a `fit` run: any table
        from rossmann_embed.tabular.workflow import embeddings_report

        labels = dict(_column_label(text) for text in args.label)
        summary = embeddings_report(args.run, args.out, labels, args.table)
        print(f"{len(summary['files'])} files written to {args.out}")
        return
    if args.label or args.table:
        raise InputError.at("--label", "a run written by `rossmann-embed fit` (a `train` run "
                            "labels stores and states itself)")
    run = load_run(args.run)
    data_dir = args.data_dir or json.loads((Path(args.run) / "config.json").read_text())["data_dir"]
    reference = read_table(args.reference) if args.reference else None
    summary = write_run_maps(run, read_stores(data_dir), Path(args.out), member=args.member,
                             reference=reference)
    print(json.dumps(strict_json({k: summary[k] for k in ("geography", "seconds")
                                  if k in summary}), indent=2))
    for column, why in summary["skipped"].items():
        print(f"note: no {column} maps or scores ({why})")
    print(f"{len(summary['files'])} files written to {args.out}")


@command
def run_submit(args: argparse.Namespace) -> None:
    import time

    from rossmann_embed.rossmann.inference import load_runs, submit

    start = time.perf_counter()
    runs = load_runs(args.run)
    report = submit(runs, args.data_dir, args.out, args.test,
                    allow_unknown_stores=args.allow_unknown_stores)
    _print_prediction_notes(report)
    members = sum(len(run.models) for run in runs.runs)
    print(f"{report['rows']:,} rows ({members} model{'s' * (members > 1)}) written to "
          f"{args.out} in {time.perf_counter() - start:.1f} s")


@command
def run_evaluate(args: argparse.Namespace) -> None:
    from rossmann_embed.rossmann.evaluation import evaluate, format_tables, parse_date
    from rossmann_embed.rossmann.inference import load_runs

    runs = load_runs(args.run)
    date_from, date_to = parse_date(args.date_from, "--from"), parse_date(args.date_to, "--to")
    run_dir = Path(args.run[0]) if Path(args.run[0]).is_dir() else Path(args.run[0]).parent
    out = args.out or run_dir / "evaluation" / f"{date_from}_{date_to}"
    result = evaluate(runs, args.data_dir, date_from, date_to, out,
                      allow_unknown_stores=args.allow_unknown_stores)
    _print_prediction_notes(result)
    print(format_tables(result))
    print(f"\nevaluation.json, daily_sales.png and store_rmspe.png written to {out}")


@command
def run_compare(args: argparse.Namespace) -> None:
    import os

    # Idle OpenMP threads of scikit-learn and LightGBM sleep instead of spinning: on a shared
    # 2-core machine spinning threads take the cores from working ones (HistGradientBoosting
    # ran 3x slower under load). Read when their OpenMP runtime loads, so before the import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rossmann_embed.rossmann.comparison import CompareOptions, compare

    known = CompareOptions.__dataclass_fields__
    compare(CompareOptions(**{k: v for k, v in vars(args).items() if k in known}))
    print(f"comparison.md, .csv, .png and .json written to {args.out}")


@command
def run_geography_study(args: argparse.Namespace) -> None:
    from rossmann_embed.rossmann.geography_study import StudyOptions, geography_study

    options = StudyOptions(data_dir=args.data_dir, out=args.out, seeds=args.seeds,
                           train_rows=args.train_rows, epochs=args.epochs,
                           settings=args.settings)
    report = geography_study(options)
    for s in report["settings"]:
        print(f"{s['name']:>24}: Mantel r {s['mantel_r_mean']:.2f} +- {s['mantel_r_sd'] or 0:.2f}"
              f", RMSPE {s['rmspe_mean']:.4f}")
    print(f"geography_study.json, .md and .png written to {args.out}")


@command
def run_backtest(args: argparse.Namespace) -> None:
    # No OMP_WAIT_POLICY=PASSIVE here (compare sets it): the backtest runs one model at a
    # time, and sleeping OpenMP threads made its LightGBM fits 2x slower (88 s -> 171 s).
    from rossmann_embed.rossmann.backtest import BacktestOptions, backtest

    network = read_settings(args.config) if args.config else {}
    for key in ("data_dir", "out", "validation_days", "seeds"):  # the backtest sets these
        network.pop(key, None)
    try:
        TrainConfig.from_dict({**network, "data_dir": args.data_dir, "out": args.out}).check()
    except OptionError as error:
        raise InputError.at(str(args.config), error.expected, column=error.option,
                            value=error.value) from None
    options = BacktestOptions(data_dir=args.data_dir, out=args.out, windows=args.windows,
                              horizon=args.horizon, seeds=args.seeds, network=network)
    result = backtest(options)
    print(f"mean RMSPE over {result['windows_done']} windows: forecast {result['mean_rmspe']:.4f}"
          f", LightGBM {result['mean_lightgbm_rmspe']:.4f}, median "
          f"{result['mean_median_rmspe']:.4f}; backtest.json, .md and .png written to {args.out}")


def _print_prediction_notes(report: dict) -> None:
    """Warnings a prediction counted: blank Open taken as open, stores the model never saw."""
    if report.get("open_blank_as_open"):
        print(f"note: {report['open_blank_as_open']:,} rows with a blank Open were taken as open")
    if report.get("unknown_store_rows"):
        print(f"rossmann-embed: warning: {report['unknown_stores']:,} stores the model was not "
              f"trained on ({report['unknown_store_rows']:,} rows) were predicted with the "
              "untrained unknown-store embedding", file=sys.stderr)
    if report.get("days_with_labels", 0) < report.get("days_requested", 0):
        print(f"note: train.csv has labelled rows on {report['days_with_labels']} of the "
              f"{report['days_requested']} days asked; the others are not scored")
    for column, rows in report.get("unseen_values", {}).items():
        print(f"note: {rows:,} rows have a {column} value the model never saw (encoded as "
              "unknown)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rossmann-embed",
        description="Entity embeddings for Rossmann store sales (Guo & Berkhahn): train, "
                    "predict, and see what the embeddings learned.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train an entity-embedding regressor into a run dir")
    add_train_options(train)
    given_only(train, TrainConfig)
    train.set_defaults(subparser=train)
    fit = sub.add_parser("fit", help="train on a table of one's own (CSV or parquet)")
    add_fit_options(fit)
    given_only(fit, FitConfig)
    fit.set_defaults(subparser=fit)
    predict = sub.add_parser("predict", help="a `fit` run's predictions for every row of a table")
    predict.add_argument("--run", required=True, help="run directory written by `fit`")
    predict.add_argument("--table", required=True, help="CSV or parquet file to predict")
    predict.add_argument("--out", required=True, help="CSV or parquet file to write: the table "
                         "with a prediction column")
    demo = sub.add_parser("demo", help="synthetic data -> trained run, in under 2 minutes")
    demo.add_argument("--out", required=True, help="folder for the data and the run")
    demo.add_argument("--seed", type=int, default=0)
    maps = sub.add_parser("embeddings", help="export embeddings; maps, factor tables, "
                          "geography score")
    maps.add_argument("--run", required=True, help="run directory (or a .ckpt file)")
    maps.add_argument("--out", required=True, help="folder to write")
    maps.add_argument("--data-dir", help="folder with store.csv (default: the run's data dir)")
    maps.add_argument("--member", type=int, default=0, help="ensemble member to draw")
    maps.add_argument("--reference", type=Path,
                      help="State,x,y positions to score against instead of German capitals")
    maps.add_argument("--label", action="append", default=[], metavar="COLUMN=LABEL_COLUMN",
                      help="`fit` runs: show LABEL_COLUMN of the training table beside each "
                           "value of COLUMN (repeatable)")
    maps.add_argument("--table", type=Path,
                      help="`fit` runs: the table --label reads (default: the training table)")
    submit = sub.add_parser("submit", help="Kaggle submission (Id,Sales) from one or more runs")
    submit.add_argument("--run", required=True, action="append",
                        help="run directory or .ckpt file; repeat to average runs in log space")
    submit.add_argument("--data-dir", required=True,
                        help="folder with store.csv and the train.csv history for the features")
    submit.add_argument("--test", type=Path,
                        help="file in Kaggle's test layout (default: DATA_DIR/test.csv)")
    submit.add_argument("--out", required=True, type=Path, help="submission CSV to write")
    submit.add_argument("--allow-unknown-stores", action="store_true",
                        help="predict stores the model never saw (with the untrained unknown-"
                             "store embedding) instead of stopping with an error")
    evaluate = sub.add_parser("evaluate", help="RMSPE of a run on a labelled period: tables, "
                              "evaluation.json, figures")
    evaluate.add_argument("--run", required=True, action="append",
                          help="run directory or .ckpt file; repeat to evaluate an ensemble")
    evaluate.add_argument("--data-dir", required=True, help="folder with Kaggle's Rossmann files")
    evaluate.add_argument("--from", dest="date_from", required=True, metavar="DATE",
                          help="first day, like 2015-06-14")
    evaluate.add_argument("--to", dest="date_to", required=True, metavar="DATE",
                          help="last day (inclusive), like 2015-07-31")
    evaluate.add_argument("--out", type=Path,
                          help="output folder (default: RUN/evaluation/FROM_TO)")
    evaluate.add_argument("--allow-unknown-stores", action="store_true",
                          help="score stores the model never saw instead of stopping")
    add_compare_parser(sub)
    ml = sub.add_parser("movielens", help="collaborative filtering on MovieLens 100K: RMSE on "
                        "the canonical folds and fast.ai's analysis of the movie factors")
    ml.add_argument("--data-dir", required=True, help="the ml-100k folder (u.data, u.item, ...)")
    ml.add_argument("--out", required=True, help="folder for movielens.{json,md} and analysis/")
    ml.add_argument("--factors", type=_positive, default=40)
    ml.add_argument("--epochs", type=_positive, default=5)
    ml.add_argument("--learning-rate", "--lr", type=float, default=5e-3)
    ml.add_argument("--weight-decay", type=float, default=0.3)
    ml.add_argument("--batch-size", type=_positive, default=256)
    ml.add_argument("--seeds", type=_positive, default=5, help="members averaged per model")
    ml.add_argument("--folds", type=_names, default=["u1", "u2", "u3", "u4", "u5"],
                    metavar="u1,u2,...")
    backtest = sub.add_parser(
        "backtest", help="rolling-origin backtest: the final-model recipe against a full-"
                         "strength LightGBM and a per-store median, on several windows")
    backtest.add_argument("--data-dir", required=True, help="folder with Kaggle's Rossmann files")
    backtest.add_argument("--out", required=True, help="folder for backtest.{json,md,png} and "
                          "the windows' cuts, runs and predictions (a rerun continues)")
    backtest.add_argument("--windows", type=_positive, default=3,
                          help="the last HORIZON days, the HORIZON days before, the same "
                               "season a year earlier, then further back")
    backtest.add_argument("--horizon", type=_positive, default=48, metavar="DAYS",
                          help="days per window (Kaggle's test.csv: 48)")
    backtest.add_argument("--seeds", type=_positive, default=1,
                          help="seed ensemble of the network per window")
    backtest.add_argument("--config", type=Path,
                          help="JSON or YAML TrainConfig of the network (default: train's)")
    add_geography_study_parser(sub)
    for subparser in sub.choices.values():
        subparser.add_argument("--verbose", action="store_true",
                               help="also Lightning's notes, model summaries and the "
                                    "libraries' warnings")
    return parser


def add_geography_study_parser(sub: argparse._SubParsersAction) -> None:
    """`geography-study`: which feature groups absorb the learned map of the states."""
    from rossmann_embed.rossmann.geography_study import SETTINGS, StudyOptions

    d = StudyOptions(data_dir="", out="")
    study = sub.add_parser(
        "geography-study", help="which feature groups absorb the map the State embedding "
                                "learns: settings x seeds, Mantel r, East/West, RMSPE")
    study.add_argument("--data-dir", required=True, help="folder with Kaggle's Rossmann files")
    study.add_argument("--out", required=True, help="folder for geography_study.{json,md,png} "
                       "and the runs (a rerun continues)")
    study.add_argument("--seeds", type=_positive, default=d.seeds, help="seeds per setting")
    study.add_argument("--train-rows", type=_positive, default=d.train_rows, metavar="N",
                       help="random training rows per network")
    study.add_argument("--epochs", type=_positive, default=d.epochs)
    study.add_argument("--settings", type=_settings, default=d.settings, metavar="NAME[,NAME...]",
                       help=f"settings to run: {', '.join(s.name for s in SETTINGS)}")


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    """`compare`: classic models with and without the learned embeddings (Guo & Berkhahn)."""
    compare = sub.add_parser(
        "compare", help="k-NN, random forest and gradient boosting with and without learned "
                        "embeddings, and the networks, on a time split (the paper's table)")
    compare.add_argument("--data-dir", required=True, help="folder with Kaggle's Rossmann files")
    compare.add_argument("--out", required=True, help="folder for comparison.{md,csv,png,json}")
    compare.add_argument("--setting", choices=["paper", "full", "both"], default="paper",
                         help="paper: the paper's 7 features; full: every feature; both")
    compare.add_argument("--train-rows", type=int, default=200_000,
                         help="training rows sampled from the days before the test days")
    compare.add_argument("--test-fraction", type=float, default=0.1,
                         help="the latest share of the days, as test")
    compare.add_argument("--epochs", type=int, default=10, help="epochs of both networks")
    compare.add_argument("--batch-size", type=int, default=512)
    compare.add_argument("--learning-rate", "--lr", type=float, default=None,
                         help="peak of the networks' one-cycle schedule (default: paper 0.03, "
                              "full 0.003)")
    compare.add_argument("--knn-test-rows", type=int, default=10_000,
                         help="test rows k-NN predicts (a seeded sample; 0: all)")
    compare.add_argument("--lightgbm", action=argparse.BooleanOptionalAction, default=True,
                         help="also LightGBM, when installed")
    compare.add_argument("--hide-future", type=_fraction, default=0.5, metavar="FRACTION",
                         help="share of training rows that see the data end within 60 days")
    compare.add_argument("--seed", type=int, default=0)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `rossmann-embed` console script."""
    args = build_parser().parse_args(argv)
    try:
        with quiet_libraries(args.verbose):
            COMMANDS[args.command](args)
    except InputError as error:
        print(f"rossmann-embed: error: {error}", file=sys.stderr)
        sys.exit(2)
    except TrainingFailed as error:
        print(f"rossmann-embed: error: {error}", file=sys.stderr)
        sys.exit(1)
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


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text!r}")
    return value


def _settings(text: str) -> list[str]:
    from rossmann_embed.rossmann.geography_study import SETTINGS

    names, known = _names(text), [s.name for s in SETTINGS]
    for name in names:
        if name not in known:
            raise argparse.ArgumentTypeError(f"expected names among {', '.join(known)}, "
                                             f"got {name!r}")
    return names


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _share_below_one(text: str) -> float:
    value = _fraction(text)
    if value == 1:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1), got {text!r}")
    return value


def _column_label(text: str) -> tuple[str, str]:
    column, _, label = text.partition("=")
    if not column or not label:
        raise InputError.at("--label", "COLUMN=LABEL_COLUMN", value=text)
    return column, label


def _column_size(text: str) -> tuple[str, int]:
    column, _, size = text.partition("=")
    if not column or not size.isdigit():
        raise argparse.ArgumentTypeError(f"expected COLUMN=SIZE, got {text!r}")
    return column, int(size)


if __name__ == "__main__":
    main()
