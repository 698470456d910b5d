"""Generation requests: filing and editing, tiering on submission, withdrawal, job hand-off."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from approvals import rules
from approvals.bakeoff import (
    BAKEOFF,
    clean_candidates,
    policy_max_candidates,
    tier_max_candidates,
    total_budget,
)
from approvals.choices import Audience, Fidelity, PurposeCategory, RequestKind, RequestStatus, TierLevel
from approvals.dp import (
    check_budget_fits,
    check_domain_declared,
    validate_delta,
    validate_model_delta,
)
from approvals.models import GenerationRequest, TierAssessment
from approvals.policies import Assessment, Facts, evaluate
from approvals.selectors import requests_visible_to
from approvals.services.notifications import notify_reviewers_on_commit
from approvals.services.outputs import outputs_purge_unreleased
from approvals.services.policy import policy_ensure_active, policy_for_preview
from approvals.services.tiering import MAX_ROWS, check_training_size, model_refusals, request_facts
from approvals.workflow import TRANSITIONS, check_transition
from audit.services import audit_denied, audit_record
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from core.ids import first_by_uuid
from core.roles import PortalUser, Role, has_role
from generation.choices import Classification, ColumnKind, JobState
from generation.modeling import MODEL_FAMILIES, is_model_family
from generation.models import SourceDataset, SynthesisJob
from generation.selectors import datasets_requestable_by
from generation.services import epsilon_to_micro, job_cancel
from generation.synthesizers import (
    EXTERNAL_UPLOAD,
    REGISTRY,
    is_dp_synthesizer,
    is_known_synthesizer,
    validate_options,
)

_SYNTHESIZABLE_KINDS = {ColumnKind.NUMERIC, ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN, ColumnKind.DATETIME}


@dataclass(frozen=True)
class RequestInput:
    dataset_id: Any
    title: str
    purpose: str
    intended_use: str
    audience: str
    columns: list[str]
    synthesizer: str
    rows: Any
    epsilon: Any = None
    # Optional for callers that predate them (API clients, fixtures): neutral defaults.
    fidelity: str = Fidelity.MEDIUM
    purpose_category: str = PurposeCategory.RESEARCH
    # (epsilon, delta) synthesizers only; omitted means the default (approvals.dp.DEFAULT_DELTA).
    delta: Any = None
    # A bake-off: [{synthesizer, epsilon, options}] or "auto" (approvals.bakeoff); then
    # `synthesizer` and `epsilon` are left empty.
    candidates: Any = None
    # A single synthesizer's options (generation.synthesizers: each synthesizer's own caps).
    options: Any = None
    # RequestKind. None: a synthetic table when filed, the kind as filed when edited (it never
    # changes). A dp_model request names its model family as `synthesizer`, its features as
    # `columns`, the dataset's declared outcome as `target`, and an epsilon; it takes no rows.
    kind: str | None = None
    target: str = ""

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> RequestInput:
        """The input from a form's or an API serializer's cleaned fields (both name them alike;
        `dataset` may be the dataset itself or its id). Optional fields left out keep defaults."""
        dataset = data["dataset"]
        optional = (
            "epsilon",
            "delta",
            "fidelity",
            "purpose_category",
            "candidates",
            "options",
            "kind",
            "target",
        )
        return cls(
            dataset_id=getattr(dataset, "pk", dataset),
            title=data["title"],
            purpose=data["purpose"],
            intended_use=data["intended_use"],
            audience=data["audience"],
            columns=data["columns"],
            synthesizer=data["synthesizer"],
            rows=data.get("rows"),
            **{name: data[name] for name in optional if name in data and data[name] is not None},
        )


# --- Validation (everything the requester controls) ---------------------------------------------


def _validate_columns(dataset: SourceDataset, names: list[str]) -> None:
    if not names:
        raise ValidationFailed(
            "Choose at least one column (only those your purpose needs).", fields={"columns": "required"}
        )
    if len(set(names)) != len(names):
        raise ValidationFailed("Each column may be requested once.", fields={"columns": "duplicate"})
    known = {c.name: c for c in dataset.columns.all()}
    for name in names:
        column = known.get(name)
        if column is None:
            raise ValidationFailed(
                f"Column `{name}` is not in dataset {dataset.name}.", fields={"columns": "unknown"}
            )
        if column.classification == Classification.DIRECT_IDENTIFIER:
            raise ValidationFailed(
                f"Column `{name}` is classified as a direct identifier and cannot be synthesized; "
                "remove it from the request.",
                code="direct_identifier",
                fields={"columns": name},
            )
        if column.kind not in _SYNTHESIZABLE_KINDS:
            raise ValidationFailed(
                f"Column `{name}` is {column.get_kind_display().lower()}; synthesizing it would copy "
                "source text. Remove it from the request.",
                fields={"columns": name},
            )


def _validate_rows(rows: Any) -> int:
    if isinstance(rows, bool):
        raise ValidationFailed("rows must be a whole number.", fields={"rows": "invalid"})
    try:
        value = int(str(rows).strip())
    except (TypeError, ValueError):
        raise ValidationFailed("rows must be a whole number.", fields={"rows": "invalid"}) from None
    if not 1 <= value <= MAX_ROWS:
        raise ValidationFailed(f"rows must be between 1 and {MAX_ROWS:,}.", fields={"rows": "out_of_range"})
    return value


def _validate_epsilon(synthesizer: str, epsilon: Any) -> int | None:
    cls = REGISTRY.get(synthesizer)
    if cls is not None and cls.is_dp:
        return epsilon_to_micro(epsilon)
    if epsilon not in (None, ""):
        raise ValidationFailed(
            f"{synthesizer} is not differentially private, so it spends no epsilon; leave epsilon "
            "empty, or choose a DP synthesizer (named dp_*).",
            fields={"epsilon": "not_applicable"},
        )
    return None


def _validate_choice(value: str, field: str, choices: list[str]) -> str:
    if value not in choices:
        raise ValidationFailed(
            f"{field.replace('_', ' ')} must be one of {', '.join(choices)}.", fields={field: "invalid"}
        )
    return value


def _cleaned(actor: PortalUser, data: RequestInput, *, kind: str) -> dict[str, Any]:
    """The model fields for `data` filed as `kind`, or ValidationFailed naming the field to fix."""
    dataset = first_by_uuid(datasets_requestable_by(user=actor), data.dataset_id)
    if dataset is None:
        raise ValidationFailed("Choose a dataset you may request from.", fields={"dataset": "unknown"})
    _validate_choice(data.audience, "audience", Audience.values)
    _validate_choice(data.fidelity, "fidelity", Fidelity.values)
    _validate_choice(data.purpose_category, "purpose_category", PurposeCategory.values)
    if kind == RequestKind.DP_MODEL:
        return {**_cleaned_model(dataset, data), "kind": kind}
    if data.target not in (None, ""):
        raise ValidationFailed(
            "Only a dp_model request names a target; leave target empty for a synthetic table.",
            fields={"target": "not_applicable"},
        )
    if data.candidates not in (None, "", []):
        return _cleaned_bakeoff(dataset, data)
    if not is_known_synthesizer(data.synthesizer):
        raise ValidationFailed(
            f"Unknown synthesizer; choose one of {', '.join(sorted([*REGISTRY, EXTERNAL_UPLOAD]))}.",
            fields={"synthesizer": "invalid"},
        )
    fields = _cleaned_common(dataset, data, rows=_validate_rows(data.rows))
    epsilon_micro = _validate_epsilon(data.synthesizer, data.epsilon)
    delta_atto = validate_delta(data.synthesizer, data.delta)
    # After the 400s: a well-formed DP request on undeclared domains is refused as a conflict
    # with the dataset's state (409), naming the columns and what to do.
    check_domain_declared(dataset, fields["columns"], data.synthesizer)
    options = _validate_options(data.synthesizer, data.options)
    return {
        **fields,
        "synthesizer": data.synthesizer,
        "epsilon_micro": epsilon_micro,
        "delta_atto": delta_atto,
        "options": options,
    }


def _validate_options(synthesizer: str, options: Any) -> dict[str, Any]:
    """The synthesizer's options as filed, parsed by the synthesizer itself (unknown keys and values
    outside its caps are refused now, not when the job runs)."""
    if options in (None, "", {}):
        return {}
    if not isinstance(options, dict) or len(options) > 20:
        raise ValidationFailed(
            "Options must be an object of option names and values.", fields={"options": "invalid"}
        )
    if synthesizer == EXTERNAL_UPLOAD:
        raise ValidationFailed(
            "A bring-your-own request takes no synthesizer options.", fields={"options": "invalid"}
        )
    if "time_budget_s" in options:
        raise ValidationFailed(
            "The training time budget is set by the tier's policy, not by the request.",
            fields={"options": "invalid"},
        )
    try:
        return validate_options(synthesizer, options)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(str(exc), fields={"options": "invalid"}) from None


def _cleaned_common(dataset: SourceDataset, data: RequestInput, *, rows: int) -> dict[str, Any]:
    for field_name in ("title", "purpose", "intended_use"):
        if not str(getattr(data, field_name) or "").strip():
            raise ValidationFailed(
                f"{field_name.replace('_', ' ').capitalize()} is required.", fields={field_name: "required"}
            )
    columns = [str(c) for c in data.columns]
    _validate_columns(dataset, columns)
    return {
        "dataset": dataset,
        "title": data.title.strip()[:200],
        "purpose": data.purpose.strip(),
        "purpose_category": data.purpose_category,
        "intended_use": data.intended_use.strip(),
        "audience": data.audience,
        "fidelity": data.fidelity,
        "columns": columns,
        "rows": rows,
    }


def _cleaned_bakeoff(dataset: SourceDataset, data: RequestInput) -> dict[str, Any]:
    """A bake-off's fields: its candidates, and the sums every attempt reserves from the ledger."""
    if (
        data.synthesizer not in (None, "", BAKEOFF)
        or data.epsilon not in (None, "")
        or data.delta not in (None, "")
    ):
        raise ValidationFailed(
            "A bake-off names its synthesizers and epsilons per candidate; leave synthesizer, epsilon "
            "and delta of the request empty.",
            code="invalid_candidates",
            fields={"synthesizer": "not_applicable"},
        )
    fields = _cleaned_common(dataset, data, rows=_validate_rows(data.rows))
    _, policy = policy_for_preview()
    candidates, auto = clean_candidates(
        data.candidates,
        dataset=dataset,
        columns=fields["columns"],
        cap=policy_max_candidates(dict(policy.tiers)),
    )
    epsilon_micro, delta_atto = total_budget(candidates)
    return {
        **fields,
        "synthesizer": BAKEOFF,
        "candidates": candidates,
        "candidates_auto": auto,
        "options": {},
        "epsilon_micro": epsilon_micro,
        "delta_atto": delta_atto,
    }


