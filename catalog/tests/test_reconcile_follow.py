"""The reconciler fails a job that ran out of attempts; its request must follow it to failed
rather than stay "validating" with nothing working on it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.utils import timezone

from approvals.choices import RequestStatus
from approvals.models import GenerationRequest
from catalog.tasks import reconcile_jobs
from generation.choices import JobState
from generation.models import SynthesisJob


def test_a_job_failed_by_the_reconciler_takes_its_request_to_failed(
    submitted_request: GenerationRequest, approve: Callable[[GenerationRequest], SynthesisJob]
) -> None:
    job = approve(submitted_request)
    GenerationRequest.objects.filter(pk=submitted_request.pk).update(status=RequestStatus.VALIDATING)
    SynthesisJob.objects.filter(pk=job.pk).update(
        state=JobState.VALIDATING,
        worker="dead-worker@elsewhere",
        attempts=3,
        max_attempts=3,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    assert reconcile_jobs() == {"requeued": 0, "failed": 1}

    job.refresh_from_db()
    submitted_request.refresh_from_db()
    assert (job.state, job.error_code, submitted_request.status) == (
        JobState.FAILED,
        "max_attempts",
        RequestStatus.FAILED,
    )
