"""Upload limits: the byte cap while the body streams in, and the decoded size before parsing.

Django's parser feeds each chunk through the handlers in order; this one counts bytes and stops
the upload as soon as the cap is crossed, so no more than the cap is ever buffered or written
to a temporary file (which the parser then deletes). The view learns why from the request.
A reverse proxy should also cap the body size (docs/deploy.md) so the rest is not even sent.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from core.errors import ValidationFailed
from generation.intake import PARQUET_MAGIC, SNIFF_BYTES, detect_delimiter, sniff_format

FLAG = "_synthgate_upload_too_large"


class CappedUploadHandler(FileUploadHandler):
    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.received = 0

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.SYNTHGATE_MAX_UPLOAD_BYTES:
            if self.request is not None:
                setattr(self.request, FLAG, True)
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def upload_was_too_large(request: Any) -> bool:
    """True when CappedUploadHandler stopped this request's upload (Django or DRF request)."""
    django_request = getattr(request, "_request", request)
    return bool(getattr(django_request, FLAG, False))


# --- Decoded size: rows, columns and cells, before anything is materialised -------------------
# A byte cap says nothing about what a file decodes to: a 1 KB Parquet file can hold 20 million
# run-length-encoded rows, and a 200 MB CSV of two-byte lines 100 million. Parquet is checked
# from its footer (and its text columns by a bounded streaming pass, since one dictionary entry
# can be repeated on every row); CSV by counting line breaks, then records if that count is too
# high (quoted fields may hold line breaks). Only then does pandas build a frame.

DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_MAX_CELLS = 10_000_000
DEFAULT_MAX_DECODED_BYTES = 512 * 1024 * 1024
# A footer beyond this describes far more row groups or columns than any table we accept.
MAX_PARQUET_FOOTER_BYTES = 16 * 1024 * 1024
_READ_BLOCK = 1024 * 1024
MAX_COLUMN_NAME = 255  # DatasetColumn.name
_BATCH_ROWS = 16 * 1024


@dataclass(frozen=True)
class DecodedLimits:
    rows: int
    columns: int
    cells: int
    decoded_bytes: int
    # Says why when the caller's own row limit is the tighter one ({rows} and {limit} filled in).
    rows_message: str = ""

    @classmethod
    def from_settings(cls, *, max_rows: int | None = None, rows_message: str = "") -> DecodedLimits:
        """The configured limits; `max_rows` lowers the row limit (a request's approved rows)."""
        rows = int(getattr(settings, "SYNTHGATE_MAX_ROWS", DEFAULT_MAX_ROWS))
        callers = max_rows is not None and max_rows < rows
        return cls(
            rows=max_rows if max_rows is not None and callers else rows,
            columns=int(getattr(settings, "SYNTHGATE_MAX_COLUMNS", 500)),
            cells=int(getattr(settings, "SYNTHGATE_MAX_CELLS", DEFAULT_MAX_CELLS)),
            decoded_bytes=int(getattr(settings, "SYNTHGATE_MAX_DECODED_BYTES", DEFAULT_MAX_DECODED_BYTES)),
            rows_message=rows_message if callers else "",
        )


def check_decoded_size(
    path: Path,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    max_rows: int | None = None,
    rows_message: str = "",
) -> None:
    """Refuse (ValidationFailed, counts only) a file whose decoded table exceeds the limits.

    Reads no more than a bounded amount at a time. `rows_message` replaces the generic
    too-many-rows message when `max_rows` is the tighter limit (it gets `{rows}` and `{limit}`).
    """
    limits = DecodedLimits.from_settings(max_rows=max_rows, rows_message=rows_message)
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if sniff_format(head) == "parquet":
        _check_parquet(path, limits)
    else:
        _check_csv(path, head, limits, encoding=encoding, delimiter=delimiter)


def _refuse(code: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, fields={"file": code})


def _check_shape(rows: int, columns: int, limits: DecodedLimits) -> None:
    if columns > limits.columns:
        raise _refuse("too_many_columns", f"The file has {columns} columns; the limit is {limits.columns}.")
    if rows > limits.rows:
        raise _too_many_rows(f"{rows:,}", limits)
    if rows * columns > limits.cells:
        raise _too_many_cells(f"{rows * columns:,}", columns, limits)


def _too_many_rows(rows: str, limits: DecodedLimits) -> ValidationFailed:
    return _refuse(
        "too_many_rows",
        limits.rows_message.format(rows=rows, limit=f"{limits.rows:,}")
        or f"The file has {rows} rows; the limit is {limits.rows:,}. Upload a smaller extract.",
    )


def _too_many_cells(cells: str, columns: int, limits: DecodedLimits) -> ValidationFailed:
    return _refuse(
        "too_many_cells",
        f"The file has {cells} cells ({columns} columns); the limit is {limits.cells:,}. "
        "Upload fewer rows or columns.",
    )


# Parquet ------------------------------------------------------------------------------------


def _check_parquet(path: Path, limits: DecodedLimits) -> None:
    _check_footer_length(path)
    try:
        parquet = pq.ParquetFile(path)
        metadata, schema = parquet.metadata, parquet.schema_arrow
    except Exception:  # noqa: BLE001 - pyarrow raises many types; none may become a 5xx
        raise _refuse("unreadable_parquet", "The Parquet file could not be read; re-export it.") from None
    _check_shape(metadata.num_rows, len(schema), limits)
    nested = [field.name for field in schema if pa.types.is_nested(field.type)]
    if nested:
        raise _refuse(
            "unsupported_parquet_type",
            f"Column `{nested[0]}` holds lists, maps or structs; upload a flat table of plain values.",
        )
    encoded = sum(
        metadata.row_group(g).column(c).total_uncompressed_size
        for g in range(metadata.num_row_groups)
        for c in range(metadata.num_columns)
    )
    if encoded > limits.decoded_bytes:
        raise _too_large_decoded(limits)
    text = [f.name for f in schema if _is_text(f.type)]
    if text:
        _check_parquet_text(path, text, limits)


