"""Issue 11: the domain is declared, never read from the data; what else is public agrees with
the DP claim. Declarations and their source, DP domain estimates charged to the ledger, the
entity column, exact figures for custodians only, and the budget belonging to the population."""

from __future__ import annotations

import hashlib
import io
import math
import re
from typing import Any

import pandas as pd
import pytest

from audit.models import AuditEvent
from conftest import csv_upload, small_flchain_csv
from core.errors import Conflict, ValidationFailed
from generation.forms import ColumnReviewForm
from generation.models import BudgetLedgerEntry, SourceDataset
from generation.services import (
    DOMAIN_ESTIMATE_TASK,
    dataset_estimate_domain,
    dataset_register,
    dataset_request_domain_estimate,
    dataset_sign_off,
    dataset_update_columns,
)
from generation.tasks import estimate_domain

URL = "/api/v1/datasets/"
SUGGESTION = "read from the data — a suggestion, not a public declaration"
ROWS = 237  # not a multiple of 100, so a rounded figure differs from the exact one


@pytest.fixture
def registered(sam: Any) -> SourceDataset:
    """flchain's first 237 rows, registered and awaiting review (profile suggestions only)."""
    return dataset_register(
        actor=sam, name="flchain", uploaded_file=csv_upload(small_flchain_csv(ROWS)), epsilon_cap="1"
    )


@pytest.fixture
def ready(registered: SourceDataset, sam: Any) -> SourceDataset:
    return dataset_sign_off(actor=sam, dataset_id=registered.pk)


def column(dataset: SourceDataset, name: str) -> Any:
    return dataset.columns.get(name=name)


def signed_columns(dataset: SourceDataset) -> dict[str, dict[str, Any]]:
    dataset.refresh_from_db()
    version = dataset.classification_versions.get(number=dataset.classification_version)
    return {c["name"]: c for c in version.columns}


# --- 1. Declarations record their source ------------------------------------------------------------


def test_intake_marks_every_prefilled_declaration_as_a_profile_suggestion(registered: SourceDataset) -> None:
    sources = {c.name: c.declared.get("source") for c in registered.columns.all()}

    assert set(sources.values()) == {"profile_suggestion"}
    kappa = column(registered, "kappa")
    assert kappa.declared["upper"] == kappa.stats["max"]  # it is a copy of the data: hence the label


def test_signing_off_the_defaults_leaves_them_profile_suggestions(ready: SourceDataset) -> None:
    snapshot = signed_columns(ready)

    assert {c["source"] for c in snapshot.values()} == {"profile_suggestion"}
    for spec in snapshot.values():
        assert {"source", "integer", "nullable", "entity"} <= set(spec)
        assert spec["entity"] is False


def test_the_review_form_never_offers_profile_values_as_initial_values(registered: SourceDataset) -> None:
    kappa = column(registered, "kappa")
    form = ColumnReviewForm(column=kappa, prefix="c0")

    assert (form.initial["lower"], form.initial["upper"], form.initial["integer"]) == ("", "", False)
    assert form.initial["nullable"] == ""
    assert form.suggestion["upper"] == kappa.stats["max"]  # shown beside the inputs instead


def test_the_review_page_shows_suggestions_beside_empty_inputs_marked_as_read_from_the_data(
    client: Any, sam: Any, registered: SourceDataset
) -> None:
    client.force_login(sam)
    kappa = column(registered, "kappa")
    index = list(registered.columns.order_by("position")).index(kappa)

    page = client.get(f"/datasets/{registered.pk}/review/").content.decode()

    assert SUGGESTION in page
    assert f'name="c{index}-upper" id="id_c{index}-upper">' in page.replace(' value=""', "")
    assert f'name="c{index}-upper" value="{kappa.stats["max"]}"' not in page


def review_post(dataset: SourceDataset, **fields: dict[str, Any]) -> dict[str, Any]:
    """The review form as a browser posts it: every input at its initial value, except `fields`."""
    data: dict[str, Any] = {"entity_column": dataset.entity_column}
    for i, col in enumerate(dataset.columns.order_by("position")):
        form = ColumnReviewForm(column=col, prefix=f"c{i}")
        values = {**form.initial, **fields.get(col.name.replace(".", "_"), {})}
        for name in form.fields:
            value = values[name]
            if isinstance(value, bool):
                if value:
                    data[form.add_prefix(name)] = "on"
            else:
                data[form.add_prefix(name)] = value
    return data


