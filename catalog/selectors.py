"""Who may see which release. Every catalog read goes through `releases_visible_to`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from approvals.choices import Audience
from catalog.models import AccessRequest, AccessRequestStatus, Release
from core.roles import SEES_EVERY_RELEASE, Role, has_role
from generation.models import SourceDataset

# The tier's `access_level` (approvals.policies: never wider than the audience) narrows who sees an
# organization-wide release: "internal" keeps it to the team even when the audience is wider.
# Releases published before the key existed have no value and follow their audience. A request's
# release and a federated study's alike carry the value fixed at publication.
_WIDE = ["organization", "external"]
# Both read from the release row (fixed at publication: Release.visibility_fields), never from
# the request's JSON: a scientist's catalog filters every release by them.
_ORG_LEVEL = Q(access_level__in=[*_WIDE, ""])


def releases_visible_to(*, user: Any) -> QuerySet[Release]:
    base = Release.objects.select_related("request", "dataset", "team")
    if not has_role(user, *[r.value for r in Role]):
        return base.none()
    # Oversight roles see every release's card (they answer for them); downloads are audited.
    if has_role(user, *SEES_EVERY_RELEASE):
        return base
    return base.filter(_visible_condition(user))


def releases_to_ask_for(*, user: Any) -> QuerySet[Release]:
    """Discoverable releases `user` cannot use yet: the catalog's "ask to use" table. The
    condition is the negation of releases_visible_to's, rather than a NOT IN over that whole
    queryset (catalog/tests/test_release_page_wiring.py holds the two to the same rows)."""
    base = Release.objects.select_related("request", "dataset", "team")
    if not has_role(user, *[r.value for r in Role]) or has_role(user, *SEES_EVERY_RELEASE):
        return base.none()  # nobody, or oversight, who already sees every release
    return base.filter(discoverable=True).exclude(_visible_condition(user))


def _visible_condition(user: Any) -> Q:
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
    return visible | Q(requester=user) | Q(Exists(granted))


def releases_discoverable_to(*, user: Any) -> QuerySet[Release]:
    """Releases whose card summary (never the data) a member may find, to ask for access: by default
    every release, for every signed-in member; the tier's policy can hide one
    (`discoverable: false` in the request's tier controls)."""
    base = Release.objects.select_related("request", "dataset", "team")
    if not has_role(user, *[r.value for r in Role]):
        return base.none()
    if has_role(user, *SEES_EVERY_RELEASE):
        return base
    return base.filter(Q(discoverable=True) | Q(pk__in=releases_visible_to(user=user).values("pk")))


# --- The catalog list: filters, state and what a row reads ------------------------------------

RELEASE_STATES = ("active", "expired", "withdrawn")


def release_state(release: Release) -> str:
    """`withdrawn` (an incident; final), `expired` (until an officer renews it) or `active`."""
    if release.withdrawn_at is not None:
        return "withdrawn"
    return "expired" if release.is_expired else "active"


def _day_start(day: date) -> datetime:
    # A datetime range, not created_at__date: the index on created_at serves it.
    return datetime.combine(day, time.min, tzinfo=UTC)


def releases_filter(
    releases: QuerySet[Release],
    *,
    q: str = "",
    dataset: Any = None,
    team: str = "",
    dp: bool | None = None,
    state: str = "",
    published_from: date | None = None,
    published_to: date | None = None,
    kind: str = "",
) -> QuerySet[Release]:
    """Narrow a visible (or discoverable) queryset, never widen it: each filter adds a condition."""
    if kind:  # "table" or "model" (catalog.models.ReleaseKind)
        releases = releases.filter(kind=kind)
    if q:
        releases = releases.filter(title__icontains=q)
    if dataset:
        releases = releases.filter(dataset_id=dataset)
    if team:
        releases = releases.filter(team__name__iexact=team)
    if dp is not None:
        releases = releases.filter(is_dp=dp)
    if state:
        now = timezone.now()
        live = Q(withdrawn_at__isnull=True)
        if state == "withdrawn":
            releases = releases.filter(withdrawn_at__isnull=False)
        elif state == "expired":
            releases = releases.filter(live & Q(expires_at__lte=now))
        else:
            releases = releases.filter(live & (Q(expires_at__isnull=True) | Q(expires_at__gt=now)))
    if published_from:
        releases = releases.filter(created_at__gte=_day_start(published_from))
    if published_to:
        releases = releases.filter(created_at__lt=_day_start(published_to + timedelta(days=1)))
    return releases.order_by("-created_at", "-pk")


def release_list_rows(releases: QuerySet[Release]) -> QuerySet[Release]:
    """What a list row reads: its dataset and team joined in the page's query, and none of the
    large JSON a summary does not show (metrics, receipt, privacy block: the detail has them).
    Reading a deferred field on a row would cost a query per row; the list tests count them."""
    return (
        releases.select_related(None)
        .select_related("dataset", "team")
        .defer("metrics", "receipt", "privacy", "card")
    )


def release_filter_choices(releases: QuerySet[Release]) -> dict[str, list[tuple[str, str]]]:
    """The datasets and teams of the releases `releases` holds (what the user may see): one query
    each, whatever the number of releases, and no name the user could not see anyway."""
    base = releases.order_by()
    teams = sorted({name for name in base.values_list("team__name", flat=True).distinct() if name})
    # The datasets by id from the releases' dataset ids (a subquery the visibility index covers),
    # not a DISTINCT over the join, which SQLite plans as a walk over every release row. A
    # federated study's model has site datasets, not one source: its null id matches nothing.
    sources = SourceDataset.objects.filter(pk__in=base.values("dataset_id")).values_list(
        "pk", "name", "version"
    )
    datasets = sorted(
        ((str(pk), f"{name} v{version}") for pk, name, version in sources), key=lambda item: item[1]
    )
    return {"teams": [(t, t) for t in teams], "datasets": datasets}
