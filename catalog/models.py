from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from generation.models import micro_to_epsilon


class ReleaseKind(models.TextChoices):
    """What a release serves: a synthetic table (CSV) or a differentially private model (skops)."""

    TABLE = "table", "Synthetic table"
    MODEL = "model", "DP model"


class ArtifactFormat(models.TextChoices):
    CSV = "csv", "CSV"
    SKOPS = "skops", "skops"
    # A federated study's model: its final parameters as numpy arrays (np.load, allow_pickle=False).
    NPZ = "npz", "npz"


class ReleaseOrigin(models.TextChoices):
    """What published a release: a generation request's job, or a completed federated study (a
    layer above the catalog, which publishes through catalog.services.release_publish_external and
    leaves here what the catalog shows of it: its card, its site datasets, its tier controls)."""

    REQUEST = "request", "Generation request"
    STUDY = "study", "Federated study"


class Release(models.Model):
    """A published synthetic table or DP model that passed its release gate, or that failed it
    and was published by a justified override two privacy officers signed (`gate.overridden`).

    Visibility follows the request's audience: internal -> the requester's team; organization ->
    every signed-in user. One release per request at most (the database enforces it).

    A federated study's model (origin "study") has no request, job or single dataset: its
    requester, tier controls, model card and site datasets are fixed here at publication
    (`requester`, `controls`, `card`, `sources`), and `origin_ref` is the study's id.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    origin = models.CharField(max_length=8, choices=ReleaseOrigin.choices, default=ReleaseOrigin.REQUEST)
    request = models.OneToOneField(
        "approvals.GenerationRequest",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="release",
    )
    job = models.OneToOneField(
        "generation.SynthesisJob", null=True, blank=True, on_delete=models.PROTECT, related_name="release"
    )
    dataset = models.ForeignKey(
        "generation.SourceDataset", null=True, blank=True, on_delete=models.PROTECT, related_name="releases"
    )
    # Who asked for it (both origins; a request-origin release's also on its request), and for a
    # study its tier controls (a request-origin release reads them from its request).
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requester_name = models.CharField(max_length=150, blank=True)
    controls = models.JSONField(default=dict, blank=True)
    origin_ref = models.UUIDField(null=True, blank=True, unique=True)
    # Who may see it, fixed at publication from the tier's controls (the request's, or the
    # study's) so the catalog's visibility is read from the release row alone, without joining each
    # release's request and extracting JSON (issue 16: the scientist's catalog page scanned both):
    # `access_level` "" where the tier set none (the audience decides), `discoverable` false where
    # the tier hides the card from the "ask to use" list. `requester` is set for both origins.
    access_level = models.CharField(max_length=16, blank=True, default="")
    discoverable = models.BooleanField(default=True)
    # The model card fixed at publication (sites, rounds and their log, per-site gate, privacy).
    card = models.JSONField(default=dict, blank=True)
    # The site datasets it was trained on: [{"site", "dataset", "dataset_name", "dataset_version",
    # "steward", "training_rows", "epsilon_debited_micro"}].
    sources = models.JSONField(default=list, blank=True)
    team = models.ForeignKey("portal.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    audience = models.CharField(max_length=16)
    title = models.CharField(max_length=200)
    # A table (its file: the synthetic rows as CSV) or a model (its file: the fitted model as
    # skops; its card: catalog.model_cards). `rows` of a model is the training rows it saw.
    kind = models.CharField(max_length=8, choices=ReleaseKind.choices, default=ReleaseKind.TABLE)
    artifact_format = models.CharField(
        max_length=8, choices=ArtifactFormat.choices, default=ArtifactFormat.CSV
    )
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
    # Of the plaintext file a download serves (the CSV, or the .skops model).
    sha256 = models.CharField(max_length=64)
    gate = models.JSONField()
    metrics = models.JSONField()
    receipt = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Withdrawal for an incident (catalog.access.release_withdraw): downloads answer 410 with the
    # reason, which the card shows. The officer's name is kept so the record outlives the account.
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_reason = models.TextField(blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    withdrawn_by_name = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Non-DP synthesizers never carry an epsilon.
            models.CheckConstraint(
                condition=models.Q(is_dp=True) | models.Q(epsilon_micro__isnull=True),
                name="release_epsilon_only_when_dp",
            ),
            # A model is served as skops (or a federated model's .npz), a table as CSV: never the
            # other way round.
            models.CheckConstraint(
                condition=models.Q(kind="table", artifact_format="csv")
                | models.Q(kind="model", artifact_format__in=["skops", "npz"]),
                name="release_kind_matches_format",
            ),
            # A request's release names its request, job and dataset; a study's is a model, with
            # neither request nor job (its site datasets are in `sources`) and with its study's id.
            models.CheckConstraint(
                condition=models.Q(
                    origin="request",
                    request__isnull=False,
                    job__isnull=False,
                    dataset__isnull=False,
                )
                | models.Q(
                    origin="study",
                    request__isnull=True,
                    job__isnull=True,
                    kind="model",
                    origin_ref__isnull=False,
                ),
                name="release_origin_fields",
            ),
            # A released model is always differentially private (the non-private baseline never is
            # released).
            models.CheckConstraint(
                condition=~models.Q(kind="model") | models.Q(is_dp=True, epsilon_micro__isnull=False),
                name="release_model_is_dp",
            ),
        ]
        # The catalog list (catalog.selectors.releases_filter), newest first: alone, within a
        # team (visibility and the team filter), within a dataset, by audience (organization-wide
        # visibility), by state (withdrawn, then expiry), and by kind (tables or models).
        indexes = [
            models.Index(fields=["-created_at"], name="release_created_idx"),
            models.Index(fields=["team", "-created_at"], name="release_team_created_idx"),
            models.Index(fields=["dataset", "-created_at"], name="release_dataset_created_idx"),
            models.Index(fields=["audience", "-created_at"], name="release_audience_created_idx"),
            # By state, and covering what the "ask to use" list reads (catalog.selectors
            # .releases_to_ask_for): SQLite chose this index for `withdrawn_at IS NULL` and then
            # read every release row, 36 KB of metrics each, for the rest (63 ms at 5,000
            # releases; 0.7 ms from the index alone).
            models.Index(
                fields=[
                    "withdrawn_at",
                    "expires_at",
                    "discoverable",
                    "audience",
                    "access_level",
                    "team",
                    "requester",
                    "id",
                ],
                name="release_state_idx",
            ),
            models.Index(fields=["kind", "-created_at"], name="release_kind_created_idx"),
            # Covers a member's visibility condition (catalog.selectors._visible_condition) and what
            # the list's count and filter choices read, so they scan this index, not the release
            # rows with their JSON (issue 16: a scientist's catalog at 5,000 releases).
            models.Index(
                fields=[
                    "audience",
                    "access_level",
                    "team",
                    "requester",
                    "dataset",
                    "discoverable",
                    "withdrawn_at",
                    "expires_at",
                    "created_at",
                    "id",
                ],
                name="release_visibility_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_withdrawn(self) -> bool:
        return self.withdrawn_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def epsilon(self) -> Decimal | None:
        return micro_to_epsilon(self.epsilon_micro)

    @property
    def is_model(self) -> bool:
        return self.kind == ReleaseKind.MODEL

    @property
    def is_from_study(self) -> bool:
        return self.origin == ReleaseOrigin.STUDY

    @staticmethod
    def visibility_fields(controls: dict[str, Any] | None) -> dict[str, Any]:
        """`access_level` and `discoverable` as the tier's controls set them."""
        controls = controls or {}
        level = controls.get("access_level")
        return {
            "access_level": str(level) if level else "",
            "discoverable": controls.get("discoverable") is not False,
        }

    @property
    def tier_controls(self) -> dict[str, Any]:
        """The tier's controls that govern the release (access level, discoverability, who
        decides access, gate thresholds): its request's, or those fixed at publication."""
        if self.request_id is not None and self.request is not None:
            return dict(self.request.tier_controls or {})
        return dict(self.controls or {})

    @property
    def owner_id(self) -> int | None:
        """Who asked for it (sees it whatever its audience): the request's requester or the study's."""
        if self.request_id is not None and self.request is not None:
            return self.request.requester_id
        return self.requester_id


class AccessRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    GRANTED = "granted", "Granted"
    REFUSED = "refused", "Refused"
    REVOKED = "revoked", "Revoked"


class AccessRequest(models.Model):
    """A member outside a release's audience asks to use it, for a purpose, until a date.

    A granted request is the grant: it widens visibility and downloads until `grant_expires_at`
    (or until revoked). The decider's and revoker's names are kept so the record outlives them.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="access_requests")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requester_name = models.CharField(max_length=150)
    purpose = models.TextField()
    requested_expires_at = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=AccessRequestStatus.choices, default=AccessRequestStatus.PENDING
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_name = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    grant_expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by_name = models.CharField(max_length=150, blank=True)
    revoke_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The access-request list, newest first, whole or by status: a page of 25 read from
            # the index's end, not every row sorted (900 rows at 10,000 requests: 2 ms).
            models.Index(fields=["created_at"], name="access_created_idx"),
            models.Index(fields=["status", "created_at"], name="access_status_created_idx"),
        ]
        constraints = [
            # A grant always ends: no open-ended access outside the audience.
            models.CheckConstraint(
                condition=~models.Q(status="granted") | models.Q(grant_expires_at__isnull=False),
                name="access_grant_has_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.requester_name} -> {self.release_id}"
