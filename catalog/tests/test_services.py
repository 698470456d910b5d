"""The pipeline publishes exactly one release per job; visibility follows team and audience."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from approvals.choices import RequestStatus
from approvals.models import GenerationRequest
from audit.models import AuditEvent, Outcome
from catalog.models import Release
from catalog.pipeline import pipeline_run
from catalog.selectors import releases_visible_to
from catalog.services import release_get_for, release_open_download
from conftest import SAFE_COLUMNS
from core.errors import NotFound
from generation.choices import JobState
from generation.models import SynthesisJob
from generation.synthesizers.sdv_backend import GaussianCopulaSynthesizer

SECRET = "secret-value-123"


def test_pipeline_publishes_one_non_dp_release_for_the_approved_request(release: Release) -> None:
    request = GenerationRequest.objects.get(pk=release.request_id)
    job = SynthesisJob.objects.get(pk=release.job_id)

    assert request.status == RequestStatus.PUBLISHED
    assert (job.state, job.progress, job.attempts) == (JobState.SUCCEEDED, 1.0, 1)
    assert Release.objects.count() == 1
    assert (release.is_dp, release.epsilon, release.epsilon_micro) == (False, None, None)
    assert (release.rows, release.columns, release.audience) == (300, SAFE_COLUMNS, "internal")
    assert release.gate["passed"] is True
    assert release.receipt["seed"] == 20240601
    assert AuditEvent.objects.filter(action="release.publish", target_id=str(release.pk)).count() == 1


def test_running_the_pipeline_again_for_the_same_job_is_skipped(release: Release) -> None:
    assert pipeline_run(job_id=release.job_id) == "skipped"

    assert Release.objects.count() == 1
    assert SynthesisJob.objects.get(pk=release.job_id).attempts == 1


@pytest.mark.parametrize("persona", ["alice", "bob", "olivia", "audrey"])
def test_requester_teammates_and_oversight_see_an_internal_release(
    release: Release, persona: str, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(persona)

    assert list(releases_visible_to(user=user)) == [release]
    assert release_get_for(actor=user, release_id=release.pk) == release


def test_another_team_cannot_see_or_download_an_internal_release(release: Release, charlie: Any) -> None:
    assert list(releases_visible_to(user=charlie)) == []
    with pytest.raises(NotFound):
        release_get_for(actor=charlie, release_id=release.pk)
    with pytest.raises(NotFound):
        release_open_download(actor=charlie, release_id=release.pk)
    assert not AuditEvent.objects.filter(action="release.download").exists()


def test_organization_audience_makes_the_release_visible_to_another_team(
    publish: Callable[..., Release], charlie: Any
) -> None:
    release = publish(audience="organization")

    assert release.audience == "organization"
    assert list(releases_visible_to(user=charlie)) == [release]


def test_download_is_audited_with_the_actor_name(release: Release, bob: Any) -> None:
    opened, stream = release_open_download(actor=bob, release_id=release.pk)

    assert opened == release
    assert stream.size > 0 and b"".join(stream.chunks).startswith(b"age,")
    event = AuditEvent.objects.get(action="release.download")
    assert (event.actor_name, event.target_id, event.outcome) == ("bob", str(release.pk), Outcome.SUCCESS)


@pytest.fixture
def failing_synthesizer(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(SECRET)

    monkeypatch.setattr(GaussianCopulaSynthesizer, "fit_sample", explode)


def test_a_failing_synthesizer_fails_job_and_request_without_publishing(
    failing_synthesizer: None, submitted_request: GenerationRequest, approve: Any
) -> None:
    job = approve(submitted_request)

    assert pipeline_run(job_id=job.pk) == "failed"

    job.refresh_from_db()
    submitted_request.refresh_from_db()
    assert (job.state, job.error_code) == (JobState.FAILED, "ValueError")
    assert submitted_request.status == RequestStatus.FAILED
    assert Release.objects.count() == 0
    assert pipeline_run(job_id=job.pk) == "skipped"


def test_a_failing_synthesizer_message_reaches_neither_the_job_nor_the_audit_log(
    failing_synthesizer: None, submitted_request: GenerationRequest, approve: Any
) -> None:
    job = approve(submitted_request)
    pipeline_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.error_message
    assert SECRET not in job.error_message
    assert SECRET not in json.dumps(job.receipt)
    details = list(AuditEvent.objects.values_list("details", flat=True))
    assert AuditEvent.objects.filter(action="job.failed", target_id=str(job.pk)).exists()
    assert all(SECRET not in json.dumps(d) for d in details)


def test_a_failing_synthesizer_message_stays_out_of_the_logs(
    failing_synthesizer: None,
    submitted_request: GenerationRequest,
    approve: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = approve(submitted_request)

    with caplog.at_level(logging.INFO):
        pipeline_run(job_id=job.pk)

    assert any(str(job.pk) in r.getMessage() for r in caplog.records)  # the failure is logged...
    assert SECRET not in caplog.text  # ...by exception type, never with the message (it may quote data)
