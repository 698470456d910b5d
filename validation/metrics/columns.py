"""What the suite knows about each released column, and value normalization shared by metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MISSING = "\x00<missing>"
NUMERIC_KINDS = ("numeric", "datetime")
QUASI_IDENTIFIER = "quasi_identifier"
SENSITIVE = "sensitive"


@dataclass(frozen=True)
class ColumnInfo:
    """A released column as signed off: its kind, classification and declared rules."""

    name: str
    kind: str  # generation.choices.ColumnKind value
    classification: str = "other"
    lower: Any = None
    upper: Any = None
    categories: tuple[str, ...] | None = None
    integer: bool = False
    outcome: bool = False  # the steward declared it the outcome train-on-synthetic predicts

    @property
    def continuous(self) -> bool:
        return self.kind in NUMERIC_KINDS


def column_infos(specs: Iterable[Mapping[str, Any]]) -> list[ColumnInfo]:
    """ColumnInfo from job.metadata items (or any mapping with the same keys)."""
    infos = []
    for item in specs:
        categories = item.get("categories")
        infos.append(
            ColumnInfo(
                name=str(item["name"]),
                kind=str(item.get("kind") or "categorical"),
                classification=str(item.get("classification") or "other"),
                lower=item.get("lower"),
                upper=item.get("upper"),
                categories=tuple(str(c) for c in categories) if categories else None,
                integer=bool(item.get("integer")),
                outcome=bool(item.get("outcome")),
            )
        )
    return infos


def as_numbers(series: pd.Series, kind: str) -> pd.Series:
    """Numbers for continuous columns: datetimes become epoch seconds, unparseable values NaN."""
    if kind == "datetime":
        parsed = pd.to_datetime(series, errors="coerce", format="mixed", utc=True)
        seconds = parsed.astype("int64") / 1e9
        return seconds.where(parsed.notna()).astype(float)
    return pd.to_numeric(series, errors="coerce").astype(float)


def as_labels(series: pd.Series) -> pd.Series:
    """Category labels as strings, with 1, 1.0 and True alike and missing as its own label.

    Synthesizers often return 0/1 columns as floats; comparing "1" with "1.0" would call a perfect
    copy completely different.
    """
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        numbers = pd.to_numeric(series, errors="coerce").astype(float)
        text = numbers.map(_number_label)
        return text.where(numbers.notna(), MISSING).astype(str)
    text = series.astype(object).map(_object_label)
    return text.where(series.notna(), MISSING).astype(str)


def _number_label(value: float) -> str:
    if not np.isfinite(value):
        return str(value)
    return str(int(value)) if float(value).is_integer() else repr(round(float(value), 9))


def _object_label(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | float | np.integer | np.floating):
        return _number_label(float(value))
    return str(value)


def row_keys(frame: pd.DataFrame, infos: list[ColumnInfo]) -> pd.Series:
    """One hash per row over the released columns; numbers normalized so 1 and 1.0 are equal."""
    normalized = pd.DataFrame(index=frame.index)
    for info in infos:
        column = frame[info.name]
        if info.kind == "numeric" and pd.api.types.is_numeric_dtype(column):
            numbers = pd.to_numeric(column, errors="coerce").astype(float).round(9)
            normalized[info.name] = numbers.astype(object).where(numbers.notna(), MISSING).astype(str)
        else:
            normalized[info.name] = as_labels(column)
    return pd.util.hash_pandas_object(normalized, index=False)


def quasi_identifiers(infos: list[ColumnInfo]) -> list[str]:
    return [i.name for i in infos if i.classification == QUASI_IDENTIFIER]


def sensitive_columns(infos: list[ColumnInfo]) -> list[str]:
    return [i.name for i in infos if i.classification == SENSITIVE]
