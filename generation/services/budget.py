"""Exact epsilon arithmetic. Budgets are integer micro-epsilon; never floats."""

from __future__ import annotations

from decimal import MAX_EMAX, MIN_EMIN, ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from typing import Any

from core.errors import ValidationFailed
from generation.models import MICRO

MAX_EPSILON = Decimal("100")


def epsilon_to_micro(value: Any, *, field: str = "epsilon", is_cap: bool = False) -> int:
    """Parse a user-supplied epsilon exactly into whole micro-epsilon.

    Amounts to spend round *up* (never under-charge; any positive amount costs at least one
    micro-epsilon). Caps round *down* (never allow more than the steward declared) and must be
    at least one micro-epsilon. The arithmetic runs in a decimal context wide enough for the
    input, so no digit is lost before rounding.
    """
    if isinstance(value, bool) or value is None or value == "":
        raise ValidationFailed(f"{field} must be a positive number.", fields={field: "required"})
    text = str(value).strip()
    try:
        if len(text) > 64:
            raise ValueError(text[:8])
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"{field} must be a positive number.", fields={field: "invalid"}) from None
    if not number.is_finite() or number <= 0:
        raise ValidationFailed(f"{field} must be a positive, finite number.", fields={field: "invalid"})
    if number > MAX_EPSILON:
        raise ValidationFailed(
            f"{field} above {MAX_EPSILON} gives no meaningful privacy; choose a smaller value.",
            fields={field: "too_large"},
        )
    with localcontext() as ctx:
        ctx.prec = len(number.as_tuple().digits) + 16
        ctx.Emin, ctx.Emax = MIN_EMIN, MAX_EMAX
        micro = int((number * MICRO).to_integral_value(rounding=ROUND_FLOOR if is_cap else ROUND_CEILING))
    if is_cap and micro < 1:
        raise ValidationFailed(f"{field} must be at least 0.000001.", fields={field: "too_small"})
    return max(1, micro)
