"""Task-level locks for periodic work, shared by every worker process and machine.

    with periodic_lock("reconcile-jobs", ttl_s=300) as acquired:
        if not acquired:
            return  # another worker is doing this run

Two beats (or a beat and a manual run) may send the same periodic task at once, and with several
worker processes two copies may run side by side; the lock lets one run and the other return.
The lock expires after `ttl_s`, so a worker killed while holding it silences the task for at most
that long; pick a ttl longer than a run takes and shorter than what can wait.

Where the lock lives follows the cache Django is configured with, because that is what every
process already shares:
- Redis (SYNTHGATE_CACHE_URL): `cache.add` is SET NX with an expiry, atomic in Redis.
- The database cache (the default install, no Redis): `cache.add` is not safe there. Two callers
  that both find an *expired* entry both overwrite it and both believe they hold the lock, and the
  cache's culling deletes entries by key order once the table is full. So the lock row is written
  with its own two statements on the same table: delete the row only if it has expired, then
  insert; the primary key lets exactly one insert win, on SQLite and PostgreSQL alike. Its key
  starts with "~", which sorts after every key Django makes (":1:..."), so culling reaches it last.
- Anything else (a per-process cache such as locmem): `cache.add`, which only excludes callers in
  the same process; fine for tests, not for a deployment.
"""

from __future__ import annotations

import base64
import pickle
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from django.core.cache import cache, caches
from django.core.cache.backends.db import DatabaseCache
from django.db import DatabaseError, connections, router, transaction

__all__ = ["acquire", "periodic_lock", "release"]

_PREFIX = "synthgate:lock:"
# After every key Django's make_key produces (":<version>:..."), so cache culling deletes it last.
_DB_PREFIX = "~synthgate:lock:"


def _db_cache() -> DatabaseCache | None:
    backend = caches["default"]
    return backend if isinstance(backend, DatabaseCache) else None


def _db_target(backend: DatabaseCache) -> tuple[str, str]:
    db = router.db_for_write(backend.cache_model_class)
    table: str = backend._table  # type: ignore[attr-defined]  # the stubs omit it; LOCATION
    return db, connections[db].ops.quote_name(table)


def _encoded(value: str) -> str:
    # The cache table's own value encoding, so cache.get on the row still reads it.
    return base64.b64encode(pickle.dumps(value, pickle.HIGHEST_PROTOCOL)).decode("latin1")


def acquire(name: str, ttl_s: float) -> str | None:
    """Take lock `name` for at most `ttl_s` seconds: a token to release it with, or None if held."""
    if ttl_s <= 0:
        raise ValueError("A lock needs a positive ttl.")
    token = secrets.token_hex(16)
    backend = _db_cache()
    if backend is None:
        return token if cache.add(_PREFIX + name, token, timeout=ttl_s) else None
    db, table = _db_target(backend)
    connection = connections[db]
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=ttl_s)
    key = _DB_PREFIX + name
    adapt = connection.ops.adapt_datetimefield_value
    try:
        with transaction.atomic(using=db), connection.cursor() as cursor:
            # Only an expired holder is removed; a live one stays and makes the insert fail.
            cursor.execute(f"DELETE FROM {table} WHERE cache_key = %s AND expires < %s", [key, adapt(now)])
            cursor.execute(
                f"INSERT INTO {table} (cache_key, value, expires) VALUES (%s, %s, %s)",
                [key, _encoded(token), adapt(expires)],
            )
    except DatabaseError:
        # The primary key refused the insert (a live holder), or the database was busy: not ours.
        return None
    return token


def release(name: str, token: str) -> None:
    """Give lock `name` back if `token` still holds it (after its ttl another caller may hold it)."""
    backend = _db_cache()
    if backend is None:
        if cache.get(_PREFIX + name) == token:
            cache.delete(_PREFIX + name)
        return
    db, table = _db_target(backend)
    with connections[db].cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE cache_key = %s AND value = %s", [_DB_PREFIX + name, _encoded(token)]
        )


@contextmanager
def periodic_lock(name: str, ttl_s: float) -> Iterator[bool]:
    """`with periodic_lock(name, ttl_s) as acquired:` - True for the one caller that holds it."""
    token = acquire(name, ttl_s)
    try:
        yield token is not None
    finally:
        if token is not None:
            release(name, token)
