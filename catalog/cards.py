"""A release's data card, assembled from what was measured and decided, never typed by hand.

One dict serves the release page, the exported report, `GET /api/v1/releases/{id}/card/` and the
Croissant 1.0 (+ RAI) export (`card_to_croissant`), so they cannot disagree. The card follows the
report's visibility rule (catalog.reports.report_visible_to): a viewer who may not see values
computed on the real rows gets statuses, thresholds and reasons only, and the card says so;
limitations derived from metrics are evaluated on the metrics that viewer may see.

Sections: title, purpose and uses, audience and access, privacy statement, gate checks,
limitations, data dictionary, provenance, expiry and owner, the ONS synthetic-data spectrum level
the release reaches, and a Five Safes summary.
"""

from __future__ import annotations

from typing import Any

from approvals.choices import Audience, DecisionKind, PurposeCategory
from approvals.models import GenerationRequest
from catalog.models import Release
from catalog.privacy import receipt_visible_to, release_privacy_of
from catalog.reports import report_visible_to
from generation.values import RARE_LABEL
from validation.gate import DEFAULT_THRESHOLDS, NOT_RUN, PASSED

# --- Limitations: thresholds that no gate key sets --------------------------------------------------
# Outcome prevalence: an absolute gap above 5 points moves a prevalence-sensitive analysis (a
# calibration curve, a base rate) enough to matter; a tier may set its own in its gate.
OUTCOME_DRIFT_MAX = 0.05
OUTCOME_DRIFT_KEY = "outcome_prevalence_drift_max"
# Per-column missing share: the gate's missingness check scores whole patterns; a single column
# whose missing share moved by more than 5 points misleads an imputation or complete-case analysis.
MISSINGNESS_GAP_MAX = 0.05
MISSINGNESS_GAP_KEY = "missingness_gap_max"

LIMITATION_RULES = (
    "column_shape_below_floor",
    "outcome_prevalence_drift",
    "missingness_not_preserved",
    "categories_not_reproduced",
    "categories_dropped_by_declaration",
    "more_rows_than_trained_on",
)

# --- ONS synthetic-data spectrum ------------------------------------------------------------------
# ONS Methodology Working Paper 16 (Bates, Spakulova, Dove, Mealor, 2019), "ONS methodology working
# paper series number 16 - Synthetic data pilot": six levels from structure only to a replica.
# The rule: a release reaches a level when every gate check listed for it, and for every level
# below it, has status "passed". A check that did not run (not_run) or failed stops the climb, so
# the level is only ever claimed on evidence. Statuses, not values, decide it: every viewer of the
# gate sees them, so the level tells nobody more than the gate does. "Replica" is never claimed:
# the portal measures no joint distribution beyond column pairs and one outcome model, and its
# privacy gate exists to keep a release from replicating the records.
ONS_LEVELS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    (
        "structural",
        "Synthetic-structural",
        ("requested_columns_present",),
        "The columns, names and types of the source; no analytical value.",
    ),
    (
        "valid",
        "Synthetic-valid",
        ("bound_violation_rate",),
        "Every value lies in its column's declared domain (bounds, categories); combinations may "
        "be implausible.",
    ),
    (
        "plausible",
        "Synthetic-augmented plausible",
        ("column_shape_similarity", "missingness_similarity"),
        "Each column's distribution and missingness resemble the source; relationships between "
        "columns are not claimed.",
    ),
    (
        "multivariate_plausible",
        "Synthetic-augmented multivariate plausible",
        ("column_pair_trend_similarity",),
        "Pairwise relationships (correlations, contingency tables) resemble the source.",
    ),
    (
        "multivariate_detailed",
        "Synthetic-augmented multivariate detailed",
        ("tstr_auc_ratio",),
        "A model trained on the release predicts the outcome on real held-out rows nearly as well "
        "as one trained on real rows: detailed multivariate structure holds for that outcome.",
    ),
)
ONS_REPLICA_NOTE = (
    "Synthetic-augmented replica is not claimed: it needs evidence on the full joint distribution, "
    "which the gate does not measure, and the gate's privacy checks exist to prevent replicas."
)
ONS_SOURCE = "ONS Methodology Working Paper Series No. 16, Synthetic data pilot (2019)"

