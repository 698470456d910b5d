"""The request state machine: which actions are allowed from which status.

    draft --submit--> in_review | rejected (policy prohibits)
    in_review --decide--> in_review (quorum not yet met) | approved | rejected | changes_requested
    changes_requested --update/submit--> ... (resubmitting re-tiers under the active policy)
    draft | in_review | changes_requested --cancel (withdraw)--> cancelled
    approved, before any job (an upload request awaiting its file) --cancel--> cancelled
    approved --> generating --> validating --> published | gate_failed | failed   (the job's path)
    approved --upload--> approved (external_upload requests: the uploaded file's job is queued)
    gate_failed | failed --regenerate / upload--> approved (a new attempt, within the policy's limit)
    (bake-off) generating | validating --> awaiting_choice (a candidate passed) | gate_failed (none did)
    awaiting_choice --choose--> published (the requester, or a privacy officer for a high tier)
    gate_failed --publish_override--> published (a privacy officer's justified override, approved by
                                                 a second privacy officer)

Repeating an action that already produced the current status is a no-op; any other action not
listed raises Conflict (HTTP 409) and changes nothing. A reviewer repeating their own decision in
the same round is a no-op too (see approvals.services.decisions).
"""

from __future__ import annotations

from approvals.choices import RequestStatus as S
from core.errors import Conflict

TRANSITIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "update": {S.DRAFT: (S.DRAFT,), S.CHANGES_REQUESTED: (S.CHANGES_REQUESTED,)},
    "submit": {S.DRAFT: (S.IN_REVIEW, S.REJECTED), S.CHANGES_REQUESTED: (S.IN_REVIEW, S.REJECTED)},
    "decide": {S.IN_REVIEW: (S.IN_REVIEW, S.APPROVED, S.REJECTED, S.CHANGES_REQUESTED)},
    # From approved only while no job exists (an external_upload request awaiting its file);
    # an approved request with a job is stopped through cancel_job instead.
    "cancel": {
        S.DRAFT: (S.CANCELLED,),
        S.IN_REVIEW: (S.CANCELLED,),
        S.CHANGES_REQUESTED: (S.CANCELLED,),
        S.APPROVED: (S.CANCELLED,),
    },
    # A job re-claimed after its lease lapsed in validation (its worker died) starts over: the
    # request goes back to generating with it rather than the pipeline stopping on a Conflict.
    "start": {S.APPROVED: (S.GENERATING,), S.VALIDATING: (S.GENERATING,)},
    "validate": {S.GENERATING: (S.VALIDATING,), S.APPROVED: (S.VALIDATING,)},
    "publish": {S.VALIDATING: (S.PUBLISHED,)},
    # A bake-off follows all its candidates' jobs at once, so it may fail the gate (or have
    # candidates ready) straight from generating.
    "gate_fail": {S.VALIDATING: (S.GATE_FAILED,), S.GENERATING: (S.GATE_FAILED,)},
    "bakeoff_ready": {S.GENERATING: (S.AWAITING_CHOICE,), S.VALIDATING: (S.AWAITING_CHOICE,)},
    "choose": {S.AWAITING_CHOICE: (S.PUBLISHED,)},
    "fail": {S.APPROVED: (S.FAILED,), S.GENERATING: (S.FAILED,), S.VALIDATING: (S.FAILED,)},
    # Stopping generation (requester or a privacy officer); the request follows when the job ends.
    "cancel_job": {S.APPROVED: (S.APPROVED,), S.GENERATING: (S.GENERATING,), S.VALIDATING: (S.VALIDATING,)},
    "job_cancelled": {S.APPROVED: (S.CANCELLED,), S.GENERATING: (S.CANCELLED,), S.VALIDATING: (S.CANCELLED,)},
    # New attempts (approvals.services.attempts); the policy caps how many.
    "regenerate": {S.GATE_FAILED: (S.APPROVED,), S.FAILED: (S.APPROVED,)},
    "upload": {S.APPROVED: (S.APPROVED,), S.GATE_FAILED: (S.APPROVED,), S.FAILED: (S.APPROVED,)},
    "publish_override": {S.GATE_FAILED: (S.PUBLISHED,)},
}

# The status an action leaves behind when repeated (so the repeat is a no-op, not a 409).
_IDEMPOTENT_RESULT = {
    "submit": (S.IN_REVIEW,),
    "cancel": (S.CANCELLED,),
    "start": (S.GENERATING,),
    "validate": (S.VALIDATING,),
    "publish": (S.PUBLISHED,),
    "gate_fail": (S.GATE_FAILED,),
    "fail": (S.FAILED,),
    "cancel_job": (S.CANCELLED,),
    "job_cancelled": (S.CANCELLED,),
    # A second click on "regenerate" finds the new attempt already under way.
    "regenerate": (S.APPROVED, S.GENERATING, S.VALIDATING),
    "publish_override": (S.PUBLISHED,),
    "bakeoff_ready": (S.AWAITING_CHOICE,),
    "choose": (S.PUBLISHED,),
}


def allowed(action: str, current: str) -> bool:
    """True when the action may run from `current` (for showing buttons; no side effects)."""
    return current in TRANSITIONS[action]


def transition_refusal(action: str, current: str) -> str:
    """Why the action may not run from `current` ("" when it may): the one wording of the 409
    that check_transition raises, also shown beside the buttons (approvals.rules)."""
    if allowed(action, current):
        return ""
    return f"This request is {S(current).label.lower()}; it cannot be {action_label(action)} now."


def check_transition(action: str, current: str) -> bool:
    """True when the action may proceed; False when it is a repeat (no-op); else Conflict."""
    if current in TRANSITIONS[action]:
        return True
    if current in _IDEMPOTENT_RESULT.get(action, ()):
        return False
    raise Conflict(transition_refusal(action, current), code="invalid_transition")


def action_label(action: str) -> str:
    return {
        "update": "edited",
        "submit": "submitted",
        "decide": "decided",
        "cancel": "withdrawn",
        "cancel_job": "stopped",
        "job_cancelled": "cancelled",
        "start": "started",
        "validate": "validated",
        "publish": "published",
        "gate_fail": "failed at the gate",
        "fail": "failed",
        "regenerate": "generated again",
        "upload": "given an uploaded file",
        "publish_override": "published by override",
        "bakeoff_ready": "offered for a choice of candidate",
        "choose": "published from a chosen candidate",
    }[action]
