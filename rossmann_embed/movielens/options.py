"""What `rossmann-embed movielens` runs: light, so that the command line reads it fast."""

from __future__ import annotations

from dataclasses import dataclass

from rossmann_embed.tabular.config import is_whole, option, require

FOLDS = [f"u{k}" for k in range(1, 6)]  # GroupLens' canonical 5-fold split


@dataclass
class MovieLensOptions:
    """What `rossmann-embed movielens` runs; the defaults are the ones chosen on u1.base."""

    data_dir: str = option(help="the ml-100k folder (u.data, u.item, ...)")
    out: str = option(help="folder for movielens.{json,md} and analysis/")
    factors: int = option(40, "width of the user and movie embeddings")
    epochs: int = option(5, "epochs of each model")
    learning_rate: float = option(5e-3, "peak of the one-cycle schedule", aliases=("--lr",))
    weight_decay: float = option(0.3, "AdamW's")
    batch_size: int = option(256, "ratings a step")
    seeds: int = option(5, "members averaged per model")
    folds: list[str] = option(factory=lambda: list(FOLDS), metavar="u1,u2,...",
                              help="GroupLens' folds to score")

    def check(self) -> None:
        """``OptionError`` for the first option outside what is allowed."""
        for name in ("factors", "epochs", "batch_size", "seeds"):
            require(self, name, is_whole(getattr(self, name), 1), "a whole number of at least 1")
        require(self, "folds", bool(self.folds) and all(f in FOLDS for f in self.folds),
                f"folds among {', '.join(FOLDS)}")
