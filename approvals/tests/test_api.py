from __future__ import annotations

import math
from typing import Any

import pytest

from approvals.models import GenerationRequest
from conftest import SAFE_COLUMNS


def _payload(dataset: Any, **overrides: Any) -> dict[str, Any]:
    body = {
        "dataset": str(dataset.pk),
        "title": "Prototype",
        "purpose": "Model",
        "intended_use": "Notebook",
        "audience": "internal",
        "columns": SAFE_COLUMNS,
        "synthesizer": "gaussian_copula",
        "rows": 200,
        "epsilon": None,
    }
    body.update(overrides)
    return body


def test_create_answers_201_with_the_contract_fields(api: Any, alice: Any, dataset: Any) -> None:
    response = api(alice).post("/api/v1/requests/", _payload(dataset), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "draft" and body["requester"] == "alice" and body["dataset"] == str(dataset.pk)
    for key in ("id", "title", "audience", "synthesizer", "epsilon", "tier", "decisions", "job", "release"):
        assert key in body
    assert body["tier"] is None and body["job"] is None and body["release"] is None


@pytest.mark.parametrize("epsilon", [0, -1, "0.5", "abc", True, 1e12, [1], {"x": 1}])
def test_invalid_epsilon_answers_400(api: Any, alice: Any, dataset: Any, epsilon: Any) -> None:
    response = api(alice).post("/api/v1/requests/", _payload(dataset, epsilon=epsilon), format="json")
    assert response.status_code == 400
    assert "epsilon" in response.json()["error"]["fields"]
    assert GenerationRequest.objects.count() == 0


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_epsilon_answers_400(api: Any, alice: Any, dataset: Any, raw: str) -> None:
    body = _payload(dataset)
    text = __import__("json").dumps(body).replace('"epsilon": null', f'"epsilon": {raw}')
    response = api(alice).post("/api/v1/requests/", text, content_type="application/json")
    assert response.status_code == 400
    assert not math.isnan(GenerationRequest.objects.count())
    assert GenerationRequest.objects.count() == 0


def test_malformed_json_answers_400_not_500(api: Any, alice: Any) -> None:
    response = api(alice).post("/api/v1/requests/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"]


def test_direct_identifier_column_is_refused_naming_the_column(api: Any, alice: Any, dataset: Any) -> None:
    dataset.columns.filter(name="age").update(classification="direct_identifier")
    response = api(alice).post("/api/v1/requests/", _payload(dataset), format="json")
    assert response.status_code == 400
    assert "`age`" in response.json()["error"]["message"]


def test_submit_returns_in_review_with_tier(api: Any, alice: Any, dataset: Any) -> None:
    created = api(alice).post("/api/v1/requests/", _payload(dataset), format="json").json()
    response = api(alice).post(f"/api/v1/requests/{created['id']}/submit/")
    assert response.status_code == 200
    tier = response.json()["tier"]
    assert response.json()["status"] == "in_review"
    assert tier["level"] == "medium" and tier["reasons"] and tier["required_approvals"] == 1
    assert tier["policy_version"]


def test_requester_deciding_gets_403_and_nothing_changes(
    api: Any, alice: Any, submitted_request: Any
) -> None:
    response = api(alice).post(
        f"/api/v1/requests/{submitted_request.pk}/decisions/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    submitted_request.refresh_from_db()
    assert submitted_request.status == "in_review" and submitted_request.decisions.count() == 0


def test_officer_decision_answers_201(api: Any, olivia: Any, submitted_request: Any) -> None:
    response = api(olivia).post(
        f"/api/v1/requests/{submitted_request.pk}/decisions/",
        {"decision": "approve", "comment": "fine"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["reviewer"] == "olivia" and response.json()["decision"] == "approve"
    detail = api(olivia).get(f"/api/v1/requests/{submitted_request.pk}/").json()
    assert detail["status"] == "approved"
    assert detail["job"] == {"state": "queued", "progress": 0.0, "attempts": 0, "stage": ""}


def test_deciding_when_not_awaiting_review_answers_409(
    api: Any, olivia: Any, oscar: Any, submitted_request: Any
) -> None:
    api(olivia).post(
        f"/api/v1/requests/{submitted_request.pk}/decisions/",
        {"decision": "reject", "comment": "no"},
        format="json",
    )
    response = api(oscar).post(
        f"/api/v1/requests/{submitted_request.pk}/decisions/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 409


def test_invalid_decision_value_answers_400(api: Any, olivia: Any, submitted_request: Any) -> None:
    response = api(olivia).post(
        f"/api/v1/requests/{submitted_request.pk}/decisions/", {"decision": "maybe"}, format="json"
    )
    assert response.status_code == 400


# --- Permission negatives: anonymous, other team, wrong role --------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/requests/"),
        ("post", "/api/v1/requests/"),
        ("get", "/api/v1/requests/{id}/"),
        ("post", "/api/v1/requests/{id}/submit/"),
        ("post", "/api/v1/requests/{id}/cancel/"),
        ("post", "/api/v1/requests/{id}/decisions/"),
    ],
)
def test_anonymous_callers_get_401(api: Any, submitted_request: Any, method: str, path: str) -> None:
    response = getattr(api(None), method)(path.format(id=submitted_request.pk), {}, format="json")
    assert response.status_code == 401
    assert "Token" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/requests/{id}/"),
        ("post", "/api/v1/requests/{id}/submit/"),
        ("post", "/api/v1/requests/{id}/cancel/"),
        ("post", "/api/v1/requests/{id}/decisions/"),
    ],
)
def test_another_team_gets_404_as_if_it_did_not_exist(
    api: Any, charlie: Any, submitted_request: Any, method: str, path: str
) -> None:
    response = getattr(api(charlie), method)(
        path.format(id=submitted_request.pk), {"decision": "approve"}, format="json"
    )
    assert response.status_code == 404
    missing = getattr(api(charlie), method)(
        path.format(id="00000000-0000-0000-0000-000000000000"), {"decision": "approve"}, format="json"
    )
    assert missing.status_code == 404 and missing.json() == response.json()


def test_list_shows_only_visible_requests(
    api: Any, alice: Any, bob: Any, charlie: Any, olivia: Any, submitted_request: Any, make_request: Any
) -> None:
    draft = make_request(title="alice's private draft")
    ids = lambda user: {r["id"] for r in api(user).get("/api/v1/requests/").json()}  # noqa: E731
    assert ids(alice) == {str(submitted_request.pk), str(draft.pk)}
    assert ids(bob) == {str(submitted_request.pk)}  # teammates see filed requests, not drafts
    assert ids(charlie) == set()
    assert ids(olivia) == {str(submitted_request.pk)}


def test_wrong_role_cannot_create(api: Any, sam: Any, olivia: Any, dataset: Any) -> None:
    for user in (sam, olivia):
        response = api(user).post("/api/v1/requests/", _payload(dataset), format="json")
        assert response.status_code == 403
