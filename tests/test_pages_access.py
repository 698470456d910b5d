"""Every HTML page: anonymous visitors are sent to sign in; wrong roles and other teams get 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

PAGES = [
    "/",
    "/datasets/",
    "/datasets/new/",
    "/datasets/{dataset}/",
    "/requests/",
    "/requests/new/",
    "/requests/review/",
    "/requests/{request}/",
    "/requests/{request}/job/",
    "/requests/{request}/edit/",
    "/requests/evidence/",
    "/catalog/",
    "/audit/",
    "/manage/users/",
    "/manage/policy/",
    "/manage/policy/1/",
    "/manage/changes/",
]


def _fill(path: str, submitted_request: Any) -> str:
    return path.format(dataset=submitted_request.dataset_id, request=submitted_request.pk)


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client: Client, submitted_request: Any, path: str) -> None:
    response = client.get(_fill(path, submitted_request))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    ("persona", "path"),
    [
        ("alice", "/datasets/new/"),
        ("olivia", "/datasets/new/"),
        ("sam", "/requests/new/"),
        ("olivia", "/requests/new/"),
        ("alice", "/requests/review/"),
        ("audrey", "/requests/review/"),
        ("alice", "/audit/"),
        ("sam", "/audit/"),
        ("olivia", "/manage/users/"),
        ("alice", "/requests/evidence/"),
        ("sam", "/requests/evidence/"),
        ("sam", "/manage/policy/"),
        ("alice", "/manage/policy/"),
        ("olivia", "/manage/changes/"),
        ("audrey", "/manage/changes/"),
        ("bob", "/requests/{request}/edit/"),
        ("olivia", "/requests/{request}/edit/"),
    ],
)
def test_pages_for_other_roles_answer_404(
    client: Client, submitted_request: Any, request: pytest.FixtureRequest, persona: str, path: str
) -> None:
    client.force_login(request.getfixturevalue(persona))
    assert client.get(_fill(path, submitted_request)).status_code == 404


@pytest.mark.parametrize(
    "path", ["/requests/{request}/", "/requests/{request}/job/", "/requests/{request}/edit/"]
)
def test_another_team_gets_404_for_a_request(
    client: Client, submitted_request: Any, charlie: Any, path: str
) -> None:
    client.force_login(charlie)
    assert client.get(_fill(path, submitted_request)).status_code == 404


@pytest.mark.parametrize("action", ["submit", "cancel", "decide", "edit", "regenerate", "upload"])
def test_another_team_cannot_act_on_a_request(
    client: Client, submitted_request: Any, charlie: Any, action: str
) -> None:
    client.force_login(charlie)
    response = client.post(f"/requests/{submitted_request.pk}/{action}/", {"decision": "approve"})
    assert response.status_code == 404
    submitted_request.refresh_from_db()
    assert submitted_request.status == "in_review"


def test_requester_cannot_approve_own_request_through_the_page(
    client: Client, submitted_request: Any, alice: Any
) -> None:
    client.force_login(alice)
    page = client.get(f"/requests/{submitted_request.pk}/")
    assert b"Record decision" not in page.content
    response = client.post(f"/requests/{submitted_request.pk}/decide/", {"decision": "approve"})
    # 403 (she may see the request but not decide it), on the styled page that says why.
    assert response.status_code == 403
    assert b"Not allowed" in response.content and b"cannot decide your own request" in response.content
    submitted_request.refresh_from_db()
    assert submitted_request.status == "in_review" and submitted_request.decisions.count() == 0


def test_a_refused_action_answers_the_styled_403_page_before_reading_the_form(
    client: Client, submitted_request: Any, bob: Any
) -> None:
    from audit.models import AuditEvent

    client.force_login(bob)  # a teammate: sees alice's request, may not upload for it
    response = client.post(f"/requests/{submitted_request.pk}/upload/", {})  # no file at all
    assert response.status_code == 403
    page = response.content.decode()
    assert "Not allowed" in page and "Only the requester can upload" in page
    assert f'href="/requests/{submitted_request.pk}/"' in page  # back to the request
    assert AuditEvent.objects.filter(actor_name="bob", outcome="denied").count() == 1


def test_officer_approves_through_the_page_and_a_job_is_queued(
    client: Client, submitted_request: Any, olivia: Any
) -> None:
    client.force_login(olivia)
    assert b"Record decision" in client.get(f"/requests/{submitted_request.pk}/").content
    client.post(f"/requests/{submitted_request.pk}/decide/", {"decision": "approve", "comment": "ok"})
    submitted_request.refresh_from_db()
    assert submitted_request.status == "approved" and submitted_request.job is not None
    panel = client.get(f"/requests/{submitted_request.pk}/job/")
    assert b'hx-trigger="every 1s"' in panel.content  # keeps polling until the job is final


def test_pages_send_a_strict_content_security_policy(client: Client, alice: Any) -> None:
    client.force_login(alice)
    policy = client.get("/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_healthz_needs_no_sign_in(client: Client, db: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_healthz_answers_503_when_the_database_is_unreachable(
    client: Client, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    import portal.views

    class Unreachable:
        def cursor(self) -> Any:
            raise OperationalError("connection refused")

    # Replace only the view's handle on the connection, not the one the test database uses.
    monkeypatch.setattr(portal.views, "connection", Unreachable())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
