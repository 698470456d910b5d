"""A bake-off attempt's path: its request follows all candidate jobs at once; when every one is
final, the passing ones are ranked and the best recommended; the requester (or an officer, for a
high tier) then picks one, which catalog.services.bakeoff_choose publishes.

    any candidate running      -> generating;  any validating -> validating (never backwards)
    all final, one passed      -> awaiting_choice (recommendation stored on the candidate run)
    all final, none passed     -> gate_failed (or failed / cancelled when none was validated)
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from approvals.bakeoff import choose_refusal, recommend, score
from approvals.choices import RequestStatus
from approvals.models import CandidateRun, GenerationRequest
from approvals.services.outputs import outputs_purge_unreleased
from approvals.services.requests import request_get_for
from approvals.workflow import check_transition
from audit.services import audit_denied, audit_record
from core.errors import Conflict, PermissionDenied
from core.roles import PortalUser
from generation.choices import FINAL_JOB_STATES, JobState
from generation.models import SynthesisJob

# Keyed and compared by the plain strings the model fields hold (RequestStatus members are str).
_ORDER: list[str] = [RequestStatus.APPROVED, RequestStatus.GENERATING, RequestStatus.VALIDATING]
_FINAL_ACTION: dict[str, str] = {
    RequestStatus.AWAITING_CHOICE: "bakeoff_ready",
    RequestStatus.GATE_FAILED: "gate_fail",
    RequestStatus.FAILED: "fail",
    RequestStatus.CANCELLED: "job_cancelled",
}


def candidate_run_of(job: SynthesisJob) -> CandidateRun | None:
    return CandidateRun.objects.select_related("attempt").filter(job_id=job.pk).first()


def request_for_job(job: SynthesisJob) -> GenerationRequest:
    """The request a job works for: its current job, or one of its bake-off candidates."""
    run = candidate_run_of(job)
    if run is not None:
        return GenerationRequest.objects.get(pk=run.attempt.request_id)
    return GenerationRequest.objects.get(job_id=job.pk)


def _aggregate(states: list[str]) -> str | None:
    """The request status a set of candidate job states stands for (None: no change yet)."""
    if any(s not in FINAL_JOB_STATES for s in states):
        if JobState.VALIDATING in states:
            return RequestStatus.VALIDATING
        return RequestStatus.GENERATING if JobState.RUNNING in states else None
    if JobState.SUCCEEDED in states:
        return RequestStatus.AWAITING_CHOICE
    if JobState.GATE_FAILED in states:
        return RequestStatus.GATE_FAILED
    if all(s == JobState.CANCELLED for s in states):
        return RequestStatus.CANCELLED
    return RequestStatus.FAILED


def bakeoff_follow(*, run: CandidateRun) -> GenerationRequest | None:
    """Mirror the candidates' jobs onto the request (system transition, audited)."""
    with transaction.atomic():
        request = GenerationRequest.objects.select_for_update().get(pk=run.attempt.request_id)
        if request.job_id != run.attempt.job_id:
            return request  # a later attempt superseded this one
        runs = list(run.attempt.candidates.select_related("job"))
        target = _aggregate([r.job.state for r in runs])
        if target is None or target == request.status:
            return request
        if target in _ORDER:
            if request.status not in _ORDER or _ORDER.index(target) < _ORDER.index(request.status):
                return request  # progress only moves forward
            check_transition("start" if target == RequestStatus.GENERATING else "validate", request.status)
        else:
            check_transition(_FINAL_ACTION[target], request.status)
        if target == RequestStatus.AWAITING_CHOICE:
            _mark_recommended(runs)
        request.status = target
        request.save(update_fields=["status", "updated_at"])
        audit_record(
            actor=None,
            action=f"request.{target}",
            target_type="request",
            target_id=request.pk,
            details={"attempt": run.attempt.number, "candidates": {str(r.index): r.job.state for r in runs}},
        )
        outputs_purge_unreleased(request=request, reason=f"request {target}")
    return request


def candidate_rows(runs: list[CandidateRun]) -> list[dict[str, Any]]:
    """Per candidate: index, synthesizer, epsilon, state, gate verdict, scores (values, for
    whoever may see them) and the checks that failed."""
    rows = []
    for run in runs:
        report = getattr(run.job, "validation", None)
        checks = report.checks if report else []
        rows.append(
            {
                "index": run.index,
                "run": run,
                "synthesizer": run.synthesizer,
                "epsilon_micro": run.epsilon_micro,
                "epsilon": run.epsilon,
                "options": run.options,
                "state": run.job.state,
                "validated": report is not None,
                "passed": bool(report and report.passed and run.job.state == JobState.SUCCEEDED),
                "failed_checks": [c["name"] for c in checks if not c.get("passed")],
                "score": score(checks),
                "recommended": run.recommended,
                "chosen": run.chosen,
            }
        )
    return rows


def _mark_recommended(runs: list[CandidateRun]) -> None:
    best = recommend(candidate_rows(runs))
    for run in runs:
        if run.recommended != (run.index == best):
            CandidateRun.objects.filter(pk=run.pk).update(recommended=run.index == best)


def latest_candidates(request: GenerationRequest) -> list[CandidateRun]:
    attempt = request.attempts.order_by("-number").first()
    if attempt is None:
        return []
    return list(attempt.candidates.select_related("job", "job__validation"))


def bakeoff_pick(*, actor: PortalUser, request_id: Any, index: Any) -> tuple[GenerationRequest, CandidateRun]:
    """Authorize and lock a pick (in the caller's transaction): the run to publish. Refusals by
    role are audited (after the caller's rollback, by `bakeoff_pick_refused`)."""
    request = request_get_for(actor=actor, request_id=request_id, lock=True)
    refusal = choose_refusal(actor, requester_id=request.requester_id, tier_level=request.tier_level)
    if refusal:
        raise PermissionDenied(refusal)
    check_transition("choose", request.status)
    runs = {str(r.index): r for r in latest_candidates(request)}
    run = runs.get(str(index))
    if run is None:
        raise Conflict(f"No candidate {index} in this request's latest attempt.", code="unknown_candidate")
    if run.job.state != JobState.SUCCEEDED:
        raise Conflict(
            f"Candidate {run.index + 1} ({run.synthesizer}) did not pass the release gate; pick one that did.",
            code="candidate_failed_gate",
        )
    return request, run


def bakeoff_chosen(*, actor: PortalUser, request: GenerationRequest, run: CandidateRun) -> None:
    """Record the pick (chosen and rejected candidates) after the release was created."""
    CandidateRun.objects.filter(pk=run.pk).update(chosen=True)
    runs = latest_candidates(request)
    request.status = RequestStatus.PUBLISHED
    request.job = run.job
    request.save(update_fields=["status", "job", "updated_at"])
    audit_record(
        actor=actor,
        action="request.candidate_choose",
        target_type="request",
        target_id=request.pk,
        details={
            "chosen": {"index": run.index, "synthesizer": run.synthesizer, "job": str(run.job_id)},
            "recommended": next((r.index for r in runs if r.recommended), None),
            "rejected": [
                {"index": r.index, "synthesizer": r.synthesizer, "job": str(r.job_id), "state": r.job.state}
                for r in runs
                if r.pk != run.pk
            ],
        },
    )
    # The rejected candidates' outputs can no longer be published.
    outputs_purge_unreleased(request=request, reason="request published", actor=actor)


def bakeoff_pick_refused(*, actor: PortalUser, request_id: Any, reason: str) -> None:
    audit_denied(
        actor=actor,
        action="request.candidate_choose",
        target_type="request",
        target_id=request_id,
        reason=reason,
    )
