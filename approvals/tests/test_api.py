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
    ids = lambda user: {r["id"] for r in api(user).get("/api/v1/requests/").json()["results"]}  # noqa: E731
    assert ids(alice) == {str(submitted_request.pk), str(draft.pk)}
    assert ids(bob) == {str(submitted_request.pk)}  # teammates see filed requests, not drafts
    assert ids(charlie) == set()
    assert ids(olivia) == {str(submitted_request.pk)}


def test_wrong_role_cannot_create(api: Any, sam: Any, olivia: Any, dataset: Any) -> None:
    for user in (sam, olivia):
        response = api(user).post("/api/v1/requests/", _payload(dataset), format="json")
        assert response.status_code == 403


# --- Risk tiering, quorum and transitions over the API ---------------------------------------------

NO_QI = ["kappa", "lambda", "creatinine", "futime"]


def _filed(api: Any, user: Any, dataset: Any, **overrides: Any) -> dict[str, Any]:
    created = api(user).post("/api/v1/requests/", _payload(dataset, **overrides), format="json")
    assert created.status_code == 201, created.content
    return api(user).post(f"/api/v1/requests/{created.json()['id']}/submit/").json()


def _decide(api: Any, user: Any, request_id: str, decision: str = "approve", **extra: Any) -> Any:
    body = {"decision": decision, "comment": extra.pop("comment", "because"), **extra}
    return api(user).post(f"/api/v1/requests/{request_id}/decisions/", body, format="json")


def test_clients_that_do_not_send_the_new_fields_get_defaults(api: Any, alice: Any, dataset: Any) -> None:
    body = api(alice).post("/api/v1/requests/", _payload(dataset), format="json").json()
    assert (body["fidelity"], body["purpose_category"], body["conditions"]) == ("medium", "research", "")


def test_external_non_dp_with_quasi_identifiers_is_prohibited_over_the_api(
    api: Any, alice: Any, dataset: Any
) -> None:
    body = _filed(api, alice, dataset, audience="external")
    assert body["status"] == "rejected"
    tier = body["tier"]
    assert tier["level"] == "prohibited" and tier["policy_version"] == "1"
    assert any("DP with epsilon <= 1 required" in r for r in tier["reasons"])
    assert tier["controls"]["dp_required"] is True


def test_high_tier_reports_its_quorum_and_needs_a_second_approval(
    api: Any, alice: Any, olivia: Any, sam: Any, dataset: Any
) -> None:
    body = _filed(api, alice, dataset, audience="external", columns=NO_QI)
    assert body["tier"]["level"] == "high" and body["tier"]["required_approvals"] == 2
    assert body["tier"]["controls"]["approver_roles"] == ["privacy_officer", "data_steward"]
    assert _decide(api, alice, body["id"]).status_code == 403
    assert _decide(api, olivia, body["id"]).status_code == 201
    after = api(olivia).get(f"/api/v1/requests/{body['id']}/").json()
    assert after["status"] == "in_review"
    assert after["quorum"] == {
        "approvals": 1,
        "needed": 2,
        "satisfied": False,
        "missing": ["1 more approval"],
    }
    assert _decide(api, sam, body["id"]).status_code == 201
    final = api(olivia).get(f"/api/v1/requests/{body['id']}/").json()
    assert final["status"] == "approved" and final["quorum"] is None


@pytest.mark.parametrize("persona", ["sam", "audrey", "ada", "bob"])
def test_callers_who_may_see_but_not_decide_get_403(
    api: Any, submitted_request: Any, request: pytest.FixtureRequest, persona: str
) -> None:
    response = _decide(api, request.getfixturevalue(persona), str(submitted_request.pk))
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert submitted_request.decisions.count() == 0


def test_repeating_a_decision_answers_200_and_changes_nothing(
    api: Any, olivia: Any, submitted_request: Any
) -> None:
    first = _decide(api, olivia, str(submitted_request.pk))
    again = _decide(api, olivia, str(submitted_request.pk))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert submitted_request.decisions.count() == 1


def test_changing_ones_decision_within_a_round_answers_409(
    api: Any, alice: Any, olivia: Any, dataset: Any
) -> None:
    body = _filed(api, alice, dataset, audience="external", columns=NO_QI)
    _decide(api, olivia, body["id"])
    response = _decide(api, olivia, body["id"], "reject")
    assert response.status_code == 409 and response.json()["error"]["code"] == "already_decided"


