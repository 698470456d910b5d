from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from approvals.choices import Audience, DecisionKind, Fidelity, PurposeCategory, RequestKind, RequestStatus
from approvals.dp import BudgetCheck, budget_check
from approvals.models import Decision, GateOverride, GenerationAttempt, GenerationRequest, PrivacyRetry
from approvals.quorum import request_quorum
from approvals.selectors import latest_privacy_failures, listed_rows, request_action_answers
from approvals.services import attempts_allowed
from approvals.services.tiering import request_is_dp
from generation.modeling import MODEL_FAMILIES, is_model_family
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
    model_family = serializers.SerializerMethodField()

    class Meta:
        model = GenerationRequest
        fields = [
            "id",
            "title",
            "status",
            "requester",
            "dataset",
            "kind",
            "target",
            "model_family",
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

    # --- Rendering -------------------------------------------------------------------------------
    # The declared fields above are the contract (API.md, the OpenAPI schema). A list renders 50
    # of these per page, and DRF's generic path (a field object's get_attribute and
    # to_representation per field, a nested serializer built per row for tier and job) cost about
    # a quarter of GET /api/v1/requests/'s CPU (docs/benchmarks.md, issue 16). to_representation
    # builds the same dict straight from the fetched row and its prefetched relations; DRF's own
    # field objects still format datetimes and decimals, so the values are identical
    # (test_request_representation.py compares both paths over every state).

    def to_representation(self, instance: GenerationRequest) -> dict[str, Any]:
        obj = instance
        dt = _DATETIME.to_representation
        status = obj.status
        epsilon = obj.epsilon
        delta = obj.delta
        job = obj.job
        return {
            "id": str(obj.pk),
            "title": str(obj.title),
            "status": str(status),
            "requester": str(obj.requester.username),
            "dataset": str(obj.dataset_id),
            "kind": str(obj.kind),
            "target": str(obj.target),
            "model_family": str(obj.synthesizer) if obj.kind == RequestKind.DP_MODEL else None,
            "audience": str(obj.audience),
            "synthesizer": str(obj.synthesizer),
            "epsilon": None if epsilon is None else _EPSILON.to_representation(epsilon),
            "delta": None if delta is None else _DELTA.to_representation(delta),
            "budget": self.get_budget(obj),
            "is_dp": request_is_dp(obj),
            "purpose": str(obj.purpose),
            "purpose_category": str(obj.purpose_category),
            "intended_use": str(obj.intended_use),
            "fidelity": str(obj.fidelity),
            "columns": obj.columns,
            "rows": obj.rows,
            "tier": _tier(obj) if obj.tier_level else None,
            "quorum": self.get_quorum(obj),
            "conditions": str(obj.conditions),
            "review_round": obj.review_round,
            "decisions": [_decision(d, dt) for d in listed_rows(obj, "decisions")],
            "job": None if job is None else _job(job),
            "attempts": [_attempt(a, dt) for a in listed_rows(obj, "attempts")],
            "attempts_allowed": attempts_allowed(obj) if obj.tier_level else None,
            "gate_overrides": [_override(o, dt) for o in listed_rows(obj, "gate_overrides")],
            "privacy_retries": [_retry(r, dt) for r in listed_rows(obj, "privacy_retries")],
            "retry": self.get_retry(obj),
            "candidates": self.get_candidates(obj),
            "candidates_auto": bool(obj.candidates_auto),
            "options": obj.options,
            "release": self.get_release(obj),
            "actions": self.get_actions(obj),
            "created_at": dt(obj.created_at) if obj.created_at else None,
            "submitted_at": dt(obj.submitted_at) if obj.submitted_at else None,
        }

    def _budget_check(self, obj: GenerationRequest) -> BudgetCheck | None:
        # Read once per ledger for a whole list (one query, not one per DP row of a page): the rows
        # of a page share their datasets' budgets. budget_check reads the ledger fresh each call.
        if obj.epsilon_micro is None:
            return None
        memo: dict[tuple[Any, int, int | None], BudgetCheck | None] = self.__dict__.setdefault(
            "_budget_memo", {}
        )
        key = (obj.dataset.ledger_owner_id, obj.epsilon_micro, obj.delta_atto)
        if key not in memo:
            memo[key] = budget_check(obj.dataset, obj.epsilon_micro, obj.delta_atto)
        return memo[key]

    @extend_schema_field(ActionsOutputSerializer(allow_null=True))
    def get_actions(self, obj: GenerationRequest) -> dict[str, dict[str, Any]] | None:
        """What the caller may do with this request now: each `can_*` with `allowed` and, when
        not, the `reason` (the same rules the services enforce; a page button shows exactly when
        its action is allowed). Null when rendered without a caller."""
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if user is None:
            return None
        return request_action_answers(user=user, request=obj)

    def get_budget(self, obj: GenerationRequest) -> dict[str, Any] | None:
        """For a DP request not yet approved: its epsilon (and delta) against what is left on the
        dataset's budget, with a message; `fits` false means submission will be refused (409)."""
        if obj.status not in _BUDGET_STATUSES:
            return None
        check = self._budget_check(obj)
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
        check = self._budget_check(obj)
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
        # From the decisions the list fetched (approvals.selectors.listed_requests), not a query per request.
        q = request_quorum(obj, listed_rows(obj, "decisions"))
        return {"approvals": q.approvals, "needed": q.needed, "satisfied": q.satisfied, "missing": q.missing}

    def get_job(self, obj: GenerationRequest) -> dict[str, Any] | None:
        return JobOutputSerializer(obj.job).data if obj.job else None  # type: ignore[return-value]

    def get_release(self, obj: GenerationRequest) -> str | None:
        try:
            return str(obj.release.pk)  # type: ignore[attr-defined]
        except ObjectDoesNotExist:
            return None

    def get_is_dp(self, obj: GenerationRequest) -> bool:
        return request_is_dp(obj)

    def get_model_family(self, obj: GenerationRequest) -> str | None:
        """A dp_model request's model family (its `synthesizer`); null for other kinds."""
        return obj.synthesizer if obj.kind == RequestKind.DP_MODEL else None


# DRF's own field objects format what the declared fields would (ISO 8601 in the current time zone
# with "Z" for UTC; decimals quantized), so the plain rendering below matches the declared one.
_DATETIME = serializers.DateTimeField()
_EPSILON = serializers.DecimalField(max_digits=12, decimal_places=6, coerce_to_string=False)
_DELTA = serializers.DecimalField(max_digits=19, decimal_places=18, coerce_to_string=False)


def _or_none(value: Any, render: Callable[[Any], Any]) -> Any:
    return None if value is None else render(value)


def _uuid_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _tier(obj: GenerationRequest) -> dict[str, Any]:
    """TierOutputSerializer's dict."""
    reasons = obj.tier_reasons
    controls = obj.tier_controls
    return {
        "level": str(obj.tier_level),
        "reasons": None if reasons is None else [None if r is None else str(r) for r in reasons],
        "required_approvals": obj.required_approvals,
        "policy_version": str(obj.policy_version),
        "controls": None if controls is None else {str(k): v for k, v in controls.items()},
    }


def _job(job: Any) -> dict[str, Any]:
    """JobOutputSerializer's dict."""
    return {
        "state": str(job.state),
        "progress": _or_none(job.progress, float),
        "attempts": job.attempts,
        "stage": str(job.stage),
    }


def _decision(d: Decision, dt: Callable[[Any], Any]) -> dict[str, Any]:
    """DecisionOutputSerializer's dict."""
    return {
        "reviewer": d.reviewer_name,
        "decision": str(d.decision),
        "comment": d.comment,
        "at": _or_none(d.at, dt),
        "review_round": d.review_round,
        "conditions": d.conditions,
        "reviewer_role": str(d.reviewer_role),
    }


def _attempt(a: GenerationAttempt, dt: Callable[[Any], Any]) -> dict[str, Any]:
    """AttemptOutputSerializer's dict."""
    report = getattr(a.job, "validation", None)
    return {
        "number": a.number,
        "source": str(a.source),
        "state": str(a.job.state),
        "gate_passed": None if report is None else bool(report.passed),
        "started_by": a.started_by_name,
        "at": _or_none(a.at, dt),
    }


def _override(o: GateOverride, dt: Callable[[Any], Any]) -> dict[str, Any]:
    """GateOverrideOutputSerializer's dict."""
    return {
        "id": o.pk,
        "job": _uuid_or_none(o.job_id),
        "status": str(o.status),
        "justification": o.justification,
        "failed_checks": o.failed_checks,
        "proposed_by": o.proposed_by_name,
        "proposed_at": _or_none(o.proposed_at, dt),
        "decided_by": o.decided_by_name,
        "decided_at": _or_none(o.decided_at, dt),
        "decision_comment": o.decision_comment,
    }


def _retry(r: PrivacyRetry, dt: Callable[[Any], Any]) -> dict[str, Any]:
    """PrivacyRetryOutputSerializer's dict."""
    epsilon = r.epsilon
    return {
        "id": r.pk,
        "status": str(r.status),
        "failed_job": _uuid_or_none(r.failed_job_id),
        "failed_checks": r.failed_checks,
        "epsilon": None if epsilon is None else _EPSILON.to_representation(epsilon),
        "asked_by": r.asked_by_name,
        "reason": r.reason,
        "asked_at": _or_none(r.asked_at, dt),
        "decided_by": r.decided_by_name,
        "decided_at": _or_none(r.decided_at, dt),
        "decision_comment": r.decision_comment,
        "retry_job": _uuid_or_none(r.retry_job_id),
    }


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


def _with_model_family(attrs: dict[str, Any], model: str) -> dict[str, Any]:
    """`model` (API.md) as the dp_model request's family: "random_forest" or "dp_random_forest"
    name the same family. It makes the request a dp_model when `kind` is left out."""
    family = model if is_model_family(model) else f"dp_{model}"
    if not is_model_family(family):
        names = ", ".join(sorted(name.removeprefix("dp_") for name in MODEL_FAMILIES))
        raise serializers.ValidationError({"model": f"Unknown model family; choose one of {names}."})
    kind = attrs.get("kind")
    if kind not in (None, RequestKind.DP_MODEL):
        raise serializers.ValidationError(
            {"model": "Only a dp_model request names a model; a synthetic table names a synthesizer."}
        )
    if attrs.get("synthesizer") and attrs["synthesizer"] != family:
        raise serializers.ValidationError(
            {"model": "model and synthesizer name different families; give one of them."}
        )
    return {**attrs, "kind": RequestKind.DP_MODEL, "synthesizer": family}


class RequestPreviewInputSerializer(serializers.Serializer):
    """The fields of a request the tiering policy reads (what the preview takes)."""

    dataset = serializers.CharField()
    # Optional: synthetic_table when filed without it, the kind as filed when edited.
    kind = serializers.ChoiceField(choices=RequestKind.choices, required=False, allow_null=True, default=None)
    # A dp_model request's outcome column (the dataset's declared outcome).
    target = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    audience = serializers.ChoiceField(choices=Audience.choices)
    columns = serializers.ListField(child=serializers.CharField(max_length=255), max_length=2000)
    # A dp_model request's model family (generation.modeling.MODEL_FAMILIES), or give it as `model`.
    synthesizer = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    # API.md's name for a dp_model request's family: "logistic_regression", "random_forest",
    # "decision_tree" (or the family's own name, e.g. "dp_logistic_regression"). It sets
    # `synthesizer`; giving both, they must name the same family.
    model = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    # Required except for a dp_model request (a model is trained, not sampled: it takes no rows).
    rows = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
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

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # rows may be left out only for a dp_model. An edit (context `editing`) that leaves kind
        # out keeps the kind as filed, which the service knows: it refuses missing rows itself.
        model = attrs.pop("model", "")
        if model:
            attrs = _with_model_family(attrs, model)
        kind = attrs.get("kind")
        kind_as_filed = kind is None and self.context.get("editing", False)
        if attrs.get("rows") is None and kind != RequestKind.DP_MODEL and not kind_as_filed:
            raise serializers.ValidationError({"rows": "This field is required."})
        if not attrs.get("synthesizer") and not self._may_omit_synthesizer(attrs):
            raise serializers.ValidationError({"synthesizer": "This field is required."})
        return attrs

    def _may_omit_synthesizer(self, attrs: dict[str, Any]) -> bool:
        """A preview always names what would run (a synthesizer, or a model family as `model`)."""
        return False


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

    def _may_omit_synthesizer(self, attrs: dict[str, Any]) -> bool:
        if attrs.get("candidates") is None:
            raise serializers.ValidationError({"synthesizer": "This field is required (or give candidates)."})
        return True


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
