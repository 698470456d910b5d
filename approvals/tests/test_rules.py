"""approvals.rules as pure functions: no database, users and requests as plain objects."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from approvals import rules
from approvals.rules import RequestFacts

OWNER, TEAMMATE, OFFICER, SECOND_OFFICER, STEWARD, ADMIN, AUDITOR = 1, 2, 3, 4, 5, 6, 7


def _user(pk: int, role: str, *, active: bool = True) -> Any:
    return SimpleNamespace(pk=pk, role=role, is_active=active, is_authenticated=True)


alice = _user(OWNER, "data_scientist")
bob = _user(TEAMMATE, "data_scientist")
olivia = _user(OFFICER, "privacy_officer")
pia = _user(SECOND_OFFICER, "privacy_officer")
sam = _user(STEWARD, "data_steward")
ada = _user(ADMIN, "admin")
audrey = _user(AUDITOR, "auditor")
EVERYONE = [alice, bob, olivia, pia, sam, ada, audrey]


def _request(**fields: Any) -> Any:
    base = {
        "requester_id": OWNER,
        "status": "draft",
        "synthesizer": "gaussian_copula",
        "tier_level": "medium",
        "tier_controls": {"max_generation_attempts": 3},
        "job_id": None,
        "candidates": [],
    }
    return SimpleNamespace(**{**base, **fields})


def _facts(**fields: Any) -> RequestFacts:
    facts = {k: fields.pop(k) for k in list(fields) if k in RequestFacts.__dataclass_fields__}
    return RequestFacts(_request(**fields), **facts)


def _who_may(rule: Any, facts: RequestFacts) -> set[int]:
    return {user.pk for user in EVERYONE if not rule(user, facts)}


def test_only_the_requester_edits_submits_and_withdraws_a_draft() -> None:
    draft = _facts()
    for rule in (rules.edit_refusal, rules.submit_refusal, rules.withdraw_refusal):
        assert _who_may(rule, draft) == {OWNER}
    assert rules.edit_refusal(bob, draft) == "Only the requester can edit this request."


def test_a_request_in_review_can_be_withdrawn_but_not_edited() -> None:
    in_review = _facts(status="in_review")
    assert rules.edit_refusal(alice, in_review) == "This request is in review; it cannot be edited now."
    assert _who_may(rules.withdraw_refusal, in_review) == {OWNER}


def test_an_approved_request_with_a_job_is_stopped_not_withdrawn() -> None:
    running = _facts(status="generating", job_id="job")
    assert _who_may(rules.withdraw_refusal, running) == set()
    assert "cancel the generation" in rules.withdraw_refusal(alice, running)
    assert _who_may(rules.stop_job_refusal, running) == {OWNER, OFFICER, SECOND_OFFICER}
    asked = _facts(status="generating", job_id="job", job_cancel_requested=True)
    assert _who_may(rules.stop_job_refusal, asked) == set()


def test_an_upload_request_awaiting_its_file_may_be_withdrawn_by_its_requester() -> None:
    awaiting = _facts(status="approved", synthesizer="external_upload")
    assert _who_may(rules.withdraw_refusal, awaiting) == {OWNER}
    assert _who_may(rules.upload_refusal, awaiting) == {OWNER}
    assert _who_may(rules.stop_job_refusal, awaiting) == set()


def test_reviewers_decide_by_tier_never_their_own_and_once_a_round() -> None:
    medium = _facts(status="in_review", tier_controls={"approver_roles": ["privacy_officer"]})
    assert _who_may(rules.decide_refusal, medium) == {OFFICER, SECOND_OFFICER}
    high = _facts(status="in_review", tier_controls={"approver_roles": ["privacy_officer", "data_steward"]})
    assert _who_may(rules.decide_refusal, high) == {OFFICER, SECOND_OFFICER, STEWARD}
    decided = _facts(status="in_review", decided_this_round=frozenset({OFFICER}))
    assert _who_may(rules.decide_refusal, decided) == {SECOND_OFFICER}
    assert rules.decide_refusal(olivia, decided) == "You already decided this review round."
    own = _facts(status="in_review", requester_id=OFFICER)
    assert rules.decide_refusal(olivia, own) == "You cannot decide your own request; another reviewer must."
    inactive = _user(SECOND_OFFICER, "privacy_officer", active=False)
    assert rules.decide_refusal(inactive, medium) == "Inactive accounts cannot decide requests."


def test_after_a_failed_gate_the_requester_or_an_officer_regenerates_within_the_limit() -> None:
    failed = _facts(status="gate_failed", job_id="job", attempts_used=1)
    assert _who_may(rules.regenerate_refusal, failed) == {OWNER, OFFICER, SECOND_OFFICER}
    used_up = _facts(status="gate_failed", job_id="job", attempts_used=3)
    assert _who_may(rules.regenerate_refusal, used_up) == set()
    assert "used 3 of the 3" in rules.regenerate_refusal(alice, used_up)
    pending = _facts(status="gate_failed", job_id="job", attempts_used=1, override_pending=True)
    assert "second approver" in rules.regenerate_refusal(alice, pending)
    uploaded = _facts(status="gate_failed", job_id="job", synthesizer="external_upload", attempts_used=1)
    assert _who_may(rules.regenerate_refusal, uploaded) == set()
    assert _who_may(rules.upload_refusal, uploaded) == {OWNER}


def test_after_a_privacy_failure_nobody_regenerates_the_requester_asks_and_an_officer_decides() -> None:
    failed = _facts(
        status="gate_failed", job_id="job", attempts_used=1, privacy_failures=("singling_out_risk",)
    )
    assert _who_may(rules.regenerate_refusal, failed) == set()
    assert "Ask a privacy officer to approve a retry" in rules.regenerate_refusal(alice, failed)
    assert _who_may(rules.retry_ask_refusal, failed) == {OWNER}
    assert _who_may(rules.retry_decide_refusal, failed) == {OFFICER, SECOND_OFFICER}
    asked = _facts(
        status="gate_failed",
        job_id="job",
        attempts_used=1,
        privacy_failures=("singling_out_risk",),
        retry_pending=True,
    )
    assert _who_may(rules.retry_ask_refusal, asked) == set()
    assert _who_may(rules.retry_decide_refusal, asked) == {OFFICER, SECOND_OFFICER}


def test_without_a_privacy_failure_there_is_no_retry_to_ask_for() -> None:
    failed = _facts(status="gate_failed", job_id="job", attempts_used=1)
    assert _who_may(rules.retry_ask_refusal, failed) == set()
    assert _who_may(rules.retry_decide_refusal, failed) == set()
    assert "no officer's approval is needed" in rules.retry_ask_refusal(alice, failed)


def test_an_uploaded_file_that_failed_a_privacy_check_needs_an_approved_retry_first() -> None:
    fields: dict[str, Any] = {
        "status": "gate_failed",
        "job_id": "job",
        "synthesizer": "external_upload",
        "attempts_used": 1,
        "privacy_failures": ("singling_out_risk",),
    }
    assert _who_may(rules.upload_refusal, _facts(**fields)) == set()
    assert _who_may(rules.upload_refusal, _facts(**fields, approved_retry_waiting=True)) == {OWNER}


def test_a_file_still_being_validated_blocks_the_next_upload() -> None:
    validating = _facts(status="approved", job_id="job", synthesizer="external_upload", attempts_used=1)
    assert rules.upload_refusal(alice, validating) == "The last uploaded file is still being validated."


def test_two_different_officers_other_than_the_requester_override_a_failed_gate() -> None:
    failed = _facts(status="gate_failed", job_id="job")
    assert _who_may(rules.override_propose_refusal, failed) == {OFFICER, SECOND_OFFICER}
    assert _who_may(rules.override_decide_refusal, failed) == set()
    proposed = _facts(status="gate_failed", job_id="job", override_pending=True, override_proposer_id=OFFICER)
    assert _who_may(rules.override_propose_refusal, proposed) == set()
    assert _who_may(rules.override_decide_refusal, proposed) == {SECOND_OFFICER}
    own = _facts(status="gate_failed", job_id="job", requester_id=SECOND_OFFICER)
    assert _who_may(rules.override_propose_refusal, own) == {OFFICER}
    published = _facts(status="published", job_id="job")
    assert _who_may(rules.override_propose_refusal, published) == set()


@pytest.mark.parametrize(("tier", "chooser"), [("medium", {OWNER}), ("high", {OFFICER, SECOND_OFFICER})])
def test_the_bakeoff_candidate_is_chosen_by_the_requester_or_for_high_tier_an_officer(
    tier: str, chooser: set[int]
) -> None:
    waiting = _facts(status="awaiting_choice", tier_level=tier, candidates=[{"synthesizer": "ctgan"}])
    assert _who_may(rules.choose_refusal, waiting) == chooser
    assert _who_may(rules.choose_refusal, _facts(status="awaiting_choice", tier_level=tier)) == set()


def test_every_refusal_is_a_sentence_and_every_allowed_action_is_empty() -> None:
    facts = _facts(status="gate_failed", job_id="job", attempts_used=1)
    for rule in (rules.regenerate_refusal, rules.override_propose_refusal, rules.edit_refusal):
        for user in EVERYONE:
            answer = rule(user, facts)
            assert answer == "" or (answer[0].isupper() and answer.rstrip().endswith((".", ")")))
