"""Celery interface of the audit app: thin periodic tasks that call the audit services."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from audit.services import audit_checkpoint, audit_sequence, audit_verification_scheduled
from core.locks import periodic_lock

CHECKPOINT_TASK = "synthgate.audit.checkpoint"
VERIFY_TASK = "synthgate.audit.verify"
SEQUENCE_TASK = "synthgate.audit.sequence"
SEQUENCE_LOCK = "audit-sequence"
# A tick links at most audit.services.SEQUENCE_MAX_ROWS rows (seconds of work); a worker killed
# holding the lock stops linking for at most this long, well inside an hour's alerting.
SEQUENCE_LOCK_SECONDS = 60
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


# Sent every second by the beat in sequenced mode (portal/settings.py, "audit-sequence"). Expires
# fast: a backlog of ticks is pointless, any one of them links everything pending.
@shared_task(name=SEQUENCE_TASK, ignore_result=True, expires=5)
def sequence_audit_chain(**_extra: Any) -> dict[str, Any]:
    """Link the pending audit events (audit.services.audit_sequence). The head-row lock already
    keeps two sequencers from linking the same row; the task-level lock keeps a second worker from
    queueing behind it on that row, every second, while a long tick runs."""
    with periodic_lock(SEQUENCE_LOCK, SEQUENCE_LOCK_SECONDS) as acquired:
        if not acquired:
            return {"skipped": 1}
        outcome = audit_sequence()
    return {"linked": outcome.linked, "last_seq": outcome.last_seq, "refused": len(outcome.refused)}
