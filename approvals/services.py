"""Generation requests: filing, submission with risk tiering, review decisions, job hand-off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from approvals.choices import Audience, DecisionKind, RequestStatus, TierLevel
from approvals.models import Decision, GenerationRequest
from approvals.policies import POLICY_VERSION, RequestFacts, assess
from approvals.selectors import requests_visible_to
from approvals.workflow import check_transition
from audit.services import audit_denied, audit_record
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from core.ids import parse_uuid
from core.roles import Role, has_role
from generation.choices import Classification, ColumnKind, JobState
from generation.models import SourceDataset, SynthesisJob
from generation.selectors import datasets_requestable_by
from generation.services import epsilon_to_micro, job_create
from generation.synthesizers import REGISTRY

MAX_ROWS = 1_000_000
_SYNTHESIZABLE_KINDS = {ColumnKind.NUMERIC, ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN, ColumnKind.DATETIME}


@dataclass(frozen=True)
class RequestInput:
    dataset_id: Any
    title: str
    purpose: str
    intended_use: str
    audience: str
    columns: list[str]
    synthesizer: str
    rows: Any
    epsilon: Any = None


def _validate_columns(dataset: SourceDataset, names: list[str]) -> None:
    if not names:
        raise ValidationFailed(
            "Choose at least one column (only those your purpose needs).", fields={"columns": "required"}
        )
    if len(set(names)) != len(names):
        raise ValidationFailed("Each column may be requested once.", fields={"columns": "duplicate"})
    known = {c.name: c for c in dataset.columns.all()}
    for name in names:
        column = known.get(name)
        if column is None:
            raise ValidationFailed(
                f"Column `{name}` is not in dataset {dataset.name}.", fields={"columns": "unknown"}
            )
        if column.classification == Classification.DIRECT_IDENTIFIER:
            raise ValidationFailed(
                f"Column `{name}` is classified as a direct identifier and cannot be synthesized; "
                "remove it from the request.",
                code="direct_identifier",
                fields={"columns": name},
            )
        if column.kind not in _SYNTHESIZABLE_KINDS:
            raise ValidationFailed(
                f"Column `{name}` is {column.get_kind_display().lower()}; synthesizing it would copy "
                "source text. Remove it from the request.",
                fields={"columns": name},
            )


def _validate_rows(rows: Any) -> int:
    if isinstance(rows, bool):
        raise ValidationFailed("rows must be a whole number.", fields={"rows": "invalid"})
    try:
        value = int(str(rows).strip())
    except (TypeError, ValueError):
        raise ValidationFailed("rows must be a whole number.", fields={"rows": "invalid"}) from None
    if not 1 <= value <= MAX_ROWS:
        raise ValidationFailed(f"rows must be between 1 and {MAX_ROWS:,}.", fields={"rows": "out_of_range"})
    return value


def _validate_epsilon(synthesizer: str, epsilon: Any) -> int | None:
    cls = REGISTRY[synthesizer]
    if cls.is_dp:
        return epsilon_to_micro(epsilon)
    if epsilon not in (None, ""):
        raise ValidationFailed(
            f"{synthesizer} is not differentially private, so it spends no epsilon; leave epsilon "
            "empty, or choose a DP synthesizer (named dp_*).",
            fields={"epsilon": "not_applicable"},
        )
    return None


def request_create(*, actor: Any, data: RequestInput) -> GenerationRequest:
    """File a draft request. Validates everything the requester controls."""
    if not has_role(actor, Role.DATA_SCIENTIST):
        audit_denied(
            actor=actor,
            action="request.create",
            target_type="request",
            target_id="-",
            reason="data scientist role required",
        )
        raise PermissionDenied("Only data scientists can file generation requests.")
    dataset = datasets_requestable_by(user=actor).filter(pk=parse_uuid(data.dataset_id)).first()
    if dataset is None:
        raise ValidationFailed("Choose a dataset you may request from.", fields={"dataset": "unknown"})
    if data.audience not in Audience.values:
        raise ValidationFailed(
            f"audience must be one of {', '.join(Audience.values)}.", fields={"audience": "invalid"}
        )
    if data.synthesizer not in REGISTRY:
        raise ValidationFailed(
            f"Unknown synthesizer; choose one of {', '.join(sorted(REGISTRY))}.",
            fields={"synthesizer": "invalid"},
        )
    for field_name in ("title", "purpose", "intended_use"):
        if not str(getattr(data, field_name) or "").strip():
            raise ValidationFailed(
                f"{field_name.replace('_', ' ').capitalize()} is required.", fields={field_name: "required"}
            )
    columns = [str(c) for c in data.columns]
    _validate_columns(dataset, columns)
    rows = _validate_rows(data.rows)
    epsilon_micro = _validate_epsilon(data.synthesizer, data.epsilon)
    with transaction.atomic():
        request = GenerationRequest.objects.create(
            dataset=dataset,
            requester=actor,
            team_id=actor.team_id,
            title=data.title.strip()[:200],
            purpose=data.purpose.strip(),
            intended_use=data.intended_use.strip(),
            audience=data.audience,
            columns=columns,
            synthesizer=data.synthesizer,
            rows=rows,
            epsilon_micro=epsilon_micro,
        )
        audit_record(
            actor=actor,
            action="request.create",
            target_type="request",
            target_id=request.pk,
            details={
                "dataset": str(dataset.pk),
                "columns": columns,
                "synthesizer": data.synthesizer,
                "rows": rows,
            },
        )
    return request


def request_get_for(*, actor: Any, request_id: Any, lock: bool = False) -> GenerationRequest:
    queryset = requests_visible_to(user=actor)
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    request = queryset.filter(pk=parse_uuid(request_id)).first()
    if request is None:
        raise NotFound("No such request.")
    return request


def request_assess(*, request: GenerationRequest) -> Any:
    cls = REGISTRY.get(request.synthesizer)
    classifications = dict(
        request.dataset.columns.filter(name__in=request.columns).values_list("name", "classification")
    )
    facts = RequestFacts(
        audience=request.audience,
        is_dp=bool(cls and cls.is_dp),
        epsilon=float(request.epsilon) if request.epsilon is not None else None,
        classifications=classifications,
        rows=request.rows,
        source_rows=request.dataset.rows,
    )
    return assess(facts)


def request_submit(*, actor: Any, request_id: Any) -> GenerationRequest:
    """Submit (or resubmit) for review. The policy tiers it; a prohibited request is rejected."""
    with transaction.atomic():
        request = request_get_for(actor=actor, request_id=request_id, lock=True)
        if request.requester_id != actor.pk:
            raise PermissionDenied("Only the requester can submit this request.")
        if not check_transition("submit", request.status):
            return request
        tier = request_assess(request=request)
        controls = tier.controls(audience=request.audience)
        request.tier_level, request.tier_reasons = tier.level, tier.reasons
        request.required_approvals = controls["required_approvals"]
        request.tier_controls, request.policy_version = controls, POLICY_VERSION
        request.review_round += 1
        request.submitted_at = timezone.now()
        request.status = (
            RequestStatus.REJECTED if tier.level == TierLevel.PROHIBITED else RequestStatus.IN_REVIEW
        )
        request.save()
        audit_record(
            actor=actor,
            action="request.submit",
            target_type="request",
            target_id=request.pk,
            details={
                "tier": tier.level,
                "policy_version": POLICY_VERSION,
                "status": request.status,
                "round": request.review_round,
            },
        )
    return request


def request_decide(*, actor: Any, request_id: Any, decision: str, comment: str = "") -> Decision:
    """Record a reviewer's decision; on quorum, approve and queue the synthesis job."""
    if decision not in DecisionKind.values:
        raise ValidationFailed(
            f"decision must be one of {', '.join(DecisionKind.values)}.", fields={"decision": "invalid"}
        )
    visible = request_get_for(actor=actor, request_id=request_id)
    reason = _decide_refusal(actor, visible)
    if reason:
        audit_denied(
            actor=actor, action="request.decide", target_type="request", target_id=visible.pk, reason=reason
        )
        raise PermissionDenied(reason)
    if decision != DecisionKind.APPROVE and not (comment or "").strip():
        raise ValidationFailed(
            "Say why in a comment, so the requester knows what to change.", fields={"comment": "required"}
        )
    with transaction.atomic():
        request = request_get_for(actor=actor, request_id=request_id, lock=True)
        check_transition("decide", request.status)
        if request.decisions.filter(reviewer=actor, review_round=request.review_round).exists():
            raise Conflict("You have already decided this review round.", code="already_decided")
        record = Decision.objects.create(
            request=request,
            reviewer=actor,
            reviewer_name=actor.get_username(),
            review_round=request.review_round,
            decision=decision,
            comment=(comment or "").strip(),
        )
        _apply_decision(request, record, actor)
        audit_record(
            actor=actor,
            action=f"request.{decision}",
            target_type="request",
            target_id=request.pk,
            details={"round": request.review_round, "status": request.status},
        )
    return record


