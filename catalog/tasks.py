"""Celery tasks: thin wrappers that take ids and call services."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from approvals.services import request_follow_job
from catalog.pipeline import pipeline_run
from generation.models import SynthesisJob
from generation.services import PIPELINE_TASK, jobs_reconcile
from generation.tasks import RECONCILE_TASK


@shared_task(name=PIPELINE_TASK, acks_late=True, ignore_result=True)
def run_pipeline(job_id: str, **_extra: Any) -> str:
    # Extra kwargs are tolerated so older/newer producers can enqueue without breaking workers.
    return pipeline_run(job_id=job_id)


# Expires quickly: a backlog of reconcile messages is pointless, the next tick does the work.
@shared_task(name=RECONCILE_TASK, ignore_result=True, expires=55)
def reconcile_jobs(**_extra: Any) -> dict[str, int]:
    result = jobs_reconcile()
    # A job failed for running out of attempts ends here, not in a pipeline run: without this its
    # request would stay "generating" or "validating" for good.
    for job in SynthesisJob.objects.filter(pk__in=result.failed):
        request_follow_job(job=job)
    return {"requeued": len(result.requeued), "failed": len(result.failed)}
