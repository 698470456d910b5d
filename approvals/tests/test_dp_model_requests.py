"""dp_model requests (issue 15): filed against the steward's declarations, tiered as DP, and
approved into a job that reserves its epsilon like any DP release.

Attacks written as tests:
- a model on bounds only a profile suggested (read from the data) is refused when filed, with
  nothing written (no request, no audit row of a filing), and again at approval if the dataset was
  signed off again meanwhile (nothing reserved);
- a target that is not the declared outcome, a target among the features, bake-off candidates, a
  delta, rows and an unknown family are refused with a sentence saying what to do;
- the requester still cannot approve their own dp_model request;
- kind cannot be changed by an edit (a synthetic table cannot become a model, nor back).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from approvals.choices import RequestKind, RequestStatus
from approvals.models import GenerationRequest
from approvals.policies import Facts, PolicyError, evaluate, parse_policy
from approvals.policies.engine import FACTS, suggest
from approvals.services import RequestInput, request_create, request_decide, request_submit, request_update
from approvals.services.tiering import request_facts
from approvals.tests.helpers import profile_suggestions_only
from audit.models import AuditEvent
from core.errors import Conflict, PermissionDenied, ValidationFailed
from generation.models import BudgetLedgerEntry, SynthesisJob

FEATURES = ["age", "sex", "kappa", "lambda", "creatinine"]
TARGET = "death"
FAMILY = "dp_logistic_regression"
SHIPPED_TEXT = (Path(__file__).resolve().parents[2] / "policies" / "tiering.yaml").read_text()
SHIPPED = parse_policy(SHIPPED_TEXT)


@pytest.fixture
def outcome_dataset(dataset: Any, sam: Any) -> Any:
    """The shared dataset with `death` declared as its outcome by the steward, signed off again."""
    from generation.services import dataset_sign_off, dataset_update_columns

    dataset_update_columns(actor=sam, dataset_id=dataset.pk, changes=[{"name": TARGET, "outcome": True}])
    return dataset_sign_off(actor=sam, dataset_id=dataset.pk)


def _model_input(dataset: Any, **overrides: Any) -> RequestInput:
    fields: dict[str, Any] = {
        "dataset_id": dataset.pk,
        "title": "Mortality model",
        "purpose": "Predict death from free light chains",
        "intended_use": "A risk score prototype",
        "audience": "internal",
        "columns": FEATURES,
        "synthesizer": FAMILY,
        "rows": None,
        "epsilon": "0.5",
        "kind": RequestKind.DP_MODEL,
        "target": TARGET,
    }
    fields.update(overrides)
    return RequestInput(**fields)


def _payload(dataset: Any, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataset": str(dataset.pk),
        "kind": "dp_model",
        "target": TARGET,
        "title": "Mortality model",
        "purpose": "Predict death",
        "intended_use": "A risk score prototype",
        "audience": "internal",
        "columns": FEATURES,
        "synthesizer": FAMILY,
        "epsilon": 0.5,
    }
    body.update(overrides)
    return body


def _filing_rows() -> int:
    return AuditEvent.objects.filter(action="request.create").count()


# --- Filing -----------------------------------------------------------------------------------------


def test_a_dp_model_request_is_stored_with_its_kind_target_family_and_epsilon(
    alice: Any, outcome_dataset: Any
) -> None:
    request = request_create(actor=alice, data=_model_input(outcome_dataset, options={"C": 0.5}))
    request.refresh_from_db()
    assert request.kind == RequestKind.DP_MODEL
    assert request.target == TARGET
    assert request.columns == FEATURES  # the features; the target is kept apart
    assert request.synthesizer == FAMILY
    assert request.epsilon_micro == 500_000 and request.delta_atto is None
    assert request.rows == 0  # a model is trained, not sampled
    assert request.candidates == []
    assert request.options == {"C": 0.5}  # checked by the family; its defaults apply when trained
    event = AuditEvent.objects.filter(action="request.create", target_id=str(request.pk)).get()
    assert event.details["kind"] == "dp_model" and event.details["target"] == TARGET


def test_bounds_only_from_the_profile_are_refused_and_nothing_is_written(
    alice: Any, outcome_dataset: Any
) -> None:
    """The attack: features whose range only the profile suggested (read from the rows) would make
    the model's noise scale depend on individual records."""
    profile_suggestions_only(outcome_dataset, ["kappa", "lambda"])
    before = _filing_rows()
    with pytest.raises(ValidationFailed) as refused:
        request_create(actor=alice, data=_model_input(outcome_dataset))
    assert "`kappa`" in refused.value.message and "`lambda`" in refused.value.message
    assert not GenerationRequest.objects.exists()
    assert _filing_rows() == before


