"""Search, filters and pagination of the request lists: the /requests/ page, the review queue page
and GET /api/v1/requests/ (approvals.selectors.requests_filtered behind all three).

Each filter narrows what the caller may already see and never widens it: another team's request
and a teammate's draft stay out whatever is asked."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client

from approvals.choices import RequestStatus
from approvals.models import GateOverride, GenerationRequest
from approvals.tests.conftest import NO_QI_COLUMNS
from core.pagination import PAGE_SIZE
from generation.choices import JobState
from generation.models import SynthesisJob

API = "/api/v1/requests/"
# One per listed request on both pages (the overrides and retries tables mark their rows).
_ROW = re.compile(r'<tr><td><a href="/requests/([0-9a-f-]{36})/">')


def _page_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _api_ids(api: Any, user: Any, params: dict[str, Any]) -> set[str]:
    response = api(user).get(API, params)
    assert response.status_code == 200, response.content
    return {r["id"] for r in response.json()["results"]}


def _page_ids(user: Any, params: dict[str, Any], url: str = "/requests/") -> set[str]:
    response = _page_client(user).get(url, params)
    assert response.status_code == 200
    return set(_ROW.findall(response.content.decode()))


@pytest.fixture
def listed(
    api: Any, make_request: Callable[..., Any], submit: Callable[..., Any], charlie: Any
) -> Callable[[str, Any, dict[str, Any]], set[str]]:
    """listed(where, user, params) -> ids of the requests the page ("page") or API ("api") lists."""

    def run(where: str, user: Any, params: dict[str, Any]) -> set[str]:
        return _api_ids(api, user, params) if where == "api" else _page_ids(user, params)

    return run


@pytest.fixture
def spread(submit: Callable[..., Any], make_request: Callable[..., Any], charlie: Any) -> dict[str, Any]:
    """alice's requests that differ in one listed fact each, and charlie's (another team's)."""
    from approvals.services import request_submit

    kidney = submit(title="Kidney cohort", purpose="Study CKD progression in older adults")
    external = submit(title="Readmission external", audience="external", columns=NO_QI_COLUMNS)
    old = submit(title="Old request")
    GenerationRequest.objects.filter(pk=old.pk).update(
        created_at=datetime(2025, 1, 10, 12, tzinfo=UTC), status=RequestStatus.REJECTED
    )
    draft = make_request(title="Kidney draft")
    oncology = request_submit(
        actor=charlie, request_id=make_request(actor=charlie, title="Kidney oncology").pk
    )
    return {"kidney": kidney, "external": external, "old": old, "draft": draft, "oncology": oncology}


def _ids(spread: dict[str, Any], *names: str) -> set[str]:
    return {str(spread[name].pk) for name in names}


@pytest.mark.parametrize("where", ["api", "page"])
def test_each_filter_narrows_the_list(
    where: str, listed: Callable[..., set[str]], spread: dict[str, Any], olivia: Any, alice: Any, dataset: Any
) -> None:
    filed = _ids(spread, "kidney", "external", "old", "oncology")
    assert listed(where, olivia, {}) == filed
    # q: title or purpose, case-insensitive
    assert listed(where, olivia, {"q": "KIDNEY"}) == _ids(spread, "kidney", "oncology")
    assert listed(where, olivia, {"q": "ckd progression"}) == _ids(spread, "kidney")
    assert listed(where, olivia, {"status": "rejected"}) == _ids(spread, "old")
    assert listed(where, alice, {"status": "draft"}) == _ids(spread, "draft")
    assert listed(where, olivia, {"tier": spread["external"].tier_level}) == _ids(spread, "external")
    assert spread["external"].tier_level != spread["kidney"].tier_level
    assert listed(where, olivia, {"dataset": str(dataset.pk)}) == filed
    assert listed(where, olivia, {"dataset": str(uuid.uuid4())}) == set()
    assert listed(where, olivia, {"team": spread["oncology"].team_id}) == _ids(spread, "oncology")
    assert listed(where, olivia, {"created_to": "2025-01-10"}) == _ids(spread, "old")
    assert listed(where, olivia, {"created_from": "2025-01-11"}) == filed - _ids(spread, "old")
    assert listed(where, olivia, {"created_from": "2025-01-10", "created_to": "2025-01-10"}) == _ids(
        spread, "old"
    )
    # Filters combine: each narrows what the others left.
    assert listed(where, olivia, {"q": "kidney", "team": spread["kidney"].team_id}) == _ids(spread, "kidney")


def test_the_api_orders_newest_first_or_as_asked(api: Any, spread: dict[str, Any], olivia: Any) -> None:
    def titles(**params: Any) -> list[str]:
        return [r["title"] for r in api(olivia).get(API, params).json()["results"]]

    assert titles() == ["Kidney oncology", "Readmission external", "Kidney cohort", "Old request"]
    assert titles(ordering="created_at")[0] == "Old request"
    assert titles(ordering="title") == sorted(titles())
    assert titles(ordering="-title") == sorted(titles(), reverse=True)


@pytest.mark.parametrize(
    "params",
    [
        {"status": "nonsense"},
        {"tier": "huge"},
        {"dataset": "not-a-uuid"},
        {"team": "Oncology"},
        {"created_from": "10/01/2025"},
        {"ordering": "purpose"},
        {"q": "x" * 201},
    ],
)
def test_a_filter_the_api_does_not_understand_is_a_400(api: Any, olivia: Any, params: dict[str, Any]) -> None:
    response = api(olivia).get(API, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == set(params)


def test_a_filter_the_page_does_not_understand_is_ignored_and_said(
    spread: dict[str, Any], olivia: Any
) -> None:
    params = {"status": "nonsense", "q": "kidney", "created_from": "2025-01-11"}
    response = _page_client(olivia).get("/requests/", params)
    assert response.status_code == 200
    text = response.content.decode()
    assert "Filter ignored" in text
    assert 'value="kidney"' in text and 'value="2025-01-11"' in text  # the form shows what applied
    assert set(_ROW.findall(text)) == _ids(spread, "kidney", "oncology")  # the good filter still applies


@pytest.mark.parametrize("where", ["api", "page"])
def test_no_filter_widens_what_a_scientist_sees(
    where: str, listed: Callable[..., set[str]], spread: dict[str, Any], bob: Any, dataset: Any
) -> None:
    # bob (alice's team) sees alice's filed requests, never her draft nor another team's request.
    hidden = _ids(spread, "draft", "oncology")
    team = spread["oncology"].team_id
    for params in [
        {},
        {"q": "kidney"},
        {"q": "Kidney oncology"},
        {"team": team},
        {"status": "draft"},
        {"status": "in_review", "team": team},
        {"dataset": str(dataset.pk)},
        {"created_from": "2000-01-01", "created_to": "2999-12-31"},
        {"ordering": "title"},
    ]:
        assert not listed(where, bob, params) & hidden, params
    assert listed(where, bob, {"team": team}) == set()


def test_the_review_queue_filters_and_keeps_its_order(spread: dict[str, Any], olivia: Any) -> None:
    in_review = _ids(spread, "kidney", "external", "oncology")
    assert _page_ids(olivia, {}, "/requests/review/") == in_review
    assert _page_ids(olivia, {"q": "kidney"}, "/requests/review/") == _ids(spread, "kidney", "oncology")
    tier = spread["external"].tier_level
    assert _page_ids(olivia, {"tier": tier}, "/requests/review/") == _ids(spread, "external")
    # The queue lists only requests in review: a status filter cannot bring others in.
    assert _page_ids(olivia, {"status": "rejected"}, "/requests/review/") == in_review


def _bulk_requests(template: Any, count: int) -> None:
    """`count` copies of `template` (a filed request), written at once."""
    fields = {f.attname: getattr(template, f.attname) for f in template._meta.concrete_fields}
    GenerationRequest.objects.bulk_create(
        [GenerationRequest(**{**fields, "id": uuid.uuid4(), "job_id": None}) for _ in range(count)]
    )


def test_the_api_pages_with_next_links_a_bounded_size_and_404_past_the_end(
    api: Any, submitted_request: Any, olivia: Any
) -> None:
    _bulk_requests(submitted_request, 204)  # 205 in all
    first = api(olivia).get(API, {"page_size": 2, "q": "readmission"}).json()
    assert first["count"] == 205 and len(first["results"]) == 2 and first["previous"] is None
    assert "page=2" in first["next"] and "q=readmission" in first["next"] and "page_size=2" in first["next"]
    second = api(olivia).get(first["next"]).json()
    assert {r["id"] for r in second["results"]}.isdisjoint({r["id"] for r in first["results"]})
    assert len(api(olivia).get(API).json()["results"]) == PAGE_SIZE
    assert len(api(olivia).get(API, {"page_size": 500}).json()["results"]) == 200  # capped
    assert api(olivia).get(API, {"page": 200}).status_code == 404
    assert api(olivia).get(API, {"page": -(-205 // PAGE_SIZE)}).json()["next"] is None  # the last page


def test_the_list_page_pages_and_keeps_its_filters(submitted_request: Any, olivia: Any) -> None:
    _bulk_requests(submitted_request, PAGE_SIZE + 9)  # two pages: a full one and 10 rows
    client = _page_client(olivia)
    text = client.get("/requests/", {"q": "readmission"}).content.decode()
    assert len(_ROW.findall(text)) == PAGE_SIZE
    assert "Page 1 of 2" in text and "q=readmission&amp;page=2" in text
    last = client.get("/requests/", {"q": "readmission", "page": 2}).content.decode()
    assert len(_ROW.findall(last)) == 10
    assert len(_ROW.findall(client.get("/requests/", {"page": 99}).content.decode())) == 10  # the last page


def test_the_queue_lists_overrides_waiting_for_a_second_officer(
    submit: Callable[..., Any], olivia: Any, pia: Any
) -> None:
    from approvals.services import request_decide

    request = submit(title="Override me")
    request_decide(actor=olivia, request_id=request.pk, decision="approve")
    request = GenerationRequest.objects.get(pk=request.pk)
    SynthesisJob.objects.filter(pk=request.job_id).update(state=JobState.GATE_FAILED)
    GenerationRequest.objects.filter(pk=request.pk).update(status=RequestStatus.GATE_FAILED)
    GateOverride.objects.create(
        request_id=request.pk,
        job_id=request.job_id,
        justification="Shape is close enough for a prototype notebook.",
        failed_checks=["column_shape_similarity"],
        proposed_by=pia,
        proposed_by_name=pia.username,
    )
    seen_by_olivia = _page_client(olivia).get("/requests/review/").content.decode()
    assert 'data-testid="override"' in seen_by_olivia and f"/requests/{request.pk}/" in seen_by_olivia
    assert "column_shape_similarity" in seen_by_olivia
    # The proposer is not the second officer: her queue does not offer it back to her.
    assert 'data-testid="override"' not in _page_client(pia).get("/requests/review/").content.decode()
