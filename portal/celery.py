"""The Celery application. Broker and task policy come from Django settings (CELERY_*).

Queues and routing are in settings (CELERY_TASK_ROUTES: synthesis, validation, housekeeping).
Each worker process caps its intra-op threads at its share of the cores (SYNTHGATE_WORKER_THREADS,
core.threads), then warms up before it takes a job (SYNTHGATE_WORKER_WARMUP, validation.warmup).
"""

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("synthgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)

# The worker's pool size (-c), recorded by the main process before it forks the pool processes,
# which inherit it. None outside a worker (then a process counts as the only one).
_worker_concurrency: int | None = None


@worker_init.connect
def record_worker_concurrency(sender: Any = None, **_kwargs: Any) -> None:
    """Runs in the worker's main process, before the pool starts."""
    global _worker_concurrency
    concurrency = getattr(sender, "concurrency", None)
    # "auto" (autoscale) is resolved later; count it as one process per core.
    _worker_concurrency = concurrency if isinstance(concurrency, int) and concurrency > 0 else None
    if _worker_concurrency is None and concurrency is not None:
        from core.threads import available_cpus

        _worker_concurrency = available_cpus()


def cap_worker_threads() -> int:
    """Cap this pool process's torch/BLAS/OpenMP/numba threads (core.threads); the cap applied."""
    from django.conf import settings

    from core.threads import available_cpus, cap_native_threads, threads_per_process

    configured = int(getattr(settings, "SYNTHGATE_WORKER_THREADS", 0))
    cpus = available_cpus()
    threads = cap_native_threads(threads_per_process(configured, _worker_concurrency, cpus))
    logger.info(
        "worker process threads capped at %d (%s; concurrency %s, %d cores)",
        threads,
        "SYNTHGATE_WORKER_THREADS" if configured > 0 else "auto",
        _worker_concurrency if _worker_concurrency is not None else "-",
        cpus,
    )
    return threads


@worker_process_init.connect
def warm_up_worker_process(**_kwargs: Any) -> float | None:
    """Runs in each pool process after it starts (after the fork, in the prefork pool), before the
    process reports itself up to the worker, so it receives no job until this returns. The worker
    waits up to CELERY_WORKER_PROC_ALIVE_TIMEOUT for that (settings raise it while warm-up is on).

    The thread cap comes first, so the warm-up's kernels and the jobs run with the same threads."""
    from django.conf import settings

    cap_worker_threads()
    if not getattr(settings, "SYNTHGATE_WORKER_WARMUP", False):
        return None
    from validation.warmup import warm_up

    return warm_up()
