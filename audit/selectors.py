"""Reads of the audit log: who may see it, filtering, and chain verification."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.db.models import QuerySet

from audit.checkpoints import CheckpointLog, checkpoints_read
from audit.hashing import GENESIS_HASH, ROW_FIELDS, HashScheme, audit_key, event_hash
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


# Why a verification failed, by code. The codes are part of the API (`reason`); the texts are
# what the verify page and `verify_audit -v 2` show.
REASONS: dict[str, str] = {
    "sequence_gap": "an entry is missing, or one was inserted, at this sequence number",
    "prev_hash_mismatch": "this entry does not link to the hash of the entry before it",
    "hash_mismatch": (
        "this entry's content does not match its hash under the audit key: it was edited, "
        "or written without the key"
    ),
    "unkeyed_after_keyed": (
        "this entry carries an unkeyed SHA-256 hash after keyed entries: it was written or "
        "recomputed without the audit key"
    ),
    "unknown_scheme": "this entry names a hash scheme the portal does not know",
    "head_mismatch": "the chain head disagrees with the last entry: a tail was deleted or appended by hand",
    "truncated": "a signed checkpoint records entries beyond the last one: the tail was deleted",
    "checkpoint_mismatch": (
        "a signed checkpoint records a different hash for this part of the chain: entries from "
        "here on were rewritten and the chain recomputed"
    ),
    "checkpoint_signature": (
        "the checkpoint file holds lines whose signature does not verify: forged or corrupted"
    ),
}


@dataclass(frozen=True)
class ChainVerdict:
    """The outcome of `audit_verify`. `first_bad_seq` is the first entry that cannot be trusted
    (None when the chain holds, or when only the checkpoint file is at fault)."""

    ok: bool
    events: int
    first_bad_seq: int | None
    reason: str = ""
    unkeyed_events: int = 0
    checkpoints: int = 0
    checkpoint_seq: int | None = None
    bad_checkpoints: int = 0

    @property
    def detail(self) -> str:
        return REASONS.get(self.reason, "")


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str


ChainRow = tuple[Any, ...]


def audit_chain_rows(*, after_seq: int = 0, upto_seq: int | None = None) -> Iterable[ChainRow]:
    """Rows in chain order as tuples: the `ROW_FIELDS`, then prev_hash, hash and hash_scheme."""
    rows = AuditEvent.objects.filter(seq__gt=after_seq)
    if upto_seq is not None:
        rows = rows.filter(seq__lte=upto_seq)
    columns = rows.order_by("seq").values_list(*ROW_FIELDS, "prev_hash", "hash", "hash_scheme")
    return columns.iterator(chunk_size=2000)


@dataclass
class ChainWalk:
    """A walk along the chain from (`expected_seq`, `prev_hash`); `walk` checks rows in order.

    Per row: no gap or duplicate in seq, a link to the previous hash, a known scheme (unkeyed
    SHA-256 only before the first keyed row), a hash that matches the content under the key, and
    agreement with every signed checkpoint at that seq. A checkpoint that disagrees with rows
    that are otherwise consistent means the chain was recomputed: the rows since the last
    checkpoint that matched are what cannot be trusted.
    """

    key: bytes
    anchors: dict[int, set[str]] = field(default_factory=dict)
    expected_seq: int = 1
    prev_hash: str = GENESIS_HASH
    seen_keyed: bool = False
    anchored_seq: int = 0
    count: int = 0
    unkeyed: int = 0

    def walk(self, rows: Iterable[ChainRow]) -> ChainBreak | None:
        for row in rows:
            broken = self._step(row)
            if broken is not None:
                return broken
        return None

    def _step(self, row: ChainRow) -> ChainBreak | None:
        fields = dict(zip(ROW_FIELDS, row, strict=False))
        seq, stored_prev, stored_hash, scheme = fields["seq"], row[-3], row[-2], row[-1]
        self.count += 1
        if seq != self.expected_seq:
            return ChainBreak(min(seq, self.expected_seq), "sequence_gap")
        if stored_prev != self.prev_hash:
            return ChainBreak(seq, "prev_hash_mismatch")
        problem = self._scheme_problem(scheme)
        if problem:
            return ChainBreak(seq, problem)
        if stored_hash != event_hash(scheme=scheme, key=self.key, prev_hash=stored_prev, **fields):
            return ChainBreak(seq, "hash_mismatch")
        signed = self.anchors.get(seq)
        if signed is not None:
            if signed != {stored_hash}:
                return ChainBreak(self.anchored_seq + 1, "checkpoint_mismatch")
            self.anchored_seq = seq
        self.prev_hash, self.expected_seq = stored_hash, seq + 1
        return None

    def _scheme_problem(self, scheme: int) -> str:
        if scheme == HashScheme.HMAC_SHA256:
            self.seen_keyed = True
            return ""
        if scheme == HashScheme.SHA256:
            # Only rows written before keying may be unkeyed; the first keyed row's HMAC covers
            # their last hash. Anything unkeyed after that was written without the key.
            if self.seen_keyed:
                return "unkeyed_after_keyed"
            self.unkeyed += 1
            return ""
        return "unknown_scheme"


def audit_verify() -> ChainVerdict:
    """Walk the whole chain against the key and the signed checkpoints; report the first
    sequence number that cannot be trusted.

    Detected: edited, deleted and inserted rows; rows appended or recomputed without the key
    (hash mismatch, or unkeyed after keyed); a head that disagrees with the last row; a tail
    deleted with the head fixed (a checkpoint lies beyond the last row); a chain recomputed with
    the key (a checkpoint disagrees); and checkpoint lines whose signature fails.
    """
    log = checkpoints_read()
    walk = ChainWalk(key=audit_key(), anchors=_anchors(log))
    broken = walk.walk(audit_chain_rows()) or _tail_break(walk, log)
    counts: dict[str, Any] = {
        "events": walk.count,
        "unkeyed_events": walk.unkeyed,
        "checkpoints": len(log.valid),
        "checkpoint_seq": log.newest.seq if log.newest else None,
        "bad_checkpoints": len(log.bad_lines),
    }
    if broken is not None:
        return ChainVerdict(ok=False, first_bad_seq=broken.seq, reason=broken.reason, **counts)
    if log.bad_lines:
        return ChainVerdict(ok=False, first_bad_seq=None, reason="checkpoint_signature", **counts)
    return ChainVerdict(ok=True, first_bad_seq=None, **counts)


def _anchors(log: CheckpointLog) -> dict[int, set[str]]:
    anchors: dict[int, set[str]] = {}
    for checkpoint in log.valid:
        anchors.setdefault(checkpoint.seq, set()).add(checkpoint.hash)
    return anchors


def _tail_break(walk: ChainWalk, log: CheckpointLog) -> ChainBreak | None:
    last_seq = walk.expected_seq - 1
    head = AuditChainHead.objects.filter(id=1).first()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    if head_seq != last_seq or head_hash != walk.prev_hash:
        return ChainBreak(min(head_seq, last_seq) + 1, "head_mismatch")
    if log.newest is not None and log.newest.seq > last_seq:
        return ChainBreak(last_seq + 1, "truncated")
    return None
