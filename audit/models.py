from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from audit.hashing import GENESIS_HASH, HashScheme, LinkedCanonical


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    DENIED = "denied", "Denied"
    REJECTED = "rejected", "Rejected"
    FAILURE = "failure", "Failure"


class AuditEvent(models.Model):
    """One append-only entry of the audit log.

    `hash` covers every other field plus the previous entry's hash, so editing, deleting or
    inserting a row breaks the chain at that sequence number. It is an HMAC under a key kept
    outside the database (`hash_scheme` 2), so whoever can write the table still cannot recompute
    it; rows written before keying keep their unkeyed SHA-256 (`hash_scheme` 1) and verify as the
    chain's prefix. Signed checkpoints outside the database (audit.checkpoints) pin the head.
    The actor's name is stored beside the foreign key so entries outlive users. `details` holds
    ids and column names, never values.

    Sequenced mode (SYNTHGATE_AUDIT_SEQUENCER, issue 16 item 3): the writer inserts the row
    *pending*, without the head lock: `seq`, `prev_hash` and `hash` are NULL and `content_hash`
    is an HMAC under the audit key over the row's id and content (audit.hashing.pending_hash), so
    a row inserted by hand cannot be passed off as a writer's. The sequencer
    (audit.services.audit_sequence) links pending rows in id order: that one change, NULL to
    values, is the only UPDATE the database trigger lets through (migration 0005).

    Scheme 3 (`HashScheme.LINKED`, the default since migration 0006, issue 16 item 3b): the
    database builds the row's canonical text itself (`canonical`, a stored generated column over
    every other column but `hash`, `tag` and `content_hash`), `hash` is a SHA-256 link over the
    previous hash and that text, and `tag` is an HMAC of `hash` under the audit key
    (audit.hashing). Verification then reads two columns per row and hashes them.
    """

    seq = models.PositiveBigIntegerField(unique=True, null=True, blank=True)
    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=80, db_index=True)
    target_type = models.CharField(max_length=80, db_index=True)
    target_id = models.CharField(max_length=64, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    details = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    # NULL (not "") while pending: the trigger and the check constraint test for NULL.
    prev_hash = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    hash = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    hash_scheme = models.PositiveSmallIntegerField(choices=HashScheme.choices, default=HashScheme.LINKED)
    # Sequenced rows only (empty on rows the writer chained itself): the writer's HMAC over the id
    # and content, checked by the sequencer before it links the row and by verification while pending.
    content_hash = models.CharField(max_length=64, blank=True, default="")
    # Scheme 3: the keyed tag on `hash` (NULL on older schemes and while pending).
    tag = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # Scheme 3: the text `hash` covers, made by the database from this row's columns (NULL while
    # pending). Older rows have one too; their hash does not cover it.
    canonical = models.GeneratedField(
        expression=LinkedCanonical(), output_field=models.TextField(), db_persist=True
    )

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["at"]),
            # The sequencer's queue: pending rows in id order, small whatever the log's size.
            models.Index(fields=["id"], condition=models.Q(seq__isnull=True), name="audit_event_pending"),
            # Rows of the older schemes (a prefix of the chain, written before migration 0006):
            # the walk checks them row by row, and everything after the last one the fast way.
            models.Index(fields=["seq"], condition=models.Q(hash_scheme__lt=3), name="audit_event_legacy"),
        ]
        constraints = [
            # Linked (all three chain fields) or pending (none): never half linked.
            models.CheckConstraint(
                condition=models.Q(seq__isnull=True, prev_hash__isnull=True, hash__isnull=True)
                | models.Q(seq__isnull=False, prev_hash__isnull=False, hash__isnull=False),
                name="audit_event_linked_or_pending",
            ),
            # A pending row carries the writer's content HMAC.
            models.CheckConstraint(
                condition=models.Q(seq__isnull=False) | ~models.Q(content_hash=""),
                name="audit_event_pending_sealed",
            ),
        ]

    def __str__(self) -> str:
        position = "pending" if self.seq is None else f"#{self.seq}"
        return f"{position} {self.action} {self.target_type}:{self.target_id} {self.outcome}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Only a first insert: `create()` forces it (sequenced rows carry their id from the start).
        if not self._state.adding or (self.pk is not None and not kwargs.get("force_insert")):
            raise RuntimeError("Audit events are append-only; they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise RuntimeError("Audit events are append-only; they cannot be deleted.")

    @property
    def is_pending(self) -> bool:
        """Committed but not linked into the chain yet (sequenced mode)."""
        return self.seq is None


class AuditChainHead(models.Model):
    """The single row that records the newest sequence number and hash.

    Writers lock it (select_for_update) to serialize appends; verification compares it with
    the last event, which is how a deleted or appended-by-hand tail is detected when the head
    was left alone. A head fixed to match is caught by the signed checkpoints instead.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="audit_head_singleton")]

    def __str__(self) -> str:
        return f"audit head at #{self.seq}"


class VerificationMode(models.TextChoices):
    FULL = "full", "Full"
    INCREMENTAL = "incremental", "Incremental"


class VerificationTrigger(models.TextChoices):
    MANUAL = "manual", "On demand"
    SCHEDULED = "scheduled", "Scheduled"
    COMMAND = "command", "Command line"


class AuditVerification(models.Model):
    """One run of chain verification and its verdict, so pages show the latest result instead of
    walking the whole chain on every view (issue 16).

    `upto_seq`/`upto_hash` are the last row the run verified: the next incremental run starts
    there, after checking that the stored row at `upto_seq` still carries `upto_hash`. The table
    lives in the database a tamperer controls, so a record is a convenience, never evidence: the
    full verification and the signed checkpoints do not read it.
    """

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    mode = models.CharField(max_length=16, choices=VerificationMode.choices)
    trigger = models.CharField(max_length=16, choices=VerificationTrigger.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    ok = models.BooleanField()
    # The row the walk started after (0 for a full run) and the last row it verified.
    from_seq = models.PositiveBigIntegerField(default=0)
    upto_seq = models.PositiveBigIntegerField(default=0)
    upto_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    events = models.PositiveBigIntegerField(default=0)
    first_bad_seq = models.PositiveBigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=40, blank=True)
    unkeyed_events = models.PositiveBigIntegerField(default=0)
    checkpoints = models.PositiveIntegerField(default=0)
    checkpoint_seq = models.PositiveBigIntegerField(null=True, blank=True)
    bad_checkpoints = models.PositiveIntegerField(default=0)
    # Sequenced mode: rows committed but not yet linked when the run looked, how many of them were
    # older than the maximum merge delay, how many carry no valid writer HMAC, and the oldest one's time.
    pending = models.PositiveBigIntegerField(default=0)
    pending_overdue = models.PositiveBigIntegerField(default=0)
    pending_forged = models.PositiveBigIntegerField(default=0)
    oldest_pending_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-finished_at", "-id"]
        indexes = [models.Index(fields=["ok", "-finished_at"], name="audit_verif_ok_recent")]

    def __str__(self) -> str:
        verdict = "ok" if self.ok else f"broken at {self.first_bad_seq}"
        return f"{self.mode} verification up to #{self.upto_seq}: {verdict}"
