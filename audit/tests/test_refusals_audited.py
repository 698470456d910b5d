"""Refused actions leave evidence: a request outside the caller's scope (404, API and browser), a
non-auditor reading the audit log (404, as from the audit pages), a teammate submitting or cancelling someone else's
request (403), a transition from the wrong state (409). Each writes one `denied` audit row with
the actor, the action, the target and a reason code, never a value from the request; a refusal
the service already audited is not written twice."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent


def _denials(**filters: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(outcome="denied", **filters))


def _only_denial(actor: str) -> AuditEvent:
    rows = _denials(actor_name=actor)
    assert len(rows) == 1, [(r.action, r.details) for r in rows]
    return rows[0]


def test_another_teams_request_over_the_api_is_a_404_and_audited(
    api: Any, charlie: Any, make_request: Any
) -> None:
    request = make_request()
    response = api(charlie).get(f"/api/v1/requests/{request.pk}/")

    assert response.status_code == 404
    row = _only_denial("charlie")
    assert (row.action, row.target_type, row.target_id) == ("request.detail", "request", str(request.pk))
    assert row.details["reason"] == "not_found" and row.details["status"] == 404
    assert row.actor == charlie and row.request_id == response["X-Request-ID"]


def test_another_teams_request_in_the_browser_is_a_404_and_audited(
    client: Any, charlie: Any, make_request: Any
) -> None:
    request = make_request()
    client.force_login(charlie)
    response = client.get(f"/requests/{request.pk}/")

    assert response.status_code == 404
    row = _only_denial("charlie")
    assert (row.action, row.target_type, row.target_id) == ("request.detail", "request", str(request.pk))
    assert row.details["reason"] == "not_found"


def test_a_non_auditor_reading_the_audit_log_is_a_404_and_audited(api: Any, bob: Any) -> None:
    response = api(bob).get("/api/v1/audit/events/")

    assert response.status_code == 404
    row = _only_denial("bob")
    assert (row.action, row.target_type) == ("audit.event.list", "route")
    assert row.details["reason"] == "not_found" and row.details["method"] == "GET"


def test_a_teammate_submitting_or_cancelling_someone_elses_request_is_audited(
    api: Any, alice: Any, bob: Any, submitted_request: Any
) -> None:
    request = submitted_request  # in review: visible to the requester's team
    assert api(bob).post(f"/api/v1/requests/{request.pk}/submit/").status_code == 403
    assert api(bob).post(f"/api/v1/requests/{request.pk}/cancel/").status_code == 403

    rows = sorted(_denials(actor_name="bob"), key=lambda r: r.seq)
    assert [(r.action, r.target_id, r.details["reason"]) for r in rows] == [
        ("request.submit", str(request.pk), "forbidden"),
        ("request.cancel", str(request.pk), "forbidden"),
    ]


def test_a_transition_from_the_wrong_state_is_a_409_and_audited(
    api: Any, alice: Any, submitted_request: Any
) -> None:
    response = api(alice).put(
        f"/api/v1/requests/{submitted_request.pk}/",
        {
            "dataset": str(submitted_request.dataset_id),
            "title": "Changed after submission",
            "purpose": "p",
            "intended_use": "u",
            "audience": "internal",
            "columns": ["age"],
            "synthesizer": "gaussian_copula",
            "rows": 100,
            "epsilon": None,
        },
        format="json",
    )
    assert response.status_code == 409, response.content
    row = _only_denial("alice")
    assert row.action == "request.detail" and row.details["status"] == 409
    assert row.details["reason"] == response.json()["error"]["code"]


def test_a_refusal_the_service_already_audited_is_not_written_twice(
    api: Any, alice: Any, submitted_request: Any
) -> None:
    response = api(alice).post(
        f"/api/v1/requests/{submitted_request.pk}/decisions/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 403
    row = _only_denial("alice")
    assert row.action != "request.decisions"  # the service's own, more specific row


def test_a_malformed_id_is_not_copied_into_the_log(api: Any, charlie: Any) -> None:
    response = api(charlie).get("/api/v1/requests/CANARY-1234-not-an-id/")
    assert response.status_code == 404
    row = _only_denial("charlie")
    assert row.target_id == "malformed-id" and "CANARY" not in str(row.details)


@pytest.mark.parametrize("path", ["/api/v1/requests/", "/api/v1/no-such-endpoint/"])
def test_ordinary_reads_and_unknown_urls_write_no_denial(api: Any, alice: Any, path: str) -> None:
    api(alice).get(path)
    assert _denials() == []


def test_anonymous_callers_are_not_audited_here(client: Any, make_request: Any) -> None:
    # 401s and sign-in failures are audited by the sign-in code, not as object denials.
    request = make_request()
    client.get(f"/api/v1/requests/{request.pk}/")
    assert _denials() == []
