"""A release that failed a privacy check cannot be re-rolled by its requester: a retry needs a
privacy officer's approval with a comment, and nothing is spent until then. Utility-only
failures stay self-service. Through the real pipeline, in-process."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from approvals.choices import RequestStatus, RetryStatus
from approvals.models import GenerationRequest, PrivacyRetry
from approvals.services import request_regenerate, retry_approve, retry_ask, retry_refuse
from audit.models import AuditEvent
from catalog.pipeline import pipeline_run
from core.errors import Conflict, PermissionDenied, ValidationFailed
from generation.models import BudgetLedgerEntry, SourceDataset
from validation.models import ValidationReport

COMMENT = "Inference risk was 0.02 above the ceiling; one more seed at the same epsilon is acceptable."


def _fail_inference(request: GenerationRequest) -> None:
    """Make the attempt's gate record a failed attribute-inference attack (as the suite does
    when the attack works: estimate above the ceiling, interval excluding 0)."""
    report = ValidationReport.objects.get(job_id=request.job_id)
    checks = [c for c in report.checks if c["name"] != "inference_risk"]
    checks.append(
        {
            "name": "inference_risk",
            "value": 0.31,
            "threshold": 0.15,
            "passed": False,
            "direction": "max",
            "kind": "privacy",
            "error": "",
            "ci": [0.2, 0.42],
        }
    )
    ValidationReport.objects.filter(pk=report.pk).update(checks=checks, passed=False)


@pytest.fixture
def privacy_failed(gate_failed: Callable[..., GenerationRequest]) -> Callable[..., GenerationRequest]:
    def run(**overrides: Any) -> GenerationRequest:
        request = gate_failed(**overrides)
        _fail_inference(request)
        return request

    return run


@pytest.fixture
def api() -> Callable[[Any], Any]:
    """An API client authenticated as `user` (how it authenticates is tested elsewhere)."""
    from rest_framework.test import APIClient

    def client_for(user: Any) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return client_for


def _reserved(dataset: SourceDataset) -> Decimal:
    dataset.refresh_from_db()
    return dataset.epsilon_spent


def test_requester_cannot_regenerate_after_an_inference_failure_and_nothing_is_spent(
    privacy_failed: Callable[..., GenerationRequest], alice: Any, api: Any, dataset: SourceDataset
) -> None:
    request = privacy_failed(synthesizer="dp_copula", epsilon="0.3")
    spent = _reserved(dataset)
    reservations = BudgetLedgerEntry.objects.filter(kind="reserve").count()

    response = api(alice).post(f"/api/v1/requests/{request.pk}/regenerate/")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "privacy_retry_needs_officer"
    assert "inference_risk" in response.json()["error"]["message"]
    with pytest.raises(Conflict):
        request_regenerate(actor=alice, request_id=request.pk)
    request.refresh_from_db()
    assert (request.status, request.attempts.count()) == (RequestStatus.GATE_FAILED, 1)
    assert _reserved(dataset) == spent
    assert BudgetLedgerEntry.objects.filter(kind="reserve").count() == reservations
    denied = AuditEvent.objects.filter(action="request.regenerate", outcome="denied")
    assert denied.count() == 2


def test_an_officer_approves_a_retry_with_a_comment_and_the_retry_runs_and_spends(
    privacy_failed: Callable[..., GenerationRequest],
    alice: Any,
    olivia: Any,
    api: Any,
    dataset: SourceDataset,
) -> None:
    request = privacy_failed(synthesizer="dp_copula", epsilon="0.3")
    url = f"/api/v1/requests/{request.pk}"
    body = api(alice).get(f"{url}/").json()
    assert body["retry"]["needs_officer"] is True
    assert body["retry"]["failed_privacy_checks"] == ["inference_risk"]
    assert body["retry"]["epsilon"] == "0.3"

    asked = api(alice).post(f"{url}/retry/", {"reason": "Please allow one more seed."}, format="json")
    assert asked.status_code == 201 and asked.json()["status"] == "pending"
    assert _reserved(dataset) == Decimal("0.3")  # asking spends nothing

    # The requester cannot approve it; an officer needs a real comment.
    own = api(alice).post(
        f"{url}/retry/decisions/", {"decision": "approve", "comment": COMMENT}, format="json"
    )
    assert own.status_code == 403
    short = api(olivia).post(
        f"{url}/retry/decisions/", {"decision": "approve", "comment": "ok"}, format="json"
    )
    assert short.status_code == 400 and short.json()["error"]["code"] == "comment_required"
    assert _reserved(dataset) == Decimal("0.3")

    approved = api(olivia).post(
        f"{url}/retry/decisions/", {"decision": "approve", "comment": COMMENT}, format="json"
    )

    assert approved.status_code == 200, approved.json()
    assert approved.json()["status"] == RequestStatus.APPROVED
    assert _reserved(dataset) == Decimal("0.6")
    retry = PrivacyRetry.objects.get(request=request)
    request.refresh_from_db()
    assert (retry.status, retry.decided_by_name, retry.decision_comment) == (
        RetryStatus.APPROVED,
        "olivia",
        COMMENT,
    )
    assert retry.retry_job_id == request.job_id and request.attempts.count() == 2
    assert pipeline_run(job_id=request.job_id) in ("gate_failed", "published")
    actions = set(AuditEvent.objects.filter(target_id=str(request.pk)).values_list("action", "outcome"))
    assert {("request.retry_ask", "success"), ("request.retry_approve", "success")} <= actions
    assert ("request.retry_approve", "denied") in actions


def test_an_officer_may_refuse_a_retry_and_nothing_is_queued(
    privacy_failed: Callable[..., GenerationRequest], alice: Any, olivia: Any, bob: Any
) -> None:
    request = privacy_failed()
    retry_ask(actor=alice, request_id=request.pk)
    with pytest.raises(PermissionDenied):
        retry_ask(actor=bob, request_id=request.pk)  # a teammate sees it, may not ask
    with pytest.raises(PermissionDenied):
        retry_approve(actor=bob, request_id=request.pk, comment=COMMENT)

    retry_refuse(
        actor=olivia, request_id=request.pk, comment="Two attacks worked on this table; file a DP request."
    )

    request.refresh_from_db()
    assert (request.status, request.attempts.count()) == (RequestStatus.GATE_FAILED, 1)
    assert PrivacyRetry.objects.get(request=request).status == RetryStatus.REFUSED
    assert AuditEvent.objects.filter(action="request.retry_refuse", outcome="success").count() == 1
    with pytest.raises(ValidationFailed):
        retry_refuse(actor=olivia, request_id=request.pk, comment="")


def test_officers_cannot_bypass_the_comment_by_regenerating_directly(
    privacy_failed: Callable[..., GenerationRequest], olivia: Any
) -> None:
    request = privacy_failed()
    with pytest.raises(Conflict) as refused:
        request_regenerate(actor=olivia, request_id=request.pk)
    assert refused.value.code == "privacy_retry_needs_officer"


def test_a_utility_only_failure_stays_self_service(
    gate_failed: Callable[..., GenerationRequest], alice: Any, api: Any
) -> None:
    request = gate_failed()  # column shapes below an impossible floor; privacy checks passed
    assert api(alice).get(f"/api/v1/requests/{request.pk}/").json()["retry"]["needs_officer"] is False
    with pytest.raises(Conflict) as nothing_to_ask:
        retry_ask(actor=alice, request_id=request.pk)
    assert nothing_to_ask.value.code == "no_privacy_failure"

    response = api(alice).post(f"/api/v1/requests/{request.pk}/regenerate/")

    assert response.status_code == 200 and response.json()["status"] == RequestStatus.APPROVED


def test_the_request_page_says_an_officer_must_approve_and_what_the_retry_spends(
    privacy_failed: Callable[..., GenerationRequest], client: Any, alice: Any, olivia: Any
) -> None:
    request = privacy_failed(synthesizer="dp_copula", epsilon="0.3")
    client.force_login(alice)
    page = client.get(f"/requests/{request.pk}/").content.decode()
    assert 'data-testid="privacy-retry"' in page and "Ask a privacy officer" in page
    assert "0.3" in page and "Generate again (attempt" not in page

    client.post(f"/requests/{request.pk}/retry/", {"reason": "one more seed"})
    client.force_login(olivia)
    page = client.get(f"/requests/{request.pk}/").content.decode()
    assert "Approve retry" in page
    response = client.post(
        f"/requests/{request.pk}/retry/decide/", {"decision": "approve", "comment": COMMENT}
    )
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED and request.attempts.count() == 2


# --- Readable outcomes ------------------------------------------------------------------------------


def test_the_request_page_names_failed_checks_in_plain_words_with_a_next_step_and_glossary_link(
    gate_failed: Callable[..., GenerationRequest], client: Any, alice: Any, olivia: Any
) -> None:
    request = gate_failed()  # column shapes below an impossible 0.999 floor

    client.force_login(olivia)
    page = client.get(f"/requests/{request.pk}/").content.decode()
    assert 'data-testid="gate-outcomes"' in page
    assert 'href="/requests/checks/#check-column_shape_similarity">Column shapes</a>' in page
    assert (
        "Column distributions differ from the source (0." in page and "needed): try gaussian_copula" in page
    )

    client.force_login(alice)  # the requester sees the threshold, not the value (computed on real rows)
    page = client.get(f"/requests/{request.pk}/").content.decode()
    assert "Column shapes" in page
    assert "(at least 0.999 needed; the value is shown to privacy officers): try gaussian_copula" in page

    glossary = client.get("/requests/checks/").content.decode()
    assert 'id="check-column_shape_similarity"' in glossary and 'id="check-inference_risk"' in glossary
