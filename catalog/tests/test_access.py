"""Access that is enforced (catalog.access): expiry and renewal, access requests and grants,
`access_level` narrowing and discoverability, through the project's own routes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from approvals.models import GenerationRequest
from audit.models import AuditEvent
from catalog.access import access_request_create
from catalog.models import AccessRequest, Release
from catalog.selectors import releases_discoverable_to, releases_visible_to
from core.errors import PermissionDenied

API = "/api/v1/releases/"
REQUESTS = "/api/v1/access-requests/"


def _expire(release: Release) -> None:
    Release.objects.filter(pk=release.pk).update(expires_at=timezone.now() - timedelta(days=1))


def _later(days: int = 30) -> str:
    return (timezone.now() + timedelta(days=days)).isoformat()


def _audit(action: str, **filters: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("seq"))


def _page(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- Expiry ------------------------------------------------------------------------------------


def test_an_expired_release_answers_410_with_the_reason_on_the_api(
    api: Any, alice: Any, release: Release
) -> None:
    _expire(release)

    response = api(alice).get(f"{API}{release.pk}/download/")

    assert response.status_code == 410
    error = response.json()["error"]
    assert error["code"] == "release_expired"
    assert "expired on" in error["message"] and "renew" in error["message"]
    assert not _audit("release.download", outcome="success")
    [denied] = _audit("release.download", outcome="denied")
    assert denied.details == {"reason": "release_expired"}


def test_an_expired_release_answers_410_with_the_reason_on_the_page(alice: Any, release: Release) -> None:
    _expire(release)

    response = _page(alice).get(f"/catalog/{release.pk}/download/")

    assert response.status_code == 410
    assert "expired on" in response.content.decode()
    assert not _audit("release.download", outcome="success")


def test_an_expired_release_is_still_listed_and_flagged(alice: Any, release: Release) -> None:
    _expire(release)

    listed = releases_visible_to(user=alice).get(pk=release.pk)

    assert listed.is_expired and not listed.is_withdrawn


def test_an_officer_renews_an_expired_release_and_downloads_work_again(
    api: Any, alice: Any, olivia: Any, release: Release
) -> None:
    _expire(release)
    until = _later()

    response = api(olivia).post(f"{API}{release.pk}/renew/", {"expires_at": until}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["is_expired"] is False
    assert api(alice).get(f"{API}{release.pk}/download/").status_code == 200
    [renew] = _audit("release.renew")
    assert renew.actor_name == "olivia" and renew.details["was_expired"] is True


def test_a_scientist_cannot_renew_and_the_refusal_is_audited(api: Any, alice: Any, release: Release) -> None:
    _expire(release)
    before = Release.objects.get(pk=release.pk).expires_at

    response = api(alice).post(f"{API}{release.pk}/renew/", {"expires_at": _later()}, format="json")

    assert response.status_code == 403
    assert Release.objects.get(pk=release.pk).expires_at == before
    [denied] = _audit("release.renew", outcome="denied")
    assert denied.details == {"reason": "not_privacy_officer"}


def test_renewing_into_the_past_is_refused(api: Any, olivia: Any, release: Release) -> None:
    past = (timezone.now() - timedelta(days=1)).isoformat()

    response = api(olivia).post(f"{API}{release.pk}/renew/", {"expires_at": past}, format="json")

    assert response.status_code == 400
    assert not _audit("release.renew")


def test_the_page_renew_button_renews(alice: Any, olivia: Any, release: Release) -> None:
    _expire(release)
    day = (timezone.now() + timedelta(days=10)).date().isoformat()

    response = _page(olivia).post(f"/catalog/{release.pk}/renew/", {"expires_at": day})

    assert response.status_code == 302
    assert not Release.objects.get(pk=release.pk).is_expired


# --- Access requests and grants ------------------------------------------------------------------


def test_request_grant_download_revoke(
    api: Any, alice: Any, charlie: Any, olivia: Any, release: Release
) -> None:
    purpose = "Benchmark an oncology readmission model"
    assert api(charlie).get(f"{API}{release.pk}/download/").status_code == 404

    created = api(charlie).post(
        f"{API}{release.pk}/access-requests/", {"purpose": purpose, "expires_at": _later(20)}, format="json"
    )
    assert created.status_code == 201, created.content
    request_id = created.json()["id"]
    assert created.json()["status"] == "pending"
    assert [r["id"] for r in api(charlie).get(REQUESTS).json()["results"]] == [request_id]
    assert api(alice).get(REQUESTS).json()["results"] == []  # neither officer nor requester
    assert [r["id"] for r in api(olivia).get(REQUESTS).json()["results"]] == [request_id]
    assert api(charlie).get(f"{API}{release.pk}/download/").status_code == 404  # not yet granted

    # The requester cannot decide their own request; the refusal is audited.
    own = api(charlie).post(f"{REQUESTS}{request_id}/decisions/", {"decision": "grant"}, format="json")
    assert own.status_code == 403
    assert _audit("access_request.decide", outcome="denied")

    granted = api(olivia).post(
        f"{REQUESTS}{request_id}/decisions/",
        {"decision": "grant", "comment": "For the benchmark only", "expires_at": _later(10)},
        format="json",
    )
    assert granted.status_code == 201, granted.content
    assert granted.json()["status"] == "granted"
    assert api(charlie).get(f"{API}{release.pk}/download/").status_code == 200

    again = api(olivia).post(f"{REQUESTS}{request_id}/decisions/", {"decision": "refuse"}, format="json")
    assert again.status_code == 409

    revoked = api(olivia).post(f"{REQUESTS}{request_id}/revoke/", {"reason": "Project ended"}, format="json")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert api(charlie).get(f"{API}{release.pk}/download/").status_code == 404

    actions = [e.action for e in AuditEvent.objects.order_by("seq") if e.action.startswith("access_request.")]
    assert actions == [
        "access_request.create",
        "access_request.decide",
        "access_request.grant",
        "access_request.revoke",
    ]
    # No free text (purpose, comment, reason) in any audit row.
    for event in AuditEvent.objects.all():
        text = json.dumps(event.details)
        for typed in (purpose, "For the benchmark only", "Project ended"):
            assert typed not in text


def test_a_grant_ends_at_its_expiry(charlie: Any, olivia: Any, release: Release) -> None:
    request = access_request_create(
        actor=charlie,
        release_id=release.pk,
        purpose="Benchmark",
        expires_at=timezone.now() + timedelta(days=3),
    )
    AccessRequest.objects.filter(pk=request.pk).update(
        status="granted", grant_expires_at=timezone.now() + timedelta(days=1)
    )
    assert releases_visible_to(user=charlie).filter(pk=release.pk).exists()

    AccessRequest.objects.filter(pk=request.pk).update(grant_expires_at=timezone.now() - timedelta(seconds=1))

    assert not releases_visible_to(user=charlie).filter(pk=release.pk).exists()


def test_a_refused_request_gives_no_access(api: Any, charlie: Any, olivia: Any, release: Release) -> None:
    request = access_request_create(
        actor=charlie,
        release_id=release.pk,
        purpose="Benchmark",
        expires_at=timezone.now() + timedelta(days=3),
    )

    response = api(olivia).post(f"{REQUESTS}{request.pk}/decisions/", {"decision": "refuse"}, format="json")

    assert response.status_code == 201 and response.json()["status"] == "refused"
    assert api(charlie).get(f"{API}{release.pk}/download/").status_code == 404
    assert _audit("access_request.refuse")


def test_someone_with_access_cannot_request_it(api: Any, bob: Any, release: Release) -> None:
    response = api(bob).post(
        f"{API}{release.pk}/access-requests/", {"purpose": "x", "expires_at": _later()}, format="json"
    )

    assert response.status_code == 409
    assert not AccessRequest.objects.exists()


def test_the_request_access_page_and_the_officer_queue(charlie: Any, olivia: Any, release: Release) -> None:
    form = _page(charlie).get(f"/catalog/{release.pk}/request-access/")
    assert form.status_code == 200 and "Request access" in form.content.decode()
    day = (timezone.now() + timedelta(days=5)).date().isoformat()

    sent = _page(charlie).post(
        f"/catalog/{release.pk}/request-access/", {"purpose": "Benchmark", "expires_at": day}
    )

    assert sent.status_code == 302
    request = AccessRequest.objects.get()
    queue = _page(olivia).get("/catalog/access-requests/")
    assert queue.status_code == 200 and "Benchmark" in queue.content.decode()
    decided = _page(olivia).post(f"/catalog/access-requests/{request.pk}/decide/", {"decision": "grant"})
    assert decided.status_code == 302
    assert AccessRequest.objects.get().status == "granted"


def test_a_non_officer_deciding_on_the_page_gets_403(charlie: Any, release: Release) -> None:
    request = access_request_create(
        actor=charlie,
        release_id=release.pk,
        purpose="Benchmark",
        expires_at=timezone.now() + timedelta(days=3),
    )

    response = _page(charlie).post(f"/catalog/access-requests/{request.pk}/decide/", {"decision": "grant"})

    assert response.status_code == 403
    assert AccessRequest.objects.get().status == "pending"


# --- Visibility: access_level narrows, cards are discoverable -----------------------------------


def test_access_level_internal_narrows_an_organization_release(
    charlie: Any, bob: Any, publish: Callable[..., Release]
) -> None:
    release = publish(audience="organization")
    assert releases_visible_to(user=charlie).filter(pk=release.pk).exists()
    # As publication fixes it from a tier whose controls say access_level "internal".
    Release.objects.filter(pk=release.pk).update(**Release.visibility_fields({"access_level": "internal"}))

    assert not releases_visible_to(user=charlie).filter(pk=release.pk).exists()
    assert releases_visible_to(user=bob).filter(pk=release.pk).exists()  # the team still sees it


def test_publication_fixes_visibility_from_the_tier_on_the_release(
    charlie: Any, alice: Any, publish: Callable[..., Release]
) -> None:
    release = publish(audience="organization")
    request = GenerationRequest.objects.get(pk=release.request_id)
    expected = Release.visibility_fields(request.tier_controls)
    assert (release.access_level, release.discoverable) == (
        expected["access_level"],
        expected["discoverable"],
    )
    assert (release.requester_id, release.requester_name) == (alice.pk, "alice")
    assert Release.visibility_fields({}) == {"access_level": "", "discoverable": True}
    assert Release.visibility_fields({"access_level": "internal", "discoverable": False}) == {
        "access_level": "internal",
        "discoverable": False,
    }
    # Fixed at publication: the request's controls no longer decide who sees the release.
    GenerationRequest.objects.filter(pk=request.pk).update(
        tier_controls={**request.tier_controls, "access_level": "internal", "discoverable": False}
    )
    assert releases_visible_to(user=charlie).filter(pk=release.pk).exists()


def test_cards_are_discoverable_unless_the_policy_hides_them(charlie: Any, release: Release) -> None:
    assert releases_discoverable_to(user=charlie).filter(pk=release.pk).exists()
    Release.objects.filter(pk=release.pk).update(**Release.visibility_fields({"discoverable": False}))

    assert not releases_discoverable_to(user=charlie).filter(pk=release.pk).exists()
    with pytest.raises(Exception) as refused:
        access_request_create(
            actor=charlie, release_id=release.pk, purpose="x", expires_at=timezone.now() + timedelta(days=1)
        )
    assert getattr(refused.value, "status", None) == 404
    assert not isinstance(refused.value, PermissionDenied)
