"""Celery interface of the audit app: thin periodic tasks that call the audit services."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from audit.services import audit_checkpoint, audit_verification_scheduled
from core.locks import periodic_lock

CHECKPOINT_TASK = "synthgate.audit.checkpoint"
VERIFY_TASK = "synthgate.audit.verify"
VERIFY_LOCK = "audit-verify"
# Longer than a full verification of a large log takes, short enough that a crashed run does not
# stop the next hours' runs.
VERIFY_LOCK_SECONDS = 1800


# Expires quickly: a backlog of checkpoint messages is pointless, the next tick signs the head.
@shared_task(name=CHECKPOINT_TASK, ignore_result=True, expires=120)
def checkpoint_audit_chain(**_extra: Any) -> dict[str, Any]:
    outcome = audit_checkpoint()
    return {"status": outcome.status, "seq": outcome.seq}


@shared_task(name=VERIFY_TASK, ignore_result=True, expires=600)
def verify_audit_chain(**_extra: Any) -> dict[str, Any]:
    """The scheduled verification (incremental; full once a day). The task-level lock
    (core.locks.periodic_lock, shared by every worker) keeps two beats, or a slow run and the next
    tick, from walking the chain twice at once."""
    with periodic_lock(VERIFY_LOCK, VERIFY_LOCK_SECONDS) as acquired:
        if not acquired:
            return {"skipped": 1}
        record = audit_verification_scheduled()
    return {"ok": record.ok, "mode": record.mode, "upto_seq": record.upto_seq, "id": record.pk}
