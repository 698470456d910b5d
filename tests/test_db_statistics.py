"""Planner statistics (core.dbstats, core.tasks): SQLite has none until ANALYZE runs, so the hourly
housekeeping task runs it; one run at a time across workers. Runs on SQLite in the first stage and
on PostgreSQL in the services stage (the `services` mark)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from approvals.models import GenerationRequest
from conftest import on_postgres
from core.locks import periodic_lock
from core.tasks import ANALYZE_LOCK, ANALYZE_TASK, refresh_planner_statistics
from portal.celery import app

pytestmark = pytest.mark.django_db
TABLE = GenerationRequest._meta.db_table


def _analyzed() -> bool:
    """Whether the planner holds statistics for the requests table."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
            if cursor.fetchone() is None:
                return False
            cursor.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl = %s", [TABLE])
        else:
            cursor.execute(
                "SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() AND tablename = %s",
                [TABLE],
            )
        return bool(cursor.fetchone()[0])


def _fill(make_request: Callable[..., Any]) -> None:
    for i in range(3):
        make_request(title=f"Prototype {i}")


def test_the_hourly_task_gives_the_planner_statistics(make_request: Callable[..., Any]) -> None:
    _fill(make_request)
    if not on_postgres():
        # A fresh SQLite database has none (PostgreSQL's autovacuum may already have run).
        assert not _analyzed()
    result = refresh_planner_statistics()
    assert result["vendor"] == connection.vendor
    assert _analyzed()


def test_sqlite_statistics_are_exact_except_for_the_sampled_audit_log(alice: Any) -> None:
    """Sampled statistics (PRAGMA analysis_limit) put one table's size at anything from 0.5x to 3x
    its rows depending on the index, and SQLite then scanned table rows where a covering index
    would do (core.dbstats). Every index of a table the lists read now counts its rows exactly."""
    from django.conf import settings

    from notifications.models import Notification, NotificationKind

    assert connection.vendor == "sqlite", "this test reads sqlite_stat1; it runs in make test's SQLite stage"
    rows = 3000  # well over the 1,000 rows a sampled index reads
    Notification.objects.bulk_create(
        Notification(recipient=alice, kind=NotificationKind.choices[0][0], message="m", dedup_key=f"k{i}")
        for i in range(rows)
    )
    refresh_planner_statistics()
    with connection.cursor() as cursor:
        cursor.execute("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = %s", [Notification._meta.db_table])
        stats = dict(cursor.fetchall())
        cursor.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'audit_auditevent'")
        (audit_rows,) = cursor.fetchone()
    assert len(stats) >= 3, stats
    assert {idx: int(stat.split()[0]) for idx, stat in stats.items()} == dict.fromkeys(stats, rows)
    # The audit log is still analyzed (sampled: it grows to millions of rows).
    assert "audit_auditevent" in settings.SYNTHGATE_ANALYZE_SAMPLED_TABLES and audit_rows > 0


def test_a_second_run_while_one_holds_the_lock_does_nothing(make_request: Callable[..., Any]) -> None:
    _fill(make_request)
    with periodic_lock(ANALYZE_LOCK, 60) as acquired:
        assert acquired
        assert refresh_planner_statistics() == {"skipped": 1}
    if not on_postgres():
        assert not _analyzed()


def test_beat_sends_it_every_hour() -> None:
    from django.conf import settings

    schedule = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule[ANALYZE_TASK] == 3600.0
    assert ANALYZE_TASK in app.tasks


@pytest.mark.services
def test_postgresql_gets_statistics_too(make_request: Callable[..., Any]) -> None:
    assert on_postgres()
    _fill(make_request)
    assert refresh_planner_statistics()["vendor"] == "postgresql"
    assert _analyzed()
