"""A DP model release's model card and privacy block, assembled from what was measured and decided.

A model release (`Release.kind == "model"`) serves a fitted model (skops) instead of synthetic
rows. Its card (Mitchell et al. 2019, "Model Cards for Model Reporting", adapted to a governed
release) says what the model is for and not for, what it reads and predicts, which population it
was trained on, how it did on the locked holdout (and that the evaluation is outside the DP
guarantee), what the guarantee covers and what it does not, and its limitations. One dict serves
the release page, the exported report, the evidence package and `model_card` in
`GET /api/v1/releases/{id}/`, so they cannot disagree.

Visibility follows the table card's rule (catalog.reports.report_visible_to): the holdout figures
are computed on real rows outside the privacy budget, so only custodians see values; everyone else
sees each gate check's status, threshold and reason, and limitations derived from values do not
fire for them (`limitations.withheld` says so).
"""

from __future__ import annotations

from typing import Any

from approvals.choices import Audience, DecisionKind, PurposeCategory
from approvals.dp import is_custodian
from approvals.models import GenerationRequest

# The table card's reading of the same declarations, and its row for one gate check.
from catalog.cards import _check_row, _data_dictionary, _privacy_fields, provenance_fields
from catalog.models import Release
from catalog.privacy import receipt_visible_to, release_privacy, release_privacy_of
from catalog.reports import model_report_visible_to
from generation.modeling import model_family_label
from generation.models import SourceDataset, SynthesisJob

MODEL_CARD_VERSION = 1

EVALUATION_OUTSIDE_DP = (
    "These figures are computed on the real training rows and the locked holdout, outside the DP "
    "guarantee: the guarantee covers the model's parameters, not this evaluation."
)
WITHHELD_VALUES = (
    "Values are withheld from you: the holdout evaluation is computed on real records outside the "
    "DP guarantee, so only data custodians (privacy officers, stewards, auditors, admins) see its "
    "figures. You see whether each check of the model gate passed, its threshold and its reason."
)
WITHHELD_LIMITATIONS = (
    "Limitations computed from the holdout figures are withheld from you for the same reason; "
    "those shown come from the release's own records (declarations, privacy parameters)."
)

# --- The privacy block of a model release ----------------------------------------------------------

COVERS_MODEL = (
    "The fitted model's parameters (this release's .skops file), and every prediction, score or "
    "statistic computed from them alone: adding or removing one {unit} from the training data "
    "changes the probability of any set of parameters by at most a factor e^epsilon{delta}.",
)
NOT_COVERED_MODEL = (
    "The holdout evaluation (discrimination, calibration, the membership-inference test) and the "
    "model gate's verdict: computed on the real training rows and the locked holdout, outside the "
    "DP guarantee.",
    "The non-private baseline trained in the same job to compare against: it is never released; "
    "only its holdout AUC is reported (to custodians), outside the guarantee.",
    "Preprocessing (feature bounds, scaling, category encodings): taken from the data steward's "
    "declarations, public metadata not derived from the records, so there is nothing to protect "
    "and nothing protected.",
    "Inferences the model makes from inputs someone supplies: DP bounds what the parameters reveal "
    "about any one training record, not what the model predicts about a person whose features are "
    "known (that is the model's purpose, and holds whether or not they were in the training data).",
    "The source's intake profile (row count, column statistics) shown to data custodians, and the "
    "tiering facts the request was reviewed on.",
)


def model_privacy(*, job: SynthesisJob, dataset: SourceDataset) -> dict[str, Any]:
    """The privacy block of the model `job` trained (fixed at publication, `Release.privacy`):
    the NIST SP 800-226 fields of the table block, with what a model's guarantee covers."""
    block = release_privacy(job=job, dataset=dataset)
    if not block.get("dp"):
        # A model release is DP by construction (Release's release_model_is_dp constraint); a job
        # without an epsilon cannot reach here, but the block would never claim a guarantee anyway.
        return block
    delta = f", except with probability delta ({block['delta']})" if block.get("delta") else ""
    # The unit's own caveats (per record, not per patient) and the ledger's come from the table
    # block; its synthetic-rows and validation-report lines are replaced by the model's.
    table_only = {
        "The validation report and the release gate's verdict",
        "The source's intake profile",
        "The tiering facts the request was reviewed on",
        "The declared domain",
    }
    kept = [line for line in block["not_covered"] if not any(line.startswith(t) for t in table_only)]
    return {
        **block,
        "covers": [line.format(unit=block["unit"], delta=delta) for line in COVERS_MODEL],
        "not_covered": [*NOT_COVERED_MODEL, *kept],
    }


