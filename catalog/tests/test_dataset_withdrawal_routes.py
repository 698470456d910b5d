"""Withdrawing a source dataset version withdraws its releases, from the dataset page and the API:
privacy officers only (403, audited, for anyone else who sees the dataset; 404 for those who do
not), and every release answers 410 afterwards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.test import Client

from audit.models import AuditEvent
from catalog.models import Release
from generation.choices import DatasetStatus
from generation.models import SourceDataset

REASON = "Consent withdrawn for the source cohort (INC-77)"


def _page(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _withdraw_url(release: Release) -> str:
    return f"/catalog/datasets/{release.dataset_id}/withdraw/"


def _api_url(release: Release) -> str:
    return f"/api/v1/datasets/{release.dataset_id}/withdraw-releases/"


def _live(release: Release) -> int:
    return Release.objects.filter(dataset_id=release.dataset_id, withdrawn_at__isnull=True).count()


def test_an_officer_withdraws_a_dataset_from_its_page(
    api: Any, alice: Any, olivia: Any, publish: Callable[..., Release], release: Release
) -> None:
    other = publish(title="Second release")
    detail = _page(olivia).get(f"/datasets/{release.dataset_id}/")
    assert f'href="{_withdraw_url(release)}"' in detail.content.decode()

    form = _page(olivia).get(_withdraw_url(release))
    assert form.status_code == 200
    assert release.title in form.content.decode() and "Second release" in form.content.decode()

    response = _page(olivia).post(_withdraw_url(release), {"reason": REASON})

    assert response.status_code == 302 and response["Location"] == f"/datasets/{release.dataset_id}/"
    assert _live(release) == 0
    for rel in (release, other):
        gone = api(alice).get(f"/api/v1/releases/{rel.pk}/download/")
        assert gone.status_code == 410 and REASON in gone.json()["error"]["message"]
    [event] = AuditEvent.objects.filter(action="dataset.withdraw")
    assert event.outcome == "success" and REASON not in str(event.details)


def test_the_dataset_page_links_the_withdrawal_for_officers_only(
    alice: Any, sam: Any, olivia: Any, release: Release
) -> None:
    for user in (alice, sam):
        assert (
            _withdraw_url(release) not in _page(user).get(f"/datasets/{release.dataset_id}/").content.decode()
        )


def test_a_non_officer_is_refused_on_the_page_audited_and_nothing_changes(
    alice: Any, sam: Any, release: Release
) -> None:
    for user in (alice, sam):
        assert _page(user).get(_withdraw_url(release)).status_code == 403
        assert _page(user).post(_withdraw_url(release), {"reason": REASON}).status_code == 403

    assert _live(release) == 1
    denied = AuditEvent.objects.filter(action="dataset.withdraw", outcome="denied")
    # One denied row per refusal: the form (GET) and the action (POST), for each of them.
    assert sorted(e.actor_name for e in denied) == ["alice", "alice", "sam", "sam"]


def test_a_dataset_a_member_cannot_see_is_404_on_the_page_and_the_api(
    api: Any, alice: Any, release: Release
) -> None:
    # Scientists see signed-off datasets only (generation.selectors.datasets_visible_to).
    SourceDataset.objects.filter(pk=release.dataset_id).update(status=DatasetStatus.RETIRED)

    assert _page(alice).get(_withdraw_url(release)).status_code == 404
    assert _page(alice).post(_withdraw_url(release), {"reason": REASON}).status_code == 404
    assert api(alice).post(_api_url(release), {"reason": REASON}, format="json").status_code == 404
    assert _live(release) == 1


def test_an_officer_withdraws_a_dataset_over_the_api(
    api: Any, alice: Any, olivia: Any, release: Release
) -> None:
    response = api(olivia).post(_api_url(release), {"reason": REASON}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["dataset"] == str(release.dataset_id)
    assert [r["id"] for r in body["withdrawn"]] == [str(release.pk)]
    assert body["withdrawn"][0]["withdrawn_reason"] == REASON
    assert api(alice).get(f"/api/v1/releases/{release.pk}/download/").status_code == 410
    # Again: nothing left to withdraw, and the answer says so.
    again = api(olivia).post(_api_url(release), {"reason": REASON}, format="json")
    assert again.status_code == 200 and again.json()["withdrawn"] == []


def test_a_non_officer_gets_403_over_the_api_audited(api: Any, alice: Any, release: Release) -> None:
    response = api(alice).post(_api_url(release), {"reason": REASON}, format="json")

    assert response.status_code == 403
    assert _live(release) == 1
    [denied] = AuditEvent.objects.filter(action="dataset.withdraw")
    assert denied.outcome == "denied" and denied.actor_name == "alice"


def test_the_api_needs_a_reason(api: Any, olivia: Any, release: Release) -> None:
    response = api(olivia).post(_api_url(release), {"reason": " "}, format="json")

    assert response.status_code == 400
    assert _live(release) == 1
