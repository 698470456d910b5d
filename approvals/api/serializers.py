from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from approvals.choices import Audience, DecisionKind, Fidelity, PurposeCategory, RequestStatus
from approvals.dp import budget_check
from approvals.models import Decision, GateOverride, GenerationAttempt, GenerationRequest, PrivacyRetry
from approvals.quorum import request_quorum
from approvals.selectors import latest_privacy_failures, request_actions_for
from approvals.services import attempts_allowed
from generation.models import atto_to_delta, micro_to_epsilon


class DecisionOutputSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer_name")
    at = serializers.DateTimeField()

    class Meta:
        model = Decision
        fields = ["reviewer", "decision", "comment", "at", "review_round", "conditions", "reviewer_role"]


class TierOutputSerializer(serializers.Serializer):
    level = serializers.CharField(source="tier_level")
    reasons = serializers.ListField(child=serializers.CharField(), source="tier_reasons")
    required_approvals = serializers.IntegerField()
    policy_version = serializers.CharField()
    controls = serializers.DictField(source="tier_controls")


class QuorumOutputSerializer(serializers.Serializer):
    approvals = serializers.IntegerField()
    needed = serializers.IntegerField()
    satisfied = serializers.BooleanField()
    missing = serializers.ListField(child=serializers.CharField())


class JobOutputSerializer(serializers.Serializer):
    state = serializers.CharField()
    progress = serializers.FloatField()
    attempts = serializers.IntegerField()
    stage = serializers.CharField()


class AttemptOutputSerializer(serializers.ModelSerializer):
    state = serializers.CharField(source="job.state")
    started_by = serializers.CharField(source="started_by_name")
    gate_passed = serializers.SerializerMethodField()

    class Meta:
        model = GenerationAttempt
        fields = ["number", "source", "state", "gate_passed", "started_by", "at"]

    def get_gate_passed(self, obj: GenerationAttempt) -> bool | None:
        """The gate's verdict on this attempt; null while (or when never) validated."""
        report = getattr(obj.job, "validation", None)
        return None if report is None else bool(report.passed)


class AttemptReportOutputSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    # Bake-off attempts: one entry per candidate, with its own gate and metrics; null otherwise.
    candidates = serializers.JSONField(allow_null=True, required=False)
    source = serializers.CharField()
    state = serializers.CharField()
    gate_passed = serializers.BooleanField(allow_null=True)
    started_by = serializers.CharField()
    at = serializers.DateTimeField()
    job = serializers.UUIDField()
    gate = serializers.JSONField(allow_null=True)
    metrics = serializers.JSONField(allow_null=True)


class GateOverrideOutputSerializer(serializers.ModelSerializer):
    proposed_by = serializers.CharField(source="proposed_by_name")
    decided_by = serializers.CharField(source="decided_by_name")
    job = serializers.UUIDField(source="job_id")

    class Meta:
        model = GateOverride
        fields = [
            "id",
            "job",
            "status",
            "justification",
            "failed_checks",
            "proposed_by",
            "proposed_at",
            "decided_by",
            "decided_at",
            "decision_comment",
        ]


class PrivacyRetryOutputSerializer(serializers.ModelSerializer):
    failed_job = serializers.UUIDField(source="failed_job_id")
    retry_job = serializers.UUIDField(source="retry_job_id", allow_null=True)
    asked_by = serializers.CharField(source="asked_by_name")
    decided_by = serializers.CharField(source="decided_by_name")
    epsilon = serializers.DecimalField(
        max_digits=12, decimal_places=6, coerce_to_string=False, allow_null=True
    )

    class Meta:
        model = PrivacyRetry
        fields = [
            "id",
            "status",
            "failed_job",
            "failed_checks",
            "epsilon",
            "asked_by",
            "reason",
            "asked_at",
            "decided_by",
            "decided_at",
            "decision_comment",
            "retry_job",
        ]


class RetryAskInputSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class RetryDecisionInputSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=[("approve", "Approve"), ("refuse", "Refuse")])
    comment = serializers.CharField(allow_blank=True, max_length=5000)


class ActionOutputSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    # Why not, in words the caller can act on ("" when allowed).
    reason = serializers.CharField(allow_blank=True)


class ActionsOutputSerializer(serializers.Serializer):
    can_edit = ActionOutputSerializer()
    can_submit = ActionOutputSerializer()
    can_withdraw = ActionOutputSerializer()
    can_stop_job = ActionOutputSerializer()
    can_decide = ActionOutputSerializer()
    can_regenerate = ActionOutputSerializer()
    can_upload = ActionOutputSerializer()
    can_ask_retry = ActionOutputSerializer()
    can_decide_retry = ActionOutputSerializer()
    can_propose_override = ActionOutputSerializer()
    can_decide_override = ActionOutputSerializer()
    can_choose_candidate = ActionOutputSerializer()


