"""Access that is enforced: expiry and renewal, withdrawal for incidents, access requests and grants.

Every write authorizes, changes state and writes its audit event in one transaction; a refusal is
audited in its own committed transaction (audit_denied) before the error is raised, so it leaves
evidence and changes nothing. Audit rows carry ids, dates and counts only: never the free-text
purpose, comment or reason (a person may type anything there), which live on the rows themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from audit.services import audit_denied, audit_record
from catalog.models import AccessRequest, AccessRequestStatus, Release, ReleaseOrigin
from catalog.selectors import releases_discoverable_to, releases_visible_to
from core.errors import Conflict, Gone, NotFound, PermissionDenied, ValidationFailed
from core.ids import first_by_uuid
from core.roles import SEES_EVERY_RELEASE, PortalUser, Role, has_role
from generation.selectors import datasets_visible_to
from notifications.models import NotificationKind
from notifications.services import notify

logger = logging.getLogger(__name__)

MAX_REASON = 2000


def _is_officer(actor: PortalUser) -> bool:
    # Renewing, withdrawing and deciding access are privacy decisions. No capability names them yet
    # (core.roles); the privacy-officer role is the one the issue names.
    return has_role(actor, Role.PRIVACY_OFFICER)


# The tier control (approvals.policies) that lets the owning team's data steward decide access to
# a release besides the privacy officers. Absent (policies before it existed) means officers only.
TEAM_STEWARD_DECIDES = "team_steward_decides_access"


def _delegated_to_team_steward(release: Release) -> bool:
    return release.tier_controls.get(TEAM_STEWARD_DECIDES) is True


def _is_team_steward(actor: PortalUser, release: Release) -> bool:
    """A data steward of the team that owns the release (the team it was published for)."""
    team_id = getattr(actor, "team_id", None)
    return has_role(actor, Role.DATA_STEWARD) and team_id is not None and release.team_id == team_id


def _may_decide_access(actor: PortalUser, request: AccessRequest) -> bool:
    """Privacy officers decide every access request; a data steward of the release's team decides
    those whose tier's policy delegates to them (team_steward_decides_access), never their own."""
    if _is_officer(actor):
        return True
    release = request.release
    return (
        _is_team_steward(actor, release)
        and _delegated_to_team_steward(release)
        and request.requester_id != actor.pk
    )


def _team_steward_scope(user: Any) -> Q:
    """Access requests for the releases of a data steward's team (a steward answers for the team's
    data, so may see who asked to use it and why); nothing for anyone else."""
    if not has_role(user, Role.DATA_STEWARD) or getattr(user, "team_id", None) is None:
        return Q(pk__in=[])
    return Q(release__team_id=user.team_id)


def _delegated_scope(user: Any) -> Q:
    """The access requests a data steward decides: their team's releases whose tier delegates."""
    delegated = Q(**{f"release__request__tier_controls__{TEAM_STEWARD_DECIDES}": True}) | Q(
        release__origin=ReleaseOrigin.STUDY, **{f"release__controls__{TEAM_STEWARD_DECIDES}": True}
    )
    return _team_steward_scope(user) & delegated


def _refuse(actor: PortalUser, action: str, target_type: str, target_id: Any, reason: str) -> None:
    audit_denied(actor=actor, action=action, target_type=target_type, target_id=target_id, reason=reason)


def _visible_release(actor: PortalUser, release_id: Any, *, for_update: bool = False) -> Release:
    release = first_by_uuid(releases_visible_to(user=actor), release_id)
    if release is None:
        raise NotFound("No such release.")
    if for_update:
        return Release.objects.select_for_update().get(pk=release.pk)
    return release


def _text(value: Any, field: str, what: str) -> str:
    text = str(value or "").strip()
    if not text:
        raise ValidationFailed(f"Say {what}.", fields={field: "This field is required."})
    if len(text) > MAX_REASON:
        raise ValidationFailed(
            f"Keep the {field} under {MAX_REASON} characters.", fields={field: "Too long."}
        )
    return text


