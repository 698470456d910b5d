"""List pages and list endpoints at a year's volume: queries, p50 and p95 per page and persona.

Not part of the test run. Prints figures; docs/benchmarks.md records a run (issue 16).

    .venv/bin/python bench/pages.py                                  # SQLite, 10 and 10,000 requests
    .venv/bin/python bench/pages.py --sizes 10 200 --repeat 10       # a quick look
    .venv/bin/python bench/pages.py --database-url postgres://u:p@127.0.0.1:5432/synthgate
    .venv/bin/python bench/pages.py --url http://127.0.0.1:8000 --var-dir /srv/sg-bench  # live server

Protocol. A fresh database: Django's test database of the configured one (a new SQLite file under a
temporary SYNTHGATE_VAR_DIR, or test_<name> on the PostgreSQL server of --database-url, dropped at
the end unless --keep). bench/_seed.py makes the personas and one request of each kind through the
real services (whas500 from tests/data registered and signed off; two releases synthesized,
validated and published by the worker's pipeline task; a request in review, a draft, a rejection,
an access grant), then clones those rows with bulk_create up to each size in --sizes (smallest
first: the same database grows), about half of the requests published. At each size, for each page
and persona (a privacy officer and a data scientist of one of five teams; --personas also takes
auditor), one warm-up request counts the SQL queries and the response size, then --repeat timed
requests give p50 and p95 of wall time. Pages are fetched with a signed-in session (the officer's
second factor verified, as after mfa-verify); API endpoints with an API token, as API clients do.
The last table is each page's p95 at the largest size over its p95 at the smallest (target <= 2)
and its query counts at both (target: equal).

In-process (default): Django's test Client in this process, so the figures are the view's own cost
(middleware, queries, serializers, templates), without a web server or network. With --url the
same requests go over HTTP to a running server (gunicorn) that must use this script's database:
start it with SYNTHGATE_VAR_DIR=<--var-dir> (SQLite) or DATABASE_URL=<--database-url>, on an
empty, migrated or new database; this script then migrates and seeds that database itself (not a
test copy) and refuses one that already holds requests. Query counts are not visible over HTTP.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._seed import BENCH_PASSWORD, Grower, base, setup_django  # noqa: E402

# (label, URL name, API?) in the order the issue lists them.
PAGES: list[tuple[str, str, bool]] = [
    ("requests page", "approvals:request-list", False),
    ("review queue", "approvals:review-queue", False),
    ("datasets page", "generation:dataset-list", False),
    ("catalog page", "catalog:release-list", False),
    ("GET /api/v1/requests/", "api-request-list", True),
    ("GET /api/v1/releases/", "api-release-list", True),
    ("GET /api/v1/datasets/", "api-dataset-list", True),
    ("audit page", "audit:event-list", False),
    ("access requests page", "catalog:access-request-list", False),
    ("GET /api/v1/access-requests/", "api-access-request-list", True),
    ("inbox page", "notifications:inbox", False),
    ("GET /api/v1/notifications/", "notifications-list", True),
]


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (p95 of 20 samples is the 19th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-int(share * 100) * len(ordered) // 100))
    return ordered[min(rank, len(ordered)) - 1]


class InProcess:
    """Django's test Client: a session for pages, an API token for the API."""

    def __init__(self, user: Any) -> None:
        from django.test import Client
        from django_otp import DEVICE_ID_SESSION_KEY, devices_for_user

        from portal.auth_tokens import token_mint

        self.page = Client()
        self.page.force_login(user)
        device = next(iter(devices_for_user(user, confirmed=True)), None)
        if device is not None:
            # What otp_login stores after mfa-verify: this session passed the second factor.
            session = self.page.session
            session[DEVICE_ID_SESSION_KEY] = device.persistent_id
            session.save()
        self.api = Client(HTTP_AUTHORIZATION=f"Token {token_mint(user=user).key}")

    def get(self, path: str, api: bool, count: bool) -> tuple[int, int, int | None, float]:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        client = self.api if api else self.page
        if count:
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(path)
                elapsed = time.perf_counter() - started
            return response.status_code, len(response.content), len(queries), elapsed
        started = time.perf_counter()
        response = client.get(path)
        elapsed = time.perf_counter() - started
        # The test Client gives each response a `json` partial that refers back to it, a cycle
        # gunicorn does not make: without this, every response and its data (330 KB for the dataset
        # API) waited for the cycle collector, whose 20 ms passes then landed in later timings.
        response.__dict__.pop("json", None)
        return response.status_code, len(response.content), None, elapsed


