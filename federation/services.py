"""Every write of a federated study: authorize, change state, audit, in one transaction.

File (each site's declarations must match the study's schema), submit (tiered by the policy
engine), decide (a privacy officer and EVERY site's steward; never the requester; any refusal
rejects), approve (reserve each site's per-record epsilon from ITS ledger, in one transaction), claim
and run (federation.runtime on a worker), record each round, finish (debit each site the per-record
epsilon of the rounds that ran, the per-site one stated beside it; gate each site's metrics, store
the model encrypted, write the model card).

Each site's ledger composes releases whose DP unit is one record, so a study reserves and is debited
the per-record epsilon its run implies (`federation.runtime.accounting.record_level_epsilon`: a
record moves its site's clipped update by up to twice the clipping norm), never the smaller per-site
(add or remove one site) figure of the accountant, which would under-count on that ledger.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from approvals.policies import evaluate
from approvals.policies.engine import Facts
from approvals.quorum import required_approvals
from approvals.services.policy import policy_ensure_active
from audit.services import audit_denied, audit_record
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from core.ids import first_by_uuid
from core.roles import PortalUser, Role, has_role
from federation.models import (
    FINAL_STUDY_STATES,
    DropoutPolicy,
    ModelFamily,
    Site,
    SiteDecision,
    Study,
    StudyDecision,
    StudyRound,
    StudySite,
    StudyStatus,
)
from generation.choices import Classification, ColumnKind, DatasetStatus
from generation.models import MICRO, SourceDataset
from generation.services import delta_to_atto, federated_reserve, federated_settle
from generation.services.columns import column_spec_snapshot
from generation.services.jobs import worker_identity
from generation.storage import store_encrypted

logger = logging.getLogger(__name__)

RUN_STUDY_TASK = "synthgate.federation.run_study"
# A running study renews its lease at every event (health, round, evaluation); one silent longer
# than this is taken to be dead.
STUDY_LEASE = timedelta(minutes=30)
MAX_ROUNDS = 200
MAX_SITES = 20
DEFAULT_DELTA = "1e-8"
MAX_TEXT = 5000
# What of a column's declaration must agree across sites for one model to read them all.
SCHEMA_KEYS = ("kind", "lower", "upper", "categories", "integer", "nullable")


# --- Sites -----------------------------------------------------------------------------------------


def site_register(*, actor: PortalUser, name: str, dataset_id: Any, description: str = "") -> Site:
    """A steward registers their own signed-off dataset as a site (they answer for it)."""
    if not has_role(actor, Role.DATA_STEWARD):
        audit_denied(
            actor=actor,
            action="site.register",
            target_type="dataset",
            target_id=dataset_id,
            reason="data steward role required",
        )
        raise PermissionDenied("Only data stewards register sites.")
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ValidationFailed("Give the site a name of at most 80 characters.", fields={"name": "invalid"})
    dataset = first_by_uuid(SourceDataset.objects.all(), dataset_id)
    if dataset is None:
        raise NotFound("No such dataset.")
    if dataset.uploaded_by_id != actor.pk:
        raise PermissionDenied(
            "A site's dataset is registered under its own steward: only the steward who registered "
            "this dataset may make it a site."
        )
    if dataset.status != DatasetStatus.READY:
        raise Conflict(
            "Sign off the dataset's columns before registering it as a site.", code="not_signed_off"
        )
    with transaction.atomic():
        if Site.objects.filter(name=name).exists():
            raise Conflict(f"A site named {name!r} already exists.", code="duplicate_site")
        site = Site.objects.create(
            name=name,
            dataset=dataset,
            steward=actor,
            steward_name=actor.get_username(),
            description=(description or "")[:300],
        )
        audit_record(
            actor=actor,
            action="site.register",
            target_type="site",
            target_id=site.pk,
            details={"dataset": str(dataset.pk), "name": name},
        )
    return site


# --- Schema --------------------------------------------------------------------------------------


def declared_schema(dataset: SourceDataset, columns: list[str]) -> list[dict[str, Any]]:
    """The signed-off declaration of each study column (public metadata, never values)."""
    found = {c.name: c for c in dataset.columns.filter(name__in=columns)}
    specs = []
    for name in columns:
        column = found.get(name)
        if column is None:
            raise ValidationFailed(
                f"Site dataset {dataset} has no column `{name}`; every site must hold every study column.",
                fields={"features": "missing_column"},
            )
        snap = column_spec_snapshot(column)
        specs.append(
            {"name": name, "classification": snap["classification"], **{k: snap.get(k) for k in SCHEMA_KEYS}}
        )
    return specs


def encoding_spec(specs: list[dict[str, Any]], target: str) -> dict[str, Any]:
    """The runtime's encoding (federation/runtime/app/sgfl/task.py) from the declarations: numeric
    features scaled by their declared bounds, categories one-hot, the target positive when it takes
    its second declared category ("1" of ["0", "1"], "yes" of ["no", "yes"])."""
    features = []
    for spec in specs:
        if spec["name"] == target:
            continue
        if spec["kind"] == ColumnKind.NUMERIC:
            features.append(
                {"name": spec["name"], "kind": "numeric", "lower": spec["lower"], "upper": spec["upper"]}
            )
        else:
            features.append(
                {"name": spec["name"], "kind": "categorical", "categories": list(spec["categories"])}
            )
    target_spec = next(s for s in specs if s["name"] == target)
    categories = list(target_spec.get("categories") or [])
    return {"features": features, "target": {"name": target, "positive": categories[-1:]}}


def schema_hash(spec: dict[str, Any]) -> str:
    """The hash each site's node reports in the health check (the runtime's `spec_hash`)."""
    from federation.runtime.app.sgfl.task import spec_hash

    return str(spec_hash(spec))


def _schema_refusal(
    reference: tuple[str, list[dict[str, Any]]], other: tuple[str, list[dict[str, Any]]]
) -> str:
    ref_name, ref_specs = reference
    name, specs = other
    for a, b in zip(ref_specs, specs, strict=True):
        for key in SCHEMA_KEYS:
            if a.get(key) != b.get(key):
                return (
                    f"Site {name} declares `{a['name']}` with {key} {b.get(key)!r}, but site {ref_name} "
                    f"declares {a.get(key)!r}. Every site must declare the study's columns alike (same "
                    "kind, bounds and categories); ask the site's steward to align the declaration."
                )
    return ""


def _check_columns(specs: list[dict[str, Any]], target: str) -> None:
    for spec in specs:
        if spec["classification"] == Classification.DIRECT_IDENTIFIER:
            raise ValidationFailed(
                f"Column `{spec['name']}` is classified as a direct identifier and cannot be used; remove it.",
                fields={"features": "direct_identifier"},
            )
        if spec["kind"] == ColumnKind.NUMERIC and (spec.get("lower") is None or spec.get("upper") is None):
            raise ValidationFailed(
                f"Numeric column `{spec['name']}` has no declared bounds; the steward must declare them "
                "(the sites scale features by declared bounds, never by their data).",
                fields={"features": "undeclared_bounds"},
            )
        if spec["kind"] in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN) and not spec.get("categories"):
            raise ValidationFailed(
                f"Column `{spec['name']}` has no declared categories; the steward must declare them.",
                fields={"features": "undeclared_categories"},
            )
        if spec["kind"] not in (ColumnKind.NUMERIC, ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
            raise ValidationFailed(
                f"Column `{spec['name']}` is {spec['kind']}; a study uses numeric, categorical or yes/no columns.",
                fields={"features": "unsupported_kind"},
            )
    target_spec = next(s for s in specs if s["name"] == target)
    if len(target_spec.get("categories") or []) != 2:
        raise ValidationFailed(
            f"The target `{target}` must be a declared two-category column for logistic regression.",
            fields={"target": "not_binary"},
        )


# --- Epsilon ------------------------------------------------------------------------------------------


def projected_epsilon(*, noise_multiplier: float, rounds: int, delta: float) -> float:
    """The PER-RECORD epsilon if all `rounds` run with every site (no sampling amplification): the
    most a study can debit, so what each site's ledger reserves (and what the >100 refusal judges).

    Each site's ledger composes per-record releases, so the figure is the per-record one the run
    implies (`record_level_epsilon`: adding or removing one record moves its site's clipped update
    by up to 2C, i.e. the runtime's RDP accountant at noise multiplier z/2), not the smaller per-site
    epsilon (`SiteLevelAccountant`, add or remove one site). The debit at the end is the same
    function over the rounds that ran, so the reservation and the debit agree."""
    from federation.runtime.accounting import record_level_epsilon

    return float(record_level_epsilon(noise_multiplier=noise_multiplier, rounds=rounds, delta=delta))


def per_site_epsilon(*, noise_multiplier: float, rounds: int, delta: float) -> float:
    """The accountant's per-site epsilon (add or remove one site) if all `rounds` run with every
    site: stated beside the per-record figure, never reserved or debited."""
    from federation.runtime.accounting import SiteLevelAccountant

    accountant = SiteLevelAccountant(noise_multiplier=noise_multiplier, delta=delta)
    for _ in range(rounds):
        accountant.step(sampled_sites=1, total_sites=1)
    return float(accountant.epsilon())


def epsilon_micro_up(value: float) -> int:
    """An accountant's float epsilon in whole micro-epsilon, rounded up (never under-charge)."""
    if not math.isfinite(value) or value < 0:
        raise ValueError("epsilon must be finite and non-negative")
    return int((Decimal(repr(value)) * MICRO).to_integral_value(rounding=ROUND_CEILING))


# --- Filing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyInput:
    title: str
    purpose: str
    site_ids: list[Any]
    features: list[str]
    target: str
    rounds: int
    min_sites: int
    clipping_norm: float
    noise_multiplier: float
    secure_aggregation: bool = True
    dropout_policy: str = DropoutPolicy.QUORUM
    model_family: str = ModelFamily.LOGISTIC_REGRESSION
    local_epochs: int = 1
    learning_rate: float = 0.1
    delta: str = DEFAULT_DELTA
    extra: dict[str, Any] = field(default_factory=dict)


def _number(value: Any, name: str, *, low: float, high: float, integer: bool = False) -> Any:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ValidationFailed(f"{name} must be a number.", fields={name: "invalid"}) from None
    if isinstance(number, float) and not math.isfinite(number) or not (low <= number <= high):
        raise ValidationFailed(f"{name} must be between {low:g} and {high:g}.", fields={name: "out_of_range"})
    return number


def study_file(*, actor: PortalUser, data: StudyInput) -> Study:
    """A data scientist files a study. Refused, with what to change, when a site's declarations of
    the study's columns differ from the others'."""
    if not has_role(actor, Role.DATA_SCIENTIST):
        audit_denied(
            actor=actor,
            action="study.file",
            target_type="study",
            target_id="-",
            reason="data scientist role required",
        )
        raise PermissionDenied("Only data scientists file federated studies.")
    title, purpose = (data.title or "").strip(), (data.purpose or "").strip()
    if not title or len(title) > 200 or not purpose or len(purpose) > MAX_TEXT:
        raise ValidationFailed(
            "Give the study a title (200 characters at most) and a purpose.", fields={"title": "required"}
        )
    if data.model_family not in ModelFamily.values:
        raise ValidationFailed(
            "The only model family is logistic_regression.", fields={"model_family": "invalid"}
        )
    if data.dropout_policy not in DropoutPolicy.values:
        raise ValidationFailed("dropout_policy is quorum or fail.", fields={"dropout_policy": "invalid"})
    features = list(dict.fromkeys(str(f) for f in data.features or []))
    target = str(data.target or "")
    if not features or not target or target in features:
        raise ValidationFailed(
            "Name at least one feature and a target that is not a feature.", fields={"features": "invalid"}
        )
    sites = [
        first_by_uuid(Site.objects.select_related("dataset"), s) for s in dict.fromkeys(data.site_ids or [])
    ]
    if any(s is None for s in sites):
        raise ValidationFailed("Unknown site.", fields={"site_ids": "unknown"})
    if not 2 <= len(sites) <= MAX_SITES:
        raise ValidationFailed(
            f"A study needs between 2 and {MAX_SITES} sites.", fields={"site_ids": "count"}
        )
    rounds = _number(data.rounds, "rounds", low=1, high=MAX_ROUNDS, integer=True)
    min_sites = _number(data.min_sites, "min_sites", low=2, high=len(sites), integer=True)
    clipping = _number(data.clipping_norm, "clipping_norm", low=1e-6, high=1e6)
    noise = _number(data.noise_multiplier, "noise_multiplier", low=0.0, high=1e3)
    local_epochs = _number(data.local_epochs, "local_epochs", low=1, high=50, integer=True)
    learning_rate = _number(data.learning_rate, "learning_rate", low=1e-6, high=10.0)
    columns = [*features, target]
    schemas: list[tuple[Site, list[dict[str, Any]]]] = []
    for site in sites:
        assert site is not None
        if site.dataset.status != DatasetStatus.READY:
            raise Conflict(f"Site {site.name}'s dataset is not signed off.", code="not_signed_off")
        schemas.append((site, declared_schema(site.dataset, columns)))
    _check_columns(schemas[0][1], target)
    for site, specs in schemas[1:]:
        reason = _schema_refusal((schemas[0][0].name, schemas[0][1]), (site.name, specs))
        if reason:
            audit_denied(
                actor=actor, action="study.file", target_type="site", target_id=site.pk, reason=reason
            )
            raise ValidationFailed(reason, fields={"site_ids": "schema_mismatch"}, code="schema_mismatch")
    epsilon_micro = delta_atto = None
    if noise > 0:
        delta_atto = delta_to_atto(data.delta)
        epsilon = projected_epsilon(
            noise_multiplier=noise, rounds=rounds, delta=float(Decimal(delta_atto) / 10**18)
        )
        if epsilon > 100:
            raise ValidationFailed(
                f"With noise multiplier {noise:g} over {rounds} rounds each site's ledger would be "
                f"debited epsilon {epsilon:.3g} per record: raise the noise multiplier or run fewer "
                "rounds.",
                fields={"noise_multiplier": "too_small"},
            )
        epsilon_micro = epsilon_micro_up(epsilon)
    with transaction.atomic():
        study = Study.objects.create(
            requester=actor,
            requester_name=actor.get_username(),
            team_id=actor.team_id,
            title=title,
            purpose=purpose,
            features=features,
            target=target,
            model_family=data.model_family,
            rounds=rounds,
            min_sites=min_sites,
            local_epochs=local_epochs,
            learning_rate=learning_rate,
            clipping_norm=clipping,
            noise_multiplier=noise,
            secure_aggregation=bool(data.secure_aggregation),
            dropout_policy=data.dropout_policy,
            epsilon_micro=epsilon_micro,
            delta_atto=delta_atto,
            seed=int.from_bytes(os.urandom(4), "big") % (2**31),
        )
        for site, specs in schemas:
            StudySite.objects.create(
                study=study,
                site=site,
                dataset=site.dataset,
                declared=specs,
                schema_hash=schema_hash(encoding_spec(specs, target)),
                training_rows=site.dataset.training_rows or site.dataset.rows,
            )
        audit_record(
            actor=actor,
            action="study.file",
            target_type="study",
            target_id=study.pk,
            details={
                "sites": [str(s.pk) for s, _ in schemas],
                "columns": columns,
                "rounds": rounds,
                "epsilon_micro": epsilon_micro,
                "epsilon_unit": "record",
            },
        )
    return study


# --- Reading one, for a service -------------------------------------------------------------------------


def study_get_for(*, actor: PortalUser, study_id: Any, lock: bool = False) -> Study:
    from federation.selectors import studies_visible_to

    queryset = studies_visible_to(user=actor)
    if lock:
        visible = first_by_uuid(queryset, study_id)
        if visible is None:
            raise NotFound("No such study.")
        return Study.objects.select_for_update().get(pk=visible.pk)
    study = first_by_uuid(queryset, study_id)
    if study is None:
        raise NotFound("No such study.")
    return study


# --- Submission and tiering ----------------------------------------------------------------------------------


def study_facts(study: Study) -> Facts:
    """What the policy sees of a study: its columns' classifications (from the first site; they
    agree by construction), sites, DP, secure aggregation and model family."""
    first = study.sites.order_by("id").first()
    specs = first.declared if first else []

    def named(cls: str) -> tuple[str, ...]:
        return tuple(s["name"] for s in specs if s.get("classification") == cls)

    return Facts(
        audience="internal",
        purpose_category="model_development",
        synthesizer="",
        is_dp=study.client_dp,
        epsilon=float(study.epsilon) if study.epsilon is not None else None,
        delta=float(study.delta) if study.delta is not None else None,
        quasi_identifier_names=named(Classification.QUASI_IDENTIFIER),
        sensitive_names=named(Classification.SENSITIVE),
        direct_identifier_names=named(Classification.DIRECT_IDENTIFIER),
        other_names=named(Classification.OTHER),
        rows=1,
        source_rows=sum(s.training_rows for s in study.sites.all()),
        kind="federated_study",
        model_family=study.model_family,
        sites=study.sites.count(),
        secure_aggregation=study.secure_aggregation,
        client_dp=study.client_dp,
    )


def study_submit(*, actor: PortalUser, study_id: Any) -> Study:
    """The requester submits; the policy tiers it (a prohibited study is rejected with reasons)."""
    with transaction.atomic():
        study = study_get_for(actor=actor, study_id=study_id, lock=True)
        if study.requester_id != actor.pk:
            reason = "Only the study's requester submits it."
        else:
            reason = ""
        if not reason:
            if study.status == StudyStatus.SUBMITTED:
                return study
            if study.status != StudyStatus.DRAFT:
                raise Conflict(f"A {study.get_status_display().lower()} study cannot be submitted.")
            version, policy = policy_ensure_active()
            assessment = evaluate(policy, study_facts(study))
            study.tier_level = assessment.level
            study.tier_reasons = assessment.reasons
            study.tier_controls = assessment.controls
            study.policy_version = version.number
            study.submitted_at = timezone.now()
            study.status = StudyStatus.REJECTED if assessment.level == "prohibited" else StudyStatus.SUBMITTED
            if study.status == StudyStatus.REJECTED:
                study.decided_at = study.submitted_at
            study.save()
            audit_record(
                actor=actor,
                action="study.submit",
                target_type="study",
                target_id=study.pk,
                details={"tier": study.tier_level, "policy_version": version.number, "status": study.status},
            )
            return study
    audit_denied(actor=actor, action="study.submit", target_type="study", target_id=study.pk, reason=reason)
    raise PermissionDenied(reason)


# --- Decisions ------------------------------------------------------------------------------------------------


def decide_capacity(actor: PortalUser, study: Study) -> tuple[str, list[StudySite], str]:
    """(capacity, the sites it decides for, refusal): the pure rule the service and the buttons share."""
    if actor.pk == study.requester_id:
        return "", [], "You cannot decide your own study; a privacy officer and the site stewards must."
    if not getattr(actor, "is_active", False):
        return "", [], "Inactive accounts cannot decide studies."
    if has_role(actor, Role.PRIVACY_OFFICER):
        return StudyDecision.Capacity.OFFICER, [], ""
    if has_role(actor, Role.DATA_STEWARD):
        mine = [s for s in study.sites.select_related("site") if s.site.steward_id == actor.pk]
        if mine:
            return StudyDecision.Capacity.STEWARD, mine, ""
    return "", [], "Only a privacy officer or the steward of a participating site decides this study."


def study_quorum(study: Study) -> list[str]:
    """What the study still needs before it is approved (empty: approved)."""
    decisions = list(study.decisions.filter(decision=StudyDecision.Kind.APPROVE))
    controls = study.tier_controls or {}
    officers = {d.reviewer_id for d in decisions if d.capacity == StudyDecision.Capacity.OFFICER}
    approvers = {d.reviewer_id for d in decisions}
    missing = []
    officers_needed = max(1, int(controls.get("min_privacy_officer_approvals") or 0))
    if len(officers) < officers_needed:
        missing.append(f"{officers_needed - len(officers)} privacy officer approval(s)")
    needed = required_approvals(study.tier_level or "low", controls)
    if len(approvers) < needed:
        missing.append(f"{needed - len(approvers)} more approver(s) for the {study.tier_level} tier")
    for site in study.sites.select_related("site"):
        if site.decision != SiteDecision.APPROVED:
            missing.append(f"the approval of site {site.site.name}'s steward ({site.site.steward_name})")
    return missing


def study_decide(*, actor: PortalUser, study_id: Any, decision: str, comment: str = "") -> Study:
    """A privacy officer or a participating site's steward decides. Any refusal rejects the study;
    the last approval needed approves it, reserves each site's epsilon and queues the run."""
    comment = (comment or "").strip()
    with transaction.atomic():
        study = study_get_for(actor=actor, study_id=study_id, lock=True)
        capacity, sites, reason = decide_capacity(actor, study)
        if not reason:
            if decision not in StudyDecision.Kind.values:
                raise ValidationFailed("decision is approve or reject.", fields={"decision": "invalid"})
            if decision == StudyDecision.Kind.REJECT and not comment:
                raise ValidationFailed("Say why in a comment.", fields={"comment": "required"})
            if len(comment) > MAX_TEXT:
                raise ValidationFailed(f"Keep the comment under {MAX_TEXT} characters.")
            if study.status != StudyStatus.SUBMITTED:
                raise Conflict(
                    f"A {study.get_status_display().lower()} study takes no decisions.", code="not_in_review"
                )
            _record_decision(actor, study, capacity, sites, decision, comment)
            return study
    audit_denied(actor=actor, action="study.decide", target_type="study", target_id=study.pk, reason=reason)
    raise PermissionDenied(reason)


def _record_decision(
    actor: PortalUser, study: Study, capacity: str, sites: list[StudySite], decision: str, comment: str
) -> None:
    targets: list[StudySite | None] = list(sites) if sites else [None]
    for site in targets:
        if study.decisions.filter(reviewer=actor, capacity=capacity, site=site).exists():
            raise Conflict("You already decided this study.", code="already_decided")
        StudyDecision.objects.create(
            study=study,
            site=site,
            reviewer=actor,
            reviewer_name=actor.get_username(),
            reviewer_role=actor.role,
            capacity=capacity,
            decision=decision,
            comment=comment,
        )
        if site is not None:
            site.decision = (
                SiteDecision.APPROVED if decision == StudyDecision.Kind.APPROVE else SiteDecision.REFUSED
            )
            site.save(update_fields=["decision"])
    now = timezone.now()
    if decision == StudyDecision.Kind.REJECT:
        study.status, study.decided_at = StudyStatus.REJECTED, now
    elif not study_quorum(study):
        study.status, study.decided_at = StudyStatus.APPROVED, now
        _reserve_every_site(actor, study)
    study.save()
    audit_record(
        actor=actor,
        action=f"study.{decision}",
        target_type="study",
        target_id=study.pk,
        details={
            "capacity": capacity,
            "sites": [str(s.site_id) for s in sites],
            "status": study.status,
            "tier": study.tier_level,
        },
    )
    if study.status == StudyStatus.APPROVED:
        study_enqueue(study)


def _reserve_every_site(actor: PortalUser, study: Study) -> None:
    """Each site's per-record epsilon from ITS dataset's ledger, all in the approval's transaction:
    one site short of budget refuses the approval (409) and nothing is reserved anywhere."""
    if study.epsilon_micro is None:
        return
    for site in study.sites.select_related("dataset", "site").order_by("id"):
        site.reserve_entry = federated_reserve(
            dataset=site.dataset,
            epsilon_micro=study.epsilon_micro,
            delta_atto=study.delta_atto or 0,
            actor=actor,
            reference=f"study {study.pk} site {site.site_id}",
        )
        site.save(update_fields=["reserve_entry"])


def study_enqueue(study: Study) -> None:
    """Send the run task once the approval commits, carrying only the study id."""
    from celery import current_app

    study_id = str(study.pk)
    transaction.on_commit(lambda: current_app.send_task(RUN_STUDY_TASK, kwargs={"study_id": study_id}))


# --- Cancel -----------------------------------------------------------------------------------------------


def study_cancel(*, actor: PortalUser, study_id: Any) -> Study:
    """The requester or a privacy officer stops a study. Before the run: cancelled, every
    reservation refunded. While running: the task stops after the current round and each site is
    debited what the accountant reports for the rounds that ran."""
    with transaction.atomic():
        study = study_get_for(actor=actor, study_id=study_id, lock=True)
        allowed = study.requester_id == actor.pk or has_role(actor, Role.PRIVACY_OFFICER)
        if allowed:
            if study.status in FINAL_STUDY_STATES:
                if study.status == StudyStatus.CANCELLED:
                    return study
                raise Conflict(f"A {study.get_status_display().lower()} study cannot be cancelled.")
            if study.status == StudyStatus.RUNNING:
                study.cancel_requested = True
                study.save(update_fields=["cancel_requested"])
            else:
                study.cancel_requested = True
                study.status, study.finished_at = StudyStatus.CANCELLED, timezone.now()
                study.save()
                _settle_every_site(study, spent_micro=0)
            audit_record(
                actor=actor,
                action="study.cancel",
                target_type="study",
                target_id=study.pk,
                details={"status": study.status},
            )
            return study
    reason = "Only the requester or a privacy officer cancels a study."
    audit_denied(actor=actor, action="study.cancel", target_type="study", target_id=study.pk, reason=reason)
    raise PermissionDenied(reason)


# --- Settlement -------------------------------------------------------------------------------------------


def _settle_every_site(study: Study, *, spent_micro: int) -> None:
    """Debit each site exactly `spent_micro` of its reservation, once (the site row is locked)."""
    for site in (
        StudySite.objects.select_for_update(of=("self",)).filter(study=study).select_related("reserve_entry")
    ):
        if site.settled_at is not None:
            continue
        entry = site.reserve_entry
        if entry is not None:
            spent_delta = entry.delta_atto if spent_micro > 0 else 0
            site.refund_entry = federated_settle(
                reserve_entry=entry,
                spent_micro=spent_micro,
                spent_delta_atto=spent_delta,
                reference=f"study {study.pk} site {site.site_id}",
            )
            site.spent_micro = spent_micro
        site.settled_at = timezone.now()
        site.save(update_fields=["refund_entry", "spent_micro", "settled_at"])


# --- The run: claim, events, finish --------------------------------------------------------------------


def study_claim(*, study_id: Any) -> Study | None:
    """Claim an approved study with one conditional UPDATE and a lease (None: nothing to run).
    A study whose running worker went silent past its lease is failed, never run twice: its data
    were read, so each site is debited its whole reservation."""
    now = timezone.now()
    lapsed = Study.objects.filter(pk=study_id, status=StudyStatus.RUNNING, lease_expires_at__lt=now)
    if lapsed.exists():
        study_fail_lapsed(study_id=study_id)
        return None
    updated = Study.objects.filter(pk=study_id, status=StudyStatus.APPROVED, cancel_requested=False).update(
        status=StudyStatus.RUNNING,
        worker=worker_identity(),
        lease_expires_at=now + STUDY_LEASE,
        attempts=F("attempts") + 1,
        started_at=now,
        stage="health checks",
        progress=0.02,
    )
    if updated != 1:
        return None
    study = Study.objects.get(pk=study_id)
    audit_record(
        actor=None,
        action="study.claim",
        target_type="study",
        target_id=study.pk,
        details={"worker": study.worker},
    )
    return study


def study_fail_lapsed(*, study_id: Any) -> bool:
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study_id)
        if (
            study.status != StudyStatus.RUNNING
            or not study.lease_expires_at
            or study.lease_expires_at >= timezone.now()
        ):
            return False
        study.status, study.finished_at = StudyStatus.FAILED, timezone.now()
        study.error_code = "lease_lapsed"
        study.error_message = (
            "The worker running this study stopped answering; the sites' data were read, "
            "so each site's reservation is spent in full. File a new study to run again."
        )
        study.epsilon_spent_micro = study.epsilon_micro
        study.save()
        _settle_every_site(study, spent_micro=study.epsilon_micro or 0)
        audit_record(
            actor=None,
            action="study.fail",
            target_type="study",
            target_id=study.pk,
            details={"error_code": study.error_code},
        )
    return True