# --- A DP model -----------------------------------------------------------------------------------

# What a dp_model request stores as `rows`: a model is trained, not sampled, so there is no row
# count to ask for (the training rows are the dataset's, recorded at intake).
MODEL_ROWS = 0


def _cleaned_model(dataset: SourceDataset, data: RequestInput) -> dict[str, Any]:
    """A dp_model request's fields: one model family, the features as `columns`, the declared
    outcome as `target` and an epsilon. Every privacy parameter beyond epsilon (feature bounds,
    outcome classes) comes from the steward's signed-off declarations, so nothing else is taken."""
    if data.candidates not in (None, "", []):
        raise ValidationFailed(
            "A dp_model request trains one model: bake-off candidates are for synthetic tables. "
            "Leave candidates empty and name the model family as synthesizer.",
            code="invalid_candidates",
            fields={"candidates": "not_applicable"},
        )
    if not is_model_family(data.synthesizer):
        raise ValidationFailed(
            f"Unknown model family; choose one of {', '.join(sorted(MODEL_FAMILIES))}.",
            fields={"synthesizer": "invalid"},
        )
    delta_atto = validate_model_delta(data.synthesizer, data.delta)
    if data.rows not in (None, "", MODEL_ROWS):
        raise ValidationFailed(
            "A dp_model request takes no rows: the model is trained on the dataset's training rows. "
            "Leave rows out.",
            fields={"rows": "not_applicable"},
        )
    fields = _cleaned_common(dataset, data, rows=MODEL_ROWS)
    target = str(data.target or "").strip()
    if not target:
        raise ValidationFailed(
            "Name the target: the dataset's declared outcome column the model predicts.",
            fields={"target": "required"},
        )
    if target in fields["columns"]:
        raise ValidationFailed(
            f"The target `{target}` cannot also be a feature; remove it from the columns.",
            fields={"target": "in_features"},
        )
    _validate_columns(dataset, [target])
    epsilon_micro = epsilon_to_micro(data.epsilon)
    check_model_declared(dataset, family=data.synthesizer, target=target, features=fields["columns"])
    return {
        **fields,
        "synthesizer": data.synthesizer,
        "target": target,
        "epsilon_micro": epsilon_micro,
        "delta_atto": delta_atto,
        "options": _validate_model_options(data.synthesizer, data.options),
    }


