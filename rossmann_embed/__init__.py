"""rossmann-embed: entity embeddings of categorical variables, as in Guo & Berkhahn's Rossmann solution."""

from rossmann_embed.errors import InputError

__all__ = ["InputError"]
__version__ = "0.1.0"
