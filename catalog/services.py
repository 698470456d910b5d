"""Publishing releases, audited downloads, and the pipeline that produces releases.

The pipeline spans generation, validation, approvals and catalog, so it lives here, in the
highest app it touches; lower apps enqueue it by task name (generation.services.PIPELINE_TASK).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals.models import GateOverride, GenerationRequest
from approvals.services import (
    audit_override_refusal,
    gate_override_decide,
    request_follow_job,
    request_published_by_override,
)
from approvals.services.bakeoffs import (
    bakeoff_chosen,
    bakeoff_pick,
    bakeoff_pick_refused,
    candidate_run_of,
    latest_candidates,
    request_for_job,
)
from audit.models import Outcome
from audit.services import audit_record
from catalog.models import Release
from catalog.selectors import releases_visible_to
from core.errors import Conflict, NotFound, PermissionDenied
from core.ids import parse_uuid
from generation.choices import JobState
from generation.crypto import DecryptionError
from generation.models import SynthesisJob
from generation.services import (
    DPStateLost,
    JobCancelled,
    job_claim,
    job_finalize,
    job_read_training,
    job_report_progress,
    job_set_state,
    job_store_output,
    job_synthesize,
)
from generation.storage import OpenedFile, open_encrypted, read_encrypted_parquet
from generation.synthesizers import EXTERNAL_UPLOAD, is_dp_synthesizer
from validation.services import validation_run

logger = logging.getLogger(__name__)
_RECEIPT_PACKAGES = ("sdv", "sdmetrics", "rdt", "copulas", "pandas", "numpy", "scipy", "django")


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in _RECEIPT_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _code_version() -> str:
    head = Path(__file__).resolve().parent.parent / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (head.parent / ref[5:]).read_text().strip()[:12]
        return ref[:12]
    except OSError:
        return "unknown"


def build_receipt(job: SynthesisJob) -> dict[str, Any]:
    """What it takes to reproduce a release: seed, config, source hash, versions."""
    config = {
        "synthesizer": job.synthesizer,
        "columns": job.columns,
        "rows": job.rows,
        "epsilon_micro": job.epsilon_micro,
        "delta_atto": job.delta_atto,
        "entity_column": job.entity_column or None,
    }
    return {
        "seed": job.seed,
        "synthesizer_config": config,
        "config_sha256": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        "source_sha256": job.dataset.sha256,
        "source_version": job.dataset.version,
        "packages": _package_versions(),
        "code_version": _code_version(),
    }


def release_publish(
    *,
    job: SynthesisJob,
    request: GenerationRequest,
    gate: dict[str, Any],
    metrics: dict[str, Any],
    receipt: dict[str, Any],
) -> Release | None:
    """Create the request's release; None when one already exists (at most one per request)."""
    expiry_days = int((request.tier_controls or {}).get("expiry_days") or 0)
    is_dp = is_dp_synthesizer(job.synthesizer)
    try:
        with transaction.atomic():
            release = Release.objects.create(
                request=request,
                job=job,
                dataset=job.dataset,
                team=request.team,
                audience=request.audience,
                title=request.title,
                rows=job.rows,
                columns=job.columns,
                synthesizer=job.synthesizer,
                is_dp=is_dp,
                epsilon_micro=job.epsilon_micro if is_dp else None,
                delta_atto=job.delta_atto if is_dp else None,
                privacy=_privacy_block(job),
                storage_path=job.output_path,
                sha256=job.output_sha256,
                gate=gate,
                metrics=metrics,
                receipt=receipt,
                expires_at=timezone.now() + timedelta(days=expiry_days) if expiry_days else None,
            )
            audit_record(
                actor=None,
                action="release.publish",
                target_type="release",
                target_id=release.pk,
                details={
                    "request": str(request.pk),
                    "job": str(job.pk),
                    "overridden": bool(gate.get("overridden")),
                },
            )
    except IntegrityError:
        return None
    return release


def _privacy_block(job: SynthesisJob) -> dict[str, Any]:
    """What is and is not protected, fixed at publication (with the source's spend so far)."""
    from catalog.privacy import release_privacy

    return release_privacy(job=job, dataset=job.dataset)


def gate_override_approve(*, actor: Any, request_id: Any, comment: str = "") -> Release:
    """The second privacy officer approves a pending gate override: the gate-failed job is
    published in the same transaction, its gate recorded as failed and overridden, with who
    proposed, who approved and why. Refusals are audited after the rollback."""
    try:
        with transaction.atomic():
            override = gate_override_decide(actor=actor, request_id=request_id, approve=True, comment=comment)
            return _publish_override(actor, override)
    except PermissionDenied as exc:
        audit_override_refusal(actor=actor, request_id=request_id, reason=str(exc))
        raise


