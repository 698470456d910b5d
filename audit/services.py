"""Writes to the audit log. Every mutating service calls `audit_record` in its own transaction."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.context import current_request_id
from audit.hashing import event_hash
from audit.models import AuditChainHead, AuditEvent, Outcome

SYSTEM_ACTOR = "system"


def audit_record(
    *,
    actor: Any | None,
    action: str,
    target_type: str,
    target_id: object,
    outcome: str = Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain.

    Runs inside the caller's transaction (a savepoint when nested), so the audited action and
    its audit row commit or roll back together. The head row lock serializes appenders.
    """
    actor_obj = actor if getattr(actor, "is_authenticated", False) else None
    actor_name = actor_obj.get_username() if actor_obj is not None else SYSTEM_ACTOR
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(id=1)
        seq = head.seq + 1
        at = timezone.now()
        fields: dict[str, Any] = {
            "seq": seq,
            "at": at,
            "actor_name": actor_name,
            "action": action,
            "target_type": target_type,
            "target_id": str(target_id),
            "outcome": str(outcome),
            "details": details or {},
            "request_id": current_request_id.get(),
            "prev_hash": head.hash,
        }
        digest = event_hash(actor_id=actor_obj.pk if actor_obj else None, **fields)
        event = AuditEvent.objects.create(actor=actor_obj, hash=digest, **fields)
        AuditChainHead.objects.filter(id=1).update(seq=seq, hash=digest)
    return event


def audit_denied(*, actor: Any, action: str, target_type: str, target_id: object, reason: str) -> None:
    """Record a refused attempt in its own committed transaction.

    Called before raising, so the refusal is evidenced even though the action rolls back.
    """
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            outcome=Outcome.DENIED,
            details={"reason": reason},
        )
