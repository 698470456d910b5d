"""Auditors export the audit log as CSV (issue 14 item 7): the page's filters, streamed,
formula-like cells neutralised, and the export itself audited."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.export import neutralise_cell
from audit.models import AuditEvent
from audit.services import audit_record

pytestmark = pytest.mark.django_db


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def exported(client: Client, **params: str) -> tuple[Any, list[dict[str, str]]]:
    response = client.get(reverse("audit:export-csv"), params)
    assert response.status_code == 200
    assert response.streaming
    text = b"".join(response.streaming_content).decode("utf-8")
    return response, list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def events(charlie: Any) -> None:
    audit_record(actor=charlie, action="release.download", target_type="release", target_id="r-1")
    audit_record(actor=charlie, action="release.download", target_type="release", target_id="r-2")
    audit_record(actor=None, action="request.submit", target_type="request", target_id="q-1")


@pytest.mark.parametrize("reader", ["audrey", "olivia", "ada"])
def test_readers_export_the_filtered_events_oldest_first(
    request: pytest.FixtureRequest, events: None, reader: str
) -> None:
    client = signed_in(request.getfixturevalue(reader))
    response, rows = exported(client, action="download", actor="charlie")

    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-log-')
    assert [row["target_id"] for row in rows] == ["r-1", "r-2"]
    assert list(rows[0]) == ["seq", "at", "actor", "action", "target_type", "target_id"] + [
        "outcome",
        "details",
        "request_id",
        "hash",
    ]
    first = AuditEvent.objects.get(target_id="r-1")
    assert (rows[0]["seq"], rows[0]["hash"], rows[0]["details"]) == (str(first.seq), first.hash, "{}")
    assert rows[0]["at"] == first.at.isoformat(timespec="microseconds")


def test_the_whole_log_without_filters_and_the_export_is_audited(audrey: Any, events: None) -> None:
    client = signed_in(audrey)
    before = AuditEvent.objects.count()

    _, rows = exported(client, target="request", date_from="2000-01-01")
    _, everything = exported(client)

    assert [row["target_id"] for row in rows] == ["q-1"]
    audited = list(AuditEvent.objects.filter(action="audit.export").order_by("seq"))
    assert [(e.actor_name, e.outcome) for e in audited] == [("audrey", "success")] * 2
    # Filter names only, never what was typed; and the head the export stopped at.
    assert audited[0].details == {"filters": ["date_from", "target"], "upto_seq": before}
    # The second export holds every event up to its own row (the first export's row included).
    assert [int(row["seq"]) for row in everything] == list(range(1, audited[1].seq))


def test_formula_like_cells_reach_the_spreadsheet_as_text(audrey: Any, ada: Any) -> None:
    audit_record(actor=ada, action='=HYPERLINK("http://x","y")', target_type="+cmd", target_id="@SUM(A1)")
    audit_record(actor=ada, action="odd", target_type="thing", target_id="-3.5")
    audit_record(actor=ada, action="odd", target_type="thing", target_id="\tx", details={"k": "=1+1"})

    _, rows = exported(signed_in(audrey), actor="ada")
    by_target = {row["target_type"] + "|" + row["target_id"]: row for row in rows}

    forged = by_target["'+cmd|'@SUM(A1)"]
    assert forged["action"] == '\'=HYPERLINK("http://x","y")'
    assert "thing|-3.5" in by_target  # a plain number is data, not a formula
    assert "thing|'\tx" in by_target
    assert by_target["thing|'\tx"]["details"] == '{"k":"=1+1"}'  # starts with "{": not a formula


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("+x", "'+x"),
        ("-x", "'-x"),
        ("@x", "'@x"),
        ("\rx", "'\rx"),
        ("-2e5", "-2e5"),
        ("ok", "ok"),
        (7, 7),
    ],
)
def test_the_export_neutralises_by_the_rule_of_core_csv_safety(cell: Any, safe: Any) -> None:
    assert neutralise_cell(cell) == safe


@pytest.mark.parametrize("outsider", ["alice", "charlie", "sam"])
def test_other_roles_get_404_and_nothing_is_exported(
    request: pytest.FixtureRequest, events: None, outsider: str
) -> None:
    response = signed_in(request.getfixturevalue(outsider)).get(reverse("audit:export-csv"))

    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="audit.export").exists()
    assert AuditEvent.objects.filter(outcome="denied", actor_name=outsider).exists()


def test_anonymous_visitors_are_sent_to_sign_in(db: None) -> None:
    response = Client().get(reverse("audit:export-csv"))

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_log_page_links_the_export_with_its_filters(audrey: Any) -> None:
    html = signed_in(audrey).get(reverse("audit:event-list"), {"action": "download"}).content.decode()

    assert 'href="/audit/export.csv?action=download"' in html