def _check_footer_length(path: Path) -> None:
    size = path.stat().st_size
    if size < 12:
        raise _refuse("unreadable_parquet", "The Parquet file is truncated; re-export it.")
    with path.open("rb") as handle:
        handle.seek(size - 8)
        tail = handle.read(8)
    if tail[4:] != PARQUET_MAGIC:
        raise _refuse("unreadable_parquet", "The Parquet file is truncated; re-export it.")
    if int.from_bytes(tail[:4], "little") > MAX_PARQUET_FOOTER_BYTES:
        raise _refuse(
            "unreadable_parquet", "The Parquet file's metadata is implausibly large; re-export the table."
        )


def _is_text(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or (pa.types.is_dictionary(kind) and _is_text(kind.value_type))
    )


def _check_parquet_text(path: Path, columns: list[str], limits: DecodedLimits) -> None:
    """Sum the decoded length of every text cell, reading them dictionary-encoded so one long
    value repeated on every row is counted, not expanded."""
    total = 0
    try:
        parquet = pq.ParquetFile(path, read_dictionary=columns)
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=columns):
            for array in batch.columns:
                total += _decoded_bytes(array)
            if total > limits.decoded_bytes:
                raise _too_large_decoded(limits)
    except ValidationFailed:
        raise
    except Exception:  # noqa: BLE001 - a corrupt page; none may become a 5xx
        raise _refuse("unreadable_parquet", "The Parquet file could not be read; re-export it.") from None


def _decoded_bytes(array: pa.Array) -> int:
    if isinstance(array, pa.DictionaryArray):
        lengths = pc.binary_length(array.dictionary)
        return int(pc.sum(pc.take(lengths, array.indices)).as_py() or 0)
    return int(pc.sum(pc.binary_length(array)).as_py() or 0)


def _too_large_decoded(limits: DecodedLimits) -> ValidationFailed:
    return _refuse(
        "decoded_too_large",
        f"The file decodes to more than {limits.decoded_bytes // (1024 * 1024)} MB of values; "
        "upload a smaller extract.",
    )


# CSV ----------------------------------------------------------------------------------------


def _check_csv(
    path: Path,
    head: bytes,
    limits: DecodedLimits,
    *,
    encoding: str | None,
    delimiter: str | None,
) -> None:
    text_encoding = _counting_encoding(encoding)
    sample = head.decode(text_encoding, errors="replace")
    separator = detect_delimiter(sample, delimiter)
    header = _read_header(path, text_encoding, separator, limits)
    columns = max(len(header), 1)
    # Rows the cell limit allows at this width, and the tighter of that and the row limit.
    allowed = min(limits.rows, limits.cells // columns)
    _check_shape(0, len(header), limits)
    if _line_breaks(path, text_encoding) <= allowed:  # >= data rows: every record but one ends in one
        return
    rows = _records(path, text_encoding, separator, stop_after=allowed + 2) - 1
    if rows <= allowed:
        return
    if allowed == limits.rows:
        raise _too_many_rows(f"more than {allowed:,}", limits)
    raise _too_many_cells(f"more than {limits.cells:,}", len(header), limits)


def _read_header(path: Path, encoding: str, delimiter: str, limits: DecodedLimits) -> list[str]:
    """The header record, read from a bounded prefix: no legitimate header is longer than the
    column limit times the longest column name, and parsing an unbounded first line (a 200 MB
    run of delimiters) would build a list of a hundred million fields."""
    cap = limits.columns * (MAX_COLUMN_NAME + 3) + 1024
    with path.open("r", encoding=encoding, errors="replace", newline="") as handle:
        prefix = handle.read(cap + 1)
    buffer = io.StringIO(prefix)
    try:
        header = next(csv.reader(buffer, delimiter=delimiter), [])
    except csv.Error:
        return []  # malformed: parse_upload refuses it and says where
    if len(prefix) > cap and buffer.tell() >= len(prefix):
        raise _refuse(
            "too_many_columns",
            f"The header row is longer than {limits.columns} columns could need; the limit is "
            f"{limits.columns} columns.",
        )
    return header


def _counting_encoding(stated: str | None) -> str:
    """Line breaks and delimiters are the same bytes in UTF-8 and Latin-1, and Latin-1 decodes
    anything, so it serves for counting unless another encoding is stated."""
    if stated:
        try:
            return codecs.lookup(stated).name
        except LookupError:
            pass  # parse_upload refuses it with its own message
    return "latin-1"


def _line_breaks(path: Path, encoding: str) -> int:
    """Line breaks (LF, CR or CRLF), counted in blocks. A CRLF split across two blocks counts
    twice, which only makes this upper bound looser."""
    count = 0
    with path.open("r", encoding=encoding, errors="replace", newline="") as handle:
        while block := handle.read(_READ_BLOCK):
            count += block.count("\n") + block.count("\r") - block.count("\r\n")
    return count


def _records(path: Path, encoding: str, delimiter: str, *, stop_after: int) -> int:
    """Non-blank CSV records, header included, counted up to `stop_after`."""
    count = 0
    with path.open("r", encoding=encoding, errors="replace", newline="") as handle:
        try:
            for record in csv.reader(handle, delimiter=delimiter):
                if record:
                    count += 1
                    if count >= stop_after:
                        break
        except csv.Error:
            pass  # malformed: parse_upload refuses it and says where
    return count
