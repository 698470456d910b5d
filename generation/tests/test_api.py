"""/api/v1/datasets/: stewards register, every role reads metadata, bad input is a 400, never a 500."""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from conftest import csv_upload, small_flchain_csv
from generation.choices import DatasetStatus
from generation.models import SourceDataset
from generation.tests.conftest import stored_files

URL = "/api/v1/datasets/"
# The contract's fields, plus the review fields the intake issue added and the declared outcome.
COLUMN_FIELDS = {
    "name",
    "dtype",
    "classification",
    "missing_rate",
    "distinct",
    "suggested_classification",
    "suggestion_reason",
    "declared",
    "outcome",
    "entity",
    "profile",
}
CLASSIFICATIONS = {"direct_identifier", "quasi_identifier", "sensitive", "other"}


def upload_form(**overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "name": "flchain",
        "epsilon_cap": "1.5",
        "file": csv_upload(small_flchain_csv(200), name="flchain.csv"),
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def assert_error_shape(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


# --- POST ------------------------------------------------------------------------------------


def test_steward_registers_a_dataset_and_gets_the_contract_object(api: Any, sam: Any) -> None:
    response = api(sam).post(URL, upload_form(), format="multipart")

    assert response.status_code == 201, response.content
    body = response.json()
    assert {"id", "name", "version", "status", "rows", "sha256", "columns", "budget"} <= set(body)
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert (body["name"], body["version"], body["status"], body["rows"]) == (
        "flchain",
        1,
        "pending_review",
        200,
    )
    assert body["sha256"] == hashlib.sha256(small_flchain_csv(200)).hexdigest()
    # The contract's three figures, plus delta and the ledger owner (issue 11) added beside them.
    assert {k: body["budget"][k] for k in ("epsilon_cap", "epsilon_spent", "epsilon_remaining")} == {
        "epsilon_cap": 1.5,
        "epsilon_spent": 0.0,
        "epsilon_remaining": 1.5,
    }
    assert body["budget"]["ledger_owner"] == body["id"] and body["budget"]["delta_spent"] == "0"
    header = small_flchain_csv(200).decode().splitlines()[0].split(",")
    assert [c["name"] for c in body["columns"]] == header
    for column in body["columns"]:
        assert set(column) == COLUMN_FIELDS
        assert column["classification"] in CLASSIFICATIONS
    age = next(c for c in body["columns"] if c["name"] == "age")
    assert (age["dtype"], age["classification"], age["missing_rate"]) == ("numeric", "quasi_identifier", 0.0)
    assert AuditEvent.objects.get(action="dataset.register", target_id=body["id"]).actor_name == "sam"


def test_scientist_cannot_register_a_dataset(api: Any, alice: Any, storage_dir: Path) -> None:
    response = api(alice).post(URL, upload_form(), format="multipart")

    assert response.status_code == 403
    assert_error_shape(response.json(), "forbidden")
    assert SourceDataset.objects.count() == 0
    assert stored_files(storage_dir) == []


def test_anonymous_cannot_register_a_dataset(api: Any, db: Any) -> None:
    response = api(None).post(URL, upload_form(), format="multipart")

    assert response.status_code == 401
    assert_error_shape(response.json(), "not_authenticated")
    assert SourceDataset.objects.count() == 0


@pytest.mark.parametrize("cap", ["0", "-1", "nan", "inf", "abc", "1e9", "", "1e-999999999"])
def test_invalid_epsilon_cap_is_a_400_with_the_field_named_and_nothing_stored(
    api: Any, sam: Any, storage_dir: Path, cap: str
) -> None:
    response = api(sam).post(URL, upload_form(epsilon_cap=cap), format="multipart")

    assert response.status_code == 400
    assert_error_shape(response.json(), "invalid")
    assert "epsilon_cap" in response.json()["error"]["fields"]
    assert SourceDataset.objects.count() == 0
    assert stored_files(storage_dir) == []


def test_missing_file_is_a_400_naming_the_file_field(api: Any, sam: Any) -> None:
    response = api(sam).post(URL, upload_form(file=None), format="multipart")

    assert response.status_code == 400
    assert_error_shape(response.json(), "invalid")
    assert "file" in response.json()["error"]["fields"]
    assert SourceDataset.objects.count() == 0


def test_unreadable_file_is_a_400_not_a_500(api: Any, sam: Any, storage_dir: Path) -> None:
    garbage = csv_upload(b"\xff\xfe\x00" + bytes(range(256)) * 8)

    response = api(sam).post(URL, upload_form(file=garbage), format="multipart")

    assert response.status_code == 400
    assert_error_shape(response.json(), "binary_file")
    assert stored_files(storage_dir) == []


def test_file_over_the_upload_limit_is_a_400_and_leaves_nothing(
    api: Any, sam: Any, storage_dir: Path, settings: Any
) -> None:
    settings.SYNTHGATE_MAX_UPLOAD_BYTES = 2048

    response = api(sam).post(URL, upload_form(), format="multipart")

    assert response.status_code == 400
    assert_error_shape(response.json(), "file_too_large")
    assert response.json()["error"]["fields"] == {"file": "too_large"}
    assert SourceDataset.objects.count() == 0
    assert stored_files(storage_dir) == []


def test_steward_registers_a_parquet_file_as_the_contract_allows(api: Any, sam: Any) -> None:
    frame = pd.read_csv(io.BytesIO(small_flchain_csv(200)))
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    parquet = SimpleUploadedFile(
        "flchain.parquet", buffer.getvalue(), content_type="application/octet-stream"
    )

    response = api(sam).post(URL, upload_form(file=parquet), format="multipart")

    assert response.status_code == 201, response.content
    assert response.json()["rows"] == 200
    assert [c["name"] for c in response.json()["columns"]] == list(frame.columns)


# --- GET -------------------------------------------------------------------------------------


def test_anonymous_cannot_list_datasets(api: Any, dataset: SourceDataset) -> None:
    response = api(None).get(URL)

    assert response.status_code == 401
    assert_error_shape(response.json(), "not_authenticated")


def test_scientist_lists_registered_datasets(api: Any, alice: Any, dataset: SourceDataset) -> None:
    response = api(alice).get(URL)

    assert response.status_code == 200
    [listed] = response.json()["results"]
    assert listed["id"] == str(dataset.pk)
    # 600 rounded to the nearest 100 is 600; scientists are told the figure is not exact (issue 11).
    assert (listed["rows"], listed["rows_exact"]) == (600, False)


def test_scientist_reads_a_dataset_by_id(api: Any, alice: Any, dataset: SourceDataset) -> None:
    response = api(alice).get(f"{URL}{dataset.pk}/")

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["name"]) == (str(dataset.pk), "flchain")


def test_anonymous_cannot_read_a_dataset(api: Any, dataset: SourceDataset) -> None:
    assert api(None).get(f"{URL}{dataset.pk}/").status_code == 401


def test_retired_dataset_is_hidden_from_scientists_but_not_from_the_steward(
    api: Any, alice: Any, sam: Any, dataset: SourceDataset
) -> None:
    SourceDataset.objects.filter(pk=dataset.pk).update(status=DatasetStatus.RETIRED)

    assert api(alice).get(URL).json()["results"] == []
    assert api(alice).get(f"{URL}{dataset.pk}/").status_code == 404
    assert api(sam).get(f"{URL}{dataset.pk}/").status_code == 200


@pytest.mark.parametrize("dataset_id", ["8d1f0c52-1c3a-4d4e-9a55-0d6f3e8b2a11", "not-a-uuid", "1", "%20"])
def test_unknown_or_malformed_dataset_id_is_a_404(
    api: Any, alice: Any, dataset: SourceDataset, dataset_id: str
) -> None:
    response = api(alice).get(f"{URL}{dataset_id}/")

    assert response.status_code == 404
    assert_error_shape(response.json(), "not_found")


# --- Query count: the same for a narrow and a wide table ---------------------------------------


def _register_wide(steward: Any, name: str, width: int) -> SourceDataset:
    from generation.services import dataset_register

    frame = pd.DataFrame({f"c{i}": [(row * (i + 1)) % 7 for row in range(40)] for i in range(width)})
    return dataset_register(
        actor=steward,
        name=name,
        uploaded_file=csv_upload(frame.to_csv(index=False).encode(), name=f"{name}.csv"),
        epsilon_cap="1",
    )


def _queries(client: Any, url: str) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize("persona", ["sam", "audrey"])
def test_reading_a_dataset_costs_the_same_queries_for_3_or_30_columns(
    api: Any, request: pytest.FixtureRequest, persona: str
) -> None:
    steward = request.getfixturevalue("sam")
    narrow, wide = _register_wide(steward, "narrow", 3), _register_wide(steward, "wide", 30)
    client = api(request.getfixturevalue(persona))

    # Also the token's first use, which is recorded once: the requests measured come after it.
    assert len(client.get(f"{URL}{wide.pk}/").json()["columns"]) == 30
    assert len(_queries(client, f"{URL}{narrow.pk}/")) == len(_queries(client, f"{URL}{wide.pk}/"))


def test_listing_datasets_costs_the_same_queries_for_3_or_30_columns(api: Any, sam: Any) -> None:
    client = api(sam)
    _register_wide(sam, "narrow", 3)
    client.get(URL)  # the token's first use is recorded once; measure the requests after it
    with_narrow = len(_queries(client, URL))
    SourceDataset.objects.all().delete()
    _register_wide(sam, "wide", 30)

    assert [len(d["columns"]) for d in client.get(URL).json()["results"]] == [30]
    assert len(_queries(client, URL)) == with_narrow


def test_listing_datasets_reads_the_columns_of_all_of_them_in_one_query(api: Any, sam: Any) -> None:
    for width in (3, 30, 5):
        _register_wide(sam, f"table{width}", width)

    sql = _queries(api(sam), URL)

    assert len([query for query in sql if '"generation_datasetcolumn"' in query]) == 1
