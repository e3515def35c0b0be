"""`geography-study`: which feature groups absorb the map a State embedding can learn.

A network learns where the states lie only if it must infer what differs between them
through the State embedding: their holiday calendars, school terms, weather. Features that
hand those over explicitly leave the embedding nothing to learn, and a wide Store embedding
can carry each store's region by itself. The study trains each setting of ``SETTINGS`` over
several seeds (the network alone, with the paper's recipe ``train_config.PAPER_RECIPE`` in every
setting, on a random sample of training rows) and scores each member's State embedding
against the capitals: the Mantel test (``geography_score``), the East/West group test, and the
validation RMSPE on the last 48 days.

Defaults: 3 seeds x 7 settings, 300,000 rows, 8 epochs: 1.5-2 minutes a training, 45
minutes in all on 2 CPU cores.

Layout of ``out``::

    runs/<setting>/seed-<S>/   each training, a `train` run directory (``embeddings`` works)
    geography_study.json       options; per setting: every seed's scores and their summary
    geography_study.md         the table
    geography_study.png        Mantel r per setting: each seed, and mean +- sd

A finished training is kept in geography_study.json as soon as it is scored, so a rerun with
the same options continues where a stopped one ended (and an interrupted training resumes
from its last checkpoint).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rossmann_embed.rossmann.train_config import PAPER_RECIPE, TrainConfig
from rossmann_embed.tabular.config import option
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.files import write_json, write_text

# Torch, seaborn and the training side are imported by the functions that train and draw,
# so that `rossmann-embed --help`, which lists the settings, stays fast.

WIDE_STORE = 81  # model.default_embedding_size(1116): 1,115 stores and the unknown row
NARROW_STORE = 10  # the paper's


@dataclass(frozen=True)
class Setting:
    """What one setting changes in ``train``'s configuration."""

    name: str
    features: str = "full"
    drop_features: tuple[str, ...] = ()
    store_size: int = NARROW_STORE

    def overrides(self) -> dict[str, Any]:
        """The TrainConfig fields of this setting (other embeddings: the features' default,
        the paper's sizes for the paper's features)."""
        return {"features": self.features, "drop_features": list(self.drop_features),
                "embedding_sizes": {"Store": self.store_size}}


# Narrow Store embeddings unless named: the groups' effects show where a wide one does not
# carry the regions by itself. "full" is every feature the data has (trends included). Seven
# settings of 3 seeds: 21 trainings of about 2 minutes.
SETTINGS = (
    Setting("paper", features="paper"),
    Setting("full"),
    Setting(f"full (Store {WIDE_STORE})", store_size=WIDE_STORE),
    Setting("full - weather", drop_features=("weather",)),
    Setting("full - school_holidays", drop_features=("school_holidays",)),
    Setting("full - state_holidays", drop_features=("state_holidays",)),
    Setting("full - trends", drop_features=("trends",)),
)


ORDER = {s.name: i for i, s in enumerate(SETTINGS)}


@dataclass
class StudyOptions:
    """What the study trains. The defaults finish within an hour on 2 CPU cores."""

    data_dir: str = option(help="folder with Kaggle's Rossmann files")
    out: str = option(help="folder for geography_study.{json,md,png} and the runs (a rerun "
                      "continues)")
    seeds: int = option(3, "seeds per setting")
    train_rows: int = option(300_000, "random training rows per network (of the training "
                             "period's 755k)", metavar="N")
    epochs: int = option(8, "epochs of each network")
    permutations: int = option(9999, "permutations of each Mantel test")
    settings: list[str] = option(factory=lambda: [s.name for s in SETTINGS],
                                 metavar="NAME[,NAME...]", help="settings to run: "
                                 + ", ".join(s.name for s in SETTINGS))

    def check(self) -> None:
        """An ``InputError`` naming the first option outside what is allowed."""
        for name in ("seeds", "train_rows", "epochs", "permutations"):
            if getattr(self, name) < 1:
                raise InputError.at(f"--{name.replace('_', '-')}", "a whole number of at "
                                    "least 1", value=getattr(self, name))
        known = [s.name for s in SETTINGS]
        if not self.settings:
            raise InputError.at("--settings", f"at least one of {', '.join(known)}")
        for name in self.settings:
            if name not in known:
                raise InputError.at("--settings", f"names among {', '.join(known)}", value=name)

    def recipe(self) -> dict[str, Any]:
        """What a finished training depends on: a rerun reuses results only if equal."""
        return {"data_dir": str(self.data_dir), "train_rows": self.train_rows,
                "epochs": self.epochs, "permutations": self.permutations,
                "network": PAPER_RECIPE,
                "settings": {s.name: s.overrides() for s in SETTINGS}}


