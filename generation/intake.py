"""Turn an uploaded file into a validated DataFrame, or refuse it with a clear reason.

Every refusal is a ValidationFailed naming the problem and where (row number, column name or
position), never a cell value: error messages reach logs, audit rows and API responses.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from django.conf import settings

from core.errors import ValidationFailed
from generation.choices import Classification, ColumnKind
from generation.policies import suggest_classification
from generation.profiling import ColumnProfile

SNIFF_BYTES = 64 * 1024
PARQUET_MAGIC = b"PAR1"
_COMPRESSED = {
    b"\x1f\x8b": "gzip",
    b"PK\x03\x04": "zip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"7z\xbc\xaf\x27\x1c": "7-zip",
    b"\x28\xb5\x2f\xfd": "zstd",
}
ENCODINGS = ("utf-8", "utf-8-sig", "latin-1")
DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class ParsedTable:
    frame: pd.DataFrame
    format: str  # "csv" | "parquet"
    encoding: str
    delimiter: str
    # Columns of day-first or month-first dates, read as dates and stored as ISO 8601 text:
    # column -> the order read ("day/month/year" or "month/day/year", with ", time" when timed).
    dates_read: dict[str, str] = field(default_factory=dict)


def _refuse(code: str, message: str, **fields: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, fields=fields or {"file": code})


def sniff_format(head: bytes) -> str:
    """'parquet' or 'csv'; refuses empty, compressed, binary and obviously non-tabular files."""
    if not head:
        raise _refuse("empty_file", "The file is empty; upload a table with a header row and data rows.")
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    for magic, name in _COMPRESSED.items():
        if head.startswith(magic):
            raise _refuse(
                "compressed_file", f"The file is {name}-compressed; decompress it and upload the CSV."
            )
    if b"\x00" in head or _control_share(head) > 0.05:
        raise _refuse("binary_file", "The file is binary, not text; upload a CSV or Parquet file.")
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first in (b"{", b"[", b"<"):
        raise _refuse("not_tabular", "The file looks like JSON, XML or HTML, not a table; export it as CSV.")
    return "csv"


def _control_share(head: bytes) -> float:
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    return controls / len(head)


def detect_encoding(path: Path, stated: str | None) -> str:
    """The stated encoding, else UTF-8 (with or without BOM), else Latin-1 (which never fails)."""
    if stated:
        try:
            return codecs.lookup(stated).name
        except LookupError:
            raise _refuse(
                "unknown_encoding", f"Unknown encoding {stated!r}; use utf-8 or latin-1.", encoding="invalid"
            ) from None
    with path.open("rb") as handle:
        if handle.read(3) == codecs.BOM_UTF8:
            return "utf-8-sig"
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while block := handle.read(1024 * 1024):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8"


def detect_delimiter(sample: str, stated: str | None) -> str:
    if stated:
        if stated not in DELIMITERS:
            raise _refuse("invalid_delimiter", "Delimiter must be one of , ; tab |.", delimiter="invalid")
        return stated
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return ","


def check_header(header: list[str]) -> None:
    if not header:
        raise _refuse("no_header", "The first line is empty; the file needs a header row naming each column.")
    limit = settings.SYNTHGATE_MAX_COLUMNS
    if len(header) > limit:
        raise _refuse("too_many_columns", f"The file has {len(header)} columns; the limit is {limit}.")
    seen: dict[str, int] = {}
    for position, raw in enumerate(header, start=1):
        name = raw.strip()
        if not name:
            # R's write.csv writes its row names as a first column with an empty name.
            hint = (
                " (R's write.csv writes row names this way: export with row.names = FALSE)"
                if position == 1
                else ""
            )
            raise _refuse(
                "blank_column_name",
                f"Column {position} has no name in the header row{hint}; name every column.",
            )
        if name in seen:
            raise _refuse(
                "duplicate_column_name",
                f"Columns {seen[name]} and {position} are both named `{name}`; make names unique.",
            )
        seen[name] = position


# The longest physical line the CSV scan reads (characters). A clinical row of 500 columns is a few
# kilobytes; a line of millions of delimiters would make the tokenizer build millions of fields
# (about 1 GB for a 200 MB file) before the field count could be compared with the header.
DEFAULT_MAX_LINE_CHARS = 1024 * 1024


def _bounded_lines(handle: Any, limit: int) -> Iterator[str]:
    """The file's physical lines, refusing (before tokenizing) any longer than `limit` characters."""
    number = 0
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith("\n"):
            raise _refuse(
                "line_too_long",
                f"Line {number} is longer than {limit:,} characters; no clinical table row is that long "
                "(check the delimiter and line endings).",
            )
        yield line


