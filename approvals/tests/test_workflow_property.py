"""Property: no sequence of actions, by anyone, reaches an approved state without the quorum.

Hypothesis draws sequences of (actor, action) and runs them through the real services against
the test database (each example rolled back). After every step it checks the invariants:

- approved => in the approving round, distinct approvers in a reviewer role named by the tier,
  at least the required number (two for high tier), at least one privacy officer, and for an
  external audience at least one approver outside the requester's team; a job exists;
- in review => the quorum is not yet met (else it would have been approved);
- the requester never decides; nobody decides twice in a round;
- a refused action (403/404/409/400) changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from approvals.choices import DecisionKind, RequestStatus
from approvals.models import GenerationRequest
from approvals.services import (
    RequestInput,
    request_cancel,
    request_create,
    request_decide,
    request_submit,
    request_update,
    round_quorum,
)
from approvals.tests.conftest import NO_QI_COLUMNS, FakeDPSynthesizer
from conftest import SAFE_COLUMNS
from core.errors import DomainError
from core.roles import Role

# alice files; bob is her teammate; oscar (officer) and cora (steward) are on her team too;
# olivia (officer) and sam (steward) are not; ada is an administrator.
REVIEWERS = ["olivia", "oscar", "sam", "cora"]
# (audience, columns, DP?): medium internal, medium organization, high external (non-DP),
# medium external (DP, one approval), prohibited external (non-DP with quasi-identifiers).
SHAPES = [
    ("internal", SAFE_COLUMNS, False),
    ("organization", SAFE_COLUMNS, False),
    ("external", NO_QI_COLUMNS, False),
    ("external", NO_QI_COLUMNS, True),
    ("external", SAFE_COLUMNS, False),
]
shape = st.integers(0, len(SHAPES) - 1)
# Steps are drawn so that reviewers' approvals are common (the property is about reaching
# "approved"), while the requester and people who may not decide still act now and then.
reviewer_step = st.tuples(
    st.sampled_from(REVIEWERS), st.sampled_from(["approve"] * 4 + ["reject", "request_changes"]), shape
)
requester_step = st.tuples(st.just("alice"), st.sampled_from(["submit", "cancel", "edit"]), shape)
outsider_step = st.tuples(
    st.sampled_from(["alice", "bob", "ada"]), st.sampled_from(["approve", "reject", "submit"]), shape
)
step = st.one_of(reviewer_step, reviewer_step, reviewer_step, requester_step, outsider_step)


class Rollback(Exception):
    """Raised to undo an example's writes (each example starts from the same database)."""


def _run(action: str, actor: Any, request: GenerationRequest, shape: int, dataset: Any) -> None:
    if action == "submit":
        request_submit(actor=actor, request_id=request.pk)
    elif action == "cancel":
        request_cancel(actor=actor, request_id=request.pk)
    elif action == "edit":
        request_update(actor=actor, request_id=request.pk, data=_input(dataset, *SHAPES[shape]))
    else:
        request_decide(actor=actor, request_id=request.pk, decision=action, comment="because")


def _input(dataset: Any, audience: str, columns: list[str], dp: bool) -> RequestInput:
    return RequestInput(
        dataset_id=dataset.pk,
        title="Property",
        purpose="Property test",
        intended_use="Nowhere",
        audience=audience,
        columns=columns,
        synthesizer=FakeDPSynthesizer.name if dp else "gaussian_copula",
        epsilon=1 if dp else None,
        rows=100,
    )


def _snapshot(request: GenerationRequest) -> tuple[Any, ...]:
    request.refresh_from_db()
    decisions = tuple(request.decisions.order_by("pk").values_list("pk", "decision"))
    return (
        request.status,
        request.review_round,
        request.tier_level,
        request.audience,
        request.job_id,
        decisions,
    )


def _check_invariants(request: GenerationRequest) -> None:
    request.refresh_from_db()
    decisions = list(request.decisions.all())
    assert all(d.reviewer_id != request.requester_id for d in decisions), "the requester decided"
    rounds = [(d.reviewer_id, d.review_round) for d in decisions]
    assert len(rounds) == len(set(rounds)), "someone decided twice in one round"
    if request.status == RequestStatus.APPROVED:
        _check_approved(request, [d for d in decisions if d.review_round == request.review_round])
    if request.status == RequestStatus.IN_REVIEW:
        assert not round_quorum(request).satisfied, "quorum met but still in review"
    if request.tier_level == "prohibited":
        assert request.status == RequestStatus.REJECTED or request.status in (
            RequestStatus.CHANGES_REQUESTED,
            RequestStatus.CANCELLED,
        )


