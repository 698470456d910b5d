"""Reads of generation requests, scoped to what each user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from approvals.choices import RequestStatus
from approvals.models import GenerationRequest
from core.roles import Role, has_role

_OVERSIGHT = (Role.PRIVACY_OFFICER, Role.ADMIN, Role.AUDITOR, Role.DATA_STEWARD)


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
    """Requests awaiting this reviewer, longest-waiting first; never the reviewer's own."""
    if not has_role(user, Role.PRIVACY_OFFICER):
        return GenerationRequest.objects.none()
    return (
        requests_visible_to(user=user)
        .filter(status=RequestStatus.IN_REVIEW)
        .exclude(requester=user)
        .order_by("submitted_at")
    )