def scan_csv(path: Path, encoding: str, delimiter: str) -> int:
    """Check structure row by row (streaming); return the number of data rows."""
    limit = int(getattr(settings, "SYNTHGATE_MAX_LINE_CHARS", DEFAULT_MAX_LINE_CHARS))
    with path.open("r", encoding=encoding, newline="") as handle:
        reader = csv.reader(_bounded_lines(handle, limit), delimiter=delimiter, strict=True)
        try:
            header = next(reader, [])
            check_header(header)
            rows = 0
            for row in reader:
                if not row:
                    continue  # a blank line; pandas skips it too
                rows += 1
                if len(row) != len(header):
                    raise _refuse(
                        "ragged_row",
                        f"Line {reader.line_num} has {len(row)} fields but the header has {len(header)}; "
                        "fix that row (or quote fields containing the delimiter).",
                    )
        except csv.Error as exc:
            raise _refuse(
                "malformed_csv", f"Line {reader.line_num} is not valid CSV ({_csv_reason(exc)})."
            ) from None
    if rows == 0:
        raise _refuse("header_only", "The file has a header but no data rows.")
    return rows


def _csv_reason(exc: csv.Error) -> str:
    # csv.Error messages describe the syntax problem, e.g. "unexpected end of data"; they never
    # echo field contents, but keep only the first clause to be safe.
    return str(exc).split(":")[0][:80]


def check_frame(frame: pd.DataFrame) -> None:
    check_header([str(c) for c in frame.columns])
    if len(frame) == 0:
        raise _refuse("header_only", "The file has a header but no data rows.")
    for name in frame.columns:
        if frame[name].isna().all():
            raise _refuse("empty_column", f"Column `{name}` is entirely empty; remove it before uploading.")


def parse_upload(path: Path, *, encoding: str | None = None, delimiter: str | None = None) -> ParsedTable:
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    kind = sniff_format(head)
    if kind == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception:  # noqa: BLE001 - pyarrow raises many types; none may become a 5xx
            raise _refuse("unreadable_parquet", "The Parquet file could not be read; re-export it.") from None
        check_frame(frame)
        return ParsedTable(frame=frame, format="parquet", encoding="", delimiter="")
    enc = detect_encoding(path, encoding)
    text_head = head.decode(enc, errors="replace")
    sep = detect_delimiter(text_head, delimiter)
    rows = scan_csv(path, enc, sep)
    try:
        frame = pd.read_csv(path, sep=sep, encoding=enc, low_memory=False, skip_blank_lines=True)
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError):
        raise _refuse(
            "unreadable_file", "The file could not be parsed as CSV; check its delimiter and quoting."
        ) from None
    if len(frame) != rows:
        raise _refuse("malformed_csv", "Rows could not be read consistently; check quoting and line breaks.")
    frame.columns = [str(c).strip() for c in frame.columns]
    check_frame(frame)
    dates_read = read_local_dates(frame)
    return ParsedTable(frame=frame, format="csv", encoding=enc, delimiter=sep, dates_read=dates_read)


# --- Dates written day-first or month-first --------------------------------------------------------
# The profiler recognises ISO 8601 dates only; a European export's "12/06/2021 02:56" was profiled as
# unique text and suggested as a direct identifier (left out of every request), or, with repeats, as
# a category per day. A column whose every value has this shape is read as dates when its values
# settle the order: a first field above 12 means day-first, a second field above 12 month-first.
# When every value fits both orders it is left as it is (guessing could swap day and month
# silently). Read columns are stored as ISO text, so the rest of the portal sees an ISO date column.
_LOCAL_DATE = re.compile(
    r"^(?P<a>\d{1,2})(?P<sep>[/.-])(?P<b>\d{1,2})(?P=sep)(?P<year>\d{4})"
    r"(?P<time> (?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?$"
)


