"""Housekeeping for the database itself (routed to the housekeeping queue in settings)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from core.dbstats import analyze
from core.locks import periodic_lock

logger = logging.getLogger(__name__)

ANALYZE_TASK = "synthgate.db.analyze"
ANALYZE_LOCK = "db-analyze"
# Longer than ANALYZE takes on a large database, short enough not to skip the next hourly run.
ANALYZE_LOCK_SECONDS = 1800


# Expires before the next hourly tick: a backlog of these is pointless.
@shared_task(name=ANALYZE_TASK, ignore_result=True, expires=3000)
def refresh_planner_statistics(**_extra: Any) -> dict[str, Any]:
    """ANALYZE the database (core.dbstats), one run at a time across every worker."""
    with periodic_lock(ANALYZE_LOCK, ANALYZE_LOCK_SECONDS) as acquired:
        if not acquired:
            return {"skipped": 1}
        done = analyze()
        logger.info("planner statistics refreshed on %s in %.2f s", done.vendor, done.seconds)
        return {"vendor": done.vendor, "seconds": round(done.seconds, 3)}
