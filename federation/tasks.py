"""Celery tasks of federated studies: thin, take ids, call a service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from core.locks import periodic_lock
from federation.services import RUN_STUDY_TASK, studies_reconcile, study_run

RECONCILE_STUDIES_TASK = "synthgate.federation.reconcile"
RECONCILE_STUDIES_LOCK = "reconcile-studies"
# Longer than a reconcile takes (a few row updates), short enough that a worker killed while
# holding it silences the reconciler for five minutes at most.
RECONCILE_STUDIES_LOCK_SECONDS = 300


# acks_late: a worker killed mid-run leaves the message to be redelivered; the redelivery finds the
# study claimed (or its lease lapsed: then it is failed and each site debited its reservation).
@shared_task(name=RUN_STUDY_TASK, acks_late=True, ignore_result=True)
def run_study(study_id: str, **_extra: Any) -> str:
    return study_run(study_id=study_id)


# Periodic (CELERY_BEAT_SCHEDULE "reconcile-studies", housekeeping queue): a study whose worker died
# is failed and its sites' ledgers settled even when no redelivery of its run message comes.
@shared_task(name=RECONCILE_STUDIES_TASK, ignore_result=True, expires=55)
def reconcile_studies(**_extra: Any) -> dict[str, int]:
    with periodic_lock(RECONCILE_STUDIES_LOCK, RECONCILE_STUDIES_LOCK_SECONDS) as acquired:
        if not acquired:
            return {"skipped": 1}
        return {"failed": len(studies_reconcile())}