PROHIBITED_ALWAYS = (
    "Any attempt to re-identify a person, or to learn whether a person's record was in the source.",
    "Linking the release with other data to single out, or infer facts about, real people.",
    "Decisions about an individual patient's care: the rows are synthetic, not records of anyone.",
    "Presenting results as findings on real patients without confirming them on the real data.",
)
WITHHELD_VALUES = (
    "Values are withheld from you: the gate's figures are computed on the real training and holdout "
    "rows, so you see each check's status, threshold and reason. Privacy officers, auditors and "
    "admins see the values."
)
WITHHELD_DP = (
    "This release is differentially private and the gate's figures are computed on the real rows "
    "outside the privacy budget: only data custodians see them."
)
WITHHELD_LIMITATIONS = (
    "Limitations computed from the validation metrics are withheld from you for the same reason; "
    "those shown come from the release's own records (receipt, declarations)."
)


def release_card(*, release: Release, user: Any) -> dict[str, Any]:
    """The data card of `release` as `user` may see it (JSON-safe: the API returns it as is)."""
    request: GenerationRequest = release.request
    report = report_visible_to(
        user=user, gate=release.gate, metrics=release.metrics, is_dp=release.is_dp, charts=False
    )
    privacy = release_privacy_of(release)
    checks = [_check_row(c) for c in report["gate"].get("checks") or []]
    approvers = _approvers(request)
    dictionary = _data_dictionary(release)
    limitations = card_limitations(release=release, metrics=report["metrics"], checks=checks)
    card = {
        "release": str(release.pk),
        "title": release.title,
        "purpose": request.purpose,
        "purpose_category": _label(PurposeCategory, request.purpose_category),
        "intended_use": request.intended_use,
        "uses": _uses(release, request, approvers),
        "audience": _audience(release, request),
        "privacy": _privacy_statement(privacy),
        "gate": {
            "passed": bool(report["gate"].get("passed")),
            "overridden": bool(report["gate"].get("overridden")),
            "override": report["gate"].get("override"),
            "needs_acknowledgement": list(report["gate"].get("needs_acknowledgement") or []),
            "values_shown": bool(report["full_report"]),
            "values_note": ""
            if report["full_report"]
            else (WITHHELD_DP if release.is_dp else WITHHELD_VALUES),
            "checks": checks,
        },
        "limitations": limitations,
        "data_dictionary": dictionary,
        "provenance": _provenance(release, request, approvers, user),
        "expiry": _expiry(release),
        "owner": {
            "team": release.team.name if release.team is not None else None,
            "requester": request.requester.get_username(),
        },
        "rows": release.rows,
        "sha256": release.sha256,
        "published_at": release.created_at.isoformat(),
    }
    card["ons_level"] = ons_level(checks)
    card["five_safes"] = five_safes(card)
    return card


# --- Gate -------------------------------------------------------------------------------------------


def _check_row(check: dict[str, Any]) -> dict[str, Any]:
    """One gate check for the card: value and interval are None where the viewer may not see them."""
    ci = check.get("ci")
    return {
        "name": check.get("name"),
        "title": check.get("title") or check.get("name"),
        "kind": check.get("kind") or "utility",
        "status": check.get("status") or (PASSED if check.get("passed") else "failed"),
        "value": check.get("value"),
        "threshold": check.get("threshold"),
        "direction": check.get("direction"),
        "interval": list(ci) if isinstance(ci, (list, tuple)) else None,
        "required": bool(check.get("required")),
        "reason": check.get("reason") or "",
    }


# --- Limitations -----------------------------------------------------------------------------------


def card_limitations(
    *, release: Release, metrics: dict[str, Any], checks: list[dict[str, Any]]
) -> dict[str, Any]:
    """What the release cannot be trusted for, each with the rule that fired, from `metrics` as
    the viewer sees them (a rule whose metric is withheld does not fire; `withheld` says so)."""
    floors = _gate_thresholds(release, checks)
    items: list[dict[str, Any]] = []
    items += _shape_limitations(metrics, floors["column_shape_min"])
    items += _outcome_limitations(metrics, floors[OUTCOME_DRIFT_KEY])
    items += _missingness_limitations(metrics, floors[MISSINGNESS_GAP_KEY])
    items += _coverage_limitations(metrics)
    items += _declaration_limitations(release)
    items += _row_limitations(release, metrics)
    evaluated = "column_shapes" in metrics
    return {"items": items, "withheld": "" if evaluated else WITHHELD_LIMITATIONS}


