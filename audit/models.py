from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from audit.hashing import GENESIS_HASH, HashScheme


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
    """

    seq = models.PositiveBigIntegerField(unique=True)
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
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    hash_scheme = models.PositiveSmallIntegerField(choices=HashScheme.choices, default=HashScheme.HMAC_SHA256)

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["at"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.target_type}:{self.target_id} {self.outcome}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise RuntimeError("Audit events are append-only; they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise RuntimeError("Audit events are append-only; they cannot be deleted.")


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
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-finished_at", "-id"]
        indexes = [models.Index(fields=["ok", "-finished_at"], name="audit_verif_ok_recent")]

    def __str__(self) -> str:
        verdict = "ok" if self.ok else f"broken at {self.first_bad_seq}"
        return f"{self.mode} verification up to #{self.upto_seq}: {verdict}"
