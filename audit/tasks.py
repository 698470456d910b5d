"""Celery interface of the audit app: a thin periodic task that calls the checkpoint service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from audit.services import audit_checkpoint

CHECKPOINT_TASK = "synthgate.audit.checkpoint"


# Expires quickly: a backlog of checkpoint messages is pointless, the next tick signs the head.
@shared_task(name=CHECKPOINT_TASK, ignore_result=True, expires=120)
def checkpoint_audit_chain(**_extra: Any) -> dict[str, Any]:
    outcome = audit_checkpoint()
    return {"status": outcome.status, "seq": outcome.seq}