def test_posting_the_review_form_unchanged_declares_nothing(
    client: Any, sam: Any, registered: SourceDataset
) -> None:
    client.force_login(sam)

    response = client.post(f"/datasets/{registered.pk}/review/", review_post(registered))

    assert response.status_code == 302
    assert {c.declared["source"] for c in registered.columns.all()} == {"profile_suggestion"}


def test_bounds_entered_on_the_review_page_become_the_stewards_declaration(
    client: Any, sam: Any, registered: SourceDataset
) -> None:
    client.force_login(sam)
    posted = review_post(
        registered, kappa={"lower": "0", "upper": "100", "unit": "mg/L", "nullable": "no", "integer": False}
    )

    response = client.post(f"/datasets/{registered.pk}/review/", posted)

    kappa = column(registered, "kappa")
    assert response.status_code == 302
    assert kappa.declared == {
        "source": "steward",
        "lower": 0.0,
        "upper": 100.0,
        "unit": "mg/L",
        "nullable": False,
    }
    assert column(registered, "lambda").declared["source"] == "profile_suggestion"


def test_kind_and_integer_flag_are_editable_on_the_review_page(
    client: Any, sam: Any, registered: SourceDataset
) -> None:
    client.force_login(sam)
    posted = review_post(registered, age={"lower": "18", "upper": "110", "integer": True})
    client.post(f"/datasets/{registered.pk}/review/", posted)

    client.post(
        f"/datasets/{registered.pk}/review/", review_post(registered, flc_grp={"kind": "categorical"})
    )

    age, group = column(registered, "age"), column(registered, "flc.grp")
    assert (age.declared["integer"], age.declared["source"]) == (True, "steward")
    assert (group.kind, group.declared["source"]) == ("categorical", "steward")
    assert "lower" not in group.declared  # a numeric bound does not describe a category


def test_any_field_the_steward_enters_replaces_the_whole_suggestion(
    sam: Any, registered: SourceDataset
) -> None:
    dataset_update_columns(actor=sam, dataset_id=registered.pk, changes=[{"name": "kappa", "unit": "mg/L"}])

    kappa = column(registered, "kappa")
    # The data's min and max never become public under the steward's name.
    assert kappa.declared == {"source": "steward", "unit": "mg/L"}


def test_an_outcome_flag_alone_does_not_launder_a_suggestion_into_a_declaration(
    sam: Any, registered: SourceDataset
) -> None:
    dataset_update_columns(actor=sam, dataset_id=registered.pk, changes=[{"name": "death", "outcome": True}])
    dataset_update_columns(
        actor=sam, dataset_id=registered.pk, changes=[{"name": "kappa", "classification": "sensitive"}]
    )

    assert column(registered, "death").declared["source"] == "profile_suggestion"
    assert column(registered, "kappa").declared["source"] == "profile_suggestion"


def test_patch_of_kind_integer_and_nullable_works_and_marks_the_column_steward(
    api: Any, sam: Any, registered: SourceDataset
) -> None:
    change = {"name": "age", "kind": "numeric", "integer": True, "lower": 18, "upper": 110, "nullable": False}

    response = api(sam).patch(f"{URL}{registered.pk}/columns/", {"columns": [change]}, format="json")
    signed = api(sam).post(f"{URL}{registered.pk}/signoff/")

    assert response.status_code == 200, response.content
    age = next(c for c in response.json()["columns"] if c["name"] == "age")
    assert age["declared"] == {
        "source": "steward",
        "integer": True,
        "lower": 18.0,
        "upper": 110.0,
        "nullable": False,
    }
    assert signed.status_code == 200
    spec = signed_columns(registered)["age"]
    assert (spec["source"], spec["integer"], spec["nullable"], spec["lower"], spec["upper"]) == (
        "steward",
        True,
        False,
        18.0,
        110.0,
    )


def test_patch_changes_a_columns_kind_and_drops_what_described_the_old_kind(
    api: Any, sam: Any, registered: SourceDataset
) -> None:
    change = {"name": "flc.grp", "kind": "categorical", "categories": [str(i) for i in range(1, 11)]}

    response = api(sam).patch(f"{URL}{registered.pk}/columns/", {"columns": [change]}, format="json")

    group = column(registered, "flc.grp")
    assert response.status_code == 200
    assert group.kind == "categorical"
    assert group.declared["categories"] == sorted(str(i) for i in range(1, 11))
    assert "lower" not in group.declared and "integer" not in group.declared