# --- The card --------------------------------------------------------------------------------------

OUT_OF_SCOPE_ALWAYS = (
    "Decisions about an individual patient's care, or any automated decision about a person: the "
    "model was validated on one locked holdout of the source, not as a clinical tool.",
    "Use on a population other than the training population (another site, period, age range or "
    "case mix) without validating it there first.",
    "Any attempt to learn whether a person's record was in the training data, or to recover "
    "training records from the model (membership or reconstruction attacks).",
    "Reporting its predictions as findings on real patients without confirming them on real data.",
    "Fine-tuning or retraining it on other sensitive data and re-publishing it: the DP guarantee "
    "covers this model only.",
)


def model_card(*, release: Release, user: Any) -> dict[str, Any]:
    """The model card of `release` (a model release) as `user` may see it (JSON-safe). A federated
    study's model has the card its study fixed at publication (catalog.study_cards)."""
    if release.is_from_study:
        from catalog.study_cards import study_model_card

        return study_model_card(release=release, user=user)
    request: GenerationRequest = release.request
    job: SynthesisJob = release.job
    report = model_report_visible_to(user=user, release=release)
    privacy = release_privacy_of(release)
    spec = model_spec_of(release)
    approvers = _approvers(request)
    checks = [_check_row(c) for c in report["gate"].get("checks") or []]
    card: dict[str, Any] = {
        "card_version": MODEL_CARD_VERSION,
        "kind": "model",
        "release": str(release.pk),
        "title": release.title,
        "model": {
            "family": spec["family"],
            "family_label": spec["family_label"],
            "artifact_format": release.artifact_format,
            "sha256": release.sha256,
            "how_to_load": (
                "Download the .skops file, check its SHA-256 against this card, and load it with "
                "skops.io.load, trusting only the types skops.io.get_untrusted_types lists for it "
                "(scikit-learn estimators). It takes a table with the feature columns below, "
                "numbers as floating point and categories as their declared labels, and "
                "predict_proba(table)[:, 1] is the probability of the target's positive class."
            ),
            "options": spec["options"],
        },
        "intended_use": {
            "purpose": request.purpose,
            "purpose_category": _label(PurposeCategory, request.purpose_category),
            "intended_use": request.intended_use,
            "permitted": _permitted(request, approvers),
            "out_of_scope": _out_of_scope(release),
        },
        "features_and_target": {
            "target": spec["target"],
            "target_meaning": (
                f"The model predicts the probability that `{spec['target']}` is the positive class "
                "(as declared by the data steward)."
            ),
            "features": _features(release, spec),
        },
        "training_population": _population(release, job, report),
        "metrics": _metrics(report, checks),
        "privacy": _privacy_statement(privacy),
        "limitations": _limitations(release, spec, privacy, report),
        "audience": {
            "audience": release.audience,
            "label": _label(Audience, release.audience),
            "who_can_see": _audience_scope(release),
        },
        "expiry": {
            "expires_at": release.expires_at.isoformat() if release.expires_at else None,
            "expired": release.is_expired,
            "withdrawn": release.is_withdrawn,
        },
        "owner": {
            "team": release.team.name if release.team is not None else None,
            "requester": request.requester.get_username(),
        },
        "provenance": _provenance(release, request, approvers, user),
        "sha256": release.sha256,
        "published_at": release.created_at.isoformat(),
    }
    return card


def model_card_summary(release: Release) -> dict[str, Any]:
    """What a catalog list item says about a model: kind, family, target, feature count, format."""
    spec = model_spec_of(release)
    return {
        "kind": release.kind,
        "family": spec["family"],
        "family_label": spec["family_label"],
        "target": spec["target"],
        "features": len(spec["features"]),
        "artifact_format": release.artifact_format,
    }


