"""Command-line options generated from the options' dataclasses.

A dataclass field becomes a flag: its name (or ``option(flag=...)``), its type from the
annotation, its help and choices from ``tabular.config.option``. Parsers leave out what was
not typed (``argparse.SUPPRESS``), so the dataclass's own defaults decide the rest and no
default is stated twice; ``--features paper`` can bring the paper's recipe while a flag typed
beside it still wins.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from rossmann_embed.tabular.config import OptionError, read_settings
from rossmann_embed.tabular.errors import InputError

Options = TypeVar("Options")


def names(text: str) -> list[str]:
    """``a,b`` as ``["a", "b"]``."""
    return [v.strip() for v in text.split(",") if v.strip()]


def column_size(text: str) -> tuple[str, int]:
    """``COLUMN=SIZE`` as a pair."""
    column, _, size = text.partition("=")
    if not column or not size.isdigit():
        raise argparse.ArgumentTypeError(f"expected COLUMN=SIZE, got {text!r}")
    return column, int(size)


def column_pair(text: str) -> tuple[str, str]:
    """``COLUMN=OTHER`` as a pair."""
    column, _, other = text.partition("=")
    if not column or not other:
        raise argparse.ArgumentTypeError(f"expected COLUMN=LABEL_COLUMN, got {text!r}")
    return column, other


def _list_of(kind: type) -> typing.Callable[[str], list]:
    def parse(text: str) -> list:
        return [kind(v) for v in names(text)]
    parse.__name__ = f"comma-separated {kind.__name__}s"  # what argparse's errors call it
    return parse


def _parsing(annotation: Any) -> dict[str, Any]:
    """How argparse reads a value of ``annotation`` (``X | None`` reads as ``X``)."""
    if isinstance(annotation, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is list and args and typing.get_origin(args[0]) is list:
        return {"type": names, "action": "append"}  # repeatable pairs, like A,B
    if origin is list:
        return {"type": names if args[0] is str else _list_of(args[0])}
    if origin is dict:
        return {"type": column_size, "action": "append"}  # repeatable COLUMN=SIZE
    return {"type": annotation}


def add_options(parser: argparse.ArgumentParser, kind: type, skip: tuple[str, ...] = ()) -> None:
    """A flag for every field of the dataclass ``kind`` but ``skip``: required where the
    field has no default, else with the default shown in its help."""
    hints = typing.get_type_hints(kind)
    fields = sorted(dataclasses.fields(kind), key=lambda f: not _is_required(f))
    for field in fields:
        if field.name in skip:
            continue
        meta = _metadata(kind, field.name)
        required = _is_required(field)
        help_text = meta.get("help", "")
        default = _default(field)
        if not required and default not in (None, [], {}, False):
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            help_text += f" (default: {shown})" if help_text else f"default: {shown}"
        flag = "--" + (meta.get("flag") or field.name.replace("_", "-"))
        parser.add_argument(flag, *meta.get("aliases", ()), dest=field.name, required=required,
                            help=help_text, metavar=meta.get("metavar"),
                            choices=meta.get("choices"), **_parsing(hints[field.name]))


def _metadata(kind: type, name: str) -> dict[str, Any]:
    """A field's option metadata, inherited from the class that first described it (a
    subclass that only changes the default keeps the help)."""
    for cls in reversed(kind.__mro__):
        found = getattr(cls, "__dataclass_fields__", {}).get(name)
        if found is not None and found.metadata.get("help"):
            return dict(found.metadata)
    return {}


def _is_required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def typed(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options among ``names`` that were typed on the command line (parsers leave the
    others out), to pass on as keywords: the function's own defaults decide the rest."""
    return {name: getattr(args, name) for name in names if name in args}


def typed_options(args: argparse.Namespace, kind: type) -> dict[str, Any]:
    """The fields of the dataclass ``kind`` that were typed on the command line."""
    hints = typing.get_type_hints(kind)
    found = typed(args, *(f.name for f in dataclasses.fields(kind)))
    return {k: dict(v) if typing.get_origin(hints[k]) is dict else v for k, v in found.items()}


def flag_of(kind: type, name: str) -> str:
    """The command-line flag of field ``name``."""
    return "--" + (_metadata(kind, name).get("flag") or name.replace("_", "-"))


def resolve(kind: type[Options], args: argparse.Namespace, parser: argparse.ArgumentParser,
            **fixed: Any) -> Options:
    """The checked options of a command line: a ``--config`` file, overridden by the flags
    typed, and ``fixed`` values. A bad flag is a usage error naming it; a bad key of the file
    is an ``InputError`` naming the file and the key."""
    said = typed_options(args, kind)
    config_file: Path | None = getattr(args, "config", None)
    settings = {**(read_settings(config_file) if config_file else {}), **said, **fixed}
    from_dict = getattr(kind, "from_dict", None)
    options = from_dict(settings) if from_dict else kind(**settings)
    try:
        options.check()
    except OptionError as error:
        if config_file and error.option not in said:
            raise InputError.at(str(config_file), error.expected, column=error.option,
                                value=error.value) from None
        parser.error(f"argument {flag_of(kind, error.option)}: expected {error.expected}, "
                     f"got {_shown(error.value)}")
    return options


def _shown(value: object) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)
