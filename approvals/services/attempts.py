"""Generation attempts of an approved request: the first run on approval, regeneration after a
failed gate, and synthetic files the requester uploads ("bring your own").

The policy's `max_generation_attempts` caps the attempts per request (the first included). The
count is checked on the locked request row, so two clicks cannot both take the last attempt, and
each attempt's job reserves its own epsilon in the same transaction (a DP regeneration the budget
cannot cover answers 409 and changes nothing).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from approvals.choices import AttemptSource, OverrideStatus, RequestStatus
from approvals.models import GenerationAttempt, GenerationRequest
from approvals.policies.engine import DEFAULT_MAX_ATTEMPTS
from approvals.services.requests import request_get_for
from approvals.workflow import check_transition
from audit.services import audit_denied, audit_record
from core.errors import Conflict, PermissionDenied
from core.roles import Role, has_role
from generation.models import SynthesisJob
from generation.services import job_create, job_create_for_upload, synthetic_upload_store, upload_discard
from generation.synthesizers import EXTERNAL_UPLOAD


def attempts_allowed(request: GenerationRequest) -> int:
    """How many generation attempts the request's policy decision allows (the first included)."""
    value = (request.tier_controls or {}).get("max_generation_attempts", DEFAULT_MAX_ATTEMPTS)
    return int(value)


def attempts_used(request: GenerationRequest) -> int:
    return request.attempts.count()


def attempt_record(
    *, request: GenerationRequest, job: SynthesisJob, source: str, actor: Any
) -> GenerationAttempt:
    """Number the job as the request's next attempt and make it the request's current job.
    The caller holds the request row's lock and saves the request."""
    attempt = GenerationAttempt.objects.create(
        request=request,
        number=attempts_used(request) + 1,
        job=job,
        source=source,
        started_by=actor,
        started_by_name=actor.get_username() if actor is not None else "system",
    )
    request.job = job
    return attempt


def attempt_job_for_approval(*, request: GenerationRequest, actor: Any) -> None:
    """On approval: queue attempt 1, unless the requester will upload the synthetic file."""
    if request.synthesizer == EXTERNAL_UPLOAD:
        return
    job = job_create(
        dataset=request.dataset,
        columns=request.columns,
        synthesizer=request.synthesizer,
        rows=request.rows,
        epsilon_micro=request.epsilon_micro,
        delta_atto=request.delta_atto,
        actor=actor,
    )
    attempt_record(request=request, job=job, source=AttemptSource.SYNTHESIZED, actor=actor)


def _check_attempt_left(request: GenerationRequest) -> None:
    used, allowed = attempts_used(request), attempts_allowed(request)
    if used >= allowed:
        raise Conflict(
            f"This request has used {used} of the {allowed} generation attempt(s) its policy allows. "
            "File a new request, or ask a privacy officer to review the failed gate.",
            code="attempts_exhausted",
        )


def _check_no_pending_override(request: GenerationRequest) -> None:
    if request.gate_overrides.filter(status=OverrideStatus.PENDING).exists():
        raise Conflict(
            "A privacy officer proposed publishing the failed release by override; the second "
            "approver must decide that first.",
            code="override_pending",
        )


def _check_classification_unchanged(request: GenerationRequest) -> None:
    """A new attempt runs on the columns as they were approved: if a steward signed off a new
    classification since, the request must be reviewed again."""
    previous = request.job
    if previous is not None and previous.classification_version != request.dataset.classification_version:
        raise Conflict(
            "The dataset's column classification changed since this request was approved; file a "
            "new request so it is reviewed against the current classification.",
            code="classification_changed",
        )


def request_regenerate(*, actor: Any, request_id: Any) -> GenerationRequest:
    """Synthesize again after a failed gate (or a failed job), as a new attempt with a new seed.

    The requester or a privacy officer may ask; the request's parameters stay as approved.
    """
    with transaction.atomic():
        request = request_get_for(actor=actor, request_id=request_id, lock=True)
        refusal = _regenerate_refusal(actor, request)
        if not refusal:
            if not check_transition("regenerate", request.status):
                return request
            _check_no_pending_override(request)
            _check_classification_unchanged(request)
            _check_attempt_left(request)
            attempt_job_for_approval(request=request, actor=actor)
            return _start_attempt(actor, request, action="request.regenerate")
    audit_denied(
        actor=actor, action="request.regenerate", target_type="request", target_id=request.pk, reason=refusal
    )
    raise PermissionDenied(refusal)


def _regenerate_refusal(actor: Any, request: GenerationRequest) -> str:
    if request.requester_id != actor.pk and not has_role(actor, Role.PRIVACY_OFFICER):
        return "Only the requester or a privacy officer can generate this request again."
    if request.synthesizer == EXTERNAL_UPLOAD:
        return "This request's synthetic data is uploaded, not generated: upload a new file instead."
    return ""


def request_upload_synthetic(*, actor: Any, request_id: Any, uploaded_file: Any) -> GenerationRequest:
    """Attach a synthetic file made elsewhere to an approved `external_upload` request and queue
    its validation; it is published only if it passes the same gate as any release."""
    request = request_get_for(actor=actor, request_id=request_id)
    _check_may_upload(actor, request)
    check_transition("upload", request.status)  # before reading the file; checked again below
    # Parsed and stored before the transaction (it can take seconds); removed if anything fails.
    upload = synthetic_upload_store(
        uploaded_file=uploaded_file, columns=list(request.columns), max_rows=request.rows
    )
    try:
        with transaction.atomic():
            request = request_get_for(actor=actor, request_id=request_id, lock=True)
            _check_may_upload(actor, request)
            if request.job is not None and request.status == RequestStatus.APPROVED:
                raise Conflict("The last uploaded file is still being validated.", code="upload_in_progress")
            check_transition("upload", request.status)
            _check_no_pending_override(request)
            _check_classification_unchanged(request)
            _check_attempt_left(request)
            job = job_create_for_upload(
                dataset=request.dataset, columns=list(request.columns), upload=upload, actor=actor
            )
            attempt_record(request=request, job=job, source=AttemptSource.UPLOADED, actor=actor)
            return _start_attempt(actor, request, action="request.upload", sha256=upload.sha256)
    except BaseException:
        upload_discard(upload)
        raise


def _check_may_upload(actor: Any, request: GenerationRequest) -> None:
    if request.requester_id != actor.pk:
        audit_denied(
            actor=actor,
            action="request.upload",
            target_type="request",
            target_id=request.pk,
            reason="requester only",
        )
        raise PermissionDenied("Only the requester can upload the synthetic file for this request.")
    if request.synthesizer != EXTERNAL_UPLOAD:
        raise Conflict(
            f"This request is generated by {request.synthesizer}; to validate a file made elsewhere, "
            "file a request with the synthesizer 'Bring your own'.",
            code="not_an_upload_request",
        )


def _start_attempt(
    actor: Any, request: GenerationRequest, *, action: str, **details: Any
) -> GenerationRequest:
    request.status = RequestStatus.APPROVED
    request.save(update_fields=["status", "job", "updated_at"])
    audit_record(
        actor=actor,
        action=action,
        target_type="request",
        target_id=request.pk,
        details={
            "attempt": attempts_used(request),
            "allowed": attempts_allowed(request),
            "job": str(request.job_id),
            **details,
        },
    )
    return request
