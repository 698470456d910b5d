"""Reads of the audit log: who may see it, filtering, and chain verification."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import QuerySet

from audit.hashing import GENESIS_HASH, event_hash
from audit.models import AuditChainHead, AuditEvent
from core.roles import AUDIT_READERS, has_role


def audit_events_visible_to(*, user: Any) -> QuerySet[AuditEvent]:
    if not has_role(user, *AUDIT_READERS):
        return AuditEvent.objects.none()
    return AuditEvent.objects.all()


def audit_events_filter(
    queryset: QuerySet[AuditEvent],
    *,
    actor: str = "",
    action: str = "",
    target: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[AuditEvent]:
    """`target` matches `type`, `type:id` or a bare id."""
    if actor:
        queryset = queryset.filter(actor_name__iexact=actor)
    if action:
        queryset = queryset.filter(action__icontains=action)
    if target:
        kind, _, ident = target.partition(":")
        if ident:
            queryset = queryset.filter(target_type=kind, target_id=ident)
        else:
            queryset = queryset.filter(target_type=kind) | queryset.filter(target_id=kind)
    if date_from:
        queryset = queryset.filter(at__date__gte=date_from)
    if date_to:
        queryset = queryset.filter(at__date__lte=date_to)
    return queryset.order_by("-seq")


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    events: int
    first_bad_seq: int | None


def audit_verify() -> ChainVerdict:
    """Walk the chain in order; report the first sequence number that breaks it.

    Breaks: a gap or duplicate in seq (row deleted or inserted), a prev_hash that is not the
    previous row's hash, a hash that does not match the row's content (row edited), or a head
    that disagrees with the last row (tail deleted or appended by hand).
    """
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    rows = AuditEvent.objects.order_by("seq").values_list(
        "seq",
        "at",
        "actor_id",
        "actor_name",
        "action",
        "target_type",
        "target_id",
        "outcome",
        "details",
        "request_id",
        "prev_hash",
        "hash",
    )
    for row in rows.iterator(chunk_size=2000):
        (
            seq,
            at,
            actor_id,
            actor_name,
            action,
            target_type,
            target_id,
            outcome,
            details,
            request_id,
            stored_prev,
            stored_hash,
        ) = row
        count += 1
        recomputed = event_hash(
            seq=seq,
            at=at,
            actor_id=actor_id,
            actor_name=actor_name,
            action=action,
            target_type=target_type,
            target_id=target_id,
            outcome=outcome,
            details=details,
            request_id=request_id,
            prev_hash=prev_hash,
        )
        if seq != expected_seq or stored_prev != prev_hash or stored_hash != recomputed:
            return ChainVerdict(ok=False, events=count, first_bad_seq=min(seq, expected_seq))
        prev_hash, expected_seq = stored_hash, seq + 1
    head = AuditChainHead.objects.filter(id=1).first()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    if head_seq != expected_seq - 1 or head_hash != prev_hash:
        return ChainVerdict(ok=False, events=count, first_bad_seq=min(head_seq, expected_seq - 1) + 1)
    return ChainVerdict(ok=True, events=count, first_bad_seq=None)
