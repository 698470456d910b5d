from __future__ import annotations

import uuid
from typing import Any, TypeVar

from django.db import models

_M = TypeVar("_M", bound=models.Model)


def parse_uuid(value: Any) -> uuid.UUID | None:
    """A UUID from user input, or None; malformed ids then look exactly like missing ones (404)."""
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def first_by_uuid(queryset: models.QuerySet[_M], value: Any) -> _M | None:
    """The row of `queryset` whose pk is the UUID in `value`, or None when there is none or `value`
    is not a UUID (so a malformed id reads exactly like a missing one). Filtering on `pk=None`
    would also find nothing; skipping the query says so to the type checker and the reader."""
    key = parse_uuid(value)
    return None if key is None else queryset.filter(pk=key).first()
