"""Synthetic files made outside SynthGate ("bring your own"): intake and the job that validates them.

The file gets the same hostile-file checks as a source table (its decoded size included, from
metadata or a streaming count, before it is parsed), must have exactly the request's columns
(an extra column could smuggle out anything), at most the approved number of rows, and values of
each column's signed-off kind: numbers, date-times, or the declared categories.
It is stored encrypted until the worker validates it, because nothing is known yet about what it
holds: it could be a copy of the real table, which is what the gate is there to find.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ValidationFailed
from core.roles import PortalUser
from generation.choices import ColumnKind
from generation.intake import frame_to_parquet_bytes, parse_upload
from generation.models import SourceDataset, SynthesisJob
from generation.services.jobs import job_create
from generation.storage import delete_stored, spool_upload, store_encrypted
from generation.synthesizers import EXTERNAL_UPLOAD
from generation.uploads import check_decoded_size
from generation.values import as_datetimes, as_labels, declared_labels

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredUpload:
    relative_path: str
    sha256: str  # of the uploaded bytes
    rows: int


TOO_MANY_ROWS = (
    "The file has {rows} rows; the request was approved for at most {limit}. "
    "Upload fewer rows, or file a new request."
)


def synthetic_upload_store(
    *, uploaded_file: Any, dataset: SourceDataset, columns: list[str], max_rows: int
) -> StoredUpload:
    """Check an uploaded synthetic table against the request and store it encrypted.

    Raises ValidationFailed saying what to fix; nothing is kept on any failure. Messages name
    columns and counts only, never a value from the file.
    """
    if uploaded_file is None:
        raise ValidationFailed(
            "Attach the synthetic file (CSV or Parquet).", code="missing_file", fields={"file": "required"}
        )
    spooled = spool_upload(uploaded_file)
    path, sha256 = spooled.path, spooled.sha256
    try:
        check_decoded_size(path, max_rows=max_rows, rows_message=TOO_MANY_ROWS)
        frame = parse_upload(path).frame
        _check_columns(list(frame.columns), columns)
        if len(frame) > max_rows:
            raise ValidationFailed(
                TOO_MANY_ROWS.format(rows=f"{len(frame):,}", limit=f"{max_rows:,}"),
                code="too_many_rows",
                fields={"file": "too_many_rows"},
            )
        check_declared_kinds(frame, signed_off_specs(dataset, columns))
        stored = store_encrypted(frame_to_parquet_bytes(frame[columns]), folder="uploads", suffix=".parquet")
    finally:
        path.unlink(missing_ok=True)
    return StoredUpload(relative_path=stored.relative_path, sha256=sha256, rows=len(frame))


def signed_off_specs(dataset: SourceDataset, columns: list[str]) -> list[Mapping[str, Any]]:
    """The request's columns as the steward signed them off (kind and declared domain)."""
    version = dataset.classification_versions.filter(number=dataset.classification_version).first()
    by_name = {c["name"]: c for c in (version.columns if version is not None else [])}
    # A column missing from the sign-off cannot be checked, and cannot be released either:
    # job_create refuses a dataset that is not signed off.
    return [by_name[name] for name in columns if name in by_name]


def check_declared_kinds(frame: pd.DataFrame, specs: Sequence[Mapping[str, Any]]) -> None:
    """Refuse the first column whose values are not of its declared kind: numbers for numeric
    columns, date-times for date/time ones, the declared categories where categories are declared.
    Empty cells are allowed. Says how many cells are wrong, never which values."""
    for spec in specs:
        name, kind = str(spec["name"]), str(spec.get("kind") or "")
        series = frame[name]
        wrong, expected = _wrong_cells(series, kind, spec.get("categories"))
        count = int(wrong.sum())
        if count:
            raise ValidationFailed(
                f"Column `{name}` is declared {_kind_label(kind)}, but {count:,} of its cells are not {expected}. Fix those cells (or leave them empty) "
                "and upload again.",
                code="invalid_values",
                fields={"file": "invalid_values", name: f"{count:,} cells are not {expected}"},
            )


def _kind_label(kind: str) -> str:
    return str(ColumnKind(kind).label).lower() if kind in ColumnKind.values else kind


def _wrong_cells(series: pd.Series, kind: str, categories: Any) -> tuple[pd.Series, str]:
    present = series.notna()
    if kind == ColumnKind.NUMERIC:
        numbers = pd.to_numeric(series, errors="coerce").astype("float64")
        return present & ~np.isfinite(numbers), "numbers"
    if kind == ColumnKind.DATETIME:
        return present & as_datetimes(series).isna(), "dates or date-times"
    if categories:
        allowed = declared_labels(categories, kind)
        return present & ~as_labels(series).isin(allowed), "among the declared categories"
    if kind == ColumnKind.BOOLEAN:
        folded = as_labels(series).str.lower()
        return present & ~folded.isin({"0", "1", "true", "false"}), "true/false values"
    return pd.Series(False, index=series.index), ""


def _check_columns(found: list[str], requested: list[str]) -> None:
    extra = [c for c in found if c not in requested]
    absent = [c for c in requested if c not in found]
    if extra or absent:
        raise ValidationFailed(
            "The synthetic file must have exactly the request's columns. "
            + (f"Remove: {', '.join(extra)}. " if extra else "")
            + (f"Add: {', '.join(absent)}." if absent else ""),
            code="columns_mismatch",
            fields={"file": "columns_mismatch"},
        )


def job_create_for_upload(
    *, dataset: SourceDataset, columns: list[str], upload: StoredUpload, actor: PortalUser
) -> SynthesisJob:
    """A queued validation job for a stored upload (no synthesis, no epsilon); enqueued on commit.

    The caller runs this inside its transaction; if that rolls back, the stored file is deleted.
    """
    return job_create(
        dataset=dataset,
        columns=columns,
        synthesizer=EXTERNAL_UPLOAD,
        rows=upload.rows,
        epsilon_micro=None,
        actor=actor,
        upload_path=upload.relative_path,
        audit_details={"upload_sha256": upload.sha256},
        retry_hint="upload again",
    )


def upload_discard(upload: StoredUpload) -> None:
    """Remove a stored upload whose job was never created (the caller's transaction failed)."""
    delete_stored(upload.relative_path)
