"""The one exception type for bad input, with messages that say where and what."""

from __future__ import annotations

from typing import Any

# The one rule for numbers in every file and frame read (docs/errors.md): what is expected.
NUMBER_RULE = "a number (a blank or NaN counts as missing; infinity does not)"


class InputError(ValueError):
    """Bad user input: the message names the file, line or row, column, value and expectation.

    The CLI prints this message as one line and exits with status 2.
    """

    @classmethod
    def at(
        cls,
        file: str,
        expected: str,
        *,
        line: int | None = None,
        row: int | None = None,
        first_line: int | None = None,
        column: str | None = None,
        value: Any = None,
        hint: str = "",
    ) -> InputError:
        """Build ``train.csv line 12, column 'Date': got '2015-13-01', expected ...``: a
        file's ``line`` (1 is the header), or a frame's ``row`` (0-based, as in polars); a
        ``row`` with ``first_line`` (the file line of row 0) is named by its line."""
        if row is not None and first_line is not None:
            line, row = row + first_line, None
        where = str(file)
        if line is not None:
            where += f" line {line}"
        elif row is not None:
            where += f" row {row}"
        if column is not None:
            where += f"{',' if line is not None or row is not None else ''} column '{column}'"
        got = f": got {value!r}," if value is not None else ":"
        message = f"{where}{got} expected {expected}"
        if hint:
            message += f" ({hint})"
        return cls(message)


class TrainingFailed(RuntimeError):
    """Training ended without a usable model (a loss or weights that are not finite): the
    message says what happened and what to try. The CLI prints it as one line, status 1."""


class TrainingInterrupted(TrainingFailed):
    """Training was stopped from outside (SIGTERM, as ``kill`` or a scheduler sends): the run
    is incomplete but keeps its last checkpoints for ``--resume``. The CLI exits with 143."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message ("" if it has none): what a one-line report
    of a library's complaint quotes."""
    text = str(error).strip()
    return text.splitlines()[0] if text else ""
