"""Column classification is suggested from names and value shapes, then signed off by a steward."""

from __future__ import annotations

import io
import random
from typing import Any

import pandas as pd
import pytest

from approvals.services import RequestInput, request_create
from audit.models import AuditEvent
from conftest import csv_upload, data_file
from core.errors import NotFound, PermissionDenied, ValidationFailed
from generation.choices import DatasetStatus
from generation.forms import ColumnReviewForm
from generation.policies import declares_two_values
from generation.services import dataset_register, dataset_sign_off, dataset_update_columns

FIRST = ["Maria", "James", "Aisha", "Wei", "Olga", "Diego", "Fatima", "Liam", "Sofia", "Kenji"]
LAST = ["Garcia", "Smith", "Okafor", "Chen", "Ivanova", "Rossi", "Haddad", "Murphy", "Silva", "Tanaka"]


def flchain_with_identifiers() -> bytes:
    """flchain plus identifier columns made here: names, emails, SSN-, MRN- and phone-shaped values."""
    frame = pd.read_csv(data_file("flchain.csv")).head(2000)
    rng = random.Random(7)
    people = [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(len(frame))]
    frame["patient"] = people
    frame["contact"] = [f"{p.replace(' ', '.').lower()}{i}@example.org" for i, p in enumerate(people)]
    frame["ssn"] = [
        f"{rng.randint(100, 899)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}" for _ in people
    ]
    frame["record_no"] = [f"MRN{1000000 + i}" for i in range(len(frame))]
    frame["tel"] = [f"(555) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}" for _ in people]
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


@pytest.fixture
def with_identifiers(sam: Any) -> Any:
    return dataset_register(
        actor=sam, name="flchain+ids", epsilon_cap="1", uploaded_file=csv_upload(flchain_with_identifiers())
    )


def test_identifier_columns_are_all_suggested_as_direct_identifiers(with_identifiers: Any) -> None:
    suggested = dict(with_identifiers.columns.values_list("name", "suggested_classification"))
    for name in ("patient", "contact", "ssn", "record_no", "tel"):
        assert suggested[name] == "direct_identifier", name
    assert suggested["age"] == "quasi_identifier" and suggested["sex"] == "quasi_identifier"
    assert suggested["kappa"] == "other"


def test_each_suggestion_says_why(with_identifiers: Any) -> None:
    reasons = dict(with_identifiers.columns.values_list("name", "suggestion_reason"))
    assert "SSN" in reasons["ssn"] and "email" in reasons["contact"] and "names" in reasons["patient"]


def test_scientists_cannot_request_before_sign_off(with_identifiers: Any, alice: Any, sam: Any) -> None:
    data = RequestInput(
        dataset_id=with_identifiers.pk,
        title="t",
        purpose="p",
        intended_use="u",
        audience="internal",
        columns=["age"],
        synthesizer="gaussian_copula",
        rows=10,
    )
    with pytest.raises(ValidationFailed, match="Choose a dataset"):
        request_create(actor=alice, data=data)
    dataset_sign_off(actor=sam, dataset_id=with_identifiers.pk)
    assert request_create(actor=alice, data=data).status == "draft"
    with pytest.raises(ValidationFailed, match="`ssn` is classified as a direct identifier"):
        request_create(actor=alice, data=RequestInput(**{**data.__dict__, "columns": ["ssn", "age"]}))


def test_sign_off_is_versioned_and_any_edit_reopens_review(with_identifiers: Any, sam: Any) -> None:
    first = dataset_sign_off(actor=sam, dataset_id=with_identifiers.pk)
    assert (first.status, first.classification_version) == (DatasetStatus.READY, 1)
    assert dataset_sign_off(actor=sam, dataset_id=first.pk).classification_version == 1  # no-op
    edited = dataset_update_columns(
        actor=sam,
        dataset_id=first.pk,
        # Both bounds: entering one field replaces the whole profile suggestion (its data-read lower too).
        changes=[{"name": "kappa", "classification": "sensitive", "lower": 0, "upper": 200}],
    )
    assert edited.status == DatasetStatus.PENDING_REVIEW
    second = dataset_sign_off(actor=sam, dataset_id=first.pk)
    assert second.classification_version == 2
    v1, v2 = (second.classification_versions.get(number=n) for n in (1, 2))
    kappa = lambda v: next(c for c in v.columns if c["name"] == "kappa")  # noqa: E731
    assert kappa(v1)["classification"] == "other" and kappa(v2)["classification"] == "sensitive"
    assert kappa(v2)["upper"] == 200.0 and v2.signed_off_name == "sam"


