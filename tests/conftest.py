"""Fixtures for cross-app tests that talk to real components.

- `celery_worker_process`: a real `celery worker` subprocess against the test database and the
  configured broker (filesystem by default, Redis when CELERY_BROKER_URL says so).
- `chromium_path`: Debian's chromium; under CI=true a missing browser fails the test.
- Tests marked `services` need PostgreSQL + Redis; they are deselected (not skipped) in the
  SQLite stage and run in the PostgreSQL/Redis stage of `make test`, which under CI fails when
  the services are unreachable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parent.parent
WORKER_READY_TIMEOUT = 90


def _database_url_for_worker() -> str:
    """Point the worker at the database the test process is using right now (the test DB)."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(params['NAME']).resolve()}"
    user, password = params.get("USER") or "", params.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return (
        f"postgres://{auth}{params.get('HOST') or '127.0.0.1'}:{params.get('PORT') or 5432}/{params['NAME']}"
    )


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DATABASE_URL": _database_url_for_worker(),
            "SYNTHGATE_STORAGE_DIR": str(settings.SYNTHGATE_STORAGE_DIR),
            "SYNTHGATE_VAR_DIR": str(settings.VAR_DIR),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def celery_worker_process(transactional_db: Any, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start `celery -A portal worker` as a separate OS process; stop it after the test."""
    log_path = tmp_path / "worker.log"
    log = log_path.open("wb")
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "portal",
        "worker",
        "-Q",
        "synthesis",
        "-c",
        "1",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"test-{os.getpid()}@%h",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_worker_env(), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + WORKER_READY_TIMEOUT
    while b" ready." not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Celery worker did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.3)
    proc.log_path = log_path  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        print(f"--- worker log tail ---\n{log_path.read_text()[-3000:]}")


@pytest.fixture(autouse=True)
def _audit_triggers_allow_flush(request: pytest.FixtureRequest) -> Iterator[None]:
    """TransactionTestCase-style tests end with a table flush, which the audit log's append-only
    triggers would refuse. Lift them just for the flush and restore them for the next test."""
    if "transactional_db" not in request.fixturenames and "live_server" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("transactional_db")
    _set_audit_triggers(enabled=True)
    yield
    _set_audit_triggers(enabled=False)


def _set_audit_triggers(*, enabled: bool) -> None:
    from importlib import import_module

    migration = import_module("audit.migrations.0002_append_only_triggers")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE audit_auditevent {'ENABLE' if enabled else 'DISABLE'} TRIGGER USER")
        elif connection.vendor == "sqlite":
            for sql in migration.SQLITE_DROP:
                cursor.execute(sql)
            if enabled:
                for sql in migration.SQLITE:
                    cursor.execute(sql)


@pytest.fixture
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        if IN_CI:
            pytest.fail("Chromium is required under CI=true (apt-get install -y chromium).")
        pytest.skip("Debian's chromium is not installed; .ci/run installs it under CI.")
    return path
