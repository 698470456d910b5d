"""The pipeline module: the task generation enqueues is the pipeline task, and every move of a job
takes its request along in the same transaction."""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

import catalog.pipeline
from approvals.choices import RequestStatus
from approvals.models import GenerationRequest
from generation.choices import JobState
from generation.models import SynthesisJob
from generation.services import job_enqueue
from generation.synthesizers.sdv_backend import GaussianCopulaSynthesizer

Approve = Callable[[GenerationRequest], SynthesisJob]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Celery, str, dict[str, Any]]]:
    """(app, task name, kwargs) of every message sent, on whichever Celery app sends it."""
    calls: list[tuple[Celery, str, dict[str, Any]]] = []

    def send_task(self: Celery, name: str, args: Any = None, kwargs: Any = None, **_: Any) -> None:
        calls.append((self, name, kwargs or {}))

    monkeypatch.setattr(Celery, "send_task", send_task)
    return calls


def _enqueue_from_another_thread(job_id: Any, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        job_enqueue(job_id=job_id)
    assert len(callbacks) == 1
    # Sent as a threaded web server would send it: Celery's current app is per thread.
    thread = threading.Thread(target=callbacks[0])
    thread.start()
    thread.join()


def test_the_task_generation_enqueues_is_the_registered_pipeline_task_and_runs_it(
    submitted_request: GenerationRequest,
    approve: Approve,
    sent: list[tuple[Celery, str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    job = approve(submitted_request)
    _enqueue_from_another_thread(job.pk, django_capture_on_commit_callbacks)

    [(app, name, kwargs)] = sent
    assert (app.main, name, kwargs) == ("synthgate", "synthgate.pipeline.run", {"job_id": str(job.pk)})
    app.loader.import_default_modules()  # what a worker does at start: autodiscover every app's tasks
    task = app.tasks[name]
    assert task.__module__ == "catalog.tasks" and task.acks_late

    assert task.apply(kwargs=kwargs).get() == "published"
    job.refresh_from_db()
    submitted_request.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert submitted_request.status == RequestStatus.PUBLISHED


def test_the_request_follows_the_job_at_every_step(
    submitted_request: GenerationRequest, approve: Approve, monkeypatch: pytest.MonkeyPatch
) -> None:
    follow = catalog.pipeline.request_follow_job
    seen: list[tuple[str, str]] = []

    def recording_follow(*, job: SynthesisJob) -> Any:
        request = follow(job=job)
        seen.append((SynthesisJob.objects.get(pk=job.pk).state, request.status))
        return request

    monkeypatch.setattr(catalog.pipeline, "request_follow_job", recording_follow)
    job = approve(submitted_request)

    assert catalog.pipeline.pipeline_run(job_id=job.pk) == "published"
    assert seen == [
        (JobState.RUNNING, RequestStatus.GENERATING),
        (JobState.VALIDATING, RequestStatus.VALIDATING),
        (JobState.SUCCEEDED, RequestStatus.PUBLISHED),
    ]


def test_a_job_never_ends_without_its_request_following(
    submitted_request: GenerationRequest, approve: Approve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ending the job and mirroring it onto the request commit together or not at all."""

    def explode(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("synthesizer broke")

    follow = catalog.pipeline.request_follow_job

    def failing_follow(*, job: SynthesisJob) -> Any:
        if SynthesisJob.objects.get(pk=job.pk).state == JobState.FAILED:
            raise RuntimeError("the request could not follow")
        return follow(job=job)

    monkeypatch.setattr(GaussianCopulaSynthesizer, "fit_sample", explode)
    monkeypatch.setattr(catalog.pipeline, "request_follow_job", failing_follow)
    job = approve(submitted_request)

    with pytest.raises(RuntimeError, match="could not follow"):
        catalog.pipeline.pipeline_run(job_id=job.pk)

    job.refresh_from_db()
    submitted_request.refresh_from_db()
    assert (job.state, submitted_request.status) == (JobState.RUNNING, RequestStatus.GENERATING)


def test_only_the_two_movers_change_a_jobs_state_or_mirror_its_request() -> None:
    """No pipeline step can move a job and forget its request: the services that move a job and
    the one that mirrors it are called from `_claim` and `_advance` only."""
    movers = {"job_claim", "job_finalize", "job_set_state", "request_follow_job"}
    tree = ast.parse(Path(catalog.pipeline.__file__).read_text(encoding="utf-8"))
    callers: dict[str, set[str]] = {}
    for function in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        for node in ast.walk(function):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in movers:
                callers.setdefault(node.func.id, set()).add(function.name)
    assert set(callers) == movers
    assert set().union(*callers.values()) == {"_claim", "_advance"}


def test_a_job_whose_worker_died_in_validation_is_claimed_again_and_published(
    submitted_request: GenerationRequest, approve: Approve
) -> None:
    """Crash recovery: the lease of a job in validation lapsed (its worker was killed). The next
    claim starts it over; the request follows it back to generating instead of the pipeline
    failing with "This request is validating; it cannot be started now"."""
    from datetime import timedelta

    from django.utils import timezone

    job = approve(submitted_request)
    GenerationRequest.objects.filter(pk=submitted_request.pk).update(status=RequestStatus.VALIDATING)
    SynthesisJob.objects.filter(pk=job.pk).update(
        state=JobState.VALIDATING,
        worker="dead-worker@elsewhere",
        attempts=1,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    assert catalog.pipeline.pipeline_run(job_id=job.pk) == "published"
    job.refresh_from_db()
    submitted_request.refresh_from_db()
    assert (job.state, job.attempts, submitted_request.status) == (
        JobState.SUCCEEDED,
        2,
        RequestStatus.PUBLISHED,
    )
