"""DP model releases (issue 15, items 1-2): an approved dp_model request's job trains a DP model
instead of synthesizing, stores the .skops artifact encrypted, scores it on the locked holdout
with the model gate, and publishes a model release with its model card, in the catalog beside
tables under the same access rules.

Attacks written as tests:
- a worker that dies after the fit must not fit again under the same debit: the retried job
  restores the saved model (same artifact bytes) and never calls the trainer;
- a worker that dies after reading the data and before saving the model leaves the job failed
  (dp_state_lost), not silently retrained;
- a scientist outside the audience cannot download, see or discover the file through the page,
  the API or the catalog list; a download of a withdrawn model answers 410;
- a model that fails its gate is not published (no release, no file served).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

import catalog.pipeline
from approvals.choices import RequestKind, RequestStatus
from approvals.models import GenerationRequest
from approvals.services import RequestInput, request_create, request_decide, request_submit
from audit.models import AuditEvent
from catalog.access import release_withdraw
from catalog.evidence import evidence_package
from catalog.model_cards import ECE_P_VALUE_BELOW, EVALUATION_OUTSIDE_DP, model_card
from catalog.models import Release
from catalog.pipeline import pipeline_run
from conftest import csv_upload, data_file
from generation.choices import JobState
from generation.modeling import load_model_artifact
from generation.models import SynthesisJob
from validation.models import ValidationReport

FEATURES = ["age", "sex", "creatinine"]
TARGET = "death"
# DP logistic regression (objective perturbation, generation.modeling.families) passes the default
# model gate on these rows: holdout AUC about 0.8 at epsilon 1-3, ECE under 0.10. diffprivlib's
# trees usually do not (their leaf votes are not risks: ECE about 0.2 on flchain).
FAMILY = "dp_logistic_regression"
SOURCE_ROWS = 3000
EPSILON = "3.0"
EPSILON_MICRO = 3_000_000


@pytest.fixture(autouse=True)
def _seeded_mechanisms(monkeypatch: pytest.MonkeyPatch) -> None:
    """The DP mechanisms draw from the OS in production; a fixed stream here keeps each test's
    model, and so its gate verdict, the same on every run (as conftest fixes the holdout split)."""
    monkeypatch.setattr(
        "generation.modeling.training.mechanism_random_state", lambda: np.random.RandomState(5)
    )


class WorkerKilled(BaseException):
    """Stands for SIGKILL: not an Exception, so the pipeline's failure handler never sees it."""


def _signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def model_dataset(sam: Any) -> Any:
    """3000 flchain rows, the columns declared by the steward, `death` declared the outcome."""
    from generation.public_declarations import FLCHAIN
    from generation.services import dataset_register, dataset_sign_off, dataset_update_columns

    frame = pd.read_csv(data_file("flchain.csv")).head(SOURCE_ROWS)
    registered = dataset_register(
        actor=sam,
        name="flchain-model",
        uploaded_file=csv_upload(frame.to_csv(index=False)),
        epsilon_cap="50.0",
    )
    changes = [dict(item, outcome=True) if item["name"] == TARGET else item for item in FLCHAIN]
    dataset_update_columns(actor=sam, dataset_id=registered.pk, changes=changes)
    return dataset_sign_off(actor=sam, dataset_id=registered.pk)


@pytest.fixture
def file_model(alice: Any, model_dataset: Any) -> Callable[..., GenerationRequest]:
    """File and submit alice's dp_model request (internal: team Cardiology only by default)."""

    def run(gate: dict[str, Any] | None = None, **overrides: Any) -> GenerationRequest:
        gate = gate or {}
        fields: dict[str, Any] = {
            "dataset_id": model_dataset.pk,
            "title": "Mortality risk model",
            "purpose": "Predict death from free light chains",
            "intended_use": "A risk score prototype",
            "audience": "internal",
            "columns": FEATURES,
            "synthesizer": FAMILY,
            "rows": None,
            "epsilon": EPSILON,
            "kind": RequestKind.DP_MODEL,
            "target": TARGET,
        }
        fields.update(overrides)
        draft = request_create(actor=alice, data=RequestInput(**fields))
        submitted = request_submit(actor=alice, request_id=draft.pk)
        tier = dict(submitted.tier_controls)
        tier["gate"] = {**tier.get("gate", {}), **gate}
        GenerationRequest.objects.filter(pk=submitted.pk).update(tier_controls=tier)
        submitted.refresh_from_db()
        return submitted

    return run


