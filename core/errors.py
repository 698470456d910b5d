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


class Gone(DomainError):
    """The object exists and the caller may see it, but it may no longer be used (expired or
    withdrawn). The message says why and what to do."""

    status = 410
    code = "gone"


# --- Refusals noted for the audit log --------------------------------------------------------
# Views and the API's exception handler answer 403/404/409 in many places; they note the refusal
# on the request here and audit.middleware.RefusalAuditMiddleware writes one `denied` audit row
# for it after the response (unless the service already did). core imports no app, so this is
# only a tag on the request, not the audit write itself.

REFUSAL_ATTR = "_synthgate_refusal"
AUDITED_STATUSES = frozenset({403, 404, 409})


class Refusal:
    """What was refused and why (a reason code, never a value from the request)."""

    __slots__ = ("code", "status")

    def __init__(self, *, status: int, code: str) -> None:
        self.status = status
        self.code = code


def note_refusal(request: object, *, status: int, code: str) -> None:
    """Tag a Django (or DRF) request with its refusal, if it is one the audit log records."""
    if status not in AUDITED_STATUSES:
        return
    django_request = getattr(request, "_request", request)
    try:
        setattr(django_request, REFUSAL_ATTR, Refusal(status=status, code=str(code)[:64]))
    except AttributeError:  # not a request object (a test calling a view function directly)
        pass


def noted_refusal(request: object) -> Refusal | None:
    return getattr(getattr(request, "_request", request), REFUSAL_ATTR, None)
