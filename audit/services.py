"""Writes to the audit log. Every mutating service calls `audit_record` in its own transaction."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.checkpoints import checkpoint_append, checkpoint_sign, checkpoints_read
from audit.context import current_request_id
from audit.hashing import HashScheme, audit_key, hmac_event_hash
from audit.models import (
    AuditChainHead,
    AuditEvent,
    AuditVerification,
    Outcome,
    VerificationMode,
    VerificationTrigger,
)
from audit.selectors import ChainVerdict, ChainWalk, audit_chain_rows, audit_verify, audit_verify_since
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


# The scheduled run is incremental, but walks the whole chain when the last good full run is
# older than this: what an incremental run cannot see (docs/security.md) waits at most a day.
FULL_VERIFICATION_EVERY = timedelta(hours=24)


def audit_verification_run(*, mode: str, trigger: str, actor: PortalUser | None = None) -> AuditVerification:
    """Verify the chain, fully or from the last verified position, and record the verdict.

    Incremental starts after the later of the newest successful verification's last row and the
    newest signed checkpoint at or below the head (audit.selectors.audit_verify_since); with
    neither, it is a full run. Runs on demand (a reader's "Verify now", audited as
    `audit.verify`), on the beat schedule and from `verify_audit`; those two are audited only
    when the chain does not hold, so a quiet schedule does not fill the log with its own runs.
    """
    started, clock = timezone.now(), time.perf_counter()
    log = checkpoints_read()
    start = _incremental_start(log) if mode == VerificationMode.INCREMENTAL else None
    if start is None:
        mode, verdict = VerificationMode.FULL, audit_verify(log=log)
    else:
        verdict = audit_verify_since(seq=start[0], hash=start[1], log=log)
    record = _record_verdict(verdict, mode=mode, trigger=trigger, actor=actor, started=started, clock=clock)
    if trigger == VerificationTrigger.MANUAL or not verdict.ok:
        _audit_verification(actor, record, verdict, mode=mode, trigger=trigger)
    if not verdict.ok:
        logger.error(
            "audit chain verification failed at seq %s (%s); run verify_audit -v 2",
            verdict.first_bad_seq,
            verdict.reason,
        )
    return record


def _audit_verification(
    actor: PortalUser | None, record: AuditVerification, verdict: ChainVerdict, *, mode: str, trigger: str
) -> None:
    # A savepoint: with rows appended by hand behind the head's back, the next seq is taken and
    # the append fails. The verdict is recorded all the same, and the error is logged.
    try:
        with transaction.atomic():
            audit_record(
                actor=actor,
                action="audit.verify",
                target_type="audit_chain",
                target_id=record.pk,
                outcome=Outcome.SUCCESS if verdict.ok else Outcome.FAILURE,
                details={
                    "mode": str(mode),
                    "trigger": str(trigger),
                    "from_seq": verdict.from_seq,
                    "upto_seq": verdict.upto_seq,
                    "first_bad_seq": verdict.first_bad_seq,
                    "reason": verdict.reason,
                },
            )
    except IntegrityError:
        logger.error("audit.verify could not be appended to the log: the chain head is behind its rows")


def audit_verification_scheduled() -> AuditVerification:
    """The beat's run: incremental, full once the last good full run is a day old (or missing)."""
    recent_full = AuditVerification.objects.filter(
        ok=True, mode=VerificationMode.FULL, finished_at__gte=timezone.now() - FULL_VERIFICATION_EVERY
    ).exists()
    mode = VerificationMode.INCREMENTAL if recent_full else VerificationMode.FULL
    return audit_verification_run(mode=mode, trigger=VerificationTrigger.SCHEDULED)


def _incremental_start(log: Any) -> tuple[int, str] | None:
    candidates: list[tuple[int, str]] = []
    last_ok = AuditVerification.objects.filter(ok=True).order_by("-finished_at", "-id").first()
    if last_ok is not None and last_ok.upto_seq > 0:
        candidates.append((last_ok.upto_seq, last_ok.upto_hash))
    head_seq = AuditChainHead.objects.filter(id=1).values_list("seq", flat=True).first() or 0
    # A checkpoint beyond the head is a deleted tail: start below it so the walk reports it.
    signed = [c for c in log.valid if c.seq <= head_seq]
    if signed:
        candidates.append((signed[-1].seq, signed[-1].hash))
    return max(candidates) if candidates else None


def _record_verdict(
    verdict: ChainVerdict,
    *,
    mode: str,
    trigger: str,
    actor: PortalUser | None,
    started: Any,
    clock: float,
) -> AuditVerification:
    actor_obj = actor if getattr(actor, "is_authenticated", False) else None
    fields = asdict(verdict)
    return AuditVerification.objects.create(
        started_at=started,
        finished_at=timezone.now(),
        mode=mode,
        trigger=trigger,
        actor=actor_obj,
        actor_name=actor_obj.get_username() if actor_obj is not None else SYSTEM_ACTOR,
        duration_ms=int((time.perf_counter() - clock) * 1000),
        **fields,
    )
