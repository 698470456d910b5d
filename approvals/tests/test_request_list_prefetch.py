"""A listed request carries its related rows as plain lists (approvals.selectors.listed_requests,
issue 16: no related queryset is built per row and relation), and every reader of those rows
answers from them exactly what it answers from the database for the same request fetched alone:
the actions, the facts behind them, the latest attempt's jobs and the rendered item."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.api.serializers import RequestOutputSerializer
from approvals.selectors import (
    LISTED_ATTRS,
    latest_attempt_jobs,
    listed_rows,
    request_action_answers,
    request_actions_for,
    request_facts_for,
    requests_listed_for,
    requests_visible_to,
)
from approvals.tests.test_request_list_queries import file_requests  # noqa: F401  (a fixture)


def test_listed_requests_hold_plain_lists_and_no_related_querysets(
    file_requests: Callable[[int], None],  # noqa: F811
    olivia: Any,
) -> None:
    file_requests(1)
    listed = list(requests_listed_for(user=olivia))
    assert listed
    for request in listed:
        for related in ("decisions", "attempts", "gate_overrides", "privacy_retries"):
            assert type(request.__dict__[LISTED_ATTRS[related]]) is list, related
        for attempt in request.__dict__[LISTED_ATTRS["attempts"]]:
            assert type(attempt.__dict__[LISTED_ATTRS["candidates"]]) is list
        # The related managers' caches (a queryset per row and relation) are not filled.
        assert not getattr(request, "_prefetched_objects_cache", {})
    # Reading them, and everything a list item shows, is no further query.
    with CaptureQueriesContext(connection) as queries:
        for request in listed:
            for related in ("decisions", "attempts", "gate_overrides", "privacy_retries"):
                listed_rows(request, related)
            request_facts_for(request)
            latest_attempt_jobs(request)
    assert len(queries) == 0


def test_listed_rows_answer_what_the_database_answers(
    file_requests: Callable[[int], None],  # noqa: F811
    olivia: Any,
    alice: Any,
    pia: Any,
) -> None:
    file_requests(1)
    for user in (olivia, alice, pia):
        alone = {r.pk: r for r in requests_visible_to(user=user)}
        listed = list(requests_listed_for(user=user))
        assert sorted(r.pk for r in listed) == sorted(alone)
        for request in listed:
            single = alone[request.pk]
            for related in ("decisions", "attempts", "gate_overrides", "privacy_retries"):
                assert [r.pk for r in listed_rows(request, related)] == [
                    r.pk for r in getattr(single, related).all()
                ], related
            assert [j.pk for j in latest_attempt_jobs(request)] == [j.pk for j in latest_attempt_jobs(single)]
            assert request_facts_for(request) == request_facts_for(single)
            answers = request_action_answers(user=user, request=request)
            assert answers == request_actions_for(user=user, request=single).as_dict()
            assert list(answers) == list(request_actions_for(user=user, request=single).as_dict())
            context = {"request": type("R", (), {"user": user})()}
            assert RequestOutputSerializer(context=context).to_representation(
                request
            ) == RequestOutputSerializer(context=context).to_representation(single)
    # Some of those requests have something to compare: refusals and allowed actions alike.
    answers = [request_action_answers(user=olivia, request=r) for r in requests_listed_for(user=olivia)]
    assert any(a["can_decide"]["allowed"] for a in answers)
    assert any(a["can_decide_retry"]["allowed"] for a in answers)
    assert any(not a["can_regenerate"]["allowed"] and a["can_regenerate"]["reason"] for a in answers)
