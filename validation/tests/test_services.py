"""validation_run: the gate's verdict on a real approved job, recorded in a report and the audit log."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from approvals.services import request_decide, request_submit
from audit.models import AuditEvent, Outcome
from conftest import SAFE_COLUMNS
from generation.models import SynthesisJob
from generation.services import dataset_sign_off, dataset_update_columns
from generation.storage import read_encrypted_parquet
from generation.synthesizers import ColumnSpec
from generation.synthesizers.sdv_backend import GaussianCopulaSynthesizer
from validation.metrics.tstr import choose_outcome
from validation.models import ValidationReport
from validation.services import (
    claimed_epsilon,
    job_column_infos,
    validation_run,
)
from validation.tests.conftest import SAFE_INFOS
from validation.tests.planted import perturbed_copy, smooth_marginals


@pytest.fixture
def job(submitted_request: Any, olivia: Any) -> SynthesisJob:
    request_decide(actor=olivia, request_id=submitted_request.pk, decision="approve")
    submitted_request.refresh_from_db()
    assert submitted_request.job is not None
    return submitted_request.job


@pytest.fixture
def training(job: SynthesisJob) -> pd.DataFrame:
    """The job's own training split, as the worker reads it (480 of the dataset's 600 rows)."""
    return read_encrypted_parquet(job.dataset.storage_path)[SAFE_COLUMNS]


@pytest.fixture
def holdout(job: SynthesisJob) -> pd.DataFrame:
    """The dataset's locked holdout (120 rows, a random split fixed at registration)."""
    return read_encrypted_parquet(job.dataset.holdout_path)


@pytest.fixture
def copula_release(training: pd.DataFrame) -> pd.DataFrame:
    specs = [ColumnSpec(name=i.name, kind=i.kind) for i in SAFE_INFOS]
    return GaussianCopulaSynthesizer().fit_sample(
        training, columns=specs, rows=600, seed=7, progress=lambda f, s: None
    )


def checks_of(report: ValidationReport) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report.checks}


def test_the_job_s_signed_off_metadata_gives_kinds_classifications_and_bounds(job: SynthesisJob) -> None:
    infos = {i.name: i for i in job_column_infos(job)}

    assert list(infos) == SAFE_COLUMNS
    assert (infos["age"].classification, infos["sex"].classification) == (
        "quasi_identifier",
        "quasi_identifier",
    )
    assert infos["death"].classification == "sensitive"
    assert infos["kappa"].lower is not None and infos["kappa"].upper is not None


def test_without_pinned_metadata_the_dataset_columns_are_used(job: SynthesisJob) -> None:
    SynthesisJob.objects.filter(pk=job.pk).update(metadata=[])
    job.refresh_from_db()

    assert [i.name for i in job_column_infos(job)] == SAFE_COLUMNS
    assert {i.name: i.classification for i in job_column_infos(job)}["death"] == "sensitive"


def test_a_declared_outcome_survives_sign_off_into_the_job_and_is_the_one_tstr_predicts(
    dataset: Any, sam: Any, alice: Any, olivia: Any, make_request: Any
) -> None:
    dataset_update_columns(actor=sam, dataset_id=dataset.pk, changes=[{"name": "death", "outcome": True}])
    dataset_sign_off(actor=sam, dataset_id=dataset.pk)
    # `mgus` ahead of `death`: without the declaration the convention would pick it.
    columns = ["age", "sex", "mgus", "kappa", "death"]
    submitted = request_submit(actor=alice, request_id=make_request(columns=columns).pk)
    request_decide(actor=olivia, request_id=submitted.pk, decision="approve")
    submitted.refresh_from_db()
    job = submitted.job
    training = read_encrypted_parquet(job.dataset.storage_path)[columns]

    assert {item["name"]: item["outcome"] for item in job.metadata} == {
        "age": False,
        "sex": False,
        "mgus": False,
        "kappa": False,
        "death": True,
    }
    assert [i.name for i in job_column_infos(job) if i.outcome] == ["death"]
    assert choose_outcome(training, job_column_infos(job)) == "death"


def test_without_a_declared_outcome_the_job_has_none(job: SynthesisJob) -> None:
    assert not any(i.outcome for i in job_column_infos(job))


def test_a_gaussian_copula_release_passes_every_check(
    job: SynthesisJob, training: pd.DataFrame, holdout: pd.DataFrame, copula_release: pd.DataFrame
) -> None:
    report = validation_run(job=job, training=training, synthetic=copula_release, holdout=holdout)

    assert report.metrics["errors"] == {}
    assert [c["name"] for c in report.checks if not c["passed"]] == []
    assert report.passed is True
    assert {"membership_inference_auc", "replicated_uniques_rate", "exact_copy_rate"} <= set(
        checks_of(report)
    )
    # 120 holdout rows: anonymeter's risks are measured and shown as not run, with the reason in
    # words; TSTR is judged on a bootstrap interval instead of vanishing.
    assert report.metrics["anonymeter"]["gated"] is False
    for name in ("singling_out_risk", "linkability_risk", "inference_risk"):
        assert checks_of(report)[name]["status"] == "not_run", name
        assert "at least 500" in checks_of(report)[name]["reason"]
    assert (report.metrics["tstr"]["status"], report.metrics["tstr"]["interval"]) == ("ok", "bootstrap")
    assert checks_of(report)["tstr_auc_ratio"]["status"] == "passed"
    assert {"tstr_too_few_test_events", "anonymeter_too_few_holdout_rows"} <= set(report.metrics["warnings"])