# Before approval reserves the budget, the comparison with what is left is news to the requester.
_BUDGET_STATUSES = (RequestStatus.DRAFT, RequestStatus.CHANGES_REQUESTED, RequestStatus.IN_REVIEW)


class RequestOutputSerializer(serializers.ModelSerializer):
    requester = serializers.CharField(source="requester.username")
    dataset = serializers.UUIDField(source="dataset_id")
    epsilon = serializers.DecimalField(
        max_digits=12, decimal_places=6, coerce_to_string=False, allow_null=True
    )
    # (epsilon, delta) synthesizers only (dp_mst, dp_aim); null for pure epsilon-DP and non-DP.
    delta = serializers.DecimalField(
        max_digits=19, decimal_places=18, coerce_to_string=False, allow_null=True
    )
    budget = serializers.SerializerMethodField()
    tier = serializers.SerializerMethodField()
    decisions = DecisionOutputSerializer(many=True)
    job = serializers.SerializerMethodField()
    release = serializers.SerializerMethodField()
    is_dp = serializers.SerializerMethodField()
    quorum = serializers.SerializerMethodField()
    attempts = AttemptOutputSerializer(many=True)
    attempts_allowed = serializers.SerializerMethodField()
    gate_overrides = GateOverrideOutputSerializer(many=True)
    privacy_retries = PrivacyRetryOutputSerializer(many=True)
    retry = serializers.SerializerMethodField()
    candidates = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()

    class Meta:
        model = GenerationRequest
        fields = [
            "id",
            "title",
            "status",
            "requester",
            "dataset",
            "audience",
            "synthesizer",
            "epsilon",
            "delta",
            "budget",
            "is_dp",
            "purpose",
            "purpose_category",
            "intended_use",
            "fidelity",
            "columns",
            "rows",
            "tier",
            "quorum",
            "conditions",
            "review_round",
            "decisions",
            "job",
            "attempts",
            "attempts_allowed",
            "gate_overrides",
            "privacy_retries",
            "retry",
            "candidates",
            "candidates_auto",
            "options",
            "release",
            "actions",
            "created_at",
            "submitted_at",
        ]

    @extend_schema_field(ActionsOutputSerializer(allow_null=True))
    def get_actions(self, obj: GenerationRequest) -> dict[str, dict[str, Any]] | None:
        """What the caller may do with this request now: each `can_*` with `allowed` and, when
        not, the `reason` (the same rules the services enforce; a page button shows exactly when
        its action is allowed). Null when rendered without a caller."""
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if user is None:
            return None
        return request_actions_for(user=user, request=obj).as_dict()

    def get_budget(self, obj: GenerationRequest) -> dict[str, Any] | None:
        """For a DP request not yet approved: its epsilon (and delta) against what is left on the
        dataset's budget, with a message; `fits` false means submission will be refused (409)."""
        if obj.status not in _BUDGET_STATUSES:
            return None
        check = budget_check(obj.dataset, obj.epsilon_micro, obj.delta_atto)
        return check.as_dict() if check else None

    def get_candidates(self, obj: GenerationRequest) -> list[dict[str, Any]] | None:
        """A bake-off's candidates as filed (null for a single-synthesizer request); each
        candidate's gate and metrics are on GET .../attempts/."""
        if not obj.candidates:
            return None
        return [
            {
                "index": i,
                "synthesizer": c["synthesizer"],
                "epsilon": micro_to_epsilon(c.get("epsilon_micro")),
                "delta": atto_to_delta(c.get("delta_atto")),
                "options": c.get("options") or {},
            }
            for i, c in enumerate(obj.candidates)
        ]

    def get_retry(self, obj: GenerationRequest) -> dict[str, Any] | None:
        """After a failed gate or job: whether a new attempt needs a privacy officer (the last one
        failed a privacy check), which checks, and what it will reserve from the ledger."""
        if obj.status not in (RequestStatus.GATE_FAILED, RequestStatus.FAILED):
            return None
        failed = latest_privacy_failures(obj)
        check = budget_check(obj.dataset, obj.epsilon_micro, obj.delta_atto)
        return {
            "needs_officer": bool(failed),
            "failed_privacy_checks": failed,
            "epsilon": check.epsilon_needed if check else None,
            "budget": check.as_dict() if check else None,
        }

    def get_tier(self, obj: GenerationRequest) -> dict[str, Any] | None:
        return TierOutputSerializer(obj).data if obj.tier_level else None  # type: ignore[return-value]

    def get_attempts_allowed(self, obj: GenerationRequest) -> int | None:
        """Generation attempts the policy allows this request (the first included); null before tiering."""
        return attempts_allowed(obj) if obj.tier_level else None

    def get_quorum(self, obj: GenerationRequest) -> dict[str, Any] | None:
        """Where the current review round stands (only while in review)."""
        if obj.status != RequestStatus.IN_REVIEW:
            return None
        # From the decisions the list prefetched (approvals.api.views), not a query per request.
        q = request_quorum(obj, obj.decisions.all())
        return {"approvals": q.approvals, "needed": q.needed, "satisfied": q.satisfied, "missing": q.missing}

    def get_job(self, obj: GenerationRequest) -> dict[str, Any] | None:
        return JobOutputSerializer(obj.job).data if obj.job else None  # type: ignore[return-value]

    def get_release(self, obj: GenerationRequest) -> str | None:
        try:
            return str(obj.release.pk)  # type: ignore[attr-defined]
        except ObjectDoesNotExist:
            return None

    def get_is_dp(self, obj: GenerationRequest) -> bool:
        from generation.synthesizers import REGISTRY

        cls = REGISTRY.get(obj.synthesizer)
        return bool(cls and cls.is_dp)


