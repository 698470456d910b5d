"""A study filed in the browser is built like one filed through the API (federation.forms.study_input),
and keeps the model family its form chose instead of silently taking the default."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from core.errors import ValidationFailed
from federation.forms import StudyForm
from federation.models import ModelFamily, Study
from federation.services import StudyInput

pytestmark = pytest.mark.django_db

OTHER_FAMILY = "federated_other"  # stands for a family federation adds later (only one exists today)


def page_post(sites: list[Any], **changes: Any) -> dict[str, Any]:
    post: dict[str, Any] = {
        "title": "Page study",
        "purpose": "Try the form",
        "sites": [s.pk for s in sites],
        "features": " age, kappa ,, lambda",
        "target": " death ",
        "rounds": 2,
        "min_sites": 2,
        "local_epochs": 3,
        "learning_rate": 0.05,
        "clipping_norm": 1.5,
        "noise_multiplier": 2.0,
        "delta": "1e-9",
        "dropout_policy": "fail",
    }
    post.update(changes)
    return post


def api_payload(sites: list[Any], **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        **page_post(sites),
        "sites": [str(s.pk) for s in sites],
        "features": ["age", "kappa", "lambda"],
        "target": "death",
        "secure_aggregation": False,
    }
    payload.update(changes)
    return payload


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[StudyInput]:
    """The StudyInput the page and the API hand to study_file, which then refuses (nothing is filed)."""
    seen: list[StudyInput] = []

    def study_file(*, actor: Any, data: StudyInput) -> Any:
        seen.append(data)
        raise ValidationFailed("captured")

    monkeypatch.setattr("federation.views.study_file", study_file)
    monkeypatch.setattr("federation.api.study_file", study_file)
    return seen


def test_the_form_offers_the_federated_model_families(alice: Any, sites: list[Any]) -> None:
    field = StudyForm().fields["model_family"]
    assert list(field.choices) == list(ModelFamily.choices)
    page = client_for(alice).get(reverse("federation:study-new")).content.decode()
    assert 'name="model_family"' in page and 'value="logistic_regression"' in page


def test_a_study_filed_in_the_browser_keeps_its_model_family(
    alice: Any, sites: list[Any], captured: list[StudyInput], monkeypatch: pytest.MonkeyPatch
) -> None:
    field = StudyForm.base_fields["model_family"]
    monkeypatch.setattr(field, "choices", [*ModelFamily.choices, (OTHER_FAMILY, "Another family")])
    response = client_for(alice).post(
        reverse("federation:study-new"), page_post(sites, model_family=OTHER_FAMILY)
    )
    assert response.status_code == 200 and "captured" in response.content.decode()
    assert [data.model_family for data in captured] == [OTHER_FAMILY]


def test_a_family_federation_does_not_have_is_refused_not_replaced(alice: Any, sites: list[Any]) -> None:
    response = client_for(alice).post(
        reverse("federation:study-new"), page_post(sites, model_family="random_forest")
    )
    assert response.status_code == 200
    assert "model_family" in response.context["form"].errors
    assert not Study.objects.filter(title="Page study").exists()


def test_the_page_files_the_family_it_chose(alice: Any, sites: list[Any]) -> None:
    response = client_for(alice).post(
        reverse("federation:study-new"),
        page_post(sites, model_family=ModelFamily.LOGISTIC_REGRESSION, secure_aggregation="on"),
    )
    study = Study.objects.get(title="Page study")
    assert response.status_code == 302
    assert study.model_family == ModelFamily.LOGISTIC_REGRESSION
    assert (study.features, study.target) == (["age", "kappa", "lambda"], "death")
    assert (study.local_epochs, study.learning_rate, study.dropout_policy) == (3, 0.05, "fail")


def test_the_page_and_the_api_build_the_same_study_input(
    alice: Any, sites: list[Any], captured: list[StudyInput], api: Callable[[Any], Any]
) -> None:
    client_for(alice).post(
        reverse("federation:study-new"),
        page_post(sites, model_family=ModelFamily.LOGISTIC_REGRESSION),
    )
    answer = api(alice).post("/api/v1/studies/", api_payload(sites), format="json")
    assert answer.status_code == 400  # the captured refusal
    assert len(captured) == 2
    page, through_api = captured
    # The page lists the chosen sites in the order it offers them, the API in the payload's order.
    assert replace(page, site_ids=sorted(page.site_ids)) == replace(
        through_api, site_ids=sorted(through_api.site_ids)
    )
    assert page.features == ["age", "kappa", "lambda"] and page.target == "death"
    assert sorted(page.site_ids) == sorted(s.pk for s in sites)
    assert (page.delta, page.dropout_policy, page.secure_aggregation) == ("1e-9", "fail", False)


def test_a_page_post_without_a_family_files_the_default(
    alice: Any, sites: list[Any], captured: list[StudyInput]
) -> None:
    client_for(alice).post(reverse("federation:study-new"), page_post(sites))
    assert [data.model_family for data in captured] == [ModelFamily.LOGISTIC_REGRESSION]
