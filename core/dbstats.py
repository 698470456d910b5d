"""Planner statistics for the database the portal runs on.

SQLite keeps no statistics until `ANALYZE` runs, and without them it guesses from the indexes
alone. On a year's worth of rows (10,000 requests, 5,000 releases) one query, the catalog's "ask to
use" list as it was then, took ~90 ms unanalyzed and 2.7 ms analyzed (measured on a copy); the
list pages as they are now measured the same with and without statistics (docs/benchmarks.md), so
this is insurance against the planner's guesses as data and queries change, not a measured
speed-up. Nothing in SQLite runs ANALYZE on its own, so a periodic housekeeping task does
(core.tasks.refresh_planner_statistics). PostgreSQL's autovacuum analyzes tables as they change; the
task analyzes them too, which is harmless and covers a deployment that turned autovacuum off.

On SQLite every table is read in full except those in settings.SYNTHGATE_ANALYZE_SAMPLED_TABLES (the
audit log, which grows to millions of rows), where `analysis_limit` samples each index. Sampling
every table was tried first, and its estimates disagreed by up to 6x between indexes of one table
(5,115 to 29,640 rows for 10,000 requests); SQLite takes a table's size from one of its indexes, so
a table that looked small was scanned row by row instead of through a covering index, and the
officer's request page sorted every visible request for its 25 keys (3 ms each for the count and
the keys at 10,000 requests, 0.3-0.6 ms with exact statistics; bench/pages.py, issue 16). A full
ANALYZE of that database (10,000 requests, 5,000 releases, 22,000 notifications) took 0.25 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter

from django.conf import settings
from django.db import connections

__all__ = ["SQLITE_ANALYSIS_LIMIT", "Analyzed", "analyze"]

# Rows sampled per index of a sampled table on SQLite (https://sqlite.org/lang_analyze.html#approx):
# its statistics are approximate, and their cost no longer grows with the table.
SQLITE_ANALYSIS_LIMIT = 1000


@dataclass(frozen=True)
class Analyzed:
    vendor: str
    seconds: float


def analyze(using: str = "default") -> Analyzed:
    """Refresh the planner's statistics for every table of `using`."""
    connection = connections[using]
    started = perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            sampled = set(getattr(settings, "SYNTHGATE_ANALYZE_SAMPLED_TABLES", ()))
            for table in connection.introspection.table_names(cursor):
                # 0: read every row.
                limit = SQLITE_ANALYSIS_LIMIT if table in sampled else 0
                cursor.execute(f"PRAGMA analysis_limit = {limit}")
                cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
        elif connection.vendor == "postgresql":
            cursor.execute("ANALYZE")
        else:  # pragma: no cover - the portal runs on SQLite or PostgreSQL only
            raise NotImplementedError(connection.vendor)
    return Analyzed(vendor=connection.vendor, seconds=perf_counter() - started)
