from __future__ import annotations

from typing import Any

import pytest

from approvals.choices import RequestStatus
from approvals.services import request_cancel, request_decide, request_submit
from approvals.tests.conftest import NO_QI_COLUMNS
from audit.models import AuditEvent
from conftest import csv_upload
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from generation.choices import JobState
from generation.services import dataset_register, dataset_sign_off


def test_scientist_files_a_draft_request_that_is_audited(make_request: Any, alice: Any) -> None:
    request = make_request()
    assert request.status == RequestStatus.DRAFT
    assert request.team == alice.team
    event = AuditEvent.objects.get(action="request.create", target_id=str(request.pk))
    assert event.actor_name == "alice"
    assert event.details["columns"] == request.columns


def test_a_direct_identifier_column_is_refused_by_name(sam: Any, alice: Any, make_request: Any) -> None:
    with_ids = dataset_register(
        actor=sam,
        name="with ids",
        epsilon_cap="1",
        uploaded_file=csv_upload(
            "ssn,age,sex\n" + "\n".join(f"123-45-{i:04d},{40 + i % 30},F" for i in range(60))
        ),
    )
    dataset_sign_off(actor=sam, dataset_id=with_ids.pk)
    with pytest.raises(ValidationFailed) as refused:
        make_request(dataset_id=with_ids.pk, columns=["ssn", "age"])
    assert "`ssn`" in refused.value.message and "direct identifier" in refused.value.message


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"columns": []}, "columns"),
        ({"columns": ["age", "age"]}, "columns"),
        ({"columns": ["no_such_column"]}, "columns"),
        ({"rows": 0}, "rows"),
        ({"rows": 10_000_001}, "rows"),
        ({"rows": "many"}, "rows"),
        ({"audience": "everyone"}, "audience"),
        ({"synthesizer": "magic"}, "synthesizer"),
        ({"epsilon": 1.0}, "epsilon"),
        ({"title": "  "}, "title"),
        ({"dataset_id": "not-a-uuid"}, "dataset"),
    ],
)
def test_invalid_request_fields_are_refused_with_the_field_named(
    make_request: Any, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        make_request(**overrides)
    assert field in refused.value.fields


def test_only_data_scientists_file_requests(make_request: Any, sam: Any, olivia: Any) -> None:
    for actor in (sam, olivia):
        with pytest.raises(PermissionDenied):
            make_request(actor=actor)
    assert AuditEvent.objects.filter(action="request.create", outcome="denied").count() == 2


def test_submission_tiers_the_request_and_records_the_policy_version(submitted_request: Any) -> None:
    assert submitted_request.status == RequestStatus.IN_REVIEW
    assert submitted_request.tier_level == "medium"  # age+sex+death: sensitive column requested
    assert any("Sensitive columns" in reason for reason in submitted_request.tier_reasons)
    assert submitted_request.policy_version
    assert submitted_request.required_approvals == 1
    assert submitted_request.tier_controls["gate"]["exact_copy_rate_max"] == 0.01


def test_external_audience_without_dp_is_high_tier_and_needs_two_approvals(
    make_request: Any, alice: Any
) -> None:
    request = request_submit(
        actor=alice, request_id=make_request(audience="external", columns=NO_QI_COLUMNS).pk
    )
    assert request.tier_level == "high"
    assert request.required_approvals == 2
    assert any("External audience without differential privacy" in r for r in request.tier_reasons)


def test_submitting_twice_is_a_no_op(submitted_request: Any, alice: Any) -> None:
    again = request_submit(actor=alice, request_id=submitted_request.pk)
    assert again.status == RequestStatus.IN_REVIEW
    assert again.review_round == submitted_request.review_round
    assert AuditEvent.objects.filter(action="request.submit").count() == 1


def test_requester_cannot_approve_own_request(submitted_request: Any, alice: Any) -> None:
    with pytest.raises(PermissionDenied, match="your own request"):
        request_decide(actor=alice, request_id=submitted_request.pk, decision="approve")
    submitted_request.refresh_from_db()
    assert submitted_request.status == RequestStatus.IN_REVIEW
    assert submitted_request.decisions.count() == 0
    assert AuditEvent.objects.filter(action="request.decide", outcome="denied", actor_name="alice").exists()


def test_a_teammate_who_is_not_an_officer_cannot_decide(submitted_request: Any, bob: Any) -> None:
    with pytest.raises(PermissionDenied, match="Only privacy officers"):
        request_decide(actor=bob, request_id=submitted_request.pk, decision="approve")


def test_another_team_cannot_see_the_request_at_all(submitted_request: Any, charlie: Any) -> None:
    with pytest.raises(NotFound):
        request_decide(actor=charlie, request_id=submitted_request.pk, decision="approve")


def test_rejecting_or_requesting_changes_needs_a_comment(submitted_request: Any, olivia: Any) -> None:
    with pytest.raises(ValidationFailed, match="comment"):
        request_decide(actor=olivia, request_id=submitted_request.pk, decision="reject")


def test_approval_queues_a_job_for_exactly_the_requested_columns(submitted_request: Any, olivia: Any) -> None:
    request_decide(actor=olivia, request_id=submitted_request.pk, decision="approve", comment="ok")
    submitted_request.refresh_from_db()
    assert submitted_request.status == RequestStatus.APPROVED
    job = submitted_request.job
    assert job.state == JobState.QUEUED
    assert job.columns == submitted_request.columns and job.rows == submitted_request.rows
    assert AuditEvent.objects.filter(action="job.queue", target_id=str(job.pk)).exists()


def test_deciding_a_request_no_longer_in_review_is_a_conflict(
    submitted_request: Any, olivia: Any, oscar: Any
) -> None:
    request_decide(actor=olivia, request_id=submitted_request.pk, decision="reject", comment="Too broad")
    with pytest.raises(Conflict):
        request_decide(actor=oscar, request_id=submitted_request.pk, decision="approve")
    submitted_request.refresh_from_db()
    assert submitted_request.status == RequestStatus.REJECTED
    assert submitted_request.job is None


def test_high_tier_waits_for_a_second_distinct_approver(
    make_request: Any, alice: Any, olivia: Any, oscar: Any
) -> None:
    request = request_submit(
        actor=alice, request_id=make_request(audience="external", columns=NO_QI_COLUMNS).pk
    )
    request_decide(actor=olivia, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    assert request.status == RequestStatus.IN_REVIEW and request.job is None
    # Repeating one's own decision is a no-op; changing it within the round is a conflict.
    request_decide(actor=olivia, request_id=request.pk, decision="approve")
    assert request.decisions.count() == 1
    with pytest.raises(Conflict, match="already decided"):
        request_decide(actor=olivia, request_id=request.pk, decision="reject", comment="no")
    request_decide(actor=oscar, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED and request.job is not None


def test_changes_requested_then_resubmitted_starts_a_new_review_round(
    submitted_request: Any, alice: Any, olivia: Any
) -> None:
    request_decide(
        actor=olivia, request_id=submitted_request.pk, decision="request_changes", comment="Drop sex"
    )
    again = request_submit(actor=alice, request_id=submitted_request.pk)
    assert again.status == RequestStatus.IN_REVIEW and again.review_round == 2
    request_decide(actor=olivia, request_id=again.pk, decision="approve")
    again.refresh_from_db()
    assert again.status == RequestStatus.APPROVED


def test_a_withdrawn_request_cannot_be_submitted(submitted_request: Any, alice: Any) -> None:
    request_cancel(actor=alice, request_id=submitted_request.pk)
    with pytest.raises(Conflict):
        request_submit(actor=alice, request_id=submitted_request.pk)


def test_only_the_requester_submits(make_request: Any, bob: Any) -> None:
    draft = make_request()
    with pytest.raises(NotFound):  # a teammate cannot even see another's draft
        request_submit(actor=bob, request_id=draft.pk)