def test_bounds_only_from_the_profile_answer_400_over_the_api(
    api: Callable[[Any], Any], alice: Any, outcome_dataset: Any
) -> None:
    profile_suggestions_only(outcome_dataset, ["creatinine"])
    response = api(alice).post("/api/v1/requests/", _payload(outcome_dataset), format="json")
    assert response.status_code == 400, response.content
    assert "`creatinine`" in response.json()["error"]["message"]
    assert not GenerationRequest.objects.exists()


def test_a_target_that_is_not_the_declared_outcome_is_refused(alice: Any, outcome_dataset: Any) -> None:
    with pytest.raises(ValidationFailed, match="not the dataset's declared outcome"):
        request_create(
            actor=alice, data=_model_input(outcome_dataset, target="sex", columns=["age", "kappa"])
        )
    assert not GenerationRequest.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"target": ""}, "target", "Name the target"),
        ({"columns": [*FEATURES, TARGET]}, "target", "cannot also be a feature"),
        ({"candidates": "auto"}, "candidates", "trains one model"),
        ({"candidates": [{"synthesizer": "gaussian_copula"}]}, "candidates", "trains one model"),
        ({"delta": "1e-9"}, "delta", "pure epsilon-DP"),
        ({"rows": 500}, "rows", "takes no rows"),
        ({"synthesizer": "gaussian_copula"}, "synthesizer", "Unknown model family"),
        ({"epsilon": None}, "epsilon", "positive number"),
        ({"options": {"epochs": 3}}, "options", "does not accept"),
    ],
)
def test_what_a_model_does_not_take_is_refused_with_what_to_do(
    alice: Any, outcome_dataset: Any, overrides: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ValidationFailed, match=words) as refused:
        request_create(actor=alice, data=_model_input(outcome_dataset, **overrides))
    assert field in refused.value.fields
    assert not GenerationRequest.objects.exists()


def test_a_federated_study_is_not_filed_as_a_generation_request(alice: Any, outcome_dataset: Any) -> None:
    with pytest.raises(ValidationFailed, match="federated studies pages"):
        request_create(actor=alice, data=_model_input(outcome_dataset, kind=RequestKind.FEDERATED_STUDY))


def test_a_synthetic_table_takes_no_target(alice: Any, outcome_dataset: Any) -> None:
    with pytest.raises(ValidationFailed, match="Only a dp_model request names a target"):
        request_create(
            actor=alice,
            data=_model_input(
                outcome_dataset, kind=None, synthesizer="gaussian_copula", rows=100, epsilon=None
            ),
        )


