"""Source-dataset intake and the synthesis-job lifecycle."""

from __future__ import annotations

import itertools
import logging
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import MAX_EMAX, MIN_EMIN, ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from audit.services import audit_denied, audit_record
from core.errors import PermissionDenied, ValidationFailed
from core.roles import Role, has_role
from generation.choices import FINAL_JOB_STATES, JobState
from generation.models import MICRO, DatasetColumn, SourceDataset, SynthesisJob
from generation.policies import suggest_classification
from generation.profiling import PARQUET_MAGIC, profile_frame, read_table
from generation.storage import absolute_path, delete_stored, store_stream
from generation.synthesizers import ColumnSpec, synthesizer_for

logger = logging.getLogger(__name__)

MAX_EPSILON = Decimal("100")
JOB_LEASE = timedelta(minutes=10)
# Kombu task name of the whole pipeline (synthesize, validate, publish). It is defined in the
# catalog app, the highest app the pipeline touches; lower apps enqueue it by name only.
PIPELINE_TASK = "synthgate.pipeline.run"


def epsilon_to_micro(value: Any, *, field: str = "epsilon", is_cap: bool = False) -> int:
    """Parse a user-supplied epsilon exactly into whole micro-epsilon.

    Amounts to spend round *up* (never under-charge; any positive amount costs at least one
    micro-epsilon). Caps round *down* (never allow more than the steward declared) and must be
    at least one micro-epsilon. The arithmetic runs in a decimal context wide enough for the
    input, so no digit is lost before rounding.
    """
    if isinstance(value, bool) or value is None or value == "":
        raise ValidationFailed(f"{field} must be a positive number.", fields={field: "required"})
    text = str(value).strip()
    try:
        if len(text) > 64:
            raise ValueError(text[:8])
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"{field} must be a positive number.", fields={field: "invalid"}) from None
    if not number.is_finite() or number <= 0:
        raise ValidationFailed(f"{field} must be a positive, finite number.", fields={field: "invalid"})
    if number > MAX_EPSILON:
        raise ValidationFailed(
            f"{field} above {MAX_EPSILON} gives no meaningful privacy; choose a smaller value.",
            fields={field: "too_large"},
        )
    with localcontext() as ctx:
        ctx.prec = len(number.as_tuple().digits) + 16
        ctx.Emin, ctx.Emax = MIN_EMIN, MAX_EMAX
        micro = int((number * MICRO).to_integral_value(rounding=ROUND_FLOOR if is_cap else ROUND_CEILING))
    if is_cap and micro < 1:
        raise ValidationFailed(f"{field} must be at least 0.000001.", fields={field: "too_small"})
    return max(1, micro)


# --- Datasets --------------------------------------------------------------------------------


def _chunks_of(uploaded: Any) -> Iterator[bytes]:
    if hasattr(uploaded, "chunks"):
        yield from uploaded.chunks()
    else:
        yield uploaded.read()


