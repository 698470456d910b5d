"""Writes to the audit log. Every mutating service calls `audit_record` in its own transaction."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import lru_cache, partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone

from audit.checkpoints import checkpoint_append, checkpoint_sign, checkpoints_read
from audit.context import current_request_id
from audit.hashing import (
    LINKED_BODY_FIELDS,
    HashScheme,
    audit_key,
    link_tag,
    linked_body_sql,
    linked_hash,
    linked_position,
    pending_hash,
    row_hash,
)
from audit.models import (
    AuditChainHead,
    AuditEvent,
    AuditVerification,
    Outcome,
    VerificationMode,
    VerificationTrigger,
)
from audit.selectors import (
    PENDING_FIELDS,
    ChainVerdict,
    ChainWalk,
    audit_chain_rows,
    audit_verify,
    audit_verify_since,
    linked_bodies,
    pending_seal_ok,
)
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

    In sequenced mode (SYNTHGATE_AUDIT_SEQUENCER, PostgreSQL) the head is not locked: the row is
    inserted pending, sealed with the writer's HMAC over its id and content, and commits with the
    caller's transaction; `audit_sequence` links it into the chain within MAX_MERGE_DELAY. The
    returned event then has no `seq` or `hash` yet.
    """
    actor_obj = actor if getattr(actor, "is_authenticated", False) else None
    actor_name = actor_obj.get_username() if actor_obj is not None else SYSTEM_ACTOR
    content: dict[str, Any] = {
        "actor_name": actor_name,
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id),
        "outcome": str(outcome),
        "details": details or {},
        "request_id": current_request_id.get(),
    }
    actor_id = actor_obj.pk if actor_obj else None
    if _sequenced():
        fields: dict[str, Any] = {"at": timezone.now(), **content}
        # One INSERT, no lock and no savepoint: it is atomic alone, and the caller's transaction
        # decides whether it commits.
        return _insert_pending(actor_obj, actor_id, fields)
    # Scheme 3: the database renders the content part of the canonical text (as the generated
    # column will once the row is stored), before the head lock: only the position needs it.
    at = timezone.now()
    values = {"at": at, "actor_id": actor_id, **content}
    (body,) = linked_bodies([tuple(values[name] for name in LINKED_BODY_FIELDS)])
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(id=1)
        seq = head.seq + 1
        fields = {"seq": seq, "at": at, **content, "prev_hash": head.hash}
        digest = linked_hash(linked_position(prev_hash=head.hash, seq=seq) + body)
        event = AuditEvent.objects.create(
            actor=actor_obj,
            hash=digest,
            tag=link_tag(audit_key(), digest),
            hash_scheme=HashScheme.LINKED,
            **fields,
        )
        AuditChainHead.objects.filter(id=1).update(seq=seq, hash=digest)
        if seq % settings.SYNTHGATE_AUDIT_CHECKPOINT_EVERY == 0:
            # robust: the action has committed by then; a full disk must not turn it into an
            # error page. The periodic checkpoint catches up.
            transaction.on_commit(partial(_checkpoint_committed, seq=seq, digest=digest), robust=True)
    return event


def audit_linked_batch(rows: list[dict[str, Any]], *, first_seq: int, prev_hash: str) -> list[AuditEvent]:
    """Unsaved scheme-3 events for `rows` (each the `LINKED_BODY_FIELDS` values, with `actor_id`),
    from `first_seq` on, linked from `prev_hash` and tagged as `audit_record` would link and tag
    them: for loading a log in bulk (bench/audit.py, tests), whose caller then sets the head. The
    content part of each canonical text is rendered by the database in batches."""
    key = audit_key()
    bodies = linked_bodies([tuple(row[name] for name in LINKED_BODY_FIELDS) for row in rows])
    events, prev = [], prev_hash
    for seq, (row, body) in enumerate(zip(rows, bodies, strict=True), start=first_seq):
        digest = linked_hash(linked_position(prev_hash=prev, seq=seq) + body)
        events.append(
            AuditEvent(
                seq=seq,
                prev_hash=prev,
                hash=digest,
                tag=link_tag(key, digest),
                hash_scheme=HashScheme.LINKED,
                **row,
            )
        )
        prev = digest
    return events


