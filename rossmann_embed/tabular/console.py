"""What a user reads: the product's own lines, with the libraries' notes kept back.

Light on purpose (no torch, no Lightning import), so that the command line can use it before
it knows which command runs.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from contextvars import ContextVar

LIBRARY_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric")
LIBRARY_MODULES = r"(pytorch_lightning|lightning|lightning_fabric|rtdl_num_embeddings|torch)(\.|$)"


VERBOSE: ContextVar[bool] = ContextVar("verbose", default=False)  # the CLI's --verbose


@contextlib.contextmanager
def quiet_libraries(verbose: bool | None = None) -> Iterator[None]:
    """Lightning's notes (devices, tips, model summaries) and the libraries' warnings kept
    out of what a user reads, unless ``verbose`` (default: what an enclosing call said, so
    that the CLI's ``--verbose`` reaches every fit inside it): what a command prints is its
    own lines, and a cross-validation is not flooded with a note per fit."""
    verbose = VERBOSE.get() if verbose is None else verbose
    token = VERBOSE.set(verbose)
    try:
        if verbose:
            yield
            return
        import pytorch_lightning  # noqa: F401  (its import sets its loggers' level: ours follow)

        levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
        try:
            for name in LIBRARY_LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", module=LIBRARY_MODULES)
                yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
    finally:
        VERBOSE.reset(token)