def test_sign_off_needs_declared_bounds_and_categories(with_identifiers: Any, sam: Any) -> None:
    dataset_update_columns(
        actor=sam, dataset_id=with_identifiers.pk, changes=[{"name": "age", "lower": None}]
    )
    with pytest.raises(ValidationFailed, match="Declare lower and upper bounds for `age`"):
        dataset_sign_off(actor=sam, dataset_id=with_identifiers.pk)


@pytest.mark.parametrize(
    "change",
    [
        {"name": "age", "classification": "secret"},
        {"name": "age", "lower": "abc"},
        {"name": "age", "lower": 90, "upper": 10},
        {"name": "nope", "classification": "other"},
    ],
)
def test_invalid_review_edits_are_refused(with_identifiers: Any, sam: Any, change: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed):
        dataset_update_columns(actor=sam, dataset_id=with_identifiers.pk, changes=[change])


def test_only_stewards_review(with_identifiers: Any, olivia: Any, alice: Any) -> None:
    with pytest.raises(PermissionDenied):
        dataset_sign_off(actor=olivia, dataset_id=with_identifiers.pk)
    with pytest.raises(NotFound):  # scientists cannot even see a dataset awaiting review
        dataset_sign_off(actor=alice, dataset_id=with_identifiers.pk)


def test_review_api(api: Any, sam: Any, alice: Any, with_identifiers: Any) -> None:
    url = f"/api/v1/datasets/{with_identifiers.pk}/"
    patched = api(sam).patch(
        url + "columns/", {"columns": [{"name": "chapter", "categories": ["A", "B"]}]}, format="json"
    )
    assert patched.status_code == 200
    chapter = next(c for c in patched.json()["columns"] if c["name"] == "chapter")
    assert chapter["declared"]["categories"] == ["A", "B"]
    assert api(sam).post(url + "signoff/").json()["status"] == "ready"
    assert (
        api(alice).patch(url + "columns/", {"columns": [{"name": "age"}]}, format="json").status_code == 403
    )
    assert api(alice).post(url + "signoff/").status_code == 403
    assert api(None).post(url + "signoff/").status_code == 401
    body = api(alice).get(url).json()
    assert all(c["profile"] is None for c in body["columns"])  # no value-revealing stats for scientists
    assert api(sam).get(url).json()["columns"][0]["profile"]["min"] is not None


def test_histograms_suppress_small_cells(with_identifiers: Any) -> None:
    age = with_identifiers.columns.get(name="age")
    counts = age.stats["histogram"]["counts"]
    assert all(c is None or c == 0 or c >= 5 for c in counts)
    chapter = with_identifiers.columns.get(name="chapter")
    assert all(n >= 5 for _, n in chapter.stats["top"])
    assert set(chapter.declared["categories"]) == {v for v, _ in chapter.stats["top"]} | set(
        chapter.stats["categories_at_least_k"]
    )


# --- The declared outcome (the column train-on-synthetic-test-on-real predicts) -------------------


def outcomes_of(dataset: Any) -> list[str]:
    return [c.name for c in dataset.columns.all() if c.declared.get("outcome")]


