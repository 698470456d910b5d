"""Column classification is suggested from names and value shapes, then signed off by a steward."""

from __future__ import annotations

import io
import random
from typing import Any

import pandas as pd
import pytest

from approvals.services import RequestInput, request_create
from conftest import csv_upload, data_file
from core.errors import NotFound, PermissionDenied, ValidationFailed
from generation.choices import DatasetStatus
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
        changes=[{"name": "kappa", "classification": "sensitive", "upper": 200}],
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
