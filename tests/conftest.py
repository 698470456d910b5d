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
            # The worker signs audit checkpoints into the test's own folder (see the root conftest).
            "SYNTHGATE_AUDIT_CHECKPOINT_DIR": str(settings.SYNTHGATE_AUDIT_CHECKPOINT_DIR),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class WorkerFactory:
    """Starts real `celery -A portal worker` OS processes; stops them after the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, *, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> subprocess.Popen[bytes]:
        log_path = self.tmp_path / f"worker-{len(self.procs)}.log"
        log = log_path.open("wb")
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-Q",
            ",".join(settings.SYNTHGATE_QUEUES),
            "-c",
            "1",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"test-{os.getpid()}-{len(self.procs)}@%h",
            *(args or []),
        ]
        proc = subprocess.Popen(
            cmd, cwd=REPO, env={**_worker_env(), **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        proc.log_path = log_path  # type: ignore[attr-defined]
        self.procs.append(proc)
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        while b" ready." not in log_path.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"Celery worker did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.3)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            print(f"--- worker log tail ---\n{proc.log_path.read_text()[-3000:]}")  # type: ignore[attr-defined]


@pytest.fixture
def celery_workers(transactional_db: Any, tmp_path: Path) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def celery_worker_process(celery_workers: WorkerFactory) -> subprocess.Popen[bytes]:
    """One real worker process against the test database and the configured broker."""
    return celery_workers.start()


@pytest.fixture
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        if IN_CI:
            pytest.fail("Chromium is required under CI=true (apt-get install -y chromium).")
        pytest.skip("Debian's chromium is not installed; .ci/run installs it under CI.")
    return path
