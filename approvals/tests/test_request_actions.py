"""What each persona may do with a request, asked once (approvals.selectors.request_actions_for)
and answered the same way by the page's buttons, the API's `actions` and the services.

Personas (conftest.py): alice owns the request, bob is her teammate, charlie is on another team,
olivia is a privacy officer, sam a data steward, ada an admin, audrey an auditor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from approvals.choices import RequestStatus
from approvals.models import GenerationRequest
from approvals.selectors import request_actions_for
from approvals.services import (
    RequestInput,
    request_cancel,
    request_decide,
    request_regenerate,
    request_submit,
    request_update,
    retry_approve,
    retry_ask,
)
from approvals.tests.conftest import NO_QI_COLUMNS
from conftest import SAFE_COLUMNS
from core.errors import DomainError
from generation.choices import JobState
from generation.models import SynthesisJob
from validation.models import ValidationReport

PERSONAS = ["alice", "bob", "charlie", "olivia", "sam", "ada", "audrey"]
ACTIONS = [
    "can_edit",
    "can_submit",
    "can_withdraw",
    "can_stop_job",
    "can_decide",
    "can_regenerate",
    "can_upload",
    "can_ask_retry",
    "can_decide_retry",
    "can_propose_override",
    "can_decide_override",
    "can_choose_candidate",
]

# What each persona may do in each state; anyone not named may do nothing.
EXPECTED: dict[str, dict[str, set[str]]] = {
    "draft": {"alice": {"can_edit", "can_submit", "can_withdraw"}},
    "in_review": {"alice": {"can_withdraw"}, "olivia": {"can_decide"}},
    # High tier names stewards as approvers too.
    "in_review_high": {"alice": {"can_withdraw"}, "olivia": {"can_decide"}, "sam": {"can_decide"}},
    "approved": {"alice": {"can_stop_job"}, "olivia": {"can_stop_job"}},
    "gate_failed": {"alice": {"can_regenerate"}, "olivia": {"can_regenerate", "can_propose_override"}},
    "privacy_failed": {
        "alice": {"can_ask_retry"},
        "olivia": {"can_decide_retry", "can_propose_override"},
    },
    "awaiting_upload": {"alice": {"can_upload", "can_withdraw"}},
}

# What the request page shows for each action when (and only when) it is allowed.
BUTTONS = {
    "can_edit": "Edit request",
    "can_submit": "Submit for review",
    "can_withdraw": ">Withdraw<",
    "can_stop_job": "Cancel generation",
    "can_decide": "Record decision",
    "can_regenerate": "Generate again",
    "can_upload": 'data-testid="upload-form"',
    "can_ask_retry": "Ask a privacy officer for a retry",
    "can_decide_retry": "Approve retry",
    "can_propose_override": "Propose override",
    "can_decide_override": "Approve override and publish",
    "can_choose_candidate": 'data-testid="choose-form"',
}

_UTILITY_FAILURE = {
    "name": "column_shape_similarity",
    "kind": "utility",
    "passed": False,
    "status": "failed",
    "value": 0.8,
    "threshold": 0.999,
    "direction": "min",
}
_PRIVACY_FAILURE = {
    "name": "singling_out_risk",
    "kind": "privacy",
    "passed": False,
    "status": "failed",
    "value": 0.4,
    "threshold": 0.1,
    "direction": "max",
}


def _fail_gate(request: GenerationRequest, *, privacy: bool) -> GenerationRequest:
    """The request's job ended at the gate (on a privacy check too, if `privacy`)."""
    SynthesisJob.objects.filter(pk=request.job_id).update(state=JobState.GATE_FAILED)
    checks = [_UTILITY_FAILURE, _PRIVACY_FAILURE] if privacy else [_UTILITY_FAILURE]
    ValidationReport.objects.create(job_id=request.job_id, checks=checks, metrics={}, passed=False)
    controls = {**request.tier_controls, "max_generation_attempts": 3}
    GenerationRequest.objects.filter(pk=request.pk).update(
        status=RequestStatus.GATE_FAILED, tier_controls=controls
    )
    return GenerationRequest.objects.get(pk=request.pk)