def geography_study(options: StudyOptions, log: Callable[[str], None] = print
                    ) -> dict[str, Any]:
    """Train and score every setting x seed not yet in ``out/geography_study.json``; write
    the json, the markdown table and the figure; return the json's content."""
    from rossmann_embed.rossmann.pipeline import fit
    from rossmann_embed.rossmann.training import read_features
    from rossmann_embed.tabular.plots import plot_spread

    options.check()
    out = Path(options.out)
    if out.exists() and not out.is_dir():
        raise InputError.at(str(out), "a directory to write the study into (--out)")
    path = out / "geography_study.json"
    results = _finished(path, options)
    settings = [s for s in SETTINGS if s.name in options.settings]
    todo = [(s, seed) for s in settings for seed in range(options.seeds)
            if (s.name, seed) not in results]
    log(f"geography study: {len(settings)} settings x {options.seeds} seeds, "
             f"{len(todo)} trainings to run, {options.train_rows:,} rows, "
             f"{options.epochs} epochs each -> {out}")
    # One network recipe for every setting, the paper's, so that only what a setting names
    # differs; the network alone (no boosted half), every feature the data has.
    base = {**PAPER_RECIPE, "data_dir": options.data_dir, "trends": True,
            "epochs": options.epochs, "train_rows": options.train_rows}
    table = read_features(TrainConfig.from_dict({**base, "out": ""})) if todo else None
    started = time.perf_counter()
    for done, (setting, seed) in enumerate(todo, start=1):
        run_dir = out / "runs" / _safe(setting.name) / f"seed-{seed}"
        config = TrainConfig.from_dict({**base, **setting.overrides(), "seed": seed,
                                        "out": str(run_dir)})
        start = time.perf_counter()
        fit(config, resume=True, table=table)
        result = {"setting": setting.name, "seed": seed, **_score(run_dir, options),
                  "seconds": round(time.perf_counter() - start, 1)}
        results[setting.name, seed] = result
        write_json(path, _report(options, results))
        left = (time.perf_counter() - started) / done * (len(todo) - done)
        log(f"[{done}/{len(todo)}] {setting.name}, seed {seed}: Mantel r "
                 f"{result['mantel_r']:.2f} (p {result['mantel_p']:.4f}), RMSPE "
                 f"{result['rmspe']:.4f}, {result['seconds']:.0f} s; about {left / 60:.0f} "
                 "min left")
    report = _report(options, results)
    write_json(path, report)
    write_text(out / "geography_study.md", study_markdown(report))
    plot_spread(
        pl.DataFrame([{"label": r["setting"], "value": r["mantel_r"]} for r in report["runs"]]),
        out / "geography_study.png",
        "Mantel r: State embedding distances against the capitals' distances",
        "Mantel r (each seed; mean +- sd)",
    )
    for s in report["settings"]:
        log(f"{s['name']:>24}: Mantel r {s['mantel_r_mean']:.2f} +- {s['mantel_r_sd'] or 0:.2f}"
            f", RMSPE {s['rmspe_mean']:.4f}")
    log(f"geography_study.json, .md and .png written to {out}")
    return report


def _safe(name: str) -> str:
    """A setting's name as a directory name: 'full - weather' -> 'full-weather'."""
    return "".join(c if c.isalnum() else "-" for c in name).replace("---", "-").strip("-")