def _gate_thresholds(release: Release, checks: list[dict[str, Any]]) -> dict[str, float]:
    """The floors the limitations use: the shape floor the gate applied to this release, the
    tier's own drift and gap limits when its policy sets them, else the defaults above."""
    tier_gate = dict((release.request.tier_controls or {}).get("gate") or {})
    shape = next((c["threshold"] for c in checks if c["name"] == "column_shape_similarity"), None)
    return {
        "column_shape_min": float(
            shape
            if shape is not None
            else tier_gate.get("column_shape_min", DEFAULT_THRESHOLDS["column_shape_min"])
        ),
        OUTCOME_DRIFT_KEY: float(tier_gate.get(OUTCOME_DRIFT_KEY, OUTCOME_DRIFT_MAX)),
        MISSINGNESS_GAP_KEY: float(tier_gate.get(MISSINGNESS_GAP_KEY, MISSINGNESS_GAP_MAX)),
    }


def _limitation(rule: str, statement: str, column: str | None = None, **values: Any) -> dict[str, Any]:
    return {"rule": rule, "column": column, "statement": statement, **values}


def _shape_limitations(metrics: dict[str, Any], floor: float) -> list[dict[str, Any]]:
    shapes = metrics.get("column_shapes")
    if not isinstance(shapes, dict):
        return []
    return [
        _limitation(
            "column_shape_below_floor",
            f"Column `{name}`'s distribution differs from the source (shape similarity {score:.3f}, "
            f"below the floor {floor:g}): do not rely on its marginal distribution.",
            column=name,
            value=score,
            threshold=floor,
        )
        for name, score in shapes.items()
        if isinstance(score, (int, float)) and score < floor
    ]


def _outcome_limitations(metrics: dict[str, Any], limit: float) -> list[dict[str, Any]]:
    outcome = metrics.get("outcome")
    if not isinstance(outcome, dict) or not isinstance(outcome.get("difference"), (int, float)):
        return []
    gap = abs(float(outcome["difference"]))
    if gap <= limit:
        return []
    return [
        _limitation(
            "outcome_prevalence_drift",
            f"The prevalence of outcome `{outcome.get('column')}` drifted by {gap:.3f} from the "
            f"training rows (limit {limit:g}): base rates and calibration from this release are biased.",
            column=outcome.get("column"),
            value=gap,
            threshold=limit,
        )
    ]


def _missingness_limitations(metrics: dict[str, Any], limit: float) -> list[dict[str, Any]]:
    columns = (
        (metrics.get("missingness") or {}).get("columns")
        if isinstance(metrics.get("missingness"), dict)
        else None
    )
    if not isinstance(columns, dict):
        return []
    items = []
    for name, rates in columns.items():
        real, synthetic = (rates or {}).get("real"), (rates or {}).get("synthetic")
        if not isinstance(real, (int, float)) or not isinstance(synthetic, (int, float)):
            continue
        lost = real > 0 and synthetic == 0
        if lost or abs(real - synthetic) > limit:
            items.append(
                _limitation(
                    "missingness_not_preserved",
                    f"Column `{name}`'s missing share is not preserved (source {real:.3f}, release "
                    f"{synthetic:.3f}; limit {limit:g}): complete-case and imputation results differ.",
                    column=name,
                    value=abs(real - synthetic),
                    threshold=limit,
                )
            )
    return items


