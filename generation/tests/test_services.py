"""Dataset intake, exact epsilon parsing, and the synthesis-job lifecycle."""

from __future__ import annotations

import hashlib
import io
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from django.conf import settings as django_settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from conftest import SAFE_COLUMNS, csv_upload, small_flchain_csv
from core.errors import PermissionDenied, ValidationFailed
from generation.choices import Classification, ColumnKind, JobState
from generation.models import SourceDataset, SynthesisJob
from generation.services import dataset_register, epsilon_to_micro, job_claim, job_create, job_finalize
from generation.storage import absolute_path
from generation.tests.conftest import stored_files

# --- epsilon_to_micro ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "micro"),
    [
        (0.07, 70_000),
        ("0.07", 70_000),
        (Decimal("0.07"), 70_000),
        (1, 1_000_000),
        ("0.0000001", 1),
        ("0.0000011", 2),
        ("0.1234561", 123_457),
        ("100", 100_000_000),
        (" 2.5 ", 2_500_000),
    ],
)
def test_epsilon_to_micro_is_exact_and_rounds_up_to_whole_micro_epsilon(value: Any, micro: int) -> None:
    assert epsilon_to_micro(value) == micro


@pytest.mark.parametrize(
    "value",
    [
        0,
        "0",
        "0.0",
        -1,
        "-0.5",
        math.nan,
        "nan",
        "NaN",
        math.inf,
        "inf",
        "-inf",
        "abc",
        "",
        True,
        False,
        None,
        "100.000001",
        101,
        "1e9",
        [1],
    ],
)
def test_epsilon_to_micro_rejects_values_that_are_not_a_positive_finite_number_up_to_100(value: Any) -> None:
    with pytest.raises(ValidationFailed) as raised:
        epsilon_to_micro(value, field="epsilon_cap")

    assert "epsilon_cap" in raised.value.fields


def test_a_tiny_positive_epsilon_is_charged_at_least_one_micro_epsilon() -> None:
    # Rounding up means a positive epsilon never costs zero; 0 would also break the cap > 0 constraint.
    assert epsilon_to_micro("1e-999999999") == 1


def test_epsilon_with_more_digits_than_the_decimal_context_still_rounds_up() -> None:
    # 1 + 1e-31 is more than 1.000000 epsilon, so it must cost 1_000_001 micro, never 1_000_000.
    assert epsilon_to_micro("1.0000000000000000000000000000001") == 1_000_001


# --- dataset_register ------------------------------------------------------------------------


def test_registered_file_is_stored_under_the_storage_dir_and_not_under_static_root(
    dataset: SourceDataset, storage_dir: Path
) -> None:
    path = absolute_path(dataset.storage_path)

    assert path.is_file()
    assert path.is_relative_to(storage_dir.resolve())
    assert not path.is_relative_to(Path(django_settings.STATIC_ROOT).resolve())
    # At rest the training split is ciphertext: not one byte of the CSV appears in it.
    assert path.read_bytes().startswith(b"SGENC1\n")
    assert b"age,chapter" not in path.read_bytes()
    assert dataset.sha256 == hashlib.sha256(small_flchain_csv()).hexdigest()
    assert path.stat().st_mode & 0o777 == 0o600


def test_registration_records_rows_cap_and_an_audit_event(dataset: SourceDataset) -> None:
    assert (dataset.name, dataset.version, dataset.rows) == ("flchain", 1, 600)
    assert (dataset.epsilon_cap_micro, dataset.epsilon_spent_micro) == (1_000_000, 0)
    event = AuditEvent.objects.get(action="dataset.register", target_id=str(dataset.pk))
    assert (event.actor_name, event.outcome) == ("sam", Outcome.SUCCESS)
    assert event.details["rows"] == 600


def test_flchain_columns_are_profiled_with_kinds_that_fit_their_values(dataset: SourceDataset) -> None:
    kinds = dict(dataset.columns.values_list("name", "kind"))

    assert kinds["age"] == ColumnKind.NUMERIC
    assert kinds["sex"] == ColumnKind.CATEGORICAL
    assert kinds["mgus"] == ColumnKind.BOOLEAN
    assert kinds["death"] == ColumnKind.BOOLEAN
    assert kinds["chapter"] == ColumnKind.CATEGORICAL


def test_profile_missing_rate_and_distinct_match_pandas_on_the_same_file(dataset: SourceDataset) -> None:
    frame = pd.read_csv(io.BytesIO(small_flchain_csv()))
    profiled = {c.name: (c.missing_rate, c.distinct) for c in dataset.columns.all()}

    assert list(dataset.columns.order_by("position").values_list("name", flat=True)) == list(frame.columns)
    assert profiled["chapter"][0] > 0  # the slice has missing causes of death: the check below has teeth
    for name in frame.columns:
        missing_rate, distinct = profiled[name]
        assert missing_rate == pytest.approx(frame[name].isna().mean(), abs=1e-6), name
        assert distinct == frame[name].nunique(dropna=True), name


def test_uploading_a_registered_name_again_creates_version_2(dataset: SourceDataset, sam: Any) -> None:
    again = dataset_register(
        actor=sam, name="flchain", uploaded_file=csv_upload(small_flchain_csv(100)), epsilon_cap="2"
    )

    assert again.version == 2
    assert again.rows == 100
    assert sorted(SourceDataset.objects.filter(name="flchain").values_list("version", flat=True)) == [1, 2]
    dataset.refresh_from_db()
    assert (dataset.version, dataset.rows) == (1, 600)


