"""Small display filters shared by the pages."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template

register = template.Library()


@register.filter
def epsilon(value: Any) -> str:
    """An exact epsilon without trailing zeros: Decimal('0.930000') -> '0.93'."""
    if value is None or value == "":
        return ""
    try:
        text = f"{Decimal(str(value)):f}"
    except InvalidOperation:
        return str(value)
    return text.rstrip("0").rstrip(".") if "." in text else text