def test_a_declared_outcome_reopens_review_and_is_pinned_by_sign_off(with_identifiers: Any, sam: Any) -> None:
    dataset_sign_off(actor=sam, dataset_id=with_identifiers.pk)

    edited = dataset_update_columns(
        actor=sam, dataset_id=with_identifiers.pk, changes=[{"name": "death", "outcome": True}]
    )
    signed = dataset_sign_off(actor=sam, dataset_id=with_identifiers.pk)

    assert edited.status == DatasetStatus.PENDING_REVIEW
    snapshot = {c["name"]: c["outcome"] for c in signed.classification_versions.get(number=2).columns}
    assert snapshot["death"] is True
    assert [name for name, outcome in snapshot.items() if outcome] == ["death"]
    review = AuditEvent.objects.filter(action="dataset.review").latest("seq")
    assert review.details == {"edited": {"death": ["outcome"]}}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ([{"name": "chapter", "outcome": True}], "`chapter` cannot be the outcome: .* exactly two values"),
        ([{"name": "age", "outcome": True}], "`age` cannot be the outcome"),
        ([{"name": "ssn", "outcome": True}], "`ssn` is classified as a direct identifier"),
        ([{"name": "death", "outcome": "yes"}], "outcome must be true or false"),
        (
            [{"name": "death", "outcome": True, "categories": ["0", "1", "2"]}],
            "`death` cannot be the outcome",
        ),
        (
            [{"name": "death", "outcome": True, "classification": "direct_identifier"}],
            "`death` is classified as a direct identifier",
        ),
    ],
)
def test_only_a_two_valued_synthesized_column_can_be_the_outcome(
    with_identifiers: Any, sam: Any, changes: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message) as refused:
        dataset_update_columns(actor=sam, dataset_id=with_identifiers.pk, changes=changes)

    assert refused.value.fields == {changes[0]["name"]: "outcome"}
    assert outcomes_of(with_identifiers) == []


def test_a_second_outcome_is_refused_naming_the_column_that_holds_it(with_identifiers: Any, sam: Any) -> None:
    dataset_update_columns(
        actor=sam, dataset_id=with_identifiers.pk, changes=[{"name": "death", "outcome": True}]
    )

    with pytest.raises(ValidationFailed, match="`death` is already the declared outcome") as refused:
        dataset_update_columns(
            actor=sam, dataset_id=with_identifiers.pk, changes=[{"name": "mgus", "outcome": True}]
        )

    assert refused.value.code == "second_outcome"
    assert "clear the outcome flag of `death`" in refused.value.message
    assert outcomes_of(with_identifiers) == ["death"]


def test_two_new_outcomes_in_one_edit_are_refused(with_identifiers: Any, sam: Any) -> None:
    with pytest.raises(ValidationFailed, match="Only one column can be the outcome"):
        dataset_update_columns(
            actor=sam,
            dataset_id=with_identifiers.pk,
            changes=[{"name": "mgus", "outcome": True}, {"name": "death", "outcome": True}],
        )

    assert outcomes_of(with_identifiers) == []


def test_the_outcome_moves_when_one_edit_clears_the_old_flag_and_sets_the_new(
    with_identifiers: Any, sam: Any
) -> None:
    dataset_update_columns(
        actor=sam, dataset_id=with_identifiers.pk, changes=[{"name": "mgus", "outcome": True}]
    )

    dataset_update_columns(
        actor=sam,
        dataset_id=with_identifiers.pk,
        changes=[{"name": "mgus", "outcome": False}, {"name": "death", "outcome": True}],
    )

    assert outcomes_of(with_identifiers) == ["death"]


@pytest.mark.parametrize(
    ("kind", "declared", "two_valued"),
    [
        ("boolean", {"categories": ["0", "1"]}, True),
        ("categorical", {"categories": ["alive", "dead"]}, True),
        ("categorical", {"categories": ["a", "b", "c"]}, False),
        ("numeric", {"lower": 0.0, "upper": 1.0, "integer": True}, True),
        ("numeric", {"lower": 0.0, "upper": 1.0, "integer": False}, False),
        ("numeric", {"lower": 0.0, "upper": 2.0, "integer": True}, False),
        ("datetime", {"categories": ["2020-01-01", "2021-01-01"]}, False),
    ],
)
def test_two_valuedness_is_read_from_the_declared_domain(
    kind: str, declared: dict[str, Any], two_valued: bool
) -> None:
    assert declares_two_values(kind=kind, declared=declared) is two_valued


def test_only_stewards_declare_the_outcome(with_identifiers: Any, olivia: Any, alice: Any) -> None:
    change = [{"name": "death", "outcome": True}]
    with pytest.raises(PermissionDenied):
        dataset_update_columns(actor=olivia, dataset_id=with_identifiers.pk, changes=change)
    with pytest.raises(NotFound):  # a dataset awaiting review is invisible to scientists
        dataset_update_columns(actor=alice, dataset_id=with_identifiers.pk, changes=change)

    assert outcomes_of(with_identifiers) == []


