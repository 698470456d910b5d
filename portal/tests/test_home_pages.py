"""Role home pages: each role sees what it needs first, in a constant number of queries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import GenerationRequest
from approvals.services import request_decide, request_submit
from catalog.models import Release

pytestmark = pytest.mark.django_db


def _home(user: Any) -> str:
    client = Client()
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


def _submit_many(make_request: Callable[..., GenerationRequest], alice: Any, count: int) -> None:
    for i in range(count):
        draft = make_request(title=f"Request {i:02d}")
        request_submit(actor=alice, request_id=draft.pk)


def _release(
    request: GenerationRequest, officer: Any, *, title: str, expires_in: timedelta | None
) -> Release:
    """A release row for an approved request (the table, storage and gate are not what is tested)."""
    request_decide(actor=officer, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    assert request.job is not None
    return Release.objects.create(
        request=request,
        job=request.job,
        dataset=request.dataset,
        team=request.team,
        audience=request.audience,
        title=title,
        rows=request.rows,
        columns=list(request.columns),
        synthesizer=request.synthesizer,
        is_dp=False,
        storage_path="releases/none.parquet",
        sha256="0" * 64,
        gate={},
        metrics={},
        expires_at=timezone.now() + expires_in if expires_in is not None else None,
    )


def test_dashboard_a_scientist_sees_own_requests_and_only_usable_releases(
    make_request: Callable[..., GenerationRequest], alice: Any, olivia: Any
) -> None:
    draft = make_request(title="Still a draft")
    live = request_submit(actor=alice, request_id=make_request(title="Live one").pk)
    gone = request_submit(actor=alice, request_id=make_request(title="Gone one").pk)
    _release(live, olivia, title="Usable release", expires_in=timedelta(days=30))
    _release(gone, olivia, title="Expired release", expires_in=timedelta(days=-1))
    body = _home(alice)
    assert 'id="my-requests"' in body and draft.title in body and "Draft" in body
    assert "Usable release" in body and "Expired release" not in body
    assert 'id="waiting"' not in body and 'id="audit-chain"' not in body


def test_dashboard_an_officer_sees_what_waits_oldest_first(
    make_request: Callable[..., GenerationRequest], alice: Any, olivia: Any, ada: Any
) -> None:
    from approvals.services.policy import policy_file, policy_propose

    _submit_many(make_request, alice, 7)
    proposal = policy_propose(
        actor=ada, source=policy_file().read_text() + "\n# reworded\n", notes="A comment", base_number=1
    )
    body = _home(olivia)
    assert "Policy proposals to decide" in body and f'href="/manage/policy/proposals/{proposal.pk}/"' in body
    assert 'id="waiting"' in body and "7 requests awaiting review" in body
    assert "Request 00" in body and "Request 04" in body and "Request 05" not in body
    assert 'id="my-requests"' not in body and 'id="audit-chain"' not in body


def test_dashboard_query_count_for_an_officer_does_not_grow_with_the_queue(
    make_request: Callable[..., GenerationRequest], alice: Any, olivia: Any
) -> None:
    def queries() -> int:
        client = Client()
        client.force_login(olivia)
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/").status_code == 200
        return len(captured)

    _submit_many(make_request, alice, 3)
    few = queries()
    _submit_many(make_request, alice, 17)
    assert GenerationRequest.objects.filter(status="in_review").count() == 20
    assert queries() == few


def test_dashboard_an_auditor_sees_the_last_signed_checkpoint_and_recent_events(
    submitted_request: Any, audrey: Any, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit import selectors
    from audit.services import audit_checkpoint

    settings.SYNTHGATE_AUDIT_CHECKPOINT_DIR = tmp_path / "checkpoints"
    before = _home(audrey)
    assert "No signed checkpoint yet." in before and "Verify now" in before

    assert audit_checkpoint().status == "written"

    def walked(*_: Any, **__: Any) -> None:
        raise AssertionError("the home page must not walk the whole chain")

    monkeypatch.setattr(selectors, "audit_verify", walked)
    body = _home(audrey)
    assert "Last verified and signed up to event #" in body and 'href="/audit/verify/"' in body
    assert 'id="recent-events"' in body and "request.submit" in body
    assert 'id="waiting"' not in body and 'id="my-requests"' not in body
