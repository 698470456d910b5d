"""Make a synthesizer's output conform to the steward's declared domain before it is stored.

Each column is held to its signed-off declaration (job.metadata):

- numeric / date-time with `lower` / `upper`: values are clipped into the bounds;
- numeric declared `integer`: values are rounded to whole numbers (inside the bounds);
- categorical / boolean (any column that is not numeric or date-time) with `categories`: a value that
  is not a declared category is a small cell, which must not be released (the intake declares only
  categories seen at least k times). In a categorical column it becomes `generation.values.RARE_LABEL`
  ("(rare)"), so no gap is invented in a complete column; in any other kind it becomes missing;
- numeric / date-time values that are not numbers or dates at all become missing.

This is post-processing of the synthetic frame only: it reads the declaration (public metadata),
never the source rows, so a differential-privacy guarantee still holds afterwards.

Values are read with generation.values, the same readings the release gate uses (validation
imports them), so what is kept is exactly what the gate's `bound_violations` accepts; the tests
check that the gate reports no violation on conformed output.

Only counts of changed cells are returned, never values: they go to logs and receipts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from generation.choices import ColumnKind
from generation.values import RARE_LABEL, as_datetimes, as_labels, declared_labels

ChangeCounts = dict[str, dict[str, int]]
"""{column: {"clipped" | "rounded" | "undeclared_category" | "unparseable": cells changed}}."""


def conform_to_declared(
    frame: pd.DataFrame, metadata: Iterable[Mapping[str, Any]]
) -> tuple[pd.DataFrame, ChangeCounts]:
    """A copy of `frame` held to each column's declaration, and how many cells changed per column.

    `metadata` is job.metadata: one mapping per column with name, kind and the declared keys
    (lower, upper, categories, integer). Columns with nothing declared are left as they are.
    """
    conformed = frame.copy()
    changes: ChangeCounts = {}
    for item in metadata:
        name = str(item["name"])
        if name not in conformed.columns:
            continue
        series, counts = _conform_column(conformed[name], item)
        conformed[name] = series
        counts = {rule: n for rule, n in counts.items() if n}
        if counts:
            changes[name] = counts
    return conformed, changes


def changed_cells(changes: ChangeCounts) -> int:
    """Total cells changed (each changed cell is counted under one rule only)."""
    return sum(n for counts in changes.values() for n in counts.values())


def _conform_column(series: pd.Series, item: Mapping[str, Any]) -> tuple[pd.Series, dict[str, int]]:
    kind = str(item.get("kind") or ColumnKind.CATEGORICAL)
    if kind == ColumnKind.NUMERIC:
        return _conform_numeric(series, item)
    if kind == ColumnKind.DATETIME:
        return _conform_datetime(series, item)
    if item.get("categories"):
        # As the gate: any other kind with declared categories is held to them.
        return _conform_categories(series, [str(c) for c in item["categories"]], kind)
    return series, {}


# --- Numbers -----------------------------------------------------------------------------------


def _number_bound(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _conform_numeric(series: pd.Series, item: Mapping[str, Any]) -> tuple[pd.Series, dict[str, int]]:
    lower, upper = _number_bound(item.get("lower")), _number_bound(item.get("upper"))
    integer = bool(item.get("integer"))
    if lower is None and upper is None and not integer:
        return series, {}
    parsed = pd.to_numeric(series, errors="coerce")
    unparseable = series.notna() & parsed.isna()
    numbers = parsed.astype("float64")
    outside = pd.Series(False, index=series.index)
    if lower is not None:
        outside |= numbers < lower
    if upper is not None:
        outside |= numbers > upper
    values = numbers.clip(lower=lower, upper=upper)  # missing stays missing
    if integer:
        whole = _round_within(values, lower, upper)
        rounded = (whole != values) & values.notna() & ~outside
        values = whole
    else:
        rounded = pd.Series(False, index=series.index)
    counts = {
        "unparseable": int(unparseable.sum()),
        "clipped": int(outside.sum()),
        "rounded": int(rounded.sum()),
    }
    if not any(counts.values()):
        return series, {}  # untouched, dtype and all
    return _like(series, values), counts


def _round_within(values: pd.Series, lower: float | None, upper: float | None) -> pd.Series:
    """Whole numbers inside the bounds: with bounds 0.5..3.5, 3.5 rounds to 4 and is put back to 3."""
    first = math.ceil(lower) if lower is not None and math.isfinite(lower) else None
    last = math.floor(upper) if upper is not None and math.isfinite(upper) else None
    if first is not None and last is not None and first > last:
        return values  # no whole number inside the bounds: the bounds are gated, whole-ness is not
    return values.round().clip(lower=first, upper=last)


def _like(original: pd.Series, values: pd.Series) -> pd.Series:
    """Keep an integer column integer when every value still is one (CSV then prints 7, not 7.0)."""
    present = values.dropna()
    whole = bool(np.isfinite(present).all() and (present == present.round()).all())
    if pd.api.types.is_integer_dtype(original) and whole:
        if not values.isna().any():
            return values.astype(original.dtype)
        if isinstance(original.dtype, pd.api.extensions.ExtensionDtype):
            return values.astype(original.dtype)  # Int64 and friends hold missing values
    return values


# --- Date-times --------------------------------------------------------------------------------


def _stamp_bound(value: Any) -> pd.Timestamp | None:
    """A declared date-time bound in UTC; a naive one is read as UTC, as the gate reads it."""
    if value is None or value == "":
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _conform_datetime(series: pd.Series, item: Mapping[str, Any]) -> tuple[pd.Series, dict[str, int]]:
    lower, upper = _stamp_bound(item.get("lower")), _stamp_bound(item.get("upper"))
    if lower is None and upper is None:
        return series, {}
    stamps = as_datetimes(series)
    unparseable = series.notna() & stamps.isna()
    below = stamps < lower if lower is not None else pd.Series(False, index=series.index)
    above = stamps > upper if upper is not None else pd.Series(False, index=series.index)
    counts = {"unparseable": int(unparseable.sum()), "clipped": int(below.sum() + above.sum())}
    if not any(counts.values()):
        return series, {}
    values = series.mask(unparseable)
    if lower is not None:
        values = values.mask(below, _stamp_like(series, lower))
    if upper is not None:
        values = values.mask(above, _stamp_like(series, upper))
    return values, counts


def _stamp_like(series: pd.Series, bound: pd.Timestamp) -> Any:
    """The bound as a value of the column's own type: a date-time in its time zone, or text in the
    format of its values (SDV returns date-times stored as text as text, in the source's format)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        zone = series.dt.tz
        return bound.tz_convert(zone) if zone is not None else bound.tz_localize(None)
    sample = series.dropna()
    if sample.empty or not isinstance(sample.iloc[0], str):
        return bound
    return _text_like(sample.iloc[0], bound)


def _text_like(sample: str, bound: pd.Timestamp) -> str:
    naive = bound.tz_localize(None)  # UTC wall time: the gate reads text without a zone as UTC
    fmt = guess_datetime_format(sample)
    full = str(naive.isoformat())
    if fmt is None:
        return full
    text = str(bound.strftime(fmt) if "%z" in fmt or "%Z" in fmt else naive.strftime(fmt))
    # A coarser format (dates only) can move the bound outside itself; then say it in full.
    return text if as_datetimes(pd.Series([text])).iloc[0] == bound else full


# --- Categories --------------------------------------------------------------------------------


def _conform_categories(
    series: pd.Series, categories: list[str], kind: str
) -> tuple[pd.Series, dict[str, int]]:
    kept = series.isna() | as_labels(series).isin(declared_labels(categories, kind))
    undeclared = int((~kept).sum())
    if not undeclared:
        return series, {}
    if kind == ColumnKind.CATEGORICAL:
        return series.astype(object).where(kept, RARE_LABEL), {"undeclared_category": undeclared}
    return series.where(kept), {"undeclared_category": undeclared}
