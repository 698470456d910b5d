"""The lists' counts and keys read covering indexes, not table rows (issue 16).

A request row carries about 1 KB of JSON and a release row about 36 KB of metrics, so on SQLite a
plan that visits rows to test who may see them costs milliseconds per thousand rows (a
scientist's "ask to use" count took 63 ms at 5,000 releases; the officer's request count 4.3 ms
at 10,000). These tests ask SQLite how it would run each list's count, page of keys and
pending-decision query with the statistics a year of use leaves (sqlite_stat1 as ANALYZE wrote it
over bench/pages.py's 10,000 requests and 5,000 releases, as the hourly synthgate.db.analyze task
keeps it), and require an index that covers the query, never the table's rows. PostgreSQL plans
by its own statistics; there the same indexes allow index-only scans (bench/pages.py
--database-url measures them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from approvals.selectors import (
    RequestFilters,
    overrides_awaiting_officer,
    requests_filtered,
    requests_visible_to,
    retries_awaiting_officer,
    review_queue,
)
from catalog.selectors import releases_to_ask_for

pytestmark = pytest.mark.django_db

# What the hourly ANALYZE (core.dbstats.analyze, exact statistics) recorded in bench/pages.py's
# database at 10,000 requests (5 teams), 5,000 releases, 900 access requests and 22,003 notifications:
# (table, index, stat).
YEAR_OF_USE = [
    ("approvals_generationrequest", "approvals_g_status_3427cd_idx", "10000 2500 2"),
    ("approvals_generationrequest", "approvals_generationrequest_dataset_id_451c7de1", "10000 100"),
    ("approvals_generationrequest", "approvals_generationrequest_policy_id_8971ea7d", "10000 5000"),
    ("approvals_generationrequest", "approvals_generationrequest_requester_id_5ed9e035", "10000 500"),
    ("approvals_generationrequest", "approvals_generationrequest_team_id_9fc3ae85", "10000 2000"),
    ("approvals_generationrequest", "request_created_idx", "10000 1"),
    ("approvals_generationrequest", "request_dataset_created_idx", "10000 100 1"),
    ("approvals_generationrequest", "request_kind_created_idx", "10000 10000 1"),
    ("approvals_generationrequest", "request_mine_idx", "10000 500 278 278 1 1"),
    ("approvals_generationrequest", "request_status_created_idx", "10000 2500 1"),
    ("approvals_generationrequest", "request_team_created_idx", "10000 2000 1"),
    ("approvals_generationrequest", "request_team_seen_idx", "10000 2000 527 278 1 1"),
    ("approvals_generationrequest", "request_tier_created_idx", "10000 5000 1"),
    ("approvals_generationrequest", "request_visibility_idx", "10000 2500 278 278"),
    ("approvals_generationrequest", "sqlite_autoindex_approvals_generationrequest_1", "10000 1"),
    ("approvals_generationrequest", "sqlite_autoindex_approvals_generationrequest_2", "10000 2"),
    ("catalog_accessrequest", "access_created_idx", "900 1"),
    ("catalog_accessrequest", "access_status_created_idx", "900 450 1"),
    ("catalog_accessrequest", "catalog_accessrequest_decided_by_id_6a94a1e0", "900 450"),
    ("catalog_accessrequest", "catalog_accessrequest_release_id_6cd6948f", "900 1"),
    ("catalog_accessrequest", "catalog_accessrequest_requester_id_149aa61b", "900 900"),
    ("catalog_accessrequest", "sqlite_autoindex_catalog_accessrequest_1", "900 1"),
    ("catalog_release", "catalog_release_dataset_id_d41869c4", "5000 100"),
    ("catalog_release", "catalog_release_requester_id_98367196", "5000 5000"),
    ("catalog_release", "catalog_release_team_id_35cade92", "5000 1000"),
    ("catalog_release", "catalog_release_withdrawn_by_id_12ce6294", "5000 5000"),
    ("catalog_release", "release_audience_created_idx", "5000 2500 1"),
    ("catalog_release", "release_created_idx", "5000 1"),
    ("catalog_release", "release_dataset_created_idx", "5000 100 1"),
    ("catalog_release", "release_kind_created_idx", "5000 5000 1"),
    ("catalog_release", "release_state_idx", "5000 5000 1 1 1 1 1 1 1"),
    ("catalog_release", "release_team_created_idx", "5000 1000 1"),
    ("catalog_release", "release_visibility_idx", "5000 2500 2500 500 500 95 95 95 1 1 1"),
    ("catalog_release", "sqlite_autoindex_catalog_release_1", "5000 1"),
    ("catalog_release", "sqlite_autoindex_catalog_release_2", "5000 1"),
    ("catalog_release", "sqlite_autoindex_catalog_release_3", "5000 1"),
    ("catalog_release", "sqlite_autoindex_catalog_release_4", "5000 5000"),
    ("notifications_notification", "notification_inbox_idx", "22003 1048 1 1"),
    ("notifications_notification", "notification_unread", "22003 1048 1048"),
    ("notifications_notification", "notifications_notification_created_at_10160fdd", "22003 1"),
    ("notifications_notification", "notifications_notification_recipient_id_d055f3f0", "22003 1048"),
    ("notifications_notification", "sqlite_autoindex_notifications_notification_1", "22003 1048 1"),
]


@pytest.fixture
def year_of_use_statistics(db: Any) -> None:
    # These tests run in make test's SQLite stage (they are not `services` tests); anywhere else
    # they fail rather than skip.
    assert connection.vendor == "sqlite", "these tests ask SQLite's query planner (EXPLAIN QUERY PLAN)"
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # creates sqlite_stat1
        cursor.execute("DELETE FROM sqlite_stat1")
        cursor.executemany("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (%s, %s, %s)", YEAR_OF_USE)
        cursor.execute("ANALYZE sqlite_schema")  # the planner reloads the statistics


def plan_of(run: Callable[[], Any]) -> str:
    """SQLite's plan for the first query `run` sends."""
    sent: list[tuple[str, Any]] = []

    def capture(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        run()
    sql, params = sent[0]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return "; ".join(str(row[3]) for row in cursor.fetchall())


def reads_no_rows_of(plan: str, *names: str) -> bool:
    """Every step that reads a table named (or aliased) `names` does so through a covering index."""
    steps = [
        s for s in plan.split("; ") if s.split(" ")[0] in ("SCAN", "SEARCH") and s.split(" ")[1] in names
    ]
    return bool(steps) and all("COVERING INDEX" in s for s in steps)


REQUESTS = "approvals_generationrequest"


@pytest.mark.usefixtures("year_of_use_statistics")
@pytest.mark.parametrize("who", ["olivia", "alice"])  # a privacy officer; a data scientist of a team
def test_a_request_list_counts_from_indexes(who: str, request: pytest.FixtureRequest) -> None:
    user = request.getfixturevalue(who)
    plan = plan_of(requests_visible_to(user=user).count)
    assert reads_no_rows_of(plan, REQUESTS), plan


@pytest.mark.usefixtures("year_of_use_statistics")
def test_a_scientists_page_of_keys_reads_no_request_rows(alice: Any) -> None:
    keys = requests_filtered(requests_visible_to(user=alice), RequestFilters()).values_list("pk", flat=True)
    plan = plan_of(lambda: list(keys[:25]))
    assert reads_no_rows_of(plan, REQUESTS), plan


@pytest.mark.usefixtures("year_of_use_statistics")
def test_an_officers_page_of_keys_walks_the_date_index_and_sorts_no_visible_request(olivia: Any) -> None:
    # An officer sees nearly every request, so no index narrows them: the page's keys come from
    # walking created_at's index newest first and stop at the page's end. With the sampled
    # statistics of before, SQLite scanned every row and sorted all of them (3 ms at 10,000).
    keys = requests_filtered(requests_visible_to(user=olivia), RequestFilters()).values_list("pk", flat=True)
    plan = plan_of(lambda: list(keys[:25]))
    assert "USING INDEX request_created_idx" in plan and "TEMP B-TREE FOR ORDER BY" not in plan, plan


@pytest.mark.usefixtures("year_of_use_statistics")
def test_the_review_queue_counts_from_an_index_and_finds_pending_decisions_by_status(olivia: Any) -> None:
    count = plan_of(review_queue(user=olivia).count)
    assert reads_no_rows_of(count, REQUESTS, "U0"), count
    for pending in (overrides_awaiting_officer, retries_awaiting_officer):
        plan = plan_of(lambda: list(pending(user=olivia)))  # noqa: B023
        first = plan.split("; ")[0]
        # The pending ones found by status first, not every visible request listed and probed.
        assert first.startswith("SEARCH approvals_") and "(status=?)" in first, plan


@pytest.mark.usefixtures("year_of_use_statistics")
def test_the_ask_to_use_count_reads_no_release_rows(alice: Any) -> None:
    asks = releases_to_ask_for(user=alice).filter(withdrawn_at__isnull=True)
    plan = plan_of(asks.count)
    assert reads_no_rows_of(plan, "catalog_release"), plan


def test_the_dataset_list_counts_columns_per_row_without_grouping_every_dataset(dataset: Any) -> None:
    from generation.selectors import dataset_list_rows

    def counts() -> list[Any]:
        rows: Any = dataset_list_rows(type(dataset).objects.all())
        assert rows.query.group_by is None  # the page's query itself is not grouped
        return [r.column_count for r in rows]

    assert counts() == [dataset.columns.count()]
    dataset.columns.all().delete()
    assert counts() == [0]


@pytest.mark.usefixtures("year_of_use_statistics")
def test_the_inbox_reads_its_page_from_the_end_of_one_users_index_run(olivia: Any) -> None:
    from notifications.selectors import notifications_of

    # An officer is told of every request filed (8,500 notifications at 10,000 requests): without
    # the index SQLite found them by recipient and sorted them all for one page (3 ms).
    plan = plan_of(lambda: list(notifications_of(olivia)[:25]))
    assert "notification_inbox_idx" in plan and "TEMP B-TREE" not in plan, plan


@pytest.mark.usefixtures("year_of_use_statistics")
@pytest.mark.parametrize("status", ["", "pending"])
def test_the_access_request_list_walks_a_date_index(olivia: Any, status: str) -> None:
    from catalog.access import access_requests_visible_to

    rows = access_requests_visible_to(user=olivia).order_by("-created_at", "pk")  # as both lists order
    if status:
        rows = rows.filter(status=status)
    plan = plan_of(lambda: list(rows[:25]))
    first = plan.split("; ")[0]
    assert "access_" in first and "_created_idx" in first and "TEMP B-TREE FOR ORDER BY" not in plan, plan