def studies_reconcile(*, limit: int = 100) -> list[str]:
    """Fail every running study whose lease lapsed (its worker died or went silent) and settle each
    site's ledger as `study_fail_lapsed` does: the data were read, so the whole reservation is
    spent. Returns the ids failed. Run periodically (federation.tasks.reconcile_studies), so a dead
    worker's study does not wait for a redelivery that may never come."""
    lapsed = Study.objects.filter(status=StudyStatus.RUNNING, lease_expires_at__lt=timezone.now())
    failed = []
    for study_id in lapsed.order_by("lease_expires_at").values_list("pk", flat=True)[:limit]:
        if study_fail_lapsed(study_id=study_id):
            failed.append(str(study_id))
    return failed


def study_should_cancel(*, study_id: Any) -> bool:
    return bool(Study.objects.filter(pk=study_id).values_list("cancel_requested", flat=True).first())


def _float_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _clean_summary(value: Any) -> dict[str, float]:
    """A norm summary as numbers only (min, median, max...): nothing else reaches a row or the log."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k)[:32]: f for k, v in value.items() if (f := _float_or_none(v)) is not None}


def _json_safe(value: Any) -> Any:
    """Aggregate metrics as plain JSON (numbers, strings, lists, maps): non-finite numbers become None."""
    return json.loads(
        json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)),
        parse_constant=lambda _name: None,
    )


def _names(value: Any) -> list[str]:
    return [str(v)[:80] for v in value] if isinstance(value, list | tuple) else []


def study_record_event(*, study_id: Any, event: Mapping[str, Any]) -> None:
    """One event from the runtime: a health check, a round or a site's evaluation. A round writes
    its StudyRound and its audit event in one transaction; every event renews the lease."""
    kind = event.get("type")
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study_id)
        lease: dict[str, Any] = {"lease_expires_at": timezone.now() + STUDY_LEASE}
        if kind == "health":
            _record_health(study, event)
        elif kind == "round":
            number = int(event.get("round") or 0)
            per_site = _float_or_none(event.get("epsilon"))  # the runtime's accountant: per site
            per_site_micro = epsilon_micro_up(per_site) if per_site is not None else None
            per_record_micro = None
            if study.client_dp and number > 0:
                # Per record, the ledger's unit: never below what the runtime reported.
                per_record_micro = max(_per_record_micro(study, number), per_site_micro or 0)
            row, _ = StudyRound.objects.update_or_create(
                study=study,
                number=number,
                defaults={
                    "sites": _names(event.get("sites")),
                    "excluded": _names(event.get("excluded")),
                    "norm_summary": _clean_summary(event.get("norm_summary") or event.get("update_norms")),
                    "clipped_fraction": _float_or_none(event.get("clipped_fraction")),
                    "epsilon_micro": per_record_micro,
                    "epsilon_per_site_micro": per_site_micro,
                    "model_sha256": str(event.get("model_sha256") or "")[:64],
                },
            )
            lease.update(
                rounds_completed=max(study.rounds_completed, number),
                progress=min(0.95, 0.05 + 0.9 * number / study.rounds),
                stage=f"round {number}",
            )
            audit_record(
                actor=None,
                action="study.round",
                target_type="study",
                target_id=study.pk,
                details={
                    "round": number,
                    "sites": row.sites,
                    "excluded": row.excluded,
                    "norm_summary": row.norm_summary,
                    "clipped_fraction": row.clipped_fraction,
                    # Epsilon so far in both units: per record (the ledger's) and per site (the
                    # accountant's, add or remove one site's whole contribution).
                    "epsilon_per_record_micro": row.epsilon_micro,
                    "epsilon_per_site_micro": row.epsilon_per_site_micro,
                    "model_sha256": row.model_sha256,
                },
            )
        elif kind == "site_eval":
            site = _study_site(study, event.get("site"))
            if site is not None and isinstance(event.get("metrics"), Mapping):
                site.metrics = _json_safe(event["metrics"])
                site.save(update_fields=["metrics"])
        Study.objects.filter(pk=study.pk).update(**lease)


def _per_record_micro(study: Study, rounds: int) -> int:
    """The per-record epsilon `rounds` rounds of this study imply (record_level_epsilon at the
    study's noise multiplier and delta), in whole micro-epsilon rounded up. A figure that is not
    finite (no noise) is returned above any reservation, so it is never debited as a number."""
    from federation.runtime.accounting import record_level_epsilon

    epsilon = record_level_epsilon(
        noise_multiplier=study.noise_multiplier, rounds=rounds, delta=_delta(study)
    )
    return epsilon_micro_up(epsilon) if math.isfinite(epsilon) else (study.epsilon_micro or 0) + 1


def _delta(study: Study) -> float:
    return float(study.delta) if study.delta is not None else float(DEFAULT_DELTA)


def _study_site(study: Study, name: Any) -> StudySite | None:
    return study.sites.filter(site__name=str(name)).first()


def _record_health(study: Study, event: Mapping[str, Any]) -> None:
    site = _study_site(study, event.get("site"))
    if site is None:
        return
    # The node's hash is checked against the one pinned at filing, not only the runtime's verdict.
    schema_ok = bool(event.get("schema_ok")) and event.get("schema_hash") == site.schema_hash
    health = {
        "connected": bool(event.get("connected")),
        "schema_ok": schema_ok,
        "rows_ok": bool(event.get("rows_ok")),
        "ok": bool(event.get("connected")) and schema_ok and bool(event.get("rows_ok")),
        "reason": "" if schema_ok else "schema hash differs from the declaration pinned at filing",
    }
    site.health = health
    site.save(update_fields=["health"])
    audit_record(
        actor=None,
        action="study.health",
        target_type="study",
        target_id=study.pk,
        details={"site": site.site.name, **{k: v for k, v in health.items() if k != "reason"}},
    )


def _model_bytes(parameters: Any) -> bytes:
    """The final parameters as an .npz (numpy arrays only; loaded with allow_pickle=False)."""
    import numpy as np

    arrays = parameters if isinstance(parameters, list | tuple) else [parameters]
    buffer = io.BytesIO()
    np.savez(buffer, *[np.asarray(a, dtype=np.float64) for a in arrays])
    return buffer.getvalue()


def study_finish(*, study_id: Any, result: Any) -> Study:
    """End a run from its StudyResult: debit each site the per-record epsilon of the rounds that ran
    (the larger of `record_level_epsilon` over `rounds_completed` and the runtime's figure, rounded
    up; the rest refunded, never more than reserved), state the accountant's per-site figure beside
    it, gate each site's metrics, store the model encrypted, write the card."""
    from validation.model_gate import model_gate

    status_map = {"completed": StudyStatus.COMPLETED, "cancelled": StudyStatus.CANCELLED}
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study_id)
        if study.status in FINAL_STUDY_STATES:
            return study
        status = status_map.get(str(getattr(result, "status", "")), StudyStatus.FAILED)
        reserved = study.epsilon_micro or 0
        spent = 0
        per_site_micro = None
        if study.epsilon_micro is not None:
            accountant = _float_or_none(getattr(result, "epsilon", None))  # per site
            rounds_done = int(getattr(result, "rounds_completed", 0) or 0)
            if accountant is None:
                # No figure from the accountant: if any round ran, the whole reservation is spent.
                spent = reserved if rounds_done else 0
            else:
                per_site_micro = epsilon_micro_up(accountant)
                # Per record (the ledger's unit), never below what the runtime reported.
                implied = _per_record_micro(study, rounds_done) if rounds_done > 0 else 0
                spent = max(implied, per_site_micro)
            if spent > reserved:
                status = StudyStatus.FAILED
                study.error_code = "accountant_over_reservation"
                study.error_message = (
                    "The accountant reported more epsilon than each site reserved; "
                    "each site is debited its reservation and no more."
                )
                spent = reserved
        study.epsilon_spent_micro = spent if study.epsilon_micro is not None else None
        study.epsilon_per_site_micro = per_site_micro
        study.rounds_completed = int(getattr(result, "rounds_completed", 0) or 0)
        study.finished_at = timezone.now()
        study.progress = 1.0
        study.stage = status
        error = getattr(result, "error", None)
        if status == StudyStatus.FAILED and not study.error_code:
            study.error_code = "run_failed"
            study.error_message = (str(error) if error else "The federated run failed.")[:500]
        _settle_every_site(study, spent_micro=spent)
        thresholds = (study.tier_controls or {}).get("gate") or {}
        site_metrics = getattr(result, "site_metrics", None) or {}
        claim = _record_epsilon_claim(study) if study.client_dp else None
        for site in study.sites.select_related("site"):
            metrics = site_metrics.get(site.site.name) or site.metrics
            if metrics and status != StudyStatus.FAILED:
                site.metrics, site.gate_passed, site.gate_checks = _site_gate(
                    model_gate,
                    metrics,
                    epsilon=claim["per_record"] if claim else None,
                    thresholds=thresholds,
                    claim=claim,
                )
                site.save(update_fields=["metrics", "gate_passed", "gate_checks"])
        parameters = getattr(result, "parameters", None)
        if status == StudyStatus.COMPLETED and parameters is not None:
            stored = store_encrypted(_model_bytes(parameters), folder="models", suffix=".npz")
            study.model_path, study.model_sha256 = stored.relative_path, stored.sha256
            runtime_hash = str(getattr(result, "model_sha256", "") or "")
            study.model_card = model_card(study, runtime_sha256=runtime_hash)
        study.status = status
        study.save()
        if _releasable(study):
            study.release = study_publish_release(study)
            study.save(update_fields=["release"])
        audit_record(
            actor=None,
            action=f"study.{status}",
            target_type="study",
            target_id=study.pk,
            details={
                "rounds_completed": study.rounds_completed,
                # Each site's ledger: reserved and debited per record; the per-site figure beside it.
                "epsilon_spent_micro": spent,
                "reserved_micro": reserved,
                "epsilon_unit": "record",
                "epsilon_per_site_micro": per_site_micro,
                "model_sha256": study.model_sha256,
                "error_code": study.error_code,
                "release": str(study.release_id) if study.release_id else None,
            },
        )
    return study