def _decide_refusal(actor: Any, request: GenerationRequest) -> str:
    if request.requester_id == actor.pk:
        return "You cannot decide your own request; another privacy officer must review it."
    if not has_role(actor, Role.PRIVACY_OFFICER):
        return "Only privacy officers can decide generation requests."
    return ""


def _apply_decision(request: GenerationRequest, record: Decision, actor: Any) -> None:
    if record.decision == DecisionKind.REJECT:
        request.status = RequestStatus.REJECTED
    elif record.decision == DecisionKind.REQUEST_CHANGES:
        request.status = RequestStatus.CHANGES_REQUESTED
    else:
        approvals = (
            request.decisions.filter(review_round=request.review_round, decision=DecisionKind.APPROVE)
            .values("reviewer")
            .distinct()
            .count()
        )
        if approvals >= max(1, request.required_approvals):
            request.status = RequestStatus.APPROVED
            request.job = job_create(
                dataset=request.dataset,
                columns=request.columns,
                synthesizer=request.synthesizer,
                rows=request.rows,
                epsilon_micro=request.epsilon_micro,
                actor=actor,
            )
    request.save()


def request_cancel(*, actor: Any, request_id: Any) -> GenerationRequest:
    with transaction.atomic():
        request = request_get_for(actor=actor, request_id=request_id, lock=True)
        if request.requester_id != actor.pk:
            raise PermissionDenied("Only the requester can withdraw this request.")
        if not check_transition("cancel", request.status):
            return request
        request.status = RequestStatus.CANCELLED
        request.save(update_fields=["status", "updated_at"])
        audit_record(actor=actor, action="request.cancel", target_type="request", target_id=request.pk)
    return request


