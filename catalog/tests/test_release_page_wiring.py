"""The release page and catalog as people meet them: the data card, the access controls and state
badges on the release page, cards that others may ask to use, and the inbox in the navigation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone

from catalog.access import access_request_create, release_withdraw
from catalog.models import Release


def _page(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_release_page_shows_the_data_card_and_downloads(alice: Any, release: Release) -> None:
    html = _page(alice).get(f"/catalog/{release.pk}/").content.decode()

    assert 'data-testid="data-card"' in html and 'data-testid="card-privacy"' in html
    assert 'data-testid="release-state">Published' in html
    assert f"/catalog/{release.pk}/download/" in html
    # Officer controls are for officers only.
    assert "Access controls" not in html


def test_an_officer_sees_access_controls_and_downloaders(olivia: Any, release: Release) -> None:
    html = _page(olivia).get(f"/catalog/{release.pk}/").content.decode()

    assert "Access controls" in html
    assert f"/catalog/{release.pk}/withdraw/" in html and f"/catalog/{release.pk}/renew/" in html
    assert 'data-testid="release-downloaders"' in html


def test_a_withdrawn_release_says_so_and_offers_no_download(
    alice: Any, olivia: Any, release: Release
) -> None:
    release_withdraw(actor=olivia, release_id=release.pk, reason="Incident INC-7 under review")

    html = _page(alice).get(f"/catalog/{release.pk}/").content.decode()

    assert 'data-testid="release-state">Withdrawn' in html
    assert "Incident INC-7 under review" in html
    assert f"/catalog/{release.pk}/download/" not in html
    listing = _page(alice).get("/catalog/").content.decode()
    assert "withdrawn</span>" in listing


def test_an_expired_release_is_marked_expired(alice: Any, release: Release) -> None:
    Release.objects.filter(pk=release.pk).update(expires_at=timezone.now() - timedelta(days=1))

    html = _page(alice).get(f"/catalog/{release.pk}/").content.decode()

    assert 'data-testid="release-state">Expired' in html
    assert f"/catalog/{release.pk}/download/" not in html


def test_another_team_finds_the_card_and_can_ask_for_access(charlie: Any, release: Release) -> None:
    client = _page(charlie)
    listing = client.get("/catalog/").content.decode()

    assert 'data-testid="discoverable-releases"' in listing
    assert f"/catalog/{release.pk}/request-access/" in listing
    assert client.get(f"/catalog/{release.pk}/").status_code == 404  # the data stays out of reach

    form = client.get(f"/catalog/{release.pk}/request-access/")
    assert form.status_code == 200
    until = (timezone.now() + timedelta(days=20)).date().isoformat()
    sent = client.post(
        f"/catalog/{release.pk}/request-access/",
        {"purpose": "External validation on oncology patients", "expires_at": until},
    )
    assert sent.status_code == 302 and sent["Location"] == "/catalog/access-requests/"
    assert "External validation" in client.get("/catalog/access-requests/").content.decode()


def test_the_inbox_link_counts_unread_notifications(charlie: Any, olivia: Any, release: Release) -> None:
    access_request_create(
        actor=charlie,
        release_id=release.pk,
        purpose="External validation on oncology patients",
        expires_at=timezone.now() + timedelta(days=20),
    )
    html = _page(olivia).get("/").content.decode()

    assert 'data-testid="nav-inbox"' in html
    assert "/inbox/" in html


def test_the_review_queue_points_officers_to_waiting_access_requests(
    client: Client, charlie: Any, olivia: Any, release: Release
) -> None:
    queue = _page(olivia).get("/requests/review/")
    assert queue.status_code == 200
    assert "No access requests are waiting." in queue.content.decode()

    access_request_create(
        actor=charlie,
        release_id=release.pk,
        purpose="External validation on oncology patients",
        expires_at=timezone.now() + timedelta(days=20),
    )
    html = _page(olivia).get("/requests/review/").content.decode()
    assert "1 access request waiting for a decision" in html
    assert "/catalog/access-requests/?status=pending" in html


def test_the_ask_to_use_table_is_exactly_discoverable_minus_visible(
    publish: Any, alice: Any, bob: Any, charlie: Any, olivia: Any, sam: Any, ada: Any
) -> None:
    from catalog.selectors import releases_discoverable_to, releases_to_ask_for, releases_visible_to

    internal = publish()
    organization = publish(audience="organization")
    granted = publish()
    asked = access_request_create(
        actor=charlie,
        release_id=granted.pk,
        purpose="External validation on oncology patients",
        expires_at=timezone.now() + timedelta(days=20),
    )
    from catalog.access import access_request_decide

    access_request_decide(actor=olivia, request_id=asked.pk, decision="grant")
    assert {internal.pk, organization.pk, granted.pk} <= set(Release.objects.values_list("pk", flat=True))
    for user in (alice, bob, charlie, olivia, sam, ada):
        discoverable = set(releases_discoverable_to(user=user).values_list("pk", flat=True))
        visible = set(releases_visible_to(user=user).values_list("pk", flat=True))
        assert set(releases_to_ask_for(user=user).values_list("pk", flat=True)) == discoverable - visible, (
            user
        )
    # charlie's grant moved that release out of his table; the internal one is still there.
    assert set(releases_to_ask_for(user=charlie).values_list("pk", flat=True)) == {internal.pk}
