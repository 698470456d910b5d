"""Workers that scale (issue 16, item 4): named queues, task-level locks for periodic work, and a
warm-up that pays each worker process's one-off costs before its first job."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from core import locks
from core.locks import periodic_lock
from portal.celery import app, warm_up_worker_process

# Every task the project registers, and the queue it must run on. A new task fails
# test_every_project_task_is_routed until it is added here and to CELERY_TASK_ROUTES.
EXPECTED_QUEUES = {
    "synthgate.pipeline.run": "synthesis",
    "synthgate.datasets.estimate_risk": "validation",
    "synthgate.datasets.estimate_domain": "validation",
    "synthgate.jobs.reconcile": "housekeeping",
    "synthgate.releases.expiry_notices": "housekeeping",
    "synthgate.federation.run_study": "synthesis",
    "synthgate.federation.reconcile": "housekeeping",
    "synthgate.audit.checkpoint": "housekeeping",
    "synthgate.audit.verify": "housekeeping",
    "synthgate.audit.sequence": "housekeeping",
    "synthgate.db.analyze": "housekeeping",
}


def _queue_of(name: str) -> str:
    return str(app.amqp.router.route({}, name)["queue"].name)


def _project_tasks() -> set[str]:
    app.loader.import_default_modules()
    return {name for name in app.tasks if name.startswith("synthgate.")}


@pytest.mark.parametrize(("task", "queue"), sorted(EXPECTED_QUEUES.items()))
def test_each_task_is_routed_to_its_queue(task: str, queue: str) -> None:
    assert _queue_of(task) == queue


def test_every_project_task_is_routed() -> None:
    tasks = _project_tasks()
    assert tasks, "autodiscovery found no task"
    # Routed explicitly, to one of the three queues the workers consume; nothing left to the default.
    assert {name: _queue_of(name) for name in tasks} == {name: EXPECTED_QUEUES.get(name) for name in tasks}
    assert set(settings.SYNTHGATE_QUEUES) == {"synthesis", "validation", "housekeeping"}


def test_send_task_puts_the_message_on_the_routed_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """send_task (how every service enqueues) applies the routes, not only apply_async."""
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(
        app.amqp, "send_task_message", lambda _producer, name, _message, **kw: sent.append(kw)
    )
    with app.producer_or_acquire() as producer:
        app.send_task("synthgate.jobs.reconcile", producer=producer)
    assert sent[0]["queue"].name == "housekeeping"


# --- locks --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_two_acquirers_one_wins_and_the_lock_is_released_after_use() -> None:
    with periodic_lock("t-two", 60) as first:
        with periodic_lock("t-two", 60) as second:
            assert (first, second) == (True, False)
    with periodic_lock("t-two", 60) as again:
        assert again


@pytest.mark.django_db
def test_an_expired_lock_is_taken_by_exactly_one_new_holder() -> None:
    token = locks.acquire("t-expiry", 0.3)  # a holder that crashed: it never releases
    assert token is not None
    assert locks.acquire("t-expiry", 60) is None
    time.sleep(0.5)
    taker = locks.acquire("t-expiry", 60)
    assert taker is not None
    # The expired row was replaced once: a second taker does not overwrite the new holder, and
    # the crashed holder's late release does not free it.
    assert locks.acquire("t-expiry", 60) is None
    locks.release("t-expiry", token)
    assert locks.acquire("t-expiry", 60) is None
    locks.release("t-expiry", taker)
    assert locks.acquire("t-expiry", 60) is not None


@pytest.mark.django_db
def test_a_held_lock_survives_cache_culling_of_throttle_entries() -> None:
    """The database cache culls a third of its keys in key order when full; the lock sorts last."""
    from django.core.cache import cache

    with periodic_lock("t-cull", 60) as held:
        assert held
        with override_settings(
            CACHES={"default": {**settings.CACHES["default"], "OPTIONS": {"MAX_ENTRIES": 5}}}
        ):
            from django.core.cache import caches

            for i in range(12):
                caches["default"].set(f"throttle_{i}", i, 60)
            assert locks.acquire("t-cull", 60) is None
    cache.clear()


def test_a_per_process_cache_uses_cache_add() -> None:
    with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}):
        with periodic_lock("t-locmem", 60) as first, periodic_lock("t-locmem", 60) as second:
            assert (first, second) == (True, False)
        with periodic_lock("t-locmem", 60) as again:
            assert again


@pytest.mark.django_db
def test_reconcile_skips_while_another_run_holds_its_lock() -> None:
    from catalog.tasks import reconcile_jobs

    with periodic_lock("reconcile-jobs", 60) as held:
        assert held
        assert reconcile_jobs() == {"skipped": 1}
    assert reconcile_jobs() == {"requeued": 0, "failed": 0}


# --- warm-up ------------------------------------------------------------------------------------


def test_warm_up_is_off_in_tests_and_the_handler_then_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import validation.warmup

    monkeypatch.setattr(validation.warmup, "warm_up", lambda: pytest.fail("warm-up ran with the setting off"))
    assert settings.SYNTHGATE_WORKER_WARMUP is False
    assert warm_up_worker_process() is None


def test_worker_process_init_runs_the_warm_up_and_a_later_job_compiles_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import anonymeter.evaluators  # noqa: F401  (the kernels' module imports cleanly only after it)
    from anonymeter.neighbors import mixed_types_kneighbors as kernels
    from celery.signals import worker_process_init

    from generation.synthesizers import synthesizer_for
    from validation.suite import run_suite
    from validation.warmup import warmup_table

    caplog.set_level("INFO", logger="validation.warmup")
    started = time.perf_counter()
    with override_settings(SYNTHGATE_WORKER_WARMUP=True):
        # The signal the pool sends in each new process (prefork: after the fork, before "up").
        answers = worker_process_init.send(sender="test")
    seconds = dict((receiver.__name__, answer) for receiver, answer in answers)["warm_up_worker_process"]
    assert isinstance(seconds, float) and math.isfinite(seconds)
    assert time.perf_counter() - started < 30
    assert any("worker warm-up done in" in r.getMessage() for r in caplog.records), caplog.text
    compiled = {k: list(k.signatures) for k in (kernels.gower_distance, kernels._nearest_neighbors)}
    # gower_distance is compiled inside _nearest_neighbors (a jitted caller), not on its own.
    assert compiled[kernels._nearest_neighbors], "the warm-up did not compile anonymeter's kernels"

    # A job on another table of the same shape: no kernel compiles a new specialisation.
    frame, columns, infos = warmup_table(rows=80, seed=7)
    training, holdout = frame.iloc[:60], frame.iloc[60:]
    synthetic = synthesizer_for("gaussian_copula").fit_sample(
        training, columns=columns, rows=60, seed=1, progress=lambda _f, _s: None
    )
    result = run_suite(training=training, synthetic=synthetic, holdout=holdout, infos=infos, seed=1)
    assert result.metrics["errors"] == {}
    assert {k: list(k.signatures) for k in compiled} == compiled


def test_a_real_worker_warms_up_then_runs_a_housekeeping_task(celery_workers: Any) -> None:
    """With warm-up on, a pool process is silent for longer than Celery's default 4 s before it
    reports up: the worker must wait for it (CELERY_WORKER_PROC_ALIVE_TIMEOUT), not kill it."""
    proc = celery_workers.start(env={"SYNTHGATE_WORKER_WARMUP": "true"})
    log_path: Path = proc.log_path
    deadline = time.monotonic() + 120
    while "worker warm-up done in" not in (text := log_path.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, text[-3000:]
        assert "Timed out waiting for UP message" not in text, text[-3000:]
        time.sleep(0.5)
    # The worker (started as make run / make worker start it: every queue) takes a housekeeping
    # task through the embedded broker.
    app.send_task("synthgate.jobs.reconcile")
    while (
        "Task synthgate.jobs.reconcile[" not in (text := log_path.read_text()) or " succeeded in " not in text
    ):
        assert proc.poll() is None and time.monotonic() < deadline, text[-3000:]
        time.sleep(0.3)
    assert "Timed out waiting for UP message" not in text


@pytest.mark.parametrize(
    ("nice", "prefix"), [(None, ["nice", "-n", "10"]), ("5", ["nice", "-n", "5"]), ("0", [])]
)
def test_the_worker_command_yields_the_cpu_to_the_web_server(nice: str | None, prefix: list[str]) -> None:
    """`make run` and `make worker` start Celery through scripts/common.sh's worker_command, at a
    lower CPU priority by default, so pages on a shared machine are served before synthesis steps."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "SYNTHGATE_WORKER_NICE"}
    if nice is not None:
        env["SYNTHGATE_WORKER_NICE"] = nice
    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        ["bash", "-c", "source scripts/common.sh && worker_command"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert out[: len(prefix) + 1] == [*prefix, str(repo / ".venv" / "bin" / "celery")]
    assert out[len(prefix) + 1 : len(prefix) + 4] == ["-A", "portal", "worker"]