@pytest.fixture
def approve_model(olivia: Any, audrey: Any) -> Callable[[GenerationRequest], SynthesisJob]:
    def run(request: GenerationRequest) -> SynthesisJob:
        request_decide(actor=olivia, request_id=request.pk, decision="approve")
        request.refresh_from_db()
        assert request.status == RequestStatus.APPROVED, request.status
        SynthesisJob.objects.filter(pk=request.job_id).update(seed=20240601)
        return SynthesisJob.objects.get(pk=request.job_id)

    return run


@pytest.fixture
def model_release(
    file_model: Callable[..., GenerationRequest], approve_model: Callable[[GenerationRequest], SynthesisJob]
) -> Release:
    job = approve_model(file_model())
    assert pipeline_run(job_id=job.pk) == "published"
    return Release.objects.select_related("job", "request").get(job_id=job.pk)


def _download(client: Client, release: Release) -> Any:
    return client.get(reverse("catalog:release-download", args=[release.pk]))


# --- Train, store, evaluate, publish ------------------------------------------------------------------


def test_an_approved_dp_model_job_publishes_a_model_release_whose_download_loads_and_matches_its_hash(
    model_release: Release, alice: Any
) -> None:
    release, job = model_release, model_release.job
    assert (release.kind, release.artifact_format, release.synthesizer) == ("model", "skops", FAMILY)
    assert release.is_dp and release.epsilon_micro == EPSILON_MICRO and release.rows == 0
    assert release.columns == [*FEATURES, TARGET]
    assert release.request.status == RequestStatus.PUBLISHED
    # The fit was saved as the job's DP state before evaluation, and the artifact is the output.
    assert job.dp_state_path and job.output_path.endswith(".skops.enc")
    assert release.storage_path == job.output_path and release.sha256 == job.output_sha256
    assert release.receipt["model"] == {
        "family": FAMILY,
        "target": TARGET,
        "features": FEATURES,
        "artifact_format": "skops",
        "artifact_sha256": release.sha256,
    }
    assert release.receipt["privacy_facts"]["epsilon"] == "3"
    assert {"diffprivlib", "scikit-learn", "skops"} <= set(release.receipt["packages"])
    report = ValidationReport.objects.get(job=job)
    assert report.passed and [c["name"] for c in report.checks] == [
        "model_auc",
        "model_auc_vs_baseline",
        "model_calibration",
        "model_membership_auc",
        "model_empirical_epsilon",
    ]
    assert release.gate["passed"] and release.metrics["n_holdout"] > 100

    response = _download(_signed_in(alice), release)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].endswith('.skops"')
    data = b"".join(response.streaming_content)
    assert hashlib.sha256(data).hexdigest() == release.sha256
    pipeline = load_model_artifact(data)
    rows = pd.DataFrame({"age": [55.0, 90.0], "sex": ["F", "M"], "creatinine": [0.9, 2.5]})
    proba = pipeline.predict_proba(rows)[:, 1]
    assert proba.shape == (2,) and ((proba >= 0) & (proba <= 1)).all()
    event = AuditEvent.objects.get(action="release.download", target_id=str(release.pk))
    assert (event.actor_name, event.details["sha256"]) == ("alice", release.sha256)