def _validate_epsilon_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise serializers.ValidationError("epsilon must be a number, or null for non-DP synthesizers.")
    return value


def _validate_delta_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise serializers.ValidationError("delta must be a number (for example 1e-9), or null.")
    return value


class RequestPreviewInputSerializer(serializers.Serializer):
    """The fields of a request the tiering policy reads (what the preview takes)."""

    dataset = serializers.CharField()
    audience = serializers.ChoiceField(choices=Audience.choices)
    columns = serializers.ListField(child=serializers.CharField(max_length=255), max_length=2000)
    synthesizer = serializers.CharField(max_length=40)
    rows = serializers.IntegerField(min_value=1)
    # Any JSON value: the service accepts only finite positive numbers (or null for non-DP).
    epsilon = serializers.JSONField(required=False, allow_null=True, default=None)
    # (epsilon, delta) synthesizers only; omitted or null means the default 1e-9 for them.
    delta = serializers.JSONField(required=False, allow_null=True, default=None)
    # Optional, so clients written before risk tiering keep working.
    fidelity = serializers.ChoiceField(choices=Fidelity.choices, required=False, default=Fidelity.MEDIUM)
    purpose_category = serializers.ChoiceField(
        choices=PurposeCategory.choices, required=False, default=PurposeCategory.RESEARCH
    )

    def validate_epsilon(self, value: Any) -> Any:
        return _validate_epsilon_value(value)

    def validate_delta(self, value: Any) -> Any:
        return _validate_delta_value(value)


class RequestInputSerializer(RequestPreviewInputSerializer):
    """A request as filed: the previewed fields, what it is for, and a bake-off's candidates."""

    title = serializers.CharField(max_length=200)
    purpose = serializers.CharField()
    intended_use = serializers.CharField()
    # A filed request names at least one column (a preview may be asked half-filled).
    columns = serializers.ListField(
        child=serializers.CharField(max_length=255), allow_empty=False, max_length=2000
    )
    # Required unless `candidates` is given (a bake-off names a synthesizer per candidate).
    synthesizer = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    # A bake-off: [{"synthesizer", "epsilon", "options"}] or "auto" (the policy's default set).
    candidates = serializers.JSONField(required=False, allow_null=True, default=None)
    # A single synthesizer's options, e.g. {"epochs": 200, "batch_size": 100} for ctgan/tvae or
    # {"distribution": "truncnorm"} for gaussian_copula; each synthesizer's caps apply.
    options = serializers.JSONField(required=False, allow_null=True, default=None)

    def validate_candidates(self, value: Any) -> Any:
        if value is None or value == "auto":
            return value
        if not isinstance(value, list) or len(value) > 50:
            raise serializers.ValidationError(
                'candidates must be a list of {synthesizer, epsilon, options}, or "auto".'
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("synthesizer") and attrs.get("candidates") is None:
            raise serializers.ValidationError({"synthesizer": "This field is required (or give candidates)."})
        return attrs


class FiredRuleOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    tier = serializers.CharField()
    message = serializers.CharField()


class SuggestionOutputSerializer(serializers.Serializer):
    change = serializers.CharField()
    level = serializers.CharField()


class BudgetOutputSerializer(serializers.Serializer):
    fits = serializers.BooleanField()
    epsilon_needed = serializers.CharField()
    epsilon_remaining = serializers.CharField()
    delta_needed = serializers.CharField(allow_null=True)
    delta_remaining = serializers.CharField()
    message = serializers.CharField()


class PreviewOutputSerializer(serializers.Serializer):
    level = serializers.CharField()
    reasons = serializers.ListField(child=serializers.CharField())
    rules = FiredRuleOutputSerializer(many=True)
    required_approvals = serializers.IntegerField()
    controls = serializers.DictField()
    suggestions = SuggestionOutputSerializer(many=True)
    policy_version = serializers.CharField()
    budget = BudgetOutputSerializer(allow_null=True)
    dp_domain_refusal = serializers.CharField(allow_null=True)


class DecisionInputSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=DecisionKind.choices)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    conditions = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class UploadInputSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)


class GateOverrideInputSerializer(serializers.Serializer):
    justification = serializers.CharField(max_length=5000, allow_blank=True)


class GateOverrideDecisionInputSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