def _publish_override(actor: Any, override: GateOverride) -> Release:
    request = GenerationRequest.objects.select_for_update().get(pk=override.request_id)
    job = override.job
    gate = {
        "passed": False,
        "overridden": True,
        "override": {
            "proposed_by": override.proposed_by_name,
            "approved_by": override.decided_by_name,
            "justification": override.justification,
            "failed_checks": override.failed_checks,
            "approved_at": override.decided_at.isoformat() if override.decided_at else None,
        },
        "checks": job.validation.checks,
    }
    release = release_publish(
        job=job,
        request=request,
        gate=gate,
        metrics=job.validation.metrics,
        receipt=job.receipt or build_receipt(job),
    )
    if release is None:
        raise Conflict("This request already has a release.", code="already_published")
    request_published_by_override(actor=actor, request=request, override=override)
    return release


def release_get_for(*, actor: Any, release_id: Any) -> Release:
    release = releases_visible_to(user=actor).filter(pk=parse_uuid(release_id)).first()
    if release is None:
        raise NotFound("No such release.")
    return release


def release_open_download(*, actor: Any, release_id: Any) -> tuple[Release, OpenedFile]:
    """Authorize, check the stored file and audit a download; the audit row commits before any
    byte is sent. The file is decrypted chunk by chunk as it streams (no plaintext on disk)."""
    release = release_get_for(actor=actor, release_id=release_id)
    try:
        opened = open_encrypted(release.storage_path)
    except (OSError, DecryptionError) as exc:
        # Missing, altered, or encrypted under another key: never serve it, say so, leave evidence.
        logger.error("release %s file unreadable: %s", release.pk, type(exc).__name__)
        audit_record(
            actor=actor,
            action="release.download",
            target_type="release",
            target_id=release.pk,
            outcome=Outcome.FAILURE,
            details={"sha256": release.sha256, "error": type(exc).__name__},
        )
        raise Conflict(
            "This release's file cannot be read (it is missing or failed its integrity check). "
            "Ask an administrator to restore it from backup.",
            code="release_file_unavailable",
        ) from None
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="release.download",
            target_type="release",
            target_id=release.pk,
            details={"sha256": release.sha256},
        )
    return release, opened


# --- The pipeline -----------------------------------------------------------------------------


def pipeline_run(*, job_id: Any) -> str:
    """Synthesize, validate and (if the gate passes) publish. Safe to deliver twice."""
    job = job_claim(job_id=job_id)
    if job is None:
        # The claim may have failed the job for running out of attempts: mirror that onto its request.
        unclaimed = SynthesisJob.objects.filter(pk=job_id).first()
        if unclaimed is not None:
            request_follow_job(job=unclaimed)
        return "skipped"
    request_follow_job(job=job)
    try:
        return _pipeline_steps(job)
    except JobCancelled:
        return _stop_after_cancel(job)
    except DPStateLost:
        # Reading the data again would run the mechanisms twice under one debit. The debit stands
        # (the data was read), and nothing is published; a new attempt reserves its own epsilon.
        job_finalize(
            job=job,
            state=JobState.FAILED,
            error_code="dp_state_lost",
            error_message="The worker stopped after the DP mechanisms read the data and before their "
            "output was saved. The epsilon reserved for this job is spent; generate again (a new "
            "reservation) or file a new request.",
        )
        request_follow_job(job=job)
        return "failed"
    except Exception as exc:  # noqa: BLE001 - any failure must end the job as failed, not hang it
        # Type only, and no traceback: messages from pandas/SDV can quote source values.
        logger.error("job %s failed with %s", job.pk, type(exc).__name__)
        job_finalize(
            job=job,
            state=JobState.FAILED,
            error_code=type(exc).__name__,
            error_message="Synthesis failed inside the worker; an operator can see the "
            "worker log for this job id. Ask for a new request.",
        )
        request_follow_job(job=job)
        return "failed"


def _stop_after_cancel(job: SynthesisJob) -> str:
    """The job was cancelled, or another worker took it over after our lease lapsed."""
    if SynthesisJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
        job_finalize(
            job=job,
            state=JobState.CANCELLED,
            error_code="cancelled",
            error_message="Cancelled while running.",
        )
        request_follow_job(job=job)
        return "cancelled"
    return "lost"


def _pipeline_steps(job: SynthesisJob) -> str:
    request = request_for_job(job)
    conformed: dict[str, Any] = {}
    privacy_facts: dict[str, Any] = {}
    if job.synthesizer == EXTERNAL_UPLOAD:
        synthetic, training = _uploaded_tables(job)
    else:
        output = job_synthesize(job=job)
        synthetic, training, conformed = output.frame, output.training, output.conformed
        privacy_facts = output.privacy_facts
    job_store_output(job=job, frame=synthetic)
    if not job_set_state(job=job, state=JobState.VALIDATING, stage="validating"):
        return "lost"
    request_follow_job(job=job)
    job_report_progress(job=job, progress=0.8, stage="validating")
    return _validate_and_publish(
        job, request, training=training, synthetic=synthetic, conformed=conformed, privacy_facts=privacy_facts
    )


