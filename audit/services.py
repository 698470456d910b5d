"""Writes to the audit log. Every mutating service calls `audit_record` in its own transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.checkpoints import checkpoint_append, checkpoint_sign, checkpoints_read
from audit.context import current_request_id
from audit.hashing import HashScheme, audit_key, hmac_event_hash
from audit.models import AuditChainHead, AuditEvent, Outcome
from audit.selectors import ChainWalk, audit_chain_rows
from core.roles import PortalUser

SYSTEM_ACTOR = "system"
logger = logging.getLogger(__name__)


def audit_record(
    *,
    actor: PortalUser | None,
    action: str,
    target_type: str,
    target_id: object,
    outcome: str = Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain, hashed with the audit key.

    Runs inside the caller's transaction (a savepoint when nested), so the audited action and
    its audit row commit or roll back together. The head row lock serializes appenders. Every
    SYNTHGATE_AUDIT_CHECKPOINT_EVERY-th event is checkpointed once it has committed: a
    checkpoint of a head that rolled back would later read as a deleted tail.
    """
    actor_obj = actor if getattr(actor, "is_authenticated", False) else None
    actor_name = actor_obj.get_username() if actor_obj is not None else SYSTEM_ACTOR
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(id=1)
        seq = head.seq + 1
        fields: dict[str, Any] = {
            "seq": seq,
            "at": timezone.now(),
            "actor_name": actor_name,
            "action": action,
            "target_type": target_type,
            "target_id": str(target_id),
            "outcome": str(outcome),
            "details": details or {},
            "request_id": current_request_id.get(),
            "prev_hash": head.hash,
        }
        actor_id = actor_obj.pk if actor_obj else None
        digest = hmac_event_hash(key=audit_key(), actor_id=actor_id, **fields)
        event = AuditEvent.objects.create(
            actor=actor_obj, hash=digest, hash_scheme=HashScheme.HMAC_SHA256, **fields
        )
        AuditChainHead.objects.filter(id=1).update(seq=seq, hash=digest)
        if seq % settings.SYNTHGATE_AUDIT_CHECKPOINT_EVERY == 0:
            # robust: the action has committed by then; a full disk must not turn it into an
            # error page. The periodic checkpoint catches up.
            transaction.on_commit(partial(_checkpoint_committed, seq=seq, digest=digest), robust=True)
    return event


def _checkpoint_committed(*, seq: int, digest: str) -> None:
    checkpoint_append(checkpoint_sign(seq=seq, hash=digest))


def audit_denied(
    *, actor: PortalUser | None, action: str, target_type: str, target_id: object, reason: str
) -> None:
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


@dataclass(frozen=True)
class CheckpointOutcome:
    """`written` (a new checkpoint at `seq`), `current` (the newest checkpoint already is the
    head), `empty` (no events yet) or `refused` (the rows since the newest checkpoint do not
    verify, or the head is behind it: nothing is signed, and `seq` is where it breaks)."""

    status: str
    seq: int | None


def audit_checkpoint() -> CheckpointOutcome:
    """Sign the chain head into the checkpoint file if it moved since the newest checkpoint.

    The periodic complement to the every-N checkpoints of `audit_record`, so a quiet log is still
    anchored within minutes. The head row is in the database, so it is trusted only after the
    rows since the newest checkpoint verify from that checkpoint's hash up to it: a checkpoint
    never vouches for rows that were tampered with before it was written.
    """
    newest = checkpoints_read().newest
    head = AuditChainHead.objects.filter(id=1).first()
    if head is None or head.seq == 0:
        return _checkpoint_refused(1) if newest else CheckpointOutcome("empty", None)
    if newest is not None and newest.seq >= head.seq:
        if (newest.seq, newest.hash) == (head.seq, head.hash):
            return CheckpointOutcome("current", head.seq)
        return _checkpoint_refused(head.seq + 1)
    start_seq = newest.seq if newest else 0
    walk = ChainWalk(key=audit_key(), seen_keyed=newest is not None, expected_seq=start_seq + 1)
    if newest is not None:
        walk.prev_hash = newest.hash
    broken = walk.walk(audit_chain_rows(after_seq=start_seq, upto_seq=head.seq))
    if broken is not None:
        return _checkpoint_refused(broken.seq)
    if (walk.expected_seq - 1, walk.prev_hash) != (head.seq, head.hash):
        return _checkpoint_refused(min(head.seq, walk.expected_seq - 1) + 1)
    checkpoint_append(checkpoint_sign(seq=head.seq, hash=head.hash))
    return CheckpointOutcome("written", head.seq)


def _checkpoint_refused(seq: int) -> CheckpointOutcome:
    logger.error("audit checkpoint refused: the chain does not verify at seq %s; run verify_audit", seq)
    return CheckpointOutcome("refused", seq)
