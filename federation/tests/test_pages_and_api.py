"""The study pages and /api/v1/studies/: who sees what, and that every action goes through the services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from federation.models import Study, StudyStatus

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_list_and_detail_show_a_study_to_its_team_and_oversight_only(
    submitted_study: Any, alice: Any, bob: Any, charlie: Any, olivia: Any
) -> None:
    detail = reverse("federation:study-detail", kwargs={"study_id": submitted_study.pk})
    for user in (alice, bob, olivia):
        response = _client(user).get(detail)
        assert response.status_code == 200
        assert submitted_study.title in response.content.decode()
    assert _client(charlie).get(detail).status_code == 404
    listing = _client(charlie).get(reverse("federation:study-list")).content.decode()
    assert submitted_study.title not in listing


def test_the_study_page_offers_decisions_to_the_officer_and_site_stewards_not_the_requester(
    submitted_study: Any, alice: Any, olivia: Any, stewards: list[Any]
) -> None:
    detail = reverse("federation:study-detail", kwargs={"study_id": submitted_study.pk})
    decide = reverse("federation:study-decide", kwargs={"study_id": submitted_study.pk})
    assert decide not in _client(alice).get(detail).content.decode()
    assert decide in _client(olivia).get(detail).content.decode()
    assert decide in _client(stewards[0]).get(detail).content.decode()
    assert _client(alice).post(decide, {"decision": "approve"}).status_code == 403
    assert not submitted_study.decisions.exists()


def test_filing_through_the_page(alice: Any, sites: list[Any]) -> None:
    response = _client(alice).post(
        reverse("federation:study-new"),
        {
            "title": "Page study",
            "purpose": "Try the form",
            "sites": [s.pk for s in sites],
            "features": "age, kappa, lambda",
            "target": "death",
            "rounds": 2,
            "min_sites": 2,
            "local_epochs": 1,
            "learning_rate": 0.1,
            "clipping_norm": 1.0,
            "noise_multiplier": 2.0,
            "delta": "1e-8",
            "secure_aggregation": "on",
            "dropout_policy": "quorum",
        },
    )
    study = Study.objects.get(title="Page study")
    assert response.status_code == 302 and response["Location"].endswith(f"/studies/{study.pk}/")
    assert study.features == ["age", "kappa", "lambda"] and study.status == StudyStatus.DRAFT


def test_the_api_files_submits_and_collects_decisions(
    api: Callable[[Any], Any], alice: Any, olivia: Any, stewards: list[Any], sites: list[Any]
) -> None:
    created = api(alice).post(
        "/api/v1/studies/",
        {
            "title": "API study",
            "purpose": "Through the API",
            "sites": [str(s.pk) for s in sites],
            "features": ["age", "kappa"],
            "target": "death",
            "rounds": 2,
            "min_sites": 2,
            "clipping_norm": 1.0,
            "noise_multiplier": 2.0,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    study_id = created.json()["id"]
    assert created.json()["privacy_unit"] == "site"
    assert api(olivia).post("/api/v1/studies/", {}, format="json").status_code == 403
    assert api(alice).post(f"/api/v1/studies/{study_id}/submit/").json()["status"] == "submitted"
    assert (
        api(alice)
        .post(f"/api/v1/studies/{study_id}/decisions/", {"decision": "approve"}, format="json")
        .status_code
        == 403
    )
    for who in (olivia, *stewards):
        answer = api(who).post(
            f"/api/v1/studies/{study_id}/decisions/", {"decision": "approve"}, format="json"
        )
        assert answer.status_code == 201, answer.content
    body = api(alice).get(f"/api/v1/studies/{study_id}/").json()
    assert body["status"] == "approved" and all(s["decision"] == "approved" for s in body["sites"])
    assert api(alice).get(f"/api/v1/studies/{study_id}/evidence/").status_code == 404
    evidence = api(olivia).get(f"/api/v1/studies/{study_id}/evidence/")
    assert evidence.status_code == 200 and evidence["Content-Type"] == "application/zip"