class OverHttp:
    """A running server: signs in through the login and second-factor forms, like a browser."""

    def __init__(self, base_url: str, user: Any) -> None:
        import requests
        from django_otp import devices_for_user
        from django_otp.oath import totp

        from portal.auth_tokens import token_mint

        self.base = base_url.rstrip("/")
        self.page = requests.Session()
        login = f"{self.base}/accounts/login/"
        self.page.get(login, timeout=30)
        response = self.page.post(
            login,
            data={
                "username": user.username,
                "password": BENCH_PASSWORD,
                "csrfmiddlewaretoken": self.page.cookies.get("csrftoken", ""),
            },
            headers={"Referer": login},
            timeout=30,
        )
        if "/accounts/mfa/verify/" in response.url:
            device = next(iter(devices_for_user(user, confirmed=True)))
            response = self.page.post(
                response.url,
                data={
                    "code": f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}",
                    "csrfmiddlewaretoken": self.page.cookies.get("csrftoken", ""),
                },
                headers={"Referer": response.url},
                timeout=30,
            )
        if "/accounts/login/" in response.url or "/accounts/mfa/" in response.url:
            raise SystemExit(
                f"Signing in as {user.username} at {self.base} failed (ended on {response.url})."
            )
        self.api = {"Authorization": f"Token {token_mint(user=user).key}"}

    def get(self, path: str, api: bool, count: bool) -> tuple[int, int, int | None, float]:
        import requests

        started = time.perf_counter()
        if api:
            response = requests.get(self.base + path, headers=self.api, timeout=300)
        else:
            response = self.page.get(self.base + path, timeout=300, allow_redirects=False)
        elapsed = time.perf_counter() - started
        return response.status_code, len(response.content), None, elapsed


def measure(clients: dict[str, Any], repeat: int) -> list[dict[str, Any]]:
    from django.urls import reverse

    results = []
    for label, name, api in PAGES:
        path = reverse(name)
        for persona, client in clients.items():
            status, size, queries, _ = client.get(path, api, count=True)
            times = [client.get(path, api, count=False)[3] for _ in range(repeat)]
            results.append(
                {
                    "page": label,
                    "persona": persona,
                    "status": status,
                    "bytes": size,
                    "queries": queries,
                    "p50": statistics.median(times) * 1000,
                    "p95": percentile(times, 0.95) * 1000,
                }
            )
            print(
                f"  {label:<30} {persona:<10} {status:>4} {queries if queries is not None else '-':>7} "
                f"{results[-1]['p50']:>9.1f} {results[-1]['p95']:>9.1f} {size / 1024:>9.1f}",
                flush=True,
            )
    return results


def volumes() -> str:
    from approvals.models import GenerationRequest
    from audit.models import AuditEvent
    from catalog.models import AccessRequest, Release
    from generation.models import SourceDataset
    from notifications.models import Notification

    return (
        f"{GenerationRequest.objects.count()} requests, {Release.objects.count()} releases, "
        f"{SourceDataset.objects.count()} datasets, {AccessRequest.objects.count()} access requests, "
        f"{Notification.objects.count()} notifications, {AuditEvent.objects.count()} audit events"
    )


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{date.today()}; {model or platform.processor()}, {os.cpu_count()} CPUs; Python {platform.python_version()}"


