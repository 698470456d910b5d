"""Parse and profile an uploaded table. Produces aggregates only (rates, counts), no values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.errors import ValidationFailed
from generation.choices import ColumnKind

_BOOLEAN_WORDS = {"0", "1", "true", "false", "yes", "no", "y", "n", "t", "f"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?")


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    kind: str
    missing_rate: float
    distinct: int


PARQUET_MAGIC = b"PAR1"


def read_table(path: Path) -> pd.DataFrame:
    """Read a stored CSV or Parquet file. Raises ValidationFailed (never a 5xx) when unreadable."""
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise ValidationFailed(
            f"The file could not be read as a table ({type(exc).__name__}); "
            "upload a comma-separated file with a header row, or a Parquet file.",
            code="unreadable_file",
        ) from None
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValidationFailed(
            "The file has no data rows; upload a table with a header and rows.", code="empty_file"
        )
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
    return ColumnKind.CATEGORICAL


def profile_frame(frame: pd.DataFrame) -> list[ColumnProfile]:
    profiles = []
    for name in frame.columns:
        series = frame[name]
        profiles.append(
            ColumnProfile(
                name=str(name),
                kind=infer_kind(series),
                missing_rate=round(float(series.isna().mean()), 6),
                distinct=int(series.nunique(dropna=True)),
            )
        )
    return profiles
