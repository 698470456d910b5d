"""Celery tasks of the generation app: thin wrappers taking ids."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from generation.services import RISK_TASK, dataset_estimate_risk


@shared_task(name=RISK_TASK, acks_late=True, ignore_result=True)
def estimate_risk(dataset_id: str, **_extra: Any) -> None:
    dataset_estimate_risk(dataset_id=dataset_id)