def test_the_outcome_round_trips_through_the_api(api: Any, sam: Any, with_identifiers: Any) -> None:
    url = f"/api/v1/datasets/{with_identifiers.pk}/columns/"

    patched = api(sam).patch(url, {"columns": [{"name": "death", "outcome": True}]}, format="json")
    second = api(sam).patch(url, {"columns": [{"name": "mgus", "outcome": True}]}, format="json")
    junk = api(sam).patch(url, {"columns": [{"name": "death", "outcome": "maybe"}]}, format="json")

    assert patched.status_code == 200
    by_name = {c["name"]: c for c in patched.json()["columns"]}
    assert by_name["death"]["outcome"] is True and by_name["death"]["declared"]["outcome"] is True
    assert by_name["mgus"]["outcome"] is False
    assert second.status_code == 400 and second.json()["error"]["code"] == "second_outcome"
    assert "`death` is already the declared outcome" in second.json()["error"]["message"]
    assert junk.status_code == 400
    assert outcomes_of(with_identifiers) == ["death"]


# A scientist cannot even see a dataset awaiting review (404); a privacy officer can, but not edit it.
@pytest.mark.parametrize(("persona", "status"), [("alice", 404), ("olivia", 403), (None, 401)])
def test_non_stewards_cannot_declare_the_outcome_through_the_api(
    request: pytest.FixtureRequest, api: Any, with_identifiers: Any, persona: str | None, status: int
) -> None:
    user = request.getfixturevalue(persona) if persona else None
    url = f"/api/v1/datasets/{with_identifiers.pk}/columns/"

    response = api(user).patch(url, {"columns": [{"name": "death", "outcome": True}]}, format="json")

    assert response.status_code == status
    assert outcomes_of(with_identifiers) == []


def review_form_data(dataset: Any, **outcomes: bool) -> dict[str, Any]:
    """The review page's form as the browser posts it unchanged, with the outcome boxes given."""
    data: dict[str, Any] = {}
    for i, column in enumerate(dataset.columns.order_by("position")):
        form = ColumnReviewForm(column=column, prefix=f"c{i}")
        for name in form.fields:
            value = outcomes.get(column.name, form.initial[name]) if name == "outcome" else form.initial[name]
            if name == "outcome":
                if value:
                    data[form.add_prefix(name)] = "on"
            else:
                data[form.add_prefix(name)] = value
    return data


def test_the_steward_declares_the_outcome_on_the_review_page(
    client: Any, sam: Any, with_identifiers: Any
) -> None:
    review = f"/datasets/{with_identifiers.pk}/review/"
    client.force_login(sam)

    page = client.get(review).content.decode()
    posted = client.post(review, review_form_data(with_identifiers, death=True))
    detail = client.get(f"/datasets/{with_identifiers.pk}/").content.decode()
    again = client.get(review).content.decode()

    death = next(i for i, c in enumerate(with_identifiers.columns.order_by("position")) if c.name == "death")
    assert f'<label for="id_c{death}-outcome">' in page
    assert 'Outcome (for the train-on-synthetic test)<span class="sr-only"> of death</span>' in page
    assert posted.status_code == 302
    assert outcomes_of(with_identifiers) == ["death"]
    assert 'data-testid="outcome-badge"' in detail
    assert f'name="c{death}-outcome" id="id_c{death}-outcome" checked' in again


def test_the_review_page_shows_why_a_second_outcome_is_refused(
    client: Any, sam: Any, with_identifiers: Any
) -> None:
    dataset_update_columns(
        actor=sam, dataset_id=with_identifiers.pk, changes=[{"name": "death", "outcome": True}]
    )
    client.force_login(sam)

    response = client.post(
        f"/datasets/{with_identifiers.pk}/review/", review_form_data(with_identifiers, mgus=True), follow=True
    )

    assert "`death` is already the declared outcome" in response.content.decode()
    assert outcomes_of(with_identifiers) == ["death"]


@pytest.mark.parametrize("persona", ["alice", "olivia"])
def test_non_stewards_cannot_declare_the_outcome_on_the_review_page(
    request: pytest.FixtureRequest, client: Any, with_identifiers: Any, persona: str
) -> None:
    client.force_login(request.getfixturevalue(persona))

    response = client.post(
        f"/datasets/{with_identifiers.pk}/review/", review_form_data(with_identifiers, death=True)
    )

    assert response.status_code == 404
    assert outcomes_of(with_identifiers) == []
