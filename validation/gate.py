"""The release gate: every check must pass, and a check that could not run fails (fail closed).

Threshold names end in `_min` (utility floors: the value must be at least this) or `_max` (privacy
ceilings: at most this), and every threshold is a number from 0 to 1, so the policy engine can
merge tiers by "stricter wins" without knowing what each one measures. docs/validation.md explains
each key and why its default is what it is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Defaults when the request's tier sets none. The policy engine supplies per-tier values.
DEFAULT_THRESHOLDS: dict[str, float] = {
    # Utility floors
    "column_shape_min": 0.75,
    "column_pair_trend_min": 0.50,
    "missingness_similarity_min": 0.70,
    "tstr_auc_ratio_min": 0.80,
    "bound_violation_rate_max": 0.0,
    # Privacy ceilings
    "exact_copy_rate_max": 0.01,
    "replicated_uniques_rate_max": 0.0,
    "mia_auc_max": 0.60,
    "singling_out_risk_max": 0.15,
    "linkability_risk_max": 0.15,
    "inference_risk_max": 0.15,
}

UTILITY = "utility"
PRIVACY = "privacy"


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    threshold: float
    passed: bool
    direction: str  # "min": value must be >= threshold; "max": value must be <= threshold
    kind: str = UTILITY  # "utility" or "privacy": what a failure means
    error: str = ""  # the exception type when the metric could not run (it then fails)
    ci: tuple[float | None, float | None] | None = None  # 95% interval of an estimated value

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci"] = list(self.ci) if self.ci is not None else None
        return data


def check_min(
    name: str, value: float | None, threshold: float, *, kind: str = UTILITY, error: str = ""
) -> Check:
    return Check(name, value, threshold, value is not None and value >= threshold, "min", kind, error)


def check_max(
    name: str, value: float | None, threshold: float, *, kind: str = PRIVACY, error: str = ""
) -> Check:
    return Check(name, value, threshold, value is not None and value <= threshold, "max", kind, error)


def _interval(ci: Any) -> tuple[float | None, float | None] | None:
    return (ci[0], ci[1]) if ci is not None and len(ci) == 2 else None


def check_estimate_max(
    name: str, value: float | None, threshold: float, *, ci: Any, null: float, error: str = ""
) -> Check:
    """A privacy ceiling on an attack's estimated success: breached when the estimate is above the
    ceiling *and* its 95% interval excludes `null` (the no-advantage level: risk 0, AUC 0.5).

    Without the second condition a small holdout (120 rows) fails good releases at random; with
    it, an attack that demonstrably works and exceeds the ceiling still fails the release, and a
    missing value or interval still fails closed.
    """
    interval = _interval(ci)
    if value is None or interval is None or interval[0] is None:
        return Check(name, value, threshold, False, "max", PRIVACY, error or "MissingValue", interval)
    breached = value > threshold and interval[0] > null
    return Check(name, value, threshold, not breached, "max", PRIVACY, error, interval)


def check_estimate_min(
    name: str, value: float | None, threshold: float, *, ci: Any, error: str = ""
) -> Check:
    """A utility floor on a noisy estimate: failed when even the interval's upper end is below it."""
    interval = _interval(ci)
    if value is None or interval is None or interval[1] is None:
        return Check(name, value, threshold, False, "min", UTILITY, error or "MissingValue", interval)
    return Check(
        name,
        value,
        threshold,
        value >= threshold or interval[1] >= threshold,
        "min",
        UTILITY,
        error,
        interval,
    )


def thresholds_with_defaults(overrides: dict[str, Any] | None) -> dict[str, float]:
    """The defaults, with each known key the policy sets replaced; unknown keys are ignored (the
    policy loader rejects them at publication, so an unknown key here is a newer policy)."""
    merged = dict(DEFAULT_THRESHOLDS)
    for key, value in (overrides or {}).items():
        if key in merged and value is not None:
            merged[key] = float(value)
    return merged
