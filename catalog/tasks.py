"""Celery tasks: thin wrappers that take ids and call services."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from approvals.services import request_follow_job
from catalog.access import releases_notify_expiring
from catalog.pipeline import pipeline_run
from core.locks import periodic_lock
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
    # One reconciler at a time across all workers (two beats, or a tick while a slow run is going);
    # the lock expires after 5 minutes so a worker killed mid-run does not stop reconciling for good.
    with periodic_lock("reconcile-jobs", 300) as acquired:
        if not acquired:
            return {"skipped": 1}
        result = jobs_reconcile()
        # A job failed for running out of attempts ends here, not in a pipeline run: without this its
        # request would stay "generating" or "validating" for good.
        for job in SynthesisJob.objects.filter(pk__in=result.failed):
            request_follow_job(job=job)
        return {"requeued": len(result.requeued), "failed": len(result.failed)}


EXPIRY_NOTICES_TASK = "synthgate.releases.expiry_notices"
EXPIRY_NOTICES_LOCK = "expiry-notices"
# Longer than a run can take, short enough that a crashed run does not silence the next hours.
EXPIRY_NOTICES_LOCK_SECONDS = 600


@shared_task(name=EXPIRY_NOTICES_TASK, ignore_result=True, expires=3000)
def notify_expiring(**_extra: Any) -> dict[str, int]:
    """Tell people their releases and grants expire soon. The task-level lock (core.locks, shared
    by every worker) keeps two beats, or a beat and a manual run, from sending at once; the dedup
    keys keep a later run from sending again."""
    with periodic_lock(EXPIRY_NOTICES_LOCK, EXPIRY_NOTICES_LOCK_SECONDS) as acquired:
        if not acquired:
            return {"skipped": 1}
        sent = releases_notify_expiring()
        return {"releases": sent.releases, "grants": sent.grants, "notified": sent.notified}
