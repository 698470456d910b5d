"""What the suite knows about each released column, and value normalization shared by metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

# The value readings are generation's (generation.values), so conforming output and gating it agree.
from generation.values import MISSING, as_labels, as_numbers

__all__ = ["MISSING", "ColumnInfo", "as_labels", "as_numbers", "column_infos", "row_keys"]

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