def _sequenced() -> bool:
    if not settings.SYNTHGATE_AUDIT_SEQUENCER:
        return False
    if connection.vendor != "postgresql":
        raise ImproperlyConfigured("SYNTHGATE_AUDIT_SEQUENCER needs PostgreSQL (DATABASE_URL).")
    return True


_id_sequence: dict[str, str] = {}


@lru_cache(maxsize=1)
def _pending_fields() -> tuple[Any, ...]:
    by_attname = {f.attname: f for f in AuditEvent._meta.concrete_fields}
    return tuple(by_attname[column] for column in PENDING_FIELDS)


_next_ids = threading.local()


def _insert_pending(actor_obj: PortalUser | None, actor_id: int | None, fields: dict[str, Any]) -> AuditEvent:
    """Insert the sealed pending row. Its id is drawn from the table's identity sequence before
    the insert, so the writer's seal can bind it: the INSERT returns the next id this thread will
    use (`RETURNING nextval(...)`), one round trip instead of two. A sequence value is never handed
    out twice, committed or not, so an id drawn ahead stays this thread's (unused ones are gaps).
    Plain SQL, no model save: this is the whole cost of an audited write in sequenced mode."""
    meta = AuditEvent._meta
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        name = _id_sequence.get(connection.alias)
        if name is None:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [meta.db_table])
            name = _id_sequence[connection.alias] = cursor.fetchone()[0]
        # Used once, whether the insert succeeds or not. (Only a sequence set back by hand, say a
        # restore, could hand this id out again: the primary key then refuses one of the two.)
        row_id = getattr(_next_ids, "value", None)
        _next_ids.value = None
        if row_id is None:
            cursor.execute("SELECT nextval(%s)", [name])
            row_id = int(cursor.fetchone()[0])
        seal = pending_hash(key=audit_key(), row_id=row_id, actor_id=actor_id, **fields)
        event = AuditEvent(
            id=row_id, actor=actor_obj, content_hash=seal, hash_scheme=HashScheme.LINKED, **fields
        )
        values = [f.get_db_prep_save(getattr(event, f.attname), connection) for f in _pending_fields()]
        columns = ", ".join(quote(column) for column in PENDING_FIELDS)
        placeholders = ", ".join(["%s"] * len(values))
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders}) RETURNING nextval(%s)",
            [*values, name],
        )
        _next_ids.value = int(cursor.fetchone()[0])
    event._state.adding = False
    event._state.db = connection.alias
    return event


# Rows linked per transaction under the head lock, and at most per call: a tick under a backlog
# hands over to the next tick instead of holding the head lock for minutes.
SEQUENCE_BATCH = 1000
SEQUENCE_MAX_ROWS = 50_000


@dataclass(frozen=True)
class SequenceOutcome:
    """What `audit_sequence` did: `linked` rows given `first_seq`..`last_seq` (None when none),
    and the ids of pending rows it refused because their writer seal does not verify."""

    linked: int
    first_seq: int | None
    last_seq: int | None
    refused: tuple[int, ...] = ()


