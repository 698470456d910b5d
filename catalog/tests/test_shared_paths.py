"""The page and the API read a release's report and its file through one path each
(catalog.reports, catalog.downloads), so they cannot drift apart."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditEvent
from catalog.models import Release

URL = "/api/v1/releases/"


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@pytest.mark.parametrize("persona", ["alice", "olivia"])
def test_the_page_and_the_api_show_one_user_the_same_report(
    api: Any, release: Release, persona: str, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(persona)
    page = signed_in(user).get(f"/catalog/{release.pk}/").context
    body = api(user).get(f"{URL}{release.pk}/report/").json()

    assert body["full"] is page["full_report"] is (persona == "olivia")
    assert [g["name"] for g in body["glossary"]] == [g.name for g in page["glossary"]]
    assert body["metrics"] == as_json(page["metrics"])
    assert body["gate"]["passed"] is page["gate"]["passed"]
    assert [(c["name"], c["value"]) for c in body["gate"]["checks"]] == [
        (c["name"], c.get("value")) for c in page["gate"]["checks"]
    ]
    assert bool(page["charts"]) is (persona == "olivia")


def test_the_page_and_the_api_download_the_same_file_the_same_way(
    api: Any, bob: Any, release: Release
) -> None:
    from_page = signed_in(bob).get(f"/catalog/{release.pk}/download/")
    from_api = api(bob).get(f"{URL}{release.pk}/download/")

    assert b"".join(from_page.streaming_content) == b"".join(from_api.streaming_content)
    for header in ("Content-Type", "Content-Length", "Content-Disposition", "Cache-Control"):
        assert from_page[header] == from_api[header], header
    assert AuditEvent.objects.filter(action="release.download", actor_name="bob").count() == 2