def test_a_perturbed_copy_fails_the_gate_on_membership_inference(
    job: SynthesisJob, training: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    report = validation_run(
        job=job, training=training, synthetic=perturbed_copy(training, 300, 1), holdout=holdout
    )

    assert checks_of(report)["exact_copy_rate"]["value"] == 0.0
    assert checks_of(report)["membership_inference_auc"]["passed"] is False
    assert report.passed is False


def test_synthetic_rows_copying_20_percent_of_training_fail_the_exact_copy_check_and_the_gate(
    job: SynthesisJob, training: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    copies = training.sample(n=60, random_state=2)
    synthetic = pd.concat([smooth_marginals(training, 240, 3), copies], ignore_index=True)

    report = validation_run(job=job, training=training, synthetic=synthetic, holdout=holdout)

    check = checks_of(report)["exact_copy_rate"]
    assert (check["value"], check["passed"], check["direction"], check["kind"]) == (
        0.2,
        False,
        "max",
        "privacy",
    )
    assert report.metrics["exact_copies"] == 60
    assert report.passed is False


def test_tier_thresholds_are_applied(
    job: SynthesisJob, training: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    synthetic = smooth_marginals(training, 300, 4)

    strict = validation_run(
        job=job, training=training, synthetic=synthetic, holdout=holdout, thresholds={"column_shape_min": 1.0}
    )

    assert checks_of(strict)["column_shape_similarity"]["threshold"] == 1.0
    assert checks_of(strict)["column_shape_similarity"]["passed"] is False


def test_report_and_audit_event_are_written_with_aggregates_only(
    job: SynthesisJob, training: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    report = validation_run(job=job, training=training, synthetic=training.head(100), holdout=holdout)

    stored = ValidationReport.objects.get(job=job)
    assert (stored.pk, stored.passed) == (report.pk, False)
    assert (stored.metrics["rows_synthetic"], stored.metrics["rows_training"]) == (100, 480)
    assert stored.metrics["rows_holdout"] == 120
    event = AuditEvent.objects.get(action="validation.complete", target_id=str(job.pk))
    assert (event.actor_name, event.outcome) == ("system", Outcome.FAILURE)
    assert event.details == {"passed": False, "checks": {c["name"]: c["passed"] for c in stored.checks}}
    assert event.details["checks"]["exact_copy_rate"] is False


def test_running_validation_again_replaces_the_report(
    job: SynthesisJob, training: pd.DataFrame, holdout: pd.DataFrame, copula_release: pd.DataFrame
) -> None:
    validation_run(job=job, training=training, synthetic=training.head(100), holdout=holdout)
    validation_run(job=job, training=training, synthetic=copula_release, holdout=holdout)

    assert ValidationReport.objects.get(job=job).passed is True
    assert AuditEvent.objects.filter(action="validation.complete", target_id=str(job.pk)).count() == 2


def test_training_frame_missing_a_column_fails_closed_and_records_the_error_type_only(
    job: SynthesisJob, training: pd.DataFrame, holdout: pd.DataFrame, copula_release: pd.DataFrame
) -> None:
    report = validation_run(
        job=job, training=training.drop(columns=["kappa"]), synthetic=copula_release, holdout=holdout
    )

    assert report.passed is False
    metric_checks = [c for c in report.checks if c["name"] != "requested_columns_present"]
    assert all(c["passed"] is False for c in metric_checks)
    assert all(c["value"] is None for c in metric_checks if c["name"] != "missingness_similarity")
    assert set(report.metrics["errors"].values()) == {"KeyError"}


def test_synthetic_frame_missing_a_requested_column_fails_the_gate_closed(
    job: SynthesisJob, training: pd.DataFrame, holdout: pd.DataFrame, copula_release: pd.DataFrame
) -> None:
    # The job promised SAFE_COLUMNS; a release without `kappa` must not pass as if nothing were missing.
    report = validation_run(
        job=job, training=training, synthetic=copula_release.drop(columns=["kappa"]), holdout=holdout
    )

    assert report.passed is False
    present = checks_of(report)["requested_columns_present"]
    assert present["passed"] is False and present["value"] == pytest.approx(6 / 7, abs=1e-6)
    event = AuditEvent.objects.get(action="validation.complete", target_id=str(job.pk))
    assert event.outcome == Outcome.FAILURE


def test_metric_errors_never_carry_data_values(
    job: SynthesisJob, training: pd.DataFrame, holdout: pd.DataFrame, copula_release: pd.DataFrame
) -> None:
    synthetic = copula_release.head(50).copy()
    synthetic["age"] = synthetic["age"].astype(object)
    synthetic.loc[0, "age"] = np.array(["secret-age-value"])  # an unhashable cell breaks the metrics

    report = validation_run(job=job, training=training, synthetic=synthetic, holdout=holdout)

    assert report.passed is False
    assert report.metrics["errors"]
    assert all(v.isidentifier() for v in report.metrics["errors"].values())
    assert "secret-age-value" not in str(report.metrics)


def test_a_dp_job_is_audited_against_its_claimed_epsilon(
    job: SynthesisJob, training: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    SynthesisJob.objects.filter(pk=job.pk).update(synthesizer="dp_copula", epsilon_micro=500_000)
    job.refresh_from_db()

    report = validation_run(job=job, training=training, synthetic=training.copy(), holdout=holdout)

    assert claimed_epsilon(job) == 0.5
    check = checks_of(report)["dp_empirical_epsilon"]
    assert (check["threshold"], check["passed"]) == (0.5, False)
    assert report.metrics["dp_audit"]["claimed_epsilon"] == 0.5


def test_non_dp_and_unknown_synthesizers_claim_no_epsilon(job: SynthesisJob) -> None:
    assert claimed_epsilon(job) is None
    job.synthesizer = "made_elsewhere"
    assert claimed_epsilon(job) is None
