"""The command line's options come from the options' dataclasses: a flag per field, the
dataclass's defaults (stated once) for anything not typed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rossmann_embed.arguments import resolve
from rossmann_embed.cli import PARSERS, build_parser
from rossmann_embed.rossmann.train_config import PAPER_RECIPE, TrainConfig

REQUIRED = {"--data-dir": "d", "--out": "o", "--table": "t.csv", "--target": "y"}


def required_args(options: type) -> list[str]:
    flags = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(options)
             if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    return [part for flag in flags for part in (flag, REQUIRED[flag])]


@pytest.mark.parametrize("command", [c for c, (_, options, _) in PARSERS.items() if options])
def test_every_field_is_a_flag_and_nothing_untyped_is_parsed(command: str) -> None:
    _, options, _ = PARSERS[command]
    parser = build_parser()
    args = parser.parse_args([command, *required_args(options)])
    parsed = set(vars(args)) - {"command", "subparser"}
    assert parsed == {f.name for f in dataclasses.fields(options)
                      if f.default is dataclasses.MISSING
                      and f.default_factory is dataclasses.MISSING}
    texts = args.subparser.format_help()
    for field in dataclasses.fields(options):
        if field.name != "network":  # the backtest's --config file
            flag = field.metadata.get("flag") or field.name.replace("_", "-")
            assert f"--{flag}" in texts, flag


def test_help_shows_the_dataclass_default() -> None:
    parser = build_parser()
    args = parser.parse_args(["train", "--data-dir", "d", "--out", "o"])
    text = " ".join(args.subparser.format_help().split())
    assert f"(default: {TrainConfig(data_dir='', out='').lightgbm_weight})" in text


def test_typed_flags_win_over_the_config_file_and_the_paper_recipe(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 3\nlearning_rate: 0.01\nfeatures: paper\n")
    parser = build_parser()
    args = parser.parse_args(["train", "--data-dir", "d", "--out", "o", "--config", str(config),
                              "--lr", "0.002", "--hidden-sizes", "64,32", "--no-weather"])
    resolved = resolve(TrainConfig, args, args.subparser)
    assert (resolved.epochs, resolved.learning_rate, resolved.weather) == (3, 0.002, False)
    assert resolved.hidden_sizes == [64, 32] and resolved.dropout == [0.0, 0.0]
    assert resolved.loss == PAPER_RECIPE["loss"]  # the file's features: paper
