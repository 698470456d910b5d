from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models

from generation.choices import Classification, ColumnKind, DatasetStatus, JobState

MICRO = 1_000_000
# Delta is kept as exactly as epsilon: integer multiples of 1e-18 ("atto-delta"). A delta of 1e-9
# is 10**9 atto; the largest cap a PositiveBigIntegerField holds is about 9.2.
ATTO = 10**18


def micro_to_epsilon(micro: int | None) -> Decimal | None:
    return None if micro is None else Decimal(micro) / MICRO


def atto_to_delta(atto: int | None) -> Decimal | None:
    return None if atto is None else Decimal(atto) / ATTO


class EntryPurpose(models.TextChoices):
    SYNTHESIS = "synthesis", "Synthesis job"
    DOMAIN_ESTIMATE = "domain_estimate", "DP domain estimate"
    FEDERATED_STUDY = "federated_study", "Federated study"


class SourceDataset(models.Model):
    """A registered source table that may hold PHI.

    The file lives under SYNTHGATE_STORAGE_DIR (never a served path); only workers and the
    intake service read it. Budgets are integer micro-epsilon so arithmetic is exact, and the
    database refuses any state where more was spent than the cap allows.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    status = models.CharField(
        max_length=16, choices=DatasetStatus.choices, default=DatasetStatus.PENDING_REVIEW
    )
    rows = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the uploaded file's bytes.")
    size_bytes = models.PositiveBigIntegerField()
    file_format = models.CharField(max_length=16, default="csv")
    encoding = models.CharField(max_length=32, blank=True)
    delimiter = models.CharField(max_length=4, blank=True)
    # Holdout custody: the split is fixed at registration. Generators read only `storage_path`
    # (the training rows); validation alone reads `holdout_path` as the non-member reference.
    storage_path = models.CharField(max_length=255, help_text="Encrypted training split.")
    holdout_path = models.CharField(max_length=255, blank=True, help_text="Encrypted holdout split.")
    training_rows = models.PositiveIntegerField(default=0)
    holdout_rows = models.PositiveIntegerField(default=0)
    holdout_share = models.FloatField(default=0.2)
    holdout_seed = models.PositiveBigIntegerField(default=0)
    # Re-identification estimate: share of rows unique on the quasi-identifier combination.
    reidentification_risk = models.FloatField(null=True, blank=True)
    risk_columns = models.JSONField(default=list, blank=True)
    small_cell_count = models.PositiveIntegerField(default=0)
    classification_version = models.PositiveIntegerField(
        default=0, help_text="Number of the latest signed-off classification (0: never signed off)."
    )
    epsilon_cap_micro = models.PositiveBigIntegerField()
    epsilon_spent_micro = models.PositiveBigIntegerField(default=0)
    # (epsilon, delta) accounting, basic composition: deltas add up like epsilons.
    delta_cap_atto = models.PositiveBigIntegerField(default=10**12, help_text="Delta cap in 1e-18 units.")
    delta_spent_atto = models.PositiveBigIntegerField(default=0)
    # The privacy unit. A steward-declared column identifying the person (patient id); DP jobs bound
    # each entity's rows and state the guarantee per entity. Empty: the unit is one record.
    entity_column = models.CharField(max_length=255, blank=True)
    # The budget belongs to the population, not the file: a new version of a source spends from its
    # first version's ledger (`population`), unless the steward declared, with a written reason,
    # that it holds a disjoint population (then `population` is empty and the reason recorded).
    population = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="later_versions"
    )
    population_reason = models.TextField(blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(epsilon_spent_micro__lte=models.F("epsilon_cap_micro")),
                name="dataset_budget_never_overspent",
            ),
            models.CheckConstraint(condition=models.Q(epsilon_cap_micro__gt=0), name="dataset_cap_positive"),
            models.CheckConstraint(
                condition=models.Q(delta_spent_atto__lte=models.F("delta_cap_atto")),
                name="dataset_delta_never_overspent",
            ),
            models.UniqueConstraint(fields=["name", "version"], name="dataset_name_version_unique"),
        ]
        # The list's filters and order (generation.selectors.datasets_filter): scientists see ready
        # datasets by name; the date filters read a range of created_at. (name, version) is
        # indexed by the unique constraint above.
        indexes = [
            models.Index(fields=["status", "name"], name="dataset_status_name_idx"),
            models.Index(fields=["created_at"], name="dataset_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def epsilon_cap(self) -> Decimal:
        return Decimal(self.epsilon_cap_micro) / MICRO

    @property
    def epsilon_spent(self) -> Decimal:
        return Decimal(self.epsilon_spent_micro) / MICRO

    @property
    def epsilon_remaining(self) -> Decimal:
        return Decimal(self.epsilon_cap_micro - self.epsilon_spent_micro) / MICRO

    @property
    def ledger_owner_id(self) -> Any:
        """The dataset whose budget this version spends (its population's first version)."""
        return self.population_id or self.pk


class DatasetColumn(models.Model):
    """One column's profile and classification. Stats are aggregates, never row values."""

    dataset = models.ForeignKey(SourceDataset, on_delete=models.CASCADE, related_name="columns")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=ColumnKind.choices)
    classification = models.CharField(max_length=24, choices=Classification.choices)
    suggested_classification = models.CharField(max_length=24, choices=Classification.choices, blank=True)
    suggestion_reason = models.CharField(max_length=200, blank=True)
    missing_rate = models.FloatField()
    distinct = models.PositiveIntegerField()
    # Aggregates for custodians (min/max, top categories with counts >= k, suppressed histograms).
    stats = models.JSONField(default=dict, blank=True)
    # Public metadata the steward declares: {"lower", "upper", "categories", "unit"}. DP
    # synthesis uses these, never values read from the data at job time.
    declared = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["dataset", "position"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="column_name_unique_per_dataset"),
        ]

    def __str__(self) -> str:
        return self.name