@pytest.fixture
def people(
    alice: Any, bob: Any, charlie: Any, olivia: Any, sam: Any, ada: Any, audrey: Any
) -> dict[str, Any]:
    return {
        "alice": alice,
        "bob": bob,
        "charlie": charlie,
        "olivia": olivia,
        "sam": sam,
        "ada": ada,
        "audrey": audrey,
    }


@pytest.fixture
def in_state(
    make_request: Callable[..., Any], submit: Callable[..., Any], olivia: Any
) -> Callable[[str], GenerationRequest]:
    """in_state(name) -> alice's request in that state (see EXPECTED)."""

    def approved(**overrides: Any) -> GenerationRequest:
        request = submit(**overrides)
        request_decide(actor=olivia, request_id=request.pk, decision="approve")
        return GenerationRequest.objects.get(pk=request.pk)

    builders: dict[str, Callable[[], GenerationRequest]] = {
        "draft": make_request,
        "in_review": submit,
        "in_review_high": lambda: submit(audience="external", columns=NO_QI_COLUMNS),
        "approved": approved,
        "gate_failed": lambda: _fail_gate(approved(), privacy=False),
        "privacy_failed": lambda: _fail_gate(approved(), privacy=True),
        "awaiting_upload": lambda: approved(synthesizer="external_upload"),
    }

    def build(name: str) -> GenerationRequest:
        request = builders[name]()
        expected = {
            "draft": RequestStatus.DRAFT,
            "in_review": RequestStatus.IN_REVIEW,
            "in_review_high": RequestStatus.IN_REVIEW,
            "approved": RequestStatus.APPROVED,
            "gate_failed": RequestStatus.GATE_FAILED,
            "privacy_failed": RequestStatus.GATE_FAILED,
            "awaiting_upload": RequestStatus.APPROVED,
        }[name]
        assert request.status == expected
        return GenerationRequest.objects.get(pk=request.pk)

    return build


def _allowed(user: Any, request: GenerationRequest) -> set[str]:
    actions = request_actions_for(user=user, request=request)
    return {name for name in ACTIONS if getattr(actions, name).allowed}


# --- The answer per persona, and the page and the API rendering it --------------------------------


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("state", list(EXPECTED))
def test_each_persona_may_do_exactly_what_the_rules_allow_and_the_page_shows_just_that(
    state: str, persona: str, people: dict[str, Any], in_state: Callable[[str], Any], client: Client
) -> None:
    request = in_state(state)
    user = people[persona]
    assert _allowed(user, request) == EXPECTED[state].get(persona, set())

    client.force_login(user)
    page = client.get(f"/requests/{request.pk}/")
    if persona == "charlie":  # another team does not even learn the request exists
        assert page.status_code == 404
        return
    html = page.content.decode()
    shown = {name for name, marker in BUTTONS.items() if marker in html}
    assert shown == EXPECTED[state].get(persona, set())


@pytest.mark.parametrize("persona", ["alice", "bob", "olivia", "sam", "audrey"])
def test_the_api_gives_each_caller_their_own_actions_with_reasons(
    persona: str, people: dict[str, Any], in_state: Callable[[str], Any], api: Callable[[Any], Any]
) -> None:
    request = in_state("in_review")
    body = api(people[persona]).get(f"/api/v1/requests/{request.pk}/").json()
    actions = body["actions"]
    assert set(actions) == set(ACTIONS)
    allowed = {name for name, answer in actions.items() if answer["allowed"]}
    assert allowed == EXPECTED["in_review"].get(persona, set())
    for answer in actions.values():
        assert bool(answer["reason"]) != answer["allowed"]  # a refusal always says why
    listed = api(people[persona]).get("/api/v1/requests/").json()["results"]
    assert [r["actions"] for r in listed if r["id"] == str(request.pk)] == [actions]


def test_the_api_says_why_an_action_is_refused(
    in_state: Callable[[str], Any], api: Callable[[Any], Any], bob: Any, olivia: Any
) -> None:
    request = in_state("draft")
    refused = api(bob).get(f"/api/v1/requests/{request.pk}/")
    assert refused.status_code == 404  # a teammate's draft is not shown at all
    request = in_state("in_review")
    actions = api(bob).get(f"/api/v1/requests/{request.pk}/").json()["actions"]
    assert actions["can_withdraw"] == {
        "allowed": False,
        "reason": "Only the requester can withdraw this request.",
    }
    actions = api(olivia).get(f"/api/v1/requests/{request.pk}/").json()["actions"]
    assert actions["can_decide"] == {"allowed": True, "reason": ""}


