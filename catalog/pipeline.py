"""The pipeline that produces releases: claim a job, synthesize (or load an uploaded file, or train
a DP model), validate, and publish if the gate passes.

It spans generation, validation, approvals and catalog, so it lives here, in the highest app it
touches; lower apps enqueue it by task name (generation.services.PIPELINE_TASK, registered by
catalog.tasks). Every change it makes to a job's state goes through `_claim` or `_advance`, which
mirror the job onto its request, so no step can move the job and leave the request behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.urls import reverse

from approvals.models import GenerationRequest
from approvals.services import request_follow_job
from approvals.services.bakeoffs import candidate_run_of, request_for_job
from catalog.models import Release
from catalog.services import build_receipt, model_validation_record, release_publish
from generation.choices import FINAL_JOB_STATES, JobState
from generation.modeling import is_model_family
from generation.models import SynthesisJob
from generation.services import (
    DPStateLost,
    JobCancelled,
    job_claim,
    job_finalize,
    job_read_training,
    job_report_progress,
    job_set_state,
    job_store_model_artifact,
    job_store_output,
    job_synthesize,
    job_train_model,
)
from generation.storage import read_encrypted_parquet
from generation.synthesizers import EXTERNAL_UPLOAD
from notifications.models import NotificationKind
from notifications.services import notify
from validation.metrics.model import compute_model_metrics
from validation.model_gate import model_gate
from validation.services import validation_run

logger = logging.getLogger(__name__)

_GATE_FAILED_MESSAGE = "The release gate failed; see the validation checks."
_MODEL_GATE_FAILED_MESSAGE = "The model gate failed on the locked holdout; see the validation checks."


def pipeline_run(*, job_id: Any) -> str:
    """Synthesize, validate and (if the gate passes) publish. Safe to deliver twice."""
    job = _claim(job_id)
    if job is None:
        return "skipped"
    try:
        return _pipeline_steps(job)
    except JobCancelled:
        return _stop_after_cancel(job)
    except DPStateLost:
        # Reading the data again would run the mechanisms twice under one debit. The debit stands
        # (the data was read), and nothing is published; a new attempt reserves its own epsilon.
        _advance(
            job,
            JobState.FAILED,
            error_code="dp_state_lost",
            error_message="The worker stopped after the DP mechanisms read the data and before their "
            "output was saved. The epsilon reserved for this job is spent; generate again (a new "
            "reservation) or file a new request.",
        )
        return "failed"
    except Exception as exc:  # noqa: BLE001 - any failure must end the job as failed, not hang it
        # Type only, and no traceback: messages from pandas/SDV can quote source values.
        logger.error("job %s failed with %s", job.pk, type(exc).__name__)
        _advance(
            job,
            JobState.FAILED,
            error_code=type(exc).__name__,
            error_message="Synthesis failed inside the worker; an operator can see the "
            "worker log for this job id. Ask for a new request.",
        )
        return "failed"


# --- Moving the job, and its request with it --------------------------------------------------------


def _claim(job_id: Any) -> SynthesisJob | None:
    """Claim the job (None when there is nothing to run) and mirror it onto its request.

    The claim commits on its own, before the request follows: its attempt count must stand even
    if mirroring fails, so a job that cannot be run still runs out of attempts and ends."""
    job = job_claim(job_id=job_id)
    # A refused claim may have failed the job for running out of attempts: the request follows that too.
    current = job or SynthesisJob.objects.filter(pk=job_id).first()
    if current is not None:
        request_follow_job(job=current)
    return job


def _advance(
    job: SynthesisJob,
    state: str,
    *,
    stage: str = "",
    error_code: str = "",
    error_message: str = "",
    receipt: dict[str, Any] | None = None,
    then: Callable[[], object] | None = None,
) -> bool:
    """Move a claimed job to `state` and mirror it onto its request, in one transaction, so the
    request never lags its job (not even after a crash). True when this call moved the job.

    A final state is written once (job_finalize): `then` runs only for the call that wrote it,
    before the request follows (a release exists before its request says published). The request
    follows a final state even when someone else wrote it first (the reconciler, in generation,
    cannot touch requests); a lost running -> validating move leaves it alone."""
    with transaction.atomic():
        if state in FINAL_JOB_STATES:
            moved = job_finalize(
                job=job, state=state, error_code=error_code, error_message=error_message, receipt=receipt
            )
        else:
            moved = job_set_state(job=job, state=state, stage=stage)
        if moved and then is not None:
            then()
        if moved or state in FINAL_JOB_STATES:
            request_follow_job(job=job)
        if moved and state in FINAL_JOB_STATES:
            _notify_requester(job, state)
    return moved


# The final states the requester hears about, and what the inbox says (ids and statuses only).
_OUTCOMES: dict[str, tuple[NotificationKind, str]] = {
    JobState.SUCCEEDED: (NotificationKind.JOB_PUBLISHED, "Release published"),
    JobState.GATE_FAILED: (NotificationKind.GATE_FAILED, "Release gate failed"),
    JobState.FAILED: (NotificationKind.JOB_FAILED, "Job failed"),
}


def _notify_requester(job: SynthesisJob, state: str) -> None:
    """In _advance's transaction, by the call that wrote the final state: once per job. Bake-off
    candidates are skipped (one finished candidate is not the requester's next step); cancelling
    was someone's own act."""
    if state not in _OUTCOMES or candidate_run_of(job) is not None:
        return
    request = GenerationRequest.objects.select_related("requester").filter(job_id=job.pk).first()
    if request is None:  # a job its request has since replaced: its requester follows the new one
        return
    kind, what = _OUTCOMES[state]
    release = Release.objects.filter(job_id=job.pk).only("pk").first()
    url = (
        reverse("catalog:release-detail", args=[release.pk])
        if release is not None
        else reverse("approvals:request-detail", args=[request.pk])
    )
    notify(
        recipients=[request.requester],
        kind=kind,
        message=f"{what}: {request.title} [{request.pk}], job {job.pk}",
        url=url,
        target_type="job",
        target_id=job.pk,
    )


def _stop_after_cancel(job: SynthesisJob) -> str:
    """The job was cancelled, or another worker took it over after our lease lapsed."""
    if SynthesisJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
        _advance(job, JobState.CANCELLED, error_code="cancelled", error_message="Cancelled while running.")
        return "cancelled"
    return "lost"


# --- The steps --------------------------------------------------------------------------------------


def _pipeline_steps(job: SynthesisJob) -> str:
    request = request_for_job(job)
    if is_model_family(job.synthesizer):
        return _model_steps(job, request)
    conformed: dict[str, Any] = {}
    privacy_facts: dict[str, Any] = {}
    if job.synthesizer == EXTERNAL_UPLOAD:
        synthetic, training = _uploaded_tables(job)
    else:
        output = job_synthesize(job=job)
        synthetic, training, conformed = output.frame, output.training, output.conformed
        privacy_facts = output.privacy_facts
    job_store_output(job=job, frame=synthetic)
    if not _advance(job, JobState.VALIDATING, stage="validating"):
        return "lost"
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
        job=job,
        training=training,
        synthetic=synthetic,
        thresholds=thresholds,
        holdout=holdout,
        # Each step of the suite as it starts, for the request page's panel (and the lease).
        on_progress=lambda stage, progress: job_report_progress(job=job, progress=progress, stage=stage),
    )
    gate = {"passed": report.passed, "checks": report.checks}
    # Cells changed to fit the declared domain, per column and rule (counts only, no values).
    receipt = {**build_receipt(job), "conformed_to_declared": conformed}
    if privacy_facts:
        receipt["privacy_facts"] = privacy_facts
    if candidate_run_of(job) is not None:
        return _finish_candidate(job, passed=report.passed, receipt=receipt)
    if not report.passed:
        _advance(
            job,
            JobState.GATE_FAILED,
            error_code="gate_failed",
            error_message=_GATE_FAILED_MESSAGE,
            receipt=receipt,
        )
        return "gate_failed"
    # One transaction: a job is never final-and-succeeded without its release, or vice versa.
    _advance(
        job,
        JobState.SUCCEEDED,
        receipt=receipt,
        then=lambda: release_publish(
            job=job, request=request, gate=gate, metrics=report.metrics, receipt=receipt
        ),
    )
    return "published"


