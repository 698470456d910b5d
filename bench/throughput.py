"""Worker throughput: jobs per hour with 1 and 2 worker processes, cold and warm (issue 16, item 4).

Not part of the test run. Prints figures; docs/benchmarks.md records a run.

    .venv/bin/python bench/throughput.py                 # embedded: SQLite + filesystem broker
    .venv/bin/python bench/throughput.py --services      # also PostgreSQL + Redis
    .venv/bin/python bench/throughput.py --jobs 2        # a quick look (too few jobs for a figure)
    .venv/bin/python bench/throughput.py --warm-only --rows 4000 --jobs 12 --repeat 2   # the issue's figure

Each round starts fresh `celery worker -c 1` processes, each in its own process group with its own
state directory (SYNTHGATE_VAR_DIR, XDG_DATA_HOME), as separate machines would run them. What they
have in common is only what a scale-out shares: the database, the broker (Redis; with the embedded
broker its folders, which is why the embedded shape is one machine) and the storage directory.
Once every worker is up (and, with warm-up on, has logged its warm-up), the benchmark files,
submits and approves --jobs requests through the real services (a Gaussian copula of --rows rows of
tests/data/gbsg2.csv, 686 x 10, validated by the whole suite and published if the gate passes),
which enqueue the jobs, and times until the last job reaches a final state ("wall").
Beside it, the jobs' execution window: the first job's start to the last job's finish, as the
workers recorded them (started_at, finished_at), which leaves out the filing and the broker's first
delivery; jobs/h is given on both. Choose --rows so synthesis dominates a job (the issue measures
jobs per hour of real work, not of 1-second jobs).

Threads: each worker process caps its intra-op threads (torch, BLAS, OpenMP, numba; core.threads).
--threads share (the default) sets SYNTHGATE_WORKER_THREADS to the cores divided by the round's
processes, as docs/deploy.md tells an operator running several single-process workers on one
machine; --threads auto leaves it unset (each -c 1 worker then takes every core); a number sets it.

Rounds: warm-up off (every process pays imports and anonymeter's kernel compilation on its first
job: "cold", the behaviour before the warm-up) and warm-up on ("warm"), each with 1 and 2 worker
processes. The baseline is the 1-process cold round of the same run; every figure is printed beside
it. Also printed: the first job's seconds and the later jobs' mean (the warm-up's aim is that these
match), and the speedup of 2 processes over 1 (target: at least 1.6x warm on 2 cores). --warm-only
skips the cold rounds; --repeat N runs the 1- and 2-process rounds back to back N times (on a shared
machine, the load average before and after each round is printed beside it).

--services creates a database --database-name (default `synthgate_bench_throughput`) on the
PostgreSQL server of --database-url (dropped first if it exists, and at the end) and uses the Redis
db of --redis-url (default 14; emptied first) as the broker and the cache (so the periodic locks are
Redis' too).

The data is a public research table shipped in tests/data; nothing outside the repository is read.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOURCE = ROOT / "tests" / "data" / "gbsg2.csv"
OUTCOME = "cens"
ROWS = 500  # the default of --rows
PASSWORD = "bench-Correct-Horse-42"
TOTP_SECRET = "SYNTHGATEBENCH234SYNTHGATEBENCH2"
QUEUES = "synthesis,validation,housekeeping"
READY_TIMEOUT = 180
BENCH_DB = "synthgate_bench_throughput"


@dataclass
class Round:
    label: str
    workers: int
    warm: bool
    jobs: int
    rows: int = ROWS
    threads: int | None = None
    number: int = 0
    seconds: float = 0.0
    window: float = 0.0
    load_before: str = ""
    load_after: str = ""
    warmup_seconds: list[float] = field(default_factory=list)
    first_job: list[float] = field(default_factory=list)
    later_jobs: list[float] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)

    @property
    def per_hour(self) -> float:
        return self.jobs * 3600 / self.seconds if self.seconds else 0.0

    @property
    def window_per_hour(self) -> float:
        return self.jobs * 3600 / self.window if self.window else 0.0


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "-"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class Deployment:
    """One shared database, broker and storage; worker processes come and go per round."""

    def __init__(self, root: Path, *, database_url: str | None, redis_url: str | None) -> None:
        self.root = root
        self.shared = root / "shared"
        self.shared.mkdir(parents=True)
        self.env: dict[str, str] = {
            "SYNTHGATE_ENV": "development",
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "SYNTHGATE_DATA_KEY": _key(),
            "SYNTHGATE_AUDIT_KEY": _key(),
            "SYNTHGATE_STORAGE_DIR": str(self.shared / "storage"),
            "SYNTHGATE_AUDIT_CHECKPOINT_DIR": str(self.shared / "audit-checkpoints"),
            "SYNTHGATE_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        if database_url:
            self.env["DATABASE_URL"] = database_url
        else:
            self.env["DATABASE_URL"] = f"sqlite:///{self.shared / 'synthgate.sqlite3'}"
        if redis_url:
            self.env["CELERY_BROKER_URL"] = redis_url
            self.env["SYNTHGATE_CACHE_URL"] = redis_url
        else:
            # The filesystem broker's folders: shared by every process of the embedded shape.
            self.env["SYNTHGATE_BROKER_DIR"] = str(self.shared / "broker")
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def setup_django(self) -> None:
        """This process files and approves the requests: the web side, on the shared state."""
        for name in ("CELERY_BROKER_URL", "SYNTHGATE_CACHE_URL", "SYNTHGATE_BROKER_DIR", "DATABASE_URL"):
            os.environ.pop(name, None)
        os.environ.update(self.env)
        os.environ["SYNTHGATE_VAR_DIR"] = str(self.root / "web")
        os.environ["XDG_DATA_HOME"] = str(self.root / "web" / "xdg")
        os.environ["SYNTHGATE_WORKER_WARMUP"] = "false"
        import logging
        import warnings

        import django

        django.setup()
        from django.core.management import call_command

        logging.disable(logging.WARNING)
        warnings.filterwarnings("ignore")
        call_command("migrate", verbosity=0, interactive=False)

    def start_workers(self, count: int, *, warm: bool, tag: str, threads: int | None = None) -> list[float]:
        """`count` single-process workers, each in its own process group and state directory;
        returns once all are ready (and warmed, when `warm`), with each one's warm-up seconds."""
        for i in range(count):
            state = self.root / f"{tag}-worker-{i}"
            state.mkdir(parents=True)
            log_path = state / "worker.log"
            env = {
                **{k: v for k, v in os.environ.items() if k not in self.env},
                **self.env,
                "SYNTHGATE_VAR_DIR": str(state),
                "XDG_DATA_HOME": str(state / "xdg"),
                "SYNTHGATE_WORKER_WARMUP": "true" if warm else "false",
            }
            env.pop("SYNTHGATE_WORKER_THREADS", None)
            if threads:
                env["SYNTHGATE_WORKER_THREADS"] = str(threads)
            cmd = [
                sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", QUEUES, "-c", "1",
                "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
                "-n", f"bench-{tag}-{i}@%h",
            ]  # fmt: skip
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            self.procs.append((proc, log_path))
        warmups: list[float] = []
        deadline = time.monotonic() + READY_TIMEOUT
        for proc, log_path in self.procs:
            while True:
                text = log_path.read_text(errors="replace")
                done = re.search(r"worker warm-up (?:done|stopped after) (?:in )?([0-9.]+) s", text)
                if " ready." in text and (done or not warm):
                    if done:
                        warmups.append(float(done.group(1)))
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"A worker did not start; its log ({log_path}):\n{text[-3000:]}")
                time.sleep(0.2)
        return warmups

    def stop_workers(self) -> None:
        for proc, _log in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, _log in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs = []


