"""Withdrawal for incidents (catalog.access): 410 with the reason, downloaders listed and notified,
audited; non-officers refused; withdrawing a source dataset withdraws its releases."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditEvent
from catalog.access import dataset_withdraw_releases, release_downloaders, release_withdraw
from catalog.access_views import release_access_context
from catalog.models import Release
from core.errors import PermissionDenied

API = "/api/v1/releases/"
REASON = "Linkage risk found in incident INC-42"


def _page(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_withdrawal_answers_410_lists_and_notifies_downloaders(
    api: Any, alice: Any, bob: Any, olivia: Any, release: Release
) -> None:
    assert api(bob).get(f"{API}{release.pk}/download/").status_code == 200
    assert api(bob).get(f"{API}{release.pk}/download/").status_code == 200

    response = api(olivia).post(f"{API}{release.pk}/withdraw/", {"reason": REASON}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["withdrawn_reason"] == REASON and body["withdrawn_by_name"] == "olivia"
    assert [(d["username"], d["downloads"]) for d in body["downloaders"]] == [("bob", 2)]
    for user in (alice, bob):
        gone = api(user).get(f"{API}{release.pk}/download/")
        assert gone.status_code == 410
        assert gone.json()["error"]["code"] == "release_withdrawn"
        assert REASON in gone.json()["error"]["message"]
    [event] = AuditEvent.objects.filter(action="release.withdraw")
    assert event.actor_name == "olivia"
    assert event.details["downloaders"] == 1 and event.details["cause"] == "release"
    assert REASON not in json.dumps(event.details)  # free text stays on the release, not the log
    from notifications.models import Notification

    assert event.details["notified"] == 1
    [note] = Notification.objects.filter(kind="release_withdrawn")
    assert note.recipient_id == bob.pk and note.target_id == str(release.pk)


def test_the_page_download_of_a_withdrawn_release_is_410_with_the_reason(
    alice: Any, olivia: Any, release: Release
) -> None:
    release_withdraw(actor=olivia, release_id=release.pk, reason=REASON)

    response = _page(alice).get(f"/catalog/{release.pk}/download/")

    assert response.status_code == 410
    assert REASON in response.content.decode()


def test_a_non_officer_cannot_withdraw_and_nothing_changes(api: Any, alice: Any, release: Release) -> None:
    response = api(alice).post(f"{API}{release.pk}/withdraw/", {"reason": REASON}, format="json")

    assert response.status_code == 403
    assert Release.objects.get(pk=release.pk).withdrawn_at is None
    assert api(alice).get(f"{API}{release.pk}/download/").status_code == 200
    [denied] = AuditEvent.objects.filter(action="release.withdraw")
    assert denied.outcome == "denied" and denied.details == {"reason": "not_privacy_officer"}


def test_another_team_gets_404_not_403(api: Any, charlie: Any, release: Release) -> None:
    response = api(charlie).post(f"{API}{release.pk}/withdraw/", {"reason": REASON}, format="json")

    assert response.status_code == 404
    assert Release.objects.get(pk=release.pk).withdrawn_at is None


def test_a_withdrawal_needs_a_reason(api: Any, olivia: Any, release: Release) -> None:
    response = api(olivia).post(f"{API}{release.pk}/withdraw/", {"reason": "  "}, format="json")

    assert response.status_code == 400
    assert Release.objects.get(pk=release.pk).withdrawn_at is None


def test_withdrawing_twice_is_a_no_op(olivia: Any, release: Release) -> None:
    first = release_withdraw(actor=olivia, release_id=release.pk, reason=REASON)
    second = release_withdraw(actor=olivia, release_id=release.pk, reason="another")

    assert second.withdrawn_at == first.withdrawn_at and second.withdrawn_reason == REASON
    assert AuditEvent.objects.filter(action="release.withdraw").count() == 1


def test_a_withdrawn_release_cannot_be_renewed(api: Any, olivia: Any, release: Release) -> None:
    release_withdraw(actor=olivia, release_id=release.pk, reason=REASON)

    response = api(olivia).post(
        f"{API}{release.pk}/renew/", {"expires_at": "2999-01-01T00:00:00Z"}, format="json"
    )

    assert response.status_code == 409


def test_the_withdraw_page_form_and_the_release_access_panel(
    alice: Any, bob: Any, olivia: Any, audrey: Any, api: Any, release: Release
) -> None:
    api(bob).get(f"{API}{release.pk}/download/")
    assert _page(alice).get(f"/catalog/{release.pk}/withdraw/").status_code == 403
    assert _page(olivia).get(f"/catalog/{release.pk}/withdraw/").status_code == 200

    response = _page(olivia).post(f"/catalog/{release.pk}/withdraw/", {"reason": REASON})

    assert response.status_code == 302
    release.refresh_from_db()
    panel = release_access_context(user=audrey, release=release)
    assert REASON in panel["gone_reason"]
    assert [d.username for d in panel["downloaders"]] == ["bob"]
    assert release_access_context(user=alice, release=release)["downloaders"] is None  # oversight only


def test_withdrawing_a_dataset_withdraws_its_releases(
    olivia: Any, alice: Any, publish: Callable[..., Release], release: Release
) -> None:
    other = publish(title="Second release")
    assert other.dataset_id == release.dataset_id

    withdrawn = dataset_withdraw_releases(actor=olivia, dataset_id=release.dataset_id, reason=REASON)

    assert {r.pk for r in withdrawn} == {release.pk, other.pk}
    assert not Release.objects.filter(dataset_id=release.dataset_id, withdrawn_at__isnull=True).exists()
    [event] = AuditEvent.objects.filter(action="dataset.withdraw")
    assert sorted(event.details["releases"]) == sorted([str(release.pk), str(other.pk)])
    causes = [e.details["cause"] for e in AuditEvent.objects.filter(action="release.withdraw")]
    assert causes == ["dataset", "dataset"]
    assert release_downloaders(release=release) == []


def test_a_non_officer_cannot_withdraw_a_dataset(alice: Any, release: Release) -> None:
    with pytest.raises(PermissionDenied):
        dataset_withdraw_releases(actor=alice, dataset_id=release.dataset_id, reason=REASON)

    assert Release.objects.get(pk=release.pk).withdrawn_at is None
    assert AuditEvent.objects.filter(action="dataset.withdraw", outcome="denied").exists()
