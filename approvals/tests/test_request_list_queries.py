"""The request list API costs the same number of queries whatever the number of requests: every
per-row field (quorum, actions, budget) reads from what the list fetched at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext


def _listed(api: Any, user: Any) -> tuple[int, int]:
    """(requests listed, queries the list took)."""
    with CaptureQueriesContext(connection) as queries:
        response = api(user).get("/api/v1/requests/")
    assert response.status_code == 200
    return len(response.json()), len(queries)


def test_the_request_list_costs_the_same_queries_for_3_and_for_30_requests(
    api: Any, olivia: Any, alice: Any, submit: Callable[..., Any]
) -> None:
    from approvals.services import request_decide

    def file(count: int) -> None:
        for n in range(count):
            request = submit()
            if n % 3 == 0:  # some with a decision in the round, so the quorum has rows to count
                request_decide(actor=olivia, request_id=request.pk, decision="request_changes", comment="x")

    file(3)
    listed, few = _listed(api, olivia)
    assert listed == 3
    file(27)
    listed, many = _listed(api, olivia)
    assert listed == 30
    assert many == few, f"{few} queries for 3 requests, {many} for 30: a per-row query crept in"