def model_spec_of(release: Release) -> dict[str, Any]:
    """Family, target and features of a model release, from the receipt recorded at publication
    (catalog.services.build_receipt), falling back to the request's and the job's fields."""
    recorded = (release.receipt or {}).get("model") or {}
    job = release.job
    job_options = dict(job.options or {}) if job is not None else {}
    target = str(
        recorded.get("target") or job_options.get("target") or getattr(release.request, "target", "")
    )
    features = list(recorded.get("features") or [c for c in release.columns if c != target])
    family = str(recorded.get("family") or release.synthesizer)
    label = model_family_label(family)
    options = dict(job_options.get("model_options") or {})
    return {
        "family": family,
        "family_label": label,
        "target": target,
        "features": features,
        "options": options,
    }


# --- Sections ---------------------------------------------------------------------------------------


def _permitted(request: GenerationRequest, approvers: list[dict[str, Any]]) -> list[str]:
    conditions = [c for c in [request.conditions, *(a["conditions"] for a in approvers)] if c]
    permitted = [
        f"{_label(PurposeCategory, request.purpose_category)}: {request.purpose}",
        f"Intended use: {request.intended_use}",
        "Scoring records of the training population (same source, same declared domains) to "
        "estimate the target's probability, for the purpose above.",
    ]
    return permitted + [f"Subject to the approvers' condition: {c}" for c in dict.fromkeys(conditions)]


def _out_of_scope(release: Release) -> list[str]:
    items = list(OUT_OF_SCOPE_ALWAYS)
    items.append(f"Sharing the model outside the approved audience ({_audience_scope(release)}).")
    if release.expires_at:
        items.append(f"Any use after the release expires ({release.expires_at.date().isoformat()}).")
    return items