def dataset_register(
    *, actor: Any, name: str, uploaded_file: Any, epsilon_cap: Any, description: str = ""
) -> SourceDataset:
    """Store, profile and register a source table; suggest each column's classification.

    A rejected upload leaves nothing stored. A name already registered becomes a new version.
    """
    if not has_role(actor, Role.DATA_STEWARD, Role.ADMIN):
        audit_denied(
            actor=actor,
            action="dataset.register",
            target_type="dataset",
            target_id="-",
            reason="data steward role required",
        )
        raise PermissionDenied("Only data stewards can register source datasets.")
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ValidationFailed("Name must be 1 to 120 characters.", fields={"name": "required"})
    cap_micro = epsilon_to_micro(epsilon_cap, field="epsilon_cap", is_cap=True)
    if uploaded_file is None:
        raise ValidationFailed("Attach a CSV file.", fields={"file": "required"})
    chunks = _chunks_of(uploaded_file)
    first = next(chunks, b"")
    # Parquet files start with the magic bytes PAR1; everything else is read as CSV.
    suffix = ".parquet" if first[:4] == PARQUET_MAGIC else ".csv"
    stored = store_stream(
        itertools.chain([first], chunks),
        folder="sources",
        suffix=suffix,
        max_bytes=settings.SYNTHGATE_MAX_UPLOAD_BYTES,
    )
    try:
        frame = read_table(absolute_path(stored.relative_path))
        profiles = profile_frame(frame)
        with transaction.atomic():
            version = (SourceDataset.objects.filter(name=name).aggregate(v=Max("version"))["v"] or 0) + 1
            dataset = SourceDataset.objects.create(
                name=name,
                description=description or "",
                version=version,
                rows=len(frame),
                sha256=stored.sha256,
                size_bytes=stored.size_bytes,
                storage_path=stored.relative_path,
                epsilon_cap_micro=cap_micro,
                uploaded_by=actor,
            )
            DatasetColumn.objects.bulk_create(
                DatasetColumn(
                    dataset=dataset,
                    position=i,
                    name=p.name,
                    kind=p.kind,
                    classification=suggest_classification(name=p.name, kind=p.kind),
                    missing_rate=p.missing_rate,
                    distinct=p.distinct,
                )
                for i, p in enumerate(profiles)
            )
            audit_record(
                actor=actor,
                action="dataset.register",
                target_type="dataset",
                target_id=dataset.pk,
                details={
                    "name": name,
                    "version": version,
                    "rows": len(frame),
                    "columns": [p.name for p in profiles],
                    "sha256": stored.sha256,
                },
            )
    except BaseException:
        delete_stored(stored.relative_path)
        raise
    return dataset


# --- Jobs ------------------------------------------------------------------------------------


def job_create(
    *,
    dataset: SourceDataset,
    columns: list[str],
    synthesizer: str,
    rows: int,
    epsilon_micro: int | None,
    actor: Any,
) -> SynthesisJob:
    """Create a queued job and enqueue the pipeline once the caller's transaction commits."""
    job = SynthesisJob.objects.create(
        dataset=dataset,
        columns=list(columns),
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
        details={"dataset": str(dataset.pk), "synthesizer": synthesizer, "rows": rows},
    )
    job_enqueue(job_id=job.pk)
    return job


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
    """Read the source (stamping data_accessed_at first) and run the job's synthesizer."""
    dataset = job.dataset
    specs = [
        ColumnSpec(name=c.name, kind=c.kind)
        for c in dataset.columns.filter(name__in=job.columns).order_by("position")
    ]
    synthesizer = synthesizer_for(job.synthesizer)
    # Stamped before the first read: from here on, a failure can no longer be refunded.
    SynthesisJob.objects.filter(pk=job.pk, data_accessed_at__isnull=True).update(
        data_accessed_at=timezone.now()
    )
    by_name = {s.name: s for s in specs}
    specs = [by_name[name] for name in job.columns]  # the order the requester asked for
    frame = read_table(absolute_path(dataset.storage_path))[list(job.columns)]
    job_report_progress(job=job, progress=0.1, stage="loaded source")

    def progress(fraction: float, stage: str) -> None:
        job_report_progress(job=job, progress=0.1 + 0.6 * fraction, stage=stage)

    synthetic = synthesizer.fit_sample(frame, columns=specs, rows=job.rows, seed=job.seed, progress=progress)
    logger.info("job %s synthesized %d rows x %d columns", job.pk, len(synthetic), len(specs))
    return SynthesisOutput(frame=synthetic, training=frame)


def job_store_output(*, job: SynthesisJob, frame: Any) -> SynthesisJob:
    csv_bytes = frame.to_csv(index=False).encode("utf-8")
    stored = store_stream([csv_bytes], folder="releases", suffix=".csv", max_bytes=2**40)
    SynthesisJob.objects.filter(pk=job.pk).update(
        output_path=stored.relative_path, output_sha256=stored.sha256
    )
    job.output_path, job.output_sha256 = stored.relative_path, stored.sha256
    return job
