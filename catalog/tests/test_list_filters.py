"""The catalog list (/catalog/, GET /api/v1/releases/) at a year's volume (issue 14 item 7, issue
16 item 1): search, filters, API.md's paginated shape, summaries instead of every release's gate
and metrics, the same number of queries for 3 rows as for 300, and no filter that shows another
team's release. Releases are bulk-created from one filed request: the lists read them, nothing else."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory, force_authenticate

from approvals.models import GenerationRequest
from catalog.api.serializers import ReleaseOutputSerializer
from catalog.models import Release
from core.pagination import PAGE_SIZE
from generation.models import MICRO, SynthesisJob

URL = "/api/v1/releases/"
PAGE = "/catalog/"

# A gate and metrics the size of a real release's (tens of checks and metric blocks).
GATE = {
    "passed": True,
    "checks": [
        {"name": f"check_{i}", "value": 0.9, "threshold": 0.5, "passed": True, "status": "passed"}
        for i in range(12)
    ],
}
METRICS = {
    f"metric_{i}": {"columns": {f"c{j}": {"score": 0.9, "detail": "x" * 40} for j in range(20)}}
    for i in range(8)
}


@pytest.fixture
def bulk(make_request: Callable[..., GenerationRequest]) -> Callable[..., list[Release]]:
    """`bulk(n, team=..., requester=..., **release_fields)`: n releases, each with its own request
    and job, in three INSERTs."""
    draft = make_request()
    fields = {
        f.attname: getattr(draft, f.attname)
        for f in GenerationRequest._meta.concrete_fields
        if not f.primary_key and f.attname != "job_id"
    }

    def make(count: int, *, team: Any, requester: Any, prefix: str = "Cohort", **extra: Any) -> list[Release]:
        requests = GenerationRequest.objects.bulk_create(
            [
                GenerationRequest(
                    **{**fields, "team_id": team.pk if team else None, "requester_id": requester.pk},
                    id=uuid.uuid4(),
                )
                for _ in range(count)
            ]
        )
        jobs = SynthesisJob.objects.bulk_create(
            [
                SynthesisJob(
                    dataset_id=draft.dataset_id,
                    columns=["age"],
                    synthesizer="gaussian_copula",
                    rows=300,
                    seed=1,
                )
                for _ in range(count)
            ]
        )
        values: dict[str, Any] = {
            "audience": "internal",
            "rows": 300,
            "columns": ["age", "sex"],
            "synthesizer": "gaussian_copula",
            "is_dp": False,
            "storage_path": "none",
            "sha256": "0" * 64,
            "gate": GATE,
            "metrics": METRICS,
            **extra,
        }
        return Release.objects.bulk_create(
            [
                Release(
                    request=r,
                    job=j,
                    dataset_id=draft.dataset_id,
                    team=team,
                    title=f"{prefix} {i:04d}",
                    **values,
                )
                for i, (r, j) in enumerate(zip(requests, jobs, strict=True))
            ]
        )

    return make


def _queries(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured.captured_queries)


def _main_table(html: str) -> str:
    """The table of releases the user may use (not the "ask to use" one below it)."""
    start = html.index('data-testid="releases"')
    return html[start : html.index("</table>", start)]


def _titles(html: str) -> set[str]:
    return set(re.findall(r'/">([A-Za-z]+ \d{4})</a>', _main_table(html)))


def _asked(html: str) -> list[str]:
    """The titles in the "ask to use" table, in order."""
    start = html.index('data-testid="discoverable-releases"')
    return re.findall(r"<tr><td>([A-Za-z]+ \d{4})</td>", html[start : html.index("</table>", start)])


def test_the_releases_to_ask_for_page_on_their_own_ten_at_a_time(
    client: Any, alice: Any, charlie: Any, bulk: Callable[..., list[Release]]
) -> None:
    bulk(23, team=alice.team, requester=alice)
    client.force_login(charlie)

    first = client.get(PAGE).content.decode()
    assert len(_asked(first)) == 10 and "23 in all; page 1 of 3" in first
    assert '?ask=2#ask">Older</a>' in first
    second = client.get(PAGE, {"ask": 2}).content.decode()
    third = client.get(PAGE, {"ask": 3}).content.decode()
    assert len(_asked(second)) == 10 and len(_asked(third)) == 3
    titles = _asked(first) + _asked(second) + _asked(third)
    assert len(set(titles)) == 23  # every release once, none skipped
    # A filter narrows the second list too, and its links keep the filter.
    filtered = client.get(PAGE, {"q": "Cohort 001"}).content.decode()
    assert sorted(_asked(filtered)) == [f"Cohort {i:04d}" for i in range(10, 20)]
    assert "page 1 of 1" not in filtered  # one page: no pager
    # Past the end: the last page, as the main list does.
    assert _asked(client.get(PAGE, {"ask": 99}).content.decode()) == _asked(third)


# --- Constant queries at 3 and 300 rows -----------------------------------------------------------


@pytest.mark.parametrize("persona", ["alice", "olivia"])
@pytest.mark.parametrize("query", ["", "?page_size=200", "?q=cohort&dp=false&state=active"])
def test_the_release_api_costs_the_same_queries_for_3_or_300_releases(
    api: Any,
    alice: Any,
    bulk: Callable[..., list[Release]],
    request: pytest.FixtureRequest,
    persona: str,
    query: str,
) -> None:
    client = api(request.getfixturevalue(persona))
    bulk(3, team=alice.team, requester=alice)
    client.get(URL)  # the token's first use is recorded once; measure the requests after it
    few = _queries(client, URL + query)
    bulk(297, team=alice.team, requester=alice, prefix="Cohorts")

    assert client.get(URL + query).json()["count"] == 300
    assert _queries(client, URL + query) == few


@pytest.mark.parametrize("persona", ["alice", "charlie", "olivia"])
def test_the_catalog_page_costs_the_same_queries_for_3_or_300_releases(
    client: Any, alice: Any, bulk: Callable[..., list[Release]], request: pytest.FixtureRequest, persona: str
) -> None:
    # charlie (another team) sees them in the "ask to use" table: that one is bounded too.
    client.force_login(request.getfixturevalue(persona))
    bulk(3, team=alice.team, requester=alice)
    client.get(PAGE)
    few = _queries(client, PAGE)
    bulk(297, team=alice.team, requester=alice, prefix="Cohorts")

    html = client.get(PAGE).content.decode()
    assert _queries(client, PAGE) == few
    if persona == "charlie":
        assert "300 in all; page 1 of 30" in html and html.count("Request access</a>") == 10
    else:
        assert "300 releases" in html and f"Page 1 of {-(-300 // PAGE_SIZE)}" in html


# --- Shape: paginated summaries -------------------------------------------------------------------


def test_the_release_api_answers_paginated_summaries(
    api: Any, alice: Any, bulk: Callable[..., list[Release]]
) -> None:
    [release, *_] = bulk(5, team=alice.team, requester=alice)

    body = api(alice).get(f"{URL}?page_size=2").json()
    detail = api(alice).get(f"{URL}{release.pk}/").json()

    assert set(body) == {"count", "next", "previous", "results"}
    assert (body["count"], len(body["results"]), body["previous"]) == (5, 2, None) and "page=2" in body[
        "next"
    ]
    item = body["results"][0]
    assert not {"metrics", "receipt", "privacy"} & set(item)
    assert item["gate"] == {"passed": True, "overridden": False, "failed_checks": []}
    assert (item["state"], item["team"], item["url"].endswith(f"{URL}{item['id']}/")) == (
        "active",
        "Cardiology",
        True,
    )
    # The detail keeps the full gate and the metrics (API.md).
    assert len(detail["gate"]["checks"]) == 12 and detail["metrics"]
    assert api(alice).get(f"{URL}?page=4").status_code == 404


def test_the_officers_list_of_50_releases_is_a_fraction_of_the_old_response(
    api: Any, olivia: Any, alice: Any, release: Release, bulk: Callable[..., list[Release]]
) -> None:
    # 50 releases carrying a real one's gate, metrics, privacy block and receipt.
    real = {k: getattr(release, k) for k in ("gate", "metrics", "privacy", "receipt")}
    bulk(49, team=alice.team, requester=alice, **real)
    # Before: every visible release serialized in full, as the old list did.
    http = APIRequestFactory().get(URL)
    force_authenticate(http, user=olivia)
    old = JSONRenderer().render(
        ReleaseOutputSerializer(Release.objects.all(), many=True, context={"request": Request(http)}).data
    )

    new = api(olivia).get(URL).content

    print(f"officer's list of 50 releases: {len(old):,} bytes before, {len(new):,} bytes after")
    assert json.loads(new)["count"] == 50
    assert len(new) * 5 < len(old)


# --- Filters, in the API and on the page ------------------------------------------------------------


@pytest.fixture
def varied(alice: Any, bob: Any, bulk: Callable[..., list[Release]]) -> dict[str, Release]:
    now = timezone.now()
    [plain] = bulk(1, team=alice.team, requester=alice, prefix="Plain")
    [dp] = bulk(1, team=alice.team, requester=alice, prefix="Private", is_dp=True, epsilon_micro=MICRO)
    [expired] = bulk(
        1, team=alice.team, requester=alice, prefix="Expired", expires_at=now - timedelta(days=1)
    )
    [withdrawn] = bulk(
        1, team=alice.team, requester=alice, prefix="Withdrawn", withdrawn_at=now, withdrawn_reason="x"
    )
    [old] = bulk(1, team=alice.team, requester=alice, prefix="Old")
    Release.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=400))
    return {"plain": plain, "dp": dp, "expired": expired, "withdrawn": withdrawn, "old": old}


FILTERS = [
    ("q=PRIV", {"Private"}),
    ("dp=true", {"Private"}),
    ("dp=false", {"Plain", "Expired", "Withdrawn", "Old"}),
    ("state=active", {"Plain", "Private", "Old"}),
    ("state=expired", {"Expired"}),
    ("state=withdrawn", {"Withdrawn"}),
    ("team=Cardiology", {"Plain", "Private", "Expired", "Withdrawn", "Old"}),
    (f"published_to={(timezone.now() - timedelta(days=300)).date()}", {"Old"}),
    (f"published_from={(timezone.now() - timedelta(days=1)).date()}&state=active", {"Plain", "Private"}),
]


def _api_titles(body: dict[str, Any]) -> set[str]:
    return {r["title"].split()[0] for r in body["results"]}


@pytest.mark.parametrize(("query", "expected"), FILTERS)
def test_each_release_filter_narrows_the_api_list(
    api: Any, olivia: Any, varied: dict[str, Release], query: str, expected: set[str]
) -> None:
    assert _api_titles(api(olivia).get(f"{URL}?{query}").json()) == expected


@pytest.mark.parametrize(("query", "expected"), FILTERS)
def test_each_release_filter_narrows_the_page(
    client: Any, olivia: Any, varied: dict[str, Release], query: str, expected: set[str]
) -> None:
    client.force_login(olivia)

    assert {t.split()[0] for t in _titles(client.get(f"{PAGE}?{query}").content.decode())} == expected


def test_the_dataset_filter_in_the_api_and_on_the_page(
    api: Any, client: Any, olivia: Any, varied: dict[str, Release]
) -> None:
    dataset = varied["plain"].dataset_id
    client.force_login(olivia)

    assert api(olivia).get(f"{URL}?dataset={dataset}").json()["count"] == 5
    assert api(olivia).get(f"{URL}?dataset={uuid.uuid4()}").json()["count"] == 0
    assert len(_titles(client.get(f"{PAGE}?dataset={dataset}").content.decode())) == 5


@pytest.mark.parametrize(
    "query",
    [
        "state=lost",
        "dataset=nope",
        "dp=perhaps",
        "published_from=soon",
        "published_from=2026-02-01&published_to=2026-01-01",
    ],
)
def test_a_malformed_filter_is_a_400_in_the_api_and_ignored_on_the_page(
    api: Any, client: Any, olivia: Any, varied: dict[str, Release], query: str
) -> None:
    response = api(olivia).get(f"{URL}?{query}")
    client.force_login(olivia)

    assert response.status_code == 400 and response.json()["error"]["code"]
    assert client.get(f"{PAGE}?{query}").status_code == 200


def test_no_filter_shows_another_teams_release(
    api: Any, client: Any, alice: Any, charlie: Any, bulk: Callable[..., list[Release]]
) -> None:
    [mine] = bulk(1, team=alice.team, requester=alice, prefix="Mine")
    [theirs] = bulk(1, team=charlie.team, requester=charlie, prefix="Theirs")
    client.force_login(alice)
    queries = [
        "",
        "q=theirs",
        f"team={charlie.team.name}",
        f"dataset={theirs.dataset_id}",
        "state=active",
        "dp=false",
        "page_size=200",
    ]

    for query in queries:
        listed = {r["id"] for r in api(alice).get(f"{URL}?{query}").json()["results"]}
        assert str(theirs.pk) not in listed, query
        assert f"/catalog/{theirs.pk}/" not in _main_table(client.get(f"{PAGE}?{query}").content.decode()), (
            query
        )
    assert {r["id"] for r in api(alice).get(URL).json()["results"]} == {str(mine.pk)}
    # The team filter offers only teams of releases alice may use.
    html = client.get(PAGE).content.decode()
    assert f'<option value="{charlie.team.name}"' not in html and f'<option value="{alice.team.name}"' in html


def test_the_page_keeps_the_filters_in_its_pager(
    client: Any, olivia: Any, alice: Any, bulk: Callable[..., list[Release]]
) -> None:
    bulk(PAGE_SIZE + 10, team=alice.team, requester=alice)
    client.force_login(olivia)

    html = client.get(f"{PAGE}?q=cohort&page=2").content.decode()

    assert "Page 2 of 2" in html and "q=cohort&amp;page=1" in html
    assert len(_titles(html)) == 10
