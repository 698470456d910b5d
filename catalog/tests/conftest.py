"""Real releases, produced in-process by the same pipeline the Celery worker runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from approvals.choices import RequestStatus
from approvals.models import GenerationRequest
from approvals.services import request_decide, request_submit
from catalog.models import Release
from catalog.pipeline import pipeline_run
from generation.models import SynthesisJob


@pytest.fixture(autouse=True)
def storage_dir(settings: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "storage"
    settings.SYNTHGATE_STORAGE_DIR = folder
    return folder


@pytest.fixture
def approve(olivia: Any) -> Callable[[GenerationRequest], SynthesisJob]:
    """Olivia approves a submitted request; the job gets a fixed seed so the gate is repeatable."""

    def run(request: GenerationRequest) -> SynthesisJob:
        request_decide(actor=olivia, request_id=request.pk, decision="approve")
        request.refresh_from_db()
        SynthesisJob.objects.filter(pk=request.job_id).update(seed=20240601)
        return SynthesisJob.objects.get(pk=request.job_id)

    return run


@pytest.fixture
def publish(
    make_request: Callable[..., GenerationRequest], approve: Callable[[GenerationRequest], SynthesisJob]
) -> Callable[..., Release]:
    """File, submit, approve and run a request (as `actor`, alice by default); return its release."""

    def run(actor: Any = None, **overrides: Any) -> Release:
        draft = make_request(actor=actor, **overrides)
        submitted = request_submit(actor=draft.requester, request_id=draft.pk)
        job = approve(submitted)
        assert pipeline_run(job_id=job.pk) == "published"
        return Release.objects.get(request=submitted)

    return run


@pytest.fixture
def release(
    submitted_request: GenerationRequest, approve: Callable[[GenerationRequest], SynthesisJob]
) -> Release:
    """Alice's internal (Cardiology-only) release of SAFE_COLUMNS, 300 rows."""
    job = approve(submitted_request)
    assert pipeline_run(job_id=job.pk) == "published"
    return Release.objects.get(request=submitted_request)


def _strict_gate(request: GenerationRequest, **controls: Any) -> None:
    """A gate no GaussianCopula release can pass (shape similarity 0.999), so the failure is certain."""
    tier = dict(request.tier_controls)
    tier["gate"] = {**tier.get("gate", {}), "column_shape_min": 0.999}
    tier.update(controls)
    GenerationRequest.objects.filter(pk=request.pk).update(tier_controls=tier)
    request.refresh_from_db()


@pytest.fixture
def gate_failed(
    make_request: Callable[..., GenerationRequest], approve: Callable[[GenerationRequest], SynthesisJob]
) -> Callable[..., GenerationRequest]:
    """File, submit, make the gate impossible, approve and run: a gate_failed request."""

    def run(max_attempts: int = 3, **overrides: Any) -> GenerationRequest:
        draft = make_request(**overrides)
        submitted = request_submit(actor=draft.requester, request_id=draft.pk)
        _strict_gate(submitted, max_generation_attempts=max_attempts)
        job = approve(submitted)
        assert pipeline_run(job_id=job.pk) == "gate_failed"
        submitted.refresh_from_db()
        assert submitted.status == RequestStatus.GATE_FAILED
        return submitted

    return run


@pytest.fixture
def upload_request(make_request: Callable[..., GenerationRequest], olivia: Any) -> GenerationRequest:
    """An approved external_upload request of SAFE_COLUMNS (up to 300 rows): no job until a file comes."""
    from approvals.services import request_decide

    draft = make_request(synthesizer="external_upload")
    submitted = request_submit(actor=draft.requester, request_id=draft.pk)
    fired = [f["id"] for f in submitted.assessments.get(review_round=submitted.review_round).fired]
    assert "external_upload" in fired
    request_decide(actor=olivia, request_id=submitted.pk, decision="approve")
    submitted.refresh_from_db()
    assert (submitted.status, submitted.job_id) == (RequestStatus.APPROVED, None)
    return submitted
