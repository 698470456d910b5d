"""Small display filters shared by the pages."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template
from django.template.defaultfilters import date

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


# Timestamps: one format each, so every page writes them the same way. Like Django's `date`
# filter (which they call), they see the value in the current time zone (`expects_localtime`,
# so `{% localtime off %}` still works) and show nothing for None.
WHEN_FORMAT = "Y-m-d H:i"
DAY_FORMAT = "Y-m-d"
WHEN_EXACT_FORMAT = "Y-m-d H:i:s"


@register.filter(expects_localtime=True, is_safe=False)
def when(value: Any) -> str:
    """A moment to the minute: 2026-03-01 14:05."""
    return date(value, WHEN_FORMAT)


@register.filter(expects_localtime=True, is_safe=False)
def day(value: Any) -> str:
    """A calendar day: 2026-03-01."""
    return date(value, DAY_FORMAT)


@register.filter(expects_localtime=True, is_safe=False)
def when_exact(value: Any) -> str:
    """A moment to the second, for logs and ledgers: 2026-03-01 14:05:09."""
    return date(value, WHEN_EXACT_FORMAT)


@register.filter
def can(user: Any, capability: str) -> bool:
    """`{% if user|can:"AUDIT_READERS" %}`: the capability named in core.roles, never a role list
    written into a template. An unknown name is an error, not a silent False."""
    from core import roles

    members = getattr(roles, capability, None)
    if not isinstance(members, tuple):
        raise template.TemplateSyntaxError(f"core.roles has no capability {capability!r}")
    return roles.has_role(user, *members)
