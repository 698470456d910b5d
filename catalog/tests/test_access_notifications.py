"""Who hears about access requests and expiries (catalog.access -> notifications): every privacy
officer when a member asks, the requester on each decision, a release's users and a grantee before
an expiry; never the person who acted. The officers' queue: home page, navigation count, list."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.access import (
    access_request_create,
    access_request_decide,
    access_request_revoke,
    release_renew,
    release_withdraw,
)
from catalog.models import AccessRequest, Release
from catalog.tasks import EXPIRY_NOTICES_LOCK, notify_expiring
from core.locks import periodic_lock
from notifications.models import Notification, NotificationKind

REQUESTS = "/api/v1/access-requests/"


def _later(days: float = 30) -> Any:
    return timezone.now() + timedelta(days=days)


def _inbox(kind: str) -> dict[str, list[Notification]]:
    """Notifications of one kind, by recipient's username."""
    found: dict[str, list[Notification]] = {}
    for note in Notification.objects.filter(kind=kind).select_related("recipient"):
        found.setdefault(note.recipient.username, []).append(note)
    return found


def _page(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _ask(charlie: Any, release: Release) -> AccessRequest:
    return access_request_create(
        actor=charlie, release_id=release.pk, purpose="Compare with oncology cohort", expires_at=_later()
    )


# --- Access requests and decisions ----------------------------------------------------------------


def test_asking_for_access_notifies_every_privacy_officer_and_nobody_else(
    api: Any, alice: Any, bob: Any, charlie: Any, olivia: Any, oscar: Any, audrey: Any, release: Release
) -> None:
    response = api(charlie).post(
        f"/api/v1/releases/{release.pk}/access-requests/",
        {"purpose": "Compare with oncology cohort", "expires_at": _later().isoformat()},
        format="json",
    )

    assert response.status_code == 201, response.content
    asked = _inbox(NotificationKind.ACCESS_REQUEST)
    assert sorted(asked) == ["olivia", "oscar"]  # not the asker, not the auditor, not the team
    [note] = asked["olivia"]
    assert note.url == "/catalog/access-requests/?status=pending"
    assert note.target_type == "access_request" and note.target_id == response.json()["id"]
    assert "charlie" in note.message and release.title in note.message
    assert "oncology cohort" not in note.message  # the free-text purpose stays on the request


def test_a_grant_notifies_the_requester_and_not_the_officer(
    api: Any, charlie: Any, olivia: Any, oscar: Any, release: Release
) -> None:
    asked = _ask(charlie, release)

    response = api(olivia).post(f"{REQUESTS}{asked.pk}/decisions/", {"decision": "grant"}, format="json")

    assert response.status_code == 201, response.content
    decided = _inbox(NotificationKind.ACCESS_DECIDED)
    assert list(decided) == ["charlie"]
    [note] = decided["charlie"]
    assert note.url == f"/catalog/{release.pk}/" and "granted" in note.message


def test_a_refusal_notifies_the_requester_without_the_comment(
    charlie: Any, olivia: Any, release: Release
) -> None:
    asked = _ask(charlie, release)

    access_request_decide(actor=olivia, request_id=asked.pk, decision="refuse", comment="No DPIA on file")

    [note] = _inbox(NotificationKind.ACCESS_DECIDED)["charlie"]
    assert "refused" in note.message and "DPIA" not in note.message
    assert note.url == "/catalog/access-requests/"
    assert list(_inbox(NotificationKind.ACCESS_DECIDED)) == ["charlie"]


def test_a_revocation_notifies_the_grantee_once(charlie: Any, olivia: Any, release: Release) -> None:
    asked = _ask(charlie, release)
    access_request_decide(actor=olivia, request_id=asked.pk, decision="grant")

    access_request_revoke(actor=olivia, request_id=asked.pk, reason="Project closed")
    access_request_revoke(actor=olivia, request_id=asked.pk, reason="again")  # a no-op

    revoked = _inbox(NotificationKind.ACCESS_REVOKED)
    assert list(revoked) == ["charlie"] and len(revoked["charlie"]) == 1


def test_officers_with_an_address_get_the_request_by_email_after_the_commit(
    charlie: Any, olivia: Any, release: Release, mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    type(olivia).objects.filter(pk=olivia.pk).update(email="olivia@example.org")

    with django_capture_on_commit_callbacks(execute=True):
        _ask(charlie, release)

    [mail] = mailoutbox
    assert mail.to == ["olivia@example.org"] and "/catalog/access-requests/" in mail.body


# --- Expiry notices ----------------------------------------------------------------------------------


def _expires_in(release: Release, days: float) -> None:
    Release.objects.filter(pk=release.pk).update(expires_at=_later(days))


def test_expiring_release_notifies_its_requester_and_team_once_however_often_the_task_runs(
    alice: Any, bob: Any, charlie: Any, olivia: Any, audrey: Any, release: Release
) -> None:
    _expires_in(release, 3)

    first = notify_expiring()
    second = notify_expiring()

    assert first == {"releases": 1, "grants": 0, "notified": 2}
    assert second == {"releases": 0, "grants": 0, "notified": 0}
    expiring = _inbox(NotificationKind.RELEASE_EXPIRING)
    assert sorted(expiring) == ["alice", "bob"]  # the requester and her team; not other teams
    assert all(len(notes) == 1 for notes in expiring.values())
    assert expiring["bob"][0].url == f"/catalog/{release.pk}/"


def test_releases_far_from_expiry_or_withdrawn_are_not_announced(
    alice: Any, olivia: Any, release: Release, settings: Any
) -> None:
    settings.SYNTHGATE_EXPIRY_NOTICE_DAYS = 7
    _expires_in(release, 8)
    assert notify_expiring()["notified"] == 0

    _expires_in(release, 2)
    release_withdraw(actor=olivia, release_id=release.pk, reason="Incident")
    assert notify_expiring()["notified"] == 0
    assert not Notification.objects.filter(kind=NotificationKind.RELEASE_EXPIRING).exists()


def test_a_renewed_release_is_announced_again_before_its_new_expiry(
    alice: Any, olivia: Any, release: Release
) -> None:
    _expires_in(release, 2)
    notify_expiring()

    release_renew(actor=olivia, release_id=release.pk, expires_at=_later(5))
    notify_expiring()

    assert len(_inbox(NotificationKind.RELEASE_EXPIRING)["alice"]) == 2


def test_an_expiring_grant_notifies_its_grantee_once(
    alice: Any, charlie: Any, olivia: Any, release: Release
) -> None:
    asked = _ask(charlie, release)
    access_request_decide(actor=olivia, request_id=asked.pk, decision="grant", expires_at=_later(2))

    notify_expiring()
    notify_expiring()

    expiring = _inbox(NotificationKind.GRANT_EXPIRING)
    assert list(expiring) == ["charlie"] and len(expiring["charlie"]) == 1
    assert expiring["charlie"][0].url == f"/catalog/{release.pk}/"


def test_the_task_does_nothing_while_another_run_holds_the_lock(alice: Any, release: Release) -> None:
    _expires_in(release, 3)
    with periodic_lock(EXPIRY_NOTICES_LOCK, 60) as held:  # another run is under way
        assert held
        assert notify_expiring() == {"skipped": 1}

    assert not Notification.objects.filter(kind=NotificationKind.RELEASE_EXPIRING).exists()
    assert notify_expiring()["notified"] == 1  # alice; the lock is released after a run


# --- The officers' queue: navigation, home page, lists --------------------------------------------------


def test_the_navigation_shows_officers_the_pending_count_in_one_query(
    alice: Any, charlie: Any, olivia: Any, audrey: Any, release: Release
) -> None:
    _ask(charlie, release)

    with CaptureQueriesContext(connection) as queries:
        page = _page(olivia).get("/inbox/").content.decode()

    assert 'data-testid="nav-access-requests"' in page
    assert 'aria-label="1 pending"' in page
    touching = [q["sql"] for q in queries.captured_queries if "catalog_accessrequest" in q["sql"]]
    assert len(touching) == 1 and "COUNT" in touching[0].upper()
    for other in (alice, charlie, audrey):
        assert 'data-testid="nav-access-requests"' not in _page(other).get("/inbox/").content.decode()


def test_a_decided_request_leaves_the_officers_count(charlie: Any, olivia: Any, release: Release) -> None:
    asked = _ask(charlie, release)
    access_request_decide(actor=olivia, request_id=asked.pk, decision="refuse")

    page = _page(olivia).get("/inbox/").content.decode()

    assert 'data-testid="nav-access-requests"' in page  # the link stays; the count goes
    assert re.search(r'aria-label="\d+ pending"', page) is None


def test_the_officer_home_page_lists_pending_access_requests(
    alice: Any, charlie: Any, olivia: Any, release: Release
) -> None:
    _ask(charlie, release)

    home = _page(olivia).get("/").content.decode()
    assert 'data-testid="waiting-access-request"' in home and "charlie" in home
    assert "1 pending access request" in home
    assert 'data-testid="waiting-access-request"' not in _page(alice).get("/").content.decode()


@pytest.fixture
def two_requests(charlie: Any, sam: Any, olivia: Any, release: Release) -> list[AccessRequest]:
    granted = _ask(charlie, release)
    access_request_decide(actor=olivia, request_id=granted.pk, decision="grant")
    pending = access_request_create(
        actor=sam, release_id=release.pk, purpose="Audit sample", expires_at=_later()
    )
    return [granted, pending]


def test_the_api_list_is_paginated_and_filtered_by_status(
    api: Any, olivia: Any, charlie: Any, two_requests: list[AccessRequest]
) -> None:
    granted, pending = two_requests

    everything = api(olivia).get(REQUESTS).json()
    assert set(everything) == {"count", "next", "previous", "results"}
    assert everything["count"] == 2
    paged = api(olivia).get(REQUESTS, {"page_size": 1}).json()
    assert len(paged["results"]) == 1 and paged["next"] and paged["previous"] is None
    only = api(olivia).get(REQUESTS, {"status": "pending"}).json()
    assert [r["id"] for r in only["results"]] == [str(pending.pk)]
    assert api(olivia).get(REQUESTS, {"status": "bogus"}).status_code == 400
    own = api(charlie).get(REQUESTS).json()  # a member sees only their own
    assert [r["id"] for r in own["results"]] == [str(granted.pk)]


def test_the_list_page_filters_by_status(olivia: Any, two_requests: list[AccessRequest]) -> None:
    client = _page(olivia)

    granted = client.get("/catalog/access-requests/", {"status": "granted"})
    everything = client.get("/catalog/access-requests/")

    assert granted.context["page"].paginator.count == 1
    assert granted.context["page"].object_list[0].status == "granted"
    assert everything.context["page"].paginator.count == 2
