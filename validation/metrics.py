"""Utility and privacy metrics on a training table and a synthetic table with the same columns.

Pure functions of two DataFrames; results are aggregates. Deepened in the validation issue.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from generation.choices import ColumnKind

_MISSING = "\x00<missing>"


def ks_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """1 - Kolmogorov-Smirnov statistic of the two non-missing samples (1 = same shape)."""
    a = pd.to_numeric(real, errors="coerce").dropna().to_numpy(dtype=float)
    b = pd.to_numeric(synthetic, errors="coerce").dropna().to_numpy(dtype=float)
    if len(a) == 0 or len(b) == 0:
        return 1.0 if len(a) == len(b) else 0.0
    return float(1.0 - ks_2samp(a, b).statistic)


def tv_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """1 - total variation distance of the category frequencies (missing is a category)."""
    p = real.astype(object).where(real.notna(), _MISSING).astype(str).value_counts(normalize=True)
    q = synthetic.astype(object).where(synthetic.notna(), _MISSING).astype(str).value_counts(normalize=True)
    support = p.index.union(q.index)
    diff = p.reindex(support, fill_value=0.0) - q.reindex(support, fill_value=0.0)
    return float(1.0 - 0.5 * np.abs(diff.to_numpy()).sum())


def _as_datetime_numbers(series: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(series, errors="coerce", format="mixed")
    return parsed.astype("int64").where(parsed.notna())


def column_shapes(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str]) -> dict[str, float]:
    scores: dict[str, float] = {}
    for name, kind in kinds.items():
        if kind == ColumnKind.NUMERIC:
            scores[name] = ks_complement(real[name], synthetic[name])
        elif kind == ColumnKind.DATETIME:
            scores[name] = ks_complement(
                _as_datetime_numbers(real[name]), _as_datetime_numbers(synthetic[name])
            )
        else:
            scores[name] = tv_complement(real[name], synthetic[name])
    return {k: round(v, 6) for k, v in scores.items()}


def _row_keys(frame: pd.DataFrame) -> pd.Series:
    """One hashable key per row; numbers normalized so 1 and 1.0 compare equal."""
    normalized = pd.DataFrame(index=frame.index)
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col):
            col = pd.to_numeric(col, errors="coerce").astype(float).round(9)
        normalized[name] = col.astype(object).where(col.notna(), _MISSING).astype(str)
    return pd.util.hash_pandas_object(normalized, index=False)


def exact_copies(real: pd.DataFrame, synthetic: pd.DataFrame) -> int:
    """Number of synthetic rows identical to some training row on every released column."""
    real_keys = set(_row_keys(real[synthetic.columns]).tolist())
    return int(_row_keys(synthetic).isin(real_keys).sum())
