"""Bake-offs over the API: several candidates fitted and validated by the real pipeline
(in-process, as the worker runs it), one picked and published; DP candidates reserve the sum of
their epsilons at approval; the policy caps the number of candidates."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from approvals.choices import RequestStatus
from approvals.models import CandidateRun, GenerationRequest
from audit.models import AuditEvent
from catalog.models import Release
from catalog.pipeline import pipeline_run
from conftest import SAFE_COLUMNS
from generation.models import BudgetLedgerEntry, SourceDataset, SynthesisJob

TWO_COPULAS = [
    {"synthesizer": "gaussian_copula", "epsilon": None, "options": {}},
    {"synthesizer": "gaussian_copula", "epsilon": None, "options": {"stratify_outcome": False}},
]


@pytest.fixture
def api() -> Callable[[Any], Any]:
    """An API client authenticated as `user` (how it authenticates is tested elsewhere)."""
    from rest_framework.test import APIClient

    def client_for(user: Any) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return client_for


def _body(dataset: SourceDataset, candidates: Any, **extra: Any) -> dict[str, Any]:
    return {
        "dataset": str(dataset.pk),
        "title": "Which synthesizer?",
        "purpose": "Pick the synthesizer that keeps the outcome signal",
        "intended_use": "Model prototyping in a notebook",
        "audience": "internal",
        "columns": SAFE_COLUMNS,
        "rows": 200,
        "candidates": candidates,
        **extra,
    }


def _file_and_approve(api: Any, alice: Any, olivia: Any, dataset: SourceDataset, candidates: Any) -> str:
    created = api(alice).post("/api/v1/requests/", _body(dataset, candidates), format="json")
    assert created.status_code == 201, created.json()
    request_id = created.json()["id"]
    submitted = api(alice).post(f"/api/v1/requests/{request_id}/submit/")
    assert submitted.json()["status"] == RequestStatus.IN_REVIEW, submitted.json()
    decided = api(olivia).post(
        f"/api/v1/requests/{request_id}/decisions/", {"decision": "approve"}, format="json"
    )
    assert decided.status_code == 201, decided.json()
    return request_id


def test_a_bakeoff_of_two_candidates_runs_each_and_publishes_the_one_picked(
    api: Any, alice: Any, olivia: Any, bob: Any, dataset: SourceDataset
) -> None:
    request_id = _file_and_approve(api, alice, olivia, dataset, TWO_COPULAS)
    runs = list(CandidateRun.objects.filter(attempt__request_id=request_id).order_by("index"))
    assert [r.synthesizer for r in runs] == ["gaussian_copula", "gaussian_copula"]
    assert not BudgetLedgerEntry.objects.filter(job__in=[r.job_id for r in runs]).exists()  # non-DP: free

    for run in runs:
        SynthesisJob.objects.filter(pk=run.job_id).update(seed=20240601 + run.index)
        assert pipeline_run(job_id=run.job_id) in ("candidate_passed", "gate_failed")

    request = GenerationRequest.objects.get(pk=request_id)
    assert request.status == RequestStatus.AWAITING_CHOICE
    assert not Release.objects.filter(request=request).exists()  # nothing published before the pick
    attempts = api(alice).get(f"/api/v1/requests/{request_id}/attempts/").json()
    candidates = attempts[0]["candidates"]
    assert [c["index"] for c in candidates] == [0, 1]
    assert all(c["gate"] and c["gate"]["checks"] for c in candidates)
    assert sum(c["recommended"] for c in candidates) == 1
    officer_view = api(olivia).get(f"/api/v1/requests/{request_id}/attempts/").json()[0]["candidates"]
    assert all(c["utility_score"] is not None for c in officer_view if c["gate_passed"])
    pick = next(c for c in candidates if c["recommended"])

    assert (
        api(bob).post(f"/api/v1/requests/{request_id}/choose/", {"candidate": pick["index"]}).status_code
        == 403
    )
    chosen = api(alice).post(
        f"/api/v1/requests/{request_id}/choose/", {"candidate": pick["index"]}, format="json"
    )

    assert chosen.status_code == 201, chosen.json()
    release = Release.objects.get(pk=chosen.json()["release"])
    assert str(release.job_id) == pick["job"]
    lineage = release.receipt["bakeoff"]
    assert lineage["chosen"] == pick["index"] and len(lineage["candidates"]) == 2
    assert GenerationRequest.objects.get(pk=request_id).status == RequestStatus.PUBLISHED
    event = AuditEvent.objects.get(action="request.candidate_choose", outcome="success")
    assert len(event.details["rejected"]) == 1
    assert api(alice).post(f"/api/v1/requests/{request_id}/choose/", {"candidate": 0}).status_code == 409


def test_dp_candidates_reserve_the_sum_of_their_epsilons_at_approval(
    api: Any, alice: Any, olivia: Any, dataset: SourceDataset
) -> None:
    candidates = [
        {"synthesizer": "dp_copula", "epsilon": 0.2, "options": {}},
        {"synthesizer": "dp_copula", "epsilon": 0.3, "options": {}},
        {"synthesizer": "gaussian_copula", "epsilon": None, "options": {}},
    ]
    created = api(alice).post("/api/v1/requests/", _body(dataset, candidates), format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["epsilon"] == 0.5 and created.json()["synthesizer"] == "bakeoff"

    _approve = api(olivia)
    request_id = created.json()["id"]
    api(alice).post(f"/api/v1/requests/{request_id}/submit/")
    assert (
        _approve.post(f"/api/v1/requests/{request_id}/decisions/", {"decision": "approve"}).status_code == 201
    )

    dataset.refresh_from_db()
    assert dataset.epsilon_spent == Decimal("0.5")
    reserves = BudgetLedgerEntry.objects.filter(dataset=dataset, kind="reserve")
    assert sorted(e.amount_micro for e in reserves) == [200_000, 300_000]


def test_more_candidates_than_the_policy_allows_are_refused_with_400(
    api: Any, alice: Any, dataset: SourceDataset
) -> None:
    five = [{"synthesizer": "gaussian_copula", "options": {"distribution": d}} for d in
            ("norm", "beta", "truncnorm", "gamma", "uniform")]  # fmt: skip

    response = api(alice).post("/api/v1/requests/", _body(dataset, five), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_candidates"
    assert not GenerationRequest.objects.exists()


def test_a_candidate_with_an_epsilon_for_a_non_dp_synthesizer_or_a_bad_option_is_refused(
    api: Any, alice: Any, dataset: SourceDataset
) -> None:
    bad_epsilon = [{"synthesizer": "gaussian_copula", "epsilon": 1}, TWO_COPULAS[1]]
    bad_option = [TWO_COPULAS[0], {"synthesizer": "gaussian_copula", "options": {"epoch": 3}}]

    for candidates in (bad_epsilon, bad_option, TWO_COPULAS[:1]):
        response = api(alice).post("/api/v1/requests/", _body(dataset, candidates), format="json")
        assert response.status_code == 400, response.json()
        assert "candidates" in response.json()["error"].get("fields", {})


def test_a_bakeoff_in_the_browser_shows_the_candidates_and_publishes_the_pick(
    client: Any, alice: Any, olivia: Any, dataset: SourceDataset
) -> None:
    from approvals.services import request_decide

    client.force_login(alice)
    form = {
        **{k: v for k, v in _body(dataset, None).items() if k not in ("candidates", "columns")},
        "columns": SAFE_COLUMNS,
        "fidelity": "medium",
        "purpose_category": "research",
        "synthesizer": "gaussian_copula",
        "bakeoff": "custom",
        "candidate_1_synthesizer": "gaussian_copula",
        "candidate_2_synthesizer": "dp_copula",
        "candidate_2_epsilon": "0.4",
        "action": "submit",
    }
    response = client.post("/requests/new/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    request = GenerationRequest.objects.get()
    assert [c["synthesizer"] for c in request.candidates] == ["gaussian_copula", "dp_copula"]
    assert request.status == RequestStatus.IN_REVIEW and request.epsilon == Decimal("0.4")
    request_decide(actor=olivia, request_id=request.pk, decision="approve")
    for run in CandidateRun.objects.filter(attempt__request=request):
        SynthesisJob.objects.filter(pk=run.job_id).update(seed=20240601)
        pipeline_run(job_id=run.job_id)

    page = client.get(f"/requests/{request.pk}/").content.decode()
    assert page.count('data-testid="candidate-row"') == 2 and 'data-testid="bakeoff"' in page
    assert (
        page.count("Candidate 1 progress") == 1 and "Candidate 2 progress" in page
    )  # live panel: every candidate
    request.refresh_from_db()
    assert request.status == RequestStatus.AWAITING_CHOICE  # gaussian_copula passes on this seed
    assert 'data-testid="choose-form"' in page
    client.force_login(olivia)
    officer_page = client.get(f"/requests/{request.pk}/").content.decode()
    assert "chart-bakeoff-pareto" in officer_page  # values (and so the plot) for oversight roles
    client.force_login(alice)
    pick = CandidateRun.objects.get(attempt__request=request, recommended=True)
    response = client.post(f"/catalog/bakeoffs/{request.pk}/choose/", {"candidate": str(pick.index)})
    assert response.status_code == 302
    assert Release.objects.get(request=request).job_id == pick.job_id


def test_auto_runs_the_default_set_with_the_time_budget_split_between_the_deep_models(
    api: Any, alice: Any, olivia: Any, dataset: SourceDataset
) -> None:
    request_id = _file_and_approve(api, alice, olivia, dataset, "auto")

    request = api(alice).get(f"/api/v1/requests/{request_id}/").json()
    assert request["candidates_auto"] is True
    assert [c["synthesizer"] for c in request["candidates"]] == ["gaussian_copula", "ctgan", "tvae"]
    runs = {r.synthesizer: r for r in CandidateRun.objects.filter(attempt__request_id=request_id)}
    assert runs["gaussian_copula"].options == {}
    assert runs["ctgan"].options == {"time_budget_s": 450} == runs["tvae"].options  # 900 s / 2
    assert SynthesisJob.objects.get(pk=runs["ctgan"].job_id).options == {"time_budget_s": 450}


def test_a_tier_allows_fewer_candidates_than_filing_and_submission_is_refused_with_400(
    api: Any, alice: Any, dataset: SourceDataset
) -> None:
    three = [
        TWO_COPULAS[0],
        TWO_COPULAS[1],
        {"synthesizer": "gaussian_copula", "options": {"distribution": "beta"}},
    ]
    # External without DP and without quasi-identifiers: high tier, whose policy allows 2.
    body = {
        **_body(dataset, three, audience="external"),
        "columns": ["kappa", "lambda", "creatinine", "futime"],
    }
    created = api(alice).post("/api/v1/requests/", body, format="json")
    assert created.status_code == 201, created.json()

    submitted = api(alice).post(f"/api/v1/requests/{created.json()['id']}/submit/")

    assert submitted.status_code == 400, submitted.json()
    assert submitted.json()["error"]["code"] == "too_many_candidates"
    assert GenerationRequest.objects.get(pk=created.json()["id"]).status == RequestStatus.DRAFT


def test_the_tier_preview_judges_a_bakeoff_by_its_riskiest_candidate(
    client: Any, alice: Any, dataset: SourceDataset
) -> None:
    client.force_login(alice)
    form = {
        "dataset": str(dataset.pk),
        "columns": ["kappa", "lambda"],
        "audience": "external",
        "rows": "200",
        "synthesizer": "dp_copula",
        "epsilon": "0.5",
        "bakeoff": "custom",
        "candidate_1_synthesizer": "dp_copula",
        "candidate_1_epsilon": "0.5",
        "candidate_2_synthesizer": "gaussian_copula",
    }

    preview = client.post("/requests/preview/", form).content.decode()

    assert "External audience without differential privacy" in preview  # the non-DP candidate counts
