"""Formula injection (OWASP "CSV Injection"): a cell a spreadsheet would evaluate never reaches a
downloader as a formula (issue 13, item 7).

The attack: a scientist uploads a "bring your own" synthetic file whose text cells are formulas;
it passes the gate and is published; a teammate downloads it and opens it in Excel.
"""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

import pandas as pd
import pytest

from approvals.models import GenerationRequest
from audit.models import AuditEvent
from catalog.models import Release
from catalog.pipeline import pipeline_run
from conftest import SAFE_COLUMNS, csv_upload, small_flchain_csv
from generation.csv_safety import frame_to_safe_csv, is_formula_like, neutralise_cell
from generation.models import SynthesisJob
from generation.storage import read_encrypted_parquet
from validation.tests.planted import copula_release

HYPERLINK = '=HYPERLINK("http://x","y")'
SUM = "@SUM(A1)"


@pytest.fixture
def dataset(sam: Any) -> Any:
    """flchain whose `sex` categories, as the steward declared them, include two formula-like
    labels (copied from an export, or planted): the upload's kind check accepts those cells, so
    only the download's neutralisation stands between them and a teammate's spreadsheet."""
    from generation.public_declarations import FLCHAIN
    from generation.services import dataset_register, dataset_sign_off, dataset_update_columns

    registered = dataset_register(
        actor=sam, name="flchain", uploaded_file=csv_upload(small_flchain_csv()), epsilon_cap="1.0"
    )
    changes = [item for item in FLCHAIN if item["name"] != "sex"]
    changes.append({"name": "sex", "categories": ["F", "M", HYPERLINK, SUM]})
    dataset_update_columns(actor=sam, dataset_id=registered.pk, changes=changes)
    return dataset_sign_off(actor=sam, dataset_id=registered.pk)


def _hostile_upload(request: GenerationRequest) -> Any:
    training = read_encrypted_parquet(request.dataset.storage_path)[SAFE_COLUMNS]
    frame = copula_release(training, 300, seed=3)
    frame["sex"] = frame["sex"].astype(object)
    frame.loc[0, "sex"] = HYPERLINK
    frame.loc[1, "sex"] = SUM
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return csv_upload(buffer.getvalue(), name="mine.csv")


def test_formula_cells_in_an_uploaded_file_reach_a_teammate_as_text(
    upload_request: GenerationRequest, alice: Any, bob: Any, api: Any
) -> None:
    uploaded = api(alice).post(
        f"/api/v1/requests/{upload_request.pk}/upload/",
        {"file": _hostile_upload(upload_request)},
        format="multipart",
    )
    assert uploaded.status_code == 202, uploaded.content
    job = SynthesisJob.objects.get(pk=GenerationRequest.objects.get(pk=upload_request.pk).job_id)
    assert pipeline_run(job_id=job.pk) == "published"
    release = Release.objects.get(request=upload_request)
    # The uploaded file is not kept once published: the release serves the (neutralised) output.
    assert SynthesisJob.objects.get(pk=job.pk).upload_path == ""
    assert AuditEvent.objects.filter(action="job.upload_delete", target_id=str(job.pk)).exists()

    response = api(bob).get(f"/api/v1/releases/{release.pk}/download/")
    body = b"".join(response.streaming_content)

    rows = list(csv.DictReader(io.StringIO(body.decode())))
    sexes = [row["sex"] for row in rows]
    assert "'" + HYPERLINK in sexes and "'" + SUM in sexes
    assert not [value for value in sexes if value.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert {row["sex"] for row in rows[2:]} <= {"F", "M", ""}  # ordinary cells untouched
    assert hashlib.sha256(body).hexdigest() == release.sha256  # the receipt still verifies


def test_the_catalog_page_download_is_neutralised_too(
    upload_request: GenerationRequest, alice: Any, bob: Any, api: Any, client: Any
) -> None:
    api(alice).post(
        f"/api/v1/requests/{upload_request.pk}/upload/",
        {"file": _hostile_upload(upload_request)},
        format="multipart",
    )
    job_id = GenerationRequest.objects.get(pk=upload_request.pk).job_id
    assert pipeline_run(job_id=job_id) == "published"
    release = Release.objects.get(request=upload_request)
    client.force_login(bob)

    body = b"".join(client.get(f"/catalog/{release.pk}/download/").streaming_content).decode()

    assert f"'{HYPERLINK}".replace('"', '""') in body and f",'{SUM}," in body
    assert f",{SUM}," not in body and f'"{HYPERLINK}' not in body


@pytest.mark.parametrize(
    "payload", ["=1+1", "+1-1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "=cmd|' /C calc'!A0"]
)
def test_every_formula_trigger_in_a_text_cell_is_prefixed_with_a_quote(payload: str) -> None:
    assert is_formula_like(payload)
    assert neutralise_cell(payload) == "'" + payload


@pytest.mark.parametrize("plain", ["-3.5", "+7", "-1e-5", "-inf", "NaN", "F", "", "'=already", "a=b"])
def test_numbers_and_ordinary_text_are_left_alone(plain: str) -> None:
    assert neutralise_cell(plain) == plain


def test_numeric_columns_keep_their_negative_values_and_text_columns_are_neutralised() -> None:
    frame = pd.DataFrame(
        {
            "delta": [-5, 3],
            "ratio": [-0.25, 1.5],
            "note": ["-2+3", "-4"],
            "when": pd.to_datetime(["2020-01-01", None]),
            "=evil": ["x", "y"],
        }
    )

    text = frame_to_safe_csv(frame).decode()

    assert text.splitlines() == ["delta,ratio,note,when,'=evil", "-5,-0.25,'-2+3,2020-01-01,x", "3,1.5,-4,,y"]
