"""What the two access keys of a tier's policy do in the catalog (catalog.access, catalog.selectors):
`discoverable: false` hides a release's card from everyone outside its audience, and
`team_steward_decides_access: true` lets a data steward of the release's team decide and revoke its
access requests besides the privacy officers. Each release here is published under a policy file
that sets the key, so the value reaches the request's tier controls the way it does in use."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from approvals.models import GenerationRequest
from approvals.services.policy import policy_file
from audit.models import AuditEvent
from catalog.access import access_request_create, access_requests_pending_for
from catalog.models import AccessRequest, AccessRequestStatus, Release
from catalog.selectors import releases_discoverable_to, releases_visible_to
from notifications.models import Notification, NotificationKind

API = "/api/v1/releases/"
REQUESTS = "/api/v1/access-requests/"


def _policy(settings: Any, tmp_path: Path, key: str, value: str) -> None:
    """Publish the next releases under the shipped policy with `key: value` at every graded tier."""
    default = {"discoverable": "true", "team_steward_decides_access": "false"}[key]
    text = policy_file().read_text()
    assert text.count(f"    {key}: {default}\n") == 3
    custom = tmp_path / f"tiering-{key}-{value}.yaml"
    custom.write_text(text.replace(f"    {key}: {default}\n", f"    {key}: {value}\n"))
    settings.SYNTHGATE_POLICY_FILE = custom


def _page(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _later(days: int = 30) -> str:
    return (timezone.now() + timedelta(days=days)).isoformat()


def _ask(charlie: Any, release: Release) -> AccessRequest:
    return access_request_create(
        actor=charlie,
        release_id=release.pk,
        purpose="Benchmark a model",
        expires_at=timezone.now() + timedelta(days=20),
    )


@pytest.fixture
def stella(make_user: Callable[..., Any], alice: Any) -> Any:
    """A data steward of Cardiology, the team alice's releases are published for."""
    return make_user("stella", "data_steward", "Cardiology")


# --- discoverable ----------------------------------------------------------------------------------


@pytest.fixture
def hidden(publish: Callable[..., Release], settings: Any, tmp_path: Path) -> Release:
    """Alice's internal release, published under a policy that says `discoverable: false`."""
    _policy(settings, tmp_path, "discoverable", "false")
    release = publish(title="Hidden cohort")
    assert release.request.tier_controls["discoverable"] is False
    assert release.discoverable is False  # fixed on the release at publication
    return release


@pytest.fixture
def listed(publish: Callable[..., Release], hidden: Release) -> Release:
    """Another of alice's internal releases whose tier left it discoverable. The policy file is
    read into the database once (version 1, at the first submission), so this one is published
    under the same version and its snapshot given the shipped default afterwards."""
    release = publish(title="Listed cohort")
    request = release.request
    GenerationRequest.objects.filter(pk=request.pk).update(
        tier_controls={**request.tier_controls, "discoverable": True}
    )
    Release.objects.filter(pk=release.pk).update(discoverable=True)
    return release


def test_a_hidden_release_is_not_discoverable_by_another_team(
    charlie: Any, bob: Any, olivia: Any, listed: Release, hidden: Release
) -> None:
    found = set(releases_discoverable_to(user=charlie).values_list("pk", flat=True))
    assert listed.pk in found and hidden.pk not in found
    # Its own team still uses it, and the privacy officers still oversee it.
    assert releases_visible_to(user=bob).filter(pk=hidden.pk).exists()
    assert releases_discoverable_to(user=olivia).filter(pk=hidden.pk).exists()


def test_a_hidden_release_is_not_in_the_catalogs_ask_to_use_table(
    charlie: Any, listed: Release, hidden: Release
) -> None:
    response = _page(charlie).get("/catalog/")

    assert response.status_code == 200
    shown = {r.pk for r in response.context["discoverable"]}
    assert shown == {listed.pk}
    page = response.content.decode()
    assert "Listed cohort" in page and "Hidden cohort" not in page
    assert str(hidden.pk) not in page


def test_a_hidden_releases_request_access_page_is_404(api: Any, charlie: Any, hidden: Release) -> None:
    assert _page(charlie).get(f"/catalog/{hidden.pk}/request-access/").status_code == 404
    posted = _page(charlie).post(
        f"/catalog/{hidden.pk}/request-access/", {"purpose": "x", "expires_at": _later()[:10]}
    )
    assert posted.status_code == 404
    response = api(charlie).post(
        f"{API}{hidden.pk}/access-requests/", {"purpose": "x", "expires_at": _later()}, format="json"
    )
    assert response.status_code == 404
    assert not AccessRequest.objects.exists()


# --- team_steward_decides_access --------------------------------------------------------------------


@pytest.fixture
def delegated(publish: Callable[..., Release], settings: Any, tmp_path: Path, stella: Any) -> Release:
    """Alice's Cardiology release, published under a policy that delegates access decisions."""
    _policy(settings, tmp_path, "team_steward_decides_access", "true")
    release = publish()
    assert release.request.tier_controls["team_steward_decides_access"] is True
    assert release.team_id == stella.team_id
    return release


@pytest.fixture
def officers_only(release: Release, stella: Any) -> Release:
    """Alice's Cardiology release under the shipped policy: officers decide."""
    assert release.request.tier_controls["team_steward_decides_access"] is False
    assert release.team_id == stella.team_id
    return release