# --- A DP model (a dp_model request) ------------------------------------------------------------------


def _model_steps(job: SynthesisJob, request: GenerationRequest) -> str:
    """Train the DP model (saved encrypted as the job's DP state the moment it exists: a retried
    job restores it and never fits under the same debit again), store its artifact as the job's
    output, then score it on the training rows (members) and the locked holdout (non-members)
    and apply the model gate. Bake-offs do not apply to models."""
    trained = job_train_model(job=job)
    model = trained.model
    job_store_model_artifact(job=job, data=model.artifact, sha256=model.sha256)
    if not _advance(job, JobState.VALIDATING, stage="evaluating the model"):
        return "lost"
    job_report_progress(job=job, progress=0.8, stage="scoring on the locked holdout")
    thresholds = (request.tier_controls or {}).get("gate")
    # The locked holdout is read here, after the fit, so the model never sees it.
    holdout = (
        read_encrypted_parquet(job.dataset.holdout_path)[list(job.columns)]
        if job.dataset.holdout_path
        else None
    )
    metrics = _model_metrics(model, training=trained.training, holdout=holdout, seed=int(job.seed or 0))
    report = model_gate(
        metrics, epsilon=float(job.epsilon) if job.epsilon is not None else None, thresholds=thresholds
    )
    validation = model_validation_record(
        job=job, metrics=report.metrics, checks=report.checks, passed=report.passed
    )
    receipt = {**build_receipt(job), "privacy_facts": model.privacy_facts}
    if trained.restored:
        receipt["restored_from_dp_state"] = True
    if not validation.passed:
        _advance(
            job,
            JobState.GATE_FAILED,
            error_code="gate_failed",
            error_message=_MODEL_GATE_FAILED_MESSAGE,
            receipt=receipt,
        )
        return "gate_failed"
    gate = {"passed": True, "checks": validation.checks, "model": True}
    _advance(
        job,
        JobState.SUCCEEDED,
        receipt=receipt,
        then=lambda: release_publish(
            job=job, request=request, gate=gate, metrics=validation.metrics, receipt=receipt
        ),
    )
    return "published"


