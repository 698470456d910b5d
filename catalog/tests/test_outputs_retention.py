"""Synthetic outputs that will never be released are deleted, and released ones are served
decrypted, matching their recorded hash (issue 13, item 8). Through the real pipeline, in-process.

The attacker here is anyone who later gets the storage directory (a backup, another account, a
leaked key): a gate-failed attempt may be too close to the real rows, so it must not linger."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from approvals.choices import RequestStatus
from approvals.models import GenerationRequest
from approvals.services import (
    gate_override_decline,
    gate_override_propose,
    request_cancel,
    request_follow_job,
    request_regenerate,
)
from audit.models import AuditEvent
from catalog.models import Release
from catalog.services import gate_override_approve
from generation.choices import JobState
from generation.models import SynthesisJob
from generation.services import job_claim, job_finalize, job_store_output
from generation.storage import absolute_path, read_encrypted_bytes

JUSTIFICATION = (
    "Column shapes are within 0.02 of the floor, every privacy check passed, and the release is "
    "for internal feature engineering only."
)


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: Any) -> Any:
    """Files are unlinked when the deleting transaction commits; the test's own transaction never
    does, so run the commit callbacks the block registers."""
    return django_capture_on_commit_callbacks


def _output_of(job_id: Any) -> tuple[SynthesisJob, Any]:
    job = SynthesisJob.objects.get(pk=job_id)
    return job, absolute_path(job.output_path) if job.output_path else None


def _deletions(job_id: Any) -> list[dict[str, Any]]:
    return list(
        AuditEvent.objects.filter(action="job.output_delete", target_id=str(job_id)).values_list(
            "details", flat=True
        )
    )


def test_a_gate_failed_output_is_kept_while_it_could_be_overridden(
    gate_failed: Callable[..., GenerationRequest],
) -> None:
    request = gate_failed()
    job, path = _output_of(request.job_id)

    assert path is not None and path.is_file()
    assert _deletions(job.pk) == []


def test_a_new_attempt_deletes_the_superseded_gate_failed_output(
    gate_failed: Callable[..., GenerationRequest], alice: Any, on_commit: Any
) -> None:
    request = gate_failed()
    first, path = _output_of(request.job_id)
    assert path is not None and path.is_file()

    with on_commit(execute=True):
        request_regenerate(actor=alice, request_id=request.pk)

    assert not path.exists()
    first.refresh_from_db()
    assert first.output_path == "" and first.output_sha256  # the record of what existed stays
    [details] = _deletions(first.pk)
    assert details == {"reason": "superseded by a new attempt", "sha256": first.output_sha256}
    event = AuditEvent.objects.get(action="job.output_delete", target_id=str(first.pk))
    assert event.actor_name == "alice"


def test_a_declined_override_deletes_the_output_it_would_have_published(
    gate_failed: Callable[..., GenerationRequest], olivia: Any, oscar: Any, on_commit: Any
) -> None:
    request = gate_failed()
    job, path = _output_of(request.job_id)
    gate_override_propose(actor=olivia, request_id=request.pk, justification=JUSTIFICATION)
    assert path.is_file()  # a pending override keeps it

    with on_commit(execute=True):
        gate_override_decline(actor=oscar, request_id=request.pk, comment="Shapes matter here.")

    assert not path.exists()
    assert _deletions(job.pk)[0]["reason"] == "gate override declined"


def test_an_approved_override_publishes_a_file_that_is_kept_and_downloads_with_its_hash(
    gate_failed: Callable[..., GenerationRequest], olivia: Any, oscar: Any, api: Any, bob: Any
) -> None:
    request = gate_failed()
    gate_override_propose(actor=olivia, request_id=request.pk, justification=JUSTIFICATION)

    release = gate_override_approve(actor=oscar, request_id=request.pk, comment="Agreed.")

    assert absolute_path(release.storage_path).is_file()
    assert _deletions(release.job_id) == []
    body = b"".join(api(bob).get(f"/api/v1/releases/{release.pk}/download/").streaming_content)
    assert hashlib.sha256(body).hexdigest() == release.sha256


def test_cancelling_a_running_job_deletes_the_output_it_had_stored(
    make_request: Callable[..., GenerationRequest],
    approve: Callable[[GenerationRequest], SynthesisJob],
    alice: Any,
    on_commit: Any,
) -> None:
    from approvals.services import request_submit

    draft = make_request()
    request = request_submit(actor=alice, request_id=draft.pk)
    job = job_claim(job_id=approve(request).pk)
    assert job is not None
    job = job_store_output(job=job, frame=pd.DataFrame({"age": [50, 60]}))
    path = absolute_path(job.output_path)

    request_cancel(actor=alice, request_id=request.pk)  # a running job stops at its next report
    assert path.is_file()
    with on_commit(execute=True):  # what the worker does at that report
        job_finalize(job=job, state=JobState.CANCELLED, error_code="cancelled")
        request_follow_job(job=job)

    assert GenerationRequest.objects.get(pk=request.pk).status == RequestStatus.CANCELLED
    assert not path.exists()
    assert _deletions(job.pk)[0]["reason"] == "request cancelled"


def test_publishing_keeps_the_release_file_and_it_downloads_matching_the_recorded_hash(
    release: Release, api: Any, bob: Any
) -> None:
    response = api(bob).get(f"/api/v1/releases/{release.pk}/download/")
    body = b"".join(response.streaming_content)

    assert response.status_code == 200
    assert hashlib.sha256(body).hexdigest() == release.sha256
    assert int(response["Content-Length"]) == len(body)
    assert body == read_encrypted_bytes(release.storage_path)
    header = body.split(b"\n", 1)[0]
    assert header not in absolute_path(release.storage_path).read_bytes()  # not plaintext at rest
    assert _deletions(release.job_id) == []


def test_a_tampered_release_file_is_refused_with_a_409_and_the_failure_audited(
    release: Release, api: Any, bob: Any
) -> None:
    path = absolute_path(release.storage_path)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))

    response = api(bob).get(f"/api/v1/releases/{release.pk}/download/")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "release_file_unavailable"
    events = AuditEvent.objects.filter(action="release.download", target_id=str(release.pk))
    assert ("failure", "bob") in list(events.values_list("outcome", "actor_name"))
    assert not events.filter(outcome="success").exists()


def test_a_tampered_release_file_on_the_page_sends_the_user_back_with_what_to_do(
    release: Release, bob: Any, client: Any
) -> None:
    path = absolute_path(release.storage_path)
    path.write_bytes(path.read_bytes()[:-1])  # truncated
    client.force_login(bob)

    response = client.get(f"/catalog/{release.pk}/download/", follow=True)

    assert response.redirect_chain[-1][0] == f"/catalog/{release.pk}/"
    assert "cannot be read" in response.content.decode()
