"""The audit log as CSV for auditors (issue 14 item 7): streamed, formula-safe.

Formula-like cells get a leading quote by core.csv_safety's rule (OWASP "CSV Injection"), the
same rule generation applies to released files.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet

from audit.models import AuditEvent
from core.csv_safety import neutralise_cell

# The stored columns, in the file's order; the file calls actor_name "actor".
_COLUMNS = (
    "seq",
    "at",
    "actor_name",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "details",
    "request_id",
    "hash",
)
HEADER = tuple("actor" if column == "actor_name" else column for column in _COLUMNS)
CHUNK_ROWS = 2000


class _Echo:
    """A file-like object csv.writer writes into; each write hands the line back."""

    def write(self, value: str) -> str:
        return value


def audit_events_csv(events: QuerySet[AuditEvent]) -> Iterator[str]:
    """CSV lines for `events` in their order, read in chunks (no model instance per row)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    for row in _rows(events.values_list(*_COLUMNS).iterator(chunk_size=CHUNK_ROWS)):
        yield writer.writerow([neutralise_cell(cell) for cell in row])


def _rows(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    for seq, at, actor, action, target_type, target_id, outcome, details, request_id, digest in rows:
        # Details as canonical JSON (ids and column names only, never values: audit.models).
        text = json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        yield (
            seq,
            at.isoformat(timespec="microseconds"),
            actor,
            action,
            target_type,
            target_id,
            outcome,
            text,
            request_id,
            digest,
        )
