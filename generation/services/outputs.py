"""Deleting synthetic files that will never be released (data minimisation, ASVS V14).

A job's output (`output_path`, the CSV a release would serve) and a bring-your-own upload
(`upload_path`, the requester's file the worker validates) are synthetic data that can still leak
a patient: a gate-failed attempt failed precisely because it may be too close to the real rows.
Once no path can publish such a file, it is deleted: the path is cleared and an audit row written
in the caller's transaction, and the file is unlinked once that transaction commits (so a rollback
never leaves a row pointing at a deleted file). `output_sha256` is kept as the record of what
existed.

Which outputs can still be published is a question about the request (approvals decides it:
approvals.services.outputs.outputs_purge_unreleased). This module holds the rules that hold
whoever calls it: a job a worker still holds is never touched, and neither is a file a release
serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from audit.services import audit_record
from core.roles import PortalUser
from generation.choices import FINAL_JOB_STATES
from generation.models import SynthesisJob
from generation.storage import delete_stored


def jobs_purge_files(
    *, jobs: Iterable[SynthesisJob], keep_output: set[Any], reason: str, actor: PortalUser | None = None
) -> list[str]:
    """Delete the outputs of final jobs not in `keep_output`, and the uploads of final jobs (a
    final job never reads its upload again: a release serves the output). Returns what was
    deleted, as "kind:job-id" strings. Idempotent: a cleared path is not cleared twice."""
    deleted: list[str] = []
    for job in jobs:
        if job.state not in FINAL_JOB_STATES:
            continue  # its worker may still write or read these files
        if job.output_path and job.pk not in keep_output and not _released(job):
            if _purge(job, "output_path", reason=reason, actor=actor):
                deleted.append(f"output:{job.pk}")
        if job.upload_path and _purge(job, "upload_path", reason=reason, actor=actor):
            deleted.append(f"upload:{job.pk}")
    return deleted


def _released(job: SynthesisJob) -> bool:
    # A safety net that holds whatever the caller decided: a release's file is never deleted.
    # (`release` is catalog's reverse relation; looked up by name, generation imports nothing above.)
    return SynthesisJob.objects.filter(pk=job.pk, release__isnull=False).exists()


def _purge(job: SynthesisJob, field: str, *, reason: str, actor: PortalUser | None) -> bool:
    path = getattr(job, field)
    cleared = SynthesisJob.objects.filter(pk=job.pk, **{field: path}).update(**{field: ""})
    setattr(job, field, "")
    if not cleared:
        return False  # someone else cleared or replaced it
    kind = "output" if field == "output_path" else "upload"
    details: dict[str, Any] = {"reason": reason}
    if kind == "output":
        details["sha256"] = job.output_sha256
    audit_record(
        actor=actor, action=f"job.{kind}_delete", target_type="job", target_id=job.pk, details=details
    )
    transaction.on_commit(lambda: delete_stored(path))
    return True
