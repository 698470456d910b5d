from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models

from generation.models import micro_to_epsilon


class Release(models.Model):
    """A published synthetic table that passed the release gate, or that failed it and was
    published by a justified override two privacy officers signed (`gate.overridden`).

    Visibility follows the request's audience: internal -> the requester's team; organization ->
    every signed-in user. One release per request at most (the database enforces it).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    request = models.OneToOneField(
        "approvals.GenerationRequest", on_delete=models.PROTECT, related_name="release"
    )
    job = models.OneToOneField("generation.SynthesisJob", on_delete=models.PROTECT, related_name="release")
    dataset = models.ForeignKey("generation.SourceDataset", on_delete=models.PROTECT, related_name="releases")
    team = models.ForeignKey("portal.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    audience = models.CharField(max_length=16)
    title = models.CharField(max_length=200)
    rows = models.PositiveIntegerField()
    columns = models.JSONField()
    synthesizer = models.CharField(max_length=40)
    is_dp = models.BooleanField()
    epsilon_micro = models.PositiveBigIntegerField(null=True, blank=True)
    delta_atto = models.PositiveBigIntegerField(null=True, blank=True)
    # What is and is not protected (NIST SP 800-226 fields), fixed at publication:
    # {"dp", "unit", "neighbouring", "epsilon", "delta", "flavour", "mechanisms", "covers",
    #  "not_covered", "source_spent": {"epsilon", "delta"}}.
    privacy = models.JSONField(default=dict, blank=True)
    storage_path = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    gate = models.JSONField()
    metrics = models.JSONField()
    receipt = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Non-DP synthesizers never carry an epsilon.
            models.CheckConstraint(
                condition=models.Q(is_dp=True) | models.Q(epsilon_micro__isnull=True),
                name="release_epsilon_only_when_dp",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def epsilon(self) -> Decimal | None:
        return micro_to_epsilon(self.epsilon_micro)