def _check_approved(request: GenerationRequest, this_round: list[Any]) -> None:
    approvals = [d for d in this_round if d.decision == DecisionKind.APPROVE]
    approvers = {d.reviewer_id for d in approvals}
    roles = {Role.PRIVACY_OFFICER, *request.tier_controls.get("approver_roles", [])}
    needed = max(1, request.required_approvals, 2 if request.tier_level == "high" else 1)
    assert request.job_id is not None
    assert len(approvers) == len(approvals) >= needed
    assert all(d.reviewer_role in roles for d in approvals)
    assert any(d.reviewer_role == Role.PRIVACY_OFFICER for d in approvals)
    assert all(d.decision == DecisionKind.APPROVE for d in this_round), "approved over a rejection"
    if request.audience == "external":
        assert any(d.reviewer_team_id != request.team_id for d in approvals)


@pytest.fixture
def cora(make_user: Any, alice: Any) -> Any:
    """A data steward on alice's team (Cardiology)."""
    return make_user("cora", "data_steward", "Cardiology")


@pytest.mark.django_db
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # no .hypothesis/ folder in the repository; the explicit examples below persist
)
@given(start=shape, steps=st.lists(step, min_size=1, max_size=10))
# Sequences that once broke (or would break) a rule, always tried before the random ones:
@example(start=2, steps=[("sam", "approve", 0), ("cora", "approve", 0)])  # two stewards, no officer
@example(start=3, steps=[("oscar", "approve", 0)])  # a teammate alone, external audience
@example(start=2, steps=[("oscar", "approve", 0), ("cora", "approve", 0)])  # the whole team, external
@example(start=2, steps=[("olivia", "approve", 0), ("olivia", "approve", 0)])  # one person twice
@example(start=0, steps=[("alice", "approve", 0), ("bob", "approve", 0), ("ada", "approve", 0)])
@example(start=2, steps=[("olivia", "approve", 0), ("sam", "reject", 0), ("oscar", "approve", 0)])
@example(
    start=0,
    steps=[
        ("olivia", "request_changes", 2),
        ("alice", "edit", 2),
        ("alice", "submit", 0),
        ("oscar", "approve", 0),
    ],
)
def test_no_sequence_of_actions_approves_without_quorum(
    start: int,
    steps: list[tuple[str, str, int]],
    dataset: Any,
    dp_synthesizer: str,
    alice: Any,
    bob: Any,
    olivia: Any,
    oscar: Any,
    sam: Any,
    cora: Any,
    ada: Any,
) -> None:
    people = {
        "alice": alice,
        "bob": bob,
        "olivia": olivia,
        "oscar": oscar,
        "sam": sam,
        "cora": cora,
        "ada": ada,
    }
    try:
        with transaction.atomic():
            request = request_create(actor=alice, data=_input(dataset, *SHAPES[start]))
            # Start in review (or prohibited): sequences that never submit explore nothing.
            request_submit(actor=alice, request_id=request.pk)
            for who, action, shape in steps:
                before = _snapshot(request)
                try:
                    _run(action, people[who], request, shape, dataset)
                except DomainError:
                    assert _snapshot(request) == before, f"refused {action} by {who} changed the request"
                _check_invariants(request)
            event(f"ended {request.status}")  # shows in --hypothesis-show-statistics
            raise Rollback
    except Rollback:
        pass


@pytest.mark.django_db
def test_the_property_reaches_approval_at_all(dataset: Any, alice: Any, olivia: Any, sam: Any) -> None:
    """Guards the property test against vacuity: the high-tier path it explores does approve."""
    request = request_create(actor=alice, data=_input(dataset, "external", NO_QI_COLUMNS, False))
    request_submit(actor=alice, request_id=request.pk)
    request_decide(actor=olivia, request_id=request.pk, decision="approve")
    request_decide(actor=sam, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    _check_invariants(request)
