"""After a failed gate: regeneration within the policy's limit (each attempt spending its epsilon),
a privacy officer's override with a second approver, and synthetic files made elsewhere, all
through the real pipeline (in-process, as the worker runs it)."""

from __future__ import annotations

import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from approvals.choices import OverrideStatus, RequestStatus
from approvals.models import GateOverride, GenerationAttempt, GenerationRequest
from approvals.services import (
    gate_override_decline,
    gate_override_propose,
    request_regenerate,
    request_upload_synthetic,
)
from audit.models import AuditEvent
from catalog.models import Release
from catalog.pipeline import pipeline_run
from catalog.services import gate_override_approve
from conftest import SAFE_COLUMNS
from core.errors import Conflict, PermissionDenied, ValidationFailed
from generation.choices import JobState
from generation.models import BudgetLedgerEntry, SourceDataset, SynthesisJob
from generation.storage import read_encrypted_parquet, storage_root
from validation.tests.planted import copula_release, smooth_marginals

JUSTIFICATION = (
    "Column shapes are within 0.02 of the floor, every privacy check passed, and the release is "
    "for internal feature engineering only."
)


def _actions(target_id: Any) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_id=str(target_id)).order_by("seq").values_list("action", flat=True)
    )


# --- Regeneration ---------------------------------------------------------------------------------


def test_a_gate_failed_request_is_generated_again_until_the_policy_limit(
    gate_failed: Callable[..., GenerationRequest], alice: Any
) -> None:
    request = gate_failed(max_attempts=2)
    first_job = request.job_id

    again = request_regenerate(actor=alice, request_id=request.pk)

    assert again.status == RequestStatus.APPROVED and again.job_id != first_job
    assert list(again.attempts.values_list("number", flat=True)) == [1, 2]
    new_job = SynthesisJob.objects.get(pk=again.job_id)
    assert new_job.state == JobState.QUEUED and new_job.seed != SynthesisJob.objects.get(pk=first_job).seed
    assert pipeline_run(job_id=new_job.pk) == "gate_failed"
    with pytest.raises(Conflict) as exhausted:
        request_regenerate(actor=alice, request_id=request.pk)
    assert exhausted.value.code == "attempts_exhausted" and "2 of the 2" in exhausted.value.message
    assert _actions(request.pk).count("request.regenerate") == 1


def test_each_dp_attempt_reserves_its_own_epsilon_and_a_budget_that_cannot_cover_one_refuses_it(
    gate_failed: Callable[..., GenerationRequest], alice: Any, dataset: SourceDataset
) -> None:
    request = gate_failed(max_attempts=5, synthesizer="dp_copula", epsilon="0.3")  # cap 1.0

    request_regenerate(actor=alice, request_id=request.pk)
    dataset.refresh_from_db()
    assert dataset.epsilon_spent == Decimal("0.6")
    assert BudgetLedgerEntry.objects.filter(dataset=dataset, kind="reserve").count() == 2
    assert pipeline_run(job_id=GenerationRequest.objects.get(pk=request.pk).job_id) == "gate_failed"
    request_regenerate(actor=alice, request_id=request.pk)
    assert pipeline_run(job_id=GenerationRequest.objects.get(pk=request.pk).job_id) == "gate_failed"

    with pytest.raises(Conflict):  # 0.1 left, 0.3 needed
        request_regenerate(actor=alice, request_id=request.pk)

    request.refresh_from_db()
    dataset.refresh_from_db()
    assert (request.status, request.attempts.count()) == (RequestStatus.GATE_FAILED, 3)
    assert dataset.epsilon_spent == Decimal("0.9")


def test_only_the_requester_or_a_privacy_officer_may_regenerate(
    gate_failed: Callable[..., GenerationRequest], bob: Any, charlie: Any, olivia: Any
) -> None:
    request = gate_failed()

    with pytest.raises(PermissionDenied):
        request_regenerate(actor=bob, request_id=request.pk)  # a teammate sees it, may not run it
    from core.errors import NotFound

    with pytest.raises(NotFound):
        request_regenerate(actor=charlie, request_id=request.pk)
    assert request_regenerate(actor=olivia, request_id=request.pk).status == RequestStatus.APPROVED
    assert AuditEvent.objects.filter(action="request.regenerate", outcome="denied").count() == 1


