"""core.pagination.KeysFirst: a page's keys from the bare table, then its rows with their joins.
Same rows and order as slicing the queryset, and the keys query joins nothing (so an index on the
ordering column can serve it on SQLite, which otherwise planned the join first: issue 16)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.paginator import Paginator
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.selectors import listed_requests, requests_visible_to
from core.pagination import KeysFirst

pytestmark = pytest.mark.django_db


@pytest.fixture
def listed(make_request: Callable[..., Any], alice: Any) -> Any:
    for i in range(7):
        make_request(title=f"Prototype {i}")
    return listed_requests(requests_visible_to(user=alice))


@pytest.mark.parametrize("per_page", [1, 3, 7, 50])
def test_every_page_holds_the_rows_slicing_gives_in_the_same_order(listed: Any, per_page: int) -> None:
    plain, keyed = Paginator(listed, per_page), Paginator(KeysFirst(listed), per_page)
    assert keyed.count == plain.count == 7 and keyed.num_pages == plain.num_pages
    for number in plain.page_range:
        expected = [r.pk for r in plain.page(number)]
        got = keyed.page(number)
        assert [r.pk for r in got] == expected
    # The rows come with what the queryset prefetches (the listed attributes are plain lists).
    assert all(isinstance(r.listed_decisions, list) for r in keyed.page(1))


def test_the_keys_query_joins_nothing(listed: Any) -> None:
    with CaptureQueriesContext(connection) as captured:
        KeysFirst(listed)[0:3]
    keys_sql = captured.captured_queries[0]["sql"].upper()
    assert " JOIN " not in keys_sql and "ORDER BY" in keys_sql and "LIMIT" in keys_sql


def test_an_index_past_the_end_is_an_index_error(listed: Any) -> None:
    assert KeysFirst(listed)[0].pk == listed[0].pk
    with pytest.raises(IndexError):
        KeysFirst(listed)[7]
