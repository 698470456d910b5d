"""Pages for enforced access (catalog.access): the 410 page of an expired or withdrawn download,
withdraw and renew (privacy officers), asking for access, and the officers' access-request queue.

Views parse, call one service and render; the services authorize and audit."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.functional import SimpleLazyObject
from django.views.decorators.http import require_POST

from catalog.access import (
    access_request_create,
    access_request_decide,
    access_request_ids_decidable_by,
    access_request_revoke,
    access_requests_pending_for,
    access_requests_visible_to,
    dataset_withdraw_releases,
    release_downloaders,
    release_gone_reason,
    release_renew,
    release_withdraw,
)
from catalog.models import AccessRequestStatus, Release
from catalog.selectors import releases_discoverable_to
from catalog.services import release_get_for
from core.errors import Gone, PermissionDenied
from core.ids import first_by_uuid
from core.pagination import page_of
from core.roles import SEES_EVERY_RELEASE, Role, acting_user, has_role
from core.views import domain_errors_as_messages
from generation.selectors import datasets_visible_to


def parse_when(value: str) -> datetime | None:
    """A form's date (end of that day) or date-time, timezone-aware; None if unreadable."""
    value = (value or "").strip()
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        moment = datetime.combine(day, time(23, 59, 59)) if day else None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def gone_page(request: HttpRequest, release: Release | None, exc: Gone) -> HttpResponse:
    """410 with the reason, and the way back to the release's card."""
    context = {"release": release, "reason": exc.message, "code": exc.code}
    return render(request, "catalog/access/gone.html", context, status=410)


def release_access_context(*, user: Any, release: Release) -> dict[str, Any]:
    """What the release page shows about access: why it is unusable, who downloaded it (oversight
    only), and which officer actions apply."""
    officer = has_role(user, Role.PRIVACY_OFFICER)
    oversight = has_role(user, *SEES_EVERY_RELEASE)
    return {
        "release": release,
        "gone_reason": release_gone_reason(release),
        "is_officer": officer,
        "downloaders": release_downloaders(release=release) if oversight else None,
    }


@domain_errors_as_messages
def release_withdraw_view(request: HttpRequest, release_id: str) -> HttpResponse:
    release = release_get_for(actor=acting_user(request.user), release_id=release_id)  # 404 first
    if request.method != "POST":
        if not has_role(request.user, Role.PRIVACY_OFFICER):
            raise PermissionDenied("Only a privacy officer can withdraw a release.")
        return render(request, "catalog/access/withdraw.html", {"release": release})
    release_withdraw(
        actor=acting_user(request.user), release_id=release.pk, reason=request.POST.get("reason", "")
    )
    messages.success(request, "The release is withdrawn; its downloaders are listed on this page.")
    return redirect("catalog:release-detail", release.pk)


@require_POST
@domain_errors_as_messages
def release_renew_view(request: HttpRequest, release_id: str) -> HttpResponse:
    release = release_renew(
        actor=acting_user(request.user),
        release_id=release_id,
        expires_at=parse_when(request.POST.get("expires_at", "")),
    )
    messages.success(request, "The release is renewed.")
    return redirect("catalog:release-detail", release.pk)


@domain_errors_as_messages
def access_request_create_view(request: HttpRequest, release_id: str) -> HttpResponse:
    release = first_by_uuid(releases_discoverable_to(user=request.user), release_id)
    if release is None:
        raise Http404
    if request.method == "POST":
        access_request_create(
            actor=acting_user(request.user),
            release_id=release.pk,
            purpose=request.POST.get("purpose", ""),
            expires_at=parse_when(request.POST.get("expires_at", "")),
        )
        messages.success(request, "Your request is with the people who decide access to this release.")
        return redirect("catalog:access-request-list")
    return render(request, "catalog/access/request_form.html", {"release": release})


def access_request_list_view(request: HttpRequest) -> HttpResponse:
    """The requests the user may see (officers and auditors: all; others: their own), newest first,
    paged, filtered by `?status=` (an unknown status is ignored: the full list)."""
    rows = access_requests_visible_to(user=request.user).order_by("-created_at", "pk")
    status = request.GET.get("status", "")
    if status in AccessRequestStatus.values:
        rows = rows.filter(status=status)
    else:
        status = ""
    page = page_of(request, rows)
    # Officers decide every row; a data steward only those their team's policy delegates to them.
    decidable = access_request_ids_decidable_by(user=request.user, requests=page.object_list)
    for row in page.object_list:
        row.can_decide = row.pk in decidable
    context = {
        "page": page,
        "decidable": decidable,
        "status": status,
        "statuses": AccessRequestStatus.choices,
        "is_officer": has_role(request.user, Role.PRIVACY_OFFICER),
    }
    return render(request, "catalog/access/request_list.html", context)


