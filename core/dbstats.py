"""Planner statistics for the database the portal runs on.

SQLite keeps no statistics until `ANALYZE` runs, and without them it guesses from the indexes
alone. On a year's worth of rows (10,000 requests, 5,000 releases) one query, the catalog's "ask to
use" list as it was then, took ~90 ms unanalyzed and 2.7 ms analyzed (measured on a copy); the
list pages as they are now measured the same with and without statistics (docs/benchmarks.md), so
this is insurance against the planner's guesses as data and queries change, not a measured
speed-up. Nothing in SQLite runs ANALYZE on its own, so a periodic housekeeping task does
(core.tasks.refresh_planner_statistics). On SQLite `analysis_limit` bounds the work (each index is
sampled, not read in full), so a run stays short on a large audit log. PostgreSQL's autovacuum analyzes tables as they change; the task analyzes
them too, which is harmless and covers a deployment that turned autovacuum off.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter

from django.db import connections

__all__ = ["SQLITE_ANALYSIS_LIMIT", "Analyzed", "analyze"]

# Rows sampled per index on SQLite (https://sqlite.org/lang_analyze.html#approx): the statistics
# are approximate, which is all the planner needs, and the cost no longer grows with the tables.
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
            cursor.execute(f"PRAGMA analysis_limit = {SQLITE_ANALYSIS_LIMIT}")
            cursor.execute("ANALYZE")
        elif connection.vendor == "postgresql":
            cursor.execute("ANALYZE")
        else:  # pragma: no cover - the portal runs on SQLite or PostgreSQL only
            raise NotImplementedError(connection.vendor)
    return Analyzed(vendor=connection.vendor, seconds=perf_counter() - started)