def _uploaded_tables(job: SynthesisJob) -> tuple[Any, Any]:
    """An uploaded synthetic file and the training split it is tested against (read worker-side:
    the uploader never handles either split)."""
    synthetic = read_encrypted_parquet(job.upload_path)[list(job.columns)]
    training = job_read_training(job=job)
    job_report_progress(job=job, progress=0.5, stage="loaded the uploaded file")
    return synthetic, training


def _validate_and_publish(
    job: SynthesisJob,
    request: GenerationRequest,
    *,
    training: Any,
    synthetic: Any,
    conformed: dict[str, Any],
    privacy_facts: dict[str, Any] | None = None,
) -> str:
    """Run the suite against the training split and the locked holdout; publish if the gate passes."""
    thresholds = (request.tier_controls or {}).get("gate")
    # The locked holdout is read here, after synthesis, so the generator never sees it.
    holdout = read_encrypted_parquet(job.dataset.holdout_path) if job.dataset.holdout_path else None
    report = validation_run(
        job=job, training=training, synthetic=synthetic, thresholds=thresholds, holdout=holdout
    )
    gate = {"passed": report.passed, "checks": report.checks}
    # Cells changed to fit the declared domain, per column and rule (counts only, no values).
    receipt = {**build_receipt(job), "conformed_to_declared": conformed}
    if privacy_facts:
        receipt["privacy_facts"] = privacy_facts
    if candidate_run_of(job) is not None:
        return _finish_candidate(job, passed=report.passed, receipt=receipt)
    if not report.passed:
        job_finalize(
            job=job,
            state=JobState.GATE_FAILED,
            error_code="gate_failed",
            error_message="The release gate failed; see the validation checks.",
            receipt=receipt,
        )
        request_follow_job(job=job)
        return "gate_failed"
    # One transaction: a job is never final-and-succeeded without its release, or vice versa.
    with transaction.atomic():
        if job_finalize(job=job, state=JobState.SUCCEEDED, receipt=receipt):
            release_publish(job=job, request=request, gate=gate, metrics=report.metrics, receipt=receipt)
            request_follow_job(job=job)
    return "published"


# --- Bake-offs ------------------------------------------------------------------------------------


def _finish_candidate(job: SynthesisJob, *, passed: bool, receipt: dict[str, Any]) -> str:
    """A bake-off candidate is validated but never published by the pipeline: a pass leaves it
    succeeded (publishable), a failure gate-failed; the request follows all its candidates."""
    state = JobState.SUCCEEDED if passed else JobState.GATE_FAILED
    job_finalize(
        job=job,
        state=state,
        error_code="" if passed else "gate_failed",
        error_message="" if passed else "The release gate failed; see the validation checks.",
        receipt=receipt,
    )
    request_follow_job(job=job)
    return "candidate_passed" if passed else "gate_failed"


def bakeoff_choose(*, actor: Any, request_id: Any, index: Any) -> Release:
    """Publish the chosen candidate of a bake-off through the release path. The release's receipt
    names every candidate of the attempt (chosen and rejected) with its gate verdict, so the
    lineage keeps them; the choice is audited with the rejected ones."""
    try:
        with transaction.atomic():
            request, run = bakeoff_pick(actor=actor, request_id=request_id, index=index)
            job = run.job
            receipt = {**(job.receipt or build_receipt(job)), "bakeoff": _bakeoff_lineage(request, run)}
            release = release_publish(
                job=job,
                request=request,
                gate={"passed": True, "checks": job.validation.checks},
                metrics=job.validation.metrics,
                receipt=receipt,
            )
            if release is None:
                raise Conflict("This request already has a release.", code="already_published")
            bakeoff_chosen(actor=actor, request=request, run=run)
            return release
    except PermissionDenied as exc:
        bakeoff_pick_refused(actor=actor, request_id=request_id, reason=str(exc))
        raise


def _bakeoff_lineage(request: GenerationRequest, chosen: Any) -> dict[str, Any]:
    return {
        "chosen": chosen.index,
        "candidates": [
            {
                "index": r.index,
                "synthesizer": r.synthesizer,
                "epsilon_micro": r.epsilon_micro,
                "options": r.options,
                "job": str(r.job_id),
                "state": r.job.state,
                "gate_passed": bool(getattr(r.job, "validation", None) and r.job.validation.passed),
                "recommended": r.recommended,
            }
            for r in latest_candidates(request)
        ],
    }