# --- Publication in the catalog ------------------------------------------------------------------------


def _releasable(study: Study) -> bool:
    """A completed run's model goes to the catalog only when every site's gate passed on its own
    locked holdout and the model is differentially private (client-level DP: the catalog releases
    no model without a guarantee). Otherwise the study page keeps the model and its card, and
    nothing is published."""
    if study.status != StudyStatus.COMPLETED or not study.model_path or study.release_id is not None:
        return False
    if not study.client_dp or study.epsilon_spent_micro is None:
        return False
    sites = list(study.sites.all())
    return bool(sites) and all(s.gate_passed is True for s in sites)


def study_publish_release(study: Study) -> Any:
    """Publish the study's model as a catalog model release (origin "study") in the caller's
    transaction: the card fixed at publication, the site datasets it was trained on, and the
    per-record epsilon each site's ledger was debited (the ledger's unit)."""
    from catalog.models import ArtifactFormat
    from catalog.services import ExternalModel, release_publish_external

    sites = list(study.sites.select_related("site", "dataset").order_by("site__name"))
    return release_publish_external(
        model=ExternalModel(
            origin_ref=study.pk,
            title=study.title,
            team=study.team,
            # Studies are tiered as internal (study_facts): the requester's team sees it; others ask.
            audience="internal",
            requester=study.requester,
            controls=dict(study.tier_controls or {}),
            storage_path=study.model_path,
            sha256=study.model_sha256,
            artifact_format=ArtifactFormat.NPZ,
            synthesizer=f"federated_{study.model_family}",
            columns=study.columns,
            epsilon_micro=int(study.epsilon_spent_micro or 0),
            delta_atto=study.delta_atto,
            privacy=_release_privacy(study, sites),
            gate={
                "passed": True,
                "per_site": True,
                "checks": [],
                "sites": {s.site.name: {"passed": s.gate_passed, "checks": s.gate_checks} for s in sites},
            },
            metrics={},
            card=study.model_card,
            sources=[_source(study, s) for s in sites],
            receipt=_release_receipt(study),
        )
    )


