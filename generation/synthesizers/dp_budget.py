"""Exact epsilon (and delta) accounting inside one DP synthesis run.

Budgets are whole micro-epsilon, as in the portal's ledger (`generation.services.epsilon_to_micro`),
so a split of the requested epsilon into mechanism shares is integer arithmetic and the shares add
up to the request exactly. Each mechanism is handed a float that is never above its share: the
float nearest the decimal share, stepped down one ulp when rounding went up. diffprivlib only takes
floats; stepping down keeps the run within what is accounted.

This is not the portal's budget ledger (that is the job service's business): it records what the
synthesizer's own mechanisms consumed, so the job can check it against what was reserved.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

MICRO = Decimal("0.000001")


def parse_epsilon(value: float | int | str | Decimal) -> Decimal:
    """The requested epsilon as an exact Decimal of whole micro-epsilon, or a ValueError."""
    try:
        # str() first, so a float 0.1 means the decimal 0.1 the user typed, not its binary expansion.
        epsilon = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ValueError("Epsilon must be a positive number.") from None
    if isinstance(value, bool) or not epsilon.is_finite() or epsilon <= 0:
        raise ValueError("Epsilon must be a positive number.")
    if epsilon % MICRO:
        raise ValueError("Epsilon must be a whole number of micro-epsilon (at most 6 decimal places).")
    return epsilon


def split_epsilon(total: Decimal, fraction: Decimal) -> tuple[Decimal, Decimal]:
    """(total - part, part) with part = floor(total * fraction) in micro-epsilon; both at least 1."""
    micro = int(total / MICRO)
    part = int(Decimal(micro) * fraction)  # int() truncates: the split never exceeds the total
    if part < 1 or micro - part < 1:
        raise ValueError(
            f"Epsilon {total} is too small to split between the marginals and the correlations; "
            "request a larger epsilon."
        )
    return Decimal(micro - part) * MICRO, Decimal(part) * MICRO


def mechanism_epsilon(share: Decimal) -> float:
    """The largest float not above `share`: what a diffprivlib mechanism may be given."""
    as_float = float(share)
    if Decimal(as_float) > share:
        as_float = math.nextafter(as_float, 0.0)
    return as_float


def mechanism_epsilon_each(share: Decimal, parts: int) -> float:
    """The largest float f with parts x f <= share exactly (f is what each of `parts` mechanisms that
    split `share` equally may be given; checked in exact rational arithmetic)."""
    target = Fraction(share) / parts
    each = float(target)
    while Fraction(each) > target:
        each = math.nextafter(each, 0.0)
    return each


def parse_delta(value: Any, *, low: Decimal, high: Decimal) -> Decimal:
    """Option `delta` as an exact Decimal (a float means the decimal that was typed)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"Option 'delta' must be a number between {low} and {high}.")
    try:
        delta = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"Option 'delta' must be a number between {low} and {high}.") from None
    if not delta.is_finite() or not low <= delta <= high:
        raise ValueError(f"Option 'delta' must be between {low} and {high} (got {value}).")
    return delta


@dataclass(frozen=True)
class Spend:
    """One mechanism invocation (possibly vector-valued) and the epsilon share it consumed."""

    step: str
    mechanism: str
    epsilon: Decimal
    sensitivity: float
    delta: Decimal = Decimal(0)
    library: str = ""
    version: str = ""

    def to_json(self) -> dict[str, Any]:
        item = asdict(self)
        item["epsilon"], item["delta"] = str(self.epsilon), str(self.delta)
        return item

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Spend:
        return cls(
            step=str(item["step"]),
            mechanism=str(item["mechanism"]),
            epsilon=Decimal(item["epsilon"]),
            sensitivity=float(item["sensitivity"]),
            delta=Decimal(item["delta"]),
            library=str(item.get("library", "")),
            version=str(item.get("version", "")),
        )


class PrivacyLedger:
    """What this run's mechanisms consumed, in order. Basic sequential composition: the run's
    epsilon is the sum of the entries' epsilons, and its delta the sum of their deltas."""

    def __init__(self) -> None:
        self.entries: list[Spend] = []

    def record(
        self,
        step: str,
        mechanism: str,
        epsilon: Decimal,
        sensitivity: float,
        delta: Decimal = Decimal(0),
        *,
        library: str = "",
        version: str = "",
    ) -> None:
        self.entries.append(Spend(step, mechanism, epsilon, sensitivity, delta, library, version))

    def total(self) -> Decimal:
        return sum((e.epsilon for e in self.entries), Decimal(0))

    def total_delta(self) -> Decimal:
        return sum((e.delta for e in self.entries), Decimal(0))