@pytest.mark.parametrize(
    ("setup", "method", "path", "body"),
    [
        ("cancelled", "post", "/api/v1/requests/{id}/decisions/", {"decision": "approve"}),
        ("cancelled", "post", "/api/v1/requests/{id}/submit/", {}),
        # ("approved", cancel) is allowed: it stops the generation job (test_budget_and_cancel.py).
        ("approved", "post", "/api/v1/requests/{id}/submit/", {}),
        ("in_review", "put", "/api/v1/requests/{id}/", "payload"),
        ("rejected", "post", "/api/v1/requests/{id}/cancel/", {}),
    ],
)
def test_disallowed_transitions_answer_409_and_change_nothing(
    api: Any,
    alice: Any,
    olivia: Any,
    pia: Any,
    submitted_request: Any,
    dataset: Any,
    setup: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    rid = str(submitted_request.pk)
    if setup == "cancelled":
        api(alice).post(f"/api/v1/requests/{rid}/cancel/")
    elif setup == "approved":
        _decide(api, olivia, rid)
    elif setup == "rejected":
        _decide(api, olivia, rid, "reject")
    before = api(alice).get(f"/api/v1/requests/{rid}/").json()
    caller = pia if "decisions" in path else alice
    payload = _payload(dataset, title="Changed") if body == "payload" else body
    response = getattr(api(caller), method)(path.format(id=rid), payload, format="json")
    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "invalid_transition"
    assert api(alice).get(f"/api/v1/requests/{rid}/").json() == before


def test_conditions_travel_with_an_approval(
    api: Any, olivia: Any, alice: Any, submitted_request: Any
) -> None:
    response = _decide(api, olivia, str(submitted_request.pk), comment="", conditions="No linkage.")
    assert response.status_code == 201 and response.json()["conditions"] == "No linkage."
    body = api(alice).get(f"/api/v1/requests/{submitted_request.pk}/").json()
    assert body["status"] == "approved" and body["conditions"] == "No linkage. (olivia)"


def test_conditions_with_a_rejection_answer_400(api: Any, olivia: Any, submitted_request: Any) -> None:
    response = _decide(api, olivia, str(submitted_request.pk), "reject", conditions="x")
    assert response.status_code == 400 and "conditions" in response.json()["error"]["fields"]


def test_the_requester_edits_a_request_sent_back_for_changes(
    api: Any, alice: Any, olivia: Any, submitted_request: Any, dataset: Any
) -> None:
    rid = str(submitted_request.pk)
    _decide(api, olivia, rid, "request_changes", comment="Fewer columns")
    edited = api(alice).put(f"/api/v1/requests/{rid}/", _payload(dataset, columns=["kappa"]), format="json")
    assert edited.status_code == 200 and edited.json()["columns"] == ["kappa"]
    again = api(alice).post(f"/api/v1/requests/{rid}/submit/").json()
    assert again["status"] == "in_review" and again["tier"]["level"] == "low" and again["review_round"] == 2


def test_a_teammate_cannot_edit_and_another_team_cannot_see(
    api: Any, bob: Any, charlie: Any, submitted_request: Any, dataset: Any
) -> None:
    path = f"/api/v1/requests/{submitted_request.pk}/"
    assert api(bob).put(path, _payload(dataset), format="json").status_code == 403
    assert api(charlie).put(path, _payload(dataset), format="json").status_code == 404


def test_preview_answers_the_tier_and_how_to_lower_it_without_writing(
    api: Any, alice: Any, dataset: Any
) -> None:
    body = {
        k: v
        for k, v in _payload(dataset, audience="external").items()
        if k not in ("title", "purpose", "intended_use")
    }
    response = api(alice).post("/api/v1/requests/preview/", body, format="json")
    assert response.status_code == 200
    preview = response.json()
    assert preview["level"] == "prohibited" and preview["policy_version"] == "1"
    assert "control.dp_required" in {r["id"] for r in preview["rules"]}
    assert any(s["change"].startswith("Choose the internal audience") for s in preview["suggestions"])
    assert GenerationRequest.objects.count() == 0


@pytest.mark.parametrize(("persona", "status"), [("olivia", 403), ("sam", 403), (None, 401)])
def test_preview_refuses_non_scientists(
    api: Any, dataset: Any, request: pytest.FixtureRequest, persona: str | None, status: int
) -> None:
    user = request.getfixturevalue(persona) if persona else None
    assert api(user).post("/api/v1/requests/preview/", _payload(dataset), format="json").status_code == status


def test_preview_of_an_unknown_dataset_answers_400(api: Any, alice: Any, db: Any) -> None:
    body = _payload(type("D", (), {"pk": "00000000-0000-0000-0000-000000000000"})())
    response = api(alice).post("/api/v1/requests/preview/", body, format="json")
    assert response.status_code == 400 and "dataset" in response.json()["error"]["fields"]