def _personas() -> dict[str, Any]:
    from core.roles import NEEDS_SECOND_FACTOR, Role
    from portal.auth_mfa import totp_enrol_with_secret
    from portal.services import user_create

    people = {}
    for key, username, role, team in (
        ("steward", "bench-steward", Role.DATA_STEWARD, "Data Office"),
        ("officer", "bench-officer", Role.PRIVACY_OFFICER, "Privacy"),
        ("officer2", "bench-officer2", Role.PRIVACY_OFFICER, "Privacy"),
        ("scientist", "bench-scientist", Role.DATA_SCIENTIST, "Oncology"),
    ):
        user = user_create(actor=None, username=username, password=PASSWORD, role=role, team_name=team)
        if role in NEEDS_SECOND_FACTOR:
            totp_enrol_with_secret(user=user, secret_base32=TOTP_SECRET)
        people[key] = user
    return people


def _dataset(steward: Any) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from generation.services import dataset_register, dataset_sign_off, dataset_update_columns

    upload = SimpleUploadedFile(SOURCE.name, SOURCE.read_bytes(), content_type="text/csv")
    dataset = dataset_register(actor=steward, name="gbsg2", uploaded_file=upload, epsilon_cap="3")
    dataset_update_columns(actor=steward, dataset_id=dataset.pk, changes=[{"name": OUTCOME, "outcome": True}])
    return dataset_sign_off(actor=steward, dataset_id=dataset.pk)


