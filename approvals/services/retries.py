"""Retries after a failed privacy check: the requester asks, a privacy officer decides.

A failed privacy check means an attack on the release worked. Generating again with a new seed
until the attack happens to miss would launder that result, so after such a failure the
self-service "generate again" is refused (approvals.services.attempts.privacy_retry_refusal) and a
new attempt needs a privacy officer's approval with a written comment. The approval queues the
attempt and reserves its epsilon in the same transaction; asking reserves nothing. Asking,
approving and refusing are audited; refusals of the rule itself are audited as denied.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import transaction
from django.utils import timezone

from approvals.choices import RetryStatus
from approvals.models import GenerationRequest, PrivacyRetry
from approvals.rules import no_privacy_failure_refusal
from approvals.rules import retry_asker_refusal as retry_ask_refusal
from approvals.rules import retry_decider_refusal as retry_decide_refusal
from approvals.selectors import latest_attempt_jobs, latest_privacy_failures
from approvals.services.attempts import regenerate_locked
from approvals.services.requests import request_get_for
from approvals.workflow import check_transition
from audit.services import audit_denied, audit_record
from core.errors import Conflict, DomainError, PermissionDenied, ValidationFailed
from core.roles import PortalUser
from generation.synthesizers import EXTERNAL_UPLOAD

MIN_COMMENT = 20


def retry_pending(request: GenerationRequest) -> PrivacyRetry | None:
    return request.privacy_retries.filter(status=RetryStatus.PENDING).first()


def _failed_job(request: GenerationRequest) -> Any:
    jobs = latest_attempt_jobs(request)
    return jobs[0] if jobs else None


def _check_privacy_failure(request: GenerationRequest) -> list[str]:
    check_transition("regenerate", request.status)
    failed = latest_privacy_failures(request)
    if not failed:
        raise Conflict(no_privacy_failure_refusal(failed), code="no_privacy_failure")
    return failed


def retry_ask(*, actor: PortalUser, request_id: Any, reason: str = "") -> PrivacyRetry:
    """The requester asks a privacy officer to approve a retry. Nothing is reserved yet; asking
    again while one is pending returns the pending one."""
    with transaction.atomic():
        request = request_get_for(actor=actor, request_id=request_id, lock=True)
        denied = retry_ask_refusal(actor, request)
        if not denied:
            return _ask(actor, request, reason)
    _deny(actor, request.pk, "request.retry_ask", denied)


def _ask(actor: PortalUser, request: GenerationRequest, reason: str) -> PrivacyRetry:
    failed = _check_privacy_failure(request)
    existing = retry_pending(request)
    if existing is not None:
        return existing
    retry = PrivacyRetry.objects.create(
        request=request,
        failed_job=_failed_job(request),
        failed_checks=failed,
        epsilon_micro=request.epsilon_micro,
        asked_by=actor,
        asked_by_name=actor.get_username(),
        reason=reason.strip()[:5000],
    )
    audit_record(
        actor=actor,
        action="request.retry_ask",
        target_type="request",
        target_id=request.pk,
        details={"failed_checks": failed, "epsilon_micro": request.epsilon_micro},
    )
    return retry


def retry_approve(*, actor: PortalUser, request_id: Any, comment: str) -> GenerationRequest:
    """A privacy officer approves a retry with a comment: the next attempt is queued and its
    epsilon reserved now (409 when the attempt limit or the budget does not allow it)."""
    return _decide(actor=actor, request_id=request_id, comment=comment, approve=True)


def retry_refuse(*, actor: PortalUser, request_id: Any, comment: str) -> GenerationRequest:
    """A privacy officer refuses a pending retry; nothing is reserved."""
    return _decide(actor=actor, request_id=request_id, comment=comment, approve=False)


def _decide(*, actor: PortalUser, request_id: Any, comment: str, approve: bool) -> GenerationRequest:
    action = "request.retry_approve" if approve else "request.retry_refuse"
    comment = (comment or "").strip()
    try:
        with transaction.atomic():
            request = request_get_for(actor=actor, request_id=request_id, lock=True)
            denied = retry_decide_refusal(actor, request)
            if denied:
                raise PermissionDenied(denied)
            if len(comment) < MIN_COMMENT:
                raise ValidationFailed(
                    f"Write a comment of at least {MIN_COMMENT} characters: why a new attempt is "
                    "acceptable (or not) after the failed privacy check.",
                    code="comment_required",
                    fields={"comment": "required"},
                )
            failed = _check_privacy_failure(request)
            retry = retry_pending(request)
            if retry is None and not approve:
                raise Conflict("No retry is awaiting a decision.", code="no_pending_retry")
            if retry is None:  # the officer approves without being asked
                retry = PrivacyRetry(
                    request=request,
                    failed_job=_failed_job(request),
                    failed_checks=failed,
                    epsilon_micro=request.epsilon_micro,
                )
            _record_decision(retry, actor, comment, approve)
            details = {"failed_checks": failed, "comment": comment, "epsilon_micro": request.epsilon_micro}
            if not approve:
                audit_record(
                    actor=actor, action=action, target_type="request", target_id=request.pk, details=details
                )
                return request
            if request.synthesizer == EXTERNAL_UPLOAD:
                # The requester's next file may now be uploaded (it records the retry's job).
                audit_record(
                    actor=actor, action=action, target_type="request", target_id=request.pk, details=details
                )
                return request
            request = regenerate_locked(actor=actor, request=request, action=action, **details)
            PrivacyRetry.objects.filter(pk=retry.pk).update(retry_job=request.job)
            return request
    except DomainError as exc:
        _audit_refusal(actor, request_id, action, exc)
        raise


def _record_decision(retry: PrivacyRetry, actor: PortalUser, comment: str, approve: bool) -> None:
    retry.status = RetryStatus.APPROVED if approve else RetryStatus.REFUSED
    retry.decided_by = actor
    retry.decided_by_name = actor.get_username()
    retry.decided_at = timezone.now()
    retry.decision_comment = comment
    retry.save()


def _audit_refusal(actor: PortalUser, request_id: Any, action: str, exc: DomainError) -> None:
    if exc.status == 404:
        return  # an invisible request leaves no trace of its existence
    audit_denied(actor=actor, action=action, target_type="request", target_id=request_id, reason=exc.message)


def _deny(actor: PortalUser, request_id: Any, action: str, reason: str) -> NoReturn:
    audit_denied(actor=actor, action=action, target_type="request", target_id=request_id, reason=reason)
    raise PermissionDenied(reason)