def _validate_model_options(family: str, options: Any) -> dict[str, Any]:
    """The family's training options the requester gave (e.g. max_depth), checked by the family's
    own parser: unknown keys and values outside its caps are refused when filed. None of them is a
    privacy parameter."""
    if options in (None, "", {}):
        return {}
    if not isinstance(options, dict) or len(options) > 20:
        raise ValidationFailed(
            "Options must be an object of option names and values.", fields={"options": "invalid"}
        )
    try:
        parsed = MODEL_FAMILIES[family].parse_options(options)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(str(exc), fields={"options": "invalid"}) from None
    # Only what was asked for: the family's defaults apply when the job trains.
    return {name: parsed[name] for name in options}


def check_model_declared(dataset: SourceDataset, *, family: str, target: str, features: list[str]) -> None:
    """400 with generation.modeling's sentences when the declarations do not allow the model."""
    refusals = model_refusals(dataset, family=family, target=target, features=features)
    if refusals:
        raise ValidationFailed(
            " ".join(refusals), code="model_not_declared", fields={"columns": "not_declared"}
        )


def check_model_still_declared(request: GenerationRequest) -> None:
    """409 at submission or approval when the dataset was signed off again since filing and its
    declarations no longer allow the model (the request itself is unchanged)."""
    refusals = model_refusals(
        request.dataset, family=request.synthesizer, target=request.target, features=list(request.columns)
    )
    if refusals:
        raise Conflict(" ".join(refusals), code="model_not_declared", fields={"columns": "not_declared"})