_JOB_TO_ACTION = {
    JobState.RUNNING: "start",
    JobState.VALIDATING: "validate",
    JobState.SUCCEEDED: "publish",
    JobState.GATE_FAILED: "gate_fail",
    JobState.FAILED: "fail",
}
_ACTION_TO_STATUS = {
    "start": RequestStatus.GENERATING,
    "validate": RequestStatus.VALIDATING,
    "publish": RequestStatus.PUBLISHED,
    "gate_fail": RequestStatus.GATE_FAILED,
    "fail": RequestStatus.FAILED,
}


def request_follow_job(*, job: SynthesisJob) -> GenerationRequest | None:
    """Mirror the job's state onto its request (system transition, audited)."""
    action = _JOB_TO_ACTION.get(SynthesisJob.objects.values_list("state", flat=True).get(pk=job.pk))
    if action is None:
        return None
    with transaction.atomic():
        request = GenerationRequest.objects.select_for_update().filter(job_id=job.pk).first()
        if request is None or request.status == _ACTION_TO_STATUS[action]:
            return request
        check_transition(action, request.status)
        request.status = _ACTION_TO_STATUS[action]
        request.save(update_fields=["status", "updated_at"])
        audit_record(
            actor=None,
            action=f"request.{request.status}",
            target_type="request",
            target_id=request.pk,
            details={"job": str(job.pk)},
        )
    return request