def test_the_attempts_api_shows_each_gate_as_the_caller_may_see_it(
    gate_failed: Callable[..., GenerationRequest], api: Any, alice: Any, olivia: Any, charlie: Any
) -> None:
    request = gate_failed()
    url = f"/api/v1/requests/{request.pk}/attempts/"

    officer = api(olivia).get(url).json()
    requester = api(alice).get(url).json()

    assert [a["number"] for a in officer] == [1] and officer[0]["gate_passed"] is False
    shape = next(c for c in officer[0]["gate"]["checks"] if c["name"] == "column_shape_similarity")
    assert shape["value"] is not None and "column_shapes" in officer[0]["metrics"]
    coarse = next(c for c in requester[0]["gate"]["checks"] if c["name"] == "column_shape_similarity")
    assert coarse["value"] is None and coarse["reason"] and "column_shapes" not in requester[0]["metrics"]
    assert api(charlie).get(url).status_code == 404


def test_a_published_request_cannot_be_regenerated(release: Release, alice: Any) -> None:
    with pytest.raises(Conflict):
        request_regenerate(actor=alice, request_id=release.request_id)


# --- Overriding a failed gate ------------------------------------------------------------------


def test_an_override_needs_a_justification_and_a_second_privacy_officer_and_publishes_marked(
    gate_failed: Callable[..., GenerationRequest], alice: Any, olivia: Any, oscar: Any, api: Any
) -> None:
    request = gate_failed()
    with pytest.raises(ValidationFailed):
        gate_override_propose(actor=olivia, request_id=request.pk, justification="looks fine")
    override = gate_override_propose(actor=olivia, request_id=request.pk, justification=JUSTIFICATION)
    assert override.failed_checks == ["column_shape_similarity"]
    with pytest.raises(PermissionDenied):
        gate_override_approve(actor=olivia, request_id=request.pk)  # the proposer is not a second approver

    release = gate_override_approve(actor=oscar, request_id=request.pk, comment="Agreed.")

    request.refresh_from_db()
    assert request.status == RequestStatus.PUBLISHED
    assert release.job_id == override.job_id and release.gate["passed"] is False
    assert release.gate["overridden"] is True
    assert release.gate["override"]["approved_by"] == "oscar"
    assert release.gate["override"]["justification"] == JUSTIFICATION
    body = api(alice).get(f"/api/v1/releases/{release.pk}/").json()
    assert body["gate"]["passed"] is False and body["gate"]["overridden"] is True
    assert _actions(request.pk)[-4:] == [
        "request.gate_override_propose",
        "request.gate_override_decide",  # olivia's refused self-approval, evidenced
        "request.gate_override_approve",
        "request.published",
    ]


def test_the_requester_can_neither_propose_nor_approve_an_override(
    gate_failed: Callable[..., GenerationRequest], alice: Any, make_user: Callable[..., Any], olivia: Any
) -> None:
    request = gate_failed()
    with pytest.raises(PermissionDenied):
        gate_override_propose(actor=alice, request_id=request.pk, justification=JUSTIFICATION)
    gate_override_propose(actor=olivia, request_id=request.pk, justification=JUSTIFICATION)
    with pytest.raises(PermissionDenied):
        gate_override_approve(actor=alice, request_id=request.pk)
    steward = make_user("stu", "data_steward", "Cardiology")
    with pytest.raises(PermissionDenied):
        gate_override_approve(actor=steward, request_id=request.pk)
    assert not Release.objects.filter(request=request).exists()
    assert GateOverride.objects.get(request=request).status == OverrideStatus.PENDING


def test_a_declined_override_leaves_the_gate_failed_and_regeneration_open(
    gate_failed: Callable[..., GenerationRequest], alice: Any, olivia: Any, oscar: Any
) -> None:
    request = gate_failed()
    gate_override_propose(actor=olivia, request_id=request.pk, justification=JUSTIFICATION)
    with pytest.raises(Conflict) as pending:
        request_regenerate(actor=alice, request_id=request.pk)
    assert pending.value.code == "override_pending"
    with pytest.raises(ValidationFailed):
        gate_override_decline(actor=oscar, request_id=request.pk, comment="")

    declined = gate_override_decline(actor=oscar, request_id=request.pk, comment="Shapes matter here.")

    assert declined.status == OverrideStatus.DECLINED and declined.decided_by_name == "oscar"
    request.refresh_from_db()
    assert request.status == RequestStatus.GATE_FAILED
    assert request_regenerate(actor=alice, request_id=request.pk).status == RequestStatus.APPROVED


