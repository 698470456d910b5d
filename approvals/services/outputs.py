"""Which of a request's synthetic outputs may still be published, and deleting the rest.

When outputs are deleted (each call is idempotent and runs in the caller's transaction):
- a new attempt starts (regenerate, or a new bring-your-own upload): every earlier attempt's
  output is superseded, since a request publishes only its current attempt;
- the request's job ends (published, failed at the gate, failed, cancelled) or a bake-off
  candidate is chosen: every output but the published one, or the gate-failed one a privacy
  officer may still override, is deleted, and so is every bring-your-own upload (a final job
  never reads it again);
- a request with a job is withdrawn;
- an override of the failed gate is declined: that attempt can no longer be published (a new
  attempt, within the policy's limit, is the way on).
Kept: the latest attempt's jobs while they run or await a choice, the published job, a
gate-failed current job with no declined override, and any job with a pending or approved
override.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from approvals.choices import OverrideStatus, RequestStatus
from approvals.models import GateOverride, GenerationRequest
from core.roles import PortalUser
from generation.models import SynthesisJob
from generation.services.outputs import jobs_purge_files

# While the latest attempt runs or awaits a choice, its jobs (one, or one per bake-off candidate)
# may still be published.
_LATEST_KEPT = (
    RequestStatus.APPROVED,
    RequestStatus.GENERATING,
    RequestStatus.VALIDATING,
    RequestStatus.AWAITING_CHOICE,
)


def outputs_purge_unreleased(
    *, request: GenerationRequest, reason: str, actor: PortalUser | None = None
) -> list[str]:
    """Delete the stored outputs of `request` that can no longer be published (see module doc)."""
    jobs = SynthesisJob.objects.filter(
        Q(attempt__request=request) | Q(candidate_run__attempt__request=request) | Q(pk=request.job_id)
    ).distinct()
    return jobs_purge_files(
        jobs=list(jobs), keep_output=_outputs_to_keep(request), reason=reason, actor=actor
    )


def _outputs_to_keep(request: GenerationRequest) -> set[Any]:
    # A release's own file is never deleted whatever this returns (generation.services.outputs).
    keep = set(
        GateOverride.objects.filter(
            request=request, status__in=[OverrideStatus.PENDING, OverrideStatus.APPROVED]
        ).values_list("job_id", flat=True)
    )
    current = request.job_id
    if current is None:
        return keep
    if request.status == RequestStatus.PUBLISHED:
        keep.add(current)
    elif request.status in _LATEST_KEPT:
        keep.add(current)
        latest = request.attempts.order_by("-number").first()
        if latest is not None:
            keep |= set(latest.candidates.values_list("job_id", flat=True))
    elif (
        request.status == RequestStatus.GATE_FAILED
        and not request.gate_overrides.filter(job_id=current, status=OverrideStatus.DECLINED).exists()
    ):
        keep.add(current)
    return keep
