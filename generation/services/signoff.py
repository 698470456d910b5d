"""Sign-off: the reviewed columns become a numbered classification version, and requests may be
filed. When the signed-off quasi-identifiers differ from those the re-identification estimate
used, a worker recomputes it (`RISK_TASK`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from celery import current_app
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from core.errors import Conflict, ValidationFailed
from core.ids import first_by_uuid
from core.roles import PortalUser
from generation.choices import Classification, ColumnKind, DatasetStatus
from generation.models import ClassificationVersion, SourceDataset
from generation.profiling import unique_share
from generation.services.columns import column_spec_snapshot
from generation.services.stewards import dataset_get_for_steward
from generation.storage import read_encrypted_parquet

RISK_TASK = "synthgate.datasets.estimate_risk"


def dataset_sign_off(*, actor: PortalUser, dataset_id: Any) -> SourceDataset:
    """Snapshot the reviewed columns as the next classification version; requests may then be filed."""
    dataset = dataset_get_for_steward(actor=actor, dataset_id=dataset_id, action="dataset.sign_off")
    if dataset.status == DatasetStatus.READY:
        return dataset  # already signed off and unchanged since: a no-op
    if dataset.status != DatasetStatus.PENDING_REVIEW:
        raise Conflict("Only a dataset awaiting review can be signed off.", code="invalid_transition")
    _check_declarations_complete(dataset)
    with transaction.atomic():
        locked = SourceDataset.objects.select_for_update().get(pk=dataset.pk)
        number = locked.classification_version + 1
        snapshot = [
            column_spec_snapshot(c, entity_column=locked.entity_column)
            for c in locked.columns.order_by("position")
        ]
        quasi = [c["name"] for c in snapshot if c["classification"] == Classification.QUASI_IDENTIFIER]
        ClassificationVersion.objects.create(
            dataset=locked,
            number=number,
            columns=snapshot,
            signed_off_by=actor,
            signed_off_name=actor.get_username(),
            reidentification_risk=locked.reidentification_risk,
        )
        locked.classification_version, locked.status = number, DatasetStatus.READY
        locked.save(update_fields=["classification_version", "status"])
        audit_record(
            actor=actor,
            action="dataset.sign_off",
            target_type="dataset",
            target_id=locked.pk,
            details={
                "classification_version": number,
                "classifications": {c["name"]: c["classification"] for c in snapshot},
                "sources": {c["name"]: c["source"] for c in snapshot},
                "entity_column": locked.entity_column,
            },
        )
        if sorted(quasi) != sorted(locked.risk_columns):
            _enqueue_risk_estimate(locked.pk)
    return locked


def _check_declarations_complete(dataset: SourceDataset) -> None:
    """Every column that can be synthesized needs a declared domain (DP synthesis depends on it)."""
    for column in dataset.columns.exclude(classification=Classification.DIRECT_IDENTIFIER):
        declared = column.declared
        if column.kind in (ColumnKind.NUMERIC, ColumnKind.DATETIME):
            if declared.get("lower") is None or declared.get("upper") is None:
                raise ValidationFailed(
                    f"Declare lower and upper bounds for `{column.name}` before signing off.",
                    fields={column.name: "bounds"},
                )
        elif column.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN) and not declared.get("categories"):
            raise ValidationFailed(
                f"Declare the categories of `{column.name}` before signing off.",
                fields={column.name: "categories"},
            )


def _enqueue_risk_estimate(dataset_id: Any) -> None:
    # The estimate reads source rows, so it runs in a worker, never in the web process. Sent by
    # name through the current app: generation does not import the project's Celery module.
    transaction.on_commit(lambda: current_app.send_task(RISK_TASK, kwargs={"dataset_id": str(dataset_id)}))


def dataset_estimate_risk(*, dataset_id: Any) -> float | None:
    """Recompute the re-identification estimate for the signed-off quasi-identifiers (worker side)."""
    dataset = first_by_uuid(SourceDataset.objects.all(), dataset_id)
    if dataset is None:
        return None
    quasi = list(
        dataset.columns.filter(classification=Classification.QUASI_IDENTIFIER).values_list("name", flat=True)
    )
    frame = pd.concat(
        [read_encrypted_parquet(dataset.storage_path), read_encrypted_parquet(dataset.holdout_path)]
    )
    risk = unique_share(frame, quasi)
    with transaction.atomic():
        SourceDataset.objects.filter(pk=dataset.pk).update(reidentification_risk=risk, risk_columns=quasi)
        audit_record(
            actor=None,
            action="dataset.risk_estimate",
            target_type="dataset",
            target_id=dataset.pk,
            details={"quasi_identifiers": quasi, "unique_share": risk, "at": timezone.now().isoformat()},
        )
    return risk
