"""Who may see which release. Every catalog read goes through `releases_visible_to`."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from approvals.choices import Audience
from catalog.models import AccessRequest, AccessRequestStatus, Release
from core.roles import SEES_EVERY_RELEASE, Role, has_role

# The tier's `access_level` (approvals.policies: never wider than the audience) narrows who sees an
# organization-wide release: "internal" keeps it to the team even when the audience is wider.
# Releases published before the key existed have no value and follow their audience.
_ORG_LEVEL = Q(request__tier_controls__access_level__in=["organization", "external"]) | Q(
    request__tier_controls__access_level__isnull=True
)


def releases_visible_to(*, user: Any) -> QuerySet[Release]:
    base = Release.objects.select_related("request", "dataset", "team")
    if not has_role(user, *[r.value for r in Role]):
        return base.none()
    # Oversight roles see every release's card (they answer for them); downloads are audited.
    if has_role(user, *SEES_EVERY_RELEASE):
        return base
    visible = Q(audience=Audience.ORGANIZATION) & _ORG_LEVEL
    if user.team_id:
        visible |= Q(team_id=user.team_id)
    # A live grant (catalog.access) widens visibility to one release until it expires or is revoked.
    granted = AccessRequest.objects.filter(
        release=OuterRef("pk"),
        requester=user,
        status=AccessRequestStatus.GRANTED,
        grant_expires_at__gt=timezone.now(),
    )
    return base.filter(visible | Q(request__requester=user) | Q(Exists(granted)))


def releases_discoverable_to(*, user: Any) -> QuerySet[Release]:
    """Releases whose card summary (never the data) a member may find, to ask for access: by default
    every release, for every signed-in member; the tier's policy can hide one
    (`discoverable: false` in the request's tier controls)."""
    base = Release.objects.select_related("request", "dataset", "team")
    if not has_role(user, *[r.value for r in Role]):
        return base.none()
    if has_role(user, *SEES_EVERY_RELEASE):
        return base
    hidden = Release.objects.filter(request__tier_controls__discoverable=False).values("pk")
    return base.filter(~Q(pk__in=hidden) | Q(pk__in=releases_visible_to(user=user).values("pk")))
