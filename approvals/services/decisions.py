"""Review decisions: who may decide (separation of duties), quorum, conditions.

Enforced here, not in views, so the API, the browser and Django admin share one code path.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from approvals import rules
from approvals.choices import DecisionKind, RequestStatus
from approvals.models import Decision, GenerationRequest
from approvals.quorum import Quorum, request_quorum
from approvals.selectors import listed_rows
from approvals.services.attempts import attempt_job_for_approval
from approvals.services.notifications import notify_requester_on_commit
from approvals.services.requests import request_get_for
from approvals.workflow import check_transition
from audit.services import audit_denied, audit_record
from core.errors import Conflict, PermissionDenied, ValidationFailed
from core.roles import PortalUser

MAX_TEXT = 5000


def request_decide(
    *, actor: PortalUser, request_id: Any, decision: str, comment: str = "", conditions: str = ""
) -> Decision:
    """Record a reviewer's decision; on quorum, approve and queue the synthesis job."""
    record, _created = request_decide_outcome(
        actor=actor, request_id=request_id, decision=decision, comment=comment, conditions=conditions
    )
    return record


def request_decide_outcome(
    *, actor: PortalUser, request_id: Any, decision: str, comment: str = "", conditions: str = ""
) -> tuple[Decision, bool]:
    """As request_decide, and whether a decision was recorded (False: the reviewer repeated the
    decision they already made this round, which changes nothing).

    Answers, in this order: 400 for an unknown decision, 404 for a request the caller cannot see,
    403 for a caller who may not decide it (checked on the locked row, so a resubmission racing
    this decision cannot slip past), 400 for missing or misplaced text, 409 for the wrong state.
    """
    if decision not in DecisionKind.values:
        raise ValidationFailed(
            f"decision must be one of {', '.join(DecisionKind.values)}.", fields={"decision": "invalid"}
        )
    with transaction.atomic():
        request = request_get_for(actor=actor, request_id=request_id, lock=True)
        reason = rules.reviewer_refusal(actor, request)
        if not reason:
            comment, conditions = _validated_text(decision, comment, conditions)
            return _record(actor, request, decision, comment, conditions)
    # Outside the transaction: the refusal is evidenced in its own committed write.
    audit_denied(
        actor=actor, action="request.decide", target_type="request", target_id=request.pk, reason=reason
    )
    raise PermissionDenied(reason)


def _record(
    actor: PortalUser, request: GenerationRequest, decision: str, comment: str, conditions: str
) -> tuple[Decision, bool]:
    earlier = request.decisions.filter(reviewer=actor, review_round=request.review_round).first()
    if earlier is not None and earlier.decision == decision:
        return earlier, False
    check_transition("decide", request.status)
    if earlier is not None:
        raise Conflict(
            f"You already decided this review round ({earlier.get_decision_display().lower()}).",
            code="already_decided",
        )
    record = Decision.objects.create(
        request=request,
        reviewer=actor,
        reviewer_name=actor.get_username(),
        reviewer_role=actor.role,
        reviewer_team_id=actor.team_id,
        review_round=request.review_round,
        decision=decision,
        comment=comment,
        conditions=conditions,
    )
    _apply_decision(request, record, actor)
    audit_record(
        actor=actor,
        action=f"request.{decision}",
        target_type="request",
        target_id=request.pk,
        details={
            "round": request.review_round,
            "status": request.status,
            "tier": request.tier_level,
            "policy_version": request.policy_version,
            "with_conditions": bool(conditions),
        },
    )
    notify_requester_on_commit(request, record)
    return record, True


def _validated_text(decision: str, comment: str, conditions: str) -> tuple[str, str]:
    comment, conditions = (comment or "").strip(), (conditions or "").strip()
    if decision != DecisionKind.APPROVE and not comment:
        raise ValidationFailed(
            "Say why in a comment, so the requester knows what to change.", fields={"comment": "required"}
        )
    if conditions and decision != DecisionKind.APPROVE:
        raise ValidationFailed(
            "Conditions go with an approval; to ask for changes, say what to change in the comment.",
            fields={"conditions": "approve_only"},
        )
    if len(comment) > MAX_TEXT or len(conditions) > MAX_TEXT:
        raise ValidationFailed(f"Keep comments and conditions under {MAX_TEXT} characters.")
    return comment, conditions


def round_quorum(request: GenerationRequest) -> Quorum:
    """Where the current review round stands against the request's quorum (approvals.quorum's one
    reading). From the decisions a list fetched (the review queue: no query per request); a
    request read on its own, as here when deciding, reads them afresh, this decision included."""
    return request_quorum(request, listed_rows(request, "decisions"))


def _apply_decision(request: GenerationRequest, record: Decision, actor: PortalUser) -> None:
    if record.decision == DecisionKind.REJECT:
        request.status = RequestStatus.REJECTED
        request.decided_at = timezone.now()
    elif record.decision == DecisionKind.REQUEST_CHANGES:
        request.status = RequestStatus.CHANGES_REQUESTED
    elif round_quorum(request).satisfied:
        request.status = RequestStatus.APPROVED
        request.decided_at = timezone.now()
        request.conditions = _round_conditions(request)
        attempt_job_for_approval(request=request, actor=actor)
    request.save()


def _round_conditions(request: GenerationRequest) -> str:
    approvals = request.decisions.filter(
        review_round=request.review_round, decision=DecisionKind.APPROVE
    ).exclude(conditions="")
    return "\n".join(f"{d.conditions} ({d.reviewer_name})" for d in approvals)