def test_the_team_steward_is_notified_counts_it_and_grants(
    api: Any, charlie: Any, stella: Any, olivia: Any, delegated: Release
) -> None:
    created = api(charlie).post(
        f"{API}{delegated.pk}/access-requests/",
        {"purpose": "Benchmark a model", "expires_at": _later(20)},
        format="json",
    )
    assert created.status_code == 201, created.content
    request_id = created.json()["id"]

    # Told, like the officers; counted as waiting on them; listed to them.
    told = Notification.objects.filter(kind=NotificationKind.ACCESS_REQUEST, target_id=request_id)
    assert set(told.values_list("recipient__username", flat=True)) == {"olivia", "stella"}
    assert [str(r.pk) for r in access_requests_pending_for(user=stella)] == [request_id]
    assert [r["id"] for r in api(stella).get(REQUESTS).json()["results"]] == [request_id]
    listing = _page(stella).get("/catalog/access-requests/?status=pending")
    assert listing.status_code == 200
    assert listing.context["pending_access_requests"] == 1
    assert listing.context["decides_team_access"] is True
    assert "decides_access" not in listing.context  # withdrawal stays with the officers
    [row] = listing.context["page"].object_list
    assert row.can_decide is True
    html = listing.content.decode()
    assert 'data-testid="nav-access-requests"' in html  # the nav link and its count
    assert ">Grant</button>" in html and ">Refuse</button>" in html
    home = _page(stella).get("/").content.decode()
    assert 'data-testid="waiting-access-request"' in home

    granted = api(stella).post(
        f"{REQUESTS}{request_id}/decisions/",
        {"decision": "grant", "comment": "Benchmark only", "expires_at": _later(10)},
        format="json",
    )

    assert granted.status_code == 201, granted.content
    assert granted.json()["status"] == "granted"
    assert api(charlie).get(f"{API}{delegated.pk}/download/").status_code == 200
    [event] = AuditEvent.objects.filter(action="access_request.grant")
    assert event.actor_name == "stella"
    assert not access_requests_pending_for(user=stella).exists()

    # The same steward may revoke what they granted.
    revoked = api(stella).post(f"{REQUESTS}{request_id}/revoke/", {"reason": "Project ended"}, format="json")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert api(charlie).get(f"{API}{delegated.pk}/download/").status_code == 404


def test_the_team_steward_refuses_on_the_page(charlie: Any, stella: Any, delegated: Release) -> None:
    request = _ask(charlie, delegated)

    response = _page(stella).post(
        f"/catalog/access-requests/{request.pk}/decide/", {"decision": "refuse", "comment": "No"}
    )

    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == AccessRequestStatus.REFUSED and request.decided_by_name == "stella"


def test_a_steward_of_another_team_does_not_see_the_request(
    api: Any, charlie: Any, sam: Any, delegated: Release
) -> None:
    request = _ask(charlie, delegated)

    response = api(sam).post(f"{REQUESTS}{request.pk}/decisions/", {"decision": "grant"}, format="json")

    assert response.status_code == 404
    assert api(sam).get(REQUESTS).json()["results"] == []
    assert not access_requests_pending_for(user=sam).exists()
    assert not Notification.objects.filter(recipient=sam).exists()
    assert AccessRequest.objects.get(pk=request.pk).status == AccessRequestStatus.PENDING


def test_without_the_key_the_team_steward_is_refused_and_audited(
    api: Any, charlie: Any, stella: Any, officers_only: Release
) -> None:
    request = _ask(charlie, officers_only)
    # Not told, not counted: the request does not wait on them.
    assert not Notification.objects.filter(recipient=stella).exists()
    assert not access_requests_pending_for(user=stella).exists()

    decided = api(stella).post(f"{REQUESTS}{request.pk}/decisions/", {"decision": "grant"}, format="json")
    page = _page(stella).post(f"/catalog/access-requests/{request.pk}/decide/", {"decision": "grant"})

    assert decided.status_code == 403
    assert page.status_code == 403
    denied = AuditEvent.objects.filter(action="access_request.decide", outcome="denied").order_by("seq")
    assert [e.details for e in denied] == [{"reason": "not_privacy_officer"}] * 2
    assert {e.actor_name for e in denied} == {"stella"}
    assert AccessRequest.objects.get(pk=request.pk).status == AccessRequestStatus.PENDING
    # They see their team's request (custody), without a button to decide it.
    listing = _page(stella).get("/catalog/access-requests/")
    [row] = listing.context["page"].object_list
    assert row.can_decide is False
    assert listing.context["pending_access_requests"] == 0


def test_without_the_key_the_team_steward_cannot_revoke(
    api: Any, charlie: Any, stella: Any, olivia: Any, officers_only: Release
) -> None:
    request = _ask(charlie, officers_only)
    assert (
        api(olivia)
        .post(f"{REQUESTS}{request.pk}/decisions/", {"decision": "grant"}, format="json")
        .status_code
        == 201
    )

    response = api(stella).post(f"{REQUESTS}{request.pk}/revoke/", {"reason": "x"}, format="json")

    assert response.status_code == 403
    [denied] = AuditEvent.objects.filter(action="access_request.revoke", outcome="denied")
    assert denied.details == {"reason": "not_privacy_officer"}
    assert AccessRequest.objects.get(pk=request.pk).status == AccessRequestStatus.GRANTED


def test_a_delegated_steward_never_decides_their_own_request(
    api: Any, stella: Any, delegated: Release
) -> None:
    # A steward who asked before joining the team (the form refuses those who already see it).
    request = AccessRequest.objects.create(
        release=delegated,
        requester=stella,
        requester_name="stella",
        purpose="Mine",
        requested_expires_at=timezone.now() + timedelta(days=5),
    )
    assert not access_requests_pending_for(user=stella).exists()

    response = api(stella).post(f"{REQUESTS}{request.pk}/decisions/", {"decision": "grant"}, format="json")

    assert response.status_code == 403
    [denied] = AuditEvent.objects.filter(action="access_request.decide", outcome="denied")
    assert denied.details == {"reason": "own_request"}
    assert AccessRequest.objects.get(pk=request.pk).status == AccessRequestStatus.PENDING