def pending_access_requests(request: HttpRequest) -> dict[str, Any]:
    """Template context (settings.TEMPLATES): for privacy officers, and for data stewards of a
    team (whose team's policy may delegate access decisions to them), the number of access
    requests waiting on them, for the navigation. Lazy, like notifications.context.unread: one
    COUNT query, and only on pages whose template shows it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    pending = SimpleLazyObject(lambda: access_requests_pending_for(user=user).count())
    if has_role(user, Role.PRIVACY_OFFICER):
        return {
            # Privacy officers decide access and withdraw releases (catalog.access._is_officer).
            "decides_access": True,
            "pending_access_requests": pending,
        }
    if has_role(user, Role.DATA_STEWARD) and user.team_id is not None:
        # Not `decides_access`: that also offers withdrawal, which stays with the officers.
        return {"decides_team_access": True, "pending_access_requests": pending}
    return {}


@domain_errors_as_messages
def dataset_withdraw_view(request: HttpRequest, dataset_id: str) -> HttpResponse:
    """Withdraw every release of a source dataset version (an incident in the source): a
    confirmation form for privacy officers, then the service (which authorizes and audits)."""
    dataset = first_by_uuid(datasets_visible_to(user=request.user), dataset_id)
    if dataset is None:  # 404 first: a dataset the user cannot see does not exist for them
        raise Http404
    if request.method != "POST":
        if not has_role(request.user, Role.PRIVACY_OFFICER):
            raise PermissionDenied("Only a privacy officer can withdraw a dataset's releases.")
        live = Release.objects.filter(dataset=dataset, withdrawn_at__isnull=True).order_by("-created_at")
        return render(request, "catalog/access/dataset_withdraw.html", {"dataset": dataset, "releases": live})
    withdrawn = dataset_withdraw_releases(
        actor=acting_user(request.user), dataset_id=dataset.pk, reason=request.POST.get("reason", "")
    )
    n = len(withdrawn)
    messages.success(
        request,
        f"{n} release{'s' if n != 1 else ''} withdrawn; each release's page lists who downloaded it."
        if n
        else "No release of this dataset was still live; the withdrawal is recorded.",
    )
    return redirect("generation:dataset-detail", dataset.pk)


@require_POST
@domain_errors_as_messages
def access_request_decide_view(request: HttpRequest, access_request_id: str) -> HttpResponse:
    # The service checks who is asking first (403 page, audited) and then the input.
    access_request_decide(
        actor=acting_user(request.user),
        request_id=access_request_id,
        decision=request.POST.get("decision", ""),
        comment=request.POST.get("comment", ""),
        expires_at=parse_when(request.POST.get("expires_at", "")),
    )
    messages.success(request, "Decision recorded.")
    return redirect("catalog:access-request-list")


@require_POST
@domain_errors_as_messages
def access_request_revoke_view(request: HttpRequest, access_request_id: str) -> HttpResponse:
    access_request_revoke(
        actor=acting_user(request.user), request_id=access_request_id, reason=request.POST.get("reason", "")
    )
    messages.success(request, "Access revoked.")
    return redirect("catalog:access-request-list")


# For catalog/urls.py, before the "<str:release_id>/" routes ("access-requests" is not a release id).
# Downloads of an expired or withdrawn release: catalog.views.release_download answers gone_page.
urlpatterns = [
    path("access-requests/", access_request_list_view, name="access-request-list"),
    path("datasets/<str:dataset_id>/withdraw/", dataset_withdraw_view, name="dataset-withdraw"),
    path(
        "access-requests/<str:access_request_id>/decide/",
        access_request_decide_view,
        name="access-request-decide",
    ),
    path(
        "access-requests/<str:access_request_id>/revoke/",
        access_request_revoke_view,
        name="access-request-revoke",
    ),
    path("<str:release_id>/withdraw/", release_withdraw_view, name="release-withdraw"),
    path("<str:release_id>/renew/", release_renew_view, name="release-renew"),
    path("<str:release_id>/request-access/", access_request_create_view, name="access-request-create"),
]