def test_the_privacy_block_says_what_a_models_guarantee_covers_and_what_it_does_not(
    model_release: Release,
) -> None:
    privacy = model_release.privacy
    assert privacy["dp"] is True and privacy["epsilon"] == 3 and privacy["unit"] == "record"
    assert privacy["covers"] and "model's parameters" in privacy["covers"][0]
    assert "synthetic rows" not in " ".join(privacy["covers"])
    not_covered = " ".join(privacy["not_covered"])
    for phrase in (
        "holdout evaluation",
        "non-private baseline",
        "never released",
        "Preprocessing",
        "declarations",
    ):
        assert phrase in not_covered, phrase
    assert "patient with k rows" in not_covered  # the record unit's caveat (no entity column)


def test_a_model_failing_its_gate_is_not_published(
    file_model: Callable[..., GenerationRequest],
    approve_model: Callable[[GenerationRequest], SynthesisJob],
    alice: Any,
) -> None:
    request = file_model(gate={"model_auc_lower_min": 0.999})  # no model reaches it
    job = approve_model(request)

    assert pipeline_run(job_id=job.pk) == "gate_failed"

    job.refresh_from_db()
    request.refresh_from_db()
    assert (job.state, request.status) == (JobState.GATE_FAILED, RequestStatus.GATE_FAILED)
    assert not Release.objects.filter(job_id=job.pk).exists()
    report = ValidationReport.objects.get(job=job)
    failed = [c for c in report.checks if not c["passed"]]
    assert [c["name"] for c in failed] == ["model_auc"] and failed[0]["threshold"] == 0.999
    # Its job report is the model gate's, readable by the requester (statuses, no values).
    page = _signed_in(alice).get(reverse("catalog:job-report", args=[job.pk]))
    assert page.status_code == 200 and b'data-testid="model-report"' in page.content


# --- The card -----------------------------------------------------------------------------------------