class LedgerKind(models.TextChoices):
    RESERVE = "reserve", "Reserved"
    REFUND = "refund", "Refunded"


class BudgetLedgerEntry(models.Model):
    """One append-only movement of a dataset's epsilon budget, in integer micro-epsilon.

    A reservation is written in the same transaction as the conditional UPDATE that raised the
    dataset's `epsilon_spent_micro`; a refund only for a job that failed before reading data.
    Each job has at most one reservation and one refund (database-enforced).
    """

    # The ledger owner (see SourceDataset.population); `source` is the version whose data was read.
    dataset = models.ForeignKey(SourceDataset, on_delete=models.PROTECT, related_name="ledger")
    source = models.ForeignKey(
        SourceDataset, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_reads"
    )
    job = models.ForeignKey(
        "SynthesisJob", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger"
    )
    purpose = models.CharField(max_length=24, choices=EntryPurpose.choices, default=EntryPurpose.SYNTHESIS)
    kind = models.CharField(max_length=8, choices=LedgerKind.choices)
    amount_micro = models.PositiveBigIntegerField()
    spent_after_micro = models.PositiveBigIntegerField()
    delta_atto = models.PositiveBigIntegerField(default=0)
    delta_spent_after_atto = models.PositiveBigIntegerField(default=0)
    # How this entry composes with the others: "basic" (epsilons and deltas add up).
    composition = models.CharField(max_length=24, default="basic")
    actor_name = models.CharField(max_length=150)
    reason = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "kind"], name="ledger_one_entry_per_job_and_kind"),
            models.CheckConstraint(condition=models.Q(amount_micro__gt=0), name="ledger_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(job__isnull=False) | ~models.Q(purpose=EntryPurpose.SYNTHESIS),
                name="ledger_synthesis_entry_has_job",
            ),
        ]
        # One ledger in time order, a page at a time (GET /api/v1/datasets/{id}/budget/entries/).
        indexes = [models.Index(fields=["dataset", "at", "id"], name="ledger_dataset_at_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_micro} micro-epsilon on {self.dataset_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise RuntimeError("Ledger entries are append-only.")
        super().save(*args, **kwargs)

    @property
    def amount(self) -> Decimal:
        return Decimal(self.amount_micro) / MICRO

    @property
    def spent_after(self) -> Decimal:
        return Decimal(self.spent_after_micro) / MICRO

    @property
    def delta(self) -> Decimal:
        return Decimal(self.delta_atto) / ATTO


class ClassificationVersion(models.Model):
    """A signed-off snapshot of every column's classification and declared metadata."""

    dataset = models.ForeignKey(
        SourceDataset, on_delete=models.CASCADE, related_name="classification_versions"
    )
    number = models.PositiveIntegerField()
    columns = models.JSONField()
    signed_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    signed_off_name = models.CharField(max_length=150)
    signed_off_at = models.DateTimeField(auto_now_add=True)
    reidentification_risk = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="classification_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset} classification v{self.number}"


class SynthesisJob(models.Model):
    """One attempt to synthesize and validate a release for an approved request (or, for an
    `external_upload` request, to validate a synthetic file the requester uploaded).

    The row, not the broker, is the truth: a worker claims it with a conditional UPDATE and a
    lease, and only a job not yet final may be finalized.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    dataset = models.ForeignKey(SourceDataset, on_delete=models.PROTECT, related_name="jobs")
    columns = models.JSONField()
    # The signed-off column specs this job was approved against (classification + declared).
    metadata = models.JSONField(default=list, blank=True)
    classification_version = models.PositiveIntegerField(default=0)
    synthesizer = models.CharField(max_length=40)
    rows = models.PositiveIntegerField()
    epsilon_micro = models.PositiveBigIntegerField(null=True, blank=True)
    delta_atto = models.PositiveBigIntegerField(null=True, blank=True)
    # Pinned from the dataset at creation: the privacy unit of a DP job ("" = one record).
    entity_column = models.CharField(max_length=255, blank=True)
    # The DP statistics the mechanisms released (noisy marginals, correlations, fitted model),
    # saved encrypted as soon as they exist: a retried job resamples from them and never reads
    # the data again under the same debit.
    dp_state_path = models.CharField(max_length=255, blank=True)
    dp_state_sha256 = models.CharField(max_length=64, blank=True)
    seed = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    progress = models.FloatField(default=0.0)
    stage = models.CharField(max_length=80, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    worker = models.CharField(max_length=120, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    data_accessed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    # An uploaded synthetic file (external_upload jobs): encrypted until the worker validates it.
    upload_path = models.CharField(max_length=255, blank=True)
    output_path = models.CharField(max_length=255, blank=True)
    output_sha256 = models.CharField(max_length=64, blank=True)
    receipt = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(progress__gte=0.0) & models.Q(progress__lte=1.0),
                name="job_progress_in_unit_interval",
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.id} ({self.state})"

    @property
    def epsilon(self) -> Decimal | None:
        return micro_to_epsilon(self.epsilon_micro)

    @property
    def delta(self) -> Decimal | None:
        return atto_to_delta(self.delta_atto)
