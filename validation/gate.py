"""The release gate: every check is `passed`, `failed` or `not_run` (with a reason in plain words).

A check whose metric raised fails closed. A check that was deliberately not run (too few rows for
the attack to mean anything, no outcome to predict, no quasi-identifier to link on) says why; it
blocks the release only when the tier's policy lists it in `required_checks`, and then it is also
named in `needs_acknowledgement` so a privacy officer can acknowledge it explicitly.

Threshold names end in `_min` (utility floors: the value must be at least this) or `_max` (privacy
ceilings: at most this), and every threshold is a number from 0 to 1, so the policy engine can
merge tiers by "stricter wins" without knowing what each one measures. docs/validation.md explains
each key and why its default is what it is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
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
PASSED, FAILED, NOT_RUN = "passed", "failed", "not_run"
# The policy key (inside a tier's `gate`) listing the checks that must run at that tier.
REQUIRED_CHECKS_KEY = "required_checks"
CHECK_NAMES = (
    "requested_columns_present",
    "column_shape_similarity",
    "column_pair_trend_similarity",
    "missingness_similarity",
    "bound_violation_rate",
    "tstr_auc_ratio",
    "exact_copy_rate",
    "replicated_uniques_rate",
    "membership_inference_auc",
    "singling_out_risk",
    "linkability_risk",
    "inference_risk",
    "dp_empirical_epsilon",
)
# The checks of kind PRIVACY (validation.suite._privacy_checks): a failure means an attack on the
# release worked. Named here for readers of stored reports written before checks carried `kind`.
PRIVACY_CHECK_NAMES = frozenset(
    {
        "exact_copy_rate",
        "replicated_uniques_rate",
        "membership_inference_auc",
        "singling_out_risk",
        "linkability_risk",
        "inference_risk",
        "dp_empirical_epsilon",
    }
)
# Value-free sentences for an error that made a check fail closed (shown to every viewer).
_ERROR_REASONS = {
    "HoldoutUnavailable": "This dataset has no locked holdout, so the test has no unseen people to "
    "compare with; it fails closed. Re-register the dataset to get a holdout.",
    "MissingValue": "The test produced no usable value or interval, so it fails closed.",
}
_ERROR_REASON = (
    "The test could not be computed (an internal error, named in the job log), so it fails closed."
)


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
    status: str = ""  # "passed", "failed" or "not_run"; derived from `passed` when not given
    reason: str = ""  # plain words, value-free: why it did not run, or why it failed closed
    required: bool = False  # the tier's policy lists it in required_checks
    applicable: bool = True  # False when the release has nothing this check could test
    seconds: float | None = None  # wall time of the metrics this check reads

    def __post_init__(self) -> None:
        if not self.status:
            object.__setattr__(self, "status", PASSED if self.passed else FAILED)
        if self.error and not self.reason:
            object.__setattr__(self, "reason", _ERROR_REASONS.get(self.error, _ERROR_REASON))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci"] = list(self.ci) if self.ci is not None else None
        return data


def not_run(
    name: str,
    threshold: float,
    direction: str,
    kind: str,
    reason: str,
    *,
    value: float | None = None,
    ci: Any = None,
    applicable: bool = True,
) -> Check:
    """A check that was deliberately not judged. It does not block the release unless the tier
    requires it (`apply_required`). Any value measured anyway is kept for reviewers."""
    return Check(
        name, value, threshold, True, direction, kind, "", _interval(ci), NOT_RUN, reason,
        applicable=applicable,
    )  # fmt: skip


def apply_required(checks: list[Check], required: Any) -> list[Check]:
    """Mark the checks the tier requires; a required check that could have applied but did not
    run blocks the release (until a privacy officer acknowledges it, see needs_acknowledgement)."""
    names = set(required_checks({REQUIRED_CHECKS_KEY: required}))
    marked = []
    for check in checks:
        is_required = check.name in names
        blocks = is_required and check.status == NOT_RUN and check.applicable
        marked.append(replace(check, required=is_required, passed=check.passed and not blocks))
    return marked


def required_checks(thresholds: dict[str, Any] | None) -> list[str]:
    """The known check names a policy's gate lists as required (unknown names are ignored)."""
    listed = (thresholds or {}).get(REQUIRED_CHECKS_KEY) or []
    if isinstance(listed, str):
        listed = [listed]
    return [name for name in CHECK_NAMES if name in {str(n) for n in listed}]


def needs_acknowledgement(checks: list[dict[str, Any]]) -> list[str]:
    """Required checks that did not run and so block the release: a privacy officer may publish
    anyway only by acknowledging each of them by name."""
    return [
        str(c.get("name"))
        for c in checks
        if c.get("status") == NOT_RUN and c.get("required") and not c.get("passed")
    ]


def gate_passes(checks: list[dict[str, Any]], *, acknowledged: Any = ()) -> bool:
    """The verdict over stored checks: every check passes, counting a blocking not-run check as
    passed only when it is among `acknowledged` (names a privacy officer acknowledged)."""
    waived = set(acknowledged or ())
    return all(c.get("passed") or (c.get("status") == NOT_RUN and c.get("name") in waived) for c in checks)


def check_status(check: dict[str, Any]) -> str:
    """A stored check's status; reports made before statuses existed have only `passed`."""
    return str(check.get("status") or (PASSED if check.get("passed") else FAILED))


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
        # required_checks is a list, not a threshold: read it with required_checks().
        if key in merged and value is not None:
            merged[key] = float(value)
    return merged
