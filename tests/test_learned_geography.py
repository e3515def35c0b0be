"""End to end: the demo's network, trained on synthetic data with a planted map, learns that
map in its State embedding (Mantel test and Procrustes residual against planted positions).

What teaches it are the generator's time-varying effects (each state's yearly and weekly curve
and its weekly weather), shared by the stores of a state and smooth in the state's location.
The control trains the same way on the same rows with the stores dealt to the states at
random, so a "state" no longer groups neighbours: then no map may come out.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rossmann_embed.rossmann.inference import load_train_run
from rossmann_embed.rossmann.maps import build_tables, run_weights, score_states
from rossmann_embed.rossmann.pipeline import fit
from rossmann_embed.rossmann.studies.demo import demo
from rossmann_embed.rossmann.train_config import TrainConfig
from rossmann_embed.tabular.spatial import GeographyScore

PERMUTATIONS = 999


def state_score(run_dir: Path, data_dir: Path) -> GeographyScore:
    """Score the run's State embedding against the planted state positions."""
    run = load_train_run(run_dir)
    state = build_tables(run.preprocessor.vocabularies, run_weights(run.models[0]))["State"]
    reference = pl.read_csv(data_dir / "locations_states.csv")
    return score_states(state, reference=reference, permutations=PERMUTATIONS)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo, as `rossmann-embed demo` runs it: data in out/data, run in out/run, maps
    (scored against the planted state positions) in out/maps."""
    out = tmp_path_factory.mktemp("demo")
    demo(out, seed=0)
    return out


def test_the_demo_learns_the_planted_map(demo_run: Path) -> None:
    # The demo scores its run's State embedding against locations_states.csv itself.
    score = json.loads((demo_run / "maps" / "geography.json").read_text())
    assert score["map"] == "reference" and score["n_states"] == 12
    assert score["mantel_r"] > 0.6, score
    assert score["mantel_p"] < 0.01, score
    assert score["procrustes_residual"] < 0.5, score


@pytest.mark.slow
def test_no_map_is_learned_when_states_group_stores_at_random(
    demo_run: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(demo_run / "data", data)
    states = pl.read_csv(data / "external" / "store_states.csv")
    shuffled = states["State"].to_numpy()[np.random.default_rng(0).permutation(states.height)]
    states.with_columns(State=pl.Series(shuffled)).write_csv(data / "external/store_states.csv")
    config = TrainConfig.load(demo_run / "run" / "config.json")  # the demo's own settings
    config.data_dir, config.out = str(data), str(tmp_path / "run")

    score = state_score(fit(config), data)
    assert score.mantel_r < 0.3, score.to_json_dict()
