"""Run the validation suite on a job's output and record the gate's verdict."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from django.db import transaction

from audit.services import audit_record
from generation.models import SynthesisJob
from validation.gate import Check, check_max, check_min, thresholds_with_defaults
from validation.metrics import column_shapes, exact_copies
from validation.models import ValidationReport

logger = logging.getLogger(__name__)


def _guarded(name: str, compute: Any) -> tuple[Any, str]:
    """Run one metric; an exception becomes a missing value (and so a failed check), logged by
    type only, because messages from pandas can quote data values."""
    try:
        return compute(), ""
    except Exception as exc:  # noqa: BLE001 - fail closed on any metric error
        logger.warning("metric %s failed: %s", name, type(exc).__name__)
        return None, type(exc).__name__


def validation_run(
    *,
    job: SynthesisJob,
    training: pd.DataFrame,
    synthetic: pd.DataFrame,
    thresholds: dict[str, Any] | None = None,
) -> ValidationReport:
    limits = thresholds_with_defaults(thresholds)
    # Judge the release against what was requested, not against whatever columns it happens to have.
    requested = list(job.columns)
    kinds = {c.name: c.kind for c in job.dataset.columns.filter(name__in=requested)}
    present = sum(1 for name in requested if name in synthetic.columns) / len(requested)
    shapes, shape_error = _guarded("column_shapes", lambda: column_shapes(training, synthetic, kinds))
    copies, copy_error = _guarded(
        "exact_copies", lambda: exact_copies(training[requested], synthetic[requested])
    )
    shape_score = round(sum(shapes.values()) / len(shapes), 6) if shapes else None
    copy_rate = round(copies / len(synthetic), 6) if copies is not None and len(synthetic) else None
    checks: list[Check] = [
        check_min("requested_columns_present", round(present, 6), 1.0),
        check_min("column_shape_similarity", shape_score, limits["column_shape_min"]),
        check_max("exact_copy_rate", copy_rate, limits["exact_copy_rate_max"]),
    ]
    metrics = {
        "column_shapes": shapes or {},
        "column_shape_similarity": shape_score,
        "exact_copies": copies,
        "exact_copy_rate": copy_rate,
        "rows_training": len(training),
        "rows_synthetic": len(synthetic),
        "errors": {k: v for k, v in {"column_shapes": shape_error, "exact_copies": copy_error}.items() if v},
    }
    passed = all(c.passed for c in checks)
    with transaction.atomic():
        report, _ = ValidationReport.objects.update_or_create(
            job=job,
            defaults={"metrics": metrics, "checks": [c.as_dict() for c in checks], "passed": passed},
        )
        audit_record(
            actor=None,
            action="validation.complete",
            target_type="job",
            target_id=job.pk,
            outcome="success" if passed else "failure",
            details={"passed": passed, "checks": {c.name: c.passed for c in checks}},
        )
    return report
