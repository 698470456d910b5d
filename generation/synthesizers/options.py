"""Parsing of a synthesizer's `options` dict: typed, capped, and strict about unknown keys.

Options come from policy (and, through it, from requests), so every value is validated here with a
message that names the option and the allowed range. Unknown keys are refused rather than ignored:
a misspelt `epoch` silently falling back to the default would misreport what was run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Options = Mapping[str, Any]


def checked_options(name: str, options: Options | None, allowed: Iterable[str]) -> dict[str, Any]:
    """A copy of `options`, refusing keys the synthesizer `name` does not understand."""
    given = dict(options or {})
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(
            f"Synthesizer {name!r} does not accept option(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}."
        )
    return given


def int_option(options: Mapping[str, Any], key: str, *, default: int, low: int, high: int) -> int:
    value = options.get(key, default)
    # bool is an int subclass; `epochs=True` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"Option {key!r} must be a whole number between {low} and {high}.")
    if not low <= value <= high:
        raise ValueError(f"Option {key!r} must be between {low} and {high} (got {value}).")
    return value


def float_option(options: Mapping[str, Any], key: str, *, default: float, low: float, high: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"Option {key!r} must be a number between {low} and {high}.")
    if not low <= float(value) <= high:
        raise ValueError(f"Option {key!r} must be between {low} and {high} (got {value}).")
    return float(value)


def str_option(options: Mapping[str, Any], key: str) -> str:
    value = options.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"Option {key!r} is required and must name a column.")
    return value


def str_list_option(options: Mapping[str, Any], key: str) -> list[str]:
    value = options.get(key, [])
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"Option {key!r} must be a list of column names.")
    if not all(isinstance(item, str) for item in value):
        raise ValueError(f"Option {key!r} must be a list of column names.")
    return list(value)


def bool_option(options: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"Option {key!r} must be true or false.")
    return value


def choice_option(options: Mapping[str, Any], key: str, choices: Iterable[str], *, default: str) -> str:
    allowed = tuple(choices)
    value = options.get(key, default)
    if value not in allowed:
        raise ValueError(f"Option {key!r} must be one of {', '.join(allowed)}.")
    return str(value)
