"""Audit chain benchmark: full verification against a raw hash over the same canonical bytes, and
the audited write rate on PostgreSQL, direct and sequenced.

Not part of the test run. Prints figures; docs/benchmarks.md records a run.

    .venv/bin/python bench/audit.py                    # 100,000 events
    .venv/bin/python bench/audit.py --events 1000000   # 1M (about 2 GB of temporary disk)
    .venv/bin/python bench/audit.py --writes postgres://postgres@127.0.0.1:5432/postgres

--writes URL (issue 16 item 3) skips the verification figures. It creates a temporary database on
that server (dropped afterwards), migrates it, and measures audited writes per second with 1 and 8
writer processes, each calling audit.services.audit_record in its own transaction for --seconds:
  - direct:    SYNTHGATE_AUDIT_SEQUENCER off, every write locks the chain-head row until it commits;
  - sequenced: on, writes insert pending rows and a sequencer process calls
               audit.services.audit_sequence every second (the beat's schedule), recording the
               oldest pending row's age at each tick (what the maximum merge delay bounds);
  - linking:   8 sequenced writers with no sequencer running, then one audit_sequence() call over
               the backlog: the sequencer's linking rate.
After each run the chain is linked and fully verified (audit_verify must hold).

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
    parser.add_argument("--writes", metavar="POSTGRES_URL", help="measure audited writes on this server")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each write run")
    args = parser.parse_args()
    if args.writes:
        return writes_main(args)

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


# --- Audited writes on PostgreSQL (issue 16 item 3) ---------------------------------------------


def _django_env(var_dir: Path, database_url: str, *, sequenced: bool) -> None:
    os.environ.update(
        SYNTHGATE_ENV="test",
        SYNTHGATE_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="portal.settings",
        DATABASE_URL=database_url,
        SYNTHGATE_AUDIT_SEQUENCER="1" if sequenced else "0",
    )
    if str(BASE_DIR) not in sys.path:
        sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()


def _writer(
    var_dir: str, url: str, sequenced: bool, number: int, ready: Any, start: Any, stop_at: Any, out: Any
) -> None:
    """One writer process: audited writes, each in its own transaction as a service makes them."""
    _django_env(Path(var_dir), url, sequenced=sequenced)
    from django.db import connection, transaction

    from audit.services import audit_record

    connection.ensure_connection()
    ready.put(number)
    start.wait()
    done, deadline = 0, stop_at.value
    while time.time() < deadline:
        action, target_type = ACTIONS[done % len(ACTIONS)]
        with transaction.atomic():
            audit_record(
                actor=None,
                action=action,
                target_type=target_type,
                target_id=f"w{number}-{done}",
                details={"columns": ["age", "sex"], "tier": "internal"} if done % 3 else {},
            )
        done += 1
    out.put(done)


def _sequencer(var_dir: str, url: str, ready: Any, start: Any, stop_at: Any, out: Any) -> None:
    """The beat's shape: audit_sequence() every second; the oldest pending age seen at each tick."""
    _django_env(Path(var_dir), url, sequenced=True)
    from django.db.models import Min
    from django.utils import timezone

    from audit.models import AuditEvent
    from audit.services import audit_sequence

    ready.put(-1)
    start.wait()
    worst, ticks, linked = 0.0, 0, 0
    while time.time() < stop_at.value + 1.0:
        tick = time.monotonic()
        oldest = AuditEvent.objects.filter(seq__isnull=True).aggregate(m=Min("at"))["m"]
        if oldest is not None:
            worst = max(worst, (timezone.now() - oldest).total_seconds())
        linked += audit_sequence().linked
        ticks += 1
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    out.put((worst, ticks, linked))