def _source(study: Study, site: StudySite) -> dict[str, Any]:
    return {
        "site": site.site.name,
        "dataset": str(site.dataset_id),
        "dataset_name": site.dataset.name,
        "dataset_version": site.dataset.version,
        "steward": site.site.steward_name,
        "schema_hash": site.schema_hash,
        "training_rows": site.training_rows,
        "epsilon_debited_micro": site.spent_micro,
    }


def _release_receipt(study: Study) -> dict[str, Any]:
    """What it takes to reproduce the run (the catalog's receipt shape: seed, config hash, model)."""
    config = {
        "model_family": study.model_family,
        "features": study.features,
        "target": study.target,
        "rounds": study.rounds,
        "min_sites": study.min_sites,
        "local_epochs": study.local_epochs,
        "learning_rate": study.learning_rate,
        "clipping_norm": study.clipping_norm,
        "noise_multiplier": study.noise_multiplier,
        "secure_aggregation": study.secure_aggregation,
        "dropout_policy": study.dropout_policy,
    }
    return {
        "seed": study.seed,
        "study": str(study.pk),
        "synthesizer_config": config,
        "config_sha256": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        "model": {
            "family": study.model_family,
            "target": study.target,
            "features": list(study.features),
            "artifact_format": "npz",
            "artifact_sha256": study.model_sha256,
        },
    }


