"""The audit API serves auditors, privacy officers and admins; everyone else is turned away."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.urls import include, path, reverse
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.services import audit_record
from portal.services import user_update

Api = Callable[[Any], APIClient]
EVENT_FIELDS = {"seq", "at", "actor", "action", "target_type", "target_id", "outcome", "hash"}
VERDICT_FIELDS = (
    {"ok", "events", "first_bad_seq", "reason", "detail", "unkeyed_events"}
    | {
        "checkpoints",
        "checkpoint_seq",
        "bad_checkpoints",
    }
    | {"verified_at", "mode", "trigger", "from_seq", "upto_seq", "upto_hash", "head_seq"}
    # Sequenced mode (issue 16 item 3): what waits to be linked, now, and how long it may.
    | {"pending_events", "oldest_pending_age_seconds", "max_merge_delay_seconds"}
)


def events_url() -> str:
    return reverse("audit-event-list")


def verify_url() -> str:
    return reverse("audit-verify")


@pytest.fixture
def history(ada: Any, alice: Any, charlie: Any) -> None:
    user_update(actor=ada, user_id=alice.pk, role="privacy_officer")
    audit_record(actor=charlie, action="release.download", target_type="release", target_id="r-7")


@pytest.mark.parametrize("reader", ["audrey", "olivia", "ada"])
def test_readers_get_every_event_newest_first_in_the_contract_shape(
    api: Api, request: pytest.FixtureRequest, history: None, reader: str
) -> None:
    user = request.getfixturevalue(reader)
    total = AuditEvent.objects.count()

    body = api(user).get(events_url()).json()

    assert body["count"] == total
    assert {"count", "next", "previous", "results"} <= body.keys()
    seqs = [event["seq"] for event in body["results"]]
    assert seqs == sorted(seqs, reverse=True) and seqs[0] == total
    assert EVENT_FIELDS <= body["results"][0].keys()


def test_an_event_reads_as_who_did_what_to_what(api: Api, audrey: Any, history: None) -> None:
    body = api(audrey).get(events_url(), {"action": "release.download"}).json()

    [event] = body["results"]
    assert event["actor"] == "charlie"
    assert (event["target_type"], event["target_id"], event["outcome"]) == ("release", "r-7", "success")
    assert len(event["hash"]) == 64


def test_filters_by_actor_action_and_target(api: Api, audrey: Any, alice: Any, history: None) -> None:
    client = api(audrey)

    def actions(**params: str) -> list[str]:
        return [e["action"] for e in client.get(events_url(), params).json()["results"]]

    assert actions(actor="ada") == ["account_change.propose"]
    assert actions(action="download") == ["release.download"]
    assert actions(target=f"user:{alice.pk}") == ["account_change.propose", "user.create"]
    assert actions(target="release") == ["release.download"]
    assert actions(target="r-7") == ["release.download"]
    assert actions(actor="nobody") == []


def test_filters_by_date_range(api: Api, audrey: Any, history: None) -> None:
    today = timezone.now().date()
    client = api(audrey)

    assert client.get(events_url(), {"date_from": today.isoformat()}).json()["count"] > 0
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert client.get(events_url(), {"date_from": tomorrow}).json()["count"] == 0
    yesterday = (today - timedelta(days=1)).isoformat()
    assert client.get(events_url(), {"date_to": yesterday}).json()["count"] == 0


def test_a_malformed_date_is_a_400_that_names_the_field(api: Api, audrey: Any) -> None:
    response = api(audrey).get(events_url(), {"date_from": "last tuesday"})

    assert response.status_code == 400
    assert "date_from" in response.json()["error"]["fields"]


def test_pages_hold_100_events(api: Api, audrey: Any) -> None:
    for n in range(130):
        audit_record(actor=None, action="bulk.test", target_type="thing", target_id=n)
    client = api(audrey)

    first = client.get(events_url()).json()
    second = client.get(first["next"]).json()

    assert (len(first["results"]), len(second["results"])) == (100, first["count"] - 100)
    assert second["next"] is None and second["previous"]


def test_verify_reports_an_intact_chain(api: Api, olivia: Any, history: None) -> None:
    events = AuditEvent.objects.count()
    body = api(olivia).post(verify_url()).json()

    expected = {"ok": True, "events": events, "first_bad_seq": None}
    assert {key: body[key] for key in expected} == expected
    assert (body["reason"], body["detail"], body["bad_checkpoints"]) == ("", "", 0)


def test_verify_reports_where_the_chain_breaks(api: Api, audrey: Any, history: None) -> None:
    last = AuditEvent.objects.order_by("-seq").first()
    assert last is not None
    forged = {f: getattr(last, f) for f in ("at", "actor_name", "action", "target_type", "target_id")}
    AuditEvent.objects.create(
        seq=last.seq + 1, outcome="success", prev_hash=last.hash, hash="0" * 64, **forged
    )

    body = api(audrey).post(verify_url()).json()

    assert (body["ok"], body["first_bad_seq"]) == (False, last.seq + 1)
    # GET answers the recorded verdict, without walking the chain again.
    assert api(audrey).get(verify_url()).json()["first_bad_seq"] == last.seq + 1


@pytest.mark.parametrize("outsider", ["alice", "sam"])
@pytest.mark.parametrize("url", [events_url, verify_url])
def test_other_roles_get_404_as_from_the_audit_pages(
    api: Api, request: pytest.FixtureRequest, outsider: str, url: Callable[[], str]
) -> None:
    response = api(request.getfixturevalue(outsider)).get(url())

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("url", [events_url, verify_url])
def test_anonymous_callers_get_401(api: Api, db: None, url: Callable[[], str]) -> None:
    response = api(None).get(url())

    assert response.status_code == 401


def test_a_deactivated_auditor_is_turned_away(api: Api, audrey: Any) -> None:
    client = api(audrey)
    audrey.is_active = False
    audrey.save(update_fields=["is_active"])

    assert client.get(events_url()).status_code in (401, 403)


@pytest.mark.parametrize(
    ("url", "method"), [(events_url, "post"), (verify_url, "put"), (verify_url, "delete")]
)
def test_the_audit_api_changes_no_event(api: Api, audrey: Any, url: Callable[[], str], method: str) -> None:
    # POST /verify/ runs a verification (test_verification_records.py); nothing edits the log.
    assert getattr(api(audrey), method)(url(), {}).status_code == 405


def test_the_openapi_schema_documents_both_endpoints() -> None:
    schema = SchemaGenerator(patterns=[path("api/v1/audit/", include("audit.api.urls"))]).get_schema(
        request=None, public=True
    )

    listing = schema["paths"]["/api/v1/audit/events/"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {
        "page",
        "actor",
        "action",
        "target",
        "date_from",
        "date_to",
    }
    components = schema["components"]["schemas"]
    assert EVENT_FIELDS <= components["AuditEvent"]["properties"].keys()
    assert "PaginatedAuditEventList" in components
    # The original contract, plus what the keyed chain and its checkpoints add (nothing renamed).
    assert components["AuditVerdict"]["properties"].keys() == VERDICT_FIELDS
