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

from approvals import rules
from approvals.bakeoff import DEFAULT_AUTO_TIME_BUDGET_S as DEFAULT_TIME_BUDGET_S
from approvals.bakeoff import with_time_budget
from approvals.choices import AttemptSource, OverrideStatus, RequestKind, RequestStatus
from approvals.models import CandidateRun, GenerationAttempt, GenerationRequest, PrivacyRetry
from approvals.rules import attempts_allowed
from approvals.selectors import (
    approved_retry_waiting,
    failed_privacy_checks,
    latest_attempt_jobs,
    latest_privacy_failures,
)
from approvals.services.outputs import outputs_purge_unreleased
from approvals.services.requests import check_model_still_declared, request_get_for
from approvals.workflow import check_transition
from audit.services import audit_denied, audit_record
from core.errors import Conflict, PermissionDenied
from core.roles import PortalUser
from generation.models import SynthesisJob
from generation.services import job_create, job_create_for_upload, synthetic_upload_store, upload_discard
from generation.synthesizers import EXTERNAL_UPLOAD
from generation.synthesizers import with_time_budget as synthesizer_time_budget

# Reads that moved to approvals.selectors (and the rule to approvals.rules); importable from here
# for the modules that already do.
__all__ = [
    "attempts_allowed",
    "attempts_used",
    "failed_privacy_checks",
    "latest_attempt_jobs",
    "latest_privacy_failures",
    "privacy_retry_refusal",
    "regenerate_locked",
    "request_regenerate",
    "request_upload_synthetic",
]


def attempts_used(request: GenerationRequest) -> int:
    return request.attempts.count()


