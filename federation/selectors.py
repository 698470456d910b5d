"""Reads of federated studies, filtered by who asks (a list never shows what its reader may not see)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from core.roles import SEES_EVERY_REQUEST, Role, has_role
from federation.models import Site, Study


def studies_visible_to(*, user: Any) -> QuerySet[Study]:
    """Oversight and custody roles see every study (stewards decide for their sites); a scientist
    sees their team's studies."""
    if has_role(user, *SEES_EVERY_REQUEST):
        return Study.objects.all()
    if has_role(user, Role.DATA_SCIENTIST):
        team_id = getattr(user, "team_id", None)
        if team_id is None:
            return Study.objects.filter(requester_id=user.pk)
        return Study.objects.filter(Q(team_id=team_id) | Q(requester_id=user.pk))
    return Study.objects.none()


def sites_visible_to(*, user: Any) -> QuerySet[Site]:
    """Every signed-in member with a role sees the registered sites (names and stewards only)."""
    if getattr(user, "is_authenticated", False) and getattr(user, "role", ""):
        return Site.objects.select_related("dataset").all()
    return Site.objects.none()


def studies_awaiting(*, user: Any) -> QuerySet[Study]:
    """Studies waiting for this user's decision: every submitted one for an officer, those naming
    one of their sites for a steward."""
    from federation.models import StudyStatus

    submitted = Study.objects.filter(status=StudyStatus.SUBMITTED)
    if has_role(user, Role.PRIVACY_OFFICER):
        return submitted.exclude(requester_id=user.pk)
    if has_role(user, Role.DATA_STEWARD):
        return submitted.filter(sites__site__steward_id=user.pk).distinct()
    return Study.objects.none()
