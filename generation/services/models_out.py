"""Training a `dp_model` job's model, worker-side, and storing its artifact (issue 15).

The job's epsilon is spent by one DP fit. Like a DP synthesizer's released statistics
(generation.services.jobs._fit_dp), the fitted model is saved encrypted with the job the moment it
exists (`dp_state_path`, with its privacy facts), before anything is evaluated: a job retried after
a crash restores the saved model and never fits under the same debit again. A job that read the
data and saved nothing raises DPStateLost.

The non-private baseline (generation.modeling: the same family fitted without noise, to measure
what privacy cost) is never stored or released; a restored job fits it again for its validation,
which spends no privacy budget because nothing derived from it is released but its holdout AUC
(reported outside the guarantee, like every validation figure).
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

from generation.models import SynthesisJob, atto_to_delta
from generation.services.jobs import (
    DPStateLost,
    _read_dp_state,
    _save_dp_state,
    job_read_training,
    job_record_output,
    job_report_progress,
)
from generation.storage import delete_stored, store_encrypted

logger = logging.getLogger(__name__)
_STATE_FORMAT = 1


@dataclass(frozen=True)
class ModelOutput:
    """A trained (or restored) DP model and the training rows it was fitted on (worker-side)."""

    model: Any  # generation.modeling.TrainedModel
    training: Any  # pandas.DataFrame of the job's columns of the training split
    restored: bool = False


def job_model_spec(job: SynthesisJob) -> Any:
    """The ModelSpec of a dp_model job: its family (`synthesizer`), the target named in its options
    (approvals.services.attempts.model_job_options), the other columns as features, the family's
    options as filed, its epsilon and its pinned signed-off column specs."""
    from generation.modeling import ModelSpec

    options = dict(job.options or {})
    target = str(options.get("target") or "")
    if not target or target not in job.columns:
        raise ValueError("A dp_model job names its target among its columns.")
    if job.epsilon is None:
        raise ValueError("A dp_model job has an epsilon.")
    features = tuple(c for c in job.columns if c != target)
    if options.get("features") is not None and list(options["features"]) != list(features):
        raise ValueError("A dp_model job's features are its columns without the target.")
    return ModelSpec(
        family=job.synthesizer,
        target=target,
        features=features,
        epsilon=float(job.epsilon),
        column_specs=tuple(dict(s) for s in job.metadata),
        options=dict(options.get("model_options") or {}),
        # The delta reserved with epsilon (an (epsilon, delta) family only; None for the others).
        delta=atto_to_delta(job.delta_atto),
    )


def job_train_model(*, job: SynthesisJob) -> ModelOutput:
    """Fit the job's DP model once (or restore the one fitted on an earlier attempt), save it
    encrypted as the job's DP state, and return it with the training rows."""
    from core.errors import ValidationFailed
    from generation.modeling import model_declaration_refusals, train_dp_model

    spec = job_model_spec(job)
    # The declarations alone decide whether this model may be trained: refused before any row is
    # read, so the job fails with its reservation refunded (train_dp_model checks again).
    refusals = model_declaration_refusals(
        family=spec.family,
        target=spec.target,
        features=list(spec.features),
        column_specs=[dict(s) for s in spec.column_specs],
    )
    if refusals:
        raise ValidationFailed(" ".join(refusals), code="model_not_declared")
    if job.dp_state_path:
        training = job_read_training(job=job)  # the evaluation reads real rows; no mechanism does
        return ModelOutput(model=_restore(job, spec, training), training=training, restored=True)
    if job.data_accessed_at is not None:
        raise DPStateLost(str(job.pk))
    training = job_read_training(job=job)
    job_report_progress(job=job, progress=0.1, stage="loaded source")

    def progress(stage: str, fraction: float) -> None:
        job_report_progress(job=job, progress=0.1 + 0.6 * fraction, stage=stage)

    model = train_dp_model(training, spec, seed=int(job.seed), on_progress=progress)
    if model.privacy_facts.get("epsilon") is None or float(model.privacy_facts["epsilon"]) != spec.epsilon:
        # The release will say "epsilon = X": it must be exactly what the fit was given.
        raise RuntimeError("The DP model was fitted under a different epsilon than the job reserved.")
    _save_dp_state(job, _state_blob(model))
    logger.info("job %s fitted a DP %s on %d features", job.pk, spec.family, len(spec.features))
    return ModelOutput(model=model, training=training)


def job_store_model_artifact(*, job: SynthesisJob, data: bytes, sha256: str) -> SynthesisJob:
    """Store the model artifact as the job's output (what a release serves), encrypted, only while
    `job`'s worker holds it; `output_sha256` is the SHA-256 of the .skops bytes a downloader gets
    and must equal `sha256`, the hash the training recorded."""
    stored = store_encrypted(data, folder="releases", suffix=".skops")
    if stored.sha256 != sha256:
        delete_stored(stored.relative_path)
        raise RuntimeError("The stored model artifact does not match its recorded SHA-256.")
    return job_record_output(job=job, stored=stored)


# --- The saved state -----------------------------------------------------------------------------


def _state_blob(model: Any) -> bytes:
    """The released model (skops bytes) and its privacy facts, as one JSON document."""
    return json.dumps(
        {
            "format": _STATE_FORMAT,
            "family": model.family,
            "artifact_sha256": model.sha256,
            "artifact": base64.b64encode(model.artifact).decode("ascii"),
            "privacy_facts": model.privacy_facts,
        },
        sort_keys=True,
    ).encode("utf-8")


def _restore(job: SynthesisJob, spec: Any, training: Any) -> Any:
    """The TrainedModel of an earlier attempt, from the job's saved DP state
    (generation.modeling.restore_trained_model checks the artifact's hash and refits the baseline)."""
    from generation.modeling import restore_trained_model

    state = json.loads(_read_dp_state(job))
    if state.get("format") != _STATE_FORMAT:
        raise RuntimeError("The saved model does not match its recorded SHA-256.")
    return restore_trained_model(
        training,
        spec,
        artifact=base64.b64decode(state["artifact"]),
        sha256=state["artifact_sha256"],
        privacy_facts=state["privacy_facts"],
        seed=int(job.seed),
    )