def test_the_model_card_renders_on_the_release_page_with_the_privacy_statement(
    model_release: Release, alice: Any, olivia: Any
) -> None:
    page = _signed_in(alice).get(reverse("catalog:release-detail", args=[model_release.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    card = model_card(release=model_release, user=alice)
    assert 'data-testid="model-card"' in html and 'data-testid="data-card"' not in html
    assert "outside the DP guarantee" in html
    assert escape(card["privacy"]["headline"]) in html
    assert "Download model (.skops)" in html
    for section in (
        "intended_use",
        "features_and_target",
        "training_population",
        "metrics",
        "privacy",
        "limitations",
    ):
        assert card[section], section
    assert (
        card["intended_use"]["out_of_scope"]
        and card["metrics"]["outside_dp_guarantee"] == EVALUATION_OUTSIDE_DP
    )
    assert [
        f["column"] for f in card["features_and_target"]["features"] if f["role"] == "feature"
    ] == FEATURES
    # The requester is not a custodian: no figure computed on the real rows reaches her.
    assert card["metrics"]["values_shown"] is False and "auc" not in card["metrics"]
    assert card["training_population"]["training_rows"] is None
    assert all(c["value"] is None for c in card["metrics"]["gate"]["checks"])
    # A privacy officer (custodian) sees the holdout figures and the charts.
    officer = model_card(release=model_release, user=olivia)
    assert officer["metrics"]["values_shown"] and 0.5 < officer["metrics"]["auc"] <= 1
    assert officer["training_population"]["holdout_rows"] == model_release.metrics["n_holdout"]
    # The officer's card lists a miscalibration exactly when the holdout's resampling test finds
    # one; the requester's card cannot (the rule reads a holdout figure) and says so.
    p_value = model_release.metrics["calibration"]["ece_p_value"]
    officer_rules = [item["rule"] for item in officer["limitations"]["items"]]
    assert ("miscalibrated" in officer_rules) == (p_value < ECE_P_VALUE_BELOW)
    assert "miscalibrated" not in [item["rule"] for item in card["limitations"]["items"]]
    assert card["limitations"]["withheld"]
    export = _signed_in(alice).get(reverse("catalog:release-report-export", args=[model_release.pk]))
    assert export.status_code == 200 and b"outside the DP guarantee" in export.content
    officer_page = _signed_in(olivia).get(reverse("catalog:release-detail", args=[model_release.pk]))
    assert b"plotly-figure" in officer_page.content and b"Holdout AUC" in officer_page.content


def test_the_api_detail_carries_the_model_card_and_the_list_a_summary_with_its_kind(
    model_release: Release, api: Callable[[Any], Any], alice: Any
) -> None:
    client = api(alice)
    detail = client.get(reverse("api-release-detail", args=[model_release.pk]))
    assert detail.status_code == 200
    body = detail.json()
    assert (body["kind"], body["artifact_format"]) == ("model", "skops")
    assert body["model_card"]["privacy"]["covers"] == model_release.privacy["covers"]
    assert "outside the DP guarantee" in body["model_card"]["metrics"]["outside_dp_guarantee"]

    listing = client.get(reverse("api-release-list"), {"kind": "model"}).json()
    [item] = listing["results"]
    assert item["kind"] == "model" and "model_card" not in item
    assert item["model"] == {
        "kind": "model",
        "family": FAMILY,
        "family_label": item["model"]["family_label"],
        "target": TARGET,
        "features": len(FEATURES),
        "artifact_format": "skops",
    }
    assert client.get(reverse("api-release-list"), {"kind": "table"}).json()["results"] == []
    card = client.get(reverse("api-release-card", args=[model_release.pk]))
    assert card.status_code == 200 and card.json()["kind"] == "model"
    # Croissant describes datasets: a model has none to give.
    assert (
        client.get(reverse("api-release-card", args=[model_release.pk]), {"format": "croissant"}).status_code
        == 409
    )
    report = client.get(reverse("api-release-report", args=[model_release.pk])).json()
    assert report["full"] is False and {c["name"] for c in report["gate"]["checks"]} >= {"model_auc"}
    assert all(c["value"] is None for c in report["gate"]["checks"])


def test_the_catalog_list_shows_the_kind_and_filters_on_it(
    model_release: Release, release: Release, alice: Any
) -> None:
    client = _signed_in(alice)
    everything = client.get(reverse("catalog:release-list")).content.decode()
    assert model_release.title in everything and release.title in everything
    assert (
        '<span class="badge">model</span>' in everything and '<span class="badge">table</span>' in everything
    )
    models = client.get(reverse("catalog:release-list"), {"kind": "model"}).content.decode()
    assert model_release.title in models and release.title not in models
    tables = client.get(reverse("catalog:release-list"), {"kind": "table"}).content.decode()
    assert release.title in tables and model_release.title not in tables


def test_the_evidence_package_holds_the_model_card(model_release: Release, audrey: Any) -> None:
    with zipfile.ZipFile(
        io.BytesIO(evidence_package(request_id=model_release.request_id, actor=audrey))
    ) as z:
        card = json.loads(z.read("card.json"))
        html = z.read("card.html").decode()
        receipt = json.loads(z.read("receipt.json"))
        report = json.loads(z.read("report.json"))
    assert card["kind"] == "model" and card["sha256"] == model_release.sha256
    assert "outside the DP guarantee" in html and "Model card" in html
    assert (receipt["kind"], receipt["artifact_format"], receipt["output_sha256"]) == (
        "model",
        "skops",
        model_release.sha256,
    )
    assert report["full_report"] is True and report["metrics"]["auc"]["value"] is not None


# --- Access: the same rules as for tables ------------------------------------------------------------


def test_a_scientist_outside_the_audience_cannot_download_see_or_list_the_model(
    model_release: Release, charlie: Any, bob: Any, api: Callable[[Any], Any]
) -> None:
    outsider = _signed_in(charlie)
    assert _download(outsider, model_release).status_code == 404
    assert outsider.get(reverse("catalog:release-detail", args=[model_release.pk])).status_code == 404
    assert api(charlie).get(reverse("api-release-download", args=[model_release.pk])).status_code == 404
    assert api(charlie).get(reverse("api-release-detail", args=[model_release.pk])).status_code == 404
    assert api(charlie).get(reverse("api-release-list"), {"kind": "model"}).json()["results"] == []
    assert not AuditEvent.objects.filter(action="release.download", outcome="success").exists()
    # A teammate (the internal audience) downloads it.
    assert _download(_signed_in(bob), model_release).status_code == 200


def test_the_lineage_shows_the_model_release(model_release: Release, alice: Any) -> None:
    page = _signed_in(alice).get(reverse("catalog:release-lineage", args=[model_release.pk]))
    assert page.status_code == 200
    assert f"DP model ({FAMILY})" in page.content.decode()


def test_a_withdrawn_model_is_not_served(model_release: Release, olivia: Any, alice: Any) -> None:
    release_withdraw(actor=olivia, release_id=model_release.pk, reason="Incident 42: model leaked")
    assert _download(_signed_in(alice), model_release).status_code == 410


# --- The epsilon is spent once ------------------------------------------------------------------------


def test_a_job_retried_after_the_fit_restores_the_saved_model_and_never_fits_again(
    file_model: Callable[..., GenerationRequest],
    approve_model: Callable[[GenerationRequest], SynthesisJob],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = approve_model(file_model())
    real_metrics = catalog.pipeline.compute_model_metrics

    def killed(**_: Any) -> Any:
        raise WorkerKilled

    monkeypatch.setattr(catalog.pipeline, "compute_model_metrics", killed)
    with pytest.raises(WorkerKilled):
        pipeline_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.VALIDATING and job.dp_state_path
    first_sha = job.output_sha256
    # The lease lapses; the reconciler's claim starts the job over on another worker.
    SynthesisJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    def no_second_fit(*_: Any, **__: Any) -> Any:
        raise AssertionError("the model was fitted twice under one debit")

    monkeypatch.setattr("generation.modeling.train_dp_model", no_second_fit)
    monkeypatch.setattr(catalog.pipeline, "compute_model_metrics", real_metrics)

    assert pipeline_run(job_id=job.pk) == "published"

    release = Release.objects.get(job_id=job.pk)
    assert release.sha256 == first_sha and release.receipt["restored_from_dp_state"] is True
    assert release.gate["passed"]


def test_a_worker_killed_between_reading_the_data_and_saving_the_model_fails_the_job(
    file_model: Callable[..., GenerationRequest],
    approve_model: Callable[[GenerationRequest], SynthesisJob],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = approve_model(file_model())

    def killed_mid_fit(*_: Any, **__: Any) -> Any:
        raise WorkerKilled

    monkeypatch.setattr("generation.modeling.train_dp_model", killed_mid_fit)
    with pytest.raises(WorkerKilled):
        pipeline_run(job_id=job.pk)
    SynthesisJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    monkeypatch.undo()

    assert pipeline_run(job_id=job.pk) == "failed"

    job.refresh_from_db()
    assert (job.state, job.error_code, job.dp_state_path) == (JobState.FAILED, "dp_state_lost", "")
    assert not Release.objects.filter(job_id=job.pk).exists()


def test_a_job_whose_pinned_declarations_no_longer_allow_the_model_fails_before_reading_data(
    file_model: Callable[..., GenerationRequest],
    approve_model: Callable[[GenerationRequest], SynthesisJob],
) -> None:
    """The refusal is decided on the declarations alone, so no row is read and the reservation is
    refunded (a refusal after reading would spend the epsilon for nothing)."""
    job = approve_model(file_model())
    undeclared = [
        {k: v for k, v in spec.items() if k not in ("lower", "upper")}
        if spec["name"] == "creatinine"
        else spec
        for spec in job.metadata
    ]
    SynthesisJob.objects.filter(pk=job.pk).update(metadata=undeclared)

    assert pipeline_run(job_id=job.pk) == "failed"

    job.refresh_from_db()
    assert (job.state, job.error_code, job.data_accessed_at) == (JobState.FAILED, "ValidationFailed", None)
    assert job.ledger.filter(kind="refund").exists()
    assert not job.dp_state_path and not Release.objects.filter(job_id=job.pk).exists()
