"""Reads of generation requests and policy versions, scoped to what each user may see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from approvals.choices import RequestStatus, TierLevel
from approvals.models import GenerationRequest, PolicyVersion
from core.roles import AUDIT_READERS, Role, has_role

_OVERSIGHT = (Role.PRIVACY_OFFICER, Role.ADMIN, Role.AUDITOR, Role.DATA_STEWARD)
REVIEWER_ROLES = (Role.PRIVACY_OFFICER, Role.DATA_STEWARD)


def requests_visible_to(*, user: Any) -> QuerySet[GenerationRequest]:
    """Requesters see their own drafts; their team sees the rest; oversight roles see all filed."""
    base = GenerationRequest.objects.select_related("dataset", "requester", "job", "team")
    if has_role(user, *_OVERSIGHT):
        return base.filter(Q(requester=user) | ~Q(status=RequestStatus.DRAFT))
    if has_role(user, Role.DATA_SCIENTIST):
        team_filed = (
            Q(team_id=user.team_id) & ~Q(status=RequestStatus.DRAFT) if user.team_id else Q(pk__in=[])
        )
        return base.filter(Q(requester=user) | team_filed)
    return base.none()


def review_queue(*, user: Any) -> QuerySet[GenerationRequest]:
    """Requests this reviewer may decide, longest-waiting first; never the reviewer's own.

    Privacy officers see every request in review; data stewards only those whose tier names
    them as approvers (high tier in the shipped policy).
    """
    if not has_role(user, *REVIEWER_ROLES):
        return GenerationRequest.objects.none()
    queue = (
        requests_visible_to(user=user)
        .filter(status=RequestStatus.IN_REVIEW)
        .exclude(requester=user)
        .prefetch_related("decisions")
        .order_by("submitted_at", "pk")
    )
    if user.role != Role.PRIVACY_OFFICER:
        # Role names do not overlap, so a text match on the JSON list is exact enough and works
        # on SQLite and PostgreSQL alike.
        queue = queue.filter(tier_controls__approver_roles__icontains=f'"{user.role}"')
    return queue


def policy_versions_for(*, user: Any) -> QuerySet[PolicyVersion]:
    """Policy versions: administrators manage them; auditors and privacy officers read them."""
    if not has_role(user, *AUDIT_READERS):
        return PolicyVersion.objects.none()
    return PolicyVersion.objects.select_related("published_by").order_by("-number")


@dataclass(frozen=True)
class CycleTime:
    request_id: Any
    title: str
    tier: str
    outcome: str
    submitted_at: Any
    decided_at: Any
    hours: float


def cycle_times_for(*, user: Any) -> list[CycleTime]:
    """Approval cycle time of every reviewed request: first submission to the reviewers' final
    decision (approve or reject). Requests the policy prohibited never reach a reviewer and are
    left out. Oversight roles only."""
    if not has_role(user, *AUDIT_READERS):
        return []
    rows = (
        requests_visible_to(user=user)
        .filter(first_submitted_at__isnull=False, decided_at__isnull=False)
        .exclude(tier_level=TierLevel.PROHIBITED)
        .order_by("first_submitted_at")
        .values_list("pk", "title", "tier_level", "status", "first_submitted_at", "decided_at")
    )
    return [
        CycleTime(
            pk, title, tier, _outcome(status), start, end, max(0.0, (end - start).total_seconds() / 3600)
        )
        for pk, title, tier, status, start, end in rows
    ]


def _outcome(status: str) -> str:
    return "rejected" if status == RequestStatus.REJECTED else "approved"


def waiting_for_review(*, user: Any) -> QuerySet[GenerationRequest]:
    """Requests still in review (for the evidence page's open-items count)."""
    if not has_role(user, *AUDIT_READERS):
        return GenerationRequest.objects.none()
    return requests_visible_to(user=user).filter(status=RequestStatus.IN_REVIEW).order_by("submitted_at")
