"""The model card of a federated study's release (origin "study"), as a given user may see it.

The study's layer (federation) fixed the card on the release at publication (`Release.card`):
the sites, the rounds and their log, the per-site gate on each site's locked holdout and the
privacy statement in its unit. The catalog shows it without importing federation. Per-site
figures are computed on the sites' real rows, outside the DP guarantee: custodians see them;
everyone else sees each check's name, threshold and result (as for a DP model's report).
"""

from __future__ import annotations

from typing import Any

from approvals.dp import dp_gate_visible_to, is_custodian
from catalog.models import Release
from catalog.privacy import release_privacy_of
from generation.modeling import model_family_label

STUDY_CARD_VERSION = 1

HOW_TO_LOAD_NPZ = (
    "Download the .npz file, check its SHA-256 against this card, and load it with "
    "numpy.load(path, allow_pickle=False): arr_0 is the logistic regression's coefficients (one "
    "per encoded feature) and arr_1 its intercept, over the features as the sites' declarations "
    "encode them (the study's schema hash)."
)


def study_model_card(*, release: Release, user: Any) -> dict[str, Any]:
    """The card of a study-origin release (JSON-safe): what, where (sites), how (rounds, round log),
    under which guarantee (unit, epsilons), how it scored at each site, and who may use it."""
    stored = dict(release.card or {})
    privacy = release_privacy_of(release)
    custodian = is_custodian(user)
    family = str(stored.get("model_family") or release.synthesizer)
    features = [str(f) for f in stored.get("features") or []]
    target = str(stored.get("target") or "")
    return {
        "card_version": STUDY_CARD_VERSION,
        "kind": "model",
        "origin": release.origin,
        "release": str(release.pk),
        "study": str(release.origin_ref),
        "title": release.title,
        "model": {
            "family": family,
            "family_label": model_family_label(family),
            "artifact_format": release.artifact_format,
            "sha256": release.sha256,
            "how_to_load": HOW_TO_LOAD_NPZ,
        },
        "features_and_target": {
            "target": target,
            "features": [{"column": f, "role": "feature"} for f in features]
            + ([{"column": target, "role": "target"}] if target else []),
        },
        "sites": [_site(site, user=user, custodian=custodian) for site in stored.get("sites") or []],
        "sources": sources_visible_to(user=user, release=release),
        "training": {
            "rounds_planned": stored.get("rounds_planned"),
            "rounds_completed": stored.get("rounds_completed"),
            "min_sites": stored.get("min_sites"),
            "local_epochs": stored.get("local_epochs"),
            "secure_aggregation": stored.get("secure_aggregation"),
        },
        "round_log": list(stored.get("round_log") or []),
        "evaluation": stored.get("evaluation") or "",
        "privacy": {
            "dp": bool(privacy.get("dp")),
            "unit": privacy.get("unit"),
            "neighbouring": privacy.get("neighbouring"),
            "epsilon": privacy.get("epsilon"),
            "delta": privacy.get("delta"),
            "statement": (stored.get("privacy") or {}).get("statement") or "",
            "study": dict(stored.get("privacy") or {}),
        },
        "audience": {"audience": release.audience, "who_can_see": _who_can_see(release)},
        "expiry": {
            "expires_at": release.expires_at.isoformat() if release.expires_at else None,
            "expired": release.is_expired,
            "withdrawn": release.is_withdrawn,
        },
        "owner": {
            "team": release.team.name if release.team is not None else None,
            "requester": release.requester_name,
        },
        "tier": stored.get("tier"),
        "policy_version": stored.get("policy_version"),
        "sha256": release.sha256,
        "published_at": release.created_at.isoformat(),
    }


def sources_visible_to(*, user: Any, release: Release) -> list[dict[str, Any]]:
    """The site datasets of a study's release. Training rows are a count of real records outside
    the guarantee (a DP model release states none): custodians see them, nobody else does."""
    custodian = is_custodian(user)
    hidden = () if custodian else ("training_rows",)
    return [
        {k: v for k, v in source.items() if k not in hidden}
        for source in release.sources or []
        if isinstance(source, dict)
    ]


def _site(site: Any, *, user: Any, custodian: bool) -> dict[str, Any]:
    """One site's line: name, dataset, steward and its gate (values for custodians only)."""
    if not isinstance(site, dict):
        return {}
    gate = dp_gate_visible_to(
        user=user,
        gate={"passed": bool(site.get("gate_passed")), "checks": list(site.get("gate_checks") or [])},
        is_dp=True,
    )
    return {
        "name": site.get("name"),
        "dataset": site.get("dataset"),
        "steward": site.get("steward"),
        "schema_hash": site.get("schema_hash"),
        "gate_passed": site.get("gate_passed"),
        "gate_checks": list(gate.get("checks") or []),
        "metrics": site.get("metrics") if custodian else None,
    }


def _who_can_see(release: Release) -> str:
    if release.audience == "internal":
        return f"team {release.team.name}" if release.team is not None else "the study's requester"
    if release.audience == "organization":
        return "every signed-in user of the organization"
    return "the named external recipients the study was approved for"
