"""Settings dataclasses as the one place for defaults, help texts and ranges.

A field made with :func:`setting` carries its help text and, optionally, its check (a predicate
and the words for the expected range) and choices. :func:`validate` checks any settings
dataclass the same way (NaN and infinity refused for every float) and raises
:class:`SettingsError` naming the flag (``--field-name: expected ...; got ...``); the command line
(``safepce.bounds.cli``) generates its flags, with their defaults in ``--help``, from the same
fields.
"""

from __future__ import annotations

import math
import numbers
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, field, fields

from safepce.tabular.errors import InputError


class SettingsError(InputError):
    """A setting is out of range (the message names its flag)."""


def setting(default, help: str, check: Callable | None = None, expected: str = "",
            choices: Callable[[], tuple] | tuple | None = None):
    """A dataclass field with its help text, range check (``check(value)`` must be true;
    ``expected`` says the range in words) and choices (a tuple or a callable returning one)."""
    metadata = {"help": help, "check": check, "expected": expected, "choices": choices}
    if isinstance(default, (list, dict, set)):
        raise TypeError("setting: use a tuple for a sequence default")
    return field(default=default, metadata=metadata)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def field_type(cls, name: str) -> tuple[type, bool, bool]:
    """(element type, is a sequence, may be None) of a settings field."""
    hint = typing.get_type_hints(cls)[name]
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        arguments = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(arguments) < len(typing.get_args(hint))
        hint = arguments[0]
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0], True, optional
    return hint, False, optional


def choices_of(metadata) -> tuple | None:
    choices = metadata.get("choices")
    return choices() if callable(choices) else choices


def _check_one(cls, f, value) -> None:
    kind, _, optional = field_type(cls, f.name)
    name = flag(f.name)
    if value is None:
        if optional:
            return
        raise SettingsError(f"{name}: expected a value; got None")
    if kind is int and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise SettingsError(f"{name}: expected an integer; got {value!r}")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise SettingsError(f"{name}: expected a number; got {value!r}")
        if not math.isfinite(value):
            raise SettingsError(f"{name}: expected a finite number; got {value!r}")
    choices = choices_of(f.metadata)
    if choices is not None and value not in choices:
        raise SettingsError(f"{name}: expected names among {tuple(choices)}; got {value!r}")
    check = f.metadata.get("check")
    if check is not None and not check(value):
        raise SettingsError(f"{name}: expected {f.metadata['expected']}; got {value!r}")


def validate(settings):
    """Check every field of a settings dataclass instance; returns it."""
    cls = type(settings)
    for f in fields(cls):
        if "help" not in f.metadata:
            continue
        value = getattr(settings, f.name)
        _, many, optional = field_type(cls, f.name)
        if many and not (optional and value is None):
            if not isinstance(value, (tuple, list)) or not value:
                raise SettingsError(f"{flag(f.name)}: expected one or more values; got {value!r}")
            for item in value:
                _check_one(cls, f, item)
        else:
            _check_one(cls, f, value)
    return settings


def defaults(cls) -> dict:
    """Every field's default (for ``--help`` and documentation)."""
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


# --- the checks commands share -----------------------------------------------------------------


def positive(value) -> bool:
    return value > 0


def non_negative(value) -> bool:
    return value >= 0


def probability(value) -> bool:
    return 0 <= value <= 1


def algorithm_delta(value) -> bool:
    """Algorithm 1's delta: the coverage statement needs 1 - 6 delta > 0 and 3 delta < 1."""
    return 0 < value < 1 / 3


def discount(value) -> bool:
    return 0 < value < 1
