"""Load test (issue 16): simulated scientists, privacy officers and auditors against a running portal.

Not part of the test run. Two steps, against the server's own database:

    # 1. seed the server's database (empty or new; same SYNTHGATE_VAR_DIR or DATABASE_URL as the
    #    server): the services' personas and a published release (bench/_seed.py), --requests
    #    cloned requests, and one login per simulated user; writes the logins to --out.
    .venv/bin/python bench/load.py seed --database-url postgres://u:p@127.0.0.1:5432/synthgate \
        --requests 2000 --out /tmp/sg-load.json
    # 2. run Locust: 50 users, 60 s, headless; prints requests, failures and p95 per route.
    .venv/bin/python bench/load.py run --host http://127.0.0.1:8000 --personas /tmp/sg-load.json \
        --users 50 --spawn-rate 10 --run-time 60s --headless

Or all of it in one command (issue 16 item 5's setup: gunicorn, PostgreSQL, Redis and a worker with
2 processes on this machine; it waits for every job the run queued and prints their final states):

    .venv/bin/python bench/load.py stack --database-url postgres://u:p@127.0.0.1:5432/sg_load \
        --broker-url redis://127.0.0.1:6379/4 --requests 2000 --users 50 --run-time 60s

`run` starts `locust -f bench/load.py` with those options (anything after `--` goes to Locust
as is, e.g. `-- --csv /tmp/sg-load` for CSV files); without --headless it serves Locust's web UI.

The users (weights 6 : 3 : 1, so 50 users are about 30 scientists, 15 officers, 5 auditors). Each
signs in once through the login form (and the second-factor form for officers and auditors, with
a TOTP code computed from the seeded secret), then loops with 1-3 s of think time:
  - scientist: the request, catalog and dataset pages and their API lists; a release's page and its
    report (GET /api/v1/releases/<id>/report/); files a request through the API and submits it;
  - officer: the review queue (page and API) and approves one request in review (POST
    .../decisions/); each approval queues a synthesis job for the workers;
  - auditor: the audit log page and GET /api/v1/audit/events/.
API calls use the signed-in session (with the CSRF header for POSTs), as the portal's own pages do.
Two officers can pick the same request: the second gets 409 (already decided or no longer in
review), which is the service's correct answer and is counted apart ("decide: raced"), not as a
failure. Routes are named by pattern (/catalog/[id]/), so the table has one line per route.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import itertools
import json
import os
import random
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = {"scientist": 6, "officer": 3, "auditor": 1}


def totp_code(secret_base32: str, at: float | None = None, step: int = 30, digits: int = 6) -> str:
    """RFC 6238 (HMAC-SHA1), as django-otp's TOTPDevice checks it with its defaults."""
    key = base64.b32decode(secret_base32.upper(), casefold=True)
    counter = struct.pack(">Q", int((time.time() if at is None else at) // step))
    digest = hmac.new(key, counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 10**digits:0{digits}d}"


# --- seed: runs in Django, never under Locust --------------------------------------------------


def seed(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    from bench._seed import BENCH_PASSWORD, BENCH_TOTP_SECRET, TEAMS, Grower, base, setup_django

    setup_django(var_dir=args.var_dir, database_url=args.database_url)
    from django.core.management import call_command

    from approvals.models import GenerationRequest
    from catalog.models import Release
    from core.roles import NEEDS_SECOND_FACTOR, Role
    from portal.auth_mfa import totp_enrol_with_secret
    from portal.services import user_create

    call_command("migrate", verbosity=0, interactive=False)
    if GenerationRequest.objects.exists():
        raise SystemExit(
            "This database already holds requests: seed an empty one (the server's, migrated or new)."
        )
    seeded = base()
    Grower(seeded, audit_per_request=args.audit_per_request).grow_to(args.requests)
    roles = {"scientist": Role.DATA_SCIENTIST, "officer": Role.PRIVACY_OFFICER, "auditor": Role.AUDITOR}
    total = sum(WEIGHTS.values())
    logins: dict[str, list[str]] = {}
    started = time.perf_counter()
    for kind, role in roles.items():
        # Enough accounts for every user of the kind even if Locust's weighting rounds up.
        count = args.users * WEIGHTS[kind] // total + 2
        logins[kind] = []
        for i in range(count):
            username = f"load-{kind}-{i:02d}"
            team = (
                TEAMS[i % len(TEAMS)]
                if role == Role.DATA_SCIENTIST
                else ("Privacy" if kind == "officer" else "Audit")
            )
            user = user_create(
                actor=None, username=username, password=BENCH_PASSWORD, role=role, team_name=team
            )
            if role in NEEDS_SECOND_FACTOR:
                totp_enrol_with_secret(user=user, secret_base32=BENCH_TOTP_SECRET)
            logins[kind].append(username)
    dataset = seeded["dataset"]
    columns = list(
        dataset.columns.exclude(classification="direct_identifier")
        .order_by("position")
        .values_list("name", flat=True)
    )
    # Releases every signed-in user may open (organization audience), newest first.
    releases = [
        str(pk) for pk in Release.objects.filter(audience="organization").values_list("pk", flat=True)[:200]
    ]
    out = {
        "password": BENCH_PASSWORD,
        "totp_secret": BENCH_TOTP_SECRET,
        "logins": logins,
        "dataset": str(dataset.pk),
        "columns": columns,
        "releases": releases,
    }
    args.out.write_text(json.dumps(out, indent=2))
    args.out.chmod(0o600)
    print(
        f"Seeded {GenerationRequest.objects.count()} requests, {Release.objects.count()} releases, "
        f"{sum(len(v) for v in logins.values())} load logins in {time.perf_counter() - started:.0f} s; "
        f"wrote {args.out}"
    )


def run(args: argparse.Namespace, extra: list[str]) -> None:
    command = [
        sys.executable, "-m", "locust", "-f", str(Path(__file__).resolve()), "--host", args.host,
        "--users", str(args.users), "--spawn-rate", str(args.spawn_rate), "--run-time", args.run_time,
    ]  # fmt: skip
    if args.headless:
        command += ["--headless", "--only-summary"]
    env = {**os.environ, "SYNTHGATE_LOAD_PERSONAS": str(args.personas.resolve())}
    raise SystemExit(subprocess.call(command + extra, env=env))


def _job_states(since: Any) -> dict[str, int]:
    """How many jobs created after `since` are in each state (Django is set up by seed)."""
    from django.db.models import Count

    from generation.models import SynthesisJob

    rows = SynthesisJob.objects.filter(created_at__gt=since).values("state").annotate(n=Count("pk"))
    return {str(row["state"]): int(row["n"]) for row in rows}


def stack(args: argparse.Namespace, extra: list[str]) -> None:
    """The whole load test on this machine: an empty PostgreSQL database and a Redis db, seeded;
    gunicorn (gunicorn.conf.py, --web-workers x 4 threads) and one Celery worker (scripts/common.sh's
    worker_command: nice 10, --worker-concurrency warmed processes, every queue, with beat), each in
    its own process group; Locust; then it waits until every job the run queued is final, prints
    their states, and stops both."""
    import signal
    import tempfile
    from datetime import UTC, datetime

    import redis
    import requests

    sys.path.insert(0, str(ROOT))
    from bench._seed import cpu_seconds, free_port, gunicorn_argv

    var_dir = Path(tempfile.mkdtemp(prefix="sg-load-"))
    cache_url = args.broker_url.rsplit("/", 1)[0] + f"/{int(args.broker_url.rsplit('/', 1)[1]) + 1}"
    env = {
        **os.environ,
        "SYNTHGATE_ENV": "development",
        "SYNTHGATE_VAR_DIR": str(var_dir),
        "DATABASE_URL": args.database_url,
        "CELERY_BROKER_URL": args.broker_url,
        "SYNTHGATE_CACHE_URL": cache_url,
        "SYNTHGATE_WORKER_CONCURRENCY": str(args.worker_concurrency),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    for url in (args.broker_url, cache_url):
        redis.Redis.from_url(url).flushdb()
    personas = var_dir / "personas.json"
    # Migrates and seeds in this process (bench/_seed.py's settings on the same database and var
    # folder as the servers), which then reads the jobs' states from the same database.
    seed(
        argparse.Namespace(
            database_url=args.database_url,
            var_dir=var_dir,
            requests=args.requests,
            users=args.users,
            audit_per_request=1,
            out=personas,
        )
    )
    python = sys.executable
    port = free_port()
    host = f"http://127.0.0.1:{port}"
    worker_cmd = subprocess.run(
        ["bash", "-c", "source scripts/common.sh && worker_command"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    worker_cmd += ["-B", "--schedule", str(var_dir / "celerybeat-schedule")]
    logs = {name: (var_dir / f"{name}.log").open("ab") for name in ("web", "worker")}
    procs = {
        "web": subprocess.Popen(
            gunicorn_argv(port=port, workers=args.web_workers),
            cwd=ROOT,
            env=env,
            stdout=logs["web"],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),  # fmt: skip
        "worker": subprocess.Popen(
            worker_cmd,
            cwd=ROOT,
            env=env,
            stdout=logs["worker"],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    }
    try:
        deadline = time.monotonic() + 300
        while True:  # the site answers and every worker process has warmed up
            ready = b" ready." in (var_dir / "worker.log").read_bytes()
            try:
                ready = ready and requests.get(host + "/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                ready = False
            if ready:
                break
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited ({proc.returncode}); see {var_dir / (name + '.log')}")
            if time.monotonic() > deadline:
                raise SystemExit(f"the stack did not come up in 300 s; see the logs in {var_dir}")
            time.sleep(1)
        since = datetime.now(UTC)
        print(f"Stack up (web {host}, logs in {var_dir}); load {os.getloadavg()[0]:.2f}", flush=True)
        import resource

        def used_so_far() -> dict[str, float]:
            groups = {name: cpu_seconds(pgid=proc.pid) for name, proc in procs.items()}
            return {**groups, "postgresql": cpu_seconds(command="postgres")}

        cpu_before, own_before = used_so_far(), resource.getrusage(resource.RUSAGE_CHILDREN)
        wall_before = time.monotonic()
        subprocess.call(
            [python, "-m", "locust", "-f", str(Path(__file__).resolve()), "--host", host, "--users",
             str(args.users), "--spawn-rate", str(args.spawn_rate), "--run-time", args.run_time,
             "--headless", "--only-summary", *extra],
            env={**os.environ, "SYNTHGATE_LOAD_PERSONAS": str(personas)},
        )  # fmt: skip
        ended = time.monotonic()
        cpu_after, own_after = used_so_far(), resource.getrusage(resource.RUSAGE_CHILDREN)
        used = {name: cpu_after.get(name, 0.0) - cpu_before.get(name, 0.0) for name in cpu_after}
        used["locust"] = (own_after.ru_utime + own_after.ru_stime) - (
            own_before.ru_utime + own_before.ru_stime
        )
        span = ended - wall_before
        print(
            f"CPU seconds during the {span:.0f} s run ({(os.cpu_count() or 1) * span:.0f} on {os.cpu_count()} cores): "
            + ", ".join(f"{name} {seconds:.1f}" for name, seconds in sorted(used.items()))
        )
        print(f"Locust done; load {os.getloadavg()[0]:.2f}; waiting for the jobs it queued", flush=True)
        final = {"succeeded", "gate_failed", "failed", "cancelled"}
        while True:
            states = _job_states(since)
            waiting = sum(n for state, n in states.items() if state not in final)
            if not waiting or time.monotonic() - ended > args.job_timeout:
                break
            time.sleep(5)
        print(
            f"Jobs queued during the run: {sum(states.values())}; states {states}; "
            f"{'all final' if not waiting else f'{waiting} NOT final'} {time.monotonic() - ended:.0f} s after the run"
        )
    finally:
        for proc in procs.values():
            try:  # the main process first (Celery's warm shutdown), then whatever is left of the group
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("seed", help="seed the server's database and write the logins")
    s.add_argument("--database-url", help="the server's DATABASE_URL (default: SQLite under --var-dir)")
    s.add_argument("--var-dir", type=Path, default=ROOT / "var", help="the server's SYNTHGATE_VAR_DIR")
    s.add_argument("--requests", type=int, default=2000, help="requests in the database after seeding")
    s.add_argument("--users", type=int, default=50, help="simulated users to make logins for")
    s.add_argument("--audit-per-request", type=int, default=1)
    s.add_argument("--out", type=Path, default=Path("/tmp/sg-load-personas.json"))
    r = sub.add_parser("run", help="run Locust against --host")
    r.add_argument("--host", required=True, help="the server's base URL, e.g. http://127.0.0.1:8000")
    r.add_argument("--personas", type=Path, default=Path("/tmp/sg-load-personas.json"))
    r.add_argument("--users", type=int, default=50)
    r.add_argument("--spawn-rate", type=float, default=10)
    r.add_argument("--run-time", default="60s")
    r.add_argument("--headless", action="store_true")
    k = sub.add_parser(
        "stack", help="start gunicorn and a worker on PostgreSQL + Redis, seed, run Locust, wait for jobs"
    )
    k.add_argument("--database-url", required=True, help="an empty PostgreSQL database")
    k.add_argument(
        "--broker-url", default="redis://127.0.0.1:6379/4", help="Redis db (flushed; the cache uses the next)"
    )
    k.add_argument("--requests", type=int, default=2000)
    k.add_argument("--users", type=int, default=50)
    k.add_argument("--spawn-rate", type=float, default=10)
    k.add_argument("--run-time", default="60s")
    k.add_argument("--web-workers", type=int, default=2, help="gunicorn processes (4 threads each)")
    k.add_argument("--worker-concurrency", type=int, default=2, help="Celery worker processes")
    k.add_argument(
        "--job-timeout", type=float, default=900, help="seconds to wait for the jobs after the run"
    )
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.command == "seed":
        seed(args)
    elif args.command == "stack":
        stack(args, extra)
    else:
        run(args, extra)


# --- the Locust users: defined only when Locust imports this file ------------------------------

if __name__ != "__main__":
    from locust import HttpUser, between, events, task

    PERSONAS: dict[str, Any] = json.loads(
        Path(os.environ.get("SYNTHGATE_LOAD_PERSONAS", "/tmp/sg-load-personas.json")).read_text()
    )
    _NEXT = {kind: itertools.count() for kind in WEIGHTS}
    RACED = {"count": 0}

    class PortalUser(HttpUser):
        abstract = True
        kind = ""
        wait_time = between(1, 3)

        def on_start(self) -> None:
            names = PERSONAS["logins"][self.kind]
            self.username = names[next(_NEXT[self.kind]) % len(names)]
            login = "/accounts/login/"
            self.client.get(login, name="login (GET)")
            response = self.client.post(
                login,
                data={
                    "username": self.username,
                    "password": PERSONAS["password"],
                    "csrfmiddlewaretoken": self.client.cookies.get("csrftoken", ""),
                },
                headers={"Referer": self.host + login},
                name="login (POST)",
            )
            if "/accounts/mfa/verify/" in response.url:
                verify = "/accounts/mfa/verify/"
                response = self.client.post(
                    verify,
                    data={
                        "code": totp_code(PERSONAS["totp_secret"]),
                        "csrfmiddlewaretoken": self.client.cookies.get("csrftoken", ""),
                    },
                    headers={"Referer": self.host + verify},
                    name="mfa-verify (POST)",
                )
            if "/accounts/" in response.url:
                events.request.fire(
                    request_type="LOGIN", name="sign-in failed", response_time=0, response_length=0,
                    exception=RuntimeError(f"{self.username} ended on {response.url}"), context={},
                )  # fmt: skip

        def api_post(self, path: str, payload: dict[str, Any], name: str) -> Any:
            return self.client.post(
                path,
                json=payload,
                headers={"X-CSRFToken": self.client.cookies.get("csrftoken", ""), "Referer": self.host + "/"},
                name=name,
                catch_response=True,
            )

    class Scientist(PortalUser):
        kind = "scientist"
        weight = WEIGHTS["scientist"]

        @task(3)
        def request_list(self) -> None:
            self.client.get("/requests/", name="/requests/")

        @task(3)
        def catalog(self) -> None:
            self.client.get("/catalog/", name="/catalog/")

        @task(1)
        def datasets(self) -> None:
            self.client.get("/datasets/", name="/datasets/")

        @task(3)
        def api_requests(self) -> None:
            self.client.get("/api/v1/requests/", name="/api/v1/requests/")

        @task(2)
        def api_releases(self) -> None:
            self.client.get("/api/v1/releases/", name="/api/v1/releases/")

        @task(2)
        def open_release(self) -> None:
            if PERSONAS["releases"]:
                release = random.choice(PERSONAS["releases"])
                self.client.get(f"/catalog/{release}/", name="/catalog/[id]/")
                self.client.get(f"/api/v1/releases/{release}/report/", name="/api/v1/releases/[id]/report/")

        @task(1)
        def file_request(self) -> None:
            with self.api_post(
                "/api/v1/requests/",
                {
                    "dataset": PERSONAS["dataset"],
                    "title": f"Load test request by {self.username}",
                    "purpose": "Prototype a one-year mortality model before applying for the real data.",
                    "intended_use": "Feature engineering in a notebook",
                    "audience": "internal",
                    "columns": PERSONAS["columns"],
                    "synthesizer": "gaussian_copula",
                    "rows": 300,
                },
                "/api/v1/requests/",
            ) as response:
                if response.status_code != 201:
                    response.failure(f"{response.status_code}: {response.text[:200]}")
                    return
                created = response.json()["id"]
            with self.api_post(
                f"/api/v1/requests/{created}/submit/", {}, "/api/v1/requests/[id]/submit/"
            ) as submitted:
                if submitted.status_code != 200:
                    submitted.failure(f"{submitted.status_code}: {submitted.text[:200]}")

    class Officer(PortalUser):
        kind = "officer"
        weight = WEIGHTS["officer"]

        @task(3)
        def review_queue(self) -> None:
            self.client.get("/requests/review/", name="/requests/review/")

        @task(2)
        def api_requests(self) -> None:
            self.client.get("/api/v1/requests/", name="/api/v1/requests/")

        @task(2)
        def approve(self) -> None:
            listed = self.client.get(
                "/api/v1/requests/?status=in_review", name="/api/v1/requests/?status=in_review"
            )
            if listed.status_code != 200 or not listed.json().get("results"):
                return
            target = random.choice(listed.json()["results"])["id"]
            with self.api_post(
                f"/api/v1/requests/{target}/decisions/",
                {"decision": "approve", "comment": "load test"},
                "/api/v1/requests/[id]/decisions/",
            ) as response:
                if response.status_code == 409:
                    # Another officer decided it first: the right answer, not an error.
                    RACED["count"] += 1
                    response.success()
                elif response.status_code not in (200, 201):
                    response.failure(f"{response.status_code}: {response.text[:200]}")

    class Auditor(PortalUser):
        kind = "auditor"
        weight = WEIGHTS["auditor"]

        @task(2)
        def audit_page(self) -> None:
            self.client.get("/audit/", name="/audit/")

        @task(1)
        def audit_api(self) -> None:
            self.client.get("/api/v1/audit/events/", name="/api/v1/audit/events/")

    @events.quitting.add_listener
    def _summary(environment: Any, **_kwargs: Any) -> None:
        """One line per route: requests, failures, p50 and p95 (ms), requests/s."""
        stats = environment.runner.stats
        print(f"\n{'route':<42} {'requests':>9} {'failures':>9} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>7}")
        for entry in sorted(stats.entries.values(), key=lambda e: (e.method or "", e.name)):
            print(
                f"{(entry.method or '') + ' ' + entry.name:<42} {entry.num_requests:>9} {entry.num_failures:>9} "
                f"{entry.get_response_time_percentile(0.5):>8.0f} {entry.get_response_time_percentile(0.95):>8.0f} "
                f"{entry.total_rps:>7.1f}"
            )
        total = stats.total
        print(
            f"{'all':<42} {total.num_requests:>9} {total.num_failures:>9} "
            f"{total.get_response_time_percentile(0.5):>8.0f} {total.get_response_time_percentile(0.95):>8.0f} "
            f"{total.total_rps:>7.1f}"
        )
        print(f"decide: raced (409, another officer decided first): {RACED['count']}")


if __name__ == "__main__":
    main()