def test_kind_cannot_change_when_edited(alice: Any, outcome_dataset: Any, make_request: Any) -> None:
    model = request_create(actor=alice, data=_model_input(outcome_dataset))
    table_input = _model_input(
        outcome_dataset,
        kind=RequestKind.SYNTHETIC_TABLE,
        synthesizer="gaussian_copula",
        rows=100,
        epsilon=None,
        target="",
    )
    with pytest.raises(ValidationFailed, match="kind cannot change"):
        request_update(actor=alice, request_id=model.pk, data=table_input)
    table = make_request()
    with pytest.raises(ValidationFailed, match="kind cannot change"):
        request_update(actor=alice, request_id=table.pk, data=_model_input(outcome_dataset))
    # Without kind, an edit keeps the kind as filed.
    edited = request_update(
        actor=alice, request_id=model.pk, data=_model_input(outcome_dataset, kind=None, epsilon="0.25")
    )
    assert edited.kind == RequestKind.DP_MODEL and edited.epsilon_micro == 250_000
    table.refresh_from_db()
    assert table.kind == RequestKind.SYNTHETIC_TABLE


# --- Submission and approval ------------------------------------------------------------------------


def _submitted(alice: Any, dataset: Any, **overrides: Any) -> GenerationRequest:
    request = request_create(actor=alice, data=_model_input(dataset, **overrides))
    return request_submit(actor=alice, request_id=request.pk)