def _future(value: Any, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValidationFailed("Give a date and time.", fields={field: "A date and time is required."})
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    if value <= timezone.now():
        raise ValidationFailed(
            "The date must be in the future.", fields={field: "Choose a date in the future."}
        )
    return value


# --- Enforcement on the download path ------------------------------------------------------------


def release_gone_reason(release: Release) -> str | None:
    """Why the release may not be downloaded, in words for the user, or None if it may."""
    if release.withdrawn_at is not None:
        return f"This release was withdrawn on {release.withdrawn_at.date().isoformat()}: {release.withdrawn_reason}"
    if release.is_expired:
        assert release.expires_at is not None
        return (
            f"This release expired on {release.expires_at.date().isoformat()}. "
            "Ask a privacy officer to renew it."
        )
    return None


def release_refuse_if_gone(*, actor: PortalUser, release: Release) -> None:
    """Called by release_open_download before any byte is read: expired and withdrawn releases
    answer 410 with the reason, and the refusal is audited."""
    reason = release_gone_reason(release)
    if reason is None:
        return
    code = "release_withdrawn" if release.withdrawn_at is not None else "release_expired"
    _refuse(actor, "release.download", "release", release.pk, code)
    raise Gone(reason, code=code)


# --- Expiry and renewal --------------------------------------------------------------------------


def release_renew(*, actor: PortalUser, release_id: Any, expires_at: Any) -> Release:
    """An officer moves a release's expiry to a later date (an expired release becomes usable
    again). A withdrawn release cannot be renewed: withdrawal is for incidents."""
    release = _visible_release(actor, release_id)
    if not _is_officer(actor):
        _refuse(actor, "release.renew", "release", release.pk, "not_privacy_officer")
        raise PermissionDenied("Only a privacy officer can renew a release.")
    new_expiry = _future(expires_at, "expires_at")
    with transaction.atomic():
        release = _visible_release(actor, release_id, for_update=True)
        if release.withdrawn_at is not None:
            raise Conflict("A withdrawn release cannot be renewed.", code="release_withdrawn")
        old = release.expires_at
        release.expires_at = new_expiry
        release.save(update_fields=["expires_at"])
        audit_record(
            actor=actor,
            action="release.renew",
            target_type="release",
            target_id=release.pk,
            details={
                "from": old.isoformat() if old else None,
                "to": new_expiry.isoformat(),
                "was_expired": bool(old and old <= timezone.now()),
            },
        )
    return release


# --- Withdrawal ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Downloader:
    user_id: Any
    username: str
    downloads: int
    last_at: datetime


def release_downloaders(*, release: Release) -> list[Downloader]:
    """Everyone who downloaded the release (successful downloads in the audit log), for follow-up."""
    rows = (
        AuditEvent.objects.filter(
            action="release.download",
            target_type="release",
            target_id=str(release.pk),
            outcome=Outcome.SUCCESS,
        )
        .values("actor_id", "actor_name")
        .annotate(downloads=Count("id"), last_at=Max("at"))
        .order_by("actor_name")
    )
    return [Downloader(r["actor_id"], r["actor_name"], r["downloads"], r["last_at"]) for r in rows]


def _notify_downloaders(release: Release, downloaders: list[Downloader]) -> int:
    """Tell each downloader through the in-app inbox (and e-mail, when they have an address).
    Returns how many were notified, so the audit row and the page never claim more."""
    users = get_user_model().objects.filter(pk__in=[d.user_id for d in downloaders if d.user_id])
    return notify(
        recipients=list(users),
        kind=NotificationKind.RELEASE_WITHDRAWN,
        message=(
            f"Release “{release.title}” that you downloaded was withdrawn. "
            "Stop using it and delete your copies; the release page says why."
        ),
        url=reverse("catalog:release-detail", args=[release.pk]),
        target_type="release",
        target_id=release.pk,
        dedup_key=f"{NotificationKind.RELEASE_WITHDRAWN}:release:{release.pk}",
    )


def release_withdraw(*, actor: PortalUser, release_id: Any, reason: Any) -> Release:
    """A privacy officer withdraws a release: downloads answer 410 with the reason, the card shows
    it, and everyone who downloaded it is notified. Withdrawing twice is a no-op."""
    release = _visible_release(actor, release_id)
    if not _is_officer(actor):
        _refuse(actor, "release.withdraw", "release", release.pk, "not_privacy_officer")
        raise PermissionDenied("Only a privacy officer can withdraw a release.")
    text = _text(reason, "reason", "why the release is withdrawn")
    return _withdraw(actor, release.pk, text, cause="release")


def _withdraw(actor: PortalUser, release_pk: Any, reason: str, *, cause: str) -> Release:
    with transaction.atomic():
        release = Release.objects.select_for_update().get(pk=release_pk)
        if release.withdrawn_at is not None:
            return release
        release.withdrawn_at = timezone.now()
        release.withdrawn_reason = reason
        release.withdrawn_by = actor
        release.withdrawn_by_name = actor.get_username()
        release.save(update_fields=["withdrawn_at", "withdrawn_reason", "withdrawn_by", "withdrawn_by_name"])
        downloaders = release_downloaders(release=release)
        notified = _notify_downloaders(release, downloaders)
        audit_record(
            actor=actor,
            action="release.withdraw",
            target_type="release",
            target_id=release.pk,
            details={
                "cause": cause,
                "downloaders": len(downloaders),
                "notified": notified,
            },
        )
    return release


def _study_releases_trained_on(dataset_id: Any) -> list[Any]:
    """Live federated-study releases one of whose site datasets is `dataset_id` (their `sources`;
    read in Python: JSON containment is not portable across the databases we run on, and a study
    release is rare)."""
    live = Release.objects.filter(origin=ReleaseOrigin.STUDY, withdrawn_at__isnull=True)
    return [
        pk
        for pk, sources in live.values_list("pk", "sources")
        if any(str(s.get("dataset")) == str(dataset_id) for s in sources or [] if isinstance(s, dict))
    ]


def dataset_withdraw_releases(*, actor: PortalUser, dataset_id: Any, reason: Any) -> list[Release]:
    """Withdrawing a source dataset version withdraws every release made from it. 404 for a
    dataset the actor may not see, 403 (audited) unless a privacy officer."""
    dataset = first_by_uuid(datasets_visible_to(user=actor), dataset_id)
    if dataset is None:
        raise NotFound("No such dataset.")
    if not _is_officer(actor):
        _refuse(actor, "dataset.withdraw", "dataset", dataset.pk, "not_privacy_officer")
        raise PermissionDenied("Only a privacy officer can withdraw a dataset's releases.")
    text = _text(reason, "reason", "why the dataset's releases are withdrawn")
    with transaction.atomic():
        withdrawn = [
            _withdraw(actor, pk, text, cause="dataset")
            for pk in [
                *Release.objects.filter(dataset=dataset, withdrawn_at__isnull=True).values_list(
                    "pk", flat=True
                ),
                *_study_releases_trained_on(dataset.pk),
            ]
        ]
        audit_record(
            actor=actor,
            action="dataset.withdraw",
            target_type="dataset",
            target_id=dataset.pk,
            details={"version": dataset.version, "releases": [str(r.pk) for r in withdrawn]},
        )
    return withdrawn


# --- Access requests and grants ------------------------------------------------------------------


RELEASE_BULK = ("gate", "metrics", "receipt", "privacy", "card")


def access_requests_visible_to(*, user: Any) -> QuerySet[AccessRequest]:
    """Officers and auditors see every request; a data steward also sees those for their team's
    releases (deciding them only where the policy delegates); everyone else sees their own."""
    # The release's large JSON (gate, metrics, receipt, privacy, card) is never read from an
    # access request: decoding it for every row of a page was most of the list's time (issue 16).
    base = AccessRequest.objects.select_related("release").defer(
        *(f"release__{name}" for name in RELEASE_BULK)
    )
    if has_role(user, *SEES_EVERY_RELEASE):
        return base
    if not has_role(user, *[r.value for r in Role]):
        return base.none()
    return base.filter(Q(requester=user) | _team_steward_scope(user))


def access_request_ids_decidable_by(*, user: Any, requests: Any) -> set[Any]:
    """The ids among `requests` (rows already loaded, e.g. a page) that `user` may decide or
    revoke: what the list page offers buttons for. At most one query, whatever the page size (the
    tier controls are read in the database, not by loading each row's generation request)."""
    ids = [r.pk for r in requests]
    if not ids:
        return set()
    if _is_officer(user):
        return set(ids)
    if not has_role(user, Role.DATA_STEWARD):
        return set()
    return set(
        AccessRequest.objects.filter(_delegated_scope(user), pk__in=ids)
        .exclude(requester=user)
        .values_list("pk", flat=True)
    )


def access_request_check_asker(*, actor: PortalUser, release_id: Any) -> Release:
    """The release `actor` may ask to use, or the refusal: checked before the input is read, so
    someone who already has access hears that whatever they send."""
    release = first_by_uuid(releases_discoverable_to(user=actor), release_id)
    if release is None:
        raise NotFound("No such release.")
    if releases_visible_to(user=actor).filter(pk=release.pk).exists():
        raise Conflict("You already have access to this release.", code="already_has_access")
    if release.withdrawn_at is not None:
        raise Gone("This release was withdrawn; access cannot be requested.", code="release_withdrawn")
    return release


def access_request_create(
    *, actor: PortalUser, release_id: Any, purpose: Any, expires_at: Any
) -> AccessRequest:
    """A member who can discover a release's card but not use it asks for access."""
    release = access_request_check_asker(actor=actor, release_id=release_id)
    text = _text(purpose, "purpose", "what you will use the release for")
    until = _future(expires_at, "expires_at")
    with transaction.atomic():
        request = AccessRequest.objects.create(
            release=release,
            requester=actor,
            requester_name=actor.get_username(),
            purpose=text,
            requested_expires_at=until,
        )
        audit_record(
            actor=actor,
            action="access_request.create",
            target_type="access_request",
            target_id=request.pk,
            details={"release": str(release.pk), "requested_expires_at": until.isoformat()},
        )
        _notify_officers_of_request(request, actor)
    return request


def _deciders(release: Release) -> QuerySet[Any]:
    """Who decides access to `release`: the privacy officers, and the data stewards of its team
    when its tier's policy delegates to them."""
    who = Q(role=Role.PRIVACY_OFFICER)
    if release.team_id is not None and _delegated_to_team_steward(release):
        who |= Q(role=Role.DATA_STEWARD, team_id=release.team_id)
    return get_user_model().objects.filter(who, is_active=True).order_by("username")


def _notify_officers_of_request(request: AccessRequest, actor: PortalUser) -> int:
    """A new access request waits on those who decide it (in the creating transaction: a request
    that rolls back notifies nobody). Never the asker, should a decider ever be one."""
    return notify(
        recipients=_deciders(request.release).exclude(pk=actor.pk),
        kind=NotificationKind.ACCESS_REQUEST,
        message=f"Access requested by {request.requester_name}: “{request.release.title}”",
        url=reverse("catalog:access-request-list") + "?status=pending",
        target_type="access_request",
        target_id=request.pk,
        dedup_key=f"{NotificationKind.ACCESS_REQUEST}:access_request:{request.pk}",
    )


def _notify_requester(request: AccessRequest, actor: PortalUser, kind: str, message: str, url: str) -> int:
    """The requester hears each decision on their request (never the officer who took it)."""
    requester = get_user_model().objects.filter(pk=request.requester_id).exclude(pk=actor.pk)
    return notify(
        recipients=requester,
        kind=kind,
        message=message,
        url=url,
        target_type="access_request",
        target_id=request.pk,
        dedup_key=f"{kind}:access_request:{request.pk}",
    )


def access_requests_pending_for(*, user: Any) -> QuerySet[AccessRequest]:
    """Pending access requests that wait on `user`: every one for a privacy officer, those the
    policy delegates to a data steward of the release's team; never their own. Oldest first."""
    if _is_officer(user):
        scope = Q()
    elif has_role(user, Role.DATA_STEWARD):
        scope = _delegated_scope(user)
    else:
        return AccessRequest.objects.none()
    return (
        AccessRequest.objects.filter(scope, status=AccessRequestStatus.PENDING)
        .exclude(requester=user)
        .select_related("release")
        .order_by("created_at", "pk")
    )


def _visible_access_request(actor: PortalUser, request_id: Any) -> AccessRequest:
    request = first_by_uuid(access_requests_visible_to(user=actor), request_id)
    if request is None:
        raise NotFound("No such access request.")
    return request


def _refusal_reason(actor: PortalUser, request: AccessRequest) -> str:
    """Why `actor` may not decide `request`, as an audit code (ids and codes only)."""
    if _is_team_steward(actor, request.release) and _delegated_to_team_steward(request.release):
        return "own_request"
    return "not_privacy_officer"


def _authorize_access_decision(actor: PortalUser, request_id: Any, action: str) -> AccessRequest:
    request = _visible_access_request(actor, request_id)
    if not _may_decide_access(actor, request):
        reason = _refusal_reason(actor, request)
        _refuse(actor, action, "access_request", request.pk, reason)
        verb = "revoke this grant" if action == "access_request.revoke" else "decide this access request"
        if reason == "own_request":
            raise PermissionDenied(f"You cannot {verb}: it is your own; a privacy officer will.")
        raise PermissionDenied(
            f"Only a privacy officer (or, where the policy says so, a data steward of the release's "
            f"team) can {verb}."
        )
    return request


def access_request_authorize_decision(*, actor: PortalUser, request_id: Any) -> AccessRequest:
    """404 for a request the actor may not see, 403 (audited) unless a privacy officer or a data
    steward of the release's team whose tier delegates to them (team_steward_decides_access)."""
    return _authorize_access_decision(actor, request_id, "access_request.decide")


def access_request_decide(
    *, actor: PortalUser, request_id: Any, decision: str, comment: str = "", expires_at: Any = None
) -> AccessRequest:
    """A privacy officer (or a delegated team steward) grants, until a date (by default the one
    asked for), or refuses."""
    request = access_request_authorize_decision(actor=actor, request_id=request_id)
    if decision not in ("grant", "refuse"):
        raise ValidationFailed("Decide grant or refuse.", fields={"decision": "grant or refuse"})
    until = _future(expires_at or request.requested_expires_at, "expires_at") if decision == "grant" else None
    with transaction.atomic():
        request = AccessRequest.objects.select_for_update().get(pk=request.pk)
        if request.status != AccessRequestStatus.PENDING:
            raise Conflict(f"This request is already {request.status}.", code="already_decided")
        request.status = AccessRequestStatus.GRANTED if until else AccessRequestStatus.REFUSED
        request.decided_by = actor
        request.decided_by_name = actor.get_username()
        request.decided_at = timezone.now()
        request.decision_comment = str(comment or "")[:MAX_REASON]
        request.grant_expires_at = until
        request.save()
        audit_record(
            actor=actor,
            action=f"access_request.{decision}",
            target_type="access_request",
            target_id=request.pk,
            details={
                "release": str(request.release_id),
                "requester": request.requester_name,
                "expires_at": until.isoformat() if until else None,
            },
        )
        title = request.release.title
        if until:
            _notify_requester(
                request,
                actor,
                NotificationKind.ACCESS_DECIDED,
                f"Access granted to “{title}” until {until.date().isoformat()}",
                reverse("catalog:release-detail", args=[request.release_id]),
            )
        else:
            _notify_requester(
                request,
                actor,
                NotificationKind.ACCESS_DECIDED,
                f"Access to “{title}” was refused; the access-request list shows the officer's comment",
                reverse("catalog:access-request-list"),
            )
    return request


def access_request_revoke(*, actor: PortalUser, request_id: Any, reason: Any) -> AccessRequest:
    """Whoever may decide a request may revoke its grant (access_request_authorize_decision)."""
    request = _authorize_access_decision(actor, request_id, "access_request.revoke")
    _text(reason, "reason", "why access is revoked")
    with transaction.atomic():
        request = AccessRequest.objects.select_for_update().get(pk=request.pk)
        if request.status == AccessRequestStatus.REVOKED:
            return request
        if request.status != AccessRequestStatus.GRANTED:
            raise Conflict("Only granted access can be revoked.", code="not_granted")
        request.status = AccessRequestStatus.REVOKED
        request.revoked_at = timezone.now()
        request.revoked_by_name = actor.get_username()
        request.revoke_reason = str(reason).strip()[:MAX_REASON]
        request.save()
        audit_record(
            actor=actor,
            action="access_request.revoke",
            target_type="access_request",
            target_id=request.pk,
            details={"release": str(request.release_id), "requester": request.requester_name},
        )
        _notify_requester(
            request,
            actor,
            NotificationKind.ACCESS_REVOKED,
            f"Your access to “{request.release.title}” was revoked; the access-request list says why",
            reverse("catalog:access-request-list"),
        )
    return request


# --- Expiry notices (the periodic task catalog.tasks.notify_expiring) -----------------------------


@dataclass(frozen=True)
class ExpiryNotices:
    releases: int  # releases whose expiry notice went out in this run
    grants: int  # grants whose expiry notice went out in this run
    notified: int  # people notified in this run (0 when an earlier run already told them)


def _expiry_horizon(days: int | None) -> int:
    return int(settings.SYNTHGATE_EXPIRY_NOTICE_DAYS if days is None else days)


def releases_notify_expiring(*, days: int | None = None) -> ExpiryNotices:
    """Tell the people who use a release that it expires within `days` (setting
    SYNTHGATE_EXPIRY_NOTICE_DAYS): its requester and the members of its team, who see it; and
    each grantee whose grant expires within `days`.

    Once per release and expiry date (the dedup key holds the date, so a renewed release is
    announced again before its new expiry), however often the task runs. Each release is handled in
    its own transaction under a row lock taken with skip_locked: two runs at once never both pass
    the "already notified?" check for the same release (on SQLite the IMMEDIATE transactions
    serialize them instead)."""
    now = timezone.now()
    until = now + timedelta(days=_expiry_horizon(days))
    soon = Release.objects.filter(withdrawn_at__isnull=True, expires_at__gt=now, expires_at__lte=until)
    releases = notified = 0
    for pk in soon.values_list("pk", flat=True):
        with transaction.atomic():
            release = (
                Release.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("request")
                .filter(pk=pk, withdrawn_at__isnull=True, expires_at__gt=now)
                .first()
            )
            if release is None:  # another run holds it, or it was withdrawn or renewed meanwhile
                continue
            sent = _notify_release_expiring(release)
        releases += bool(sent)
        notified += sent
    grants = 0
    soon_grants = AccessRequest.objects.filter(
        status=AccessRequestStatus.GRANTED,
        grant_expires_at__gt=now,
        grant_expires_at__lte=until,
        release__withdrawn_at__isnull=True,
    )
    for pk in soon_grants.values_list("pk", flat=True):
        with transaction.atomic():
            grant = (
                AccessRequest.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("release")
                .filter(pk=pk, status=AccessRequestStatus.GRANTED, grant_expires_at__gt=now)
                .first()
            )
            if grant is None:
                continue
            sent = _notify_grant_expiring(grant)
        grants += bool(sent)
        notified += sent
    if releases or grants:
        logger.info("expiry notices: %s release(s), %s grant(s), %s people", releases, grants, notified)
    return ExpiryNotices(releases=releases, grants=grants, notified=notified)


def _notify_release_expiring(release: Release) -> int:
    assert release.expires_at is not None
    people = get_user_model().objects.filter(is_active=True)
    who = Q(pk=release.owner_id)
    if release.team_id:
        # Team members see their team's releases (catalog.selectors.releases_visible_to).
        who |= Q(team_id=release.team_id, role__in=[r.value for r in Role])
    return notify(
        recipients=people.filter(who),
        kind=NotificationKind.RELEASE_EXPIRING,
        message=(
            f"Release “{release.title}” expires on {release.expires_at.date().isoformat()}; "
            "ask a privacy officer to renew it if you still need it"
        ),
        url=reverse("catalog:release-detail", args=[release.pk]),
        target_type="release",
        target_id=release.pk,
        dedup_key=f"{NotificationKind.RELEASE_EXPIRING}:release:{release.pk}:{release.expires_at.isoformat()}",
    )


def _notify_grant_expiring(grant: AccessRequest) -> int:
    assert grant.grant_expires_at is not None
    return notify(
        recipients=get_user_model().objects.filter(pk=grant.requester_id),
        kind=NotificationKind.GRANT_EXPIRING,
        message=(
            f"Your access to “{grant.release.title}” ends on {grant.grant_expires_at.date().isoformat()}; "
            "ask again if you still need it"
        ),
        url=reverse("catalog:release-detail", args=[grant.release_id]),
        target_type="access_request",
        target_id=grant.pk,
        dedup_key=f"{NotificationKind.GRANT_EXPIRING}:access_request:{grant.pk}:{grant.grant_expires_at.isoformat()}",
    )