def _release_privacy(study: Study, sites: list[StudySite]) -> dict[str, Any]:
    """The catalog's privacy block (catalog.privacy's keys) of a client-DP model, per record (the
    unit each site's ledger is debited in), with the per-site figure and the card's statement."""
    from catalog.privacy import source_spent_of

    card_privacy = (study.model_card or {}).get("privacy") or {}
    epsilon = float(Decimal(study.epsilon_spent_micro or 0) / MICRO)
    delta = float(study.delta or 0)
    spent = [source_spent_of(s.dataset) for s in sites]
    return {
        "dp": True,
        "unit": "record",
        "neighbouring": (
            "add or remove one record at any site (it changes its site's clipped update by at most "
            "twice the clipping norm); per site (one site's whole contribution) the guarantee is "
            f"epsilon {card_privacy.get('epsilon_per_site')}"
        ),
        "epsilon": epsilon,
        "delta": delta,
        "flavour": "approximate (epsilon, delta)-DP",
        "mechanisms": [
            {
                "step": f"federated averaging, {study.rounds_completed} round(s)",
                "mechanism": "Gaussian noise on the sum of the sites' clipped updates (client-level DP)",
                "library": "opacus (RDP accountant)",
                "version": None,
                "epsilon": epsilon,
                "delta": delta,
                "sensitivity": study.clipping_norm,
            }
        ],
        "covers": ["The model's parameters (the .npz file), and anything computed from them alone."],
        "not_covered": [
            HOLDOUT_OUTSIDE_DP,
            "Each site's training row count and schema: declared and counted at the sites.",
            "Other releases from the same sites' datasets: each site's ledger composes them (source_spent).",
        ],
        # The most any site's population has spent so far (each site's own figure: its dataset).
        "source_spent": {
            "epsilon": max((s["epsilon"] for s in spent), default=0),
            "delta": max((s["delta"] for s in spent), default=0),
        },
        "trust_model": (
            "central aggregation: the server adds the noise honestly; "
            + (
                "secure aggregation hides each site's update from it"
                if study.secure_aggregation
                else "the server sees each site's clipped update"
            )
        ),
        "epsilon_per_site": card_privacy.get("epsilon_per_site"),
        "statement": card_privacy.get("statement") or "",
    }


