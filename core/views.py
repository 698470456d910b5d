"""Helpers shared by the HTML views of every app."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from core.errors import DomainError, NotFound, PermissionDenied, note_refusal


def forbidden(request: HttpRequest, reason: str, *, code: str = "forbidden", back: str = "") -> HttpResponse:
    """The 403 page: the user may see the object but may not do this to it.

    `reason` says why in plain words (a rule's refusal or a service's PermissionDenied message:
    never a value from the data). `back` is where the page links to (the object's page; home when
    empty). Noted for RefusalAuditMiddleware, which writes the one `denied` row unless a service
    already audited this refusal.
    """
    note_refusal(request, status=403, code=code)
    return render(request, "403.html", {"reason": reason, "back": back}, status=403)


def domain_errors_as_messages(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Show a service's refusal to the user and send them back, instead of a 500.

    NotFound becomes a real 404 (objects the user may not see do not exist for them), and
    PermissionDenied the 403 page (who is asking may not do this, whatever they send). Other
    refusals (a 409 for the object's state, a 400 for the input) are a message on the page the
    user came from, so an allowed actor can fix and retry.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message) from None
        except PermissionDenied as exc:
            return forbidden(request, exc.message, code=exc.code, back=_safe_referer(request))
        except DomainError as exc:
            note_refusal(request, status=exc.status, code=exc.code)  # audited by the middleware
            messages.error(request, exc.message)
            return redirect(_safe_referer(request) or "dashboard")

    return wrapper


def _safe_referer(request: HttpRequest) -> str:
    back = request.META.get("HTTP_REFERER", "")
    safe = url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()})
    return back if back and safe else ""
