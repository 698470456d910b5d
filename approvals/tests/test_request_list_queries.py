"""Lists of requests cost the same number of queries whatever their length: every per-row field
(quorum, actions, attempts, retries, overrides, budget) reads from what the list fetched at once.

Checked for the request list page, the review queue page and GET /api/v1/requests/, over
requests in every state whose per-row facts differ: in review (with and without an approval in
the round), approved with a job, gate-failed after two attempts (a privacy failure, a retry
approved, a pending retry), published, and gate-failed with a pending override. The large lists
are those requests copied by bulk_create with every related row (_clone_requests), so a list of
300 is built in well under a second; each list shows one page of at most PAGE_SIZE of them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from approvals.choices import RequestStatus
from approvals.models import (
    CandidateRun,
    Decision,
    GateOverride,
    GenerationAttempt,
    GenerationRequest,
    PrivacyRetry,
)
from approvals.tests.conftest import NO_QI_COLUMNS
from core.pagination import PAGE_SIZE
from generation.choices import JobState
from generation.models import SynthesisJob
from validation.models import ValidationReport

_UTILITY_FAILURE = {
    "name": "column_shape_similarity",
    "kind": "utility",
    "passed": False,
    "status": "failed",
    "value": 0.8,
    "threshold": 0.999,
    "direction": "min",
}
_PRIVACY_FAILURE = {
    "name": "singling_out_risk",
    "kind": "privacy",
    "passed": False,
    "status": "failed",
    "value": 0.4,
    "threshold": 0.1,
    "direction": "max",
}

PAGE = PAGE_SIZE  # what one page of a long list shows


def _listed(api: Any, user: Any) -> tuple[int, int]:
    """(requests listed on the first page, queries the list took); the count covers them all."""
    with CaptureQueriesContext(connection) as queries:
        response = api(user).get("/api/v1/requests/")
    assert response.status_code == 200
    body = response.json()
    assert len(body["results"]) == min(body["count"], PAGE)
    return body["count"], len(queries)


def _clone_requests(copies: int) -> None:
    """Every request `copies` more times, each copy with its own copies of the request's jobs (and
    their gate reports), decisions, attempts, overrides and retries: the same per-row facts as
    the original, written with one bulk_create per table instead of a service call per row."""
    from generation.models import SynthesisJob

    assert not CandidateRun.objects.exists()  # not copied; no listed state here has candidates
    jobs = list(SynthesisJob.objects.all())
    reports = list(ValidationReport.objects.all())
    requests = list(GenerationRequest.objects.all())
    related = [
        list(model.objects.all()) for model in (Decision, GenerationAttempt, GateOverride, PrivacyRetry)
    ]
    for _ in range(copies):
        job_ids = {job.pk: uuid.uuid4() for job in jobs}
        request_ids = {request.pk: uuid.uuid4() for request in requests}
        SynthesisJob.objects.bulk_create([_copy(job, pk=job_ids[job.pk]) for job in jobs])
        ValidationReport.objects.bulk_create([_copy(r, pk=None, job_id=job_ids[r.job_id]) for r in reports])
        GenerationRequest.objects.bulk_create(
            [_copy(r, pk=request_ids[r.pk], job_id=job_ids.get(r.job_id)) for r in requests]
        )
        for rows in related:
            copied = []
            for row in rows:
                changes: dict[str, Any] = {"pk": None, "request_id": request_ids[row.request_id]}
                for field in ("job_id", "failed_job_id", "retry_job_id"):
                    if getattr(row, field, None) is not None:
                        changes[field] = job_ids[getattr(row, field)]
                copied.append(_copy(row, **changes))
            if rows:
                type(rows[0]).objects.bulk_create(copied)


def _copy(row: Any, **changes: Any) -> Any:
    """An unsaved copy of `row` with `changes` applied."""
    copy = type(row)(**{f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields})
    for name, value in changes.items():
        setattr(copy, name, value)
    return copy


def _page(user: Any, url: str) -> tuple[str, int]:
    """(page text, queries the page took), signed in as `user` (the sign-in is not counted)."""
    client = Client()
    client.force_login(user)
    client.get("/")  # session and per-user caches warmed, so only the page itself is counted
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return response.content.decode(), len(queries)


def _fail_gate(request_id: Any, *checks: dict[str, Any], output: str = "") -> None:
    """The request's current job ended at the gate with these failed checks."""
    request = GenerationRequest.objects.get(pk=request_id)
    SynthesisJob.objects.filter(pk=request.job_id).update(state=JobState.GATE_FAILED, output_path=output)
    ValidationReport.objects.create(job_id=request.job_id, checks=list(checks), metrics={}, passed=False)
    controls = {**request.tier_controls, "max_generation_attempts": 3}
    GenerationRequest.objects.filter(pk=request_id).update(
        status=RequestStatus.GATE_FAILED, tier_controls=controls
    )


