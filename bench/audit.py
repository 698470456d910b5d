"""Audit chain benchmark: full verification against a raw hash over the same canonical bytes.

Not part of the test run. Prints figures; docs/benchmarks.md records a run.

    .venv/bin/python bench/audit.py                    # 100,000 events
    .venv/bin/python bench/audit.py --events 1000000   # 1M (about 2 GB of temporary disk)

It creates a temporary SQLite database (a fresh SYNTHGATE_VAR_DIR under the system temp dir,
deleted afterwards), migrates it, and writes --events audit events with realistic shapes (actors,
actions, targets, small `details`) hashed by the portal's own reference code
(audit.hashing.hmac_event_hash, the slow dict + json.dumps path), in batches, with the head row set
to the last one. Nothing is read from outside the repository. Then, in the same process:

  - full:      audit.selectors.audit_verify(), the whole walk as `verify_audit` runs it: rows
               streamed from the database as tuples, canonical bytes, HMAC, links, checkpoints;
  - read only: the same row stream with no hashing (what the database and driver cost);
  - raw HMAC / raw SHA-256: one hmac.digest / hashlib.sha256 per row over the exact canonical
               bytes of every row, prepared in memory beforehand (the baseline of issue 16);
  - reference: the walk the portal had before (a dict per row, audit.hashing.event_hash);
  - incremental: after 1,000 more events, audit_verify_since from the previous head.

Each timing is the best of --repeat runs. The target (issue 16): full <= 3x the raw hash.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
BATCH = 5000
ACTIONS = (
    ("request.submit", "request"),
    ("request.decide", "request"),
    ("release.download", "release"),
    ("auth.login", "user"),
    ("job.output_delete", "job"),
    ("denied", "release"),
)


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def seed(n: int, *, first_seq: int = 1) -> None:
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from audit.hashing import GENESIS_HASH, HashScheme, audit_key, hmac_event_hash
    from audit.models import AuditChainHead, AuditEvent

    User = get_user_model()
    users = list(User.objects.all()[:8])
    while len(users) < 8:
        users.append(User.objects.create(username=f"bench{len(users)}"))
    key = audit_key()
    head = AuditChainHead.objects.filter(id=1).first()
    prev = head.hash if head else GENESIS_HASH
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    batch: list[AuditEvent] = []
    seq = first_seq
    for seq in range(first_seq, first_seq + n):
        action, target_type = ACTIONS[seq % len(ACTIONS)]
        user = users[seq % len(users)] if seq % 7 else None
        fields: dict[str, Any] = {
            "seq": seq,
            "at": t0 + timedelta(seconds=seq * 13, microseconds=seq % 1000),
            "actor_name": user.username if user else "system",
            "action": action,
            "target_type": target_type,
            "target_id": f"{seq * 2654435761 % 2**32:08x}-0000-4000-8000-{seq:012d}",
            "outcome": "denied" if action == "denied" else "success",
            "details": {"reason": "not_team", "status": 404}
            if action == "denied"
            else ({"columns": ["age", "sex"], "tier": "internal"} if seq % 3 else {}),
            "request_id": f"req-{seq:08x}" if seq % 2 else "",
            "prev_hash": prev,
        }
        digest = hmac_event_hash(key=key, actor_id=user.pk if user else None, **fields)
        batch.append(AuditEvent(actor=user, hash=digest, hash_scheme=HashScheme.HMAC_SHA256, **fields))
        prev = digest
        if len(batch) >= BATCH:
            with transaction.atomic():
                AuditEvent.objects.bulk_create(batch)
            batch = []
    with transaction.atomic():
        AuditEvent.objects.bulk_create(batch)
        AuditChainHead.objects.update_or_create(id=1, defaults={"seq": seq, "hash": prev})


def machine() -> str:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"nproc {cores}, CPU {model!r}, Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="synthgate-bench-audit-"))
    os.environ.update(
        SYNTHGATE_ENV="test",
        SYNTHGATE_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="portal.settings",
    )
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(BASE_DIR))
    try:
        return run(args, var_dir)
    finally:
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)


def run(args: argparse.Namespace, var_dir: Path) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from audit.hashing import HashScheme, audit_key, canonical_row, event_hash
    from audit.models import AuditEvent
    from audit.selectors import ROW_FIELDS, audit_chain_rows, audit_verify, audit_verify_since

    print(machine())
    print(f"database: SQLite {connection.Database.sqlite_version} in {var_dir}")
    start = time.perf_counter()
    call_command("migrate", verbosity=0)
    print(f"migrate: {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    seed(args.events)
    print(
        f"seeded {args.events:,} events (reference hashing, bulk insert): {time.perf_counter() - start:.1f} s"
    )

    key = audit_key()
    rows = list(audit_chain_rows())
    messages = [canonical_row(row, row[-3], HashScheme.HMAC_SHA256.value) for row in rows]
    size = sum(map(len, messages))
    print(f"canonical bytes: {size / 1e6:.1f} MB, {size / len(messages):.0f} bytes per event")
    del rows

    def raw_hmac() -> None:
        # The fastest one-shot HMAC the standard library offers (OpenSSL, no Python object).
        for message in messages:
            hmac.digest(key, message, "sha256").hex()

    def raw_sha() -> None:
        for message in messages:
            hashlib.sha256(message).hexdigest()

    def read_only() -> int:
        return sum(1 for _ in audit_chain_rows())

    def reference() -> bool:
        # The walk as it was: a dict per row and event_hash (dict + json.dumps per row).
        prev = "0" * 64
        columns = AuditEvent.objects.order_by("seq").values_list(
            *ROW_FIELDS, "prev_hash", "hash", "hash_scheme"
        )
        for row in columns.iterator(chunk_size=2000):
            fields = dict(zip(ROW_FIELDS, row, strict=False))
            if row[-2] != event_hash(scheme=row[-1], key=key, prev_hash=prev, **fields):
                return False
            prev = row[-2]
        return True

    t_hmac, _ = best(raw_hmac, args.repeat)
    t_sha, _ = best(raw_sha, args.repeat)
    t_read, count = best(read_only, args.repeat)
    t_full, verdict = best(audit_verify, args.repeat)
    assert verdict.ok and verdict.events == args.events, verdict
    t_ref, ok = best(reference, 1)
    assert ok
    messages.clear()

    head = verdict.upto_seq, verdict.upto_hash
    seed(1000, first_seq=args.events + 1)
    t_incr, incr = best(lambda: audit_verify_since(seq=head[0], hash=head[1]), args.repeat)
    assert incr.ok and incr.events == 1000, incr

    n = args.events
    print()
    print(f"| {n:,} events | seconds | per event | vs raw HMAC | vs raw SHA-256 |")
    print("|---|---:|---:|---:|---:|")
    for label, t in (
        ("raw SHA-256 over the canonical bytes", t_sha),
        ("raw HMAC-SHA256 over the canonical bytes", t_hmac),
        ("read rows only (no hashing)", t_read),
        ("**full verification** (`audit_verify`)", t_full),
        ("the previous walk (dict + json.dumps per row)", t_ref),
    ):
        print(f"| {label} | {t:.3f} | {t / n * 1e6:.2f} us | {t / t_hmac:.2f}x | {t / t_sha:.2f}x |")
    print(f"| incremental, 1,000 new events after {n:,} | {t_incr:.3f} | | | |")
    print(f"\nread-only row count {count:,}; best of {args.repeat} (reference: 1 run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
