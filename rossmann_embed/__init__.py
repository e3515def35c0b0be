"""rossmann-embed: entity embeddings of categorical variables (Guo & Berkhahn, Rossmann)."""

from rossmann_embed.tabular.errors import InputError

__all__ = ["InputError"]
__version__ = "0.1.0"
