"""Real releases, produced in-process by the same pipeline the Celery worker runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from approvals.models import GenerationRequest
from approvals.services import request_decide, request_submit
from catalog.models import Release
from catalog.services import pipeline_run
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
