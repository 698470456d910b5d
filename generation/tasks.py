"""Celery tasks of the generation app: thin wrappers taking ids."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from generation.services import (
    DOMAIN_ESTIMATE_TASK,
    RISK_TASK,
    dataset_estimate_domain,
    dataset_estimate_risk,
)

# The reconciler's task lives in catalog.tasks: a job it fails must take its request along, and
# only the pipeline's layer may move requests (generation cannot import approvals).
RECONCILE_TASK = "synthgate.jobs.reconcile"


@shared_task(name=RISK_TASK, acks_late=True, ignore_result=True)
def estimate_risk(dataset_id: str, **_extra: Any) -> None:
    dataset_estimate_risk(dataset_id=dataset_id)


# Safe to redeliver: the service claims the request once (queued -> running) before it reads the
# data, so a second delivery does nothing and the data is never read twice under one debit.
@shared_task(name=DOMAIN_ESTIMATE_TASK, acks_late=True, ignore_result=True)
def estimate_domain(column_id: int, entry_id: int, **_extra: Any) -> None:
    dataset_estimate_domain(column_id=column_id, entry_id=entry_id)