def _coverage_limitations(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    coverage = metrics.get("category_coverage")
    columns = coverage.get("columns") if isinstance(coverage, dict) else None
    if not isinstance(columns, dict):
        return []
    return [
        _limitation(
            "categories_not_reproduced",
            f"Column `{name}`: {c['categories'] - c['covered']} of its {c['categories']} source "
            "categories never appear in the release: subgroup analyses on them are impossible.",
            column=name,
            value=c["categories"] - c["covered"],
        )
        for name, c in columns.items()
        if isinstance(c, dict) and int(c.get("covered") or 0) < int(c.get("categories") or 0)
    ]


def _declaration_limitations(release: Release) -> list[dict[str, Any]]:
    """From the receipt (counts of synthetic cells changed, never values): categories the
    synthesizer produced that the steward did not declare were blanked before storage."""
    conformed = (release.receipt or {}).get("conformed_to_declared") or {}
    items = []
    for name, changes in conformed.items():
        dropped = int((changes or {}).get("undeclared_category") or 0)
        if dropped:
            items.append(
                _limitation(
                    "categories_dropped_by_declaration",
                    f"Column `{name}`: {dropped} synthetic cells held a category the data steward did "
                    f"not declare (a rare code). In a categorical column they are released as "
                    f'"{RARE_LABEL}"; in any other column they were set to missing, which inflates '
                    "its missing share.",
                    column=name,
                    value=dropped,
                )
            )
    return items


def _row_limitations(release: Release, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    trained = metrics.get("rows_training")
    if not isinstance(trained, int) or release.rows <= trained:
        return []
    return [
        _limitation(
            "more_rows_than_trained_on",
            f"{release.rows} rows were released from a model trained on {trained}: the extra rows add "
            "no information, so confidence intervals computed on the release are too narrow.",
            value=release.rows,
            threshold=trained,
        )
    ]


# --- Uses, audience, privacy ---------------------------------------------------------------------


def _uses(release: Release, request: GenerationRequest, approvers: list[dict[str, Any]]) -> dict[str, Any]:
    controls = request.tier_controls or {}
    conditions = [c for c in [request.conditions, *(a["conditions"] for a in approvers)] if c]
    permitted = [
        f"{_label(PurposeCategory, request.purpose_category)}: {request.purpose}",
        f"Intended use: {request.intended_use}",
    ]
    permitted += [f"Subject to the approvers' condition: {c}" for c in dict.fromkeys(conditions)]
    prohibited = list(PROHIBITED_ALWAYS)
    prohibited.append(f"Sharing outside the approved audience ({_audience_scope(release)}).")
    if release.expires_at:
        prohibited.append(f"Any use after the release expires ({release.expires_at.date().isoformat()}).")
    if not release.is_dp:
        prohibited.append(
            "Publishing the rows openly: the release is not differentially private, so no guarantee "
            "holds against an adversary with other data."
        )
    if controls.get("dp_required"):
        prohibited.append("Combining with non-DP releases of the same source: the tier requires DP.")
    return {
        "permitted": permitted,
        "prohibited": prohibited,
        "conditions": list(dict.fromkeys(conditions)),
        # The tier, not its reasons: those quote facts measured on the source (a re-identification
        # estimate, say) that the release's wider audience has no business seeing.
        "tier": request.tier_level,
    }


def _audience_scope(release: Release) -> str:
    if release.audience == Audience.INTERNAL:
        return f"team {release.team.name}" if release.team is not None else "the requester's team"
    if release.audience == Audience.ORGANIZATION:
        return "every signed-in user of the organization"
    return "the named external recipients the request was approved for"


def _audience(release: Release, request: GenerationRequest) -> dict[str, Any]:
    return {
        "audience": release.audience,
        "label": _label(Audience, release.audience),
        "access_level": (request.tier_controls or {}).get("access_level") or release.audience,
        "who_can_see": _audience_scope(release),
    }


def _privacy_statement(privacy: dict[str, Any]) -> dict[str, Any]:
    if privacy.get("dp"):
        headline = (
            f"Differentially private ({privacy.get('flavour')}) per {privacy.get('unit')}: "
            f"epsilon {privacy.get('epsilon')}, delta {privacy.get('delta')}."
        )
    else:
        headline = "not DP: no adversary is bounded; privacy rests on the release gate's empirical tests."
    return _privacy_fields(privacy, headline)


def _privacy_fields(privacy: dict[str, Any], headline: str, *extra: str) -> dict[str, Any]:
    """A card's privacy statement: the release's privacy block (fixed at publication) as the
    card shows it, under `headline`; `extra` names list fields a kind of card adds after `flavour`
    (a model card: its `mechanisms`)."""
    return {
        "dp": bool(privacy.get("dp")),
        "headline": headline,
        "epsilon": privacy.get("epsilon"),
        "delta": privacy.get("delta"),
        "unit": privacy.get("unit"),
        "neighbouring": privacy.get("neighbouring"),
        "flavour": privacy.get("flavour"),
        **{name: list(privacy.get(name) or []) for name in extra},
        "covers": list(privacy.get("covers") or []),
        "not_covered": list(privacy.get("not_covered") or []),
        "source_spent": privacy.get("source_spent"),
        "trust_model": privacy.get("trust_model"),
    }


# --- Data dictionary and provenance ----------------------------------------------------------------


def _data_dictionary(release: Release) -> list[dict[str, Any]]:
    """The released columns, in order, as the signed-off declaration the job used described them
    (job.metadata), falling back to the dataset's current declarations."""
    snapshot = {m.get("name"): m for m in (release.job.metadata or []) if isinstance(m, dict)}
    current = {c.name: c for c in release.dataset.columns.all()}
    rows = []
    for name in release.columns:
        spec = snapshot.get(name)
        column = current.get(name)
        if spec is None and column is not None:
            spec = {**(column.declared or {}), "kind": column.kind, "classification": column.classification}
        spec = spec or {}
        rows.append(
            {
                "column": name,
                "kind": spec.get("kind") or "",
                "unit": spec.get("unit") or "",
                "domain": _domain(spec),
                "lower": spec.get("lower"),
                "upper": spec.get("upper"),
                "categories": list(spec.get("categories") or []),
                "integer": bool(spec.get("integer")),
                "classification": spec.get("classification") or "",
            }
        )
    return rows


def _domain(spec: dict[str, Any]) -> str:
    if spec.get("categories"):
        return "one of " + ", ".join(str(c) for c in spec["categories"])
    lower, upper = spec.get("lower"), spec.get("upper")
    if lower is None and upper is None:
        return "not declared"
    whole = " (whole numbers)" if spec.get("integer") else ""
    return f"{_bound(lower)} to {_bound(upper)}{whole}"


def _bound(value: Any) -> str:
    if value is None:
        return "unbounded"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _approvers(request: GenerationRequest) -> list[dict[str, Any]]:
    """The approvals of the round that approved the request, with their conditions."""
    decisions = request.decisions.filter(review_round=request.review_round, decision=DecisionKind.APPROVE)
    return [
        {
            "name": d.reviewer_name,
            "role": d.reviewer_role_label,
            "at": d.at.isoformat(),
            "conditions": d.conditions,
        }
        for d in decisions
    ]


def _provenance(
    release: Release, request: GenerationRequest, approvers: list[dict[str, Any]], user: Any
) -> dict[str, Any]:
    receipt = receipt_visible_to(user=user, receipt=release.receipt or {}, is_dp=release.is_dp)
    policy = request.policy
    return provenance_fields(
        release,
        request,
        receipt,
        between={"policy_sha256": policy.sha256 if policy else ""},
        made_by={
            "approvers": approvers,
            "synthesizer": release.synthesizer,
            "options": dict(release.job.options or request.options or {}),
        },
    ) | {"receipt": receipt}


def provenance_fields(
    release: Release,
    request: GenerationRequest,
    receipt: dict[str, Any],
    *,
    between: dict[str, Any],
    made_by: dict[str, Any],
) -> dict[str, Any]:
    """The provenance a data card and a model card share, in the cards' key order: the source and
    policy, then `between` (before the tier), then `made_by` (what made the release), then the run."""
    policy = request.policy
    return {
        "source": release.dataset.name,
        "source_version": release.dataset.version,
        "source_sha256": receipt.get("source_sha256") or release.dataset.sha256,
        "classification_version": release.job.classification_version,
        "policy_version": request.policy_version or (str(policy.number) if policy else ""),
        **between,
        "tier": request.tier_level,
        **made_by,
        "seed": receipt.get("seed"),
        "code_version": receipt.get("code_version"),
        "packages": receipt.get("packages") or {},
    }


def _expiry(release: Release) -> dict[str, Any]:
    from django.utils import timezone

    expires = release.expires_at
    return {
        "expires_at": expires.isoformat() if expires else None,
        "expired": bool(expires and expires <= timezone.now()),
    }


def _label(choices: Any, value: str) -> str:
    return str(choices(value).label) if value in choices.values else value


# --- ONS level and Five Safes ----------------------------------------------------------------------


def ons_level(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """The highest ONS spectrum level whose checks (and every lower level's) all passed."""
    status = {c["name"]: c["status"] for c in checks}
    reached: tuple[str, str, tuple[str, ...], str] | None = None
    stopped_by = ""
    for level in ONS_LEVELS:
        missing = [name for name in level[2] if status.get(name) != PASSED]
        if missing:
            name = missing[0]
            why = (
                "did not run"
                if status.get(name) == NOT_RUN
                else ("is absent" if name not in status else "failed")
            )
            stopped_by = f"{level[1]} not reached: check `{name}` {why}."
            break
        reached = level
    return {
        "level": reached[0] if reached else "none",
        "label": reached[1] if reached else "Below synthetic-structural",
        "meaning": reached[3] if reached else "The released columns do not match the request.",
        "next": stopped_by or ONS_REPLICA_NOTE,
        "rule": "The highest level whose gate checks, and every lower level's, all passed.",
        "levels": [{"level": lv[0], "label": lv[1], "checks": list(lv[2])} for lv in ONS_LEVELS],
        "source": ONS_SOURCE,
    }


def five_safes(card: dict[str, Any]) -> dict[str, str]:
    """Safe projects, people, settings, data and outputs, from the card's own facts."""
    gate = card["gate"]
    approvers = (
        ", ".join(f"{a['name']} ({a['role']})" for a in card["provenance"]["approvers"]) or "none recorded"
    )
    checks = gate["checks"]
    passed = sum(1 for c in checks if c["status"] == PASSED)
    not_run = sum(1 for c in checks if c["status"] == NOT_RUN)
    verdict = (
        "passed" if gate["passed"] else ("failed, published by override" if gate["overridden"] else "failed")
    )
    expiry = (card["expiry"]["expires_at"] or "")[:10] or "never"
    return {
        "projects": f"{card['purpose_category']}: {card['purpose'].rstrip('.')}. Reviewed at tier "
        f"{card['uses']['tier'] or 'unknown'} and approved by {approvers}.",
        "people": f"{card['audience']['label']}: visible to {card['audience']['who_can_see']} "
        f"(access level {card['audience']['access_level']}).",
        "settings": "Served only through the portal to signed-in users it authorizes; every download "
        f"is recorded in the audit log; the file is encrypted at rest (sha256 {card['sha256'][:12]}...); "
        f"expires {expiry}.",
        "data": card["privacy"]["headline"],
        "outputs": f"Release gate {verdict}: {passed} of {len(checks)} checks passed, {not_run} did not run. "
        f"ONS level: {card['ons_level']['label']}.",
    }


# --- Croissant -------------------------------------------------------------------------------------

# The JSON-LD @context of Croissant 1.0 (mlcommons.org/croissant/1.0 spec), with the RAI prefix.
CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
CROISSANT_1_0 = "http://mlcommons.org/croissant/1.0"
CROISSANT_RAI_1_0 = "http://mlcommons.org/croissant/RAI/1.0"
_BOOLEAN_LABELS = frozenset({"0", "1", "true", "false"})
_FILE_ID = "release-csv"
_RECORD_SET_ID = "rows"


def card_to_croissant(card: dict[str, Any], *, download_url: str) -> dict[str, Any]:
    """The card as Croissant 1.0 JSON-LD with the Croissant-RAI 1.0 fields."""
    return {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": [CROISSANT_1_0, CROISSANT_RAI_1_0],
        "name": card["title"],
        "description": f"Synthetic release. Purpose: {card['purpose']} Intended use: {card['intended_use']}",
        "url": download_url,
        # Not an open licence: use is bound by the approval, as rai:dataUseCases spells out.
        "license": "Internal use only, within the permitted uses and audience of this card (rai:dataUseCases).",
        "citeAs": f"SynthGate synthetic release {card['release']} ({card['title']})",
        "datePublished": card["published_at"][:10],
        "version": f"{card['provenance']['source_version']}.{card['provenance']['classification_version']}.0",
        "creator": {"@type": "sc:Organization", "name": card["owner"]["team"] or card["owner"]["requester"]},
        "isAccessibleForFree": False,
        **({"expires": card["expiry"]["expires_at"][:10]} if card["expiry"]["expires_at"] else {}),
        "distribution": [
            {
                "@type": "cr:FileObject",
                "@id": _FILE_ID,
                "name": "release.csv",
                "contentUrl": download_url,
                "encodingFormat": "text/csv",
                "sha256": card["sha256"],
            }
        ],
        "recordSet": [
            {
                "@type": "cr:RecordSet",
                "@id": _RECORD_SET_ID,
                "name": _RECORD_SET_ID,
                "description": f"{card['rows']} synthetic rows, one per synthetic record.",
                "field": [_croissant_field(row) for row in card["data_dictionary"]],
            }
        ],
        **_rai_fields(card),
    }


def _croissant_field(row: dict[str, Any]) -> dict[str, Any]:
    parts = [f"Kind {row['kind'] or 'unknown'}", f"classification {row['classification'] or 'unknown'}"]
    if row["unit"]:
        parts.append(f"unit {row['unit']}")
    parts.append(f"declared domain {row['domain']}")
    return {
        "@type": "cr:Field",
        "@id": f"{_RECORD_SET_ID}/{row['column']}",
        "name": row["column"],
        "description": "; ".join(parts) + ".",
        "dataType": _data_type(row),
        "source": {"fileObject": {"@id": _FILE_ID}, "extract": {"column": row["column"]}},
    }


def _data_type(row: dict[str, Any]) -> str:
    kind = row["kind"]
    if kind == "numeric":
        return "sc:Integer" if row["integer"] else "sc:Float"
    if kind == "boolean" and {str(c).lower() for c in row["categories"]} <= _BOOLEAN_LABELS:
        return "sc:Boolean"
    if kind == "datetime":
        return "sc:DateTime"
    return "sc:Text"


def _rai_fields(card: dict[str, Any]) -> dict[str, Any]:
    privacy = card["privacy"]
    provenance = card["provenance"]
    limitations = [item["statement"] for item in card["limitations"]["items"]]
    if card["limitations"]["withheld"]:
        limitations.append(card["limitations"]["withheld"])
    biases = [
        item["statement"]
        for item in card["limitations"]["items"]
        if item["rule"]
        in ("outcome_prevalence_drift", "column_shape_below_floor", "categories_not_reproduced")
    ] or ["No bias rule fired on the metrics available to this viewer (see rai:dataLimitations)."]
    sensitive = [
        f"Column `{row['column']}` is classified {row['classification']}."
        for row in card["data_dictionary"]
        if row["classification"] in ("quasi_identifier", "sensitive", "direct_identifier")
    ]
    return {
        "rai:hasSyntheticData": True,
        "rai:dataCollection": (
            f"Synthetic rows generated by {provenance['synthesizer']} from source "
            f"{provenance['source']} version {provenance['source_version']} (classification version "
            f"{provenance['classification_version']}, policy version {provenance['policy_version']}); "
            f"approved by {', '.join(a['name'] for a in provenance['approvers']) or 'nobody recorded'}."
        ),
        "rai:dataCollectionType": "Synthetic data generation",
        "rai:dataManipulationProtocol": (
            "Every value was held to the data steward's declared domain before storage: numbers "
            "clipped to bounds and rounded when declared whole, undeclared (rare) categories pooled "
            f'as "{RARE_LABEL}" (set to missing outside categorical columns).'
        ),
        "rai:dataUseCases": [
            *card["uses"]["permitted"],
            *(f"Prohibited: {p}" for p in card["uses"]["prohibited"]),
        ],
        "rai:dataLimitations": [*limitations, *(f"Privacy: {line}" for line in privacy["not_covered"])],
        "rai:dataBiases": biases,
        "rai:personalSensitiveInformation": [privacy["headline"], *sensitive],
        "rai:dataSocialImpact": " ".join(f"Safe {k}: {v}" for k, v in card["five_safes"].items())
        + f" ONS spectrum: {card['ons_level']['label']}.",
        "rai:dataReleaseMaintenancePlan": (
            f"Owned by {card['owner']['team'] or card['owner']['requester']}; "
            + (
                f"expires {card['expiry']['expires_at'][:10]}."
                if card["expiry"]["expires_at"]
                else "no expiry."
            )
        ),
    }
