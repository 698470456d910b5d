"""The one rule for a CSV cell a spreadsheet would evaluate (OWASP "CSV Injection").

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a formula by
Excel, LibreOffice and Google Sheets; such text cells get a leading single quote. Numbers are left
alone: `-3.5` is not a formula. Here in core so every app that serves a CSV (generation's
outputs, audit's export) applies the same rule.
"""

from __future__ import annotations

import re
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# A plain number as a spreadsheet (or pandas) writes it: sign, digits, decimals, exponent, inf/nan.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf(?:inity)?|nan)", re.I)


def is_formula_like(value: str) -> bool:
    """True for a text cell a spreadsheet would evaluate (and that is not just a signed number)."""
    return value.startswith(FORMULA_TRIGGERS) and _PLAIN_NUMBER.fullmatch(value) is None


def neutralise_cell(value: Any) -> Any:
    """Prefix a formula-like string with `'`; anything else (numbers, missing values) unchanged."""
    if isinstance(value, str) and is_formula_like(value):
        return "'" + value
    return value
