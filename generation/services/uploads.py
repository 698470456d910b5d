"""Synthetic files made outside SynthGate ("bring your own"): intake and the job that validates them.

The file gets the same hostile-file checks as a source table, must have exactly the request's
columns (an extra column could smuggle out anything) and at most the approved number of rows.
It is stored encrypted until the worker validates it, because nothing is known yet about what it
holds: it could be a copy of the real table, which is what the gate is there to find.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core.errors import ValidationFailed
from generation.intake import frame_to_parquet_bytes, parse_upload
from generation.models import SourceDataset, SynthesisJob
from generation.services.datasets import _spool
from generation.services.jobs import job_create
from generation.storage import delete_stored, storage_root, store_encrypted
from generation.synthesizers import EXTERNAL_UPLOAD

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredUpload:
    relative_path: str
    sha256: str  # of the uploaded bytes
    rows: int


def synthetic_upload_store(*, uploaded_file: Any, columns: list[str], max_rows: int) -> StoredUpload:
    """Check an uploaded synthetic table against the request and store it encrypted.

    Raises ValidationFailed saying what to fix; nothing is kept on any failure. Messages name
    columns and counts only, never a value from the file.
    """
    if uploaded_file is None:
        raise ValidationFailed(
            "Attach the synthetic file (CSV or Parquet).", code="missing_file", fields={"file": "required"}
        )
    spool_dir = storage_root() / "tmp"
    spool_dir.mkdir(mode=0o700, exist_ok=True, parents=True)
    path, sha256, _size = _spool(uploaded_file, spool_dir)
    try:
        frame = parse_upload(path).frame
        _check_columns(list(frame.columns), columns)
        if len(frame) > max_rows:
            raise ValidationFailed(
                f"The file has {len(frame):,} rows; the request was approved for at most {max_rows:,}. "
                "Upload fewer rows, or file a new request.",
                code="too_many_rows",
                fields={"file": "too_many_rows"},
            )
        stored = store_encrypted(frame_to_parquet_bytes(frame[columns]), folder="uploads", suffix=".parquet")
    finally:
        path.unlink(missing_ok=True)
    return StoredUpload(relative_path=stored.relative_path, sha256=sha256, rows=len(frame))


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
    *, dataset: SourceDataset, columns: list[str], upload: StoredUpload, actor: Any
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
