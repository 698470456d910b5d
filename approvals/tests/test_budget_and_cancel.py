"""The epsilon ledger seen through requests: validation, exact spend, exhaustion (409),
concurrent approvals, and cancelling an approved job."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from approvals.services import request_cancel, request_decide, request_submit
from approvals.tests.helpers import declare_by_steward
from catalog.models import Release
from catalog.pipeline import pipeline_run
from conftest import SAFE_COLUMNS
from core.errors import Conflict, PermissionDenied
from generation.choices import JobState
from generation.models import BudgetLedgerEntry, SourceDataset

DP_COLUMNS = ["kappa", "lambda", "futime"]


@pytest.fixture(autouse=True)
def _steward_declared_domains(dataset: Any) -> None:
    # DP requests need domains the steward declared (profile suggestions are refused, see
    # test_dp_requests); these tests are about the ledger.
    declare_by_steward(dataset)


def _dp_request(make_request: Any, alice: Any, epsilon: float = 0.1, **extra: Any) -> Any:
    draft = make_request(synthesizer="dp_copula", epsilon=epsilon, columns=DP_COLUMNS, **extra)
    submitted = request_submit(actor=alice, request_id=draft.pk)
    assert submitted.status == "in_review", submitted.tier_reasons
    return submitted


def _set_cap(dataset: Any, micro: int) -> None:
    SourceDataset.objects.filter(pk=dataset.pk).update(epsilon_cap_micro=micro, epsilon_spent_micro=0)


@pytest.mark.parametrize(
    "raw", ["0", "-1", "NaN", "Infinity", "-Infinity", '"abc"', '"0.1"', "1e12", "true", "[]"]
)
def test_invalid_dp_epsilons_answer_400(api: Any, alice: Any, dataset: Any, raw: str) -> None:
    body = {
        "dataset": str(dataset.pk),
        "title": "t",
        "purpose": "p",
        "intended_use": "u",
        "audience": "internal",
        "columns": DP_COLUMNS,
        "synthesizer": "dp_copula",
        "rows": 100,
        "epsilon": None,
    }
    text = json.dumps(body).replace('"epsilon": null', f'"epsilon": {raw}')
    response = api(alice).post("/api/v1/requests/", text, content_type="application/json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    # NaN and Infinity are not JSON: the strict parser refuses the body before any field is read.
    assert "epsilon" in error.get("fields", {}) or error["code"] == "parse_error"


def test_a_dp_release_spends_exactly_its_epsilon_and_says_so(
    make_request: Any, alice: Any, olivia: Any, dataset: Any, api: Any
) -> None:
    request = _dp_request(make_request, alice, epsilon=0.123457)
    request_decide(actor=olivia, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    assert pipeline_run(job_id=request.job_id) in {"published", "gate_failed"}
    dataset.refresh_from_db()
    assert dataset.epsilon_spent == Decimal("0.123457")
    assert list(BudgetLedgerEntry.objects.values_list("kind", "amount_micro")) == [("reserve", 123_457)]
    release = Release.objects.filter(request=request).first()
    if release is not None:
        body = api(alice).get(f"/api/v1/releases/{release.pk}/").json()
        assert body["is_dp"] is True and body["epsilon"] == 0.123457
        # `privacy` is the release's privacy block (issue 11); the sentence is `privacy_statement`.
        assert "epsilon = 0.123457" in body["privacy_statement"]
        assert body["privacy"]["dp"] is True and body["privacy"]["epsilon"] == 0.123457


def test_a_non_dp_release_says_it_is_not_dp(
    submitted_request: Any, olivia: Any, api: Any, alice: Any
) -> None:
    request_decide(actor=olivia, request_id=submitted_request.pk, decision="approve")
    submitted_request.refresh_from_db()
    assert pipeline_run(job_id=submitted_request.job_id) == "published"
    body = api(alice).get(f"/api/v1/releases/{submitted_request.release.pk}/").json()
    assert (
        body["is_dp"] is False
        and body["epsilon"] is None
        and "Not differentially private" in body["privacy_statement"]
    )
    assert body["privacy"]["dp"] is False and body["privacy"]["epsilon"] is None
    assert not BudgetLedgerEntry.objects.exists()


def test_approval_without_enough_budget_is_409_with_the_remaining_amount(
    make_request: Any, alice: Any, olivia: Any, dataset: Any, api: Any
) -> None:
    request = _dp_request(make_request, alice, epsilon=0.07)
    _set_cap(dataset, 50_000)  # spent elsewhere after submission (submission checks it too)
    response = api(olivia).post(
        f"/api/v1/requests/{request.pk}/decisions/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "budget_exhausted" and error["fields"]["epsilon_remaining"] == "0.05"
    request.refresh_from_db()
    assert request.status == "in_review" and request.job is None and request.decisions.count() == 0


def test_a_cap_of_point_three_takes_three_tenths_and_leaves_exactly_zero(
    make_request: Any, alice: Any, olivia: Any, dataset: Any
) -> None:
    _set_cap(dataset, 300_000)
    requests = [_dp_request(make_request, alice, epsilon=0.1, title=f"r{i}") for i in range(4)]
    for request in requests[:3]:
        request_decide(actor=olivia, request_id=request.pk, decision="approve")
    with pytest.raises(Conflict):
        request_decide(actor=olivia, request_id=requests[3].pk, decision="approve")
    dataset.refresh_from_db()
    assert dataset.epsilon_remaining == 0 and dataset.epsilon_spent_micro == 300_000


@pytest.mark.integration
def test_one_hundred_concurrent_approvals_reserve_exactly_fourteen(
    transactional_db: Any, make_request: Any, alice: Any, olivia: Any, dataset: Any
) -> None:
    _set_cap(dataset, 1_000_000)
    requests = [_dp_request(make_request, alice, epsilon=0.07, title=f"c{i}") for i in range(100)]
    barrier = threading.Barrier(16)

    def approve(request: Any) -> str:
        try:
            try:
                barrier.wait(timeout=2)
            except threading.BrokenBarrierError:
                pass
            request_decide(actor=olivia, request_id=request.pk, decision="approve")
            return "approved"
        except Conflict as exc:
            return exc.code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(approve, requests))
    assert outcomes.count("approved") == 14 and outcomes.count("budget_exhausted") == 86
    dataset.refresh_from_db()
    assert dataset.epsilon_spent_micro == 980_000
    assert BudgetLedgerEntry.objects.filter(kind="reserve").count() == 14


def test_cancelling_an_approved_job_before_it_starts_refunds_and_cancels_the_request(
    make_request: Any, alice: Any, olivia: Any, dataset: Any
) -> None:
    request = _dp_request(make_request, alice, epsilon=0.2)
    request_decide(actor=olivia, request_id=request.pk, decision="approve")
    request_cancel(actor=alice, request_id=request.pk)
    request.refresh_from_db()
    assert request.job.state == JobState.CANCELLED and request.status == "cancelled"
    dataset.refresh_from_db()
    assert dataset.epsilon_spent_micro == 0
    assert pipeline_run(job_id=request.job_id) == "skipped"


def test_a_privacy_officer_may_stop_a_job_but_a_teammate_may_not(
    submitted_request: Any, olivia: Any, oscar: Any, bob: Any
) -> None:
    request_decide(actor=olivia, request_id=submitted_request.pk, decision="approve")
    with pytest.raises(PermissionDenied):
        request_cancel(actor=bob, request_id=submitted_request.pk)
    request_cancel(actor=oscar, request_id=submitted_request.pk)
    submitted_request.refresh_from_db()
    assert submitted_request.status == "cancelled"


def test_cancelling_from_the_page_stops_the_job(
    client: Any, submitted_request: Any, olivia: Any, alice: Any
) -> None:
    request_decide(actor=olivia, request_id=submitted_request.pk, decision="approve")
    client.force_login(alice)
    page = client.get(f"/requests/{submitted_request.pk}/").content.decode()
    assert "Cancel generation" in page
    client.post(f"/requests/{submitted_request.pk}/cancel/")
    submitted_request.refresh_from_db()
    assert submitted_request.status == "cancelled" and submitted_request.job.state == JobState.CANCELLED
    assert SAFE_COLUMNS == submitted_request.columns


def test_the_request_form_shows_the_budget_left(client: Any, alice: Any, dataset: Any) -> None:
    SourceDataset.objects.filter(pk=dataset.pk).update(
        epsilon_cap_micro=1_000_000, epsilon_spent_micro=250_000
    )
    client.force_login(alice)
    page = client.get(f"/requests/new/?dataset={dataset.pk}").content.decode()
    assert 'data-testid="budget-left">Privacy budget left on flchain: epsilon 0.75 of 1' in page
