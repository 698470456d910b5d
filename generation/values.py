"""How values are read against the steward's declared domain: one definition for the code that
conforms synthetic output (generation.conformance) and the release gate that checks it
(validation.metrics, which imports these), so the two can never disagree about what is allowed.

Category labels are strings with 1, 1.0 and True alike (synthesizers often return 0/1 columns as
floats, and comparing "1" with "1.0" would call a perfect copy completely different); date-times
are parsed in mixed formats with naive values read as UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

MISSING = "\x00<missing>"
# What a synthesized category the steward did not declare is released as, in a categorical column.
# The intake declares only categories seen at least k times, so an undeclared one is a rare code (a
# small cell) and its own label must not be released. It used to become missing, which invented
# gaps in complete columns: 8% of a diagnosis column with 205 rare codes of 361 came out blank, and
# the missingness check and the steward's non-nullable declaration were both misled. Pooled under
# this label the release keeps the rows and says what they are. The gate accepts it as declared.
RARE_LABEL = "(rare)"
# The intake declares a boolean column's categories as "True"/"False"; labels read booleans as 1/0.
_BOOLEAN_LABELS = {"true": "1", "false": "0"}


def as_labels(series: pd.Series) -> pd.Series:
    """Category labels as strings, with 1, 1.0 and True alike and missing as its own label."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        numbers = pd.to_numeric(series, errors="coerce").astype(float)
        text = numbers.map(_number_label)
        return text.where(numbers.notna(), MISSING).astype(str)
    text = series.astype(object).map(_object_label)
    return text.where(series.notna(), MISSING).astype(str)


def as_datetimes(series: pd.Series) -> pd.Series:
    """Date-times in UTC (mixed formats; naive values read as UTC); unparseable values NaT."""
    return pd.to_datetime(series, errors="coerce", format="mixed", utc=True)


def as_numbers(series: pd.Series, kind: str) -> pd.Series:
    """Numbers for continuous columns: datetimes become epoch seconds, unparseable values NaN."""
    if kind == "datetime":
        parsed = as_datetimes(series)
        seconds = parsed.astype("int64") / 1e9
        return seconds.where(parsed.notna()).astype(float)
    return pd.to_numeric(series, errors="coerce").astype(float)


def declared_labels(categories: Iterable[Any], kind: str) -> set[str]:
    """The labels a column's declared categories allow (a boolean's "True"/"False" as 1/0 too)."""
    declared = list(categories)
    allowed = set(as_labels(pd.Series(declared, dtype=object)))
    if kind == "categorical":
        allowed.add(RARE_LABEL)
    if kind == "boolean":
        folded = (str(c).strip().lower() for c in declared)
        allowed |= {_BOOLEAN_LABELS[c] for c in folded if c in _BOOLEAN_LABELS}
    return allowed


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