def test_a_reviewer_who_decided_this_round_is_offered_no_second_decision(
    in_state: Callable[[str], Any], olivia: Any, sam: Any, client: Client
) -> None:
    request = in_state("in_review_high")
    request_decide(actor=olivia, request_id=request.pk, decision="approve")
    request.refresh_from_db()
    assert request.status == RequestStatus.IN_REVIEW  # high tier waits for a second approver
    actions = request_actions_for(user=olivia, request=request)
    assert actions.can_decide.reason == "You already decided this review round."
    assert request_actions_for(user=sam, request=request).can_decide.allowed
    client.force_login(olivia)
    assert "Record decision" not in client.get(f"/requests/{request.pk}/").content.decode()


# --- The services take exactly what the rules allow ------------------------------------------------

_FIELDS = {
    "title": "Readmission model prototype, revised",
    "purpose": "Prototype a 30-day mortality model",
    "intended_use": "Feature engineering in a notebook",
    "audience": "internal",
    "columns": SAFE_COLUMNS,
    "synthesizer": "gaussian_copula",
    "rows": 200,
}
_COMMENT = "The attack margin was small and a new seed is acceptable here."

CALLS: dict[str, Callable[[Any, GenerationRequest], Any]] = {
    "can_edit": lambda actor, r: request_update(
        actor=actor, request_id=r.pk, data=RequestInput(dataset_id=r.dataset_id, **_FIELDS)
    ),
    "can_submit": lambda actor, r: request_submit(actor=actor, request_id=r.pk),
    "can_withdraw": lambda actor, r: request_cancel(actor=actor, request_id=r.pk),
    "can_stop_job": lambda actor, r: request_cancel(actor=actor, request_id=r.pk),
    "can_decide": lambda actor, r: request_decide(actor=actor, request_id=r.pk, decision="approve"),
    "can_regenerate": lambda actor, r: request_regenerate(actor=actor, request_id=r.pk),
    "can_ask_retry": lambda actor, r: retry_ask(actor=actor, request_id=r.pk),
    "can_decide_retry": lambda actor, r: retry_approve(actor=actor, request_id=r.pk, comment=_COMMENT),
}
CASES = [
    ("draft", "can_edit"),
    ("draft", "can_submit"),
    ("draft", "can_withdraw"),
    ("in_review", "can_submit"),
    ("in_review", "can_withdraw"),
    ("in_review", "can_decide"),
    ("in_review_high", "can_decide"),
    ("approved", "can_stop_job"),
    ("gate_failed", "can_regenerate"),
    ("privacy_failed", "can_regenerate"),
    ("privacy_failed", "can_ask_retry"),
    ("privacy_failed", "can_decide_retry"),
    ("awaiting_upload", "can_withdraw"),
]


def _footprint(request: GenerationRequest) -> tuple[Any, ...]:
    """What any of these actions changes: the request row and the records hanging off it."""
    r = GenerationRequest.objects.get(pk=request.pk)
    job_state = SynthesisJob.objects.filter(pk=r.job_id).values_list("state", "cancel_requested").first()
    return (
        r.status,
        r.updated_at,
        r.job_id,
        job_state,
        r.decisions.count(),
        r.attempts.count(),
        r.privacy_retries.count(),
    )


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(("state", "action"), CASES)
def test_a_service_takes_the_action_exactly_when_the_rules_allow_it(
    state: str, action: str, persona: str, people: dict[str, Any], in_state: Callable[[str], Any]
) -> None:
    request = in_state(state)
    user = people[persona]
    allowed = getattr(request_actions_for(user=user, request=request), action).allowed
    assert allowed == (action in EXPECTED[state].get(persona, set()))
    before = _footprint(request)
    try:
        CALLS[action](user, request)
    except DomainError:
        took_it = False
    else:
        took_it = _footprint(request) != before  # a refused repeat is a no-op, never a change
    assert took_it == allowed
