"""The request page after a failed gate, as each persona sees it: attempts, "generate again", the
override forms, and the upload form of a bring-your-own request; every action through the page."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from approvals.models import GenerationRequest
from catalog.models import Release
from catalog.pipeline import pipeline_run
from catalog.tests.test_attempts_overrides_uploads import (
    JUSTIFICATION,
    _training,
)
from validation.tests.planted import copula_release


def _page(client: Client, user: Any, request: GenerationRequest) -> str:
    client.force_login(user)
    response = client.get(f"/requests/{request.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_requester_sees_the_failed_attempt_and_generates_again_from_the_page(
    client: Client, gate_failed: Callable[..., GenerationRequest], alice: Any
) -> None:
    request = gate_failed(max_attempts=2)
    page = _page(client, alice, request)
    assert 'data-testid="attempt-row"' in page and "1 of 2 attempts used" in page
    assert "Generate again (attempt 2 of 2)" in page
    assert "Propose override" not in page  # requesters never override their own gate
    assert f"/catalog/jobs/{request.job_id}/report/" in page

    response = client.post(f"/requests/{request.pk}/regenerate/", follow=True)

    assert "Attempt 2 of 2 is queued." in response.content.decode()
    request.refresh_from_db()
    assert request.status == "approved" and request.attempts.count() == 2
    assert "Generate again" not in _page(client, alice, request)


def test_two_privacy_officers_override_a_failed_gate_from_the_page(
    client: Client, gate_failed: Callable[..., GenerationRequest], olivia: Any, oscar: Any, alice: Any
) -> None:
    request = gate_failed()
    assert "Propose override" in _page(client, olivia, request)
    short = client.post(f"/catalog/overrides/{request.pk}/propose/", {"justification": "fine"}, follow=True)
    assert "Write a justification of 40 to 5,000 characters." in short.content.decode()
    client.post(f"/catalog/overrides/{request.pk}/propose/", {"justification": JUSTIFICATION})
    own = _page(client, olivia, request)
    assert JUSTIFICATION in own and "Approve override and publish" not in own

    assert "Approve override and publish" in _page(client, oscar, request)
    response = client.post(
        f"/catalog/overrides/{request.pk}/decide/", {"decision": "approve", "comment": "ok"}, follow=True
    )

    release = Release.objects.get(request=request)
    assert response.redirect_chain[-1][0] == f"/catalog/{release.pk}/"
    client.force_login(alice)
    release_page = client.get(f"/catalog/{release.pk}/").content.decode()
    assert 'data-testid="gate-overridden"' in release_page and JUSTIFICATION in release_page
    assert "published by override" in client.get("/catalog/").content.decode()


def test_another_team_cannot_propose_or_decide_an_override(
    client: Client, gate_failed: Callable[..., GenerationRequest], charlie: Any
) -> None:
    request = gate_failed()
    client.force_login(charlie)
    for action in ("propose", "decide"):
        response = client.post(f"/catalog/overrides/{request.pk}/{action}/", {"justification": JUSTIFICATION})
        assert response.status_code == 404
    assert not request.gate_overrides.exists()


def test_the_requester_uploads_a_synthetic_file_from_the_page(
    client: Client, upload_request: GenerationRequest, alice: Any
) -> None:
    page = _page(client, alice, upload_request)
    assert 'data-testid="upload-form"' in page and 'enctype="multipart/form-data"' in page
    buffer = io.StringIO()
    copula_release(_training(upload_request), 300, seed=3).to_csv(buffer, index=False)
    file = SimpleUploadedFile("mine.csv", buffer.getvalue().encode(), content_type="text/csv")

    response = client.post(f"/requests/{upload_request.pk}/upload/", {"file": file}, follow=True)

    assert "File received: it is being validated" in response.content.decode()
    upload_request.refresh_from_db()
    assert pipeline_run(job_id=upload_request.job_id) == "published"
    assert 'data-testid="upload-form"' not in _page(client, alice, upload_request)


@pytest.mark.parametrize("persona", ["bob", "olivia"])
def test_only_the_requester_sees_the_upload_form(
    client: Client, upload_request: GenerationRequest, persona: str, request: pytest.FixtureRequest
) -> None:
    assert 'data-testid="upload-form"' not in _page(client, request.getfixturevalue(persona), upload_request)
