from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models

from core.roles import Role


class Team(models.Model):
    """A group of users; releases for an internal audience are visible to the requester's team."""

    name = models.CharField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A portal user. One role decides what they may do; the team decides what they may see."""

    role = models.CharField(max_length=32, choices=Role.choices, default=Role.DATA_SCIENTIST)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="members")

    class Meta:
        ordering = ["username"]

    @property
    def role_label(self) -> str:
        return Role(self.role).label


class ApiToken(models.Model):
    """An API token. Only its SHA-256 is stored: a database reader cannot use it.

    `prefix` (the first characters, shown on the owner's token page) tells tokens apart. A token
    is valid until `expires_at` unless revoked (by its owner, at sign-out of the browser session
    that created it, on a password change or on deactivation).
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)
    label = models.CharField(max_length=80, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # SHA-256 of the browser session that created it, when it is revoked at that session's
    # sign-out; empty for tokens from POST /api/v1/auth/token/ or kept past sign-out.
    session_hash = models.CharField(max_length=64, blank=True, db_index=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["user", "revoked_at"])]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user_id})"


class PendingAccountChange(models.Model):
    """A change to an account that needs a second admin (two-person rule, ASVS V8).

    One admin proposes; a different admin, who is not the account's owner either, approves
    (the change is applied then) or rejects it with a reason. `kind` says what is applied:
    `account` sets the `fields` (role, team id, is_active) after checking that the account still
    holds the `before` values the proposer saw; `mfa_reset` deletes the user's second factors;
    `password_reset` makes the password unusable so the user must reset it. Rows are never
    deleted: with the audit log they are the evidence of who asked and who agreed.
    """

    class Kind(models.TextChoices):
        ACCOUNT = "account", "Role, team or activation"
        MFA_RESET = "mfa_reset", "Reset second factor"
        PASSWORD_RESET = "password_reset", "Force password reset"

    class Outcome(models.TextChoices):
        PENDING = "pending", "Waiting for a second admin"
        APPROVED = "approved", "Approved and applied"
        REJECTED = "rejected", "Rejected"
        WITHDRAWN = "withdrawn", "Withdrawn by the proposer"

    target = models.ForeignKey(User, on_delete=models.CASCADE, related_name="pending_changes")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.ACCOUNT)
    fields = models.JSONField(
        default=dict, blank=True, help_text="The values to set: role, team (id), is_active."
    )
    before = models.JSONField(default=dict, blank=True, help_text="The account's values when proposed.")
    new_account = models.BooleanField(default=False, help_text="Proposed while creating the account.")
    proposed_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    proposed_by_name = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_by_name = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.PENDING)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # One open proposal per account and kind: a second admin approves exactly what they read.
            models.UniqueConstraint(
                fields=["target", "kind"],
                condition=models.Q(outcome="pending"),
                name="one_pending_change_per_account_kind",
            ),
            models.CheckConstraint(
                condition=~models.Q(proposed_by=models.F("target")), name="change_not_proposed_for_self"
            ),
            models.CheckConstraint(
                condition=models.Q(outcome="withdrawn") | ~models.Q(decided_by=models.F("proposed_by")),
                name="change_decided_by_a_second_admin",
            ),
            models.CheckConstraint(
                condition=~models.Q(decided_by=models.F("target")), name="change_not_decided_by_its_target"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.target_id} ({self.outcome})"