def test_scientist_cannot_register_a_dataset_and_the_refusal_is_audited(
    alice: Any, storage_dir: Path
) -> None:
    with pytest.raises(PermissionDenied):
        dataset_register(
            actor=alice, name="flchain", uploaded_file=csv_upload(small_flchain_csv(50)), epsilon_cap="1"
        )

    assert SourceDataset.objects.count() == 0
    assert stored_files(storage_dir) == []
    event = AuditEvent.objects.get(action="dataset.register")
    assert (event.actor_name, event.outcome) == ("alice", Outcome.DENIED)


GARBAGE = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 16


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "empty_file"),
        (b"age,sex,death\n", "header_only"),
        (GARBAGE, "binary_file"),
    ],
    ids=["empty", "header_only", "binary_garbage"],
)
def test_rejected_upload_leaves_no_file_and_no_dataset(
    sam: Any, storage_dir: Path, content: bytes, code: str
) -> None:
    with pytest.raises(ValidationFailed) as raised:
        dataset_register(actor=sam, name="broken", uploaded_file=csv_upload(content), epsilon_cap="1")

    assert raised.value.code == code
    assert stored_files(storage_dir) == []
    assert SourceDataset.objects.count() == 0


def test_upload_over_the_size_limit_is_refused_and_leaves_nothing(
    sam: Any, storage_dir: Path, settings: Any
) -> None:
    settings.SYNTHGATE_MAX_UPLOAD_BYTES = 1024

    with pytest.raises(ValidationFailed) as raised:
        dataset_register(
            actor=sam, name="big", uploaded_file=csv_upload(small_flchain_csv(200)), epsilon_cap="1"
        )

    assert raised.value.code == "file_too_large"
    assert stored_files(storage_dir) == []
    assert SourceDataset.objects.count() == 0


def test_identifier_columns_are_suggested_as_direct_identifiers(sam: Any) -> None:
    diagnoses = ["I21", "E11", "C50", "J45"]
    lines = ["ssn,email,patient_name,mrn,age,sex,diagnosis"]
    for i in range(40):
        lines.append(
            f"{100 + i:03d}-{10 + i % 80:02d}-{1000 + i * 7:04d},p{i}@example.org,Patient Number{i},"
            f"MRN{500000 + i},{30 + i % 50},{'FM'[i % 2]},{diagnoses[i % 4]}"
        )
    registered = dataset_register(
        actor=sam, name="identifiers", uploaded_file=csv_upload("\n".join(lines) + "\n"), epsilon_cap="1"
    )

    classification = dict(registered.columns.values_list("name", "classification"))
    assert classification == {
        "ssn": Classification.DIRECT_IDENTIFIER,
        "email": Classification.DIRECT_IDENTIFIER,
        "patient_name": Classification.DIRECT_IDENTIFIER,
        "mrn": Classification.DIRECT_IDENTIFIER,
        "age": Classification.QUASI_IDENTIFIER,
        "sex": Classification.QUASI_IDENTIFIER,
        "diagnosis": Classification.SENSITIVE,
    }


# --- jobs ------------------------------------------------------------------------------------


@pytest.fixture
def job(dataset: SourceDataset, sam: Any) -> SynthesisJob:
    return job_create(
        dataset=dataset,
        columns=SAFE_COLUMNS,
        synthesizer="gaussian_copula",
        rows=50,
        epsilon_micro=None,
        actor=sam,
    )


def test_a_queued_job_is_claimed_once_and_a_second_claim_gets_nothing(job: SynthesisJob) -> None:
    claimed = job_claim(job_id=job.pk)

    assert claimed is not None
    assert (claimed.state, claimed.attempts) == (JobState.RUNNING, 1)
    assert claimed.lease_expires_at > timezone.now()
    assert job_claim(job_id=job.pk) is None
    assert SynthesisJob.objects.get(pk=job.pk).attempts == 1


def test_a_job_whose_lease_expired_is_claimed_again_by_a_new_worker(job: SynthesisJob) -> None:
    first = job_claim(job_id=job.pk)
    assert first is not None
    SynthesisJob.objects.filter(pk=job.pk).update(
        lease_expires_at=timezone.now() - timezone.timedelta(seconds=1)
    )

    second = job_claim(job_id=job.pk)

    assert second is not None
    assert second.attempts == 2
    assert second.worker != first.worker


def test_job_finalize_wins_once_and_a_final_job_cannot_be_claimed(job: SynthesisJob) -> None:
    claimed = job_claim(job_id=job.pk)
    assert claimed is not None

    assert job_finalize(job=claimed, state=JobState.FAILED, error_code="ValueError") is True
    assert job_finalize(job=claimed, state=JobState.SUCCEEDED) is False

    job.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.FAILED, "ValueError")
    assert (
        AuditEvent.objects.filter(target_id=str(job.pk), action__in=["job.failed", "job.succeeded"]).count()
        == 1
    )
    assert job_claim(job_id=job.pk) is None


def test_database_refuses_spending_more_epsilon_than_the_cap(dataset: SourceDataset) -> None:
    same = SourceDataset.objects.filter(pk=dataset.pk)

    with pytest.raises(IntegrityError), transaction.atomic():
        same.update(epsilon_spent_micro=F("epsilon_cap_micro") + 1)

    dataset.refresh_from_db()
    assert dataset.epsilon_spent_micro == 0
    assert same.update(epsilon_spent_micro=F("epsilon_cap_micro")) == 1  # spending it all is allowed
