"""Audit chain benchmark: full verification against a raw hash over the same canonical bytes, and
the audited write rate on PostgreSQL, direct and sequenced.

Not part of the test run. Prints figures; docs/benchmarks.md records a run.

    .venv/bin/python bench/audit.py                    # 100,000 events
    .venv/bin/python bench/audit.py --events 1000000   # 1M (about 2 GB of temporary disk)
    .venv/bin/python bench/audit.py --events 1000000 --keep --no-reference   # keep the seeded log
    .venv/bin/python bench/audit.py --reuse DIR        # verify a kept log again (no seeding)
    .venv/bin/python bench/audit.py --postgres postgres://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/audit.py --writes postgres://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/audit.py --writes sqlite

--writes sqlite measures direct audited writes with 1 and 8 writer processes on the embedded SQLite
database (the default install), in a temporary directory.

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
actions, targets, small `details`), in batches, with the head row set to the last one: scheme 3
(default, what the portal writes: audit.services.audit_linked_batch, the database rendering each
row's content as audit_record has it do) or, with --scheme 2, the log as written before scheme 3
(audit.hashing.hmac_event_hash, the slow dict + json.dumps path). --postgres: the same in a
temporary database on that server, dropped afterwards; --reuse DIR: the events a --keep run left
in DIR. Nothing is read from outside the repository.
Then, in the same process, in interleaved rounds (each measurement once per round, so all of them
go through the same spells of load on a shared machine):

  - full:      audit.selectors.audit_verify(), the whole walk as `verify_audit` runs it (scheme 3:
               canonical text and hash read as bytes, one SHA-256 per row; scheme 2: every column
               read, canonical JSON built and HMAC'd per row);
  - read only: the same raw chunks with no per-row work (what the database and driver cost);
  - raw HMAC / raw SHA-256: one hmac.digest / hashlib.sha256 per row over the exact canonical
               bytes of every row (scheme 3: the generated text), prepared in memory beforehand
               (the baseline of issue 16);
  - per-row:   the row-by-row walk, ChainWalk._step per row (scheme 3: link and tag; scheme 2:
               canonical_row and the HMAC; on PostgreSQL scheme 2's rows through the ORM);
then, once: the first walk (a dict per row, audit.hashing.event_hash; --no-reference skips it), and
after 1,000 more events audit_verify_since from the previous head (incremental).

Each figure is the best of --repeat rounds, in wall time and in process CPU time: on a shared
machine the CPU times (which leave out the time other processes held the cores) give the steadier
ratios. The load average is printed before and after the rounds. The target (issue 16): full <= 3x
the raw SHA-256.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import platform
import shutil
import sqlite3
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


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, tuple[float, float, Any]]:
    """Each function once per round, `repeat` rounds: name -> (best wall s, best CPU s, result).

    On a shared machine the wall time includes the time other processes held the cores; the
    process CPU time does not, so the ratios of CPU times are the steadier figures. Interleaving
    puts every function through the same spells of load."""
    walls: dict[str, list[float]] = {name: [] for name in fns}
    cpus: dict[str, list[float]] = {name: [] for name in fns}
    results: dict[str, Any] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            results[name] = fn()
            cpus[name].append(time.process_time() - cpu)
            walls[name].append(time.perf_counter() - wall)
    return {name: (min(walls[name]), min(cpus[name]), results[name]) for name in fns}


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def seed(n: int, *, first_seq: int = 1, scheme: int = 3) -> None:
    """`n` events of realistic shapes from `first_seq` on. Scheme 3 (what the portal writes): the
    database renders each canonical text's content (audit.services.audit_linked_batch, as
    audit_record does one row at a time). Scheme 2 (--scheme 2, the log before issue 16 item 3b):
    hashed by the reference code (audit.hashing.hmac_event_hash, dict + json.dumps per row)."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from audit.hashing import GENESIS_HASH, HashScheme, audit_key, hmac_event_hash
    from audit.models import AuditChainHead, AuditEvent
    from audit.services import audit_linked_batch

    User = get_user_model()
    users = list(User.objects.all()[:8])
    while len(users) < 8:
        users.append(User.objects.create(username=f"bench{len(users)}"))
    key = audit_key()
    head = AuditChainHead.objects.filter(id=1).first()
    prev = head.hash if head else GENESIS_HASH
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    contents: list[dict[str, Any]] = []
    seq = first_seq
    for seq in range(first_seq, first_seq + n):
        action, target_type = ACTIONS[seq % len(ACTIONS)]
        user = users[seq % len(users)] if seq % 7 else None
        contents.append(
            {
                "at": t0 + timedelta(seconds=seq * 13, microseconds=seq % 1000),
                "actor_id": user.pk if user else None,
                "actor_name": user.username if user else "system",
                "action": action,
                "target_type": target_type,
                "target_id": f"{seq * 2654435761 % 2**32:08x}-0000-4000-8000-{seq:012d}",
                "outcome": "denied" if action == "denied" else "success",
                "details": {"reason": "not_team", "status": 404}
                if action == "denied"
                else ({"columns": ["age", "sex"], "tier": "internal"} if seq % 3 else {}),
                "request_id": f"req-{seq:08x}" if seq % 2 else "",
            }
        )
        if len(contents) >= BATCH or seq == first_seq + n - 1:
            start = seq - len(contents) + 1
            if scheme == HashScheme.LINKED:
                batch = audit_linked_batch(contents, first_seq=start, prev_hash=prev)
            else:
                batch = []
                for offset, fields in enumerate(contents):
                    fields = {"seq": start + offset, **fields, "prev_hash": prev}
                    digest = hmac_event_hash(key=key, **fields)
                    batch.append(AuditEvent(hash=digest, hash_scheme=HashScheme.HMAC_SHA256, **fields))
                    prev = digest
            prev = str(batch[-1].hash)
            with transaction.atomic():
                AuditEvent.objects.bulk_create(batch)
            contents = []
    with transaction.atomic():
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
    parser.add_argument(
        "--reuse", metavar="VAR_DIR", help="verify the events already in this directory (a --keep run's)"
    )
    parser.add_argument("--no-reference", action="store_true", help="skip the slow first walk")
    parser.add_argument(
        "--scheme",
        type=int,
        choices=(2, 3),
        default=3,
        help="seed rows of hash scheme 3 (what the portal writes) or 2 (the log before it)",
    )
    parser.add_argument(
        "--postgres",
        metavar="POSTGRES_URL",
        help="verify on PostgreSQL: a temporary database on this server (dropped afterwards), not SQLite",
    )
    parser.add_argument(
        "--writes",
        metavar="POSTGRES_URL|sqlite",
        help="measure audited writes on this PostgreSQL server, or on the embedded SQLite database",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each write run")
    args = parser.parse_args()
    if args.writes:
        return writes_main(args)

    var_dir = Path(args.reuse) if args.reuse else Path(tempfile.mkdtemp(prefix="synthgate-bench-audit-"))
    os.environ.update(
        SYNTHGATE_ENV="test",
        SYNTHGATE_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="portal.settings",
    )
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(BASE_DIR))
    admin_url = name = ""
    if args.postgres:
        import psycopg

        admin_url = args.postgres.rstrip("/")
        name = f"synthgate_bench_verify_{os.getpid()}"
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        os.environ["DATABASE_URL"] = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        return run(args, var_dir)
    finally:
        if name:
            import psycopg
            from django.db import connections

            connections.close_all()
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not args.keep and not args.reuse:
            shutil.rmtree(var_dir, ignore_errors=True)


