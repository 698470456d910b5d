"""Turn an uploaded file into a validated DataFrame, or refuse it with a clear reason.

Every refusal is a ValidationFailed naming the problem and where (row number, column name or
position), never a cell value: error messages reach logs, audit rows and API responses.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from django.conf import settings

from core.errors import ValidationFailed

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
            raise _refuse(
                "blank_column_name", f"Column {position} has no name in the header row; name every column."
            )
        if name in seen:
            raise _refuse(
                "duplicate_column_name",
                f"Columns {seen[name]} and {position} are both named `{name}`; make names unique.",
            )
        seen[name] = position


def scan_csv(path: Path, encoding: str, delimiter: str) -> int:
    """Check structure row by row (streaming); return the number of data rows."""
    with path.open("r", encoding=encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
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
    return ParsedTable(frame=frame, format="csv", encoding=enc, delimiter=sep)


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