def read_local_dates(frame: pd.DataFrame) -> dict[str, str]:
    """Convert, in place, each text column of day-first or month-first dates to ISO 8601 text;
    return the columns converted and the order read. Nothing is changed in a column unless every
    present value parses in the order its values settle."""
    read: dict[str, str] = {}
    for name in frame.columns:
        column = frame[name]
        if column.dtype != object:
            continue
        present = column.dropna().astype(str).str.strip()
        if present.empty:
            continue
        parts = present.str.extract(_LOCAL_DATE)
        if parts["a"].isna().any() or parts["sep"].nunique() != 1:
            continue
        first, second = parts["a"].astype(int), parts["b"].astype(int)
        if (first > 12).any() and not (second > 12).any():
            day, month, order = first, second, "day/month/year"
        elif (second > 12).any() and not (first > 12).any():
            day, month, order = second, first, "month/day/year"
        else:
            continue  # every value fits both orders (or neither): not guessed
        timed = parts["time"].notna()
        if timed.any() and not timed.all():
            continue
        stamps = pd.to_datetime(
            {
                "year": parts["year"].astype(int),
                "month": month,
                "day": day,
                "hour": parts["hour"].fillna(0).astype(int),
                "minute": parts["minute"].fillna(0).astype(int),
                "second": parts["second"].fillna(0).astype(int),
            },
            errors="coerce",
        )
        if stamps.isna().any():
            continue  # a 31st of a 30-day month, say: not a date column after all
        shape = "%Y-%m-%d %H:%M:%S" if timed.all() else "%Y-%m-%d"
        frame[name] = pd.Series(stamps.dt.strftime(shape), index=present.index).reindex(column.index)
        read[str(name)] = order + (", time" if timed.all() else "")
    return read


def frame_to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Parquet keeps dtypes exactly across the store/read round trip (CSV would re-infer them)."""
    clean = frame.copy()
    for name in clean.columns:
        if clean[name].dtype == object:
            # Mixed object columns (numbers and strings) cannot be typed by Arrow: keep them as text.
            clean[name] = clean[name].map(
                lambda v: v if v is None or isinstance(v, str) or pd.isna(v) else str(v)
            )
    buffer = io.BytesIO()
    clean.to_parquet(buffer, index=False)
    return buffer.getvalue()


# --- Classification suggestions (issue 12, item 5) --------------------------------------------------

# ICD-9/ICD-10-shaped codes ("I21.4", "E11", "250.00"): a column of them holds diagnoses.
_ICD_CODE = re.compile(r"^([A-TV-Z]\d{2}(\.\d{1,4}[A-Z]?)?|\d{3}(\.\d{1,2})?|V\d{2}(\.\d{1,2})?)$")
_ICD_SAMPLE = 500
MIN_ROWS_FOR_UNIQUE_ID = 20  # below this a measurement is unique per row by chance


def suggest_classifications(
    profiles: list[ColumnProfile], frame: pd.DataFrame | None = None
) -> dict[str, tuple[str, str]]:
    """(classification, reason in plain words) for each profiled column: the name and value-shape
    rules of generation.policies, then two the intake adds because clinical tables need them.

    - A whole-number column with a different value in every row (a patient or record number such
      as `pidnum`) is a direct identifier, whatever its name: it links a release row to a person.
      That rule comes before the name rule of an outcome or a diagnosis (a unique number named
      `event_no` is a key, not an outcome).
    - A column holding ICD-shaped codes is sensitive, whatever its name: it is what an attacker
      would most like to infer (the inference attack's secret).
    Stewards review every suggestion before sign-off.
    """
    suggestions = {}
    for profile in profiles:
        suggestion = suggest_classification(
            name=profile.name,
            kind=profile.kind,
            patterns=profile.patterns,
            unique_per_row=profile.unique_per_row,
        )
        if suggestion[0] in (Classification.OTHER, Classification.SENSITIVE):
            column = frame[profile.name] if frame is not None and profile.name in frame.columns else None
            suggestion = _clinical_suggestion(profile, column) or suggestion
        suggestions[profile.name] = suggestion
    return suggestions


def _clinical_suggestion(profile: ColumnProfile, column: pd.Series | None) -> tuple[str, str] | None:
    if _looks_like_record_number(profile, column):
        return (
            Classification.DIRECT_IDENTIFIER,
            "A whole number that differs in every row, like a patient or record number.",
        )
    if column is not None and profile.kind == ColumnKind.CATEGORICAL and _holds_icd_codes(column):
        return Classification.SENSITIVE, "Values look like diagnosis (ICD) codes."
    return None


def _looks_like_record_number(profile: ColumnProfile, column: pd.Series | None) -> bool:
    if profile.kind not in (ColumnKind.NUMERIC, ColumnKind.IDENTIFIER) or not profile.unique_per_row:
        return False
    if column is not None:
        if len(column) < MIN_ROWS_FOR_UNIQUE_ID:
            return False
        numbers = pd.to_numeric(column, errors="coerce")
        return bool(numbers.notna().all() and (numbers == numbers.round()).all())
    return bool(profile.stats.get("integer")) and profile.distinct >= MIN_ROWS_FOR_UNIQUE_ID


def _holds_icd_codes(column: pd.Series) -> bool:
    present = column.dropna().astype(str).str.strip()
    if present.empty:
        return False
    sample = present.sample(min(len(present), _ICD_SAMPLE), random_state=0)
    return bool(sample.str.upper().str.match(_ICD_CODE).mean() >= 0.8)