def _write_run(
    var_dir: Path, url: str, *, writers: int, sequenced: bool, sequencer: bool, seconds: float
) -> tuple[int, float, tuple[float, int, int] | None]:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    start, stop_at, out, seq_out, ready = (
        ctx.Event(),
        ctx.Value("d", 0.0),
        ctx.Queue(),
        ctx.Queue(),
        ctx.Queue(),
    )
    procs = [
        ctx.Process(target=_writer, args=(str(var_dir), url, sequenced, n, ready, start, stop_at, out))
        for n in range(writers)
    ]
    if sequencer:
        procs.append(ctx.Process(target=_sequencer, args=(str(var_dir), url, ready, start, stop_at, seq_out)))
    for proc in procs:
        proc.start()
    for _ in procs:  # every process has set Django up and connected
        ready.get(timeout=300)
    stop_at.value = time.time() + seconds
    start.set()
    total = sum(out.get(timeout=seconds + 300) for _ in range(writers))
    seq_stats = seq_out.get(timeout=seconds + 300) if sequencer else None
    for proc in procs:
        proc.join(timeout=60)
    return total, total / seconds, seq_stats


def writes_main(args: argparse.Namespace) -> int:
    import psycopg

    var_dir = Path(tempfile.mkdtemp(prefix="synthgate-bench-audit-writes-"))
    name = f"synthgate_bench_audit_{os.getpid()}"
    base = args.writes.rstrip("/")
    url = base.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        _django_env(var_dir, url, sequenced=False)
        from django.core.management import call_command
        from django.db import connection

        from audit.models import AuditEvent
        from audit.selectors import MAX_MERGE_DELAY, audit_verify
        from audit.services import audit_sequence

        print(machine())
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
            cursor.execute("SHOW synchronous_commit")
            sync = cursor.fetchone()[0]
        print(f"database: PostgreSQL {version} (synchronous_commit={sync}), temporary database {name}")
        call_command("migrate", verbosity=0)

        def settle() -> str:
            # Link what is left, then verify the whole chain: every run must leave it intact.
            while audit_sequence().linked:
                pass
            verdict = audit_verify()
            assert verdict.ok and verdict.pending == 0, verdict
            return f"chain verified: {verdict.events:,} events"

        rows = []
        for mode, sequenced in (("direct (head lock)", False), ("sequenced", True)):
            for writers in (1, 8):
                total, rate, seq_stats = _write_run(
                    var_dir,
                    url,
                    writers=writers,
                    sequenced=sequenced,
                    sequencer=sequenced,
                    seconds=args.seconds,
                )
                load = os.getloadavg()[0]  # the 1-minute load average as the run ends (shared machine)
                note = settle()
                delay = f"{seq_stats[0]:.2f} s over {seq_stats[1]} ticks" if seq_stats else ""
                rows.append((mode, writers, total, rate, delay, load))
                print(
                    f"{mode}, {writers} writers: {total:,} writes in {args.seconds:g} s = {rate:,.0f}/s "
                    f"(load {load:.1f}); {note}"
                )

        # The linking rate: a backlog written with no sequencer, then linked in one call.
        total, rate, _ = _write_run(
            var_dir, url, writers=8, sequenced=True, sequencer=False, seconds=args.seconds
        )
        backlog = AuditEvent.objects.filter(seq__isnull=True).count()
        started = time.perf_counter()
        linked = 0
        while True:
            step = audit_sequence().linked
            linked += step
            if not step:
                break
        took = time.perf_counter() - started
        print(
            f"linking: {linked:,} pending rows (backlog {backlog:,}) in {took:.2f} s = {linked / took:,.0f}/s"
        )
        print(settle())

        print()
        print(
            f"| mode | writers | writes in {args.seconds:g} s | writes/s | oldest pending at a tick (max) "
            "| load average |"
        )
        print("|---|---:|---:|---:|---|---:|")
        for mode, writers, total, rate, delay, load in rows:
            print(f"| {mode} | {writers} | {total:,} | {rate:,.0f} | {delay} | {load:.1f} |")
        print(f"| sequencer linking a backlog of {linked:,} | | | {linked / took:,.0f} | | |")
        print(
            f"\nmaximum merge delay (audit.selectors.MAX_MERGE_DELAY): {MAX_MERGE_DELAY.total_seconds():g} s"
        )
        connection.close()
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