def attempt_record(
    *, request: GenerationRequest, job: SynthesisJob, source: str, actor: PortalUser
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


def attempt_job_for_approval(*, request: GenerationRequest, actor: PortalUser) -> None:
    """On approval (and each new attempt): queue the request's job, or one job per bake-off
    candidate (each DP candidate reserving its own epsilon, in the caller's transaction), unless
    the requester will upload the synthetic file."""
    if request.synthesizer == EXTERNAL_UPLOAD:
        return
    if request.kind == RequestKind.DP_MODEL:
        _queue_model(request=request, actor=actor)
        return
    if request.candidates:
        _queue_candidates(request=request, actor=actor)
        return
    # A deep synthesizer trains within the tier's time budget (generation.synthesizers.sdv_deep).
    budget = int((request.tier_controls or {}).get("synthesis_time_budget_s") or DEFAULT_TIME_BUDGET_S)
    job = job_create(
        dataset=request.dataset,
        columns=request.columns,
        synthesizer=request.synthesizer,
        rows=request.rows,
        epsilon_micro=request.epsilon_micro,
        delta_atto=request.delta_atto,
        options=synthesizer_time_budget(request.synthesizer, request.options, budget),
        actor=actor,
    )
    attempt_record(request=request, job=job, source=AttemptSource.SYNTHESIZED, actor=actor)


def model_job_options(request: GenerationRequest) -> dict[str, Any]:
    """What a dp_model job carries besides its columns (features, then the target) and family:
    read by the pipeline (catalog) to train instead of synthesize."""
    return {
        "kind": RequestKind.DP_MODEL.value,
        "target": request.target,
        "features": list(request.columns),
        # The family's training options as filed (parsed by the family); {} for its defaults.
        "model_options": dict(request.options or {}),
    }


def _queue_model(*, request: GenerationRequest, actor: PortalUser) -> None:
    """A dp_model request's job: the model family as synthesizer, the features and the target as
    columns (pinned to the signed-off specs), its epsilon reserved from the dataset's ledger like
    any DP job, in the caller's transaction."""
    # The dataset may have been signed off again since submission.
    check_model_still_declared(request)
    job = job_create(
        dataset=request.dataset,
        columns=[*request.columns, request.target],
        synthesizer=request.synthesizer,
        rows=request.rows,
        epsilon_micro=request.epsilon_micro,
        delta_atto=request.delta_atto,  # None except for an (epsilon, delta) family (dp_sgd_mlp)
        options=model_job_options(request),
        actor=actor,
        audit_details={"kind": RequestKind.DP_MODEL.value, "target": request.target},
    )
    attempt_record(request=request, job=job, source=AttemptSource.SYNTHESIZED, actor=actor)


def _queue_candidates(*, request: GenerationRequest, actor: PortalUser) -> None:
    candidates = with_time_budget(
        list(request.candidates), auto=request.candidates_auto, controls=request.tier_controls or {}
    )
    jobs = [
        job_create(
            dataset=request.dataset,
            columns=request.columns,
            synthesizer=c["synthesizer"],
            rows=request.rows,
            epsilon_micro=c.get("epsilon_micro"),
            delta_atto=c.get("delta_atto"),
            options=c.get("options") or {},
            actor=actor,
            audit_details={"candidate": index},
        )
        for index, c in enumerate(candidates)
    ]
    # The first candidate's job is the attempt's (and the request's) job; every candidate has a run.
    attempt = attempt_record(request=request, job=jobs[0], source=AttemptSource.SYNTHESIZED, actor=actor)
    for index, (candidate, job) in enumerate(zip(candidates, jobs, strict=True)):
        CandidateRun.objects.create(
            attempt=attempt,
            index=index,
            job=job,
            synthesizer=candidate["synthesizer"],
            epsilon_micro=candidate.get("epsilon_micro"),
            options=candidate.get("options") or {},
        )


def _check_attempt_left(request: GenerationRequest) -> None:
    refusal = rules.attempts_left_refusal(attempts_used(request), attempts_allowed(request))
    if refusal:
        raise Conflict(refusal, code="attempts_exhausted")


def _check_no_pending_override(request: GenerationRequest) -> None:
    pending = request.gate_overrides.filter(status=OverrideStatus.PENDING).exists()
    refusal = rules.override_pending_refusal(pending)
    if refusal:
        raise Conflict(refusal, code="override_pending")


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


def request_regenerate(*, actor: PortalUser, request_id: Any) -> GenerationRequest:
    """Synthesize again after a failed gate (or a failed job), as a new attempt with a new seed.

    The requester or a privacy officer may ask; the request's parameters stay as approved. After a
    failed privacy check nobody regenerates directly (409 `privacy_retry_needs_officer`, nothing
    reserved): the requester asks for a retry and a privacy officer approves it with a comment
    (approvals.services.retries), so a release cannot be re-rolled until an attack misses.
    """
    with transaction.atomic():
        request = request_get_for(actor=actor, request_id=request_id, lock=True)
        refusal = rules.regenerator_refusal(actor, request)
        blocked = ""
        if not refusal:
            if not check_transition("regenerate", request.status):
                return request
            blocked = privacy_retry_refusal(request)
            if not blocked:
                return regenerate_locked(actor=actor, request=request, action="request.regenerate")
    if blocked:
        audit_denied(
            actor=actor,
            action="request.regenerate",
            target_type="request",
            target_id=request.pk,
            reason=blocked,
        )
        raise Conflict(blocked, code="privacy_retry_needs_officer")
    audit_denied(
        actor=actor, action="request.regenerate", target_type="request", target_id=request.pk, reason=refusal
    )
    raise PermissionDenied(refusal)


def regenerate_locked(
    *, actor: PortalUser, request: GenerationRequest, action: str, **details: Any
) -> GenerationRequest:
    """Queue the next attempt of a request whose row the caller has locked (checks included)."""
    _check_no_pending_override(request)
    _check_classification_unchanged(request)
    _check_attempt_left(request)
    attempt_job_for_approval(request=request, actor=actor)
    return _start_attempt(actor, request, action=action, **details)


def privacy_retry_refusal(request: GenerationRequest) -> str:
    """Why a direct (self-service) retry is refused, or "" when it may run: the latest attempt
    failed a privacy check, so only a privacy officer's approval can queue another."""
    return rules.privacy_retry_refusal(latest_privacy_failures(request))


def request_upload_synthetic(*, actor: PortalUser, request_id: Any, uploaded_file: Any) -> GenerationRequest:
    """Attach a synthetic file made elsewhere to an approved `external_upload` request and queue
    its validation; it is published only if it passes the same gate as any release."""
    request = request_get_for(actor=actor, request_id=request_id)
    _check_may_upload(actor, request)
    check_transition("upload", request.status)  # before reading the file; checked again below
    # Parsed and stored before the transaction (it can take seconds); removed if anything fails.
    upload = synthetic_upload_store(
        uploaded_file=uploaded_file,
        dataset=request.dataset,
        columns=list(request.columns),
        max_rows=request.rows,
    )
    try:
        with transaction.atomic():
            request = request_get_for(actor=actor, request_id=request_id, lock=True)
            _check_may_upload(actor, request)
            in_progress = rules.upload_in_progress_refusal(request)
            if in_progress:
                raise Conflict(in_progress, code="upload_in_progress")
            check_transition("upload", request.status)
            _check_no_pending_override(request)
            _check_classification_unchanged(request)
            _check_attempt_left(request)
            retry = _privacy_retry_for_upload(request)
            job = job_create_for_upload(
                dataset=request.dataset, columns=list(request.columns), upload=upload, actor=actor
            )
            attempt_record(request=request, job=job, source=AttemptSource.UPLOADED, actor=actor)
            if retry is not None:
                PrivacyRetry.objects.filter(pk=retry.pk).update(retry_job=job)
            return _start_attempt(actor, request, action="request.upload", sha256=upload.sha256)
    except BaseException:
        upload_discard(upload)
        raise


def _privacy_retry_for_upload(request: GenerationRequest) -> PrivacyRetry | None:
    """After an uploaded file failed a privacy check, the next file needs a privacy officer's
    approved retry too (uploading a reworked file until an attack misses is the same re-roll)."""
    if request.status == RequestStatus.APPROVED or not privacy_retry_refusal(request):
        return None
    retry = approved_retry_waiting(request)
    if retry is None:
        raise Conflict(privacy_retry_refusal(request), code="privacy_retry_needs_officer")
    return retry


def _check_may_upload(actor: PortalUser, request: GenerationRequest) -> None:
    refusal = rules.uploader_refusal(actor, request)
    if refusal:
        audit_denied(
            actor=actor,
            action="request.upload",
            target_type="request",
            target_id=request.pk,
            reason="requester only",
        )
        raise PermissionDenied(refusal)
    refusal = rules.upload_kind_refusal(request)
    if refusal:
        raise Conflict(refusal, code="not_an_upload_request")


def _start_attempt(
    actor: PortalUser, request: GenerationRequest, *, action: str, **details: Any
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
    outputs_purge_unreleased(request=request, reason="superseded by a new attempt", actor=actor)
    return request
