"""Profile a parsed table: per-column type, missingness, distinct counts and summary statistics.

Statistics that reveal values (min/max, top categories, histograms) are shown only to roles
that hold custody of the data; any count below the small-cell threshold k is suppressed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ValidationFailed
from generation.choices import ColumnKind
from generation.policies import looks_like_id_name
from generation.values import MISSING, as_labels, as_numbers

PARQUET_MAGIC = b"PAR1"
_BOOLEAN_WORDS = {"0", "1", "true", "false", "yes", "no", "y", "n", "t", "f"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?")
TOP_CATEGORIES = 12
HISTOGRAM_BINS = 20
PATTERN_SAMPLE = 2000


@dataclass
class ColumnProfile:
    name: str
    kind: str
    missing_rate: float
    distinct: int
    stats: dict[str, Any] = field(default_factory=dict)
    patterns: list[str] = field(default_factory=list)  # value shapes seen, e.g. "ssn", "email"
    unique_per_row: bool = False  # no value missing and none repeated


def read_table(path: Path) -> pd.DataFrame:
    """Read a stored plaintext CSV or Parquet file (used by tests and tooling)."""
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise ValidationFailed(
            f"The file could not be read as a table ({type(exc).__name__}).", code="unreadable_file"
        ) from None
    return frame


def infer_kind(series: pd.Series) -> str:
    present = series.dropna()
    if present.empty:
        return ColumnKind.CATEGORICAL
    distinct = present.nunique()
    if pd.api.types.is_bool_dtype(series):
        return ColumnKind.BOOLEAN
    lowered = {str(v).strip().lower() for v in present.unique()[:3]}
    if distinct <= 2 and lowered <= _BOOLEAN_WORDS and not pd.api.types.is_float_dtype(series):
        return ColumnKind.BOOLEAN
    if pd.api.types.is_numeric_dtype(series):
        return ColumnKind.NUMERIC
    as_text = present.astype(str)
    if as_text.str.match(_ISO_DATE).mean() > 0.95:
        return ColumnKind.DATETIME
    if len(present) >= 20 and distinct / len(present) > 0.9:
        return ColumnKind.TEXT if as_text.str.len().mean() > 40 else ColumnKind.IDENTIFIER
    if as_text.str.len().mean() > 60 and as_text.str.count(r"\s").mean() > 6:
        return ColumnKind.TEXT
    return ColumnKind.CATEGORICAL


# Value shapes that mark direct identifiers (or quasi-identifiers, for postcodes and birth dates).
VALUE_PATTERNS: dict[str, re.Pattern[str]] = {
    "ssn": re.compile(r"^\d{3}-\d{2}-\d{4}$|^\d{9}$"),
    "email": re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"),
    "phone": re.compile(r"^(\+?\d{1,3}[\s.-]?)?(\(\d{2,4}\)|\d{2,4})[\s.-]?\d{3,4}[\s.-]?\d{3,4}$"),
    "mrn": re.compile(r"^(MRN|MR|PT|ID)?[-:# ]?\d{6,12}$", re.IGNORECASE),
    "person_name": re.compile(r"^[A-Z][a-z]+(?:[ '-][A-Z][a-z]+)*,? [A-Z][a-z]+(?:[ -][A-Z][a-z]+)*$"),
    "postcode": re.compile(r"^\d{5}(-\d{4})?$|^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$", re.IGNORECASE),
}


def value_patterns(series: pd.Series) -> list[str]:
    """Shapes matched by at least 80% of a sample of the non-missing values."""
    present = series.dropna()
    if present.empty:
        return []
    sample = present.sample(min(len(present), PATTERN_SAMPLE), random_state=0).astype(str).str.strip()
    if pd.api.types.is_float_dtype(series):
        return []  # measurements, not codes
    found = [name for name, pattern in VALUE_PATTERNS.items() if sample.str.match(pattern).mean() >= 0.8]
    # A 9-digit or 6-12 digit number is only an identifier when it is also near-unique.
    near_unique = present.nunique() / len(present) > 0.9
    return [
        p for p in found if p not in {"ssn", "mrn", "phone"} or near_unique or not sample.str.isdigit().all()
    ]


def _numeric_stats(series: pd.Series, k: int) -> dict[str, Any]:
    values = pd.to_numeric(series, errors="coerce").dropna().to_numpy(dtype=float)
    if values.size == 0:
        return {}
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": float(values.mean()),
        "integer": bool(np.all(np.mod(values, 1) == 0)),
        "histogram": {
            "edges": [float(e) for e in edges],
            # Bins holding fewer than k rows are suppressed (None), so rare values stay hidden.
            "counts": [int(c) if c == 0 or c >= k else None for c in counts],
        },
    }


def _category_stats(series: pd.Series, k: int) -> dict[str, Any]:
    counts = series.dropna().astype(str).value_counts()
    shown = counts[counts >= k].head(TOP_CATEGORIES)
    return {
        "top": [[str(v), int(c)] for v, c in shown.items()],
        "small_cells": int((counts < k).sum()),
        "categories_at_least_k": [str(v) for v in counts[counts >= k].index[:1000]],
    }


def _datetime_stats(series: pd.Series) -> dict[str, Any]:
    parsed = pd.to_datetime(series, errors="coerce", format="mixed").dropna()
    if parsed.empty:
        return {}
    return {"min": parsed.min().isoformat(), "max": parsed.max().isoformat()}


def column_stats(series: pd.Series, kind: str, k: int) -> dict[str, Any]:
    if kind == ColumnKind.NUMERIC:
        return _numeric_stats(series, k)
    if kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
        return _category_stats(series, k)
    if kind == ColumnKind.DATETIME:
        return _datetime_stats(series)
    return {}


def _id_stats(series: pd.Series) -> dict[str, Any]:
    """For a column named like an identifier: whether its values repeat (several rows per
    subject), which matters for the privacy unit. Custodians only (it holds an exact count)."""
    counts = series.dropna().value_counts()
    most = int(counts.max()) if len(counts) else 0
    return {"id_like": True, "repeats": most > 1, "max_rows_per_value": most}


def profile_frame(frame: pd.DataFrame, *, k: int = 5) -> list[ColumnProfile]:
    profiles = []
    for name in frame.columns:
        series = frame[name]
        kind = infer_kind(series)
        stats = column_stats(series, kind, k)
        if looks_like_id_name(str(name)):
            stats.update(_id_stats(series))
        profiles.append(
            ColumnProfile(
                name=str(name),
                kind=kind,
                missing_rate=round(float(series.isna().mean()), 6),
                distinct=int(series.nunique(dropna=True)),
                stats=stats,
                patterns=value_patterns(series),
                unique_per_row=bool(series.notna().all() and series.is_unique),
            )
        )
    return profiles


# --- DP domain estimation (worker side) ---------------------------------------------------------

DP_QUANTILES = (0.01, 0.99)


def dp_bounds(
    series: pd.Series, *, kind: str, search: tuple[float, float], epsilon: float
) -> tuple[float, float]:
    """Differentially private (lower, upper): the 1st and 99th percentiles of the present values,
    found by diffprivlib's exponential-mechanism quantile inside the steward's public search range.

    `epsilon` is split evenly over the two quantiles (basic composition); values outside the range
    are clipped by the mechanism, and missing values are left out (one record changes the present
    values by at most one, the sensitivity the mechanism assumes). Datetimes are read per element
    and handled as epoch seconds, like the declared bounds of datetime columns.
    """
    from diffprivlib.accountant import BudgetAccountant
    from diffprivlib.tools import quantile

    values = as_numbers(series, kind).dropna().to_numpy(dtype=float)
    found = quantile(
        values,
        list(DP_QUANTILES),
        epsilon=epsilon,
        bounds=search,
        accountant=BudgetAccountant(),  # a private accountant: the portal's ledger is the record
    )
    low, high = sorted(float(v) for v in found)  # ordering them is post-processing
    return low, high


def dp_category_threshold(*, epsilon: float, delta: float) -> int:
    """Smallest noisy count a category needs to be released (stability-based histogram).

    A category held by a single record has true count 1; with two-sided geometric noise of
    parameter alpha = exp(-epsilon), P[1 + Z >= t] = alpha**(t-1) / (1 + alpha) <= delta once
    t - 1 >= ln(1/delta) / epsilon. So a category that one record adds or removes is released with
    probability at most delta, and every other count moves by at most one (epsilon)."""
    return 1 + math.ceil(math.log(1 / delta) / epsilon)


def dp_categories(series: pd.Series, *, epsilon: float, delta: float) -> list[str]:
    """(epsilon, delta)-DP category discovery: the categories whose geometric-noised count clears
    `dp_category_threshold`. Each record counts in at most one category (sensitivity 1, add/remove
    one record); the noisy counts are not released, only which categories cleared the bar."""
    from diffprivlib.mechanisms import Geometric

    # Read cell by cell (object dtype), the one reading of labels the conformance step and the gate use.
    labels = as_labels(series.astype(object))
    counts = labels[labels != MISSING].value_counts().to_dict()
    mechanism = Geometric(epsilon=epsilon, sensitivity=1)
    threshold = dp_category_threshold(epsilon=epsilon, delta=delta)
    return sorted(key for key, count in counts.items() if mechanism.randomise(count) >= threshold)


def unique_share(frame: pd.DataFrame, columns: list[str]) -> float | None:
    """Share of rows whose combination of `columns` occurs exactly once (a re-identification
    estimate: such rows are singled out by those quasi-identifiers). None without columns."""
    if not columns or frame.empty:
        return None
    sizes = frame[columns].astype(str).value_counts(dropna=False)
    return round(float((sizes == 1).sum()) / len(frame), 6)


def small_cell_total(profiles: list[ColumnProfile]) -> int:
    return sum(int(p.stats.get("small_cells", 0)) for p in profiles)
