"""Intake against a hostile corpus built here: every bad file is a 400 naming the problem, with
nothing stored and the refusal audited (reason code only); good variants are accepted."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from audit.models import AuditEvent
from conftest import csv_upload, data_file, small_flchain_csv
from generation.models import SourceDataset

URL = "/api/v1/datasets/"
GOOD = "age,sex,score\n" + "".join(f"{40 + i % 30},{'FM'[i % 2]},{i * 1.5}\n" for i in range(40))


def _zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", text)
    return buffer.getvalue()


HOSTILE = {
    "empty": (b"", "empty_file", ""),
    "header_only": (b"age,sex,score\n", "header_only", ""),
    "duplicate_names": (b"age,sex,age\n1,F,2\n", "duplicate_column_name", "Columns 1 and 3"),
    "blank_name": (b"age,,score\n1,F,2\n", "blank_column_name", "Column 2"),
    "r_row_names": (b'"","age","sex"\n"1",61,"F"\n', "blank_column_name", "row.names = FALSE"),
    "ragged_row": (b"age,sex,score\n1,F,2\n3,M\n", "ragged_row", "Line 3"),
    "binary": (bytes(range(256)) * 10, "binary_file", ""),
    "gzip": (gzip.compress(GOOD.encode()), "compressed_file", "gzip"),
    "zip": (_zip(GOOD), "compressed_file", "zip"),
    "json": (json.dumps([{"age": 1}, {"age": 2}]).encode(), "not_tabular", ""),
    "html": (b"<html><body><table><tr><td>1</td></tr></table></body></html>", "not_tabular", ""),
    "empty_column": (b"age,notes,score\n1,,2\n3,,4\n", "empty_column", "`notes`"),
    "unclosed_quote": (b'age,sex\n1,"F\n2,M\n', "malformed_csv", ""),
}


@pytest.fixture
def post(api: Any, sam: Any) -> Any:
    def send(content: bytes, name: str = "upload.csv", **extra: str) -> Any:
        form = {"name": "hostile", "epsilon_cap": "1", "file": csv_upload(content, name), **extra}
        return api(sam).post(URL, form, format="multipart")

    return send


def _stored(storage_dir: Path) -> list[Path]:
    return [p for p in storage_dir.rglob("*") if p.is_file()]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_uploads_are_refused_cleanly(post: Any, storage_dir: Path, case: str) -> None:
    content, code, where = HOSTILE[case]
    response = post(content)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert where in error["message"]
    assert SourceDataset.objects.count() == 0
    assert _stored(storage_dir) == []
    refusal = AuditEvent.objects.get(action="dataset.register", outcome="denied")
    assert refusal.details == {"reason": code}


def test_too_many_columns_is_refused(post: Any, storage_dir: Path, settings: Any) -> None:
    settings.SYNTHGATE_MAX_COLUMNS = 5
    header = ",".join(f"c{i}" for i in range(6))
    response = post(f"{header}\n{','.join('1' * 6)}\n".encode())
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_columns"
    assert _stored(storage_dir) == []


def test_the_size_cap_stops_the_upload_while_it_streams(post: Any, storage_dir: Path, settings: Any) -> None:
    settings.SYNTHGATE_MAX_UPLOAD_BYTES = 4096
    response = post(small_flchain_csv(400))
    assert response.status_code == 400 and response.json()["error"]["code"] == "file_too_large"
    assert SourceDataset.objects.count() == 0 and _stored(storage_dir) == []


def test_a_value_in_a_bad_row_never_appears_in_the_error(post: Any) -> None:
    response = post(b"age,sex,score\n1,F,2\n3,CANARY-VALUE-91\n")
    assert response.status_code == 400
    assert b"CANARY-VALUE-91" not in response.content
    assert not AuditEvent.objects.filter(details__icontains="CANARY").exists()


@pytest.mark.parametrize(
    ("content", "extra", "encoding", "delimiter"),
    [
        (GOOD.encode("utf-8"), {}, "utf-8", ","),
        (b"\xef\xbb\xbf" + GOOD.encode("utf-8"), {}, "utf-8-sig", ","),
        (GOOD.replace("F,", "Fé,").encode("latin-1"), {}, "latin-1", ","),
        (GOOD.replace(",", ";").encode(), {}, "utf-8", ";"),
        (GOOD.replace(",", "\t").encode(), {}, "utf-8", "\t"),
        (GOOD.replace(",", "|").encode(), {"delimiter": "|"}, "utf-8", "|"),
    ],
    ids=["utf8", "utf8-bom", "latin1", "semicolon", "tab", "stated-pipe"],
)
def test_encodings_and_delimiters_are_detected_or_taken_as_stated(
    post: Any, content: bytes, extra: dict[str, str], encoding: str, delimiter: str
) -> None:
    response = post(content, **extra)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["encoding"], body["delimiter"], body["rows"]) == (encoding, delimiter, 40)
    assert [c["name"] for c in body["columns"]] == ["age", "sex", "score"]


def test_parquet_is_accepted(post: Any) -> None:
    buffer = io.BytesIO()
    pd.read_csv(io.StringIO(GOOD)).to_parquet(buffer, index=False)
    response = post(buffer.getvalue(), name="table.parquet")
    assert response.status_code == 201, response.content
    assert response.json()["file_format"] == "parquet"


def test_holdout_is_split_off_at_registration(post: Any) -> None:
    body = post(small_flchain_csv(500)).json()
    assert body["holdout"] == {"share": 0.2, "rows": 100}
    assert body["training_rows"] == 400


# --- Classification suggestions for clinical tables (issue 12, item 5) ---------------------------


def _suggested(frame: pd.DataFrame) -> dict[str, tuple[str, str]]:
    from generation.intake import suggest_classifications
    from generation.profiling import profile_frame

    return suggest_classifications(profile_frame(frame), frame)


def test_a_whole_number_unique_per_row_is_suggested_as_a_direct_identifier_whatever_its_name() -> None:
    frame = pd.read_csv(data_file("actg175.csv"))  # `pidnum`: the trial's patient number

    suggested = _suggested(frame)

    assert suggested["pidnum"][0] == "direct_identifier"
    assert "patient or record number" in suggested["pidnum"][1]
    # Measurements are not identifiers, even with many distinct values.
    assert suggested["wtkg"][0] == "other" and suggested["cd80"][0] == "other"


def test_a_unique_measurement_in_a_tiny_table_or_with_fractions_is_not_an_identifier() -> None:
    tiny = pd.DataFrame({"score": [3, 9, 14, 27, 35], "weight": [60.5, 71.25, 80.0, 92.75, 55.5]})
    fractions = pd.DataFrame({"weight": [50 + i * 0.37 for i in range(200)]})

    assert _suggested(tiny)["score"][0] == "other"
    assert _suggested(fractions)["weight"][0] == "other"


def test_one_name_rule_for_outcomes_and_a_unique_number_named_like_one_is_still_a_key() -> None:
    from generation.policies import suggest_classification

    # The name rule is one list: policies alone now knows the names the intake used to add.
    for name in ("hospdead", "pregnant", "dx2", "icd10", "mgus", "status"):
        assert suggest_classification(name=name, kind="numeric")[0] == "sensitive", name
    assert suggest_classification(name="diagonal_mm", kind="numeric")[0] == "other"
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"event_no": rng.permutation(500) + 1000, "event": rng.integers(0, 2, size=500)})

    suggested = _suggested(frame)

    assert suggested["event_no"][0] == "direct_identifier"  # unique per row: a key, not an outcome
    assert suggested["event"][0] == "sensitive"


def test_outcomes_and_diagnosis_like_columns_are_suggested_as_sensitive() -> None:
    actg = _suggested(pd.read_csv(data_file("actg175.csv")))
    pbc = _suggested(pd.read_csv(data_file("pbc.csv")))
    rng = np.random.default_rng(1)
    icd = _suggested(
        pd.DataFrame(
            {
                "code": rng.choice(["I21.4", "E11.9", "J44.1", "N18.3", "C50.9"], size=100),
                "ward": rng.choice(["north", "south"], size=100),
                "mortality_30d": rng.integers(0, 2, size=100),
            }
        )
    )

    assert actg["cens"][0] == "sensitive"  # the study's outcome
    assert actg["symptom"][0] == "sensitive" and actg["drugs"][0] == "sensitive"
    assert pbc["status"][0] == "sensitive" and pbc["stage"][0] == "sensitive"
    assert icd["code"] == ("sensitive", "Values look like diagnosis (ICD) codes.")
    assert icd["mortality_30d"][0] == "sensitive"
    assert icd["ward"][0] == "other"
    # Names as exports abbreviate them (a public ICU table's): outcomes and diagnoses run together.
    icu = _suggested(
        pd.DataFrame(
            {
                name: rng.integers(0, 2, size=100)
                for name in (
                    "hospdead",
                    "dzgroup",
                    "dzclass",
                    "dementia",
                    "dnr",
                    "dxcode",
                    "sod",
                    "hday",
                    "diagonal_mm",
                )
            }
        )
    )
    sensitive = {name for name, (classification, _) in icu.items() if classification == "sensitive"}
    assert sensitive == {"hospdead", "dzgroup", "dzclass", "dementia", "dnr", "dxcode"}, icu
    # Any date column is a quasi-identifier, whatever its name.
    dates = _suggested(
        pd.DataFrame(
            {
                "admit": pd.date_range("2020-01-01", periods=100, freq="3D").strftime("%Y-%m-%d"),
                "ward": rng.choice(["north", "south"], size=100),
            }
        )
    )
    assert dates["admit"][0] == "quasi_identifier" and dates["ward"][0] == "other"
    # The name rules keep precedence: a demographic stays a quasi-identifier.
    assert actg["age"][0] == "quasi_identifier"


# --- Dates written day-first or month-first -------------------------------------------------------


def test_day_first_and_month_first_dates_are_read_only_when_their_values_settle_the_order() -> None:
    from generation.intake import read_local_dates

    frame = pd.DataFrame(
        {
            "discharge": ["12/06/2021 02:56", "25/12/2020 13:05", None, "01/02/2022 00:00"],
            "visit": ["06-25-2021", "12-01-2020", "01-13-2022", "02-02-2022"],
            "ambiguous": ["01/02/2021", "02/03/2021", "12/11/2020", "03/04/2021"],
            "mixed": ["25/12/2020", "2020-12-25", "01/02/2021", "13/01/2021"],
            "impossible": ["31/02/2021", "13/01/2021", "01/01/2021", "02/01/2021"],
            "code": ["A1", "B2", "C3", "D4"],
        }
    )
    original = frame.copy()

    read = read_local_dates(frame)

    assert read == {"discharge": "day/month/year, time", "visit": "month/day/year"}
    assert frame["discharge"].tolist()[:2] == ["2021-06-12 02:56:00", "2020-12-25 13:05:00"]
    assert pd.isna(frame["discharge"][2]) and frame["discharge"][3] == "2022-02-01 00:00:00"
    assert frame["visit"].tolist() == ["2021-06-25", "2020-12-01", "2022-01-13", "2022-02-02"]
    for untouched in ("ambiguous", "mixed", "impossible", "code"):
        assert frame[untouched].equals(original[untouched]), untouched


def test_an_uploaded_day_first_column_is_a_date_quasi_identifier_and_the_steward_is_told(
    post: Any, client: Any, sam: Any
) -> None:
    rows = [f"{40 + i % 30},{(i % 28) + 1:02d}/{(i % 12) + 1:02d}/2021 {i % 24:02d}:15" for i in range(40)]
    response = post(("age,discharge_time\n" + "\n".join(rows) + "\n").encode())
    assert response.status_code == 201, response.content
    dataset = SourceDataset.objects.get(pk=response.json()["id"])
    column = dataset.columns.get(name="discharge_time")

    # Before: unique text, so a direct identifier left out of every request.
    assert (column.kind, column.classification) == ("datetime", "quasi_identifier")
    assert column.stats["read_as"] == "day/month/year, time"
    event = AuditEvent.objects.filter(action="dataset.register").latest("seq")
    assert event.details["dates_read"] == {"discharge_time": "day/month/year, time"}
    client.force_login(sam)
    for url in (f"/datasets/{dataset.pk}/", f"/datasets/{dataset.pk}/review/"):
        page = client.get(url).content.decode()
        assert 'data-testid="read-as-dates"' in page and "day/month/year" in page, url