def _finished(path: Path, options: StudyOptions) -> dict[tuple[str, int], dict]:
    """The results a stopped study with the same recipe left, by (setting, seed)."""
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text())
    if saved.get("recipe") != options.recipe():
        raise InputError.at(str(path), f"a study with the recipe {saved.get('recipe')} "
                            f"(this one: {options.recipe()}); use another --out to start afresh")
    return {(r["setting"], r["seed"]): r for r in saved["runs"] if r["setting"] in ORDER}


def _score(run_dir: Path, options: StudyOptions) -> dict[str, Any]:
    """The member's State embedding against the capitals, and its validation RMSPE."""
    from rossmann_embed.rossmann.inference import load_train_run
    from rossmann_embed.rossmann.maps import build_tables, score_states
    from rossmann_embed.tabular.report import run_weights

    run = load_train_run(run_dir)
    state = build_tables(run.preprocessor.vocabularies, run_weights(run.models[0]))["State"]
    score = score_states(state, permutations=options.permutations).to_json_dict()
    validation = json.loads((run_dir / "validation.json").read_text())
    epochs = pl.read_csv(run_dir / "metrics.csv").get_column("epoch").max()
    score.pop("n_states")
    return {**score, "rmspe": validation["network_rmspe"], "epochs_trained": int(epochs) + 1}


def _report(options: StudyOptions, results: dict[tuple[str, int], dict]) -> dict[str, Any]:
    """Every finished training (a rerun with fewer settings or seeds keeps the others), and
    a summary per setting, in the order of ``SETTINGS``."""
    runs = sorted(results.values(), key=lambda r: (ORDER[r["setting"]], r["seed"]))
    summary = []
    for setting in SETTINGS:
        mine = [r for r in runs if r["setting"] == setting.name]
        if not mine:
            continue
        r = np.array([m["mantel_r"] for m in mine])
        summary.append({
            **asdict(setting), "drop_features": list(setting.drop_features),
            "seeds": [m["seed"] for m in mine],
            "mantel_r_mean": float(r.mean()), "mantel_r_sd": float(r.std(ddof=1)) if len(r) > 1
            else None, "mantel_p": [m["mantel_p"] for m in mine],
            "east_west_r_mean": float(np.mean([m["east_west_r"] for m in mine])),
            "east_west_p": [m["east_west_p"] for m in mine],
            "rmspe_mean": float(np.mean([m["rmspe"] for m in mine])),
            "rmspe_sd": float(np.std([m["rmspe"] for m in mine], ddof=1)) if len(mine) > 1
            else None,
        })  # fmt: skip
    return {"recipe": options.recipe(), "settings": summary, "runs": runs}


def study_markdown(report: dict[str, Any]) -> str:
    """The study's table: one row per setting."""
    from rossmann_embed.tabular.embedding_tables import markdown_table

    rows = pl.DataFrame([{
        "setting": s["name"],
        "seeds": len(s["seeds"]),
        "Store size": s["store_size"],
        "Mantel r": f"{s['mantel_r_mean']:.2f} ± {s['mantel_r_sd'] or 0:.2f}",
        "p per seed": ", ".join(f"{p:.4f}" for p in s["mantel_p"]),
        "East/West r": f"{s['east_west_r_mean']:.2f}",
        "East/West p per seed": ", ".join(f"{p:.4f}" for p in s["east_west_p"]),
        "val RMSPE": f"{s['rmspe_mean']:.4f}",
    } for s in report["settings"]])  # fmt: skip
    recipe = report["recipe"]
    return (
        "# Where the learned geography goes\n\n"
        "Each setting over its seeds: the network alone with the paper's "
        "recipe (MAE of log sales, peak learning rate 0.03, no dropout), trained on "
        f"{recipe['train_rows']:,} random rows of the training period for {recipe['epochs']} "
        "epochs; the State embedding of each seed scored against the state capitals "
        f"(Mantel test, {recipe['permutations']} permutations) and the former East against "
        "the West (ANOSIM); RMSPE on the last 48 days. Narrow settings use the paper's "
        f"Store embedding of {NARROW_STORE}; the default rule gives {WIDE_STORE}.\n\n"
        + markdown_table(rows) + "\n"
    )