def audit_sequence(*, batch_size: int = SEQUENCE_BATCH, max_rows: int = SEQUENCE_MAX_ROWS) -> SequenceOutcome:
    """Link the committed pending rows into the chain, in id order, in batches.

    Each batch runs in its own transaction under the chain-head lock (the lock unsequenced writers
    take), so two sequencers, or a sequencer and an unsequenced writer, never link the same
    position twice: the second waits, then reads only rows still pending. Every row's writer seal
    is checked first; a row without a valid one (inserted or edited outside the portal) is left
    pending, logged, and reported by verification (`pending_forged`); the rows after it are linked.
    A row whose writer's transaction has not committed yet is not seen, and is linked by a later
    call: the chain orders rows as they become visible, by id within that. Called every second by
    the beat (audit.tasks.sequence_audit_chain) and on demand (`manage.py audit_sequence`).
    """
    key = audit_key()
    every = settings.SYNTHGATE_AUDIT_CHECKPOINT_EVERY
    linked, first_seq, last_seq = 0, None, None
    refused: list[int] = []
    after_id = 0
    while linked < max_rows:
        # Nothing pending (the common tick): no head lock taken, nothing written.
        if not AuditEvent.objects.filter(seq__isnull=True, id__gt=after_id).exists():
            break
        with transaction.atomic():
            head, _ = AuditChainHead.objects.select_for_update().get_or_create(id=1)
            rows = list(
                AuditEvent.objects.filter(seq__isnull=True, id__gt=after_id)
                .order_by("id")
                .annotate(linked_body=_linked_body_column())
                .values_list(*PENDING_FIELDS, "linked_body")[:batch_size]
            )
            if not rows:
                break
            after_id = rows[-1][0]
            seq, prev = head.seq, head.hash
            links: list[tuple[int, int, str, str, str | None]] = []
            for row in rows:
                if not pending_seal_ok(row, key):
                    refused.append(row[0])
                    continue
                seq += 1
                scheme = row[len(PENDING_FIELDS) - 1]
                if scheme == HashScheme.LINKED:
                    # The canonical text the generated column will hold once linked: the position,
                    # then the content as the database renders it (read with the row).
                    digest = linked_hash(linked_position(prev_hash=prev, seq=seq) + str(row[-1]))
                    tag: str | None = link_tag(key, digest)
                else:
                    # Written pending before scheme 3: the chain entry as audit_record hashed it then.
                    digest = row_hash(
                        (seq, *row[1:10]), prev_hash=prev, scheme=HashScheme.HMAC_SHA256, key=key
                    )
                    tag = None
                links.append((row[0], seq, prev, digest, tag))
                prev = digest
            if links:
                _link(links)
                AuditChainHead.objects.filter(id=1).update(seq=seq, hash=prev)
                if head.seq // every != seq // every:
                    transaction.on_commit(partial(_checkpoint_committed, seq=seq, digest=prev), robust=True)
                first_seq = links[0][1] if first_seq is None else first_seq
                last_seq = seq
                linked += len(links)
        if len(rows) < batch_size:
            break
    if refused:
        logger.error(
            "audit sequencer refused %d pending events whose writer seal does not verify (ids %s); "
            "run verify_audit",
            len(refused),
            refused[:20],
        )
    return SequenceOutcome(linked=linked, first_seq=first_seq, last_seq=last_seq, refused=tuple(refused))


def _linked_body_column() -> RawSQL:
    """The content part of a row's scheme-3 canonical text, from its own columns (the SQL of the
    generated column `canonical` without the position, which a pending row does not have yet)."""
    quote = connection.ops.quote_name
    return RawSQL(linked_body_sql(connection.vendor, {name: quote(name) for name in LINKED_BODY_FIELDS}), [])


def _link(links: list[tuple[int, int, str, str, str | None]]) -> None:
    """One UPDATE for the batch, each row from pending (NULL chain fields) to linked: the only
    change the append-only trigger allows (migrations 0005, 0006)."""
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    values = ", ".join(["(%s::bigint, %s::bigint, %s, %s, %s)"] * len(links))
    params = [value for link in links for value in link]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS e SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash, tag = v.tag "
            f"FROM (VALUES {values}) AS v(id, seq, prev_hash, hash, tag) "
            "WHERE e.id = v.id AND e.seq IS NULL",
            params,
        )
        if cursor.rowcount != len(links):
            # Under the head lock nobody else links: a row changed under us. Roll the batch back.
            raise RuntimeError("audit sequencer: pending rows changed while they were linked")


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
