"""`geography-study` on small synthetic Rossmann files: every setting x seed trained, scored,
written, and a rerun continues instead of starting again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rossmann_embed.cli import main
from rossmann_embed.rossmann.studies.geography_study import (
    SETTINGS,
    WIDE_STORE,
    StudyOptions,
    geography_study,
)
from rossmann_embed.rossmann.studies.synthetic import write_synthetic
from rossmann_embed.tabular.errors import InputError
from rossmann_embed.tabular.model import default_embedding_size

SMALL = {"seeds": 2, "train_rows": 1500, "epochs": 1, "permutations": 99,
         "settings": ["paper", "full - weather"]}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("study-data")
    write_synthetic(root, n_stores=24, start="2014-11-01", end="2015-03-31", seed=2)
    return root


def test_the_wide_store_size_is_the_default_rule() -> None:
    assert default_embedding_size(1116) == WIDE_STORE  # 1,115 stores and the unknown row


def test_study_writes_every_setting_and_seed(data_dir: Path, tmp_path: Path) -> None:
    messages: list[str] = []
    options = StudyOptions(data_dir=str(data_dir), out=str(tmp_path), **SMALL)
    report = geography_study(options, log=messages.append)
    saved = json.loads((tmp_path / "geography_study.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert [(r["setting"], r["seed"]) for r in saved["runs"]] == [
        ("paper", 0), ("paper", 1), ("full - weather", 0), ("full - weather", 1)]
    for run in saved["runs"]:
        assert -1 <= run["mantel_r"] <= 1 and 0 < run["mantel_p"] <= 1
        assert 0 < run["rmspe"] < 1 and run["epochs_trained"] == 1
    paper, no_weather = saved["settings"]
    assert (paper["name"], paper["features"], paper["store_size"]) == ("paper", "paper", 10)
    assert no_weather["drop_features"] == ["weather"] and len(no_weather["mantel_p"]) == 2
    # Each training is a `train` run directory with the setting's options.
    config = json.loads((tmp_path / "runs" / "full-weather" / "seed-1" / "config.json")
                        .read_text())
    assert (config["drop_features"], config["seed"], config["train_rows"]) == (["weather"], 1,
                                                                               1500)
    assert config["lightgbm_weight"] == 0 and config["embedding_sizes"]["Store"] == 10
    table = (tmp_path / "geography_study.md").read_text()
    assert "| paper |" in table and "| full - weather |" in table
    assert (tmp_path / "geography_study.png").read_bytes()[:4] == b"\x89PNG"
    trained = [m for m in messages if m.startswith("[")]
    assert trained[-1].startswith("[4/4] full - weather, seed 1: Mantel r")
    assert messages[-1].startswith("geography_study.json, .md and .png written to")

    # Stopped after three trainings: a rerun trains only the fourth.
    saved["runs"] = saved["runs"][:3]
    (tmp_path / "geography_study.json").write_text(json.dumps(saved))
    messages.clear()
    again = geography_study(options, log=messages.append)
    assert "1 trainings to run" in messages[0]
    assert len([m for m in messages if m.startswith("[")]) == 1
    assert [r["mantel_r"] for r in again["runs"][:3]] == [r["mantel_r"]
                                                           for r in report["runs"][:3]]


def test_a_rerun_with_another_recipe_is_refused(data_dir: Path, tmp_path: Path) -> None:
    options = StudyOptions(data_dir=str(data_dir), out=str(tmp_path), **{**SMALL,
                           "seeds": 1, "settings": ["paper"]})  # fmt: skip
    geography_study(options, log=lambda _: None)
    with pytest.raises(InputError, match="use another --out"):
        geography_study(StudyOptions(**{**options.__dict__, "epochs": 2}), log=print)


def test_the_command_checks_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["geography-study", "--data-dir", "d", "--out", "o", "--settings", "paper,nope"])
    assert stopped.value.code == 2
    assert "expected names among paper" in capsys.readouterr().err
    assert len(SETTINGS) == 7