def test_only_a_gate_failed_request_can_be_overridden(release: Release, olivia: Any) -> None:
    with pytest.raises(Conflict):
        gate_override_propose(actor=olivia, request_id=release.request_id, justification=JUSTIFICATION)


def test_override_over_the_api(
    gate_failed: Callable[..., GenerationRequest], api: Any, alice: Any, olivia: Any, oscar: Any, charlie: Any
) -> None:
    request = gate_failed()
    base = f"/api/v1/requests/{request.pk}/gate-override/"
    assert api(charlie).post(base, {"justification": JUSTIFICATION}, format="json").status_code == 404
    assert api(alice).post(base, {"justification": JUSTIFICATION}, format="json").status_code == 403
    assert api(olivia).post(base, {"justification": "short"}, format="json").status_code == 400
    proposed = api(olivia).post(base, {"justification": JUSTIFICATION}, format="json")
    assert proposed.status_code == 201 and proposed.json()["status"] == "pending"
    assert api(olivia).post(base + "approve/", {}, format="json").status_code == 403
    assert api(charlie).post(base + "approve/", {}, format="json").status_code == 404

    approved = api(oscar).post(base + "approve/", {"comment": "ok"}, format="json")

    assert approved.status_code == 201 and approved.json()["gate"]["overridden"] is True
    detail = api(alice).get(f"/api/v1/requests/{request.pk}/").json()
    assert detail["status"] == "published" and detail["release"] == approved.json()["id"]
    assert detail["gate_overrides"][0]["decided_by"] == "oscar"
    assert api(oscar).post(base + "approve/", {}, format="json").status_code == 409


# --- Bring your own synthetic data ----------------------------------------------------------------


def _fired(request: GenerationRequest) -> list[str]:
    return [f["id"] for f in request.assessments.get(review_round=request.review_round).fired]


def _csv(frame: pd.DataFrame, name: str = "synthetic.csv") -> SimpleUploadedFile:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return SimpleUploadedFile(name, buffer.getvalue().encode(), content_type="text/csv")


def _training(request: GenerationRequest) -> pd.DataFrame:
    return read_encrypted_parquet(request.dataset.storage_path)[SAFE_COLUMNS]


def test_an_honest_uploaded_file_passes_the_same_gate_and_is_published_as_not_dp(
    upload_request: GenerationRequest, alice: Any, api: Any
) -> None:
    synthetic = copula_release(_training(upload_request), 300, seed=3)
    response = api(alice).post(
        f"/api/v1/requests/{upload_request.pk}/upload/", {"file": _csv(synthetic)}, format="multipart"
    )
    assert response.status_code == 202, response.content
    assert (
        response.json()["job"]["state"] == "queued" and response.json()["attempts"][0]["source"] == "uploaded"
    )
    job = SynthesisJob.objects.get(pk=GenerationRequest.objects.get(pk=upload_request.pk).job_id)
    assert (job.synthesizer, job.rows, job.epsilon_micro, job.state) == (
        "external_upload",
        300,
        None,
        "queued",
    )

    assert pipeline_run(job_id=job.pk) == "published"

    release = Release.objects.get(request=upload_request)
    assert (release.is_dp, release.epsilon_micro, release.synthesizer) == (False, None, "external_upload")
    assert release.gate["passed"] is True and "overridden" not in release.gate
    assert GenerationAttempt.objects.get(job=job).source == "uploaded"


def test_an_uploaded_copy_of_the_training_rows_is_blocked_by_the_gate(
    upload_request: GenerationRequest, alice: Any
) -> None:
    copied = _training(upload_request).sample(n=200, random_state=1)
    request = request_upload_synthetic(actor=alice, request_id=upload_request.pk, uploaded_file=_csv(copied))

    assert pipeline_run(job_id=request.job_id) == "gate_failed"

    report = SynthesisJob.objects.get(pk=request.job_id).validation
    checks = {c["name"]: c for c in report.checks}
    assert checks["exact_copy_rate"]["value"] == 1.0 and checks["exact_copy_rate"]["passed"] is False
    assert not Release.objects.filter(request=upload_request).exists()