# What the numbers of the per-site `model_empirical_epsilon` check are (shown with the check).
EPSILON_CHECK_UNIT = (
    "Both numbers are per record. The value is the membership attack's 95%-confidence lower bound "
    "on any record-level epsilon this model can have. The threshold is the per-record epsilon the "
    "site-level guarantee implies: adding or removing one record changes only its site's clipped "
    "update, by at most twice the clipping norm, so it is the accountant's epsilon at half the noise "
    "multiplier (the guarantee for replacing one site's contribution, which implies a per-record one "
    "no weaker); it is also what each site's ledger is debited. The accountant's per-site epsilon "
    "(add or remove one whole site), smaller and not debited, is shown beside it."
)


def _record_epsilon_claim(study: Study) -> dict[str, Any]:
    """The epsilons of a client-DP study in both units. `per_record` is the per-record epsilon the
    rounds that ran imply (federation.runtime.accounting.record_level_epsilon): what the model gate
    compares a per-record attack with. `debited` is what each site's ledger was debited, per record
    (that figure rounded up to a micro-epsilon, or the whole reservation when the run gave no
    accountant figure or overran it). `per_site` is the accountant's add/remove-one-site epsilon
    (the runtime's figure, else the same accountant over the rounds that ran): stated, never debited."""
    from federation.runtime.accounting import record_level_epsilon

    delta = _delta(study)
    per_record = record_level_epsilon(
        noise_multiplier=study.noise_multiplier, rounds=study.rounds_completed, delta=delta
    )
    if study.epsilon_per_site_micro is not None:
        per_site = float(Decimal(study.epsilon_per_site_micro) / MICRO)
    else:
        per_site = per_site_epsilon(
            noise_multiplier=study.noise_multiplier, rounds=study.rounds_completed, delta=delta
        )
    return {
        "per_site": per_site if math.isfinite(per_site) else 1e9,
        "per_record": per_record if math.isfinite(per_record) else 1e9,
        "debited": float(Decimal(study.epsilon_spent_micro or 0) / MICRO),
        "delta": delta,
        "rounds": study.rounds_completed,
    }