def _features(release: Release, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Each feature (and the target) as the signed-off declaration the job used describes it: the
    model's preprocessing reads these bounds and categories, never values from the data."""
    rows = []
    for row in _data_dictionary(release):
        role = "target" if row["column"] == spec["target"] else "feature"
        rows.append({**row, "role": role})
    return rows


def _population(release: Release, job: SynthesisJob, report: dict[str, Any]) -> dict[str, Any]:
    metrics = report["metrics"]
    shown = report["full_report"]
    return {
        "source": release.dataset.name,
        "source_version": release.dataset.version,
        "description": (
            f"The training split of {release.dataset.name} version {release.dataset.version}: the rows "
            "the data steward registered, minus the locked holdout drawn at registration, which the "
            "model never saw."
            + (
                f" Records are grouped by `{job.entity_column}` for privacy (one unit per entity)."
                if job.entity_column
                else ""
            )
        ),
        "training_rows": metrics.get("n_members") if shown else None,
        "holdout_rows": metrics.get("n_holdout") if shown else None,
        "rows_note": ""
        if shown
        else "Row counts are counts of real records outside the DP guarantee: custodians see them.",
    }


def _metrics(report: dict[str, Any], checks: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = report["metrics"]
    shown = bool(report["full_report"])
    body: dict[str, Any] = {
        "evaluated_on": "the locked holdout of the source (rows the model never saw), scored once",
        "outside_dp_guarantee": EVALUATION_OUTSIDE_DP,
        "values_shown": shown,
        "values_note": "" if shown else WITHHELD_VALUES,
        "gate": {
            "passed": bool(report["gate"].get("passed")),
            "overridden": bool(report["gate"].get("overridden")),
            "override": report["gate"].get("override"),
            "checks": checks,
        },
    }
    if not shown:
        return body
    calibration = metrics.get("calibration") or {}
    membership = metrics.get("membership") or {}
    auc = metrics.get("auc") or {}
    baseline = metrics.get("baseline_auc") or {}
    body.update(
        auc=auc.get("value"),
        auc_ci=auc.get("ci"),
        baseline_auc=baseline.get("value"),
        auc_ratio=metrics.get("auc_ratio"),
        auc_ratio_ci=metrics.get("auc_ratio_ci"),
        ece=calibration.get("ece"),
        ece_p_value=calibration.get("ece_p_value"),
        brier=calibration.get("brier"),
        membership_auc=membership.get("auc"),
        membership_auc_ci=membership.get("ci"),
        empirical_epsilon_lower=membership.get("empirical_epsilon_lower"),
        status=metrics.get("status") or {},
    )
    return body


def _privacy_statement(privacy: dict[str, Any]) -> dict[str, Any]:
    if privacy.get("dp"):
        headline = (
            f"The model's parameters are differentially private ({privacy.get('flavour')}) per "
            f"{privacy.get('unit')}: epsilon {privacy.get('epsilon')}, delta {privacy.get('delta')}. "
            "The holdout evaluation is outside the DP guarantee."
        )
    else:
        headline = "Not differentially private: no adversary is bounded."
    return _privacy_fields(privacy, headline, "mechanisms")


# Below this AUC ratio (DP model against the non-private baseline) the noise cost is worth a line.
AUC_RATIO_NOTE_BELOW = 0.95
# Calibration: miscalibration is real when it is unlikely under a perfectly calibrated model.
ECE_P_VALUE_BELOW = 0.05
# Membership inference: an attack AUC whose interval sits above this is worth a line.
MEMBERSHIP_AUC_NOTE_ABOVE = 0.55


def _limitations(
    release: Release, spec: dict[str, Any], privacy: dict[str, Any], report: dict[str, Any]
) -> dict[str, Any]:
    """What the model cannot be trusted for, each with the rule that fired."""
    items = [
        _limitation(
            "dp_noise",
            f"The parameters were fitted with DP noise at epsilon {privacy.get('epsilon')}: the "
            "model is less accurate than a non-private fit on the same rows, most for rare "
            "feature combinations and small subgroups.",
        ),
        _limitation(
            "single_holdout",
            "It was evaluated once, on a holdout drawn from the same source and period: there is no "
            "external or temporal validation.",
        ),
        _limitation(
            "declared_domain",
            "Inputs outside the steward's declared bounds are clipped and undeclared categories are "
            "treated as unknown: predictions for such records are extrapolations.",
        ),
    ]
    if privacy.get("unit") != "patient":
        items.append(
            _limitation(
                "record_unit",
                "The privacy unit is one record: a patient with several rows is protected at about "
                "k times epsilon.",
            )
        )
    metrics = report["metrics"] if report["full_report"] else {}
    ratio = metrics.get("auc_ratio")
    if isinstance(ratio, (int, float)) and ratio < AUC_RATIO_NOTE_BELOW:
        items.append(
            _limitation(
                "auc_below_baseline",
                f"Its holdout AUC is {ratio:.3f} of the non-private baseline's: DP cost discrimination.",
                value=ratio,
                threshold=AUC_RATIO_NOTE_BELOW,
            )
        )
    calibration = metrics.get("calibration") or {}
    p_value = calibration.get("ece_p_value")
    if isinstance(p_value, (int, float)) and p_value < ECE_P_VALUE_BELOW:
        items.append(
            _limitation(
                "miscalibrated",
                f"Its probabilities are miscalibrated on the holdout (ECE {calibration.get('ece')}, "
                f"p = {p_value}): read them as a ranking, not as risks, or recalibrate on real data.",
                value=calibration.get("ece"),
                threshold=ECE_P_VALUE_BELOW,
            )
        )
    ci = (metrics.get("membership") or {}).get("ci") or [None, None]
    if isinstance(ci[0], (int, float)) and ci[0] > MEMBERSHIP_AUC_NOTE_ABOVE:
        items.append(
            _limitation(
                "membership_signal",
                f"A loss-threshold attack told training rows from holdout rows better than chance "
                f"(AUC interval {ci[0]} to {ci[1]}): within epsilon, but measurable.",
                value=ci[0],
                threshold=MEMBERSHIP_AUC_NOTE_ABOVE,
            )
        )
    return {"items": items, "withheld": "" if report["full_report"] else WITHHELD_LIMITATIONS}


def _limitation(rule: str, statement: str, **values: Any) -> dict[str, Any]:
    return {"rule": rule, "statement": statement, **values}


def _provenance(
    release: Release, request: GenerationRequest, approvers: list[dict[str, Any]], user: Any
) -> dict[str, Any]:
    receipt = receipt_visible_to(user=user, receipt=release.receipt or {}, is_dp=release.is_dp)
    return provenance_fields(
        release, request, receipt, between={}, made_by={"approvers": approvers, "family": release.synthesizer}
    ) | {"custodian_view": is_custodian(user)}


def _approvers(request: GenerationRequest) -> list[dict[str, Any]]:
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


def _audience_scope(release: Release) -> str:
    if release.audience == Audience.INTERNAL:
        return f"team {release.team.name}" if release.team is not None else "the requester's team"
    if release.audience == Audience.ORGANIZATION:
        return "every signed-in user of the organization"
    return "the named external recipients the request was approved for"


def _label(choices: Any, value: str) -> str:
    return str(choices(value).label) if value in choices.values else value
