"""Celery tasks: thin wrappers that take ids and call services."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from catalog.pipeline import pipeline_run
from generation.services import PIPELINE_TASK


@shared_task(name=PIPELINE_TASK, acks_late=True, ignore_result=True)
def run_pipeline(job_id: str, **_extra: Any) -> str:
    # Extra kwargs are tolerated so older/newer producers can enqueue without breaking workers.
    return pipeline_run(job_id=job_id)