def _site_gate(
    gate: Callable[..., Any],
    metrics: Mapping[str, Any],
    *,
    epsilon: float | None,
    thresholds: Mapping[str, Any],
    claim: Mapping[str, Any] | None = None,
) -> tuple[Any, bool, list[dict[str, Any]]]:
    """(metrics, passed, checks) of the model gate on one site's metrics; metrics it cannot read
    fail the site's gate closed (the type of the error only: never a value). With client-level DP
    the epsilon check carries both units (`claim`: per_site, per_record)."""
    try:
        report = gate(dict(metrics), epsilon=epsilon, thresholds=thresholds)
    except Exception as exc:  # noqa: BLE001 - an unreadable report blocks, it does not crash the finish
        reason = f"The site's metrics could not be judged ({type(exc).__name__}); the model is blocked."
        return _json_safe(metrics), False, [{"name": "model_gate", "passed": False, "reason": reason}]
    checks = [_check_dict(c) for c in report.checks]
    for check in checks:
        if check.get("name") == "model_empirical_epsilon" and claim:
            check["unit"] = "per record (value and threshold)"
            check["epsilon_per_site"] = claim.get("per_site")
            check["note"] = EPSILON_CHECK_UNIT
    return _json_safe(report.metrics or metrics), bool(report.passed), checks


def _check_dict(check: Any) -> dict[str, Any]:
    """A check as JSON scalars, with its interval (two numbers or nulls) kept."""
    items = check.items() if isinstance(check, Mapping) else (getattr(check, "__dict__", {}) or {}).items()
    out: dict[str, Any] = {}
    for key, value in items:
        if isinstance(value, str | int | float | bool) or value is None:
            out[str(key)] = value
        elif key == "ci" and isinstance(value, list | tuple) and len(value) == 2:
            out["ci"] = [_float_or_none(v) for v in value]
    return out


HOLDOUT_OUTSIDE_DP = (
    "Holdout evaluation is outside the DP guarantee: the published metrics are aggregates of the "
    "sites' rows that the DP noise does not cover."
)
HOLDOUT_STATEMENT = (
    "Each site's metrics were computed at the site, on its own locked holdout (non-members) and its "
    "training rows (members), with a non-private logistic regression trained there in the same "
    "step as the baseline. " + HOLDOUT_OUTSIDE_DP
)


