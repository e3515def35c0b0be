"""fit(): checkpoints of a run, and --resume continuing an interrupted run where it stopped."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import polars as pl
import pytest
import torch
from pytorch_lightning import Callback

from rossmann_embed.rossmann.pipeline import fit
from rossmann_embed.rossmann.studies.synthetic import write_synthetic
from rossmann_embed.rossmann.train_config import TrainConfig


class Interrupted(Exception):
    """Stands in for a killed job."""


class InterruptAtEpoch(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise Interrupted


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only adds sync
    root = tmp_path_factory.mktemp("training")
    write_synthetic(root, n_stores=12, start="2014-06-01")
    yield root
    torch.set_num_threads(threads)


def _config(data_dir: Path, out: Path, **kwargs) -> TrainConfig:
    # No dropout: without random numbers in training steps, a resumed run must end
    # exactly where the uninterrupted one does.
    defaults = {"epochs": 3, "hidden_sizes": [32, 16], "batch_size": 256,
                "embedding_dropout": 0.0, "lightgbm_weight": 0.0}
    return TrainConfig(data_dir=str(data_dir), out=str(out), **{**defaults, **kwargs})


def _checkpoint(run: Path, name: str) -> dict:
    return torch.load(run / "checkpoints" / "seed-0" / name, weights_only=True)


def test_last_checkpoint_is_the_last_epoch_even_without_improvement(data_dir, tmp_path):
    # Learning rate 0: validation never improves after the first epoch.
    run = fit(_config(data_dir, tmp_path / "run", epochs=2, learning_rate=0.0))
    assert _checkpoint(run, "best.ckpt")["epoch"] == 0
    last = _checkpoint(run, "last.ckpt")
    assert last["epoch"] == 1 and last["global_step"] == 2 * _checkpoint(run, "best.ckpt")[
        "global_step"]


def test_resuming_a_member_that_stopped_early_trains_nothing(data_dir, tmp_path):
    config = _config(data_dir, tmp_path / "run", epochs=6, learning_rate=0.0, patience=1)
    run = fit(config)  # no improvement after epoch 0: stops after epoch 1
    stopped = _checkpoint(run, "last.ckpt")
    assert stopped["epoch"] == 1
    fit(config, resume=True)
    assert _checkpoint(run, "last.ckpt")["global_step"] == stopped["global_step"]


def test_without_validation_best_is_the_last_epoch(data_dir, tmp_path):
    run = fit(_config(data_dir, tmp_path / "run", epochs=2, validation_days=0))
    assert _checkpoint(run, "best.ckpt")["epoch"] == _checkpoint(run, "last.ckpt")["epoch"] == 1


def test_resume_ends_where_the_uninterrupted_run_ends(data_dir, tmp_path):
    whole = fit(_config(data_dir, tmp_path / "whole"))
    config = _config(data_dir, tmp_path / "resumed")
    with pytest.raises(Interrupted):
        fit(config, callbacks=[InterruptAtEpoch(2)])
    assert _checkpoint(Path(config.out), "last.ckpt")["epoch"] == 1
    resumed = fit(config, resume=True)

    metrics = pl.read_csv(resumed / "metrics.csv")  # the interrupted run's epochs kept
    per_epoch = metrics.filter(pl.col("val_rmspe").is_not_null()).get_column("epoch")
    assert per_epoch.to_list() == [0, 1, 2]
    expected, got = _checkpoint(whole, "last.ckpt"), _checkpoint(resumed, "last.ckpt")
    assert got["epoch"] == 2 and got["global_step"] == expected["global_step"]
    for name, weight in expected["state_dict"].items():
        torch.testing.assert_close(got["state_dict"][name], weight, msg=name)


def test_resume_after_a_kill_with_dropout_is_the_same_run(data_dir, tmp_path):
    """Dropout draws random numbers every step; their state travels in the checkpoint. A
    SIGKILL after epoch 1's checkpoint, then --resume, ends where the whole run ends."""
    import signal
    import subprocess
    import sys
    import textwrap

    options = {"embedding_dropout": 0.2, "dropout": [0.1, 0.1]}
    whole = fit(_config(data_dir, tmp_path / "whole", **options))
    config = _config(data_dir, tmp_path / "killed", **options)
    script = textwrap.dedent(f"""
        import os, signal
        from pytorch_lightning import Callback
        from rossmann_embed.rossmann.train_config import TrainConfig
        from rossmann_embed.rossmann.pipeline import fit

        class Kill(Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                if trainer.current_epoch == 2:
                    os.kill(os.getpid(), signal.SIGKILL)

        fit(TrainConfig.from_dict({config.to_dict()!r}), callbacks=[Kill()])
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert _checkpoint(Path(config.out), "last.ckpt")["epoch"] == 1
    resumed = fit(config, resume=True)
    expected, got = _checkpoint(whole, "last.ckpt"), _checkpoint(resumed, "last.ckpt")
    assert got["global_step"] == expected["global_step"]
    for name, weight in expected["state_dict"].items():
        torch.testing.assert_close(got["state_dict"][name], weight, msg=name)


@pytest.mark.slow
def test_the_boosted_half_is_kept_on_resume_and_refit_when_its_settings_change(data_dir,
                                                                               tmp_path):
    config = _config(data_dir, tmp_path / "run", epochs=1, lightgbm_weight=0.5)
    run = fit(config)
    model = run / "lightgbm" / "model.txt"
    report = json.loads((run / "validation.json").read_text())
    assert report["lightgbm_weight"] == 0.5
    assert {"rmspe", "network_rmspe", "lightgbm_rmspe"} <= set(report)
    written = model.stat().st_mtime_ns
    fit(config, resume=True)
    assert model.stat().st_mtime_ns == written  # complete and the same settings: kept
    reweighted = fit(dataclasses.replace(config, lightgbm_weight=0.25), resume=True)
    assert json.loads((reweighted / "lightgbm" / "blend.json").read_text())["weight"] == 0.25
    alone = fit(dataclasses.replace(config, lightgbm_weight=0.0), resume=True)
    assert not (alone / "lightgbm").exists()  # the network alone: no stale boosted half


def test_paper_features_and_dropped_groups_are_what_the_run_sees(data_dir, tmp_path):
    from rossmann_embed.rossmann.feature_groups import FEATURE_GROUPS, PAPER_FEATURES
    from rossmann_embed.rossmann.inference import load_train_run, predict_kaggle

    paper = fit(_config(data_dir, tmp_path / "paper", epochs=1, features="paper"))
    spec = load_train_run(paper).preprocessor.spec
    assert sorted(spec.categorical) == sorted(PAPER_FEATURES) and spec.continuous == []
    assert json.loads((paper / "config.json").read_text())["features"] == "paper"
    dropped = fit(_config(data_dir, tmp_path / "dropped", epochs=1,
                          drop_features=["school_holidays", "calendar"]))
    run = load_train_run(dropped)
    kept = set(run.preprocessor.spec.categorical) | set(run.preprocessor.spec.continuous)
    assert kept.isdisjoint(FEATURE_GROUPS["school_holidays"] + FEATURE_GROUPS["calendar"])
    assert {"Store", "State", "Promo"} <= kept
    predicted, _ = predict_kaggle(run, data_dir)  # submit's path builds every feature anyway
    assert predicted.height > 0


def test_the_paper_features_bring_the_papers_recipe_unless_told_otherwise():
    from rossmann_embed.arguments import resolve
    from rossmann_embed.cli import build_parser
    from rossmann_embed.rossmann.feature_groups import PAPER_EMBEDDING_SIZES
    from rossmann_embed.rossmann.train_config import PAPER_RECIPE

    paper = TrainConfig.from_dict({"data_dir": "d", "out": "o", "features": "paper"})
    assert {k: getattr(paper, k) for k in PAPER_RECIPE} == PAPER_RECIPE
    assert paper.embedding_sizes == PAPER_EMBEDDING_SIZES
    told = TrainConfig.from_dict({"data_dir": "d", "out": "o", "features": "paper",
                                  "learning_rate": 0.01, "embedding_sizes": {"Store": 4},
                                  "drop_features": ["promo"]})
    assert told.learning_rate == 0.01 and told.loss == "mae"
    assert told.embedding_sizes["Store"] == 4 and "Promo" not in told.embedding_sizes
    full = TrainConfig.from_dict({"data_dir": "d", "out": "o"})
    assert (full.loss, full.embedding_sizes) == ("mse", {})
    parser = build_parser()
    args = parser.parse_args(["train", "--data-dir", "d", "--out", "o", "--features", "paper",
                              "--loss", "mse", "--embedding-size", "State=3"])
    config = resolve(TrainConfig, args, args.subparser)
    assert (config.loss, config.learning_rate, config.embedding_sizes["State"]) == ("mse", 0.03, 3)
    assert config.lightgbm_weight == 0  # the paper's network alone


def test_a_sigterm_is_no_success_and_the_run_resumes(data_dir, tmp_path):
    """`kill` sends SIGTERM, which Lightning turns into a SystemExit with status 0: the run
    must say it stopped (``TrainingInterrupted``, exit 143 at the command line), claim no
    success (no training.json or validation.json) and keep its last checkpoint for --resume."""
    import os
    import signal

    from rossmann_embed.tabular.errors import TrainingInterrupted

    class Terminate(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if trainer.current_epoch == 1:
                os.kill(os.getpid(), signal.SIGTERM)

    config = _config(data_dir, tmp_path / "run")
    with pytest.raises(TrainingInterrupted, match="SIGTERM .*--resume"):
        fit(config, callbacks=[Terminate()])
    run = Path(config.out)
    assert not (run / "training.json").exists() and not (run / "validation.json").exists()
    assert _checkpoint(run, "last.ckpt")["epoch"] == 0
    fit(config, resume=True)
    assert _checkpoint(run, "last.ckpt")["epoch"] == 2
    assert (run / "training.json").is_file() and (run / "validation.json").is_file()