@pytest.mark.parametrize(
    ("frame_change", "code", "says"),
    [
        (lambda f: f.assign(mrn=1), "columns_mismatch", "Remove: mrn"),
        (lambda f: f.drop(columns=["age"]), "columns_mismatch", "Add: age"),
        (lambda f: pd.concat([f, f]), "too_many_rows", "at most 300"),
    ],
    ids=["extra column", "missing column", "too many rows"],
)
def test_a_file_that_does_not_match_the_request_is_refused_and_nothing_is_kept(
    upload_request: GenerationRequest, alice: Any, api: Any, frame_change: Any, code: str, says: str
) -> None:
    frame = frame_change(smooth_marginals(_training(upload_request), 300, seed=3))
    response = api(alice).post(
        f"/api/v1/requests/{upload_request.pk}/upload/", {"file": _csv(frame)}, format="multipart"
    )

    assert response.status_code == 400
    assert says in str(response.json())
    upload_request.refresh_from_db()
    assert (upload_request.job_id, upload_request.attempts.count()) == (None, 0)
    uploads = storage_root() / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())
    assert AuditEvent.objects.filter(action="request.upload").count() == 0


def test_only_the_requester_uploads_and_only_to_an_upload_request(
    upload_request: GenerationRequest, bob: Any, charlie: Any, api: Any, release: Release
) -> None:
    file = _csv(smooth_marginals(_training(upload_request), 50, seed=1))
    assert (
        api(bob)
        .post(f"/api/v1/requests/{upload_request.pk}/upload/", {"file": file}, format="multipart")
        .status_code
        == 403
    )
    assert (
        api(charlie).post(f"/api/v1/requests/{upload_request.pk}/upload/", {}, format="multipart").status_code
        == 404
    )
    other = api(release.request.requester).post(
        f"/api/v1/requests/{release.request_id}/upload/",
        {"file": _csv(pd.DataFrame({"age": [1]}))},
        format="multipart",
    )
    assert other.status_code == 409


def test_a_second_upload_waits_for_the_first_and_a_failed_one_can_be_replaced(
    upload_request: GenerationRequest, alice: Any, olivia: Any
) -> None:
    from approvals.services import retry_approve

    copied = _training(upload_request).sample(n=100, random_state=2)
    request = request_upload_synthetic(actor=alice, request_id=upload_request.pk, uploaded_file=_csv(copied))
    with pytest.raises(Conflict):
        request_upload_synthetic(actor=alice, request_id=upload_request.pk, uploaded_file=_csv(copied))
    assert pipeline_run(job_id=request.job_id) == "gate_failed"

    # Copies failed a privacy check: a replacement file needs a privacy officer's approved retry.
    honest = copula_release(_training(upload_request), 300, seed=5)
    with pytest.raises(Conflict) as refused:
        request_upload_synthetic(actor=alice, request_id=upload_request.pk, uploaded_file=_csv(honest))
    assert refused.value.code == "privacy_retry_needs_officer"
    retry_approve(
        actor=olivia,
        request_id=upload_request.pk,
        comment="The copies were a mistake; a file made properly may follow.",
    )
    again = request_upload_synthetic(actor=alice, request_id=upload_request.pk, uploaded_file=_csv(honest))

    assert list(again.attempts.values_list("number", "source")) == [(1, "uploaded"), (2, "uploaded")]
    assert pipeline_run(job_id=again.job_id) == "published"


# --- Races ----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_concurrent_regenerations_start_exactly_one_attempt(
    transactional_db: Any, gate_failed: Callable[..., GenerationRequest], alice: Any
) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    request = gate_failed(max_attempts=2)
    barrier = threading.Barrier(8)

    def regenerate(_: int) -> str:
        try:
            try:
                barrier.wait(timeout=2)
            except threading.BrokenBarrierError:
                pass
            return str(request_regenerate(actor=alice, request_id=request.pk).status)
        except Conflict as exc:
            return exc.code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(regenerate, range(8)))

    # The winner starts attempt 2; the others find it started (a no-op), never a third attempt.
    assert set(outcomes) == {"approved"}, outcomes
    assert GenerationAttempt.objects.filter(request=request).count() == 2
    assert SynthesisJob.objects.filter(state=JobState.QUEUED).count() == 1


def test_an_approved_upload_request_awaiting_its_file_can_be_withdrawn(
    upload_request: GenerationRequest, alice: Any, bob: Any
) -> None:
    from approvals.services import request_cancel

    with pytest.raises(PermissionDenied):
        request_cancel(actor=bob, request_id=upload_request.pk)

    withdrawn = request_cancel(actor=alice, request_id=upload_request.pk)

    assert withdrawn.status == RequestStatus.CANCELLED
    with pytest.raises(Conflict):
        request_upload_synthetic(
            actor=alice,
            request_id=upload_request.pk,
            uploaded_file=_csv(smooth_marginals(_training(upload_request), 50, seed=1)),
        )
