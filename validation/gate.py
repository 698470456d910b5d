"""The release gate: every check must pass, and a check that could not run fails (fail closed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Defaults when the request's tier sets none. The policy engine supplies per-tier values.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "column_shape_min": 0.75,
    "exact_copy_rate_max": 0.01,
}


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    threshold: float
    passed: bool
    direction: str  # "min": value must be >= threshold; "max": value must be <= threshold

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_min(name: str, value: float | None, threshold: float) -> Check:
    return Check(name, value, threshold, value is not None and value >= threshold, "min")


def check_max(name: str, value: float | None, threshold: float) -> Check:
    return Check(name, value, threshold, value is not None and value <= threshold, "max")


def thresholds_with_defaults(overrides: dict[str, Any] | None) -> dict[str, float]:
    merged = dict(DEFAULT_THRESHOLDS)
    for key, value in (overrides or {}).items():
        if key in merged and value is not None:
            merged[key] = float(value)
    return merged
