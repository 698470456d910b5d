"""The synthesis-job lifecycle: create, claim with a lease, progress, synthesize, finalize once."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record
from core.errors import Conflict
from core.roles import PortalUser
from generation.choices import FINAL_JOB_STATES, DatasetStatus, JobState
from generation.conformance import changed_cells, conform_to_declared
from generation.csv_safety import frame_to_safe_csv
from generation.models import SourceDataset, SynthesisJob
from generation.policies import dp_domain_refusal
from generation.services.budget import budget_refund, budget_reserve
from generation.storage import StoredFile, delete_stored, read_encrypted_parquet, store_encrypted
from generation.synthesizers import (
    REGISTRY,
    ColumnSpec,
    dp_synthesizer_for,
    is_dp_synthesizer,
    synthesizer_for,
)

logger = logging.getLogger(__name__)

# A claimed job's lease; progress reports extend it. A worker that dies stops extending it, and
# the reconciler re-queues the job once it lapses (sooner on the same host: see job_claim).
JOB_LEASE = timedelta(seconds=settings.SYNTHGATE_JOB_LEASE_SECONDS)
# Queued this long without a worker claiming it: the broker message was probably lost.
STALE_QUEUED = timedelta(seconds=settings.SYNTHGATE_STALE_QUEUED_SECONDS)


class JobCancelled(Exception):
    """Raised inside a running job when it was cancelled or finalized by someone else."""


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
    actor: PortalUser,
    delta_atto: int | None = None,
    upload_path: str = "",
    audit_details: dict[str, Any] | None = None,
    retry_hint: str = "approve again",
    options: dict[str, Any] | None = None,
) -> SynthesisJob:
    """Create a queued job pinned to the dataset's signed-off column specs; enqueue on commit.

    `upload_path` is set for a job that validates an uploaded file instead of synthesizing."""
    if dataset.status != DatasetStatus.READY:
        raise Conflict(
            f"{dataset} is awaiting a new classification sign-off; {retry_hint} once a data "
            "steward has signed it off.",
            code="dataset_not_signed_off",
        )
    metadata = _signed_off_specs(dataset, columns)
    if is_dp_synthesizer(synthesizer):
        _refuse_undeclared_domain(metadata)
    job = SynthesisJob.objects.create(
        dataset=dataset,
        columns=list(columns),
        metadata=metadata,
        classification_version=dataset.classification_version,
        synthesizer=synthesizer,
        rows=rows,
        epsilon_micro=epsilon_micro,
        delta_atto=delta_atto if epsilon_micro is not None else None,
        # The privacy unit is pinned with the job: a later edit of the dataset cannot change it.
        entity_column=dataset.entity_column if epsilon_micro is not None else "",
        seed=secrets.randbelow(2**31 - 1),
        upload_path=upload_path,
        # Synthesizer options (a bake-off candidate's), validated when the request was filed.
        options=dict(options or {}),
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
            **(audit_details or {}),
        },
    )
    if epsilon_micro is not None:
        # In the approval's transaction: if the budget cannot cover it, the approval rolls back.
        budget_reserve(job=job, actor=actor)
    job_enqueue(job_id=job.pk)
    return job


def _refuse_undeclared_domain(metadata: list[dict[str, Any]]) -> None:
    """A DP job runs only on domains the steward declared (or a DP estimate): never on values
    read from the data, which would make the released domain depend on individual records."""
    refusal = dp_domain_refusal(metadata)
    if refusal:
        raise Conflict(refusal, code="dp_domain_not_declared")


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
                categories=tuple(str(c) for c in categories) if categories is not None else None,
                # Declared, never inferred: whether a column has gaps is a fact about the data.
                nullable=item.get("nullable", True),
                integer=bool(item.get("integer")),
                decimals=item.get("decimals"),
                allowed_values=tuple(item["allowed_values"]) if item.get("allowed_values") else None,
                outcome=bool(item.get("outcome")),
            )
        )
    return specs


def _epoch(value: Any) -> float | None:
    import pandas as pd

    return None if value is None else pd.Timestamp(value).timestamp()


def job_enqueue(*, job_id: Any) -> None:
    # Only ids cross the broker; on_commit so the worker never sees an uncommitted job. Celery's
    # current app (portal's, once Django is up) sends it: generation does not import portal.
    transaction.on_commit(lambda: current_app.send_task(PIPELINE_TASK, kwargs={"job_id": str(job_id)}))


def worker_identity() -> str:
    """host:pid:nonce of this worker process (a lease's holder: _holder_is_dead reads it back)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _holder_is_dead(worker: str) -> bool:
    """True when the lease holder was a process on this host that no longer exists."""
    host, _, rest = worker.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def job_claim(*, job_id: Any) -> SynthesisJob | None:
    """Claim a queued job, one whose lease lapsed, or one whose holder died on this host, with
    one conditional UPDATE. Returns None when someone else holds it or it is final: duplicate
    deliveries are no-ops."""
    now = timezone.now()
    current = (
        SynthesisJob.objects.filter(pk=job_id)
        .values("state", "worker", "lease_expires_at", "attempts", "max_attempts")
        .first()
    )
    if current is None or current["state"] in FINAL_JOB_STATES:
        return None
    claimable = Q(state=JobState.QUEUED) | Q(
        state__in=[JobState.RUNNING, JobState.VALIDATING], lease_expires_at__lt=now
    )
    if current["state"] != JobState.QUEUED and _holder_is_dead(current["worker"]):
        # The worker child was killed (e.g. OOM, SIGKILL) and Celery redelivered the task here.
        claimable |= Q(state__in=[JobState.RUNNING, JobState.VALIDATING], worker=current["worker"])
    if current["attempts"] >= current["max_attempts"]:
        # Every path, redelivery of a killed worker's task included: a job that keeps killing its
        # worker must end, not run forever (and a DP job must not keep touching the data).
        _fail_out_of_attempts(job_id, claimable)
        return None
    updated = SynthesisJob.objects.filter(
        claimable, pk=job_id, cancel_requested=False, attempts__lt=F("max_attempts")
    ).update(
        state=JobState.RUNNING,
        worker=worker_identity(),
        lease_expires_at=now + JOB_LEASE,
        attempts=F("attempts") + 1,
        started_at=now,
        stage="claimed",
        progress=0.02,
    )
    if updated != 1:
        return None
    job = SynthesisJob.objects.get(pk=job_id)
    audit_record(
        actor=None,
        action="job.claim",
        target_type="job",
        target_id=job.pk,
        details={"attempt": job.attempts, "worker": job.worker},
    )
    return job


def _fail_out_of_attempts(job_id: Any, claimable: Q) -> None:
    job = SynthesisJob.objects.filter(claimable, pk=job_id).first()
    if job is not None:
        job_finalize(
            job=job,
            state=JobState.FAILED,
            error_code="max_attempts",
            error_message=f"The job stopped {job.attempts} times without finishing; ask for a new request.",
        )


def job_report_progress(*, job: SynthesisJob, progress: float, stage: str) -> None:
    """Record progress and extend the lease. Raises JobCancelled when the job was cancelled or
    finalized meanwhile, or another worker took it over: the caller must stop working on it."""
    now = timezone.now()
    updated = (
        SynthesisJob.objects.filter(pk=job.pk, worker=job.worker, cancel_requested=False)
        .exclude(state__in=FINAL_JOB_STATES)
        .update(progress=max(0.0, min(1.0, progress)), stage=stage[:80], lease_expires_at=now + JOB_LEASE)
    )
    if not updated:
        raise JobCancelled(str(job.pk))


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
        if won and state in (JobState.FAILED, JobState.CANCELLED):
            # Refunded only if the job never read the data (checked inside, under a row lock).
            budget_refund(job=job, reason=f"job {state} before reading data")
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
    privacy_statement: str = ""  # what a DP synthesizer guarantees, for the receipt
    # Cells changed to fit the declared domain, per column and rule: counts only, never values.
    conformed: dict[str, dict[str, int]] = field(default_factory=dict)
    # A DP synthesizer's facts for the release's privacy block (unit, epsilon, delta, mechanisms).
    privacy_facts: dict[str, Any] = field(default_factory=dict)


def _options_for(job: SynthesisJob) -> dict[str, Any]:
    """Synthesizer options: the job's own, plus (for DP) the steward's declared integer columns,
    the privacy unit and the job's delta, none of which DP synthesizers may infer from the data."""
    options = dict(job.options or {})
    if job.epsilon is not None:
        integers = [c["name"] for c in job.metadata if c.get("integer")]
        if integers:
            options.setdefault("integer_columns", integers)
        if job.entity_column:
            options["entity_column"] = job.entity_column
        if job.delta_atto:
            options["delta"] = str(job.delta)
    return options


def _stamp_data_access(job: SynthesisJob) -> None:
    # Stamped before the first read: from here on, a failure can no longer be refunded.
    SynthesisJob.objects.filter(pk=job.pk, data_accessed_at__isnull=True).update(
        data_accessed_at=timezone.now()
    )


def job_read_training(*, job: SynthesisJob) -> Any:
    """The job's columns of the training split, after stamping data_accessed_at (worker-side)."""
    _stamp_data_access(job)
    return read_encrypted_parquet(job.dataset.storage_path)[list(job.columns)]


def _read_training_with_entities(job: SynthesisJob) -> tuple[Any, Any]:
    """The training columns, and the declared entity column's values (never synthesized)."""
    _stamp_data_access(job)
    source = read_encrypted_parquet(job.dataset.storage_path)
    entities = source[job.entity_column] if job.entity_column and job.entity_column in source else None
    return source[list(job.columns)], entities


class DPStateLost(Exception):
    """A DP job read the data on an earlier attempt and its released statistics were not saved:
    resampling is impossible and reading the data again would spend unrecorded privacy."""


def _fit_dp(job: SynthesisJob, progress: Any) -> tuple[Any, Any]:
    """Run (or restore) a DP synthesizer's mechanisms; returns (synthesizer, training frame).

    The mechanisms' outputs are saved encrypted with the job the moment they exist; a retried
    job resamples from them and never runs a mechanism on the data again under the same debit."""
    options = _options_for(job) or None
    if job.dp_state_path:
        synthesizer = REGISTRY[job.synthesizer].from_released_state(
            _read_dp_state(job), epsilon=job.epsilon, options=options
        )
        return synthesizer, job_read_training(job=job)  # the gate reads real data; no mechanism does
    if job.data_accessed_at is not None:
        raise DPStateLost(str(job.pk))
    synthesizer = dp_synthesizer_for(job.synthesizer, epsilon=job.epsilon, options=options)
    frame, entities = _read_training_with_entities(job)
    job_report_progress(job=job, progress=0.1, stage="loaded source")
    synthesizer.fit(frame, columns=job_column_specs(job), progress=progress, entities=entities)
    _save_dp_state(job, synthesizer.released_state())
    return synthesizer, frame


def _save_dp_state(job: SynthesisJob, blob: bytes) -> None:
    stored = store_encrypted(blob, folder="dp-state", suffix=".json")
    saved = (
        SynthesisJob.objects.filter(pk=job.pk, worker=job.worker, dp_state_path="")
        .exclude(state__in=FINAL_JOB_STATES)
        .update(dp_state_path=stored.relative_path, dp_state_sha256=stored.sha256)
    )
    if not saved:
        delete_stored(stored.relative_path)
        raise JobCancelled(str(job.pk))
    job.dp_state_path, job.dp_state_sha256 = stored.relative_path, stored.sha256


def _read_dp_state(job: SynthesisJob) -> bytes:
    import hashlib

    from generation.crypto import decrypt_file
    from generation.storage import absolute_path

    blob = decrypt_file(absolute_path(job.dp_state_path)).getvalue()
    if hashlib.sha256(blob).hexdigest() != job.dp_state_sha256:
        raise RuntimeError("The saved DP state does not match its recorded hash.")
    return blob


def job_synthesize(*, job: SynthesisJob) -> SynthesisOutput:
    """Read the training split (stamping data_accessed_at first) and run the job's synthesizer.

    Only the training split is read here: the holdout is never handed to a generator.
    """
    specs = job_column_specs(job)

    def progress(fraction: float, stage: str) -> None:
        job_report_progress(job=job, progress=0.1 + 0.6 * fraction, stage=stage)

    statement, facts = "", {}
    if job.epsilon is not None:
        synthesizer, frame = _fit_dp(job, progress)
        synthetic = synthesizer.sample(rows=job.rows, seed=job.seed)
        # The release will say "epsilon = X": it must be exactly what the mechanisms spent.
        if synthesizer.epsilon_spent() != job.epsilon or synthesizer.delta_spent() != (job.delta or 0):
            raise RuntimeError("DP synthesizer spent a different epsilon or delta than the job reserved.")
        statement, facts = synthesizer.privacy_statement, synthesizer.privacy_facts()
    else:
        synthesizer = synthesizer_for(job.synthesizer, options=_options_for(job) or None)
        frame = job_read_training(job=job)
        job_report_progress(job=job, progress=0.1, stage="loaded source")
        synthetic = synthesizer.fit_sample(
            frame, columns=specs, rows=job.rows, seed=job.seed, progress=progress
        )
    logger.info("job %s synthesized %d rows x %d columns", job.pk, len(synthetic), len(specs))
    # Post-processing of the output against the declaration only (never the source rows), so a DP
    # guarantee still holds: clip to bounds, round whole-number columns, blank undeclared categories.
    conformed, changes = conform_to_declared(synthetic[list(job.columns)], job.metadata)
    logger.info("job %s conformed %d cells to the declared domain", job.pk, changed_cells(changes))
    return SynthesisOutput(
        frame=conformed, training=frame, privacy_statement=statement, conformed=changes, privacy_facts=facts
    )


def job_store_output(*, job: SynthesisJob, frame: Any) -> SynthesisJob:
    """Store the output, only while `job`'s worker still holds it; the output of an earlier
    attempt (superseded) is deleted. A late worker's output is deleted, never recorded.

    The CSV is written with formula-like text cells neutralised (generation.csv_safety) and
    stored encrypted like the sources; `output_sha256` is the SHA-256 of that plaintext CSV, i.e.
    of exactly the bytes every downloader receives, so receipts stay verifiable."""
    stored = store_encrypted(frame_to_safe_csv(frame), folder="releases", suffix=".csv")
    return job_record_output(job=job, stored=stored)


def job_record_output(*, job: SynthesisJob, stored: StoredFile) -> SynthesisJob:
    """Record an encrypted file already stored as `job`'s output (a table or a model artifact),
    only while `job`'s worker still holds it: the output of an earlier attempt is deleted, and a
    late worker's file is deleted and never recorded (JobCancelled)."""
    previous = SynthesisJob.objects.values_list("output_path", flat=True).get(pk=job.pk)
    updated = (
        SynthesisJob.objects.filter(pk=job.pk, worker=job.worker, output_path=previous)
        .exclude(state__in=FINAL_JOB_STATES)
        .update(output_path=stored.relative_path, output_sha256=stored.sha256)
    )
    if not updated:
        delete_stored(stored.relative_path)
        raise JobCancelled(str(job.pk))
    if previous:
        delete_stored(previous)
    job.output_path, job.output_sha256 = stored.relative_path, stored.sha256
    return job


def job_cancel(*, job: SynthesisJob, actor: PortalUser) -> bool:
    """Cancel a job. A queued job ends at once; a running one stops at its next progress report.

    The caller authorizes (the requester or a privacy officer, decided in approvals).
    """
    with transaction.atomic():
        flagged = (
            SynthesisJob.objects.filter(pk=job.pk, cancel_requested=False)
            .exclude(state__in=FINAL_JOB_STATES)
            .update(cancel_requested=True)
        )
        if not flagged:
            return False
        audit_record(actor=actor, action="job.cancel", target_type="job", target_id=job.pk)
        if SynthesisJob.objects.filter(pk=job.pk, state=JobState.QUEUED).exists():
            job_finalize(
                job=job,
                state=JobState.CANCELLED,
                error_code="cancelled",
                error_message="Cancelled before it started.",
            )
    return True


@dataclass(frozen=True)
class ReconcileResult:
    requeued: list[str]
    failed: list[str]


def jobs_reconcile() -> ReconcileResult:
    """Re-queue jobs whose worker stopped renewing its lease (or whose message was lost); fail
    those out of attempts. Safe to run concurrently: every change is a conditional UPDATE."""
    now = timezone.now()
    requeued: list[str] = []
    failed: list[str] = []
    lapsed = SynthesisJob.objects.filter(
        state__in=[JobState.RUNNING, JobState.VALIDATING], lease_expires_at__lt=now
    )
    lost = SynthesisJob.objects.filter(
        state=JobState.QUEUED, created_at__lt=now - STALE_QUEUED, cancel_requested=False
    )
    for job in list(lapsed) + list(lost):
        if job.attempts >= job.max_attempts:
            if job_finalize(
                job=job,
                state=JobState.FAILED,
                error_code="max_attempts",
                error_message=f"The job stopped {job.attempts} times without finishing; ask for a new request.",
            ):
                failed.append(str(job.pk))
            continue
        reset = SynthesisJob.objects.filter(
            pk=job.pk, state=job.state, lease_expires_at=job.lease_expires_at
        ).update(
            state=JobState.QUEUED,
            lease_expires_at=None,
            stage="re-queued after a lapsed lease",
            created_at=now,
        )
        if reset:
            job_enqueue(job_id=job.pk)
            requeued.append(str(job.pk))
    if requeued or failed:
        logger.info("reconciler re-queued %d and failed %d jobs", len(requeued), len(failed))
    return ReconcileResult(requeued=requeued, failed=failed)
