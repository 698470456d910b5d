"""What a rogue database administrator does to the audit tables, for the tests to catch.

Triggers are dropped (SQLite) or disabled (PostgreSQL) the way an administrator could, then the
tables are changed with plain SQL. Hashes are recomputed the only ways open to them: plain
SHA-256 (no key), or HMAC with a stolen key. On scheme-3 rows the SHA-256 links are open to
anyone; the tags need the key.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection

from audit.hashing import GENESIS_HASH, HashScheme, hmac_event_hash, link_tag, linked_hash, sha256_event_hash
from audit.models import AuditEvent

TRIGGERS = importlib.import_module("audit.migrations.0002_append_only_triggers")
HASHED_FIELDS = ("seq", "at", "actor_id", "actor_name", "action", "target_type", "target_id")
HASHED_FIELDS += ("outcome", "details", "request_id")


def execute(*statements: str) -> None:
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def raw(sql: str, params: list[Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])


@contextmanager
def triggers_off() -> Iterator[None]:
    """Drop (SQLite) or disable (PostgreSQL) the append-only triggers, and put them back after."""
    if connection.vendor == "postgresql":
        # PostgreSQL refuses ALTER TABLE while the test transaction holds deferred FK checks.
        execute("SET CONSTRAINTS ALL IMMEDIATE", "ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
    else:
        execute(*TRIGGERS.SQLITE_DROP)
    try:
        yield
    finally:
        if connection.vendor == "postgresql":
            execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
        else:
            execute(*TRIGGERS.SQLITE)


def forged_hash(row: AuditEvent | dict[str, Any], *, prev_hash: str, key: bytes | None = None) -> str:
    """The hash a forger computes for a row: plain SHA-256, or HMAC when they hold the key."""
    source = row if isinstance(row, dict) else {name: getattr(row, name) for name in HASHED_FIELDS}
    fields = {name: source[name] for name in HASHED_FIELDS}
    if key is None:
        return sha256_event_hash(prev_hash=prev_hash, **fields)
    return hmac_event_hash(key=key, prev_hash=prev_hash, **fields)


WRONG_KEY = b"a forger's guess at the audit key"


def relink(seq: int, *, key: bytes | None = None) -> str:
    """Give row `seq` the scheme-3 link of what it holds now (its canonical text as the database
    renders it after an edit) and a tag under `key` (a guessed key without it), as a forger does."""
    canonical = AuditEvent.objects.filter(seq=seq).values_list("canonical", flat=True).get()
    digest = linked_hash(canonical)
    raw(
        "UPDATE audit_auditevent SET hash = %s, tag = %s WHERE seq = %s",
        [digest, link_tag(key or WRONG_KEY, digest), seq],
    )
    return digest


def rechain(from_seq: int, *, declare: int = HashScheme.HMAC_SHA256, key: bytes | None = None) -> None:
    """Recompute prev_hash and hash of every row from `from_seq` on, declaring scheme `declare`,
    and point the head at the new last row, as a forger covering their tracks would."""
    before = AuditEvent.objects.filter(seq=from_seq - 1).values_list("hash", flat=True).first()
    prev = before or GENESIS_HASH
    if declare == HashScheme.LINKED:
        for seq in AuditEvent.objects.filter(seq__gte=from_seq).order_by("seq").values_list("seq", flat=True):
            raw(
                "UPDATE audit_auditevent SET prev_hash = %s, hash_scheme = %s WHERE seq = %s",
                [prev, int(declare), seq],
            )
            prev = relink(seq, key=key)
        fix_head()
        return
    for row in AuditEvent.objects.filter(seq__gte=from_seq).order_by("seq"):
        digest = forged_hash(row, prev_hash=prev, key=key)
        raw(
            "UPDATE audit_auditevent SET prev_hash = %s, hash = %s, hash_scheme = %s WHERE seq = %s",
            [prev, digest, int(declare), row.seq],
        )
        prev = digest
    fix_head()


def fix_head() -> None:
    linked = AuditEvent.objects.filter(seq__isnull=False)
    last = linked.order_by("-seq").values_list("seq", "hash").first() or (0, GENESIS_HASH)
    raw("UPDATE audit_auditchainhead SET seq = %s, hash = %s WHERE id = 1", list(last))
