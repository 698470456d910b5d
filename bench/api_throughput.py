"""Throughput of GET /api/v1/requests/ against /healthz over HTTP (issue 16 item 2).

Not part of the test run. Prints figures; docs/benchmarks.md records a run.

    .venv/bin/python bench/api_throughput.py                          # SQLite, 16 and 10,000 requests
    .venv/bin/python bench/api_throughput.py --sizes 16 --workers 2   # a quick look (about 2 minutes)
    .venv/bin/python bench/api_throughput.py --database-url postgres://u:p@127.0.0.1:5432/sg_bench

Protocol. A fresh database: a new SQLite file under a temporary SYNTHGATE_VAR_DIR, or the
PostgreSQL database of --database-url, which must be empty (migrated here; refused if it already
holds requests). bench/_seed.py makes the personas and one request of each kind through the real
services, then clones them up to each size in --sizes (smallest first: the same database grows).
At each size and for each gunicorn worker count in --workers, gunicorn starts in its own process
group on a free port with scripts/run.sh's flags (gunicorn.conf.py, gthread, --threads 4, --keep-alive 15), a data
scientist and a privacy officer (with a TOTP code from the seeded secret) sign in once through
POST /api/v1/auth/token/, and --clients threads, each with its own keep-alive requests.Session,
loop for --duration seconds. One target after the other on the same server: the first page of
GET /api/v1/requests/ as the scientist, as the officer, then GET /healthz (the server's floor:
middleware and HTTP alone), each for --duration seconds with every client on it. Per target:
requests, errors (anything but 200), requests/s (over the phase's wall time), p50/p95 latency and
the server's CPU per request (user + system time of gunicorn's processes over the phase, divided
by the requests served: load from other work stretches it far less than requests/s); beside them
the load average before and after (the machine may be shared) and the machine and date. The clients run in this process, on the same cores as the server.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._seed import (  # noqa: E402
    BENCH_PASSWORD,
    BENCH_TOTP_SECRET,
    Grower,
    base,
    cpu_seconds,
    free_port,
    gunicorn_argv,
    setup_django,
)
from bench.pages import machine, percentile  # noqa: E402


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


class Server:
    """gunicorn serving portal.wsgi in its own process group, as scripts/run.sh starts it."""

    def __init__(self, *, workers: int, var_dir: Path, database_url: str | None, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "SYNTHGATE_ENV": "test", "SYNTHGATE_VAR_DIR": str(var_dir)}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        if database_url:
            env["DATABASE_URL"] = database_url
        else:
            env.pop("DATABASE_URL", None)
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            gunicorn_argv(port=self.port, workers=workers),
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole below
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        import requests

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited ({self.process.returncode}); see {self.log.name}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise SystemExit(f"gunicorn did not answer /healthz in 90 s; see {self.log.name}")

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
        self.log.close()


def sign_in(url: str, username: str, *, second_factor: bool) -> str:
    """An API token from POST /api/v1/auth/token/ (with the current TOTP code for an officer)."""
    import requests
    from django_otp.oath import totp

    body = {"username": username, "password": BENCH_PASSWORD}
    if second_factor:  # (bench/load.py has the same; importing it would load Locust and gevent)
        body["otp"] = f"{totp(base64.b32decode(BENCH_TOTP_SECRET)):06d}"
    response = requests.post(url + "/api/v1/auth/token/", json=body, timeout=60)
    if response.status_code != 200:
        raise SystemExit(f"sign-in of {username} failed: {response.status_code} {response.text[:300]}")
    return str(response.json()["token"])


def drive(
    url: str, path: str, token: str | None, *, clients: int, duration: float
) -> tuple[list[float], int, float]:
    """`clients` threads, each with its own keep-alive session, requesting `path` back to back for
    `duration` seconds. Latencies (ms) of the 200 answers, the count of the others, the wall time."""
    import requests

    headers = {"Authorization": f"Token {token}"} if token else {}
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client() -> None:
        session = requests.Session()
        mine: list[float] = []
        failed = 0
        # Open the connection (and warm its worker) outside the timed window; a failure here is
        # counted by the timed loop, never left to block the others at the barrier.
        try:
            session.get(url + path, headers=headers, timeout=60)
        except requests.RequestException:
            pass
        start.wait()
        stop_at = time.perf_counter() + duration
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            try:
                ok = session.get(url + path, headers=headers, timeout=60).status_code == 200
            except requests.RequestException:
                ok = False
            if ok:
                mine.append((time.perf_counter() - began) * 1000)
            else:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return latencies, errors[0], time.perf_counter() - began


def main() -> None:
    import faulthandler

    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>`: where a run is, on stderr
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 10_000], help="requests in the database")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4], help="gunicorn worker processes")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a new SQLite file)")
    parser.add_argument("--var-dir", type=Path, help="SYNTHGATE_VAR_DIR (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    own_dir = args.var_dir is None
    var_dir = args.var_dir or Path(tempfile.mkdtemp(prefix="sg-bench-api-"))
    setup_django(var_dir=var_dir, database_url=args.database_url)
    from django.core.management import call_command
    from django.db import connections

    from approvals.models import GenerationRequest

    call_command("migrate", verbosity=0, interactive=False)
    if GenerationRequest.objects.exists():
        raise SystemExit("This database already holds requests: give an empty one.")
    engine = connections["default"].vendor
    print(f"# GET /api/v1/requests/ and /healthz over HTTP: {machine()}; {engine}")
    print(f"# {args.clients} clients x {args.duration:.0f} s; gunicorn gthread, 4 threads per worker")
    seeded = base()
    people = seeded["people"]
    grower = Grower(seeded)
    log = var_dir / "gunicorn.log"
    tokens: dict[str, str] = {}
    rows = []
    try:
        for size in sorted(args.sizes):
            grower.grow_to(size)
            connections.close_all()  # the server's processes read what was just committed
            for workers in args.workers:
                server = Server(workers=workers, var_dir=var_dir, database_url=args.database_url, log=log)
                try:
                    if not tokens:  # once: an officer's TOTP code may be used only once
                        tokens["scientist"] = sign_in(
                            server.url, people["scientist"].username, second_factor=False
                        )
                        tokens["officer"] = sign_in(
                            server.url, people["officer"].username, second_factor=True
                        )
                    targets = [
                        ("GET /api/v1/requests/ scientist", "/api/v1/requests/", tokens["scientist"]),
                        ("GET /api/v1/requests/ officer", "/api/v1/requests/", tokens["officer"]),
                        ("GET /healthz", "/healthz", None),
                    ]
                    for name, path, token in targets:
                        before = load_average()
                        at = datetime.now(UTC).strftime("%H:%M UTC")
                        cpu_before = cpu_seconds(pgid=server.process.pid)
                        values, failed, wall = drive(
                            server.url, path, token, clients=args.clients, duration=args.duration
                        )
                        # Over every answer the clients got (errors too); warm-up requests excluded.
                        served = len(values) + failed
                        cpu_ms = (cpu_seconds(pgid=server.process.pid) - cpu_before) * 1000 / max(served, 1)
                        after = load_average()
                        p50 = percentile(values, 0.50) if values else 0.0
                        p95 = percentile(values, 0.95) if values else 0.0
                        rows.append(
                            (
                                size,
                                workers,
                                name,
                                len(values),
                                failed,
                                len(values) / wall,
                                p50,
                                p95,
                                cpu_ms,
                                at,
                                before,
                                after,
                            )
                        )
                        print(
                            f"  {size} requests, {workers} workers, {name}: {len(values) / wall:.1f} req/s, "
                            f"{cpu_ms:.1f} ms server CPU per request, load {before} -> {after}"
                        )
                finally:
                    server.stop()
    finally:
        if own_dir and not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)
        elif own_dir:
            print(f"# kept {var_dir}")

    print(f"\n# {datetime.now(UTC):%Y-%m-%d} {platform.node()}")
    header = f"{'rows':>6} {'wrk':>3}  {'target':<32} {'reqs':>6} {'err':>4} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7}"
    print(header + "  CPU ms  at         load before -> after")
    for size, workers, name, count, failed, rate, p50, p95, cpu_ms, at, before, after in rows:
        print(
            f"{size:>6} {workers:>3}  {name:<32} {count:>6} {failed:>4} {rate:>7.1f} {p50:>7.1f} {p95:>7.1f}"
            f"  {cpu_ms:>6.1f}  {at}  {before} -> {after}"
        )
    print(
        "# CPU ms: the gunicorn processes' user + system CPU per request served in the phase; "
        f"{os.cpu_count()} cores / that = the most the server could answer per second on an idle machine"
    )


if __name__ == "__main__":
    main()
