"""Overriding a failed release gate: a privacy officer proposes it with a written justification;
a second privacy officer approves or declines. Neither may be the requester, and the second may
not be the proposer (the database refuses that too). Publishing an approved override is
orchestrated by catalog.services.gate_override_approve, which calls `gate_override_decide`.

Audit rows carry the justification's SHA-256, not its text: the text lives on the override row,
and the hash lets an auditor prove the row was not edited afterwards.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import transaction
from django.utils import timezone

from approvals import rules
from approvals.choices import OverrideStatus, RequestStatus
from approvals.models import GateOverride, GenerationRequest
from approvals.services.decisions import MAX_TEXT
from approvals.services.notifications import notify_override_pending
from approvals.services.outputs import outputs_purge_unreleased
from approvals.services.requests import request_get_for
from approvals.workflow import check_transition
from audit.services import audit_denied, audit_record
from core.errors import Conflict, PermissionDenied, ValidationFailed
from core.roles import PortalUser
from generation.choices import JobState
from generation.models import SynthesisJob

MIN_JUSTIFICATION = 40


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _refuse(actor: PortalUser, request: GenerationRequest, action: str, reason: str) -> PermissionDenied:
    audit_denied(actor=actor, action=action, target_type="request", target_id=request.pk, reason=reason)
    return PermissionDenied(reason)


def _gate_failed_job(request: GenerationRequest) -> tuple[SynthesisJob, list[str]]:
    """The current job and its failed checks; Conflict unless it ended at the gate with a report."""
    job = request.job
    if request.status != RequestStatus.GATE_FAILED or job is None or job.state != JobState.GATE_FAILED:
        raise Conflict(
            "Only a request whose release failed the gate can be published by override.",
            code="invalid_transition",
        )
    report = getattr(job, "validation", None)
    if report is None or not job.output_path:
        raise Conflict("This job left no validated output to publish.", code="nothing_to_publish")
    return job, [str(c["name"]) for c in report.checks if not c.get("passed")]


def gate_override_propose(*, actor: PortalUser, request_id: Any, justification: str) -> GateOverride:
    """File a proposal to publish the request's gate-failed job, with a written justification."""
    text = (justification or "").strip()
    with transaction.atomic():
        request = request_get_for(actor=actor, request_id=request_id, lock=True)
        reason = rules.override_officer_refusal(actor, request)
        if not reason:
            return _propose(actor, request, text)
    raise _refuse(actor, request, "request.gate_override_propose", reason)


def _propose(actor: PortalUser, request: GenerationRequest, text: str) -> GateOverride:
    job, failed = _gate_failed_job(request)
    if len(text) < MIN_JUSTIFICATION or len(text) > MAX_TEXT:
        raise ValidationFailed(
            f"Write a justification of {MIN_JUSTIFICATION} to {MAX_TEXT} characters: why this release is "
            f"safe and useful enough despite the failed checks ({', '.join(failed)}).",
            fields={"justification": "length"},
        )
    if GateOverride.objects.filter(
        job=job, status__in=[OverrideStatus.PENDING, OverrideStatus.APPROVED]
    ).exists():
        raise Conflict(
            "An override of this job is already awaiting a second approver.", code="override_pending"
        )
    override = GateOverride.objects.create(
        request=request,
        job=job,
        justification=text,
        failed_checks=failed,
        proposed_by=actor,
        proposed_by_name=actor.get_username(),
    )
    audit_record(
        actor=actor,
        action="request.gate_override_propose",
        target_type="request",
        target_id=request.pk,
        details={
            "override": override.pk,
            "job": str(job.pk),
            "failed_checks": failed,
            "justification_sha256": _digest(text),
        },
    )
    # The proposal waits on a second officer: tell the others now, in this transaction, so a
    # proposal that rolls back notifies nobody (notify e-mails only after the commit).
    notify_override_pending(request, override)
    return override


def gate_override_decide(
    *, actor: PortalUser, request_id: Any, approve: bool, comment: str = ""
) -> GateOverride:
    """The second approver's decision on the pending override. Call inside a transaction; on
    approval the caller publishes in the same transaction (catalog.services.gate_override_approve)."""
    comment = (comment or "").strip()
    request = request_get_for(actor=actor, request_id=request_id, lock=True)
    # Who is asking before the request's state: a non-officer is refused (403) whether or not an
    # override is pending. The callers audit the refusal after their transaction rolls back
    # (audit_override_refusal).
    reason = rules.override_officer_refusal(actor, request)
    if reason:
        raise PermissionDenied(reason)
    override = request.gate_overrides.select_for_update().filter(status=OverrideStatus.PENDING).first()
    if override is None:
        raise Conflict(
            "No override of this request's gate is awaiting a decision.", code="no_pending_override"
        )
    reason = rules.override_proposer_refusal(actor, override.proposed_by_id)
    if reason:
        raise PermissionDenied(reason)
    if not approve and not comment:
        raise ValidationFailed(
            "Say why you decline, for the proposer and the requester.", fields={"comment": "required"}
        )
    if len(comment) > MAX_TEXT:
        raise ValidationFailed(f"Keep the comment under {MAX_TEXT} characters.", fields={"comment": "length"})
    override.status = OverrideStatus.APPROVED if approve else OverrideStatus.DECLINED
    override.decided_by, override.decided_by_name = actor, actor.get_username()
    override.decided_at, override.decision_comment = timezone.now(), comment
    override.save()
    audit_record(
        actor=actor,
        action=f"request.gate_override_{'approve' if approve else 'decline'}",
        target_type="request",
        target_id=request.pk,
        details={
            "override": override.pk,
            "job": str(override.job_id),
            "proposed_by": override.proposed_by_name,
            "justification_sha256": _digest(override.justification),
        },
    )
    if not approve:
        outputs_purge_unreleased(request=request, reason="gate override declined", actor=actor)
    return override


def gate_override_decline(*, actor: PortalUser, request_id: Any, comment: str) -> GateOverride:
    """Decline the pending override; the request stays gate_failed."""
    try:
        with transaction.atomic():
            return gate_override_decide(actor=actor, request_id=request_id, approve=False, comment=comment)
    except PermissionDenied as exc:
        audit_override_refusal(actor=actor, request_id=request_id, reason=str(exc))
        raise


def audit_override_refusal(*, actor: PortalUser, request_id: Any, reason: str) -> None:
    """Evidence of a refused override decision, in its own committed write."""
    request = request_get_for(actor=actor, request_id=request_id)
    audit_denied(
        actor=actor,
        action="request.gate_override_decide",
        target_type="request",
        target_id=request.pk,
        reason=reason,
    )


def request_published_by_override(
    *, actor: PortalUser, request: GenerationRequest, override: GateOverride
) -> None:
    """Move the (locked) request to published once catalog has published the overridden job."""
    check_transition("publish_override", request.status)
    request.status = RequestStatus.PUBLISHED
    request.save(update_fields=["status", "updated_at"])
    audit_record(
        actor=actor,
        action="request.published",
        target_type="request",
        target_id=request.pk,
        details={"job": str(override.job_id), "override": override.pk},
    )
    outputs_purge_unreleased(request=request, reason="request published", actor=actor)
