"""DP requests, attacked where the guarantee could silently break (issue 11):

- a DP synthesizer on domains only a profile suggested (read from the data) is refused, naming the
  columns and what to do, when filed, submitted and approved, over the API and the form;
- delta: asked for (epsilon, delta) synthesizers only, defaulted, capped per tier, passed to the job;
- the budget: a request that cannot be paid is flagged when filed, in the live preview, on the
  page, and refused at submission, with the figures ("needs epsilon 50, 3.5 left");
- the policy: record-level DP on a table where one patient has several rows is at least high risk.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.test import Client

from approvals.choices import RequestStatus
from approvals.models import GenerationRequest
from approvals.policies import Facts, PolicyError, evaluate, parse_policy
from approvals.policies.engine import merge_controls
from approvals.services import RequestInput, request_create, request_decide, request_submit
from approvals.services.tiering import repeating_identifiers
from approvals.tests.conftest import NO_QI_COLUMNS
from approvals.tests.helpers import declare_by_steward, profile_suggestions_only
from conftest import SAFE_COLUMNS, csv_upload
from core.errors import Conflict, ValidationFailed
from generation.models import BudgetLedgerEntry, ClassificationVersion, SourceDataset, SynthesisJob
from generation.policies import dp_domain_refusal, undeclared_dp_columns

DP_COLUMNS = ["kappa", "lambda", "futime"]
SHIPPED_TEXT = (Path(__file__).resolve().parents[2] / "policies" / "tiering.yaml").read_text()
SHIPPED = parse_policy(SHIPPED_TEXT)


class FakeApproximateDP:
    """Stands in for dp_mst / dp_aim: an (epsilon, delta) synthesizer (only class facts matter)."""

    name: ClassVar[str] = "dp_approx_test"
    label: ClassVar[str] = "Test (epsilon, delta) synthesizer"
    is_dp: ClassVar[bool] = True
    uses_delta: ClassVar[bool] = True


@pytest.fixture
def approx_dp(monkeypatch: pytest.MonkeyPatch, declared_dataset: Any) -> str:
    from generation.synthesizers import REGISTRY

    monkeypatch.setitem(REGISTRY, FakeApproximateDP.name, FakeApproximateDP)
    return FakeApproximateDP.name


@pytest.fixture
def suggested(dataset: Any) -> Any:
    """The shared dataset as if signed off with the profile's suggestions (read from the data)."""
    return profile_suggestions_only(dataset)


def _payload(dataset: Any, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataset": str(dataset.pk),
        "title": "DP prototype",
        "purpose": "Model",
        "intended_use": "Notebook",
        "audience": "internal",
        "columns": DP_COLUMNS,
        "synthesizer": "dp_copula",
        "rows": 200,
        "epsilon": 0.5,
    }
    body.update(overrides)
    return body


def _form(dataset: Any, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "dataset": str(dataset.pk),
        "title": "DP prototype",
        "purpose_category": "research",
        "purpose": "Model",
        "intended_use": "Notebook",
        "audience": "internal",
        "fidelity": "medium",
        "columns": DP_COLUMNS,
        "synthesizer": "dp_copula",
        "rows": "200",
        "epsilon": "0.5",
        "delta": "",
    }
    data.update(overrides)
    return data


def _revert_to_profile_suggestions(dataset: Any, columns: list[str]) -> None:
    """As if the dataset were signed off again with these domains read from the data."""
    version = ClassificationVersion.objects.get(dataset=dataset, number=dataset.classification_version)
    version.columns = [
        {**spec, "source": "profile_suggestion"} if spec["name"] in columns else spec
        for spec in version.columns
    ]
    version.save(update_fields=["columns"])


def _set_budget(dataset: Any, *, cap: int, spent: int) -> None:
    SourceDataset.objects.filter(pk=dataset.pk).update(epsilon_cap_micro=cap, epsilon_spent_micro=spent)


# --- Which declarations DP accepts (pure) ------------------------------------------------------------


def test_only_steward_and_dp_estimate_declarations_count_as_declared() -> None:
    specs = [
        {"name": "age", "source": "steward"},
        {"name": "kappa", "source": "dp_estimate"},
        {"name": "lambda", "source": "profile_suggestion"},
        {"name": "sex"},  # signed off before sources existed: nobody vouched for it
        {"name": "chapter", "source": ""},
    ]
    assert undeclared_dp_columns(specs) == ["lambda", "sex", "chapter"]
    assert undeclared_dp_columns(specs[:2]) == [] and dp_domain_refusal(specs[:2]) is None


