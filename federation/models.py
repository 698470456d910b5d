"""Tables of federated studies. Budgets are integer micro-epsilon and atto-delta, as in generation."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models

from generation.models import ATTO, MICRO, BudgetLedgerEntry, SourceDataset


class StudyStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Awaiting approval"
    APPROVED = "approved", "Approved, queued"
    REJECTED = "rejected", "Rejected"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STUDY_STATES = (StudyStatus.REJECTED, StudyStatus.COMPLETED, StudyStatus.FAILED, StudyStatus.CANCELLED)


class ModelFamily(models.TextChoices):
    LOGISTIC_REGRESSION = "logistic_regression", "Logistic regression"


class DropoutPolicy(models.TextChoices):
    # A site that misses a round is left out of it, as long as min_sites answered.
    QUORUM = "quorum", "Continue without it (at least the minimum of sites)"
    # Any missing site stops the study.
    FAIL = "fail", "Stop the study"


class SiteDecision(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REFUSED = "refused", "Refused"


class Site(models.Model):
    """A participating institution: one source dataset, registered and answered for by its own
    steward. The site's node (a Flower SuperNode) reads only this dataset's encrypted splits."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=80, unique=True)
    dataset = models.ForeignKey(SourceDataset, on_delete=models.PROTECT, related_name="federation_sites")
    steward = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    steward_name = models.CharField(max_length=150)
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Study(models.Model):
    """A federated training request: sites, features, target, model, rounds and client-level DP.

    The privacy unit of the run is a site (client-level DP): the guarantee covers adding or removing
    one site's whole contribution. Each site's ledger composes releases whose unit is one record, so
    the ledger figures here are PER RECORD: the epsilon the same run implies for adding or removing
    one record (its site's clipped update moves by up to twice the clipping norm:
    `federation.runtime.accounting.record_level_epsilon`), which is larger than the per-site one.
    `epsilon_micro`/`delta_atto` is what each site's ledger reserves at approval (the per-record
    figure for every round run with every site); each site is debited the per-record figure of the
    rounds that ran at the end (`epsilon_spent_micro`), the rest refunded. `epsilon_per_site_micro`
    is the accountant's per-site figure, stated beside it and never debited.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requester_name = models.CharField(max_length=150)
    team = models.ForeignKey("portal.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=200)
    purpose = models.TextField()
    features = models.JSONField()
    target = models.CharField(max_length=255)
    model_family = models.CharField(
        max_length=32, choices=ModelFamily.choices, default=ModelFamily.LOGISTIC_REGRESSION
    )
    rounds = models.PositiveSmallIntegerField()
    min_sites = models.PositiveSmallIntegerField()
    local_epochs = models.PositiveSmallIntegerField(default=1)
    learning_rate = models.FloatField(default=0.1)
    clipping_norm = models.FloatField()
    noise_multiplier = models.FloatField()
    secure_aggregation = models.BooleanField(default=False)
    dropout_policy = models.CharField(
        max_length=16, choices=DropoutPolicy.choices, default=DropoutPolicy.QUORUM
    )
    # Reserved from each site's ledger at approval, per record (null: no client-level DP, noise 0).
    epsilon_micro = models.PositiveBigIntegerField(null=True, blank=True)
    delta_atto = models.PositiveBigIntegerField(null=True, blank=True)
    seed = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=StudyStatus.choices, default=StudyStatus.DRAFT)
    # Tiering (approvals.policies.engine.evaluate), recorded at submission.
    tier_level = models.CharField(max_length=16, blank=True)
    tier_reasons = models.JSONField(default=list, blank=True)
    tier_controls = models.JSONField(default=dict, blank=True)
    policy_version = models.PositiveIntegerField(null=True, blank=True)
    # The run: claimed with one conditional UPDATE and a lease, like a synthesis job.
    progress = models.FloatField(default=0.0)
    stage = models.CharField(max_length=80, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=120, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    rounds_completed = models.PositiveSmallIntegerField(default=0)
    # Debited from each site's ledger at the end: the per-record epsilon of the rounds that ran (never
    # below the runtime's figure, never above the reservation), a micro-epsilon rounded up.
    epsilon_spent_micro = models.PositiveBigIntegerField(null=True, blank=True)
    # The accountant's per-site epsilon at the end (add or remove one site): stated, not debited.
    epsilon_per_site_micro = models.PositiveBigIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    model_path = models.CharField(max_length=255, blank=True)
    model_sha256 = models.CharField(max_length=64, blank=True)
    model_card = models.JSONField(default=dict, blank=True)
    # The catalog release of the model (federation.services.study_finish publishes it when the run
    # completed with client-level DP and every site's gate passed): the catalog's visibility, access
    # requests, expiry, withdrawal and audited downloads apply to it.
    release = models.OneToOneField(
        "catalog.Release", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(progress__gte=0.0) & models.Q(progress__lte=1.0),
                name="study_progress_in_unit_interval",
            ),
            models.CheckConstraint(condition=models.Q(min_sites__gte=2), name="study_min_sites_at_least_two"),
            models.CheckConstraint(condition=models.Q(rounds__gte=1), name="study_rounds_positive"),
            models.CheckConstraint(
                condition=models.Q(epsilon_spent_micro__isnull=True)
                | models.Q(epsilon_micro__isnull=False, epsilon_spent_micro__lte=models.F("epsilon_micro")),
                name="study_spent_never_above_reserved",
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="study_status_created_idx")]

    def __str__(self) -> str:
        return self.title

    @property
    def client_dp(self) -> bool:
        return self.noise_multiplier > 0

    @property
    def epsilon(self) -> Decimal | None:
        return None if self.epsilon_micro is None else Decimal(self.epsilon_micro) / MICRO

    @property
    def epsilon_spent(self) -> Decimal | None:
        return None if self.epsilon_spent_micro is None else Decimal(self.epsilon_spent_micro) / MICRO

    @property
    def epsilon_per_site(self) -> Decimal | None:
        return None if self.epsilon_per_site_micro is None else Decimal(self.epsilon_per_site_micro) / MICRO

    @property
    def delta(self) -> Decimal | None:
        return None if self.delta_atto is None else Decimal(self.delta_atto) / ATTO

    @property
    def columns(self) -> list[str]:
        return [*self.features, self.target]


class StudySite(models.Model):
    """One site in one study: the dataset version pinned at filing, the hash of its declared specs
    of the study's columns, its steward's decision, its ledger entries and its gate result."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="sites")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="studies")
    dataset = models.ForeignKey(SourceDataset, on_delete=models.PROTECT, related_name="+")
    declared = models.JSONField()
    schema_hash = models.CharField(max_length=64)
    training_rows = models.PositiveIntegerField(default=0)
    decision = models.CharField(max_length=16, choices=SiteDecision.choices, default=SiteDecision.PENDING)
    reserve_entry = models.OneToOneField(
        BudgetLedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    refund_entry = models.OneToOneField(
        BudgetLedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    spent_micro = models.PositiveBigIntegerField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    health = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    gate_passed = models.BooleanField(null=True, blank=True)
    gate_checks = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["study", "site__name"]
        constraints = [
            models.UniqueConstraint(fields=["study", "site"], name="study_site_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.site} in {self.study_id}"


class StudyDecision(models.Model):
    """One approval or refusal: a privacy officer's (site empty) or a site steward's (for its site)."""

    class Capacity(models.TextChoices):
        OFFICER = "officer", "Privacy officer"
        STEWARD = "steward", "Site steward"

    class Kind(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Refuse"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="decisions")
    site = models.ForeignKey(StudySite, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewer_name = models.CharField(max_length=150)
    reviewer_role = models.CharField(max_length=32)
    capacity = models.CharField(max_length=16, choices=Capacity.choices)
    decision = models.CharField(max_length=16, choices=Kind.choices)
    comment = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "reviewer", "capacity", "site"], name="study_decision_once_per_capacity"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer_name} {self.decision} {self.study_id}"


class StudyRound(models.Model):
    """What one round did, as the server saw it: never a site's data, only aggregates."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="round_log")
    number = models.PositiveSmallIntegerField()
    sites = models.JSONField(default=list)
    excluded = models.JSONField(default=list)
    norm_summary = models.JSONField(default=dict)
    clipped_fraction = models.FloatField(null=True, blank=True)
    # Epsilon so far, per record (the ledger's unit: record_level_epsilon over the rounds so far,
    # never below the runtime's figure), and the accountant's per-site figure as it reported it.
    epsilon_micro = models.PositiveBigIntegerField(null=True, blank=True)
    epsilon_per_site_micro = models.PositiveBigIntegerField(null=True, blank=True)
    model_sha256 = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "number"]
        constraints = [models.UniqueConstraint(fields=["study", "number"], name="study_round_unique")]

    def __str__(self) -> str:
        return f"round {self.number} of {self.study_id}"

    @property
    def epsilon(self) -> Decimal | None:
        return None if self.epsilon_micro is None else Decimal(self.epsilon_micro) / MICRO

    @property
    def epsilon_per_site(self) -> Decimal | None:
        return None if self.epsilon_per_site_micro is None else Decimal(self.epsilon_per_site_micro) / MICRO
