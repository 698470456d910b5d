from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models

from approvals.choices import Audience, DecisionKind, RequestStatus, TierLevel
from generation.models import micro_to_epsilon


class GenerationRequest(models.Model):
    """A data scientist's request for a synthetic release, and where it is in its life.

    The tier fields are a snapshot of the policy's decision at submission (with the policy
    version), so later policy changes never rewrite past decisions.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    dataset = models.ForeignKey("generation.SourceDataset", on_delete=models.PROTECT, related_name="requests")
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="generation_requests"
    )
    # The requester's team when the request was filed: it decides who sees an internal release.
    team = models.ForeignKey("portal.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=200)
    purpose = models.TextField()
    intended_use = models.TextField()
    audience = models.CharField(max_length=16, choices=Audience.choices)
    columns = models.JSONField()
    synthesizer = models.CharField(max_length=40)
    rows = models.PositiveIntegerField()
    epsilon_micro = models.PositiveBigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=RequestStatus.choices, default=RequestStatus.DRAFT)
    review_round = models.PositiveIntegerField(default=0)
    tier_level = models.CharField(max_length=12, choices=TierLevel.choices, blank=True)
    tier_reasons = models.JSONField(default=list, blank=True)
    required_approvals = models.PositiveSmallIntegerField(default=0)
    tier_controls = models.JSONField(default=dict, blank=True)
    policy_version = models.CharField(max_length=40, blank=True)
    job = models.OneToOneField(
        "generation.SynthesisJob", null=True, blank=True, on_delete=models.PROTECT, related_name="request"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "submitted_at"])]

    def __str__(self) -> str:
        return self.title

    @property
    def epsilon(self) -> Decimal | None:
        return micro_to_epsilon(self.epsilon_micro)


class Decision(models.Model):
    """A reviewer's decision in one review round. The reviewer's name outlives the account."""

    request = models.ForeignKey(GenerationRequest, on_delete=models.CASCADE, related_name="decisions")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewer_name = models.CharField(max_length=150)
    review_round = models.PositiveIntegerField()
    decision = models.CharField(max_length=20, choices=DecisionKind.choices)
    comment = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "reviewer", "review_round"], name="one_decision_per_reviewer_per_round"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer_name}: {self.decision}"