def served_like_gunicorn() -> None:
    """In-process, the garbage collector as gunicorn.conf.py sets it in every web worker (freeze
    what is loaded, a higher youngest-generation threshold), so the figures are the served ones
    rather than those of a bench process whose heap holds everything seeding made."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gunicorn_conf", Path(__file__).resolve().parents[1] / "gunicorn.conf.py"
    )
    assert spec is not None and spec.loader is not None
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    conf.post_worker_init(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 10_000], help="requests in the database")
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per page and persona")
    parser.add_argument(
        "--personas", nargs="+", default=["officer", "scientist"], choices=["officer", "scientist", "auditor"]
    )
    parser.add_argument("--database-url", help="PostgreSQL (its test_<name> database is used and dropped)")
    parser.add_argument("--url", help="measure a running server over HTTP instead of in-process")
    parser.add_argument("--var-dir", type=Path, help="SYNTHGATE_VAR_DIR (default: a new temporary folder)")
    parser.add_argument(
        "--audit-per-request", type=int, default=1, help="audit events appended per cloned request"
    )
    parser.add_argument("--keep", action="store_true", help="keep the test database (in-process mode)")
    parser.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="skip ANALYZE after seeding (by default the bench runs it, as the hourly synthgate.db.analyze task would have)",
    )
    parser.add_argument(
        "--gc",
        choices=["gunicorn", "default"],
        default="gunicorn",
        help="in-process: the garbage collector as gunicorn.conf.py sets it (default) or CPython's defaults",
    )
    args = parser.parse_args()
    if args.url and not args.var_dir and not args.database_url:
        parser.error("--url needs the server's database: --var-dir (SQLite) or --database-url")

    own_dir = args.var_dir is None
    var_dir = args.var_dir or Path(tempfile.mkdtemp(prefix="sg-bench-pages-"))
    setup_django(var_dir=var_dir, database_url=args.database_url)
    from django.conf import settings
    from django.db import connection

    old_name = None
    if args.url:
        from django.core.management import call_command

        from approvals.models import GenerationRequest

        call_command("migrate", verbosity=0, interactive=False)
        if GenerationRequest.objects.exists():
            raise SystemExit("The server's database already holds requests: give the bench an empty one.")
    else:
        old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    print(f"Machine: {machine()}; database: {connection.vendor} {settings.DATABASES['default']['NAME']}")
    print(
        f"Mode: {'HTTP ' + args.url if args.url else 'in-process (django.test.Client)'}; {args.repeat} timed requests each"
    )
    try:
        seeded = base()
        grower = Grower(seeded, audit_per_request=args.audit_per_request, analyze=args.analyze)
        people = seeded["people"]
        clients = {
            persona: (OverHttp(args.url, people[persona]) if args.url else InProcess(people[persona]))
            for persona in args.personas
        }
        by_size: dict[int, list[dict[str, Any]]] = {}
        for size in sorted(set(args.sizes)):
            grower.grow_to(size)
            print(f"\nSize {size}: {volumes()}")
            print(
                f"  {'page':<30} {'persona':<10} {'HTTP':>4} {'queries':>7} {'p50 ms':>9} {'p95 ms':>9} {'KiB':>9}"
            )
            if not args.url and args.gc == "gunicorn":
                served_like_gunicorn()
            by_size[size] = measure(clients, args.repeat)
        if len(by_size) > 1:
            small, large = min(by_size), max(by_size)
            print(
                f"\nLarge ({large}) over small ({small}): p95 ratio (target <= 2, and under 300 ms) and queries"
            )
            print(
                f"  {'page':<30} {'persona':<10} {'p95 small':>10} {'p95 large':>10} {'ratio':>7} {'queries':>15}"
            )
            for low, high in zip(by_size[small], by_size[large], strict=True):
                queries = f"{low['queries']} -> {high['queries']}" if low["queries"] is not None else "-"
                print(
                    f"  {low['page']:<30} {low['persona']:<10} {low['p95']:>10.1f} {high['p95']:>10.1f} "
                    f"{high['p95'] / low['p95']:>7.2f} {queries:>15}"
                )
    finally:
        if old_name is not None and not args.keep:
            connection.creation.destroy_test_db(old_name, verbosity=0)
            if own_dir:
                shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