def _enqueue(people: dict[str, Any], dataset: Any, count: int, tag: str, rows: int) -> list[Any]:
    """File, submit and approve `count` requests; approval enqueues each job (on commit)."""
    from approvals.choices import RequestStatus
    from approvals.services import RequestInput, request_create, request_decide, request_submit

    columns = list(
        dataset.columns.exclude(classification="direct_identifier")
        .order_by("position")
        .values_list("name", flat=True)
    )
    scientist = people["scientist"]
    jobs = []
    for i in range(count):
        draft = request_create(
            actor=scientist,
            data=RequestInput(
                dataset_id=dataset.pk,
                title=f"Throughput {tag} {i}",
                purpose="Measure how many synthesis jobs the workers finish per hour.",
                intended_use="Benchmark",
                audience="internal",
                columns=columns,
                synthesizer="gaussian_copula",
                rows=rows,
            ),
        )
        submitted = request_submit(actor=scientist, request_id=draft.pk)
        for officer in (people["officer"], people["officer2"]):
            submitted.refresh_from_db()
            if submitted.status != RequestStatus.IN_REVIEW:
                break
            request_decide(actor=officer, request_id=submitted.pk, decision="approve", comment="bench")
        submitted.refresh_from_db()
        if submitted.job_id is None:
            raise SystemExit(f"Request {i} was not approved into a job (status {submitted.status}).")
        jobs.append(submitted.job_id)
    return jobs


def _wait(job_ids: list[Any], timeout: float) -> None:
    from generation.choices import FINAL_JOB_STATES
    from generation.models import SynthesisJob

    deadline = time.monotonic() + timeout
    while SynthesisJob.objects.filter(pk__in=job_ids).exclude(state__in=FINAL_JOB_STATES).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"Jobs still running after {timeout:.0f} s; see the worker logs.")
        time.sleep(0.25)


def run_round(dep: Deployment, people: dict[str, Any], dataset: Any, spec: Round, timeout: float) -> Round:
    from django.db import transaction

    from generation.models import SynthesisJob

    tag = f"{'warm' if spec.warm else 'cold'}{spec.workers}-{spec.number}"
    spec.warmup_seconds = dep.start_workers(spec.workers, warm=spec.warm, tag=tag, threads=spec.threads)
    spec.load_before = loadavg()
    try:
        # One transaction: every job is sent at its commit, so the clock starts with all of them
        # queued rather than with the filing of the first (filing takes a while per request).
        with transaction.atomic():
            job_ids = _enqueue(people, dataset, spec.jobs, tag, spec.rows)
            started = time.perf_counter()
        _wait(job_ids, timeout)
        spec.seconds = time.perf_counter() - started
        spec.load_after = loadavg()
    finally:
        dep.stop_workers()
    rows = list(
        SynthesisJob.objects.filter(pk__in=job_ids).values("worker", "state", "started_at", "finished_at")
    )
    timed = [r for r in rows if r["started_at"] and r["finished_at"]]
    if timed:
        first = min(r["started_at"] for r in timed)
        last = max(r["finished_at"] for r in timed)
        spec.window = (last - first).total_seconds()
    by_worker: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        spec.states[row["state"]] = spec.states.get(row["state"], 0) + 1
        if row["started_at"] and row["finished_at"]:
            # "host:pid:claim-token": one process is host:pid.
            by_worker.setdefault(row["worker"].rsplit(":", 1)[0], []).append(row)
    for done in by_worker.values():
        done.sort(key=lambda r: r["started_at"])
        took = [(r["finished_at"] - r["started_at"]).total_seconds() for r in done]
        spec.first_job.append(took[0])
        spec.later_jobs.extend(took[1:])
    return spec


def _mean(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f}" if values else "-"


