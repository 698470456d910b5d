"""What the policy sees of a request (its facts), and the live preview of its tier."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Q

from approvals.bakeoff import riskiest
from approvals.choices import Audience, Fidelity, PurposeCategory, RequestKind
from approvals.dp import (
    BudgetCheck,
    budget_check,
    domain_refusal,
    signed_off_specs,
    validate_delta,
    validate_model_delta,
)
from approvals.models import GenerationRequest
from approvals.policies import Assessment, Facts, Suggestion, evaluate, suggest
from approvals.services.policy import policy_for_preview
from core.errors import PermissionDenied, ValidationFailed
from core.ids import first_by_uuid
from core.roles import PortalUser, Role, has_role
from generation.choices import Classification
from generation.modeling import is_model_family, model_declaration_refusals
from generation.models import SourceDataset, atto_to_delta, micro_to_epsilon
from generation.policies import about, sees_exact_figures
from generation.selectors import datasets_requestable_by
from generation.services import epsilon_to_micro
from generation.synthesizers import REGISTRY, is_dp_synthesizer

MAX_ROWS = 1_000_000


@dataclass(frozen=True)
class Preview:
    """What the policy would say if the request were submitted now (nothing is written)."""

    assessment: Assessment
    suggestions: list[Suggestion]
    policy_number: int
    # DP requests: the epsilon (and delta) against the dataset's remaining budget, and why the
    # requested columns cannot be synthesized under DP yet (undeclared domains), if they cannot.
    budget: BudgetCheck | None = None
    domain_refusal: str | None = None


# --- Facts and tiering --------------------------------------------------------------------------


def facts_for(
    *,
    dataset: SourceDataset,
    columns: list[str],
    audience: str,
    synthesizer: str,
    epsilon: float | None,
    rows: int,
    fidelity: str = Fidelity.MEDIUM,
    purpose_category: str = PurposeCategory.RESEARCH,
    delta: float | None = None,
    kind: str = RequestKind.SYNTHETIC_TABLE,
    target: str = "",
) -> Facts:
    """The policy's view of a request. Reads column classifications and dataset-level estimates;
    never the source rows (the web process must not touch them).

    A dp_model request's `synthesizer` is its model family, `columns` its features and `target`
    its outcome column (counted with the columns: the model learns it too); it is DP by
    construction, so it is tiered with its epsilon like a DP synthesizer."""
    if target and target not in columns:
        columns = [*columns, target]
    classes = dict(dataset.columns.filter(name__in=columns).values_list("name", "classification"))

    def named(classification: str) -> tuple[str, ...]:
        return tuple(n for n in columns if classes.get(n) == classification)

    cls = REGISTRY.get(synthesizer)
    is_model = kind == RequestKind.DP_MODEL
    is_dp = is_model or bool(cls and cls.is_dp)
    return Facts(
        audience=audience,
        fidelity=fidelity,
        purpose_category=purpose_category,
        synthesizer=synthesizer,
        is_dp=is_dp,
        epsilon=float(epsilon) if is_dp and epsilon is not None else None,
        delta=float(delta) if is_dp and delta is not None else None,
        quasi_identifier_names=named(Classification.QUASI_IDENTIFIER),
        sensitive_names=named(Classification.SENSITIVE),
        direct_identifier_names=named(Classification.DIRECT_IDENTIFIER),
        other_names=tuple(n for n in columns if classes.get(n, Classification.OTHER) == Classification.OTHER),
        rows=rows,
        source_rows=dataset.rows,
        # Seams for the dataset-intake work: None (unknown) until the dataset carries them.
        small_cells=_optional_int(getattr(dataset, "small_cell_count", None)),
        reidentification_risk=_optional_float(getattr(dataset, "reidentification_risk", None)),
        entity_column_declared=bool(dataset.entity_column),
        repeating_identifier_names=repeating_identifiers(dataset),
        kind=kind,
        model_family=synthesizer if is_model else "",
    )


def repeating_identifiers(dataset: SourceDataset) -> tuple[str, ...]:
    """Identifier columns (classified, or suggested, as direct identifiers) with fewer distinct
    values than filled rows: a sign that one person has several rows. Read from the intake
    profile's aggregates (distinct count, missing rate), never from the rows."""
    found = []
    id_like = Q(classification=Classification.DIRECT_IDENTIFIER) | Q(
        suggested_classification=Classification.DIRECT_IDENTIFIER
    )
    for name, distinct, missing_rate in dataset.columns.filter(id_like).values_list(
        "name", "distinct", "missing_rate"
    ):
        filled = round(dataset.rows * (1.0 - float(missing_rate or 0.0)))
        if 0 < distinct < filled:
            found.append(name)
    return tuple(found)


