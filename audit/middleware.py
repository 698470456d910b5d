from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone

from audit.context import current_request_id
from core.errors import Refusal, note_refusal, noted_refusal
from core.ids import parse_uuid

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    """Tags each request with an id that audit rows and the response header share."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        token = current_request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response["X-Request-ID"] = request_id
        return response


class RefusalAuditMiddleware:
    """One `denied` audit row for every refused request of a signed-in user, with a reason code.

    Refusals happen in many places: a page's `Http404` for an object outside the caller's scope,
    a service's 403/409 shown as a message (core.views.domain_errors_as_messages), the API's
    403/404/409 (portal.api.errors). Each notes the refusal on the request (core.errors); this
    writes the row after the response, unless a service already audited a refusal during this
    request (services that call audit_denied keep their own, more specific action name).
    Goes after AuthenticationMiddleware and inside RequestIdMiddleware.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = timezone.now()
        response = self.get_response(request)
        refusal = noted_refusal(request)
        if refusal is not None:
            audit_refusal(request, refusal, since=started)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # Only exceptions a view raised reach here: an unknown URL is not an object denial.
        if isinstance(exception, Http404):
            note_refusal(request, status=404, code="not_found")
        elif isinstance(exception, DjangoPermissionDenied):
            note_refusal(request, status=403, code="forbidden")


def audit_refusal(request: HttpRequest, refusal: Refusal, *, since: datetime) -> None:
    """Record the refusal unless the caller is anonymous or it is already in the log."""
    # Imported here: the audit models need the app registry, which middleware import precedes.
    from audit.models import AuditEvent, Outcome
    from audit.services import audit_record

    user = getattr(request, "user", None)
    if not getattr(user, "is_authenticated", False):
        return  # nobody to hold to account; 401s and sign-in failures are audited where they happen
    request_id = current_request_id.get()
    already = AuditEvent.objects.filter(outcome=Outcome.DENIED, at__gte=since, actor=user)
    if request_id and already.filter(request_id=request_id).exists():
        return
    route, target_type, target_id = _route_and_target(request)
    with transaction.atomic():  # its own transaction, like audit_denied
        audit_record(
            actor=user,
            action=_action(route),
            target_type=target_type,
            target_id=target_id,
            outcome=Outcome.DENIED,
            details={"reason": refusal.code, "status": refusal.status, "method": request.method},
        )


def _route_and_target(request: HttpRequest) -> tuple[str, str, str]:
    """The route name and the object the URL names. Only a well-formed UUID is kept as the id:
    the path is typed by the caller and could hold anything, including a value from the data."""
    match = getattr(request, "resolver_match", None)
    route = (match.url_name or match.view_name) if match is not None else ""
    kwargs = dict(match.kwargs) if match is not None else {}
    for name, value in kwargs.items():
        if name.endswith("_id") or name == "pk":
            parsed = parse_uuid(value)
            kind = name.removesuffix("_id") if name != "pk" else (route.split("-")[0] or "object")
            return route or "-", kind, str(parsed) if parsed else "malformed-id"
    return route or "-", "route", route or "-"


def _action(route: str) -> str:
    """`api-request-submit` and `request-submit` both read `request.submit`."""
    name = route.removeprefix("api-") or "unknown"
    return name.replace("-", ".").replace(":", ".")[:64]
