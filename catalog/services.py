"""Publishing releases (by the pipeline, a gate override or a bake-off choice) and audited downloads.

The pipeline that produces releases is catalog.pipeline.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
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
    request_published_by_override,
)
from approvals.services.bakeoffs import (
    bakeoff_chosen,
    bakeoff_pick,
    bakeoff_pick_refused,
    latest_candidates,
)
from audit.models import Outcome
from audit.services import audit_record
from catalog.access import release_refuse_if_gone
from catalog.models import ArtifactFormat, Release, ReleaseKind, ReleaseOrigin
from catalog.selectors import releases_visible_to
from core.errors import Conflict, NotFound, PermissionDenied
from core.ids import first_by_uuid
from core.roles import PortalUser
from generation.crypto import DecryptionError
from generation.modeling import is_model_family
from generation.models import SynthesisJob
from generation.storage import OpenedFile, open_encrypted
from generation.synthesizers import is_dp_synthesizer
from validation.models import ValidationReport

logger = logging.getLogger(__name__)
_RECEIPT_PACKAGES = ("sdv", "sdmetrics", "rdt", "copulas", "pandas", "numpy", "scipy", "django")
# What fits, serializes and evaluates a DP model release (generation.modeling).
_MODEL_RECEIPT_PACKAGES = ("diffprivlib", "scikit-learn", "skops", "pandas", "numpy", "scipy", "django")


def _package_versions(names: tuple[str, ...] = _RECEIPT_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
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
    """What it takes to reproduce a release: seed, config, source hash, versions (for a DP model,
    also its family, target, features and the artifact's SHA-256)."""
    is_model = is_model_family(job.synthesizer)
    config = {
        "synthesizer": job.synthesizer,
        "columns": job.columns,
        "rows": job.rows,
        "epsilon_micro": job.epsilon_micro,
        "delta_atto": job.delta_atto,
        "entity_column": job.entity_column or None,
    }
    receipt: dict[str, Any] = {
        "seed": job.seed,
        "synthesizer_config": config,
        "config_sha256": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        "source_sha256": job.dataset.sha256,
        "source_version": job.dataset.version,
        "packages": _package_versions(_MODEL_RECEIPT_PACKAGES if is_model else _RECEIPT_PACKAGES),
        "code_version": _code_version(),
    }
    if is_model:
        target = str((job.options or {}).get("target") or "")
        receipt["model"] = {
            "family": job.synthesizer,
            "target": target,
            "features": [c for c in job.columns if c != target],
            "artifact_format": ArtifactFormat.SKOPS,
            "artifact_sha256": job.output_sha256,
        }
    return receipt


def release_publish(
    *,
    job: SynthesisJob,
    request: GenerationRequest,
    gate: dict[str, Any],
    metrics: dict[str, Any],
    receipt: dict[str, Any],
) -> Release | None:
    """Create the request's release; None when one already exists (at most one per request).

    A job that trained a DP model (generation.modeling) publishes a model release: its file is
    the .skops artifact, its privacy block says what a model's guarantee covers
    (catalog.model_cards.model_privacy), and it states no row count (the training rows are a
    count of real records outside the guarantee; custodians see it in the metrics)."""
    is_model = is_model_family(job.synthesizer)
    is_dp = is_dp_synthesizer(job.synthesizer) or (is_model and job.epsilon_micro is not None)
    kind = ReleaseKind.MODEL if is_model else ReleaseKind.TABLE
    try:
        release = _create_audited(
            details={
                "request": str(request.pk),
                "job": str(job.pk),
                "overridden": bool(gate.get("overridden")),
                "kind": kind,
                "sha256": job.output_sha256,
            },
            request=request,
            job=job,
            dataset=job.dataset,
            requester_id=request.requester_id,
            requester_name=request.requester.get_username(),
            **Release.visibility_fields(request.tier_controls),
            team=request.team,
            audience=request.audience,
            title=request.title,
            kind=kind,
            artifact_format=ArtifactFormat.SKOPS if is_model else ArtifactFormat.CSV,
            rows=0 if is_model else job.rows,
            columns=job.columns,
            synthesizer=job.synthesizer,
            is_dp=is_dp,
            epsilon_micro=job.epsilon_micro if is_dp else None,
            delta_atto=job.delta_atto if is_dp else None,
            privacy=_privacy_block(job, is_model=is_model),
            storage_path=job.output_path,
            sha256=job.output_sha256,
            gate=gate,
            metrics=metrics,
            receipt=receipt,
            expires_at=_expires_at(request.tier_controls),
        )
    except IntegrityError:
        return None
    return release


def _create_audited(*, details: dict[str, Any], **fields: Any) -> Release:
    """Create a release and its `release.publish` audit event together (one savepoint): when the
    release is refused (IntegrityError: a second release for the same request or study), neither
    is written."""
    with transaction.atomic():
        release = Release.objects.create(**fields)
        audit_record(
            actor=None, action="release.publish", target_type="release", target_id=release.pk, details=details
        )
    return release


def _expires_at(controls: dict[str, Any] | None) -> Any:
    """When a release published now expires under the tier's `expiry_days` (None: no expiry)."""
    expiry_days = int((controls or {}).get("expiry_days") or 0)
    return timezone.now() + timedelta(days=expiry_days) if expiry_days else None


@dataclass(frozen=True)
class ExternalModel:
    """A model trained outside the catalog's own pipeline (a federated study), as plain data: the
    catalog publishes it without importing the layer that made it.

    `origin_ref` is the study's id (one release per study: the column is unique); `requester` sees
    the release whatever its audience; `controls` are the tier's controls (access level,
    discoverability, who decides access, expiry); `card` is the model card fixed at publication;
    `sources` the site datasets it was trained on; `privacy` the block the release page and API
    show (catalog.privacy's shape, with `dp`, `unit`, `epsilon`, `delta`, ...)."""

    origin_ref: Any
    title: str
    team: Any
    audience: str
    requester: PortalUser
    controls: dict[str, Any]
    storage_path: str
    sha256: str
    artifact_format: str
    synthesizer: str
    columns: list[str]
    epsilon_micro: int
    delta_atto: int | None
    privacy: dict[str, Any]
    gate: dict[str, Any]
    metrics: dict[str, Any]
    card: dict[str, Any]
    sources: list[dict[str, Any]]
    receipt: dict[str, Any] = field(default_factory=dict)


def release_publish_external(*, model: ExternalModel) -> Release:
    """Publish a federated study's model as a catalog model release (origin "study"): the same
    visibility, access requests, expiry, withdrawal and audited downloads as a DP model. Only a
    model whose gate passed is published, and only a DP one (a released model is always DP: the
    database enforces it). Run inside the caller's transaction; audited in it. Raises Conflict if
    the study already has a release."""
    if not model.gate.get("passed"):
        raise Conflict("Only a model whose gate passed is published.", code="gate_failed")
    try:
        release = _create_audited(
            details={
                "origin": ReleaseOrigin.STUDY,
                "study": str(model.origin_ref),
                "kind": ReleaseKind.MODEL,
                "sites": len(model.sources),
                "sha256": model.sha256,
            },
            origin=ReleaseOrigin.STUDY,
            origin_ref=model.origin_ref,
            requester=model.requester,
            requester_name=model.requester.get_username(),
            controls=dict(model.controls or {}),
            **Release.visibility_fields(model.controls),
            team=model.team,
            audience=model.audience,
            title=model.title,
            kind=ReleaseKind.MODEL,
            artifact_format=model.artifact_format,
            rows=0,
            columns=list(model.columns),
            synthesizer=model.synthesizer,
            is_dp=True,
            epsilon_micro=model.epsilon_micro,
            delta_atto=model.delta_atto,
            privacy=model.privacy,
            storage_path=model.storage_path,
            sha256=model.sha256,
            gate=model.gate,
            metrics=model.metrics,
            receipt=model.receipt,
            card=model.card,
            sources=model.sources,
            expires_at=_expires_at(model.controls),
        )
    except IntegrityError:
        raise Conflict("This study already has a release.", code="already_published") from None
    return release


def model_validation_record(
    *, job: SynthesisJob, metrics: dict[str, Any], checks: list[dict[str, Any]], passed: bool
) -> ValidationReport:
    """Record a DP model's evaluation (validation.model_gate's verdict on the locked holdout) as the
    job's validation report, as validation.services.validation_run records a table's: the request
    page, the job report, gate overrides and the evidence package read it from there. Audited in
    the same transaction (aggregates and check names only)."""
    with transaction.atomic():
        report, _ = ValidationReport.objects.update_or_create(
            job=job, defaults={"metrics": metrics, "checks": checks, "passed": passed}
        )
        audit_record(
            actor=None,
            action="validation.complete",
            target_type="job",
            target_id=job.pk,
            outcome="success" if passed else "failure",
            details={"passed": passed, "model": True, "checks": {c["name"]: c["passed"] for c in checks}},
        )
    return report


def _privacy_block(job: SynthesisJob, *, is_model: bool = False) -> dict[str, Any]:
    """What is and is not protected, fixed at publication (with the source's spend so far)."""
    from catalog.model_cards import model_privacy
    from catalog.privacy import release_privacy

    if is_model:
        return model_privacy(job=job, dataset=job.dataset)
    return release_privacy(job=job, dataset=job.dataset)


def gate_override_approve(*, actor: PortalUser, request_id: Any, comment: str = "") -> Release:
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


def _publish_override(actor: PortalUser, override: GateOverride) -> Release:
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


def release_get_for(*, actor: PortalUser, release_id: Any) -> Release:
    release = first_by_uuid(releases_visible_to(user=actor), release_id)
    if release is None:
        raise NotFound("No such release.")
    return release


def release_open_download(*, actor: PortalUser, release_id: Any) -> tuple[Release, OpenedFile]:
    """Authorize, check the stored file and audit a download; the audit row commits before any
    byte is sent. The file is decrypted chunk by chunk as it streams (no plaintext on disk)."""
    release = release_get_for(actor=actor, release_id=release_id)
    # Expired or withdrawn: 410 with the reason, audited, before the file is touched.
    release_refuse_if_gone(actor=actor, release=release)
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


# --- Bake-offs ------------------------------------------------------------------------------------


def bakeoff_choose(*, actor: PortalUser, request_id: Any, index: Any) -> Release:
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