def _model_metrics(model: Any, *, training: Any, holdout: Any, seed: int) -> dict[str, Any]:
    """The model gate's metrics: members are the training rows the fit used (those whose target is
    one of its two declared values), non-members the locked holdout's such rows. Without a
    holdout nothing can be scored: every check then does not run, and the gate blocks."""
    import numpy as np

    members = training.loc[model.labelled(training)]
    if holdout is None:
        holdout = training.iloc[0:0]
    scored = holdout.loc[model.labelled(holdout)] if len(holdout) else holdout
    empty = np.zeros(0)
    return compute_model_metrics(
        y_member=model.labels(members),
        p_member=model.predict_proba(members),
        y_holdout=model.labels(scored) if len(scored) else empty,
        p_holdout=model.predict_proba(scored) if len(scored) else empty,
        p_holdout_baseline=model.baseline_proba(scored) if len(scored) else None,
        seed=seed,
    )


def _finish_candidate(job: SynthesisJob, *, passed: bool, receipt: dict[str, Any]) -> str:
    """A bake-off candidate is validated but never published by the pipeline: a pass leaves it
    succeeded (publishable, chosen later through catalog.services.bakeoff_choose), a failure
    gate-failed; the request follows all its candidates."""
    _advance(
        job,
        JobState.SUCCEEDED if passed else JobState.GATE_FAILED,
        error_code="" if passed else "gate_failed",
        error_message="" if passed else _GATE_FAILED_MESSAGE,
        receipt=receipt,
    )
    return "candidate_passed" if passed else "gate_failed"