def _audit_details(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": fields.get("kind", RequestKind.SYNTHETIC_TABLE),
        "target": fields.get("target", ""),
        "dataset": str(fields["dataset"].pk),
        "columns": fields["columns"],
        "synthesizer": fields["synthesizer"],
        "rows": fields["rows"],
        "audience": fields["audience"],
        "fidelity": fields["fidelity"],
        "purpose_category": fields["purpose_category"],
        "epsilon_micro": fields["epsilon_micro"],
        "delta_atto": fields["delta_atto"],
        "options": fields.get("options") or {},
        # Candidates: synthesizer, epsilon and option names only (values are settings, not data).
        "candidates": [
            {"synthesizer": c["synthesizer"], "epsilon_micro": c["epsilon_micro"], "options": c["options"]}
            for c in fields.get("candidates") or []
        ],
    }


# --- Filing and editing -------------------------------------------------------------------------


def request_create(*, actor: PortalUser, data: RequestInput) -> GenerationRequest:
    """File a draft request. Validates everything the requester controls."""
    if not has_role(actor, Role.DATA_SCIENTIST):
        audit_denied(
            actor=actor,
            action="request.create",
            target_type="request",
            target_id="-",
            reason="data scientist role required",
        )
        raise PermissionDenied("Only data scientists can file generation requests.")
    kind = _validate_choice(data.kind or RequestKind.SYNTHETIC_TABLE, "kind", RequestKind.values)
    if kind == RequestKind.FEDERATED_STUDY:
        raise ValidationFailed(
            "A federated study is not filed as a generation request: propose it from the federated "
            "studies pages, which tier it with the same policy.",
            fields={"kind": "not_applicable"},
        )
    fields = {"kind": kind, **_cleaned(actor, data, kind=kind)}
    with transaction.atomic():
        request = GenerationRequest.objects.create(requester=actor, team_id=actor.team_id, **fields)
        audit_record(
            actor=actor,
            action="request.create",
            target_type="request",
            target_id=request.pk,
            details=_audit_details(fields),
        )
    return request


def request_update(*, actor: PortalUser, request_id: Any, data: RequestInput) -> GenerationRequest:
    """Edit a draft, or a request whose reviewers asked for changes (then resubmit to re-tier)."""
    with transaction.atomic():
        request = request_get_for(actor=actor, request_id=request_id, lock=True)
        refusal = rules.requester_only_refusal(actor, request, "edit")
        if refusal:
            raise PermissionDenied(refusal)
        check_transition("update", request.status)
        if data.kind not in (None, "", request.kind):
            raise ValidationFailed(
                f"This request was filed as {request.kind}; its kind cannot change. File a new "
                "request for a different kind.",
                code="kind_immutable",
                fields={"kind": "immutable"},
            )
        fields = {
            "candidates": [],
            "candidates_auto": False,
            "target": "",
            **_cleaned(actor, data, kind=request.kind),
        }
        for name, value in fields.items():
            setattr(request, name, value)
        request.save()
        audit_record(
            actor=actor,
            action="request.update",
            target_type="request",
            target_id=request.pk,
            details=_audit_details(fields),
        )
    return request


