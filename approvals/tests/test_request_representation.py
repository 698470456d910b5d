"""RequestOutputSerializer builds each request's dict straight from the fetched rows (fast enough
for GET /api/v1/requests/ under load: issue 16); this checks it renders exactly what DRF's generic
path over the declared fields renders (API.md's fixed contract), field for field and byte for byte
as JSON, for requests in every state a list shows, listed (prefetched) and one at a time."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from approvals.api.serializers import RequestOutputSerializer
from approvals.selectors import requests_listed_for, requests_visible_to
from approvals.tests.conftest import NO_QI_COLUMNS
from approvals.tests.test_request_list_queries import file_requests  # noqa: F401  (a fixture)
from conftest import SAFE_COLUMNS


def _both(obj: Any, user: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    context = {"request": SimpleNamespace(user=user)}
    fast = RequestOutputSerializer(context=context).to_representation(obj)
    generic = serializers.ModelSerializer.to_representation(RequestOutputSerializer(context=context), obj)
    return fast, dict(generic)


def _assert_same(rows: list[Any], user: Any) -> None:
    assert rows
    for obj in rows:
        fast, generic = _both(obj, user)
        assert list(fast) == list(generic), "the fields (or their order) differ"
        for name, value in generic.items():
            assert fast[name] == value, f"{name}: {fast[name]!r} != {value!r}"
        assert JSONRenderer().render(fast) == JSONRenderer().render(generic)


def test_a_request_renders_as_the_declared_fields_would_in_every_listed_state(
    file_requests: Callable[[int], None],  # noqa: F811
    olivia: Any,
    alice: Any,
    make_request: Callable[..., Any],
    submit: Callable[..., Any],
    dp_synthesizer: str,
) -> None:
    file_requests(1)
    make_request()  # a draft (alice's only)
    make_request(synthesizer=dp_synthesizer, epsilon=0.5, columns=SAFE_COLUMNS)  # a DP draft: budget
    submit(columns=NO_QI_COLUMNS, synthesizer=dp_synthesizer, epsilon=1)  # DP in review: budget, quorum
    for user in (olivia, alice):
        listed = list(requests_listed_for(user=user))
        assert any(r.status == "draft" for r in listed) == (user == alice)
        _assert_same(listed, user)  # as a list renders them (prefetched)
        _assert_same(list(requests_visible_to(user=user)), user)  # as the detail endpoint does
    # Null-able values are exercised: a budget, a tier, a quorum, a job, attempts, a retry.
    rendered = [_both(r, olivia)[0] for r in requests_listed_for(user=olivia)]
    for name in ("budget", "tier", "quorum", "job", "retry", "epsilon"):
        assert any(row[name] is not None for row in rendered), name
    assert any(row["attempts"] and row["privacy_retries"] and row["gate_overrides"] == [] for row in rendered)
    assert any(row["gate_overrides"] for row in rendered)