def run(args: argparse.Namespace, var_dir: Path) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from audit.checkpoints import checkpoints_read
    from audit.hashing import HashScheme, audit_key, canonical_row, event_hash
    from audit.models import AuditEvent
    from audit.selectors import (
        ROW_FIELDS,
        ChainWalk,
        audit_chain_rows,
        audit_verify,
        audit_verify_since,
    )

    print(machine())
    if connection.vendor == "sqlite":
        print(f"database: SQLite {sqlite3.sqlite_version} in {var_dir}")
    else:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            print(
                f"database: PostgreSQL {cursor.fetchone()[0]}, temporary database {connection.settings_dict['NAME']}"
            )
    start = time.perf_counter()
    call_command("migrate", verbosity=0)
    print(f"migrate: {time.perf_counter() - start:.1f} s")
    events = AuditEvent.objects.filter(seq__isnull=False).count()
    if events:
        print(f"reusing {events:,} events already in {var_dir}")
    else:
        start = time.perf_counter()
        seed(args.events, scheme=args.scheme)
        events = args.events
        print(
            f"seeded {events:,} events of scheme {args.scheme} (bulk insert): {time.perf_counter() - start:.1f} s"
        )
    scheme = AuditEvent.objects.filter(seq=events).values_list("hash_scheme", flat=True).get()
    linked = scheme == HashScheme.LINKED
    print(f"hash scheme: {scheme} ({HashScheme(scheme).label})")

    key = audit_key()
    if linked:
        # Scheme 3's canonical bytes: the text the database generated for each row.
        messages = [bytes(text) for chunk in audit_chain_rows().linked_chunks() for text, _ in chunk]
    else:
        messages = [canonical_row(row, row[10], HashScheme.HMAC_SHA256.value) for row in audit_chain_rows()]
    size = sum(map(len, messages))
    print(f"canonical bytes: {size / 1e6:.1f} MB, {size / len(messages):.0f} bytes per event")

    def raw_hmac() -> None:
        # The fastest one-shot HMAC the standard library offers (OpenSSL, no Python object).
        for message in messages:
            hmac.digest(key, message, "sha256").hex()

    def raw_sha() -> None:
        for message in messages:
            hashlib.sha256(message).hexdigest()

    def read_only() -> int:
        # What the fast walk reads (scheme 3: canonical bytes and hash; scheme 2: every column),
        # in the raw cursor's chunks, with no per-row work.
        rows = audit_chain_rows()
        return sum(len(chunk) for chunk in (rows.linked_chunks() if linked else rows.raw_chunks()))

    def per_row_walk() -> bool:
        # The row-by-row walk (same process): each row prepared as a tuple (at and details in
        # canonical text), then ChainWalk._step (scheme 3: the link and the tag's HMAC per row;
        # scheme 2: canonical_row and the HMAC). On PostgreSQL, scheme 2's rows came through the
        # ORM (its converters), as they did before the raw reads.
        from audit.selectors import _anchors, _orm_rows, _prepared

        walk = ChainWalk(key=key, anchors=_anchors(checkpoints_read()))
        plain = linked or connection.vendor == "sqlite"
        rows = iter(audit_chain_rows()) if plain else _prepared(_orm_rows(0, None))
        return walk.walk(rows) is None and walk.count == events

    def reference() -> bool:
        # The walk as it was first: a dict per row and event_hash (dict + json.dumps per row).
        if linked:
            return True
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

    load_before = loadavg()
    timed = interleaved(
        {
            "sha": raw_sha,
            "hmac": raw_hmac,
            "read": read_only,
            "full": audit_verify,
            "per_row": per_row_walk,
        },
        args.repeat,
    )
    load_after = loadavg()
    verdict = timed["full"][2]
    assert verdict.ok and verdict.events == events, verdict
    assert timed["per_row"][2] and timed["read"][2] == events
    no_reference = args.no_reference or linked
    t_ref, ok = best(reference, 1) if not no_reference else (float("nan"), True)
    assert ok
    messages.clear()

    head = verdict.upto_seq, verdict.upto_hash
    seed(1000, first_seq=events + 1, scheme=scheme)
    t_incr, incr = best(lambda: audit_verify_since(seq=head[0], hash=head[1]), args.repeat)
    assert incr.ok and incr.events == 1000, incr

    n = events
    sha_wall, sha_cpu = timed["sha"][:2]
    print()
    print(f"load average (1, 5, 15 min): {load_before} before the timed rounds, {load_after} after")
    print(f"| {n:,} events | wall s | CPU s | CPU per event | CPU vs raw SHA-256 | wall vs raw SHA-256 |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, name in (
        ("raw SHA-256 over the canonical bytes", "sha"),
        ("raw HMAC-SHA256 (`hmac.digest`) over the same bytes", "hmac"),
        ("read rows only (raw cursor chunks, no hashing)", "read"),
        ("**full verification** (`audit_verify`)", "full"),
        ("the row-by-row walk (ChainWalk._step per row)", "per_row"),
    ):
        wall, cpu = timed[name][:2]
        print(
            f"| {label} | {wall:.3f} | {cpu:.3f} | {cpu / n * 1e6:.2f} us | {cpu / sha_cpu:.2f}x "
            f"| {wall / sha_wall:.2f}x |"
        )
    if not no_reference:
        print(
            f"| the first walk (dict + json.dumps per row), 1 run | {t_ref:.3f} | | | | {t_ref / sha_wall:.2f}x |"
        )
    print(f"| incremental, 1,000 new events after {n:,} | {t_incr:.3f} | | | | |")
    print(f"\nbest of {args.repeat} interleaved rounds (the first walk: 1 run); load average now {loadavg()}")
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
    if not database_url:  # the embedded SQLite database in var_dir
        os.environ.pop("DATABASE_URL")
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