def test_approval_queues_a_model_job_and_reserves_exactly_its_epsilon(
    alice: Any, olivia: Any, outcome_dataset: Any, django_capture_on_commit_callbacks: Any
) -> None:
    request = _submitted(alice, outcome_dataset)
    assert request.status == RequestStatus.IN_REVIEW
    with django_capture_on_commit_callbacks(execute=False):
        request_decide(actor=olivia, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    job = SynthesisJob.objects.get(pk=request.job_id)
    assert job.synthesizer == FAMILY
    assert job.columns == [*FEATURES, TARGET]
    assert [spec["name"] for spec in job.metadata] == [*FEATURES, TARGET]
    assert job.rows == 0
    assert job.epsilon_micro == request.epsilon_micro and job.delta_atto is None
    assert job.options == {
        "kind": "dp_model",
        "target": TARGET,
        "features": FEATURES,
        "model_options": {},
    }
    entry = BudgetLedgerEntry.objects.get(job=job)
    assert entry.kind == "reserve" and entry.amount_micro == request.epsilon_micro == 500_000
    outcome_dataset.refresh_from_db()
    assert outcome_dataset.epsilon_spent_micro == 500_000


def test_a_dp_model_request_whose_epsilon_does_not_fit_is_refused_at_submission(
    alice: Any, outcome_dataset: Any
) -> None:
    request = request_create(actor=alice, data=_model_input(outcome_dataset, epsilon="5"))
    with pytest.raises(Conflict, match="Not enough privacy budget"):
        request_submit(actor=alice, request_id=request.pk)


def test_the_requester_still_cannot_approve_their_own_dp_model_request(
    alice: Any, outcome_dataset: Any
) -> None:
    request = _submitted(alice, outcome_dataset)
    # Even holding the reviewer role too, the requester is refused.
    get_user_model().objects.filter(pk=alice.pk).update(role="privacy_officer")
    alice.refresh_from_db()
    with pytest.raises(PermissionDenied):
        request_decide(actor=alice, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    assert request.status == RequestStatus.IN_REVIEW and request.job_id is None
    assert not BudgetLedgerEntry.objects.exists()


def test_declarations_withdrawn_after_submission_refuse_the_approval_and_reserve_nothing(
    alice: Any, olivia: Any, outcome_dataset: Any
) -> None:
    request = _submitted(alice, outcome_dataset)
    profile_suggestions_only(outcome_dataset, ["age"])
    with pytest.raises(Conflict, match="`age`"):
        request_decide(actor=olivia, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    assert request.status == RequestStatus.IN_REVIEW and request.job_id is None
    assert not SynthesisJob.objects.exists() and not BudgetLedgerEntry.objects.exists()


# --- The policy ---------------------------------------------------------------------------------------


def test_a_dp_model_is_tiered_as_dp_with_its_kind_and_family(alice: Any, outcome_dataset: Any) -> None:
    request = request_create(actor=alice, data=_model_input(outcome_dataset))
    facts = request_facts(request)
    values = facts.values()
    assert values["kind"] == "dp_model" and values["model_family"] == FAMILY
    assert values["is_dp"] is True and values["epsilon"] == 0.5
    assert values["sites"] == 0 and values["secure_aggregation"] is False and values["client_dp"] is False
    assert TARGET in facts.all_columns()  # the model learns the target too


def test_an_external_dp_model_is_high_tier_with_epsilon_capped() -> None:
    facts = Facts(audience="external", kind="dp_model", model_family=FAMILY, is_dp=True, epsilon=0.5)
    assessment = evaluate(SHIPPED, facts)
    assert assessment.level == "high"
    assert "dp_model_external" in [f.id for f in assessment.fired]
    assert assessment.controls["max_epsilon"] == 1.0
    too_much = evaluate(SHIPPED, Facts(audience="external", kind="dp_model", is_dp=True, epsilon=2.0))
    assert too_much.level == "prohibited"
    internal = evaluate(SHIPPED, Facts(audience="internal", kind="dp_model", is_dp=True, epsilon=0.5))
    assert internal.level == "low"


def _study(**overrides: Any) -> Facts:
    fields: dict[str, Any] = {
        "audience": "internal",
        "kind": "federated_study",
        "sites": 4,
        "secure_aggregation": True,
        "client_dp": True,
        "model_family": "logistic_regression",
        "is_dp": True,
        "epsilon": 1.0,
    }
    fields.update(overrides)
    return Facts(**fields)


@pytest.mark.parametrize(
    ("overrides", "level", "fired"),
    [
        ({}, "low", set()),
        ({"secure_aggregation": False}, "medium", {"federated_without_secure_aggregation"}),
        ({"client_dp": False, "is_dp": False, "epsilon": None}, "medium", {"federated_without_client_dp"}),
        (
            {"secure_aggregation": False, "client_dp": False, "is_dp": False, "epsilon": None},
            "high",
            {"federated_without_secure_aggregation", "federated_without_client_dp", "federated_unprotected"},
        ),
        ({"sites": 2}, "high", {"federated_few_sites"}),
        ({"audience": "external"}, "high", {"federated_external_needs_dp"}),
        ({"audience": "external", "client_dp": False, "is_dp": False, "epsilon": None}, "prohibited", None),
    ],
)
def test_federated_studies_are_tiered_by_how_they_train(
    overrides: dict[str, Any], level: str, fired: set[str] | None
) -> None:
    assessment = evaluate(SHIPPED, _study(**overrides))
    assert assessment.level == level
    ids = {f.id for f in assessment.fired} - {"baseline"}
    if fired is not None:
        assert {i for i in ids if i.startswith("federated")} == fired
    else:
        assert "control.dp_required" in ids
        message = next(f.message for f in assessment.fired if f.id == "control.dp_required")
        assert "client-level DP" in message and "dp_*" not in message
    for rule in assessment.fired:
        assert "{" not in rule.message  # every placeholder rendered


def test_the_few_sites_message_names_the_count() -> None:
    message = next(
        f.message for f in evaluate(SHIPPED, _study(sites=2)).fired if f.id == "federated_few_sites"
    )
    assert message.startswith("Only 2 site(s)")


def test_a_study_is_told_how_to_lower_its_tier() -> None:
    changes = [
        s.change for s in suggest(SHIPPED, _study(secure_aggregation=False, client_dp=False, is_dp=False))
    ]
    assert any("secure aggregation" in c for c in changes)
    assert any("client-level DP" in c for c in changes)
    assert not any("dp_*" in c for c in changes)  # a study does not pick a synthesizer


def test_synthetic_table_facts_keep_their_defaults() -> None:
    values = Facts(audience="internal").values()
    assert values["kind"] == "synthetic_table" and values["model_family"] is None
    assert values["sites"] == 0 and values["secure_aggregation"] is False and values["client_dp"] is False
    assert {"kind", "model_family", "sites", "secure_aggregation", "client_dp"} <= set(FACTS)


# The shipped rule set with one more rule (its condition filled in by each test).
_RULE = (
    SHIPPED_TEXT.replace("%", "%%")
    + """
  - id: r_test
    when: %s
    tier: medium
    message: "m {model_family} {sites}"
"""
)


@pytest.mark.parametrize(
    "condition",
    [
        "{fact: kind, eq: dp_model}",
        "{fact: model_family, in: [dp_random_forest, dp_decision_tree]}",
        "{fact: model_family, unknown: true}",
        "{fact: sites, lt: 3}",
        "{fact: secure_aggregation, eq: false}",
        "{fact: client_dp, eq: true}",
    ],
)
def test_the_loader_accepts_the_new_facts(condition: str) -> None:
    assert parse_policy(_RULE % condition).rules[-1].id == "r_test"


@pytest.mark.parametrize(
    ("condition", "words"),
    [
        ("{fact: kind, eq: dp_models}", "`kind` is one of"),
        ("{fact: model_family, eq: 3}", "`model_family` is a name"),
        ("{fact: model_family, gt: a}", "not a number"),
        ("{fact: sites, eq: many}", "`sites` is a number"),
        ("{fact: client_dp, eq: yes_please}", "true or false"),
        ("{fact: sites, unknown: true}", "always known"),
    ],
)
def test_the_loader_refuses_the_new_facts_misused(condition: str, words: str) -> None:
    with pytest.raises(PolicyError, match=words):
        parse_policy(_RULE % condition)


def test_a_model_family_rule_fires_on_its_family_only() -> None:
    policy = parse_policy(_RULE % "{fact: model_family, eq: dp_random_forest}")

    def fired(**facts: Any) -> bool:
        return "r_test" in {f.id for f in evaluate(policy, Facts(audience="internal", **facts)).fired}

    assert fired(kind="dp_model", model_family="dp_random_forest")
    assert not fired(kind="dp_model", model_family=FAMILY)
    assert not fired()  # a synthetic table has no family: unknown satisfies no comparison


# --- API and pages ------------------------------------------------------------------------------------


def test_the_api_round_trips_kind_target_and_family(
    api: Callable[[Any], Any], alice: Any, outcome_dataset: Any, make_request: Any
) -> None:
    client = api(alice)
    created = client.post("/api/v1/requests/", _payload(outcome_dataset), format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["kind"] == "dp_model" and body["target"] == TARGET and body["model_family"] == FAMILY
    assert body["synthesizer"] == FAMILY and body["columns"] == FEATURES
    assert body["is_dp"] is True and body["rows"] == 0 and Decimal(str(body["epsilon"])) == Decimal("0.5")
    fetched = client.get(f"/api/v1/requests/{body['id']}/").json()
    assert (fetched["kind"], fetched["target"], fetched["model_family"]) == ("dp_model", TARGET, FAMILY)
    # An edit without kind keeps it; one that names another kind is refused.
    edited = client.put(
        f"/api/v1/requests/{body['id']}/", _payload(outcome_dataset, kind=None, epsilon=0.3), format="json"
    )
    assert edited.status_code == 200, edited.content
    assert edited.json()["kind"] == "dp_model"
    changed = client.put(
        f"/api/v1/requests/{body['id']}/",
        _payload(
            outcome_dataset,
            kind="synthetic_table",
            synthesizer="gaussian_copula",
            rows=10,
            epsilon=None,
            target="",
        ),
        format="json",
    )
    assert changed.status_code == 400 and changed.json()["error"]["fields"] == {"kind": "immutable"}
    table = make_request()
    listed = client.get("/api/v1/requests/", {"kind": "dp_model"}).json()
    assert [r["id"] for r in listed["results"]] == [body["id"]]
    tables = client.get("/api/v1/requests/", {"kind": "synthetic_table"}).json()
    assert [r["id"] for r in tables["results"]] == [str(table.pk)]
    assert tables["results"][0]["kind"] == "synthetic_table" and tables["results"][0]["model_family"] is None
    assert client.get("/api/v1/requests/", {"kind": "spaceship"}).status_code == 400


def test_the_api_takes_the_family_as_model_as_api_md_names_it(
    api: Callable[[Any], Any], alice: Any, outcome_dataset: Any
) -> None:
    client = api(alice)
    # API.md: {"kind": "dp_model", "model": "logistic_regression", "target": ...}; no synthesizer.
    body = {k: v for k, v in _payload(outcome_dataset).items() if k != "synthesizer"}
    created = client.post("/api/v1/requests/", {**body, "model": "logistic_regression"}, format="json")
    assert created.status_code == 201, created.content
    assert (created.json()["kind"], created.json()["model_family"]) == ("dp_model", "dp_logistic_regression")
    # Without kind, a model makes it a dp_model; the family's own name is accepted too.
    no_kind = {k: v for k, v in body.items() if k != "kind"}
    forest = client.post("/api/v1/requests/", {**no_kind, "model": "dp_random_forest"}, format="json")
    assert forest.status_code == 201, forest.content
    assert (forest.json()["kind"], forest.json()["model_family"]) == ("dp_model", "dp_random_forest")
    # A preview without kind or rows is a dp_model's too (a table's would need rows), with its budget.
    preview = client.post("/api/v1/requests/preview/", {**no_kind, "model": "decision_tree"}, format="json")
    assert preview.status_code == 200, preview.content
    assert preview.json()["budget"]["epsilon_needed"] == "0.5"
    filed = GenerationRequest.objects.count()
    refusals = [
        ({**body, "model": "spaceship"}, "choose one of decision_tree, logistic_regression, random_forest"),
        ({**body, "model": "random_forest", "synthesizer": "dp_logistic_regression"}, "different families"),
        ({**body, "kind": "synthetic_table", "rows": 10, "model": "random_forest"}, "Only a dp_model"),
    ]
    for payload, words in refusals:
        refused = client.post("/api/v1/requests/", payload, format="json")
        assert refused.status_code == 400, payload
        assert words in refused.json()["error"]["fields"]["model"]
    assert GenerationRequest.objects.count() == filed
    missing = client.post("/api/v1/requests/preview/", body, format="json")
    assert missing.status_code == 400 and "synthesizer" in missing.json()["error"]["fields"]


def test_the_api_still_requires_rows_for_a_synthetic_table(
    api: Callable[[Any], Any], alice: Any, outcome_dataset: Any
) -> None:
    body = _payload(
        outcome_dataset, kind="synthetic_table", synthesizer="gaussian_copula", epsilon=None, target=""
    )
    response = api(alice).post("/api/v1/requests/", body, format="json")
    assert response.status_code == 400
    assert "rows" in response.json()["error"]["fields"]


def _model_form(dataset: Any, **overrides: str) -> dict[str, Any]:
    """The new-request form as a browser posts a dp_model (the synthesizer field keeps its default)."""
    form: dict[str, Any] = {
        "dataset": str(dataset.pk),
        "kind": "dp_model",
        "title": "Mortality model",
        "purpose_category": "research",
        "purpose": "Predict death",
        "intended_use": "Risk score",
        "audience": "internal",
        "fidelity": "medium",
        "columns": FEATURES,
        "synthesizer": "gaussian_copula",
        "rows": "",
        "model_family": "dp_random_forest",
        "target": TARGET,
        "epsilon": "0.4",
        "delta": "",
    }
    form.update(overrides)
    return form


def test_the_form_files_a_dp_model_and_the_page_shows_it(alice: Any, outcome_dataset: Any) -> None:
    client = Client()
    client.force_login(alice)
    form = _model_form(outcome_dataset)
    response = client.post("/requests/new/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    request = GenerationRequest.objects.get()
    assert (request.kind, request.target, request.synthesizer) == ("dp_model", TARGET, "dp_random_forest")
    assert request.epsilon_micro == 400_000 and request.rows == 0
    page = client.get(f"/requests/{request.pk}/").content.decode()
    assert 'data-testid="request-kind">Differentially private model' in page
    assert "DP random forest (diffprivlib)" in page and f"<code>{TARGET}</code>" in page
    listed = client.get("/requests/", {"kind": "dp_model"}).content.decode()
    assert "Mortality model" in listed
    assert "Mortality model" not in client.get("/requests/", {"kind": "synthetic_table"}).content.decode()


def test_the_form_refuses_profile_bounds_and_saves_nothing(alice: Any, outcome_dataset: Any) -> None:
    profile_suggestions_only(outcome_dataset, ["kappa"])
    client = Client()
    client.force_login(alice)
    response = client.post("/requests/new/", _model_form(outcome_dataset, model_family=FAMILY))
    assert response.status_code == 200
    assert "`kappa`" in response.content.decode()
    assert not GenerationRequest.objects.exists()


def test_the_preview_tiers_a_dp_model_and_names_undeclared_features(
    api: Callable[[Any], Any], alice: Any, outcome_dataset: Any
) -> None:
    body = {k: v for k, v in _payload(outcome_dataset, audience="external").items() if k != "title"}
    preview = api(alice).post("/api/v1/requests/preview/", body, format="json")
    assert preview.status_code == 200, preview.content
    data = preview.json()
    assert data["level"] == "high" and "dp_model_external" in [r["id"] for r in data["rules"]]
    assert data["budget"]["epsilon_needed"] == "0.5" and data["dp_domain_refusal"] is None
    profile_suggestions_only(outcome_dataset, ["lambda"])
    again = api(alice).post("/api/v1/requests/preview/", body, format="json").json()
    assert "`lambda`" in again["dp_domain_refusal"]
    assert not GenerationRequest.objects.exists()


# --- DP-SGD (dp_sgd_mlp): the one (epsilon, delta) model family ---------------------------------


def test_a_dp_sgd_request_reserves_exactly_its_epsilon_and_delta_at_approval(
    alice: Any, olivia: Any, outcome_dataset: Any, django_capture_on_commit_callbacks: Any
) -> None:
    outcome_dataset.refresh_from_db()
    delta_before = outcome_dataset.delta_spent_atto
    request = _submitted(
        alice, outcome_dataset, synthesizer="dp_sgd_mlp", delta="2e-9", options={"hidden": 8, "epochs": 2}
    )
    assert request.delta_atto == 2_000_000_000 and request.epsilon_micro == 500_000
    with django_capture_on_commit_callbacks(execute=False):
        request_decide(actor=olivia, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    job = SynthesisJob.objects.get(pk=request.job_id)
    assert job.synthesizer == "dp_sgd_mlp"
    assert (job.epsilon_micro, job.delta_atto) == (500_000, 2_000_000_000)
    assert job.options["model_options"] == {"hidden": 8, "epochs": 2}
    entry = BudgetLedgerEntry.objects.get(job=job)
    assert entry.kind == "reserve" and entry.amount_micro == 500_000 and entry.delta_atto == 2_000_000_000
    outcome_dataset.refresh_from_db()
    assert outcome_dataset.epsilon_spent_micro == 500_000
    assert outcome_dataset.delta_spent_atto == delta_before + 2_000_000_000
    # The worker's spec carries the reserved delta (generation.services.models_out).
    from generation.services.models_out import job_model_spec

    assert job_model_spec(job).delta == Decimal("2e-9")


def test_a_dp_sgd_request_without_delta_takes_the_default(alice: Any, outcome_dataset: Any) -> None:
    request = request_create(actor=alice, data=_model_input(outcome_dataset, synthesizer="dp_sgd_mlp"))
    request.refresh_from_db()
    assert request.delta_atto == 1_000_000_000  # 1e-9, the portal's default delta


@pytest.mark.parametrize("delta", ["0.01", "1e-15", "-1e-9", "lots"])
def test_a_dp_sgd_request_with_a_delta_out_of_range_is_refused(
    alice: Any, outcome_dataset: Any, delta: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        request_create(actor=alice, data=_model_input(outcome_dataset, synthesizer="dp_sgd_mlp", delta=delta))
    assert "delta" in refused.value.fields
    assert not GenerationRequest.objects.exists()


@pytest.mark.parametrize("family", ["dp_logistic_regression", "dp_random_forest", "dp_decision_tree"])
def test_the_pure_epsilon_families_still_refuse_a_delta(
    alice: Any, outcome_dataset: Any, family: str
) -> None:
    with pytest.raises(ValidationFailed, match="pure epsilon-DP.*dp_sgd_mlp") as refused:
        request_create(actor=alice, data=_model_input(outcome_dataset, synthesizer=family, delta="1e-9"))
    assert refused.value.fields == {"delta": "not_applicable"}
    assert not GenerationRequest.objects.exists()


def test_dp_sgd_options_are_checked_when_filed(alice: Any, outcome_dataset: Any) -> None:
    for options, words in (
        ({"hidden": 500}, "hidden"),
        ({"epochs": 20, "sample_rate": 0.005}, "DP-SGD steps"),
        ({"layers": 3}, "does not accept"),
    ):
        with pytest.raises(ValidationFailed, match=words):
            request_create(
                actor=alice, data=_model_input(outcome_dataset, synthesizer="dp_sgd_mlp", options=options)
            )
    assert not GenerationRequest.objects.exists()


def test_the_form_files_a_dp_sgd_model_with_its_delta(alice: Any, outcome_dataset: Any) -> None:
    client = Client()
    client.force_login(alice)
    form = _model_form(outcome_dataset, title="Mortality network", model_family="dp_sgd_mlp", delta="5e-9")
    response = client.post("/requests/new/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    request = GenerationRequest.objects.get()
    assert (request.synthesizer, request.epsilon_micro, request.delta_atto) == (
        "dp_sgd_mlp",
        400_000,
        5 * 10**9,
    )


def test_the_api_files_a_dp_sgd_model_with_its_delta(
    api: Callable[[Any], Any], alice: Any, outcome_dataset: Any
) -> None:
    client = api(alice)
    body = {k: v for k, v in _payload(outcome_dataset).items() if k != "synthesizer"}
    created = client.post("/api/v1/requests/", {**body, "model": "sgd_mlp", "delta": "3e-9"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["model_family"] == "dp_sgd_mlp"
    assert GenerationRequest.objects.get().delta_atto == 3 * 10**9
    refused = client.post(
        "/api/v1/requests/", {**body, "model": "decision_tree", "delta": "3e-9"}, format="json"
    )
    assert refused.status_code == 400 and "delta" in refused.json()["error"]["fields"]


def test_the_preview_budget_of_a_dp_sgd_model_counts_its_delta(
    api: Callable[[Any], Any], alice: Any, outcome_dataset: Any
) -> None:
    body = {k: v for k, v in _payload(outcome_dataset).items() if k not in ("title", "synthesizer")}
    client = api(alice)
    sgd = client.post("/api/v1/requests/preview/", {**body, "model": "sgd_mlp", "delta": 2e-9}, format="json")
    assert sgd.status_code == 200, sgd.content
    assert Decimal(sgd.json()["budget"]["delta_needed"]) == Decimal("2e-9")
    default = client.post("/api/v1/requests/preview/", {**body, "model": "sgd_mlp"}, format="json").json()
    assert Decimal(default["budget"]["delta_needed"]) == Decimal("1e-9")
    pure = client.post("/api/v1/requests/preview/", {**body, "model": "logistic_regression"}, format="json")
    assert pure.json()["budget"]["delta_needed"] is None
    assert not GenerationRequest.objects.exists()
