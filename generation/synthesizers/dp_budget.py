"""Exact epsilon accounting inside one DP synthesis run.

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
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

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


@dataclass(frozen=True)
class Spend:
    """One mechanism invocation (possibly vector-valued) and the epsilon share it consumed."""

    step: str
    mechanism: str
    epsilon: Decimal
    sensitivity: float
    delta: Decimal = Decimal(0)


class PrivacyLedger:
    """What this run's mechanisms consumed, in order. Basic sequential composition: the run's
    epsilon is the sum of the entries' epsilons, and its delta the sum of their deltas."""

    def __init__(self) -> None:
        self.entries: list[Spend] = []

    def record(
        self, step: str, mechanism: str, epsilon: Decimal, sensitivity: float, delta: Decimal = Decimal(0)
    ) -> None:
        self.entries.append(Spend(step, mechanism, epsilon, sensitivity, delta))

    def total(self) -> Decimal:
        return sum((e.epsilon for e in self.entries), Decimal(0))

    def total_delta(self) -> Decimal:
        return sum((e.delta for e in self.entries), Decimal(0))
