"""The dataset list (/datasets/, GET /api/v1/datasets/) and the budget ledger at a year's volume
(issue 14 item 7, issue 16 item 1): search, filters, API.md's paginated shape, and the same number
of queries for 3 rows as for 300. Rows are bulk-created: the lists read them, nothing else does."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.pagination import PAGE_SIZE
from generation.choices import Classification, ColumnKind, DatasetStatus
from generation.models import MICRO, BudgetLedgerEntry, DatasetColumn, EntryPurpose, LedgerKind, SourceDataset

URL = "/api/v1/datasets/"
PAGE = "/datasets/"


def _bulk_datasets(steward: Any, count: int, *, prefix: str = "table", **fields: Any) -> list[SourceDataset]:
    """`count` datasets with two columns each, in three queries."""
    defaults: dict[str, Any] = {
        "status": DatasetStatus.READY,
        "classification_version": 1,
        "rows": 1234,
        "sha256": "0" * 64,
        "size_bytes": 10,
        "storage_path": "none",
        "epsilon_cap_micro": 2 * MICRO,
        "uploaded_by": steward,
    }
    defaults.update(fields)
    made = SourceDataset.objects.bulk_create(
        [SourceDataset(name=f"{prefix}-{i:04d}", **defaults) for i in range(count)]
    )
    DatasetColumn.objects.bulk_create(
        [
            DatasetColumn(
                dataset=d,
                position=p,
                name=f"c{p}",
                kind=ColumnKind.NUMERIC,
                classification=Classification.OTHER,
                missing_rate=0.0,
                distinct=5,
            )
            for d in made
            for p in range(2)
        ]
    )
    return made


def _queries(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured.captured_queries)


def _page_client(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


# --- Constant queries at 3 and 300 rows -----------------------------------------------------------


@pytest.mark.parametrize("persona", ["alice", "sam"])
@pytest.mark.parametrize("url", [URL, f"{URL}?page_size=200", f"{URL}?q=table&signed_off=true"])
def test_the_dataset_api_costs_the_same_queries_for_3_or_300_datasets(
    api: Any, sam: Any, request: pytest.FixtureRequest, persona: str, url: str
) -> None:
    client = api(request.getfixturevalue(persona))
    _bulk_datasets(sam, 3)
    client.get(URL)  # the token's first use is recorded once; measure the requests after it
    few = _queries(client, url)
    # A later version shares its population's ledger: the list joins the owner, no query per row.
    first = SourceDataset.objects.order_by("name").first()
    _bulk_datasets(sam, 297, prefix="tablemore", population=first)

    assert client.get(url).json()["count"] == 300
    assert _queries(client, url) == few


@pytest.mark.parametrize("persona", ["alice", "sam"])
def test_the_dataset_page_costs_the_same_queries_for_3_or_300_datasets(
    client: Any, sam: Any, request: pytest.FixtureRequest, persona: str
) -> None:
    page = _page_client(client, request.getfixturevalue(persona))
    _bulk_datasets(sam, 3)
    page.get(PAGE)
    few = _queries(page, PAGE)
    _bulk_datasets(sam, 297, prefix="tablemore", population=SourceDataset.objects.order_by("name").first())

    body = page.get(PAGE).content.decode()
    assert "300 datasets" in body and f"Page 1 of {-(-300 // PAGE_SIZE)}" in body
    assert _queries(page, PAGE) == few


# --- Pagination shape ----------------------------------------------------------------------------


def test_the_dataset_api_answers_apis_paginated_shape(api: Any, alice: Any, sam: Any) -> None:
    _bulk_datasets(sam, 7)
    client = api(alice)

    first = client.get(f"{URL}?page_size=3").json()
    last = client.get(f"{URL}?page_size=3&page=3").json()

    assert set(first) == {"count", "next", "previous", "results"}
    assert (first["count"], len(first["results"]), first["previous"]) == (7, 3, None)
    assert "page=2" in first["next"] and "page_size=3" in first["next"]
    assert [d["name"] for d in last["results"]] == ["table-0006"] and last["next"] is None
    # Each item is still the dataset object API.md names.
    assert {"id", "name", "version", "status", "rows", "sha256", "columns", "budget"} <= set(
        first["results"][0]
    )
    assert client.get(f"{URL}?page=9").status_code == 404


def test_the_page_size_is_bounded(api: Any, alice: Any, sam: Any) -> None:
    _bulk_datasets(sam, 205)

    body = api(alice).get(f"{URL}?page_size=10000").json()

    assert (body["count"], len(body["results"])) == (205, 200)


# --- Filters, in the API and on the page ------------------------------------------------------------


@pytest.fixture
def varied(sam: Any) -> dict[str, SourceDataset]:
    [cardio] = _bulk_datasets(sam, 1, prefix="cardiology")
    [onco] = _bulk_datasets(
        sam, 1, prefix="oncology", status=DatasetStatus.PENDING_REVIEW, classification_version=0
    )
    [reopened] = _bulk_datasets(
        sam, 1, prefix="renal", status=DatasetStatus.PENDING_REVIEW, classification_version=2
    )
    [old] = _bulk_datasets(sam, 1, prefix="archive", status=DatasetStatus.RETIRED)
    SourceDataset.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=400))
    return {"cardio": cardio, "onco": onco, "reopened": reopened, "old": old}


def _names(body: dict[str, Any]) -> set[str]:
    return {d["name"].split("-")[0] for d in body["results"]}


def _page_names(html: str) -> set[str]:
    return {
        name.split("-")[0] for name in re.findall(r">((?:cardiology|oncology|renal|archive)-\d{4})</a>", html)
    }


FILTERS = [
    ("q=CARDIO", {"cardiology"}),
    ("status=pending_review", {"oncology", "renal"}),
    ("signed_off=true", {"cardiology", "renal", "archive"}),
    ("signed_off=false", {"oncology"}),
    (f"created_to={(timezone.now() - timedelta(days=300)).date()}", {"archive"}),
    (f"created_from={(timezone.now() - timedelta(days=1)).date()}", {"cardiology", "oncology", "renal"}),
    ("status=pending_review&signed_off=true", {"renal"}),
]


@pytest.mark.parametrize(("query", "expected"), FILTERS)
def test_each_dataset_filter_narrows_the_api_list(
    api: Any, olivia: Any, varied: dict[str, SourceDataset], query: str, expected: set[str]
) -> None:
    assert _names(api(olivia).get(f"{URL}?{query}").json()) == expected


@pytest.mark.parametrize(("query", "expected"), FILTERS)
def test_each_dataset_filter_narrows_the_page(
    client: Any, olivia: Any, varied: dict[str, SourceDataset], query: str, expected: set[str]
) -> None:
    html = _page_client(client, olivia).get(f"{PAGE}?{query}").content.decode()

    assert _page_names(html) == expected


def test_filters_never_widen_what_a_scientist_sees(
    api: Any, client: Any, alice: Any, varied: dict[str, SourceDataset]
) -> None:
    # Scientists see ready datasets only: asking for the others by status finds nothing.
    for query in ("status=pending_review", "status=retired", "signed_off=false", "q=oncology"):
        assert api(alice).get(f"{URL}?{query}").json()["results"] == []
        assert _page_names(_page_client(client, alice).get(f"{PAGE}?{query}").content.decode()) == set()
    assert _names(api(alice).get(URL).json()) == {"cardiology"}


@pytest.mark.parametrize(
    "query",
    [
        "status=deleted",
        "created_from=yesterday",
        "signed_off=maybe",
        "created_from=2026-02-01&created_to=2026-01-01",
    ],
)
def test_a_malformed_filter_is_a_400_in_the_api_and_ignored_on_the_page(
    api: Any, client: Any, olivia: Any, varied: dict[str, SourceDataset], query: str
) -> None:
    response = api(olivia).get(f"{URL}?{query}")

    assert response.status_code == 400 and response.json()["error"]["code"]
    assert _page_client(client, olivia).get(f"{PAGE}?{query}").status_code == 200


def test_the_page_keeps_the_filters_in_its_pager(client: Any, olivia: Any, sam: Any) -> None:
    _bulk_datasets(sam, PAGE_SIZE + 10)

    html = _page_client(client, olivia).get(f"{PAGE}?q=table&page=2").content.decode()

    assert "Page 2 of 2" in html and "q=table&amp;page=1" in html
    assert f">table-{PAGE_SIZE + 9:04d}<" in html and f">table-{PAGE_SIZE - 1:04d}<" not in html


# --- The budget ledger ------------------------------------------------------------------------------


def _bulk_ledger(dataset: SourceDataset, count: int) -> None:
    start = BudgetLedgerEntry.objects.filter(dataset=dataset).count()
    BudgetLedgerEntry.objects.bulk_create(
        [
            BudgetLedgerEntry(
                dataset=dataset,
                source=dataset,
                purpose=EntryPurpose.DOMAIN_ESTIMATE,
                kind=LedgerKind.RESERVE,
                amount_micro=10,
                spent_after_micro=10 * (start + i + 1),
                actor_name="sam",
                reason=f"entry {start + i}",
            )
            for i in range(count)
        ]
    )


def test_the_ledger_list_is_paginated_and_costs_the_same_at_3_or_300_entries(
    api: Any, audrey: Any, sam: Any
) -> None:
    [dataset] = _bulk_datasets(sam, 1)
    url = f"{URL}{dataset.pk}/budget/entries/"
    client = api(audrey)
    _bulk_ledger(dataset, 3)
    client.get(url)
    few = _queries(client, url)
    _bulk_ledger(dataset, 297)

    body = client.get(url).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert (body["count"], len(body["results"])) == (300, PAGE_SIZE)
    assert body["results"][0]["reason"] == "entry 0"  # oldest first
    assert _queries(client, url) == few


def test_the_budget_summary_carries_the_newest_entries_and_points_to_the_whole_ledger(
    api: Any, olivia: Any, alice: Any, sam: Any
) -> None:
    [dataset] = _bulk_datasets(sam, 1)
    _bulk_ledger(dataset, 120)

    body = api(olivia).get(f"{URL}{dataset.pk}/budget/").json()
    scientist = api(alice).get(f"{URL}{dataset.pk}/budget/").json()

    assert [e["reason"] for e in body["entries"]] == [f"entry {i}" for i in range(70, 120)]
    assert (body["entries_count"], body["entries_truncated"]) == (120, True)
    assert body["entries_url"].endswith(f"{URL}{dataset.pk}/budget/entries/")
    assert scientist["entries"] is None and "entries_count" not in scientist
    # The entries do not exist for a scientist, as on the budget page.
    assert api(alice).get(f"{URL}{dataset.pk}/budget/entries/").status_code == 404
