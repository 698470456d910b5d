from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models

from approvals.choices import (
    AttemptSource,
    Audience,
    DecisionKind,
    Fidelity,
    OverrideStatus,
    PurposeCategory,
    RequestKind,
    RequestStatus,
    RetryStatus,
    TierLevel,
)
from core.roles import Role
from generation.models import atto_to_delta, micro_to_epsilon


class PolicyVersion(models.Model):
    """One version of the risk-tiering rules (YAML text).

    A version is first `proposed` (by an admin or a privacy officer; no number yet) and becomes
    `published` only when a privacy officer who is not its author approves it after reading its
    diff against `base_number`; publishing assigns the next number. The active version is the
    highest published number. A rejected proposal keeps its text and the reason; one left behind
    by another publication is `superseded`. Versions are never edited, and every tier decision
    points at the published version that made it.
    """

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Waiting for a privacy officer"
        PUBLISHED = "published", "Published"
        REJECTED = "rejected", "Rejected"
        SUPERSEDED = "superseded", "Superseded by another version"

    number = models.PositiveIntegerField(unique=True, null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PUBLISHED)
    source = models.TextField(help_text="The rule set as published (YAML).")
    sha256 = models.CharField(max_length=64)
    notes = models.TextField(blank=True)
    # The author, who proposed this text (named "published" from before proposals existed).
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_by_name = models.CharField(max_length=150)
    published_at = models.DateTimeField(auto_now_add=True, help_text="When the text was proposed.")
    base_number = models.PositiveIntegerField(
        null=True, blank=True, help_text="The published version the author diffed against."
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by_name = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.CheckConstraint(condition=models.Q(number__gte=1), name="policy_number_positive"),
            # Only a published version has a number, and every published version has one.
            models.CheckConstraint(
                condition=models.Q(status="published", number__isnull=False)
                | (models.Q(number__isnull=True) & ~models.Q(status="published")),
                name="policy_number_iff_published",
            ),
            # Two people: whoever approves a version did not write it.
            models.CheckConstraint(
                condition=~models.Q(approved_by=models.F("published_by")), name="policy_approver_not_author"
            ),
        ]

    def __str__(self) -> str:
        return f"policy v{self.number}" if self.number else f"policy proposal #{self.pk}"