@pytest.mark.parametrize(
    "change",
    [
        {"name": "age", "kind": "spreadsheet"},
        {"name": "age", "integer": "perhaps"},
        {"name": "age", "nullable": "perhaps"},
    ],
)
def test_invalid_kind_or_flags_are_a_400_and_change_nothing(
    api: Any, sam: Any, registered: SourceDataset, change: dict[str, Any]
) -> None:
    before = column(registered, "age").declared

    response = api(sam).patch(f"{URL}{registered.pk}/columns/", {"columns": [change]}, format="json")

    assert response.status_code == 400
    assert column(registered, "age").declared == before


def test_flags_must_be_booleans_in_the_service_too(sam: Any, registered: SourceDataset) -> None:
    with pytest.raises(ValidationFailed, match="integer must be true or false"):
        dataset_update_columns(
            actor=sam, dataset_id=registered.pk, changes=[{"name": "age", "integer": "yes"}]
        )


# --- Warnings: declarations that look copied from the data -------------------------------------------


def test_bounds_and_categories_copied_from_the_data_are_warned_about(
    api: Any, sam: Any, client: Any, registered: SourceDataset
) -> None:
    kappa, sex = column(registered, "kappa"), column(registered, "sex")
    copied = [
        {"name": "kappa", "lower": kappa.stats["min"], "upper": kappa.stats["max"]},
        {"name": "sex", "categories": sex.stats["categories_at_least_k"]},
        {"name": "lambda", "lower": 0, "upper": 100},
    ]

    body = api(sam).patch(f"{URL}{registered.pk}/columns/", {"columns": copied}, format="json").json()
    client.force_login(sam)
    page = client.get(f"/datasets/{registered.pk}/review/").content.decode()

    codes = {(w["column"], w["code"]) for w in body["warnings"]}
    assert {("kappa", "lower_equals_observed"), ("kappa", "upper_equals_observed")} <= codes
    assert ("sex", "categories_equal_observed") in codes
    assert not any(c == "lambda" for c, _ in codes)  # a public range raises no warning
    assert ("age", "profile_suggestion") in codes  # still undeclared
    assert "the declared upper bound equals the largest value in the data" in page


def test_scientists_get_no_warnings_they_would_reveal_the_datas_extremes(
    api: Any, sam: Any, alice: Any, ready: SourceDataset
) -> None:
    assert api(sam).get(f"{URL}{ready.pk}/").json()["warnings"]
    assert api(alice).get(f"{URL}{ready.pk}/").json()["warnings"] == []


# --- 2. DP domain estimates, charged to the ledger --------------------------------------------------


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    from portal.celery import app

    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(app, "send_task", lambda name, kwargs=None, **_: calls.append((name, kwargs or {})))
    return calls