def request_get_for(*, actor: PortalUser, request_id: Any, lock: bool = False) -> GenerationRequest:
    queryset = requests_visible_to(user=actor)
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    request = first_by_uuid(queryset, request_id)
    if request is None:
        raise NotFound("No such request.")
    return request


# --- Submission ---------------------------------------------------------------------------------


def request_submit(*, actor: PortalUser, request_id: Any) -> GenerationRequest:
    """Submit (or resubmit) for review. The active policy tiers it and the decision is recorded
    with the policy version; a prohibited request is rejected on the spot, with its reasons."""
    with transaction.atomic():
        request = request_get_for(actor=actor, request_id=request_id, lock=True)
        refusal = rules.requester_only_refusal(actor, request, "submit")
        if refusal:
            raise PermissionDenied(refusal)
        if not check_transition("submit", request.status):
            return request
        # The dataset may have been signed off again since filing.
        if request.kind == RequestKind.DP_MODEL:
            check_model_still_declared(request)
        for name in _synthesizers_of(request):
            check_domain_declared(request.dataset, list(request.columns), name)
        version, policy = policy_ensure_active()
        facts = request_facts(request)
        assessment = evaluate(policy, facts)
        if assessment.level != TierLevel.PROHIBITED:
            check_training_size(actor=actor, dataset=request.dataset, controls=assessment.controls)
            _check_candidates_within_tier(request, assessment)
            _check_budget_fits(request)
        _apply_assessment(request, assessment, version)
        TierAssessment.objects.create(
            request=request,
            review_round=request.review_round,
            policy=version,
            level=assessment.level,
            fired=[{"id": f.id, "tier": f.tier, "message": f.message} for f in assessment.fired],
            controls=assessment.controls,
            facts=_facts_record(facts),
        )
        audit_record(
            actor=actor,
            action="request.submit",
            target_type="request",
            target_id=request.pk,
            details={
                "tier": assessment.level,
                "policy_version": version.number,
                "rules": [f.id for f in assessment.fired],
                "status": request.status,
                "round": request.review_round,
            },
        )
        if request.status == RequestStatus.IN_REVIEW:
            notify_reviewers_on_commit(request)
    return request


def _synthesizers_of(request: GenerationRequest) -> list[str]:
    if request.candidates:
        return [c["synthesizer"] for c in request.candidates]
    return [request.synthesizer]


def _check_candidates_within_tier(request: GenerationRequest, assessment: Assessment) -> None:
    cap = tier_max_candidates(dict(assessment.controls))
    if request.candidates and len(request.candidates) > cap:
        raise ValidationFailed(
            f"This request is {assessment.level} tier, whose policy allows at most {cap} bake-off "
            f"candidates; edit the request to name at most {cap}.",
            code="too_many_candidates",
            fields={"candidates": "too_many"},
        )


def _check_budget_fits(request: GenerationRequest) -> None:
    """A DP request goes to review only if what is left of the budget can pay its epsilon and
    delta today: reviewers should not spend time on what cannot be paid (approval reserves it
    exactly, and may still find it spent meanwhile). A prohibited request is rejected with its
    reasons instead, whatever the budget."""
    if is_dp_synthesizer(request.synthesizer) or request.epsilon_micro is not None:
        # A bake-off: the sum of its DP candidates' epsilons (what approval reserves).
        check_budget_fits(request.dataset, request.epsilon_micro, request.delta_atto)


def _apply_assessment(request: GenerationRequest, assessment: Assessment, version: Any) -> None:
    now = timezone.now()
    request.tier_level = assessment.level
    request.tier_reasons = assessment.reasons
    request.tier_controls = assessment.controls
    request.required_approvals = assessment.required_approvals
    request.policy = version
    request.policy_version = str(version.number)
    request.review_round += 1
    request.submitted_at = now
    request.first_submitted_at = request.first_submitted_at or now
    request.conditions = ""
    prohibited = assessment.level == TierLevel.PROHIBITED
    request.status = RequestStatus.REJECTED if prohibited else RequestStatus.IN_REVIEW
    request.decided_at = now if prohibited else None
    request.save()


