"""Risk tiering: which tier a request falls in, why, and the controls that tier requires.

A small rule set for the foundation; the policy-as-code issue replaces it with versioned rules
loaded from a file. Every rule that fires adds a plain-language reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from approvals.choices import Audience, TierLevel
from generation.choices import Classification

POLICY_VERSION = "foundation-1"
_ORDER = [TierLevel.LOW, TierLevel.MEDIUM, TierLevel.HIGH, TierLevel.PROHIBITED]

CONTROLS: dict[str, dict[str, Any]] = {
    TierLevel.LOW: {
        "required_approvals": 1,
        "gate": {"column_shape_min": 0.70, "exact_copy_rate_max": 0.02},
        "expiry_days": 365,
    },
    TierLevel.MEDIUM: {
        "required_approvals": 1,
        "gate": {"column_shape_min": 0.75, "exact_copy_rate_max": 0.01},
        "expiry_days": 180,
    },
    TierLevel.HIGH: {
        "required_approvals": 2,
        "gate": {"column_shape_min": 0.80, "exact_copy_rate_max": 0.005},
        "expiry_days": 90,
    },
    TierLevel.PROHIBITED: {"required_approvals": 0, "gate": {}, "expiry_days": 0},
}


@dataclass(frozen=True)
class RequestFacts:
    audience: str
    is_dp: bool
    epsilon: float | None
    classifications: dict[str, str]  # requested column -> classification
    rows: int
    source_rows: int


@dataclass
class Tier:
    level: str = TierLevel.LOW
    reasons: list[str] = field(default_factory=list)

    def raise_to(self, level: str, reason: str) -> None:
        if _ORDER.index(TierLevel(level)) > _ORDER.index(TierLevel(self.level)):
            self.level = level
        self.reasons.append(reason)

    def controls(self, *, audience: str) -> dict[str, Any]:
        return {**CONTROLS[self.level], "access_level": audience}


def _names(facts: RequestFacts, classification: str) -> list[str]:
    return sorted(n for n, c in facts.classifications.items() if c == classification)


def assess(facts: RequestFacts) -> Tier:
    tier = Tier()
    direct = _names(facts, Classification.DIRECT_IDENTIFIER)
    if direct:
        tier.raise_to(
            TierLevel.PROHIBITED, f"Direct identifiers requested ({', '.join(direct)}): never synthesized."
        )
    if facts.audience == Audience.EXTERNAL and not facts.is_dp:
        tier.raise_to(
            TierLevel.HIGH, "External audience without differential privacy: two approvals required."
        )
    elif facts.audience == Audience.ORGANIZATION:
        tier.raise_to(TierLevel.MEDIUM, "Shared with the whole organization, not one team.")
    quasi = _names(facts, Classification.QUASI_IDENTIFIER)
    if len(quasi) >= 3:
        level = (
            TierLevel.HIGH if facts.audience != Audience.INTERNAL and len(quasi) >= 5 else TierLevel.MEDIUM
        )
        tier.raise_to(level, f"{len(quasi)} quasi-identifiers requested together ({', '.join(quasi)}).")
    sensitive = _names(facts, Classification.SENSITIVE)
    if sensitive:
        tier.raise_to(TierLevel.MEDIUM, f"Sensitive columns requested ({', '.join(sensitive)}).")
    if facts.source_rows and facts.rows > 5 * facts.source_rows:
        tier.raise_to(
            TierLevel.MEDIUM, f"{facts.rows} rows requested from a {facts.source_rows}-row source (over 5x)."
        )
    if not tier.reasons:
        tier.reasons.append("Internal audience, no quasi-identifier or sensitive columns: low risk.")
    return tier