def request_is_dp(request: GenerationRequest) -> bool:
    """Whether a request's release is differentially private: a DP synthesizer's table, or a DP
    model (always). A bake-off is DP only if every candidate is; its report rules follow each
    candidate's own synthesizer."""
    return request.kind == RequestKind.DP_MODEL or is_dp_synthesizer(request.synthesizer)


def model_refusals(dataset: SourceDataset, *, family: str, target: str, features: list[str]) -> list[str]:
    """Why this model may not be trained on the dataset's signed-off declarations ([] when it
    may): generation.modeling decides, from the specs a job would pin (never from the rows)."""
    return model_declaration_refusals(
        family=family,
        target=target,
        features=list(features),
        column_specs=signed_off_specs(dataset, [*features, target]),
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def request_facts(request: GenerationRequest) -> Facts:
    """The policy's view of a request. A bake-off is judged by its riskiest candidate (any
    non-DP one; otherwise the largest epsilon), since any candidate may be the one published."""
    synthesizer, epsilon, delta = request.synthesizer, request.epsilon, request.delta
    if request.candidates:
        worst = riskiest(list(request.candidates))
        synthesizer = worst["synthesizer"]
        epsilon = micro_to_epsilon(worst.get("epsilon_micro"))
        delta = atto_to_delta(worst.get("delta_atto"))
    return facts_for(
        dataset=request.dataset,
        columns=list(request.columns),
        audience=request.audience,
        synthesizer=synthesizer,
        epsilon=float(epsilon) if epsilon is not None else None,
        delta=float(delta) if delta is not None else None,
        rows=request.rows,
        fidelity=request.fidelity,
        purpose_category=request.purpose_category,
        kind=request.kind,
        target=request.target,
    )


def training_rows_of(dataset: SourceDataset) -> int:
    """The rows a synthesizer is fitted on, as recorded at intake. Datasets registered before the
    holdout split have no holdout and train on every row."""
    return dataset.training_rows if dataset.holdout_path else dataset.rows


def check_training_size(*, actor: PortalUser, dataset: SourceDataset, controls: Any) -> None:
    """Refuse a request whose dataset has fewer training rows than its tier's minimum: a
    synthesizer fitted on a handful of people tends to reproduce them. Uses the figures intake
    stored, never the rows. Non-custodians see the size rounded, as everywhere else."""
    minimum = int((controls or {}).get("min_training_rows") or 0)
    training = training_rows_of(dataset)
    if training >= minimum:
        return
    size = f"{training:,}" if sees_exact_figures(actor) else f"about {about(training):,}"
    raise ValidationFailed(
        f"This dataset is too small to synthesize from: its tier needs at least {minimum:,} "
        f"training rows, and the dataset has {size}. Choose a larger dataset, or ask its steward "
        "to register more rows.",
        code="dataset_too_small",
        fields={"dataset": "too_small"},
    )


def request_assess(*, request: GenerationRequest) -> Assessment:
    """What the policy in force would decide for this request now (no writes)."""
    _, policy = policy_for_preview()
    return evaluate(policy, request_facts(request))


def request_preview(*, actor: PortalUser, dataset_id: Any, **form: Any) -> Preview | None:
    """Live preview for the request form: tier, reasons and what would lower it. Lenient about
    half-filled forms (None when no dataset is chosen yet); writes nothing."""
    if not has_role(actor, Role.DATA_SCIENTIST):
        raise PermissionDenied("Only data scientists can file generation requests.")
    dataset = first_by_uuid(datasets_requestable_by(user=actor), dataset_id)
    if dataset is None:
        return None
    known = set(dataset.columns.values_list("name", flat=True))
    columns = [c for c in dict.fromkeys(form.get("columns") or []) if c in known]
    synthesizer = str(form.get("synthesizer") or "")
    kind = _pick(form.get("kind"), RequestKind.values, RequestKind.SYNTHETIC_TABLE)
    if kind == RequestKind.DP_MODEL:
        return _model_preview(dataset, columns, synthesizer, known=known, **form)
    epsilon_micro, delta_atto = _lenient_budget(synthesizer, form.get("epsilon"), form.get("delta"))
    facts = facts_for(
        dataset=dataset,
        columns=columns,
        audience=_pick(form.get("audience"), Audience.values, Audience.INTERNAL),
        synthesizer=synthesizer,
        epsilon=_lenient_float(form.get("epsilon")),
        delta=float(Decimal(delta_atto) / 10**18) if delta_atto is not None else None,
        rows=_lenient_rows(form.get("rows")),
        fidelity=_pick(form.get("fidelity"), Fidelity.values, Fidelity.MEDIUM),
        purpose_category=_pick(
            form.get("purpose_category"), PurposeCategory.values, PurposeCategory.RESEARCH
        ),
    )
    number, policy = policy_for_preview()
    dp_available = any(cls.is_dp for cls in REGISTRY.values())
    return Preview(
        evaluate(policy, facts),
        suggest(policy, facts, dp_available=dp_available),
        number,
        budget=budget_check(dataset, epsilon_micro, delta_atto) if is_dp_synthesizer(synthesizer) else None,
        domain_refusal=domain_refusal(dataset, columns, synthesizer) if columns else None,
    )


def _model_preview(
    dataset: SourceDataset, features: list[str], family: str, *, known: set[str], **form: Any
) -> Preview:
    """The preview of a dp_model request: DP with its epsilon, no rows; `domain_refusal` says why
    the steward's declarations do not allow the model yet (generation.modeling's sentences)."""
    target = str(form.get("target") or "")
    target = target if target in known else ""
    features = [c for c in features if c != target]
    try:
        epsilon_micro: int | None = epsilon_to_micro(form.get("epsilon"))
    except ValidationFailed:
        epsilon_micro = None
    facts = facts_for(
        dataset=dataset,
        columns=features,
        audience=_pick(form.get("audience"), Audience.values, Audience.INTERNAL),
        synthesizer=family,
        epsilon=_lenient_float(form.get("epsilon")),
        rows=0,
        fidelity=_pick(form.get("fidelity"), Fidelity.values, Fidelity.MEDIUM),
        purpose_category=_pick(
            form.get("purpose_category"), PurposeCategory.values, PurposeCategory.RESEARCH
        ),
        kind=RequestKind.DP_MODEL,
        target=target,
    )
    try:
        # An (epsilon, delta) family (DP-SGD) reserves its delta too: the preview's budget shows it.
        delta_atto = validate_model_delta(family, form.get("delta")) if is_model_family(family) else None
    except ValidationFailed:
        delta_atto = None
    number, policy = policy_for_preview()
    refusals = model_refusals(dataset, family=family, target=target, features=features) if target else []
    return Preview(
        evaluate(policy, facts),
        suggest(policy, facts),
        number,
        budget=budget_check(dataset, epsilon_micro, delta_atto),
        domain_refusal=" ".join(refusals) or None,
    )


def _lenient_budget(synthesizer: str, epsilon: Any, delta: Any) -> tuple[int | None, int | None]:
    """(micro-epsilon, atto-delta) of a half-filled form, None where not (yet) valid."""
    if not is_dp_synthesizer(synthesizer):
        return None, None
    try:
        epsilon_micro: int | None = epsilon_to_micro(epsilon)
    except ValidationFailed:
        epsilon_micro = None
    try:
        delta_atto = validate_delta(synthesizer, delta)
    except ValidationFailed:
        delta_atto = None
    return epsilon_micro, delta_atto


def _pick(value: Any, choices: list[str], default: str) -> str:
    return value if value in choices else default


def _lenient_float(value: Any) -> float | None:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _lenient_rows(value: Any) -> int:
    try:
        return max(1, min(MAX_ROWS, int(str(value).strip())))
    except (TypeError, ValueError):
        return 1