def report(title: str, rounds: list[Round]) -> None:
    base = rounds[0]
    print(
        f"\n{title}: {base.jobs} jobs per round (gaussian_copula, {base.rows} rows of {SOURCE.name});"
        " jobs/h on the wall time and on the jobs' execution window"
    )
    print(
        f"{'round':<28}{'threads':>8}{'jobs/h':>8}{'x base':>8}{'wall s':>8}{'win s':>7}{'win j/h':>9}"
        f"{'warm-up s':>10}{'1st job s':>10}{'later s':>8}  {'load before -> after':<38}states"
    )
    for n, r in enumerate(rounds, 1):
        name = f"{n}. {r.workers} process{'es' if r.workers > 1 else ''}, {'warm' if r.warm else 'cold'}"
        if r is base:
            name += " (base)"
        ratio = r.per_hour / base.per_hour if base.per_hour else 0.0
        warm = _mean(r.warmup_seconds) if r.warm else "-"
        states = ", ".join(f"{k} {v}" for k, v in sorted(r.states.items()))
        threads = str(r.threads) if r.threads else "auto"
        load = f"{r.load_before} -> {r.load_after}"
        print(
            f"{name:<28}{threads:>8}{r.per_hour:>8.0f}{ratio:>7.2f}x{r.seconds:>8.1f}{r.window:>7.1f}"
            f"{r.window_per_hour:>9.0f}{warm:>10}{_mean(r.first_job):>10}{_mean(r.later_jobs):>8}"
            f"  {load:<38}{states}"
        )
    for warm in (False, True):
        ones = [r for r in rounds if r.workers == 1 and r.warm == warm and r.per_hour]
        twos = [r for r in rounds if r.workers == 2 and r.warm == warm and r.per_hour]
        for one, two in zip(ones, twos, strict=False):
            print(
                f"2 processes over 1, {'warm' if warm else 'cold'} (rounds {rounds.index(one) + 1}"
                f" and {rounds.index(two) + 1}): wall {two.per_hour / one.per_hour:.2f}x,"
                f" execution window {two.window_per_hour / one.window_per_hour:.2f}x"
                + ("  (target: at least 1.6x)" if warm else "")
            )


def _create_database(server_url: str, name: str) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def _drop_database(server_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _threads(option: str, cpus: int, workers: int) -> int | None:
    """SYNTHGATE_WORKER_THREADS for a round of `workers` processes (None: leave it unset)."""
    if option == "auto":
        return None
    if option == "share":
        return max(1, cpus // workers)
    return int(option)


def bench(title: str, args: argparse.Namespace, *, database_url: str | None, redis_url: str | None) -> None:
    """One shape (embedded, or PostgreSQL + Redis) in a child process: Django is set up once per
    process, and each shape has its own database and settings."""
    with tempfile.TemporaryDirectory(prefix="synthgate-throughput-") as tmp:
        dep = Deployment(Path(tmp), database_url=database_url, redis_url=redis_url)
        dep.setup_django()
        import generation.services.datasets as intake

        intake.new_holdout_seed = lambda: 20240601  # the same holdout split every run
        people = _personas()
        dataset = _dataset(people["steward"])
        cpus = os.cpu_count() or 1
        rounds = [
            Round(
                title, workers, warm, args.jobs, rows=args.rows, threads=_threads(args.threads, cpus, workers)
            )
            for warm in ((True,) if args.warm_only else (False, True))
            for _ in range(args.repeat)
            for workers in (1, 2)
            if workers in args.workers
        ]
        try:
            for number, spec in enumerate(rounds, 1):
                spec.number = number
                run_round(dep, people, dataset, spec, args.timeout)
                print(
                    f"  {spec.workers} x {'warm' if spec.warm else 'cold'}: wall {spec.seconds:.1f} s,"
                    f" execution window {spec.window:.1f} s, load {spec.load_before} -> {spec.load_after}",
                    flush=True,
                )
        finally:
            dep.stop_workers()
        report(title, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=8, help="jobs per round (default 8)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument("--rows", type=int, default=ROWS, help=f"synthetic rows per job (default {ROWS})")
    parser.add_argument("--warm-only", action="store_true", help="skip the cold rounds")
    parser.add_argument("--repeat", type=int, default=1, help="run the 1- and 2-process rounds N times")
    parser.add_argument(
        "--threads", default="share", help="per worker process: share (cores / processes), auto, or a number"
    )
    parser.add_argument("--services", action="store_true", help="also run on PostgreSQL + Redis")
    parser.add_argument("--services-only", action="store_true", help="only PostgreSQL + Redis")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--database-name", default=BENCH_DB, help="created and dropped on --database-url")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a round may take")
    parser.add_argument("--shape", choices=["embedded", "services"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if os.environ.get("SYNTHGATE_ENV") == "production":
        raise SystemExit("The benchmark creates logins with a published password: refused in production.")
    if args.shape == "embedded":
        bench("Embedded (SQLite, filesystem broker)", args, database_url=None, redis_url=None)
        return
    if args.shape == "services":
        import redis

        redis.Redis.from_url(args.redis_url).flushdb()
        url = _create_database(args.database_url, args.database_name)
        try:
            bench("PostgreSQL + Redis", args, database_url=url, redis_url=args.redis_url)
        finally:
            _drop_database(args.database_url, args.database_name)
        return
    print(f"bench/throughput.py on {machine()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    shapes = ["embedded", *(["services"] if args.services else [])]
    if args.services_only:
        shapes = ["services"]
    for shape in shapes:
        forwarded = [a for a in sys.argv[1:] if a not in ("--services", "--services-only")]
        subprocess.run([sys.executable, __file__, *forwarded, "--shape", shape], check=True)


if __name__ == "__main__":
    main()
