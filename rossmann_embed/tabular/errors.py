"""The one exception type for bad input, with messages that say where and what."""

from __future__ import annotations

from typing import Any


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
        column: str | None = None,
        value: Any = None,
        hint: str = "",
    ) -> InputError:
        """Build ``train.csv line 12, column 'Date': got '2015-13-01', expected ...``."""
        where = str(file)
        if line is not None:
            where += f" line {line}"
        if column is not None:
            where += f"{',' if line is not None else ''} column '{column}'"
        got = f": got {value!r}," if value is not None else ":"
        message = f"{where}{got} expected {expected}"
        if hint:
            message += f" ({hint})"
        return cls(message)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message ("" if it has none): what a one-line report
    of a library's complaint quotes."""
    text = str(error).strip()
    return text.splitlines()[0] if text else ""