@pytest.fixture
def file_requests(submit: Callable[..., Any], alice: Any, olivia: Any, pia: Any) -> Callable[[int], None]:
    """file_requests(n) files n of alice's requests in each listed state."""
    from approvals.services import request_decide, retry_approve, retry_ask

    def approved(**overrides: Any) -> Any:
        request = submit(**overrides)
        request_decide(actor=olivia, request_id=request.pk, decision="approve")
        return request

    def file(count: int) -> None:
        for _ in range(count):
            submit()  # in review, nobody decided yet
            high = submit(audience="external", columns=NO_QI_COLUMNS)  # in review, 1 of 2 approvals
            request_decide(actor=pia, request_id=high.pk, decision="approve")
            approved()  # approved, its job queued
            twice = approved()  # gate-failed on privacy, retried, failed again; a retry pending
            _fail_gate(twice.pk, _UTILITY_FAILURE, _PRIVACY_FAILURE)
            retry_ask(actor=alice, request_id=twice.pk, reason="another seed")
            retry_approve(
                actor=olivia, request_id=twice.pk, comment="A new seed is acceptable for this prototype."
            )
            _fail_gate(twice.pk, _PRIVACY_FAILURE)
            retry_ask(actor=alice, request_id=twice.pk, reason="and again")
            published = approved()
            SynthesisJob.objects.filter(pk=published.job_id).update(state=JobState.SUCCEEDED)
            GenerationRequest.objects.filter(pk=published.pk).update(status=RequestStatus.PUBLISHED)
            overridden = approved()  # gate-failed, an override proposed by pia awaiting a second officer
            _fail_gate(overridden.pk, _UTILITY_FAILURE, output="synthetic.csv")
            job = SynthesisJob.objects.get(pk=GenerationRequest.objects.get(pk=overridden.pk).job_id)
            GateOverride.objects.create(
                request_id=overridden.pk,
                job=job,
                justification="Shape is close enough for a prototype notebook.",
                failed_checks=["column_shape_similarity"],
                proposed_by=pia,
                proposed_by_name=pia.username,
            )

    return file


STATES = 6  # requests file_requests(1) files
_ROW = '<tr><td><a href="/requests/'  # one per listed request, on both pages


def test_the_request_list_costs_the_same_queries_for_3_and_for_300_requests(
    api: Any, olivia: Any, alice: Any, submit: Callable[..., Any]
) -> None:
    from approvals.services import request_decide

    for n in range(3):
        request = submit()
        if n == 0:  # one with a decision in the round, so the quorum has rows to count
            request_decide(actor=olivia, request_id=request.pk, decision="request_changes", comment="x")
    listed, few = _listed(api, olivia)
    assert listed == 3
    _clone_requests(99)
    listed, many = _listed(api, olivia)
    assert listed == 300
    assert many == few, f"{few} queries for 3 requests, {many} for 300: a per-row query crept in"


def test_request_lists_cost_the_same_queries_for_few_and_many_requests_in_every_state(
    api: Any, olivia: Any, file_requests: Callable[[int], None]
) -> None:
    def measure() -> dict[str, tuple[int, int]]:
        listed, api_queries = _listed(api, olivia)
        page, page_queries = _page(olivia, "/requests/")
        queue, queue_queries = _page(olivia, "/requests/review/")
        return {
            "api": (listed, api_queries),
            "list page": (page.count(_ROW), page_queries),
            "queue page": (queue.count(_ROW), queue_queries),
        }

    file_requests(1)
    few = measure()
    # Every request is listed, and the two in review (per state set) are in olivia's queue.
    assert [few[name][0] for name in few] == [STATES, STATES, 2]
    _clone_requests(49)  # 300 requests: a full first page on each list
    many = measure()
    assert [many[name][0] for name in many] == [STATES * 50, PAGE, PAGE]
    counts = {name: (few[name][1], many[name][1]) for name in few}
    assert all(small == large for small, large in counts.values()), (
        f"queries (for {STATES} requests, for {STATES * 50}): {counts}; a per-row query crept in"
    )
