"""validation_run: the gate's verdict on a real approved job, recorded in a report and the audit log."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest

from approvals.services import request_decide
from audit.models import AuditEvent, Outcome
from conftest import SAFE_COLUMNS, small_flchain_csv
from generation.models import SynthesisJob
from validation.models import ValidationReport
from validation.services import validation_run

NUMERIC = ["age", "kappa", "lambda", "creatinine", "futime"]


@pytest.fixture
def job(submitted_request: Any, olivia: Any) -> SynthesisJob:
    request_decide(actor=olivia, request_id=submitted_request.pk, decision="approve")
    submitted_request.refresh_from_db()
    assert submitted_request.job is not None
    return submitted_request.job


@pytest.fixture
def training() -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(small_flchain_csv()))[SAFE_COLUMNS]


def lookalike(training: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """Rows drawn from the training table with every number nudged: same shapes, no exact copies."""
    frame = training.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    frame[NUMERIC] = frame[NUMERIC] + 0.0001
    return frame


def checks_of(report: ValidationReport) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report.checks}


def test_lookalike_rows_without_copies_pass_the_gate(job: SynthesisJob, training: pd.DataFrame) -> None:
    report = validation_run(job=job, training=training, synthetic=lookalike(training, 300, seed=1))

    assert report.passed is True
    assert checks_of(report)["exact_copy_rate"]["value"] == 0.0
    assert checks_of(report)["column_shape_similarity"]["value"] >= 0.9
    assert report.metrics["errors"] == {}


def test_synthetic_rows_copying_20_percent_of_training_fail_the_exact_copy_check_and_the_gate(
    job: SynthesisJob, training: pd.DataFrame
) -> None:
    copies = training.sample(n=60, random_state=2)
    synthetic = pd.concat([lookalike(training, 240, seed=3), copies], ignore_index=True)

    report = validation_run(job=job, training=training, synthetic=synthetic)

    check = checks_of(report)["exact_copy_rate"]
    assert (check["value"], check["passed"], check["direction"]) == (0.2, False, "max")
    assert report.metrics["exact_copies"] == 60
    assert report.passed is False


def test_report_and_audit_event_are_written_with_aggregates_only(
    job: SynthesisJob, training: pd.DataFrame
) -> None:
    report = validation_run(job=job, training=training, synthetic=training.head(100))

    stored = ValidationReport.objects.get(job=job)
    assert (stored.pk, stored.passed) == (report.pk, False)
    assert stored.metrics["rows_synthetic"] == 100
    assert stored.metrics["rows_training"] == 600
    event = AuditEvent.objects.get(action="validation.complete", target_id=str(job.pk))
    assert (event.actor_name, event.outcome) == ("system", Outcome.FAILURE)
    assert event.details == {"passed": False, "checks": {c["name"]: c["passed"] for c in stored.checks}}
    assert event.details["checks"]["exact_copy_rate"] is False


def test_running_validation_again_replaces_the_report(job: SynthesisJob, training: pd.DataFrame) -> None:
    validation_run(job=job, training=training, synthetic=training.head(100))
    validation_run(job=job, training=training, synthetic=lookalike(training, 300, seed=4))

    assert ValidationReport.objects.get(job=job).passed is True
    assert AuditEvent.objects.filter(action="validation.complete", target_id=str(job.pk)).count() == 2


def test_training_frame_missing_a_column_fails_closed_and_records_the_error_type_only(
    job: SynthesisJob, training: pd.DataFrame
) -> None:
    report = validation_run(
        job=job, training=training.drop(columns=["kappa"]), synthetic=lookalike(training, 300, seed=5)
    )

    assert report.passed is False
    metric_checks = [c for c in report.checks if c["name"] != "requested_columns_present"]
    assert all(c["value"] is None and c["passed"] is False for c in metric_checks)
    assert report.metrics["errors"] == {"column_shapes": "KeyError", "exact_copies": "KeyError"}


def test_synthetic_frame_missing_a_requested_column_fails_the_gate_closed(
    job: SynthesisJob, training: pd.DataFrame
) -> None:
    # The job promised SAFE_COLUMNS; a release without `kappa` must not pass as if nothing were missing.
    synthetic = lookalike(training, 300, seed=6).drop(columns=["kappa"])

    report = validation_run(job=job, training=training, synthetic=synthetic)

    assert report.passed is False
    present = next(c for c in report.checks if c["name"] == "requested_columns_present")
    assert present["passed"] is False and present["value"] == pytest.approx(6 / 7, abs=1e-6)
    event = AuditEvent.objects.get(action="validation.complete", target_id=str(job.pk))
    assert event.outcome == Outcome.FAILURE


def test_metric_errors_never_carry_data_values(job: SynthesisJob, training: pd.DataFrame) -> None:
    synthetic = lookalike(training, 50, seed=7)
    synthetic["age"] = synthetic["age"].astype(object)
    synthetic.loc[0, "age"] = np.array(["secret-age-value"])  # an unhashable cell breaks the metrics

    report = validation_run(job=job, training=training, synthetic=synthetic)

    assert report.passed is False
    assert report.metrics["errors"]
    assert all(v.isidentifier() for v in report.metrics["errors"].values())
    assert "secret-age-value" not in str(report.metrics)
