"""Bake-offs: a request that names several candidates (synthesizer, epsilon for DP ones, options),
each fitted and validated by its own job; one that passes the gate is chosen and published.

- Filing: every candidate is checked as a single request would be (known synthesizer, epsilon only
  for DP ones, options the synthesizer accepts, declared domains for DP), at most
  `max_candidates` of the active policy's most permissive tier; `auto` is the default set.
- Submission: the tier's `max_candidates` applies (400 over it), and the policy sees the riskiest
  candidate (any non-DP candidate makes it a non-DP request; otherwise the largest epsilon).
- Approval reserves every DP candidate's epsilon (the request's epsilon is their sum); non-DP
  candidates cost nothing.
- Choosing: the requester picks among the candidates that passed the gate (a privacy officer, for
  a high tier); the recommendation is the passing candidate with the best utility score.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import mean
from typing import Any

from approvals.dp import check_domain_declared, validate_delta
from core.errors import ValidationFailed
from core.roles import PortalUser, Role, has_role
from generation.models import SourceDataset
from generation.services import epsilon_to_micro
from generation.synthesizers import REGISTRY, synthesizer_for, takes_time_budget
from generation.synthesizers import with_time_budget as synthesizer_time_budget
from validation.metrics.privacy import membership_advantage

# GenerationRequest.synthesizer of a bake-off: its candidates name the synthesizers.
BAKEOFF = "bakeoff"
AUTO = "auto"
# What `auto` runs: the robust default and the two deep models (none spends epsilon).
AUTO_CANDIDATES: tuple[dict[str, Any], ...] = (
    {"synthesizer": "gaussian_copula", "epsilon": None, "options": {}},
    {"synthesizer": "ctgan", "epsilon": None, "options": {}},
    {"synthesizer": "tvae", "epsilon": None, "options": {}},
)
# When the policy does not say: enough to compare, few enough to stay cheap.
DEFAULT_MAX_CANDIDATES = 4
# The whole `auto` bake-off's wall-clock budget when the tier sets no `synthesis_time_budget_s`.
DEFAULT_AUTO_TIME_BUDGET_S = 900
MIN_CANDIDATE_TIME_BUDGET_S = 10  # generation.synthesizers.sdv_deep's lower bound


def policy_max_candidates(tiers: dict[str, Any]) -> int:
    """The largest `max_candidates` of any tier (the cap at filing, before the tier is known)."""
    caps = [
        int(t.get("max_candidates") or DEFAULT_MAX_CANDIDATES)
        for t in tiers.values()
        if t.get("required_approvals")
    ]
    return max(caps or [DEFAULT_MAX_CANDIDATES])


def tier_max_candidates(controls: dict[str, Any]) -> int:
    return int((controls or {}).get("max_candidates") or DEFAULT_MAX_CANDIDATES)


def _fail(index: int, message: str, code: str = "invalid_candidate") -> ValidationFailed:
    return ValidationFailed(
        f"Candidate {index + 1}: {message}", code=code, fields={"candidates": f"[{index}] {message}"}
    )


def _clean_one(index: int, raw: Any, dataset: SourceDataset, columns: list[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(index, "must be an object {synthesizer, epsilon, options}.")
    name = str(raw.get("synthesizer") or "")
    cls = REGISTRY.get(name)
    if cls is None:
        raise _fail(index, f"unknown synthesizer; choose one of {', '.join(sorted(REGISTRY))}.")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise _fail(index, "options must be an object.")
    epsilon = raw.get("epsilon")
    if cls.is_dp:
        try:
            epsilon_micro: int | None = epsilon_to_micro(epsilon)
        except ValidationFailed as exc:
            raise _fail(index, exc.message) from None
    elif epsilon not in (None, ""):
        raise _fail(index, f"{name} is not differentially private, so it takes no epsilon.")
    else:
        epsilon_micro = None
    try:
        delta_atto = validate_delta(name, raw.get("delta"))
        # Constructing the synthesizer checks the options (names and ranges) without any data.
        synthesizer_for(name, epsilon=str(epsilon) if cls.is_dp else None, options=options or None)
    except (ValidationFailed, ValueError, TypeError) as exc:
        raise _fail(index, getattr(exc, "message", str(exc))) from None
    if cls.is_dp:
        check_domain_declared(dataset, columns, name)
    return {"synthesizer": name, "epsilon_micro": epsilon_micro, "delta_atto": delta_atto, "options": options}


def clean_candidates(
    raw: Any, *, dataset: SourceDataset, columns: list[str], cap: int
) -> tuple[list[dict[str, Any]], bool]:
    """The candidates as stored on the request, and whether they are the `auto` set."""
    auto = raw == AUTO
    items = [dict(c) for c in AUTO_CANDIDATES if c["synthesizer"] in REGISTRY][:cap] if auto else raw
    if not isinstance(items, list) or len(items) < 2:
        raise ValidationFailed(
            'A bake-off needs at least two candidates (or "auto" for the default set).',
            code="invalid_candidates",
            fields={"candidates": "too_few"},
        )
    if len(items) > cap:
        raise ValidationFailed(
            f"At most {cap} candidates per bake-off under the active policy; remove {len(items) - cap}.",
            code="too_many_candidates",
            fields={"candidates": "too_many"},
        )
    cleaned = [_clean_one(i, item, dataset, columns) for i, item in enumerate(items)]
    seen = [(c["synthesizer"], c["epsilon_micro"], sorted(c["options"].items())) for c in cleaned]
    if len({repr(s) for s in seen}) != len(seen):
        raise ValidationFailed(
            "Two candidates are identical; make each one different.",
            code="invalid_candidates",
            fields={"candidates": "duplicate"},
        )
    return cleaned, auto


def with_time_budget(
    candidates: list[dict[str, Any]], *, auto: bool, controls: dict[str, Any]
) -> list[dict[str, Any]]:
    """The candidates as queued. For `auto`, the tier's time budget (policy key
    `synthesis_time_budget_s`) is split between the candidates that train for a time (the deep
    models stop after the epoch that reaches their share), so the whole set fits in it; the
    requester's own candidates keep their options."""
    if not auto:
        return candidates
    budget = int((controls or {}).get("synthesis_time_budget_s") or DEFAULT_AUTO_TIME_BUDGET_S)
    timed = [i for i, c in enumerate(candidates) if takes_time_budget(c["synthesizer"])]
    share = max(MIN_CANDIDATE_TIME_BUDGET_S, budget // max(len(timed), 1))
    return [
        {**c, "options": synthesizer_time_budget(c["synthesizer"], c.get("options"), share)}
        if i in timed
        else c
        for i, c in enumerate(candidates)
    ]


def total_budget(candidates: list[dict[str, Any]]) -> tuple[int | None, int | None]:
    """(sum of DP epsilons, sum of deltas) in micro-epsilon / atto-delta; None when no DP candidate."""
    epsilons = [c["epsilon_micro"] for c in candidates if c.get("epsilon_micro") is not None]
    deltas = [c["delta_atto"] for c in candidates if c.get("delta_atto")]
    return (sum(epsilons) if epsilons else None, sum(deltas) if deltas else None)


def riskiest(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """The candidate the policy judges the request by: any non-DP one, else the largest epsilon."""
    plain = [c for c in candidates if c.get("epsilon_micro") is None]
    if plain:
        return plain[0]
    return max(candidates, key=lambda c: (c["epsilon_micro"], c.get("delta_atto") or 0))


def choose_refusal(actor: PortalUser, *, requester_id: Any, tier_level: str) -> str:
    """Who picks the published candidate: the requester; for a high tier, a privacy officer."""
    if tier_level == "high":
        if not has_role(actor, Role.PRIVACY_OFFICER) or actor.pk == requester_id:
            return "This request is high tier: a privacy officer (not the requester) picks the candidate to publish."
        return ""
    if actor.pk != requester_id:
        return "Only the requester picks which candidate is published."
    return ""


# --- Scores for the table, the Pareto plot and the recommendation -------------------------------

_UTILITY = (
    "column_shape_similarity",
    "column_pair_trend_similarity",
    "missingness_similarity",
    "tstr_auc_ratio",
)
_RISKS = (
    "singling_out_risk",
    "linkability_risk",
    "inference_risk",
    "exact_copy_rate",
    "replicated_uniques_rate",
)


@dataclass(frozen=True)
class Score:
    utility: float | None  # mean of the utility checks' values (higher is better)
    privacy_risk: float | None  # worst attack advantage (lower is better), MIA AUC mapped to 0..1


def score(checks: list[dict[str, Any]]) -> Score:
    values: dict[Any, float] = {
        c.get("name"): c["value"] for c in checks if isinstance(c.get("value"), int | float)
    }
    utility = [float(values[n]) for n in _UTILITY if n in values]
    risks = [float(values[n]) for n in _RISKS if n in values]
    if "membership_inference_auc" in values:
        risks.append(membership_advantage(values["membership_inference_auc"]))
    return Score(round(mean(utility), 4) if utility else None, round(max(risks), 4) if risks else None)


def recommend(rows: list[dict[str, Any]]) -> int | None:
    """Index of the passing candidate with the best utility (ties: lower risk, then less epsilon)."""
    passing = [r for r in rows if r["passed"]]
    if not passing:
        return None
    best = max(
        passing,
        key=lambda r: (
            r["score"].utility if r["score"].utility is not None else -1.0,
            -(r["score"].privacy_risk if r["score"].privacy_risk is not None else 1.0),
            -(r["epsilon_micro"] or 0),
        ),
    )
    return int(best["index"])