def test_the_refusal_names_the_columns_and_what_to_do_without_any_value() -> None:
    message = dp_domain_refusal([{"name": "kappa", "lower": 0.01, "upper": 20.5}, {"name": "sex"}])
    assert message is not None
    assert "`kappa`" in message and "`sex`" in message
    assert "ask the data steward to declare" in message.lower() and "DP domain estimate" in message
    assert "20.5" not in message and "0.01" not in message


# --- Refused on profile suggestions: filing, submission, approval ------------------------------------


def test_a_dp_copula_request_on_profile_suggestions_is_refused_over_the_api(
    api: Any, alice: Any, suggested: Any
) -> None:
    response = api(alice).post("/api/v1/requests/", _payload(suggested), format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "dp_domain_not_declared"
    assert all(f"`{name}`" in error["message"] for name in DP_COLUMNS)
    assert "data steward" in error["message"] and "DP domain estimate" in error["message"]
    assert not GenerationRequest.objects.exists()


def test_a_dp_copula_request_on_profile_suggestions_is_refused_by_the_form(
    client: Client, alice: Any, suggested: Any
) -> None:
    client.force_login(alice)
    response = client.post("/requests/new/", _form(suggested, action="submit"))
    page = response.content.decode()
    assert response.status_code == 200  # the form again, with the reason
    assert "only a suggestion read from the data" in page and "`kappa`" in page
    assert not GenerationRequest.objects.exists()


def test_the_live_preview_says_the_domains_are_not_declared(
    api: Any, client: Client, alice: Any, suggested: Any
) -> None:
    body = api(alice).post("/api/v1/requests/preview/", _payload(suggested), format="json").json()
    assert "`kappa`" in body["dp_domain_refusal"]
    client.force_login(alice)
    html = client.post("/requests/preview/", _form(suggested)).content.decode()
    assert 'data-testid="preview-dp-domain"' in html and "`futime`" in html


def test_a_non_dp_request_on_profile_suggestions_is_filed_as_before(
    api: Any, alice: Any, suggested: Any
) -> None:
    body = _payload(suggested, synthesizer="gaussian_copula", epsilon=None)
    assert api(alice).post("/api/v1/requests/", body, format="json").status_code == 201


def test_only_the_undeclared_columns_are_named(api: Any, alice: Any, dataset: Any) -> None:
    profile_suggestions_only(dataset, columns=["futime"])
    error = api(alice).post("/api/v1/requests/", _payload(dataset), format="json").json()["error"]
    assert "`futime`" in error["message"] and "`kappa`" not in error["message"]


def test_submission_is_refused_when_the_declarations_were_signed_off_again_from_the_data(
    api: Any, alice: Any, declared_dataset: Any
) -> None:
    created = api(alice).post("/api/v1/requests/", _payload(declared_dataset), format="json")
    assert created.status_code == 201
    _revert_to_profile_suggestions(declared_dataset, ["lambda"])
    response = api(alice).post(f"/api/v1/requests/{created.json()['id']}/submit/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "dp_domain_not_declared"
    assert "`lambda`" in response.json()["error"]["message"]
    assert GenerationRequest.objects.get().status == RequestStatus.DRAFT


def test_approval_is_refused_when_the_declarations_were_signed_off_again_from_the_data(
    api: Any, alice: Any, olivia: Any, declared_dataset: Any
) -> None:
    draft = api(alice).post("/api/v1/requests/", _payload(declared_dataset), format="json").json()
    assert api(alice).post(f"/api/v1/requests/{draft['id']}/submit/").json()["status"] == "in_review"
    _revert_to_profile_suggestions(declared_dataset, ["kappa"])
    response = api(olivia).post(
        f"/api/v1/requests/{draft['id']}/decisions/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "dp_domain_not_declared"
    request = GenerationRequest.objects.get()
    assert (request.status, request.job_id, request.decisions.count()) == ("in_review", None, 0)
    assert not SynthesisJob.objects.exists() and not BudgetLedgerEntry.objects.exists()


# --- Delta -----------------------------------------------------------------------------------------


def test_an_epsilon_delta_request_gets_the_default_delta_and_shows_it(
    api: Any, alice: Any, approx_dp: str, declared_dataset: Any
) -> None:
    response = api(alice).post(
        "/api/v1/requests/", _payload(declared_dataset, synthesizer=approx_dp), format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["delta"] == 1e-9
    assert GenerationRequest.objects.get().delta_atto == 10**9  # exact: 1e-9 in 1e-18 units


def test_an_explicit_delta_is_stored_exactly(
    api: Any, alice: Any, approx_dp: str, declared_dataset: Any
) -> None:
    body = _payload(declared_dataset, synthesizer=approx_dp, delta="2.5e-7")
    assert api(alice).post("/api/v1/requests/", body, format="json").json()["delta"] == 2.5e-7
    assert GenerationRequest.objects.get().delta_atto == 250_000_000_000


@pytest.mark.parametrize("synthesizer", ["dp_copula", "gaussian_copula"])
def test_delta_is_refused_for_pure_and_non_dp_synthesizers(
    api: Any, alice: Any, declared_dataset: Any, synthesizer: str
) -> None:
    epsilon = 0.5 if synthesizer == "dp_copula" else None
    body = _payload(declared_dataset, synthesizer=synthesizer, epsilon=epsilon, delta=1e-9)
    response = api(alice).post("/api/v1/requests/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["delta"] == "not_applicable"


@pytest.mark.parametrize("delta", [0, -1e-9, 1e-3, "abc", True, [1e-9], 1e-15])
def test_bad_deltas_answer_400(
    api: Any, alice: Any, approx_dp: str, declared_dataset: Any, delta: Any
) -> None:
    body = _payload(declared_dataset, synthesizer=approx_dp, delta=delta)
    response = api(alice).post("/api/v1/requests/", body, format="json")
    assert response.status_code == 400
    assert "delta" in response.json()["error"].get("fields", {})


def test_a_delta_above_the_tiers_cap_is_prohibited_with_a_reason(
    alice: Any, approx_dp: str, declared_dataset: Any
) -> None:
    # Internal, no sensitive column: low tier, whose max_delta is 1e-6.
    draft = request_create(
        actor=alice,
        data=RequestInput(
            dataset_id=declared_dataset.pk,
            title="t",
            purpose="p",
            intended_use="u",
            audience="internal",
            columns=["kappa", "lambda"],
            synthesizer=approx_dp,
            rows=100,
            epsilon=0.5,
            delta="5e-6",
        ),
    )
    submitted = request_submit(actor=alice, request_id=draft.pk)
    assert submitted.tier_level == "prohibited"
    assert any("Delta 5e-06 is above the maximum 1e-06" in r for r in submitted.tier_reasons)


def test_approval_passes_the_delta_to_the_job_and_the_ledger(
    make_request: Callable[..., Any], alice: Any, olivia: Any, approx_dp: str, declared_dataset: Any
) -> None:
    draft = make_request(synthesizer=approx_dp, epsilon="0.25", delta="3e-9", columns=DP_COLUMNS)
    request_submit(actor=alice, request_id=draft.pk)
    request_decide(actor=olivia, request_id=draft.pk, decision="approve")
    draft.refresh_from_db()
    assert draft.job.delta_atto == 3 * 10**9 and draft.job.epsilon_micro == 250_000
    declared_dataset.refresh_from_db()
    assert declared_dataset.delta_spent_atto == 3 * 10**9


def test_the_request_page_shows_delta(
    client: Client, make_request: Callable[..., Any], alice: Any, approx_dp: str
) -> None:
    draft = make_request(synthesizer=approx_dp, epsilon="0.5", columns=DP_COLUMNS)
    client.force_login(alice)
    page = client.get(f"/requests/{draft.pk}/").content.decode()
    assert "delta 1E-9" in page


def test_the_form_files_a_delta(client: Client, alice: Any, approx_dp: str, declared_dataset: Any) -> None:
    client.force_login(alice)
    response = client.post(
        "/requests/new/", _form(declared_dataset, synthesizer=approx_dp, delta="1e-8", action="draft")
    )
    assert response.status_code == 302
    assert GenerationRequest.objects.get().delta_atto == 10**10


# --- The budget, before approval -------------------------------------------------------------------


def test_a_dp_request_over_the_remaining_budget_is_flagged_when_filed(
    api: Any, alice: Any, declared_dataset: Any
) -> None:
    _set_budget(declared_dataset, cap=53_500_000, spent=50_000_000)  # 3.5 left
    response = api(alice).post("/api/v1/requests/", _payload(declared_dataset, epsilon=50), format="json")
    assert response.status_code == 201
    budget = response.json()["budget"]
    assert budget["fits"] is False
    assert "needs epsilon 50" in budget["message"] and "3.5 left" in budget["message"]
    assert (budget["epsilon_needed"], budget["epsilon_remaining"]) == ("50", "3.5")


def test_a_dp_request_over_the_remaining_budget_is_refused_at_submission(
    api: Any, alice: Any, declared_dataset: Any
) -> None:
    _set_budget(declared_dataset, cap=53_500_000, spent=50_000_000)
    draft = api(alice).post("/api/v1/requests/", _payload(declared_dataset, epsilon=50), format="json").json()
    response = api(alice).post(f"/api/v1/requests/{draft['id']}/submit/")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "budget_exhausted" and error["fields"]["epsilon_remaining"] == "3.5"
    assert "needs epsilon 50" in error["message"] and "3.5 left" in error["message"]
    assert GenerationRequest.objects.get().status == RequestStatus.DRAFT


def test_a_dp_request_within_the_budget_says_what_it_will_spend(
    api: Any, alice: Any, declared_dataset: Any
) -> None:
    body = api(alice).post("/api/v1/requests/", _payload(declared_dataset, epsilon=0.5), format="json").json()
    assert body["budget"]["fits"] is True and "1 left" in body["budget"]["message"]
    assert api(alice).post(f"/api/v1/requests/{body['id']}/submit/").status_code == 200


def test_the_live_preview_and_the_page_flag_the_same_shortfall(
    api: Any, client: Client, alice: Any, declared_dataset: Any
) -> None:
    _set_budget(declared_dataset, cap=53_500_000, spent=50_000_000)
    preview = (
        api(alice)
        .post("/api/v1/requests/preview/", _payload(declared_dataset, epsilon=50), format="json")
        .json()
    )
    assert preview["budget"]["fits"] is False and "3.5 left" in preview["budget"]["message"]
    client.force_login(alice)
    html = client.post("/requests/preview/", _form(declared_dataset, epsilon="50")).content.decode()
    assert 'data-testid="preview-budget"' in html and "needs epsilon 50" in html and "3.5 left" in html
    response = client.post("/requests/new/", _form(declared_dataset, epsilon="50", action="draft"))
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert 'data-testid="budget-check"' in page and "needs epsilon 50" in page and "3.5 left" in page


def test_the_form_refuses_to_submit_what_the_budget_cannot_pay(
    client: Client, alice: Any, declared_dataset: Any
) -> None:
    _set_budget(declared_dataset, cap=53_500_000, spent=50_000_000)
    client.force_login(alice)
    page = client.post("/requests/new/", _form(declared_dataset, epsilon="50", action="submit"))
    # Saved as a draft, then submission refused: the same 409 the API gives, as a message.
    request = GenerationRequest.objects.get()
    assert request.status == RequestStatus.DRAFT
    assert page.status_code in (200, 302)


def test_non_dp_requests_carry_no_budget(api: Any, alice: Any, dataset: Any) -> None:
    body = _payload(dataset, synthesizer="gaussian_copula", epsilon=None)
    assert api(alice).post("/api/v1/requests/", body, format="json").json()["budget"] is None


# --- Record-level DP on a table where a patient repeats ---------------------------------------------


def _visits_csv(patients: int = 60, visits: int = 4) -> str:
    lines = ["patient_id,age,sex,bili"]
    for p in range(patients):
        for v in range(visits):
            lines.append(f"P{p:04d},{40 + p % 40},{'F' if p % 2 else 'M'},{0.5 + (p * v) % 7 / 2}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def visits(sam: Any) -> Any:
    """A signed-off table with four rows per patient and no declared entity column."""
    from generation.services import dataset_register, dataset_sign_off

    registered = dataset_register(
        actor=sam, name="visits", uploaded_file=csv_upload(_visits_csv()), epsilon_cap="2.0"
    )
    return declare_by_steward(dataset_sign_off(actor=sam, dataset_id=registered.pk))


def test_a_repeating_patient_id_is_found_from_the_profile(visits: Any) -> None:
    assert repeating_identifiers(visits) == ("patient_id",)


def test_record_level_dp_where_a_patient_repeats_is_at_least_high_risk(
    alice: Any, visits: Any, dp_synthesizer: str
) -> None:
    draft = request_create(
        actor=alice,
        data=RequestInput(
            dataset_id=visits.pk,
            title="t",
            purpose="p",
            intended_use="u",
            audience="internal",
            columns=["bili"],
            synthesizer=dp_synthesizer,
            rows=100,
            epsilon=1,
        ),
    )
    submitted = request_submit(actor=alice, request_id=draft.pk)
    assert submitted.tier_level == "high" and submitted.required_approvals >= 2
    reason = next(r for r in submitted.tier_reasons if "protect single rows, not patients" in r)
    assert "patient_id" in reason and "declare the patient (entity) column" in reason


def test_declaring_the_entity_column_lifts_the_record_level_rule(
    alice: Any, visits: Any, dp_synthesizer: str
) -> None:
    SourceDataset.objects.filter(pk=visits.pk).update(entity_column="patient_id")
    draft = request_create(
        actor=alice,
        data=RequestInput(
            dataset_id=visits.pk,
            title="t",
            purpose="p",
            intended_use="u",
            audience="internal",
            columns=["bili"],
            synthesizer=dp_synthesizer,
            rows=100,
            epsilon=1,
        ),
    )
    submitted = request_submit(actor=alice, request_id=draft.pk)
    assert not any("protect single rows" in r for r in submitted.tier_reasons)


def test_one_row_per_patient_does_not_fire_the_rule(submit: Callable[..., Any], dp_synthesizer: str) -> None:
    request = submit(columns=NO_QI_COLUMNS, synthesizer=dp_synthesizer, epsilon=1)
    assert not any("protect single rows" in r for r in request.tier_reasons)


# --- max_delta in the policy language --------------------------------------------------------------


def _policy_with(tier_line: str, value: str) -> str:
    return SHIPPED_TEXT.replace(f"    max_delta: {tier_line}\n", f"    max_delta: {value}\n", 1)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('"1e-9"', "at most 0.001"),  # quoted: text, not a number
        ("-1.0e-9", "above 0"),
        ("0.5", "at most 0.001"),
    ],
)
def test_the_loader_refuses_bad_max_delta(value: str, problem: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(_policy_with("1.0e-6", value))
    assert "tiers.low.max_delta" in str(refused.value) and problem in str(refused.value)


def test_a_riskier_tier_may_not_allow_a_larger_delta() -> None:
    text = SHIPPED_TEXT.replace("    max_delta: 1.0e-8\n", "    max_delta: 1.0e-5\n", 1)
    with pytest.raises(PolicyError) as refused:
        parse_policy(text)
    assert "tiers.high.max_delta" in str(refused.value)


def test_the_stricter_max_delta_wins_when_rules_combine() -> None:
    assert merge_controls({"max_delta": 1e-6}, {"max_delta": 1e-9})["max_delta"] == 1e-9
    assert merge_controls({"max_delta": None}, {"max_delta": 1e-7})["max_delta"] == 1e-7


def test_pure_dp_spends_no_delta_and_is_never_refused_for_it() -> None:
    facts = Facts(audience="internal", synthesizer="dp_copula", is_dp=True, epsilon=1.0, other_names=("k",))
    assessment = evaluate(SHIPPED, facts)
    assert assessment.level == "low" and facts.values()["delta"] == 0.0
    assert not any(f.id == "control.max_delta" for f in assessment.fired)


def test_a_policy_without_max_delta_still_loads() -> None:
    text = "\n".join(line for line in SHIPPED_TEXT.splitlines() if "max_delta" not in line)
    assert "max_delta" not in parse_policy(text).tiers["low"]


def test_existing_safe_columns_stay_requestable_under_dp(
    make_request: Callable[..., Any], dp_synthesizer: str
) -> None:
    # Guards the tests above against vacuity: with the steward's declarations a DP request is filed.
    assert make_request(synthesizer=dp_synthesizer, epsilon=0.5, columns=SAFE_COLUMNS).status == "draft"


def test_validation_errors_come_before_the_domain_conflict(alice: Any, suggested: Any) -> None:
    with pytest.raises(ValidationFailed):
        request_create(
            actor=alice,
            data=RequestInput(
                dataset_id=suggested.pk,
                title="t",
                purpose="p",
                intended_use="u",
                audience="internal",
                columns=DP_COLUMNS,
                synthesizer="dp_copula",
                rows=100,
                epsilon=-1,
            ),
        )
    with pytest.raises(Conflict):
        request_create(
            actor=alice,
            data=RequestInput(
                dataset_id=suggested.pk,
                title="t",
                purpose="p",
                intended_use="u",
                audience="internal",
                columns=DP_COLUMNS,
                synthesizer="dp_copula",
                rows=100,
                epsilon=1,
            ),
        )
