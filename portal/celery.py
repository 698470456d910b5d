"""The Celery application. Broker and task policy come from Django settings (CELERY_*).

Queues and routing are in settings (CELERY_TASK_ROUTES: synthesis, validation, housekeeping).
Each worker process warms up before it takes a job (SYNTHGATE_WORKER_WARMUP, validation.warmup).
"""

import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("synthgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def warm_up_worker_process(**_kwargs: Any) -> float | None:
    """Runs in each pool process after it starts (after the fork, in the prefork pool), before the
    process reports itself up to the worker, so it receives no job until this returns. The worker
    waits up to CELERY_WORKER_PROC_ALIVE_TIMEOUT for that (settings raise it while warm-up is on)."""
    from django.conf import settings

    if not getattr(settings, "SYNTHGATE_WORKER_WARMUP", False):
        return None
    from validation.warmup import warm_up

    return warm_up()