def _facts_record(facts: Facts) -> dict[str, Any]:
    """What the policy saw, for evidence: counts, estimates and column names; no data values."""
    return {
        **facts.values(),
        "synthesizer": facts.synthesizer,
        "quasi_identifier_names": list(facts.quasi_identifier_names),
        "sensitive_names": list(facts.sensitive_names),
        "direct_identifier_names": list(facts.direct_identifier_names),
    }


# --- Withdrawal and the job's path --------------------------------------------------------------


def request_cancel(*, actor: PortalUser, request_id: Any) -> GenerationRequest:
    """Withdraw a request under review, or stop its generation job once approved.

    Withdrawal is the requester's; stopping a job may also be done by a privacy officer. A queued
    job ends at once; a running one stops at its next progress report, and the request follows.
    """
    with transaction.atomic():
        request = request_get_for(actor=actor, request_id=request_id, lock=True)
        if request.job_id and request.status in TRANSITIONS["cancel_job"]:
            return _cancel_job(actor, request)
        refusal = rules.requester_only_refusal(actor, request, "withdraw")
        if refusal:
            raise PermissionDenied(refusal)
        if not check_transition("cancel", request.status):
            return request
        request.status = RequestStatus.CANCELLED
        request.save(update_fields=["status", "updated_at"])
        audit_record(actor=actor, action="request.cancel", target_type="request", target_id=request.pk)
        outputs_purge_unreleased(request=request, reason="request cancelled", actor=actor)
    return request


def _cancel_job(actor: PortalUser, request: GenerationRequest) -> GenerationRequest:
    refusal = rules.stopper_refusal(actor, request)
    if refusal:
        raise PermissionDenied(refusal)
    job = request.job
    assert job is not None  # request_cancel stops a job only for a request that has one
    # A bake-off stops every candidate still running; the request follows them all.
    runs = list(job.attempt.candidates.select_related("job")) if request.candidates else []
    for stopped in [r.job for r in runs] or [job]:
        job_cancel(job=stopped, actor=actor)
    audit_record(
        actor=actor,
        action="request.cancel_job",
        target_type="request",
        target_id=request.pk,
        details={"job": str(request.job_id)},
    )
    request_follow_job(job=job)  # a queued job is already cancelled: the request follows now
    request.refresh_from_db()
    return request


# Keyed by the plain string SynthesisJob.state holds (JobState members are str).
_JOB_TO_ACTION: dict[str, str] = {
    JobState.RUNNING: "start",
    JobState.VALIDATING: "validate",
    JobState.SUCCEEDED: "publish",
    JobState.GATE_FAILED: "gate_fail",
    JobState.FAILED: "fail",
    JobState.CANCELLED: "job_cancelled",
}
_ACTION_TO_STATUS = {
    "start": RequestStatus.GENERATING,
    "validate": RequestStatus.VALIDATING,
    "publish": RequestStatus.PUBLISHED,
    "gate_fail": RequestStatus.GATE_FAILED,
    "fail": RequestStatus.FAILED,
    "job_cancelled": RequestStatus.CANCELLED,
}


def request_follow_job(*, job: SynthesisJob) -> GenerationRequest | None:
    """Mirror the job's state onto its request (system transition, audited). A bake-off
    candidate's job moves its request together with the other candidates' jobs."""
    from approvals.services.bakeoffs import bakeoff_follow, candidate_run_of

    run = candidate_run_of(job)
    if run is not None:
        return bakeoff_follow(run=run)
    action = _JOB_TO_ACTION.get(SynthesisJob.objects.values_list("state", flat=True).get(pk=job.pk))
    if action is None:
        return None
    with transaction.atomic():
        request = GenerationRequest.objects.select_for_update().filter(job_id=job.pk).first()
        if request is None or request.status == _ACTION_TO_STATUS[action]:
            return request
        check_transition(action, request.status)
        request.status = _ACTION_TO_STATUS[action]
        request.save(update_fields=["status", "updated_at"])
        audit_record(
            actor=None,
            action=f"request.{request.status}",
            target_type="request",
            target_id=request.pk,
            details={"job": str(job.pk)},
        )
        outputs_purge_unreleased(request=request, reason=f"request {request.status}")
    return request
