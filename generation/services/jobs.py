"""The synthesis-job lifecycle: create, claim with a lease, progress, synthesize, finalize once."""

from __future__ import annotations

import logging
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record
from core.errors import Conflict
from generation.choices import FINAL_JOB_STATES, DatasetStatus, JobState
from generation.models import SourceDataset, SynthesisJob
from generation.storage import read_encrypted_parquet, store_stream
from generation.synthesizers import ColumnSpec, synthesizer_for

logger = logging.getLogger(__name__)

JOB_LEASE = timedelta(minutes=10)
# Kombu task name of the whole pipeline (synthesize, validate, publish). It is defined in the
# catalog app, the highest app the pipeline touches; lower apps enqueue it by name only.
PIPELINE_TASK = "synthgate.pipeline.run"


def job_create(
    *,
    dataset: SourceDataset,
    columns: list[str],
    synthesizer: str,
    rows: int,
    epsilon_micro: int | None,
    actor: Any,
) -> SynthesisJob:
    """Create a queued job pinned to the dataset's signed-off column specs; enqueue on commit."""
    if dataset.status != DatasetStatus.READY:
        raise Conflict(
            f"{dataset} is awaiting a new classification sign-off; approve again once a data "
            "steward has signed it off.",
            code="dataset_not_signed_off",
        )
    job = SynthesisJob.objects.create(
        dataset=dataset,
        columns=list(columns),
        metadata=_signed_off_specs(dataset, columns),
        classification_version=dataset.classification_version,
        synthesizer=synthesizer,
        rows=rows,
        epsilon_micro=epsilon_micro,
        seed=secrets.randbelow(2**31 - 1),
    )
    audit_record(
        actor=actor,
        action="job.queue",
        target_type="job",
        target_id=job.pk,
        details={
            "dataset": str(dataset.pk),
            "synthesizer": synthesizer,
            "rows": rows,
            "classification_version": dataset.classification_version,
        },
    )
    job_enqueue(job_id=job.pk)
    return job


def _signed_off_specs(dataset: SourceDataset, columns: list[str]) -> list[dict[str, Any]]:
    version = dataset.classification_versions.get(number=dataset.classification_version)
    by_name = {c["name"]: c for c in version.columns}
    return [by_name[name] for name in columns]


def job_column_specs(job: SynthesisJob) -> list[ColumnSpec]:
    """The job's columns as declared at sign-off, in the order requested."""
    specs = []
    for item in job.metadata:
        categories = item.get("categories")
        lower, upper = item.get("lower"), item.get("upper")
        if item["kind"] == "datetime":
            lower, upper = (_epoch(lower), _epoch(upper))
        specs.append(
            ColumnSpec(
                name=item["name"],
                kind=item["kind"],
                lower=lower,
                upper=upper,
                categories=tuple(categories) if categories is not None else None,
            )
        )
    return specs


def _epoch(value: Any) -> float | None:
    import pandas as pd

    return None if value is None else pd.Timestamp(value).timestamp()


def job_enqueue(*, job_id: Any) -> None:
    from portal.celery import app

    # Only ids cross the broker; on_commit so the worker never sees an uncommitted job.
    transaction.on_commit(lambda: app.send_task(PIPELINE_TASK, kwargs={"job_id": str(job_id)}))


def job_claim(*, job_id: Any) -> SynthesisJob | None:
    """Claim a queued job (or one whose lease expired) with one conditional UPDATE.

    Returns None when another worker holds it or it is already final: duplicates are no-ops.
    """
    now = timezone.now()
    worker = f"{socket.gethostname()}:{secrets.token_hex(4)}"
    claimable = Q(state=JobState.QUEUED) | Q(
        state__in=[JobState.RUNNING, JobState.VALIDATING], lease_expires_at__lt=now
    )
    updated = SynthesisJob.objects.filter(claimable, pk=job_id).update(
        state=JobState.RUNNING,
        worker=worker,
        lease_expires_at=now + JOB_LEASE,
        attempts=F("attempts") + 1,
        started_at=now,
        stage="claimed",
        progress=0.02,
    )
    if updated != 1:
        return None
    return SynthesisJob.objects.get(pk=job_id)


