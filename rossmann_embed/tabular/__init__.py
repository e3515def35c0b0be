"""The generic core: entity embeddings for any table. It imports no dataset package."""

from rossmann_embed.tabular.errors import InputError


def __getattr__(name: str):
    # The estimator loads torch and Lightning: only when asked for.
    if name == "EmbeddingRegressor":
        from rossmann_embed.tabular.estimator import EmbeddingRegressor

        return EmbeddingRegressor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EmbeddingRegressor", "InputError"]