class GenerationRequest(models.Model):
    """A data scientist's request for a synthetic release, and where it is in its life.

    The tier fields are a snapshot of the policy's decision at the latest submission (with the
    policy version); each submission's decision is also kept in TierAssessment, so later policy
    changes never rewrite past decisions.
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
    purpose_category = models.CharField(
        max_length=24, choices=PurposeCategory.choices, default=PurposeCategory.RESEARCH
    )
    intended_use = models.TextField()
    # What is asked for: a synthetic table (the default), a DP model or a federated study. Set when
    # filed and never changed (approvals.services.requests refuses an edit that changes it).
    kind = models.CharField(max_length=20, choices=RequestKind.choices, default=RequestKind.SYNTHETIC_TABLE)
    # A dp_model request's outcome column (the dataset's declared outcome); "" for a synthetic
    # table. Its features are `columns` (without the target) and its model family `synthesizer`.
    target = models.CharField(max_length=255, blank=True)
    audience = models.CharField(max_length=16, choices=Audience.choices)
    fidelity = models.CharField(max_length=8, choices=Fidelity.choices, default=Fidelity.MEDIUM)
    columns = models.JSONField()
    synthesizer = models.CharField(max_length=40)
    rows = models.PositiveIntegerField()
    epsilon_micro = models.PositiveBigIntegerField(null=True, blank=True)
    # For (epsilon, delta)-DP synthesizers (dp_mst, dp_aim): the delta asked for, in 1e-18 units.
    delta_atto = models.PositiveBigIntegerField(null=True, blank=True)
    # A bake-off: [{synthesizer, epsilon_micro, delta_atto, options}], each fitted and validated,
    # one published. Empty for a single-synthesizer request. For a bake-off, `synthesizer` is
    # BAKEOFF and epsilon_micro/delta_atto are the sums over the DP candidates (what approval
    # reserves from the ledger).
    candidates = models.JSONField(default=list, blank=True)
    # A single-synthesizer request's options (epochs, batch_size, distribution, ...), validated by
    # the synthesizer's own parser when filed; the tier's time budget is added when the job is queued.
    options = models.JSONField(default=dict, blank=True)
    # The candidates are the policy's default set ("auto"), not the requester's choice.
    candidates_auto = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=RequestStatus.choices, default=RequestStatus.DRAFT)
    review_round = models.PositiveIntegerField(default=0)
    tier_level = models.CharField(max_length=12, choices=TierLevel.choices, blank=True)
    tier_reasons = models.JSONField(default=list, blank=True)
    required_approvals = models.PositiveSmallIntegerField(default=0)
    tier_controls = models.JSONField(default=dict, blank=True)
    policy_version = models.CharField(max_length=40, blank=True)
    policy = models.ForeignKey(
        PolicyVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # "Approved subject to conditions": the approvers' conditions, shown on the release.
    conditions = models.TextField(blank=True)
    job = models.OneToOneField(
        "generation.SynthesisJob", null=True, blank=True, on_delete=models.PROTECT, related_name="request"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # Cycle time runs from the first submission to the reviewers' final decision.
    first_submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "submitted_at"]),
            # The request lists (approvals.selectors.requests_filtered): newest first, alone or
            # within one status, tier, dataset or team, so a year of requests pages by index.
            models.Index(fields=["created_at"], name="request_created_idx"),
            models.Index(fields=["status", "created_at"], name="request_status_created_idx"),
            models.Index(fields=["tier_level", "created_at"], name="request_tier_created_idx"),
            models.Index(fields=["dataset", "created_at"], name="request_dataset_created_idx"),
            models.Index(fields=["team", "created_at"], name="request_team_created_idx"),
            models.Index(fields=["kind", "created_at"], name="request_kind_created_idx"),
            # Cover who may see a request (approvals.selectors.requests_visible_to: "mine, or not a
            # draft", "mine, or my team's and not a draft"), so a list's count and its page of keys
            # read these indexes, not the request rows with their JSON. At 10,000 requests the
            # officer's count was a 4.3 ms table scan (0.5 ms here), the scientist's count and keys
            # 2-3 ms each of row reads (0.3-0.5 ms); the review queue's count 2.6 -> 0.2 ms.
            models.Index(fields=["status", "requester", "team"], name="request_visibility_idx"),
            models.Index(fields=["requester", "status", "team", "created_at", "id"], name="request_mine_idx"),
            models.Index(
                fields=["team", "status", "requester", "created_at", "id"], name="request_team_seen_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def epsilon(self) -> Decimal | None:
        return micro_to_epsilon(self.epsilon_micro)

    @property
    def delta(self) -> Decimal | None:
        return atto_to_delta(self.delta_atto)


class TierAssessment(models.Model):
    """The policy's decision on one submission: tier, the rules that fired, the controls, and the
    facts it saw (counts and column names only, never data values). Never updated."""

    request = models.ForeignKey(GenerationRequest, on_delete=models.CASCADE, related_name="assessments")
    review_round = models.PositiveIntegerField()
    policy = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="assessments")
    level = models.CharField(max_length=12, choices=TierLevel.choices)
    fired = models.JSONField(help_text="[{id, tier, message}] in rule order.")
    controls = models.JSONField()
    facts = models.JSONField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["request", "review_round"]
        constraints = [
            models.UniqueConstraint(fields=["request", "review_round"], name="one_assessment_per_round"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} round {self.review_round}: {self.level}"


class Decision(models.Model):
    """A reviewer's decision in one review round. The reviewer's name, role and team at the time
    are kept with it, so quorum and evidence outlive account and team changes."""

    request = models.ForeignKey(GenerationRequest, on_delete=models.CASCADE, related_name="decisions")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewer_name = models.CharField(max_length=150)
    reviewer_role = models.CharField(max_length=32, blank=True)
    reviewer_team = models.ForeignKey(
        "portal.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    review_round = models.PositiveIntegerField()
    decision = models.CharField(max_length=20, choices=DecisionKind.choices)
    comment = models.TextField(blank=True)
    conditions = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "reviewer", "review_round"], name="one_decision_per_reviewer_per_round"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer_name}: {self.decision}"

    @property
    def reviewer_role_label(self) -> str:
        return Role(self.reviewer_role).label if self.reviewer_role in Role.values else self.reviewer_role


class GenerationAttempt(models.Model):
    """One generation attempt of an approved request: a synthesis job, or the validation job of a
    synthetic file the requester uploaded. Numbered from 1; the policy's
    `max_generation_attempts` caps the number (checked under a lock on the request row), and
    each attempt's job reserves its own epsilon. The request's `job` is its latest attempt."""

    request = models.ForeignKey(GenerationRequest, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    job = models.OneToOneField("generation.SynthesisJob", on_delete=models.PROTECT, related_name="attempt")
    source = models.CharField(max_length=12, choices=AttemptSource.choices)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_by_name = models.CharField(max_length=150)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["request", "number"]
        constraints = [
            models.UniqueConstraint(fields=["request", "number"], name="attempt_number_unique_per_request"),
            models.CheckConstraint(condition=models.Q(number__gte=1), name="attempt_number_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} attempt {self.number}"


class GateOverride(models.Model):
    """A privacy officer's proposal to publish a job that failed the release gate, with a written
    justification, and the second approver's decision. Two different privacy officers, neither of
    them the requester (enforced in approvals.services.overrides); both are audited. Names are
    kept beside the foreign keys so the evidence outlives the accounts."""

    request = models.ForeignKey(GenerationRequest, on_delete=models.CASCADE, related_name="gate_overrides")
    job = models.ForeignKey(
        "generation.SynthesisJob", on_delete=models.PROTECT, related_name="gate_overrides"
    )
    status = models.CharField(max_length=10, choices=OverrideStatus.choices, default=OverrideStatus.PENDING)
    justification = models.TextField()
    failed_checks = models.JSONField(default=list, help_text="Names of the checks that failed.")
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    proposed_by_name = models.CharField(max_length=150)
    proposed_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_name = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)

    class Meta:
        ordering = ["proposed_at", "pk"]
        # The review queue's "to decide" list (pending ones, oldest first): without it SQLite
        # listed every visible request's id to probe overrides by request (12 ms at 10,000).
        indexes = [models.Index(fields=["status", "proposed_at"], name="override_status_idx")]
        constraints = [
            # One open proposal per job; and one approved override per job at most.
            models.UniqueConstraint(
                fields=["job"],
                condition=models.Q(status__in=["pending", "approved"]),
                name="one_open_or_approved_override_per_job",
            ),
            # The second approver is never the proposer (the service also refuses the requester).
            models.CheckConstraint(
                condition=models.Q(decided_by__isnull=True) | ~models.Q(decided_by=models.F("proposed_by")),
                name="override_decider_is_not_proposer",
            ),
        ]

    def __str__(self) -> str:
        return f"gate override of {self.job_id} ({self.status})"


class CandidateRun(models.Model):
    """One candidate of a bake-off attempt: its own synthesis job (its own ledger reservation for
    a DP candidate), whether it was recommended and whether it was chosen for publication. Rows
    are kept after the choice, so the rejected candidates stay in the lineage."""

    attempt = models.ForeignKey(GenerationAttempt, on_delete=models.CASCADE, related_name="candidates")
    index = models.PositiveSmallIntegerField()
    job = models.OneToOneField(
        "generation.SynthesisJob", on_delete=models.PROTECT, related_name="candidate_run"
    )
    synthesizer = models.CharField(max_length=40)
    epsilon_micro = models.PositiveBigIntegerField(null=True, blank=True)
    options = models.JSONField(default=dict, blank=True)
    recommended = models.BooleanField(default=False)
    chosen = models.BooleanField(default=False)

    class Meta:
        ordering = ["attempt", "index"]
        constraints = [
            models.UniqueConstraint(fields=["attempt", "index"], name="candidate_index_unique_per_attempt"),
            models.UniqueConstraint(
                fields=["attempt"], condition=models.Q(chosen=True), name="one_chosen_candidate_per_attempt"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.attempt} candidate {self.index} ({self.synthesizer})"

    @property
    def epsilon(self) -> Decimal | None:
        return micro_to_epsilon(self.epsilon_micro)


class PrivacyRetry(models.Model):
    """A new attempt after a failed privacy check: the requester may only ask for it; a privacy
    officer (never the requester) approves it with a comment, which queues the attempt and
    reserves its epsilon, or refuses it. Names are kept beside the foreign keys."""

    request = models.ForeignKey(GenerationRequest, on_delete=models.CASCADE, related_name="privacy_retries")
    failed_job = models.ForeignKey("generation.SynthesisJob", on_delete=models.PROTECT, related_name="+")
    failed_checks = models.JSONField(default=list, help_text="Names of the privacy checks that failed.")
    # What the retry reserves from the ledger (null: nothing, a non-DP request).
    epsilon_micro = models.PositiveBigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=RetryStatus.choices, default=RetryStatus.PENDING)
    asked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    asked_by_name = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)
    asked_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_name = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    retry_job = models.ForeignKey(
        "generation.SynthesisJob", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["asked_at", "pk"]
        # As GateOverride's: the review queue's pending retries, oldest first (12 ms at 10,000).
        indexes = [models.Index(fields=["status", "asked_at"], name="retry_status_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["failed_job"],
                condition=models.Q(status__in=["pending", "approved"]),
                name="one_open_or_approved_retry_per_failed_job",
            ),
            models.CheckConstraint(
                condition=models.Q(decided_by__isnull=True)
                | models.Q(asked_by__isnull=True)
                | ~models.Q(decided_by=models.F("asked_by")),
                name="retry_decider_is_not_asker",
            ),
        ]

    def __str__(self) -> str:
        return f"privacy retry of {self.failed_job_id} ({self.status})"

    @property
    def epsilon(self) -> Decimal | None:
        return micro_to_epsilon(self.epsilon_micro)
