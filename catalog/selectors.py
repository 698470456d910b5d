"""Who may see which release. Every catalog read goes through `releases_visible_to`."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from approvals.choices import Audience
from catalog.models import Release
from core.roles import SEES_EVERY_RELEASE, Role, has_role


def releases_visible_to(*, user: Any) -> QuerySet[Release]:
    base = Release.objects.select_related("request", "dataset", "team")
    if not has_role(user, *[r.value for r in Role]):
        return base.none()
    # Oversight roles see every release's card (they answer for them); downloads are audited.
    if has_role(user, *SEES_EVERY_RELEASE):
        return base
    visible = Q(audience=Audience.ORGANIZATION)
    if user.team_id:
        visible |= Q(team_id=user.team_id)
    return base.filter(visible | Q(request__requester=user))