def _privacy_statement(study: Study, claim: Mapping[str, Any] | None) -> str:
    if not study.client_dp or claim is None:
        return (
            "No client-level DP: nothing bounds what the model keeps of a site or of a record; "
            "only the per-site membership attack speaks to privacy."
        )
    return (
        f"Client-level DP over {claim['rounds']} round(s): (epsilon {claim['per_record']:.6g}, "
        f"delta {claim['delta']:.3g}) per record, i.e. for adding or removing one record at any site "
        "(it changes its site's clipped update by at most twice the clipping norm); each site's "
        f"ledger, whose other releases are per record too, is debited epsilon {claim['debited']:.6g} "
        "per record. Per site, i.e. for adding or removing one site's whole contribution, the "
        f"accountant's epsilon is {claim['per_site']:.6g} at the same delta (smaller, stated and not "
        "debited). Each site's model_empirical_epsilon check compares the membership attack's "
        "per-record lower bound with the per-record figure. The guarantee assumes the server adds "
        "the noise honestly. " + HOLDOUT_OUTSIDE_DP
    )


def model_card(study: Study, *, runtime_sha256: str = "") -> dict[str, Any]:
    """The model card: what was trained, where (the sites), how (the rounds and their log), under
    which guarantee (in which unit), and how it scored at each site (the per-site gate)."""
    sites = list(study.sites.select_related("site"))
    claim = _record_epsilon_claim(study) if study.client_dp else None
    return {
        "study": str(study.pk),
        "title": study.title,
        "model_family": study.model_family,
        "features": study.features,
        "target": study.target,
        "sites": [
            {
                "name": s.site.name,
                "dataset": str(s.dataset_id),
                "schema_hash": s.schema_hash,
                "steward": s.site.steward_name,
                "gate_passed": s.gate_passed,
                "gate_checks": s.gate_checks,
                "metrics": s.metrics,
            }
            for s in sites
        ],
        "evaluation": HOLDOUT_STATEMENT,
        "rounds_planned": study.rounds,
        "rounds_completed": study.rounds_completed,
        "min_sites": study.min_sites,
        "local_epochs": study.local_epochs,
        "secure_aggregation": study.secure_aggregation,
        "privacy": {
            "unit": "site (client-level DP): adding or removing one site's whole contribution",
            "ledger_unit": "record: each site's ledger reserves and is debited the per-record epsilon",
            "statement": _privacy_statement(study, claim),
            "epsilon_per_record_implied": claim["per_record"] if claim else None,
            "epsilon_per_site": claim["per_site"] if claim else None,
            "client_dp": study.client_dp,
            "clipping_norm": study.clipping_norm,
            "noise_multiplier": study.noise_multiplier,
            # What each site's ledger reserved and was debited: per record.
            "epsilon_reserved_per_record": str(study.epsilon) if study.epsilon is not None else None,
            "epsilon_debited_per_record": str(study.epsilon_spent)
            if study.epsilon_spent is not None
            else None,
            "delta": str(study.delta) if study.delta is not None else None,
            "accountant": "RDP (opacus)",
        },
        "round_log": [
            {
                "round": r.number,
                "sites": r.sites,
                "excluded": r.excluded,
                "clipped_fraction": r.clipped_fraction,
                "epsilon_per_record": str(r.epsilon) if r.epsilon is not None else None,
                "epsilon_per_site": str(r.epsilon_per_site) if r.epsilon_per_site is not None else None,
                "model_sha256": r.model_sha256,
            }
            for r in study.round_log.all()
        ],
        "model_sha256": study.model_sha256,
        "runtime_model_sha256": runtime_sha256,
        "tier": study.tier_level,
        "policy_version": study.policy_version,
    }


# --- Running (worker side) ---------------------------------------------------------------------------------


Runner = Callable[..., Any]


def study_run(*, study_id: Any, runner: Runner | None = None, timeout_s: float = 3600.0) -> str:
    """Claim the study, run it on Flower (federation.runtime.run_study), record every event and
    finish. Safe to deliver twice: the second delivery finds nothing to claim."""
    study = study_claim(study_id=study_id)
    if study is None:
        return "skipped"
    if runner is None:
        from federation.runtime import run_study

        runner = run_study
    try:
        config = study_run_config(study)
        result = runner(
            config,
            on_event=lambda event: study_record_event(study_id=study.pk, event=event),
            should_cancel=lambda: study_should_cancel(study_id=study.pk),
            timeout_s=timeout_s,
        )
    except Exception as exc:  # noqa: BLE001 - any failure ends the study, never leaves it running
        logger.error("study %s failed with %s", study.pk, type(exc).__name__)
        result = _Failed(
            error=f"The run failed in the worker ({type(exc).__name__}); see the worker log.",
            rounds_completed=Study.objects.get(pk=study.pk).rounds_completed,
        )
    return study_finish(study_id=study.pk, result=result).status


@dataclass
class _Failed:
    """A run that raised: no accountant figure, so any round that ran spends the reservation."""

    error: str
    rounds_completed: int
    status: str = "failed"
    epsilon: float | None = None
    parameters: Any = None
    model_sha256: str = ""
    site_metrics: dict[str, Any] = field(default_factory=dict)


def study_run_config(study: Study) -> Any:
    """The runtime's configuration: where each site's encrypted splits are, and the study's settings."""
    from django.conf import settings

    from federation.runtime import SiteConfig, StudyRunConfig
    from generation.storage import absolute_path

    run_dir = Path(settings.VAR_DIR) / "federation" / str(study.pk)
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The site nodes decrypt their own splits with the data key (federation.runtime.sitedata).
    storage_env = {"SYNTHGATE_DATA_KEY": str(settings.SYNTHGATE_DATA_KEY)}
    sites = [
        SiteConfig(
            name=s.site.name,
            train_path=str(absolute_path(s.dataset.storage_path)),
            holdout_path=str(absolute_path(s.dataset.holdout_path)) if s.dataset.holdout_path else "",
            storage_env=storage_env,
        )
        for s in study.sites.select_related("site", "dataset").order_by("site__name")
    ]
    first = study.sites.order_by("id").first()
    encoding = encoding_spec(first.declared if first else [], study.target)
    return StudyRunConfig(
        run_dir=run_dir,
        sites=sites,
        encoding=encoding,
        rounds=study.rounds,
        min_sites=study.min_sites,
        local_epochs=study.local_epochs,
        learning_rate=study.learning_rate,
        clipping_norm=study.clipping_norm,
        noise_multiplier=study.noise_multiplier,
        delta=float(study.delta) if study.delta is not None else 1e-6,
        secure_aggregation=study.secure_aggregation,
        dropout_policy=study.dropout_policy,
        seed=study.seed,
        test_poison={},
    )


__all__ = [
    "RUN_STUDY_TASK",
    "StudyInput",
    "declared_schema",
    "decide_capacity",
    "model_card",
    "per_site_epsilon",
    "projected_epsilon",
    "schema_hash",
    "site_register",
    "study_cancel",
    "study_claim",
    "study_decide",
    "study_enqueue",
    "study_file",
    "study_finish",
    "study_get_for",
    "study_record_event",
    "study_run",
    "study_submit",
    "studies_reconcile",
]
