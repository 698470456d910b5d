"""Domain errors raised by services. Views and the API map them to status codes.

Messages are shown to users: they say what went wrong and what to do, and never contain data
values from a source dataset (column names and ids only).
"""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    code = "invalid"

    def __init__(
        self, message: str, *, code: str | None = None, fields: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = fields or {}


class ValidationFailed(DomainError):
    status = 400
    code = "invalid"


class PermissionDenied(DomainError):
    """The caller may see the object but may not do this to it."""

    status = 403
    code = "forbidden"


class NotFound(DomainError):
    """Missing, or invisible to the caller: the two are indistinguishable on purpose."""

    status = 404
    code = "not_found"


class Conflict(DomainError):
    """The action is not allowed from the object's current state."""

    status = 409
    code = "conflict"
