"""The events that notify, through the services that raise them: a submission waits on its
reviewers, an approval short of quorum on the others, a finished job tells its requester."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core import mail

from approvals.models import GenerationRequest
from approvals.services import request_decide, request_submit
from approvals.services.notifications import notify_override_pending, reviewers_notified
from approvals.services.overrides import gate_override_propose
from catalog.pipeline import pipeline_run
from notifications.models import Notification, NotificationKind
from notifications.selectors import notified_count

pytestmark = pytest.mark.django_db

HIGH_TIER = {"audience": "external", "columns": ["kappa", "lambda", "creatinine", "futime"]}


@pytest.fixture(autouse=True)
def storage_dir(settings: Any, tmp_path: Path) -> Path:
    settings.SYNTHGATE_STORAGE_DIR = tmp_path / "storage"
    return settings.SYNTHGATE_STORAGE_DIR


def _inbox(user: Any) -> list[tuple[str, str]]:
    return list(Notification.objects.filter(recipient=user).values_list("kind", "url"))


def test_a_submission_notifies_its_reviewers_and_says_how_many(
    make_request: Callable[..., Any],
    alice: Any,
    olivia: Any,
    with_emails: Callable[..., None],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with_emails(olivia)
    draft = make_request()
    with django_capture_on_commit_callbacks(execute=True):
        submitted = request_submit(actor=alice, request_id=draft.pk)
    assert _inbox(olivia) == [(NotificationKind.REVIEW_NEEDED, f"/requests/{draft.pk}/")]
    assert _inbox(alice) == []  # the requester does not review their own request
    assert reviewers_notified(submitted) == 1
    assert [m.to for m in mail.outbox] == [["olivia@example.org"]]


def test_a_submission_with_no_reviewer_claims_nobody_was_notified(
    make_request: Callable[..., Any], alice: Any
) -> None:
    submitted = request_submit(actor=alice, request_id=make_request().pk)
    assert reviewers_notified(submitted) == 0
    assert not Notification.objects.exists()


def test_an_approval_short_of_quorum_asks_the_other_reviewers(
    make_request: Callable[..., Any], alice: Any, olivia: Any, oscar: Any, sam: Any
) -> None:
    submitted = request_submit(actor=alice, request_id=make_request(**HIGH_TIER).pk)
    assert reviewers_notified(submitted) == 3
    request_decide(actor=olivia, request_id=submitted.pk, decision="approve")
    second = NotificationKind.SECOND_APPROVAL
    assert second in dict(_inbox(oscar)) and second in dict(_inbox(sam))
    assert second not in dict(_inbox(olivia))  # she has decided


def _approve_and_run(request: GenerationRequest, officer: Any) -> str:
    request_decide(actor=officer, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    return pipeline_run(job_id=request.job_id)


def test_a_published_job_notifies_its_requester_with_the_release_link(
    submitted_request: GenerationRequest, alice: Any, olivia: Any
) -> None:
    assert _approve_and_run(submitted_request, olivia) == "published"
    release_id = submitted_request.release.pk
    assert _inbox(alice) == [(NotificationKind.JOB_PUBLISHED, f"/catalog/{release_id}/")]
    assert _inbox(olivia) == []  # the requester's news, not the reviewer's


def _fail_the_gate(request: GenerationRequest, officer: Any) -> None:
    # A gate no GaussianCopula release can pass, so the failure is certain.
    tier = dict(request.tier_controls)
    tier["gate"] = {**tier.get("gate", {}), "column_shape_min": 0.999}
    GenerationRequest.objects.filter(pk=request.pk).update(tier_controls=tier)
    request.refresh_from_db()
    assert _approve_and_run(request, officer) == "gate_failed"
    request.refresh_from_db()


def test_a_gate_failure_notifies_its_requester(
    submitted_request: GenerationRequest, alice: Any, olivia: Any
) -> None:
    _fail_the_gate(submitted_request, olivia)
    assert _inbox(alice) == [(NotificationKind.GATE_FAILED, f"/requests/{submitted_request.pk}/")]


def test_a_proposed_override_waits_on_another_officer_only(
    submitted_request: GenerationRequest, alice: Any, olivia: Any, oscar: Any
) -> None:
    _fail_the_gate(submitted_request, olivia)
    override = gate_override_propose(
        actor=olivia,
        request_id=submitted_request.pk,
        justification="The failed shape check is a known artefact of this small cohort; the "
        "privacy checks pass and the release is for internal prototyping only.",
    )
    # Proposing notified the other officers; a second call finds them already told.
    assert notified_count(dedup_key=f"{NotificationKind.OVERRIDE_PENDING}:override:{override.pk}") == 1
    assert notify_override_pending(submitted_request, override) == 0
    assert NotificationKind.OVERRIDE_PENDING in dict(_inbox(oscar))
    assert NotificationKind.OVERRIDE_PENDING not in dict(_inbox(olivia))  # the proposer
    assert NotificationKind.OVERRIDE_PENDING not in dict(_inbox(alice))  # the requester


def test_a_failed_job_notifies_its_requester(
    submitted_request: GenerationRequest, alice: Any, olivia: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the synthesizer fell over")

    monkeypatch.setattr("generation.synthesizers.sdv_backend.GaussianCopulaSynthesizer.fit_sample", explode)
    assert _approve_and_run(submitted_request, olivia) == "failed"
    assert _inbox(alice) == [(NotificationKind.JOB_FAILED, f"/requests/{submitted_request.pk}/")]
