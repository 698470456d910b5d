"""The review workflow through its services: separation of duties, quorum, conditions, email
notifications and policy versions. Views and the API call the same services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail

from approvals.choices import RequestStatus
from approvals.models import PolicyVersion, TierAssessment
from approvals.quorum import Approver, quorum
from approvals.services import (
    RequestInput,
    policy_publish,
    request_cancel,
    request_decide,
    request_submit,
    request_update,
)
from approvals.services.policy import PolicyInvalid, policy_approve, policy_file, policy_propose
from approvals.tests.conftest import NO_QI_COLUMNS
from audit.models import AuditEvent
from conftest import SAFE_COLUMNS
from core.errors import Conflict, PermissionDenied, ValidationFailed

# --- Done when: external, non-DP, quasi-identifiers --------------------------------------------


def test_external_non_dp_request_with_quasi_identifiers_is_prohibited_with_reasons(
    submit: Callable[..., Any],
) -> None:
    request = submit(audience="external")  # SAFE_COLUMNS include the quasi-identifiers age and sex
    assert request.status == RequestStatus.REJECTED and request.tier_level == "prohibited"
    reasons = " ".join(request.tier_reasons)
    assert "External audience without DP, with quasi-identifiers (age, sex)" in reasons
    assert "DP with epsilon <= 1 required" in reasons
    assert "choose a DP synthesizer (named dp_*) with epsilon <= 1" in reasons
    assert request.policy_version == "1" and request.policy.number == 1
    assessment = TierAssessment.objects.get(request=request)
    assert assessment.level == "prohibited" and assessment.policy.number == 1
    assert "external_without_dp_quasi_identifiers" in {f["id"] for f in assessment.fired}
    event = AuditEvent.objects.get(action="request.submit", target_id=str(request.pk))
    assert event.details["policy_version"] == 1 and "control.dp_required" in event.details["rules"]


def test_the_first_submission_loads_the_repository_file_as_version_one_once(
    submit: Callable[..., Any],
) -> None:
    assert PolicyVersion.objects.count() == 0
    submit()
    submit()
    version = PolicyVersion.objects.get()
    assert version.number == 1 and version.source == policy_file().read_text()
    assert AuditEvent.objects.filter(action="policy.publish", actor_name="system").count() == 1


# --- Separation of duties and quorum -----------------------------------------------------------


def test_high_tier_needs_two_distinct_approvers_and_the_requester_cannot_be_one(
    submit: Callable[..., Any], alice: Any, olivia: Any, sam: Any
) -> None:
    request = submit(audience="external", columns=NO_QI_COLUMNS)
    assert request.tier_level == "high" and request.required_approvals == 2
    with pytest.raises(PermissionDenied, match="your own request"):
        request_decide(actor=alice, request_id=request.pk, decision="approve")
    request_decide(actor=olivia, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    assert request.status == RequestStatus.IN_REVIEW and request.job is None
    request_decide(actor=sam, request_id=request.pk, decision="approve")  # the steward's second approval
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED and request.job is not None
    assert set(request.decisions.values_list("reviewer_name", flat=True)) == {"olivia", "sam"}


def test_two_stewards_never_approve_without_a_privacy_officer(
    submit: Callable[..., Any], sam: Any, stan: Any, pia: Any
) -> None:
    request = submit(audience="external", columns=NO_QI_COLUMNS)
    request_decide(actor=sam, request_id=request.pk, decision="approve")
    request_decide(actor=stan, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    assert request.status == RequestStatus.IN_REVIEW
    request_decide(actor=pia, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED


def test_a_steward_cannot_decide_a_medium_tier_request(submitted_request: Any, sam: Any) -> None:
    with pytest.raises(PermissionDenied, match="Only privacy officers can decide medium-tier requests"):
        request_decide(actor=sam, request_id=submitted_request.pk, decision="approve")
    assert AuditEvent.objects.filter(action="request.decide", outcome="denied", actor_name="sam").exists()


@pytest.mark.parametrize("persona", ["ada", "audrey", "bob"])
def test_roles_that_may_see_a_request_but_not_review_it_are_refused(
    submitted_request: Any, request: pytest.FixtureRequest, persona: str
) -> None:
    with pytest.raises(PermissionDenied):
        request_decide(
            actor=request.getfixturevalue(persona), request_id=submitted_request.pk, decision="approve"
        )
    submitted_request.refresh_from_db()
    assert submitted_request.decisions.count() == 0


def test_an_officer_on_the_requesters_team_is_never_the_only_approver_for_an_external_audience(
    submit: Callable[..., Any], dp_synthesizer: str, oscar: Any, olivia: Any
) -> None:
    request = submit(audience="external", columns=NO_QI_COLUMNS, synthesizer=dp_synthesizer, epsilon=1)
    assert request.tier_level == "medium" and request.required_approvals == 1
    request_decide(actor=oscar, request_id=request.pk, decision="approve")  # oscar is on Cardiology
    request.refresh_from_db()
    assert request.status == RequestStatus.IN_REVIEW
    request_decide(actor=olivia, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED


def test_an_officer_on_the_requesters_team_alone_is_enough_for_an_internal_audience(
    submitted_request: Any, oscar: Any
) -> None:
    request_decide(actor=oscar, request_id=submitted_request.pk, decision="approve")
    submitted_request.refresh_from_db()
    assert submitted_request.status == RequestStatus.APPROVED


def test_a_teammate_officer_and_an_outside_steward_make_a_high_tier_quorum(
    submit: Callable[..., Any], oscar: Any, sam: Any
) -> None:
    request = submit(audience="external", columns=NO_QI_COLUMNS)
    request_decide(actor=oscar, request_id=request.pk, decision="approve")
    request_decide(actor=sam, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED


def test_the_decision_snapshots_the_reviewers_role_and_team(submitted_request: Any, oscar: Any) -> None:
    decision = request_decide(actor=oscar, request_id=submitted_request.pk, decision="approve")
    assert (decision.reviewer_role, decision.reviewer_team.name) == ("privacy_officer", "Cardiology")


@pytest.mark.parametrize(
    ("approvers", "audience", "level", "satisfied", "missing"),
    [
        ([], "internal", "medium", False, "1 more approval"),
        ([("o", "privacy_officer", 2)], "internal", "medium", True, ""),
        ([("s", "data_steward", 3)], "internal", "medium", False, "1 more approval"),  # role not named
        ([("o", "privacy_officer", 2)], "internal", "high", False, "1 more approval"),
        ([("o", "privacy_officer", 2), ("o", "privacy_officer", 2)], "internal", "high", False, "1 more"),
        ([("o", "privacy_officer", 2), ("s", "data_steward", 3)], "internal", "high", True, ""),
        ([("s", "data_steward", 3), ("t", "data_steward", 3)], "internal", "high", False, "privacy officer"),
        ([("x", "privacy_officer", 1)], "external", "medium", False, "outside the requester's team"),
        ([("x", "privacy_officer", 1), ("o", "privacy_officer", 2)], "external", "medium", True, ""),
        ([("alice", "privacy_officer", 2), ("o", "privacy_officer", 2)], "internal", "high", False, "1 more"),
    ],
)
def test_quorum_table(
    approvers: list[tuple[str, str, int]], audience: str, level: str, satisfied: bool, missing: str
) -> None:
    roles = ["privacy_officer", "data_steward"] if level == "high" else ["privacy_officer"]
    result = quorum(
        approvers=[Approver(*a) for a in approvers],
        requester_id="alice",
        requester_team_id=1,
        audience=audience,
        level=level,
        controls={"required_approvals": 1, "approver_roles": roles, "min_privacy_officer_approvals": 1},
    )
    assert result.satisfied is satisfied
    assert missing in " ".join(result.missing)


def test_high_tier_needs_two_approvals_even_if_a_policy_says_one() -> None:
    result = quorum(
        approvers=[Approver("o", "privacy_officer", 2)],
        requester_id="alice",
        requester_team_id=1,
        audience="internal",
        level="high",
        controls={"required_approvals": 1},
    )
    assert not result.satisfied and result.needed == 2


# --- Transitions ---------------------------------------------------------------------------------


def test_the_same_decision_twice_is_a_no_op_and_a_different_one_a_conflict(
    submit: Callable[..., Any], olivia: Any
) -> None:
    request = submit(audience="external", columns=NO_QI_COLUMNS)
    first = request_decide(actor=olivia, request_id=request.pk, decision="approve")
    again = request_decide(actor=olivia, request_id=request.pk, decision="approve")
    assert again.pk == first.pk and request.decisions.count() == 1
    assert AuditEvent.objects.filter(action="request.approve").count() == 1
    with pytest.raises(Conflict, match="already decided"):
        request_decide(actor=olivia, request_id=request.pk, decision="request_changes", comment="x")


def test_a_withdrawn_request_cannot_be_decided(submitted_request: Any, alice: Any, olivia: Any) -> None:
    request_cancel(actor=alice, request_id=submitted_request.pk)
    with pytest.raises(Conflict):
        request_decide(actor=olivia, request_id=submitted_request.pk, decision="approve")
    assert request_cancel(actor=alice, request_id=submitted_request.pk).status == RequestStatus.CANCELLED


def test_an_approved_request_cannot_be_edited_and_cancelling_it_stops_its_job(
    submitted_request: Any, alice: Any, olivia: Any, dataset: Any
) -> None:
    request_decide(actor=olivia, request_id=submitted_request.pk, decision="approve")
    with pytest.raises(Conflict):
        request_update(actor=alice, request_id=submitted_request.pk, data=_input(dataset))
    cancelled = request_cancel(actor=alice, request_id=submitted_request.pk)
    assert cancelled.status == "cancelled" and cancelled.job.state == "cancelled"
    with pytest.raises(Conflict):
        request_update(actor=alice, request_id=submitted_request.pk, data=_input(dataset))


def _input(dataset: Any, **overrides: Any) -> RequestInput:
    fields: dict[str, Any] = {
        "dataset_id": dataset.pk,
        "title": "Readmission model prototype",
        "purpose": "Prototype",
        "intended_use": "Notebook",
        "audience": "internal",
        "columns": SAFE_COLUMNS,
        "synthesizer": "gaussian_copula",
        "rows": 300,
    }
    fields.update(overrides)
    return RequestInput(**fields)


def test_changes_requested_then_edited_and_resubmitted_is_tiered_again(
    submitted_request: Any, alice: Any, olivia: Any, dataset: Any
) -> None:
    request_decide(
        actor=olivia, request_id=submitted_request.pk, decision="request_changes", comment="Drop death"
    )
    edited = request_update(
        actor=alice,
        request_id=submitted_request.pk,
        data=_input(dataset, columns=["kappa", "lambda"], purpose_category="model_development"),
    )
    assert edited.status == RequestStatus.CHANGES_REQUESTED
    again = request_submit(actor=alice, request_id=submitted_request.pk)
    assert again.status == RequestStatus.IN_REVIEW and again.review_round == 2
    assert again.tier_level == "low"
    assert list(again.assessments.values_list("review_round", "level")) == [(1, "medium"), (2, "low")]
    assert again.first_submitted_at == submitted_request.submitted_at


def test_only_the_requester_edits(submitted_request: Any, bob: Any, olivia: Any, dataset: Any) -> None:
    for actor in (bob, olivia):
        with pytest.raises(PermissionDenied):
            request_update(actor=actor, request_id=submitted_request.pk, data=_input(dataset))


def test_decisions_set_the_cycle_time_end(submitted_request: Any, olivia: Any) -> None:
    assert submitted_request.first_submitted_at is not None and submitted_request.decided_at is None
    request_decide(actor=olivia, request_id=submitted_request.pk, decision="reject", comment="Too broad")
    submitted_request.refresh_from_db()
    assert submitted_request.decided_at >= submitted_request.first_submitted_at


# --- Approval subject to conditions ------------------------------------------------------------------


def test_approval_with_conditions_is_recorded_on_the_request(submitted_request: Any, olivia: Any) -> None:
    request_decide(
        actor=olivia,
        request_id=submitted_request.pk,
        decision="approve",
        conditions="Use only inside the Cardiology workspace; delete after the study.",
    )
    submitted_request.refresh_from_db()
    assert submitted_request.status == RequestStatus.APPROVED
    assert submitted_request.conditions == (
        "Use only inside the Cardiology workspace; delete after the study. (olivia)"
    )
    event = AuditEvent.objects.get(action="request.approve")
    assert event.details["with_conditions"] is True and "Cardiology workspace" not in str(event.details)


def test_conditions_of_every_approver_are_combined(submit: Callable[..., Any], olivia: Any, sam: Any) -> None:
    request = submit(audience="external", columns=NO_QI_COLUMNS)
    request_decide(actor=olivia, request_id=request.pk, decision="approve", conditions="No linkage.")
    request_decide(actor=sam, request_id=request.pk, decision="approve", conditions="Cite the source.")
    request.refresh_from_db()
    assert request.conditions == "No linkage. (olivia)\nCite the source. (sam)"


def test_conditions_only_go_with_an_approval(submitted_request: Any, olivia: Any) -> None:
    with pytest.raises(ValidationFailed, match="Conditions go with an approval"):
        request_decide(
            actor=olivia, request_id=submitted_request.pk, decision="reject", comment="no", conditions="x"
        )


# --- Notifications ------------------------------------------------------------------------------------


def test_submission_emails_every_eligible_reviewer_but_not_the_requester(
    make_request: Callable[..., Any],
    alice: Any,
    olivia: Any,
    oscar: Any,
    sam: Any,
    with_emails: Callable[..., None],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with_emails(alice, olivia, oscar, sam)
    draft = make_request(audience="external", columns=NO_QI_COLUMNS)
    with django_capture_on_commit_callbacks(execute=True):
        request_submit(actor=alice, request_id=draft.pk)
    assert sorted(m.to[0] for m in mail.outbox) == [
        "olivia@example.org",
        "oscar@example.org",
        "sam@example.org",  # high tier names data stewards as approvers
    ]
    message = mail.outbox[0]
    assert "Review requested (high tier)" in message.subject
    assert str(draft.pk) in message.body and "kappa, lambda, creatinine, futime" in message.body


def test_a_medium_tier_submission_does_not_email_stewards(
    make_request: Callable[..., Any],
    alice: Any,
    olivia: Any,
    sam: Any,
    with_emails: Callable[..., None],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with_emails(olivia, sam)
    draft = make_request()
    with django_capture_on_commit_callbacks(execute=True):
        request_submit(actor=alice, request_id=draft.pk)
    assert [m.to for m in mail.outbox] == [["olivia@example.org"]]


def test_a_prohibited_submission_emails_no_reviewer(
    make_request: Callable[..., Any],
    alice: Any,
    olivia: Any,
    with_emails: Callable[..., None],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with_emails(olivia)
    draft = make_request(audience="external")
    with django_capture_on_commit_callbacks(execute=True):
        request_submit(actor=alice, request_id=draft.pk)
    assert mail.outbox == []


def test_each_decision_emails_the_requester_without_the_reviewers_text(
    submitted_request: Any,
    alice: Any,
    olivia: Any,
    with_emails: Callable[..., None],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with_emails(alice)
    with django_capture_on_commit_callbacks(execute=True):
        request_decide(
            actor=olivia,
            request_id=submitted_request.pk,
            decision="request_changes",
            comment="Drop sex=F rows",
        )
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.org"]
    assert "olivia asked for changes to Readmission model prototype" in message.subject
    assert "Drop sex=F" not in message.body and "left a comment; read it in SynthGate" in message.body


def test_links_are_absolute_when_the_base_url_is_set(
    submitted_request: Any,
    alice: Any,
    olivia: Any,
    with_emails: Callable[..., None],
    django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:
    settings.SYNTHGATE_BASE_URL = "https://synthgate.example.org/"
    with_emails(alice)
    with django_capture_on_commit_callbacks(execute=True):
        request_decide(actor=olivia, request_id=submitted_request.pk, decision="approve")
    assert f"https://synthgate.example.org/requests/{submitted_request.pk}/" in mail.outbox[0].body


def test_a_mail_outage_does_not_undo_or_break_the_decision(
    submitted_request: Any,
    alice: Any,
    olivia: Any,
    with_emails: Callable[..., None],
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: Any, fail_silently: bool = False) -> int:
        raise OSError("SMTP unreachable")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", refuse)
    with_emails(alice)
    with django_capture_on_commit_callbacks(execute=True):
        request_decide(actor=olivia, request_id=submitted_request.pk, decision="approve")
    submitted_request.refresh_from_db()
    assert submitted_request.status == RequestStatus.APPROVED


def test_nothing_is_emailed_for_work_that_rolled_back(
    submitted_request: Any,
    olivia: Any,
    alice: Any,
    with_emails: Callable[..., None],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with_emails(alice)
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(ValidationFailed):
            request_decide(actor=olivia, request_id=submitted_request.pk, decision="reject")  # no comment
    assert mail.outbox == []


# --- Policy versions ------------------------------------------------------------------------------------


def _stricter_policy() -> str:
    """The shipped rules, but sensitive columns make a request high tier."""
    text = policy_file().read_text()
    old = "  - id: sensitive_columns\n    when: {fact: sensitive_columns, gte: 1}\n    tier: medium"
    assert old in text
    return text.replace(old, old.replace("tier: medium", "tier: high"))


def _published(
    author: Any, officer: Any, source: str, *, notes: str = "", base_number: int = 1
) -> PolicyVersion:
    """Two people publish a version: `author` proposes it, `officer` approves it after the diff."""
    proposal = policy_propose(actor=author, source=source, notes=notes, base_number=base_number)
    return policy_approve(actor=officer, proposal_id=proposal.pk, reviewed_sha=proposal.sha256)


def test_a_new_version_tiers_the_next_submission_but_not_past_decisions(
    submitted_request: Any, submit: Callable[..., Any], ada: Any, olivia: Any
) -> None:
    assert (submitted_request.tier_level, submitted_request.policy_version) == ("medium", "1")
    version = _published(ada, olivia, _stricter_policy(), notes="Sensitive columns are high risk")
    assert version.number == 2
    submitted_request.refresh_from_db()
    assert (submitted_request.tier_level, submitted_request.policy_version) == ("medium", "1")
    assert submitted_request.assessments.get().policy.number == 1
    later = submit()
    assert (later.tier_level, later.policy_version, later.required_approvals) == ("high", "2", 2)
    event = AuditEvent.objects.get(action="policy.publish", actor_name="olivia")
    assert event.details["number"] == 2 and event.details["previous"] == 1
    assert event.details["proposed_by"] == "ada"


def test_a_proposal_tiers_nothing_until_it_is_approved(
    submitted_request: Any, submit: Callable[..., Any], ada: Any
) -> None:
    proposal = policy_publish(actor=ada, source=_stricter_policy(), base_number=1)
    assert (proposal.status, proposal.number) == ("proposed", None)
    assert (submit().tier_level, submit().policy_version) == ("medium", "1")


def test_resubmission_is_tiered_under_the_version_in_force(
    submitted_request: Any, alice: Any, olivia: Any, oscar: Any, ada: Any
) -> None:
    request_decide(
        actor=olivia, request_id=submitted_request.pk, decision="request_changes", comment="Why death?"
    )
    _published(ada, oscar, _stricter_policy())
    again = request_submit(actor=alice, request_id=submitted_request.pk)
    assert (again.tier_level, again.policy_version) == ("high", "2")
    assert [(a.review_round, a.policy.number, a.level) for a in again.assessments.all()] == [
        (1, 1, "medium"),
        (2, 2, "high"),
    ]


@pytest.mark.parametrize("persona", ["alice", "audrey", "sam"])
def test_only_administrators_and_privacy_officers_propose(
    request: pytest.FixtureRequest, persona: str, db: Any
) -> None:
    with pytest.raises(PermissionDenied):
        policy_propose(actor=request.getfixturevalue(persona), source=_stricter_policy())
    assert PolicyVersion.objects.count() == 0
    assert AuditEvent.objects.filter(action="policy.propose", outcome="denied").count() == 1


def test_an_invalid_version_is_refused_with_its_problems(ada: Any) -> None:
    with pytest.raises(PolicyInvalid) as refused:
        policy_propose(actor=ada, source=_stricter_policy().replace("tier: high\n", "tier: severe\n", 1))
    assert any("tier" in p.path for p in refused.value.problems)
    assert PolicyVersion.objects.filter(number__gt=1).count() == 0


def test_proposing_the_active_text_again_is_refused(ada: Any) -> None:
    with pytest.raises(ValidationFailed, match="identical to the active version 1"):
        policy_propose(actor=ada, source=policy_file().read_text())


def test_proposing_over_a_version_you_did_not_review_is_a_conflict(ada: Any, olivia: Any) -> None:
    _published(ada, olivia, _stricter_policy())
    with pytest.raises(Conflict, match="Version 2 was published while you were editing"):
        policy_propose(actor=ada, source=_stricter_policy() + "# another\n", base_number=1)
    assert PolicyVersion.objects.count() == 2