def test_an_estimate_is_charged_to_the_ledger_when_queued_and_recorded_as_a_dp_estimate(
    sam: Any, registered: SourceDataset, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        entry = dataset_request_domain_estimate(
            actor=sam, dataset_id=registered.pk, column="kappa", epsilon="0.2", lower=0, upper=200
        )

    registered.refresh_from_db()
    assert (entry.purpose, entry.job, entry.amount_micro, entry.dataset_id) == (
        "domain_estimate",
        None,
        200_000,
        registered.pk,
    )
    assert registered.epsilon_spent_micro == 200_000  # spent before any worker ran
    # Only ids cross the broker: no epsilon, no range, no values.
    assert sent == [
        (DOMAIN_ESTIMATE_TASK, {"column_id": column(registered, "kappa").pk, "entry_id": entry.pk})
    ]

    estimate_domain(**sent[0][1])  # the Celery task, run here as the worker would

    kappa = column(registered, "kappa")
    assert kappa.declared["source"] == "dp_estimate"
    assert kappa.declared["estimate"]["epsilon"] == "0.2"
    assert 0 <= kappa.declared["lower"] <= kappa.declared["upper"] <= 200
    assert "estimate_request" not in kappa.declared and "integer" not in kappa.declared
    audited = AuditEvent.objects.get(action="dataset.domain_estimate")
    assert audited.details["column"] == "kappa" and audited.details["epsilon_micro"] == 200_000
    assert AuditEvent.objects.filter(action="dataset.domain_estimate.request").count() == 1


def test_a_redelivered_estimate_task_reads_nothing_and_changes_nothing(
    sam: Any, registered: SourceDataset
) -> None:
    entry = dataset_request_domain_estimate(
        actor=sam, dataset_id=registered.pk, column="kappa", epsilon="0.2", lower=0, upper=200
    )
    kappa_id = column(registered, "kappa").pk
    first = dataset_estimate_domain(column_id=kappa_id, entry_id=entry.pk)

    again = dataset_estimate_domain(column_id=kappa_id, entry_id=entry.pk)

    assert first is not None and again is None
    assert column(registered, "kappa").declared == first
    assert AuditEvent.objects.filter(action="dataset.domain_estimate").count() == 1


def test_the_dp_estimate_is_signed_off_as_a_declaration_dp_synthesis_accepts(
    sam: Any, ready: SourceDataset
) -> None:
    entry = dataset_request_domain_estimate(
        actor=sam, dataset_id=ready.pk, column="kappa", epsilon="0.5", lower=0, upper=200
    )
    dataset_estimate_domain(column_id=column(ready, "kappa").pk, entry_id=entry.pk)
    ready.refresh_from_db()
    assert ready.status == "pending_review"  # a new declaration reopens review

    dataset_sign_off(actor=sam, dataset_id=ready.pk)

    spec = signed_columns(ready)["kappa"]
    assert (spec["source"], spec["estimate_epsilon"]) == ("dp_estimate", "0.5")


def test_an_estimate_the_budget_cannot_cover_is_a_409_and_changes_nothing(
    api: Any, sam: Any, registered: SourceDataset
) -> None:
    before = column(registered, "kappa").declared

    response = api(sam).post(
        f"{URL}{registered.pk}/columns/kappa/estimate/",
        {"epsilon": "1.5", "lower": 0, "upper": 200},
        format="json",
    )

    registered.refresh_from_db()
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "budget_exhausted"
    assert registered.epsilon_spent_micro == 0
    assert not BudgetLedgerEntry.objects.exists()
    assert column(registered, "kappa").declared == before


def test_the_estimate_api_queues_and_the_remaining_budget_drops(
    api: Any, sam: Any, registered: SourceDataset
) -> None:
    response = api(sam).post(
        f"{URL}{registered.pk}/columns/flc.grp/estimate/",
        {"epsilon": "0.25", "lower": 0, "upper": 50},
        format="json",
    )

    assert response.status_code == 202, response.content
    assert response.json()["state"] == "queued"
    assert response.json()["budget"]["epsilon_remaining"] == 0.75
    assert api(sam).get(f"{URL}{registered.pk}/").json()["budget"]["epsilon_remaining"] == 0.75
    assert column(registered, "flc.grp").declared["estimate_request"]["state"] == "queued"


@pytest.mark.parametrize(
    ("column_name", "payload"),
    [
        ("sex", {"epsilon": "0.1", "delta": "2"}),  # categorical: a delta that protects nobody
        ("kappa", {"epsilon": "0.1", "lower": 200, "upper": 0}),  # empty range
        ("kappa", {"epsilon": "0", "lower": 0, "upper": 200}),
        ("nope", {"epsilon": "0.1", "lower": 0, "upper": 200}),
    ],
)
def test_bad_estimate_requests_are_a_400_and_spend_nothing(
    api: Any, sam: Any, registered: SourceDataset, column_name: str, payload: dict[str, Any]
) -> None:
    response = api(sam).post(f"{URL}{registered.pk}/columns/{column_name}/estimate/", payload, format="json")

    assert response.status_code == 400
    assert not BudgetLedgerEntry.objects.exists()


@pytest.mark.parametrize(
    ("persona", "status"), [("alice", 403), ("olivia", 403), ("audrey", 403), (None, 401)]
)
def test_only_stewards_request_estimates(
    request: pytest.FixtureRequest, api: Any, ready: SourceDataset, persona: str | None, status: int
) -> None:
    user = request.getfixturevalue(persona) if persona else None

    response = api(user).post(
        f"{URL}{ready.pk}/columns/kappa/estimate/",
        {"epsilon": "0.1", "lower": 0, "upper": 200},
        format="json",
    )

    assert response.status_code == status
    assert not BudgetLedgerEntry.objects.exists()


def test_a_scientist_cannot_see_a_dataset_awaiting_review_to_estimate_it(
    api: Any, alice: Any, registered: SourceDataset
) -> None:
    response = api(alice).post(
        f"{URL}{registered.pk}/columns/kappa/estimate/",
        {"epsilon": "0.1", "lower": 0, "upper": 200},
        format="json",
    )
    assert response.status_code == 404


def test_the_review_page_offers_the_estimate_and_charges_it(
    client: Any, sam: Any, registered: SourceDataset
) -> None:
    client.force_login(sam)
    page = client.get(f"/datasets/{registered.pk}/review/").content.decode()

    response = client.post(
        f"/datasets/{registered.pk}/estimate/",
        {"column": "creatinine", "epsilon": "0.1", "lower": "0", "upper": "20"},
    )

    assert "Estimate the domain (spends budget)" in page
    assert response.status_code == 302
    entry = BudgetLedgerEntry.objects.get()
    assert (entry.purpose, entry.amount_micro, entry.reason) == (
        "domain_estimate",
        100_000,
        "DP bounds of `creatinine`",
    )


def test_dates_are_estimated_per_element_whatever_the_first_rows_format(sam: Any) -> None:
    days = pd.date_range("2010-01-01", periods=300, freq="D").strftime("%Y-%m-%d").tolist()
    frame = pd.DataFrame({"seen": ["2012-06-01 09:30:00", *days[1:]], "x": range(300)})
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    dataset = dataset_register(
        actor=sam, name="dates", uploaded_file=csv_upload(buffer.getvalue()), epsilon_cap="2"
    )

    entry = dataset_request_domain_estimate(
        actor=sam, dataset_id=dataset.pk, column="seen", epsilon="1", lower="2000-01-01", upper="2030-01-01"
    )
    declared = dataset_estimate_domain(column_id=column(dataset, "seen").pk, entry_id=entry.pk)

    assert declared is not None and declared["source"] == "dp_estimate"
    low, high = pd.Timestamp(declared["lower"]), pd.Timestamp(declared["upper"])
    assert pd.Timestamp("2000-01-01") <= low <= high <= pd.Timestamp("2030-01-01")


# --- 3. The entity column -----------------------------------------------------------------------


def with_patients(rows: int = 300, per_patient: int = 3) -> bytes:
    frame = pd.read_csv(io.BytesIO(small_flchain_csv(rows)))
    frame.insert(0, "pid", [1000 + i // per_patient for i in range(rows)])
    frame.insert(1, "subject_id", range(50_000, 50_000 + rows))
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


@pytest.fixture
def patients(sam: Any) -> SourceDataset:
    return dataset_register(
        actor=sam, name="visits", uploaded_file=csv_upload(with_patients()), epsilon_cap="1"
    )


def test_intake_suggests_a_unique_numeric_id_as_a_direct_identifier_and_flags_one_that_repeats(
    patients: SourceDataset,
) -> None:
    subject, pid = column(patients, "subject_id"), column(patients, "pid")

    assert subject.kind == "numeric"
    assert (subject.suggested_classification, subject.suggestion_reason) == (
        "direct_identifier",
        "Named like an identifier and unique per row.",
    )
    assert (subject.stats["id_like"], subject.stats["repeats"]) == (True, False)
    assert (pid.stats["repeats"], pid.stats["max_rows_per_value"]) == (True, 3)
    assert "repeats" not in column(patients, "kappa").stats


def test_the_repeating_id_is_flagged_to_custodians_only(
    client: Any, sam: Any, alice: Any, api: Any, patients: SourceDataset
) -> None:
    dataset_sign_off(actor=sam, dataset_id=patients.pk)
    client.force_login(sam)
    steward_page = client.get(f"/datasets/{patients.pk}/").content.decode()
    client.force_login(alice)
    scientist_page = client.get(f"/datasets/{patients.pk}/").content.decode()

    assert 'data-testid="id-repeats"' in steward_page
    assert 'data-testid="id-repeats"' not in scientist_page
    assert all(c["profile"] is None for c in api(alice).get(f"{URL}{patients.pk}/").json()["columns"])


def test_the_steward_declares_the_entity_column_over_the_api_and_it_is_signed_off(
    api: Any, sam: Any, patients: SourceDataset
) -> None:
    dataset_sign_off(actor=sam, dataset_id=patients.pk)

    response = api(sam).patch(f"{URL}{patients.pk}/columns/", {"entity_column": "pid"}, format="json")
    patients.refresh_from_db()
    reopened = patients.status
    dataset_sign_off(actor=sam, dataset_id=patients.pk)

    assert response.status_code == 200, response.content
    assert response.json()["entity_column"] == "pid"
    assert reopened == "pending_review"  # like any other edit
    snapshot = signed_columns(patients)
    assert [name for name, spec in snapshot.items() if spec["entity"]] == ["pid"]
    review = AuditEvent.objects.filter(action="dataset.review").latest("seq")
    assert review.details == {"edited": {}, "entity_column": "pid"}


def test_the_entity_column_must_name_a_column(api: Any, sam: Any, patients: SourceDataset) -> None:
    response = api(sam).patch(f"{URL}{patients.pk}/columns/", {"entity_column": "patient"}, format="json")
    empty = api(sam).patch(f"{URL}{patients.pk}/columns/", {}, format="json")

    patients.refresh_from_db()
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_entity_column"
    assert empty.status_code == 400
    assert patients.entity_column == ""


@pytest.mark.parametrize(("persona", "status"), [("olivia", 403), (None, 401)])
def test_only_stewards_declare_the_entity_column(
    request: pytest.FixtureRequest, api: Any, patients: SourceDataset, persona: str | None, status: int
) -> None:
    user = request.getfixturevalue(persona) if persona else None

    response = api(user).patch(f"{URL}{patients.pk}/columns/", {"entity_column": "pid"}, format="json")

    patients.refresh_from_db()
    assert response.status_code == status and patients.entity_column == ""


def test_the_steward_declares_the_entity_column_on_the_review_page(
    client: Any, sam: Any, patients: SourceDataset
) -> None:
    client.force_login(sam)

    response = client.post(
        f"/datasets/{patients.pk}/review/", {**review_post(patients), "entity_column": "pid"}
    )
    detail = client.get(f"/datasets/{patients.pk}/").content.decode()

    patients.refresh_from_db()
    assert response.status_code == 302 and patients.entity_column == "pid"
    assert "one patient, identified by <code>pid</code>" in detail


# --- 4. Exact figures for custodians only -----------------------------------------------------------


def test_a_scientist_reading_the_dataset_api_gets_no_exact_rows_or_statistics(
    api: Any, alice: Any, ready: SourceDataset
) -> None:
    body = api(alice).get(f"{URL}{ready.pk}/").json()
    listed = api(alice).get(URL).json()["results"][0]

    for seen in (body, listed):
        assert (seen["rows"], seen["rows_exact"]) == (200, False)  # 237 rounded to the nearest 100
        assert seen["training_rows"] % 100 == 0 and seen["holdout"]["rows"] % 100 == 0
        assert seen["small_cell_count"] is None
        for col in seen["columns"]:
            assert col["profile"] is None and col["distinct"] is None
            assert col["missing_rate"] == round(col["missing_rate"], 2)
            # A profile suggestion is the data's min/max: not public, so not shown.
            assert set(col["declared"]) <= {"source", "outcome"}
    assert "reason" not in body["population"]


@pytest.mark.parametrize("persona", ["sam", "olivia", "audrey", "ada"])
def test_custodians_see_exact_figures(
    request: pytest.FixtureRequest, api: Any, ready: SourceDataset, persona: str
) -> None:
    body = api(request.getfixturevalue(persona)).get(f"{URL}{ready.pk}/").json()

    assert (body["rows"], body["rows_exact"]) == (ROWS, True)
    kappa = next(c for c in body["columns"] if c["name"] == "kappa")
    assert kappa["profile"]["max"] == kappa["declared"]["upper"]
    assert isinstance(kappa["distinct"], int)


def test_a_scientist_sees_declared_public_domains(
    api: Any, sam: Any, alice: Any, ready: SourceDataset
) -> None:
    dataset_update_columns(
        actor=sam, dataset_id=ready.pk, changes=[{"name": "age", "lower": 18, "upper": 110, "integer": True}]
    )
    dataset_sign_off(actor=sam, dataset_id=ready.pk)

    age = next(c for c in api(alice).get(f"{URL}{ready.pk}/").json()["columns"] if c["name"] == "age")

    assert age["declared"] == {"source": "steward", "lower": 18.0, "upper": 110.0, "integer": True}


def test_dataset_pages_show_scientists_about_figures_and_no_profile(
    client: Any, alice: Any, sam: Any, ready: SourceDataset
) -> None:
    kappa = column(ready, "kappa")
    client.force_login(alice)
    detail = client.get(f"/datasets/{ready.pk}/").content.decode()
    listing = client.get("/datasets/").content.decode()
    client.force_login(sam)
    steward_detail = client.get(f"/datasets/{ready.pk}/").content.decode()

    assert "about 200" in detail and "about 200" in listing
    # As a figure: the page's ids are random hex, and one once held "4237".
    assert not re.search(rf"\b{ROWS}\b", detail) and f">{ROWS}<" not in listing
    assert f"max {kappa.stats['max']}" not in detail and "not declared" in detail
    assert f"{ROWS} (" in steward_detail and f"max {kappa.stats['max']}" in steward_detail


def spend_something(sam: Any, dataset: SourceDataset) -> BudgetLedgerEntry:
    return dataset_request_domain_estimate(
        actor=sam, dataset_id=dataset.pk, column="kappa", epsilon="0.1", lower=0, upper=200
    )


def test_the_budget_page_shows_scientists_totals_only_and_custodians_the_ledger(
    client: Any, alice: Any, olivia: Any, sam: Any, ready: SourceDataset
) -> None:
    spend_something(sam, ready)
    client.force_login(alice)
    scientist = client.get(f"/datasets/{ready.pk}/budget/").content.decode()
    client.force_login(olivia)
    officer = client.get(f"/datasets/{ready.pk}/budget/").content.decode()

    for page in (scientist, officer):
        assert 'data-testid="budget-remaining">epsilon 0.9<' in page
        assert 'data-testid="budget-delta-remaining">1E-6<' in page
    assert 'data-testid="ledger"' not in scientist and "DP bounds of" not in scientist
    assert 'data-testid="ledger-hidden"' in scientist
    assert 'data-testid="ledger"' in officer and "DP bounds of `kappa`" in officer and ">sam<" in officer


def test_the_ledger_api_gives_scientists_totals_and_custodians_entries(
    api: Any, alice: Any, audrey: Any, sam: Any, ready: SourceDataset
) -> None:
    spend_something(sam, ready)

    scientist = api(alice).get(f"{URL}{ready.pk}/budget/").json()
    auditor = api(audrey).get(f"{URL}{ready.pk}/budget/").json()

    assert scientist["entries"] is None
    assert (scientist["epsilon_spent"], scientist["delta_cap"], scientist["delta_spent"]) == (
        0.1,
        "1E-6",
        "0",
    )
    assert [(e["purpose"], e["actor"], e["epsilon"]) for e in auditor["entries"]] == [
        ("domain_estimate", "sam", 0.1)
    ]
    assert api(None).get(f"{URL}{ready.pk}/budget/").status_code == 401


# --- 5. The budget belongs to the population ---------------------------------------------------------


def register_version(sam: Any, **kwargs: Any) -> SourceDataset:
    return dataset_register(
        actor=sam, name="flchain", uploaded_file=csv_upload(small_flchain_csv(150)), epsilon_cap="5", **kwargs
    )


def test_a_new_version_shares_the_first_versions_ledger(
    api: Any, sam: Any, alice: Any, ready: SourceDataset
) -> None:
    second = register_version(sam)
    third = register_version(sam)
    dataset_sign_off(actor=sam, dataset_id=second.pk)

    entry = spend_something(sam, second)

    ready.refresh_from_db()
    assert (second.population_id, third.population_id) == (ready.pk, ready.pk)
    assert (entry.dataset_id, entry.source_id) == (ready.pk, second.pk)
    assert ready.epsilon_spent_micro == 100_000
    budget = api(alice).get(f"{URL}{second.pk}/").json()["budget"]
    assert (budget["ledger_owner"], budget["shared"], budget["epsilon_cap"], budget["epsilon_remaining"]) == (
        str(ready.pk),
        True,
        1.0,
        0.9,
    )
    audited = AuditEvent.objects.filter(action="dataset.register", target_id=str(third.pk)).get()
    assert audited.details["ledger_owner"] == str(ready.pk)


def test_a_disjoint_population_needs_a_written_reason(api: Any, sam: Any, ready: SourceDataset) -> None:
    form = {
        "name": "flchain",
        "epsilon_cap": "2",
        "disjoint_population": "true",
        "population_reason": "other",
    }

    response = api(sam).post(URL, {**form, "file": csv_upload(small_flchain_csv(120))}, format="multipart")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"population_reason": "too_short"}
    assert SourceDataset.objects.count() == 1
    with pytest.raises(ValidationFailed, match="at least 20 characters"):
        register_version(sam, disjoint_population=True, population_reason="   short reason    ")


def test_a_disjoint_population_gets_its_own_ledger_and_the_reason_is_audited_by_hash(
    api: Any, sam: Any, ready: SourceDataset
) -> None:
    reason = "Sites B and C, recruited 2005-2008; nobody from the 1995 cohort."
    form = {"name": "flchain", "epsilon_cap": "2", "disjoint_population": "true", "population_reason": reason}

    response = api(sam).post(URL, {**form, "file": csv_upload(small_flchain_csv(120))}, format="multipart")

    assert response.status_code == 201, response.content
    second = SourceDataset.objects.get(pk=response.json()["id"])
    assert (second.population_id, second.population_reason) == (None, reason)
    assert response.json()["budget"]["ledger_owner"] == str(second.pk)
    assert response.json()["population"] == {
        "ledger_owner": str(second.pk),
        "disjoint": True,
        "reason": reason,
    }
    details = AuditEvent.objects.get(action="dataset.register", target_id=str(second.pk)).details
    assert details["population_reason_sha256"] == hashlib.sha256(reason.encode()).hexdigest()
    assert details["population_reason_length"] == len(reason)
    assert reason not in str(details)


def test_the_upload_page_declares_a_disjoint_population(client: Any, sam: Any, ready: SourceDataset) -> None:
    client.force_login(sam)
    reason = "A separate registry of other patients, 2010 onwards."

    response = client.post(
        "/datasets/new/",
        {
            "name": "flchain",
            "epsilon_cap": "2",
            "file": csv_upload(small_flchain_csv(120)),
            "disjoint_population": "on",
            "population_reason": reason,
        },
    )

    assert response.status_code == 302
    latest = SourceDataset.objects.get(version=2)
    assert latest.population_id is None and latest.population_reason == reason


def test_estimates_on_a_shared_ledger_are_refused_when_the_owner_is_spent(
    sam: Any, ready: SourceDataset
) -> None:
    second = register_version(sam)  # its own cap of 5 does not matter: it spends v1's budget of 1
    with pytest.raises(Conflict):
        dataset_request_domain_estimate(
            actor=sam, dataset_id=second.pk, column="kappa", epsilon="2", lower=0, upper=200
        )


# --- The demo ships hand-written public declarations -------------------------------------------------


def test_the_demo_dataset_ships_steward_declarations_not_the_datas_extremes(db: Any) -> None:
    from django.core.management import call_command

    from portal.management.commands.seed_demo import DEMO_DATASET_NAME

    call_command("seed_demo", stdout=io.StringIO())

    dataset = SourceDataset.objects.get(name=DEMO_DATASET_NAME)
    snapshot = signed_columns(dataset)
    assert {spec["source"] for spec in snapshot.values()} == {"steward"}
    assert (snapshot["age"]["lower"], snapshot["age"]["upper"], snapshot["age"]["integer"]) == (
        18.0,
        110.0,
        True,
    )
    for name in ("kappa", "lambda", "creatinine", "age", "futime"):
        stats = column(dataset, name).stats
        assert snapshot[name]["upper"] != stats["max"], name
        # Follow-up time starts at 0 days by definition, whatever the data says.
        assert name == "futime" or snapshot[name]["lower"] != stats["min"], name
    chapter = column(dataset, "chapter")
    assert set(chapter.stats["categories_at_least_k"]) < set(snapshot["chapter"]["categories"])
    assert [name for name, spec in snapshot.items() if spec["outcome"]] == ["death"]


def test_dp_category_discovery_spends_epsilon_and_delta_and_never_releases_a_rare_category(
    sam: Any,
) -> None:
    """A category only two records hold must not become public through an estimate: the noisy
    count has to clear 1 + ln(1/delta)/epsilon, and the estimate is charged epsilon AND delta."""
    from generation.profiling import dp_category_threshold
    from generation.services import dataset_register, dataset_request_domain_estimate

    frame = pd.DataFrame({"grp": ["A"] * 300 + ["B"] * 290 + ["RARE"] * 2, "x": range(592)})
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    dataset = dataset_register(
        actor=sam, name="cats", uploaded_file=csv_upload(buffer.getvalue().encode()), epsilon_cap="2"
    )
    entry = dataset_request_domain_estimate(
        actor=sam, dataset_id=dataset.pk, column="grp", epsilon="1", delta="1e-9"
    )
    assert (entry.amount_micro, entry.delta_atto, entry.purpose) == (1_000_000, 10**9, "domain_estimate")
    declared = dataset_estimate_domain(column_id=column(dataset, "grp").pk, entry_id=entry.pk)

    assert declared is not None and declared["categories"] == ["A", "B"]
    assert declared["source"] == "dp_estimate" and declared["estimate"]["delta"] == "1E-9"
    assert declared["estimate"]["threshold"] == dp_category_threshold(epsilon=1.0, delta=1e-9) == 22
    dataset.refresh_from_db()
    assert dataset.delta_spent_atto == 10**9 and dataset.epsilon_spent_micro == 1_000_000


def test_the_category_threshold_bounds_the_chance_of_releasing_a_single_record() -> None:
    from generation.profiling import dp_category_threshold

    for epsilon, delta in ((0.1, 1e-6), (1.0, 1e-9), (4.0, 1e-12)):
        alpha = math.exp(-epsilon)
        threshold = dp_category_threshold(epsilon=epsilon, delta=delta)
        # P[1 + Z >= t] for two-sided geometric Z with parameter alpha.
        assert alpha ** (threshold - 1) / (1 + alpha) <= delta