def sqlite_writes_main(args: argparse.Namespace) -> int:
    """--writes sqlite: the default install's embedded database (WAL, IMMEDIATE transactions), in a
    temporary SYNTHGATE_VAR_DIR; direct mode only (the sequencer needs PostgreSQL)."""
    var_dir = Path(tempfile.mkdtemp(prefix="synthgate-bench-audit-writes-"))
    try:
        _django_env(var_dir, "", sequenced=False)
        from django.core.management import call_command

        from audit.selectors import audit_verify

        print(machine())
        print(f"database: SQLite {sqlite3.sqlite_version} in {var_dir}")
        call_command("migrate", verbosity=0)
        rows = []
        for writers in (1, 8):
            total, rate, _ = _write_run(
                var_dir, "", writers=writers, sequenced=False, sequencer=False, seconds=args.seconds
            )
            load = os.getloadavg()[0]
            verdict = audit_verify()
            assert verdict.ok, verdict
            rows.append((writers, total, rate, load))
            print(
                f"direct, {writers} writers: {total:,} writes in {args.seconds:g} s = {rate:,.0f}/s "
                f"(load {load:.1f}); chain verified: {verdict.events:,} events"
            )
        print()
        print(f"| SQLite, direct | writers | writes in {args.seconds:g} s | writes/s | load average |")
        print("|---|---:|---:|---:|---:|")
        for writers, total, rate, load in rows:
            print(f"| direct (head lock) | {writers} | {total:,} | {rate:,.0f} | {load:.1f} |")
    finally:
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)
    return 0


def writes_main(args: argparse.Namespace) -> int:
    if args.writes == "sqlite":
        return sqlite_writes_main(args)
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
