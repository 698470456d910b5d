"""Celery tasks of the generation app: thin wrappers taking ids."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from generation.services import RISK_TASK, dataset_estimate_risk
from generation.services.jobs import jobs_reconcile

RECONCILE_TASK = "synthgate.jobs.reconcile"


@shared_task(name=RISK_TASK, acks_late=True, ignore_result=True)
def estimate_risk(dataset_id: str, **_extra: Any) -> None:
    dataset_estimate_risk(dataset_id=dataset_id)


# Expires quickly: a backlog of reconcile messages is pointless, the next tick does the work.
@shared_task(name=RECONCILE_TASK, ignore_result=True, expires=55)
def reconcile_jobs(**_extra: Any) -> dict[str, int]:
    result = jobs_reconcile()
    return {"requeued": len(result.requeued), "failed": len(result.failed)}
