"""CSV files that a spreadsheet cannot turn into formulas (OWASP "CSV Injection").

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a formula by
Excel, LibreOffice and Google Sheets: `=HYPERLINK("http://x", "y")` becomes a link that can leak
the sheet, `@SUM(...)` or DDE payloads can run commands. Such cells in text columns get a leading
single quote, which spreadsheets show as text and hide. Numbers are left alone: `-3.5` is not a
formula, and rewriting numeric columns would change the data.

Outputs are neutralised when they are written (generation.services.jobs.job_store_output), so the
stored CSV is byte for byte the file every downloader receives and its recorded SHA-256 matches it.
"""

from __future__ import annotations

from typing import Any

from core.csv_safety import FORMULA_TRIGGERS, is_formula_like, neutralise_cell

__all__ = ["FORMULA_TRIGGERS", "frame_to_safe_csv", "is_formula_like", "neutralise_cell", "neutralised_frame"]


def _is_text_column(series: Any) -> bool:
    from pandas.api import types

    return not (
        types.is_numeric_dtype(series.dtype)
        or types.is_bool_dtype(series.dtype)
        or types.is_datetime64_any_dtype(series.dtype)
    )


def neutralised_frame(frame: Any) -> Any:
    """A copy of `frame` whose text columns (and header) carry no formula-like cell."""
    safe = frame.copy()
    for name in safe.columns:
        if _is_text_column(safe[name]):
            safe[name] = safe[name].astype(object).map(neutralise_cell)
    safe.columns = [neutralise_cell(str(name)) for name in safe.columns]
    return safe


def frame_to_safe_csv(frame: Any) -> bytes:
    """The CSV (UTF-8, no index) a downloader receives for `frame`, formula cells neutralised."""
    return neutralised_frame(frame).to_csv(index=False).encode("utf-8")
