"""A single-synthesizer request carries its synthesizer's options (epochs, batch size, marginal
distributions), in the browser and over the API, refused when filed if the synthesizer does not take
them or they exceed its caps; the tier's time budget is added when the job is queued."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from conftest import SAFE_COLUMNS
from generation.models import SourceDataset, SynthesisJob


@pytest.fixture
def api() -> Callable[[Any], Any]:
    """An API client authenticated as `user` (how it authenticates is tested elsewhere)."""
    from rest_framework.test import APIClient

    def client_for(user: Any) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return client_for


def _body(dataset: SourceDataset, synthesizer: str, options: Any) -> dict[str, Any]:
    return {
        "dataset": str(dataset.pk),
        "title": "CTGAN prototype",
        "purpose": "Prototype a mortality model",
        "intended_use": "Notebook",
        "audience": "internal",
        "columns": SAFE_COLUMNS,
        "synthesizer": synthesizer,
        "rows": 200,
        "options": options,
    }


def test_options_reach_the_job_with_the_tiers_time_budget(
    api: Any, alice: Any, olivia: Any, dataset: SourceDataset
) -> None:
    created = api(alice).post(
        "/api/v1/requests/", _body(dataset, "ctgan", {"epochs": 5, "batch_size": 50}), format="json"
    )
    assert created.status_code == 201, created.json()
    assert created.json()["options"] == {"epochs": 5, "batch_size": 50}
    request_id = created.json()["id"]
    api(alice).post(f"/api/v1/requests/{request_id}/submit/")
    decided = api(olivia).post(
        f"/api/v1/requests/{request_id}/decisions/", {"decision": "approve"}, format="json"
    )
    assert decided.status_code == 201, decided.json()

    from approvals.models import GenerationRequest

    job = SynthesisJob.objects.get(pk=GenerationRequest.objects.get(pk=request_id).job_id)
    assert job.options == {"epochs": 5, "batch_size": 50, "time_budget_s": 900}  # low tier's budget


@pytest.mark.parametrize(
    ("synthesizer", "options", "says"),
    [
        ("ctgan", {"epoch": 5}, "epoch"),  # a misspelt option is not silently the default
        ("ctgan", {"epochs": 10**6}, "epochs"),  # above the synthesizer's cap
        ("gaussian_copula", {"epochs": 5}, "epochs"),  # the copula trains no epochs
        ("gaussian_copula", {"distribution": "cauchy"}, "distribution"),
        ("ctgan", {"time_budget_s": 14400}, "time budget"),  # policy sets it, not the request
        ("ctgan", ["epochs", 5], "object"),
    ],
)
def test_options_a_synthesizer_does_not_take_are_refused_when_filed(
    api: Any, alice: Any, dataset: SourceDataset, synthesizer: str, options: Any, says: str
) -> None:
    response = api(alice).post("/api/v1/requests/", _body(dataset, synthesizer, options), format="json")

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["fields"] == {"options": "invalid"} and says in error["message"]


def test_the_request_form_files_a_copula_with_chosen_marginals_and_refuses_epochs(
    alice: Any, dataset: SourceDataset
) -> None:
    from approvals.models import GenerationRequest

    client = Client()
    client.force_login(alice)
    form = {
        "dataset": str(dataset.pk),
        "title": "Copula prototype",
        "purpose": "Prototype a mortality model",
        "purpose_category": "research",
        "intended_use": "Notebook",
        "audience": "internal",
        "fidelity": "medium",
        "columns": SAFE_COLUMNS,
        "synthesizer": "gaussian_copula",
        "rows": "200",
        "action": "draft",
    }

    refused = client.post("/requests/new/", {**form, "epochs": "50"})
    assert refused.status_code == 200 and "does not accept option" in refused.content.decode()
    assert not GenerationRequest.objects.exists()

    saved = client.post("/requests/new/", {**form, "distribution": "truncnorm"})
    assert saved.status_code == 302
    assert GenerationRequest.objects.get().options == {"distribution": "truncnorm"}


def test_bakeoff_candidates_take_options_in_the_browser_and_bad_ones_are_shown_on_their_field(
    alice: Any, dataset: SourceDataset
) -> None:
    from approvals.models import GenerationRequest

    client = Client()
    client.force_login(alice)
    form = {
        "dataset": str(dataset.pk),
        "title": "Which synthesizer?",
        "purpose": "Prototype a mortality model",
        "purpose_category": "research",
        "intended_use": "Notebook",
        "audience": "internal",
        "fidelity": "medium",
        "columns": SAFE_COLUMNS,
        "synthesizer": "gaussian_copula",
        "rows": "200",
        "bakeoff": "custom",
        "candidate_1_synthesizer": "ctgan",
        "candidate_2_synthesizer": "gaussian_copula",
        "candidate_2_options": "distribution=truncnorm, stratify_outcome=false",
        "action": "draft",
    }

    malformed = client.post("/requests/new/", {**form, "candidate_1_options": "epochs 200"})
    assert "name=value pairs" in malformed.content.decode()
    unknown = client.post("/requests/new/", {**form, "candidate_1_options": "epoch=200"})
    assert "epoch" in unknown.content.decode() and not GenerationRequest.objects.exists()

    saved = client.post("/requests/new/", {**form, "candidate_1_options": "epochs=20, batch_size=100"})
    assert saved.status_code == 302
    assert [c["options"] for c in GenerationRequest.objects.get().candidates] == [
        {"epochs": 20, "batch_size": 100},
        {"distribution": "truncnorm", "stratify_outcome": False},
    ]