def job_report_progress(*, job: SynthesisJob, progress: float, stage: str) -> None:
    """Record progress and extend the lease, unless the job was cancelled or finalized meanwhile."""
    now = timezone.now()
    SynthesisJob.objects.filter(pk=job.pk, worker=job.worker).exclude(state__in=FINAL_JOB_STATES).update(
        progress=max(0.0, min(1.0, progress)), stage=stage[:80], lease_expires_at=now + JOB_LEASE
    )


def job_set_state(*, job: SynthesisJob, state: str, stage: str = "") -> bool:
    """Move a running job forward (running -> validating). False when it is no longer ours."""
    return bool(
        SynthesisJob.objects.filter(pk=job.pk, worker=job.worker)
        .exclude(state__in=FINAL_JOB_STATES)
        .update(state=state, stage=stage[:80])
    )


def job_finalize(
    *,
    job: SynthesisJob,
    state: str,
    error_code: str = "",
    error_message: str = "",
    receipt: dict[str, Any] | None = None,
) -> bool:
    """Finalize exactly once: True for the caller that won, False when already final."""
    assert state in FINAL_JOB_STATES
    values: dict[str, Any] = {
        "state": state,
        "finished_at": timezone.now(),
        "error_code": error_code[:64],
        "error_message": error_message[:500],
        "lease_expires_at": None,
        "stage": JobState(state).label,
    }
    if state == JobState.SUCCEEDED:
        values["progress"] = 1.0
    if receipt is not None:
        values["receipt"] = receipt
    with transaction.atomic():
        won = SynthesisJob.objects.filter(pk=job.pk).exclude(state__in=FINAL_JOB_STATES).update(**values)
        if won:
            audit_record(
                actor=None,
                action=f"job.{state}",
                target_type="job",
                target_id=job.pk,
                outcome="success" if state == JobState.SUCCEEDED else "failure",
                details={"error_code": error_code} if error_code else {},
            )
    return bool(won)


@dataclass(frozen=True)
class SynthesisOutput:
    frame: Any  # pandas.DataFrame of the synthetic rows
    training: Any  # pandas.DataFrame of the source rows the generator saw


def job_synthesize(*, job: SynthesisJob) -> SynthesisOutput:
    """Read the training split (stamping data_accessed_at first) and run the job's synthesizer.

    Only the training split is read here: the holdout is never handed to a generator.
    """
    specs = job_column_specs(job)
    synthesizer = synthesizer_for(job.synthesizer)
    # Stamped before the first read: from here on, a failure can no longer be refunded.
    SynthesisJob.objects.filter(pk=job.pk, data_accessed_at__isnull=True).update(
        data_accessed_at=timezone.now()
    )
    frame = read_encrypted_parquet(job.dataset.storage_path)[list(job.columns)]
    job_report_progress(job=job, progress=0.1, stage="loaded source")

    def progress(fraction: float, stage: str) -> None:
        job_report_progress(job=job, progress=0.1 + 0.6 * fraction, stage=stage)

    synthetic = synthesizer.fit_sample(frame, columns=specs, rows=job.rows, seed=job.seed, progress=progress)
    logger.info("job %s synthesized %d rows x %d columns", job.pk, len(synthetic), len(specs))
    return SynthesisOutput(frame=synthetic[list(job.columns)], training=frame)


def job_store_output(*, job: SynthesisJob, frame: Any) -> SynthesisJob:
    csv_bytes = frame.to_csv(index=False).encode("utf-8")
    stored = store_stream([csv_bytes], folder="releases", suffix=".csv", max_bytes=2**40)
    SynthesisJob.objects.filter(pk=job.pk).update(
        output_path=stored.relative_path, output_sha256=stored.sha256
    )
    job.output_path, job.output_sha256 = stored.relative_path, stored.sha256
    return job
