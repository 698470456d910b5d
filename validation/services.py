"""Run the validation suite on a job's output and record the gate's verdict.

Worker-side only: these functions receive (or read) the training and holdout splits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd
from django.conf import settings
from django.db import transaction

from audit.services import audit_record
from core.roles import PortalUser
from generation.models import SynthesisJob
from validation.metrics.columns import ColumnInfo, column_infos
from validation.models import ValidationReport
from validation.suite import run_suite, step_progress, step_stage

logger = logging.getLogger(__name__)


def job_column_infos(job: SynthesisJob) -> list[ColumnInfo]:
    """The requested columns as signed off for this job (job.metadata), in the order requested.

    Jobs created before metadata was pinned fall back to the dataset's current column records.
    """
    requested = list(job.columns)
    by_name = {str(item.get("name")): item for item in (job.metadata or [])}
    if not all(name in by_name for name in requested):
        by_name = {
            c.name: {"name": c.name, "kind": c.kind, "classification": c.classification, **(c.declared or {})}
            for c in job.dataset.columns.filter(name__in=requested)
        }
    return column_infos(by_name[name] for name in requested if name in by_name)


def claimed_epsilon(job: SynthesisJob) -> float | None:
    """The epsilon a DP synthesizer claims for this job; None for non-DP (and unknown) ones."""
    from generation.synthesizers import REGISTRY

    synthesizer = REGISTRY.get(job.synthesizer)
    if synthesizer is None or not getattr(synthesizer, "is_dp", False) or job.epsilon is None:
        return None
    return float(job.epsilon)


def validation_run(
    *,
    job: SynthesisJob,
    training: pd.DataFrame,
    synthetic: pd.DataFrame,
    thresholds: dict[str, Any] | None = None,
    holdout: pd.DataFrame | None = None,
    on_progress: Callable[[str, float], None] | None = None,
) -> ValidationReport:
    """Test `synthetic` against the training split and the locked holdout; store the verdict.

    Without a holdout the tests that need non-members (distance, membership inference,
    anonymeter, the DP audit) cannot run, and their checks fail: the gate fails closed.
    `on_progress(stage, progress)` hears each step of the suite as it starts (the worker records
    it on the job, for the request page's panel).
    """
    infos = job_column_infos(job)
    result = run_suite(
        training=training,
        synthetic=synthetic,
        holdout=holdout,
        infos=infos,
        thresholds=thresholds,
        dp_epsilon=claimed_epsilon(job),
        seed=int(job.seed or 0),
        small_cell_k=int(getattr(settings, "SYNTHGATE_SMALL_CELL_K", 5)),
        on_step=(lambda key: on_progress(step_stage(key), step_progress(key))) if on_progress else None,
    )
    # Columns the job requested but the dataset no longer describes count as missing.
    missing = [name for name in job.columns if name not in {i.name for i in infos}]
    checks = [c.as_dict() for c in result.checks]
    if missing:
        checks[0].update(value=round(1 - len(missing) / len(job.columns), 6), passed=False, status="failed")
    passed = all(c["passed"] for c in checks)
    with transaction.atomic():
        report, _ = ValidationReport.objects.update_or_create(
            job=job, defaults={"metrics": result.metrics, "checks": checks, "passed": passed}
        )
        audit_record(
            actor=None,
            action="validation.complete",
            target_type="job",
            target_id=job.pk,
            outcome="success" if passed else "failure",
            details={"passed": passed, "checks": {c["name"]: c["passed"] for c in checks}},
        )
    return report


# --- Report export --------------------------------------------------------------------------------


def report_export_record(*, actor: PortalUser, target_type: str, target_id: object, full: bool) -> None:
    """Audit a report download before any byte is sent (full = every metric, else the coarse view)."""
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=f"{target_type}.report_export",
            target_type=target_type,
            target_id=target_id,
            details={"full": full},
        )
